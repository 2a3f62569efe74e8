"""The accounts HTTP API: scopes, tenant filtering, error bodies, money as strings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from cloud.accounts import AccountService
from cloud.accounts.api import router
from cloud.auth.principal import ROLE_SCOPES, FixedAuthenticator, Principal, Role

OPERATOR = Principal(subject="user:op1-admin", tenant_id="op1", role=Role.OPERATOR_ADMIN,
                     scopes=ROLE_SCOPES[Role.OPERATOR_ADMIN],
                     visible_tenants=frozenset({"op1", "op1-agent"}))
READER = Principal(subject="apikey:r", tenant_id="op1", role=None,
                   scopes=frozenset({"users:read", "wallets:read"}),
                   visible_tenants=frozenset({"op1"}))
PLATFORM = Principal(subject="user:root", tenant_id="platform", role=Role.PLATFORM_ADMIN,
                     scopes=ROLE_SCOPES[Role.PLATFORM_ADMIN], visible_tenants=None)


def make_app(accounts: AccountService, principal: Principal) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.accounts = accounts
    app.state.authenticator = FixedAuthenticator(principal)
    return app


@pytest.fixture
async def client(accounts: AccountService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(accounts, OPERATOR))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def client_as(accounts: AccountService, principal: Principal) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(accounts, principal)),
                             base_url="http://test")


async def test_users_and_wallet(client: httpx.AsyncClient, accounts: AccountService) -> None:
    made = await client.post("/api/v1/users", json={"phone": "138 0000 0300", "name": "Wu"})
    assert made.status_code == 201, made.text
    user = made.json()
    assert user["tenant_id"] == "op1" and user["phone"] == "13800000300"
    assert "app_token" not in user
    dup = await client.post("/api/v1/users", json={"phone": "13800000300"})
    assert dup.status_code == 409 and dup.json()["error"] == "conflict"
    found = await client.get("/api/v1/users", params={"phone": "138000003"})
    assert [u["id"] for u in found.json()["items"]] == [user["id"]]

    adjust = {"amount": "12.50", "note": "goodwill credit"}
    missing_key = await client.post(f"/api/v1/users/{user['id']}/wallet/adjust", json=adjust)
    assert missing_key.status_code == 400 and "Idempotency-Key" in missing_key.json()["detail"]
    headers = {"Idempotency-Key": "fin-2024-001"}
    first = await client.post(f"/api/v1/users/{user['id']}/wallet/adjust", json=adjust,
                              headers=headers)
    again = await client.post(f"/api/v1/users/{user['id']}/wallet/adjust", json=adjust,
                              headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == again.json()
    assert first.json()["balance"] == "12.50" and first.json()["entry"]["amount"] == "12.50"
    other = await client.post(f"/api/v1/users/{user['id']}/wallet/adjust",
                              json={"amount": "13.00", "note": "x"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    floaty = await client.post(f"/api/v1/users/{user['id']}/wallet/adjust",
                               json={"amount": 12.5, "note": "x"}, headers={"Idempotency-Key": "f"})
    assert floaty.status_code == 422 and floaty.json()["error"] == "invalid_request"
    assert floaty.json()["detail"].startswith("amount: "), floaty.json()
    overdrawn = await client.post(f"/api/v1/users/{user['id']}/wallet/adjust",
                                  json={"amount": "-20", "note": "x"},
                                  headers={"Idempotency-Key": "neg"})
    assert overdrawn.status_code == 402 and overdrawn.json()["error"] == "insufficient_funds"
    wallet = await client.get(f"/api/v1/users/{user['id']}/wallet")
    assert wallet.json()["balance"] == "12.50" and len(wallet.json()["entries"]) == 1
    assert "by user:op1-admin" in wallet.json()["entries"][0]["note"]
    assert accounts.reconcile(user["id"])

    closing = await client.delete(f"/api/v1/users/{user['id']}")
    assert closing.status_code == 409 and closing.json()["error"] == "invalid_state"
    token = await client.post(f"/api/v1/users/{user['id']}/app-token")
    assert len(token.json()["app_token"]) == 16
    patched = await client.patch(f"/api/v1/users/{user['id']}", json={"status": "disabled"})
    assert patched.json()["status"] == "disabled"
    unknown = await client.patch(f"/api/v1/users/{user['id']}", json={"colour": "red"})
    assert unknown.status_code == 422


async def test_tenant_filtering(client: httpx.AsyncClient, accounts: AccountService) -> None:
    theirs = accounts.create_user("op2", "13800000301")
    accounts.issue_card("op2", "0FF2", user_id=theirs.id)
    agent = accounts.create_user("op1-agent", "13800000302")
    mine = (await client.post("/api/v1/users", json={"phone": "13800000303"})).json()
    listed = await client.get("/api/v1/users")
    assert {u["id"] for u in listed.json()["items"]} == {mine["id"], agent.id}
    for path in (f"/api/v1/users/{theirs.id}", f"/api/v1/users/{theirs.id}/wallet"):
        hidden = await client.get(path)
        assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    sneaky = await client.post(f"/api/v1/users/{theirs.id}/wallet/adjust",
                               json={"amount": "100", "note": "x"},
                               headers={"Idempotency-Key": "k"})
    assert sneaky.status_code == 404
    assert accounts.balance(theirs.id) == 0
    assert (await client.get("/api/v1/cards")).json()["items"] == []
    foreign = await client.post("/api/v1/users", json={"phone": "13800000304",
                                                       "tenant_id": "op2"})
    assert foreign.status_code == 403 and foreign.json()["error"] == "forbidden"
    ok = await client.post("/api/v1/users", json={"phone": "13800000305",
                                                  "tenant_id": "op1-agent"})
    assert ok.status_code == 201
    async with client_as(accounts, PLATFORM) as root:
        everyone = await root.get("/api/v1/users", params={"limit": 100})
        assert len(everyone.json()["items"]) == 4


async def test_scopes(accounts: AccountService) -> None:
    user = accounts.create_user("op1", "13800000306")
    async with client_as(accounts, READER) as reader:
        assert (await reader.get(f"/api/v1/users/{user.id}")).status_code == 200
        assert (await reader.get(f"/api/v1/users/{user.id}/wallet")).status_code == 200
        denied = await reader.post("/api/v1/users", json={"phone": "13800000307"})
        assert denied.status_code == 403
        assert denied.json() == {"error": "forbidden", "detail": "missing scope users:write"}
        assert (await reader.get("/api/v1/cards")).status_code == 403
        assert (await reader.post(f"/api/v1/users/{user.id}/wallet/adjust",
                                  json={"amount": "1", "note": "x"},
                                  headers={"Idempotency-Key": "k"})).status_code == 403
    app = FastAPI()
    app.include_router(router)  # no authenticator, no service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as anonymous:
        refused = await anonymous.get("/api/v1/users")
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"


async def test_cards_and_vehicles(client: httpx.AsyncClient, accounts: AccountService) -> None:
    user = (await client.post("/api/v1/users", json={"phone": "13800000308"})).json()
    card = await client.post("/api/v1/cards", json={"physical_no": "d14b0a54",
                                                    "logical_no": "7001"})
    assert card.status_code == 201, card.text
    card_id = card.json()["id"]
    assert card.json()["physical_no"] == "00000000D14B0A54"
    bad = await client.post("/api/v1/cards", json={"physical_no": "XYZ"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    bound = await client.post(f"/api/v1/cards/{card_id}/bind", json={"user_id": user["id"]})
    assert bound.json()["user_id"] == user["id"]
    for action, status in (("freeze", "frozen"), ("unfreeze", "active"), ("lost", "lost")):
        moved = await client.post(f"/api/v1/cards/{card_id}/{action}")
        assert moved.json()["status"] == status
    stuck = await client.post(f"/api/v1/cards/{card_id}/unfreeze")
    assert stuck.status_code == 409 and stuck.json()["error"] == "invalid_state"
    by_number = await client.get("/api/v1/cards", params={"number": "7001"})
    assert [c["id"] for c in by_number.json()["items"]] == [card_id]
    assert (await client.delete(f"/api/v1/cards/{card_id}")).status_code == 409
    await client.post(f"/api/v1/cards/{card_id}/unbind")
    assert (await client.delete(f"/api/v1/cards/{card_id}")).status_code == 204
    assert (await client.get(f"/api/v1/cards/{card_id}")).status_code == 404

    car = await client.post("/api/v1/vehicles", json={"user_id": user["id"],
                                                     "vin": "LSVAU2180N2123456",
                                                     "plate": "苏AD12345"})
    assert car.status_code == 201 and car.json()["verified"] is False
    car_id = car.json()["id"]
    verified = await client.post(f"/api/v1/vehicles/{car_id}/verify", json={})
    assert verified.json()["verified"] is True
    cleared = await client.patch(f"/api/v1/vehicles/{car_id}", json={"plate": None})
    assert cleared.json()["plate"] is None and cleared.json()["verified"] is True
    moved = await client.patch(f"/api/v1/vehicles/{car_id}", json={"vin": "LSVAU2180N2123457"})
    assert moved.json()["verified"] is False
    listed = await client.get("/api/v1/vehicles", params={"user_id": user["id"]})
    assert listed.json()["count"] == 1
    assert (await client.delete(f"/api/v1/vehicles/{car_id}")).status_code == 204
