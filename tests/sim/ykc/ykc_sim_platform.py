"""A tiny YKC platform for the pile-simulator tests: a real asyncio TCP server on 127.0.0.1 that
speaks the codec, records every frame (raw bytes + decoded) and answers the power-on flow."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bridges.ykc import (
    BillingModel,
    BillingModelReply,
    BillingModelRequest,
    BillingModelVerify,
    BillingModelVerifyReply,
    Cp56Time2a,
    Frame,
    Heartbeat,
    HeartbeatReply,
    IncompleteFrame,
    Login,
    LoginReply,
    Message,
    RealTimeData,
    RemoteStart,
    SequenceCounter,
    TierPrice,
    TimeSync,
    TransactionRecord,
    TransactionRecordConfirm,
    YkcError,
    compile_billing_model,
    decode_frame,
    encode_frame,
    slots_from_periods,
)
from bridges.ykc.constants import ConnectorStatus, Tier
from sim.ykc import PileConfig, SimPile

PILE = "32010200000001"
TRADE = f"{PILE}01" + "240520105959" + "0001"
CARD = "00000000D14B0A54"


def demo_model(code: str = "0001") -> BillingModel:
    """§6.4 tariff with odd prices so that amounts need rounding."""
    return compile_billing_model(
        code,
        [
            TierPrice(Decimal("1.23457"), Decimal("0.61111")),  # tip
            TierPrice(Decimal("1.00003"), Decimal("0.59999")),  # peak
            TierPrice(Decimal("0.70001"), Decimal("0.6")),  # flat
            TierPrice(Decimal("0.3"), Decimal("0.6")),  # valley
        ],
        slots_from_periods(
            [
                ("08:00", "10:00", Tier.FLAT),
                ("10:00", "11:00", Tier.TIP),
                ("11:00", "12:00", Tier.PEAK),
                ("12:00", "18:00", Tier.FLAT),
                ("18:00", "21:00", Tier.PEAK),
                ("21:00", "23:00", Tier.FLAT),
            ],
            default=Tier.VALLEY,
        ),
    )


def half_up_amount(energy_kwh4: int, price_yuan5: int) -> int:
    """Independent reference: energy (0.0001 kWh) × price (0.00001 yuan/kWh) in 0.0001 yuan."""
    value = Decimal(energy_kwh4) * Decimal(price_yuan5) / Decimal(100_000)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cp56(text: str) -> Cp56Time2a:
    return Cp56Time2a.from_datetime(datetime.fromisoformat(text))


@dataclass
class Received:
    conn: int
    raw: bytes
    frame: Frame
    at: float

    @property
    def message(self) -> Message:
        return self.frame.message


@dataclass
class Conn:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    seq: SequenceCounter = field(default_factory=SequenceCounter)
    logged_in: bool = False


class FakePlatform:
    """Answers 0x01 (``login_results`` in turn, then success), 0x03 (if ``answer_heartbeats``),
    0x05 (mismatch unless the codes agree), 0x09 (``model``, if any) and 0x3B (0x40 on the
    ``confirm_on``-th send of a trade number, only on connections in ``confirm_conns`` if set)."""

    def __init__(
        self,
        *,
        model: BillingModel | None = None,
        login_results: list[int] | None = None,
        answer_heartbeats: bool = True,
        confirm_on: int = 2,
        confirm_conns: set[int] | None = None,
        time_sync: Cp56Time2a | None = None,
    ) -> None:
        self.model = model
        self.login_results = list(login_results or [])
        self.answer_heartbeats = answer_heartbeats
        self.confirm_on = confirm_on
        self.confirm_conns = confirm_conns
        self.time_sync = time_sync
        self.frames: list[Received] = []
        self.conns: list[Conn] = []
        self.errors: list[YkcError] = []
        self.record_sends: dict[str, int] = {}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> FakePlatform:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.conns:
            conn.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    # -- inspection --------------------------------------------------------------------------

    def of(self, frame_type: int, conn: int | None = None) -> list[Received]:
        return [r for r in self.frames
                if r.frame.frame_type == frame_type and (conn is None or r.conn == conn)]

    def messages(self, cls: type[Message], conn: int | None = None) -> list[Message]:
        return [r.message for r in self.of(cls.FRAME_TYPE, conn)]

    async def wait_for(self, check: Callable[[], object], timeout: float = 5.0) -> None:
        """Wait until ``check()`` is truthy (re-evaluated on every received frame)."""
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"condition not met within {timeout}s; got "
                                     f"{[hex(r.frame.frame_type) for r in self.frames]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))

    async def wait_count(self, frame_type: int, count: int, timeout: float = 5.0,
                         conn: int | None = None) -> list[Received]:
        await self.wait_for(lambda: len(self.of(frame_type, conn)) >= count, timeout)
        return self.of(frame_type, conn)

    # -- acting ------------------------------------------------------------------------------

    @property
    def conn(self) -> Conn:
        return self.conns[-1]

    def send(self, message: Message) -> bytes:
        """Send a platform-initiated frame on the newest connection; returns its seq."""
        seq = self.conn.seq.next()
        self.conn.writer.write(encode_frame(message, seq))
        return seq

    def send_raw(self, data: bytes) -> None:
        self.conn.writer.write(data)

    def drop(self) -> None:
        """Close the newest connection from the platform side."""
        self.conn.writer.close()

    # -- server ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(len(self.conns), reader, writer)
        self.conns.append(conn)
        buf = b""
        try:
            while data := await reader.read(4096):
                buf += data
                while buf:
                    try:
                        frame, used = decode_frame(buf)
                    except IncompleteFrame:
                        break
                    except YkcError as exc:  # the simulator must only send valid frames
                        self.errors.append(exc)
                        buf = b""
                        break
                    raw, buf = buf[:used], buf[used:]
                    self.frames.append(Received(conn.index, raw, frame, time.monotonic()))
                    self._answer(conn, frame)
                    self._changed.set()
                self._changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._changed.set()

    def _answer(self, conn: Conn, frame: Frame) -> None:
        msg = frame.message
        reply: Message | None = None
        match msg:
            case Login():
                result = self.login_results.pop(0) if self.login_results else 0
                conn.writer.write(encode_frame(LoginReply(pile_code=msg.pile_code, result=result),
                                               frame.seq))
                if result != 0:
                    conn.writer.close()
                    return
                conn.logged_in = True
                if self.time_sync is not None:
                    conn.writer.write(encode_frame(TimeSync(pile_code=msg.pile_code,
                                                            time=self.time_sync), conn.seq.next()))
            case Heartbeat() if self.answer_heartbeats:
                reply = HeartbeatReply(pile_code=msg.pile_code, gun=msg.gun)
            case BillingModelVerify():
                same = self.model is not None and self.model.model_code == msg.model_code
                reply = BillingModelVerifyReply(pile_code=msg.pile_code, model_code=msg.model_code,
                                                result=0 if same else 1)
            case BillingModelRequest() if self.model is not None:
                reply = BillingModelReply(pile_code=msg.pile_code, model=self.model)
            case TransactionRecord():
                sends = self.record_sends[msg.trade_no] = self.record_sends.get(msg.trade_no, 0) + 1
                allowed = self.confirm_conns is None or conn.index in self.confirm_conns
                if sends >= self.confirm_on and allowed:
                    reply = TransactionRecordConfirm(trade_no=msg.trade_no, result=0)
        if reply is not None:
            conn.writer.write(encode_frame(reply, frame.seq))


def fast_config(**overrides: Any) -> PileConfig:
    values: dict[str, Any] = {
        "pile_code": PILE,
        "heartbeat_interval": 0.25,
        "realtime_interval": 0.2,
        "realtime_idle_interval": 5.0,
        "record_retry_interval": 0.4,
        "model_retry_interval": 0.5,
        "login_timeout": 2.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "reboot_duration": 0.1,
        "power_kw": 90.0,
        "seed": 7,
    }
    values.update(overrides)
    return PileConfig(**values)


@asynccontextmanager
async def running(platform: FakePlatform, **overrides: Any) -> AsyncIterator[SimPile]:
    async with SimPile(fast_config(**overrides), "127.0.0.1", platform.port) as pile:
        yield pile


def remote_start(trade: str = TRADE, gun: int = 1) -> RemoteStart:
    return RemoteStart(trade_no=trade, pile_code=PILE, gun=gun, logical_card="1000000573",
                       physical_card=CARD, balance_yuan2=100_000)


def charging_frames(platform: FakePlatform, trade: str = TRADE) -> list[RealTimeData]:
    return [m for m in platform.messages(RealTimeData)
            if isinstance(m, RealTimeData) and m.status == ConnectorStatus.CHARGING
            and m.trade_no == trade]
