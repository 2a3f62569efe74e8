"""The payments HTTP API: top-up with QR code, the provider callback over HTTP (repeated and
concurrent), refunds, scopes and tenant filtering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from cloud.accounts import AccountService
from cloud.accounts.api import router as accounts_router
from cloud.auth.principal import ROLE_SCOPES, FixedAuthenticator, Principal, Role
from cloud.payments import PaymentService, SimulatedProvider
from cloud.payments.api import router

FINANCE = Principal(subject="user:fin", tenant_id="op1", role=Role.FINANCE,
                    scopes=ROLE_SCOPES[Role.FINANCE], visible_tenants=frozenset({"op1"}))
MAINTAINER = Principal(subject="user:tech", tenant_id="op1", role=Role.MAINTAINER,
                       scopes=ROLE_SCOPES[Role.MAINTAINER], visible_tenants=frozenset({"op1"}))


def make_app(payments: PaymentService, principal: Principal) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.include_router(accounts_router)
    app.state.payments = payments
    app.state.accounts = payments.accounts
    app.state.authenticator = FixedAuthenticator(principal)
    return app


@pytest.fixture
async def client(payments: PaymentService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(payments, FINANCE))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_topup_notify_refund_over_http(client: httpx.AsyncClient,
                                             accounts: AccountService,
                                             wechat: SimulatedProvider) -> None:
    user = accounts.create_user("op1", "13800000400")
    body = {"user_id": user.id, "amount": "66.00", "provider": "wechat"}
    assert (await client.post("/api/v1/payments/topups", json=body)).status_code == 400
    made = await client.post("/api/v1/payments/topups", json=body,
                             headers={"Idempotency-Key": "app-1"})
    assert made.status_code == 201, made.text
    payment = made.json()
    assert payment["status"] == "pending" and payment["amount"] == "66.00"
    assert payment["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    same = await client.post("/api/v1/payments/topups", json=body,
                             headers={"Idempotency-Key": "app-1"})
    assert same.json()["id"] == payment["id"]

    first = wechat.pay(payment["out_trade_no"])
    notifies = [first] + [wechat.notify(payment["out_trade_no"]) for _ in range(2)]
    for sent in notifies:  # delivered three times, one after the other
        ack = await client.post("/api/v1/payments/notify/wechat", content=sent.body,
                                headers=sent.headers)
        assert ack.status_code == 200 and b"SUCCESS" in ack.content
        assert ack.headers["content-type"].startswith("application/xml")
    burst = [wechat.notify(payment["out_trade_no"]) for _ in range(5)]
    acks = await asyncio.gather(*(client.post("/api/v1/payments/notify/wechat",
                                              content=s.body, headers=s.headers)
                                  for s in burst))  # and five at once
    assert [a.status_code for a in acks] == [200] * 5
    wallet = (await client.get(f"/api/v1/users/{user.id}/wallet")).json()
    assert wallet["balance"] == "66.00" and len(wallet["entries"]) == 1
    shown = (await client.get(f"/api/v1/payments/{payment['id']}")).json()
    assert shown["status"] == "paid" and shown["provider_txn_id"]

    forged = wechat.notify(payment["out_trade_no"], key="0123456789abcdef0123456789abcdef")
    refused = await client.post("/api/v1/payments/notify/wechat", content=forged.body,
                                headers=forged.headers)
    assert refused.status_code == 401 and b"FAIL" in refused.content
    huge = await client.post("/api/v1/payments/notify/wechat", content=b"a=" + b"x" * 70000)
    assert huge.status_code == 413

    refund = await client.post(f"/api/v1/payments/{payment['id']}/refunds",
                               json={"amount": "16.00", "reason": "overpaid"},
                               headers={"Idempotency-Key": "rf-1"})
    assert refund.status_code == 201 and refund.json()["status"] == "succeeded"
    too_much = await client.post(f"/api/v1/payments/{payment['id']}/refunds",
                                 json={"amount": "60.00"}, headers={"Idempotency-Key": "rf-2"})
    assert too_much.status_code == 409 and too_much.json()["error"] == "conflict"
    shown = (await client.get(f"/api/v1/payments/{payment['id']}")).json()
    assert shown["status"] == "partially_refunded" and shown["refunded_amount"] == "16.00"
    assert [r["amount"] for r in shown["refunds"]] == ["16.00"]
    assert accounts.balance(user.id) == 50
    assert accounts.reconcile(user.id)
    synced = await client.post(f"/api/v1/payments/{payment['id']}/sync")
    assert synced.json()["status"] == "partially_refunded"


async def test_tenants_scopes_and_errors(client: httpx.AsyncClient, payments: PaymentService,
                                         accounts: AccountService) -> None:
    theirs = accounts.create_user("op2", "13800000401")
    hidden = payments.create_topup(theirs.id, "10", "wechat", key="k")
    mine = accounts.create_user("op1", "13800000402")
    shown = payments.create_topup(mine.id, "10", "wechat", key="k")
    listed = (await client.get("/api/v1/payments")).json()
    assert [p["id"] for p in listed["items"]] == [shown.id]
    assert (await client.get(f"/api/v1/payments/{hidden.id}")).status_code == 404
    refused = await client.post("/api/v1/payments/topups",
                                json={"user_id": theirs.id, "amount": "10", "provider": "wechat"},
                                headers={"Idempotency-Key": "x"})
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    floaty = await client.post("/api/v1/payments/topups",
                               json={"user_id": mine.id, "amount": 10.5, "provider": "wechat"},
                               headers={"Idempotency-Key": "y"})
    assert floaty.status_code == 422 and floaty.json()["error"] == "invalid_request"
    assert floaty.json()["detail"].startswith("amount: "), floaty.json()
    unknown = await client.post("/api/v1/payments/topups",
                                json={"user_id": mine.id, "amount": "10", "provider": "paypal"},
                                headers={"Idempotency-Key": "z"})
    assert unknown.status_code == 400 and "paypal" in unknown.json()["detail"]
    unpaid = await client.post(f"/api/v1/payments/{shown.id}/refunds", json={},
                               headers={"Idempotency-Key": "r"})
    assert unpaid.status_code == 409
    assert (await client.post("/api/v1/payments/notify/paypal", content=b"x")).status_code == 404
    transport = httpx.ASGITransport(app=make_app(payments, MAINTAINER))  # no money scopes
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as tech:
        assert (await tech.get("/api/v1/payments")).status_code == 200  # wallets:read
        denied = await tech.post("/api/v1/payments/topups",
                                 json={"user_id": mine.id, "amount": "10", "provider": "wechat"},
                                 headers={"Idempotency-Key": "t"})
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
        # the provider callback needs no principal: its signature is the authentication
        ack = await tech.post("/api/v1/payments/notify/wechat", content=b"a=b")
        assert ack.status_code == 401
