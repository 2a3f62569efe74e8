"""The catalogue repository on SQLite and PostgreSQL (same tests, same code)."""

from __future__ import annotations

import hashlib
import threading
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine

from cloud.auth.principal import Principal, Role
from cloud.billing import Tier
from cloud.catalog import Catalog, Conflict, InvalidInput, NotFound
from cloud.catalog.repo import connector_device_id, haversine_km

YKC_DOC = {
    "tiers": {"peak": {"energy": "1.0", "service": "0.6"},
              "flat": {"energy": "0.7", "service": "0.6"},
              "valley": {"energy": "0.3", "service": "0.6"}},
    "periods": [{"start": "23:00", "end": "07:00", "tier": "valley"},
                {"start": "07:00", "end": "18:00", "tier": "flat"},
                {"start": "18:00", "end": "23:00", "tier": "peak"}],
}


class Clock:
    """A settable clock (ms)."""

    def __init__(self, now: int = 1_740_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _principal(*tenants: str) -> Principal:
    return Principal(subject="user:1", tenant_id=tenants[0], role=Role.OPERATOR_ADMIN,
                     scopes=frozenset(), visible_tenants=frozenset(tenants))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog(engine: Engine, clock: Clock) -> Catalog:
    return Catalog(engine, clock=clock)


def test_stations_crud_and_validation(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name=" Xuhui P1 ", lat=31.19, lon=121.44,
                               address="Caoxi Rd")
    assert s.name == "Xuhui P1" and s.tz == "Asia/Shanghai" and s.status == "active"
    assert catalog.get_station(s.id) == s
    changed = catalog.update_station(s.id, name="Xuhui P2", status="maintenance")
    assert (changed.name, changed.status, changed.lat) == ("Xuhui P2", "maintenance", 31.19)
    with pytest.raises(InvalidInput, match="lat: 91"):
        catalog.create_station(tenant_id="A", name="x", lat=91, lon=0)
    with pytest.raises(InvalidInput, match="unknown time zone"):
        catalog.create_station(tenant_id="A", name="x", lat=0, lon=0, tz="Asia/Atlantis")
    with pytest.raises(InvalidInput, match="status: 'open'"):
        catalog.update_station(s.id, status="open")
    with pytest.raises(InvalidInput, match="cannot change tenant_id"):
        catalog.update_station(s.id, tenant_id="B")
    with pytest.raises(InvalidInput, match="name: must not be empty"):
        catalog.create_station(tenant_id="A", name="  ", lat=0, lon=0)
    catalog.delete_station(s.id)
    with pytest.raises(NotFound):
        catalog.get_station(s.id)


def test_register_chargers_derives_thing_ids_and_codes(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    ykc = catalog.register_charger(station_id=s.id, gateway_id="gw1",
                                   device_id="32010200000001", protocol="ykc", kind="dc",
                                   rated_kw="120", connector_count=2)
    assert ykc.tenant_id == "A" and ykc.rated_kw == Decimal(120)
    assert [c.device_id for c in ykc.connectors] == ["3201020000000101", "3201020000000102"]
    assert len(ykc.code) == 10 and ykc.code.isdigit()
    assert [c.code for c in ykc.connectors] == [ykc.code + "01", ykc.code + "02"]
    ocpp = catalog.register_charger(station_id=s.id, gateway_id="gw1", device_id="CP-7",
                                    protocol="ocpp16", kind="ac", rated_kw="7.4",
                                    operating_mode="offline_free", code="SH0007",
                                    password="s3cret-pass")
    assert [c.device_id for c in ocpp.connectors] == ["CP-7-1"]
    assert ocpp.code == "SH0007" and ocpp.connectors[0].code == "SH000701"
    assert ocpp.password_sha256 == hashlib.sha256(b"s3cret-pass").hexdigest()
    assert "s3cret" not in repr(ocpp) and ocpp.password_sha256 not in repr(ocpp)
    assert catalog.get_charger(ocpp.id) == ocpp
    assert [c.id for c in catalog.list_chargers(station_id=s.id)] == [ykc.id, ocpp.id]
    assert connector_device_id("ocpp201", "CS1", 2) == "CS1-2"


def test_registration_refuses_bad_input_and_duplicates(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    base = {"station_id": s.id, "gateway_id": "gw1", "kind": "dc", "rated_kw": "60"}
    with pytest.raises(InvalidInput, match="14 digits"):
        catalog.register_charger(**base, device_id="3201", protocol="ykc")
    with pytest.raises(InvalidInput, match="protocol: 'modbus'"):
        catalog.register_charger(**base, device_id="CP1", protocol="modbus")
    with pytest.raises(InvalidInput, match="contains '/'"):
        catalog.register_charger(**base, device_id="CP/1", protocol="ocpp16")
    with pytest.raises(InvalidInput, match="rated_kw"):
        catalog.register_charger(**{**base, "rated_kw": "-5"}, device_id="CP1",
                                 protocol="ocpp16")
    with pytest.raises(InvalidInput, match="connector_count"):
        catalog.register_charger(**base, device_id="CP1", protocol="ocpp16",
                                 connector_count=0)
    with pytest.raises(InvalidInput, match="4-32 letters or digits"):
        catalog.register_charger(**base, device_id="CP1", protocol="ocpp16", code="a b")
    with pytest.raises(InvalidInput, match="password"):
        catalog.register_charger(**base, device_id="CP1", protocol="ocpp16", password="short")
    with pytest.raises(NotFound):
        catalog.register_charger(**{**base, "station_id": "nope"}, device_id="CP1",
                                 protocol="ocpp16")
    catalog.register_charger(**base, device_id="CP1", protocol="ocpp16", code="QR1001",
                             connector_count=2)
    with pytest.raises(Conflict, match="already registered on gateway"):
        catalog.register_charger(**base, device_id="CP1", protocol="ocpp16")
    # the same device id behind another gateway is another charger
    catalog.register_charger(**{**base, "gateway_id": "gw2"}, device_id="CP1",
                             protocol="ocpp16")
    with pytest.raises(Conflict, match="QR1001"):
        catalog.register_charger(**base, device_id="CP2", protocol="ocpp16", code="QR1001")
    # a charger code may not collide with another charger's connector code either
    with pytest.raises(Conflict, match="QR100101"):
        catalog.register_charger(**base, device_id="CP3", protocol="ocpp16", code="QR100101")
    with pytest.raises(Conflict, match="still has chargers"):
        catalog.delete_station(s.id)


def test_resolve_connector_and_codes(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4,
                               tz="Asia/Shanghai")
    ch = catalog.register_charger(station_id=s.id, gateway_id="gw1",
                                  device_id="32010200000001", protocol="ykc", kind="dc",
                                  rated_kw="120", connector_count=2,
                                  operating_mode="offline_billing")
    ref = catalog.resolve_connector("gw1", "3201020000000102")
    assert ref is not None
    assert (ref.tenant_id, ref.station_id, ref.charger_id, ref.number) == ("A", s.id, ch.id, 2)
    assert (ref.tz, ref.operating_mode, ref.protocol, ref.kind, ref.rated_kw) == \
        ("Asia/Shanghai", "offline_billing", "ykc", "dc", Decimal(120))
    assert ref.connector_id == ch.connectors[1].id
    assert ref.charger_device_id == "32010200000001"
    assert catalog.resolve_connector("gw2", "3201020000000102") is None
    assert catalog.resolve_connector("gw1", "32010200000001") is None
    one = catalog.resolve_code(ch.connectors[0].code)
    assert one is not None and one.kind == "connector"
    assert [r.number for r in one.connectors] == [1]
    both = catalog.resolve_code(f" {ch.code} ")
    assert both is not None and both.kind == "charger"
    assert [r.number for r in both.connectors] == [1, 2]
    assert catalog.resolve_code("0000000000") is None
    assert catalog.resolve_code("bad code!") is None


def test_tariff_versions_and_the_one_in_force(catalog: Catalog, clock: Clock) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    assert catalog.tariff_at(s.id, clock.now) is None
    v1 = catalog.create_tariff(s.id, YKC_DOC, name="winter")
    v2 = catalog.create_tariff(s.id, {**YKC_DOC, "tiers": {
        **YKC_DOC["tiers"], "peak": {"energy": "1.1", "service": "0.6"}}},
        effective_from_ms=clock.now + 3_600_000)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.effective_from_ms == clock.now and v1.name == "winter"
    assert v1.doc["tz"] == "Asia/Shanghai" and v1.doc["effective_from"] == clock.now
    assert v1.code != v2.code
    held = catalog.tariff_at(s.id, clock.now + 1)
    assert held is not None
    ref, tariff = held  # unpacks as (stored version, parsed tariff)
    assert ref.id == v1.id and tariff.rate(Tier.PEAK).electricity == Decimal("1.0")
    later = catalog.tariff_at(s.id, clock.now + 3_600_000)
    assert later is not None and later.ref.version == 2
    assert later.tariff.rate("peak").electricity == Decimal("1.1")
    # a session that started before v2 took effect is still billed with v1
    assert catalog.tariff_at(s.id, clock.now + 3_599_999).ref.version == 1  # type: ignore[union-attr]
    assert [t.version for t in catalog.list_tariffs(s.id)] == [2, 1]
    assert catalog.get_tariff(v2.id) == v2
    with pytest.raises(InvalidInput, match="tariff: .*no tier for"):
        catalog.create_tariff(s.id, {"tiers": {"flat": {"energy": "1", "service": "0"}},
                                     "periods": [{"start": "00:00", "end": "12:00",
                                                  "tier": "flat"}]})
    with pytest.raises(NotFound):
        catalog.create_tariff("nope", YKC_DOC)


def test_concurrent_tariff_versions_get_distinct_numbers(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            for _ in range(3):
                catalog.create_tariff(s.id, YKC_DOC)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(t.version for t in catalog.list_tariffs(s.id)) == list(range(1, 13))


def test_ykc_stations_refuse_tariffs_ykc_cannot_express(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    odd = {"tiers": {"flat": {"energy": "1", "service": "0"},
                     "peak": {"energy": "2", "service": "0"}},
           "periods": [{"start": "00:00", "end": "08:10", "tier": "flat"},
                       {"start": "08:10", "end": "24:00", "tier": "peak"}]}
    catalog.create_tariff(s.id, odd)  # no YKC charger yet: the platform bills to the minute
    catalog.register_charger(station_id=s.id, gateway_id="gw1", device_id="32010200000001",
                             protocol="ykc", kind="dc", rated_kw="60")
    with pytest.raises(InvalidInput, match="YKC chargers.*08:10"):
        catalog.create_tariff(s.id, odd)
    assert catalog.create_tariff(s.id, odd, ykc_rounding="majority").ykc_rounding == "majority"


def test_tenant_scope_hides_other_tenants(catalog: Catalog) -> None:
    a = catalog.create_station(tenant_id="A", name="A1", lat=31.2, lon=121.4)
    b = catalog.create_station(tenant_id="B", name="B1", lat=31.2, lon=121.4)
    sub = catalog.create_station(tenant_id="A-agent", name="A2", lat=31.2, lon=121.4)
    cb = catalog.register_charger(station_id=b.id, gateway_id="gw9", device_id="CPB",
                                  protocol="ocpp201", kind="ac", rated_kw="11")
    catalog.create_tariff(b.id, YKC_DOC)
    scope = _principal("A", "A-agent").tenant_clause
    assert {s.id for s in catalog.list_stations(scope=scope)} == {a.id, sub.id}
    assert {s.station.id for s in catalog.nearby(31.2, 121.4, 5, scope=scope)} == {a.id, sub.id}
    with pytest.raises(NotFound):
        catalog.get_station(b.id, scope=scope)
    with pytest.raises(NotFound):
        catalog.get_charger(cb.id, scope=scope)
    with pytest.raises(NotFound):
        catalog.list_tariffs(b.id, scope=scope)
    with pytest.raises(NotFound):
        catalog.register_charger(station_id=b.id, gateway_id="gw1", device_id="X",
                                 protocol="ocpp16", kind="ac", rated_kw="7", scope=scope)
    assert catalog.tariff_at(b.id, catalog.clock(), scope=scope) is None
    assert catalog.list_chargers(scope=scope) == []
    assert catalog.connector_refs(scope=scope) == []
    assert len(catalog.connector_refs()) == 1


def test_nearby_search_by_distance(catalog: Catalog) -> None:
    # People's Square, Shanghai; distances by haversine on the mean Earth radius
    here = (31.2304, 121.4737)
    places = {"bund": (31.2400, 121.4900), "hongqiao": (31.1979, 121.3363),
              "pudong_airport": (31.1443, 121.8083), "hangzhou": (30.2741, 120.1551)}
    ids = {name: catalog.create_station(tenant_id="A", name=name, lat=lat, lon=lon).id
           for name, (lat, lon) in places.items()}
    closed = catalog.create_station(tenant_id="A", name="closed", lat=31.2305, lon=121.4738,
                                    status="closed")
    found = catalog.nearby(*here, 20)
    assert [n.station.name for n in found] == ["bund", "hongqiao"]
    assert found[0].distance_km == pytest.approx(haversine_km(*here, *places["bund"]),
                                                 abs=0.001)
    assert 1.8 < found[0].distance_km < 2.0 and 13.0 < found[1].distance_km < 14.0
    assert [n.station.name for n in catalog.nearby(*here, 40)][-1] == "pudong_airport"
    assert len(catalog.nearby(*here, 200)) == 4
    assert closed.id in {n.station.id for n in catalog.nearby(*here, 1, status=None)}
    assert catalog.nearby(*here, 1) == []
    assert catalog.nearby(*here, 40, limit=1)[0].station.id == ids["bund"]
    with pytest.raises(InvalidInput, match="radius_km"):
        catalog.nearby(*here, 0)


def test_nearby_across_the_antimeridian_and_near_a_pole(catalog: Catalog) -> None:
    fiji = catalog.create_station(tenant_id="A", name="west", lat=-17.0, lon=179.95)
    samoa = catalog.create_station(tenant_id="A", name="east", lat=-17.0, lon=-179.95)
    found = catalog.nearby(-17.0, 179.99, 20)
    assert {n.station.id for n in found} == {fiji.id, samoa.id}
    north = catalog.create_station(tenant_id="A", name="pole", lat=89.9, lon=-100.0)
    assert [n.station.id for n in catalog.nearby(89.95, 80.0, 30)] == [north.id]


def test_free_connectors_from_live_status(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    catalog.register_charger(station_id=s.id, gateway_id="gw1", device_id="32010200000001",
                             protocol="ykc", kind="dc", rated_kw="120", connector_count=2)
    catalog.register_charger(station_id=s.id, gateway_id="gw2", device_id="CP1",
                             protocol="ocpp16", kind="ac", rated_kw="7")
    live = {("gw1", "3201020000000101"): "charging", ("gw1", "3201020000000102"): "available",
            ("gw2", "CP1-1"): "available"}
    free = catalog.free_connectors(s.id, lambda gw, dev: live.get((gw, dev)))
    assert [(r.gateway_id, r.connector_device_id) for r in free] == [
        ("gw1", "3201020000000102"), ("gw2", "CP1-1")]
    live[("gw2", "CP1-1")] = "offline"
    assert len(catalog.free_connectors(s.id, lambda gw, dev: live.get((gw, dev)))) == 1
    assert catalog.free_connectors(s.id, lambda gw, dev: None) == []


def test_update_and_delete_chargers_mark_the_gateway(catalog: Catalog) -> None:
    s = catalog.create_station(tenant_id="A", name="S", lat=31.2, lon=121.4)
    ch = catalog.register_charger(station_id=s.id, gateway_id="gw1", device_id="CP1",
                                  protocol="ocpp16", kind="ac", rated_kw="7")
    assert catalog.dirty_gateways() == ["gw1"]
    generation, pushed = catalog.sync_state("gw1")
    assert (generation, pushed) == (1, 0)
    catalog.mark_pushed("gw1", generation)
    assert catalog.dirty_gateways() == []
    changed = catalog.update_charger(ch.id, operating_mode="offline_free", rated_kw="11",
                                     password="another-secret")
    assert (changed.operating_mode, changed.rated_kw, changed.has_password) == \
        ("offline_free", Decimal(11), True)
    assert catalog.sync_state("gw1") == (2, 1)
    with pytest.raises(InvalidInput, match="cannot change gateway_id"):
        catalog.update_charger(ch.id, gateway_id="gw2")
    catalog.mark_pushed("gw1", 1)  # an older push never moves the mark back
    catalog.mark_pushed("gw1", 2)
    catalog.mark_pushed("gw1", 1)
    assert catalog.sync_state("gw1") == (2, 2)
    other = catalog.create_station(tenant_id="B", name="B", lat=31.2, lon=121.4)
    catalog.register_charger(station_id=other.id, gateway_id="gw1", device_id="CPB",
                             protocol="ocpp16", kind="ac", rated_kw="7")
    catalog.register_charger(station_id=other.id, gateway_id="gw3", device_id="CPC",
                             protocol="ocpp16", kind="ac", rated_kw="7")
    assert catalog.gateway_tenants("gw1") == ["A", "B"]
    assert catalog.gateways_of_tenants(["B"]) == ["gw1", "gw3"]
    assert catalog.gateways_of_tenants([]) == [] and catalog.gateway_tenants("gw9") == []
    catalog.mark_changed(["gw1", "gw3"], "B")
    assert catalog.dirty_gateways() == ["gw1", "gw3"]
    catalog.mark_pushed("gw1", catalog.sync_state("gw1")[0])
    catalog.mark_pushed("gw3", catalog.sync_state("gw3")[0])
    removed = catalog.delete_charger(ch.id)
    assert removed.id == ch.id and catalog.resolve_connector("gw1", "CP1-1") is None
    assert catalog.dirty_gateways() == ["gw1"]
