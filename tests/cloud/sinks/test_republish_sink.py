"""RepublishSink through a real broker: msgpack payloads, bytes as is, bad topics permanent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiomqtt
import msgpack
from prometheus_client import CollectorRegistry

from cloud.actions import Republish
from cloud.sinks import RepublishQueueConfig, RepublishSink, SinkQueue
from tests.support.net import eventually


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"sink": "republish", **labels}) or 0.0


async def test_republish_reaches_subscribers_and_a_bad_topic_is_dropped(
        amqtt_broker: int) -> None:
    registry = CollectorRegistry()
    received: list[tuple[str, bytes, bool]] = []
    async with aiomqtt.Client("127.0.0.1", amqtt_broker, identifier="sub") as sub, \
            aiomqtt.Client("127.0.0.1", amqtt_broker, identifier="pub") as pub:
        await sub.subscribe("north/#", qos=1)

        async def listen() -> None:
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                received.append((str(message.topic), message.payload, message.retain))

        async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            await pub.publish(topic, payload, qos=qos, retain=retain)

        listener = asyncio.create_task(listen())
        queue = SinkQueue("republish", RepublishSink(publish),
                          RepublishQueueConfig(max_delay=0.05), registry)
        task = asyncio.create_task(queue.run())
        try:
            await queue.put_many([
                Republish(rule="r", key="k1", topic="north/gwA/power",
                          payload={"power": Decimal("7.50"), "tags": ("a", "b")}),
                Republish(rule="r", key="k2", topic="north/+/bad", payload=b"x"),
                Republish(rule="r", key="k3", topic="north/raw", payload=b"\x01\x02", qos=0),
            ])
            await eventually(lambda: len(received) == 2, timeout=30)
            await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total",
                                            reason="permanent") == 1, timeout=30)
        finally:
            await queue.drain(10)
            await task
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    by_topic = {topic: payload for topic, payload, _ in received}
    assert msgpack.unpackb(by_topic["north/gwA/power"]) == {"power": "7.50", "tags": ["a", "b"]}
    assert by_topic["north/raw"] == b"\x01\x02"
    assert metric(registry, "voltmesh_sink_written_total") == 2


async def test_a_publish_while_disconnected_is_retried() -> None:
    registry = CollectorRegistry()
    calls: list[str] = []

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        calls.append(topic)
        if len(calls) < 3:
            raise aiomqtt.MqttError("Disconnected during message iteration")

    queue = SinkQueue("republish", RepublishSink(publish),
                      RepublishQueueConfig(max_delay=0, backoff_initial=0.02, backoff_max=0.05),
                      registry)
    task = asyncio.create_task(queue.run())
    try:
        await queue.put(Republish(rule="r", key="k1", topic="north/x", payload={"a": 1},
                                  retain=True))
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 1,
                         timeout=30)
    finally:
        await queue.drain(10)
        await task
    assert calls == ["north/x"] * 3
    assert metric(registry, "voltmesh_sink_retried_total") == 2
