"""The simulated YKC pile against an in-test platform: real wire bytes over loopback TCP."""

from __future__ import annotations

import asyncio
import itertools

from ykc_sim_platform import (
    CARD,
    PILE,
    TRADE,
    FakePlatform,
    charging_frames,
    cp56,
    demo_model,
    half_up_amount,
    remote_start,
    running,
)

from bridges.ykc import (
    BillingModelRequest,
    BillingModelVerify,
    ChargingEnd,
    Login,
    RealTimeData,
    RemoteStartReply,
    RemoteStop,
    RemoteStopReply,
    TimeSync,
    TimeSyncReply,
    TransactionRecord,
    decode_frame,
)
from bridges.ykc.constants import ConnectorStatus, StopReason, TradeFlag
from sim.ykc import tier_prices_yuan5


async def test_app_session_end_to_end() -> None:
    """Login, model fetch, 0x34 → charging across a tier boundary → 0x36 → 0x3B re-sent until
    confirmed; the record's arithmetic and the pile's ledger agree."""
    model = demo_model()
    async with FakePlatform(model=model, confirm_on=2) as platform, running(platform) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        assert pile.model == model

        # power-on flow on the wire
        first = platform.frames[0].message
        assert isinstance(first, Login)
        assert (first.pile_code, first.gun_count, first.protocol_version, first.pile_type) == (
            PILE, 1, 16, 0)
        verify = platform.messages(BillingModelVerify)
        assert verify and verify[0].model_code == "0000"  # type: ignore[attr-defined]
        assert platform.messages(BillingModelRequest)

        # clock just before the 11:00 tip → peak boundary, then the app start
        sync_seq = platform.send(TimeSync(pile_code=PILE, time=cp56("2024-05-20T10:59:59.300")))
        await platform.wait_count(TimeSyncReply.FRAME_TYPE, 1)
        echo = platform.of(TimeSyncReply.FRAME_TYPE)[0]
        assert echo.frame.seq == sync_seq
        assert echo.message.time == cp56("2024-05-20T10:59:59.300")  # type: ignore[attr-defined]

        start_seq = platform.send(remote_start())
        [reply] = await platform.wait_count(RemoteStartReply.FRAME_TYPE, 1)
        assert reply.frame.seq == start_seq
        assert isinstance(reply.message, RemoteStartReply)
        assert (reply.message.trade_no, reply.message.result, reply.message.fail_reason) == (
            TRADE, 1, 0)
        await asyncio.wait_for(pile.charging(1).wait(), 2)

        await platform.wait_for(lambda: len(charging_frames(platform)) >= 8, 5)
        platform.send(RemoteStop(pile_code=PILE, gun=1))
        [stop] = await platform.wait_count(RemoteStopReply.FRAME_TYPE, 1)
        assert isinstance(stop.message, RemoteStopReply) and stop.message.result == 1
        await asyncio.wait_for(pile.record_confirmed(TRADE).wait(), 3)

        # 0x13 while charging: status 3, the trade number, energy and amount increasing
        live = charging_frames(platform)
        energies = [m.energy_kwh4 for m in live]
        assert energies == sorted(energies) and energies[-1] > energies[0]
        assert all(b > a for a, b in itertools.pairwise(energies))
        amounts = [m.amount_yuan4 for m in live]
        assert amounts == sorted(amounts) and amounts[-1] > 0
        assert all(m.output_voltage_v1 > 3000 and m.output_current_a1 > 0 for m in live)

        # DC: BMS end frame before the record
        assert platform.of(ChargingEnd.FRAME_TYPE)

        # the record: sent twice with identical bytes, confirmed on the second send, then quiet
        records = platform.of(TransactionRecord.FRAME_TYPE)
        assert len(records) == 2
        assert records[0].raw == records[1].raw
        await asyncio.sleep(0.6)  # longer than record_retry_interval
        assert len(platform.of(TransactionRecord.FRAME_TYPE)) == 2

        record = records[0].message
        assert isinstance(record, TransactionRecord)
        prices = tier_prices_yuan5(model)
        assert record.trade_no == TRADE
        assert record.stop_reason == StopReason.APP_REMOTE_STOP
        assert record.trade_flag == TradeFlag.APP
        assert record.physical_card == CARD
        assert [t.price_yuan5 for t in record.tiers] == list(prices)
        energies4 = [t.energy_kwh4 for t in record.tiers]
        assert energies4[0] > 0 and energies4[1] > 0, "the session crossed 11:00 (tip → peak)"
        assert energies4[2:] == [0, 0]
        assert sum(energies4) == record.total_energy_kwh4 == record.total_loss_energy_kwh4
        assert [t.loss_energy_kwh4 for t in record.tiers] == energies4
        assert [t.amount_yuan4 for t in record.tiers] == [
            half_up_amount(e, p) for e, p in zip(energies4, prices, strict=True)]
        assert record.total_amount_yuan4 == sum(t.amount_yuan4 for t in record.tiers)
        assert record.meter_end_kwh4 - record.meter_start_kwh4 == record.total_energy_kwh4
        assert record.total_energy_kwh4 >= energies[-1]
        start_dt = record.start_time.to_datetime()
        end_dt = record.end_time.to_datetime()
        assert start_dt is not None and end_dt is not None
        assert str(start_dt) < "2024-05-20 11:00:00" < str(end_dt)

        # the ledger says the same
        [entry] = pile.ledger
        assert entry.confirmed and entry.confirm_result == 0
        assert entry.record == record
        assert entry.record_frame == records[0].raw
        assert list(entry.energy_kwh4) == energies4
        assert list(entry.amount_yuan4) == [t.amount_yuan4 for t in record.tiers]
        assert (entry.meter_start_kwh4, entry.meter_stop_kwh4) == (
            record.meter_start_kwh4, record.meter_end_kwh4)
        summary = entry.summary()
        assert summary["energy"] == entry.total_energy() and summary["confirmed"] is True

        # after the stop the gun reports idle again; heartbeats flowed and were answered
        last = platform.messages(RealTimeData)[-1]
        assert isinstance(last, RealTimeData) and last.status == ConnectorStatus.IDLE
        counters = pile.counters
        assert counters.records_confirmed == 1 and counters.records_resent == 1
        assert counters.sent[0x03] >= 1 and counters.heartbeats_missed == 0
        assert counters.sent[0x3B] == 2 and counters.received[0x40] == 1
        assert counters.frames_ignored == 0
        assert not platform.errors
        # every frame the pile sent decodes to what it counted
        for item in platform.frames:
            assert decode_frame(item.raw)[0] == item.frame


async def test_unconfirmed_record_survives_a_reconnect() -> None:
    """The platform drops the link while the 0x3B is unconfirmed: after the next login the pile
    sends the same record again, before verifying its model, and the platform confirms it."""
    async with FakePlatform(model=demo_model(), confirm_on=1, confirm_conns={1}) as platform, \
            running(platform, record_retry_interval=5.0) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        platform.send(remote_start())
        await asyncio.wait_for(pile.charging(1).wait(), 2)
        await asyncio.sleep(0.3)
        platform.send(RemoteStop(pile_code=PILE, gun=1))
        [first] = await platform.wait_count(TransactionRecord.FRAME_TYPE, 1)
        assert pile.unconfirmed and not pile.ledger[0].confirmed

        platform.drop()
        await asyncio.wait_for(pile.record_confirmed(TRADE).wait(), 5)

        assert len(platform.conns) == 2
        second_conn = [r for r in platform.frames if r.conn == 1]
        types = [r.frame.frame_type for r in second_conn]
        assert types[0] == 0x01
        assert types.index(0x3B) < types.index(0x05), "stored records go before 0x05"
        resent = platform.of(TransactionRecord.FRAME_TYPE, conn=1)
        assert [r.raw for r in resent] == [first.raw]
        assert pile.ledger[0].confirmed and not pile.unconfirmed
        assert pile.counters.reconnects == 1 and pile.counters.logins == 2
        assert pile.counters.records_confirmed == 1
        # the model code is kept across the reconnect: the second 0x05 matches, no second 0x09
        verifies = platform.messages(BillingModelVerify, conn=1)
        assert verifies and verifies[0].model_code == "0001"  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)
        assert not platform.messages(BillingModelRequest, conn=1)
