"""Outbox drill: broker stopped -> events accumulate; gateway SIGKILLed and restarted -> when the
broker returns, a subscriber receives every event exactly once by id, in per-device order."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import msgpack
import pytest

from tests.support.mosquitto import USERS, Mosquitto, mosquitto_binary

pytestmark = pytest.mark.mosquitto

ROOT = Path(__file__).resolve().parents[2]

MAPPING = """
devices:
  - topic: "drill/{device}/alarm"
    product: env_sensor
    properties: {temperature: t}
    events:
      - name: overTemperature
        params: {temperature: t, threshold: limit, active: active}
"""


def gateway_config(tmp: Path, uplink: int, local: int) -> Path:
    (tmp / "mapping.yaml").write_text(MAPPING)
    cfg = tmp / "gateway.yaml"
    cfg.write_text(f"""
gateway_id: drill-gw
mqtt: {{host: 127.0.0.1, port: {uplink}, password: {USERS['drill-gw']}, backoff_initial: 0.2,
        backoff_max: 1s}}
# the collector below is a plain subscriber, not a cloud worker: it sends no receipts
outbox: {{path: outbox.db, receipts: false}}
telemetry: {{flush_interval: 200ms, stats_interval: 1h}}
adapters:
  mqtt_devices:
    broker: {{host: 127.0.0.1, port: {local}}}
    mappings: [mapping.yaml]
""")
    return cfg


class Gateway:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "--log-format", "json", "edge", "--config",
             str(self.config)], cwd=ROOT, stdout=self.handle, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def subscribed(self) -> int:
        return self.log.read_text().count("subscribed to")


async def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def collector(port: int, got: list[tuple[str, dict]], stop: asyncio.Event) -> None:  # type: ignore[type-arg]
    """A cloud-side subscriber with a persistent session that reconnects."""
    while not stop.is_set():
        try:
            async with aiomqtt.Client("127.0.0.1", port, username="cloud",
                                      password=USERS["cloud"], identifier="drill-collector",
                                      clean_session=False) as client:
                await client.subscribe("ev/v1/drill-gw/+/+/event/#", qos=1)
                async for message in client.messages:
                    got.append((message.topic.value, msgpack.unpackb(message.payload)))
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


def stored_events(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/event/overTemperature'"
            ).fetchone()[0])
    except sqlite3.Error:
        return -1


async def test_outbox_drill(tmp_path: Path) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    uplink = Mosquitto(tmp_path / "uplink")
    local = Mosquitto(tmp_path / "local", auth=False)
    uplink.start()
    local.start()
    gateway = Gateway(gateway_config(tmp_path, uplink.port, local.port), tmp_path / "gw.log")
    got: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    stop = asyncio.Event()
    collect = asyncio.create_task(collector(uplink.port, got, stop))
    sent = 0

    async def publish(n: int) -> None:
        nonlocal sent
        async with aiomqtt.Client("127.0.0.1", local.port, identifier="drill-devices") as dev:
            for _ in range(n):
                sent += 1
                device = f"s{sent % 2 + 1}"
                await dev.publish(f"drill/{device}/alarm", json.dumps(
                    {"t": 60.0 + sent, "limit": 55.0, "active": True, "n": sent}), qos=1)

    def events() -> list[tuple[str, dict]]:  # type: ignore[type-arg]
        return [(t, p) for t, p in got if t.endswith("/event/overTemperature")]

    try:
        gateway.start()
        await wait_for(lambda: gateway.subscribed() >= 1, 20, "gateway subscribed locally")
        await publish(10)
        await wait_for(lambda: len(events()) >= 10, 20, "phase 1 delivered")

        uplink.stop()  # broker away: events accumulate in the outbox
        await publish(20)
        db = tmp_path / "outbox.db"
        await wait_for(lambda: stored_events(db) >= 20, 20, "events stored while offline")

        gateway.kill()  # SIGKILL with 20 events queued
        gateway.start()
        await wait_for(lambda: gateway.subscribed() >= 2, 20, "restarted gateway subscribed")
        await publish(10)
        await wait_for(lambda: stored_events(db) >= 30, 20, "more events stored")

        uplink.start()  # broker back
        await wait_for(lambda: len({p["p"]["temperature"] for _, p in events()}) >= 40, 60,
                       "all 40 events delivered")
    finally:
        stop.set()
        collect.cancel()
        if gateway.proc and gateway.proc.poll() is None:
            gateway.proc.terminate()
            gateway.proc.wait(10)
        uplink.stop()
        local.stop()

    by_id: dict[str, dict] = {}  # type: ignore[type-arg]
    for _, env in events():
        by_id.setdefault(env["id"], env)
        assert by_id[env["id"]] == env  # a duplicate delivery is the same message
    temps = sorted(float(env["p"]["temperature"]) for env in by_id.values())
    assert temps == [60.0 + n for n in range(1, 41)], "every event exactly once by id"
    per_device: dict[str, list[int]] = {}
    seen: set[str] = set()
    for topic, env in events():
        if env["id"] in seen:
            continue
        seen.add(env["id"])
        per_device.setdefault(topic.split("/")[4], []).append(env["seq"])
    for device, seqs in per_device.items():
        assert seqs == sorted(seqs), f"{device} out of order: {seqs}"
        assert len(set(seqs)) == len(seqs)
