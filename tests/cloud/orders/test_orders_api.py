"""The orders router through FastAPI (httpx ASGITransport, FixedAuthenticator): scopes, tenant
filtering, detail, CSV, refunds with Idempotency-Key, error bodies."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from fastapi import FastAPI

from cloud.auth.principal import ROLE_SCOPES, FixedAuthenticator, Principal, Role
from cloud.orders.api import router
from cloud.orders.service import OrderService
from tests.cloud.orders.orders_world import World, build_world, ocpp_session, ykc_session


def app_for(service: OrderService | None, principal: Principal) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    if service is not None:
        app.state.orders = service
    app.state.authenticator = FixedAuthenticator(principal)
    return app


def who(w: World, role: Role = Role.FINANCE) -> Principal:
    return Principal(subject=f"user:{role.value}", tenant_id=w.tenant, role=role,
                     scopes=ROLE_SCOPES[role], visible_tenants=frozenset({w.tenant}))


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def worlds(engine) -> tuple[World, World]:  # type: ignore[no-untyped-def]
    a, b = build_world(engine), build_world(engine)
    a.service.process(ykc_session(a, "AA" * 16))
    a.service.process(ocpp_session(a, "7"))
    b.service.process(ykc_session(b, "BB" * 16))
    return a, b


async def test_list_detail_and_tenant_isolation(worlds: tuple[World, World]) -> None:
    a, b = worlds
    async with client(app_for(a.service, who(a))) as http:
        r = await http.get("/api/v1/orders", params={"status": "settled"})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 2 and {i["tenant_id"] for i in body["items"]} == {a.tenant}
        ykc = next(i for i in body["items"] if i["session_id"] == "AA" * 16)
        assert ykc["total_amount"] == "69.87" and ykc["energy"] == "51.2345"
        r = await http.get(f"/api/v1/orders/{ykc['id']}")
        assert r.status_code == 200
        tiers = {t["tier"]: t for t in r.json()["tiers"]}
        assert tiers["peak"]["energy"] == "30.9228" and tiers["peak"]["total_amount"] == "55.66"
        assert tiers["valley"]["electricity_amount"] == "6.09"
        assert r.json()["events"][0]["name"] == "sessionStarted"
        other = b.order(b.ykc_gw, b.ykc_device, "BB" * 16)
        r = await http.get(f"/api/v1/orders/{other.id}")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        r = await http.get("/api/v1/orders", params={"gw": b.ykc_gw})
        assert r.json()["total"] == 0
        r = await http.get("/api/v1/orders", params={"status": "nonsense"})
        assert r.status_code == 422


async def test_csv_export(worlds: tuple[World, World]) -> None:
    a, _ = worlds
    async with client(app_for(a.service, who(a))) as http:
        r = await http.get("/api/v1/orders.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert sorted(r["total_amount"] for r in rows) == ["69.65", "69.87"]
        assert {r["tenant_id"] for r in rows} == {a.tenant}


async def test_refund_needs_scope_key_and_is_idempotent(worlds: tuple[World, World]) -> None:
    a, _ = worlds
    order = a.order(a.ykc_gw, a.ykc_device, "AA" * 16)
    url = f"/api/v1/orders/{order.id}/refund"
    async with client(app_for(a.service, who(a, Role.READ_ONLY))) as http:
        r = await http.post(url, json={"amount": "1.00", "reason": "x"},
                            headers={"Idempotency-Key": "k"})
        assert r.status_code == 403
    async with client(app_for(a.service, who(a))) as http:
        r = await http.post(url, json={"amount": "1.00", "reason": "late start"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
        r = await http.post(url, json={"amount": 1.5, "reason": "float"},
                            headers={"Idempotency-Key": "f"})
        assert r.status_code == 400
        r = await http.post(url, json={"amount": "1.00", "reason": "late start"},
                            headers={"Idempotency-Key": "r-1"})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["refund"]["amount"] == "1.00" and first["order"]["status"] == "refunded"
        r = await http.post(url, json={"amount": "1.00", "reason": "late start"},
                            headers={"Idempotency-Key": "r-1"})
        assert r.status_code == 200 and r.json()["refund"]["id"] == first["refund"]["id"]
        r = await http.post(url, json={"amount": "2.00", "reason": "late start"},
                            headers={"Idempotency-Key": "r-1"})
        assert r.status_code == 409 and r.json()["error"] == "idempotency_conflict"
        r = await http.post(url, json={"amount": "500.00", "reason": "too much"},
                            headers={"Idempotency-Key": "r-2"})
        assert r.status_code == 409 and r.json()["error"] == "refund_rejected"
        r = await http.post(url, json={"reason": "the rest"}, headers={"Idempotency-Key": "r-3"})
        assert r.status_code == 200 and r.json()["refund"]["amount"] == "68.87"
    refunds = [e for e in a.accounts.ledger(a.user_id, limit=50) if e.kind == "refund"]
    assert sorted(str(e.amount) for e in refunds) == ["1.00", "68.87"]


async def test_without_a_service_the_api_says_so(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    async with client(app_for(None, who(w))) as http:
        r = await http.get("/api/v1/orders")
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
