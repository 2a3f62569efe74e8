"""The YKC listener with real wire bytes over loopback: login gate, billing model, garbage,
card start with offline fallback, transaction records confirmed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bridges.ykc import StreamDecoder, encode_frame
from bridges.ykc.encoding import Cp56Time2a
from bridges.ykc.messages import (
    BillingModelReply,
    BillingModelRequest,
    BillingModelVerify,
    BillingModelVerifyReply,
    ChargerStartReply,
    ChargerStartRequest,
    Heartbeat,
    HeartbeatReply,
    Login,
    LoginReply,
    Message,
    TierUsage,
    TimeSync,
    TransactionRecord,
    TransactionRecordConfirm,
)
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually, free_port
from thingmodels import decode

PILE = "32010200000001"
UNKNOWN = "32010200000999"
TARIFF = {"version": 7, "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                                  "peak": {"energy": "1.0", "service": "0.6"},
                                  "flat": {"energy": "0.7", "service": "0.6"},
                                  "valley": {"energy": "0.3", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                      {"start": "08:00", "end": "24:00", "tier": "flat"}]}


class Pile:
    """A minimal pile speaking raw frames (the full simulator lives in sim/ykc)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = StreamDecoder()
        self.inbox: list[Message] = []
        self.seq = 0

    @classmethod
    async def connect(cls, port: int) -> Pile:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, message: Message) -> None:
        self.seq += 1
        self.writer.write(encode_frame(message, self.seq))

    async def expect(self, kind: type[Message], timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for i, msg in enumerate(self.inbox):
                    if isinstance(msg, kind):
                        return self.inbox.pop(i)
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("closed by the gateway")
                self.inbox.extend(r.message for r in self.decoder.feed(data)
                                  if hasattr(r, "message"))

    async def closed(self, timeout: float = 5.0) -> bool:
        async with asyncio.timeout(timeout):
            while await self.reader.read(4096):
                pass
        return True


def login(pile: str = PILE) -> Login:
    return Login(pile_code=pile, pile_type=0, gun_count=2, protocol_version=0x10,
                 firmware_version="v4.1.50", network_type=1, iccid="0" * 20, carrier=4)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[EdgeGateway]:
    # no broker: the cloud is unreachable the whole time, the gateway answers from its cache
    config = GatewayConfig(
        gateway_id="gw-ykc", mqtt=MqttConfig(port=free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=0.5,
                                              authorize_timeout=0.3, max_bad_frames=4)))
    gw = EdgeGateway(config)
    gw.ctx.set_desired("gateway", "gw-ykc", 1, {
        "version": 1, "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}],
        "tariff": TARIFF,
        "cards": [{"physical": "D14B0A54", "logical": "1000000573", "status": "active"}]})
    task = asyncio.create_task(gw.run())
    adapter = gw.adapters[0]
    await eventually(adapter.ready.is_set)  # type: ignore[attr-defined]
    yield gw
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def port_of(gw: EdgeGateway) -> int:
    return gw.adapters[0].port  # type: ignore[attr-defined,no-any-return]


def events(gw: EdgeGateway, name: str) -> list[Any]:
    return [decode(r.payload) for r in gw.outbox.peek(10_000) if r.topic.endswith(f"/{name}")]


async def test_unknown_pile_is_refused_and_known_pile_gets_model(gateway: EdgeGateway) -> None:
    stranger = await Pile.connect(port_of(gateway))
    stranger.send(login(UNKNOWN))
    reply = await stranger.expect(LoginReply)
    assert reply.result == 1
    assert await stranger.closed()
    refused = events(gateway, "deviceRefused")
    assert refused[0].p["device"] == UNKNOWN

    pile = await Pile.connect(port_of(gateway))
    pile.send(login())
    assert (await pile.expect(LoginReply)).result == 0
    await pile.expect(TimeSync)  # time sync right after login
    pile.send(BillingModelVerify(pile_code=PILE, model_code="0000"))
    verify = await pile.expect(BillingModelVerifyReply)
    assert verify.result == 1  # differs: the pile must ask
    pile.send(BillingModelRequest(pile_code=PILE))
    model = (await pile.expect(BillingModelReply)).model
    assert model.model_code == "0007"
    assert model.slots[:16] == (3,) * 16 and model.slots[16:] == (2,) * 32
    assert model.tiers[0].electricity_yuan5 == 120000 and model.tiers[3].service_yuan5 == 60000
    pile.send(BillingModelVerify(pile_code=PILE, model_code="0007"))
    assert (await pile.expect(BillingModelVerifyReply)).result == 0
    pile.send(Heartbeat(pile_code=PILE, gun=1, gun_status=0))
    await pile.expect(HeartbeatReply)
    state = [decode(r.payload) for r in gateway.outbox.peek(1000)
             if r.topic == f"ev/v1/gw-ykc/charger/{PILE}/state"]
    assert state[-1].p["online"] is True


async def test_garbage_is_dropped_and_others_are_served(gateway: EdgeGateway) -> None:
    good = await Pile.connect(port_of(gateway))
    good.send(login())
    assert (await good.expect(LoginReply)).result == 0
    bad = await Pile.connect(port_of(gateway))
    frame = bytearray(encode_frame(login(), 1))
    frame[-1] ^= 0xFF  # bad CRC
    bad.writer.write(b"\x00\x11garbage" + bytes(frame) + b"\x68\xff" * 40 + bytes(frame) * 5
                     + bytes(range(256)) * 4)
    assert await bad.closed()
    assert gateway.ctx.stats.counters["ykc_dropped_garbage"] == 1
    assert gateway.ctx.stats.counters["malformed_frames"] >= 4
    good.send(Heartbeat(pile_code=PILE, gun=1, gun_status=0))
    await good.expect(HeartbeatReply)  # the gateway still serves the good pile


async def test_missed_heartbeats_close_and_mark_offline(gateway: EdgeGateway) -> None:
    pile = await Pile.connect(port_of(gateway))
    pile.send(login())
    await pile.expect(LoginReply)
    assert await pile.closed(timeout=5)  # 3 x 0.5 s without a frame
    states = [decode(r.payload).p for r in gateway.outbox.peek(1000)
              if r.topic.endswith(f"charger/{PILE}/state")]
    assert states[-1]["online"] is False


async def test_card_start_offline_fallback_and_record_confirmed_once(
        gateway: EdgeGateway) -> None:
    pile = await Pile.connect(port_of(gateway))
    pile.send(login())
    await pile.expect(LoginReply)
    pile.send(ChargerStartRequest(pile_code=PILE, gun=1, start_mode=1, password_required=0,
                                  account_or_card="00000000D14B0A54", password_md5=b"\0" * 16,
                                  vin=""))
    start = await pile.expect(ChargerStartReply)
    assert start.authorized == 1 and start.logical_card == "0000001000000573"
    assert start.trade_no.startswith(PILE + "01")
    pile.send(ChargerStartRequest(pile_code=PILE, gun=2, start_mode=1, password_required=0,
                                  account_or_card="00000000DEADBEEF", password_md5=b"\0" * 16,
                                  vin=""))
    assert (await pile.expect(ChargerStartReply)).authorized == 0
    fallbacks = events(gateway, "fallbackUsed")
    assert [f.p["reason"] for f in fallbacks] == ["cloud_offline: accepted",
                                                  "cloud_offline: rejected"]

    when = Cp56Time2a.from_datetime(datetime(2026, 11, 23, 9, 0, 0))
    done = Cp56Time2a.from_datetime(datetime(2026, 11, 23, 9, 30, 0))
    zero = TierUsage(price_yuan5=0, energy_kwh4=0, loss_energy_kwh4=0, amount_yuan4=0)
    flat = TierUsage(price_yuan5=130000, energy_kwh4=100000, loss_energy_kwh4=100000,
                     amount_yuan4=130000)
    record = TransactionRecord(
        trade_no=start.trade_no, pile_code=PILE, gun=1, start_time=when, end_time=done,
        tiers=(zero, zero, flat, zero), meter_start_kwh4=5_000_000, meter_end_kwh4=5_100_000,
        total_energy_kwh4=100000, total_loss_energy_kwh4=100000, total_amount_yuan4=130000,
        vin="", trade_flag=2, trade_time=done, stop_reason=0x45,
        physical_card="00000000D14B0A54")
    for _ in range(3):  # the pile re-sends until confirmed
        pile.send(record)
        confirm = await pile.expect(TransactionRecordConfirm)
        assert confirm.trade_no == start.trade_no and confirm.result == 0
    [rec] = events(gateway, "transactionRecord")
    assert rec.p["energy"] == "10.0000" and rec.p["amount"] == "13.0000"
    assert rec.p["tiers"][2] == {"tier": "flat", "price": "1.30000", "energy": "10.0000",
                                 "lossEnergy": "10.0000", "amount": "13.0000"}
    assert rec.p["meterStart"] == "500.0000" and rec.p["tradeType"] == "card"
    assert len(events(gateway, "sessionEnded")) == 1
    assert gateway.ctx.stats.counters["ykc_record_resent"] == 2


async def test_heartbeats_are_answered_while_a_card_start_waits_for_the_cloud(
        amqtt_broker: int, tmp_path: Path) -> None:
    # the cloud link is up but nobody answers: the card start waits authorize_timeout
    config = GatewayConfig(
        gateway_id="gw-wait", mqtt=MqttConfig(port=amqtt_broker, backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=5,
                                              authorize_timeout=2.0)))
    gw = EdgeGateway(config)
    gw.ctx.set_desired("gateway", "gw-wait", 1, {
        "version": 1, "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}],
        "tariff": TARIFF,
        "cards": [{"physical": "D14B0A54", "logical": "1000000573", "status": "active"}]})
    task = asyncio.create_task(gw.run())
    try:
        await eventually(gw.adapters[0].ready.is_set)  # type: ignore[attr-defined]
        await eventually(gw.ctx.cloud_connected.is_set)
        pile = await Pile.connect(port_of(gw))
        pile.send(login())
        await pile.expect(LoginReply)
        pile.send(ChargerStartRequest(pile_code=PILE, gun=1, start_mode=1, password_required=0,
                                      account_or_card="00000000D14B0A54",
                                      password_md5=b"\0" * 16, vin=""))
        pile.send(Heartbeat(pile_code=PILE, gun=1, gun_status=0))
        await pile.expect(HeartbeatReply, timeout=10)
        # the heartbeat was answered first: the start decision is still pending
        assert not any(isinstance(m, ChargerStartReply) for m in pile.inbox)
        start = await pile.expect(ChargerStartReply, timeout=10)
        assert start.authorized == 1  # decided from the local list after the timeout
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
