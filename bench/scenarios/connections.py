"""``connections``: how many chargers one gateway process holds, memory and CPU per connection.

Wraps :mod:`bench.ykc_piles`: Mosquitto, one gateway process (``voltmesh edge``, YKC listener)
provisioned with ``--piles`` piles over MQTT, the pile fleet in its own process
(:mod:`bench.ykc_fleet`). Memory per connection is the gateway's VmRSS delta
(``/proc/<pid>/status``) from before the fleet connects to after every pile is logged in,
divided by the piles online; CPU is the gateway's over a steady window of heartbeats (10 s)
and real-time data (15 s) from ``--charging`` piles. Check: every pile is online.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import ykc_piles
from bench.scenarios.report import Report, machine
from bench.scenarios.site import require_mosquitto

NAME = "connections"
HELP = "YKC chargers held by one gateway process: count, memory per connection, CPU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--piles", type=int, default=None, help="YKC piles (10000)")
    parser.add_argument("--charging", type=int, default=None,
                        help="piles started charging (real-time data) (piles // 10)")
    parser.add_argument("--steady", type=float, default=None, help="CPU window seconds (30)")
    parser.add_argument("--connect-rate", type=float, default=1000.0, help="logins/s")


async def run(args: argparse.Namespace, workdir: Path) -> Report:
    require_mosquitto()
    piles = args.piles or (200 if args.small else 10_000)
    charging = args.charging if args.charging is not None else piles // 10
    steady = args.steady or (5.0 if args.small else 30.0)
    options = ykc_piles.options(
        piles=piles, charging=min(charging, piles), calls=0, idle_calls=0, concurrency=50,
        steady=steady, connect_rate=args.connect_rate, connect_timeout=max(60.0, piles / 20))
    figures = await ykc_piles.run(options)
    report = Report(NAME)
    report.figures.update(machine())
    report.figures.update(
        piles=piles, online=figures["online"], connect_s=figures["connect_s"],
        gateway_rss_mb=figures["gateway_rss_mb"],
        rss_per_connection_kb=figures["rss_per_connection_kb"],
        gateway_fds=figures["gateway_fds"], charging=options.charging,
        charging_started=figures["remote_start_replies"],
        remote_start_p50_ms=figures["remote_start_p50_ms"],
        remote_start_p99_ms=figures["remote_start_p99_ms"],
        steady_s=figures["steady_s"], gateway_cpu_pct=figures["gateway_cpu_pct"],
        gateway_cpu_us_per_connection_s=figures["gateway_cpu_us_per_connection_s"],
        gateway_rss_end_mb=figures["gateway_rss_end_mb"])
    report.check(figures["online"] == piles, f"{figures['online']} of {piles} piles online")
    report.check(figures["remote_start_replies"] == options.charging,
                 f"{figures['remote_start_replies']} of {options.charging} remote starts "
                 "answered")
    return report
