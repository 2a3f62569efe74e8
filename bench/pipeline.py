"""The whole ingest path: gateways -> Mosquitto -> CloudService (rules) -> VictoriaMetrics.

    .venv/bin/python -m bench.pipeline [--rate 2000] [--duration 30] [--gateways 2] [--quick]

Starts Mosquitto from the shipped config (``bench.mosquitto``), a private VictoriaMetrics
(``bench.victoria``) and one :class:`~cloud.service.CloudService` in this process (user
``cloud``, MQTT 5, SQLite in a temporary directory, shipped rules ``config/rules``, the telemetry
lane writing to VictoriaMetrics with the shipped :class:`~cloud.sinks.InfluxConfig` defaults).

A separate publisher *process* (its own interpreter, so it does not take the worker's CPU time
from inside its event loop) connects as the gateways ``gwA``, ``gwB`` ... and publishes, QoS 1,
connector property batches (``b``: ``--samples`` samples of status, power, voltage, current,
energy (decimal string), soc, gunTemperature) at ``--rate`` messages/s in total for
``--duration`` seconds, spread over ``--devices`` connectors per gateway.

Measured:

* throughput: ``voltmesh_cloud_messages_total{kind="prop"}`` and
  ``voltmesh_sink_written_total{sink="telemetry"}`` of the worker, from the first publish until
  every point sent is written (or ``--grace`` s after the last publish); fields/s are points/s
  times the fields per point; the samples stored in VictoriaMetrics are counted afterwards;
* delay: the envelope ``ts`` is the publisher's wall clock at send time and each sample's ``ts``
  is ``ts - (samples - 1 - i)`` ms (distinct timestamps per series, also in a burst); the
  telemetry SinkQueue's writer is wrapped and, when a write request has completed (HTTP answer
  received), records
  ``now - point.ts_ms`` for each of its points. The figure therefore covers publish, broker,
  consumer, rules, queue wait (incl. the batch ``flush_interval``) and the write, and
  overstates by at most ``samples - 1`` ms;
* CPU seconds per 1,000 points written (``/proc/<pid>/stat`` user + system) of this process (the
  worker; the bench's own share is polling once per 50 ms), of Mosquitto and of VictoriaMetrics;
* with ``--profile FILE``: a cProfile of the event-loop thread (the worker's consumer, rules
  and sink queues; CPU time of that thread, ``time.thread_time``) over the measured window,
  saved for ``python -m pstats FILE``; the profiler roughly doubles the worker's CPU, so the
  figures of a profiled run are only for finding where the time goes;
* the broker's raw limit: the same publisher, unpaced, to a plain aiomqtt subscriber (user
  ``cloud``, QoS 1) with no cloud, for ``--raw-duration`` s; the pipeline rate is given as a
  ratio of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS, Mosquitto
from bench.procs import cpu_seconds
from bench.victoria import Victoria
from cloud.actions import Action, Lane, WritePoint
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.rules.config import RulesConfig
from cloud.service import CloudService
from cloud.sinks.config import InfluxConfig, SinksConfig
from cloud.sinks.metrics import SinkMetrics
from thingmodels.envelope import Envelope, Sample, encode

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "config" / "rules"
#: aiomqtt warns on every publish beyond 10 pending ones; the bench keeps up to 200 in flight
QUIET = logging.getLogger("bench.pipeline.mqtt")
QUIET.setLevel(logging.ERROR)
STATUSES = ("charging", "charging", "charging", "charging", "preparing", "finishing", "available")
#: numeric fields the shipped telemetry rule writes per connector sample
FIELDS_PER_POINT = 7  # voltage current power energy soc gunTemperature statusCode

# -- the publisher (runs in its own process) ---------------------------------------------------


_LAST_TS: dict[tuple[str, int], int] = {}


def _batch(gw: str, device: int, n: int, samples: int) -> tuple[str, bytes]:
    # a publisher that falls behind sends a burst; two batches of one device in the same ms
    # would share sample timestamps and VictoriaMetrics keeps one sample per (series, ts), so
    # every series' timestamps strictly increase
    now = max(int(time.time() * 1000), _LAST_TS.get((gw, device), 0) + samples)
    _LAST_TS[(gw, device)] = now
    items = []
    for i in range(samples):
        k = n * samples + i
        items.append(Sample(now - (samples - 1 - i), {
            "status": STATUSES[(device + n // 50) % len(STATUSES)],
            "power": round(60 + (k % 600) / 10, 1),
            "voltage": round(650 + (k % 80) / 4, 1),
            "current": round(90 + (k % 300) / 10, 1),
            "energy": f"{(k % 80_000) / 1000:.3f}",
            "soc": round(20 + (k % 790) / 10, 1),
            "gunTemperature": round(35 + (k % 300) / 10, 1),  # below the 80 degC alarm
        }))
    env = Envelope.new(ts=now, seq=n, src="ykc16", b=tuple(items))
    return f"ev/v1/{gw}/connector/c{device:04d}/prop", encode(env)


async def _publish_gateway(port: int, gw: str, rate: float, duration: float, devices: int,
                           samples: int, gate: _Gate) -> int:
    """One gateway's connection: ``rate`` messages/s (0 = as fast as possible); sent count."""
    async with aiomqtt.Client("127.0.0.1", port, username=gw, password=USERS[gw],
                              identifier=f"bench-{gw}", protocol=aiomqtt.ProtocolVersion.V5, logger=QUIET,
                              max_inflight_messages=200) as client:
        slots = asyncio.Semaphore(200)
        pending: set[asyncio.Task[None]] = set()

        async def send(topic: str, payload: bytes) -> None:
            try:
                await client.publish(topic, payload, qos=1)
            finally:
                slots.release()

        gate.connected += 1
        await gate.go.wait()
        delay = gate.start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.monotonic()
        sent = 0
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= duration:
                break
            due = int(elapsed * rate) + 1 if rate > 0 else sent + 50
            while sent < due:
                await slots.acquire()
                topic, payload = _batch(gw, sent % devices, sent // devices, samples)
                task = asyncio.create_task(send(topic, payload))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(0.005 if rate > 0 else 0)
        if pending:
            await asyncio.gather(*pending)
        return sent


class _Gate:
    """Every gateway connected -> tell the parent -> start together at its time."""

    def __init__(self) -> None:
        self.connected = 0
        self.go = asyncio.Event()
        self.start_at = 0.0


def _publisher(port: int, gateways: Sequence[str], rate: float, duration: float, devices: int,
               samples: int, conn: Connection) -> None:
    """Process entry: connect, say ``ready``, receive the start time, publish from every gateway
    at once; sends back (sent, seconds)."""

    async def run() -> tuple[int, float]:
        gate = _Gate()
        tasks = [asyncio.create_task(_publish_gateway(
            port, gw, rate / len(gateways), duration, devices, samples, gate))
            for gw in gateways]
        while gate.connected < len(gateways):
            if any(t.done() for t in tasks):
                await asyncio.gather(*tasks)  # raises the connection error
            await asyncio.sleep(0.01)
        conn.send("ready")
        gate.start_at = float(await asyncio.to_thread(conn.recv))
        gate.go.set()
        counts = await asyncio.gather(*tasks)
        return sum(counts), time.time() - gate.start_at

    try:
        conn.send(asyncio.run(run()))
    except BaseException as exc:
        conn.send(exc)
        raise
    finally:
        conn.close()


class Publisher:
    """The publisher process; ``result()`` waits for it and returns (sent, seconds)."""

    def __init__(self, port: int, gateways: Sequence[str], *, rate: float, duration: float,
                 devices: int, samples: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.start_at = 0.0
        self.proc = ctx.Process(target=_publisher, daemon=True, args=(
            port, list(gateways), rate, duration, devices, samples, child))
        self.proc.start()
        child.close()

    async def ready(self, timeout: float = 60.0, start_in: float = 0.2) -> float:
        """Wait until every gateway is connected, then start them in ``start_in`` s."""
        answer = await self._recv(timeout)
        if answer != "ready":
            raise RuntimeError(f"publisher failed: {answer!r}")
        self.start_at = time.time() + start_in
        self._conn.send(self.start_at)
        return self.start_at

    async def _recv(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while not self._conn.poll():
            if time.monotonic() > deadline or (not self.proc.is_alive() and not self._conn.poll()):
                self.stop()
                raise RuntimeError("the publisher process died or timed out")
            await asyncio.sleep(0.02)
        return self._conn.recv()

    async def result(self, timeout: float) -> tuple[int, float]:
        answer = await self._recv(timeout)
        self.proc.join(10)
        if isinstance(answer, BaseException):
            raise RuntimeError(f"publisher failed: {answer!r}") from answer  # noqa: TRY004
        sent, seconds = answer
        return int(sent), float(seconds)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# -- measurements -----------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds of the three processes over one window."""

    worker: float = 0.0
    broker: float = 0.0
    victoria: float = 0.0


@dataclass
class Result:
    """What one run measured."""

    rate: float
    duration: float
    gateways: int
    samples: int
    sent: int = 0
    publish_seconds: float = 0.0
    seconds: float = 0.0  # first publish -> last point written
    messages: int = 0  # consumed by the worker
    points: int = 0  # written by the telemetry sink
    dropped: int = 0  # telemetry actions dropped (any reason)
    stored: int = 0  # connector_power samples in VictoriaMetrics
    delays_ms: list[float] = field(default_factory=list)
    cpu: Cpu = field(default_factory=Cpu)
    raw_sent: int = 0
    raw_received: int = 0
    raw_seconds: float = 0.0
    gc_seconds: float = 0.0  # the worker process's garbage collections (any thread)
    gc_collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_by_generation: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0

    @property
    def raw_per_s(self) -> float:
        return self.raw_received / self.raw_seconds if self.raw_seconds else 0.0

    def delay(self, q: float) -> float:
        """Delay quantile in ms (q in 0..1; 1 = max)."""
        if not self.delays_ms:
            return float("nan")
        ordered = sorted(self.delays_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def per_kpoints(self, cpu_s: float) -> float:
        return cpu_s / self.points * 1000 if self.points else float("nan")

    def report(self) -> str:
        ratio = self.messages_per_s / self.raw_per_s if self.raw_per_s else float("nan")
        lines = [
            f"target {self.rate:,.0f} msg/s x {self.samples} samples for {self.duration:.0f} s "
            f"from {self.gateways} gateways: sent {self.sent:,} in {self.publish_seconds:.1f} s "
            f"({self.sent / max(self.publish_seconds, 1e-9):,.0f} msg/s)",
            f"worker: {self.messages:,} messages, {self.points:,} points written in "
            f"{self.seconds:.1f} s = {self.messages_per_s:,.0f} msg/s, "
            f"{self.points_per_s:,.0f} points/s ({self.points_per_s * FIELDS_PER_POINT:,.0f} "
            f"fields/s); dropped {self.dropped}; stored in VictoriaMetrics {self.stored:,}",
            f"delay publish -> write done (ms, {len(self.delays_ms):,} points): "
            f"p50 {self.delay(0.5):.0f}  p99 {self.delay(0.99):.0f}  max {self.delay(1.0):.0f}"
            f"  mean {statistics.fmean(self.delays_ms) if self.delays_ms else float('nan'):.0f}",
            f"CPU s per 1,000 points: worker {self.per_kpoints(self.cpu.worker):.3f}  "
            f"mosquitto {self.per_kpoints(self.cpu.broker):.3f}  "
            f"victoria-metrics {self.per_kpoints(self.cpu.victoria):.3f}  "
            f"(worker {self.cpu.worker / max(self.seconds, 1e-9):.0%} of one core)",
            f"of which garbage collection: {self.per_kpoints(self.gc_seconds):.3f} CPU s per "
            f"1,000 points; generation 0 / 1 / 2: {self.gc_collections[0]:,} / "
            f"{self.gc_collections[1]:,} / {self.gc_collections[2]:,} collections, "
            f"{' / '.join(f'{s:.2f}' for s in self.gc_by_generation)} s",
            f"broker raw (same payloads, unpaced, plain subscriber): {self.raw_received:,} of "
            f"{self.raw_sent:,} received in {self.raw_seconds:.1f} s = {self.raw_per_s:,.0f} "
            f"msg/s; pipeline = {ratio:.0%} of it",
        ]
        return "\n".join(lines)


def _gateways(count: int) -> list[str]:
    names = [u for u in USERS if u.startswith("gw")]
    if not 1 <= count <= len(names):
        raise ValueError(f"--gateways must be 1..{len(names)} (users in bench.mosquitto.USERS)")
    return names[:count]


async def raw_broker(broker: Mosquitto, gateways: Sequence[str], *, duration: float,
                     devices: int, samples: int) -> tuple[int, int, float]:
    """Unpaced publish to a plain subscriber: (sent, received, seconds to the last one)."""
    received = 0
    last = 0.0
    async with aiomqtt.Client("127.0.0.1", broker.port, username="cloud",
                              password=USERS["cloud"], identifier="bench-raw-sub",
                              protocol=aiomqtt.ProtocolVersion.V5, logger=QUIET) as client:
        await client.subscribe("ev/v1/+/connector/+/prop", qos=1)
        publisher = Publisher(broker.port, gateways, rate=0, duration=duration, devices=devices,
                              samples=samples)

        async def count() -> None:
            nonlocal received, last
            async for _ in client.messages:
                received += 1
                last = time.time()

        counter = asyncio.create_task(count())
        try:
            await publisher.ready()
            sent, _ = await publisher.result(duration + 60)
            deadline = time.monotonic() + 30
            while received < sent and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            counter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counter
            publisher.stop()
    # from the publisher's start to the last message received
    return sent, received, max(0.0, last - publisher.start_at) if received else 0.0


def cloud_config(broker: Mosquitto, victoria: Victoria, workdir: Path) -> CloudConfig:
    """The worker's config for the bench (shipped defaults otherwise)."""
    return CloudConfig(
        mqtt=CloudMqttConfig(port=broker.port, username="cloud", password=USERS["cloud"],
                             protocol="v5"),
        database_url=f"sqlite:///{workdir / 'cloud.db'}",
        http=HttpConfig(port=0),
        rules=RulesConfig(paths=[str(RULES)]),
        sinks=SinksConfig(influx=InfluxConfig(url=victoria.url)),
    )


def _sample(service: CloudService, name: str, labels: dict[str, str]) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


def _dropped(service: CloudService) -> float:
    # the sink counter alone (collecting the whole registry every poll cost the worker's
    # process about 5 ms each time)
    dropped = SinkMetrics.on(service.metrics.registry).dropped
    return sum(s.value for metric in dropped.collect() for s in metric.samples
               if s.name.endswith("_total") and s.labels.get("sink") == "telemetry")


class GcClock:
    """CPU time the interpreter spends in garbage collections (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self.by_generation = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            spent = time.thread_time() - self._started
            self.seconds += spent
            self.collections[info["generation"]] += 1
            self.by_generation[info["generation"]] += spent

    def start(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


async def run_pipeline(workdir: Path, *, rate: float = 2000, duration: float = 30,
                       gateways: int = 2, devices: int = 100, samples: int = 5,
                       raw_duration: float = 5, grace: float = 20,
                       profile: Path | None = None, gc_freeze: bool = False) -> Result:
    """Start everything, measure the raw broker, then the pipeline; stop what was started."""
    names = _gateways(gateways)
    os.environ.setdefault("VOLTMESH_JWT_SECRET", "bench-secret-" + "x" * 40)
    os.environ.setdefault("VOLTMESH_ADMIN_PASSWORD", "bench-admin-password-123")
    result = Result(rate=rate, duration=duration, gateways=gateways, samples=samples)
    broker = Mosquitto(workdir / "mosquitto")
    victoria = Victoria(workdir / "victoria")
    broker.start()
    try:
        victoria.start()
        result.raw_sent, result.raw_received, result.raw_seconds = await raw_broker(
            broker, names, duration=raw_duration, devices=devices, samples=samples)
        await _measure(result, broker, victoria, workdir, names, devices, grace, profile,
                       gc_freeze)
    finally:
        victoria.stop()
        broker.stop()
    return result


async def _measure(result: Result, broker: Mosquitto, victoria: Victoria, workdir: Path,
                   names: Sequence[str], devices: int, grace: float,
                   profile: Path | None = None, gc_freeze: bool = False) -> None:
    assert broker.proc is not None
    assert victoria.proc is not None
    service = CloudService(cloud_config(broker, victoria, workdir), base_dir=ROOT)
    queue = service.sinks.queues[Lane.TELEMETRY]
    inner = queue.writer
    delays = result.delays_ms

    async def timed(batch: list[Action]) -> None:
        await inner(batch)
        done = time.time() * 1000
        delays.extend(done - a.ts_ms for a in batch if isinstance(a, WritePoint))

    queue.writer = timed
    gc_clock = GcClock()
    task = asyncio.create_task(service.run(), name="cloud")
    try:
        async with asyncio.timeout(30):
            await service.started.wait()
            await service.consumer.connected.wait()
        await asyncio.sleep(1.0)  # subscriptions in place
        if gc_freeze:  # what the worker has built so far is never collected again
            gc.collect()
            gc.freeze()
        pids = (os.getpid(), broker.proc.pid, victoria.proc.pid)
        msgs0 = _sample(service, "voltmesh_cloud_messages_total", {"kind": "prop"})
        points0 = _sample(service, "voltmesh_sink_written_total", {"sink": "telemetry"})
        publisher = Publisher(broker.port, names, rate=result.rate, duration=result.duration,
                              devices=devices, samples=result.samples)
        await publisher.ready()
        while time.time() < publisher.start_at:
            await asyncio.sleep(0.01)
        profiler = cProfile.Profile(time.thread_time) if profile is not None else None
        if profiler is not None:
            profiler.enable()
        gc_clock.start()
        cpu0 = [cpu_seconds(pid) for pid in pids]
        t0 = time.monotonic()
        result.sent, result.publish_seconds = await publisher.result(result.duration + 120)
        expected = result.sent * result.samples
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            written = _sample(service, "voltmesh_sink_written_total", {"sink": "telemetry"})
            if written - points0 + _dropped(service) >= expected:
                break
            await asyncio.sleep(0.05)
        result.seconds = time.monotonic() - t0
        cpu1 = [cpu_seconds(pid) for pid in pids]
        gc_clock.stop()
        result.gc_seconds, result.gc_collections = gc_clock.seconds, gc_clock.collections
        result.gc_by_generation = gc_clock.by_generation
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        result.cpu = Cpu(*(b - a for a, b in zip(cpu0, cpu1, strict=True)))
        result.messages = int(_sample(service, "voltmesh_cloud_messages_total",
                                      {"kind": "prop"}) - msgs0)
        result.points = int(_sample(service, "voltmesh_sink_written_total",
                                    {"sink": "telemetry"}) - points0)
        result.dropped = int(_dropped(service))
    finally:
        gc_clock.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    window = int(result.seconds + result.duration + 120)
    deadline = time.monotonic() + 10
    while True:  # what was written becomes searchable after a flush; give it a few tries
        await victoria.force_flush()
        answer = await victoria.query(f"sum(count_over_time(connector_power[{window}s]))")
        result.stored = int(float(answer[0]["value"][1])) if answer else 0
        if result.stored >= result.points or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000, help="messages/s in total")
    parser.add_argument("--duration", type=float, default=30, help="seconds of publishing")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--devices", type=int, default=100, help="connectors per gateway")
    parser.add_argument("--samples", type=int, default=5, help="samples per batch message")
    parser.add_argument("--raw-duration", type=float, default=5,
                        help="seconds of the raw broker measurement")
    parser.add_argument("--grace", type=float, default=20,
                        help="seconds to wait for the last points after publishing")
    parser.add_argument("--quick", action="store_true", help="5 s smoke run at 200 msg/s")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the worker has started (what it would save)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE",
                        help="cProfile the event-loop thread over the measured window into FILE "
                             "(pstats; slows the worker down)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.duration, args.raw_duration = 200, 5, 2
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"at start")
    kwargs: dict[str, Any] = {
        "rate": args.rate, "duration": args.duration, "gateways": args.gateways,
        "devices": args.devices, "samples": args.samples, "raw_duration": args.raw_duration,
        "grace": args.grace, "profile": args.profile.resolve() if args.profile else None,
        "gc_freeze": args.gc_freeze,
    }
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        result = asyncio.run(run_pipeline(Path(tmp), **kwargs))
    print(result.report())
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")


if __name__ == "__main__":
    main()
