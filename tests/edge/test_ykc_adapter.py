"""The YKC listener with real wire bytes over loopback: login gate, billing model, garbage,
card start with offline fallback, transaction records confirmed once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bridges.ykc import encode_frame
from bridges.ykc.encoding import Cp56Time2a
from bridges.ykc.frame import encode_raw_frame
from bridges.ykc.messages import (
    BillingModelReply,
    BillingModelRequest,
    BillingModelVerify,
    BillingModelVerifyReply,
    ChargerStartReply,
    ChargerStartRequest,
    Heartbeat,
    HeartbeatReply,
    LoginReply,
    RealTimeData,
    RemoteStart,
    RemoteStartReply,
    RemoteStop,
    RemoteStopReply,
    TierUsage,
    TimeSync,
    TransactionRecord,
    TransactionRecordConfirm,
)
from edge.config import TelemetryConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually
from tests.support.ykc import CARD, PILE, RawPile, desired, login, outbox, port_of, ykc_gateway
from thingmodels import decode

UNKNOWN = "32010200000999"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[EdgeGateway]:
    # no broker: the cloud is unreachable the whole time, the gateway answers from its cache
    async with ykc_gateway(tmp_path, desired(cards=[CARD]), heartbeat_interval=0.5,
                           authorize_timeout=0.3, max_bad_frames=4) as gw:
        yield gw


async def test_unknown_pile_is_refused_and_known_pile_gets_model(gateway: EdgeGateway) -> None:
    stranger = await RawPile.connect(port_of(gateway))
    stranger.send(login(UNKNOWN))
    reply = await stranger.expect(LoginReply)
    assert reply.result == 1
    await stranger.closed()
    refused = outbox(gateway, "/deviceRefused")
    assert refused[0].p["device"] == UNKNOWN

    pile = await RawPile.connect(port_of(gateway))
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
    good = await RawPile.connect(port_of(gateway))
    good.send(login())
    assert (await good.expect(LoginReply)).result == 0
    bad = await RawPile.connect(port_of(gateway))
    frame = bytearray(encode_frame(login(), 1))
    frame[-1] ^= 0xFF  # bad CRC
    bad.writer.write(b"\x00\x11garbage" + bytes(frame) + b"\x68\xff" * 40 + bytes(frame) * 5
                     + bytes(range(256)) * 4)
    await bad.closed()
    assert gateway.ctx.stats.counters["ykc_dropped_garbage"] == 1
    assert gateway.ctx.stats.counters["malformed_frames"] >= 4
    good.send(Heartbeat(pile_code=PILE, gun=1, gun_status=0))
    await good.expect(HeartbeatReply)  # the gateway still serves the good pile


async def test_missed_heartbeats_close_and_mark_offline(gateway: EdgeGateway) -> None:
    pile = await RawPile.connect(port_of(gateway))
    pile.send(login())
    await pile.expect(LoginReply)
    await pile.closed(timeout=5)  # 3 x 0.5 s without a frame
    states = [decode(r.payload).p for r in gateway.outbox.peek(1000)
              if r.topic.endswith(f"charger/{PILE}/state")]
    assert states[-1]["online"] is False
    last = f"connector/{PILE}02/state"
    await eventually(lambda: [r for r in gateway.outbox.peek(1000) if r.topic.endswith(last)])
    for gun in ("01", "02"):  # its connectors too, and their status property
        gone = [decode(r.payload).p for r in gateway.outbox.peek(1000)
                if r.topic.endswith(f"connector/{PILE}{gun}/state")]
        # the offline outranks the online before it (its session is its own seq)
        assert gone[-1]["session"] > gone[0]["session"]
        assert gone[-1] == {"online": False, "session": gone[-1]["session"],
                            "reason": "charger disconnected"}
    gateway.batcher.flush_all()
    status = [s.p["status"] for r in gateway.outbox.peek(1000)
              if r.topic.endswith(f"connector/{PILE}01/prop") for s in decode(r.payload).samples()]
    assert status[-1] == "offline"
    assert gateway.ctx.stats.counters["ykc_heartbeat_timeouts"] == 1


async def test_card_start_offline_fallback_and_record_confirmed_once(
        gateway: EdgeGateway) -> None:
    pile = await RawPile.connect(port_of(gateway))
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
    fallbacks = outbox(gateway, "/fallbackUsed")
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
    [rec] = outbox(gateway, "/transactionRecord")
    assert rec.p["energy"] == "10.0000" and rec.p["amount"] == "13.0000"
    assert rec.p["tiers"][2] == {"tier": "flat", "price": "1.30000", "energy": "10.0000",
                                 "lossEnergy": "10.0000", "amount": "13.0000"}
    assert rec.p["meterStart"] == "500.0000" and rec.p["tradeType"] == "card"
    assert len(outbox(gateway, "/sessionEnded")) == 1
    assert gateway.ctx.stats.counters["ykc_record_resent"] == 2


async def test_heartbeats_are_answered_while_a_card_start_waits_for_the_cloud(
        amqtt_broker: int, tmp_path: Path) -> None:
    # the cloud link is up but nobody answers: the card start waits authorize_timeout
    async with ykc_gateway(tmp_path, desired(cards=[CARD]), gateway_id="gw-wait",
                           mqtt_port=amqtt_broker, heartbeat_interval=5,
                           authorize_timeout=2.0) as gw:
        await eventually(gw.ctx.cloud_connected.is_set)
        pile = await RawPile.connect(port_of(gw))
        pile.send(login())
        await pile.expect(LoginReply)
        pile.send(ChargerStartRequest(pile_code=PILE, gun=1, start_mode=1, password_required=0,
                                      account_or_card="00000000D14B0A54",
                                      password_md5=b"\0" * 16, vin=""))
        pile.send(Heartbeat(pile_code=PILE, gun=1, gun_status=0))
        await pile.expect(HeartbeatReply, timeout=10)
        # the heartbeat was answered first: the start decision is still pending
        assert not any(isinstance(f.message, ChargerStartReply) for f in pile.inbox)
        start = await pile.expect(ChargerStartReply, timeout=10)
        assert start.authorized == 1  # decided from the local list after the timeout


async def test_start_refused_not_plugged_then_second_0x33_starts_the_session(
        gateway: EdgeGateway) -> None:
    # spec §4.8: "not plugged" (reason 5), then the gun is plugged within 60 s and the pile
    # sends a second 0x33 (success) for the same trade: that is a session, not noise
    adapter: Any = gateway.adapters[0]
    pile = await RawPile.connect(port_of(gateway))
    pile.send(login())
    await pile.expect(LoginReply)
    await pile.expect(TimeSync)
    call = asyncio.create_task(adapter.invoke(
        "connector", PILE + "01", "remoteStart", {"idTag": "00000000D14B0A54"},
        int(time.time() * 1000) + 5000))
    start = await pile.expect(RemoteStart)
    pile.send(RemoteStartReply(trade_no=start.trade_no, pile_code=PILE, gun=1, result=0,
                               fail_reason=5))
    out = await call
    assert out == {"accepted": False, "sessionId": start.trade_no, "reason": "not plugged"}
    assert outbox(gateway, "/sessionStarted") == []

    pile.send(RemoteStartReply(trade_no=start.trade_no, pile_code=PILE, gun=1, result=1,
                               fail_reason=0))  # plugged in: the second 0x33
    [started] = await eventually(lambda: outbox(gateway, "/sessionStarted"))
    assert started.p == {"sessionId": start.trade_no, "seq": 0, "idTag": "00000000D14B0A54",
                         "idType": "app"}
    counters = gateway.ctx.stats.counters
    assert counters["ykc_late_starts"] == 1 and counters["ykc_unsolicited_replies"] == 0
    assert adapter.sessions[PILE].active_trades == {1: start.trade_no}

    # the same 0x33 again, and one for a trade nobody started: counted, no second session
    pile.send(RemoteStartReply(trade_no=start.trade_no, pile_code=PILE, gun=1, result=1,
                               fail_reason=0))
    pile.send(RemoteStartReply(trade_no=PILE + "02" + "261123090000" + "0042", pile_code=PILE,
                               gun=2, result=1, fail_reason=0))
    await eventually(lambda: counters["ykc_unsolicited_replies"] == 2)
    assert len(outbox(gateway, "/sessionStarted")) == 1 and counters["ykc_late_starts"] == 1


async def test_a_stop_cancels_a_start_waiting_for_the_plug(gateway: EdgeGateway) -> None:
    adapter: Any = gateway.adapters[0]
    pile = await RawPile.connect(port_of(gateway))
    pile.send(login())
    await pile.expect(LoginReply)
    deadline = int(time.time() * 1000) + 5000
    call = asyncio.create_task(adapter.invoke(
        "connector", PILE + "02", "remoteStart", {"idTag": "app-user-7"}, deadline))
    start = await pile.expect(RemoteStart)
    pile.send(RemoteStartReply(trade_no=start.trade_no, pile_code=PILE, gun=2, result=0,
                               fail_reason=5))
    assert (await call)["reason"] == "not plugged"
    stop = asyncio.create_task(adapter.invoke("connector", PILE + "02", "remoteStop", {},
                                              deadline))
    await pile.expect(RemoteStop)
    pile.send(RemoteStopReply(pile_code=PILE, gun=2, result=0, fail_reason=2))
    assert (await stop)["accepted"] is False
    # a pile that starts anyway after the stop is not believed
    pile.send(RemoteStartReply(trade_no=start.trade_no, pile_code=PILE, gun=2, result=1,
                               fail_reason=0))
    await eventually(lambda: gateway.ctx.stats.counters["ykc_unsolicited_replies"] == 1)
    assert outbox(gateway, "/sessionStarted") == []


def realtime(gun: int, energy_kwh4: int, status: int = 3) -> RealTimeData:
    return RealTimeData(
        trade_no=PILE + f"{gun:02d}" + "261123090000" + "0001", pile_code=PILE, gun=gun,
        status=status, gun_holstered=0, gun_plugged=1, output_voltage_v1=3732,
        output_current_a1=1012, cable_temp_c_off50=84, cable_code=0, soc_pct=78,
        battery_max_temp_c_off50=85, charged_min=16, remaining_min=32,
        energy_kwh4=energy_kwh4, loss_energy_kwh4=energy_kwh4, amount_yuan4=energy_kwh4,
        hardware_faults=0)


async def test_samples_of_one_connector_in_the_same_millisecond_keep_distinct_times(
        gateway: EdgeGateway) -> None:
    # a connector's samples are told apart by their time at the cloud (time series): five
    # 0x13 of gun 1 in one TCP segment arrive within a millisecond and must all survive
    pile = await RawPile.connect(port_of(gateway))
    pile.send(login())
    await pile.expect(LoginReply)
    frames = b"".join(encode_frame(realtime(1, 10_000 + i), 100 + i) for i in range(5))
    pile.writer.write(frames + encode_frame(realtime(2, 7), 200))
    await eventually(lambda: gateway.batcher.pending >= 6)
    gateway.batcher.flush_all()
    rows = [decode(r.payload) for r in gateway.outbox.peek(10_000)
            if r.topic == f"ev/v1/gw-ykc/connector/{PILE}01/prop"]
    samples = [s for env in rows for s in env.samples()]
    assert [s.p["energy"] for s in samples] == [f"{1 + i / 10000:.4f}" for i in range(5)]
    stamps = [s.ts for s in samples]
    assert all(isinstance(t, int) for t in stamps)
    assert stamps == sorted(set(stamps))  # strictly increasing: no two share a millisecond
    [other] = [decode(r.payload) for r in gateway.outbox.peek(10_000)
               if r.topic == f"ev/v1/gw-ykc/connector/{PILE}02/prop"]
    assert other.samples()[0].ts is not None


async def test_each_kind_of_bad_input_is_counted_logged_and_published(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # garbage, bad CRC, wrong lengths, unknown type, encrypted, a frame before login: each is
    # counted per kind (gateway stats) and in the gateway's malformedFrames property, logged,
    # and the connection still logs in afterwards (fewer than max_bad_frames in a row)
    async with ykc_gateway(tmp_path, desired(),
                           telemetry=TelemetryConfig(flush_interval=0.1, stats_interval=0.2),
                           max_bad_frames=16) as gw:
        heartbeat = encode_frame(Heartbeat(pile_code=PILE, gun=1, gun_status=0), 1)
        bad_crc = bytearray(encode_frame(login(), 2))
        bad_crc[-2] ^= 0x5A
        wire = (b"\x00\x11garbage"                                 # BadStart
                + bytes(bad_crc)                                   # BadCrc
                + b"\x68\x02"                                      # BadLength (L < 4)
                + encode_raw_frame(0x03, heartbeat[6:-3], seq=3)   # BadBodyLength
                + encode_raw_frame(0x07, b"\x01\x02", seq=4)       # UnknownFrameType
                + encode_raw_frame(0x03, heartbeat[6:-2], seq=5, encryption=1)
                + heartbeat)                                       # before login
        pile = await RawPile.connect(port_of(gw))
        pile.writer.write(wire)
        counters = gw.ctx.stats.counters
        await eventually(lambda: counters["ykc_before_login"] == 1)
        kinds = {k: v for k, v in counters.items() if k.startswith("ykc_bad_")}
        assert kinds == {"ykc_bad_BadStart": 1, "ykc_bad_BadCrc": 1, "ykc_bad_BadLength": 1,
                         "ykc_bad_BadBodyLength": 1, "ykc_bad_UnknownFrameType": 1,
                         "ykc_bad_UnsupportedEncryption": 1}
        assert counters["malformed_frames"] == 7
        pile.send(login())  # the same connection goes on: nothing was fatal
        assert (await pile.expect(LoginReply)).result == 0
        pile.send(ChargerStartReply(trade_no="0" * 32, pile_code=PILE, gun=1,
                                    logical_card="0" * 16, balance_yuan2=0, authorized=1,
                                    fail_reason=0))  # a platform frame from the pile
        pile.send(Heartbeat(pile_code=UNKNOWN, gun=1, gun_status=0))  # another pile's code
        await eventually(lambda: counters["ykc_foreign_pile_code"] == 1)
        assert counters["ykc_unexpected_frames"] == 1 and counters["malformed_frames"] == 9

        def published() -> list[int]:
            return [s.p["malformedFrames"] for r in gw.outbox.peek(10_000)
                    if r.topic == "ev/v1/gw-ykc/gateway/gw-ykc/prop"
                    for s in decode(r.payload).samples() if "malformedFrames" in s.p]
        await eventually(lambda: 9 in published(), timeout=10)
        logged = [r.getMessage() for r in caplog.records if r.name == "voltmesh.edge.ykc"]
        assert sum("bad frame from" in m for m in logged) == 3  # the first three of a run
        assert any("0x03 before login" in m for m in logged)
        assert any("0x32 is not a pile frame" in m for m in logged)
        assert any(f"for pile {UNKNOWN}" in m for m in logged)
