"""A private VictoriaMetrics (Debian ``victoria-metrics``) on a free loopback port (tests, bench).

It stands in for InfluxDB: it accepts the InfluxDB v2 write API (``/api/v2/write``) that
:class:`cloud.sinks.influx.InfluxSink` speaks, and answers reads through its Prometheus API.
Started with ``-search.latencyOffset=0s`` (the newest points are visible at once) and
``-retentionPeriod=1`` (one month) on a temporary storage directory; stopped by PID.

Reading back: the metric of a field is ``<measurement>_<field>``, tags are labels. Call
:meth:`Victoria.force_flush` after writing so new series are searchable; queries pass
``nocache=1`` so the rollup cache never returns a partial answer.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.procs import free_port, start_process, stop_process


def victoria_binary() -> str | None:
    """Path of the victoria-metrics binary, if installed."""
    found = shutil.which("victoria-metrics")
    if found:
        return found
    return "/usr/bin/victoria-metrics" if Path("/usr/bin/victoria-metrics").exists() else None


class Victoria:
    """One VictoriaMetrics process; ``start()`` / ``stop()`` keep its port and storage."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.data = workdir / "data"
        self.log = workdir / "victoria.log"

    @property
    def url(self) -> str:
        """Base URL (also the InfluxDB URL to give the sink)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until ``/health`` answers."""
        binary = victoria_binary()
        if binary is None:
            raise RuntimeError("victoria-metrics is not installed (scripts/install-system-deps.sh)")
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = start_process(
            [binary, f"-httpListenAddr=127.0.0.1:{self.port}",
             f"-storageDataPath={self.data}", "-retentionPeriod=1",
             "-search.latencyOffset=0s", "-memory.allowedBytes=128MiB", "-loggerLevel=WARN"],
            self.log, self._healthy, timeout=timeout)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (by PID) and wait until its port is free."""
        stop_process(self.proc, self.port, sig=sig, grace=15)
        self.proc = None

    # -- reading back (async: tests and benchmarks run in an event loop) -------------------

    async def force_flush(self) -> None:
        """Make what was written searchable now (``/internal/force_flush``)."""
        async with httpx.AsyncClient(timeout=30) as http:
            (await http.get(f"{self.url}/internal/force_flush")).raise_for_status()

    async def export(self, match: str, *, start_ms: int | None = None,
                     end_ms: int | None = None) -> list[dict[str, Any]]:
        """Raw samples of the series matching ``match`` (``/api/v1/export``).

        One dict per series: ``metric`` (name and labels), ``values``, ``timestamps`` (ms).
        """
        params: dict[str, str] = {"match[]": match, "nocache": "1"}
        if start_ms is not None:
            params["start"] = str(start_ms / 1000)
        if end_ms is not None:
            params["end"] = str(end_ms / 1000)
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"{self.url}/api/v1/export", params=params)
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    async def query(self, promql: str, *, at_ms: int | None = None) -> list[dict[str, Any]]:
        """An instant query (``/api/v1/query``); the ``result`` list."""
        params = {"query": promql, "nocache": "1"}
        if at_ms is not None:
            params["time"] = str(at_ms / 1000)
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"{self.url}/api/v1/query", params=params)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def count(self, match: str) -> int:
        """Samples stored for the series matching ``match`` (all time)."""
        return sum(len(series["values"]) for series in await self.export(match, start_ms=0))


def main() -> None:
    """Run one in the foreground: ``python -m bench.victoria [port]`` (Ctrl-C stops it)."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory(prefix="victoria-") as tmp:
        victoria = Victoria(Path(tmp), port=port)
        victoria.start()
        print(f"VictoriaMetrics on {victoria.url} (pid {victoria.proc.pid if victoria.proc else '?'}, "
              f"storage {victoria.data}); Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            victoria.stop()


if __name__ == "__main__":
    main()
