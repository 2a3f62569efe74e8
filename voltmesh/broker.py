"""The embedded MQTT broker (amqtt) for the demo and development.

amqtt has no MQTT 5 and no shared subscriptions: one cloud worker only. Production runs
Mosquitto with ``config/mosquitto/`` (or EMQX).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger("voltmesh.broker")


class _SnapshotSubscriptions(dict[str, Any]):
    """amqtt's topic-filter table, iterated over a snapshot.

    amqtt 0.12.1 awaits inside ``for topic in self._subscriptions`` (a reconnecting client's
    retained messages, every broadcast): a SUBSCRIBE from another client in that window raised
    ``RuntimeError: dictionary changed size during iteration`` and dropped the connecting client
    (seen in CI as a cloud worker that never came up). Iterating a copy is what the loops meant.
    """

    def __iter__(self) -> Iterator[str]:
        return iter(list(dict.keys(self)))

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(dict.keys(self))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(dict.items(self))

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(dict.values(self))


def make_broker(config: dict[str, Any]) -> Broker:
    """An amqtt Broker whose subscription table survives concurrent (un)subscribes."""
    broker = Broker(config)
    broker._subscriptions = _SnapshotSubscriptions(broker._subscriptions)
    return broker


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one TCP listener, anonymous access (development only)."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}",
                                  "max_connections": 20000}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 1883) -> AsyncIterator[Broker]:
    """Run amqtt in this event loop for the duration of the block."""
    broker = make_broker(broker_config(host, port))
    await broker.start()
    log.info("embedded MQTT broker (amqtt) on %s:%d", host, port)
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), 5)


async def run_broker(host: str, port: int) -> None:
    """Run the embedded broker until cancelled."""
    async with embedded_broker(host, port):
        await asyncio.Event().wait()
