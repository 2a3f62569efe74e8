"""ONE integrated cloud app for the API contract tests: a :class:`CloudService` on SQLite in a
temporary directory, never started (no broker, no loops); requests go through its ``.app``
in-process with ``httpx.ASGITransport``.

The tenancy of ``tests/support/tenancy.py`` is built in the service's own :class:`AuthService`
(``cloud.auth``), and every business package is seeded through its Python API for tenants A,
agent-under-A and B: a station with a tariff and a charger (catalogue), a customer with a wallet
credit, a card and a vehicle (accounts), a top-up (payments), a charging session (orders, fed
as ``BillSessionEvent`` batches through ``OrderService.process``), an alarm (``AlarmSignal``
through the alarm manager) and a device seen by the registry.

Every seeded row carries a *marker* (an id or a unique string) so a test can tell whose rows a
response body shows without knowing the body's shape.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.actions import AlarmSignal, BillSessionEvent
from cloud.alarms.view import AlarmFilter
from cloud.api.commands import CommandRow, CommandState
from cloud.auth.service import SYSTEM
from cloud.config import CloudConfig
from cloud.service import CloudService
from tests.support.tenancy import Tenancy, build_tenancy, fast_auth_config

REPO = Path(__file__).resolve().parents[3]
SEEDED = ("A", "agentA", "B")  # the tenants that own rows
TARIFF_DOC: dict[str, Any] = {
    "tiers": {"flat": {"energy": "0.80", "service": "0.50"}},
    "periods": [{"start": "00:00", "end": "24:00", "tier": "flat"}],
}
PAYMENT_PROVIDER = "sim"
START_MS = 1_767_000_000_000


@dataclass
class Seeded:
    """The rows of one tenant: ids by kind (for GET by id) and markers (for bodies)."""

    label: str
    tenant_id: str
    ids: dict[str, str] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)

    def add(self, kind: str, value: Any, *, marker: bool = True) -> None:
        self.ids[kind] = str(value)
        if marker:
            self.markers.add(str(value))


@dataclass
class Contract:
    """The integrated app, its tenancy and what was seeded for whom."""

    cloud: CloudService
    world: Tenancy
    seeded: dict[str, Seeded]

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.cloud.app),
                                 base_url="http://api", headers=headers or {}, timeout=60)


def make_cloud(tmp: Path) -> CloudService:
    """A cloud service on SQLite in ``tmp`` with cheap password hashing and a simulated payment
    provider; never started."""
    config = CloudConfig.model_validate({
        "database_url": f"sqlite:///{tmp / 'cloud.db'}",
        "auth": fast_auth_config().model_dump(mode="json"),
        "payments": {"providers": {PAYMENT_PROVIDER: {"api_key": secrets.token_hex(16)}}},
    })
    return CloudService(config, base_dir=REPO)


def _seed(cloud: CloudService, label: str, tenant_id: str, n: int) -> Seeded:
    """One tenant's rows through the packages' Python APIs."""
    uid = secrets.token_hex(4)
    rows = Seeded(label, tenant_id)
    station = cloud.catalog.create_station(tenant_id=tenant_id, name=f"station-{label}-{uid}",
                                           lat=31.2 + n / 100, lon=121.5, tz="Asia/Shanghai")
    rows.add("station", station.id)
    rows.markers.add(station.name)
    gw, cp = f"gw-{label.lower()}-{uid}", f"CP{label}{uid}"
    charger = cloud.catalog.register_charger(
        station_id=station.id, gateway_id=gw, device_id=cp, protocol="ocpp16", kind="ac",
        rated_kw="22", connector_count=1)
    rows.add("charger", charger.id)
    rows.add("gateway", gw)
    rows.add("cp", cp)
    connector = cloud.catalog.connector_refs(station_id=station.id)[0]
    rows.add("connector", connector.connector_id)
    tariff = cloud.catalog.create_tariff(station.id, dict(TARIFF_DOC), effective_from_ms=0)
    rows.add("tariff", tariff.id, marker=False)  # a small integer: no marker

    phone = f"13{n}{secrets.randbelow(10**8):08d}"
    user = cloud.accounts.create_user(tenant_id, phone, f"driver-{label}-{uid}")
    rows.add("user", user.id)
    rows.markers.add(phone)
    cloud.accounts.credit(user.id, Decimal("100.00"), key=f"seed-topup:{user.id}")
    card_no = f"{secrets.randbelow(16**12):012X}C{n}00"
    card = cloud.accounts.issue_card(tenant_id, card_no, user_id=user.id)
    rows.add("card", card.id)
    rows.markers.add(card_no)
    vin = f"LVSHC{n}{secrets.token_hex(4).upper()}{secrets.randbelow(10**3):03d}"[:17]
    vehicle = cloud.accounts.add_vehicle(user.id, vin=vin)
    rows.add("vehicle", vehicle.id)
    rows.markers.add(vin)

    intent = cloud.payments.create_topup(user.id, Decimal("20.00"), PAYMENT_PROVIDER,
                                         key=f"seed-{uid}")
    rows.add("payment", intent.id)
    rows.markers.add(intent.out_trade_no)

    device = f"{cp}-1"
    session = f"{n}{secrets.randbelow(10**6)}"
    t0 = START_MS + n * 10_000_000

    def ev(name: str, params: dict[str, Any], ts: int) -> BillSessionEvent:
        msg = f"01SEED{uid.upper()}{name[:6].upper()}{n:04d}"
        return BillSessionEvent(rule="billing", key=f"{msg}:billing:0", gw=gw,
                                product="connector", device=device, name=name, params=params,
                                msg_id=msg, ts_ms=ts)

    cloud.orders.process([
        ev("sessionStarted", {"sessionId": session, "seq": 0, "idTag": user.app_token,
                              "idType": "unknown", "meterStart": Decimal("100.000")}, t0),
        ev("sessionEnded", {"sessionId": session, "seq": 1, "energy": Decimal("10.000"),
                            "meterStart": Decimal("100.000"), "meterStop": Decimal("110.000"),
                            "reason": "Local", "idTag": user.app_token, "startedAt": t0,
                            "endedAt": t0 + 3_600_000}, t0 + 3_600_000),
    ])
    order_id = cloud.orders.order_ids(gw, device, session)
    assert order_id is not None, f"no order for {label}'s seeded session"
    rows.add("order", order_id, marker=False)  # an integer: the gw marker covers it

    cloud.alarms.manager.process([AlarmSignal(
        rule="seed", key=f"seed-{uid}:alarm:0", type="overTemperature",
        dedupe=f"overTemperature:{gw}/connector/{device}", active=True, level="major", gw=gw,
        product="connector", device=device, ts_ms=t0, message=f"hot on {device}")])
    alarm = cloud.alarms.manager.list_alarms(AlarmFilter(gw=gw)).items[0]
    rows.add("alarm", alarm.id)

    command = CommandRow(
        id=f"cmd{uid}{n}", tenant_id=tenant_id, requester_tenant_id=tenant_id,
        requested_by="seed", idempotency_key=f"seed-{uid}", fingerprint="seed", kind="reboot",
        gateway_id=gw, product="charger", device=cp, service="reboot", params={},
        charger_id=charger.id, state=CommandState.SUCCEEDED.value, created_ms=t0)
    cloud.app.state.command_store.create(command)
    rows.add("command", command.id)

    cloud.registry.seen(gw, "connector", device, t0, {"status": "available"})
    cloud.registry.flush()
    return rows


def _tenancy_markers(world: Tenancy, label: str, rows: Seeded) -> None:
    """Staff usernames, API key ids are rows of the tenant too."""
    for (who, _role), login in world.users.items():
        if who == label:
            rows.markers.add(login.username)
            rows.ids.setdefault("staff", str(login.user_id))
    for (who, _kind), key in world.keys.items():
        if who == label:
            rows.markers.add(key.key.split("_")[1])  # the prefix, shown in lists
            rows.ids.setdefault("apikey", str(key.id))
    rows.ids["tenant"] = world.tenant(label)
    rows.markers.add(world.service.get_tenant(SYSTEM, world.tenant(label)).name)


def build_contract(tmp: Path) -> Contract:
    """A cloud service in ``tmp`` with tenants A, agent-of-A and B seeded."""
    cloud = make_cloud(tmp)
    world = build_tenancy(cloud.auth)
    seeded: dict[str, Seeded] = {}
    for n, label in enumerate(SEEDED, start=1):
        rows = _seed(cloud, label, world.tenant(label), n)
        _tenancy_markers(world, label, rows)
        seeded[label] = rows
    return Contract(cloud, world, seeded)


@pytest.fixture(scope="session")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """The integrated app with tenants A, agent-of-A and B seeded (read-only use: the fuzzer
    has its own, see test_openapi_fuzz.py)."""
    built = build_contract(tmp_path_factory.mktemp("api-contract"))
    yield built
    built.cloud.engine.dispose()


@pytest.fixture
async def client_for(contract: Contract) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """``client_for(headers)``: an in-process client (closed after the test)."""
    clients: list[httpx.AsyncClient] = []

    def make(headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        c = contract.client(headers)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()
