"""``python -m bench.chaos [--small] [--duration S] [--ykc N] [--ocpp N] [--broker-restarts K]
[--seed X] [--workers N]``: run one chaos drill, print the verdict line, exit 0 on PASS, 1 on FAIL, 2 when
the drill could not run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.chaos.drill import run_drill
from bench.chaos.errors import ChaosError
from bench.chaos.spec import DrillSpec, small_spec
from bench.mosquitto import mosquitto_binary

HELP = ("chaos drill: sessions under broker restarts and cloud / gateway SIGKILLs, then "
        "the chargers' ledger against the orders")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The drill's options (also for a ``voltmesh bench chaos`` sub-parser)."""
    parser.add_argument("--small", action="store_true",
                        help="2 YKC + 2 OCPP chargers, ~60 s, 1 broker restart, both kills")
    parser.add_argument("--duration", type=float, help="seconds of sessions under chaos")
    parser.add_argument("--ykc", type=int, help="YKC piles")
    parser.add_argument("--ocpp", type=int, help="OCPP 1.6 chargers")
    parser.add_argument("--broker-restarts", type=int, help="broker restarts during the run")
    parser.add_argument("--seed", type=int, help="the simulator's seed (sessions, cards)")
    parser.add_argument("--workers", type=int,
                        help="cloud worker processes (default 1; more than one share the load "
                             "through shared subscriptions; the cloud kills rotate over them)")
    parser.add_argument("--sqlite", action="store_true",
                        help="SQLite instead of a fresh PostgreSQL database")
    parser.add_argument("--workdir", type=Path,
                        help="keep configs, logs, ledger and the orders dump here")


def spec_of(args: argparse.Namespace) -> DrillSpec:
    """The drill's spec from parsed options (ChaosError for values the spec refuses)."""
    spec = small_spec() if args.small else DrillSpec()
    changes = {name: getattr(args, name) for name in
               ("duration", "ykc", "ocpp", "broker_restarts", "seed", "workers")
               if getattr(args, name, None) is not None}
    return replace(spec, **changes)


def parse(argv: Sequence[str] | None = None) -> tuple[DrillSpec, argparse.Namespace]:
    """The drill's spec and options from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return spec_of(args), args


def run_args(args: argparse.Namespace) -> int:
    """Run the drill for parsed options; the exit code (0 PASS, 1 FAIL, 2 could not run)."""
    try:
        spec = spec_of(args)
    except ChaosError as exc:
        print(f"chaos drill: {exc}", file=sys.stderr)
        return 2
    if mosquitto_binary() is None:
        print("chaos drill: mosquitto is not installed (scripts/install-system-deps.sh)",
              file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="voltmesh-chaos-"))
    try:
        verdict = asyncio.run(run_drill(spec, workdir, postgres=not args.sqlite,
                                        keep_failed_database=True))
    except ChaosError as exc:
        print(f"CHAOS ERROR: the drill could not run: {exc} (logs in {workdir})", flush=True)
        return 2
    for line in verdict.details():
        print(f"  {line}")
    print(verdict.line(), flush=True)
    print(f"(configs, logs, ledger and orders in {workdir})", flush=True)
    return 0 if verdict.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.chaos ...``: the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    add_arguments(parser)
    return run_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
