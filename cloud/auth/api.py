"""The auth router (``/api/v1``): login, the caller, tenants, staff, API keys.

The service is ``request.app.state.auth`` (:class:`AuthService`); mount with
:func:`cloud.auth.setup.install_auth`, which also installs the authenticator and the error
handler. Endpoints are plain ``def``: FastAPI runs them in its thread pool, where the service's
SQL and password hashing belong.

Errors: ``{"error": code, "detail": message}`` with 400 (bad input), 401 (credentials), 403
(not allowed), 404 (absent or not visible), 409 (conflict).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.errors import OWN, ErrorMap, error_route
from cloud.auth.errors import AuthError, NotAuthenticated, TooManyAttempts
from cloud.auth.principal import AuthProblem, CurrentPrincipal, Principal, require, unauthorized
from cloud.auth.service import AuthService
from cloud.auth.views import ApiKeyView, IssuedApiKey, Me, StaffView, TenantView

T = TypeVar("T")

#: the auth refusals carry their own HTTP status and error code
ERRORS: ErrorMap = {AuthError: OWN}

router = APIRouter(prefix="/api/v1", route_class=error_route(ERRORS, "AuthRoute"))

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="Retrying a create with the same key returns the first result (API keys: 409, "
                "their secret is shown once)")]


def get_auth(request: Request) -> AuthService:
    """The auth service of the app."""
    service: AuthService | None = getattr(request.app.state, "auth", None)
    if service is None:  # pragma: no cover - install_auth sets it
        raise AuthProblem(503, "unavailable", "the auth service is not configured")
    return service


Auth = Annotated[AuthService, Depends(get_auth)]
StaffAdmin = Annotated[Principal, Depends(require("staff:admin"))]
KeysAdmin = Annotated[Principal, Depends(require("apikeys:admin"))]


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the service; a 401 gets its ``WWW-Authenticate`` challenge (the route class
    answers the other refusals by their own status and code)."""
    try:
        return fn(*args, **kwargs)
    except NotAuthenticated as exc:
        raise unauthorized(str(exc), error=exc.code) from None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(BaseModel):
    """An OAuth2 access token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


class PasswordChange(_Body):
    """A user's own password change."""

    current_password: str
    new_password: str


class TenantCreate(_Body):
    """A new tenant."""

    name: str = Field(min_length=1, max_length=128)
    kind: Literal["platform", "operator", "agent", "station_owner"]
    parent_id: str | None = None
    #: optional own id (e.g. an operator code); a ULID otherwise
    id: str | None = Field(default=None, min_length=1, max_length=64)


class TenantUpdate(_Body):
    """Changes to a tenant (omitted fields stay)."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    status: Literal["active", "suspended"] | None = None
    parent_id: str | None = None


class StaffCreate(_Body):
    """A new staff user (tenant: the caller's when omitted)."""

    username: str
    password: str
    role: Literal["platform_admin", "operator_admin", "finance", "maintainer", "read_only"]
    tenant_id: str | None = None


class StaffUpdate(_Body):
    """Changes to a staff user (omitted fields stay); any change ends the user's sessions."""

    password: str | None = None
    role: Literal["platform_admin", "operator_admin", "finance", "maintainer",
                  "read_only"] | None = None
    disabled: bool | None = None


class ApiKeyCreate(_Body):
    """A new API key (tenant: the caller's when omitted; no expiry when omitted)."""

    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=64)
    tenant_id: str | None = None
    expires: datetime | None = None


class Page(BaseModel):
    """Paging of list endpoints."""

    limit: int
    offset: int


class TenantList(Page):
    """A page of tenants."""

    items: list[TenantView]


class StaffList(Page):
    """A page of staff users."""

    items: list[StaffView]


class ApiKeyList(Page):
    """A page of API keys (no secrets)."""

    items: list[ApiKeyView]


Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


# -- login ---------------------------------------------------------------------------------

@router.post("/auth/token", response_model=TokenOut, tags=["auth"],
             responses={401: {"description": "wrong username or password, or user disabled"},
                        429: {"description": "too many failed logins for this username"}})
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], auth: Auth,
          response: Response) -> TokenOut:
    """OAuth2 password flow: form fields ``username`` and ``password`` -> a bearer JWT."""
    try:
        token, _user = auth.login(form.username, form.password)
    except NotAuthenticated as exc:
        raise unauthorized(str(exc), error="invalid_grant") from None
    except TooManyAttempts as exc:
        raise AuthProblem(exc.status, exc.code, str(exc),
                          headers={"Retry-After": str(exc.retry_after)}) from None
    response.headers["Cache-Control"] = "no-store"
    return TokenOut(access_token=token.token, expires_in=token.expires_in)


@router.get("/auth/me", response_model=Me, tags=["auth"])
def me(principal: CurrentPrincipal, auth: Auth) -> Me:
    """Who the caller is: tenant, role, scopes and the tenants it sees."""
    return auth.me(principal)


@router.post("/auth/password", response_model=TokenOut, tags=["auth"])
def change_password(body: PasswordChange, principal: CurrentPrincipal, auth: Auth,
                    response: Response) -> TokenOut:
    """Change one's own password: every older token ends, a new one is returned."""
    token = _run(auth.change_own_password, principal, body.current_password, body.new_password)
    response.headers["Cache-Control"] = "no-store"
    return TokenOut(access_token=token.token, expires_in=token.expires_in)


# -- tenants -------------------------------------------------------------------------------

@router.get("/tenants", response_model=TenantList, tags=["tenants"])
def list_tenants(principal: CurrentPrincipal, auth: Auth,
                 kind: Literal["platform", "operator", "agent", "station_owner"] | None = None,
                 parent_id: str | None = None, include_deleted: bool = False,
                 limit: Limit = 100, offset: Offset = 0) -> TenantList:
    """The tenants the caller sees (its own and those below it)."""
    items = _run(auth.list_tenants, principal, kind=kind, parent_id=parent_id,
                 include_deleted=include_deleted, limit=limit, offset=offset)
    return TenantList(items=items, limit=limit, offset=offset)


@router.post("/tenants", response_model=TenantView, status_code=201, tags=["tenants"],
             responses={200: {"description": "idempotent replay: the tenant created before"}})
def create_tenant(body: TenantCreate, principal: CurrentPrincipal, auth: Auth,
                  response: Response, idempotency_key: IdempotencyKey = None) -> TenantView:
    """Create a tenant (tenants:admin; an operator admin: agents and station owners below it)."""
    view, created = _run(auth.create_tenant, principal, body.name, body.kind, body.parent_id,
                         tenant_id=body.id, idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
    return view


@router.get("/tenants/{tenant_id}", response_model=TenantView, tags=["tenants"])
def get_tenant(tenant_id: str, principal: CurrentPrincipal, auth: Auth) -> TenantView:
    """One tenant the caller sees."""
    return _run(auth.get_tenant, principal, tenant_id)


@router.patch("/tenants/{tenant_id}", response_model=TenantView, tags=["tenants"])
def update_tenant(tenant_id: str, body: TenantUpdate, principal: CurrentPrincipal,
                  auth: Auth) -> TenantView:
    """Rename, suspend or reactivate, or move a tenant."""
    return _run(auth.update_tenant, principal, tenant_id, name=body.name, status=body.status,
                parent_id=body.parent_id)


@router.delete("/tenants/{tenant_id}", response_model=TenantView, tags=["tenants"])
def delete_tenant(tenant_id: str, principal: CurrentPrincipal, auth: Auth) -> TenantView:
    """Soft-delete a tenant without live tenants below it: its users and keys stop working."""
    return _run(auth.delete_tenant, principal, tenant_id)


# -- staff ---------------------------------------------------------------------------------

@router.get("/staff", response_model=StaffList, tags=["staff"])
def list_staff(principal: StaffAdmin, auth: Auth, tenant_id: str | None = None,
               limit: Limit = 100, offset: Offset = 0) -> StaffList:
    """Staff users of the tenants the caller sees."""
    items = _run(auth.list_staff, principal, tenant_id=tenant_id, limit=limit, offset=offset)
    return StaffList(items=items, limit=limit, offset=offset)


@router.post("/staff", response_model=StaffView, status_code=201, tags=["staff"],
             responses={200: {"description": "idempotent replay: the user created before"}})
def create_staff(body: StaffCreate, principal: StaffAdmin, auth: Auth, response: Response,
                 idempotency_key: IdempotencyKey = None) -> StaffView:
    """Create a staff user in a visible tenant, with a role no higher than the caller's."""
    view, created = _run(auth.create_staff, principal, body.tenant_id or principal.tenant_id,
                         body.username, body.password, body.role,
                         idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
    return view


@router.get("/staff/{user_id}", response_model=StaffView, tags=["staff"])
def get_staff(user_id: int, principal: StaffAdmin, auth: Auth) -> StaffView:
    """One staff user."""
    return _run(auth.get_staff, principal, user_id)


@router.patch("/staff/{user_id}", response_model=StaffView, tags=["staff"])
def update_staff(user_id: int, body: StaffUpdate, principal: StaffAdmin,
                 auth: Auth) -> StaffView:
    """Change password, role or disabled flag."""
    return _run(auth.update_staff, principal, user_id, password=body.password, role=body.role,
                disabled=body.disabled)


@router.delete("/staff/{user_id}", status_code=204, tags=["staff"])
def delete_staff(user_id: int, principal: StaffAdmin, auth: Auth) -> Response:
    """Delete a staff user."""
    _run(auth.delete_staff, principal, user_id)
    return Response(status_code=204)


# -- API keys ------------------------------------------------------------------------------

@router.get("/apikeys", response_model=ApiKeyList, tags=["apikeys"])
def list_api_keys(principal: KeysAdmin, auth: Auth, tenant_id: str | None = None,
                  include_revoked: bool = True, limit: Limit = 100,
                  offset: Offset = 0) -> ApiKeyList:
    """API keys of the tenants the caller sees, without secrets."""
    items = _run(auth.list_api_keys, principal, tenant_id=tenant_id,
                 include_revoked=include_revoked, limit=limit, offset=offset)
    return ApiKeyList(items=items, limit=limit, offset=offset)


@router.post("/apikeys", response_model=IssuedApiKey, status_code=201, tags=["apikeys"])
def create_api_key(body: ApiKeyCreate, principal: KeysAdmin, auth: Auth, response: Response,
                   idempotency_key: IdempotencyKey = None) -> IssuedApiKey:
    """Issue a key with scopes the caller holds; ``key`` is the secret, shown only here."""
    issued = _run(auth.issue_api_key, principal, body.name, body.scopes,
                  tenant_id=body.tenant_id, expires=body.expires,
                  idempotency_key=idempotency_key)
    response.headers["Cache-Control"] = "no-store"
    return issued


@router.get("/apikeys/{key_id}", response_model=ApiKeyView, tags=["apikeys"])
def get_api_key(key_id: int, principal: KeysAdmin, auth: Auth) -> ApiKeyView:
    """One API key, without its secret."""
    return _run(auth.get_api_key, principal, key_id)


@router.delete("/apikeys/{key_id}", response_model=ApiKeyView, tags=["apikeys"])
def revoke_api_key(key_id: int, principal: KeysAdmin, auth: Auth) -> ApiKeyView:
    """Revoke a key (at once, on every worker); revoking again changes nothing."""
    return _run(auth.revoke_api_key, principal, key_id)
