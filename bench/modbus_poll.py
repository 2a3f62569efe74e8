"""Benchmark: Modbus points polled per second by ONE gateway across many simulated devices.

    python -m bench.modbus_poll --devices 200 --ports 4 --interval 1 --window 15

Starts the simulated devices (``python -m sim.modbus``, the shipped register maps in turn:
meter, temperature/humidity, water, parking lock, relay, storage) on ``--ports`` Modbus TCP
ports -- many unit ids behind each port, as behind a Modbus TCP gateway -- in
``--sim-procs`` processes, a Mosquitto from the shipped config when installed (else the
uplink has no broker and telemetry stays in the outbox), and a gateway in this process with
one Modbus device per simulated unit. Two phases, each with a fresh gateway:

* ``nominal``: every device polled every ``--interval``; points/s, the gateway's CPU per
  point, poll latency (p50/p99/max, including the wait for a turn on the shared connection);
* ``flat-out``: every device polled back to back (interval 1 ms): the most the gateway gets
  through, bounded by the simulators' CPU as much as its own on a small machine.

CPU is this process's (the gateway's) user+system time. Prints a table and one JSON line.
Loopback only; the simulator processes are ended by their PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mosquitto import USERS, Mosquitto, mosquitto_binary
from bench.procs import free_port, wait_port
from edge.adapters.modbus import ModbusAdapter
from edge.config import (
    AdaptersConfig,
    GatewayConfig,
    ModbusConfig,
    ModbusDeviceConfig,
    MqttConfig,
    OutboxConfig,
    TelemetryConfig,
)
from edge.runtime import EdgeGateway

ROOT = Path(__file__).resolve().parents[1]
GW = "bench-gw"
MAPS = ["eastron_sdm630", "xymd02_temperature_humidity", "water_immersion", "parking_lock",
        "cabinet_relay", "victron_gx_battery"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def layout(devices: int, ports: list[int]) -> list[tuple[str, int, int]]:
    """(map, port, unit id) per device: maps in turn, units 1.. on each port."""
    out = []
    for index in range(devices):
        port = ports[index % len(ports)]
        unit = index // len(ports) + 1
        if unit > 247:
            raise SystemExit(f"{devices} devices need more than 247 unit ids per port: "
                             f"raise --ports")
        out.append((MAPS[index % len(MAPS)], port, unit))
    return out


def start_simulators(plan: list[tuple[str, int, int]], procs: int,
                     work: Path) -> list[subprocess.Popen[bytes]]:
    ports = sorted({p for _, p, _ in plan})
    groups: list[list[str]] = [[] for _ in range(max(1, min(procs, len(ports))))]
    for name, port, unit in plan:
        groups[ports.index(port) % len(groups)].append(f"{name}@{unit}:{port}")
    started = []
    for index, specs in enumerate(groups):
        log = (work / f"sim{index}.log").open("wb")
        started.append(subprocess.Popen([sys.executable, "-m", "sim.modbus", *specs], cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT))
    for port in ports:
        wait_port(port, 30)
    return started


async def phase(name: str, plan: list[tuple[str, int, int]], interval: float, window: float,
                work: Path, mqtt_port: int, timeout: float) -> dict[str, Any]:
    devices = [ModbusDeviceConfig(id=f"d{i:04d}", map=str(ROOT / "config/modbus" / f"{m}.yaml"),
                                  host="127.0.0.1", port=port, device_id=unit,
                                  interval=interval, timeout=timeout, report_period=10.0)
               for i, (m, port, unit) in enumerate(plan)]
    gw = EdgeGateway(GatewayConfig(
        gateway_id=GW, mqtt=MqttConfig(port=mqtt_port, password=USERS[GW], max_inflight=200),
        outbox=OutboxConfig(path=str(work / f"{name}.db")),
        telemetry=TelemetryConfig(flush_interval=1.0, stats_interval=30, max_batch=50),
        adapters=AdaptersConfig(modbus=ModbusConfig(devices=devices))))
    [adapter] = [a for a in gw.adapters if isinstance(a, ModbusAdapter)]
    task = asyncio.create_task(gw.run())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
                d.stats.polls for d in adapter.devices.values()):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        devs = list(adapter.devices.values())
        for dev in devs:
            dev.stats.poll_times.clear()
        adapter.keep_poll_times = True
        points0 = sum(d.stats.points for d in devs)
        polls0 = sum(d.stats.polls for d in devs)
        requests0 = sum(d.stats.requests for d in devs)
        failed0 = sum(d.stats.failed_polls for d in devs)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, wall1 = time.process_time(), time.monotonic()
        adapter.keep_poll_times = False
        points = sum(d.stats.points for d in devs) - points0
        polls = sum(d.stats.polls for d in devs) - polls0
        requests = sum(d.stats.requests for d in devs) - requests0
        failed = sum(d.stats.failed_polls for d in devs) - failed0
        latencies = [t * 1000 for d in devs for t in d.stats.poll_times]
        elapsed = wall1 - wall0
        cpu = cpu1 - cpu0
        return {
            "phase": name, "devices": len(devs),
            "interval_s": interval, "window_s": round(elapsed, 1),
            "points_per_s": round(points / elapsed),
            "polls_per_s": round(polls / elapsed, 1),
            "requests_per_s": round(requests / elapsed, 1),
            "failed_polls": failed,
            "gateway_cpu_pct": round(cpu / elapsed * 100, 1),
            "cpu_us_per_point": round(cpu / max(1, points) * 1e6, 1),
            "cpu_us_per_request": round(cpu / max(1, requests) * 1e6, 1),
            "poll_p50_ms": round(percentile(latencies, 50), 2),
            "poll_p99_ms": round(percentile(latencies, 99), 2),
            "poll_max_ms": round(max(latencies, default=float("nan")), 2),
            "uplink_connected": gw.ctx.cloud_connected.is_set(),
        }
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="vm-bench-modbus-"))
    ports = [free_port() for _ in range(args.ports)]
    plan = layout(args.devices, ports)
    broker = Mosquitto(work / "mosquitto") if mosquitto_binary() and not args.no_broker else None
    sims: list[subprocess.Popen[bytes]] = []
    results = []
    try:
        if broker is not None:
            broker.start()
        mqtt_port = broker.port if broker is not None else free_port()
        sims = start_simulators(plan, args.sim_procs, work)
        results.append(await phase("nominal", plan, args.interval, args.window, work, mqtt_port,
                                   args.timeout))
        if args.flat_out_window > 0:
            results.append(await phase("flat-out", plan, 0.001, args.flat_out_window, work,
                                       mqtt_port, args.timeout))
    finally:
        for proc in sims:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if broker is not None:
            broker.stop()
    for result in results:
        result["ports"] = args.ports
        result["sim_procs"] = min(args.sim_procs, args.ports)
        result["broker"] = "mosquitto" if broker is not None else "none"
        result["machine"] = f"{os.cpu_count()} cores"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--ports", type=int, default=4)
    parser.add_argument("--sim-procs", type=int, default=2)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--flat-out-window", type=float, default=10.0,
                        help="0 skips the flat-out phase")
    parser.add_argument("--no-broker", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    keys = list(results[0])
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{r['phase']:>12}" for r in results))
    for key in keys[1:]:
        print(f"{key:{width}}  " + "  ".join(f"{r[key]!s:>12}" for r in results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
