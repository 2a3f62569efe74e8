"""The simulated YKC pile: refusals, card starts, maintenance frames, robustness, the fleet."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ykc_sim_platform import (
    CARD,
    PILE,
    TRADE,
    FakePlatform,
    charging_frames,
    demo_model,
    fast_config,
    remote_start,
    running,
)

from bridges.ykc import (
    BalanceUpdate,
    BalanceUpdateReply,
    BillingModelRequest,
    BillingModelSet,
    BillingModelSetReply,
    ChargerStartReply,
    ChargerStartRequest,
    Heartbeat,
    Login,
    OfflineCard,
    OfflineCardClear,
    OfflineCardClearReply,
    OfflineCardQuery,
    OfflineCardQueryReply,
    OfflineCardSync,
    OfflineCardSyncReply,
    ParkingLockControl,
    ParkingLockControlReply,
    ParkingLockStatus,
    ReadRealTimeData,
    RealTimeData,
    RemoteParallelStart,
    RemoteParallelStartReply,
    RemoteReboot,
    RemoteRebootReply,
    RemoteStartReply,
    RemoteUpdate,
    RemoteUpdateReply,
    TransactionRecord,
    WorkParamsSet,
    WorkParamsSetReply,
    encode_raw_frame,
)
from bridges.ykc.constants import (
    ConnectorStatus,
    LockPosition,
    RemoteStartFailReason,
    StopReason,
    TradeFlag,
)
from sim.ykc import PileConfig, PileFleet, SimPile

CARD_TRADE = f"{PILE}02" + "240520120000" + "0042"


def only(platform: FakePlatform, cls: type[Any], conn: int | None = None) -> Any:
    [message] = platform.messages(cls, conn)
    return message


async def test_login_refused_then_retried() -> None:
    async with FakePlatform(model=demo_model(), login_results=[1, 1]) as platform, \
            running(platform) as pile:
        await asyncio.wait_for(pile.logged_in.wait(), 5)
        assert pile.counters.login_refused == 2
        assert pile.counters.connects == 3 and pile.counters.reconnects == 2
        assert [r.conn for r in platform.of(Login.FRAME_TYPE)] == [0, 1, 2]
        # nothing but the login was sent on the refused connections
        assert {r.frame.frame_type for r in platform.frames if r.conn < 2} == {0x01}


async def test_v15_pile_ignores_parallel_start() -> None:
    async with FakePlatform(model=demo_model()) as platform, \
            running(platform, protocol_version=15) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        assert only(platform, Login).protocol_version == 0x0F
        platform.send(RemoteParallelStart(
            trade_no=TRADE, pile_code=PILE, gun=1, logical_card="1", physical_card=CARD,
            balance_yuan2=0, parallel_id="240520105959"))
        await platform.wait_for(lambda: pile.counters.frames_ignored == 1, 2)
        assert not platform.of(RemoteParallelStartReply.FRAME_TYPE) and not pile.ledger


async def test_no_billing_model_no_charging() -> None:
    """The platform never answers 0x09: the pile keeps asking and refuses 0x34 (reason 4)."""
    async with FakePlatform(model=None) as platform, \
            running(platform, model_retry_interval=0.15) as pile:
        await platform.wait_count(BillingModelRequest.FRAME_TYPE, 3)
        platform.send(remote_start())
        [reply] = await platform.wait_count(RemoteStartReply.FRAME_TYPE, 1)
        assert (reply.message.result, reply.message.fail_reason) == (
            0, RemoteStartFailReason.OFFLINE)
        assert pile.model is None and not pile.ledger
        assert pile.counters.starts_refused == 1
        # a pushed model (0x58) is accepted and enables charging
        platform.send(BillingModelSet(pile_code=PILE, model=demo_model("0007")))
        [ack] = await platform.wait_count(BillingModelSetReply.FRAME_TYPE, 1)
        assert ack.message.result == 1 and pile.model is not None
        platform.send(remote_start())
        await asyncio.wait_for(pile.charging(1).wait(), 2)
        assert pile.ledger[0].model_code == "0007"


async def test_start_refusals_and_not_plugged() -> None:
    async with FakePlatform(model=demo_model()) as platform, \
            running(platform, start_not_plugged=True, plug_delay=0.3, guns=2) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        platform.send(remote_start())
        [first] = await platform.wait_count(RemoteStartReply.FRAME_TYPE, 1)
        assert (first.message.result, first.message.fail_reason) == (
            0, RemoteStartFailReason.NOT_PLUGGED)
        assert pile.gun(1).state == "starting"
        replies = await platform.wait_count(RemoteStartReply.FRAME_TYPE, 2)
        assert (replies[1].message.trade_no, replies[1].message.result) == (TRADE, 1)
        assert pile.charging(1).is_set()

        other = f"{PILE}01" + "240520105959" + "0002"
        platform.send(remote_start(other))  # gun 1 is busy
        platform.send(remote_start(TRADE))  # the same start again: same success
        wrong = remote_start(f"{PILE}02" + "240520105959" + "0003", gun=2)
        platform.send(dataclasses.replace(wrong, pile_code="32010200000099"))
        replies = await platform.wait_count(RemoteStartReply.FRAME_TYPE, 5)
        outcome = [(r.message.result, r.message.fail_reason) for r in replies[2:]]
        assert outcome == [(0, RemoteStartFailReason.GUN_ALREADY_CHARGING), (1, 0),
                           (0, RemoteStartFailReason.PILE_CODE_MISMATCH)]

        pile.set_fault(2)
        platform.send(remote_start(f"{PILE}02" + "240520105959" + "0004", gun=2))
        replies = await platform.wait_count(RemoteStartReply.FRAME_TYPE, 6)
        assert replies[5].message.fail_reason == RemoteStartFailReason.FAULT
        await platform.wait_for(lambda: any(
            isinstance(m, Heartbeat) and m.gun == 2 and m.gun_status == 1
            for m in platform.messages(Heartbeat)))
        assert any(isinstance(m, RealTimeData) and m.gun == 2 and m.status == ConnectorStatus.FAULT
                   for m in platform.messages(RealTimeData))
        assert len(pile.ledger) == 1


async def test_card_start_online_and_offline() -> None:
    async with FakePlatform(model=demo_model(), confirm_on=1) as platform, \
            running(platform, guns=2, pile_type=1, reconnect_min=0.6, reconnect_max=0.6) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        swipe = asyncio.create_task(pile.swipe(2, "D14B0A54"))
        [request] = await platform.wait_count(ChargerStartRequest.FRAME_TYPE, 1)
        msg = request.message
        assert isinstance(msg, ChargerStartRequest)
        assert (msg.gun, msg.start_mode, msg.account_or_card) == (2, 1, CARD)
        platform.send(ChargerStartReply(trade_no=CARD_TRADE, pile_code=PILE, gun=2,
                                        logical_card="1000000573", balance_yuan2=5000,
                                        authorized=1, fail_reason=0))
        assert await asyncio.wait_for(swipe, 2) == CARD_TRADE
        assert pile.session(2) is not None
        await platform.wait_for(lambda: len(charging_frames(platform, CARD_TRADE)) >= 3)
        live = charging_frames(platform, CARD_TRADE)
        assert live[-1].soc_pct == 0 and live[-1].output_voltage_v1 < 2300  # AC pile
        assert not platform.of(0x23)  # no BMS frames on AC

        # the same card again stops the session (reason 0x45)
        assert await pile.swipe(2, 0xD14B0A54) == CARD_TRADE
        await asyncio.wait_for(pile.record_confirmed(CARD_TRADE).wait(), 2)
        record = only(platform, TransactionRecord)
        assert (record.trade_flag, record.stop_reason) == (TradeFlag.CARD, StopReason.MANUAL_STOP)
        assert not platform.of(0x19)  # no BMS end frame on AC

        # a refused card does not start
        swipe = asyncio.create_task(pile.swipe(1, "0000000012345678"))
        await platform.wait_count(ChargerStartRequest.FRAME_TYPE, 2)
        platform.send(ChargerStartReply(trade_no="0" * 32, pile_code=PILE, gun=1,
                                        logical_card="0", balance_yuan2=0, authorized=0,
                                        fail_reason=3))
        assert await asyncio.wait_for(swipe, 2) is None

        # offline: the local card list (0x44) authorises and the pile makes its trade number
        platform.send(OfflineCardSync(pile_code=PILE, cards=(
            OfflineCard(logical_card="1000000574", physical_card="00000000AABBCCDD"),)))
        await platform.wait_count(OfflineCardSyncReply.FRAME_TYPE, 1)
        platform.confirm_conns = {1}
        platform.drop()  # the pile stays offline for 0.3-0.6 s (its reconnect backoff)
        await asyncio.wait_for(_cleared(pile.logged_in), 2)
        assert await pile.swipe(1, "BBCCDD00") is None  # not on the list
        trade = await pile.swipe(1, "AABBCCDD")
        assert trade is not None and trade.startswith(f"{PILE}01")
        await asyncio.sleep(0.1)
        assert pile.stop_charging(1) is not None
        assert not pile.connected and pile.unconfirmed[0].trade_no == trade
        await asyncio.wait_for(pile.record_confirmed(trade).wait(), 5)
        offline = [m for m in platform.messages(TransactionRecord) if m.trade_no == trade]
        assert offline[0].trade_flag == TradeFlag.OFFLINE_CARD
        assert offline[0].total_energy_kwh4 > 0


async def _cleared(event: asyncio.Event) -> None:
    while event.is_set():  # noqa: ASYNC110 - test helper
        await asyncio.sleep(0.01)


async def test_maintenance_frames_are_answered() -> None:
    async with FakePlatform(model=demo_model()) as platform, \
            running(platform, guns=2, parking_lock=True) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        await platform.wait_count(ParkingLockStatus.FRAME_TYPE, 2)  # one per gun after login

        seq = platform.send(ReadRealTimeData(pile_code=PILE, gun=2))
        await platform.wait_for(lambda: any(r.frame.seq == seq for r in platform.of(0x13)))

        platform.send(OfflineCardSync(pile_code=PILE, cards=(
            OfflineCard(logical_card="1", physical_card="0000000000000001"),
            OfflineCard(logical_card="2", physical_card="0000000000000002"))))
        await platform.wait_count(OfflineCardSyncReply.FRAME_TYPE, 1)
        platform.send(OfflineCardClear(pile_code=PILE, cards=("0000000000000001",
                                                             "0000000000000009")))
        await platform.wait_count(OfflineCardClearReply.FRAME_TYPE, 1)
        platform.send(OfflineCardQuery(pile_code=PILE, cards=("0000000000000001",
                                                             "0000000000000002")))
        await platform.wait_count(OfflineCardQueryReply.FRAME_TYPE, 1)
        assert only(platform, OfflineCardSyncReply).result == 1
        assert [(r.cleared, r.reason) for r in only(platform, OfflineCardClearReply).results] == [
            (1, 0), (0, 1)]
        assert [r.present for r in only(platform, OfflineCardQueryReply).results] == [0, 1]
        assert pile.offline_cards == {"0000000000000002": "0000000000000002"}

        platform.send(WorkParamsSet(pile_code=PILE, disabled=0, max_power_pct=50))
        platform.send(WorkParamsSet(pile_code=PILE, disabled=0, max_power_pct=10))  # invalid
        replies = await platform.wait_count(WorkParamsSetReply.FRAME_TYPE, 2)
        assert [r.message.result for r in replies] == [1, 0] and pile.max_power_pct == 50

        platform.send(ParkingLockControl(pile_code=PILE, gun=2, action=0x55))
        await platform.wait_count(ParkingLockControlReply.FRAME_TYPE, 1)
        statuses = await platform.wait_count(ParkingLockStatus.FRAME_TYPE, 3)
        assert only(platform, ParkingLockControlReply).result == 1
        assert (statuses[-1].message.gun, statuses[-1].message.position) == (
            2, LockPosition.RAISED)

        platform.send(RemoteUpdate(pile_code=PILE, pile_model=1, power_kw=60,
                                   server_address="127.0.0.1", port=21, username="u",
                                   password="p", file_path="/fw.bin", when=1, timeout_min=5))
        await platform.wait_count(RemoteUpdateReply.FRAME_TYPE, 1)
        assert only(platform, RemoteUpdateReply).status == 0
        assert pile.last_update is not None and pile.last_update.file_path == "/fw.bin"

        # v1.6 parallel start on both guns: first gun master, second slave
        for gun, counter in ((1, "0005"), (2, "0006")):
            platform.send(RemoteParallelStart(
                trade_no=f"{PILE}0{gun}240520105959{counter}", pile_code=PILE, gun=gun,
                logical_card="1", physical_card=CARD, balance_yuan2=0,
                parallel_id="240520105959"))
        replies = await platform.wait_count(RemoteParallelStartReply.FRAME_TYPE, 2)
        assert [(r.message.result, r.message.gun_role) for r in replies] == [(1, 0), (1, 1)]

        platform.send(BalanceUpdate(pile_code=PILE, gun=1, physical_card=CARD,
                                    balance_yuan2=777))
        platform.send(BalanceUpdate(pile_code=PILE, gun=1, physical_card="0000000000000003",
                                    balance_yuan2=1))
        replies = await platform.wait_count(BalanceUpdateReply.FRAME_TYPE, 2)
        assert [r.message.result for r in replies] == [0, 2]

        # not understood: garbage, an unknown frame type, a frame for another pile
        ignored = pile.counters.frames_ignored
        platform.send_raw(b"\x01\x02garbage")
        platform.send_raw(encode_raw_frame(0x7E, b"\x00" * 4))
        platform.send(ReadRealTimeData(pile_code="32010200000099", gun=1))
        await platform.wait_for(lambda: pile.counters.frames_ignored >= ignored + 3, 2)
        assert pile.counters.decode_failures >= 2
        assert pile.logged_in.is_set()

        # reboot now: 0x91, sessions end, disconnect, log in again
        platform.send(RemoteReboot(pile_code=PILE, when=1))
        await platform.wait_count(RemoteRebootReply.FRAME_TYPE, 1)
        await platform.wait_count(Login.FRAME_TYPE, 2, timeout=5)
        await asyncio.wait_for(pile.logged_in.wait(), 5)
        assert pile.counters.reboots == 1
        assert {r.message.stop_reason for r in platform.of(TransactionRecord.FRAME_TYPE)} == {
            StopReason.UNKNOWN}
        assert not platform.errors


async def test_missed_heartbeats_drop_the_link() -> None:
    async with FakePlatform(model=demo_model(), answer_heartbeats=False) as platform, \
            running(platform, heartbeat_interval=0.1, missed_heartbeats_limit=3) as pile:
        await platform.wait_count(Login.FRAME_TYPE, 2, timeout=5)
        assert pile.counters.heartbeat_timeouts >= 1
        assert pile.counters.heartbeats_missed >= 2
        first_conn = platform.of(Heartbeat.FRAME_TYPE, conn=0)
        assert len(first_conn) == 3  # rounds 2 and 3 found the previous one unanswered


async def test_fleet_logs_in_and_aggregates() -> None:
    async with FakePlatform(model=demo_model()) as platform:
        fleet = PileFleet(25, "127.0.0.1", platform.port, "3201020", connect_rate=500.0,
                          heartbeat_interval=0.2, bms_frames=False, guns=2)
        async with fleet:
            await fleet.wait_logged_in(timeout=5)
            await asyncio.sleep(0.3)
            stats = fleet.stats()
        assert stats.piles == 25 and stats.logged_in == 25
        assert stats.counters.logins == 25 and stats.counters.sent[0x01] == 25
        assert stats.counters.sent[0x03] >= 50
        assert len({r.message.pile_code for r in platform.of(Login.FRAME_TYPE)}) == 25
        assert fleet.pile("32010200000025").config.seed == 24
        assert stats.as_dict()["loggedIn"] == 25
        assert all(not pile.connected for pile in fleet.piles)
        assert not platform.errors


async def test_clean_cancel_and_connect_failures() -> None:
    config: PileConfig = fast_config(connect_timeout=0.5)
    pile = SimPile(config, "127.0.0.1", 1)  # nothing listens on port 1
    task = pile.start()
    await asyncio.sleep(0.3)
    assert pile.counters.connect_failures >= 1 and not pile.connected
    await pile.stop()
    assert task.cancelled()
