"""``voltmesh bench SCENARIO [--small] [--json] [options]``: reproducible load figures.

Prints the scenario's figures table (or, with ``--json``, one JSON object) and exits 0 when its
correctness check passed, 1 when it failed, 2 when it could not run (a missing binary, a set-up
error). The scenarios are in :mod:`bench.scenarios`; figures and commands in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bench.scenarios import SCENARIOS, run_scenario
from cloud.errors import CloudError


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(run_scenario(args.scenario, args))
    except CloudError as exc:
        print(f"voltmesh bench {args.scenario}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.table())
    return 0 if report.ok else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` (with one sub-command per scenario) to the ``voltmesh`` sub-commands."""
    bench = subparsers.add_parser("bench", help="load figures: " + ", ".join(SCENARIOS),
                                  description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    scenarios = bench.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for scenario in SCENARIOS.values():
        parser = scenarios.add_parser(scenario.name, help=scenario.help,
                                      description=scenario.help)
        parser.add_argument("--small", action="store_true",
                            help="the small version (< 60 s, what CI runs)")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
        scenario.add_arguments(parser)
        parser.set_defaults(func=cmd_bench)
    from bench.chaos import __main__ as chaos_cli  # noqa: PLC0415 - heavy, only when asked

    chaos = scenarios.add_parser("chaos", help=chaos_cli.HELP, description=chaos_cli.HELP)
    chaos_cli.add_arguments(chaos)
    chaos.set_defaults(func=chaos_cli.run_args)
    return bench  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    """``python -m voltmesh.bench_cli SCENARIO ...`` (the same as ``voltmesh bench``)."""
    parser = argparse.ArgumentParser(prog="voltmesh")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
