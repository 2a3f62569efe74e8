"""Benchmark: what one OCPP connection costs the gateway in memory, and where the bytes go.

    python -m bench.ocpp_memory                                  # 1000 chargers, RSS only
    python -m bench.ocpp_memory --chargers 2000 --tracemalloc 8  # + heap snapshot diff
    python -m bench.ocpp_memory --compression                    # chargers' deflate accepted

Mosquitto (shipped config) on a free port, the chargers provisioned as the cloud would (the
gateway desired document; security profile 0 unless ``--security-profile 1``), one gateway
process (:mod:`bench.ocpp_gateway`) and one fleet process (:mod:`bench.ocpp_fleet`, half 1.6,
half 2.0.1; the simulators offer permessage-deflate as websockets clients do). The gateway's
RSS is taken idle (provisioning held, no charger) and again ``--settle`` seconds after every
charger is booted (BootNotification, StatusNotifications); the difference divided by the
chargers is the cost of one connection. Kernel socket buffers are not in RSS.

With ``--tracemalloc FRAMES`` the gateway traces its Python allocations (zlib's state included:
CPython allocates it through ``PyMem_RawMalloc``) and snapshots them at both points; the diff
is printed per connection, grouped by file and by the allocating line with its callers. Tracing
costs time and memory of its own, so the RSS figures of a traced run are not the ones to quote.

Prints a table, the groups, and one JSON line. Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS, Mosquitto
from bench.ocpp_chargers import GW, MAX_DOC_BYTES, gateway_status, until
from bench.ocpp_fleet import charger_id
from bench.procs import open_fds, rss_bytes
from thingmodels import Envelope, encode

ROOT = Path(__file__).resolve().parents[1]
PASSWORD_PREFIX = "bench-pw-"


def _short(filename: str) -> str:
    """A path without the virtualenv / checkout / stdlib prefix."""
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3"):
        cut = filename.find(marker)
        if cut >= 0:
            rest = filename[cut + len(marker):]
            return rest.split("/", 1)[1] if marker == "/lib/python3" else rest
    return filename


def heap_groups(before: Path, after: Path, n: int, top: int) -> dict[str, Any]:
    """The snapshot diff per connection: by file, and by allocating line with callers."""
    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    old, new = old.filter_traces(ignore), new.filter_traces(ignore)
    total = sum(d.size_diff for d in new.compare_to(old, "filename"))
    by_file = [(_short(str(d.traceback[0].filename)), d.size_diff, d.count_diff)
               for d in new.compare_to(old, "filename")[:top]]
    by_line = []
    for d in new.compare_to(old, "traceback")[:top]:
        frames = [f"{_short(f.filename)}:{f.lineno}" for f in reversed(d.traceback)]
        by_line.append((frames, d.size_diff, d.count_diff))
    return {
        "traced_per_connection_kb": round(total / n / 1024, 2),
        "by_file": [{"file": f, "bytes_per_connection": round(size / n),
                     "blocks_per_connection": round(count / n, 2)}
                    for f, size, count in by_file],
        "by_traceback": [{"frames": frames, "bytes_per_connection": round(size / n),
                          "blocks_per_connection": round(count / n, 2)}
                         for frames, size, count in by_line],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.chargers
    ids = [charger_id(i) for i in range(1, n + 1)]
    desired = encode(Envelope.new(src="cloud", p={
        "version": 1, "devices": [{"id": cp, "protocol": "ocpp"} for cp in ids]}))
    if len(desired) > MAX_DOC_BYTES:
        raise SystemExit(f"{n} chargers do not fit one desired document; use fewer")
    credentials: dict[str, bytes] = {}
    if args.security_profile:
        from bench.ocpp_fleet import charger_password  # noqa: PLC0415
        from edge.adapters.ocpp import password_hash  # noqa: PLC0415

        credentials = {cp: encode(Envelope.new(src="cloud", p={
            "version": 1, "password_sha256": password_hash(
                charger_password(i, PASSWORD_PREFIX))})) for i, cp in enumerate(ids, start=1)}
    work = Path(tempfile.mkdtemp(prefix="vm-bench-ocppmem-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    status_path = work / "gw-status.json"
    result: dict[str, Any] = {"chargers": n, "compression": args.compression,
                              "security_profile": args.security_profile,
                              "tracemalloc_frames": args.tracemalloc}
    gateway: subprocess.Popen[bytes] | None = None
    fleet: subprocess.Popen[bytes] | None = None
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="cloud",
                                  password=USERS["cloud"], identifier="bench-cloud") as cloud:
            await cloud.publish(f"ev/v1/{GW}/gateway/{GW}/desired", desired, qos=1, retain=True)
            for cp, doc in credentials.items():
                await cloud.publish(f"ev/v1/{GW}/charger/{cp}/desired", doc, qos=1, retain=True)
        with (work / "gw.log").open("wb") as gw_log:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "bench.ocpp_gateway", "--mqtt-port", str(broker.port),
                 "--outbox", str(work / "outbox.db"), "--status", str(status_path),
                 "--security-profile", str(args.security_profile),
                 *(["--compression"] if args.compression else []),
                 *(["--tracemalloc", str(args.tracemalloc), "--snapshot-dir", str(work)]
                   if args.tracemalloc else [])],
                cwd=ROOT, stdout=gw_log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            s = gateway_status(status_path)
            return bool(s.get("port")) and s.get("provisioned") == n and \
                s.get("credentials") == len(credentials) and bool(s.get("cloud_connected"))

        await until(ready, 120)
        if not ready():
            raise RuntimeError(f"gateway not ready: {gateway_status(status_path)}; "
                               f"see {work / 'gw.log'}")
        port = int(gateway_status(status_path)["port"])
        await asyncio.sleep(args.settle)
        snapshots = [work / "snapshot-0.pickle", work / "snapshot-1.pickle"]
        if args.tracemalloc:
            gateway.send_signal(signal.SIGUSR1)
            await until(snapshots[0].exists, 120)
        rss0, fds0 = rss_bytes(gateway.pid), open_fds(gateway.pid)
        result["gateway_rss_idle_mb"] = round(rss0 / 2**20, 1)

        t0 = time.monotonic()
        with (work / "fleet.log").open("wb") as fleet_log:
            fleet = subprocess.Popen(
                [sys.executable, "-m", "bench.ocpp_fleet", "1", str(n), str(port),
                 "--password-prefix", PASSWORD_PREFIX if args.security_profile else "",
                 "--connect-rate", str(args.connect_rate), "--report-interval", "1",
                 "--heartbeat-default", "300"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=fleet_log)
        assert fleet.stdout is not None
        latest: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        while time.monotonic() - t0 < args.connect_timeout and latest.get("online", 0) < n:
            line = await loop.run_in_executor(None, fleet.stdout.readline)
            if not line:
                break
            data = json.loads(line)
            if "sims" in data:
                latest = data
        result["booted"] = latest.get("online", 0)
        result["booted_s"] = round(time.monotonic() - t0, 1)
        result["fleet_errors"] = latest.get("errors")
        status = gateway_status(status_path)
        result["gateway_connections"] = status.get("connections")

        stdout = fleet.stdout

        async def drain() -> None:  # keep the fleet's stdout pipe from filling
            while await loop.run_in_executor(None, stdout.readline):
                pass

        drainer = asyncio.create_task(drain())
        await asyncio.sleep(args.settle)
        rss1 = rss_bytes(gateway.pid)
        result["gateway_rss_mb"] = round(rss1 / 2**20, 1)
        result["rss_per_connection_kb"] = round((rss1 - rss0) / max(1, result["booted"]) / 1024,
                                                1)
        result["gateway_fds_per_connection"] = round(
            (open_fds(gateway.pid) - fds0) / max(1, result["booted"]), 2)
        if args.tracemalloc:
            gateway.send_signal(signal.SIGUSR1)
            await until(snapshots[1].exists, 300)
            result["heap"] = heap_groups(snapshots[0], snapshots[1], max(1, result["booted"]),
                                         args.top)
        fleet.send_signal(signal.SIGTERM)
        await loop.run_in_executor(None, fleet.wait)
        await drainer
        fleet = None
    finally:
        for proc in (fleet, gateway):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        broker.stop()
    result["workdir"] = str(work)
    result["machine"] = f"{os.cpu_count()} cores"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--compression", action="store_true",
                        help="the gateway accepts permessage-deflate (OcppConfig.compression)")
    parser.add_argument("--security-profile", type=int, choices=(0, 1), default=0)
    parser.add_argument("--connect-rate", type=float, default=500.0)
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds before each measurement")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace the gateway's allocations, FRAMES per traceback (0: off)")
    parser.add_argument("--top", type=int, default=25, help="groups printed")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    heap = result.get("heap")
    for key, value in result.items():
        if key != "heap":
            print(f"{key:32} {value}")
    if heap:
        print(f"\ntraced (Python + zlib) per connection: {heap['traced_per_connection_kb']} KB")
        print("\nby file (bytes / blocks per connection):")
        for row in heap["by_file"]:
            print(f"  {row['bytes_per_connection']:7} {row['blocks_per_connection']:7}  "
                  f"{row['file']}")
        print("\nby allocating line, innermost first:")
        for row in heap["by_traceback"]:
            print(f"  {row['bytes_per_connection']:7} {row['blocks_per_connection']:7}  "
                  + " < ".join(row["frames"][:4]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
