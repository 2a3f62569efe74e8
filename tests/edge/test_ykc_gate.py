"""The YKC listener's rules that issue #3 names, each with real wire bytes over loopback:
sequence bytes echoed and CRC order, the auto-register mode, a VIN start from the offline list,
a desired tariff pushed (0x58) only while idle, and a transaction record confirmed (0x40) only
after its event is durable."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridges.ykc.encoding import Cp56Time2a
from bridges.ykc.frame import CrcOrder
from bridges.ykc.messages import (
    BillingModelSet,
    BillingModelSetReply,
    BillingModelVerify,
    BillingModelVerifyReply,
    ChargerStartReply,
    ChargerStartRequest,
    Heartbeat,
    HeartbeatReply,
    LoginReply,
    RealTimeData,
    TierUsage,
    TimeSync,
    TransactionRecord,
    TransactionRecordConfirm,
)
from edge.config import YkcConfig
from edge.errors import OutboxError
from edge.runtime import EdgeGateway
from tests.support.net import eventually
from tests.support.ykc import PILE, TARIFF, RawPile, desired, login, outbox, port_of, ykc_gateway
from thingmodels import Envelope, Kind, Topic

STRANGER = "32010200000999"
VIN = "LSVAU2180N2183294"
YKC15 = 0x0F  # the protocol version byte of a YKC 1.5 login


def gateway(tmp_path: Path, devices: Sequence[str] = (PILE,),
            **ykc: Any) -> contextlib.AbstractAsyncContextManager[EdgeGateway]:
    """A gateway with ``devices`` and a VIN on its offline list; no broker."""
    doc = desired(devices, cards=[{"vin": VIN, "logical": "2000000001", "status": "active"}])
    return ykc_gateway(tmp_path, doc, authorize_timeout=0.3, **ykc)


async def logged_in(gw: EdgeGateway, pile: str = PILE) -> RawPile:
    wire = await RawPile.connect(port_of(gw))
    wire.send(login(pile, YKC15), b"\x00\x00")
    assert (await wire.frame(LoginReply)).message.result == 0
    await wire.frame(TimeSync)
    return wire


def test_listener_port_defaults_to_8768_and_config_is_strict() -> None:
    assert YkcConfig().port == 8768
    assert YkcConfig(port=9000, heartbeat_interval="15s").heartbeat_interval == 15.0
    with pytest.raises(ValidationError):
        YkcConfig(prot=9000)  # type: ignore[call-arg]


async def test_replies_echo_the_sequence_bytes_and_send_crc_low_byte_first(
        tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        wire = await logged_in(gw)
        # the pile writes its sequence big-endian and its CRC high byte first (both seen in
        # the field, reference §2.2 / §2.3): the gateway answers, echoing the two bytes as-is
        wire.send(Heartbeat(pile_code=PILE, gun=1, gun_status=0), b"\x0b\xb8",
                  crc_order=CrcOrder.HIGH_FIRST)
        reply = await wire.frame(HeartbeatReply)
        assert reply.seq == b"\x0b\xb8" and reply.crc_order is CrcOrder.LOW_FIRST
        wire.send(BillingModelVerify(pile_code=PILE, model_code="0000"), b"\x71\xad")
        verify = await wire.frame(BillingModelVerifyReply)
        assert verify.seq == b"\x71\xad" and verify.message.result == 1


async def test_auto_register_admits_an_unknown_pile_as_pending(tmp_path: Path) -> None:
    async with gateway(tmp_path, devices=[], auto_register=True) as gw:
        wire = await logged_in(gw, STRANGER)
        wire.send(Heartbeat(pile_code=STRANGER, gun=1, gun_status=0), 2)
        await wire.frame(HeartbeatReply)
        await eventually(lambda: gw.batcher.pending or outbox(gw, f"charger/{STRANGER}/prop"))
        gw.batcher.flush_all()
        [props] = [s.p for e in outbox(gw, f"charger/{STRANGER}/prop") for s in e.samples()
                   if "registration" in s.p]
        assert props["registration"] == "pending" and props["protocol"] == "ykc15"
        assert outbox(gw, f"charger/{STRANGER}/state")[-1].p["online"] is True
        assert outbox(gw, "/deviceRefused") == []
    async with gateway(tmp_path / "off", devices=[]) as gw:  # the default: refused
        wire = await RawPile.connect(port_of(gw))
        wire.send(login(STRANGER, YKC15))
        frames = await wire.closed()
        assert [f.message.result for f in frames if isinstance(f.message, LoginReply)] == [1]


async def test_vin_start_decided_from_the_offline_list(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        wire = await logged_in(gw)
        wire.send(ChargerStartRequest(pile_code=PILE, gun=1, start_mode=3, password_required=0,
                                      account_or_card="0" * 16, password_md5=b"\0" * 16,
                                      vin=VIN), 3)
        answer = (await wire.frame(ChargerStartReply)).message
        assert answer.authorized == 1 and answer.logical_card == "0000002000000001"
        [started] = outbox(gw, f"connector/{PILE}01/event/sessionStarted")
        assert started.p["idTag"] == VIN and started.p["idType"] == "vin"
        [fallback] = outbox(gw, "/fallbackUsed")
        assert fallback.p["reason"] == "cloud_offline: accepted"
        wire.send(ChargerStartRequest(pile_code=PILE, gun=2, start_mode=3, password_required=0,
                                      account_or_card="0" * 16, password_md5=b"\0" * 16,
                                      vin="LSVAU2180N2100000"), 4)
        assert (await wire.frame(ChargerStartReply)).message.authorized == 0


def realtime(status: int, trade: str = "0" * 32) -> RealTimeData:
    return RealTimeData(
        trade_no=trade, pile_code=PILE, gun=1, status=status, gun_holstered=0, gun_plugged=1,
        output_voltage_v1=0, output_current_a1=0, cable_temp_c_off50=70, cable_code=0,
        soc_pct=0, battery_max_temp_c_off50=0, charged_min=0, remaining_min=0, energy_kwh4=0,
        loss_energy_kwh4=0, amount_yuan4=0, hardware_faults=0)


async def test_a_new_desired_tariff_is_pushed_only_while_the_pile_is_idle(
        tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        adapter: Any = gw.adapters[0]
        wire = await logged_in(gw)
        # a card session is running on gun 1: the new tariff must wait (reference §4.4)
        wire.send(ChargerStartRequest(pile_code=PILE, gun=1, start_mode=3, password_required=0,
                                      account_or_card="0" * 16, password_md5=b"\0" * 16,
                                      vin=VIN), 5)
        trade = (await wire.frame(ChargerStartReply)).message.trade_no
        new = {**TARIFF, "version": 8, "periods": [{"start": "00:00", "end": "24:00",
                                                    "tier": "peak"}]}
        # as the cloud sends it: desired state of the charger, through the dispatcher
        await gw.dispatcher.desired(Topic("gw-ykc", "charger", PILE, Kind.DESIRED),
                                    Envelope.new(src="cloud", p={"version": 1, "tariff": new}))
        assert adapter.sessions[PILE].active_trades == {1: trade}
        wire.send(realtime(3, trade), 6)  # still charging
        with pytest.raises(TimeoutError):
            await wire.frame(BillingModelSet, timeout=0.5)
        wire.send(realtime(2), 7)  # idle now: the push follows
        push = await wire.frame(BillingModelSet)
        assert push.message.model.model_code == "0008"
        assert set(push.message.model.slots) == {1}  # all day peak
        wire.send(BillingModelSetReply(pile_code=PILE, result=1), push.seq)
        gw.batcher.flush_all()
        await eventually(lambda: gw.batcher.flush_all() or [
            s for e in outbox(gw, f"charger/{PILE}/prop") for s in e.samples()
            if s.p.get("billingModelCode") == "0008"])
        wire.send(BillingModelVerify(pile_code=PILE, model_code="0008"), 8)
        assert (await wire.frame(BillingModelVerifyReply)).message.result == 0


def record(trade: str) -> TransactionRecord:
    when = Cp56Time2a.from_datetime(datetime(2026, 11, 23, 9, 0, 0))
    done = Cp56Time2a.from_datetime(datetime(2026, 11, 23, 9, 30, 0))
    zero = TierUsage(price_yuan5=0, energy_kwh4=0, loss_energy_kwh4=0, amount_yuan4=0)
    flat = TierUsage(price_yuan5=130000, energy_kwh4=20000, loss_energy_kwh4=20000,
                     amount_yuan4=26000)
    return TransactionRecord(
        trade_no=trade, pile_code=PILE, gun=1, start_time=when, end_time=done,
        tiers=(zero, zero, flat, zero), meter_start_kwh4=1_000_000, meter_end_kwh4=1_020_000,
        total_energy_kwh4=20000, total_loss_energy_kwh4=20000, total_amount_yuan4=26000,
        vin="", trade_flag=1, trade_time=done, stop_reason=0x40, physical_card="0" * 16)


async def test_a_record_is_confirmed_only_once_its_event_is_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trade = PILE + "01" + "261123090000" + "0007"
    async with gateway(tmp_path) as gw:
        real = gw.outbox.append_once

        def disk_full(*args: Any, **kwargs: Any) -> Any:
            raise OutboxError("disk full")

        monkeypatch.setattr(gw.outbox, "append_once", disk_full)
        wire = await logged_in(gw)
        wire.send(record(trade), 9)
        frames = await wire.closed()  # the session fails: no 0x40, the connection closes
        assert not any(isinstance(f.message, TransactionRecordConfirm) for f in frames)
        assert outbox(gw, "/transactionRecord") == []
        assert gw.ctx.stats.counters["ykc_session_crashes"] == 1  # one connection, not the rest

        monkeypatch.setattr(gw.outbox, "append_once", real)
        wire = await logged_in(gw)  # the pile reconnects and re-sends its record
        wire.send(record(trade), 9)
        confirm = await wire.frame(TransactionRecordConfirm)
        assert confirm.seq == b"\x00\x09" and confirm.message.result == 0
        [event] = outbox(gw, "/transactionRecord")
        assert event.p["sessionId"] == trade and event.p["amount"] == "2.6000"
