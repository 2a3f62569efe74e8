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

from fastapi import Depends, HTTPException, Request
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


class Authenticator(Protocol):
    """Turns a request's credentials into a principal (raises HTTPException 401 when it cannot)."""

    async def authenticate(self, request: Request) -> Principal: ...


async def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated principal of this request."""
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise HTTPException(status_code=401, detail="authentication is not configured",
                            headers={"WWW-Authenticate": "Bearer"})
    return await authenticator.authenticate(request)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals holding ``scope`` (403 otherwise)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(scope):
            raise HTTPException(status_code=403, detail=f"missing scope {scope}")
        return principal

    return check


class FixedAuthenticator:
    """Authenticates every request as one principal (tests of routers; never in production)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def authenticate(self, request: Request) -> Principal:
        return self.principal
