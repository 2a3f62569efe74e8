"""End-to-end receipts: the cloud receipts a gateway's event once its work is committed, and the
gateway keeps the event (publishing it again) until then.

The known gap (docs/scale-out.md): Mosquitto loses QoS 1 messages for ``$share/...``
subscriptions of offline persistent sessions across its own restart. The drill here is that
window with two workers on a shared subscription: both workers away, the broker restarts, the
gateway reconnects first and publishes session events, the broker PUBACKs them; then the
workers return. Every event must end in the cloud's database exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.consumer import Consumer
from cloud.metrics import CloudMetrics
from cloud.orders.models import Order, OrderEvent
from cloud.registry import make_engine
from cloud.rules import RulesConfig
from cloud.service import CloudService
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually
from tests.support.postgres import pg_database
from thingmodels import Envelope, Topic, encode

ROOT = Path(__file__).resolve().parents[2]
EVENT = "ev/v1/gwA/connector/c1/event/fault"


# -- the consumer's receipt rules, without a broker ---------------------------------------------


def consumer() -> Consumer:
    return Consumer(CloudMqttConfig(receipt_batch=3), CloudMetrics(), worker_id="w")


def pending(c: Consumer) -> dict[str, list[str]]:
    return {gw: list(ids) for gw, ids in c._receipts.pending.items()}


async def test_an_event_is_receipted_after_its_work_and_a_duplicate_again() -> None:
    c = consumer()
    work: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def billing(topic: Topic, env: Envelope) -> asyncio.Future[None]:
        return work

    c.add_handler("billing", billing)
    env = Envelope.new(p={"code": "E1", "active": True})
    done = await c.on_message(EVENT, encode(env))
    assert done is not None and pending(c) == {}  # not before the work is committed
    again = await c.on_message(EVENT, encode(env))  # redelivered meanwhile
    assert pending(c) == {}
    work.set_result(None)
    await done
    assert again is done
    await asyncio.sleep(0)
    assert pending(c) == {"gwA": [env.id, env.id]}  # the original and its duplicate
    await c.on_message(EVENT, encode(env))  # a re-publication after its work: receipted again
    assert pending(c) == {"gwA": [env.id, env.id, env.id]}
    assert c._receipts.full.is_set()
    # telemetry, presence and service replies are not receipted
    await c.on_message("ev/v1/gwA/connector/c1/prop", encode(Envelope.new(p={"power": 1.0})))
    await c.on_message("ev/v1/gwA/connector/c1/state",
                       encode(Envelope.new(p={"online": True, "session": 1})))
    assert sum(len(v) for v in pending(c).values()) == 3


async def test_an_event_whose_work_failed_is_not_receipted_and_is_worked_again() -> None:
    c = consumer()
    runs: list[str] = []

    async def failing(topic: Topic, env: Envelope) -> Any:
        runs.append(env.id)
        if len(runs) == 1:
            async def fail() -> None:
                raise RuntimeError("database away")
            return asyncio.ensure_future(fail())
        return None

    c.add_handler("billing", failing)
    env = Envelope.new(p={"code": "E1", "active": True})
    done = await c.on_message(EVENT, encode(env))
    assert done is not None
    await done
    await asyncio.sleep(0)
    assert pending(c) == {}  # not committed: no receipt, the gateway publishes it again
    await c.on_message(EVENT, encode(env))  # the re-publication is worked afresh
    assert runs == [env.id, env.id]
    assert pending(c) == {"gwA": [env.id]}


# -- the gap, on a real Mosquitto with two workers ----------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.db'}"  # one file, both workers
    else:
        yield from pg_database("receipts")


def worker(port: int, url: str, name: str) -> CloudService:
    return CloudService(CloudConfig(
        worker_id=name, database_url=url,
        rules=RulesConfig(paths=[str(ROOT / "config" / "rules")]),
        mqtt=CloudMqttConfig(port=port, username="cloud", password=USERS["cloud"],
                             client_id=f"cloud-{name}", protocol="v5", shared_group="voltmesh",
                             backoff_max=0.5),
        http=HttpConfig(port=0), flush_interval=0.2))


class Workers:
    """Two cloud workers on one shared subscription and one database."""

    def __init__(self, port: int, url: str) -> None:
        self.port, self.url = port, url
        self.services: list[CloudService] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.services = [worker(self.port, self.url, name) for name in ("w1", "w2")]
        self.tasks = [asyncio.create_task(s.run()) for s in self.services]
        for service in self.services:
            await eventually(service.consumer.connected.is_set, timeout=30)
            assert service.consumer.shared_active

    async def stop(self) -> None:
        """Both away (their persistent sessions stay with the broker)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for service in self.services:
            service.engine.dispose()

    def receipts_sent(self) -> int:
        return sum(s.consumer.receipts_sent for s in self.services)


def in_database(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Orders per session id and order events per message id, as stored."""
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            orders = dict(db.exec(select(Order.session_id, func.count()).where(
                Order.gw == "gwA").group_by(Order.session_id)).all())
            events = dict(db.exec(select(OrderEvent.message_id, func.count()).group_by(
                OrderEvent.message_id)).all())
        return orders, events
    finally:
        engine.dispose()


@pytest.mark.mosquitto
async def test_two_shared_workers_and_a_broker_restart_lose_no_event(
        mosquitto: Mosquitto, tmp_path: Path, database_url: str) -> None:
    gw = EdgeGateway(GatewayConfig(
        gateway_id="gwA",
        mqtt=MqttConfig(port=mosquitto.port, username="gwA", password=USERS["gwA"],
                        backoff_initial=0.1, backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db"), receipt_timeout=2.0,
                            receipt_timeout_max=4.0)), adapters=[])
    workers = Workers(mosquitto.port, database_url)
    sent: dict[str, str] = {}  # session id -> envelope id

    async def sessions(phase: str, count: int) -> None:
        for i in range(count):
            session = f"{phase}-{i}"
            env = await gw.ctx.event("connector", f"c{i % 4}", "sessionStarted", {
                "sessionId": session, "seq": 1, "idTag": "CARD1", "idType": "card",
                "meterStart": "100.000"}, src="test")
            sent[session] = env.id

    gw_task = asyncio.create_task(gw.run())
    try:
        await workers.start()
        await eventually(gw.uplink.connected.is_set, timeout=30)

        # all up: delivered, committed, receipted
        await sessions("A", 20)
        await eventually(lambda: gw.outbox.stats.queued_events == 0, timeout=30)
        assert gw.outbox.stats.receipted >= 20

        # the window: workers away, the broker restarts, the gateway is back first
        await workers.stop()
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.to_thread(mosquitto.start)
        await eventually(gw.uplink.connected.is_set, timeout=30)
        connects = gw.uplink.connects
        await sessions("B", 20)
        # the broker acknowledged all of them; the gateway keeps them for their receipts
        await eventually(lambda: gw.outbox.stats.awaiting_receipt == 20, timeout=30)
        assert gw.outbox.stats.queued_events == 20 and gw.uplink.connects == connects
        await asyncio.sleep(3.0)  # past the receipt timeout: published again, into the gap

        await workers.start()  # their sessions again (same client ids)
        await eventually(lambda: gw.outbox.stats.queued_events == 0, timeout=90)
        orders, events = await asyncio.to_thread(in_database, database_url)
        assert set(orders) == set(sent), f"missing sessions: {sorted(set(sent) - set(orders))}"
        assert all(n == 1 for n in orders.values())  # one order per session
        assert all(events.get(msg_id) == 1 for msg_id in sent.values())  # each event once
        # what went out is in /metrics too
        exported = sum(s.metrics.registry.get_sample_value(
            "voltmesh_cloud_receipts_total", {"outcome": "sent"}) or 0
            for s in workers.services)
        assert exported == workers.receipts_sent() >= 20  # these workers receipted phase B
        print(f"resent for receipt: {gw.outbox.stats.resent_for_receipt}, "
              f"receipted: {gw.outbox.stats.receipted}")
    finally:
        await workers.stop()
        gw_task.cancel()
        await asyncio.gather(gw_task, return_exceptions=True)
