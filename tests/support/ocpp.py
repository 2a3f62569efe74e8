"""OCPP test sites: a cloud worker and a gateway with the OCPP listener on a real Mosquitto, and
the strict wire check every OCPP test runs under."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.service import CloudService
from edge.adapters.ocpp import OcppAdapter, OcppConfig, password_hash
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from sim.ocpp.wirecheck import VIOLATIONS
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually
from thingmodels import Envelope, Topic

GW = "gwA"  # a gateway user of the shipped Mosquitto config (tests/support/mosquitto.py)


@pytest.fixture(autouse=True)
def wire_checked() -> Iterator[None]:
    """Every frame the CSMS sends to a simulator is checked strictly against the official
    schema of its version (sim/ocpp/wirecheck.py); any violation fails the test. Import it
    into a test module to apply it there."""
    VIOLATIONS.clear()
    yield
    assert not VIOLATIONS, VIOLATIONS


@dataclass
class OcppSite:
    """What :func:`ocpp_site` runs; ``seen`` is every message the cloud consumed."""

    cloud: CloudService
    gateway: EdgeGateway
    adapter: OcppAdapter
    seen: list[tuple[Topic, Envelope]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def ocpp_site(mosquitto: Mosquitto, tmp_path: Path, name: str, chargers: Iterable[str],
                    config: OcppConfig, *, passwords: bool = True,
                    cards: list[dict[str, Any]] | None = None) -> AsyncIterator[OcppSite]:
    """A cloud worker (``name``) and gateway ``gwA`` with ``config``'s OCPP listener, the
    ``chargers`` provisioned (with password ``{id}-secret`` when ``passwords``), all connected."""
    cloud = CloudService(CloudConfig(
        worker_id=name, mqtt=CloudMqttConfig(
            port=mosquitto.port, username="cloud", password=USERS["cloud"],
            client_id=f"{name}-cloud", shared_group=None),
        database_url=f"sqlite:///{tmp_path / 'c.db'}", http=HttpConfig(port=0)))
    adapter = OcppAdapter(config)
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=GW, mqtt=MqttConfig(port=mosquitto.port, password=USERS[GW], backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db"))), adapters=[adapter])
    site = OcppSite(cloud, gateway, adapter)

    async def track(topic: Topic, env: Envelope) -> None:
        site.seen.append((topic, env))

    cloud.consumer.add_handler("track", track)
    devices = [{"product": "charger", "id": cp, "protocol": "ocpp",
                **({"password_sha256": password_hash(f"{cp}-secret")} if passwords else {})}
               for cp in chargers]
    desired: dict[str, Any] = {"version": 1, "devices": devices}
    if cards is not None:
        desired["cards"] = cards
    gateway.ctx.set_desired("gateway", GW, 1, desired)
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run())]
    try:
        await eventually(cloud.consumer.connected.is_set)
        await eventually(gateway.ctx.cloud_connected.is_set)
        await eventually(adapter.ready.is_set)
        yield site
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
