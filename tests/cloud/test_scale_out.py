"""Scale-out: cloud workers on Mosquitto with MQTT 5 shared subscriptions.

Every message is processed exactly once across the workers; a worker killed with SIGKILL leaves
nothing behind (a survivor adopts its session); a message is acknowledged only after its work,
so what a dead worker had not finished is delivered again.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.rules import RulesConfig
from cloud.service import CloudService
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually, free_port, wait_port
from thingmodels import Envelope, Topic, encode

pytestmark = pytest.mark.mosquitto

ROOT = Path(__file__).resolve().parents[2]


def worker(port: int, tmp: Path, name: str, *, rules: bool = True, **mqtt: Any) -> CloudService:
    return CloudService(CloudConfig(
        worker_id=name, database_url=f"sqlite:///{tmp / (name + '.db')}",
        rules=RulesConfig(paths=[str(ROOT / "config" / "rules")] if rules else []),
        mqtt=CloudMqttConfig(port=port, username="cloud", password=USERS["cloud"],
                             client_id=f"cloud-{name}", protocol="v5", **mqtt),
        http=HttpConfig(port=0), flush_interval=0.2))


def fault(i: int) -> tuple[str, bytes, str]:
    env = Envelope.new(p={"code": f"E{i}", "active": True})
    return f"ev/v1/gwA/charger/CP{i % 7}/event/fault", encode(env), env.id


async def publish(port: int, count: int) -> list[str]:
    ids = []
    async with aiomqtt.Client("127.0.0.1", port, username="gwA", password=USERS["gwA"]) as gw:
        for i in range(count):
            topic, payload, msg_id = fault(i)
            await gw.publish(topic, payload, qos=1)
            ids.append(msg_id)
    return ids


def event_count(metrics: str) -> float:
    found = re.search(r'voltmesh_cloud_messages_total\{kind="event"\} ([0-9.e+]+)', metrics)
    return float(found.group(1)) if found else 0.0


async def test_two_workers_split_the_load_exactly_once_and_a_killed_one_is_covered(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    seen: list[str] = []

    async def track(topic: Topic, env: Envelope) -> None:
        if topic.name == "fault":
            seen.append(env.id)

    w1 = worker(mosquitto.port, tmp_path, "w1", takeover_grace=0.5)
    w1.consumer.add_handler("track", track)
    http2 = free_port()
    config2 = tmp_path / "w2.yaml"
    config2.write_text(
        f"worker_id: w2\n"
        f"mqtt: {{port: {mosquitto.port}, username: cloud, password: {USERS['cloud']},"
        f" client_id: cloud-w2, protocol: v5}}\n"
        f"database_url: sqlite:///{tmp_path / 'w2.db'}\n"
        f"http: {{host: 127.0.0.1, port: {http2}}}\n"
        f"rules: {{paths: ['{ROOT / 'config' / 'rules'}']}}\n"
        f"log_format: json\n")
    with (tmp_path / "w2.log").open("wb") as w2_log:
        w2 = subprocess.Popen(  # noqa: ASYNC220 - a real worker process to SIGKILL
            [sys.executable, "-m", "voltmesh", "cloud", "--config", str(config2)],
            cwd=ROOT, stdout=w2_log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    task = asyncio.create_task(w1.run())
    try:
        await eventually(w1.consumer.connected.is_set)
        await asyncio.to_thread(wait_port, http2, 30.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http2}") as http:
            await eventually(lambda: w1.consumer.peers.get("cloud-w2") is True, timeout=30)

            first = await publish(mosquitto.port, 300)

            async def w2_count() -> float:
                return event_count((await http.get("/metrics")).text)

            async def all_processed() -> bool:
                return len(seen) + await w2_count() >= len(first)

            await eventually(all_processed, timeout=30)
            await asyncio.sleep(1.0)  # a duplicate would have arrived by now
            on_w2 = await w2_count()
            assert len(seen) + on_w2 == len(first)  # exactly once across both workers
            assert len(set(seen)) == len(seen) and set(seen) <= set(first)
            assert seen and on_w2 > 0  # both took a share

        w2.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker fires w2's Will
        w2.wait(10)
        second = await publish(mosquitto.port, 300)
        # the survivor carries on with everything, including what was queued for w2
        await eventually(lambda: set(second) <= set(seen), timeout=60)
        assert w1.metrics.takeovers._value.get() >= 1
    finally:
        if w2.poll() is None:
            w2.kill()
            w2.wait(10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_message_is_acknowledged_only_after_its_work_so_a_dead_worker_loses_nothing(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    stuck: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    first_run: list[str] = []
    second_run: list[str] = []

    async def slow_billing(topic: Topic, env: Envelope) -> asyncio.Future[None] | None:
        first_run.append(str((env.p or {}).get("code")))
        return stuck if (env.p or {}).get("code") == "E1" else None  # E1's work never ends

    async def billing_again(topic: Topic, env: Envelope) -> None:
        second_run.append(str((env.p or {}).get("code")))

    # no rules: only the test's handlers decide when a message is done
    a = worker(mosquitto.port, tmp_path, "solo", rules=False, shared_group=None)
    a.consumer.add_handler("billing", slow_billing)
    task = asyncio.create_task(a.run())
    try:
        await eventually(a.consumer.connected.is_set)
        await publish(mosquitto.port, 3)
        await eventually(lambda: len(first_run) == 3)
    finally:
        task.cancel()  # the worker dies with E1's work unfinished (E1 and E2 unacknowledged)
        await asyncio.gather(task, return_exceptions=True)

    b = worker(mosquitto.port, tmp_path, "solo", rules=False, shared_group=None)  # same id
    b.consumer.add_handler("billing", billing_again)
    task = asyncio.create_task(b.run())
    try:
        await eventually(lambda: "E1" in second_run, timeout=20)
        await asyncio.sleep(0.5)
        # E0 was done and acknowledged; E1 (stuck) and E2 (acknowledged in order after E1) come
        # again
        assert sorted(second_run) == ["E1", "E2"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
