"""A real site for fleet runs: the embedded broker, a cloud worker that provisions the gateway
via desired state, accepts every authorize (the simulated connectors are not in its catalogue,
so its own accounts do not answer) and logs the app back end in, and an edge gateway with YKC and OCPP adapters
on free ports plus the Modbus / MQTT adapters from the simulator's own gateway config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.service import CloudService
from edge.adapters.ocpp import OcppAdapter
from edge.adapters.ykc import YkcAdapter
from edge.config import (
    AdaptersConfig,
    GatewayConfig,
    MqttConfig,
    OcppConfig,
    OutboxConfig,
    TelemetryConfig,
    YkcConfig,
)
from edge.runtime import EdgeGateway
from sim.fleet import FleetSpec, gateway_snippet, provisioning
from tests.support.net import eventually
from tests.support.tenancy import fast_auth_config
from thingmodels import Envelope, Kind, Topic

GATEWAY = "gw-fleet"
ADMIN_PASSWORD = "fleet-admin-password-1"  # used unless VOLTMESH_ADMIN_PASSWORD is set


@dataclass
class Site:
    """What a test needs of the running site."""

    cloud: CloudService
    gateway: EdgeGateway
    ykc_port: int
    ocpp_url: str
    api: str
    token: str
    """A bearer token for the cloud API (the app back end's credentials)."""
    seen: list[tuple[Topic, Envelope]] = field(default_factory=list)

    def events(self, name: str) -> list[Envelope]:
        """Events of a name the cloud received (deduplicated by envelope id)."""
        out: dict[str, Envelope] = {}
        for topic, env in self.seen:
            if topic.kind is Kind.EVENT and topic.name == name:
                out.setdefault(env.id, env)
        return list(out.values())


@asynccontextmanager
async def fleet_site(tmp_path: Path, broker_port: int, spec: FleetSpec) -> AsyncIterator[Site]:
    """Start cloud + gateway for ``spec``'s devices (its Modbus port must be fixed)."""
    cloud = CloudService(CloudConfig(
        worker_id="fleet-cloud", mqtt=CloudMqttConfig(port=broker_port),
        database_url=f"sqlite:///{tmp_path / 'cloud.db'}", http=HttpConfig(port=0),
        auth=fast_auth_config(bootstrap={"username": "admin", "password": ADMIN_PASSWORD})))
    seen: list[tuple[Topic, Envelope]] = []

    async def decide(topic: Topic, env: Envelope) -> None:
        seen.append((topic, env))
        if topic.kind is Kind.EVENT and topic.name == "authorize":
            await cloud.consumer.publish(topic.reply(), Envelope.new(
                src="cloud", cid=env.id, code=0, p={"accepted": True, "balance": "100.00"}))

    cloud.consumer.add_handler("fleet-test", decide)
    snippet = gateway_snippet(spec)["adapters"]
    adapters = AdaptersConfig.model_validate({
        **snippet, "ykc": YkcConfig(port=0, heartbeat_interval=5.0).model_dump(),
        "ocpp": OcppConfig(port=0, heartbeat_interval=60, call_timeout=10).model_dump()})
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=GATEWAY, mqtt=MqttConfig(port=broker_port, backoff_max=1.0),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")),
        telemetry=TelemetryConfig(flush_interval=0.5), adapters=adapters))
    tasks = [asyncio.create_task(cloud.run(), name="cloud"),
             asyncio.create_task(gateway.run(), name="gateway")]
    try:
        await eventually(cloud.started.is_set, timeout=20)
        await eventually(cloud.consumer.connected.is_set, timeout=20)
        await eventually(gateway.ctx.cloud_connected.is_set, timeout=20)
        await cloud.consumer.publish_desired(GATEWAY, "gateway", GATEWAY, provisioning(spec))
        await eventually(lambda: gateway.ctx.desired("gateway", GATEWAY), timeout=20)
        ykc = next(a for a in gateway.adapters if isinstance(a, YkcAdapter))
        ocpp = next(a for a in gateway.adapters if isinstance(a, OcppAdapter))
        await eventually(ykc.ready.is_set, timeout=20)
        await eventually(ocpp.ready.is_set, timeout=20)
        assert ykc.port is not None and ocpp.port is not None
        api = f"http://127.0.0.1:{cloud.http_port}"
        boot = cloud.config.auth.with_env().bootstrap  # VOLTMESH_ADMIN_* override the config
        async with httpx.AsyncClient(base_url=api) as client:
            login = await client.post("/api/v1/auth/token", data={
                "username": boot.username, "password": boot.password})
        assert login.status_code == 200, login.text
        yield Site(cloud, gateway, ykc.port, f"ws://127.0.0.1:{ocpp.port}/ocpp", api,
                   login.json()["access_token"], seen)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
