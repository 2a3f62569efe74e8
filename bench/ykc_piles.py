"""Benchmark: N simulated YKC piles on ONE gateway process.

    python -m bench.ykc_piles --piles 10000 --charging 2000 --calls 500 --steady 60

Starts Mosquitto (shipped config) on a free port, one gateway process (`voltmesh edge`) with
the YKC listener, and the pile fleet in another process; provisions the piles and a tariff as
the cloud would (retained desired state), waits until every pile is logged in, then
* measures the gateway's RSS per connection, CPU and open file descriptors;
* sends ``--idle-calls`` `remoteStart` calls one at a time (the latency of a call on an idle
  system), then starts charging on ``--charging`` connectors with ``--concurrency`` calls in
  flight and records the latency from each call's publish to its reply (the pile's 0x33 relayed
  back), the calls per second and the gateway CPU per call. In the burst a call waits for the
  ones ahead of it: its latency is about (calls ahead) / (calls per second), not a hop's delay
  (`bench/ykc_trace.py` stamps every hop);
* holds a steady window with real-time data every 15 s from every charging pile and
  heartbeats every 10 s from all, and reports the gateway CPU in it.
``--probe`` runs the gateway and the pile fleet under stall probes (slow event-loop callbacks
with CPU time and a stack sample, GC passes, slow outbox commits) and reports them per window,
with the heap at the end; ``--gc-freeze`` freezes the gateway's heap once every pile is online,
``--profile`` writes a cProfile of the gateway in the burst (see docs/protocols/ykc.md,
"Service latency"). The gateway runs with outbox receipts off (no cloud worker receipts here).
Prints a table and one JSON line. Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import contextlib
import cProfile
import gc
import json
import os
import pstats
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import aiomqtt

import edge.outbox
from bench.mosquitto import USERS, Mosquitto
from bench.procs import cpu_seconds, free_port, open_fds, rss_bytes, wait_port
from sim.ykc import fleet_pile_codes
from thingmodels import Envelope, decode, encode, now_ms

ROOT = Path(__file__).resolve().parents[1]
GW = "bench-gw"


def ykc_tariff(version: int) -> dict[str, Any]:
    """A tariff of the YKC model's four tiers: valley 00:00-08:00, flat for the rest of the day
    (the bench's, and the YKC tests' through tests/support/ykc.py)."""
    return {"version": version,
            "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                      "peak": {"energy": "1.0", "service": "0.6"},
                      "flat": {"energy": "0.7", "service": "0.6"},
                      "valley": {"energy": "0.3", "service": "0.6"}},
            "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                        {"start": "08:00", "end": "24:00", "tier": "flat"}]}


TARIFF = ykc_tariff(1)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


def probe_process(out: str, label: str, module: str, argv: list[str]) -> None:
    """Run ``python -m <module> <argv>`` with stall probes (``--probe``): every event-loop
    callback that runs longer than 10 ms (what it was), every garbage-collector pass longer than
    2 ms (generation) and every outbox SQLite commit longer than 5 ms, appended as JSON lines to
    ``out`` with wall-clock times, so the bench can tell which stall, in which process (the
    gateway, the pile fleet), hit a call's tail."""
    sink = open(out, "a", buffering=1)  # noqa: SIM115 - the process's lifetime
    clock = time.perf_counter

    def record(kind: str, ms: float, **more: Any) -> None:
        sink.write(json.dumps({"t": time.time(), "proc": label, "kind": kind,
                               "ms": round(ms, 2), **more}) + "\n")

    gc_start = [0.0]

    gc_cpu = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0], gc_cpu[0] = clock(), time.thread_time()
            return
        ms = (clock() - gc_start[0]) * 1000
        if ms > 2:
            # (not gc.get_freeze_count(): it walks every frozen object, 15-40 ms at 2,000 piles)
            record("gc", ms, cpu_ms=round((time.thread_time() - gc_cpu[0]) * 1000, 2),
                   gen=info["generation"], collected=info["collected"],
                   objects=len(gc.get_objects(2)) if info["generation"] == 2 else None)

    gc.callbacks.append(on_gc)

    handle_run = asyncio.events.Handle._run

    cpu_clock = time.thread_time

    # a callback that has held the loop for 15 ms: a watcher thread samples the main thread's
    # stack (what it is doing, not just which task) once per callback
    running: list[float] = [0.0, 0.0]  # [start, sampled]
    main_id = threading.get_ident()

    def watch() -> None:
        while True:
            time.sleep(0.005)
            start = running[0]
            if start and running[1] != start and clock() - start > 0.015:
                running[1] = start
                frame = sys._current_frames().get(main_id)
                if frame is not None:
                    stack = [f"{Path(f.filename).name}:{f.lineno} {f.name}"
                             for f in traceback.extract_stack(frame)[-14:]]
                    record("sample", (clock() - start) * 1000, stack=stack)

    threading.Thread(target=watch, daemon=True, name="stall-watch").start()

    def timed_run(self: asyncio.events.Handle) -> None:
        callback = self._callback  # type: ignore[attr-defined]
        t0, c0 = clock(), cpu_clock()
        running[0] = t0
        handle_run(self)
        running[0] = 0.0
        ms = (clock() - t0) * 1000
        if ms > 10:  # cpu_ms well below ms: the process was preempted, not busy
            owner = getattr(callback, "__self__", None)
            what = repr(callback)
            if isinstance(owner, asyncio.Task):  # name the task by its coroutine
                coro = getattr(owner.get_coro(), "__qualname__", "?")
                what = f"task {owner.get_name()}: {coro}"
            record("callback", ms, cpu_ms=round((cpu_clock() - c0) * 1000, 2), what=what[:300])

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]

    tx_exit = edge.outbox._Tx.__exit__

    def timed_exit(self: Any, *exc: Any) -> None:
        t0 = clock()
        tx_exit(self, *exc)
        ms = (clock() - t0) * 1000
        if ms > 5:
            record("commit", ms)

    edge.outbox._Tx.__exit__ = timed_exit  # type: ignore[method-assign]

    # --profile: SIGUSR2 starts cProfile, the next SIGUSR2 stops it and writes <out>.<label>.txt
    profiler = cProfile.Profile()
    profiling = [False]

    def profile_toggle(_sig: int, _frame: object) -> None:
        profiling[0] = not profiling[0]
        if profiling[0]:
            profiler.enable()
            return
        profiler.disable()
        with open(f"{out}.{label}.txt", "w") as text:
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(60)

    # SIGUSR1: how many objects the collector tracks and what a full collection costs now
    def heap(_sig: int, _frame: object) -> None:
        t0, c0 = clock(), time.thread_time()
        gc.collect()
        record("heap", (clock() - t0) * 1000, cpu_ms=round((time.thread_time() - c0) * 1000, 2),
               objects=len(gc.get_objects()), frozen=gc.get_freeze_count())

    # --gc-freeze (SIGWINCH): what is alive now (the gateway and its connected piles) moves out
    # of the collector's reach, as `voltmesh cloud` does once started
    def freeze(_sig: int, _frame: object) -> None:
        t0 = clock()
        gc.collect()
        gc.freeze()
        record("freeze", (clock() - t0) * 1000, frozen=gc.get_freeze_count())

    signal.signal(signal.SIGUSR1, heap)
    signal.signal(signal.SIGWINCH, freeze)
    signal.signal(signal.SIGUSR2, profile_toggle)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vm-bench-ykc-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    ykc_port = free_port()
    # receipts off: the bench has no cloud worker to receipt events, and without one every
    # boot and sessionStarted event would be published again 30 s after its PUBACK (a load
    # that a real cloud does not cause)
    (work / "gw.yaml").write_text(f"""
gateway_id: {GW}
mqtt: {{port: {broker.port}, password: {USERS[GW]}, max_inflight: 200}}
outbox: {{path: outbox.db, receipts: false}}
telemetry: {{flush_interval: 1s, stats_interval: 30s, max_batch: 50}}
adapters:
  ykc: {{host: 127.0.0.1, port: {ykc_port}, heartbeat_interval: 10s, max_connections: 19500}}
log_format: json
""")
    codes = fleet_pile_codes(args.piles, "3201020")
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"piles": args.piles}
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="cloud",
                                  password=USERS["cloud"], identifier="bench-cloud",
                                  max_queued_incoming_messages=0,
                                  # paho's default (20 QoS 1 publishes in flight) held back
                                  # 30 of the 50 concurrent calls inside the bench's own client
                                  max_inflight_messages=max(100, 2 * args.concurrency),
                                  socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                                  ) as cloud:
            cloud.pending_calls_threshold = 100_000
            doc = {"version": 1, "tariff": TARIFF,
                   "devices": [{"product": "charger", "id": c, "protocol": "ykc"} for c in codes]}
            await cloud.publish(f"ev/v1/{GW}/gateway/{GW}/desired",
                                encode(Envelope.new(src="cloud", p=doc)), qos=1, retain=True)
            await cloud.subscribe([(f"ev/v1/{GW}/charger/+/state", 1),
                                   (f"ev/v1/{GW}/connector/+/svc/+/reply", 1)])
            gw_log = (work / "gw.log").open("wb")
            probe = work / "probe.jsonl"
            launcher = (["-m", "bench.ykc_piles", "--as-probed", str(probe), "gateway",
                         "voltmesh"] if args.probe else ["-m", "voltmesh"])
            gateway = subprocess.Popen([sys.executable, *launcher, "edge", "--config",
                                        str(work / "gw.yaml")], cwd=ROOT, stdout=gw_log,
                                       stderr=subprocess.STDOUT)
            procs.append(gateway)
            wait_port(ykc_port, 30)
            await asyncio.sleep(1.0)
            rss0 = rss_bytes(gateway.pid)
            online: set[str] = set()
            windows: dict[str, list[float]] = {}  # name: [wall clock begin, end]
            replies: dict[str, float] = {}
            waiting: dict[str, asyncio.Future[None]] = {}

            async def receive() -> None:
                async for message in cloud.messages:
                    topic = message.topic.value
                    env = decode(message.payload)
                    if topic.endswith("/state") and env.p and env.p.get("online"):
                        online.add(topic.split("/")[4])
                    elif topic.endswith("/reply") and env.cid:
                        replies[env.cid] = time.perf_counter()
                        waiter = waiting.pop(env.cid, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)

            receiver = asyncio.create_task(receive())
            fleet = subprocess.Popen(
                [sys.executable, *(["-m", "bench.ykc_piles", "--as-probed", str(probe), "fleet"]
                                   if args.probe else ["-m"]),
                 "bench.ykc_fleet", str(args.piles), str(ykc_port),
                 "--connect-rate", str(args.connect_rate),
                 *(["--no-gc-freeze"] if args.fleet_no_gc_freeze else [])],
                cwd=ROOT, stdout=(work / "fleet.log").open("wb"), stderr=subprocess.STDOUT)
            procs.append(fleet)
            t0 = time.monotonic()
            while len(online) < args.piles and time.monotonic() - t0 < args.connect_timeout:
                await asyncio.sleep(0.5)
            result["connect_s"] = round(time.monotonic() - t0, 1)
            result["online"] = len(online)
            await asyncio.sleep(5)  # let billing-model exchanges settle
            if args.gc_freeze:
                windows["freeze"] = [time.time(), 0.0]
                gateway.send_signal(signal.SIGWINCH)
                await asyncio.sleep(1)
                windows["freeze"][1] = time.time()
            rss1 = rss_bytes(gateway.pid)
            result["gateway_rss_mb"] = round(rss1 / 2**20, 1)
            result["rss_per_connection_kb"] = round((rss1 - rss0) / max(1, len(online)) / 1024, 1)
            result["gateway_fds"] = open_fds(gateway.pid)

            # remote starts: latency from publish to reply
            calls: list[tuple[float, float]] = []  # (wall clock at publish, latency ms)
            latencies: list[float] = []
            sent: dict[str, float] = {}
            idle_targets = codes[: args.idle_calls]
            targets = codes[args.idle_calls: args.idle_calls + args.charging]
            sem = asyncio.Semaphore(args.concurrency)

            async def start(code: str) -> None:
                async with sem:
                    env = Envelope.new(src="cloud", p={"idTag": "00000000D14B0A54"},
                                       dl=now_ms() + 30_000)
                    # woken by the receiver: a 5 ms polling loop per call cost the bench
                    # process CPU that the broker and the gateway share
                    waiting[env.id] = asyncio.get_running_loop().create_future()
                    sent[env.id], wall = time.perf_counter(), time.time()
                    await cloud.publish(f"ev/v1/{GW}/connector/{code}01/svc/remoteStart",
                                        encode(env), qos=1)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiting[env.id], 30)
                    waiting.pop(env.id, None)
                    if env.id in replies:
                        latencies.append((replies[env.id] - sent[env.id]) * 1000)
                        calls.append((wall, latencies[-1]))

            # one call at a time: the latency of a call on an otherwise idle system
            for code in idle_targets:
                await start(code)
            result["idle_remote_start_p50_ms"] = round(percentile(latencies, 50), 1)
            result["idle_remote_start_p99_ms"] = round(percentile(latencies, 99), 1)
            latencies.clear()
            # then a burst with --concurrency calls in flight: a call waits for the ones
            # ahead of it, so its latency is about (calls ahead) / (calls per second)
            t1, cpu_burst = time.monotonic(), cpu_seconds(gateway.pid)
            windows["burst"] = [time.time(), 0.0]
            if args.profile:
                gateway.send_signal(signal.SIGUSR2)
            await asyncio.gather(*(start(c) for c in targets))
            if args.profile:
                gateway.send_signal(signal.SIGUSR2)
                result["profile"] = str(probe) + ".gateway.txt"
            windows["burst"][1] = time.time()
            burst_s = time.monotonic() - t1
            cpu_burst = cpu_seconds(gateway.pid) - cpu_burst
            result["remote_starts"] = len(targets)
            result["remote_start_replies"] = len(latencies)
            result["remote_start_s"] = round(burst_s, 2)
            result["remote_starts_per_s"] = round(len(latencies) / max(burst_s, 1e-9))
            result["gateway_cpu_ms_per_remote_start"] = round(
                cpu_burst * 1000 / max(1, len(targets)), 2)
            result["remote_start_p50_ms"] = round(percentile(latencies, 50), 1)
            result["remote_start_p99_ms"] = round(percentile(latencies, 99), 1)
            result["remote_start_max_ms"] = round(max(latencies, default=float("nan")), 1)

            # steady state: heartbeats from all, real-time data from the charging ones
            cpu0, w0 = cpu_seconds(gateway.pid), time.monotonic()
            windows["steady"] = [time.time(), 0.0]
            await asyncio.sleep(args.steady)
            windows["steady"][1] = time.time()
            cpu1, w1 = cpu_seconds(gateway.pid), time.monotonic()
            result["steady_s"] = round(w1 - w0, 1)
            result["gateway_cpu_pct"] = round((cpu1 - cpu0) / (w1 - w0) * 100, 1)
            result["gateway_cpu_us_per_connection_s"] = round(
                (cpu1 - cpu0) / (w1 - w0) / max(1, len(online)) * 1e6, 1)
            # idle-load latency sample: a few more remote starts while everything runs
            more = codes[args.idle_calls + args.charging:
                         args.idle_calls + args.charging + args.calls]
            latencies.clear()
            t2, cpu_loaded = time.monotonic(), cpu_seconds(gateway.pid)
            windows["loaded"] = [time.time(), 0.0]
            await asyncio.gather(*(start(c) for c in more))
            windows["loaded"][1] = time.time()
            cpu_loaded = cpu_seconds(gateway.pid) - cpu_loaded
            if args.probe:  # the gateway's heap at the end: objects, a full collection's cost
                gateway.send_signal(signal.SIGUSR1)
                fleet.send_signal(signal.SIGUSR1)
                windows["heap"] = [time.time(), 0.0]
                await asyncio.sleep(2)
                windows["heap"][1] = time.time()
            result["loaded_remote_start_s"] = round(time.monotonic() - t2, 2)
            result["loaded_gateway_cpu_ms_per_remote_start"] = round(
                cpu_loaded * 1000 / max(1, len(more)), 2)
            result["loaded_remote_start_p50_ms"] = round(percentile(latencies, 50), 1)
            result["loaded_remote_start_p99_ms"] = round(percentile(latencies, 99), 1)
            result["loaded_remote_start_max_ms"] = round(max(latencies, default=float("nan")), 1)
            result["gateway_rss_end_mb"] = round(rss_bytes(gateway.pid) / 2**20, 1)
            receiver.cancel()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        broker.stop()
    if args.probe:
        result["stalls"] = stall_summary(work / "probe.jsonl", windows, calls)
    result["machine"] = f"{os.cpu_count()} cores"
    return result


def stall_summary(path: Path, windows: dict[str, list[float]],
                  calls: list[tuple[float, float]]) -> dict[str, Any]:
    """Per window (burst, steady, loaded): the probe's stalls by process and kind (count, total,
    max and CPU ms), the longest callbacks and GC passes (process, seconds into the window when
    it ended, wall ms, CPU ms, what) and the slowest calls (seconds into the window when
    published, latency ms)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out: dict[str, Any] = {}
    for name, (begin, end) in windows.items():
        inside = [r for r in records if begin <= r["t"] <= (end or float("inf"))]
        kinds: dict[str, dict[str, float]] = {}
        for r in inside:
            if r["kind"] == "freeze":
                out["gc_freeze_gateway"] = {"frozen": r["frozen"], "ms": r["ms"]}
                continue
            if r["kind"] == "heap":
                out[f"heap_{r['proc']}"] = {"objects": r["objects"], "frozen": r["frozen"],
                                            "full_collection_ms": r["ms"],
                                            "full_collection_cpu_ms": r["cpu_ms"]}
                continue
            key = r["proc"] + "/" + (f"gc{r['gen']}" if r["kind"] == "gc" else r["kind"])
            k = kinds.setdefault(key, {"n": 0, "total_ms": 0.0, "max_ms": 0.0})
            k["n"] += 1
            k["total_ms"] = round(k["total_ms"] + r["ms"], 1)
            k["max_ms"] = max(k["max_ms"], r["ms"])
            k["cpu_ms"] = round(k.get("cpu_ms", 0.0) + r.get("cpu_ms", r["ms"]), 1)
        samples = [r for r in inside if r["kind"] == "sample"]
        worst = sorted((r for r in inside if r["kind"] not in ("commit", "sample")),
                       key=lambda r: -r["ms"])[:6]
        slow = sorted((c for c in calls if begin <= c[0] <= end), key=lambda c: -c[1])[:5]
        out[name] = {"by_kind": kinds,
                     "stack_samples": [(round(r["t"] - begin, 3), r["stack"]) for r in samples],
                     "slowest_calls": [(round(t - begin, 3), round(ms, 1)) for t, ms in slow],
                     "worst": [(r["proc"], round(r["t"] - begin, 3), r["ms"], r.get("cpu_ms"),
                                r.get("what", f"gc{r.get('gen')} over {r.get('objects')} objects"
                                      if r["kind"] == "gc" else r["kind"])[:160])
                               for r in worst]}
    return out


def options(**overrides: Any) -> argparse.Namespace:
    """The command line's defaults with ``overrides`` (for callers such as
    ``voltmesh bench connections``), normalised as :func:`main` does."""
    args = build_parser().parse_args([])
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise TypeError(f"ykc_piles has no option {key!r}")
        setattr(args, key, value)
    return _normalised(args)


def _normalised(args: argparse.Namespace) -> argparse.Namespace:
    args.probe = args.probe or args.profile or args.gc_freeze
    if args.charging is None:
        args.charging = args.piles // 5
    args.idle_calls = min(args.idle_calls, max(0, args.piles - args.charging))
    args.calls = min(args.calls, max(0, args.piles - args.charging - args.idle_calls))
    return args


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--piles", type=int, default=1000)
    parser.add_argument("--charging", type=int, default=None,
                        help="connectors started (default: piles // 5)")
    parser.add_argument("--calls", type=int, default=200, help="remote starts under load")
    parser.add_argument("--idle-calls", type=int, default=20,
                        help="remote starts one at a time before the burst (idle latency)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--steady", type=float, default=30.0)
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--probe", action="store_true",
                        help="run the gateway with stall probes (slow loop callbacks, GC passes, "
                             "slow outbox commits) and report them per window")
    parser.add_argument("--profile", action="store_true",
                        help="with --probe: cProfile the gateway during the burst (written to "
                             "the bench's work directory; the profiler slows the gateway)")
    parser.add_argument("--fleet-no-gc-freeze", action="store_true",
                        help="the pile simulator keeps its piles in the collector's reach (by "
                             "default it freezes them once all are up: its full collections, "
                             "~100 ms at 2,000 piles, delayed the piles' replies)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="with --probe: gc.collect() + gc.freeze() in the gateway once every "
                             "pile is online (full collections then skip the piles' objects)")
    return parser


def main() -> None:
    if len(sys.argv) > 4 and sys.argv[1] == "--as-probed":
        probe_process(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
        return
    args = _normalised(build_parser().parse_args())
    result = asyncio.run(run(args))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
