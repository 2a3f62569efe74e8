"""``voltmesh demo``: the whole system in one process on the embedded defaults.

amqtt broker + one cloud worker (SQLite) + one edge gateway (YKC and MQTT-device adapters) +
three simulated YKC piles, two cameras and two environment sensors. The site is seeded through
the services' APIs (:mod:`voltmesh.seed`: operator tenant and admin, station, chargers,
尖峰平谷 tariff, customers with topped-up wallets and cards, provisioning), and an operator
loop starts and stops sessions the way the app does; every session becomes a settled order
paid from the customer's wallet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from cloud.auth.config import AuthConfig
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.errors import CloudError, ConfigError
from cloud.orders.config import OrdersConfig
from cloud.orders.queries import OrderQuery
from cloud.payments.config import PaymentsConfig, SimulatedProviderConfig
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
from voltmesh.seed import SeededCustomer, SeedResult, YkcPile, seed_site

log = logging.getLogger("voltmesh.demo")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

#: the demo site's YKC piles: two DC piles with two guns, one AC pile
DEMO_PILES = (YkcPile("32010200000001", guns=2, dc=True, rated_kw=Decimal("60")),
              YkcPile("32010200000002", guns=2, dc=True, rated_kw=Decimal("60")),
              YkcPile("32010200000003", guns=1, dc=False, rated_kw=Decimal("7")))
#: seconds between two operator steps (start one session, stop those older than 2 steps)
DEFAULT_OPERATOR_INTERVAL = 20.0
ENV_OPERATOR_INTERVAL = "VOLTMESH_DEMO_OPERATOR_INTERVAL"
#: the demo's simulated payment provider (WeChat Pay v2 shape); wallets are topped up through it
DEMO_PAY_PROVIDER = "wechat-sim"


@dataclass
class DemoSummary:
    """What the demo did, for its last line."""

    online: int
    orders_settled: int
    revenue: Decimal
    sessions_started: int

    def line(self, duration: float | None) -> str:
        took = f"after {duration:g}s" if duration is not None else "on Ctrl-C"
        return (f"demo finished {took}: {self.online} devices online, "
                f"{self.orders_settled} orders settled, revenue {self.revenue} CNY, "
                f"{self.sessions_started} sessions started")


class Operator:
    """Starts and stops charging sessions the way the app does: the user's wallet is checked
    (``authorize_user``), then ``remoteStart`` goes to the connector with the user's app token
    as ``idTag`` (the payer), the user's card as ``logicalCard`` and the balance; a session is stopped with ``remoteStop`` after two steps. The cloud turns each
    session into an order, bills it with the station's tariff and debits the wallet."""

    def __init__(self, cloud: CloudService, gateway_id: str, seed: SeedResult,
                 interval: float) -> None:
        self.cloud = cloud
        self.gateway_id = gateway_id
        self.seed = seed
        self.interval = interval
        self.started = 0
        self.charging: dict[str, tuple[float, str | None]] = {}
        modes = {c.device_id: (charger.operating_mode, charger.kind)
                 for charger in seed.chargers for c in charger.connectors}
        self._modes = modes

    async def run(self) -> None:
        """Run until cancelled; every failure is logged and the loop goes on."""
        step = 0
        while True:
            await asyncio.sleep(self.interval)
            now = asyncio.get_running_loop().time()
            for connector, (since, session) in list(self.charging.items()):
                if now - since > 2 * self.interval:
                    del self.charging[connector]
                    await self._stop(connector, session)
            idle = [c for c in self.seed.connectors if c not in self.charging]
            if idle:
                connector = idle[step % len(idle)]
                customer = self.seed.customers[step % len(self.seed.customers)]
                step += 1
                await self._start(connector, customer, now)

    async def _start(self, connector: str, customer: SeededCustomer, now: float) -> None:
        mode, kind = self._modes[connector]
        decision = await asyncio.to_thread(self.cloud.accounts.authorize_user,
                                           customer.user_id, operating_mode=mode,
                                           charger_type=kind)
        if not decision.accepted:
            log.info("demo: %s may not start on %s: %s", customer.phone, connector,
                     decision.reason.value)
            return
        # as the app does: the user's app token identifies the payer of an app session, the
        # user's card is the one the pile binds the session to
        params: dict[str, Any] = {
            "idTag": customer.app_token,
            "logicalCard": decision.logical_card or customer.logical_card,
            "balance": str(decision.balance if decision.balance is not None else "0.00")}
        try:
            reply = await self.cloud.consumer.call(self.gateway_id, "connector", connector,
                                                   "remoteStart", params, timeout=10)
        except CloudError as exc:
            log.info("demo: remoteStart on %s: %s", connector, exc)
            return
        if reply.code == 0 and reply.p and reply.p.get("accepted"):
            session = reply.p.get("sessionId")
            self.charging[connector] = (now, session)
            self.started += 1
            log.info("demo: %s started charging on %s (session %s)", customer.phone,
                     connector, session)
        else:
            log.info("demo: remoteStart on %s refused: %s %s", connector, reply.code,
                     reply.msg or (reply.p or {}).get("reason"))

    async def _stop(self, connector: str, session: str | None) -> None:
        params = {"sessionId": session} if session else {}
        try:
            reply = await self.cloud.consumer.call(self.gateway_id, "connector", connector,
                                                   "remoteStop", params, timeout=10)
        except CloudError as exc:
            log.info("demo: remoteStop on %s: %s", connector, exc)
            return
        log.info("demo: stopped charging on %s (session %s): %s", connector, session,
                 "accepted" if reply.code == 0 else f"code {reply.code}")

    async def stop_all(self) -> None:
        """Stop every session still running (the end of a timed run)."""
        for connector, (_, session) in list(self.charging.items()):
            del self.charging[connector]
            await self._stop(connector, session)


def summarize(cloud: CloudService, gateway_id: str, started: int) -> DemoSummary:
    """Devices online, settled orders of the gateway and their paid revenue (blocking)."""
    settled = 0
    revenue = Decimal("0.00")
    offset = 0
    while True:
        page = cloud.orders.list_orders(None, OrderQuery(gw=gateway_id, limit=500,
                                                         offset=offset))
        for order in page.items:
            if order.status == "settled":
                settled += 1
            revenue += order.paid_amount
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    return DemoSummary(online=cloud.registry.online_count(), orders_settled=settled,
                       revenue=revenue, sessions_started=started)


def operator_interval(value: float | None) -> float:
    """The interval given, else ``VOLTMESH_DEMO_OPERATOR_INTERVAL``, else 20 s."""
    if value is not None:
        return value
    text = os.environ.get(ENV_OPERATOR_INTERVAL, "")
    try:
        found = float(text) if text else DEFAULT_OPERATOR_INTERVAL
    except ValueError:
        raise ConfigError(f"{ENV_OPERATOR_INTERVAL}={text!r}: seconds expected") from None
    if not found > 0:
        raise ConfigError(f"{ENV_OPERATOR_INTERVAL}={text!r}: must be > 0")
    return found


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
                   gateway_id: str = "demo-gw",
                   operator_every: float | None = None) -> DemoSummary:
    """Run the demo; returns what it did (devices online, orders settled, revenue).

    ``operator_every``: seconds between operator steps (default
    ``VOLTMESH_DEMO_OPERATOR_INTERVAL`` or 20).
    """
    interval = operator_interval(operator_every)
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
        # development mode: the example JWT secret, a generated platform admin password
        auth=AuthConfig(dev=True),
        rules=RulesConfig(paths=[str(CONFIG_DIR / "rules")]),
        # a simulated WeChat-Pay-shaped provider: the seed tops the wallets up through it
        payments=PaymentsConfig(providers={DEMO_PAY_PROVIDER: SimulatedProviderConfig(
            api_key=SecretStr(secrets.token_hex(16)))}),
        # bill an ended session after 2 s (late samples) instead of 5 s
        orders=OrdersConfig(settle_grace=2.0),
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
    operator: Operator | None = None
    piles: list[SimPile] = []
    try:
        async with embedded_broker(host, mqtt_port), asyncio.TaskGroup() as tg:
            cloud_task = tg.create_task(cloud.run(), name="cloud")
            edge_task = tg.create_task(gateway.run(), name="edge")
            sim_task = tg.create_task(sims.run(), name="sim-devices")
            await cloud.started.wait()
            await cloud.consumer.connected.wait()
            # the operator's tenant, station, chargers, tariff and customers, through the
            # services' APIs; then the gateway's provisioning (desired state)
            seed = await seed_site(cloud, gateway_id=gateway_id, piles=DEMO_PILES,
                                   station_name="Demo Station (Shanghai)",
                                   address="1 Century Avenue, Pudong, Shanghai")
            ykc = next(a for a in gateway.adapters if isinstance(a, YkcAdapter))
            await ykc.ready.wait()
            piles = [SimPile(PileConfig(pile_code=p.code, guns=p.guns,
                                        pile_type=0 if p.dc else 1,
                                        power_kw=60.0 if p.dc else 7.0, realtime_interval=5.0,
                                        bms_frames=p.dc, record_retry_interval=10.0, seed=i),
                             host, ykc.port or 0)
                     for i, p in enumerate(DEMO_PILES)]
            pile_tasks = [pile.start(initial_delay=0.2 * i) for i, pile in enumerate(piles)]
            operator = Operator(cloud, gateway_id, seed, interval)
            operator_task = tg.create_task(operator.run(), name="demo-operator")
            _banner(cloud, seed, workdir, host, mqtt_port, ykc.port, interval)
            if duration is None:
                print("Ctrl-C stops.", flush=True)
                await asyncio.Event().wait()
            await asyncio.sleep(duration or 0)
            operator_task.cancel()
            await operator.stop_all()
            await _settled(cloud, gateway_id, timeout=30.0)
            summary = await asyncio.to_thread(summarize, cloud, gateway_id, operator.started)
            print(summary.line(duration), flush=True)
            for pile in piles:
                await pile.stop()
            for task in (*pile_tasks, sim_task, edge_task, cloud_task):
                task.cancel()
        return summary
    except asyncio.CancelledError:
        # Ctrl-C: the summary of what happened so far, then the cancellation goes on
        with contextlib.suppress(Exception):
            summary = summarize(cloud, gateway_id, operator.started if operator else 0)
            print(summary.line(None), flush=True)
        raise


async def _settled(cloud: CloudService, gateway_id: str, timeout: float) -> None:
    """Wait (at most ``timeout``) until no order of the gateway is still open or finishing."""
    open_states = ("authorised", "charging", "finished")
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        pending = 0
        for status in open_states:
            page = await asyncio.to_thread(cloud.orders.list_orders, None,
                                           OrderQuery(gw=gateway_id, status=status, limit=1))
            pending += page.total
        if not pending:
            return
        await asyncio.sleep(0.5)
    log.info("demo: some orders are still open after the stop; the summary counts the rest")


def _banner(cloud: CloudService, seed: SeedResult, workdir: Path, host: str, mqtt_port: int,
            ykc_port: int | None, interval: float) -> None:
    base = f"http://{host}:{cloud.http_port}"
    lines = [
        f"voltmesh demo is up (data in {workdir})",
        f"  MQTT broker (amqtt):  mqtt://{host}:{mqtt_port}",
        f"  API docs (OpenAPI):   {base}/docs",
        f"  login:                POST {base}/api/v1/auth/token  "
        f"username={seed.admin_username} password={seed.admin_password}  "
        f"(operator admin of {seed.tenant_id})",
        f"  stations:             {base}/api/v1/stations",
        f"  orders:               {base}/api/v1/orders",
        f"  alarms:               {base}/api/v1/alarms",
        f"  devices:              {base}/api/v1/devices",
        f"  gateways:             {base}/api/v1/gateways",
        f"  metrics (Prometheus): {base}/metrics",
        f"  health:               {base}/healthz",
        f"  YKC piles connect to: tcp://{host}:{ykc_port}",
        "  customers:            " + ", ".join(
            f"{c.phone} (card {c.physical_card}, wallet {c.balance} CNY)"
            for c in seed.customers),
        f"  operator:             starts a session every {interval:g}s, stops it after "
        f"{2 * interval:g}s",
    ]
    print("\n".join(lines), flush=True)
