"""What the auth service returns (and the API shows): never a password hash or a key secret."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class TenantView(_View):
    """A tenant."""

    id: str
    name: str
    kind: str
    parent_id: str | None
    status: str
    created: datetime


class StaffView(_View):
    """A staff user (without the password hash)."""

    id: int
    tenant_id: str
    username: str
    role: str
    disabled: bool
    created: datetime


class ApiKeyView(_View):
    """An API key (without the secret)."""

    id: int
    tenant_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created: datetime
    last_used: datetime | None
    expires: datetime | None
    revoked: datetime | None


class IssuedApiKey(_View):
    """A new API key: ``key`` is the secret, shown this once and never again."""

    key: str
    api_key: ApiKeyView


class Me(_View):
    """The caller, as ``GET /auth/me`` shows it."""

    subject: str
    tenant_id: str
    tenant_name: str | None
    tenant_kind: str | None
    role: str | None
    username: str | None
    scopes: list[str]
    #: None: every tenant (platform)
    visible_tenants: list[str] | None
