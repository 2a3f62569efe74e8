"""``ingest``: gateways -> Mosquitto -> CloudService (rules) -> VictoriaMetrics.

Wraps :func:`bench.pipeline.run_pipeline` (its docstring says what is measured and how):
end-to-end points/s, p50/p99 delay from publish to write done, CPU seconds per 1,000 points of
the worker, Mosquitto and VictoriaMetrics, and the pipeline's rate as a share of the raw
broker's, and the backlog left in the broker when the offered rate is above what the worker
sustains. Check: no point dropped, every point written stored in VictoriaMetrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.mosquitto import mosquitto_binary
from bench.pipeline import FIELDS_PER_POINT, run_pipeline
from bench.scenarios.errors import MissingBinary
from bench.scenarios.report import Report, machine
from bench.victoria import victoria_binary

NAME = "ingest"
HELP = "end-to-end telemetry ingest: points/s, delay p50/p99, CPU per point, broker ratio"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=None, help="messages/s in total (2000)")
    parser.add_argument("--duration", type=float, default=None, help="seconds (30)")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--devices", type=int, default=100, help="connectors per gateway")
    parser.add_argument("--samples", type=int, default=5, help="samples per message")


async def run(args: argparse.Namespace, workdir: Path) -> Report:
    for name, found in (("mosquitto", mosquitto_binary()),
                        ("victoria-metrics", victoria_binary())):
        if not found:
            raise MissingBinary(f"{name} is not installed (scripts/install-system-deps.sh)")
    rate = args.rate or (200.0 if args.small else 2000.0)
    duration = args.duration or (5.0 if args.small else 30.0)
    result = await run_pipeline(workdir, rate=rate, duration=duration, gateways=args.gateways,
                                devices=args.devices, samples=args.samples,
                                raw_duration=2.0 if args.small else 5.0, grace=30.0)
    report = Report(NAME)
    report.figures.update(machine())
    ratio = result.messages_per_s / result.raw_per_s if result.raw_per_s else float("nan")
    report.figures.update(
        target_msg_s=rate, seconds=round(result.seconds, 1), samples_per_msg=args.samples,
        sent=result.sent, consumed=result.messages, points_written=result.points,
        points_stored=result.stored, dropped=result.dropped,
        msg_s=round(result.messages_per_s), points_s=round(result.points_per_s),
        fields_s=round(result.points_per_s * FIELDS_PER_POINT),
        delay_p50_ms=round(result.delay(0.5), 1), delay_p99_ms=round(result.delay(0.99), 1),
        delay_max_ms=round(result.delay(1.0), 1),
        cpu_s_per_kpoint_worker=round(result.per_kpoints(result.cpu.worker), 4),
        cpu_s_per_kpoint_mosquitto=round(result.per_kpoints(result.cpu.broker), 4),
        cpu_s_per_kpoint_victoria=round(result.per_kpoints(result.cpu.victoria), 4),
        raw_broker_msg_s=round(result.raw_per_s), pipeline_vs_raw=round(ratio, 3))
    # a backlog (offered rate above the worker's) is a capacity figure, not a loss: those
    # messages wait in the broker; a loss is a dropped point or a written one not stored
    report.figures["backlog_msgs_at_end"] = result.sent - result.messages
    report.check(result.sent > 0, "nothing was published")
    report.check(result.messages <= result.sent,
                 f"{result.messages} messages consumed, only {result.sent} sent")
    report.check(result.dropped == 0, f"{result.dropped} points dropped")
    report.check(result.stored >= result.points,
                 f"{result.stored} of {result.points} points written are stored in "
                 "VictoriaMetrics")
    return report
