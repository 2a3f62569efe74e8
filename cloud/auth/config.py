"""Typed configuration of :mod:`cloud.auth` (the ``auth:`` section of the cloud config).

Environment variables override the file for the secrets, so they need not be written into it:
``VOLTMESH_JWT_SECRET``, ``VOLTMESH_ADMIN_USERNAME``, ``VOLTMESH_ADMIN_PASSWORD``
(see :meth:`AuthConfig.with_env`).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping

from pydantic import Field, model_validator

from cloud.auth.errors import AuthConfigError
from cloud.strict import Strict

log = logging.getLogger("voltmesh.cloud.auth")

#: the secret written in config/cloud.example.yaml: refused unless ``dev: true``
EXAMPLE_JWT_SECRET = "change-me-voltmesh-example-jwt-secret-not-for-production"  # noqa: S105
#: HS256 keys shorter than this are refused (RFC 7518 §3.2: at least the hash size, 256 bits)
MIN_SECRET_LENGTH = 32
MIN_PASSWORD_LENGTH = 8

ENV_JWT_SECRET = "VOLTMESH_JWT_SECRET"  # noqa: S105 - the name of a variable, not a secret
ENV_ADMIN_USERNAME = "VOLTMESH_ADMIN_USERNAME"
ENV_ADMIN_PASSWORD = "VOLTMESH_ADMIN_PASSWORD"  # noqa: S105


class PasswordHashConfig(Strict):
    """Argon2id cost parameters (defaults: argon2-cffi's, RFC 9106 "low memory" profile).

    Raising them later is safe: a stored hash with older parameters is re-hashed at the next
    successful login.
    """

    time_cost: int = Field(default=3, ge=1, le=20)
    memory_kib: int = Field(default=65536, ge=64, le=4 * 1024 * 1024)
    parallelism: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _memory_per_lane(self) -> PasswordHashConfig:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("memory_kib must be at least 8 * parallelism (an Argon2 rule)")
        return self


class BootstrapAdmin(Strict):
    """The platform admin created on first start, when the database holds no staff user."""

    username: str = Field(default="admin", min_length=3, max_length=64)
    #: None: take ``VOLTMESH_ADMIN_PASSWORD``; without it, start-up fails (dev: a random one, logged)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=256)
    tenant_name: str = Field(default="platform", min_length=1, max_length=128)


class AuthConfig(Strict):
    """Logins (JWT), API keys, password hashing and the first admin."""

    #: development mode: the example secret and a generated admin password are accepted
    dev: bool = False
    #: HS256 signing secret, at least 32 characters; None: ``VOLTMESH_JWT_SECRET`` (dev: random
    #: per process, so tokens do not survive a restart and workers do not share them)
    jwt_secret: str | None = Field(default=EXAMPLE_JWT_SECRET, min_length=MIN_SECRET_LENGTH)
    #: lifetime of an access token, seconds
    token_ttl: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    issuer: str = Field(default="voltmesh", min_length=1)
    audience: str = Field(default="voltmesh-api", min_length=1)
    #: clock skew tolerated on exp/iat/nbf, seconds
    leeway: int = Field(default=30, ge=0, le=300)
    password_hash: PasswordHashConfig = PasswordHashConfig()
    bootstrap: BootstrapAdmin = BootstrapAdmin()
    #: seconds an authentication cache entry may be used without being re-validated, even if no
    #: change was seen (a net for rows edited in SQL outside AuthService; see docs/auth.md)
    cache_max_age: float = Field(default=30.0, ge=0, le=3600)
    #: last_used of an API key is written at most this often (seconds), not on every request
    last_used_interval: float = Field(default=60.0, ge=0)
    #: wrong passwords for one username within ``login_failure_window`` seconds before its
    #: logins are refused (429) until the oldest failure is that old; 0: no limit
    login_max_failures: int = Field(default=10, ge=0, le=1000)
    login_failure_window: float = Field(default=300.0, gt=0, le=86400)

    def with_env(self, environ: Mapping[str, str] | None = None) -> AuthConfig:
        """A copy with the environment overrides applied (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        update: dict[str, object] = {}
        if env.get(ENV_JWT_SECRET):
            update["jwt_secret"] = env[ENV_JWT_SECRET]
        boot: dict[str, object] = {}
        if env.get(ENV_ADMIN_USERNAME):
            boot["username"] = env[ENV_ADMIN_USERNAME]
        if env.get(ENV_ADMIN_PASSWORD):
            boot["password"] = env[ENV_ADMIN_PASSWORD]
        if boot:
            update["bootstrap"] = self.bootstrap.model_copy(update=boot)
        if not update:
            return self
        # validate the overridden values like file values (length limits ...)
        return AuthConfig.model_validate({**self.model_dump(), **{
            k: (v.model_dump() if isinstance(v, Strict) else v) for k, v in update.items()}})

    def signing_secret(self) -> str:
        """The secret tokens are signed with; refuses the example secret outside dev mode."""
        secret = self.jwt_secret
        if secret is None:
            if not self.dev:
                raise AuthConfigError(
                    f"auth.jwt_secret is not set: set it (at least {MIN_SECRET_LENGTH} random "
                    f"characters) in the config or in {ENV_JWT_SECRET}")
            log.warning("auth.jwt_secret not set (dev mode): using a random secret; tokens "
                        "will not survive a restart")
            secret = self.jwt_secret = secrets.token_urlsafe(48)
        if secret == EXAMPLE_JWT_SECRET and not self.dev:
            raise AuthConfigError(
                "auth.jwt_secret is the example secret: anyone could sign tokens with it; set a "
                f"random secret (e.g. `openssl rand -base64 48`) in the config or in "
                f"{ENV_JWT_SECRET}, or set auth.dev: true for development")
        if len(secret) < MIN_SECRET_LENGTH:  # pragma: no cover - the field validator checks
            raise AuthConfigError(f"auth.jwt_secret is shorter than {MIN_SECRET_LENGTH} characters")
        return secret
