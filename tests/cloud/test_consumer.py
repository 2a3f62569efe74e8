"""The cloud consumer against real brokers: malformed input, presence sessions, shared subs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import httpx
import msgpack
import pytest

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.service import CloudService
from tests.support.api import admin_headers
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually
from thingmodels import Envelope, encode


def service(port: int, tmp: Path, worker: str = "w1", **mqtt: object) -> CloudService:
    return CloudService(CloudConfig(
        worker_id=worker, database_url=f"sqlite:///{tmp / (worker + '.db')}",
        mqtt=CloudMqttConfig(host="127.0.0.1", port=port, client_id=f"cloud-{worker}",
                             **mqtt),  # type: ignore[arg-type]
        http=HttpConfig(port=0), flush_interval=0.1,
    ))


def state(online: bool, session: int) -> bytes:
    return encode(Envelope.new(p={"online": online, "session": session}))


async def test_malformed_payloads_are_counted_logged_once_and_consumer_goes_on(
        amqtt_broker: int, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cloud = service(amqtt_broker, tmp_path)
    task = asyncio.create_task(cloud.run())
    try:
        await cloud.started.wait()
        await eventually(cloud.consumer.connected.is_set)
        assert cloud.consumer.shared_active is False  # amqtt: MQTT 3.1.1, no $share
        async with aiomqtt.Client("127.0.0.1", amqtt_broker) as pub:
            for bad in (b"\xc1garbage", msgpack.packb([1, 2]), msgpack.packb({"id": "x"})):
                await pub.publish("ev/v1/gw9/meter/m1/prop", bad, qos=1)
            await pub.publish("ev/v1/gw9/meter/m1/state", state(True, 1), qos=1)
            await pub.publish("ev/v1/gw9/gateway/gw9/state", state(True, 1), qos=1)
            await pub.publish("ev/v1/gw9/meter/m1/prop",
                              encode(Envelope.new(p={"power": 3.5})), qos=1)
        base = f"http://127.0.0.1:{cloud.http_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            admin = await admin_headers(http)

            async def listed() -> bool:
                body = (await http.get("/api/v1/devices", headers=admin)).json()
                return bool(body["items"]) and body["items"][0]["properties"] == {"power": 3.5}
            await eventually(listed, timeout=10)
            metrics = (await http.get("/metrics")).text
            devices = (await http.get("/api/v1/devices", headers=admin)).json()["items"]
            health = (await http.get("/healthz")).json()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert 'voltmesh_cloud_malformed_total{reason="envelope"} 3.0' in metrics
    assert devices[0]["online"] is True and devices[0]["device"] == "m1"
    assert health["mqtt"] is True
    logged = [r for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(logged) == 1  # logged once per (gateway, reason), then only counted


async def test_late_will_of_an_old_session_does_not_overwrite_online(
        amqtt_broker: int, tmp_path: Path) -> None:
    cloud = service(amqtt_broker, tmp_path)
    task = asyncio.create_task(cloud.run())
    try:
        await eventually(cloud.consumer.connected.is_set)
        async with aiomqtt.Client("127.0.0.1", amqtt_broker) as pub:
            topic = "ev/v1/gw7/gateway/gw7/state"
            await pub.publish(topic, state(True, 5), qos=1)
            await pub.publish(topic, state(True, 6), qos=1)   # reconnected: new session
            await pub.publish(topic, state(False, 5), qos=1)  # the old session's late Will
        await eventually(lambda: cloud.metrics.stale_states._value.get() >= 1)
        await asyncio.to_thread(cloud.registry.flush)
        gateways = cloud.registry.list_gateways()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gateways == [{"gateway": "gw7", "online": True, "session": 6,
                         "lastSeen": gateways[0]["lastSeen"]}]


@pytest.mark.mosquitto
async def test_two_workers_share_the_load_through_shared_subscriptions(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    creds = {"username": "cloud", "password": USERS["cloud"]}
    workers = [service(mosquitto.port, tmp_path, f"w{i}", **creds) for i in (1, 2)]
    seen: dict[str, list[str]] = {"w1": [], "w2": []}
    for w in workers:
        async def track(topic, env, name=w.config.worker_id):  # type: ignore[no-untyped-def]
            seen[name].append(env.id)
        w.consumer.add_handler("track", track)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        for w in workers:
            await eventually(w.consumer.connected.is_set)
            assert w.consumer.shared_active is True
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="gwA",
                                  password=USERS["gwA"]) as pub:
            for i in range(40):
                await pub.publish("ev/v1/gwA/meter/m1/prop",
                                  encode(Envelope.new(p={"power": float(i)})), qos=1)
        await eventually(lambda: len(seen["w1"]) + len(seen["w2"]) >= 40, timeout=10)
        await asyncio.sleep(0.3)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(seen["w1"]) + len(seen["w2"]) == 40
    assert not set(seen["w1"]) & set(seen["w2"])
    assert seen["w1"] and seen["w2"]


@pytest.mark.mosquitto
@pytest.mark.parametrize("protocol", ["v5", "v311"])
async def test_events_published_while_the_worker_is_away_reach_it_when_it_returns(
        mosquitto: Mosquitto, tmp_path: Path, protocol: str) -> None:
    creds = {"username": "cloud", "password": USERS["cloud"], "protocol": protocol}
    seen: list[str] = []

    async def track(topic: object, env: Envelope) -> None:
        seen.append(env.id)

    async def run_once(until: int) -> None:
        cloud = service(mosquitto.port, tmp_path, **creds)
        cloud.consumer.add_handler("track", track)
        task = asyncio.create_task(cloud.run())
        try:
            await eventually(cloud.consumer.connected.is_set)
            await eventually(lambda: len(seen) >= until, timeout=10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    await run_once(0)  # the first connect creates the session; the worker goes away
    sent = [Envelope.new(p={"code": "E1", "active": True}) for _ in range(3)]
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="gwA",
                              password=USERS["gwA"]) as gw:
        for env in sent:
            await gw.publish("ev/v1/gwA/charger/CP1/event/fault", encode(env), qos=1)
    mosquitto.stop()  # and the broker restarts meanwhile (persistence on)
    mosquitto.start()
    await run_once(3)
    assert seen == [env.id for env in sent]
