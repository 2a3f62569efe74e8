"""``voltmesh bench SCENARIO``: reproducible load figures on real parts (loopback only).

Scenarios (one module each; :data:`SCENARIOS` is the registry): ``connections``
(:mod:`bench.scenarios.connections`), ``ingest`` (:mod:`bench.scenarios.ingest`), ``commands``
(:mod:`bench.scenarios.commands`), ``storm`` (:mod:`bench.scenarios.storm`). Each has
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``async run(args, workdir) -> Report``;
``args.small`` selects the < 60 s version CI runs. :func:`run_scenario` runs one in a
temporary directory.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios import commands, connections, ingest, storm
from bench.scenarios.errors import MissingBinary, ScenarioError
from bench.scenarios.report import Report, percentile


@dataclass(frozen=True)
class Scenario:
    """One registered scenario."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Path], Awaitable[Report]]


SCENARIOS: dict[str, Scenario] = {
    module.NAME: Scenario(module.NAME, module.HELP, module.add_arguments, module.run)
    for module in (connections, ingest, commands, storm)
}


async def run_scenario(name: str, args: argparse.Namespace,
                       workdir: Path | None = None) -> Report:
    """Run scenario ``name`` (``args`` from its parser, ``small`` included) in ``workdir``
    (a temporary directory, removed after, when None)."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ScenarioError(f"unknown scenario {name!r} (one of {', '.join(SCENARIOS)})")
    if workdir is not None:
        return await scenario.run(args, workdir)
    with tempfile.TemporaryDirectory(prefix=f"voltmesh-bench-{name}-") as tmp:
        return await scenario.run(args, Path(tmp))


def parse_args(name: str, argv: list[str]) -> argparse.Namespace:
    """The scenario's options (for tests and scripts): ``parse_args("storm", ["--small"])``."""
    parser = argparse.ArgumentParser(prog=f"voltmesh bench {name}")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--json", action="store_true")
    SCENARIOS[name].add_arguments(parser)
    return parser.parse_args(argv)


__all__ = ["SCENARIOS", "MissingBinary", "Report", "Scenario", "ScenarioError", "parse_args",
           "percentile", "run_scenario"]
