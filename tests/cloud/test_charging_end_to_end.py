"""Issue #7 acceptance, end to end with real parts.

An embedded broker, a CloudService (shipped rules, SQLite), a real EdgeGateway with the YKC
adapter and a simulated YKC pile behind a proxy that loses the pile's first 0x40 confirmation.
Everything is set up through the north-bound API: an operator tenant, a station with a
尖峰平谷 tariff, a YKC charger, a user with a card and a topped-up wallet. Then: remote start
through the commands API -> charging -> remote stop -> exactly ONE settled order whose per-tier
amounts follow from its tier energies and the tariff's rates, the wallet debited once, the ledger
reconciling; the pile re-sends its transaction record (first confirmation lost) and a duplicate
stop arrives: still one order, one debit.
"""

from __future__ import annotations

import asyncio
import os
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from cloud.accounts.models import LedgerEntry
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.orders.config import OrdersConfig
from cloud.orders.models import Order
from cloud.rules.config import RulesConfig
from cloud.service import CloudService
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.ykc import PileConfig, SimPile
from tests.edge.test_ykc_end_to_end import DropFirstConfirm
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually

REPO = Path(__file__).resolve().parents[2]
GW = "gwA"  # a gateway user of the shipped Mosquitto config (tests/support/mosquitto.py)
PILE = "32010200000707"
CONNECTOR = PILE + "01"
CODE = "E2E0707"
RATES = {"tip": (Decimal("1.2"), Decimal("0.8")), "peak": (Decimal("1.0"), Decimal("0.7")),
         "flat": (Decimal("0.7"), Decimal("0.6")), "valley": (Decimal("0.3"), Decimal("0.4"))}
TARIFF = {"tiers": {t: {"energy": str(e), "service": str(s)} for t, (e, s) in RATES.items()},
          "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                      {"start": "08:00", "end": "10:00", "tier": "flat"},
                      {"start": "10:00", "end": "12:00", "tier": "tip"},
                      {"start": "12:00", "end": "18:00", "tier": "peak"},
                      {"start": "18:00", "end": "21:00", "tier": "tip"},
                      {"start": "21:00", "end": "24:00", "tier": "flat"}]}
TOP_UP = Decimal("200.00")
CENT = Decimal("0.01")


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.mark.mosquitto
async def test_remote_start_stop_bills_exactly_one_order(mosquitto: Mosquitto,
                                                         tmp_path: Path) -> None:
    cloud = CloudService(CloudConfig(
        worker_id="e2e", mqtt=CloudMqttConfig(
            port=mosquitto.port, username="cloud", password=USERS["cloud"],
            client_id="e2e-cloud", shared_group=None),
        database_url=f"sqlite:///{tmp_path / 'cloud.db'}", http=HttpConfig(port=0),
        flush_interval=0.1, rules=RulesConfig(paths=[str(REPO / "config" / "rules")]),
        orders=OrdersConfig(settle_grace=0.5, settle_interval=0.2)), base_dir=REPO)
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=GW, mqtt=MqttConfig(port=mosquitto.port, password=USERS["gwA"], backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=2))))
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run())]
    pile: SimPile | None = None
    proxy_server: asyncio.Server | None = None
    try:
        await asyncio.wait_for(cloud.started.wait(), 30)
        await eventually(cloud.consumer.connected.is_set)
        await eventually(gateway.ctx.cloud_connected.is_set)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cloud.http_port}",
                                     timeout=60) as http:
            token = _ok(await http.post("/api/v1/auth/token", data={
                "username": "admin", "password": os.environ["VOLTMESH_ADMIN_PASSWORD"]}))
            admin = {"Authorization": f"Bearer {token['access_token']}"}
            me = _ok(await http.get("/api/v1/auth/me", headers=admin))
            tenant = _ok(await http.post("/api/v1/tenants", headers=admin, json={
                "name": "Operator E2E", "kind": "operator", "parent_id": me["tenant_id"]}),
                201)["id"]
            station = _ok(await http.post("/api/v1/stations", headers=admin, json={
                "name": "E2E station", "lat": 31.23, "lon": 121.47, "tz": "Asia/Shanghai",
                "tenant_id": tenant}), 201)["id"]
            _ok(await http.post(f"/api/v1/stations/{station}/tariffs", headers=admin, json={
                "doc": TARIFF, "name": "尖峰平谷"}), 201)
            charger = _ok(await http.post("/api/v1/chargers", headers=admin, json={
                "station_id": station, "gateway_id": GW, "device_id": PILE, "protocol": "ykc",
                "kind": "dc", "rated_kw": "60", "connector_count": 1, "code": CODE}), 201)
            assert charger["push"]["status"] == "published", charger
            user = _ok(await http.post("/api/v1/users", headers=admin, json={
                "phone": "13800000707", "name": "Driver", "tenant_id": tenant}), 201)["id"]
            _ok(await http.post("/api/v1/cards", headers=admin, json={
                "physical_no": "D14B0A54", "user_id": user, "tenant_id": tenant}), 201)
            _ok(await http.post(f"/api/v1/users/{user}/wallet/adjust", json={
                "amount": str(TOP_UP), "note": "top-up"},
                headers={**admin, "Idempotency-Key": "topup-1"}))

            # the gateway learns the pile and the tariff from the pushed documents
            ykc = gateway.adapters[0]
            await eventually(ykc.ready.is_set)  # type: ignore[attr-defined]
            proxy = DropFirstConfirm(ykc.port)  # type: ignore[attr-defined]
            proxy_server = await proxy.start()
            pile = SimPile(PileConfig(pile_code=PILE, guns=1, heartbeat_interval=1.0,
                                      realtime_interval=0.3, record_retry_interval=1.0,
                                      plug_delay=None, power_kw=30.0, seed=7),
                           port=proxy.port)
            pile.start()
            await asyncio.wait_for(pile.logged_in.wait(), 20)
            await asyncio.wait_for(pile.model_loaded.wait(), 20)

            start = _ok(await http.post("/api/v1/commands/start", json={
                "code": CODE, "userId": user}, headers={**admin, "Idempotency-Key": "s-1"}))
            assert start["state"] == "succeeded", start
            trade = start["reply"]["sessionId"]
            again = _ok(await http.post("/api/v1/commands/start", json={
                "code": CODE, "userId": user}, headers={**admin, "Idempotency-Key": "s-1"}))
            assert again["id"] == start["id"]  # a retried POST is the same command

            def charged() -> bool:
                entry = pile.entry(trade) if pile is not None else None
                return entry is not None and entry.total_energy_kwh4 > 500  # 0.05 kWh, ~6 s

            await eventually(charged, timeout=90)
            await eventually(lambda: _order_status(cloud, trade) == "charging", timeout=90)

            stop = _ok(await http.post("/api/v1/commands/stop", json={
                "code": CODE, "userId": user}, headers={**admin, "Idempotency-Key": "t-1"}))
            assert stop["state"] == "succeeded", stop
            # the pile re-sends its record until confirmed; the first confirmation is lost
            await asyncio.wait_for(pile.record_confirmed(trade).wait(), 30)
            entry = pile.entry(trade)
            assert entry is not None and entry.record_sends >= 2 and proxy.dropped == 1

            # duplicate stops: the same key is the same command, a new one reaches the pile
            same = _ok(await http.post("/api/v1/commands/stop", json={
                "code": CODE, "userId": user}, headers={**admin, "Idempotency-Key": "t-1"}))
            assert same["id"] == stop["id"]
            dup = await http.post("/api/v1/commands/stop", json={"code": CODE},
                                  headers={**admin, "Idempotency-Key": "t-2"})
            assert dup.status_code == 200 and dup.json()["id"] != stop["id"]

            await eventually(lambda: _order_status(cloud, trade) == "settled", timeout=90)
            await asyncio.sleep(2.0)  # a second order or debit would have been made by now
            orders = _ok(await http.get("/api/v1/orders", headers=admin,
                                        params={"device": CONNECTOR}))
            assert [o["session_id"] for o in orders["items"]] == [trade]
            detail = _ok(await http.get(f"/api/v1/orders/{orders['items'][0]['id']}",
                                        headers=admin))
            wallet = _ok(await http.get(f"/api/v1/users/{user}/wallet", headers=admin))
    finally:
        if pile is not None:
            await pile.stop()
        if proxy_server is not None:
            proxy_server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    order = detail  # OrderDetail: the order with its tiers
    assert order["status"] == "settled" and order["user_id"] == user
    assert order["reconciled"] is True, order["discrepancies"]
    # the arithmetic: per tier, amount = tier energy x the tariff's rate, rounded half-up to
    # 0.01 CNY; totals are the sums of the rounded parts
    electricity = service = energy = Decimal(0)
    for line in detail["tiers"]:
        e_rate, s_rate = RATES[line["tier"]]
        tier_energy = Decimal(line["energy"])
        assert Decimal(line["electricity_rate"]) == e_rate
        assert Decimal(line["service_rate"]) == s_rate
        want_e = (tier_energy * e_rate).quantize(CENT, ROUND_HALF_UP)
        want_s = (tier_energy * s_rate).quantize(CENT, ROUND_HALF_UP)
        assert Decimal(line["electricity_amount"]) == want_e
        assert Decimal(line["service_amount"]) == want_s
        electricity, service, energy = electricity + want_e, service + want_s, \
            energy + tier_energy
    # the pile's own record: the same energy per tier (YKC order tip, peak, flat, valley)
    record = {t: Decimal(v) / 10_000 for t, v in zip(("tip", "peak", "flat", "valley"),
                                                     entry.energy_kwh4, strict=True) if v}
    assert {t["tier"]: Decimal(t["energy"]) for t in detail["tiers"]
            if Decimal(t["energy"])} == record
    assert energy == Decimal(entry.total_energy_kwh4) / 10_000 == Decimal(order["energy"])
    total = electricity + service
    assert Decimal(order["electricity_amount"]) == electricity
    assert Decimal(order["service_amount"]) == service
    assert Decimal(order["total_amount"]) == total == Decimal(order["paid_amount"]) > 0
    assert Decimal(wallet["balance"]) == TOP_UP - total

    # one debit in the ledger, and the ledger reconciles
    with Session(cloud.engine) as db:
        entries = db.exec(select(LedgerEntry).where(
            LedgerEntry.wallet_id == wallet["id"])).all()
        rows = db.exec(select(Order).where(Order.device == CONNECTOR)).all()
    debits = [e for e in entries if Decimal(e.amount) < 0]
    assert len(debits) == 1 and -Decimal(debits[0].amount) == total
    assert len(rows) == 1
    assert cloud.accounts.reconcile(wallet["id"])


def _order_status(cloud: CloudService, trade: str) -> str | None:
    with Session(cloud.engine) as db:
        order = db.exec(select(Order).where(Order.session_id == trade)).first()
    return order.status if order is not None else None
