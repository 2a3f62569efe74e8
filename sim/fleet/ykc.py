"""YKC piles in the fleet: :class:`sim.ykc.SimPile` with measurements, and their driver.

:class:`MeteredPile` is a :class:`~sim.ykc.SimPile` that also times the acknowledgements it
waits for: login 0x01 -> 0x02, heartbeat 0x03 -> 0x04 and transaction record 0x3B -> 0x40
(from the record's first send, so an outage the pile sat through shows). It hooks the pile's
frame writer and dispatcher (``_write``, ``_dispatch``, ``_send_record``); the fleet test
fails if those hooks stop being called (no latencies).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from bridges.ykc import (
    DecodeResult,
    FrameFailure,
    HeartbeatReply,
    LoginReply,
    TransactionRecordConfirm,
)
from bridges.ykc.constants import PileType, StopReason
from sim.fleet.app import AppClient
from sim.fleet.driver import ChargerDriver, LedgerSink, RunClock
from sim.fleet.ledger import ykc_row
from sim.fleet.meter import KindMeter
from sim.fleet.schedule import PlannedSession, device_seed
from sim.fleet.spec import DevicePlan, FleetSpec, Kind
from sim.ykc import LedgerEntry, PileConfig, SimPile

__all__ = ["MeteredPile", "YkcDriver"]

#: frame types that acknowledge something the pile sent
_ACK_TYPES = frozenset({0x02, 0x04, 0x06, 0x0A, 0x32, 0x40})
_LOGIN, _HEARTBEAT, _RECORD = 0x01, 0x03, 0x3B
_APP_START_WAIT = 10.0


class MeteredPile(SimPile):
    """A simulated pile that counts its frames into a :class:`KindMeter` and times its acks."""

    def __init__(self, config: PileConfig, host: str, port: int, meter: KindMeter,
                 on_confirmed: Callable[[MeteredPile, LedgerEntry], None]) -> None:
        super().__init__(config, host, port)
        self.meter = meter
        self.on_confirmed = on_confirmed
        self.ever_logged_in = False
        self._loop = asyncio.get_running_loop()
        self._login_at: float | None = None
        self._heartbeat_at: float | None = None
        self._record_first: dict[str, float] = {}

    def _write(self, frame: bytes, frame_type: int) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        super()._write(frame, frame_type)
        self.meter.sent += 1
        if frame_type == _HEARTBEAT:
            self._heartbeat_at = self._loop.time()
        elif frame_type == _LOGIN:
            self._login_at = self._loop.time()

    def _send_record(self, entry: LedgerEntry, now: float) -> None:
        if self.logged_in.is_set() and entry.record_frame is not None:
            self._record_first.setdefault(entry.trade_no, now)
        super()._send_record(entry, now)

    def _dispatch(self, result: DecodeResult, now: float) -> None:
        if isinstance(result, FrameFailure):
            super()._dispatch(result, now)
            return
        self.meter.received += 1
        msg = result.message
        was_logged_in = self.logged_in.is_set()
        # looked up first: confirming may prune the entry from the pile's bounded ledger
        entry = self.entry(msg.trade_no) if isinstance(msg, TransactionRecordConfirm) else None
        super()._dispatch(result, now)
        if msg.FRAME_TYPE not in _ACK_TYPES:
            return
        match msg:
            case LoginReply() if not was_logged_in and self.logged_in.is_set():
                self.ever_logged_in = True
                if self._login_at is not None:
                    self.meter.ack("login", now - self._login_at)
            case HeartbeatReply():
                if self._heartbeat_at is not None:
                    self.meter.ack("heartbeat", now - self._heartbeat_at)
            case TransactionRecordConfirm():
                first = self._record_first.pop(msg.trade_no, None)
                if first is not None and entry is not None and entry.confirmed:
                    self.meter.ack("record", now - first)
                    self.on_confirmed(self, entry)
            case _:
                self.meter.acked += 1


class YkcDriver(ChargerDriver[LedgerEntry]):
    """The YKC piles of one worker and their sessions (card swipes, app starts)."""

    def __init__(self, spec: FleetSpec, clock: RunClock, ledger: LedgerSink,
                 app: AppClient | None) -> None:
        super().__init__(Kind.YKC, spec, clock, ledger, app)
        self.piles: dict[str, MeteredPile] = {}
        self._methods: dict[str, str] = {}
        assert spec.ykc_port is not None

    def _config(self, plan: DevicePlan) -> PileConfig:
        spec = self.spec
        config = PileConfig(
            pile_code=plan.device_id, guns=plan.connectors, pile_type=PileType.DC,
            bms_frames=spec.ykc_bms_frames, realtime_interval=spec.meter_interval,
            realtime_idle_interval=spec.idle_interval,
            seed=device_seed(spec.seed, "ykc", plan.device_id), ledger_max=16)
        if spec.heartbeat is not None:
            config = dataclasses.replace(config, heartbeat_interval=spec.heartbeat)
        if spec.plug_delay > 0 and spec.app_share > 0:
            # app starts find the gun unplugged: 0x33 "not plugged", the car comes after the
            # plug delay and the pile sends the second 0x33 (YKC spec §4.8)
            config = dataclasses.replace(config, start_not_plugged=True,
                                         plug_delay=spec.plug_delay)
        return config

    def add(self, plan: DevicePlan, delay: float) -> None:
        assert self.spec.ykc_port is not None
        pile = MeteredPile(self._config(plan), self.spec.ykc_host, self.spec.ykc_port,
                           self.meter, self._confirmed)
        self.plans.append(plan)
        self.piles[plan.device_id] = pile
        self.tasks.append(pile.start(initial_delay=delay))
        self.spawn_sessions(plan)

    # -- counts ------------------------------------------------------------------------------

    def connected(self) -> int:
        return sum(1 for pile in self.piles.values() if pile.logged_in.is_set())

    def ever_connected(self) -> int:
        return sum(1 for pile in self.piles.values() if pile.ever_logged_in)

    def active_sessions(self) -> int:
        return sum(1 for pile in self.piles.values()
                   for gun in range(1, pile.config.guns + 1) if pile.session(gun) is not None)

    def refresh(self) -> None:
        meter = self.meter
        started = reconnects = failures = 0
        refused = timeouts = missed = hb_timeouts = decode = 0
        for pile in self.piles.values():
            c = pile.counters
            started += c.sessions_started
            reconnects += c.reconnects
            failures += c.connect_failures
            refused += c.login_refused
            timeouts += c.login_timeouts
            missed += c.heartbeats_missed
            hb_timeouts += c.heartbeat_timeouts
            decode += c.decode_failures
        meter.sessions_started = started
        meter.reconnects = reconnects
        meter.connect_failures = failures
        for name, value in (("login_refused", refused), ("login_timeout", timeouts),
                            ("heartbeat_missed", missed), ("heartbeat_timeout", hb_timeouts),
                            ("decode_failure", decode)):
            if value:
                meter.errors[name] = value

    # -- sessions ----------------------------------------------------------------------------

    def ready(self, device_id: str, connector: int) -> bool:
        pile = self.piles[device_id]
        return pile.logged_in.is_set() and pile.model_loaded.is_set() and \
            pile.gun(connector).state == "idle"

    async def start_session(self, plan: DevicePlan, connector: int,
                            planned: PlannedSession) -> LedgerEntry | None:
        pile = self.piles[plan.device_id]
        if planned.method == "card":
            trade = await pile.swipe(connector, planned.card)
            if trade is None:
                self.meter.error("card_start_refused")
                return None
            self._methods[trade] = "card"
            return pile.entry(trade)
        device = f"{plan.device_id}{connector:02d}"
        output = await self.app_start(plan, device, planned)
        if output is None:
            return None
        if not output.get("accepted"):
            if output.get("reason") != "not plugged" or planned.plug_delay <= 0:
                self.meter.error("app_start_refused")
                return None
            # the second 0x33 comes when the car is plugged in
            if not await self.clock.until(lambda: pile.session(connector) is not None,
                                          planned.plug_delay + _APP_START_WAIT):
                if not self.clock.stopping:
                    self.meter.error("app_start_never_began")
                return None
        entry = pile.session(connector)
        if entry is None:
            self.meter.error("app_start_never_began")
            return None
        self._methods[entry.trade_no] = "app"
        return entry

    async def stop_session(self, plan: DevicePlan, connector: int, handle: LedgerEntry) -> None:
        pile = self.piles[plan.device_id]
        if pile.session(connector) is handle:  # it may have stopped by itself (SOC 100 %)
            pile.stop_charging(connector, StopReason.MANUAL_STOP)

    def _confirmed(self, pile: MeteredPile, entry: LedgerEntry) -> None:
        self.meter.sessions_completed += 1
        method = self._methods.pop(entry.trade_no, "other")
        self.ledger(ykc_row(pile.pile_code, entry, method=method,
                            timezone=pile.config.timezone))

    def leftover_rows(self) -> list[dict[str, Any]]:
        rows = []
        for pile in self.piles.values():
            for entry in pile.unconfirmed:
                method = self._methods.get(entry.trade_no, "other")
                rows.append(ykc_row(pile.pile_code, entry, method=method,
                                    timezone=pile.config.timezone))
        return rows

    async def stop(self) -> None:
        await super().stop()
        for pile in self.piles.values():
            await pile.stop()
