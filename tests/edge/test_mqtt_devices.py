"""MQTT-native devices end to end: local JSON -> gateway -> broker -> cloud, and services back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.errors import CommandError
from cloud.service import CloudService
from edge.adapters.mqtt_devices import load_mapping
from edge.config import load_gateway_config
from edge.errors import ConfigError
from edge.runtime import EdgeGateway
from tests.support.net import eventually
from thingmodels import Envelope, ModelFileError, builtin_models, now_ms

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_mapping_loads() -> None:
    mapping = load_mapping(ROOT / "config/mqtt_devices/site.yaml", builtin_models())
    assert {d.product for d in mapping.devices} == {"camera", "env_sensor"}


@pytest.mark.parametrize(("text", "match"), [
    ("devices:\n  - topic: a/{device}\n    product: camera\n    colour: red\n", "colour"),
    ("devices:\n  - topic: a/{device}\n    product: toaster\n", "no thing model"),
    ("devices:\n  - topic: a/b\n    product: camera\n", "exactly once"),
    ("devices:\n  - topic: a/{device}\n    product: camera\n    properties: {zoom: z}\n",
     "no property 'zoom'"),
])
def test_bad_mapping_is_refused_with_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=match) as info:
        load_mapping(path, builtin_models())
    assert str(path) in str(info.value)


def test_gateway_config_refuses_unknown_keys_and_bad_ids(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("gateway_id: g1\nmqtt: {host: 127.0.0.1, prot: 1883}\n")
    with pytest.raises(ConfigError, match=r"gw.yaml:2: mqtt.prot: unknown key"):
        load_gateway_config(cfg)
    cfg.write_text("gateway_id: a/b\n")
    with pytest.raises(ConfigError, match="gateway_id"):
        load_gateway_config(cfg)


async def test_end_to_end_through_a_real_broker(amqtt_broker: int, tmp_path: Path) -> None:
    port = amqtt_broker
    (tmp_path / "gw.yaml").write_text(f"""
gateway_id: site1
mqtt: {{port: {port}}}
outbox: {{path: outbox.db}}
telemetry: {{flush_interval: 100ms, stats_interval: 1h}}
adapters:
  mqtt_devices:
    broker: {{port: {port}}}
    mappings: [{ROOT / 'config/mqtt_devices/site.yaml'}]
""")
    gateway = EdgeGateway(load_gateway_config(tmp_path / "gw.yaml"))
    cloud = CloudService(CloudConfig(
        mqtt=CloudMqttConfig(port=port), database_url=f"sqlite:///{tmp_path / 'c.db'}",
        http=HttpConfig(port=0), flush_interval=0.1))
    events: list[tuple[str, Envelope]] = []

    async def track(topic, env):  # type: ignore[no-untyped-def]
        events.append((topic.render(), env))

    cloud.consumer.add_handler("track", track)
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run())]
    commands: list[dict[str, object]] = []
    try:
        await eventually(cloud.consumer.connected.is_set)
        await eventually(gateway.ctx.cloud_connected.is_set)
        async with aiomqtt.Client("127.0.0.1", port) as dev:
            await dev.subscribe("site1/cameras/+/cmd", qos=1)
            await asyncio.sleep(0.3)
            await dev.publish("site1/cameras/cam07/events", json.dumps(
                {"type": "fire", "conf": 93, "zone": "bay-3", "ts": now_ms()}), qos=1)
            await dev.publish("site1/env/e1/data", json.dumps(
                {"temp": 21.5, "hum": 40, "water": 0, "batt": 90, "ts": 1_700_000_000}), qos=1)
            await dev.publish("site1/env/e1/data", b"{not json", qos=1)
            fire = await eventually(lambda: [e for t, e in events
                                             if t.endswith("camera/cam07/event/fireDetected")])
            assert fire[0].p == {"confidence": 0.93, "zone": "bay-3"}
            assert fire[0].src == "mqtt" and fire[0].seq is not None and fire[0].ts is not None
            props = await eventually(lambda: [e for t, e in events
                                              if t.endswith("env_sensor/e1/prop")])
            assert props[0].samples()[0].p == {"temperature": 21.5, "humidity": 40,
                                               "water": False, "battery": 90}
            assert props[0].samples()[0].ts == 1_700_000_000_000

            reply = await cloud.consumer.call("site1", "camera", "cam07", "snapshot",
                                              {"channel": 2}, timeout=5)
            assert reply.code == 0 and reply.p == {"accepted": True}
            async with asyncio.timeout(5):
                async for message in dev.messages:
                    if message.topic.matches("site1/cameras/+/cmd"):  # amqtt also routes others
                        commands.append(json.loads(message.payload))  # type: ignore[arg-type]
                        break
            expired = await cloud.consumer.call("site1", "camera", "cam07", "reboot", {},
                                                timeout=5, deadline_ms=now_ms() - 1)
            assert expired.code == 408
            unknown = await cloud.consumer.call("site1", "camera", "nope", "reboot", {},
                                                timeout=5)
            assert unknown.code == 404
        assert gateway.ctx.stats.counters["mqtt_malformed"] == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert commands == [{"cmd": "snapshot", "channel": 2}]  # reboot expired: never sent
    with pytest.raises(CommandError):
        await cloud.consumer.call("site1", "camera", "cam07", "reboot", {}, timeout=1)
