"""README command 1: `voltmesh demo` brings the system up; devices are listed online in 30 s."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_lists_simulated_devices_online_within_30s(tmp_path: Path) -> None:
    http_port = free_port()
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "demo", "--duration", "45", "--http-port",
             str(http_port), "--mqtt-port", "0", "--data-dir", str(tmp_path / "data")],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    try:
        start = time.monotonic()
        online: list[dict[str, object]] = []
        while time.monotonic() - start < 30:
            try:
                items = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/devices",
                                  timeout=2).json()["items"]
                online = [d for d in items if d["online"]]
                if len(online) >= 12:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        products = {d["product"] for d in online}
        assert products == {"camera", "env_sensor", "charger", "connector"}, out.read_text()[-3000:]
        assert len(online) >= 12  # 2 cameras, 2 sensors, 3 YKC piles with 5 connectors
        assert time.monotonic() - start < 30
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=2).text
        assert "voltmesh_cloud_messages_total" in metrics
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    text = out.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert f"http://127.0.0.1:{http_port}/api/v1/devices" in text
    assert re.search(r"demo finished after 45s: \d+ devices online", text)


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "--log-format", "json", "demo", "--http-port",
             "0", "--mqtt-port", "0", "--data-dir", str(tmp_path / "data")],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops." not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # piles logged in, sessions running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert '"level": "error"' not in text, text[-3000:]
