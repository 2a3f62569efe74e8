"""The exception tree of :mod:`cloud.auth`.

::

    CloudError
    ├── ConfigError
    │   └── AuthConfigError       the auth configuration is unusable (default secret, no admin password)
    └── AuthError                 base of everything the auth service refuses
        ├── InvalidInput          malformed request (bad username, unknown scope, wrong parent kind)  400
        ├── NotAuthenticated      credentials missing, wrong, expired, revoked                         401
        │   └── AccountDisabled   right password, but the user or its tenant is not active            401
        ├── PermissionDenied      authenticated, but not allowed to do this                            403
        ├── NotFound              no such row, or not visible to the caller                            404
        ├── Conflict              duplicate name, idempotency key reuse, tenant still has children     409
        └── TooManyAttempts       too many failed logins for a username                                429

Each class carries the HTTP ``status`` and a short machine-readable ``code`` for the
``{"error": code, "detail": message}`` body of the API.
"""

from __future__ import annotations

from typing import ClassVar

from cloud.errors import CloudError, ConfigError


class AuthConfigError(ConfigError):
    """The auth configuration cannot be used (e.g. the example JWT secret outside dev mode)."""


class AuthError(CloudError):
    """Base class of the refusals of :mod:`cloud.auth`."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "auth_error"


class InvalidInput(AuthError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class NotAuthenticated(AuthError):
    """No valid credentials."""

    status = 401
    code = "unauthorized"


class AccountDisabled(NotAuthenticated):
    """The credentials are right but the user, key or tenant is not active."""

    code = "account_disabled"


class PermissionDenied(AuthError):
    """The caller may not do this."""

    status = 403
    code = "forbidden"


class NotFound(AuthError):
    """No such object (or one the caller may not see: both look the same from outside)."""

    status = 404
    code = "not_found"


class Conflict(AuthError):
    """The request conflicts with the stored state."""

    status = 409
    code = "conflict"


class TooManyAttempts(AuthError):
    """Too many failed logins for this username; ``retry_after`` seconds to wait."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
