"""A gateway's presence in the cloud across its restarts: the uplink's retained state and Will
are the only writers of the gateway's state topic, so the Will of a restarted gateway that has
sent many messages still takes it offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.service import CloudService
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually
from thingmodels.topics import gateway_state


async def test_the_will_of_a_restarted_gateway_takes_it_offline(amqtt_broker: int,
                                                               tmp_path: Path) -> None:
    cloud = CloudService(CloudConfig(mqtt=CloudMqttConfig(port=amqtt_broker),
                                     database_url=f"sqlite:///{tmp_path / 'c.db'}",
                                     http=HttpConfig(port=0)))

    def gateway() -> EdgeGateway:
        return EdgeGateway(GatewayConfig(gateway_id="gw1", mqtt=MqttConfig(port=amqtt_broker),
                                         outbox=OutboxConfig(path=str(tmp_path / "o.db"))),
                           adapters=[])

    def online() -> bool:
        return cloud.registry.is_online("gw1", "gateway", "gw1")

    tasks = [asyncio.create_task(cloud.run())]
    try:
        await cloud.started.wait()
        await eventually(cloud.consumer.connected.is_set)
        first = gateway()
        run = asyncio.create_task(first.run())
        await eventually(online)
        for _ in range(50):  # a gateway that has run a while: its own messages' seq is far
            first.outbox.next_seq("gateway/gw1")  # ahead of its count of connects
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        second = gateway()
        tasks.append(asyncio.create_task(second.run()))
        await eventually(second.started.is_set)
        await eventually(lambda: online() and cloud.registry.list_gateways())
        await asyncio.sleep(0.5)  # whatever the restart publishes has landed
        assert online()
        # the broker publishes the second run's Will when its connection dies
        async with aiomqtt.Client("127.0.0.1", amqtt_broker) as broker_side:
            await broker_side.publish(gateway_state("gw1").render(), second.uplink._state(False),
                                      qos=1, retain=True)
        await eventually(lambda: not online(), timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
