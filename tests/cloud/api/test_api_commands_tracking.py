"""Tracked commands through a real broker, a real EdgeGateway and a simulated YKC pile:
wait=false + GET, Idempotency-Key (same command; different request -> 409), scopes, tenant
isolation, refused starts are tracked and never sent, tariff push."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from cloud.accounts.config import AccountsConfig
from cloud.accounts.service import AccountService
from cloud.auth.principal import Role
from cloud.config import CloudMqttConfig
from cloud.consumer import Consumer
from cloud.metrics import CloudMetrics
from cloud.orders.models import Order
from cloud.registry import make_engine
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.ykc import PileConfig, SimPile
from tests.cloud.api.world import build_api_world
from tests.support.net import eventually

PILE = "32010200000808"
TARIFF = {"version": 2, "tiers": {"flat": {"energy": "0.7", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "24:00", "tier": "flat"}]}


async def test_commands_are_tracked_idempotent_and_tenant_filtered(
        amqtt_broker: int, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    consumer = Consumer(CloudMqttConfig(port=amqtt_broker, client_id="cmd-cloud"),
                        CloudMetrics(), worker_id="cmd")
    world = build_api_world(engine, commands=consumer, pile=PILE)
    SQLModel.metadata.create_all(engine, tables=[Order.__table__])  # type: ignore[attr-defined]
    accounts = AccountService(engine, AccountsConfig())
    world.app.state.accounts = accounts
    t = world.tenancy
    gw = world.gw_a
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=gw, mqtt=MqttConfig(port=amqtt_broker, backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=2))))
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(gateway.run())]
    pile: SimPile | None = None
    try:
        await eventually(consumer.connected.is_set)
        await eventually(gateway.ctx.cloud_connected.is_set)
        await consumer.publish_desired(gw, "gateway", gw, {
            "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}],
            "tariff": TARIFF})
        ykc = gateway.adapters[0]
        await eventually(ykc.ready.is_set)  # type: ignore[attr-defined]
        pile = SimPile(PileConfig(pile_code=PILE, guns=1, heartbeat_interval=1.0,
                                  plug_delay=None, seed=3), port=ykc.port)  # type: ignore[attr-defined]
        pile.start()
        await asyncio.wait_for(pile.logged_in.wait(), 20)
        code = world.charger_a.code
        maintainer = t.headers("A", Role.MAINTAINER)
        async with world.client() as http:
            # wait=false: 202 at once, tracked until the pile answers
            r = await http.post("/api/v1/commands/reboot", params={"wait": "false"},
                                json={"code": code},
                                headers={**maintainer, "Idempotency-Key": "rb-1"})
            assert r.status_code == 202, r.text
            command: dict[str, Any] = r.json()
            assert command["state"] in ("queued", "sent")
            assert command["service"] == "reset" and command["device"] == PILE

            async def final() -> dict[str, Any] | None:
                got = (await http.get(f"/api/v1/commands/{command['id']}",
                                      headers=maintainer)).json()
                return got if got["state"] not in ("queued", "sent") else None

            done = await eventually(final, timeout=30)
            assert done["state"] == "succeeded" and done["reply"] == {"accepted": True}
            assert done["sentMs"] is not None and done["finishedMs"] >= done["sentMs"]

            # a retried POST: the same command, not a second reboot
            again = await http.post("/api/v1/commands/reboot", json={"code": code},
                                    headers={**maintainer, "Idempotency-Key": "rb-1"})
            assert again.status_code == 200 and again.json()["id"] == command["id"]
            changed = await http.post("/api/v1/commands/reboot",
                                      json={"code": code, "type": "hard"},
                                      headers={**maintainer, "Idempotency-Key": "rb-1"})
            assert changed.status_code == 409
            assert changed.json()["error"] == "idempotency_conflict"

            # other tenants: not found; read-only keys: forbidden
            b_get = await http.get(f"/api/v1/commands/{command['id']}", headers=t.headers("B"))
            assert b_get.status_code == 404
            b_list = await http.get("/api/v1/commands", headers=t.headers("B"))
            assert command["id"] not in {c["id"] for c in b_list.json()["items"]}
            a_list = await http.get("/api/v1/commands", params={"kind": "reboot"},
                                    headers=t.key_headers("A", "read"))
            assert [c["id"] for c in a_list.json()["items"]] == [command["id"]]
            b_post = await http.post("/api/v1/commands/reboot", json={"code": code},
                                     headers=t.headers("B"))
            assert b_post.status_code == 404 and b_post.json()["error"] == "not_found"
            read_key = await http.post("/api/v1/commands/reboot", json={"code": code},
                                       headers=t.key_headers("A", "read"))
            assert read_key.status_code == 403

            # a start the accounts refuse (empty wallet) is tracked as failed, never sent
            user = accounts.create_user(t.a, "13900000808", "Driver")
            user_id = user.id
            refused = await http.post("/api/v1/commands/start",
                                      json={"code": code, "userId": user_id},
                                      headers={**t.headers("A"), "Idempotency-Key": "st-1"})
            assert refused.status_code == 200, refused.text
            assert refused.json()["state"] == "failed"
            assert refused.json()["error"] == "refused: insufficient_balance"
            assert refused.json()["sentMs"] is None
            b_user = accounts.create_user(t.b, "13900000809", "Other")
            b_user_id = b_user.id
            foreign_user = await http.post("/api/v1/commands/start",
                                           json={"code": code, "userId": b_user_id},
                                           headers=t.headers("A"))
            assert foreign_user.status_code == 404
            # stop by a user without a session on the connector
            no_session = await http.post("/api/v1/commands/stop",
                                         json={"code": code, "userId": user_id},
                                         headers=t.headers("A"))
            assert no_session.status_code == 409 and no_session.json()["error"] == "no_session"

            # tariff push for the charger's gateway
            pushed = await http.post("/api/v1/commands/tariff", json={"code": code},
                                     headers=t.headers("A"))
            assert pushed.status_code == 200 and pushed.json()["state"] == "succeeded"
            assert pushed.json()["reply"]["status"] == "published"
    finally:
        if pile is not None:
            await pile.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        engine.dispose()
