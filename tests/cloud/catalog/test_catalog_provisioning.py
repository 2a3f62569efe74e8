"""Provisioning: the desired documents built from the catalogue, pending pushes, and a real
push through a broker to a real edge gateway (YKC and OCPP adapters)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bridges.ykc.mapper import billing_model_from_doc
from bridges.ykc.tariff import billing_model_prices
from cloud.catalog import Catalog
from cloud.catalog.provisioning import Provisioning
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.errors import CommandError
from cloud.registry import make_engine
from cloud.service import CloudService
from edge.adapters.ocpp import OcppAdapter, password_hash
from edge.adapters.ykc import YkcAdapter
from edge.config import (
    AdaptersConfig,
    GatewayConfig,
    MqttConfig,
    OcppConfig,
    OutboxConfig,
    YkcConfig,
)
from edge.runtime import EdgeGateway
from tests.support.net import eventually

PILE_A = "32010200000001"
PILE_B = "32010200000002"


def _doc(peak: str) -> dict[str, Any]:
    return {"tiers": {"peak": {"energy": peak, "service": "0.6"},
                      "flat": {"energy": "0.7", "service": "0.6"},
                      "valley": {"energy": "0.3", "service": "0.6"}},
            "periods": [{"start": "23:00", "end": "07:00", "tier": "valley"},
                        {"start": "07:00", "end": "18:00", "tier": "flat"},
                        {"start": "18:00", "end": "23:00", "tier": "peak"}]}


class Published:
    """A publish_desired that keeps what it was given (and can be told to fail)."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, str, str, dict[str, Any]]] = []
        self.fail: Exception | None = None

    async def __call__(self, gw: str, product: str, device: str, doc: dict[str, Any]) -> int:
        if self.fail is not None:
            raise self.fail
        self.docs.append((gw, product, device, doc))
        return int(doc["version"])

    def of(self, product: str, device: str) -> dict[str, Any]:
        return [d for _, p, dev, d in self.docs if (p, dev) == (product, device)][-1]


class Clock:
    def __init__(self, now: int = 1_740_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_gateway_document_lists_chargers_and_tariffs(engine: Engine) -> None:
    catalog = Catalog(engine)
    main = catalog.create_station(tenant_id="A", name="main", lat=31.2, lon=121.4)
    other = catalog.create_station(tenant_id="A", name="other", lat=31.3, lon=121.5)
    catalog.create_tariff(main.id, _doc("1.0"), effective_from_ms=0)
    catalog.create_tariff(other.id, _doc("1.5"), effective_from_ms=0)
    for pile, station in ((PILE_A, main), ("32010200000003", main), (PILE_B, other)):
        catalog.register_charger(station_id=station.id, gateway_id="gw1", device_id=pile,
                                 protocol="ykc", kind="dc", rated_kw="120", connector_count=2)
    catalog.register_charger(station_id=main.id, gateway_id="gw1", device_id="CP-7",
                             protocol="ocpp16", kind="ac", rated_kw="7", password="s3cret-pass")
    catalog.register_charger(station_id=main.id, gateway_id="gw2", device_id="CP-8",
                             protocol="ocpp201", kind="ac", rated_kw="7")
    provisioning = Provisioning(catalog)
    provisioning.add_part("cards", lambda gw: [{"physical": "D14B0A54"}] if gw == "gw1" else None)
    with pytest.raises(ValueError, match="belongs to the catalogue"):
        provisioning.add_part("devices", lambda gw: [])
    doc = provisioning.gateway_desired("gw1")
    devices = {d["id"]: d for d in doc["devices"]}
    assert set(devices) == {PILE_A, PILE_B, "32010200000003", "CP-7"}
    # the gateway document holds what admission needs; the rest is in each charger's own
    assert devices[PILE_A] == {"id": PILE_A, "protocol": "ykc"}  # product: charger (default)
    assert devices["CP-7"] == {"id": "CP-7", "protocol": "ocpp16"}
    assert doc["cards"] == [{"physical": "D14B0A54"}]
    # the gateway default is the tariff of the station with most YKC chargers here (main)
    gateway_model = billing_model_from_doc(doc["tariff"])
    assert billing_model_prices(gateway_model)[1].electricity == 1
    # each pile gets its own station's tariff
    docs = provisioning.charger_docs("gw1")
    assert set(docs) == {PILE_A, PILE_B, "32010200000003", "CP-7"}
    assert docs[PILE_A] | {"station": "-", "tariff": None} == {
        "kind": "dc", "connectors": 2, "ratedKw": "120", "mode": "online_billing",
        "station": "-", "tariff": None}
    assert docs["CP-7"]["password_sha256"] == password_hash("s3cret-pass")
    assert "password_sha256" not in docs[PILE_A] and "tariff" not in docs["CP-7"]
    model_b = billing_model_from_doc(docs[PILE_B]["tariff"])
    assert billing_model_prices(model_b)[1].electricity == Decimal("1.5")
    assert model_b.model_code != gateway_model.model_code
    assert model_b.slots == (3,) * 14 + (2,) * 22 + (1,) * 10 + (3,) * 2
    # an OCPP-only gateway gets no tariff; a charger without a password has no hash
    assert "tariff" not in provisioning.gateway_desired("gw2")
    assert "password_sha256" not in provisioning.charger_docs("gw2")["CP-8"]


async def test_pushes_stay_pending_until_they_succeed(engine: Engine) -> None:
    catalog = Catalog(engine)
    provisioning = Provisioning(catalog)
    station = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    catalog.register_charger(station_id=station.id, gateway_id="gw1", device_id=PILE_A,
                             protocol="ykc", kind="dc", rated_kw="60")
    skipped = await provisioning.push("gw1", None)
    assert skipped.status == "skipped" and catalog.dirty_gateways() == ["gw1"]
    publish = Published()
    publish.fail = CommandError("broker down")
    failed = await provisioning.sync(publish)
    assert [r.status for r in failed] == ["failed"] and "broker down" in str(failed[0].detail)
    assert catalog.dirty_gateways() == ["gw1"]
    publish.fail = None
    done = await provisioning.sync(publish)
    assert [(r.gateway, r.status) for r in done] == [("gw1", "published")]
    # no tariff yet: the gateway document and the pile's (without a tariff), and it is said
    assert done[0].documents == ["gateway/gw1", f"charger/{PILE_A}"]
    assert "tariff" not in publish.of("charger", PILE_A)
    assert any("no tariff in force" in p for p in done[0].problems)
    assert catalog.dirty_gateways() == [] and await provisioning.sync(publish) == []
    versions = [d["version"] for *_, d in publish.docs]
    assert versions == sorted(set(versions))


async def test_tariffs_are_announced_when_they_come_into_force(engine: Engine) -> None:
    clock = Clock()
    catalog = Catalog(engine, clock=clock)
    provisioning = Provisioning(catalog)
    publish = Published()
    station = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    catalog.register_charger(station_id=station.id, gateway_id="gw1", device_id=PILE_A,
                             protocol="ykc", kind="dc", rated_kw="60")
    catalog.register_charger(station_id=station.id, gateway_id="gw2", device_id=PILE_B,
                             protocol="ykc", kind="dc", rated_kw="60")
    v1 = catalog.create_tariff(station.id, _doc("1.0"))
    await provisioning.sync(publish)
    assert publish.of("charger", PILE_A)["tariff"]["code"] == f"{v1.code:04d}"
    v2 = catalog.create_tariff(station.id, _doc("1.2"), effective_from_ms=clock.now + 60_000)
    publish.docs.clear()
    assert await provisioning.sync(publish) == []  # not in force yet
    clock.now += 60_000
    results = await provisioning.sync(publish)
    assert sorted(r.gateway for r in results) == ["gw1", "gw2"]
    for pile in (PILE_A, PILE_B):
        tariff = publish.of("charger", pile)["tariff"]
        assert tariff["code"] == f"{v2.code:04d}" and tariff["version"] == 2
        assert tariff["tiers"]["peak"]["energy"] == "1.20000"
    assert await provisioning.sync(publish) == []


async def test_a_real_gateway_admits_provisioned_chargers_and_runs_the_tariff(
        amqtt_broker: int, tmp_path: Path) -> None:
    cloud = CloudService(CloudConfig(mqtt=CloudMqttConfig(port=amqtt_broker),
                                     database_url=f"sqlite:///{tmp_path / 'c.db'}",
                                     http=HttpConfig(port=0)))
    gateway = EdgeGateway(GatewayConfig(
        gateway_id="gw1", mqtt=MqttConfig(port=amqtt_broker),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0), ocpp=OcppConfig(port=0))))
    ykc = next(a for a in gateway.adapters if isinstance(a, YkcAdapter))
    ocpp = next(a for a in gateway.adapters if isinstance(a, OcppAdapter))
    catalog = Catalog(make_engine(f"sqlite:///{tmp_path / 'catalog.db'}"))
    provisioning = Provisioning(catalog)
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(gateway.run())]
    try:
        await cloud.started.wait()
        await eventually(cloud.consumer.connected.is_set, timeout=30)
        await eventually(gateway.ctx.cloud_connected.is_set, timeout=30)
        await eventually(lambda: ykc.ctx is not None and ocpp.ctx is not None, timeout=30)
        station = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
        catalog.create_tariff(station.id, _doc("1.0"))
        catalog.register_charger(station_id=station.id, gateway_id="gw1", device_id=PILE_A,
                                 protocol="ykc", kind="dc", rated_kw="120", connector_count=2)
        catalog.register_charger(station_id=station.id, gateway_id="gw1", device_id="CP-7",
                                 protocol="ocpp16", kind="ac", rated_kw="7",
                                 password="s3cret-pass")
        assert not ykc.provisioned(PILE_A) and not ocpp.provisioned("CP-7")
        result = await provisioning.sync(cloud.consumer.publish_desired)
        assert [r.status for r in result] == ["published"]
        await eventually(lambda: ykc.provisioned(PILE_A) and ocpp.provisioned("CP-7"),
                         timeout=30)
        await eventually(lambda: ocpp.password_sha256("CP-7", {}) == password_hash(
            "s3cret-pass"), timeout=30)
        await eventually(lambda: gateway.ctx.desired("charger", PILE_A) is not None, timeout=30)
        model = ykc.model_for(PILE_A)
        assert model is not None
        assert billing_model_prices(model)[1].electricity == Decimal(1)
        first_code = model.model_code
        # a new price: pushed to the station's gateway, the pile's model changes code
        catalog.create_tariff(station.id, _doc("1.25"))
        await provisioning.push_station(station.id, cloud.consumer.publish_desired)

        def new_model() -> Any:
            held = ykc.model_for(PILE_A)
            return held if held is not None and held.model_code != first_code else None

        changed = await eventually(new_model, timeout=30)
        assert billing_model_prices(changed)[1].electricity == Decimal("1.25")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_loop_retries_until_the_broker_takes_the_push(engine: Engine) -> None:
    catalog = Catalog(engine)
    provisioning = Provisioning(catalog, publish_timeout=0.2)
    station = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    catalog.register_charger(station_id=station.id, gateway_id="gw1", device_id="CP-1",
                             protocol="ocpp16", kind="ac", rated_kw="7")
    calls = 0
    published: list[str] = []
    never = asyncio.Event()

    async def flaky(gw: str, product: str, device: str, doc: dict[str, Any]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await never.wait()  # a broker that never acknowledges: the timeout ends it
        if calls == 2:
            raise RuntimeError("connection reset")
        published.append(f"{product}/{device}")
        return int(doc["version"])

    first = await provisioning.push("gw1", flaky)
    assert first.status == "failed" and "TimeoutError" in str(first.detail)
    loop = asyncio.create_task(provisioning.run(flaky, interval=0.05))
    try:
        await eventually(lambda: catalog.dirty_gateways() == [], timeout=30)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert calls >= 3 and published[0] == "gateway/gw1"
