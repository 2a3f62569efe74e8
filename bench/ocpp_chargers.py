"""Benchmark: N simulated OCPP charge points on ONE gateway process (issue 4).

    python -m bench.ocpp_chargers                                   # 500 chargers, ~45 s
    python -m bench.ocpp_chargers --chargers 10000 --security-profile 0 --connect-rate 100 \
        --steady 60 --calls 500 --storm drop --storms 2 --connect-timeout 900   # 10k, ~12 min

Provisioning is the cloud's (:mod:`cloud.catalog.provisioning`): one gateway desired document
admitting the chargers (``id`` and ``protocol``: 20,000 fit the broker's 1 MiB
``max_packet_size``) and, for security profile 1, a retained per-charger document with the
charger's ``password_sha256``.

Starts Mosquitto (shipped config) on a free port, provisions the chargers as the cloud would
(a retained gateway desired document: ``devices`` with ``protocol: ocpp``; for security
profile 1 a retained ``charger/{id}/desired`` with each charger's ``password_sha256``), starts
one gateway process
(:mod:`bench.ocpp_gateway`: the OCPP listener on a port of the kernel's choosing) and, once it
holds the provisioning, the charge points in ``--per-shard``-sized fleet processes
(:mod:`bench.ocpp_fleet`; a mix of OCPP 1.6 and 2.0.1 by ``--v201-share``). Then it

* times until every charger is online as the cloud sees it (retained ``online`` states on
  ``ev/v1/bench-gw/charger/+/state``) and until every simulator is booted (BootNotification
  accepted), and reports the gateway's RSS per connection and its open file descriptors;
* starts sessions on ``--charging`` connectors with ``remoteStart`` service calls over MQTT and
  records the latency from the publish of the call to its reply (the charger's
  RemoteStartTransaction / RequestStartTransaction answer relayed back);
* holds a steady window: heartbeats at the gateway's interval (``--heartbeat-interval``, given
  in the BootNotification answer) from all, meter values every ``--meter-interval`` seconds from
  every charging connector, and reports gateway CPU in it; then ``--calls`` more remote starts
  under that load, and ``--probe`` more one at a time (the latency of a lone call, without
  queueing behind the others in flight);
* a reconnect storm: every charger loses its connection at once (``--storm kill``: the fleet
  processes are killed with SIGKILL and started again, all connecting at once unless
  ``--storm-rate`` paces them; ``--storm drop``: each simulator's TCP connection is aborted and
  it reconnects after its own 0.5-1 s backoff) and times until every charger is online again
  with a NEW session number; then checks that the gateway holds exactly N connections (no ghost
  sessions) and as many file descriptors as before.

Prints a table and one JSON line; a summary of the gateway's warnings and errors goes to stderr.
Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS, Mosquitto
from bench.ocpp_fleet import charger_id, charger_password, charger_version
from bench.procs import cpu_seconds, open_fds, rss_bytes
from bridges.ocpp import OcppVersion
from edge.adapters.ocpp import password_hash
from thingmodels import Envelope, decode, encode, now_ms

ROOT = Path(__file__).resolve().parents[1]
GW = "bench-gw"
PASSWORD_PREFIX = "bench-pw-"
#: the shipped broker's max_packet_size (and the envelope limit): the desired document must fit
MAX_DOC_BYTES = 1 << 20


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


class Shard:
    """One fleet process: chargers ``first .. first+count-1``."""

    def __init__(self, first: int, count: int, log: Path) -> None:
        self.first = first
        self.count = count
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.latest: dict[str, Any] = {}
        self.generation = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, port: int, args: argparse.Namespace, connect_rate: float) -> None:
        self.generation += 1
        self.latest = {}
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.ocpp_fleet", str(self.first), str(self.count),
                str(port), "--v201-share", str(args.v201_share),
                "--password-prefix", PASSWORD_PREFIX if args.security_profile else "",
                "--connect-rate", str(connect_rate),
                "--meter-interval", str(args.meter_interval),
                "--heartbeat-default", str(args.heartbeat_interval),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log)
        self._reader = asyncio.create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if "sims" in data:
                    self.latest = data

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def online(self) -> int:
        return int(self.latest.get("online", 0))

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 5)
        self.proc = None


async def until(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> float:
    """Seconds until ``condition()`` holds (or ``timeout`` passed)."""
    t0 = time.monotonic()
    while not condition() and time.monotonic() - t0 < timeout:
        await asyncio.sleep(step)
    return time.monotonic() - t0


def set_nodelay(client: aiomqtt.Client) -> None:
    """TCP_NODELAY on an aiomqtt client's socket (paho leaves Nagle on)."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def gateway_status(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def log_summary(path: Path, top: int = 8) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Counts of the gateway's log lines by level, and its most frequent warnings/errors."""
    levels: collections.Counter[str] = collections.Counter()
    messages: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                levels["unparsed"] += 1
                if line.strip():
                    messages[re.sub(r"OCPP\d+", "OCPP*", line.strip())[:140]] += 1
                continue
            level = str(entry.get("level", "?"))
            levels[level] += 1
            if level in ("warning", "error", "critical", "exception"):
                text = f"{level} {entry.get('logger', '')}: {entry.get('event', '')}"
                messages[re.sub(r"OCPP\d+", "OCPP*", text)[:140]] += 1
    return dict(levels), messages.most_common(top)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.chargers
    ids = [charger_id(i) for i in range(1, n + 1)]
    devices = [{"id": cp, "protocol": "ocpp"} for cp in ids]
    desired = encode(Envelope.new(src="cloud", p={"version": 1, "devices": devices}))
    if len(desired) > MAX_DOC_BYTES:
        raise SystemExit(
            f"the gateway desired document for {n} chargers is {len(desired)} bytes, over the "
            f"broker's max_packet_size / envelope limit of {MAX_DOC_BYTES}; use fewer chargers")
    credentials = {cp: encode(Envelope.new(src="cloud", p={
        "version": 1, "password_sha256": password_hash(charger_password(i, PASSWORD_PREFIX))}))
        for i, cp in enumerate(ids, start=1)} if args.security_profile else {}

    work = Path(tempfile.mkdtemp(prefix="vm-bench-ocpp-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    status_path = work / "gw-status.json"
    gw_log_path = work / "gw.log"
    v201 = sum(1 for i in range(1, n + 1) if charger_version(i, args.v201_share)
               is OcppVersion.V201)
    result: dict[str, Any] = {"chargers": n, "ocpp201": v201, "ocpp16": n - v201,
                              "security_profile": args.security_profile,
                              "heartbeat_s": args.heartbeat_interval,
                              "meter_interval_s": args.meter_interval,
                              "desired_doc_kb": round(len(desired) / 1024, 1)}
    shard_size = max(1, args.per_shard)
    shards = [Shard(first, min(shard_size, n - first + 1), work / f"fleet-{k}.log")
              for k, first in enumerate(range(1, n + 1, shard_size))]
    result["fleet_processes"] = len(shards)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="cloud",
                                  password=USERS["cloud"], identifier="bench-cloud",
                                  max_queued_incoming_messages=0) as cloud:
            cloud.pending_calls_threshold = 1_000_000
            if args.cloud_nodelay:
                set_nodelay(cloud)
            await cloud.publish(f"ev/v1/{GW}/gateway/{GW}/desired", desired, qos=1, retain=True)
            for cp, doc in credentials.items():
                await cloud.publish(f"ev/v1/{GW}/charger/{cp}/desired", doc, qos=1, retain=True)
            await cloud.subscribe([(f"ev/v1/{GW}/charger/+/state", 1),
                                   (f"ev/v1/{GW}/connector/+/svc/+/reply", 1)])
            online: set[str] = set()
            sessions: dict[str, int] = {}
            offline_states = 0
            waiting: dict[str, asyncio.Future[int]] = {}

            async def receive() -> None:
                nonlocal offline_states
                async for message in cloud.messages:
                    topic = message.topic.value
                    assert isinstance(message.payload, bytes)
                    env = decode(message.payload)
                    if topic.endswith("/state") and env.p is not None:
                        cp = topic.split("/")[4]
                        if env.p.get("online"):
                            online.add(cp)
                            sessions[cp] = int(env.p.get("session") or 0)
                        else:
                            online.discard(cp)
                            offline_states += 1
                    elif topic.endswith("/reply") and env.cid:
                        future = waiting.get(env.cid)
                        if future is not None and not future.done():
                            future.set_result(env.code or 0)

            receiver = asyncio.create_task(receive())
            with gw_log_path.open("wb") as gw_log:
                gateway = subprocess.Popen(
                    [sys.executable, "-m", "bench.ocpp_gateway", "--mqtt-port", str(broker.port),
                     "--outbox", str(work / "outbox.db"), "--status", str(status_path),
                     "--security-profile", str(args.security_profile),
                     "--heartbeat-interval", str(args.heartbeat_interval),
                     *(["--uplink-nodelay"] if args.uplink_nodelay else []),
                     *(["--profile", args.profile_gateway] if args.profile_gateway else [])],
                    cwd=ROOT, stdout=gw_log, stderr=subprocess.STDOUT)
            gw_pid = gateway.pid

            def ready() -> bool:
                s = gateway_status(status_path)
                return bool(s.get("port")) and s.get("provisioned") == n and \
                    s.get("credentials") == len(credentials) and bool(s.get("cloud_connected"))

            waited = await until(ready, 60)
            if not ready():
                raise RuntimeError(f"gateway not ready after {waited:.0f}s: "
                                   f"{gateway_status(status_path)}; see {gw_log_path}")
            port = int(gateway_status(status_path)["port"])
            result["gateway_ready_s"] = round(waited, 1)
            await asyncio.sleep(1.0)
            rss0, fds0 = rss_bytes(gw_pid), open_fds(gw_pid)
            result["gateway_rss_idle_mb"] = round(rss0 / 2**20, 1)

            # -- connect ----------------------------------------------------------------------
            cpu_c0 = cpu_seconds(gw_pid)
            t0 = time.monotonic()
            for shard in shards:
                await shard.start(port, args, args.connect_rate / len(shards))
            result["connect_s"] = round(await until(lambda: len(online) >= n,
                                                    args.connect_timeout), 1)
            result["online"] = len(online)
            await until(lambda: sum(s.online for s in shards) >= n,
                        args.connect_timeout - (time.monotonic() - t0))
            result["booted_s"] = round(time.monotonic() - t0, 1)
            result["booted"] = sum(s.online for s in shards)
            result["connect_gateway_cpu_s"] = round(cpu_seconds(gw_pid) - cpu_c0, 1)
            await asyncio.sleep(args.settle)  # status notifications etc. settle
            rss1 = rss_bytes(gw_pid)
            result["gateway_rss_mb"] = round(rss1 / 2**20, 1)
            result["rss_per_connection_kb"] = round((rss1 - rss0) / max(1, len(online)) / 1024,
                                                    1)
            fds1 = open_fds(gw_pid)
            result["gateway_fds"] = fds1
            result["gateway_fds_per_connection"] = round((fds1 - fds0) / max(1, len(online)), 2)
            fleet_rss = sum(rss_bytes(s.pid) for s in shards)
            result["fleet_rss_per_charger_kb"] = round(fleet_rss / n / 1024, 1)

            # -- remote starts: latency from publish to reply ----------------------------------
            latencies: list[float] = []
            codes: collections.Counter[int] = collections.Counter()
            sem = asyncio.Semaphore(args.concurrency)

            async def start(cp: str) -> None:
                async with sem:
                    env = Envelope.new(src="cloud", p={"idTag": "BENCH"},
                                       dl=now_ms() + int(args.call_deadline * 1000))
                    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                    waiting[env.id] = future
                    sent = time.perf_counter()
                    await cloud.publish(f"ev/v1/{GW}/connector/{cp}-1/svc/remoteStart",
                                        encode(env), qos=1)
                    try:
                        code = await asyncio.wait_for(future, args.call_deadline + 10)
                    except TimeoutError:
                        codes[-1] += 1
                        return
                    finally:
                        waiting.pop(env.id, None)
                    codes[code] += 1
                    if code == 0:
                        latencies.append((time.perf_counter() - sent) * 1000)

            def call_results(prefix: str, count: int, seconds: float) -> None:
                result[f"{prefix}remote_starts"] = count
                result[f"{prefix}remote_start_ok"] = len(latencies)
                failed = {str(k): v for k, v in sorted(codes.items()) if k != 0}
                if failed:
                    result[f"{prefix}remote_start_failed"] = failed
                result[f"{prefix}remote_start_s"] = round(seconds, 1)
                result[f"{prefix}remote_start_per_s"] = round(count / max(seconds, 1e-9), 1)
                result[f"{prefix}remote_start_p50_ms"] = round(percentile(latencies, 50), 1)
                result[f"{prefix}remote_start_p99_ms"] = round(percentile(latencies, 99), 1)
                result[f"{prefix}remote_start_max_ms"] = round(
                    max(latencies, default=float("nan")), 1)

            charging = ids[: args.charging]
            t1 = time.monotonic()
            await asyncio.gather(*(start(cp) for cp in charging))
            call_results("", len(charging), time.monotonic() - t1)

            # -- steady state -----------------------------------------------------------------
            await asyncio.sleep(2)
            sessions_running = sum(int(s.latest.get("sessions", 0)) for s in shards)
            result["sessions_running"] = sessions_running
            result["steady_heartbeats_per_s"] = round(n / args.heartbeat_interval, 1)
            result["steady_meter_values_per_s"] = round(sessions_running / args.meter_interval,
                                                        1)
            cpu0, w0 = cpu_seconds(gw_pid), time.monotonic()
            fleet_cpu0 = sum(cpu_seconds(s.pid) for s in shards)
            broker_cpu0 = cpu_seconds(broker.proc.pid) if broker.proc else 0.0
            await asyncio.sleep(args.steady)
            cpu1, w1 = cpu_seconds(gw_pid), time.monotonic()
            fleet_cpu1 = sum(cpu_seconds(s.pid) for s in shards)
            broker_cpu1 = cpu_seconds(broker.proc.pid) if broker.proc else 0.0
            result["steady_s"] = round(w1 - w0, 1)
            result["gateway_cpu_pct"] = round((cpu1 - cpu0) / (w1 - w0) * 100, 1)
            result["gateway_cpu_us_per_connection_s"] = round(
                (cpu1 - cpu0) / (w1 - w0) / max(1, len(online)) * 1e6, 1)
            result["fleet_cpu_pct"] = round((fleet_cpu1 - fleet_cpu0) / (w1 - w0) * 100, 1)
            result["broker_cpu_pct"] = round((broker_cpu1 - broker_cpu0) / (w1 - w0) * 100, 1)

            more = ids[args.charging: args.charging + args.calls]
            latencies.clear()
            codes.clear()
            t2 = time.monotonic()
            await asyncio.gather(*(start(cp) for cp in more))
            call_results("loaded_", len(more), time.monotonic() - t2)
            # one call at a time: the latency of a lone call, without queueing behind others
            probes = ids[args.charging + args.calls: args.charging + args.calls + args.probe]
            latencies.clear()
            codes.clear()
            t2 = time.monotonic()
            for cp in probes:
                await start(cp)
            call_results("single_", len(probes), time.monotonic() - t2)
            result["gateway_rss_before_storm_mb"] = round(rss_bytes(gw_pid) / 2**20, 1)

            # -- reconnect storm(s) -----------------------------------------------------------
            result["storm"] = args.storm
            series: list[dict[str, Any]] = []
            status: dict[str, Any] = {}
            for round_no in range(args.storms):
                await asyncio.sleep(1)
                before = dict(sessions)
                fds_before = open_fds(gw_pid)
                conns_before = int(gateway_status(status_path).get("connections", -1))
                offline_before = offline_states
                cpu_s0 = cpu_seconds(gw_pid)
                t3 = time.monotonic()
                if args.storm == "kill":
                    for shard in shards:
                        shard.send(signal.SIGKILL)
                    for shard in shards:
                        await shard.stop()
                    for shard in shards:
                        await shard.start(port, args, args.storm_rate / len(shards))
                else:
                    for shard in shards:
                        shard.send(signal.SIGUSR1)

                def reconnected(before: dict[str, int] = before) -> bool:
                    return len(online) >= n and all(sessions.get(cp, 0) > before.get(cp, 0)
                                                    for cp in ids)

                storm: dict[str, Any] = {}
                storm["online_s"] = round(await until(reconnected, args.connect_timeout,
                                                      step=0.25), 1)
                storm["online"] = sum(1 for cp in ids if cp in online
                                      and sessions.get(cp, 0) > before.get(cp, 0))
                await until(lambda: sum(s.online for s in shards) >= n,
                            args.connect_timeout - (time.monotonic() - t3))
                storm["booted_s"] = round(time.monotonic() - t3, 1)
                storm["booted"] = sum(s.online for s in shards)
                storm["offline_states"] = offline_states - offline_before
                storm["gateway_cpu_s"] = round(cpu_seconds(gw_pid) - cpu_s0, 1)
                await until(lambda: gateway_status(status_path).get("connections") == n, 30,
                            0.5)
                await asyncio.sleep(args.settle)
                status = gateway_status(status_path)
                storm["connections_before"] = conns_before
                storm["connections_after"] = int(status.get("connections", -1))
                storm["ghost_connections"] = storm["connections_after"] - n
                storm["fds_before"] = fds_before
                storm["fds_after"] = open_fds(gw_pid)
                storm["gateway_rss_mb"] = round(rss_bytes(gw_pid) / 2**20, 1)
                series.append(storm)
                if round_no == 0:
                    result.update({
                        "storm_online_s": storm["online_s"], "storm_online": storm["online"],
                        "storm_booted_s": storm["booted_s"], "storm_booted": storm["booted"],
                        "storm_offline_states": storm["offline_states"],
                        "storm_gateway_cpu_s": storm["gateway_cpu_s"],
                        "gateway_connections_before_storm": conns_before,
                        "gateway_connections_after_storm": storm["connections_after"],
                        "ghost_connections": storm["ghost_connections"],
                        "gateway_fds_before_storm": fds_before,
                        "gateway_fds_after_storm": storm["fds_after"]})
            if args.storms > 1:
                result["storms"] = [{k: st[k] for k in ("online_s", "booted_s", "ghost_connections",
                                                         "fds_after", "gateway_rss_mb")}
                                    for st in series]
            result["gateway_online_devices"] = status.get("online_devices")
            result["gateway_rss_end_mb"] = round(rss_bytes(gw_pid) / 2**20, 1)
            counters = status.get("counters", {})
            interesting = {k: v for k, v in counters.items()
                           if k.startswith(("ocpp_", "svc_error", "malformed", "adapter_crash"))}
            if interesting:
                result["gateway_counters"] = interesting
            result["fleet_errors"] = sum(int(s.latest.get("errors", 0)) for s in shards)
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await receiver
    finally:
        for shard in shards:
            await shard.stop()
        if gateway is not None and gateway.poll() is None:
            gateway.terminate()
            try:
                gateway.wait(30)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait(5)
        broker.stop()
    levels, top = log_summary(gw_log_path)
    result["gateway_log_levels"] = levels
    if top:
        print("gateway log, most frequent warnings/errors:", file=sys.stderr)
        for text, count in top:
            print(f"  {count:7d}  {text}", file=sys.stderr)
    print(f"work dir (logs): {work}", file=sys.stderr)
    result["machine"] = f"{os.cpu_count()} cores"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--charging", type=int, default=None,
                        help="connectors started with remoteStart (default: chargers // 5)")
    parser.add_argument("--calls", type=int, default=200, help="remote starts under load")
    parser.add_argument("--probe", type=int, default=50,
                        help="remote starts one at a time after the loaded ones")
    parser.add_argument("--concurrency", type=int, default=50, help="remote starts in flight")
    parser.add_argument("--call-deadline", type=float, default=30.0, help="dl of each call, s")
    parser.add_argument("--steady", type=float, default=20.0, help="steady window, s")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--v201-share", type=float, default=0.5)
    parser.add_argument("--security-profile", type=int, choices=(0, 1), default=1)
    parser.add_argument("--heartbeat-interval", type=int, default=300)
    parser.add_argument("--meter-interval", type=float, default=60.0)
    parser.add_argument("--per-shard", type=int, default=5000, help="chargers per fleet process")
    parser.add_argument("--connect-rate", type=float, default=1000.0,
                        help="initial connects per second, all fleet processes together")
    parser.add_argument("--storm", choices=("kill", "drop"), default="kill")
    parser.add_argument("--storms", type=int, default=1,
                        help="storms in a row (RSS after each shows leaks)")
    parser.add_argument("--storm-rate", type=float, default=0.0,
                        help="reconnects per second after a kill, all together (0: at once)")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--cloud-nodelay", action=argparse.BooleanOptionalAction, default=True,
                        help="TCP_NODELAY on the bench's cloud MQTT client")
    parser.add_argument("--uplink-nodelay", action="store_true",
                        help="experiment: TCP_NODELAY on the gateway's uplink socket too")
    parser.add_argument("--profile-gateway", default=None, metavar="FILE",
                        help="run the gateway under cProfile, stats to FILE")
    args = parser.parse_args()
    if args.charging is None:
        args.charging = args.chargers // 5
    args.charging = min(args.charging, args.chargers)
    args.calls = min(args.calls, max(0, args.chargers - args.charging))
    args.probe = min(args.probe, max(0, args.chargers - args.charging - args.calls))
    result = asyncio.run(run(args))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    print(json.dumps(result))
    if not math.isfinite(float(result.get("remote_start_p99_ms", float("nan")))):
        sys.exit(1)


if __name__ == "__main__":
    main()
