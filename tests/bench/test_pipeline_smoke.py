"""The pipeline benchmark's --quick path with tiny numbers: points arrive, delays are measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.mosquitto import mosquitto_binary
from bench.pipeline import run_pipeline
from bench.victoria import victoria_binary
from tests.conftest import IN_CI


async def test_pipeline_quick_path_writes_points_and_measures_delays(tmp_path: Path) -> None:
    missing = [name for name, found in (("mosquitto", mosquitto_binary()),
                                        ("victoria-metrics", victoria_binary())) if not found]
    if missing:
        if IN_CI:
            pytest.fail(f"{', '.join(missing)} missing under CI=true")
        pytest.skip(f"{', '.join(missing)} not installed (scripts/install-system-deps.sh)")
    result = await run_pipeline(tmp_path, rate=20, duration=1.5, gateways=2, devices=3,
                                samples=2, raw_duration=0.5, grace=30)
    assert result.sent > 0
    assert result.raw_received == result.raw_sent > 0
    assert result.messages == result.sent
    assert result.points == result.sent * 2
    assert result.dropped == 0
    assert result.stored == result.points
    assert len(result.delays_ms) == result.points
    assert 0 <= result.delay(0.5) <= result.delay(1.0) < 60_000
    assert result.cpu.worker > 0
