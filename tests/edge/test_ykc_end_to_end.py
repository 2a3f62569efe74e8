"""YKC end to end through Mosquitto (shipped config) and the cloud, with the simulated pile.

login -> billing model verify/request -> remoteStart from the cloud -> real-time data as
properties -> remoteStop -> exactly ONE transactionRecord event at the cloud, although the pile
re-sends the record (its first 0x40 is lost) while the broker is down.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from bridges.ykc import StreamDecoder
from bridges.ykc.messages import TransactionRecordConfirm
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.service import CloudService
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.ykc import PileConfig, SimPile
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually
from thingmodels import Envelope, Topic

pytestmark = pytest.mark.mosquitto

PILE = "32010200000077"
CONNECTOR = PILE + "01"
TARIFF = {"version": 3, "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                                  "peak": {"energy": "1.0", "service": "0.6"},
                                  "flat": {"energy": "0.7", "service": "0.6"},
                                  "valley": {"energy": "0.3", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                      {"start": "08:00", "end": "12:00", "tier": "flat"},
                      {"start": "12:00", "end": "18:00", "tier": "peak"},
                      {"start": "18:00", "end": "21:00", "tier": "tip"},
                      {"start": "21:00", "end": "24:00", "tier": "flat"}]}


class DropFirstConfirm:
    """A TCP proxy pile <-> gateway that loses the first 0x40 sent to the pile."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.dropped = 0
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, filt: bool) -> None:
            decoder = StreamDecoder()
            try:
                while data := await src.read(4096):
                    if not filt:
                        dst.write(data)
                        continue
                    for frame in decoder.feed(data):
                        message = getattr(frame, "message", None)
                        if isinstance(message, TransactionRecordConfirm) and not self.dropped:
                            self.dropped += 1
                            continue
                        dst.write(frame.encode())  # type: ignore[union-attr]
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True),
                             return_exceptions=True)


async def test_remote_session_and_one_record_despite_resend_while_broker_down(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    creds = {"username": "cloud", "password": USERS["cloud"]}
    cloud = CloudService(CloudConfig(
        mqtt=CloudMqttConfig(port=mosquitto.port, client_id="e2e-cloud", **creds),  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'c.db'}", http=HttpConfig(port=0)))
    seen: list[tuple[Topic, Envelope]] = []

    async def track(topic: Topic, env: Envelope) -> None:
        seen.append((topic, env))
        if topic.name == "authorize" and topic.kind.value == "event":  # the cloud decides
            await cloud.consumer.publish(topic.reply(), Envelope.new(
                src="cloud", cid=env.id, code=0,
                p={"accepted": True, "balance": "88.50"}))

    cloud.consumer.add_handler("track", track)
    gateway = EdgeGateway(GatewayConfig(
        gateway_id="gwA",
        mqtt=MqttConfig(port=mosquitto.port, password=USERS["gwA"], backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=2))))
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run())]
    pile: SimPile | None = None
    proxy_server: asyncio.Server | None = None
    try:
        await eventually(cloud.consumer.connected.is_set)
        await eventually(gateway.ctx.cloud_connected.is_set)
        await cloud.consumer.publish_desired("gwA", "gateway", "gwA", {
            "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}],
            "tariff": TARIFF})
        await eventually(lambda: gateway.ctx.desired("gateway", "gwA"))
        ykc = gateway.adapters[0]
        await eventually(ykc.ready.is_set)  # type: ignore[attr-defined]
        proxy = DropFirstConfirm(ykc.port)  # type: ignore[attr-defined]
        proxy_server = await proxy.start()
        pile = SimPile(PileConfig(pile_code=PILE, guns=2, heartbeat_interval=1.0,
                                  realtime_interval=0.3, record_retry_interval=1.0,
                                  plug_delay=None, bms_frames=True, seed=7),
                       port=proxy.port)
        pile.start()
        await asyncio.wait_for(pile.logged_in.wait(), 10)
        await asyncio.wait_for(pile.model_loaded.wait(), 10)
        assert pile.model is not None and pile.model.model_code == "0003"

        # a card swiped at gun 2 is authorised by the cloud (not by the offline list)
        card_trade = await pile.swipe(2, "DEADBEEF")
        assert card_trade is not None and card_trade.startswith(PILE + "02")
        assert gateway.ctx.stats.counters["fallback_authorize"] == 0

        reply = await cloud.consumer.call("gwA", "connector", CONNECTOR, "remoteStart",
                                          {"idTag": "00000000D14B0A54", "balance": "100.00"},
                                          timeout=10)
        assert reply.code == 0 and reply.p is not None and reply.p["accepted"] is True
        trade = reply.p["sessionId"]
        charging = await eventually(lambda: [
            s.p for t, e in seen if t.device == CONNECTOR and t.kind.value == "prop"
            for s in e.samples() if s.p.get("status") == "charging"
            and Decimal(s.p.get("energy", "0")) > 0], timeout=10)
        assert charging[-1]["sessionId"] == trade and charging[-1]["voltage"] > 0

        stop = await cloud.consumer.call("gwA", "connector", CONNECTOR, "remoteStop", {},
                                         timeout=10)
        assert stop.code == 0 and stop.p == {"accepted": True}
        mosquitto.stop()  # the broker goes away; the pile re-sends its unconfirmed record
        await asyncio.wait_for(pile.record_confirmed(trade).wait(), 15)
        entry = pile.entry(trade)
        assert entry is not None and entry.record_sends >= 2 and proxy.dropped == 1
        mosquitto.start()
        records = await eventually(lambda: [e for t, e in seen
                                            if t.name == "transactionRecord"], timeout=30)
        await asyncio.sleep(1.5)  # anything duplicated would have arrived by now
    finally:
        if pile is not None:
            await pile.stop()
        if proxy_server is not None:
            proxy_server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    records = [e for t, e in seen if t.name == "transactionRecord"
               and e.p and e.p["sessionId"] == trade]
    assert len({e.id for e in records}) == 1 and len(records) == 1
    record = records[0].p
    assert record is not None and record["sessionId"] == trade
    assert Decimal(record["energy"]) == Decimal(entry.total_energy_kwh4) / 10_000
    assert Decimal(record["amount"]) == Decimal(entry.total_amount_yuan4) / 10_000
    for tier, energy, amount in zip(record["tiers"], entry.energy_kwh4, entry.amount_yuan4,
                                    strict=True):
        assert Decimal(tier["energy"]) == Decimal(energy) / 10_000
        assert Decimal(tier["amount"]) == Decimal(amount) / 10_000
    assert gateway.ctx.stats.counters["ykc_record_resent"] >= 1
    started = [e for t, e in seen if t.name == "sessionStarted"]
    assert sorted(e.p["sessionId"] for e in started if e.p) == sorted([trade, card_trade])
