"""YKC (云快充) charging piles: a TCP listener speaking the binary protocol.

One :class:`PileSession` per TCP connection. The gateway answers the pile within its protocol
deadlines from local state, also while the cloud is unreachable:

* login (0x01) is checked against the chargers provisioned to this gateway (gateway desired
  state ``devices``); unknown piles are refused (0x02 failure, connection closed) unless
  ``auto_register`` is on, which admits them as ``registration: pending``;
* billing-model verify / request (0x05 / 0x09) are answered at once from the tariff the cloud
  pushed as desired state (the charger's own, else the gateway default), compiled into a YKC
  model;
* a card or VIN start (0x31) is authorised by the cloud within ``authorize_timeout``, else from
  the offline card list in the gateway's desired state, and the fallback is reported;
* a transaction record (0x3B) becomes a ``transactionRecord`` event that is durable in the outbox
  BEFORE the 0x40 confirmation is sent; a re-sent record is confirmed again without a second
  event (keyed by trade number);
* three missed heartbeats close the connection and mark the pile and its connectors offline;
* bad frames (CRC, length, unknown type, before login) are counted and logged; a connection that
  sends nothing but garbage is dropped; the process always survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from bridges.ykc import (
    Frame,
    FrameFailure,
    StreamDecoder,
    encode_frame,
)
from bridges.ykc.encoding import Cp56Time2a
from bridges.ykc.identifiers import SequenceCounter, build_parallel_id, build_trade_no
from bridges.ykc.mapper import (
    TariffError,
    billing_model_from_doc,
    connector_id,
    frame_data,
    login_properties,
    realtime_properties,
    record_params,
    src_tag,
)
from bridges.ykc.messages import (
    BalanceUpdate,
    BalanceUpdateReply,
    BillingModel,
    BillingModelReply,
    BillingModelRequest,
    BillingModelSet,
    BillingModelSetReply,
    BillingModelVerify,
    BillingModelVerifyReply,
    BmsAbort,
    BmsDemandOutput,
    BmsHandshake,
    BmsInfo,
    BmsParameters,
    ChargerAbort,
    ChargerStartReply,
    ChargerStartRequest,
    ChargingEnd,
    ChargingError,
    Heartbeat,
    HeartbeatReply,
    Login,
    LoginReply,
    OfflineCard,
    OfflineCardClear,
    OfflineCardClearReply,
    OfflineCardQuery,
    OfflineCardQueryReply,
    OfflineCardSync,
    OfflineCardSyncReply,
    ParallelStartReply,
    ParallelStartRequest,
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
    TimeSync,
    TimeSyncReply,
    TransactionRecord,
    TransactionRecordConfirm,
    WorkParamsSet,
    WorkParamsSetReply,
)
from bridges.ykc.messages.base import Message
from bridges.ykc.units import YUAN2
from edge.adapter import Adapter
from edge.config import YkcConfig
from edge.context import EdgeContext
from edge.errors import (
    DeviceOffline,
    DeviceRejected,
    DeviceTimeout,
    OutboxError,
    ServiceNotSupported,
    UnknownDevice,
)
from thingmodels.errors import PayloadError
from thingmodels.ids import now_ms

log = logging.getLogger("voltmesh.edge.ykc")

_BMS_EVENTS: dict[type[Message], str] = {
    BmsHandshake: "bmsHandshake",
    BmsParameters: "bmsParameters",
    ChargingEnd: "chargeEnd",
    ChargingError: "bmsError",
    BmsAbort: "bmsAbort",
    ChargerAbort: "chargerAbort",
    BmsDemandOutput: "bmsDemand",
    BmsInfo: "bmsStatus",
}
_START_FAIL = {0: None, 1: "pile code mismatch", 2: "gun already charging", 3: "fault",
               4: "offline", 5: "not plugged"}
_STOP_FAIL = {0: None, 1: "pile code mismatch", 2: "gun not charging", 3: "other"}
_LOCK_POSITION = {0x00: "moving", 0x55: "raised", 0xFF: "lowered"}
_LOCK_ALARM = {0x00: "none", 0xFF: "damaged", 0x55: "stuck"}
_ZERO_CARD = "0" * 16
_NOT_PLUGGED = 5
PLUG_WINDOW = 60.0
"""A remote start answered "not plugged" (0x33 reason 5) becomes a session when the gun is
plugged within 60 s of the 0x34: the pile then sends a second 0x33 for the same trade (§4.8)."""
_PLUG_SLACK = 10.0  # transit and clock slack on top of the pile's 60 s


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):  # no tz database: China has no DST, a fixed offset is exact
        return timezone(timedelta(hours=8), name)


def _card(value: str | None) -> str:
    """A physical card as 16 hex characters (left-padded), or zeros."""
    if not value:
        return _ZERO_CARD
    text = value.strip().upper()
    if len(text) > 16 or any(c not in "0123456789ABCDEF" for c in text):
        return _ZERO_CARD
    return text.rjust(16, "0")


def _logical(value: str | None) -> str:
    digits = "".join(c for c in (value or "") if c.isdigit())[-16:]
    return digits.rjust(16, "0")


@dataclass(frozen=True, slots=True)
class PlugWait:
    """A remote start the pile refused as "not plugged": its second 0x33 may still come."""

    gun: int
    until: float  # time.monotonic() after which a late 0x33 is no longer accepted
    id_tag: str


@dataclass
class PileSession:
    """One connected pile."""

    adapter: YkcAdapter
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    pile: str | None = None
    src: str = "ykc15"
    guns: int = 0
    last_rx: float = field(default_factory=time.monotonic)
    bad_in_a_row: int = 0
    unusable: int = 0
    decoder: StreamDecoder = field(default_factory=StreamDecoder)
    counter: SequenceCounter = field(default_factory=SequenceCounter)
    pending: dict[tuple[int, str], asyncio.Future[Message]] = field(default_factory=dict)
    active_trades: dict[int, str] = field(default_factory=dict)
    #: trade number -> a start answered "not plugged" whose second 0x33 is still possible
    plug_waits: dict[str, PlugWait] = field(default_factory=dict)
    #: gun -> ms timestamp of its last property sample (samples of a gun get distinct ones)
    last_sample_ms: dict[int, int] = field(default_factory=dict)
    closed: bool = False
    #: work that waits for the cloud (card starts): it must not hold up the read loop
    background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def ctx(self) -> EdgeContext:
        assert self.adapter.ctx is not None
        return self.adapter.ctx

    # -- wire ---------------------------------------------------------------------------

    def send(self, message: Message, seq: bytes | None = None) -> None:
        """Write one frame (replies echo the request's sequence bytes)."""
        if self.closed:
            raise DeviceOffline(f"pile {self.pile} is not connected")
        self.writer.write(encode_frame(message, seq if seq is not None else self.counter.next()))
        self.adapter.frames_out += 1

    async def request(self, message: Message, reply: type[Message], key: str,
                      deadline_ms: int) -> Message:
        """Send and wait for the matching reply until the deadline."""
        slot = (reply.FRAME_TYPE, key)
        if slot in self.pending and not self.pending[slot].done():
            raise DeviceRejected(f"a {type(message).__name__} for {key} is already waiting")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.pending[slot] = future
        try:
            self.send(message)
            await self.writer.drain()
            remaining = max(0.0, deadline_ms / 1000 - time.time())
            async with asyncio.timeout(remaining):
                return await future
        except TimeoutError:
            raise DeviceTimeout(f"pile {self.pile} did not answer {type(message).__name__}") \
                from None
        finally:
            if self.pending.get(slot) is future:
                del self.pending[slot]

    def resolve(self, message: Message, key: str, *, unasked_ok: bool = False) -> bool:
        """Hand a reply to the request waiting for it; False when none waits (counted as
        unsolicited unless ``unasked_ok``: the answer to a frame sent without waiting)."""
        future = self.pending.get((type(message).FRAME_TYPE, key))
        if future is not None and not future.done():
            future.set_result(message)
            return True
        if not unasked_ok:
            self.unsolicited(message)
        return False

    def unsolicited(self, message: Message) -> None:
        self.adapter.unsolicited += 1
        self.adapter.count("ykc_unsolicited_replies")
        log.info("pile %s: 0x%02X answers no request of ours", self.pile, message.FRAME_TYPE)

    def wait_for_plug(self, trade: str, gun: int, id_tag: str) -> None:
        """Remember a start refused as "not plugged" (expired ones are dropped here)."""
        now = time.monotonic()
        for key in [k for k, w in self.plug_waits.items() if w.until < now]:
            del self.plug_waits[key]
        self.plug_waits[trade] = PlugWait(gun, now + PLUG_WINDOW + _PLUG_SLACK, id_tag)

    async def start_reply(self, msg: RemoteStartReply | RemoteParallelStartReply) -> None:
        """A 0x33 / 0xA3: the answer to a waiting remote start, or the pile's second answer
        after "not plugged" (the gun was plugged in within 60 s: the session starts now)."""
        assert self.pile is not None
        future = self.pending.get((type(msg).FRAME_TYPE, msg.trade_no))
        if future is not None and not future.done():
            future.set_result(msg)
            return
        wait = self.plug_waits.get(msg.trade_no)
        if wait is None or wait.gun != msg.gun or time.monotonic() > wait.until:
            self.unsolicited(msg)
            return
        del self.plug_waits[msg.trade_no]
        if msg.result != 1:
            log.info("pile %s gun %d: start %s refused again (reason %d)", self.pile, msg.gun,
                     msg.trade_no, msg.fail_reason)
            return
        self.adapter.count("ykc_late_starts")
        self.active_trades[msg.gun] = msg.trade_no
        await self.ctx.event_once(
            f"ykc/started/{msg.trade_no}", "connector", connector_id(self.pile, msg.gun),
            "sessionStarted", {"sessionId": msg.trade_no, "seq": 0, "idTag": wait.id_tag,
                               "idType": "app"}, src=self.src)

    def _in_background(self, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(work, name=f"ykc-{self.pile}-{what}")
        self.background.add(task)
        task.add_done_callback(functools.partial(self._background_done, what))

    def _background_done(self, what: str, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, PayloadError):
            self.adapter.count("ykc_unmappable")
            self.ctx.stats.inc("malformed_frames")
            log.warning("pile %s frame %s does not map: %s", self.pile, what, exc)
        elif exc is not None:
            self.adapter.count("ykc_session_crashes")
            log.error("pile %s: handling %s failed", self.pile, what, exc_info=exc)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self.writer.close()
            for task in self.background:
                task.cancel()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(DeviceOffline("connection closed"))

    # -- reading ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the connection ends."""
        try:
            async with asyncio.timeout(self.adapter.config.login_timeout) as login_deadline:
                while self.pile is None and not self.closed:
                    if not await self._read_once():
                        return
                login_deadline.reschedule(None)
                while not self.closed:
                    if not await self._read_once():
                        return
        except TimeoutError:
            self.adapter.count("ykc_login_timeouts")
            log.info("no login from %s within %.0fs: closing", self.peer,
                     self.adapter.config.login_timeout)
        except (ConnectionError, OSError) as exc:
            log.info("pile %s (%s) connection error: %s", self.pile, self.peer, exc)
        except Exception:  # a bug must cost one connection, never the listener
            self.adapter.count("ykc_session_crashes")
            log.exception("pile %s (%s) session failed", self.pile, self.peer)
        finally:
            self.close()
            try:
                await self.adapter.session_ended(self)
            except OutboxError:  # the gateway is shutting down: its Will covers presence
                log.debug("pile %s ended during shutdown", self.pile)

    async def _read_once(self) -> bool:
        data = await self.reader.read(4096)
        if not data:
            return False
        self.last_rx = time.monotonic()
        for result in self.decoder.feed(data):
            if isinstance(result, FrameFailure):
                self._bad(result)
                if self.bad_in_a_row >= self.adapter.config.max_bad_frames:
                    self.adapter.count("ykc_dropped_garbage")
                    log.warning("dropping %s (pile %s): %d bad frames in a row", self.peer,
                                self.pile, self.bad_in_a_row)
                    return False
                continue
            self.bad_in_a_row = 0
            try:
                await self.handle(result)
            except PayloadError as exc:
                self.adapter.count("ykc_unmappable")
                self.ctx.stats.inc("malformed_frames")
                log.warning("pile %s frame 0x%02X does not map: %s", self.pile,
                            result.frame_type, exc)
            if self.closed:
                return False
        return True

    def _unusable(self, counter: str, what: str) -> None:
        """An intact frame the gateway must not act on: counted (also in the gateway's
        ``malformedFrames``) and logged (the first three of a connection)."""
        self.adapter.count(counter)
        self.ctx.stats.inc("malformed_frames")
        self.unusable += 1
        if self.unusable <= 3:
            log.warning("ignored frame from %s (pile %s): %s", self.peer, self.pile, what)

    def _bad(self, failure: FrameFailure) -> None:
        self.bad_in_a_row += 1
        kind = type(failure.error).__name__
        self.adapter.count(f"ykc_bad_{kind}")
        self.ctx.stats.inc("malformed_frames")
        if self.bad_in_a_row <= 3:
            log.warning("bad frame from %s (pile %s): %s", self.peer, self.pile, failure.error)

    # -- frames -------------------------------------------------------------------------

    async def handle(self, frame: Frame) -> None:
        """Dispatch one decoded frame."""
        msg = frame.message
        self.adapter.frames_in += 1
        if self.pile is None:
            if isinstance(msg, Login):
                await self.login(frame, msg)
            else:
                self._unusable("ykc_before_login", f"0x{frame.frame_type:02X} before login")
            return
        if getattr(msg, "pile_code", self.pile) != self.pile:
            self._unusable("ykc_foreign_pile_code",
                           f"0x{frame.frame_type:02X} for pile {getattr(msg, 'pile_code', '')}")
            return
        match msg:
            case Heartbeat():
                self.send(HeartbeatReply(pile_code=self.pile, gun=msg.gun), frame.seq)
            case BillingModelVerify():
                model = self.adapter.model_for(self.pile)
                same = model is not None and model.model_code == msg.model_code
                self.send(BillingModelVerifyReply(
                    pile_code=self.pile, model_code=msg.model_code, result=0 if same else 1),
                    frame.seq)
            case BillingModelRequest():
                model = self.adapter.model_for(self.pile)
                if model is None:
                    self.adapter.count("ykc_no_tariff")
                    log.warning("pile %s asks for a billing model but no tariff is known",
                                self.pile)
                    return
                self.send(BillingModelReply(pile_code=self.pile, model=model), frame.seq)
                self.ctx.report("charger", self.pile, {"billingModelCode": model.model_code},
                                src=self.src)
            case RealTimeData():
                await self.realtime(msg)
            case TransactionRecord():
                await self.record(frame, msg)
            case ChargerStartRequest() | ParallelStartRequest():
                # the decision may wait up to authorize_timeout for the cloud; meanwhile the
                # pile's heartbeats and real-time data are answered as usual
                self._in_background(self.card_start(frame, msg), f"0x{frame.frame_type:02X}")
            case ParkingLockStatus():
                lock = connector_id(self.pile, msg.gun)
                await self.ctx.presence("parking_lock", lock, True, src=self.src)
                self.ctx.report("parking_lock", lock, {
                    "position": _LOCK_POSITION.get(msg.position, "unknown"),
                    "occupied": msg.space == 0xFF, "battery": float(min(msg.battery_pct, 100)),
                    "alarm": _LOCK_ALARM.get(msg.alarm, "none"),
                }, src=self.src)
            case RemoteStartReply() | RemoteParallelStartReply():
                await self.start_reply(msg)
            case RemoteStopReply() | ParkingLockControlReply():
                self.resolve(msg, str(msg.gun))
            case BalanceUpdateReply() | OfflineCardSyncReply() | OfflineCardClearReply() | \
                    OfflineCardQueryReply() | WorkParamsSetReply() | BillingModelSetReply() | \
                    RemoteRebootReply() | RemoteUpdateReply():
                self.resolve(msg, self.pile)
            case TimeSyncReply():  # also the answer to the 0x56 sent after login / daily
                self.resolve(msg, self.pile, unasked_ok=True)
                device_ms = self.adapter.local_ms(msg.time)
                skew = self.ctx.check_skew(device_ms)
                if skew is not None:
                    self.ctx.report("charger", self.pile, {"clockSkew": skew}, src=self.src)
            case _ if type(msg) in _BMS_EVENTS:
                gun = getattr(msg, "gun", 1)
                params: dict[str, Any] = {"data": frame_data(msg)}
                trade = getattr(msg, "trade_no", "")
                if trade.strip("0"):
                    params["sessionId"] = trade
                await self.ctx.event("connector", connector_id(self.pile, gun),
                                     _BMS_EVENTS[type(msg)], params, src=self.src)
            case _:  # a platform frame (even type) sent by the pile
                self._unusable("ykc_unexpected_frames",
                               f"0x{frame.frame_type:02X} is not a pile frame")

    async def login(self, frame: Frame, msg: Login) -> None:
        pile = msg.pile_code
        ctx = self.ctx
        admitted = self.adapter.provisioned(pile)
        if not admitted and not self.adapter.config.auto_register:
            self.adapter.count("ykc_login_refused")
            log.warning("refused login of unknown pile %s from %s", pile, self.peer)
            self.send(LoginReply(pile_code=pile, result=1), frame.seq)
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()
            await ctx.event("gateway", ctx.gw, "deviceRefused", {
                "product": "charger", "device": pile, "protocol": "ykc",
                "reason": "not provisioned to this gateway"}, src="edge")
            self.close()
            return
        self.pile, self.src, self.guns = pile, src_tag(msg.protocol_version), msg.gun_count
        self.adapter.attach(self)
        self.send(LoginReply(pile_code=pile, result=0), frame.seq)
        props = login_properties(msg)
        props["registration"] = "accepted" if admitted else "pending"
        await ctx.presence("charger", pile, True, src=self.src)
        ctx.report("charger", pile, props, src=self.src)
        await ctx.event("charger", pile, "boot", {
            "reason": "login", "firmwareVersion": msg.firmware_version,
            "protocol": self.src}, src=self.src)
        for gun in range(1, msg.gun_count + 1):
            await ctx.presence("connector", connector_id(pile, gun), True, src=self.src)
        self.send(TimeSync(pile_code=pile, time=self.adapter.local_now()))
        log.debug("pile %s logged in from %s (%s, %d guns%s)", pile, self.peer, self.src,
                 msg.gun_count, "" if admitted else ", pending registration")

    def sample_ts(self, gun: int) -> int:
        """The receive time of a gun's sample in ms, strictly after its previous sample.

        0x13 carries no time of its own. Two samples of a connector within one millisecond
        (a polled 0x13 right after a periodic one, a status change) must not share a
        timestamp: a time series keyed by (connector, time) would keep only one of them.
        """
        ts = max(now_ms(), self.last_sample_ms.get(gun, 0) + 1)
        self.last_sample_ms[gun] = ts
        return ts

    async def realtime(self, msg: RealTimeData) -> None:
        assert self.pile is not None
        device = connector_id(self.pile, msg.gun)
        props = realtime_properties(msg)
        self.ctx.report("connector", device, props, src=self.src, ts=self.sample_ts(msg.gun))
        if props["status"] == "available":
            self.active_trades.pop(msg.gun, None)
            await self.adapter.push_pending_tariff(self)

    async def record(self, frame: Frame, msg: TransactionRecord) -> None:
        assert self.pile is not None
        device = connector_id(self.pile, msg.gun)
        params = record_params(msg, self.adapter.tz)
        fresh = await self.ctx.event_once(
            f"ykc/record/{msg.trade_no}", "connector", device, "transactionRecord", params,
            src=self.src, ts=params["endedAt"] or None,
        )
        if fresh:
            await self.ctx.event_once(
                f"ykc/ended/{msg.trade_no}", "connector", device, "sessionEnded", {
                    "sessionId": msg.trade_no, "seq": 1, "energy": params["energy"],
                    "meterStart": params["meterStart"], "meterStop": params["meterStop"],
                    "reason": f"ykc stop reason 0x{msg.stop_reason:02X}",
                    "startedAt": params["startedAt"], "endedAt": params["endedAt"],
                }, src=self.src)
        else:
            self.adapter.count("ykc_record_resent")
        # durable first, then confirm (0x00 accepted)
        self.send(TransactionRecordConfirm(trade_no=msg.trade_no, result=0), frame.seq)
        self.active_trades.pop(msg.gun, None)

    async def card_start(self, frame: Frame,
                         msg: ChargerStartRequest | ParallelStartRequest) -> None:
        assert self.pile is not None
        device = connector_id(self.pile, msg.gun)
        is_vin = msg.start_mode == 0x03
        id_tag = msg.vin.strip("\x00 ") if is_vin else msg.account_or_card
        id_type = "vin" if is_vin else "card"
        decision = await self.ctx.decide(
            "connector", device, "authorize", {"idTag": id_tag, "idType": id_type},
            src=self.src, timeout=self.adapter.config.authorize_timeout)
        if decision is None:
            decision = self.adapter.local_authorize(id_tag)
            await self.ctx.fallback("connector", device, "authorize",
                                    "cloud_timeout" if self.ctx.cloud_connected.is_set()
                                    else "cloud_offline",
                                    "accepted" if decision["accepted"] else "rejected",
                                    src=self.src)
        accepted = bool(decision.get("accepted"))
        trade = decision.get("sessionId") or self.adapter.new_trade(self.pile, msg.gun)
        balance = decision.get("balance")
        balance_raw = YUAN2.to_raw(Decimal(balance), rounding="ROUND_DOWN") \
            if balance is not None else 0
        common: dict[str, Any] = {
            "trade_no": trade, "pile_code": self.pile, "gun": msg.gun,
            "logical_card": _logical(decision.get("logicalCard")),
            "balance_yuan2": min(balance_raw, 0xFFFFFFFF), "authorized": 1 if accepted else 0,
            "fail_reason": 0 if accepted else 0x01,
        }
        if isinstance(msg, ParallelStartRequest):
            self.send(ParallelStartReply(**common, parallel_id=msg.parallel_id), frame.seq)
        else:
            self.send(ChargerStartReply(**common), frame.seq)
        if accepted:
            self.active_trades[msg.gun] = trade
            await self.ctx.event_once(f"ykc/started/{trade}", "connector", device,
                                      "sessionStarted", {"sessionId": trade, "seq": 0,
                                                         "idTag": id_tag, "idType": id_type},
                                      src=self.src)


class YkcAdapter(Adapter):
    """The YKC listener and its sessions."""

    name = "ykc"
    src = "ykc15"

    def __init__(self, config: YkcConfig) -> None:
        self.config = config
        self.tz = _zone(config.timezone)
        self.ctx: EdgeContext | None = None
        self.sessions: dict[str, PileSession] = {}
        self.connections = 0
        self.frames_in = 0
        self.frames_out = 0
        self.unsolicited = 0
        self.port: int | None = None
        self.ready = asyncio.Event()
        self._models: dict[str, BillingModel] = {}
        self._pending_tariff: set[str] = set()
        self._session_tasks: set[asyncio.Task[Any]] = set()

    # -- helpers --------------------------------------------------------------------------

    def count(self, name: str) -> None:
        """Count an occurrence in the gateway's stats."""
        if self.ctx is not None:
            self.ctx.stats.inc(name)

    def local_now(self) -> Cp56Time2a:
        """Now as the piles' local time."""
        return Cp56Time2a.from_datetime(datetime.now(self.tz).replace(tzinfo=None))

    def local_ms(self, stamp: Cp56Time2a) -> int | None:
        """A pile time as ms since the epoch."""
        when = stamp.to_datetime()
        return None if when is None else int(when.replace(tzinfo=self.tz).timestamp() * 1000)

    def new_trade(self, pile: str, gun: int) -> str:
        """A new trade number: pile + gun + local YYMMDDhhmmss + 4-digit counter."""
        assert self.ctx is not None
        counter = self.ctx.outbox.next_seq(f"ykc/trade/{pile}") % 10000
        return build_trade_no(pile, gun, datetime.now(self.tz).replace(tzinfo=None), counter)

    def _gateway_doc(self) -> Mapping[str, Any]:
        assert self.ctx is not None
        held = self.ctx.desired("gateway", self.ctx.gw)
        return held.doc if held is not None else {}

    def provisioned(self, pile: str) -> bool:
        """Whether the cloud provisioned this pile to the gateway."""
        assert self.ctx is not None
        entry = self.ctx.provisioned_devices().get(pile)
        return entry is not None and entry.get("product", "charger") == "charger" and \
            entry.get("protocol", "ykc") in ("ykc", "ykc15", "ykc16")

    def local_authorize(self, id_tag: str) -> dict[str, Any]:
        """Decide from the offline card list (gateway desired state ``cards``)."""
        assert self.ctx is not None
        for entry in self.ctx.local_cards():
            # an entry without a physical number must not match the all-zero "no card" number
            physical = _card(str(entry["physical"])) if entry.get("physical") else None
            if id_tag in (physical, entry.get("vin"), entry.get("idTag")):
                if entry.get("status", "active") == "active":
                    return {"accepted": True, "logicalCard": entry.get("logical")}
                return {"accepted": False, "reason": str(entry.get("status"))}
        return {"accepted": False, "reason": "unknown card (offline)"}

    def model_for(self, pile: str) -> BillingModel | None:
        """The billing model the pile should run: its own tariff, else the gateway default."""
        if pile in self._models:
            return self._models[pile]
        assert self.ctx is not None
        held = self.ctx.desired("charger", pile)
        doc: Any = held.doc.get("tariff") if held is not None else None
        if doc is None:
            doc = self._gateway_doc().get("tariff")
        if not isinstance(doc, Mapping):
            return None
        try:
            model = billing_model_from_doc(doc)
        except TariffError as exc:
            self.count("ykc_bad_tariff")
            log.warning("tariff for pile %s cannot be compiled: %s", pile, exc)
            return None
        self._models[pile] = model
        return model

    def attach(self, session: PileSession) -> None:
        """A pile logged in: replace any older connection of the same pile."""
        assert session.pile is not None
        old = self.sessions.get(session.pile)
        if old is not None and old is not session:
            self.count("ykc_replaced_connections")
            old.pile = None  # its end must not mark the new session offline
            old.close()
        self.sessions[session.pile] = session

    async def session_ended(self, session: PileSession) -> None:
        """Connection closed: presence offline (unless a newer connection took over)."""
        self.connections -= 1
        pile = session.pile
        if pile is None or self.sessions.get(pile) is not session or self.ctx is None:
            return
        del self.sessions[pile]
        await self.ctx.presence("charger", pile, False, src=session.src, reason="disconnected")
        for gun in range(1, session.guns + 1):
            device = connector_id(pile, gun)
            await self.ctx.presence("connector", device, False, src=session.src,
                                    reason="charger disconnected")
            self.ctx.report("connector", device, {"status": "offline"}, src=session.src,
                            ts=session.sample_ts(gun))

    def session(self, pile: str) -> PileSession:
        """The live session of a pile."""
        session = self.sessions.get(pile)
        if session is None or session.closed:
            raise DeviceOffline(f"pile {pile} is not connected")
        return session

    # -- adapter interface ------------------------------------------------------------------

    def owns(self, product: str, device: str) -> bool:
        """Chargers provisioned or connected here, and their connectors and locks."""
        pile = device if product == "charger" else device[:14]
        if product not in ("charger", "connector", "parking_lock"):
            return False
        if product != "charger" and (len(device) != 16 or not device.isdigit()):
            return False
        return pile in self.sessions or self.provisioned(pile)

    async def run(self, ctx: EdgeContext) -> None:
        """Listen until cancelled; check heartbeats and time sync."""
        self.ctx = ctx
        server = await asyncio.start_server(self._accept, self.config.host, self.config.port,
                                            backlog=4096, limit=65536)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        log.info("YKC listener on %s:%d", self.config.host, self.port)
        async with server, asyncio.TaskGroup() as tg:
            tg.create_task(self._watchdog(), name="ykc-watchdog")
            await asyncio.Event().wait()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.config.max_connections:
            self.count("ykc_refused_full")
            writer.close()
            return
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
            task.add_done_callback(self._session_tasks.discard)
        peer = writer.get_extra_info("peername")
        session = PileSession(self, reader, writer, f"{peer[0]}:{peer[1]}" if peer else "?")
        try:
            await session.serve()
        except asyncio.CancelledError:
            # shutdown: end quietly (3.11's stream callback logs a cancelled handler as an error)
            session.close()

    async def _watchdog(self) -> None:
        limit = self.config.heartbeat_interval * self.config.missed_heartbeats
        last_sync = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.config.heartbeat_interval / 2))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_rx > limit:
                    self.count("ykc_heartbeat_timeouts")
                    log.warning("pile %s: %d heartbeats missed, closing", session.pile,
                                self.config.missed_heartbeats)
                    session.close()
            if now - last_sync > self.config.time_sync_interval:
                last_sync = now
                for session in list(self.sessions.values()):
                    with contextlib.suppress(DeviceOffline):
                        session.send(TimeSync(pile_code=session.pile or "", time=self.local_now()))

    async def apply_desired(self, product: str, device: str, version: int,
                            doc: Mapping[str, Any]) -> None:
        """A new tariff for a charger: compile now, push when all its guns are idle."""
        if product != "charger":
            return
        self._models.pop(device, None)
        if self.model_for(device) is None:
            return
        self._pending_tariff.add(device)
        session = self.sessions.get(device)
        if session is not None and not session.active_trades:
            await self.push_pending_tariff(session)

    async def push_pending_tariff(self, session: PileSession) -> None:
        """Push (0x58) a changed tariff while the pile is idle."""
        pile = session.pile
        if pile is None or pile not in self._pending_tariff or session.active_trades:
            return
        model = self.model_for(pile)
        if model is None:
            return
        self._pending_tariff.discard(pile)
        task = asyncio.create_task(self._push_model(session, model))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _push_model(self, session: PileSession, model: BillingModel) -> None:
        assert session.pile is not None
        assert self.ctx is not None
        try:
            reply = await session.request(BillingModelSet(pile_code=session.pile, model=model),
                                          BillingModelSetReply, session.pile,
                                          int(time.time() * 1000) + 15_000)
        except (DeviceOffline, DeviceTimeout, DeviceRejected) as exc:
            log.info("tariff push to %s failed (%s); retried when idle", session.pile, exc)
            self._pending_tariff.add(session.pile)
            return
        if isinstance(reply, BillingModelSetReply) and reply.result == 1:
            self.ctx.report("charger", session.pile, {"billingModelCode": model.model_code},
                            src=session.src)

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def invoke(self, product: str, device: str, service: str, params: Mapping[str, Any],
                     deadline_ms: int) -> dict[str, Any]:
        """Execute a service on a pile (connector services address pile + gun)."""
        if product == "charger":
            return await self._charger_service(self.session(device), service, params,
                                               deadline_ms)
        if product == "connector":
            return await self._connector_service(self.session(device[:14]), int(device[14:]),
                                                 service, params, deadline_ms)
        if product == "parking_lock" and service in ("raise", "lower"):
            session = self.session(device[:14])
            gun = int(device[14:])
            reply = await session.request(
                ParkingLockControl(pile_code=device[:14], gun=gun,
                                   action=0x55 if service == "raise" else 0xFF),
                ParkingLockControlReply, str(gun), deadline_ms)
            assert isinstance(reply, ParkingLockControlReply)
            return {"accepted": reply.result == 1}
        raise UnknownDevice(f"{product}/{device} is not a YKC device")

    async def _connector_service(self, session: PileSession, gun: int, service: str,
                                 params: Mapping[str, Any], deadline_ms: int) -> dict[str, Any]:
        pile = session.pile
        assert pile is not None
        if service in ("remoteStart", "parallelStart"):
            if self.model_for(pile) is None:
                raise DeviceRejected("no billing model for this pile: it cannot charge")
            trade = str(params.get("sessionId") or self.new_trade(pile, gun))
            balance = params.get("balance")
            common: dict[str, Any] = {
                "trade_no": trade, "pile_code": pile, "gun": gun,
                "logical_card": _logical(params.get("logicalCard") or params.get("idTag")),
                "physical_card": _card(params.get("idTag")),
                "balance_yuan2": YUAN2.to_raw(Decimal(balance), rounding="ROUND_DOWN")
                if balance is not None else 0,
            }
            if service == "parallelStart":
                message: Message = RemoteParallelStart(
                    **common, parallel_id=str(params.get("parallelNo") or build_parallel_id(
                        datetime.now(self.tz).replace(tzinfo=None))))
                reply_type: type[Message] = RemoteParallelStartReply
            else:
                message, reply_type = RemoteStart(**common), RemoteStartReply
            reply = await session.request(message, reply_type, trade, deadline_ms)
            assert isinstance(reply, RemoteStartReply | RemoteParallelStartReply)
            accepted = reply.result == 1
            out: dict[str, Any] = {"accepted": accepted, "sessionId": trade}
            if not accepted:
                out["reason"] = _START_FAIL.get(reply.fail_reason) or f"code {reply.fail_reason}"
                if reply.fail_reason == _NOT_PLUGGED:
                    # the pile starts by itself if the gun is plugged within 60 s (second 0x33)
                    # (the reason stays "not plugged": callers match it, e.g. sim/fleet)
                    session.wait_for_plug(trade, gun, str(params.get("idTag", "")))
            else:
                session.active_trades[gun] = trade
                assert self.ctx is not None
                await self.ctx.event_once(
                    f"ykc/started/{trade}", "connector", connector_id(pile, gun),
                    "sessionStarted", {"sessionId": trade, "seq": 0,
                                       "idTag": str(params.get("idTag", "")), "idType": "app"},
                    src=session.src)
            return out
        if service == "remoteStop":
            # a start still waiting for the plug is cancelled by the stop (§5.5 rule 3)
            for trade_no in [t for t, w in session.plug_waits.items() if w.gun == gun]:
                del session.plug_waits[trade_no]
            reply = await session.request(RemoteStop(pile_code=pile, gun=gun), RemoteStopReply,
                                          str(gun), deadline_ms)
            assert isinstance(reply, RemoteStopReply)
            stop: dict[str, Any] = {"accepted": reply.result == 1}
            if reply.result != 1:
                stop["reason"] = _STOP_FAIL.get(reply.fail_reason) or f"code {reply.fail_reason}"
            return stop
        if service == "readRealtime":
            session.send(ReadRealTimeData(pile_code=pile, gun=gun))
            return {"accepted": True}
        if service == "updateBalance":
            reply = await session.request(BalanceUpdate(
                pile_code=pile, gun=gun, physical_card=_card(str(params["card"])),
                balance_yuan2=YUAN2.to_raw(Decimal(params["balance"]), rounding="ROUND_DOWN")),
                BalanceUpdateReply, pile, deadline_ms)
            assert isinstance(reply, BalanceUpdateReply)
            return {"accepted": reply.result == 0}
        raise ServiceNotSupported(f"YKC connectors have no service {service}")

    async def _charger_service(self, session: PileSession, service: str,
                               params: Mapping[str, Any], deadline_ms: int) -> dict[str, Any]:
        pile = session.pile
        assert pile is not None
        match service:
            case "syncTime":
                reply = await session.request(TimeSync(pile_code=pile, time=self.local_now()),
                                              TimeSyncReply, pile, deadline_ms)
                assert isinstance(reply, TimeSyncReply)
                out: dict[str, Any] = {"accepted": True}
                device_ms = self.local_ms(reply.time)
                if device_ms is not None:
                    out["deviceTime"] = device_ms
                return out
            case "reset":
                when = 0x02 if params.get("type") == "on_idle" else 0x01
                reply = await session.request(RemoteReboot(pile_code=pile, when=when),
                                              RemoteRebootReply, pile, deadline_ms)
                assert isinstance(reply, RemoteRebootReply)
                return {"accepted": reply.result == 1}
            case "setTariff":
                doc = {"code": params.get("modelCode"), "slots": [s["tier"] for s in
                                                                   params.get("slots", [])],
                       "tiers": {t["tier"]: {"energy": t["energyPrice"],
                                             "service": t["servicePrice"]}
                                 for t in params["tiers"]}}
                if doc["code"] is None:
                    doc.pop("code")
                    doc["version"] = self.ctx.outbox.next_seq(f"ykc/model/{pile}") \
                        if self.ctx else 1
                try:
                    model = billing_model_from_doc(doc)
                except TariffError as exc:
                    raise DeviceRejected(str(exc)) from exc
                reply = await session.request(BillingModelSet(pile_code=pile, model=model),
                                              BillingModelSetReply, pile, deadline_ms)
                assert isinstance(reply, BillingModelSetReply)
                if reply.result == 1:
                    self._models[pile] = model
                return {"accepted": reply.result == 1, "modelCode": model.model_code}
            case "setWorkParams":
                reply = await session.request(WorkParamsSet(
                    pile_code=pile, disabled=0 if params["enabled"] else 1,
                    max_power_pct=int(params["maxPowerPercent"])),
                    WorkParamsSetReply, pile, deadline_ms)
                assert isinstance(reply, WorkParamsSetReply)
                return {"accepted": reply.result == 1}
            case "updateFirmware":
                return await self._update(session, params, deadline_ms)
            case "sendLocalList":
                entries = list(params["entries"])
                for start in range(0, max(len(entries), 1), 15):
                    chunk = tuple(OfflineCard(logical_card=_logical(e.get("logicalCard")),
                                              physical_card=_card(e["idTag"]))
                                  for e in entries[start:start + 15])
                    reply = await session.request(OfflineCardSync(pile_code=pile, cards=chunk),
                                                  OfflineCardSyncReply, pile, deadline_ms)
                    assert isinstance(reply, OfflineCardSyncReply)
                    if reply.result != 1:
                        return {"accepted": False, "status": f"failed at entry {start}"}
                return {"accepted": True}
            case "clearLocalList":
                tags = [_card(e["idTag"]) for e in params.get("idTags") or []]
                for start in range(0, max(len(tags), 1), 24):
                    await session.request(OfflineCardClear(pile_code=pile,
                                                           cards=tuple(tags[start:start + 24])),
                                          OfflineCardClearReply, pile, deadline_ms)
                return {"accepted": True}
            case "queryLocalList":
                tags = [_card(e["idTag"]) for e in params["idTags"]]
                present: list[dict[str, Any]] = []
                for start in range(0, len(tags), 26):
                    reply = await session.request(
                        OfflineCardQuery(pile_code=pile, cards=tuple(tags[start:start + 26])),
                        OfflineCardQueryReply, pile, deadline_ms)
                    assert isinstance(reply, OfflineCardQueryReply)
                    present.extend({"idTag": r.physical_card, "present": r.present == 1}
                                   for r in reply.results)
                return {"present": present}
        raise ServiceNotSupported(f"YKC chargers have no service {service}")

    async def _update(self, session: PileSession, params: Mapping[str, Any],
                      deadline_ms: int) -> dict[str, Any]:
        assert session.pile is not None
        url = urlsplit(str(params["location"]))
        if url.scheme != "ftp" or not url.hostname:
            raise DeviceRejected("YKC updates are fetched over FTP: ftp://user:pw@host:port/path")
        reply = await session.request(RemoteUpdate(
            pile_code=session.pile, pile_model=0x01, power_kw=0,
            server_address=url.hostname[:16], port=url.port or 21,
            username=(url.username or "")[:16], password=(url.password or "")[:16],
            file_path=url.path[:32], when=0x01, timeout_min=10),
            RemoteUpdateReply, session.pile, deadline_ms)
        assert isinstance(reply, RemoteUpdateReply)
        return {"accepted": reply.status == 0, "status": str(reply.status)}


__all__ = ["PileSession", "YkcAdapter"]
