"""Subprocess entry: one gateway with the OCPP listener, built in code (benchmarks).

    python -m bench.ocpp_gateway --mqtt-port P --outbox DB --status STATUS.json \
        [--ocpp-port 0] [--security-profile 1] [--heartbeat-interval 300] \
        [--compression] [--tracemalloc FRAMES --snapshot-dir DIR]

The OCPP adapter is not in the YAML config yet, so the gateway is composed here. With
``--ocpp-port 0`` the listener takes a free port of the kernel's choosing; the port, the number
of open charger connections, the devices the gateway reports online, the number of chargers
provisioned by the gateway's desired state and the gateway's counters are written (atomically)
to ``--status`` every ``--status-interval`` seconds. SIGTERM / SIGINT stop it cleanly.

With ``--tracemalloc FRAMES`` the gateway traces its allocations from the start and writes a
snapshot (``tracemalloc`` pickle, ``snapshot-K.pickle``) to ``--snapshot-dir`` on every
SIGUSR1 (:mod:`bench.ocpp_memory` reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS
from edge.adapters.ocpp import OcppAdapter, OcppConfig
from edge.config import GatewayConfig, MqttConfig, OutboxConfig, TelemetryConfig
from edge.runtime import EdgeGateway
from voltmesh.logs import setup_logging

GW = "bench-gw"


def build(args: argparse.Namespace) -> tuple[EdgeGateway, OcppAdapter]:
    """The gateway and its OCPP adapter."""
    adapter = OcppAdapter(OcppConfig(
        host="127.0.0.1", port=args.ocpp_port, security_profile=args.security_profile,
        heartbeat_interval=args.heartbeat_interval, max_connections=args.max_connections,
        compression=args.compression,
    ))
    config = GatewayConfig(
        gateway_id=GW,
        mqtt=MqttConfig(port=args.mqtt_port, password=args.password, max_inflight=200),
        outbox=OutboxConfig(path=str(Path(args.outbox).resolve())),
        telemetry=TelemetryConfig(flush_interval=1.0, stats_interval=30.0, max_batch=50),
        log_format="json",
    )
    gateway = EdgeGateway(config, adapters=[adapter])
    if args.uplink_nodelay:
        nodelay_uplink(gateway)
    return gateway, adapter


def nodelay_uplink(gateway: EdgeGateway) -> None:
    """Experiment: TCP_NODELAY on the uplink's MQTT socket (paho leaves Nagle on)."""
    serve = gateway.uplink._serve

    async def serve_nodelay(client: aiomqtt.Client) -> None:
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await serve(client)

    gateway.uplink._serve = serve_nodelay  # type: ignore[method-assign]


def status(gateway: EdgeGateway, adapter: OcppAdapter) -> dict[str, Any]:
    """What the benchmark reads: listener port, connections, provisioning, counters."""
    held = gateway.ctx.desired("gateway", GW)
    devices = (held.doc.get("devices", []) if held else []) or []
    return {
        "pid": os.getpid(),
        "port": adapter.port,
        "connections": len(adapter.connections),
        "online_devices": gateway.ctx.online_devices(),
        "provisioned": sum(1 for d in devices if isinstance(d, Mapping)),
        "credentials": sum(1 for d in devices if isinstance(d, Mapping) and (
            own := gateway.ctx.desired("charger", str(d.get("id")))) is not None
            and "password_sha256" in own.doc),
        "cloud_connected": gateway.ctx.cloud_connected.is_set(),
        "outbox_queued": gateway.outbox.stats.queued,
        "counters": dict(gateway.ctx.stats.counters),
    }


async def write_status(gateway: EdgeGateway, adapter: OcppAdapter, path: Path,
                       interval: float) -> None:
    """Write :func:`status` to ``path`` (via a temporary file and a rename) forever."""
    tmp = path.with_suffix(".tmp")
    while True:
        tmp.write_text(json.dumps(status(gateway, adapter)))
        tmp.replace(path)
        await asyncio.sleep(interval)


def write_snapshot(path: Path) -> None:
    """A tracemalloc snapshot to ``path`` (via a temporary file and a rename)."""
    gc.collect()
    tmp = path.with_suffix(".tmp")
    tracemalloc.take_snapshot().dump(str(tmp))
    tmp.replace(path)


async def run(args: argparse.Namespace) -> None:
    gateway, adapter = build(args)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    if args.tracemalloc:
        snapshots = iter(range(1_000_000))
        loop.add_signal_handler(signal.SIGUSR1, lambda: write_snapshot(
            Path(args.snapshot_dir) / f"snapshot-{next(snapshots)}.pickle"))
    reporter = asyncio.create_task(
        write_status(gateway, adapter, Path(args.status), args.status_interval),
        name="bench-status")
    try:
        await gateway.run()
    except asyncio.CancelledError:
        pass
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--password", default=USERS[GW])
    parser.add_argument("--outbox", required=True, help="outbox SQLite file")
    parser.add_argument("--status", required=True, help="JSON status file, rewritten often")
    parser.add_argument("--status-interval", type=float, default=1.0)
    parser.add_argument("--ocpp-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--security-profile", type=int, choices=(0, 1), default=1)
    parser.add_argument("--heartbeat-interval", type=int, default=300)
    parser.add_argument("--max-connections", type=int, default=19500)
    parser.add_argument("--uplink-nodelay", action="store_true",
                        help="experiment: TCP_NODELAY on the gateway's MQTT uplink socket")
    parser.add_argument("--compression", action="store_true",
                        help="accept permessage-deflate (OcppConfig.compression)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace allocations (FRAMES per traceback); SIGUSR1 snapshots")
    parser.add_argument("--snapshot-dir", default=".", help="where SIGUSR1 snapshots go")
    parser.add_argument("--profile", default=None, help="write cProfile stats here on exit")
    args = parser.parse_args()
    setup_logging("json")
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    if args.profile:
        import cProfile  # noqa: PLC0415 - only when profiling

        with cProfile.Profile() as profile:
            asyncio.run(run(args))
        profile.dump_stats(args.profile)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
