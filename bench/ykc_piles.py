"""Benchmark: N simulated YKC piles on ONE gateway process.

    python -m bench.ykc_piles --piles 10000 --charging 2000 --calls 500 --steady 60

Starts Mosquitto (shipped config) on a free port, one gateway process (`voltmesh edge`) with
the YKC listener, and the pile fleet in another process; provisions the piles and a tariff as
the cloud would (retained desired state), waits until every pile is logged in, then
* measures the gateway's RSS per connection, CPU and open file descriptors;
* starts charging on ``--charging`` connectors with `remoteStart` service calls over MQTT and
  records the latency from the call's publish to the reply (the pile's 0x33 relayed back);
* holds a steady window with real-time data every 15 s from every charging pile and
  heartbeats every 10 s from all, and reports the gateway CPU in it.
Prints a table and one JSON line. Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS, Mosquitto
from bench.procs import cpu_seconds, free_port, open_fds, rss_bytes, wait_port
from sim.ykc import fleet_pile_codes
from thingmodels import Envelope, decode, encode, now_ms

ROOT = Path(__file__).resolve().parents[1]
GW = "bench-gw"
TARIFF = {"version": 1, "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                                  "peak": {"energy": "1.0", "service": "0.6"},
                                  "flat": {"energy": "0.7", "service": "0.6"},
                                  "valley": {"energy": "0.3", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                      {"start": "08:00", "end": "24:00", "tier": "flat"}]}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vm-bench-ykc-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    ykc_port = free_port()
    (work / "gw.yaml").write_text(f"""
gateway_id: {GW}
mqtt: {{port: {broker.port}, password: {USERS[GW]}, max_inflight: 200}}
outbox: {{path: outbox.db}}
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
            gateway = subprocess.Popen([sys.executable, "-m", "voltmesh", "edge", "--config",
                                        str(work / "gw.yaml")], cwd=ROOT, stdout=gw_log,
                                       stderr=subprocess.STDOUT)
            procs.append(gateway)
            wait_port(ykc_port, 30)
            await asyncio.sleep(1.0)
            rss0 = rss_bytes(gateway.pid)
            online: set[str] = set()
            replies: dict[str, float] = {}

            async def receive() -> None:
                async for message in cloud.messages:
                    topic = message.topic.value
                    env = decode(message.payload)
                    if topic.endswith("/state") and env.p and env.p.get("online"):
                        online.add(topic.split("/")[4])
                    elif topic.endswith("/reply") and env.cid:
                        replies[env.cid] = time.perf_counter()

            receiver = asyncio.create_task(receive())
            fleet = subprocess.Popen(
                [sys.executable, "-m", "bench.ykc_fleet", str(args.piles), str(ykc_port),
                 "--connect-rate", str(args.connect_rate)],
                cwd=ROOT, stdout=(work / "fleet.log").open("wb"), stderr=subprocess.STDOUT)
            procs.append(fleet)
            t0 = time.monotonic()
            while len(online) < args.piles and time.monotonic() - t0 < args.connect_timeout:
                await asyncio.sleep(0.5)
            result["connect_s"] = round(time.monotonic() - t0, 1)
            result["online"] = len(online)
            await asyncio.sleep(5)  # let billing-model exchanges settle
            rss1 = rss_bytes(gateway.pid)
            result["gateway_rss_mb"] = round(rss1 / 2**20, 1)
            result["rss_per_connection_kb"] = round((rss1 - rss0) / max(1, len(online)) / 1024, 1)
            result["gateway_fds"] = open_fds(gateway.pid)

            # remote starts: latency from publish to reply
            latencies: list[float] = []
            sent: dict[str, float] = {}
            targets = codes[: args.charging]
            sem = asyncio.Semaphore(args.concurrency)

            async def start(code: str) -> None:
                async with sem:
                    env = Envelope.new(src="cloud", p={"idTag": "00000000D14B0A54"},
                                       dl=now_ms() + 30_000)
                    sent[env.id] = time.perf_counter()
                    await cloud.publish(f"ev/v1/{GW}/connector/{code}01/svc/remoteStart",
                                        encode(env), qos=1)
                    deadline = time.perf_counter() + 30
                    while env.id not in replies and time.perf_counter() < deadline:
                        await asyncio.sleep(0.005)
                    if env.id in replies:
                        latencies.append((replies[env.id] - sent[env.id]) * 1000)

            t1 = time.monotonic()
            await asyncio.gather(*(start(c) for c in targets))
            result["remote_starts"] = len(targets)
            result["remote_start_replies"] = len(latencies)
            result["remote_start_s"] = round(time.monotonic() - t1, 1)
            result["remote_start_p50_ms"] = round(percentile(latencies, 50), 1)
            result["remote_start_p99_ms"] = round(percentile(latencies, 99), 1)
            result["remote_start_max_ms"] = round(max(latencies, default=float("nan")), 1)

            # steady state: heartbeats from all, real-time data from the charging ones
            cpu0, w0 = cpu_seconds(gateway.pid), time.monotonic()
            await asyncio.sleep(args.steady)
            cpu1, w1 = cpu_seconds(gateway.pid), time.monotonic()
            result["steady_s"] = round(w1 - w0, 1)
            result["gateway_cpu_pct"] = round((cpu1 - cpu0) / (w1 - w0) * 100, 1)
            result["gateway_cpu_us_per_connection_s"] = round(
                (cpu1 - cpu0) / (w1 - w0) / max(1, len(online)) * 1e6, 1)
            # idle-load latency sample: a few more remote starts while everything runs
            more = codes[args.charging: args.charging + args.calls]
            latencies.clear()
            await asyncio.gather(*(start(c) for c in more))
            result["loaded_remote_start_p50_ms"] = round(percentile(latencies, 50), 1)
            result["loaded_remote_start_p99_ms"] = round(percentile(latencies, 99), 1)
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
    result["machine"] = f"{os.cpu_count()} cores"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--piles", type=int, default=1000)
    parser.add_argument("--charging", type=int, default=None,
                        help="connectors started (default: piles // 5)")
    parser.add_argument("--calls", type=int, default=200, help="remote starts under load")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--steady", type=float, default=30.0)
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    args = parser.parse_args()
    if args.charging is None:
        args.charging = args.piles // 5
    args.calls = min(args.calls, max(0, args.piles - args.charging))
    result = asyncio.run(run(args))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
