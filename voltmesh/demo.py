"""``voltmesh demo``: the whole system in one process on the embedded defaults.

amqtt broker + one cloud worker (SQLite) + one edge gateway (YKC, OCPP, Modbus and MQTT-device
adapters, one safety interlock) + three simulated YKC piles, two simulated OCPP chargers (1.6J
and 2.0.1), a simulated Modbus site (meter, water sensor, cabinet relay, parking lock; see
:mod:`voltmesh.demo_site`), two cameras and two environment sensors. The site is seeded through
the services' APIs (:mod:`voltmesh.seed`: operator tenant and admin, station, chargers,
尖峰平谷 tariff, customers with topped-up wallets and cards, provisioning), and an operator
loop starts and stops sessions the way the app does on every charger; every session becomes a
settled order paid from the customer's wallet. ``flood_at`` scripts water in the cabinet
trench: the interlock stops the charging, cuts the relay, and the cloud opens an alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bridges.modbus import shipped_map
from cloud.alarms.states import State
from cloud.alarms.view import AlarmFilter
from cloud.auth.config import AuthConfig
from cloud.catalog.models import Charger
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.errors import CloudError, ConfigError
from cloud.orders.config import OrdersConfig
from cloud.orders.queries import OrderQuery
from cloud.payments.config import PaymentsConfig, SimulatedProviderConfig
from cloud.rules import RulesConfig
from cloud.service import CloudService
from edge.adapters.ocpp import OcppAdapter
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
from sim.ocpp import OcppChargePointSim
from sim.ykc import PileConfig, SimPile
from voltmesh.broker import embedded_broker
from voltmesh.demo_site import (
    DEMO_MODBUS,
    INTERLOCK,
    OCPP_PATH,
    RELAY,
    WATER_SENSOR,
    ModbusSite,
    interlocks_file,
    ocpp_config,
    ocpp_points,
    ocpp_sims,
    watch_flood,
)
from voltmesh.seed import OcppChargePoint, SeededCustomer, SeedResult, YkcPile, seed_site

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
    #: chargers online per protocol family, Modbus devices online
    ykc_online: int = 0
    ocpp_online: int = 0
    modbus_online: int = 0
    #: types of the gateway's alarms still open (open or acknowledged)
    alarms_open: list[str] = field(default_factory=list)

    def line(self, duration: float | None) -> str:
        took = f"after {duration:g}s" if duration is not None else "on Ctrl-C"
        alarms = len(self.alarms_open)
        kinds = f" ({', '.join(sorted(set(self.alarms_open)))})" if alarms else ""
        return (f"demo finished {took}: {self.online} devices online "
                f"({self.ykc_online} YKC piles, {self.ocpp_online} OCPP chargers, "
                f"{self.modbus_online} Modbus devices), "
                f"{self.orders_settled} orders settled, revenue {self.revenue} CNY, "
                f"{self.sessions_started} sessions started, "
                f"{alarms} alarm{'' if alarms == 1 else 's'} open{kinds}")


def rotation(seed: SeedResult) -> list[str]:
    """The connectors in the order the operator visits them: the protocols interleaved
    (YKC, OCPP, YKC, OCPP ...), then the first connector of every charger before the second
    of any, so a short run charges on every kind of charger."""
    groups: dict[str, list[Charger]] = {}
    for charger in seed.chargers:
        groups.setdefault("ykc" if charger.protocol == "ykc" else "ocpp", []).append(charger)
    chargers = [c for group in zip_longest(*groups.values()) for c in group if c is not None]
    out: list[str] = []
    for n in range(max((len(c.connectors) for c in chargers), default=0)):
        out += [c.connectors[n].device_id for c in chargers if n < len(c.connectors)]
    return out


class Operator:
    """Starts and stops charging sessions the way the app does: the user's wallet is checked
    (``authorize_user``), then ``remoteStart`` goes to the connector with the user's app token
    as ``idTag`` (the payer), the user's card as ``logicalCard`` and the balance; a session is
    stopped with ``remoteStop`` after two steps. The cloud turns each session into an order,
    bills it with the station's tariff and debits the wallet. ``blocked`` says why no session
    may start now (the site's power is cut), or None."""

    def __init__(self, cloud: CloudService, gateway_id: str, seed: SeedResult,
                 interval: float, blocked: Callable[[], str | None] = lambda: None) -> None:
        self.cloud = cloud
        self.gateway_id = gateway_id
        self.seed = seed
        self.interval = interval
        self.blocked = blocked
        self.started = 0
        self.charging: dict[str, tuple[float, str | None]] = {}
        modes = {c.device_id: (charger.operating_mode, charger.kind)
                 for charger in seed.chargers for c in charger.connectors}
        self._modes = modes
        self._rotation = rotation(seed)

    async def run(self) -> None:
        """Run until cancelled; every failure is logged and the loop goes on."""
        step = 0
        cursor = 0
        said: str | None = None
        while True:
            await asyncio.sleep(self.interval)
            now = asyncio.get_running_loop().time()
            for connector, (since, session) in list(self.charging.items()):
                if now - since > 2 * self.interval:
                    del self.charging[connector]
                    await self._stop(connector, session)
            reason = self.blocked()
            if reason is not None:
                if reason != said:
                    log.warning("demo: no new sessions: %s", reason)
                said = reason
                continue
            said = None
            count = len(self._rotation)
            idle = [(cursor + i) % count for i in range(count)
                    if self._rotation[(cursor + i) % count] not in self.charging]
            if idle:
                connector = self._rotation[idle[0]]
                cursor = idle[0] + 1
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


def summarize(cloud: CloudService, gateway_id: str, started: int,
              site: SiteIds | None = None) -> DemoSummary:
    """Devices online, settled orders of the gateway and their paid revenue, its open alarms
    (blocking)."""
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
    summary = DemoSummary(online=cloud.registry.online_count(), orders_settled=settled,
                          revenue=revenue, sessions_started=started)
    if site is not None:
        online = cloud.registry.is_online
        summary.ykc_online = sum(online(gateway_id, "charger", d) for d in site.ykc)
        summary.ocpp_online = sum(online(gateway_id, "charger", d) for d in site.ocpp)
        summary.modbus_online = sum(online(gateway_id, p, d) for p, d in site.modbus)
    alarms = cloud.alarms.manager.list_alarms(AlarmFilter(
        states=frozenset({State.OPEN, State.ACKNOWLEDGED}), gw=gateway_id), limit=1000)
    summary.alarms_open = [a.type for a in alarms.items]
    return summary


@dataclass(frozen=True)
class SiteIds:
    """The thing ids of the demo site's chargers and Modbus devices (for the summary)."""

    ykc: tuple[str, ...]
    ocpp: tuple[str, ...]
    modbus: tuple[tuple[str, str], ...]  # (product, device)


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
                   operator_every: float | None = None,
                   flood_at: float | None = None) -> DemoSummary:
    """Run the demo; returns what it did (devices online, orders settled, revenue, alarms).

    ``operator_every``: seconds between operator steps (default
    ``VOLTMESH_DEMO_OPERATOR_INTERVAL`` or 20). ``flood_at``: seconds after the start at which
    the water sensor reads wet (None: never).
    """
    interval = operator_interval(operator_every)
    # the ocpp library logs every frame at info: the demo's console shows the platform's logs
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    if flood_at is not None and not flood_at >= 0:
        raise ConfigError(f"--flood-at {flood_at}: seconds >= 0 expected")
    host = "127.0.0.1"
    mqtt_port = port_or_free(host, mqtt_port)
    http_port = port_or_free(host, http_port)
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="voltmesh-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    points = ocpp_points(workdir)
    cloud = CloudService(CloudConfig(
        worker_id="demo-cloud",
        mqtt=CloudMqttConfig(host=host, port=mqtt_port, protocol="auto"),
        database_url=f"sqlite:///{workdir / 'cloud.db'}",
        http=HttpConfig(host=host, port=http_port),
        # development mode: the example JWT secret, a generated platform admin password
        auth=AuthConfig(dev=True),
        # the shipped rules, and the demo's alarms for the interlock and Modbus water sensors
        rules=RulesConfig(paths=[str(CONFIG_DIR / "rules")]),
        # a simulated WeChat-Pay-shaped provider: the seed tops the wallets up through it
        payments=PaymentsConfig(providers={DEMO_PAY_PROVIDER: SimulatedProviderConfig(
            api_key=SecretStr(secrets.token_hex(16)))}),
        # bill an ended session after 2 s (late samples) instead of 5 s
        orders=OrdersConfig(settle_grace=2.0),
    ))
    site_ids = SiteIds(ykc=tuple(p.code for p in DEMO_PILES),
                       ocpp=tuple(p.id for p in points),
                       modbus=tuple((shipped_map(d.map).product, d.id) for d in DEMO_MODBUS))
    sims = SimDevices(host=host, port=mqtt_port, site="site1", cameras=2, sensors=2,
                      interval=2.0)
    operator: Operator | None = None
    piles: list[SimPile] = []
    chargers: list[OcppChargePointSim] = []
    try:
        async with ModbusSite(host) as modbus, embedded_broker(host, mqtt_port):
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
                    ocpp=ocpp_config(host),
                    modbus=modbus.gateway_config(),
                ),
                interlocks=str(interlocks_file(workdir, DEMO_PILES, points)),
            ))
            async with asyncio.TaskGroup() as tg:
                cloud_task = tg.create_task(cloud.run(), name="cloud")
                edge_task = tg.create_task(gateway.run(), name="edge")
                sim_task = tg.create_task(sims.run(), name="sim-devices")
                await cloud.started.wait()
                await cloud.consumer.connected.wait()
                # the operator's tenant, station, chargers, tariff and customers, through the
                # services' APIs; then the gateway's provisioning (desired state)
                seed = await seed_site(cloud, gateway_id=gateway_id, piles=DEMO_PILES,
                                       charge_points=points,
                                       station_name="Demo Station (Shanghai)",
                                       address="1 Century Avenue, Pudong, Shanghai")
                ykc = next(a for a in gateway.adapters if isinstance(a, YkcAdapter))
                ocpp = next(a for a in gateway.adapters if isinstance(a, OcppAdapter))
                await ykc.ready.wait()
                await ocpp.ready.wait()
                piles = [SimPile(PileConfig(pile_code=p.code, guns=p.guns,
                                            pile_type=0 if p.dc else 1,
                                            power_kw=60.0 if p.dc else 7.0,
                                            realtime_interval=5.0, bms_frames=p.dc,
                                            record_retry_interval=10.0, seed=i),
                                 host, ykc.port or 0)
                         for i, p in enumerate(DEMO_PILES)]
                pile_tasks = [pile.start(initial_delay=0.2 * i) for i, pile in enumerate(piles)]
                # an OCPP charger the gateway does not know yet is refused (403, 401 without
                # its password hash): wait for the provisioning (they would retry anyway)
                await _provisioned(gateway, ocpp, [p.id for p in points], timeout=10.0)
                chargers = ocpp_sims(points, host, ocpp.port or 0)
                charger_tasks = [tg.create_task(c.run(), name=f"ocpp-sim-{c.id}")
                                 for c in chargers]
                operator = Operator(cloud, gateway_id, seed, interval, blocked=lambda: (
                    "the cabinet relay is cut (site power off)" if modbus.power_cut()
                    else None))
                operator_task = tg.create_task(operator.run(), name="demo-operator")
                flood_task = tg.create_task(
                    watch_flood(modbus, gateway.interlocks, flood_at)
                    if flood_at is not None else asyncio.sleep(0), name="demo-flood")
                _banner(cloud, seed, workdir, host, mqtt_port, ykc.port, ocpp.port, points,
                        modbus, interval, flood_at)
                if duration is None:
                    print("Ctrl-C stops.", flush=True)
                    await asyncio.Event().wait()
                await asyncio.sleep(duration or 0)
                operator_task.cancel()
                flood_task.cancel()
                await operator.stop_all()
                await _settled(cloud, gateway_id, timeout=30.0)
                summary = await asyncio.to_thread(summarize, cloud, gateway_id,
                                                  operator.started, site_ids)
                print(summary.line(duration), flush=True)
                for pile in piles:
                    await pile.stop()
                for charger in chargers:
                    await charger.close()
                for task in (*pile_tasks, *charger_tasks, sim_task, edge_task, cloud_task):
                    task.cancel()
        return summary
    except asyncio.CancelledError:
        # Ctrl-C: the summary of what happened so far, then the cancellation goes on
        with contextlib.suppress(Exception):
            summary = summarize(cloud, gateway_id, operator.started if operator else 0,
                                site_ids)
            print(summary.line(None), flush=True)
        raise


async def _provisioned(gateway: EdgeGateway, ocpp: OcppAdapter, devices: list[str],
                       timeout: float) -> None:
    """Wait (at most ``timeout``) until the gateway admits the OCPP chargers ``devices``:
    provisioned, with their password hash (each charger's own desired document)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        held = gateway.ctx.provisioned_devices()
        if all(ocpp.provisioned(d) and ocpp.password_sha256(d, held.get(d, {}))
               for d in devices):
            return
        await asyncio.sleep(0.2)
    log.info("demo: the gateway has no provisioning for %s yet; the chargers will retry",
             ", ".join(devices))


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
            ykc_port: int | None, ocpp_port: int | None, points: list[OcppChargePoint],
            modbus: ModbusSite, interval: float, flood_at: float | None) -> None:
    base = f"http://{host}:{cloud.http_port}"
    versions = {"ocpp16": "1.6J", "ocpp201": "2.0.1"}
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
        f"  YKC piles connect to: tcp://{host}:{ykc_port}  "
        f"({', '.join(p.code for p in DEMO_PILES)})",
        f"  OCPP endpoint:        ws://{host}:{ocpp_port}{OCPP_PATH}/{{chargePointId}}  "
        f"(HTTP Basic; " + ", ".join(f"{p.id} OCPP {versions[p.protocol]}" for p in points)
        + ")",
        f"  Modbus site:          {modbus.describe()}",
        f"  interlock:            {INTERLOCK}: {WATER_SENSOR} water == true -> stop charging "
        f"on {len(DEMO_PILES) + len(points)} chargers, then cut {RELAY} (alarm)",
        "  flood:                " + (f"scripted at t+{flood_at:g}s" if flood_at is not None
                                     else "none (--flood-at SECONDS scripts one)"),
        "  customers:            " + ", ".join(
            f"{c.phone} (card {c.physical_card}, wallet {c.balance} CNY)"
            for c in seed.customers),
        f"  operator:             starts a session every {interval:g}s, stops it after "
        f"{2 * interval:g}s",
    ]
    print("\n".join(lines), flush=True)
