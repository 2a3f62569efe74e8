"""One Modbus connection (a TCP socket or a serial line) shared by the unit ids behind it.

A :class:`ModbusLink` wraps one pymodbus client. The medium carries ONE request at a time: an
RS485 bus by nature, RTU-over-TCP because its frames carry no transaction id, and a Modbus TCP
gateway in front of an RS485 bus because it serialises anyway. So requests are queued on a
:class:`PriorityLock` (FIFO; service writes go ahead of queued reads) and every request has
its own timeout that starts when the request reaches the wire, not while it waits its turn:
a unit that does not answer holds the link for at most its own timeout per request and never
makes a healthy neighbour time out.

Connection handling: the link connects lazily when a request needs it; a failed connect
makes reads fail fast until a capped, jittered backoff has passed (writes try once anyway:
they are rare and may be safety actions). A link on which ``reconnect_after`` requests in a
row timed out -- every unit silent, typically a half-open TCP connection -- is closed and
reconnected. After a timeout on RTU framing the link stays quiet for a short settle time so
a late answer is consumed and dropped rather than taken as the answer to the next request.

Errors (all :class:`CommError`): :class:`LinkDown` (no connection), :class:`NoAnswer` (timeout,
or a gateway's exception 0x0A/0x0B: the unit behind it is unreachable) and
:class:`DeviceException` (the unit answered with a Modbus exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from bridges.modbus import Function, ReadRequest, WriteRequest

log = logging.getLogger("voltmesh.edge.modbus")

#: exception codes a Modbus gateway answers when the unit behind it does not
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_FAILED = 0x0B

#: queue priorities: service writes go ahead of polling reads
PRIORITY_WRITE = 0
PRIORITY_READ = 1

_EXCEPTION_NAMES = {
    0x01: "illegal function", 0x02: "illegal data address", 0x03: "illegal data value",
    0x04: "server device failure", 0x05: "acknowledge", 0x06: "server device busy",
    0x08: "memory parity error", 0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}


class CommError(Exception):
    """A request did not produce a normal answer."""


class LinkDown(CommError):
    """The connection is not there (refused, closed, reconnecting)."""


class NoAnswer(CommError):
    """The unit did not answer in time (or its gateway says it cannot reach it)."""


class DeviceException(CommError):
    """The unit answered with a Modbus exception response."""

    def __init__(self, code: int) -> None:
        self.code = code
        name = _EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"exception 0x{code:02X} ({name})")


T = TypeVar("T")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # read, so an abandoned request's error is not logged as unhandled


async def bounded(aw: Awaitable[T], timeout: float) -> T:
    """Await ``aw`` in a task of its own for at most ``timeout`` (else ``TimeoutError``).

    pymodbus waits for answers with ``asyncio.wait_for``, which on Python 3.11 swallows a
    cancellation that arrives just as the answer does. Cancelling the poller through it could
    then be lost (a shutdown that never ends); keeping pymodbus in its own task makes every
    timeout and cancellation of the poller take effect.
    """
    inner = asyncio.ensure_future(aw)
    inner.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        inner.cancel()
        raise
    if not done:
        inner.cancel()
        await asyncio.wait({inner})  # ends at once: cancelled, or with the late answer
        raise TimeoutError
    return inner.result()


class PriorityLock:
    """A lock granted in (priority, arrival) order; ownership passes directly on release."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def queued(self) -> int:
        """Requests waiting for the link."""
        return len(self._waiters)

    async def acquire(self, priority: int) -> None:
        """Wait for the lock."""
        if not self._locked and not self._waiters:
            self._locked = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._order), future)
        heapq.heappush(self._waiters, entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just before the cancel: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                    heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        """Hand the lock to the next waiter, or free it."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._locked = False

    @contextlib.asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        """``async with lock.hold(PRIORITY_READ): ...``."""
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


@dataclass(frozen=True)
class SerialLine:
    """Serial line settings (see :class:`edge.config.SerialLineConfig`)."""

    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8


ClientFactory = Callable[[], AsyncModbusTcpClient | AsyncModbusSerialClient]


class ModbusLink:
    """One connection and the request queue in front of it."""

    def __init__(self, name: str, transport: str, *, host: str | None = None, port: int = 502,
                 serial: SerialLine | None = None, backstop_timeout: float = 10.0,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 reconnect_after: int = 3) -> None:
        if transport not in ("tcp", "rtu_over_tcp", "serial"):
            raise ValueError(f"unknown Modbus transport {transport!r}")
        if transport == "serial" and serial is None:
            raise ValueError("a serial link needs serial line settings")
        if transport != "serial" and host is None:
            raise ValueError("a TCP link needs a host")
        self.name = name
        self.transport = transport
        self.host = host
        self.port = port
        self.serial = serial
        self.backstop_timeout = backstop_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.reconnect_after = reconnect_after
        self.lock = PriorityLock()
        self.settle = 0.05
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._retry_at = 0.0
        self._connect_failures = 0
        self._silent_in_row = 0
        self.last_error: str | None = None
        # counters
        self.requests = 0
        self.timeouts = 0
        self.connects = 0
        self.reconnects_forced = 0

    @property
    def rtu_framing(self) -> bool:
        """Whether frames carry no transaction id (RTU over TCP or serial)."""
        return self.transport != "tcp"

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._client is not None and self._client.connected

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        common: dict[str, Any] = {
            "name": self.name, "timeout": self.backstop_timeout, "retries": 0,
            "reconnect_delay": 0,  # the link reconnects, with its own backoff
        }
        if self.transport == "serial":
            assert self.serial is not None
            return AsyncModbusSerialClient(
                self.serial.port, framer=FramerType.RTU, baudrate=self.serial.baudrate,
                parity=self.serial.parity, stopbits=self.serial.stopbits,
                bytesize=self.serial.bytesize, **common)
        assert self.host is not None
        framer = FramerType.RTU if self.transport == "rtu_over_tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(self.host, port=self.port, framer=framer, **common)

    def _backoff(self) -> float:
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** min(self._connect_failures, 30))
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto

    async def _ensure(self, timeout: float, *, force: bool) -> AsyncModbusTcpClient | \
            AsyncModbusSerialClient:
        client = self._client
        if client is not None and client.connected:
            return client
        loop = asyncio.get_running_loop()
        if not force and loop.time() < self._retry_at:
            raise LinkDown(f"{self.name}: not connected ({self.last_error or 'reconnecting'}); "
                           f"next attempt in {self._retry_at - loop.time():.1f}s")
        self.close()
        client = self._new_client()
        ok = False
        try:
            ok = await bounded(client.connect(), timeout)
        except TimeoutError:
            self.last_error = f"connect timed out after {timeout:.3g}s"
        except (OSError, ModbusException) as exc:
            self.last_error = f"connect failed: {exc}"
        if not ok or not client.connected:
            client.close()
            self.last_error = self.last_error or self._refused()
            self._retry_at = loop.time() + self._backoff()
            self._connect_failures += 1
            raise LinkDown(f"{self.name}: {self.last_error}")
        if self._connect_failures:
            log.info("modbus link %s connected after %d failed attempts", self.name,
                     self._connect_failures)
        self._connect_failures = 0
        self._silent_in_row = 0
        self.connects += 1
        self.last_error = None
        self._client = client
        return client

    def _refused(self) -> str:
        """Why a connect failed; pymodbus only says False (and logs the reason)."""
        if self.serial is None:
            return "connection refused"
        port = self.serial.port
        if "://" not in port and not os.path.exists(port):
            return f"no serial port {port} (adapter unplugged?)"
        return f"cannot open serial port {port} (in use, or no permission?)"

    def close(self) -> None:
        """Close the connection (the next request reconnects)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def read(self, unit: int, request: ReadRequest, timeout: float) -> list[int] | \
            list[bool]:
        """Perform a planned read; registers (ints) or exactly ``request.count`` bits."""
        def call(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> \
                Awaitable[ModbusPDU]:
            reader = {
                Function.COIL: client.read_coils,
                Function.DISCRETE: client.read_discrete_inputs,
                Function.HOLDING: client.read_holding_registers,
                Function.INPUT: client.read_input_registers,
            }[request.function]
            return reader(request.address, count=request.count, device_id=unit)

        pdu = await self._execute(unit, call, timeout, PRIORITY_READ, force=False)
        if request.function.is_bit:
            bits = list(pdu.bits)
            if len(bits) < request.count:
                raise NoAnswer(f"{self.name} unit {unit}: {len(bits)} bits for "
                               f"{request.count}")
            return [bool(b) for b in bits[:request.count]]
        registers = list(pdu.registers)
        if len(registers) != request.count:
            raise NoAnswer(f"{self.name} unit {unit}: {len(registers)} registers for "
                           f"{request.count} (a stray answer?)")
        return registers

    async def write(self, unit: int, request: WriteRequest, timeout: float) -> None:
        """Perform one write of a service (ahead of queued reads)."""
        values: Sequence[int] | Sequence[bool] = request.values

        def call(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> \
                Awaitable[ModbusPDU]:
            code = request.function_code
            if code == 5:
                return client.write_coil(request.address, bool(values[0]), device_id=unit)
            if code == 15:
                return client.write_coils(request.address, [bool(v) for v in values],
                                          device_id=unit)
            if code == 6:
                return client.write_register(request.address, int(values[0]), device_id=unit)
            return client.write_registers(request.address, [int(v) for v in values],
                                          device_id=unit)

        await self._execute(unit, call, timeout, PRIORITY_WRITE, force=True)

    async def _execute(
        self, unit: int,
        call: Callable[[AsyncModbusTcpClient | AsyncModbusSerialClient], Awaitable[ModbusPDU]],
        timeout: float, priority: int, *, force: bool,
    ) -> ModbusPDU:
        async with self.lock.hold(priority):
            # the timeout starts here: waiting for the link is not the unit's fault
            client = await self._ensure(timeout, force=force)
            self.requests += 1
            try:
                pdu = await bounded(call(client), timeout)
            except TimeoutError:
                self.timeouts += 1
                await self._silent(f"unit {unit} did not answer within {timeout:.3g}s")
                raise NoAnswer(f"{self.name} unit {unit}: no answer within {timeout:.3g}s") \
                    from None
            except ConnectionException as exc:
                self.last_error = f"connection lost: {exc}"
                self.close()
                raise LinkDown(f"{self.name}: {self.last_error}") from None
            except ModbusIOException as exc:
                self.timeouts += 1
                await self._silent(str(exc))
                raise NoAnswer(f"{self.name} unit {unit}: {exc}") from None
            if not client.connected:  # closed under us while answering
                self.close()
            if pdu.isError():
                code = int(pdu.exception_code)
                if code in (GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED):
                    # the gateway answered, so the link itself is fine
                    self._silent_in_row = 0
                    raise NoAnswer(f"{self.name} unit {unit}: {DeviceException(code)}")
                self._silent_in_row = 0
                raise DeviceException(code)
            self._silent_in_row = 0
            return pdu

    async def _silent(self, reason: str) -> None:
        """Bookkeeping after a request got no answer (called with the lock held)."""
        self._silent_in_row += 1
        if self._silent_in_row >= self.reconnect_after:
            log.warning("modbus link %s: %d requests in a row unanswered (%s); reconnecting",
                        self.name, self._silent_in_row, reason)
            self.reconnects_forced += 1
            self.last_error = f"{self._silent_in_row} requests in a row unanswered"
            self._silent_in_row = 0
            self.close()
        elif self.rtu_framing:
            # no transaction ids: let a late answer arrive and be dropped now, while nothing
            # else is outstanding, instead of matching it to the next request
            await asyncio.sleep(self.settle)
