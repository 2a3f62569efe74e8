"""The embedded MQTT broker (amqtt) for the demo and development.

amqtt has no MQTT 5 and no shared subscriptions: one cloud worker only. Production runs
Mosquitto with ``config/mosquitto/`` (or EMQX).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger("voltmesh.broker")


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
    broker = Broker(broker_config(host, port))
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
