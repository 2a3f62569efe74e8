"""The device endpoints behind auth: scopes, gateways of visible tenants only, error bodies."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from cloud.auth.principal import Role
from tests.cloud.api.world import ApiWorld, build_api_world


def _seen(world: ApiWorld) -> None:
    for gw, charger in ((world.gw_a, world.charger_a), (world.gw_b, world.charger_b)):
        world.registry.presence(gw, "gateway", gw, True, 1, 1_000)
        for connector in charger.connectors:
            world.registry.presence(gw, "connector", connector.device_id, True, 1, 1_000)
    world.registry.flush()


async def test_devices_and_gateways_are_filtered_by_tenant(api_engine: Engine) -> None:
    world = build_api_world(api_engine)
    _seen(world)
    t = world.tenancy
    async with world.client() as http:
        a = await http.get("/api/v1/devices", headers=t.headers("A", Role.READ_ONLY))
        assert a.status_code == 200
        assert {d["gateway"] for d in a.json()["items"]} == {world.gw_a}
        assert a.json()["count"] == 2
        agent = await http.get("/api/v1/gateways", headers=t.headers("agentA"))
        assert agent.json() == {"items": [], "count": 0}  # an agent does not see its operator
        b = await http.get("/api/v1/gateways", headers=t.key_headers("B", "read"))
        assert [g["gateway"] for g in b.json()["items"]] == [world.gw_b]
        asked = await http.get("/api/v1/devices", params={"gateway": world.gw_b},
                               headers=t.headers("A"))
        assert asked.json()["items"] == []
        platform = await http.get("/api/v1/gateways",
                                  headers=t.headers("platform", Role.PLATFORM_ADMIN))
        assert {world.gw_a, world.gw_b} <= {g["gateway"] for g in platform.json()["items"]}
        paged = await http.get("/api/v1/devices", params={"limit": 1, "offset": 1},
                               headers=t.headers("A"))
        assert paged.json()["count"] == 1
        anonymous = await http.get("/api/v1/devices")
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
        health = await http.get("/healthz")
        metrics = await http.get("/metrics")
        assert health.status_code == 200 and metrics.status_code == 200  # ops stay open


async def test_service_calls_and_desired_need_scope_and_visible_gateway(
        api_engine: Engine) -> None:
    world = build_api_world(api_engine)  # no broker: calls to visible gateways answer 503
    t = world.tenancy
    device = world.charger_b.connectors[0].device_id
    call = f"/api/v1/devices/{world.gw_b}/connector/{device}/services/unlock"
    desired = f"/api/v1/gateways/{world.gw_b}/desired/gateway/{world.gw_b}"
    async with world.client() as http:
        read_only = await http.post(call, json={}, headers=t.key_headers("B", "read"))
        assert read_only.status_code == 403
        assert read_only.json() == {"error": "forbidden", "detail": "missing scope commands:write"}
        foreign = await http.post(call, json={}, headers=t.headers("A", Role.MAINTAINER))
        assert foreign.status_code == 404 and foreign.json()["error"] == "not_found"
        own = await http.post(call, json={}, headers=t.headers("B", Role.MAINTAINER))
        assert own.status_code == 503 and own.json()["error"] == "no_broker"
        finance = await http.put(desired, json={}, headers=t.headers("B", Role.FINANCE))
        assert finance.status_code == 403  # finance holds no devices:write
        foreign_put = await http.put(desired, json={}, headers=t.headers("A"))
        assert foreign_put.status_code == 404
        bad = await http.post(call, json={"timeout": 0}, headers=t.headers("B"))
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
