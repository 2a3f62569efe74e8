"""The catalogue API over ASGI: tenant filtering, scopes, error bodies, provisioning pushes and
live status from a real device registry (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cloud.auth.principal import ROLE_SCOPES, FixedAuthenticator, Principal, Role
from cloud.catalog import Catalog
from cloud.catalog.api import router
from cloud.registry import DeviceRegistry

PILE = "32010200000001"
DOC = {"tiers": {"flat": {"energy": "0.7", "service": "0.6"},
                 "valley": {"energy": "0.3", "service": "0.6"}},
       "periods": [{"start": "23:00", "end": "07:00", "tier": "valley"},
                   {"start": "07:00", "end": "23:00", "tier": "flat"}]}


def principal(tenant: str = "A", *, visible: tuple[str, ...] = ("A", "A-agent"),
              role: Role = Role.OPERATOR_ADMIN) -> Principal:
    return Principal(subject="user:1", tenant_id=tenant, role=role, scopes=ROLE_SCOPES[role],
                     visible_tenants=frozenset(visible))


class Published:
    """publish_desired that keeps the documents."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, str, str, dict[str, Any]]] = []

    async def __call__(self, gw: str, product: str, device: str, doc: dict[str, Any]) -> int:
        self.docs.append((gw, product, device, doc))
        return int(doc["version"])


class World:
    def __init__(self, engine: Engine) -> None:
        self.app = FastAPI()
        self.app.include_router(router)
        self.catalog = Catalog(engine)
        self.registry = DeviceRegistry(engine)
        self.published = Published()
        self.app.state.catalog = self.catalog
        self.app.state.registry = self.registry
        self.app.state.publish_desired = self.published
        self.as_user(principal())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                        base_url="http://test")

    def as_user(self, who: Principal) -> None:
        self.app.state.authenticator = FixedAuthenticator(who)


@pytest.fixture
async def world(engine: Engine) -> AsyncIterator[World]:
    w = World(engine)
    async with w.client:
        yield w


async def _station(world: World, **body: Any) -> dict[str, Any]:
    r = await world.client.post("/api/v1/stations", json={"name": "S", "lat": 31.2304,
                                                           "lon": 121.4737, **body})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_stations_are_created_only_in_visible_tenants_and_listed_by_tenant(
        world: World) -> None:
    a = await _station(world, name="A1")
    assert a["tenant_id"] == "A" and a["tz"] == "Asia/Shanghai"
    agent = await _station(world, name="A2", tenant_id="A-agent", lat=31.24, lon=121.49)
    r = await world.client.post("/api/v1/stations", json={"name": "X", "lat": 0, "lon": 0,
                                                           "tenant_id": "B"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    world.as_user(principal("B", visible=("B",)))
    b = await _station(world, name="B1", lat=31.2305, lon=121.4738)
    assert b["tenant_id"] == "B"
    world.as_user(principal())
    listed = (await world.client.get("/api/v1/stations")).json()
    assert {s["id"] for s in listed["items"]} == {a["id"], agent["id"]}
    near = (await world.client.get("/api/v1/stations", params={
        "lat": 31.2304, "lon": 121.4737, "radius_km": 5})).json()
    assert [s["id"] for s in near["items"]] == [a["id"], agent["id"]]  # B1 is closer but not ours
    assert near["items"][0]["distance_km"] == 0 and 1.5 < near["items"][1]["distance_km"] < 2.5
    r = await world.client.get(f"/api/v1/stations/{b['id']}")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await world.client.patch(f"/api/v1/stations/{b['id']}", json={"name": "mine"})
    assert r.status_code == 404
    r = await world.client.delete(f"/api/v1/stations/{b['id']}")
    assert r.status_code == 404
    r = await world.client.patch(f"/api/v1/stations/{a['id']}", json={"status": "maintenance"})
    assert r.status_code == 200 and r.json()["status"] == "maintenance"
    platform = Principal(subject="user:0", tenant_id="P", role=Role.PLATFORM_ADMIN,
                         scopes=ROLE_SCOPES[Role.PLATFORM_ADMIN], visible_tenants=None)
    world.as_user(platform)
    assert (await world.client.get("/api/v1/stations")).json()["count"] == 3


async def test_errors_have_one_shape(world: World) -> None:
    r = await world.client.get("/api/v1/stations", params={"lat": 31})
    assert r.status_code == 400 and r.json() == {
        "error": "bad_request", "detail": "a nearby search needs lat, lon and radius_km"}
    r = await world.client.post("/api/v1/stations", json={"name": "S", "lat": 95, "lon": 0})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert "lat" in r.json()["detail"]
    r = await world.client.post("/api/v1/stations", json={"name": "S", "lat": 1, "lon": 0,
                                                           "colour": "red"})
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    r = await world.client.post("/api/v1/stations", json={"name": "S", "lat": 1, "lon": 0,
                                                           "tz": "Mars/Base"})
    assert r.status_code == 400 and "unknown time zone" in r.json()["detail"]
    world.as_user(principal(role=Role.READ_ONLY))
    r = await world.client.post("/api/v1/stations", json={"name": "S", "lat": 1, "lon": 0})
    assert r.status_code == 403 and r.json() == {"error": "forbidden",
                                                 "detail": "missing scope stations:write"}
    del world.app.state.authenticator
    r = await world.client.get("/api/v1/stations")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    world.as_user(principal())
    del world.app.state.catalog
    r = await world.client.get("/api/v1/stations")
    assert r.status_code == 503 and r.json()["error"] == "unavailable"


async def test_registering_a_charger_provisions_its_gateway(world: World) -> None:
    station = await _station(world)
    r = await world.client.post("/api/v1/stations/" + station["id"] + "/tariffs",
                                json={"doc": DOC, "name": "2025"})
    assert r.status_code == 201, r.text
    tariff = r.json()
    assert tariff["tariff"]["version"] == 1 and tariff["push"]["status"] == "none"
    r = await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gw1", "device_id": PILE, "protocol": "ykc",
        "kind": "dc", "rated_kw": "120", "connector_count": 2})
    assert r.status_code == 201, r.text
    body = r.json()
    charger = body["charger"]
    assert charger["start_methods"] == ["app", "card", "vin"]
    assert [c["device_id"] for c in charger["connectors"]] == [PILE + "01", PILE + "02"]
    assert body["push"]["status"] == "published"
    assert body["push"]["gateways"][0]["documents"] == ["gateway/gw1", f"charger/{PILE}"]
    gw_doc = next(d for gw, p, dev, d in world.published.docs if p == "gateway")
    assert [d["id"] for d in gw_doc["devices"]] == [PILE]
    assert gw_doc["tariff"]["code"] == f"{tariff['tariff']['id'] % 10000:04d}"
    # the same device twice on one gateway: 409; a station of another tenant: 404
    r = await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gw1", "device_id": PILE, "protocol": "ykc",
        "kind": "dc", "rated_kw": "120"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    world.as_user(principal("B", visible=("B",)))
    r = await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gwB", "device_id": "CP1",
        "protocol": "ocpp16", "kind": "ac", "rated_kw": "7"})
    assert r.status_code == 404
    assert (await world.client.get("/api/v1/chargers")).json()["count"] == 0
    r = await world.client.get(f"/api/v1/chargers/{charger['id']}")
    assert r.status_code == 404
    r = await world.client.get(f"/api/v1/codes/{charger['code']}")
    assert r.status_code == 404


async def test_without_a_broker_the_push_is_skipped_and_said_so(world: World) -> None:
    world.app.state.publish_desired = None
    station = await _station(world)
    r = await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gw1", "device_id": "CP-1",
        "protocol": "ocpp201", "kind": "ac", "rated_kw": "11", "password": "p4ssword!"})
    assert r.status_code == 201
    assert r.json()["push"]["status"] == "skipped"
    assert "no broker" in r.json()["push"]["gateways"][0]["detail"]
    assert world.catalog.dirty_gateways() == ["gw1"]  # the provisioning loop will push it
    assert r.json()["charger"]["has_password"] is True
    assert "password" not in r.text.replace("has_password", "")


async def test_live_status_and_free_connectors(world: World) -> None:
    station = await _station(world)
    r = await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gw1", "device_id": PILE, "protocol": "ykc",
        "kind": "dc", "rated_kw": "120", "connector_count": 2})
    charger = r.json()["charger"]
    assert charger["online"] is None
    assert [c["status"] for c in charger["connectors"]] == [None, None]
    # the registry learns presence and status from the gateway's messages
    reg = world.registry
    reg.presence("gw1", "gateway", "gw1", True, 1, 1000)
    reg.presence("gw1", "charger", PILE, True, 1, 1000)
    reg.presence("gw1", "connector", PILE + "01", True, 1, 1000)
    reg.seen("gw1", "connector", PILE + "01", 1000, {"status": "available"})
    reg.presence("gw1", "connector", PILE + "02", True, 1, 1000)
    reg.seen("gw1", "connector", PILE + "02", 1000, {"status": "charging"})
    reg.flush()
    got = (await world.client.get(f"/api/v1/chargers/{charger['id']}")).json()
    assert got["online"] is True
    assert [c["status"] for c in got["connectors"]] == ["available", "charging"]
    free = (await world.client.get(f"/api/v1/stations/{station['id']}/connectors/free")).json()
    assert [c["device_id"] for c in free["items"]] == [PILE + "01"]
    listed = (await world.client.get("/api/v1/connectors",
                                     params={"charger_id": charger["id"]})).json()
    assert [c["status"] for c in listed["items"]] == ["available", "charging"]
    one = (await world.client.get(f"/api/v1/connectors/{listed['items'][0]['id']}")).json()
    assert one["status"] == "available"
    reg.presence("gw1", "gateway", "gw1", False, 1, 2000)  # the gateway's Will
    reg.flush()
    got = (await world.client.get(f"/api/v1/chargers/{charger['id']}")).json()
    assert [c["status"] for c in got["connectors"]] == ["offline", "offline"]
    free = (await world.client.get(f"/api/v1/stations/{station['id']}/connectors/free")).json()
    assert free["count"] == 0
    code = (await world.client.get(f"/api/v1/codes/{charger['connectors'][1]['code']}")).json()
    assert code["kind"] == "connector" and code["connectors"][0]["number"] == 2


async def test_tariff_versions_through_the_api(world: World) -> None:
    station = await _station(world)
    await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gw1", "device_id": PILE, "protocol": "ykc",
        "kind": "dc", "rated_kw": "60"})
    world.published.docs.clear()
    base = f"/api/v1/stations/{station['id']}"
    r = await world.client.post(f"{base}/tariffs", json={"doc": DOC})
    assert r.status_code == 201
    assert r.json()["push"]["status"] == "published"
    assert [(p, dev) for _, p, dev, _ in world.published.docs] == [("gateway", "gw1"),
                                                                   ("charger", PILE)]
    v1 = r.json()["tariff"]
    r = await world.client.post(f"{base}/tariffs", json={"doc": {
        "tiers": {"flat": {"energy": "1", "service": "0"}},
        "periods": [{"start": "00:00", "end": "12:00", "tier": "flat"}]}})
    assert r.status_code == 400 and "no tier for 12:00-24:00" in r.json()["detail"]
    r = await world.client.post(f"{base}/tariffs", json={"doc": {
        "tiers": {"flat": {"energy": "1", "service": "0"},
                  "peak": {"energy": "2", "service": "0"}},
        "periods": [{"start": "00:00", "end": "09:15", "tier": "flat"},
                    {"start": "09:15", "end": "24:00", "tier": "peak"}]}})
    assert r.status_code == 400 and "YKC" in r.json()["detail"]
    future = v1["effective_from"] + 10 * 86_400_000
    r = await world.client.post(f"{base}/tariffs", json={"doc": DOC,
                                                         "effective_from": future})
    assert r.status_code == 201 and r.json()["push"]["status"] == "none"
    listed = (await world.client.get(f"{base}/tariffs")).json()
    assert [t["version"] for t in listed["items"]] == [2, 1]
    now = (await world.client.get(f"{base}/tariff")).json()
    assert now["version"] == 1 and now["doc"]["tiers"]["flat"]["energy"] == "0.70000"
    later = (await world.client.get(f"{base}/tariff", params={"at": future})).json()
    assert later["version"] == 2
    r = await world.client.get(f"{base}/tariff", params={"at": 5})
    assert r.status_code == 404
    assert (await world.client.get(f"/api/v1/tariffs/{v1['id']}")).json() == v1
    world.published.docs.clear()
    r = await world.client.post(f"{base}/tariffs/push")
    assert r.status_code == 200 and r.json()["status"] == "published"
    assert len(world.published.docs) == 2
    world.as_user(principal("B", visible=("B",)))
    assert (await world.client.get(f"/api/v1/tariffs/{v1['id']}")).status_code == 404
    assert (await world.client.get(f"{base}/tariffs")).status_code == 404
    assert (await world.client.post(f"{base}/tariffs/push")).status_code == 404
    r = await world.client.post(f"{base}/tariffs", json={"doc": DOC})
    assert r.status_code == 404


async def test_changing_and_removing_chargers(world: World) -> None:
    station = await _station(world)
    r = await world.client.post("/api/v1/chargers", json={
        "station_id": station["id"], "gateway_id": "gw1", "device_id": "CP-9",
        "protocol": "ocpp16", "kind": "ac", "rated_kw": "7", "code": "SH9001"})
    charger = r.json()["charger"]
    assert charger["code"] == "SH9001"
    r = await world.client.patch(f"/api/v1/chargers/{charger['id']}",
                                 json={"operating_mode": "offline_free"})
    assert r.status_code == 200
    assert r.json()["charger"]["start_methods"] == ["card", "plug_and_charge"]
    assert r.json()["push"]["status"] == "published"
    r = await world.client.delete(f"/api/v1/stations/{station['id']}")
    assert r.status_code == 409 and "still has chargers" in r.json()["detail"]
    world.published.docs.clear()
    r = await world.client.delete(f"/api/v1/chargers/{charger['id']}")
    assert r.status_code == 200
    gw_doc = world.published.docs[-1]
    assert gw_doc[1] == "gateway" and gw_doc[3]["devices"] == []  # no longer admitted
    r = await world.client.delete(f"/api/v1/stations/{station['id']}")
    assert r.status_code == 204
