"""Who is calling the north-bound API, and what they may see: the contract every router uses.

Every router takes ``principal: CurrentPrincipal`` (or ``Depends(require("orders:read"))``) and
filters every query with :func:`Principal.tenant_clause` / :meth:`Principal.sees`. How the
principal is established (OAuth2 password login with JWT for people, API keys with scopes for
third parties) is :mod:`cloud.auth`'s business: the app holds an :class:`Authenticator` in
``app.state.authenticator``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import true


class Role(StrEnum):
    """Roles of staff users."""

    PLATFORM_ADMIN = "platform_admin"  # all tenants
    OPERATOR_ADMIN = "operator_admin"  # everything of its tenant and the tenants below it
    FINANCE = "finance"  # orders, wallets, statistics; read-only elsewhere
    MAINTAINER = "maintainer"  # devices, commands, alarms; no money
    READ_ONLY = "read_only"


#: every scope the API knows; API keys carry a subset, roles map to a subset
SCOPES: frozenset[str] = frozenset({
    "stations:read", "stations:write", "chargers:read", "chargers:write",
    "tariffs:read", "tariffs:write", "users:read", "users:write", "cards:read", "cards:write",
    "vehicles:read", "vehicles:write", "wallets:read", "wallets:write",
    "orders:read", "orders:write", "commands:write", "stats:read",
    "alarms:read", "alarms:write", "devices:read", "devices:write",
    "tenants:admin", "staff:admin", "apikeys:admin",
})

_READ = frozenset(s for s in SCOPES if s.endswith(":read"))

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.PLATFORM_ADMIN: SCOPES,
    Role.OPERATOR_ADMIN: SCOPES - {"tenants:admin"},
    Role.FINANCE: _READ | {"orders:write", "wallets:write", "users:write", "cards:write"},
    Role.MAINTAINER: _READ | {"stations:write", "chargers:write", "commands:write",
                              "alarms:write", "devices:write"},
    Role.READ_ONLY: _READ,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``visible_tenants`` is None for the platform admin (sees everything), else the caller's
    tenant and the tenants below it (agents, station owners of an operator).
    """

    subject: str  # "user:<id>" or "apikey:<id>"
    tenant_id: str
    role: Role | None  # None for API keys
    scopes: frozenset[str]
    visible_tenants: frozenset[str] | None = field(default=None)

    def can(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return scope in self.scopes

    def sees(self, tenant_id: str | None) -> bool:
        """Whether a row of ``tenant_id`` is visible to the caller."""
        if self.visible_tenants is None:
            return True
        return tenant_id is not None and tenant_id in self.visible_tenants

    def tenant_clause(self, column: Any) -> Any:
        """A SQLAlchemy WHERE clause restricting ``column`` (a tenant_id column) to what is visible.

        Use: ``select(Order).where(principal.tenant_clause(Order.tenant_id))``.
        """
        if self.visible_tenants is None:
            return true()
        return column.in_(sorted(self.visible_tenants))


#: where staff users log in (the router of :mod:`cloud.auth.api` under ``/api/v1``)
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret
API_KEY_HEADER = "X-API-Key"
REALM = "voltmesh"

# Declared on every route that depends on the principal, so the OpenAPI document carries the
# security schemes and /docs offers a login; the authenticator reads the headers itself.
_oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, scheme_name="OAuth2Password",
                                      auto_error=False,
                                      description="Staff login (username, password) -> JWT")
_api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False,
                               description="API key `vm_<prefix>_<secret>` "
                                           "(or `Authorization: ApiKey vm_...`)")


class AuthProblem(HTTPException):
    """An authentication (401) or authorization (403) failure.

    ``error`` is a short code; the handler :mod:`cloud.auth` installs renders
    ``{"error": error, "detail": detail}`` (without it FastAPI renders ``{"detail": ...}``).
    """

    def __init__(self, status_code: int, error: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.error = error


def unauthorized(detail: str, *, scheme: str = "Bearer", error: str = "unauthorized",
                 invalid: bool = False) -> AuthProblem:
    """A 401 with the ``WWW-Authenticate`` challenge of ``scheme`` (RFC 6750 for Bearer)."""
    challenge = f'{scheme} realm="{REALM}"'
    if invalid and scheme == "Bearer":
        challenge += ', error="invalid_token"'
    return AuthProblem(401, error, detail, headers={"WWW-Authenticate": challenge})


class Authenticator(Protocol):
    """Turns a request's credentials into a principal (raises HTTPException 401 when it cannot)."""

    async def authenticate(self, request: Request) -> Principal: ...


async def get_principal(
    request: Request,
    _bearer: Annotated[str | None, Security(_oauth2_scheme)] = None,
    _api_key: Annotated[str | None, Security(_api_key_scheme)] = None,
) -> Principal:
    """FastAPI dependency: the authenticated principal of this request.

    ``_bearer``/``_api_key`` only declare the security schemes in OpenAPI; the authenticator
    reads the request.
    """
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise unauthorized("authentication is not configured")
    return await authenticator.authenticate(request)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals holding ``scope`` (403 otherwise)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(scope):
            raise AuthProblem(403, "forbidden", f"missing scope {scope}")
        return principal

    return check


class FixedAuthenticator:
    """Authenticates every request as one principal (tests of routers; never in production)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def authenticate(self, request: Request) -> Principal:
        return self.principal
