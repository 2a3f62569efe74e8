"""Benchmark: the gateway's garbage-collector pauses with N connected chargers, per GC policy.

    python -m bench.gc_pause --piles 2000 --policy current
    python -m bench.gc_pause --piles 5000 --policy refreeze --refreeze 60
    python -m bench.gc_pause --piles 2000 --protocol ocpp --policy refreeze

Starts Mosquitto (shipped config) on a free port, provisions the chargers as the cloud would
(retained desired state), and runs ONE real gateway process, ``voltmesh edge --config gw.yaml``
(the production entry, :func:`voltmesh.cli._frozen_after` included), under a recorder: every
garbage-collector pass is timed from ``gc.callbacks`` inside the gateway (wall and CPU ms, the
generation, objects collected) and every re-freeze of :mod:`voltmesh.gcpolicy` is marked. The
simulated chargers connect over real TCP from their own processes (YKC: ``bench.ykc_fleet``;
OCPP: ``bench.ocpp_fleet``, security profile 0). Phases:

* ``connect``: the fleet logs in (``--connect-rate`` per second), then 5 s to settle;
* ``charge``: ``--charging`` connectors are started with ``remoteStart`` calls (50 in flight),
  so real-time data / meter values flow from then on;
* ``steady``: ``--steady`` seconds of heartbeats and real-time data;
* ``churn``: ``--cycles`` times, a separate shard of ``--churn`` chargers is killed (its TCP
  connections die with it) and started again: the gateway's objects for the dead connections
  become garbage, cycles included;
* ``settle``: ``--settle`` seconds (default: the re-freeze interval + 15 s, so a re-freeze
  runs after the churn).

At the end of every phase the gateway reports its heap (tracked objects: frozen and not,
``gc.get_freeze_count()``, its RSS); at the very end it first runs ``gc.collect()`` (not
counted as a pause), so what is left frozen beyond the live heap is leaked garbage.

Policies (``gc_refreeze`` of the gateway config): ``current`` (null: freeze once at start, what
``voltmesh edge`` did before), ``refreeze`` (``--refreeze`` seconds: :class:`GcPolicy`), and
``freeze-connected`` (a re-freeze interval longer than the run: the growth trigger freezes the
connected fleet once and nothing is unfrozen again — the variant that leaks, for comparison).

Prints a table per phase and one JSON line. Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS, Mosquitto
from bench.ocpp_fleet import charger_id
from bench.procs import free_port, rss_bytes, stop_process, wait_port
from bench.ykc_piles import TARIFF
from sim.ykc import fleet_pile_codes
from thingmodels import Envelope, decode, encode, now_ms
from voltmesh import gcpolicy

ROOT = Path(__file__).resolve().parents[1]
GW = "bench-gw"
YKC_PREFIX, YKC_CHURN_PREFIX = "3201020", "3201030"
OCPP_CHURN_PREFIX = "OCPC"
POLICIES = {"current": "null", "refreeze": None, "freeze-connected": "1000000"}


# -- inside the gateway process --------------------------------------------------------------

def gateway_process(record: str, argv: list[str]) -> None:
    """Run ``python -m voltmesh <argv>`` with a GC recorder writing JSON lines to ``record``:
    every generation-2 pass and every pass over 2 ms (``gc``), every re-freeze of
    :mod:`voltmesh.gcpolicy` (``refreeze``), and on SIGUSR1 the heap (``heap``: tracked and
    frozen objects, RSS, per-generation pass counts / total / max ms since the last one);
    on SIGUSR2 the same after a ``gc.collect()`` (marked ``probe``, not a pause)."""
    sink = open(record, "a", buffering=1)  # noqa: SIM115 - the process's lifetime
    clock, cpu = time.perf_counter, time.thread_time
    state: dict[str, Any] = {"t0": 0.0, "c0": 0.0, "refreeze": False, "probe": False}
    gens = [{"n": 0, "ms": 0.0, "max_ms": 0.0} for _ in range(3)]

    def write(kind: str, **more: Any) -> None:
        sink.write(json.dumps({"t": time.time(), "kind": kind, **more}) + "\n")

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            state["t0"], state["c0"] = clock(), cpu()
            return
        ms = (clock() - state["t0"]) * 1000
        gen = info["generation"]
        if state["probe"]:
            return
        g = gens[gen]
        g["n"] += 1
        g["ms"] += ms
        g["max_ms"] = max(g["max_ms"], ms)
        if gen == 2 or ms > 2:
            write("gc", gen=gen, ms=round(ms, 2), cpu_ms=round((cpu() - state["c0"]) * 1000, 2),
                  collected=info["collected"], refreeze=state["refreeze"])

    gc.callbacks.append(on_gc)

    original = gcpolicy.refreeze

    def recorded_refreeze() -> gcpolicy.Refreeze:
        state["refreeze"] = True
        c0 = cpu()
        try:
            done = original()
        finally:
            state["refreeze"] = False
        write("refreeze", ms=round(done.seconds * 1000, 2),
              cpu_ms=round((cpu() - c0) * 1000, 2), collected=done.collected, frozen=done.frozen)
        return done

    gcpolicy.refreeze = recorded_refreeze

    def heap(collect: bool) -> None:
        if collect:
            state["probe"] = True
            gc.collect()
            state["probe"] = False
        young = len(gc.get_objects())
        frozen = gc.get_freeze_count()
        write("heap", collected_first=collect, young=young, frozen=frozen,
              tracked=young + frozen, rss_mb=round(rss_bytes(os.getpid()) / 2**20, 1),
              gens=[{k: round(v, 1) for k, v in g.items()} for g in gens])
        for g in gens:
            g.update(n=0, ms=0.0, max_ms=0.0)

    signal.signal(signal.SIGUSR1, lambda _s, _f: heap(False))
    signal.signal(signal.SIGUSR2, lambda _s, _f: heap(True))
    sys.argv = ["voltmesh", *argv]
    runpy.run_module("voltmesh", run_name="__main__", alter_sys=True)


# -- the driver ------------------------------------------------------------------------------

def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Fleet:
    """One simulator process (YKC or OCPP), killed and restarted by PID for the churn."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv, self.log = argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", *self.argv], cwd=ROOT,
                                         stdout=out, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig=sig, grace=15)
        self.proc = None


def gateway_yaml(args: argparse.Namespace, mqtt_port: int, port: int) -> str:
    refreeze = POLICIES[args.policy] or str(args.refreeze)
    if args.protocol == "ykc":
        adapter = (f"ykc: {{host: 127.0.0.1, port: {port}, heartbeat_interval: 10s, "
                   "max_connections: 19500}")
    else:
        adapter = (f"ocpp: {{host: 127.0.0.1, port: {port}, security_profile: 0, "
                   "heartbeat_interval: 60, max_connections: 19500}")
    # receipts off: no cloud worker receipts events here (as in bench.ykc_piles)
    return f"""
gateway_id: {GW}
mqtt: {{port: {mqtt_port}, password: {USERS[GW]}, max_inflight: 200}}
outbox: {{path: outbox.db, receipts: false}}
telemetry: {{flush_interval: 1s, stats_interval: 30s, max_batch: 50}}
adapters:
  {adapter}
log_format: json
gc_refreeze: {refreeze}
"""


def fleets(args: argparse.Namespace, port: int, work: Path) -> tuple[Fleet, Fleet, list[str],
                                                                     list[str]]:
    """The main fleet, the churn shard, all charger ids, the connectors to start."""
    main_n, churn_n = args.piles - args.churn, args.churn
    if args.protocol == "ykc":
        main_ids = fleet_pile_codes(main_n, YKC_PREFIX)
        churn_ids = fleet_pile_codes(churn_n, YKC_CHURN_PREFIX)
        main = Fleet(["bench.ykc_fleet", str(main_n), str(port), "--prefix", YKC_PREFIX,
                      "--connect-rate", str(args.connect_rate)], work / "fleet.log")
        churn = Fleet(["bench.ykc_fleet", str(churn_n), str(port), "--prefix",
                       YKC_CHURN_PREFIX, "--connect-rate", str(args.connect_rate)],
                      work / "churn.log")
        connectors = [f"{c}01" for c in main_ids[: args.charging]]
    else:
        main_ids = [charger_id(n) for n in range(1, main_n + 1)]
        churn_ids = [charger_id(n, OCPP_CHURN_PREFIX) for n in range(1, churn_n + 1)]
        common = ["--connect-rate", str(args.connect_rate), "--meter-interval", "15",
                  "--heartbeat-default", "60"]
        main = Fleet(["bench.ocpp_fleet", "1", str(main_n), str(port), *common],
                     work / "fleet.log")
        churn = Fleet(["bench.ocpp_fleet", "1", str(churn_n), str(port), "--prefix",
                       OCPP_CHURN_PREFIX, *common], work / "churn.log")
        connectors = [f"{c}-1" for c in main_ids[: args.charging]]
    return main, churn, main_ids + churn_ids, connectors


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vm-bench-gc-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    port = free_port()
    (work / "gw.yaml").write_text(gateway_yaml(args, broker.port, port))
    record = work / "gc.jsonl"
    main, churn, ids, connectors = fleets(args, port, work)
    product = "ykc" if args.protocol == "ykc" else "ocpp"
    doc: dict[str, Any] = {"version": 1,
                           "devices": [{"product": "charger", "id": c, "protocol": product}
                                       for c in ids]}
    if args.protocol == "ykc":
        doc["tariff"] = TARIFF
    result: dict[str, Any] = {"protocol": args.protocol, "piles": args.piles,
                              "policy": args.policy,
                              "refreeze_s": args.refreeze if args.policy == "refreeze" else None,
                              "churn": args.churn, "cycles": args.cycles,
                              "charging": len(connectors)}
    gateway: subprocess.Popen[bytes] | None = None
    windows: list[tuple[str, float, float]] = []
    heaps: list[dict[str, Any]] = []
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="cloud",
                                  password=USERS["cloud"], identifier="bench-cloud",
                                  max_queued_incoming_messages=0,
                                  max_inflight_messages=200) as cloud:
            cloud.pending_calls_threshold = 1_000_000
            await cloud.publish(f"ev/v1/{GW}/gateway/{GW}/desired",
                                encode(Envelope.new(src="cloud", p=doc)), qos=1, retain=True)
            await cloud.subscribe([(f"ev/v1/{GW}/charger/+/state", 1),
                                   (f"ev/v1/{GW}/connector/+/svc/+/reply", 1)])
            online: set[str] = set()
            waiting: dict[str, asyncio.Future[int]] = {}

            async def receive() -> None:
                async for message in cloud.messages:
                    topic = message.topic.value
                    env = decode(message.payload)
                    if topic.endswith("/state") and env.p is not None:
                        (online.add if env.p.get("online") else online.discard)(
                            topic.split("/")[4])
                    elif topic.endswith("/reply") and env.cid in waiting:
                        future = waiting.pop(env.cid)
                        if not future.done():
                            future.set_result(int(env.code or 0))

            receiver = asyncio.create_task(receive())
            with (work / "gw.log").open("wb") as gw_log:
                gateway = subprocess.Popen(
                    [sys.executable, "-m", "bench.gc_pause", "--as-gateway", str(record),
                     "edge", "--config", str(work / "gw.yaml")],
                    cwd=ROOT, stdout=gw_log, stderr=subprocess.STDOUT)
            wait_port(port, 30)
            await asyncio.sleep(1.0)
            gw_pid = gateway.pid

            async def snapshot(name: str, collect: bool = False) -> None:
                before = sum(1 for r in read_records(record) if r["kind"] == "heap")
                gateway.send_signal(signal.SIGUSR2 if collect else signal.SIGUSR1)
                for _ in range(300):
                    await asyncio.sleep(0.1)
                    done = [r for r in read_records(record) if r["kind"] == "heap"]
                    if len(done) > before:
                        heaps.append({"phase": name, **done[-1]})
                        return
                raise RuntimeError("the gateway did not report its heap")

            async def until(what: str, ok: Any, timeout: float) -> float:
                t0 = time.monotonic()
                while not ok():
                    if time.monotonic() - t0 > timeout:
                        raise RuntimeError(f"{what}: timed out after {timeout}s "
                                           f"({len(online)} online)")
                    await asyncio.sleep(0.2)
                return time.monotonic() - t0

            def phase(name: str) -> None:
                now = time.time()
                if windows:
                    windows[-1] = (windows[-1][0], windows[-1][1], now)
                windows.append((name, now, 0.0))

            await snapshot("started")
            phase("connect")
            main.start()
            churn.start()
            result["connect_s"] = round(await until(
                "connect", lambda: len(online) >= args.piles, args.connect_timeout), 1)
            await asyncio.sleep(5)
            await snapshot("connect")

            phase("charge")
            sem = asyncio.Semaphore(50)
            codes: dict[int, int] = {}

            async def start(connector: str) -> None:
                async with sem:
                    env = Envelope.new(src="cloud", p={"idTag": "00000000D14B0A54"},
                                       dl=now_ms() + 30_000)
                    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                    waiting[env.id] = future
                    await cloud.publish(f"ev/v1/{GW}/connector/{connector}/svc/remoteStart",
                                        encode(env), qos=1)
                    try:
                        code = await asyncio.wait_for(future, 40)
                    except TimeoutError:
                        code = -1
                    finally:
                        waiting.pop(env.id, None)
                    codes[code] = codes.get(code, 0) + 1

            await asyncio.gather(*(start(c) for c in connectors))
            result["remote_start_codes"] = codes
            await snapshot("charge")

            phase("steady")
            await asyncio.sleep(args.steady)
            await snapshot("steady")

            phase("churn")
            for _ in range(args.cycles):
                churn.stop(signal.SIGKILL)
                await until("churn drop", lambda: len(online) <= args.piles - args.churn,
                            120)
                churn.start()
                await until("churn reconnect", lambda: len(online) >= args.piles,
                            args.connect_timeout)
                await asyncio.sleep(2)
            await snapshot("churn")

            phase("settle")
            await asyncio.sleep(args.settle if args.settle is not None
                                else (args.refreeze + 15 if args.policy == "refreeze" else 15))
            await snapshot("settle")
            phase("end")
            await snapshot("end (after gc.collect)", collect=True)
            result["gateway_rss_mb"] = round(rss_bytes(gw_pid) / 2**20, 1)
            receiver.cancel()
    finally:
        churn.stop()
        main.stop()
        if gateway is not None and gateway.poll() is None:
            gateway.terminate()
            try:
                gateway.wait(15)
            except subprocess.TimeoutExpired:
                gateway.kill()
        broker.stop()
    result["phases"] = summarise(read_records(record), windows[:-1], heaps)
    result["work_dir"] = str(work)
    result["machine"] = f"{os.cpu_count()} cores"
    return result


def summarise(records: list[dict[str, Any]], windows: list[tuple[str, float, float]],
              heaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per phase: the automatic full passes (n, max / total wall ms, max CPU ms), the
    re-freezes (n, max ms, objects collected), the largest gen 0/1 pass, and the heap at its
    end (tracked objects, frozen, RSS)."""
    out = []
    by_phase = {h["phase"]: h for h in heaps}
    for name, begin, end in windows:
        inside = [r for r in records if begin <= r["t"] <= end]
        full = [r for r in inside if r["kind"] == "gc" and r["gen"] == 2 and not r["refreeze"]]
        refreezes = [r for r in inside if r["kind"] == "refreeze"]
        heap = by_phase.get(name, {})
        young = [g for g in heap.get("gens", [])[:2]]
        out.append({
            "phase": name, "s": round(end - begin, 1),
            "full_passes": len(full),
            "full_max_ms": max((r["ms"] for r in full), default=0.0),
            "full_max_cpu_ms": max((r["cpu_ms"] for r in full), default=0.0),
            "full_total_ms": round(sum(r["ms"] for r in full), 1),
            "refreezes": len(refreezes),
            "refreeze_max_ms": max((r["ms"] for r in refreezes), default=0.0),
            "refreeze_collected": sum(r["collected"] for r in refreezes),
            "gen01_max_ms": max((g["max_ms"] for g in young), default=0.0),
            "tracked": heap.get("tracked"), "frozen": heap.get("frozen"),
            "rss_mb": heap.get("rss_mb"),
        })
    for h in heaps:
        if h["phase"] not in {w[0] for w in windows}:
            out.append({"phase": h["phase"], "tracked": h["tracked"], "frozen": h["frozen"],
                        "rss_mb": h["rss_mb"]})
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--piles", type=int, default=2000, help="chargers in all (default 2000)")
    parser.add_argument("--protocol", choices=["ykc", "ocpp"], default="ykc")
    parser.add_argument("--policy", choices=list(POLICIES), default="refreeze")
    parser.add_argument("--refreeze", type=float, default=60.0,
                        help="seconds between re-freezes for --policy refreeze (default 60; "
                             "the gateway's default is 600)")
    parser.add_argument("--charging", type=int, default=None,
                        help="connectors started (default piles // 5)")
    parser.add_argument("--churn", type=int, default=None,
                        help="chargers in the churn shard (default piles // 10)")
    parser.add_argument("--cycles", type=int, default=3, help="churn kill/restart cycles")
    parser.add_argument("--steady", type=float, default=90.0)
    parser.add_argument("--settle", type=float, default=None)
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    return parser


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--as-gateway":
        gateway_process(sys.argv[2], sys.argv[3:])
        return
    args = build_parser().parse_args()
    if args.churn is None:
        args.churn = args.piles // 10
    if args.charging is None:
        args.charging = args.piles // 5
    args.charging = min(args.charging, args.piles - args.churn)
    result = asyncio.run(run(args))
    head = ["phase", "s", "full_passes", "full_max_ms", "full_max_cpu_ms", "full_total_ms",
            "refreezes", "refreeze_max_ms", "refreeze_collected", "gen01_max_ms", "tracked",
            "frozen", "rss_mb"]
    for key, value in result.items():
        if key != "phases":
            print(f"{key:20} {value}")
    print(" | ".join(head))
    for row in result["phases"]:
        print(" | ".join(str(row.get(k, "")) for k in head))
    print(json.dumps(result))
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()


if __name__ == "__main__":
    main()
