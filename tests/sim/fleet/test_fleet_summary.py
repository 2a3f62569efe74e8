"""Latency histograms, snapshots across processes, pass/fail targets and the progress line."""

from __future__ import annotations

import io
import json
import math
import random
from collections import Counter

from sim.fleet import Histogram, Kind, KindSnapshot, Progress, Snapshot, Summary, build_spec
from sim.fleet.summary import merge


def exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_histogram_quantiles_are_within_two_percent_and_merge_exactly() -> None:
    rng = random.Random(3)
    samples = [rng.lognormvariate(0, 1.5) / 1000 for _ in range(20_000)]  # seconds
    whole, left, right = Histogram(), Histogram(), Histogram()
    for index, sample in enumerate(samples):
        whole.record(sample)
        (left if index % 2 else right).record(sample)
    for q in (0.5, 0.9, 0.99, 0.999):
        want = exact(samples, q) * 1000
        got = whole.quantile(q)
        assert got is not None and want <= got <= want * 1.02 + 1e-9, (q, want, got)
    left.merge(right)
    assert left.buckets == whole.buckets and left.count == whole.count == len(samples)
    assert math.isclose(left.max_ms, max(samples) * 1000)
    again = Histogram.from_dict(json.loads(json.dumps(whole.to_dict())))
    assert again.buckets == whole.buckets and again.quantile(0.99) == whole.quantile(0.99)
    assert Histogram().quantile(0.5) is None and Histogram().summary()["n"] == 0
    tiny = Histogram()
    tiny.record(-1.0)  # clock noise: counted as 0
    assert tiny.quantile(0.5) == 0.0


def kind(target: int, connected: int, started: int = 0, completed: int = 0,
         errors: dict[str, int] | None = None) -> KindSnapshot:
    snap = KindSnapshot(target=target, connected=connected, sessions_started=started,
                        sessions_completed=completed, unfinished=started - completed,
                        sent=10, received=8, acked=6, errors=Counter(errors or {}))
    snap.latency["heartbeat"] = Histogram()
    snap.latency["heartbeat"].record(0.004)
    return snap


def test_snapshots_of_workers_add_up_and_survive_the_pipe() -> None:
    one = Snapshot(elapsed=5.0, kinds={Kind.YKC: kind(3, 3, 2, 2)}, cpu_seconds=1.0,
                   max_rss_bytes=100)
    two = Snapshot(elapsed=6.0, kinds={Kind.YKC: kind(2, 1, 1, 0, {"login_timeout": 1}),
                                       Kind.CAMERA: kind(1, 1)}, cpu_seconds=2.0,
                   max_rss_bytes=50)
    both = merge([Snapshot.from_dict(json.loads(json.dumps(one.to_dict()))),
                  Snapshot.from_dict(json.loads(json.dumps(two.to_dict())))])
    ykc = both.kinds[Kind.YKC]
    assert (ykc.target, ykc.connected, ykc.sessions_started, ykc.sessions_completed,
            ykc.unfinished, ykc.sent) == (5, 4, 3, 2, 1, 20)
    assert ykc.errors == Counter({"login_timeout": 1}) and ykc.latency["heartbeat"].count == 2
    assert list(both.kinds) == [Kind.YKC, Kind.CAMERA]
    assert (both.elapsed, both.cpu_seconds, both.max_rss_bytes, both.processes) == (6.0, 3.0,
                                                                                     150, 2)


def test_the_summary_names_every_missed_target() -> None:
    spec = build_spec(ykc=5, cameras=1, ykc_port=9, max_errors=1, min_connected=0.8)
    good = Snapshot(elapsed=10.0, kinds={Kind.YKC: kind(5, 4, 3, 3), Kind.CAMERA: kind(1, 1)})
    summary = Summary(spec=spec, at_end=good, final=good, wall_seconds=12.0)
    assert summary.failures() == [] and summary.exit_code == 0  # 4 of 5 is 80 %
    bad_end = Snapshot(elapsed=10.0, kinds={Kind.YKC: kind(5, 3), Kind.CAMERA: kind(1, 0)})
    bad_final = Snapshot(elapsed=10.0, kinds={
        Kind.YKC: kind(5, 3, 4, 2, {"heartbeat_missed": 2}), Kind.CAMERA: kind(1, 0)})
    summary = Summary(spec=spec, at_end=bad_end, final=bad_final, wall_seconds=12.0,
                      worker_failures=["worker 1: exited with code -9 before reporting"])
    failures = summary.failures()
    assert summary.exit_code == 1
    assert failures == [
        "worker 1: exited with code -9 before reporting",
        "ykc: 3 of 5 connected at the end (need 4)",
        "camera: 0 of 1 connected at the end (need 1)",
        "ykc: 2 sessions not acknowledged by the platform within the drain (30 s)",
        "2 errors (at most 1 allowed)"]
    doc = summary.to_dict()
    assert doc["ok"] is False and doc["kinds"]["ykc"]["failed"] == 2
    assert doc["kinds"]["ykc"]["ackLatencyMs"]["heartbeat"]["n"] == 1
    text = summary.render()
    assert "FAILED" in text and "target missed: ykc: 3 of 5 connected" in text
    assert "ykc heartbeat_missed 2" in text


def test_progress_is_one_line_in_place_on_a_terminal_and_plain_lines_elsewhere() -> None:
    snaps = [Snapshot(elapsed=t, kinds={Kind.YKC: kind(3, min(3, int(t)))}) for t in range(13)]
    for snap in snaps:
        snap.kinds[Kind.YKC].sent = 100 * int(snap.elapsed)
    plain = io.StringIO()
    progress = Progress(plain, interval=5.0, tty=False)
    for snap in snaps:
        progress.update(snap)
    progress.finish()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in plain.getvalue()  # t = 0, 5, 10
    assert lines[1].startswith("[     5s]") and "ykc 3/3" in lines[1]
    assert "100 msg/s out" in lines[2] and "errors 0" in lines[2]
    tty = io.StringIO()
    progress = Progress(tty, tty=True)
    for snap in snaps[:3]:
        progress.update(snap)
    progress.finish()
    text = tty.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
