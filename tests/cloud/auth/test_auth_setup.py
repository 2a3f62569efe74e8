"""Start-up wiring: setup_auth refuses the example secret, bootstraps the admin, serves logins;
and the tenancy helper other routers' tests use."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cloud.auth.config import AuthConfig, BootstrapAdmin
from cloud.auth.errors import AuthConfigError
from cloud.auth.principal import SCOPES, Role
from cloud.auth.service import AuthService
from cloud.auth.setup import setup_auth
from tests.support.tenancy import FAST_HASH, TENANT_LABELS, build_tenancy, fast_auth_config


@pytest.fixture(autouse=True)
def _no_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py sets the auth variables for the whole session; start-up is tested here
    as on a machine where they are not set (a test that wants them sets them itself)."""
    monkeypatch.delenv("VOLTMESH_JWT_SECRET", raising=False)
    monkeypatch.delenv("VOLTMESH_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("VOLTMESH_ADMIN_USERNAME", raising=False)


def test_setup_refuses_the_example_secret(engine: Engine) -> None:
    prod = AuthConfig(password_hash=FAST_HASH,
                      bootstrap=BootstrapAdmin(password="first-admin-pw"))
    with pytest.raises(AuthConfigError, match="example secret"):
        setup_auth(FastAPI(), engine, prod)
    with pytest.raises(AuthConfigError, match="example secret"):
        AuthService(engine, prod, apply_env=False)


def test_setup_takes_the_secret_from_the_environment(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLTMESH_JWT_SECRET", "from-env-" + "z" * 40)
    monkeypatch.setenv("VOLTMESH_ADMIN_PASSWORD", "env-admin-pw")
    service = setup_auth(FastAPI(), engine, AuthConfig(password_hash=FAST_HASH))
    assert service.config.jwt_secret == "from-env-" + "z" * 40
    token, user = service.login("admin", "env-admin-pw")
    assert user.role == "platform_admin"
    assert service.principal_for_token(token.token).scopes == SCOPES


async def test_first_start_admin_logs_in_over_http(engine: Engine) -> None:
    app = FastAPI()
    config = fast_auth_config(bootstrap={"username": "root", "password": "root-password"})
    setup_auth(app, engine, config)
    setup_auth(FastAPI(), engine, config)  # a second start (or worker): no second admin
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        r = await client.post("/api/v1/auth/token",
                              data={"username": "root", "password": "root-password"})
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        staff = await client.get("/api/v1/staff", headers=headers)
        assert [u["username"] for u in staff.json()["items"]] == ["root"]
        # the admin creates the first operator and its admin
        op = await client.post("/api/v1/tenants", headers=headers,
                               json={"name": "Op", "kind": "operator",
                                     "parent_id": staff.json()["items"][0]["tenant_id"]})
        assert op.status_code == 201
        r = await client.post("/api/v1/staff", headers=headers,
                              json={"username": "op-admin", "password": "op-password",
                                    "role": "operator_admin", "tenant_id": op.json()["id"]})
        assert r.status_code == 201


def test_tenancy_helper_builds_isolated_worlds(engine: Engine) -> None:
    service = AuthService(engine, fast_auth_config(), apply_env=False)
    one = build_tenancy(service)
    two = build_tenancy(service)  # same database: reuses the platform, new operators
    assert one.platform == two.platform and one.a != two.a
    for label in TENANT_LABELS:
        roles = (Role.PLATFORM_ADMIN, Role.READ_ONLY) if label == "platform" else \
            (Role.OPERATOR_ADMIN, Role.FINANCE, Role.MAINTAINER, Role.READ_ONLY)
        for role in roles:
            principal = one.principal(label, role)
            assert principal.tenant_id == one.tenant(label) and principal.role is role
            user = one.user(label, role)
            assert service.login(user.username, user.password)[1].id == user.user_id
        for kind in ("full", "read"):
            key = service.principal_for_api_key(one.key(label, kind).key)
            assert key.tenant_id == one.tenant(label) and key.scopes == one.key(label, kind).scopes
    assert one.principal("A").visible_tenants == {one.a, one.agent_a}
    assert not one.principal("A").sees(two.a)
    assert one.headers("B", Role.FINANCE)["Authorization"].startswith("Bearer ")
    assert one.key_headers("B")["X-API-Key"].startswith("vm_")
