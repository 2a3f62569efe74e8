"""Running a fleet: one worker's share in an event loop (:class:`ShardRunner`), and the whole
run in this process or split over worker processes (:func:`run_fleet`).

A run has three phases: the **ramp and run** (devices connect at ``--ramp`` per second over
the whole fleet, sessions follow their schedule) until ``--duration`` passes or a stop is
asked for; the **drain** (no new sessions; running sessions stop at the charger; the run
waits up to ``--drain-timeout`` for the platform to acknowledge every record); the **stop**
(connections closed). Connected counts for the targets are taken at the end of the run
phase, everything else after the drain.

With ``--processes N`` the parent spawns N workers (``multiprocessing`` spawn context), each
running :class:`ShardRunner` on its share (chargers and MQTT devices dealt round robin, all
Modbus listeners in worker 0). Workers send snapshots every second, ledger rows as sessions
complete, the Modbus ports once bound, and their final snapshots over one queue; the parent
shows the merged progress, writes the ledger file and builds the summary. Ctrl-C in the parent
starts the drain in every worker (workers ignore SIGINT themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue as queue_module
import resource
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from typing import Any

from sim.fleet.app import AppClient
from sim.fleet.driver import Driver, LedgerSink, RunClock
from sim.fleet.errors import WorkerError
from sim.fleet.ledger import LedgerWriter
from sim.fleet.meter import Histogram
from sim.fleet.modbus import ModbusDriver
from sim.fleet.mqtt import MqttDriver
from sim.fleet.ocpp import OcppDriver
from sim.fleet.progress import Progress
from sim.fleet.spec import DevicePlan, FleetSpec, Kind, plan_devices, shard_devices
from sim.fleet.summary import KindSnapshot, KindSource, Snapshot, Summary, merge
from sim.fleet.ykc import YkcDriver

__all__ = ["ShardRunner", "run_fleet", "worker_main"]

log = logging.getLogger("voltmesh.sim.fleet")

ProgressHook = Callable[[Snapshot, str], None]
"""Called about every second with a snapshot (no latencies) and the phase name."""
PortsHook = Callable[[list[int]], None]

_TICK = 1.0
_LAG_PROBE = 0.1
_DRAIN_POLL = 0.25


class ShardRunner:
    """One worker's share of the fleet (``shard`` of ``shards``), in the running loop."""

    def __init__(self, spec: FleetSpec, *, shard: int = 0, shards: int = 1,
                 ledger: LedgerSink | None = None, on_modbus_ports: PortsHook | None = None
                 ) -> None:
        self.spec = spec
        self.shard = shard
        self.shards = shards
        self.ledger: LedgerSink = ledger if ledger is not None else _discard
        self.on_modbus_ports = on_modbus_ports
        self.devices = shard_devices(spec, plan_devices(spec), shard, shards)
        self.drivers: list[Driver] = []
        self.sources: list[KindSource] = []
        self.modbus_ports: list[int] = []
        self.loop_lag = Histogram()
        self._cpu0 = time.process_time()
        self._clock: RunClock | None = None

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot(self, *, latency: bool = False) -> Snapshot:
        """The shard's state now."""
        clock = self._clock
        snap = Snapshot(elapsed=clock.elapsed() if clock is not None else 0.0,
                        kinds={source.kind: KindSnapshot.of(source, latency=latency)
                               for source in self.sources},
                        cpu_seconds=time.process_time() - self._cpu0,
                        max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        if latency:
            snap.loop_lag.merge(self.loop_lag)
        return merge([snap])  # kinds in display order

    def busy(self) -> int:
        """Sessions the drain still waits for."""
        for source in self.sources:
            source.refresh()
        return sum(driver.busy() for driver in self.drivers)

    # -- the run -----------------------------------------------------------------------------

    def _build(self, clock: RunClock, app: AppClient | None
               ) -> list[tuple[Driver, DevicePlan, float]]:
        """The drivers of this shard and, in ramp order, which device each starts when."""
        spec = self.spec
        ykc = YkcDriver(spec, clock, self.ledger, app) if spec.ykc else None
        ocpp16 = OcppDriver(Kind.OCPP16, spec, clock, self.ledger, app) if spec.ocpp16 else None
        ocpp201 = OcppDriver(Kind.OCPP201, spec, clock, self.ledger, app) \
            if spec.ocpp201 else None
        cameras = MqttDriver(Kind.CAMERA, spec, clock) if spec.cameras else None
        sensors = MqttDriver(Kind.ENV_SENSOR, spec, clock) \
            if spec.env_sensors and not spec.is_modbus(Kind.ENV_SENSOR) else None
        by_kind: dict[Kind, Driver | None] = {
            Kind.YKC: ykc, Kind.OCPP16: ocpp16, Kind.OCPP201: ocpp201, Kind.CAMERA: cameras,
            Kind.ENV_SENSOR: sensors}
        modbus_plans = [plan for plan in self.devices if spec.is_modbus(plan.kind)]
        if modbus_plans:
            modbus = ModbusDriver(spec, clock, modbus_plans)
            self.drivers.append(modbus)
        rate = spec.ramp / self.shards
        starts: list[tuple[Driver, DevicePlan, float]] = []
        for plan in self.devices:
            if spec.is_modbus(plan.kind):
                continue
            driver = by_kind[plan.kind]
            assert driver is not None
            starts.append((driver, plan, len(starts) / rate))
        used = {id(driver) for driver, _, _ in starts}
        self.drivers.extend(d for d in by_kind.values() if d is not None and id(d) in used)
        # per-kind sources in display order
        views: dict[Kind, KindSource] = {}
        for driver in self.drivers:
            if isinstance(driver, ModbusDriver):
                for view in driver.views():
                    views[view.kind] = view
            else:
                views[driver.kind] = driver
        self.sources = [views[kind] for kind in Kind if kind in views]
        return starts

    async def run(self, stop: asyncio.Event | None = None,
                  on_progress: ProgressHook | None = None) -> tuple[Snapshot, Snapshot]:
        """Run until the duration passes or ``stop`` is set, drain, stop; returns the
        snapshots at the end of the run phase and after the drain (with latencies)."""
        spec = self.spec
        stop = stop if stop is not None else asyncio.Event()
        clock = self._clock = RunClock()
        app = AppClient(spec.app_api, spec.gateway_id, token=spec.app_token,
                        balance=spec.balance) \
            if spec.app_share > 0 and spec.app_api and spec.gateway_id else None
        helpers: list[asyncio.Task[None]] = []
        try:
            starts = self._build(clock, app)
            for driver in self.drivers:
                if isinstance(driver, ModbusDriver):
                    self.modbus_ports = await driver.start()
                    if self.on_modbus_ports is not None:
                        self.on_modbus_ports(list(self.modbus_ports))
            for driver, plan, delay in starts:
                driver.add(plan, delay)
            helpers.append(asyncio.create_task(self._lag_probe(), name="sim-loop-lag"))
            phase = ["run"]
            if on_progress is not None:
                helpers.append(asyncio.create_task(self._report(on_progress, phase),
                                                   name="sim-progress"))
            await self._run_phase(clock, stop)
            at_end = self.snapshot(latency=True)
            phase[0] = "drain"
            clock.stopping_event.set()
            await self._drain(clock)
            final = self.snapshot(latency=True)
            for driver in self.drivers:
                for row in driver.leftover_rows():
                    self.ledger(row)
            return at_end, final
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            for driver in self.drivers:
                try:
                    await driver.stop()
                except Exception:  # stopping one kind must not keep the others running
                    log.exception("stopping %s failed", driver.kind)
            if app is not None:
                await app.close()

    async def _run_phase(self, clock: RunClock, stop: asyncio.Event) -> None:
        duration = self.spec.duration
        try:
            async with asyncio.timeout(duration):
                await stop.wait()
        except TimeoutError:
            pass

    async def _drain(self, clock: RunClock) -> None:
        deadline = clock.loop.time() + self.spec.drain_timeout
        # one poll first: session loops see the stop flag and stop their sessions
        await asyncio.sleep(min(_DRAIN_POLL, self.spec.drain_timeout))
        while self.busy() and clock.loop.time() < deadline:  # noqa: ASYNC110 - counts over devices
            await asyncio.sleep(_DRAIN_POLL)

    async def _report(self, hook: ProgressHook, phase: list[str]) -> None:
        while True:
            await asyncio.sleep(_TICK)
            hook(self.snapshot(), phase[0])

    async def _lag_probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(_LAG_PROBE)
            self.loop_lag.record(loop.time() - before - _LAG_PROBE)


def _discard(row: dict[str, Any]) -> None:
    """Ledger sink of a run without ``--ledger``."""


# -- the whole run ---------------------------------------------------------------------------


async def run_fleet(spec: FleetSpec, *, stop: asyncio.Event | None = None,
                    progress: Progress | None = None,
                    on_modbus_ports: PortsHook | None = None) -> Summary:
    """Run the fleet (in this process, or in ``spec.processes`` workers); its summary.

    ``stop`` set: end the run phase now (then drain). ``on_modbus_ports`` gets the Modbus
    ports once the simulator listens (to write the gateway config).
    """
    stop = stop if stop is not None else asyncio.Event()
    ledger = LedgerWriter(spec.ledger) if spec.ledger else None
    started = time.monotonic()
    try:
        sink: LedgerSink = ledger.write if ledger is not None else _discard
        if spec.processes == 1:
            runner = ShardRunner(spec, ledger=sink, on_modbus_ports=on_modbus_ports)

            def show(snap: Snapshot, phase: str) -> None:
                if progress is not None:
                    progress.update(snap, phase=phase)

            at_end, final = await runner.run(stop, on_progress=show)
            failures: list[str] = []
        else:
            at_end, final, failures = await _run_workers(spec, stop, progress, sink,
                                                         on_modbus_ports)
        if progress is not None:
            progress.update(final, phase="done", force=True)
            progress.finish()
    finally:
        if ledger is not None:
            ledger.close()
    return Summary(spec=spec, at_end=at_end, final=final,
                   wall_seconds=time.monotonic() - started,
                   ledger_path=str(ledger.path) if ledger is not None else None,
                   ledger_rows=ledger.rows if ledger is not None else 0,
                   ledger_unconfirmed=ledger.unconfirmed if ledger is not None else 0,
                   worker_failures=failures, interrupted=stop.is_set())


def worker_main(spec_json: str, shard: int, shards: int, out: Any, stop: Any) -> None:
    """Entry point of a worker process: run one shard, report over ``out`` (a queue)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s worker{shard} %(levelname)s %(name)s %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    try:
        spec = FleetSpec.model_validate_json(spec_json)
        asyncio.run(_worker(spec, shard, shards, out, stop))
    except BaseException:  # report anything, then die
        out.put(("error", shard, traceback.format_exc()))
        raise


async def _worker(spec: FleetSpec, shard: int, shards: int, out: Any, stop_flag: Any) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop_flag.is_set():  # noqa: ASYNC110 - a multiprocessing Event
            await asyncio.sleep(0.2)
        stop.set()

    runner = ShardRunner(
        spec, shard=shard, shards=shards,
        ledger=lambda row: out.put(("ledger", shard, row)),
        on_modbus_ports=lambda ports: out.put(("modbus", shard, ports)))
    watcher = asyncio.create_task(watch())
    try:
        at_end, final = await runner.run(
            stop, on_progress=lambda snap, phase: out.put(
                ("progress", shard, {"snap": snap.to_dict(), "phase": phase})))
    finally:
        watcher.cancel()
    out.put(("done", shard, {"at_end": at_end.to_dict(), "final": final.to_dict()}))


async def _run_workers(spec: FleetSpec, stop: asyncio.Event, progress: Progress | None,
                       sink: LedgerSink, on_modbus_ports: PortsHook | None
                       ) -> tuple[Snapshot, Snapshot, list[str]]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    stop_flag = ctx.Event()
    shards = spec.processes
    procs: list[SpawnProcess] = [
        ctx.Process(target=worker_main, args=(spec.model_dump_json(), shard, shards, out,
                                              stop_flag),
                    name=f"voltmesh-sim-worker-{shard}", daemon=True)
        for shard in range(shards)]
    for proc in procs:
        proc.start()
    latest: dict[int, Snapshot] = {}
    phases: dict[int, str] = {}
    done: dict[int, tuple[Snapshot, Snapshot]] = {}
    failures: list[str] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    limit = None if spec.duration is None else spec.duration + spec.drain_timeout + 120.0
    last_shown = 0.0
    try:
        while len(done) + len(failures) < shards:
            if stop.is_set() and not stop_flag.is_set():
                stop_flag.set()
            if limit is not None and loop.time() - started > limit and not stop_flag.is_set():
                log.warning("workers overran the run; asking them to stop")
                stop_flag.set()
            try:
                kind, shard, body = await asyncio.to_thread(out.get, True, 0.5)
            except queue_module.Empty:
                for shard, proc in enumerate(procs):
                    if not proc.is_alive() and shard not in done and \
                            not any(f.startswith(f"worker {shard}:") for f in failures):
                        failures.append(f"worker {shard}: exited with code {proc.exitcode} "
                                        "before reporting")
                continue
            if kind == "progress":
                latest[shard] = Snapshot.from_dict(body["snap"])
                phases[shard] = body["phase"]
                if progress is not None and len(latest) == shards and \
                        loop.time() - last_shown >= 0.9:
                    last_shown = loop.time()
                    phase = "drain" if "drain" in phases.values() else "run"
                    progress.update(merge(list(latest.values())), phase=phase)
            elif kind == "ledger":
                sink(body)
            elif kind == "modbus":
                if on_modbus_ports is not None:
                    on_modbus_ports(list(body))
            elif kind == "done":
                done[shard] = (Snapshot.from_dict(body["at_end"]),
                               Snapshot.from_dict(body["final"]))
            elif kind == "error":
                failures.append(f"worker {shard}: {str(body).strip().splitlines()[-1]}")
                log.error("worker %d failed:\n%s", shard, body)
            else:
                raise WorkerError(f"worker {shard} sent an unknown report {kind!r}")
    finally:
        stop_flag.set()
        for proc in procs:
            await asyncio.to_thread(proc.join, 30.0)
            if proc.is_alive():  # our own child, ended by its PID
                proc.terminate()
                await asyncio.to_thread(proc.join, 5.0)
        with contextlib.suppress(Exception):
            out.close()
    at_ends = [done[shard][0] for shard in sorted(done)]
    finals = [done[shard][1] for shard in sorted(done)]
    if not finals:
        empty = Snapshot(elapsed=0.0, kinds={}, processes=0)
        return empty, empty, failures
    return merge(at_ends), merge(finals), failures

