"""What every kind of simulated device has in common inside one worker: the run's clock, the
driver interface the runner talks to, and the session loop of a charger's connector."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sim.fleet.app import AppClient
from sim.fleet.meter import KindMeter
from sim.fleet.schedule import PlannedSession, plan_sessions
from sim.fleet.spec import DevicePlan, FleetSpec, Kind

__all__ = ["ChargerDriver", "Driver", "LedgerSink", "RunClock"]

log = logging.getLogger("voltmesh.sim.fleet")

LedgerSink = Callable[[dict[str, Any]], None]
"""Receives one ledger row (a JSON-ready dict) per session a charger completed."""

_READY_POLL = 0.25
T = TypeVar("T")


class RunClock:
    """The run's start time and its stopping flag, shared by the drivers of one worker."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.stopping_event = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """Whether the run is ending (no new sessions; running ones stop)."""
        return self.stopping_event.is_set()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self.loop.time() - self.t0

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True when the time passed, False (at once) when the run is stopping."""
        if self.stopping:
            return False
        if seconds <= 0:
            return True
        try:
            async with asyncio.timeout(seconds):
                await self.stopping_event.wait()
        except TimeoutError:
            return True
        return False

    async def sleep_until(self, offset: float) -> bool:
        """Sleep until ``offset`` seconds after the start (see :meth:`sleep`)."""
        return await self.sleep(self.t0 + offset - self.loop.time())

    async def until(self, check: Callable[[], bool], timeout: float | None = None, *,
                    stop_aware: bool = True) -> bool:
        """Poll ``check`` until true (True), or ``timeout`` passes (False), or (with
        ``stop_aware``) the run stops (False)."""
        deadline = None if timeout is None else self.loop.time() + timeout
        while not check():
            if deadline is not None and self.loop.time() >= deadline:
                return False
            if stop_aware:
                if not await self.sleep(_READY_POLL):
                    return False
            else:
                await asyncio.sleep(_READY_POLL)
        return True


class Driver(ABC):
    """Runs the devices of one kind in one worker and counts what they do."""

    def __init__(self, kind: Kind, spec: FleetSpec, clock: RunClock) -> None:
        self.kind = kind
        self.spec = spec
        self.clock = clock
        self.meter = KindMeter()
        self.plans: list[DevicePlan] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def target(self) -> int:
        """How many devices this driver runs."""
        return len(self.plans)

    @abstractmethod
    def add(self, plan: DevicePlan, delay: float) -> None:
        """Start a device ``delay`` seconds from now (the ramp)."""

    @abstractmethod
    def connected(self) -> int:
        """Devices connected now (logged in, booted, MQTT session up, polled lately)."""

    @abstractmethod
    def ever_connected(self) -> int:
        """Devices that were connected at least once."""

    def active_sessions(self) -> int:
        """Sessions charging now."""
        return 0

    def unfinished(self) -> int:
        """Sessions started whose record the platform has not acknowledged yet."""
        return max(0, self.meter.sessions_started - self.meter.sessions_completed)

    def busy(self) -> int:
        """What the drain waits for: unfinished sessions and starts in progress."""
        return self.unfinished()

    def refresh(self) -> None:  # noqa: B027 - most drivers count as things happen
        """Bring counters kept by the devices themselves into :attr:`meter` (before a snapshot)."""

    def leftover_rows(self) -> list[dict[str, Any]]:
        """Ledger rows of sessions that ended but were never acknowledged (end of the run)."""
        return []

    async def stop(self) -> None:
        """Stop every device and task (connections closed)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


class ChargerDriver(Driver, Generic[T]):
    """A driver of chargers: each connector follows its planned sessions.

    Subclasses say when a charger is ready for a session and how a session starts and stops;
    a start returns a handle (None when it failed, counted as an error by the subclass).
    """

    def __init__(self, kind: Kind, spec: FleetSpec, clock: RunClock, ledger: LedgerSink,
                 app: AppClient | None) -> None:
        super().__init__(kind, spec, clock)
        self.ledger = ledger
        self.app = app
        self.starting = 0
        """Session starts in progress (the drain waits for them too)."""

    def busy(self) -> int:
        return self.unfinished() + self.starting

    def spawn_sessions(self, plan: DevicePlan) -> None:
        """One session task per connector of a charger."""
        if self.spec.sessions_per_hour <= 0:
            return
        for connector in range(1, plan.connectors + 1):
            self.tasks.append(asyncio.create_task(
                self._connector(plan, connector),
                name=f"sim-{plan.device_id}-{connector}-sessions"))

    async def _connector(self, plan: DevicePlan, connector: int) -> None:
        for planned in plan_sessions(self.spec, plan.device_id, connector):
            if not await self.clock.sleep_until(planned.start):
                return
            if not await self.clock.until(lambda: self.ready(plan.device_id, connector)):
                return
            self.starting += 1
            try:
                handle = await self.start_session(plan, connector, planned)
            except Exception:  # a bug in one session must not end the connector's schedule
                log.exception("%s %s/%d: session start failed", self.kind, plan.device_id,
                              connector)
                self.meter.error("sim_exception")
                continue
            finally:
                self.starting -= 1
            if handle is None:
                continue
            await self.clock.sleep(planned.duration)
            try:
                await self.stop_session(plan, connector, handle)
            except Exception:
                log.exception("%s %s/%d: session stop failed", self.kind, plan.device_id,
                              connector)
                self.meter.error("sim_exception")
            if self.clock.stopping:
                return

    @abstractmethod
    def ready(self, device_id: str, connector: int) -> bool:
        """Whether the connector can start a session now."""

    @abstractmethod
    async def start_session(self, plan: DevicePlan, connector: int,
                            planned: PlannedSession) -> T | None:
        """Start a planned session; its handle, or None when it did not start."""

    @abstractmethod
    async def stop_session(self, plan: DevicePlan, connector: int, handle: T) -> None:
        """Stop a running session at the charger (the driver ends charging)."""

    async def app_start(self, plan: DevicePlan, device: str,
                        planned: PlannedSession) -> dict[str, Any] | None:
        """``remoteStart`` through the cloud API; the service output, or None (counted)."""
        if self.app is None:  # the spec refuses app starts without an API
            self.meter.error("app_start_failed")
            return None
        result = await self.app.remote_start(device, planned.card)
        if result.error is not None:
            self.meter.error(result.error)
            return None
        return result.output
