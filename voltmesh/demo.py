"""``voltmesh demo``: the whole system in one process on the embedded defaults.

amqtt broker + one cloud worker (SQLite) + one edge gateway + simulated devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from pathlib import Path

from cloud.auth.config import AuthConfig
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.rules import RulesConfig
from cloud.service import CloudService
from edge.adapters.ykc import YkcAdapter
from edge.config import (
    AdaptersConfig,
    GatewayConfig,
    LocalBrokerConfig,
    MqttConfig,
    MqttDevicesConfig,
    OutboxConfig,
    TelemetryConfig,
    YkcConfig,
)
from edge.runtime import EdgeGateway
from sim.mqtt.devices import SimDevices
from sim.ykc import PileConfig, SimPile
from voltmesh.broker import embedded_broker

log = logging.getLogger("voltmesh.demo")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

#: the demo site's YKC piles: (pile code, guns, DC?)
DEMO_PILES = (("32010200000001", 2, True), ("32010200000002", 2, True),
              ("32010200000003", 1, False))
#: 尖峰平谷 tariff of the demo site (yuan/kWh), pushed to the gateway as desired state
DEMO_TARIFF = {
    "version": 1,
    "tiers": {"tip": {"energy": "1.2", "service": "0.6"}, "peak": {"energy": "1.0", "service": "0.6"},
              "flat": {"energy": "0.7", "service": "0.6"}, "valley": {"energy": "0.3", "service": "0.6"}},
    "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                {"start": "08:00", "end": "10:00", "tier": "flat"},
                {"start": "10:00", "end": "11:00", "tier": "tip"},
                {"start": "11:00", "end": "12:00", "tier": "peak"},
                {"start": "12:00", "end": "18:00", "tier": "flat"},
                {"start": "18:00", "end": "21:00", "tier": "peak"},
                {"start": "21:00", "end": "23:00", "tier": "flat"},
                {"start": "23:00", "end": "24:00", "tier": "valley"}],
}


async def operate(cloud: CloudService, gateway_id: str, interval: float = 20.0) -> None:
    """Start and stop charging sessions through the cloud, like an app user would."""
    connectors = [f"{code}{gun:02d}" for code, guns, _ in DEMO_PILES for gun in range(1, guns + 1)]
    charging: dict[str, float] = {}
    step = 0
    while True:
        await asyncio.sleep(interval)
        loop_time = asyncio.get_running_loop().time()
        for connector, since in list(charging.items()):
            if loop_time - since > 2 * interval:
                del charging[connector]
                with contextlib.suppress(Exception):
                    await cloud.consumer.call(gateway_id, "connector", connector, "remoteStop",
                                              {}, timeout=10)
        idle = [c for c in connectors if c not in charging]
        if idle:
            connector = idle[step % len(idle)]
            step += 1
            with contextlib.suppress(Exception):
                reply = await cloud.consumer.call(
                    gateway_id, "connector", connector, "remoteStart",
                    {"idTag": "00000000D14B0A54", "balance": "200.00"}, timeout=10)
                if reply.code == 0 and reply.p and reply.p.get("accepted"):
                    charging[connector] = loop_time
                    log.info("demo: started charging on %s (%s)", connector,
                             reply.p.get("sessionId"))


def port_or_free(host: str, wanted: int) -> int:
    """``wanted`` if it can be bound, else a free port (0 always means a free port)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, wanted))
        except OSError:
            if wanted:
                log.warning("port %d is busy; using a free port instead", wanted)
            sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def run_demo(*, mqtt_port: int = 1883, http_port: int = 8000,
                   duration: float | None = None, data_dir: Path | None = None,
                   gateway_id: str = "demo-gw") -> int:
    """Run the demo; returns the number of devices online at the end."""
    host = "127.0.0.1"
    mqtt_port = port_or_free(host, mqtt_port)
    http_port = port_or_free(host, http_port)
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="voltmesh-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cloud = CloudService(CloudConfig(
        worker_id="demo-cloud",
        mqtt=CloudMqttConfig(host=host, port=mqtt_port, protocol="auto"),
        database_url=f"sqlite:///{workdir / 'cloud.db'}",
        http=HttpConfig(host=host, port=http_port),
        # development mode: the example JWT secret, a generated admin password (logged)
        auth=AuthConfig(dev=True),
        rules=RulesConfig(paths=[str(CONFIG_DIR / "rules")]),
    ))
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=gateway_id,
        mqtt=MqttConfig(host=host, port=mqtt_port),
        outbox=OutboxConfig(path=str(workdir / "edge-outbox.db")),
        telemetry=TelemetryConfig(flush_interval=1.0, stats_interval=10.0),
        adapters=AdaptersConfig(
            mqtt_devices=MqttDevicesConfig(
                broker=LocalBrokerConfig(host=host, port=mqtt_port),
                mappings=[str(CONFIG_DIR / "mqtt_devices" / "site.yaml")],
            ),
            ykc=YkcConfig(host=host, port=0),
        ),
    ))
    sims = SimDevices(host=host, port=mqtt_port, site="site1", cameras=2, sensors=2,
                      interval=2.0)
    async with embedded_broker(host, mqtt_port), asyncio.TaskGroup() as tg:
        cloud_task = tg.create_task(cloud.run(), name="cloud")
        edge_task = tg.create_task(gateway.run(), name="edge")
        sim_task = tg.create_task(sims.run(), name="sim-devices")
        await cloud.started.wait()
        await cloud.consumer.connected.wait()
        await cloud.consumer.publish_desired(gateway_id, "gateway", gateway_id, {
            "devices": [{"product": "charger", "id": code, "protocol": "ykc"}
                        for code, _, _ in DEMO_PILES],
            "tariff": DEMO_TARIFF,
            "cards": [{"physical": "D14B0A54", "logical": "1000000573", "status": "active"}],
        })
        ykc = next(a for a in gateway.adapters if isinstance(a, YkcAdapter))
        await ykc.ready.wait()
        piles = [SimPile(PileConfig(pile_code=code, guns=guns, pile_type=0 if dc else 1,
                                    power_kw=60.0 if dc else 7.0, realtime_interval=5.0,
                                    bms_frames=dc, record_retry_interval=10.0, seed=i),
                         host, ykc.port or 0)
                 for i, (code, guns, dc) in enumerate(DEMO_PILES)]
        pile_tasks = [pile.start(initial_delay=0.2 * i) for i, pile in enumerate(piles)]
        operator = tg.create_task(operate(cloud, gateway_id), name="demo-operator")
        base = f"http://{host}:{cloud.http_port}"
        print(f"voltmesh demo is up (data in {workdir})", flush=True)
        print(f"  MQTT broker (amqtt):  mqtt://{host}:{mqtt_port}", flush=True)
        print(f"  devices:              {base}/api/v1/devices", flush=True)
        print(f"  gateways:             {base}/api/v1/gateways", flush=True)
        print(f"  API docs (OpenAPI):   {base}/docs", flush=True)
        print(f"  metrics (Prometheus): {base}/metrics", flush=True)
        print(f"  health:               {base}/healthz", flush=True)
        print(f"  YKC piles connect to: tcp://{host}:{ykc.port}", flush=True)
        if duration is None:
            print("Ctrl-C stops.", flush=True)
            await asyncio.Event().wait()
        await asyncio.sleep(duration or 0)
        online = cloud.registry.online_count()
        print(f"demo finished after {duration:g}s: {online} devices online", flush=True)
        operator.cancel()
        for pile in piles:
            await pile.stop()
        for task in (*pile_tasks, sim_task, edge_task, cloud_task):
            task.cancel()
    return online
