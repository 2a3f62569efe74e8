"""Service calls and desired state through the HTTP API, a real broker and a real gateway."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.service import CloudService
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually


async def test_api_calls_services_and_pushes_desired_state(amqtt_broker: int,
                                                           tmp_path: Path) -> None:
    cloud = CloudService(CloudConfig(mqtt=CloudMqttConfig(port=amqtt_broker),
                                     database_url=f"sqlite:///{tmp_path / 'c.db'}",
                                     http=HttpConfig(port=0)))
    gateway = EdgeGateway(GatewayConfig(gateway_id="gw1", mqtt=MqttConfig(port=amqtt_broker),
                                        outbox=OutboxConfig(path=str(tmp_path / "o.db"))))
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run())]
    try:
        await cloud.started.wait()
        await eventually(cloud.consumer.connected.is_set)
        await eventually(gateway.ctx.cloud_connected.is_set)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cloud.http_port}",
                                     timeout=30) as http:
            anonymous = await http.post("/api/v1/devices/gw1/gateway/gw1/services/ping",
                                        json={"params": {}, "timeout": 5})
            assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
            token = await http.post("/api/v1/auth/token", data={
                "username": "admin", "password": os.environ["VOLTMESH_ADMIN_PASSWORD"]})
            assert token.status_code == 200
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            ping = await http.post("/api/v1/devices/gw1/gateway/gw1/services/ping",
                                   json={"params": {}, "timeout": 5})
            assert ping.status_code == 200
            assert ping.json()["code"] == 0 and ping.json()["output"]["pong"] is True
            missing = await http.post("/api/v1/devices/gw1/charger/CP9/services/reset",
                                      json={"params": {"type": "soft"}, "timeout": 5})
            assert missing.json()["code"] == 404
            bad = await http.post("/api/v1/devices/gw1/charger/a+b/services/reset",
                                  json={"params": {}})
            assert bad.status_code == 400
            ack = await http.put("/api/v1/gateways/gw1/desired/gateway/gw1",
                                 json={"devices": [{"product": "charger", "id": "CP1"}]})
            assert ack.status_code == 202
            version = ack.json()["version"]
            held = await eventually(lambda: gateway.ctx.desired("gateway", "gw1"))
            assert held.version == version
            assert held.doc["devices"] == [{"product": "charger", "id": "CP1"}]
            offline = await http.post("/api/v1/devices/gw-gone/gateway/gw-gone/services/ping",
                                      json={"timeout": 0.5})
            assert offline.status_code == 504
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
