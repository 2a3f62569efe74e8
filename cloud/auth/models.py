"""SQL tables of tenancy and access (prefix ``auth_``, in the global SQLModel metadata).

Times are stored timezone-aware where the database can (PostgreSQL ``timestamptz``); SQLite
returns them naive, :func:`utc` reads both as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, DateTime, String
from sqlmodel import Field, SQLModel


class TenantKind(StrEnum):
    """What a tenant is; it decides where the tenant may sit in the hierarchy."""

    PLATFORM = "platform"
    OPERATOR = "operator"
    AGENT = "agent"
    STATION_OWNER = "station_owner"


class TenantStatus(StrEnum):
    """A tenant's state; only ``active`` tenants (below active ancestors) can authenticate."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


#: the kinds a tenant's parent may have (None: a root)
ALLOWED_PARENTS: dict[TenantKind, frozenset[TenantKind | None]] = {
    TenantKind.PLATFORM: frozenset({None}),
    TenantKind.OPERATOR: frozenset({TenantKind.PLATFORM}),
    TenantKind.AGENT: frozenset({TenantKind.OPERATOR, TenantKind.AGENT}),
    TenantKind.STATION_OWNER: frozenset({TenantKind.OPERATOR, TenantKind.AGENT}),
}


def utcnow() -> datetime:
    """Now, timezone-aware UTC, to the microsecond."""
    return datetime.now(UTC)


def utc(value: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands back naive values)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = True) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class Tenant(SQLModel, table=True):
    """A platform, operator, agent or station owner; rows are only ever soft-deleted."""

    __tablename__ = "auth_tenants"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    parent_id: str | None = Field(default=None, foreign_key="auth_tenants.id", index=True,
                                  max_length=64)
    status: str = Field(default=TenantStatus.ACTIVE.value,
                        sa_column=Column(String(16), nullable=False))
    created: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    #: "<creator subject>:<Idempotency-Key>" of the request that created the row
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)


class StaffUser(SQLModel, table=True):
    """A person who logs in to the API; usernames are unique and stored lower-case."""

    __tablename__ = "auth_staff_users"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="auth_tenants.id", index=True, max_length=64)
    username: str = Field(unique=True, max_length=64)
    password_hash: str = Field(max_length=512)
    role: str = Field(sa_column=Column(String(32), nullable=False))
    disabled: bool = False
    #: raised whenever a password, role or the disabled flag changes: tokens carry it (claim
    #: ``ver``) and older tokens are refused, so such a change takes effect at once
    token_version: int = 0
    created: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)


class ApiKey(SQLModel, table=True):
    """A third party's key; the secret is never stored, only its SHA-256."""

    __tablename__ = "auth_api_keys"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="auth_tenants.id", index=True, max_length=64)
    name: str = Field(max_length=128)
    #: the public part of the key ("vm_<prefix>_..."): shown in lists, used to look the key up
    prefix: str = Field(unique=True, max_length=16)
    secret_hash: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=64)
    created: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    last_used: datetime | None = Field(default=None, sa_column=_ts())
    expires: datetime | None = Field(default=None, sa_column=_ts())
    revoked: datetime | None = Field(default=None, sa_column=_ts())
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)


class AuthRevision(SQLModel, table=True):
    """One row counting changes to the auth tables: every worker's cache compares it per request."""

    __tablename__ = "auth_revision"

    id: int = Field(default=1, primary_key=True)
    value: int = 0


AUTH_TABLES = [Tenant.__table__, StaffUser.__table__, ApiKey.__table__,  # type: ignore[attr-defined]
               AuthRevision.__table__]  # type: ignore[attr-defined]
