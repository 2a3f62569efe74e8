"""Ports, child processes and process measurements for benchmarks and tests (loopback only)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Parallel test workers (pytest-xdist) each take ports from their own slice of 10000-31999,
# below the kernel's ephemeral range: two workers never hand out the same port, and no
# outgoing connection's source port can take a port between its choice and its bind.
_SLICE_LOW, _SLICE_HIGH = 10_000, 32_000
_cursor: dict[str, int] = {}


def _worker_slice() -> tuple[int, int] | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not worker.startswith("gw") or count <= 0:
        return None
    width = (_SLICE_HIGH - _SLICE_LOW) // count
    low = _SLICE_LOW + int(worker[2:]) % count * width
    return low, low + width


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (from this test worker's slice under xdist)."""
    span = _worker_slice()
    if span is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    low, high = span
    start = _cursor.get("next", low + random.randrange(high - low))
    for step in range(high - low):
        port = low + (start - low + step) % (high - low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _cursor["next"] = port + 1 if port + 1 < high else low
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def listening(port: int) -> bool:
    """Whether something accepts on 127.0.0.1:port right now."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_process(argv: Sequence[str], log: Path, ready: Callable[[], bool], *,
                  timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Start ``argv`` (its output appended to ``log``) and poll ``ready()`` until it says yes.

    The process exiting, or ``timeout`` seconds passing, stops it and raises RuntimeError with
    the end of the log.
    """
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(list(argv), stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            return proc
        time.sleep(0.1)
    stop_process(proc)
    name = Path(argv[0]).name
    raise RuntimeError(f"{name} did not start: {log.read_text(errors='replace')[-2000:]}")


def stop_process(proc: subprocess.Popen[bytes] | None, port: int | None = None, *,
                 sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop a process this program started, by its PID: ``sig``, SIGKILL after ``grace``
    seconds; then wait (at most 5 s) until nothing listens on ``port``, so a restart can bind it.
    """
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if port is None:
        return
    deadline = time.monotonic() + 5
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def open_fds(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))
