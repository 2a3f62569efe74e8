"""Subprocess entry: a shard of simulated OCPP charge points, printing JSON stats lines.

    python -m bench.ocpp_fleet FIRST COUNT PORT [--v201-share 0.5] [--password-prefix pw-]
        [--connect-rate 1000] [--meter-interval 60] [--heartbeat-default 300]

Charge points ``FIRST .. FIRST+COUNT-1`` (ids from :func:`charger_id`, version from
:func:`charger_version`) connect to ``ws://127.0.0.1:PORT/ocpp``, paced at ``--connect-rate``
per second (0: all at once). The heartbeat interval is the one the gateway's BootNotification
answer gives; meter values go out every ``--meter-interval`` seconds while a session runs.
SIGUSR1 drops every connection at once (the TCP transport is aborted, as in a network cut; the
simulators reconnect after their backoff); SIGTERM / SIGINT stop the shard. Every
``--report-interval`` seconds one JSON line: simulators, online (booted), connects, boots,
sessions, errors, RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import time
from typing import Any

from bench.procs import rss_bytes
from bridges.ocpp import OcppVersion
from sim.ocpp import OcppChargePointSim, SimConfig

PREFIX = "OCPP"


def charger_id(n: int, prefix: str = PREFIX) -> str:
    """The id of charger ``n`` (1-based)."""
    return f"{prefix}{n:05d}"


def charger_version(n: int, v201_share: float) -> OcppVersion:
    """Charger ``n`` speaks 2.0.1 for an evenly spread ``v201_share`` of the fleet, else 1.6."""
    return OcppVersion.V201 if math.floor(n * v201_share) != math.floor((n - 1) * v201_share) \
        else OcppVersion.V16


def charger_password(n: int, prefix: str) -> str:
    """Charger ``n``'s Basic-auth password (security profile 1)."""
    return f"{prefix}{n}"


def stats(sims: list[OcppChargePointSim], t0: float) -> dict[str, Any]:
    return {
        "t": round(time.monotonic() - t0, 2),
        "sims": len(sims),
        "online": sum(1 for s in sims if s.online),
        "connects": sum(s.connect_count for s in sims),
        "boots": sum(s.boot_count for s in sims),
        "sessions": sum(1 for s in sims for c in s.connectors.values() if c.session is not None),
        "errors": sum(len(s.errors) for s in sims),
        "rss_mb": round(rss_bytes(os.getpid()) / 2**20, 1),
    }


def drop_all(sims: list[OcppChargePointSim]) -> int:
    """Abort every open connection's transport (no close handshake); returns how many."""
    dropped = 0
    for sim in sims:
        ws = sim._ws
        if ws is not None:
            ws.transport.abort()
            dropped += 1
    return dropped


async def run(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    url = f"ws://127.0.0.1:{args.port}/ocpp"
    sims = [OcppChargePointSim(SimConfig(
        charge_point_id=charger_id(n, args.prefix), url=url,
        version=charger_version(n, args.v201_share),
        password=charger_password(n, args.password_prefix) if args.password_prefix else None,
        serial_number=f"SN-{n:08d}", seed=n, meter_interval_s=args.meter_interval,
        heartbeat_default_s=args.heartbeat_default, reconnect_min_s=args.reconnect_min,
        reconnect_max_s=args.reconnect_max, open_timeout_s=args.open_timeout,
        response_timeout_s=args.response_timeout,
    )) for n in range(args.first, args.first + args.count)]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_drop() -> None:
        print(json.dumps({"event": "dropped", "count": drop_all(sims)}), flush=True)

    loop.add_signal_handler(signal.SIGUSR1, on_drop)
    print(json.dumps({"event": "ready", "t": round(time.monotonic() - t0, 2)}), flush=True)

    async def report() -> None:
        while True:
            print(json.dumps(stats(sims, t0)), flush=True)
            await asyncio.sleep(args.report_interval)

    reporter = asyncio.create_task(report())
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    for index, sim in enumerate(sims):
        if args.connect_rate > 0:
            delay = start + index / args.connect_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(sim.run(), name=f"sim-{sim.id}"))
    await stop.wait()
    reporter.cancel()
    await asyncio.gather(*(sim.close() for sim in sims), return_exceptions=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, reporter, return_exceptions=True)
    print(json.dumps(stats(sims, t0)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("port", type=int)
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--v201-share", type=float, default=0.5)
    parser.add_argument("--password-prefix", default="",
                        help="passwords are PREFIX + number (empty: no Basic auth)")
    parser.add_argument("--connect-rate", type=float, default=1000.0, help="0: all at once")
    parser.add_argument("--meter-interval", type=float, default=60.0)
    parser.add_argument("--heartbeat-default", type=float, default=300.0)
    parser.add_argument("--reconnect-min", type=float, default=1.0)
    parser.add_argument("--reconnect-max", type=float, default=60.0)
    parser.add_argument("--open-timeout", type=float, default=10.0)
    parser.add_argument("--response-timeout", type=float, default=30.0)
    parser.add_argument("--report-interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
