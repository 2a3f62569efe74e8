"""The auth router and JwtAuthenticator over HTTP (httpx ASGITransport), SQLite and PostgreSQL.

A small demo router (rows with a tenant_id, like every domain router's) shows the filtering
contract: ``principal.tenant_clause`` in the query, ``require(scope)`` on writes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.engine import Engine

from cloud.auth.principal import ROLE_SCOPES, CurrentPrincipal, Principal, Role, require
from tests.support.tenancy import READ_SCOPES, Tenancy, install_tenancy

_meta = MetaData()  # not the global SQLModel metadata: this table is the test's own
demo_rows = Table("auth_demo_rows", _meta, Column("id", Integer, primary_key=True),
                  Column("tenant_id", String(64), nullable=False),
                  Column("label", String(64), nullable=False))


def demo_router(engine: Engine) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/demo")
    def list_rows(principal: Annotated[Principal, Depends(require("orders:read"))]
                  ) -> list[str]:
        query = select(demo_rows.c.label).where(principal.tenant_clause(demo_rows.c.tenant_id))
        with engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    @router.post("/demo", status_code=201)
    def add_row(principal: Annotated[Principal, Depends(require("orders:write"))]
                ) -> dict[str, str]:
        return {"by": principal.subject}

    @router.get("/whoami")
    async def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"subject": principal.subject, "tenant": principal.tenant_id}

    return router


@pytest.fixture
def world_app(engine: Engine) -> tuple[FastAPI, Tenancy]:
    app = FastAPI()
    world = install_tenancy(app, engine, namespace="api")
    app.include_router(demo_router(engine))
    _meta.drop_all(engine)
    _meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(demo_rows), [
            {"tenant_id": world.a, "label": "a-1"}, {"tenant_id": world.a, "label": "a-2"},
            {"tenant_id": world.agent_a, "label": "agent-1"},
            {"tenant_id": world.b, "label": "b-1"}])
    return app, world


@pytest.fixture
async def client(world_app: tuple[FastAPI, Tenancy]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world_app[0]),
                                 base_url="http://test") as c:
        yield c


@pytest.fixture
def world(world_app: tuple[FastAPI, Tenancy]) -> Tenancy:
    return world_app[1]


def assert_401(r: httpx.Response, detail: str, scheme: str = "Bearer") -> None:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith(f'{scheme} realm="voltmesh"')
    body = r.json()
    assert set(body) == {"error", "detail"} and detail in body["detail"], body


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token",
                             data={"username": username, "password": password})


# -- login and tokens -----------------------------------------------------------------------

async def test_login_ok_and_me(client: httpx.AsyncClient, world: Tenancy) -> None:
    user = world.user("A", Role.FINANCE)
    r = await login(client, user.username, user.password)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert r.headers["Cache-Control"] == "no-store"
    me = await client.get("/api/v1/auth/me",
                          headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    data = me.json()
    assert data["subject"] == f"user:{user.user_id}" and data["username"] == user.username
    assert data["tenant_id"] == world.a and data["tenant_kind"] == "operator"
    assert data["role"] == "finance" and set(data["scopes"]) == ROLE_SCOPES[Role.FINANCE]
    assert data["visible_tenants"] == sorted([world.a, world.agent_a])
    # what Swagger UI (/docs) sends for the password flow
    swagger = await client.post("/api/v1/auth/token", data={
        "grant_type": "password", "username": user.username, "password": user.password,
        "scope": ""})
    assert swagger.status_code == 200, swagger.text
    wrong_grant = await client.post("/api/v1/auth/token", data={
        "grant_type": "client_credentials", "username": user.username,
        "password": user.password})
    assert wrong_grant.status_code == 422
    admin = await client.get("/api/v1/auth/me", headers=world.headers("platform",
                                                                       Role.PLATFORM_ADMIN))
    assert admin.json()["visible_tenants"] is None


async def test_login_bad_password_unknown_user_disabled(client: httpx.AsyncClient,
                                                        world: Tenancy) -> None:
    user = world.user("B", Role.MAINTAINER)
    r = await login(client, user.username, "not-the-password")
    assert_401(r, "incorrect username or password")
    assert r.json()["error"] == "invalid_grant"
    assert_401(await login(client, "ghost-user", "whatever-pw"), "incorrect username")
    missing = await client.post("/api/v1/auth/token", data={"username": user.username})
    assert missing.status_code == 422
    # the operator admin of B disables the user: login and the old token stop working
    r = await client.patch(f"/api/v1/staff/{user.user_id}", json={"disabled": True},
                           headers=world.headers("B"))
    assert r.status_code == 200 and r.json()["disabled"] is True
    r = await login(client, user.username, user.password)
    assert_401(r, "disabled")
    assert r.json()["error"] == "invalid_grant"
    assert_401(await client.get("/api/v1/auth/me", headers=user.headers), "disabled")


async def test_missing_expired_tampered_tokens(client: httpx.AsyncClient,
                                               world: Tenancy) -> None:
    r = await client.get("/api/v1/whoami")
    assert_401(r, "missing credentials")
    assert r.json()["error"] == "unauthorized"
    user = world.user("A", Role.READ_ONLY)
    expired = world.service.tokens.issue(user.user_id, world.a, "read_only", 0,
                                         now=time.time() - 7200, ttl=600)
    r = await client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {expired.token}"})
    assert_401(r, "token expired")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    head, payload, sig = user.token.split(".")
    forged = f"{head}.{payload[:-2]}{'AB' if payload[-2:] != 'AB' else 'CD'}.{sig}"
    assert_401(await client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {forged}"}),
               "invalid token")
    for header in ({"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                   {"Authorization": user.token}):
        r = await client.get("/api/v1/whoami", headers=header)
        assert r.status_code == 401, header
    both = {**user.headers, **world.key_headers("A")}
    assert_401(await client.get("/api/v1/whoami", headers=both), "not both")
    ok = await client.get("/api/v1/whoami", headers=user.headers)
    assert ok.status_code == 200 and ok.json()["tenant"] == world.a


async def test_change_own_password(client: httpx.AsyncClient, world: Tenancy) -> None:
    user = world.user("agentA", Role.MAINTAINER)
    r = await client.post("/api/v1/auth/password", headers=user.headers,
                          json={"current_password": user.password,
                                "new_password": "fresh-password-1"})
    assert r.status_code == 200, r.text
    new_headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=new_headers)).status_code == 200
    assert_401(await client.get("/api/v1/auth/me", headers=user.headers), "log in again")
    assert (await login(client, user.username, "fresh-password-1")).status_code == 200
    r = await client.post("/api/v1/auth/password", headers=new_headers,
                          json={"current_password": "wrong-one", "new_password": "x" * 10})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = await client.post("/api/v1/auth/password", headers=world.key_headers("A"),
                          json={"current_password": "a" * 10, "new_password": "b" * 10})
    assert r.status_code == 403 and "password" in r.json()["detail"]


# -- roles, scopes, API keys ----------------------------------------------------------------

async def test_role_scope_mapping(client: httpx.AsyncClient, world: Tenancy) -> None:
    for (label, role), user in world.users.items():
        me = await client.get("/api/v1/auth/me", headers=user.headers)
        assert me.status_code == 200
        assert set(me.json()["scopes"]) == ROLE_SCOPES[role], (label, role)
        write = await client.post("/api/v1/demo", headers=user.headers)
        expected = 201 if "orders:write" in ROLE_SCOPES[role] else 403
        assert write.status_code == expected, (label, role, write.text)
        if expected == 403:
            assert write.json() == {"error": "forbidden", "detail": "missing scope orders:write"}
    assert "orders:write" not in ROLE_SCOPES[Role.MAINTAINER]
    assert "orders:write" in ROLE_SCOPES[Role.FINANCE]


async def test_api_key_scopes_enforced_and_revocation(client: httpx.AsyncClient,
                                                      world: Tenancy) -> None:
    read_key = world.key("A", "read")
    for headers in ({"X-API-Key": read_key.key}, {"Authorization": f"ApiKey {read_key.key}"},
                    {"Authorization": f"Bearer {read_key.key}"}):
        r = await client.get("/api/v1/demo", headers=headers)
        assert r.status_code == 200 and r.json() == ["a-1", "a-2", "agent-1"], headers
    r = await client.post("/api/v1/demo", headers=read_key.headers)
    assert r.status_code == 403 and r.json()["detail"] == "missing scope orders:write"
    r = await client.post("/api/v1/demo", headers=world.key_headers("A", "full"))
    assert r.status_code == 201 and r.json()["by"] == f"apikey:{world.key('A').id}"
    r = await client.delete(f"/api/v1/apikeys/{read_key.id}", headers=world.headers("A"))
    assert r.status_code == 200 and r.json()["revoked"] is not None
    assert_401(await client.get("/api/v1/demo", headers=read_key.headers), "revoked", "ApiKey")
    assert_401(await client.get("/api/v1/demo", headers={"X-API-Key": "vm_nope"}),
               "malformed", "ApiKey")


async def test_api_key_crud(client: httpx.AsyncClient, world: Tenancy) -> None:
    admin_a = world.headers("A")
    r = await client.post("/api/v1/apikeys", headers=admin_a,
                          json={"name": "erp", "scopes": ["orders:read", "stats:read"],
                                "tenant_id": world.agent_a})
    assert r.status_code == 201, r.text
    key, view = r.json()["key"], r.json()["api_key"]
    assert key.startswith(f"vm_{view['prefix']}_") and view["tenant_id"] == world.agent_a
    got = await client.get("/api/v1/demo", headers={"X-API-Key": key})
    assert got.json() == ["agent-1"]
    listed = await client.get("/api/v1/apikeys", headers=admin_a)
    assert listed.status_code == 200
    assert key not in listed.text and key.rsplit("_", 1)[1] not in listed.text
    assert {k["tenant_id"] for k in listed.json()["items"]} == {world.a, world.agent_a}
    one = await client.get(f"/api/v1/apikeys/{view['id']}", headers=admin_a)
    assert one.status_code == 200 and "key" not in one.json()
    b_keys = await client.get(f"/api/v1/apikeys?tenant_id={world.b}", headers=admin_a)
    assert b_keys.status_code == 404
    r = await client.get(f"/api/v1/apikeys/{world.key('B').id}", headers=admin_a)
    assert r.status_code == 404
    r = await client.post("/api/v1/apikeys", headers=admin_a,
                          json={"name": "x", "scopes": ["tenants:admin"]})
    assert r.status_code == 403 and "tenants:admin" in r.json()["detail"]
    r = await client.post("/api/v1/apikeys", headers=admin_a,
                          json={"name": "x", "scopes": ["orders:fly"]})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    r = await client.get("/api/v1/apikeys", headers=world.headers("A", Role.FINANCE))
    assert r.status_code == 403  # finance has no apikeys:admin
    idem = {**admin_a, "Idempotency-Key": "erp-2"}
    first = await client.post("/api/v1/apikeys", headers=idem,
                              json={"name": "erp2", "scopes": ["orders:read"]})
    again = await client.post("/api/v1/apikeys", headers=idem,
                              json={"name": "erp2", "scopes": ["orders:read"]})
    assert first.status_code == 201 and again.status_code == 409
    assert str(first.json()["api_key"]["id"]) in again.json()["detail"]


# -- tenants and staff ----------------------------------------------------------------------

async def test_tenants_crud_and_operator_limits(client: httpx.AsyncClient,
                                                world: Tenancy) -> None:
    admin_a = world.headers("A")
    body = {"name": "Owner X", "kind": "station_owner", "parent_id": world.a}
    r = await client.post("/api/v1/tenants", headers={**admin_a, "Idempotency-Key": "t1"},
                          json=body)
    assert r.status_code == 201, r.text
    owner = r.json()
    r = await client.post("/api/v1/tenants", headers={**admin_a, "Idempotency-Key": "t1"},
                          json=body)
    assert r.status_code == 200 and r.json()["id"] == owner["id"]
    r = await client.post("/api/v1/tenants", headers=admin_a,
                          json={"name": "Op C", "kind": "operator", "parent_id": world.platform})
    assert r.status_code == 403
    r = await client.post("/api/v1/tenants", headers=admin_a,
                          json={"name": "Agent in B", "kind": "agent", "parent_id": world.b})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.patch(f"/api/v1/tenants/{world.b}", headers=admin_a,
                           json={"status": "suspended"})
    assert r.status_code == 404
    r = await client.delete(f"/api/v1/tenants/{world.b}", headers=admin_a)
    assert r.status_code == 404
    listed = await client.get("/api/v1/tenants", headers=admin_a)
    assert {t["id"] for t in listed.json()["items"]} == {world.a, world.agent_a, owner["id"]}
    agent = await client.get("/api/v1/tenants", headers=world.headers("agentA", Role.READ_ONLY))
    assert [t["id"] for t in agent.json()["items"]] == [world.agent_a]
    r = await client.get(f"/api/v1/tenants/{world.a}", headers=world.headers("agentA"))
    assert r.status_code == 404

    admin = world.headers("platform", Role.PLATFORM_ADMIN)
    r = await client.post("/api/v1/tenants", headers=admin,
                          json={"name": "Op C", "kind": "operator", "parent_id": world.platform,
                                "id": "op-c"})
    assert r.status_code == 201 and r.json()["id"] == "op-c"
    r = await client.patch("/api/v1/tenants/op-c", headers=admin, json={"status": "suspended"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    r = await client.delete("/api/v1/tenants/op-c", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    r = await client.delete(f"/api/v1/tenants/{world.a}", headers=admin)
    assert r.status_code == 409 and "below it" in r.json()["detail"]
    r = await client.post("/api/v1/tenants", headers=admin,
                          json={"name": "x", "kind": "operator", "parent_id": world.a})
    assert r.status_code == 400
    r = await client.post("/api/v1/tenants", headers=admin, json={"name": "x", "kind": "moon"})
    assert r.status_code == 422


async def test_staff_crud_and_role_ceiling(client: httpx.AsyncClient, world: Tenancy) -> None:
    admin_a = world.headers("A")
    r = await client.post("/api/v1/staff", headers=admin_a,
                          json={"username": "new-root", "password": "password-123",
                                "role": "platform_admin"})
    assert r.status_code == 403 and "platform_admin" in r.json()["detail"]
    r = await client.post("/api/v1/staff", headers=admin_a,
                          json={"username": "spy", "password": "password-123",
                                "role": "read_only", "tenant_id": world.b})
    assert r.status_code == 404
    r = await client.post("/api/v1/staff", headers=admin_a,
                          json={"username": "agent.cashier", "password": "password-123",
                                "role": "finance", "tenant_id": world.agent_a})
    assert r.status_code == 201, r.text
    cashier = r.json()
    assert "password" not in r.text and cashier["tenant_id"] == world.agent_a
    r = await client.post("/api/v1/staff", headers=admin_a,
                          json={"username": "Agent.Cashier", "password": "password-123",
                                "role": "finance"})
    assert r.status_code == 409
    r = await client.post("/api/v1/staff", headers=admin_a,
                          json={"username": "weak", "password": "short", "role": "finance"})
    assert r.status_code == 400 and "at least 8" in r.json()["detail"]
    r = await login(client, "agent.cashier", "password-123")
    assert r.status_code == 200
    cashier_headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await client.get("/api/v1/demo", headers=cashier_headers)).json() == ["agent-1"]

    listed = await client.get("/api/v1/staff", headers=admin_a)
    assert {u["tenant_id"] for u in listed.json()["items"]} == {world.a, world.agent_a}
    assert "password" not in listed.text
    r = await client.get(f"/api/v1/staff/{world.user('B').user_id}", headers=admin_a)
    assert r.status_code == 404
    r = await client.patch(f"/api/v1/staff/{cashier['id']}", headers=admin_a,
                           json={"role": "platform_admin"})
    assert r.status_code == 403
    r = await client.patch(f"/api/v1/staff/{world.user('A').user_id}", headers=admin_a,
                           json={"disabled": True})
    assert r.status_code == 403 and "yourself" in r.json()["detail"]
    r = await client.get("/api/v1/staff", headers=world.headers("A", Role.MAINTAINER))
    assert r.status_code == 403
    r = await client.delete(f"/api/v1/staff/{cashier['id']}", headers=admin_a)
    assert r.status_code == 204
    assert_401(await client.get("/api/v1/auth/me", headers=cashier_headers), "no longer exists")


async def test_tenant_filtering_for_every_kind_of_caller(client: httpx.AsyncClient,
                                                         world: Tenancy) -> None:
    expected = {"A": ["a-1", "a-2", "agent-1"], "agentA": ["agent-1"], "B": ["b-1"],
                "platform": ["a-1", "a-2", "agent-1", "b-1"]}
    for label, rows in expected.items():
        role = Role.PLATFORM_ADMIN if label == "platform" else Role.READ_ONLY
        r = await client.get("/api/v1/demo", headers=world.headers(label, role))
        assert r.json() == rows, label
        r = await client.get("/api/v1/demo", headers=world.key_headers(label, "read"))
        assert r.json() == rows, label
    assert world.key("B", "read").scopes == READ_SCOPES


async def test_openapi_declares_security_schemes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["OAuth2Password"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": schemes["ApiKey"]["description"]}
    assert {"OAuth2Password": []} in spec["paths"]["/api/v1/demo"]["get"]["security"]
    assert {"ApiKey": []} in spec["paths"]["/api/v1/tenants"]["get"]["security"]
    assert "security" not in spec["paths"]["/api/v1/auth/token"]["post"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_database_failure_is_503_not_401(client: httpx.AsyncClient, world: Tenancy,
                                               engine: Engine) -> None:
    headers = world.headers("A", Role.READ_ONLY)
    assert (await client.get("/api/v1/whoami", headers=headers)).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE auth_revision"))
    r = await client.get("/api/v1/whoami", headers=headers)
    assert r.status_code == 503 and r.json()["error"] == "store_unavailable"
    assert r.headers["Retry-After"] == "5"
