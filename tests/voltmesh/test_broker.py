"""The embedded amqtt broker: its subscription table survives concurrent subscribes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt

from bench.procs import free_port
from voltmesh.broker import embedded_broker, make_broker


async def test_iterating_the_table_while_a_filter_is_added_does_not_raise() -> None:
    table = make_broker({"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:1"}}}
                        )._subscriptions
    table["a/#"] = []
    seen: list[str] = []
    for topic in table:
        table[f"b/{len(seen)}"] = []  # a SUBSCRIBE from another client meanwhile
        seen.append(topic)
    for topic, _subs in table.items():
        table.pop(topic)
    assert seen == ["a/#"] and table == {}


async def test_a_client_reconnecting_while_another_subscribes_is_served() -> None:
    port = free_port()
    async with embedded_broker("127.0.0.1", port) as broker:
        def client() -> aiomqtt.Client:
            return aiomqtt.Client("127.0.0.1", port, identifier="worker", clean_session=False,
                                  protocol=aiomqtt.ProtocolVersion.V311)

        async with client() as worker:
            await worker.subscribe("ev/#", qos=1)
        inner = broker._publish_retained_messages_for_subscription

        async def subscribe_meanwhile(*args: Any) -> None:
            # amqtt awaits this inside `for topic in self._subscriptions` when a persistent
            # session comes back; another client's SUBSCRIBE lands in that window
            broker._subscriptions.setdefault(f"other/{len(broker._subscriptions)}", [])
            await inner(*args)

        broker._publish_retained_messages_for_subscription = subscribe_meanwhile
        async with client() as worker:
            async with aiomqtt.Client("127.0.0.1", port, identifier="pub") as publisher:
                await publisher.publish("ev/x", b"hello", qos=1)
            message = await asyncio.wait_for(anext(aiter(worker.messages)), 5)
            assert message.payload == b"hello"
