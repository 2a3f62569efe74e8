"""CommandSink through a real cloud worker, a real broker and a real gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cloud.actions import Action, InvokeService
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.errors import CommandError
from cloud.service import CloudService
from cloud.sinks import CommandSink, CommandsQueueConfig, PermanentError, SinkQueue, command_ttl
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually


def invoke(n: int, gw: str, product: str, device: str, service: str,
           timeout_s: float = 5.0, **params: Any) -> InvokeService:
    return InvokeService(rule="r", key=f"c{n}", gw=gw, product=product, device=device,
                         service=service, params=params, timeout_s=timeout_s)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"sink": "commands", **labels}) or 0.0


async def test_commands_reach_the_gateway_and_refusals_and_timeouts_are_not_retried(
        amqtt_broker: int, tmp_path: Path) -> None:
    cloud = CloudService(CloudConfig(mqtt=CloudMqttConfig(port=amqtt_broker),
                                     database_url=f"sqlite:///{tmp_path / 'c.db'}",
                                     http=HttpConfig(port=0)))
    gateway = EdgeGateway(GatewayConfig(gateway_id="gw1", mqtt=MqttConfig(port=amqtt_broker),
                                        outbox=OutboxConfig(path=str(tmp_path / "o.db"))))
    sent: list[tuple[str, str, str]] = []

    async def call(gw: str, product: str, device: str, service: str, params: dict[str, Any],
                   timeout: float) -> Any:
        sent.append((gw, device, service))
        return await cloud.consumer.call(gw, product, device, service, params, timeout=timeout)

    registry = CollectorRegistry()
    queue = SinkQueue("commands", CommandSink(call),
                      CommandsQueueConfig(backoff_initial=0.05, backoff_max=0.2), registry,
                      ttl_of=command_ttl)
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run()),
             asyncio.create_task(queue.run())]
    try:
        await cloud.started.wait()
        await eventually(cloud.consumer.connected.is_set, timeout=30)
        await eventually(gateway.ctx.cloud_connected.is_set, timeout=30)
        await queue.put_many([
            invoke(1, "gw1", "gateway", "gw1", "ping"),  # answered code 0
            invoke(2, "gw1", "charger", "CP9", "reset", type="soft"),  # unknown device: 404
            invoke(3, "gw-gone", "gateway", "gw-gone", "ping", timeout_s=0.5),  # nobody answers
        ])
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 1
                         and metric(registry, "voltmesh_sink_dropped_total",
                                    reason="permanent") == 2, timeout=30)
    finally:
        await queue.drain(10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(sent) == [("gw-gone", "gw-gone", "ping"), ("gw1", "CP9", "reset"),
                            ("gw1", "gw1", "ping")]  # each once: nothing retried
    assert metric(registry, "voltmesh_sink_retried_total") == 0


async def test_a_call_that_was_not_sent_is_retried_and_one_that_waited_too_long_is_dropped(
) -> None:
    attempts: list[str] = []

    async def call(gw: str, product: str, device: str, service: str, params: dict[str, Any],
                   timeout: float) -> Any:
        attempts.append(service)
        if len(attempts) == 1:
            raise CommandError("not connected to the broker")
        return None

    registry = CollectorRegistry()
    queue = SinkQueue("commands", CommandSink(call),
                      CommandsQueueConfig(backoff_initial=0.05, backoff_max=0.1), registry,
                      ttl_of=command_ttl)
    await queue.put(invoke(1, "gw1", "connector", "c1", "remoteStop"))
    await queue.put(invoke(2, "gw1", "connector", "c1", "remoteStart", timeout_s=0.05))
    await asyncio.sleep(0.3)  # the second waits longer than its own timeout before any worker
    task = asyncio.create_task(queue.run())
    try:
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 1,
                         timeout=30)
    finally:
        await queue.drain(10)
        await task
    assert attempts == ["remoteStop", "remoteStop"]
    assert metric(registry, "voltmesh_sink_dropped_total", reason="ttl") == 1


async def test_a_reply_with_an_error_code_is_permanent() -> None:
    class Reply:
        code = 409
        msg = "already charging"

    async def call(*args: Any) -> Any:
        return Reply()

    batch: list[Action] = [invoke(1, "gw1", "connector", "c1", "remoteStart")]
    with pytest.raises(PermanentError, match="409"):
        await CommandSink(call)(batch)
