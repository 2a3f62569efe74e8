"""One simulated YKC charging pile: the TCP client side of the protocol, on the sans-I/O codec.

A pile is one asyncio task (:meth:`SimPile.run`). The task owns the connection and drives every
timer itself: it reads with a deadline equal to the earliest due timer (heartbeat, real-time
data, record retry, model retry, plug-in, reboot) and runs what is due. Methods called from other
tasks (:meth:`SimPile.swipe`, :meth:`SimPile.stop_charging`, ...) act at once and move that
deadline earlier if needed, so there are no per-pile helper tasks or threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridges.ykc import (
    ZERO_TRADE_NO,
    BalanceUpdate,
    BalanceUpdateReply,
    BillingModel,
    BillingModelReply,
    BillingModelRequest,
    BillingModelSet,
    BillingModelSetReply,
    BillingModelVerify,
    BillingModelVerifyReply,
    BmsDemandOutput,
    BmsHandshake,
    BmsInfo,
    BmsParameters,
    CardClearResult,
    CardQueryResult,
    ChargerStartReply,
    ChargerStartRequest,
    ChargingEnd,
    DecodeResult,
    FrameFailure,
    Heartbeat,
    HeartbeatReply,
    Login,
    LoginReply,
    Message,
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
    RemoteStart,
    RemoteStartReply,
    RemoteStop,
    RemoteStopReply,
    RemoteUpdate,
    RemoteUpdateReply,
    SequenceCounter,
    StreamDecoder,
    TimeSync,
    TimeSyncReply,
    TransactionRecordConfirm,
    WorkParamsSet,
    WorkParamsSetReply,
    build_trade_no,
    encode_frame,
)
from bridges.ykc.constants import (
    ChargeMode,
    ConnectorStatus,
    ExecuteWhen,
    HardwareFault,
    Holstered,
    LockAction,
    LockAlarm,
    LockPosition,
    LoginResult,
    ModelVerifyResult,
    OtaStatus,
    RemoteStartFailReason,
    RemoteStopFailReason,
    SpaceState,
    StartMode,
    StopReason,
    TradeFlag,
)

from .billing import accrue_energy, model_is_valid, tier_prices_yuan5
from .config import DEFAULT_PORT, PileConfig
from .ledger import LedgerEntry

__all__ = ["GunView", "PileCounters", "SimPile"]

log = logging.getLogger(__name__)

INF = math.inf
PLUG_WINDOW = 60.0
"""A start answered "not plugged" becomes a session only if the gun is plugged within 60 s."""
_READ_SIZE = 4096
_IDLE_SLEEP = 3600.0
_ZERO_CARD = "0" * 16
_VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_CELLS = 96  # series cells of the simulated DC battery (cell voltage = pack voltage / 96)


class _Disconnect(Exception):
    """Internal: end the current connection (the argument names the reason)."""


@dataclass(slots=True)
class PileCounters:
    """What a pile did. ``sent`` / ``received`` count frames by frame type."""

    sent: Counter[int] = field(default_factory=Counter)
    received: Counter[int] = field(default_factory=Counter)
    connects: int = 0
    """TCP connections opened."""
    reconnects: int = 0
    """Connections opened after the first one."""
    connect_failures: int = 0
    disconnects: int = 0
    logins: int = 0
    login_refused: int = 0
    """0x02 with a failure result (the pile retries after the backoff)."""
    login_timeouts: int = 0
    heartbeats_missed: int = 0
    """Heartbeats (per gun) whose 0x04 had not arrived when the next round was due."""
    heartbeat_timeouts: int = 0
    """Links dropped after ``missed_heartbeats_limit`` silent rounds."""
    frames_ignored: int = 0
    """Platform frames not acted upon: undecodable, unknown type, wrong pile code, unexpected."""
    decode_failures: int = 0
    """Subset of ``frames_ignored`` the stream decoder reported (CRC, length, unknown type...)."""
    models_loaded: int = 0
    sessions_started: int = 0
    sessions_stopped: int = 0
    starts_refused: int = 0
    records_sent: int = 0
    """0x3B frames written, first sends and re-sends."""
    records_resent: int = 0
    records_confirmed: int = 0
    reboots: int = 0

    def add(self, other: PileCounters) -> None:
        """Add ``other``'s counts to these (fleet totals)."""
        for item in dataclasses.fields(self):
            mine = getattr(self, item.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, item.name))
            else:
                setattr(self, item.name, mine + getattr(other, item.name))

    def as_dict(self) -> dict[str, Any]:
        """Plain dict; frame types as ``"0x13"`` keys."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Counter):
                out[item.name] = {f"0x{code:02X}": n for code, n in sorted(value.items())}
            else:
                out[item.name] = value
        return out


@dataclass(slots=True, eq=False)
class _Gun:
    number: int
    meter_kwh4: int
    plugged: bool
    faulted: bool = False
    fault_bits: int = 0
    session: LedgerEntry | None = None
    model: BillingModel | None = None
    start_mono: float = 0.0
    last_mono: float = 0.0
    last_local: datetime | None = None
    remainder: int = 0
    soc: float = 0.0
    balance_yuan2: int = 0
    pending: RemoteStart | RemoteParallelStart | None = None
    pending_until: float = 0.0
    plug_due: float = INF
    rt_due: float = INF
    lock_position: int = LockPosition.LOWERED


@dataclass(frozen=True)
class GunView:
    """Read-only snapshot of a gun (see :meth:`SimPile.gun`)."""

    number: int
    state: str
    """``idle``, ``starting`` (0x34 answered "not plugged", waiting for the plug), ``charging``."""
    plugged: bool
    faulted: bool
    meter_kwh4: int
    soc: float
    trade_no: str | None
    lock_position: int


class SimPile:
    """A simulated YKC pile connecting to ``host:port`` (see the package docstring)."""

    def __init__(self, config: PileConfig, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.counters = PileCounters()
        self.ledger: list[LedgerEntry] = []
        """Every session, in start order (see :class:`LedgerEntry`)."""
        self.model: BillingModel | None = None
        """The billing model in force (from 0x0A / 0x58); None: the pile refuses to charge."""
        self.offline_cards: dict[str, str] = {}
        """Local card list (0x44/0x46/0x48): physical card (16 hex) → logical card (16 digits)."""
        self.disabled = False
        self.max_power_pct = 100
        self.last_update: RemoteUpdate | None = None
        self.logged_in = asyncio.Event()
        """Set while the pile is logged in (0x02 success), cleared on disconnect."""
        self.model_loaded = asyncio.Event()
        """Set once the pile holds a valid billing model (stays set across reconnects)."""
        self._rng = random.Random(config.seed)
        meter = config.meter_start_kwh4
        self._guns = {
            number: _Gun(
                number,
                meter if meter is not None else self._rng.randrange(10_000_000, 500_000_000),
                plugged=not config.start_not_plugged,
            )
            for number in range(1, config.guns + 1)
        }
        self._zone = ZoneInfo(config.timezone)
        self._clock_offset = timedelta(0)
        self._decoder = StreamDecoder()
        self._seq = SequenceCounter()
        self._writer: asyncio.StreamWriter | None = None
        self._timeout: asyncio.Timeout | None = None
        self._task: asyncio.Task[None] | None = None
        self._drop: str | None = None
        self._login_due = INF
        self._hb_due = INF
        self._hb_waiting = 0  # bit per gun whose last heartbeat is unanswered
        self._hb_strikes = 0
        self._model_due = INF
        self._model_phase: str | None = None  # "verify" (0x05 sent) | "request" (0x09 sent)
        self._lock_due = INF
        self._reboot_due = INF
        self._reboot_when_idle = False
        self._unconfirmed: dict[str, LedgerEntry] = {}
        self._resend_at: dict[str, float] = {}
        self._auth_waiters: dict[int, asyncio.Future[ChargerStartReply | None]] = {}
        self._charging_events: dict[int, asyncio.Event] = {}
        self._confirm_events: dict[str, asyncio.Event] = {}
        self._parallel_master: dict[str, int] = {}
        self._trade_counter = 0
        self._failures = 0

    # -- public: state ----------------------------------------------------------------------

    @property
    def pile_code(self) -> str:
        return self.config.pile_code

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def unconfirmed(self) -> list[LedgerEntry]:
        """Ended sessions whose 0x3B has not been confirmed yet (oldest first)."""
        return list(self._unconfirmed.values())

    def now(self) -> datetime:
        """The pile's local clock (naive), as last set by a 0x56 time sync."""
        return datetime.now(self._zone).replace(tzinfo=None) + self._clock_offset

    def gun(self, number: int) -> GunView:
        gun = self._gun(number)
        state = "charging" if gun.session else "starting" if gun.pending else "idle"
        return GunView(number, state, gun.plugged, gun.faulted, gun.meter_kwh4, gun.soc,
                       gun.session.trade_no if gun.session else None, gun.lock_position)

    def session(self, gun: int) -> LedgerEntry | None:
        """The running session of ``gun`` (its ledger entry), if any."""
        return self._gun(gun).session

    def entry(self, trade_no: str) -> LedgerEntry | None:
        """The ledger entry of ``trade_no``."""
        return next((e for e in reversed(self.ledger) if e.trade_no == trade_no), None)

    def charging(self, gun: int) -> asyncio.Event:
        """Event set while ``gun`` is charging."""
        self._gun(gun)
        event = self._charging_events.get(gun)
        if event is None:
            event = self._charging_events[gun] = asyncio.Event()
            if self._guns[gun].session is not None:
                event.set()
        return event

    def record_confirmed(self, trade_no: str) -> asyncio.Event:
        """Event set once the 0x40 for ``trade_no`` has arrived."""
        event = self._confirm_events.get(trade_no)
        if event is None:
            event = asyncio.Event()
            entry = self.entry(trade_no)
            if entry is not None and entry.confirmed:
                event.set()
            else:
                self._confirm_events[trade_no] = event
        return event

    # -- public: lifecycle ------------------------------------------------------------------

    def start(self, *, initial_delay: float = 0.0) -> asyncio.Task[None]:
        """Run the pile in a new task (returned; also kept for :meth:`stop`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(initial_delay=initial_delay),
                                             name=f"ykc-pile-{self.pile_code}")
        return self._task

    async def stop(self) -> None:
        """Cancel the pile's task and wait for it (the connection is closed)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> SimPile:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self, *, initial_delay: float = 0.0) -> None:
        """Connect, log in, serve; reconnect with jittered backoff; forever (until cancelled)."""
        loop = asyncio.get_running_loop()
        try:
            if initial_delay > 0:
                await self._offline_until(loop.time() + initial_delay)
            while True:
                delay = await self._connect_and_serve()
                await self._offline_until(loop.time() + delay)
        finally:
            self._close()

    def disconnect(self) -> None:
        """Drop the TCP connection now (the pile reconnects after its backoff)."""
        if self._writer is not None:
            self._drop = "requested"
            self._poke(0.0)

    # -- public: the driver at the pile -------------------------------------------------------

    async def swipe(self, gun: int, physical_card: str | int, *,
                    timeout: float | None = None) -> str | None:
        """Swipe a card at ``gun``.

        Idle gun: online, send 0x31 and wait for 0x32; offline, check the local card list and
        start with a trade number of the pile's own (trade flag 0x04). Returns the trade number
        of the started session, or None if refused / unanswered. A gun charging a session
        started with this card stops (reason 0x45) and its trade number is returned.
        """
        card = _card(physical_card)
        state = self._gun(gun)
        loop = asyncio.get_running_loop()
        if state.session is not None:
            if state.session.physical_card == card:
                entry = self._finish(state, StopReason.MANUAL_STOP, loop.time())
                return entry.trade_no
            return None
        if not self._can_start(state) or gun in self._auth_waiters:
            self.counters.starts_refused += 1
            return None
        if not self.logged_in.is_set():
            logical = self.offline_cards.get(card)
            if logical is None:
                self.counters.starts_refused += 1
                return None
            self._trade_counter = (self._trade_counter + 1) % 10000
            trade = build_trade_no(self.pile_code, gun, self.now().replace(microsecond=0),
                                   self._trade_counter)
            self._begin(state, trade, TradeFlag.OFFLINE_CARD, card, 0, loop.time())
            return trade
        future: asyncio.Future[ChargerStartReply | None] = loop.create_future()
        self._auth_waiters[gun] = future
        try:
            self._send(ChargerStartRequest(
                pile_code=self.pile_code, gun=gun, start_mode=StartMode.CARD, password_required=0,
                account_or_card=card, password_md5=bytes(16), vin=""))
            try:
                async with asyncio.timeout(timeout if timeout is not None
                                           else self.config.auth_timeout):
                    reply = await future
            except TimeoutError:
                reply = None
        finally:
            if self._auth_waiters.get(gun) is future:
                del self._auth_waiters[gun]
        if reply is None or reply.authorized != 1 or not self._can_start(state):
            self.counters.starts_refused += 1
            return None
        self._begin(state, reply.trade_no, TradeFlag.CARD, card, reply.balance_yuan2, loop.time())
        return reply.trade_no

    def plug(self, gun: int) -> None:
        """Plug the car in; a start waiting for the plug (within 60 s) begins now."""
        self._plug(self._gun(gun), asyncio.get_running_loop().time())
        self._wake()

    def stop_charging(self, gun: int, reason: int = StopReason.MANUAL_STOP) -> LedgerEntry | None:
        """Stop the session of ``gun`` at the pile (button, car full, fault...); 0x19/0x3B follow."""
        state = self._gun(gun)
        if state.session is None:
            return None
        entry = self._finish(state, reason, asyncio.get_running_loop().time())
        self._wake()
        return entry

    def set_fault(self, gun: int, faulted: bool = True, *,
                  fault_bits: int = HardwareFault.EMERGENCY_STOP,
                  stop_reason: int = StopReason.UNKNOWN) -> None:
        """Fault (or repair) a gun: heartbeat and 0x13 report it, starts are refused, a running
        session stops with ``stop_reason``."""
        state = self._gun(gun)
        now = asyncio.get_running_loop().time()
        state.faulted = faulted
        state.fault_bits = fault_bits if faulted else 0
        if faulted and state.session is not None:
            self._finish(state, stop_reason, now)
        else:
            self._send(self._realtime(state, now))
        self._wake()

    # -- connection ---------------------------------------------------------------------------

    async def _connect_and_serve(self) -> float:
        """One connection; returns the delay before the next attempt."""
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:  # includes TimeoutError and ConnectionRefusedError
            self.counters.connect_failures += 1
            log.debug("pile %s: connect to %s:%d failed: %r", self.pile_code, self.host,
                      self.port, exc)
            return self._backoff()
        self.counters.connects += 1
        if self.counters.connects > 1:
            self.counters.reconnects += 1
        self._attach(writer)
        reason = "lost"
        try:
            await self._serve(reader, writer)
        except _Disconnect as exc:
            reason = str(exc)
        except OSError as exc:  # ConnectionResetError, BrokenPipeError...
            reason = f"lost: {exc!r}"
        finally:
            self._close()
        log.debug("pile %s: disconnected (%s)", self.pile_code, reason)
        if reason == "reboot":
            return self.config.reboot_duration
        return self._backoff()

    def _backoff(self) -> float:
        cfg = self.config
        delay = min(cfg.reconnect_max, cfg.reconnect_min * 2 ** min(self._failures, 30))
        self._failures += 1
        return float(delay * (0.5 + self._rng.random() / 2))

    def _attach(self, writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        self._writer = writer
        self._drop = None
        self._decoder.reset()
        self._seq.reset()
        self._send(Login(
            pile_code=cfg.pile_code, pile_type=cfg.pile_type, gun_count=cfg.guns,
            protocol_version=cfg.protocol_version, firmware_version=cfg.firmware,
            network_type=cfg.network_type, iccid=cfg.iccid, carrier=cfg.carrier))
        self._login_due = asyncio.get_running_loop().time() + cfg.login_timeout

    def _close(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self._writer = None
        self.counters.disconnects += 1
        self.logged_in.clear()
        self._login_due = self._hb_due = self._model_due = self._lock_due = INF
        self._hb_waiting = self._hb_strikes = 0
        self._model_phase = None
        self._resend_at.clear()
        for future in self._auth_waiters.values():
            if not future.done():
                future.set_result(None)
        with contextlib.suppress(RuntimeError, OSError):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._run_timers(loop.time())
            if self._drop is not None:
                raise _Disconnect(self._drop)
            data = await self._read(reader, self._next_deadline())
            if data is None:
                continue
            if not data:
                raise _Disconnect("closed by the platform")
            for result in self._decoder.feed(data):
                self._dispatch(result, loop.time())
            await writer.drain()

    async def _offline_until(self, deadline: float) -> None:
        """Wait while not connected, keeping the meters of charging guns running."""
        loop = asyncio.get_running_loop()
        while (now := loop.time()) < deadline:
            self._run_timers(now)
            await self._sleep(min(deadline, self._next_deadline()))

    async def _read(self, reader: asyncio.StreamReader, deadline: float) -> bytes | None:
        try:
            async with asyncio.timeout_at(deadline if deadline < INF else None) as timeout:
                self._timeout = timeout
                return await reader.read(_READ_SIZE)
        except TimeoutError:
            return None
        finally:
            self._timeout = None

    async def _sleep(self, deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline if deadline < INF else None) as timeout:
                self._timeout = timeout
                await asyncio.sleep(_IDLE_SLEEP)
        except TimeoutError:
            pass
        finally:
            self._timeout = None

    def _wake(self) -> None:
        """Move the task's current wait deadline up to the earliest due timer."""
        self._poke(self._next_deadline())

    def _poke(self, when: float) -> None:
        timeout = self._timeout
        if timeout is not None and not timeout.expired():
            current = timeout.when()
            if current is None or when < current:
                timeout.reschedule(when)

    def _next_deadline(self) -> float:
        due = min(self._login_due, self._hb_due, self._model_due, self._lock_due,
                  self._reboot_due)
        for gun in self._guns.values():
            due = min(due, gun.rt_due, gun.plug_due)
        if self._resend_at:
            due = min(due, *self._resend_at.values())
        return due

    # -- sending ------------------------------------------------------------------------------

    def _send(self, message: Message, seq: bytes | None = None) -> bool:
        """Write one frame if logged in (the login itself before); replies echo ``seq``."""
        if self._writer is None or not (self.logged_in.is_set() or isinstance(message, Login)):
            return False
        self._write(encode_frame(message, seq if seq is not None else self._seq.next()),
                    message.FRAME_TYPE)
        return True

    def _write(self, frame: bytes, frame_type: int) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        writer.write(frame)
        self.counters.sent[frame_type] += 1

    # -- timers -------------------------------------------------------------------------------

    def _run_timers(self, now: float) -> None:
        if self._writer is not None:
            if not self.logged_in.is_set():
                if now >= self._login_due:
                    self.counters.login_timeouts += 1
                    raise _Disconnect("login timeout")
            else:
                if now >= self._hb_due:
                    self._heartbeat(now)
                if now >= self._model_due:
                    self._ask_model(now)
                if now >= self._lock_due:
                    self._lock_reports(now)
                for trade, at in list(self._resend_at.items()):
                    if at <= now:
                        self._send_record(self._unconfirmed[trade], now)
            if now >= self._reboot_due:
                self._reboot(now)
        for gun in self._guns.values():
            if now >= gun.plug_due:
                gun.plug_due = INF
                self._plug(gun, now)
            if now >= gun.rt_due:
                self._realtime_due(gun, now)

    def _heartbeat(self, now: float) -> None:
        cfg = self.config
        if self._hb_waiting:
            self.counters.heartbeats_missed += self._hb_waiting.bit_count()
            self._hb_strikes += 1
            if self._hb_strikes >= cfg.missed_heartbeats_limit:
                self.counters.heartbeat_timeouts += 1
                raise _Disconnect("heartbeat timeout")
        else:
            self._hb_strikes = 0
        waiting = 0
        for gun in self._guns.values():
            self._send(Heartbeat(pile_code=cfg.pile_code, gun=gun.number,
                                 gun_status=1 if gun.faulted else 0))
            waiting |= 1 << gun.number
        self._hb_waiting = waiting
        self._hb_due = now + cfg.heartbeat_interval

    def _ask_model(self, now: float) -> None:
        if self._model_phase == "request":
            self._send(BillingModelRequest(pile_code=self.pile_code))
        else:
            self._model_phase = "verify"
            code = self.model.model_code if self.model is not None else "0000"
            self._send(BillingModelVerify(pile_code=self.pile_code, model_code=code))
        self._model_due = now + self.config.model_retry_interval

    def _lock_reports(self, now: float) -> None:
        for gun in self._guns.values():
            self._send(self._lock_status(gun))
        self._lock_due = now + self.config.lock_report_interval

    def _realtime_due(self, gun: _Gun, now: float) -> None:
        cfg = self.config
        if gun.session is None:
            self._send(self._realtime(gun, now))
            gun.rt_due = now + cfg.realtime_idle_interval
            return
        self._accrue(gun, now)
        if cfg.is_dc and cfg.stop_at_full_soc and gun.soc >= 100.0:
            self._finish(gun, StopReason.SOC_FULL, now)
            return
        self._send(self._realtime(gun, now))
        if cfg.is_dc and cfg.bms_frames:
            self._send(self._bms_demand(gun, now))
            self._send(self._bms_info(gun))
        gun.rt_due = now + cfg.realtime_interval

    def _reboot(self, now: float) -> None:
        self._reboot_due = INF
        self._reboot_when_idle = False
        self.counters.reboots += 1
        for gun in self._guns.values():
            if gun.session is not None:
                self._finish(gun, StopReason.UNKNOWN, now)
            gun.pending, gun.plug_due = None, INF
        raise _Disconnect("reboot")

    # -- the meter ----------------------------------------------------------------------------

    def _power_w(self) -> int:
        return round(self.config.power_kw * 10 * self.max_power_pct)

    def _accrue(self, gun: _Gun, now: float) -> None:
        """Book the energy delivered since the last step (power × time, split per tier)."""
        entry, model = gun.session, gun.model
        if entry is None or model is None or gun.last_local is None:
            return
        duration_us = round((now - gun.last_mono) * 1_000_000)
        if duration_us <= 0:
            return
        added, gun.remainder = accrue_energy(model.slots, entry.energy_kwh4, gun.remainder,
                                             self._power_w(), gun.last_local, duration_us)
        gun.last_mono = now
        gun.last_local = self.now()
        gun.meter_kwh4 += added
        if self.config.is_dc:
            gun.soc = min(100.0, gun.soc + added / 100.0 / self.config.battery_kwh)

    def _accrue_all(self, now: float) -> None:
        for gun in self._guns.values():
            self._accrue(gun, now)

    def _can_start(self, gun: _Gun) -> bool:
        return (gun.session is None and not gun.faulted and not self.disabled
                and self.model is not None and self._reboot_due == INF
                and not self._reboot_when_idle)

    def _begin(self, gun: _Gun, trade_no: str, flag: int, card: str, balance_yuan2: int,
               now: float) -> LedgerEntry:
        cfg = self.config
        model = self.model
        assert model is not None
        entry = LedgerEntry(
            trade_no=trade_no, gun=gun.number, trade_flag=flag, physical_card=card,
            model_code=model.model_code, prices_yuan5=tier_prices_yuan5(model),
            started_at=self.now(), meter_start_kwh4=gun.meter_kwh4,
            vin=self._vin() if cfg.is_dc else "")
        gun.session, gun.model = entry, model
        gun.pending, gun.plug_due, gun.plugged = None, INF, True
        gun.start_mono = gun.last_mono = now
        gun.last_local = entry.started_at
        gun.remainder = 0
        gun.soc = self._rng.uniform(*cfg.start_soc) if cfg.is_dc else 0.0
        gun.balance_yuan2 = balance_yuan2
        self.ledger.append(entry)
        self.counters.sessions_started += 1
        event = self._charging_events.get(gun.number)
        if event is not None:
            event.set()
        if cfg.is_dc and cfg.bms_frames:
            self._send(self._bms_handshake(gun, entry))
            self._send(self._bms_parameters(gun))
        self._send(self._realtime(gun, now))
        gun.rt_due = now + cfg.realtime_interval
        log.debug("pile %s gun %d: charging, trade %s", self.pile_code, gun.number, trade_no)
        return entry

    def _finish(self, gun: _Gun, reason: int, now: float) -> LedgerEntry:
        """Stop the session: 0x19 (DC), the 0x3B (kept until confirmed), an idle 0x13."""
        cfg = self.config
        entry = gun.session
        assert entry is not None
        self._accrue(gun, now)
        entry.ended_at = self.now()
        entry.meter_stop_kwh4 = gun.meter_kwh4
        entry.stop_reason = reason
        if cfg.is_dc:
            self._send(self._charging_end(gun, entry, now))
        gun.session = gun.model = None
        gun.last_local = None
        gun.plugged = not cfg.start_not_plugged
        self.counters.sessions_stopped += 1
        event = self._charging_events.get(gun.number)
        if event is not None:
            event.clear()
        entry.record = entry.build_record(cfg.pile_code)
        entry.record_frame = encode_frame(entry.record, self._seq.next())
        self._unconfirmed[entry.trade_no] = entry
        self._send_record(entry, now)
        self._send(self._realtime(gun, now))
        gun.rt_due = now + cfg.realtime_idle_interval
        if all(g.session is None for g in self._guns.values()):
            self._parallel_master.clear()
            if self._reboot_when_idle:
                self._reboot_due = now
        log.debug("pile %s gun %d: stopped (0x%02X), %d kWh4, %d yuan4", self.pile_code,
                  gun.number, reason, entry.total_energy_kwh4, entry.total_amount_yuan4)
        return entry

    def _send_record(self, entry: LedgerEntry, now: float) -> None:
        """(Re-)send the stored 0x3B bytes; retried every ``record_retry_interval``."""
        if not self.logged_in.is_set() or entry.record_frame is None:
            return
        self._write(entry.record_frame, 0x3B)
        if entry.record_sends:
            self.counters.records_resent += 1
        entry.record_sends += 1
        self.counters.records_sent += 1
        self._resend_at[entry.trade_no] = now + self.config.record_retry_interval

    def _plug(self, gun: _Gun, now: float) -> None:
        gun.plugged = True
        pending, gun.pending = gun.pending, None
        gun.plug_due = INF
        if pending is None or now > gun.pending_until:
            return
        if not self._can_start(gun):
            self.counters.starts_refused += 1
            return
        self._start_reply(pending, 1, RemoteStartFailReason.NONE, None)
        self._begin(gun, pending.trade_no, TradeFlag.APP, pending.physical_card,
                    pending.balance_yuan2, now)

    def _prune_ledger(self) -> None:
        limit = self.config.ledger_max
        if limit is None or len(self.ledger) <= limit:
            return
        excess = len(self.ledger) - limit
        kept: list[LedgerEntry] = []
        for entry in self.ledger:
            if excess and entry.confirmed:
                excess -= 1
            else:
                kept.append(entry)
        self.ledger[:] = kept

    # -- frames from the platform -------------------------------------------------------------

    def _dispatch(self, result: DecodeResult, now: float) -> None:
        if isinstance(result, FrameFailure):
            self.counters.decode_failures += 1
            self.counters.frames_ignored += 1
            log.debug("pile %s: undecodable frame ignored: %s", self.pile_code, result.error)
            return
        msg, seq = result.message, result.seq
        self.counters.received[msg.FRAME_TYPE] += 1
        if not self.logged_in.is_set():
            if isinstance(msg, LoginReply) and msg.pile_code == self.pile_code:
                self._on_login_reply(msg, now)
            else:
                self._ignore(msg)
            return
        if getattr(msg, "pile_code", self.pile_code) != self.pile_code and not isinstance(
            msg, RemoteStart | RemoteParallelStart | RemoteStop | BalanceUpdate | RemoteUpdate
        ):
            self._ignore(msg)
            return
        match msg:
            case HeartbeatReply():
                self._hb_waiting &= ~(1 << msg.gun)
            case BillingModelVerifyReply():
                self._on_verify_reply(msg, now)
            case BillingModelReply():
                if self._store_model(msg.model):
                    self._model_phase, self._model_due = None, INF
                else:
                    self._ignore(msg)
            case BillingModelSet():
                stored = self._store_model(msg.model)
                if stored:
                    self._model_phase, self._model_due = None, INF
                self._send(BillingModelSetReply(pile_code=self.pile_code, result=int(stored)),
                           seq)
            case TimeSync():
                self._on_time_sync(msg, seq, now)
            case ReadRealTimeData():
                gun = self._guns.get(msg.gun)
                if gun is None:
                    self._ignore(msg)
                else:
                    self._accrue(gun, now)
                    self._send(self._realtime(gun, now), seq)
            case RemoteParallelStart() if not self.config.is_v16:
                self._ignore(msg)
            case RemoteStart() | RemoteParallelStart():
                self._on_remote_start(msg, seq, now)
            case RemoteStop():
                self._on_remote_stop(msg, seq, now)
            case ChargerStartReply():
                future = self._auth_waiters.get(msg.gun)
                if future is None or future.done():
                    self._ignore(msg)
                else:
                    future.set_result(msg)
            case TransactionRecordConfirm():
                self._on_record_confirm(msg)
            case BalanceUpdate():
                self._on_balance(msg, seq)
            case OfflineCardSync():
                self._on_card_sync(msg, seq)
            case OfflineCardClear():
                self._on_card_clear(msg, seq)
            case OfflineCardQuery():
                results = tuple(CardQueryResult(physical_card=card,
                                                present=int(card in self.offline_cards))
                                for card in msg.cards)
                self._send(OfflineCardQueryReply(pile_code=self.pile_code, results=results), seq)
            case WorkParamsSet():
                self._on_work_params(msg, seq, now)
            case ParkingLockControl():
                self._on_lock(msg, seq)
            case RemoteReboot():
                self._send(RemoteRebootReply(pile_code=self.pile_code, result=1), seq)
                if msg.when == ExecuteWhen.WHEN_IDLE and any(
                    g.session is not None for g in self._guns.values()
                ):
                    self._reboot_when_idle = True
                else:
                    self._reboot_due = now
            case RemoteUpdate():
                ok = msg.pile_code == self.pile_code
                if ok:
                    self.last_update = msg
                self._send(RemoteUpdateReply(
                    pile_code=self.pile_code,
                    status=OtaStatus.OK if ok else OtaStatus.WRONG_PILE_CODE), seq)
            case _:
                self._ignore(msg)

    def _ignore(self, msg: Message) -> None:
        self.counters.frames_ignored += 1
        log.debug("pile %s: ignored 0x%02X %s", self.pile_code, msg.FRAME_TYPE,
                  type(msg).__name__)

    def _on_login_reply(self, msg: LoginReply, now: float) -> None:
        cfg = self.config
        if msg.result != LoginResult.SUCCESS:
            self.counters.login_refused += 1
            raise _Disconnect("login refused")
        self.logged_in.set()
        self.counters.logins += 1
        self._failures = 0
        self._login_due = INF
        for entry in list(self._unconfirmed.values()):  # stored records first (spec §5.1)
            self._send_record(entry, now)
        for gun in self._guns.values():
            self._accrue(gun, now)
            self._send(self._realtime(gun, now))
            gun.rt_due = now + (cfg.realtime_interval if gun.session
                                else cfg.realtime_idle_interval)
        self._ask_model(now)
        self._hb_due = now + cfg.heartbeat_interval
        self._hb_waiting = self._hb_strikes = 0
        if cfg.parking_lock:
            self._lock_reports(now)

    def _on_verify_reply(self, msg: BillingModelVerifyReply, now: float) -> None:
        if (msg.result == ModelVerifyResult.MATCH and self.model is not None
                and msg.model_code == self.model.model_code):
            self._model_phase, self._model_due = None, INF
            self.model_loaded.set()
            return
        self._model_phase = "request"
        self._ask_model(now)

    def _store_model(self, model: BillingModel) -> bool:
        if not model_is_valid(model):
            return False
        self.model = model
        self.counters.models_loaded += 1
        self.model_loaded.set()
        return True

    def _on_time_sync(self, msg: TimeSync, seq: bytes, now: float) -> None:
        when = msg.time.to_datetime()
        if when is not None:
            self._accrue_all(now)  # book the energy so far with the old clock
            self._clock_offset = when - datetime.now(self._zone).replace(tzinfo=None)
            local = self.now()
            for gun in self._guns.values():
                if gun.session is not None:
                    gun.last_local = local
        self._send(TimeSyncReply(pile_code=self.pile_code, time=msg.time), seq)

    def _on_remote_start(self, msg: RemoteStart | RemoteParallelStart, seq: bytes,
                         now: float) -> None:
        gun = self._guns.get(msg.gun)
        reason: int
        if msg.pile_code != self.pile_code:
            reason = RemoteStartFailReason.PILE_CODE_MISMATCH
        elif gun is None or gun.faulted or self.disabled:
            reason = RemoteStartFailReason.FAULT
        elif gun.session is not None:
            if gun.session.trade_no == msg.trade_no:  # a repeated 0x34: same answer
                self._start_reply(msg, 1, RemoteStartFailReason.NONE, seq)
                return
            reason = RemoteStartFailReason.GUN_ALREADY_CHARGING
        elif self.model is None or not self._can_start(gun):
            reason = RemoteStartFailReason.OFFLINE  # no billing model: not in service
        elif not gun.plugged:
            reason = RemoteStartFailReason.NOT_PLUGGED
            gun.pending, gun.pending_until = msg, now + PLUG_WINDOW
            delay = self.config.plug_delay
            gun.plug_due = now + delay if delay is not None and delay <= PLUG_WINDOW else INF
        else:
            self._start_reply(msg, 1, RemoteStartFailReason.NONE, seq)
            self._begin(gun, msg.trade_no, TradeFlag.APP, msg.physical_card, msg.balance_yuan2,
                        now)
            return
        self.counters.starts_refused += 1
        self._start_reply(msg, 0, reason, seq)

    def _start_reply(self, msg: RemoteStart | RemoteParallelStart, result: int, reason: int,
                     seq: bytes | None) -> None:
        common: dict[str, Any] = {"trade_no": msg.trade_no, "pile_code": self.pile_code,
                                  "gun": msg.gun, "result": result, "fail_reason": reason}
        if isinstance(msg, RemoteParallelStart):
            master = self._parallel_master.setdefault(msg.parallel_id, msg.gun)
            self._send(RemoteParallelStartReply(**common, gun_role=int(master != msg.gun),
                                                parallel_id=msg.parallel_id), seq)
        else:
            self._send(RemoteStartReply(**common), seq)

    def _on_remote_stop(self, msg: RemoteStop, seq: bytes, now: float) -> None:
        gun = self._guns.get(msg.gun)
        result, reason = 0, RemoteStopFailReason.NONE
        if msg.pile_code != self.pile_code:
            reason = RemoteStopFailReason.PILE_CODE_MISMATCH
        elif gun is None:
            reason = RemoteStopFailReason.OTHER
        elif gun.session is None and gun.pending is None:
            reason = RemoteStopFailReason.GUN_NOT_CHARGING
        else:
            result = 1
        self._send(RemoteStopReply(pile_code=self.pile_code, gun=msg.gun, result=result,
                                   fail_reason=reason), seq)
        if result and gun is not None:
            if gun.session is not None:
                self._finish(gun, StopReason.APP_REMOTE_STOP, now)
            gun.pending, gun.plug_due = None, INF  # also stops a start still waiting for the plug

    def _on_record_confirm(self, msg: TransactionRecordConfirm) -> None:
        entry = self._unconfirmed.pop(msg.trade_no, None)
        if entry is None:  # unknown or already confirmed
            self._ignore(msg)
            return
        self._resend_at.pop(msg.trade_no, None)
        entry.confirmed = True
        entry.confirm_result = msg.result
        self.counters.records_confirmed += 1
        event = self._confirm_events.pop(msg.trade_no, None)
        if event is not None:
            event.set()
        self._prune_ledger()

    def _on_balance(self, msg: BalanceUpdate, seq: bytes) -> None:
        gun = self._guns.get(msg.gun)
        if msg.pile_code != self.pile_code:
            result = 1
        elif gun is None or gun.session is None or msg.physical_card not in (
            _ZERO_CARD, gun.session.physical_card
        ):
            result = 2
        else:
            gun.balance_yuan2 = msg.balance_yuan2
            result = 0
        self._send(BalanceUpdateReply(pile_code=self.pile_code, physical_card=msg.physical_card,
                                      result=result), seq)

    def _on_card_sync(self, msg: OfflineCardSync, seq: bytes) -> None:
        cards = {card.physical_card: card.logical_card for card in msg.cards}
        if len(self.offline_cards.keys() | cards.keys()) > self.config.offline_card_capacity:
            result, reason = 0, 2  # storage full
        else:
            self.offline_cards.update(cards)
            result, reason = 1, 0
        self._send(OfflineCardSyncReply(pile_code=self.pile_code, result=result,
                                        fail_reason=reason), seq)

    def _on_card_clear(self, msg: OfflineCardClear, seq: bytes) -> None:
        if not msg.cards:  # count 0: clear the whole list
            self.offline_cards.clear()
        results = tuple(
            CardClearResult(physical_card=card, cleared=1, reason=0)
            if self.offline_cards.pop(card, None) is not None
            else CardClearResult(physical_card=card, cleared=0, reason=1)  # 1: not in the list
            for card in msg.cards
        )
        self._send(OfflineCardClearReply(pile_code=self.pile_code, results=results), seq)

    def _on_work_params(self, msg: WorkParamsSet, seq: bytes, now: float) -> None:
        ok = msg.disabled in (0, 1) and 30 <= msg.max_power_pct <= 100
        if ok:
            self._accrue_all(now)  # energy so far at the old power
            self.disabled = bool(msg.disabled)
            self.max_power_pct = msg.max_power_pct
        self._send(WorkParamsSetReply(pile_code=self.pile_code, result=int(ok)), seq)

    def _on_lock(self, msg: ParkingLockControl, seq: bytes) -> None:
        gun = self._guns.get(msg.gun)
        ok = gun is not None and msg.action in (LockAction.RAISE, LockAction.LOWER)
        self._send(ParkingLockControlReply(pile_code=self.pile_code, gun=msg.gun,
                                           result=int(ok)), seq)
        if ok and gun is not None:
            gun.lock_position = LockPosition.RAISED if msg.action == LockAction.RAISE \
                else LockPosition.LOWERED
            self._send(self._lock_status(gun))

    # -- frames to the platform ---------------------------------------------------------------

    def _electrics(self, gun: _Gun) -> tuple[float, float]:
        """Output voltage (V) and current (A) of a charging gun, with a little noise."""
        volts = 350.0 + 0.7 * gun.soc if self.config.is_dc else 220.0
        volts *= 1 + self._rng.uniform(-0.003, 0.003)
        return volts, self._power_w() / volts

    def _realtime(self, gun: _Gun, now: float) -> RealTimeData:
        cfg = self.config
        entry = gun.session
        if entry is None:
            return RealTimeData(
                trade_no=ZERO_TRADE_NO, pile_code=cfg.pile_code, gun=gun.number,
                status=ConnectorStatus.FAULT if gun.faulted else ConnectorStatus.IDLE,
                gun_holstered=Holstered.NO if gun.plugged else Holstered.YES,
                gun_plugged=int(gun.plugged), output_voltage_v1=0, output_current_a1=0,
                cable_temp_c_off50=25 + 50, cable_code=0, soc_pct=0, battery_max_temp_c_off50=0,
                charged_min=0, remaining_min=0, energy_kwh4=0, loss_energy_kwh4=0,
                amount_yuan4=0, hardware_faults=gun.fault_bits)
        volts, amps = self._electrics(gun)
        minutes = int((now - gun.start_mono) // 60)
        energy = entry.total_energy_kwh4
        return RealTimeData(
            trade_no=entry.trade_no, pile_code=cfg.pile_code, gun=gun.number,
            status=ConnectorStatus.CHARGING, gun_holstered=Holstered.NO, gun_plugged=1,
            output_voltage_v1=_u16(volts * 10), output_current_a1=_u16(amps * 10),
            cable_temp_c_off50=min(35 + minutes // 10, 90) + 50, cable_code=0,
            soc_pct=int(gun.soc) if cfg.is_dc else 0,
            battery_max_temp_c_off50=min(28 + minutes // 15, 60) + 50 if cfg.is_dc else 0,
            charged_min=_u16(minutes), remaining_min=self._remaining_min(gun),
            energy_kwh4=energy, loss_energy_kwh4=energy, amount_yuan4=entry.total_amount_yuan4,
            hardware_faults=gun.fault_bits)

    def _remaining_min(self, gun: _Gun) -> int:
        cfg = self.config
        if not cfg.is_dc or self._power_w() <= 0:
            return 0
        kwh = (100.0 - gun.soc) / 100.0 * cfg.battery_kwh
        return _u16(kwh / (self._power_w() / 1000) * 60)

    def _vin(self) -> str:
        return "LVM" + "".join(self._rng.choice(_VIN_ALPHABET) for _ in range(14))

    def _bms_handshake(self, gun: _Gun, entry: LedgerEntry) -> BmsHandshake:
        cfg = self.config
        return BmsHandshake(
            trade_no=entry.trade_no, pile_code=cfg.pile_code, gun=gun.number,
            bms_protocol_version=b"\x01\x01\x00", battery_type=0x03,
            rated_capacity_ah1=_u16(cfg.battery_kwh * 1000 / 384 * 10), rated_voltage_v1=3840,
            manufacturer="VMSB", pack_serial=self._rng.randrange(1 << 32),
            production_year_off1985=2023 - 1985, production_month=6, production_day=1,
            cycle_count=self._rng.randrange(2000), ownership=1, reserved=0, vin=entry.vin,
            bms_software_version=bytes(8))

    def _bms_parameters(self, gun: _Gun) -> BmsParameters:
        cfg = self.config
        volts, _ = self._electrics(gun)
        return BmsParameters(
            trade_no=_trade(gun), pile_code=cfg.pile_code, gun=gun.number,
            max_cell_voltage_v2=425, max_charge_current_a1_off400=_a_off400(250.0),
            nominal_energy_kwh1=_u16(cfg.battery_kwh * 10), max_total_voltage_v1=4500,
            max_temp_c_off50=60 + 50, soc_pct1=_u16(gun.soc * 10), pack_voltage_v1=_u16(volts * 10),
            charger_max_voltage_v1=7500, charger_min_voltage_v1=2000,
            charger_max_current_a1_off400=_a_off400(250.0),
            charger_min_current_a1_off400=_a_off400(0.0))

    def _bms_demand(self, gun: _Gun, now: float) -> BmsDemandOutput:
        volts, amps = self._electrics(gun)
        cell_v2 = _u16(volts / _CELLS * 100) & 0x0FFF
        return BmsDemandOutput(
            trade_no=_trade(gun), pile_code=self.pile_code, gun=gun.number,
            demand_voltage_v1=_u16((volts + 5) * 10), demand_current_a1_off400=_a_off400(amps + 2),
            charge_mode=ChargeMode.CONSTANT_CURRENT, measured_voltage_v1=_u16(volts * 10),
            measured_current_a1_off400=_a_off400(amps), max_cell_voltage_group=cell_v2 | 1 << 12,
            soc_pct=int(gun.soc), remaining_min=self._remaining_min(gun),
            output_voltage_v1=_u16(volts * 10), output_current_a1_off400=_a_off400(amps),
            charged_min=_u16((now - gun.start_mono) // 60))

    def _bms_info(self, gun: _Gun) -> BmsInfo:
        return BmsInfo(
            trade_no=_trade(gun), pile_code=self.pile_code, gun=gun.number,
            max_cell_voltage_index=1 + gun.number % _CELLS, max_battery_temp_c_off50=32 + 50,
            max_temp_probe=1, min_battery_temp_c_off50=27 + 50, min_temp_probe=2,
            status_flags=0b01 << 12)  # all normal, charging allowed

    def _charging_end(self, gun: _Gun, entry: LedgerEntry, now: float) -> ChargingEnd:
        volts = 350.0 + 0.7 * gun.soc
        return ChargingEnd(
            trade_no=entry.trade_no, pile_code=self.pile_code, gun=gun.number,
            final_soc_pct=int(gun.soc), min_cell_voltage_v2=_u16(volts / _CELLS * 100) - 2,
            max_cell_voltage_v2=_u16(volts / _CELLS * 100) + 2,
            min_battery_temp_c_off50=27 + 50, max_battery_temp_c_off50=32 + 50,
            charge_min=_u16((now - gun.start_mono) // 60),
            output_energy_kwh1=_u16(entry.total_energy_kwh4 // 1000),
            charger_id=int(self.pile_code[-8:]))

    def _lock_status(self, gun: _Gun) -> ParkingLockStatus:
        return ParkingLockStatus(
            pile_code=self.pile_code, gun=gun.number, position=gun.lock_position,
            space=SpaceState.OCCUPIED if gun.session is not None else SpaceState.EMPTY,
            battery_pct=100, alarm=LockAlarm.NONE)

    # -- helpers ------------------------------------------------------------------------------

    def _gun(self, number: int) -> _Gun:
        gun = self._guns.get(number)
        if gun is None:
            raise ValueError(f"pile {self.pile_code} has no gun {number} (1..{self.config.guns})")
        return gun


def _card(value: str | int) -> str:
    """A physical card number as the codec writes it: 16 uppercase hex digits."""
    text = f"{value:016X}" if isinstance(value, int) else value.strip().upper().rjust(16, "0")
    if len(text) != 16 or any(c not in "0123456789ABCDEF" for c in text):
        raise ValueError(f"physical card must be up to 16 hex digits (8 bytes), got {value!r}")
    return text


def _trade(gun: _Gun) -> str:
    return gun.session.trade_no if gun.session is not None else ZERO_TRADE_NO


def _u16(value: float) -> int:
    return max(0, min(0xFFFF, round(value)))


def _a_off400(amps: float) -> int:
    """BMS current field (0.1 A, −400 A offset); the charging current is written positive."""
    return _u16((amps + 400) * 10)
