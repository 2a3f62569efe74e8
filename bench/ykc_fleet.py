"""Subprocess entry: run a fleet of simulated YKC piles, print JSON stats lines.

python -m bench.ykc_fleet N PORT [--prefix 3201020] [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys

from sim.ykc import FleetStats, run_fleet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("piles", type=int)
    parser.add_argument("port", type=int)
    parser.add_argument("--prefix", default="3201020")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="keep the piles' objects in the collector's reach once all are up")
    args = parser.parse_args()

    frozen = [False]

    def report(stats: FleetStats) -> None:
        print(json.dumps(stats.as_dict()), flush=True)
        if not args.no_gc_freeze and not frozen[0] and stats.logged_in >= args.piles:
            # every pile is up: its objects leave the collector's reach, so the simulator's
            # full collections (~100 ms at 2,000 piles) do not delay the piles' replies and
            # show up in the gateway's service latency
            frozen[0] = True
            gc.collect()
            gc.freeze()

    stats = asyncio.run(run_fleet(
        args.piles, "127.0.0.1", args.port, code_prefix=args.prefix, duration=args.duration,
        report=report, report_interval=2.0, connect_rate=args.connect_rate,
        heartbeat_interval=10.0, realtime_interval=15.0, bms_frames=False, plug_delay=None,
        record_retry_interval=30.0, ledger_max=4,
    ))
    print(json.dumps(stats.as_dict()), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
