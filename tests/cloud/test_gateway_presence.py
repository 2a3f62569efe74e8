"""A gateway's presence in the cloud across its restarts: the uplink's retained state and Will
are the only writers of the gateway's state topic, so the Will of a restarted gateway that has
sent many messages still takes it offline."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import aiomqtt

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.rules.config import RulesConfig
from cloud.service import CloudService
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually
from thingmodels import Envelope, decode, encode
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


async def test_a_gateway_that_died_without_a_will_is_shown_offline_after_its_silence(
        amqtt_broker: int, tmp_path: Path) -> None:
    """A gateway re-publishes its retained ``online`` every ``presence_interval``; one that
    stops (it died while its broker was down: no Will ever comes) is shown offline once the
    cloud has not heard from it for ``presence_silence``; its state's time is the cloud's."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alarms.yaml").write_text(textwrap.dedent("""\
        rules:
          - id: gateway-offline
            from: [$presence]
            where: "product == 'gateway'"
            do:
              - alarm:
                  type: gatewayOffline
                  level: critical
                  raise: "p['online'] == false"
                  clear: "p['online'] == true"
        """))
    cloud = CloudService(CloudConfig(mqtt=CloudMqttConfig(port=amqtt_broker),
                                     database_url=f"sqlite:///{tmp_path / 'c.db'}",
                                     http=HttpConfig(port=0), presence_silence=1.5,
                                     rules=RulesConfig(paths=[str(rules)])))
    gw = EdgeGateway(GatewayConfig(gateway_id="gw1",
                                   mqtt=MqttConfig(port=amqtt_broker, presence_interval=0.3),
                                   outbox=OutboxConfig(path=str(tmp_path / "o.db"))),
                     adapters=[])
    states: list[bytes] = []

    def shown() -> bool:
        cloud.registry.flush()
        return bool(cloud.registry.list_gateways()[0]["online"])

    tasks = [asyncio.create_task(cloud.run())]
    try:
        await cloud.started.wait()
        await eventually(cloud.consumer.connected.is_set)
        async with aiomqtt.Client("127.0.0.1", amqtt_broker) as watcher:
            await watcher.subscribe(gateway_state("gw1").render(), qos=1)

            async def watch() -> None:
                async for message in watcher.messages:
                    assert isinstance(message.payload, bytes)
                    states.append(message.payload)

            tasks.append(asyncio.create_task(watch()))
            tasks.append(asyncio.create_task(gw.run()))
            await eventually(lambda: len(states) >= 4, timeout=5)  # connect + re-publications
            assert all(decode(s).p == {"online": True, "session": gw.uplink.session}
                       for s in states)
            await asyncio.sleep(2.0)  # longer than the silence: the re-publications keep it
            assert shown()
            # the gateway "dies" with no Will: its last online stays retained at the broker
            runner = tasks.pop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)  # (a stop says offline:)
            await watcher.publish(gateway_state("gw1").render(), encode(Envelope.new(
                rts=1_000, src="edge", p={"online": True, "session": gw.uplink.session + 1})),
                qos=1, retain=True)  # ... so put back an online, as a crash would leave it
            await eventually(shown, timeout=5)  # heard now, whatever its own clock said
            alarms = cloud.alarms.manager

            def offline_alarms() -> list[str]:
                return [a.state for a in alarms.list_alarms().items
                        if a.type == "gatewayOffline"]

            await eventually(lambda: offline_alarms() == ["cleared"] or offline_alarms() == [], timeout=5)
            await eventually(lambda: not shown(), timeout=5)
            await eventually(lambda: offline_alarms() == ["open"], timeout=10)  # the rules know
            # it speaks again (its state re-published): shown online, the alarm cleared
            await watcher.publish(gateway_state("gw1").render(), encode(Envelope.new(
                src="edge", p={"online": True, "session": gw.uplink.session + 1})),
                qos=1, retain=True)
            await eventually(shown, timeout=5)
            await eventually(lambda: offline_alarms() == ["cleared"], timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
