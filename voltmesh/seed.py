"""Seed a charging site into a running cloud, through the services' own Python APIs.

:func:`seed_site` creates what a site needs to take paying customers, the way an operator
would through the API, and pushes the gateway's provisioning:

* ``cloud.auth``: an operator tenant below the platform and its operator admin (a login);
* ``cloud.catalog``: a station (lat/lon), the chargers registered on the gateway (YKC piles
  and OCPP charge points) and a 尖峰平谷 tariff version;
* ``cloud.accounts`` / ``cloud.payments``: customers with a wallet topped up (through a
  simulated payment provider when the cloud has one: top-up, the payer pays, the signed notify
  is applied; else a wallet credit) and a card bound to each;
* ``cloud.provisioning.push(gw, cloud.consumer.publish_desired)``.

Idempotent: everything is looked up first (tenant by id, admin by username, station by tenant
and name, chargers by gateway and device id, the tariff by its content, customers by phone,
cards by number) and every top-up carries an idempotency key, so running it again creates
nothing twice (an OCPP charger found with another password than the one given gets the given
one, once); :attr:`SeedResult.created` lists what one run did create. Generic: any gateway
id, any list of YKC piles and OCPP charge points (the demo and the chaos drill share it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from cloud.accounts import idtags
from cloud.auth.errors import AuthError
from cloud.auth.errors import NotFound as AuthNotFound
from cloud.auth.models import TenantKind
from cloud.auth.principal import Role
from cloud.auth.service import SYSTEM, normalize_username
from cloud.billing.errors import TariffError
from cloud.billing.tariff import Tariff
from cloud.catalog.models import Charger, Protocol, Station
from cloud.catalog.provisioning import PushResult
from cloud.errors import CloudError
from cloud.payments.models import IntentStatus, PaymentIntent
from cloud.payments.provider import OrderRequest
from cloud.payments.simulated import SimulatedProvider
from cloud.service import CloudService

log = logging.getLogger("voltmesh.seed")

#: 尖峰平谷 (tip / peak / flat / valley) of the demo site, yuan per kWh; whole hours, so a YKC
#: pile can run it
DEFAULT_TARIFF: dict[str, Any] = {
    "name": "尖峰平谷 2024",
    "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
              "peak": {"energy": "1.0", "service": "0.6"},
              "flat": {"energy": "0.7", "service": "0.6"},
              "valley": {"energy": "0.3", "service": "0.6"}},
    "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                {"start": "08:00", "end": "10:00", "tier": "flat"},
                {"start": "10:00", "end": "11:00", "tier": "tip"},
                {"start": "11:00", "end": "12:00", "tier": "peak"},
                {"start": "12:00", "end": "18:00", "tier": "flat"},
                {"start": "18:00", "end": "21:00", "tier": "peak"},
                {"start": "21:00", "end": "23:00", "tier": "flat"},
                {"start": "23:00", "end": "24:00", "tier": "valley"}],
}


class SeedError(CloudError):
    """The seed could not be applied; the message names the item and the reason."""


@dataclass(frozen=True, slots=True)
class YkcPile:
    """A YKC pile: 14-digit pile code, number of guns, DC or AC, rated power."""

    code: str
    guns: int = 1
    dc: bool = True
    rated_kw: Decimal = Decimal("60")


@dataclass(frozen=True, slots=True)
class OcppChargePoint:
    """An OCPP charge point: chargePointId, connectors, version, HTTP Basic password."""

    id: str
    connectors: int = 1
    protocol: Literal["ocpp16", "ocpp201"] = "ocpp16"
    dc: bool = False
    rated_kw: Decimal = Decimal("7")
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """An app user with a card (physical number as printed; logical number optional) and
    the amount their wallet is topped up with once."""

    phone: str
    card: str
    name: str = ""
    logical_card: str | None = None
    topup: Decimal = Decimal("200.00")


@dataclass(frozen=True, slots=True)
class SeededCustomer:
    """A customer as seeded: ids and the card numbers as the chargers report them."""

    user_id: str
    wallet_id: str
    phone: str
    card_id: str
    physical_card: str  # 16 upper-case hex, what a YKC pile reports
    logical_card: str  # 16 digits
    balance: Decimal
    #: what an app start sends as ``idTag`` (the orders find the payer of an app session by it)
    app_token: str


@dataclass
class SeedResult:
    """What :func:`seed_site` set up (and, in ``created``, what this run created)."""

    tenant_id: str
    admin_username: str
    #: the admin's password as set by this run (generated when none was given)
    admin_password: str
    station: Station
    tariff_id: int
    tariff_version: int
    chargers: list[Charger]
    customers: list[SeededCustomer]
    created: list[str] = field(default_factory=list)
    push: PushResult | None = None

    @property
    def connectors(self) -> list[str]:
        """The connector device ids of the seeded chargers, in charger order."""
        return [c.device_id for charger in self.chargers for c in charger.connectors]


DEFAULT_CUSTOMERS = (
    Customer(phone="13800000001", name="Li Lei", card="D14B0A54",
             logical_card="1000000573"),
    Customer(phone="13800000002", name="Han Meimei", card="D14B0A55",
             logical_card="1000000574"),
)


def _wrap(what: str, exc: Exception) -> SeedError:
    return SeedError(f"seed: {what}: {exc}")


async def seed_site(cloud: CloudService, *, gateway_id: str,
                    piles: Sequence[YkcPile] = (),
                    charge_points: Sequence[OcppChargePoint] = (),
                    tariff: Mapping[str, Any] | None = None,
                    customers: Sequence[Customer] = DEFAULT_CUSTOMERS,
                    tenant_id: str = "demo-operator", tenant_name: str = "Demo Operator",
                    admin_username: str = "operator", admin_password: str | None = None,
                    station_name: str = "Demo Station", lat: float = 31.2304,
                    lon: float = 121.4737, address: str = "",
                    push: bool = True) -> SeedResult:
    """Seed the site (see the module documentation); returns what is there.

    ``admin_password``: None generates one (returned in the result; an existing admin gets it
    too, so the result always holds a working login). With ``push`` the gateway's desired
    state is published now (a failed push stays pending for the provisioning loop).
    Raises :class:`SeedError` for input the services refuse.
    """
    result = await asyncio.to_thread(
        seed_records, cloud, gateway_id=gateway_id, piles=piles, charge_points=charge_points,
        tariff=tariff, customers=customers, tenant_id=tenant_id, tenant_name=tenant_name,
        admin_username=admin_username, admin_password=admin_password,
        station_name=station_name, lat=lat, lon=lon, address=address)
    if push:
        result.push = await cloud.provisioning.push(gateway_id, cloud.consumer.publish_desired)
        if result.push.status != "published" or result.push.problems:
            log.warning("seed: provisioning of %s: %s %s %s", gateway_id, result.push.status,
                        result.push.detail or "", "; ".join(result.push.problems))
    return result


def seed_records(cloud: CloudService, *, gateway_id: str, piles: Sequence[YkcPile] = (),
                 charge_points: Sequence[OcppChargePoint] = (),
                 tariff: Mapping[str, Any] | None = None,
                 customers: Sequence[Customer] = DEFAULT_CUSTOMERS,
                 tenant_id: str = "demo-operator", tenant_name: str = "Demo Operator",
                 admin_username: str = "operator", admin_password: str | None = None,
                 station_name: str = "Demo Station", lat: float = 31.2304,
                 lon: float = 121.4737, address: str = "") -> SeedResult:
    """The blocking part of :func:`seed_site` (no provisioning push); call from a thread."""
    if not piles and not charge_points:
        raise SeedError("seed: give at least one YKC pile or OCPP charge point")
    created: list[str] = []
    _tenant(cloud, tenant_id, tenant_name, created)
    password = _admin(cloud, tenant_id, admin_username, admin_password, created)
    station = _station(cloud, tenant_id, station_name, lat, lon, address, created)
    chargers = _chargers(cloud, station, gateway_id, piles, charge_points, created)
    tariff_id, version = _tariff(cloud, station, dict(tariff or DEFAULT_TARIFF), created)
    seeded = [_customer(cloud, tenant_id, c, created) for c in customers]
    for item in created:
        log.info("seed: created %s", item)
    return SeedResult(tenant_id=tenant_id, admin_username=normalize_username(admin_username),
                      admin_password=password, station=station, tariff_id=tariff_id,
                      tariff_version=version, chargers=chargers, customers=seeded,
                      created=created)


# -- tenancy ------------------------------------------------------------------------------


def _tenant(cloud: CloudService, tenant_id: str, name: str, created: list[str]) -> None:
    auth = cloud.auth
    try:
        auth.get_tenant(SYSTEM, tenant_id)
        return
    except AuthNotFound:
        pass
    platforms = auth.list_tenants(SYSTEM, kind=TenantKind.PLATFORM.value, limit=1)
    if not platforms:
        raise SeedError("seed: no platform tenant (the auth bootstrap has not run)")
    try:
        _, fresh = auth.create_tenant(SYSTEM, name, TenantKind.OPERATOR, platforms[0].id,
                                      tenant_id=tenant_id,
                                      idempotency_key=f"seed:tenant:{tenant_id}")
    except AuthError as exc:
        raise _wrap(f"tenant {tenant_id}", exc) from exc
    if fresh:
        created.append(f"tenant {tenant_id}")


def _admin(cloud: CloudService, tenant_id: str, username: str, password: str | None,
           created: list[str]) -> str:
    auth = cloud.auth
    username = normalize_username(username)
    existing = next((s for s in auth.list_staff(SYSTEM, tenant_id=tenant_id, limit=1000)
                     if s.username == username), None)
    try:
        if existing is None:
            password = password or secrets.token_urlsafe(12)
            auth.create_staff(SYSTEM, tenant_id, username, password, Role.OPERATOR_ADMIN,
                              idempotency_key=f"seed:admin:{tenant_id}:{username}")
            created.append(f"operator admin {username}")
            return password
        if password is None:
            # the stored hash cannot be read back: set a new one so the login is known
            password = secrets.token_urlsafe(12)
            auth.update_staff(SYSTEM, existing.id, password=password)
            return password
        try:
            auth.login(username, password)
        except AuthError:
            auth.update_staff(SYSTEM, existing.id, password=password)
        return password
    except AuthError as exc:
        raise _wrap(f"operator admin {username}", exc) from exc


# -- catalogue ----------------------------------------------------------------------------


def _station(cloud: CloudService, tenant_id: str, name: str, lat: float, lon: float,
             address: str, created: list[str]) -> Station:
    catalog = cloud.catalog
    for station in catalog.list_stations(limit=100_000):
        if station.tenant_id == tenant_id and station.name == name:
            return station
    try:
        station = catalog.create_station(tenant_id=tenant_id, name=name, lat=lat, lon=lon,
                                         address=address)
    except CloudError as exc:
        raise _wrap(f"station {name}", exc) from exc
    created.append(f"station {station.id} ({name})")
    return station


def _chargers(cloud: CloudService, station: Station, gw: str, piles: Sequence[YkcPile],
              charge_points: Sequence[OcppChargePoint], created: list[str]) -> list[Charger]:
    catalog = cloud.catalog
    try:
        known = {c.device_id: c for c in catalog.list_chargers(gateway_id=gw, limit=100_000)}
    except CloudError as exc:
        raise _wrap(f"gateway {gw}", exc) from exc
    wanted: list[tuple[str, dict[str, Any]]] = [
        (p.code, {"protocol": Protocol.YKC.value, "kind": "dc" if p.dc else "ac",
                  "rated_kw": p.rated_kw, "connector_count": p.guns}) for p in piles]
    wanted += [(cp.id, {"protocol": cp.protocol, "kind": "dc" if cp.dc else "ac",
                        "rated_kw": cp.rated_kw, "connector_count": cp.connectors,
                        "password": cp.password}) for cp in charge_points]
    out: list[Charger] = []
    for device, spec in wanted:
        charger = known.get(device)
        if charger is not None:
            if charger.station_id != station.id:
                log.warning("seed: charger %s on %s belongs to station %s, not %s; kept",
                            device, gw, charger.station_id, station.id)
            out.append(_password(cloud, charger, spec.get("password"), created))
            continue
        try:
            charger = catalog.register_charger(station_id=station.id, gateway_id=gw,
                                               device_id=device, **spec)
        except CloudError as exc:
            raise _wrap(f"charger {device}", exc) from exc
        created.append(f"charger {device} ({spec['protocol']}, {spec['connector_count']} "
                       f"connectors) on {gw}")
        out.append(charger)
    return out


def _password(cloud: CloudService, charger: Charger, password: str | None,
              created: list[str]) -> Charger:
    """An existing OCPP charger gets the password given if it holds another one (the
    charger must be able to log in with what the caller configures); none given: kept."""
    if password is None or charger.password_sha256 == \
            hashlib.sha256(password.encode()).hexdigest():
        return charger
    try:
        changed = cloud.catalog.update_charger(charger.id, password=password)
    except CloudError as exc:
        raise _wrap(f"charger {charger.device_id}", exc) from exc
    created.append(f"password of charger {charger.device_id}")
    return changed


def _comparable(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "effective_from"}


def _tariff(cloud: CloudService, station: Station, doc: dict[str, Any],
            created: list[str]) -> tuple[int, int]:
    catalog = cloud.catalog
    doc.pop("effective_from", None)
    try:
        wanted = Tariff.from_doc({**doc, "tz": doc.get("tz", station.tz),
                                  "effective_from": 0}).to_doc()
    except TariffError as exc:
        raise _wrap("tariff", exc) from exc
    held = catalog.tariff_at(station.id, catalog.clock())
    if held is not None and _comparable(held.ref.doc) == _comparable(wanted):
        return held.ref.id, held.ref.version
    try:
        version = catalog.create_tariff(station.id, doc)
    except CloudError as exc:
        raise _wrap(f"tariff of station {station.id}", exc) from exc
    created.append(f"tariff version {version.version} of station {station.id}")
    return version.id, version.version


# -- customers ----------------------------------------------------------------------------


def _customer(cloud: CloudService, tenant_id: str, spec: Customer,
              created: list[str]) -> SeededCustomer:
    accounts = cloud.accounts
    try:
        phone = idtags.phone(spec.phone)
        user = next((u for u in accounts.list_users(tenant_id=tenant_id, phone=phone,
                                                    limit=1000) if u.phone == phone), None)
        if user is None:
            user = accounts.create_user(tenant_id, phone, spec.name)
            created.append(f"customer {user.id} ({phone})")
        card = accounts.find_card(tenant_id, spec.card)
        if card is None:
            card = accounts.issue_card(tenant_id, spec.card, spec.logical_card,
                                       user_id=user.id)
            created.append(f"card {card.physical_no} bound to {user.id}")
        elif card.user_id != user.id:
            card = accounts.bind_card(card.id, user.id)
        _top_up(cloud, user.id, spec.topup, created)
        wallet = accounts.wallet(user.id)
    except CloudError as exc:
        raise _wrap(f"customer {spec.phone}", exc) from exc
    return SeededCustomer(user_id=user.id, wallet_id=wallet.id, phone=phone, card_id=card.id,
                          physical_card=card.physical_no, logical_card=card.logical_no,
                          balance=wallet.balance, app_token=user.app_token)


def _top_up(cloud: CloudService, user_id: str, amount: Decimal, created: list[str]) -> None:
    """Once per user (idempotency key): through a simulated provider if the cloud has one
    (top-up, the payer pays, the signed notify is applied), else a plain wallet credit."""
    if amount <= 0:
        return
    payments = cloud.payments
    name = next((n for n, p in payments.providers.items()
                 if isinstance(p, SimulatedProvider)), None)
    if name is None:
        key = f"seed:topup:{user_id}"
        if cloud.accounts.entry_for_key(key) is None:
            cloud.accounts.credit(user_id, amount, key=key, note="seed top-up")
            created.append(f"wallet credit {amount} for {user_id}")
        return
    intent = payments.create_topup(user_id, amount, name, key="seed-topup")
    if intent.status != IntentStatus.PENDING.value:
        return  # paid already (or closed by the provider): nothing to do
    provider = payments.providers[name]
    assert isinstance(provider, SimulatedProvider)
    if intent.out_trade_no not in provider.trades:
        # the simulator lost its in-memory trade (a new process): ask it again
        provider.create_order(_order_request(intent))
    notify = provider.pay(intent.out_trade_no)
    ack = payments.handle_notify(name, notify.headers, notify.body)
    if ack.status != 200:
        raise SeedError(f"seed: top-up {intent.id} of {user_id}: notify refused "
                        f"({ack.status}: {ack.body!r:.200})")
    created.append(f"top-up {amount} for {user_id} via {name} ({intent.id})")


def _order_request(intent: PaymentIntent) -> OrderRequest:
    return OrderRequest(out_trade_no=intent.out_trade_no, amount=intent.amount,
                        currency=intent.currency, description="voltmesh wallet top-up",
                        notify_url=None)
