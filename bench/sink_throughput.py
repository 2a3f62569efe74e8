"""Points per second written through SinkQueue + InfluxSink into a private VictoriaMetrics.

    .venv/bin/python -m bench.sink_throughput [--points 100000] [--batch 1000 5000] [--in-flight 2]

Each point is a connector sample (tags gw, device, status; 5 numeric fields, one of them a
Decimal) for 1,000 connectors on 10 gateways, queued as fast as ``put()`` takes them; the clock
stops when the sink has written the last one. The stored count is checked afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.victoria import Victoria
from cloud.actions import WritePoint
from cloud.sinks import InfluxConfig, InfluxSink, SinkQueue


def make_points(count: int, base_ms: int, run: int) -> list[WritePoint]:
    points = []
    for n in range(count):
        device = n % 1000
        points.append(WritePoint(
            rule="bench", key=f"r{run}:{n}", measurement="connector",
            tags={"gw": f"gw{device % 10}", "device": f"c{device}", "status": "charging"},
            fields={"power": 7.0 + (n % 50) / 10, "voltage": 230.0, "current": 31.5,
                    "energy": Decimal(n) / 1000, "statusCode": 4},
            ts_ms=base_ms + n // 1000,
        ))
    return points


async def one_run(victoria: Victoria, count: int, batch: int, in_flight: int, run: int) -> None:
    registry = CollectorRegistry()
    config = InfluxConfig(url=victoria.url, batch_size=batch, flush_interval=0.2,
                          max_queue=count, in_flight=in_flight)
    queue = SinkQueue("telemetry", InfluxSink(config), config.queue(), registry)
    base = int(time.time() * 1000) - 3_600_000 + run * 200_000  # distinct samples per run
    points = make_points(count, base, run)
    task = asyncio.create_task(queue.run())
    started = time.perf_counter()
    cpu = time.process_time()
    for point in points:
        await queue.put(point)
    while (registry.get_sample_value("voltmesh_sink_written_total", {"sink": "telemetry"})
           or 0) < count:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    labels = {"sink": "telemetry"}
    writes = registry.get_sample_value("voltmesh_sink_write_seconds_count", labels) or 1
    latency = (registry.get_sample_value("voltmesh_sink_write_seconds_sum", labels) or 0) / writes
    await queue.drain(30)
    await task
    dropped = sum(s.value for metric in registry.collect() if metric.name == "voltmesh_sink_dropped"
                  for s in metric.samples if s.name.endswith("_total"))
    await victoria.force_flush()
    stored = 0
    for _ in range(60):
        result = await victoria.query(
            "sum(count_over_time(connector_power[101s]))", at_ms=base + 100_000)
        stored = int(float(result[0]["value"][1])) if result else 0
        if stored >= count:
            break
        await asyncio.sleep(0.5)
    print(f"batch {batch:>5}  in_flight {in_flight}  {count} points in {elapsed:6.2f} s  "
          f"= {count / elapsed:>9,.0f} points/s ({count * 5 / elapsed:,.0f} fields/s)  "
          f"dropped {dropped:.0f}  stored {stored}  "
          f"(mean write {latency * 1000:.0f} ms, Python CPU {cpu / elapsed:.0%} of the time)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--in-flight", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        victoria = Victoria(Path(tmp))
        victoria.start()
        try:
            for run, batch in enumerate(args.batch):
                await one_run(victoria, args.points, batch, args.in_flight, run)
        finally:
            victoria.stop()


if __name__ == "__main__":
    asyncio.run(main())
