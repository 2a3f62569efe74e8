"""voltmesh.seed: a site seeded through the services' APIs, idempotent, on SQLite."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from cloud.auth.config import AuthConfig
from cloud.config import CloudConfig, HttpConfig
from cloud.payments.config import PaymentsConfig, SimulatedProviderConfig
from cloud.payments.models import IntentStatus
from cloud.service import CloudService
from tests.support.tenancy import FAST_HASH
from voltmesh.seed import (
    Customer,
    OcppChargePoint,
    SeedError,
    YkcPile,
    seed_records,
    seed_site,
)

PILES = (YkcPile("32010200000001", guns=2), YkcPile("32010200000003", guns=1, dc=False,
                                                       rated_kw=Decimal("7")))
CHARGE_POINTS = (OcppChargePoint("CP-7", connectors=2, password="secret-cp-7"),)


def make_cloud(db: Path, *, simulated_pay: bool = True) -> CloudService:
    providers = {"wechat-sim": SimulatedProviderConfig(api_key=SecretStr("k" * 32))} \
        if simulated_pay else {}
    return CloudService(CloudConfig(
        database_url=f"sqlite:///{db}", http=HttpConfig(port=0),
        auth=AuthConfig(password_hash=FAST_HASH),
        payments=PaymentsConfig(providers=providers)))


def seed(cloud: CloudService, **kwargs: object) -> object:
    return seed_records(cloud, gateway_id="gw-seed", piles=PILES,
                        charge_points=CHARGE_POINTS, **kwargs)  # type: ignore[arg-type]


def test_seed_twice_creates_nothing_twice(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path / "cloud.db")
    first = seed_records(cloud, gateway_id="gw-seed", piles=PILES, charge_points=CHARGE_POINTS)
    assert any(c.startswith("tenant demo-operator") for c in first.created)
    assert any(c.startswith("station ") for c in first.created)
    assert sum(c.startswith("charger ") for c in first.created) == 3
    assert sum(c.startswith("top-up 200.00") for c in first.created) == 2

    # a second run -- and a run in a new worker on the same database -- finds everything
    again = seed_records(cloud, gateway_id="gw-seed", piles=PILES,
                         charge_points=CHARGE_POINTS)
    other = seed_records(make_cloud(tmp_path / "cloud.db"), gateway_id="gw-seed",
                         piles=PILES, charge_points=CHARGE_POINTS)
    assert again.created == [] and other.created == []
    assert again.station.id == first.station.id == other.station.id
    assert again.tariff_id == first.tariff_id and again.tariff_version == 1
    assert [c.id for c in again.chargers] == [c.id for c in first.chargers]
    assert [c.user_id for c in other.customers] == [c.user_id for c in first.customers]

    assert len(cloud.catalog.list_stations()) == 1
    assert len(cloud.catalog.list_chargers(gateway_id="gw-seed")) == 3
    assert len(cloud.catalog.list_tariffs(first.station.id)) == 1
    assert len(cloud.accounts.list_users(tenant_id="demo-operator")) == 2
    assert len(cloud.accounts.list_cards(tenant_id="demo-operator")) == 2
    for customer in first.customers:
        assert cloud.accounts.balance(customer.user_id) == Decimal("200.00")
        assert cloud.accounts.reconcile(customer.user_id)
        assert [e.kind for e in cloud.accounts.ledger(customer.user_id)] == ["topup"]
        intents = cloud.payments.list_payments(user_id=customer.user_id)
        assert [i.status for i in intents] == [IntentStatus.PAID.value]
    assert first.connectors == ["3201020000000101", "3201020000000102",
                                "3201020000000301", "CP-7-1", "CP-7-2"]


def test_seeded_login_and_gateway_document(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path / "cloud.db", simulated_pay=False)
    result = seed_records(cloud, gateway_id="gw-seed", piles=PILES,
                          charge_points=CHARGE_POINTS)
    token, staff = cloud.auth.login(result.admin_username, result.admin_password)
    assert staff.tenant_id == "demo-operator" and staff.role == "operator_admin" and token
    # without a password given, a rerun sets a new one and hands it out
    again = seed_records(cloud, gateway_id="gw-seed", piles=PILES,
                         charge_points=CHARGE_POINTS)
    assert again.admin_password != result.admin_password
    cloud.auth.login(again.admin_username, again.admin_password)
    # a given password is kept
    fixed = seed_records(cloud, gateway_id="gw-seed", piles=PILES,
                         charge_points=CHARGE_POINTS, admin_password="fixed-password-1")
    assert fixed.created == []
    cloud.auth.login("operator", "fixed-password-1")

    # without a payment provider the wallets are credited once, with a key
    for customer in result.customers:
        assert cloud.accounts.balance(customer.user_id) == Decimal("200.00")
    doc = cloud.provisioning.gateway_desired("gw-seed")
    assert {(d["id"], d["protocol"]) for d in doc["devices"]} == {
        ("32010200000001", "ykc"), ("32010200000003", "ykc"), ("CP-7", "ocpp16")}
    assert "password_sha256" in cloud.provisioning.charger_docs("gw-seed")["CP-7"]
    assert doc["tariff"]["version"] == 1
    cards = {c["physical"] for c in doc["cards"]}
    assert {c.physical_card for c in result.customers} <= cards


def test_changed_tariff_is_a_new_version(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path / "cloud.db", simulated_pay=False)
    first = seed_records(cloud, gateway_id="gw-seed", piles=PILES)
    cheaper = {"tiers": {"flat": {"energy": "0.5", "service": "0.4"}},
               "periods": [{"start": "00:00", "end": "24:00", "tier": "flat"}]}
    second = seed_records(cloud, gateway_id="gw-seed", piles=PILES, tariff=cheaper)
    assert second.created == [f"tariff version 2 of station {first.station.id}"]
    assert seed_records(cloud, gateway_id="gw-seed", piles=PILES, tariff=cheaper).created == []


def test_bad_input_is_refused_with_the_item_named(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path / "cloud.db", simulated_pay=False)
    with pytest.raises(SeedError, match="charger 1234"):
        seed_records(cloud, gateway_id="gw-seed", piles=[YkcPile("1234")])
    with pytest.raises(SeedError, match="customer"):
        seed_records(cloud, gateway_id="gw-seed", piles=PILES,
                     customers=[Customer(phone="13800000009", card="not-a-card")])
    with pytest.raises(SeedError, match="tariff"):
        seed_records(cloud, gateway_id="gw-seed", piles=PILES, tariff={"tiers": {}})
    with pytest.raises(SeedError, match="at least one"):
        seed_records(cloud, gateway_id="gw-seed")


async def test_seed_site_without_broker_leaves_the_push_pending(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path / "cloud.db", simulated_pay=False)
    cloud.provisioning.publish_timeout = 1.0
    result = await seed_site(cloud, gateway_id="gw-seed", piles=PILES)
    assert result.push is not None and result.push.status == "failed"
    assert "gw-seed" in cloud.catalog.dirty_gateways()  # the provisioning loop retries it


def test_ocpp_201_charger_and_a_changed_password(tmp_path: Path) -> None:
    """The demo's OCPP chargers: a 2.0.1 one is seeded with its protocol and EVSE connector
    ids; a password that changed (the demo keeps them per data directory) is set once."""
    cloud = make_cloud(tmp_path / "cloud.db", simulated_pay=False)
    points = [OcppChargePoint("DEMO-AC16", connectors=2, password="first-pass-16"),
              OcppChargePoint("DEMO-DC201", connectors=1, protocol="ocpp201", dc=True,
                              rated_kw=Decimal("60"), password="first-pass-201")]
    first = seed_records(cloud, gateway_id="gw-seed", piles=PILES[:1], charge_points=points)
    assert first.connectors == ["3201020000000101", "3201020000000102", "DEMO-AC16-1",
                                "DEMO-AC16-2", "DEMO-DC201-1"]
    doc = cloud.provisioning.gateway_desired("gw-seed")
    assert ("DEMO-DC201", "ocpp201") in {(d["id"], d["protocol"]) for d in doc["devices"]}
    dc = next(c for c in first.chargers if c.device_id == "DEMO-DC201")
    assert dc.kind == "dc" and dc.rated_kw == Decimal("60")
    before = cloud.provisioning.charger_docs("gw-seed")["DEMO-DC201"]["password_sha256"]

    changed = [points[0], OcppChargePoint("DEMO-DC201", connectors=1, protocol="ocpp201",
                                          dc=True, rated_kw=Decimal("60"),
                                          password="second-pass-201")]
    again = seed_records(cloud, gateway_id="gw-seed", piles=PILES[:1], charge_points=changed)
    assert again.created == ["password of charger DEMO-DC201"]
    after = cloud.provisioning.charger_docs("gw-seed")["DEMO-DC201"]["password_sha256"]
    assert after != before and after == hashlib.sha256(b"second-pass-201").hexdigest()
    assert seed_records(cloud, gateway_id="gw-seed", piles=PILES[:1],
                        charge_points=changed).created == []
    # no password given: the stored one is kept
    bare = [OcppChargePoint("DEMO-DC201", connectors=1, protocol="ocpp201", dc=True)]
    assert seed_records(cloud, gateway_id="gw-seed", charge_points=bare).created == []
    assert cloud.provisioning.charger_docs("gw-seed")["DEMO-DC201"]["password_sha256"] == after
