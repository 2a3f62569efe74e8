"""The version-independent part of the simulated charge point: connection, boot, heartbeat,
meter loops, the transaction queue and the user-facing API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from bridges.ocpp import OcppVersion
from sim.ocpp.config import SimConfig
from sim.ocpp.errors import NotConnected, SimError
from sim.ocpp.ledger import Ledger, SessionRecord
from sim.ocpp.physics import ConnectorPhysics
from sim.ocpp.protocol import Protocol
from sim.ocpp.protocol16 import Protocol16
from sim.ocpp.protocol201 import Protocol201
from sim.ocpp.state import ConnectorState
from sim.ocpp.txqueue import TxQueue
from sim.ocpp.wirecheck import CheckedConnection, WireCheck, WireFrame

log = logging.getLogger("voltmesh.sim.ocpp")


class _ConnectionEnded(Exception):
    """The WebSocket closed: leave the connection's task group."""


class OcppChargePointSim:
    """A simulated OCPP 1.6J / 2.0.1 charge point.

    ::

        async with OcppChargePointSim(SimConfig(charge_point_id="CP1", url=...)) as sim:
            await sim.wait_booted()
            record = await sim.start_session(1)
            ...
            await sim.stop_session(1)
            sim.ledger.completed()

    or ``await sim.run()`` until :meth:`close`. It reconnects with capped, jittered
    exponential backoff, queues transaction messages while offline and answers the CSMS's
    calls (remote start/stop, reset, configuration, triggers, reservations, charging profiles,
    local lists, firmware, diagnostics/logs, data transfer).
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.version = config.version
        self.rng = random.Random(config.seed)
        self.ledger = Ledger()
        self.connectors: dict[int, ConnectorState] = {
            n: ConnectorState(n, ConnectorPhysics(config, self.rng,
                                                  config.initial_meter_wh + (n - 1) * 100_000))
            for n in range(1, config.connectors + 1)
        }
        self.heartbeat_interval = config.heartbeat_default_s
        self.meter_interval = config.meter_interval_s
        self.registration: str | None = None
        self.boot_count = 0
        self.connect_count = 0
        self.calls_received: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[BaseException] = []
        self.wire_violations: list[str] = []
        """Frames from the CSMS that break the official schema (:mod:`sim.ocpp.wirecheck`)."""
        self.wire_log: list[WireFrame] = []
        """Every frame of both directions, when ``config.wire_log`` is set (tests)."""
        self.local_list: dict[str, str] = {}
        self.local_list_version = 0
        self.booted = asyncio.Event()
        self._txq = TxQueue(config.tx_queue_max)
        self._link_up_at = 0.0
        self._hb_wake = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._cp: Any = None
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        self._reboot_reason: str | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._proto = _make_protocol(self)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> OcppChargePointSim:
        self._run_task = asyncio.create_task(self.run(), name=f"ocpp-sim-{self.id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def id(self) -> str:
        """The charge-point id."""
        return self.config.charge_point_id

    @property
    def online(self) -> bool:
        """Connected and boot accepted."""
        return self.booted.is_set()

    async def run(self) -> None:
        """Connect, boot and serve until :meth:`close` (reconnecting with backoff)."""
        attempt = 0
        while not self._stopping.is_set():
            booted_before = self.boot_count
            down = self._link_up_at - time.monotonic()
            if down > 0:  # the link is cut (cut_link): no network, no attempt
                await asyncio.sleep(down)
            try:
                await self._connection()
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, SimError) as exc:
                log.info("%s: connection failed or lost: %r", self.id, exc)
            except Exception as exc:
                log.exception("%s: unexpected error; reconnecting", self.id)
                self.errors.append(exc)
            if self._stopping.is_set():
                break
            if self._reboot_reason is not None:
                continue
            if self.boot_count > booted_before:
                attempt = 0
            delay = min(self.config.reconnect_max_s, self.config.reconnect_min_s * 2 ** attempt)
            attempt += 1
            await asyncio.sleep(delay * self.rng.uniform(0.5, 1.0))

    async def close(self) -> None:
        """Disconnect and stop (sessions stay open in the ledger, as after a power cut)."""
        self._stopping.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        task, self._run_task = self._run_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        meters = [c.meter_task for c in self.connectors.values() if c.meter_task is not None]
        for conn in self.connectors.values():
            conn.meter_task = None
        for meter in meters:
            meter.cancel()
        await asyncio.gather(*meters, return_exceptions=True)

    async def wait_booted(self, timeout: float = 10.0) -> None:
        """Until the CSMS accepted a BootNotification on the current connection."""
        async with asyncio.timeout(timeout):
            await self.booted.wait()

    async def disconnect(self) -> None:
        """Drop the connection (the simulator reconnects after its backoff)."""
        if self._ws is not None:
            await self._ws.close()

    def cut_link(self, down_s: float = 0.0) -> None:
        """Lose the link abruptly and stay off it for ``down_s`` seconds.

        The TCP connection is aborted (no closing handshake: a pulled cable, a modem that
        dropped), and no connection is attempted until ``down_s`` has passed (then the usual
        backoff). Sessions go on: meter values are still made, and queue with the other
        transaction messages until the CSMS answers them after the reconnect.
        """
        self._link_up_at = time.monotonic() + down_s
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    @property
    def tx_dropped(self) -> int:
        """Queued meter values dropped because the transaction queue was full."""
        return self._txq.dropped

    # -- the connection ------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self.config.password is None:
            return {}
        token = base64.b64encode(f"{self.id}:{self.config.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _connection(self) -> None:
        sub = Subprotocol(self.version.subprotocol)
        async with connect(self.config.endpoint, subprotocols=[sub],
                           additional_headers=self._headers(),
                           open_timeout=self.config.open_timeout_s) as ws:
            if ws.subprotocol != sub:
                raise SimError(f"the CSMS did not accept subprotocol {sub}")
            self.connect_count += 1
            self._ws = ws
            self._cp = self._proto.make_charge_point(CheckedConnection(
                ws, WireCheck(self.id, self.version, self.wire_violations),
                log=self.wire_log if self.config.wire_log else None,
                unanswered=self.config.unanswered_actions,
                answer_delay_s=self.config.answer_delay_s))
            try:
                async with asyncio.TaskGroup() as tg:
                    self._tg = tg
                    tg.create_task(self._cp.start(), name=f"{self.id}-reader")
                    await self._boot()
                    self.spawn(self._after_boot(), "online")
                    await ws.wait_closed()
                    raise _ConnectionEnded
            except* (_ConnectionEnded, ConnectionClosed):
                pass
            finally:
                self.booted.clear()
                self._tg = None
                self._cp = None
                self._ws = None

    async def _boot(self) -> None:
        reason = self._reboot_reason or ("PowerUp" if self.boot_count == 0 else "Unknown")
        self._reboot_reason = None
        while True:
            status, interval = await self._proto.boot(reason)
            self.registration = status
            if interval > 0:
                self.heartbeat_interval = float(interval)
            if status == "Accepted":
                self.boot_count += 1
                self.booted.set()
                return
            await asyncio.sleep(interval if interval > 0 else self.config.heartbeat_default_s)

    async def _after_boot(self) -> None:
        for conn in self.connectors.values():
            await self._proto.send_status(conn)
        self.spawn(self._heartbeat_loop(), "heartbeat")
        self.spawn(self._flush(), "txqueue")
        for conn in self.connectors.values():
            if conn.session is not None and not conn.session.stopping:
                self.ensure_meter_loop(conn)

    async def _heartbeat_loop(self) -> None:
        while True:
            self._hb_wake.clear()
            try:
                async with asyncio.timeout(self.heartbeat_interval):
                    await self._hb_wake.wait()
                continue  # the interval changed: wait again with the new one
            except TimeoutError:
                pass
            await self.call(self._proto.heartbeat_payload())

    def set_heartbeat_interval(self, seconds: float) -> None:
        """Change the heartbeat interval now (configuration change from the CSMS)."""
        self.heartbeat_interval = seconds if seconds > 0 else self.config.heartbeat_default_s
        self._hb_wake.set()

    async def _flush(self) -> None:
        """Deliver the transaction queue in order, one CALL at a time, each answered before
        the next; an unanswered one (timeout, lost link) is sent again."""
        txq = self._txq
        while True:
            item = await txq.head()
            cp = self._cp
            if cp is None:
                raise NotConnected("connection gone")
            payload = item.build()
            if payload is None:  # a builder with nothing left to send (start refused)
                txq.done(item)
                if not item.future.done():
                    item.future.set_result(None)
                continue
            item.attempts += 1
            txq.sending = item
            try:
                result = await cp.call(payload, suppress=False)
            except (ConnectionClosed, asyncio.CancelledError):
                txq.sending = None
                raise
            except TimeoutError:
                txq.sending = None
                await asyncio.sleep(min(5.0, 0.2 * item.attempts))
                continue
            except Exception as exc:  # noqa: BLE001 - a CALLERROR or a schema error: answer it
                log.warning("%s: %s refused: %r", self.id, type(payload).__name__, exc)
                txq.done(item)
                if not item.future.done():
                    item.future.set_exception(exc)
                continue
            txq.done(item)
            if item.on_answer is not None:
                item.on_answer(result)
            if not item.future.done():
                item.future.set_result(result)

    # -- helpers for the protocol modules -----------------------------------------------------

    def now_ms(self) -> int:
        """The charger's clock (real time + the configured offset), ms since the epoch."""
        return int((time.time() + self.config.clock_offset_s) * 1000)

    def now_iso(self) -> str:
        """The charger's clock as an OCPP date-time."""
        when = datetime.now(UTC) + timedelta(seconds=self.config.clock_offset_s)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"

    async def call(self, payload: Any) -> Any:
        """Send a CALL on the current connection; NotConnected when there is none."""
        cp = self._cp
        if cp is None:
            raise NotConnected(f"{self.id} is not connected")
        return await cp.call(payload, suppress=False)

    def enqueue(self, payload: Any, *, droppable: bool = False,
                on_answer: Callable[[Any], None] | None = None) -> asyncio.Future[Any]:
        """Queue a transaction message (delivered in order, across reconnects): an ``ocpp``
        call, or a builder ``() -> call | None`` run when it is sent. ``droppable``: a periodic
        meter value, which a full queue may drop; ``on_answer``: run with the result before
        the next message is built (:mod:`sim.ocpp.txqueue`)."""
        return self._txq.put(payload, droppable=droppable, on_answer=on_answer)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the connection's task group (errors recorded, not fatal)."""
        if self._tg is None:
            coro.close()
            return
        guarded = self._guard(coro)
        try:
            task = self._tg.create_task(guarded, name=f"{self.id}-{name}")
        except RuntimeError:  # the connection is ending (its task group shuts down)
            guarded.close()
            coro.close()
            return
        # a task cancelled before its first step never starts ``coro``: close it, or Python
        # warns "coroutine ... was never awaited" (seen in the storm test)
        task.add_done_callback(lambda _: coro.close())

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except SimError as exc:  # refused by the CSMS, or the link went: normal life
            log.info("%s: %s", self.id, exc)
        except Exception as exc:
            log.exception("%s: simulator task failed", self.id)
            self.errors.append(exc)

    def advance(self, conn: ConnectorState) -> None:
        """Bring a connector's physics up to now."""
        now = time.monotonic()
        conn.physics.advance(now - conn.last_advance)
        conn.last_advance = now
        if conn.session is not None:
            record = conn.session.record
            record.max_power_w = max(record.max_power_w, conn.physics.power_w)

    def ensure_meter_loop(self, conn: ConnectorState) -> None:
        """Start the periodic meter values of a connector's session. The loop belongs to the
        station, not to a connection: it goes on while the link is down (the values queue)."""
        if self._stopping.is_set() or (conn.meter_task is not None
                                       and not conn.meter_task.done()):
            return
        conn.meter_task = asyncio.create_task(self._guard(self._meter_loop(conn)),
                                              name=f"{self.id}-meter-{conn.number}")

    def stop_meter_loop(self, conn: ConnectorState) -> None:
        """Stop a connector's periodic meter values."""
        task, conn.meter_task = conn.meter_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _meter_loop(self, conn: ConnectorState) -> None:
        while conn.session is not None and not conn.session.stopping:
            await asyncio.sleep(self.meter_interval)
            session = conn.session
            if session is None or session.stopping:
                return
            self.advance(conn)
            await self._proto.send_meter_update(conn, session)
            session.record.updates_sent += 1

    def set_status(self, conn: ConnectorState, status: str) -> None:
        """Change a connector's status and notify the CSMS (when connected)."""
        conn.status = status
        if self.online:
            self.spawn(self._proto.send_status(conn), f"status-{conn.number}")

    def connector(self, number: int) -> ConnectorState:
        """A connector by number; SimError when there is none."""
        try:
            return self.connectors[number]
        except KeyError:
            raise SimError(f"{self.id} has no connector {number}") from None

    def free_connector(self) -> ConnectorState | None:
        """The first connector that can start a session."""
        for conn in self.connectors.values():
            if conn.session is None and conn.operative and conn.status in (
                    "Available", "Preparing"):
                return conn
        return None

    def request_reboot(self, reason: str) -> None:
        """Close the connection and come back at once with a new BootNotification."""
        self._reboot_reason = reason
        if self._ws is not None:
            self.spawn(self._ws.close(), "reboot")

    def record_call(self, action: str, kwargs: dict[str, Any]) -> None:
        """Remember a call from the CSMS (tests inspect :attr:`calls_received`)."""
        self.calls_received.append((action, kwargs))

    # -- user API ------------------------------------------------------------------------------

    def active_session(self, connector: int = 1) -> SessionRecord | None:
        """The running session's ledger record on a connector."""
        session = self.connector(connector).session
        return session.record if session is not None else None

    async def start_session(self, connector: int = 1, id_tag: str | None = None
                            ) -> SessionRecord:
        """A local start: Authorize (offline: the local list), then start the transaction.

        :class:`~sim.ocpp.errors.Refused` when the idTag is not accepted; the start itself is
        queued while offline (2.0.1 sends it with ``offline: true`` after the reconnect).
        """
        conn = self.connector(connector)
        if conn.session is not None:
            raise SimError(f"connector {connector} already has a session")
        tag = id_tag or self.config.id_tag
        try:
            await self._proto.authorize(tag)
        except NotConnected:
            # offline: the local authorization list decides (as a real charger would)
            if self.local_list.get(tag) != "Accepted":
                raise
        return await self._proto.start_transaction(conn, tag, trigger="Authorized")

    async def stop_session(self, connector: int = 1, reason: str = "Local") -> SessionRecord:
        """Stop the session on a connector; returns its closed ledger record."""
        conn = self.connector(connector)
        if conn.session is None:
            raise SimError(f"connector {connector} has no session")
        return await self._proto.stop_transaction(conn, reason)

    async def wait_session_ended(self, record: SessionRecord, timeout: float = 10.0) -> None:
        """Until the session of ``record`` has stopped."""
        async with asyncio.timeout(timeout):
            while not record.ended:  # noqa: ASYNC110 - the ledger is plain data
                await asyncio.sleep(0.01)

    def pending_transaction_messages(self) -> int:
        """Transaction messages not yet answered by the CSMS."""
        return len(self._txq)


def _make_protocol(sim: OcppChargePointSim) -> Protocol:
    return Protocol16(sim) if sim.version is OcppVersion.V16 else Protocol201(sim)
