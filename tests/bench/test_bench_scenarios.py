"""``voltmesh bench SCENARIO --small`` for every scenario, in-process, on real parts."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from bench.mosquitto import mosquitto_binary
from bench.scenarios import SCENARIOS, Report, parse_args, percentile, run_scenario
from bench.scenarios.errors import ScenarioError
from bench.victoria import victoria_binary
from tests.conftest import IN_CI
from voltmesh.bench_cli import add_parser


def _need(*names: str) -> None:
    found = {"mosquitto": mosquitto_binary(), "victoria-metrics": victoria_binary()}
    missing = [name for name in names if not found[name]]
    if missing:
        if IN_CI:
            pytest.fail(f"{', '.join(missing)} missing under CI=true")
        pytest.skip(f"{', '.join(missing)} not installed (scripts/install-system-deps.sh)")


async def test_connections_small_holds_every_pile(tmp_path: Path) -> None:
    _need("mosquitto")
    report = await run_scenario("connections", parse_args("connections", ["--small"]),
                                tmp_path)
    assert report.ok, report.table()
    assert report.figures["online"] == report.figures["piles"] == 200
    assert report.figures["rss_per_connection_kb"] > 0
    assert report.figures["gateway_cpu_pct"] > 0


async def test_ingest_small_writes_every_point(tmp_path: Path) -> None:
    _need("mosquitto", "victoria-metrics")
    report = await run_scenario("ingest", parse_args("ingest", ["--small"]), tmp_path)
    assert report.ok, report.table()
    figures = report.figures
    assert figures["points_written"] == figures["points_stored"] == figures["sent"] * 5 > 0
    assert 0 < figures["delay_p50_ms"] <= figures["delay_p99_ms"] <= figures["delay_max_ms"]
    assert figures["cpu_s_per_kpoint_worker"] > 0


async def test_commands_small_round_trips_at_idle_and_under_load(tmp_path: Path) -> None:
    _need("mosquitto")
    report = await run_scenario("commands", parse_args("commands", ["--small"]), tmp_path)
    assert report.ok, report.table()
    figures = report.figures
    # 4 piles x 2 rounds x (start + stop) per phase
    assert figures["idle_round_trips"] == figures["load_round_trips"] == 16
    for phase in ("idle", "load"):
        assert 0 < figures[f"{phase}_start_p50_ms"] <= figures[f"{phase}_start_p99_ms"]
    assert figures["sessions_without_order"] == 0


async def test_storm_small_loses_no_record(tmp_path: Path) -> None:
    _need("mosquitto")
    report = await run_scenario("storm", parse_args("storm", ["--small"]), tmp_path)
    assert report.ok, report.table()
    figures = report.figures
    assert figures["sessions_open"] == figures["piles_dropped"] == figures["piles_back"] == 20
    assert figures["sessions_ended_at_piles"] == 20
    assert figures["records_lost"] == 0
    assert figures["all_back_s"] > 0


def test_report_check_table_and_json() -> None:
    report = Report("demo", {"count": 1234, "delay_ms": 1.5, "none": float("nan")})
    report.check(True, "never shown")
    assert report.ok
    report.check(False, "records lost: 2")
    assert not report.ok
    text = report.table()
    assert "1,234" in text and "check FAILED: records lost: 2" in text
    assert "never shown" not in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["figures"]["none"] is None


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values[::-1], 100) == 100.0
    assert math.isnan(percentile([], 50))


async def test_unknown_scenario_is_a_clear_error() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        await run_scenario("nope", argparse.Namespace(small=True))


def test_cli_parser_has_every_scenario_with_small_and_json() -> None:
    parser = argparse.ArgumentParser(prog="voltmesh")
    add_parser(parser.add_subparsers(dest="command", required=True))
    for name in SCENARIOS:
        args = parser.parse_args(["bench", name, "--small", "--json"])
        assert args.scenario == name and args.small and args.json
    args = parser.parse_args(["bench", "storm", "--piles", "7", "--outage", "1.5"])
    assert (args.piles, args.outage, args.small) == (7, 1.5, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "nope"])
