"""The alarms API with tenant visibility (FixedAuthenticator, httpx ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cloud.alarms.api import router
from cloud.alarms.manager import AlarmManager
from cloud.alarms.view import AlarmView
from cloud.auth.principal import ROLE_SCOPES, FixedAuthenticator, Principal, Role

from .alarm_signals import signal

TENANTS = {"gw-east": "t-east", "gw-west": "t-west"}  # gw-new has no station yet

ADMIN = Principal("user:root", "platform", Role.PLATFORM_ADMIN,
                  ROLE_SCOPES[Role.PLATFORM_ADMIN])
EAST = Principal("user:ana", "t-east", Role.MAINTAINER, ROLE_SCOPES[Role.MAINTAINER],
                 frozenset({"t-east"}))
EAST_READER = Principal("apikey:7", "t-east", None, frozenset({"alarms:read"}),
                        frozenset({"t-east"}))
NOBODY = Principal("apikey:8", "t-east", None, frozenset({"orders:read"}),
                   frozenset({"t-east"}))

Client = Callable[..., httpx.AsyncClient]


@pytest.fixture
def manager(engine: Engine) -> AlarmManager:
    manager = AlarmManager(engine, tenant_of=lambda gw, product, device: TENANTS.get(gw))
    manager.process([
        signal(True, 1_000, gw="gw-east", device="c1", level="critical", type="smoke"),
        signal(True, 2_000, gw="gw-east", device="c2", level="warning"),
        signal(True, 3_000, gw="gw-east", device="c3", level="major", debounce_ms=60_000),
        signal(True, 4_000, gw="gw-west", device="c1", level="critical"),
        signal(True, 5_000, gw="gw-new", device="c1", level="major"),
    ])
    return manager


@pytest.fixture
async def client(manager: AlarmManager) -> AsyncIterator[Client]:
    clients: list[httpx.AsyncClient] = []

    def make(principal: Principal, with_manager: bool = True) -> httpx.AsyncClient:
        app = FastAPI()
        app.include_router(router)
        app.state.authenticator = FixedAuthenticator(principal)
        if with_manager:
            app.state.alarms = manager
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


def alarm_of(manager: AlarmManager, gw: str, device: str) -> AlarmView:
    (alarm,) = [a for a in manager.list_alarms().items if (a.gw, a.device) == (gw, device)]
    return alarm


async def test_list_shows_only_visible_tenants(client: Client) -> None:
    everything = (await client(ADMIN).get("/api/v1/alarms")).json()
    assert everything["count"] == 5
    assert {a["tenantId"] for a in everything["items"]} == {"t-east", "t-west", None}
    east = (await client(EAST).get("/api/v1/alarms")).json()
    assert east["count"] == 3
    assert {(a["gw"], a["device"]) for a in east["items"]} == {
        ("gw-east", "c1"), ("gw-east", "c2"), ("gw-east", "c3")}
    # an alarm without tenant is the platform admin's alone
    assert all(a["tenantId"] == "t-east" for a in east["items"])


async def test_list_filters_and_pages(client: Client) -> None:
    api = client(ADMIN)

    async def devices(query: str) -> list[str]:
        body = (await api.get(f"/api/v1/alarms?{query}")).json()
        return [f"{a['gw']}/{a['device']}" for a in body["items"]]

    assert await devices("state=pending") == ["gw-east/c3"]
    assert await devices("level=critical") == ["gw-west/c1", "gw-east/c1"]
    assert await devices("level=critical&level=warning") == [
        "gw-west/c1", "gw-east/c2", "gw-east/c1"]
    assert await devices("type=smoke") == ["gw-east/c1"]
    assert await devices("gw=gw-west") == ["gw-west/c1"]
    assert await devices("gw=gw-east&device=c2") == ["gw-east/c2"]
    assert await devices("since=3500") == ["gw-new/c1", "gw-west/c1"]
    assert await devices("until=2500") == ["gw-east/c2", "gw-east/c1"]
    page = (await api.get("/api/v1/alarms?limit=2&offset=1")).json()
    assert page["count"] == 5 and len(page["items"]) == 2
    assert [a["device"] for a in page["items"]] == ["c1", "c3"]  # gw-west/c1, gw-east/c3
    bad = await api.get("/api/v1/alarms?state=burning")
    assert bad.status_code == 422
    assert (await api.get("/api/v1/alarms?limit=0")).status_code == 422


async def test_get_with_history_and_visibility(client: Client, manager: AlarmManager) -> None:
    west = alarm_of(manager, "gw-west", "c1")
    east = alarm_of(manager, "gw-east", "c1")
    got = await client(EAST_READER).get(f"/api/v1/alarms/{east.id}")
    assert got.status_code == 200
    body = got.json()
    assert body["state"] == "open" and body["raiseCount"] == 1 and body["level"] == "critical"
    assert [(h["event"], h["from"], h["to"]) for h in body["history"]] == [
        ("pending", None, "pending"), ("raised", "pending", "open")]
    hidden = await client(EAST_READER).get(f"/api/v1/alarms/{west.id}")
    assert hidden.status_code == 404  # like one that does not exist
    assert hidden.json() == {"error": "not_found", "detail": f"no alarm {west.id!r}"}
    missing = await client(ADMIN).get("/api/v1/alarms/01NOPE")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert (await client(ADMIN).get(f"/api/v1/alarms/{west.id}")).status_code == 200


async def test_acknowledge_and_close(client: Client, manager: AlarmManager) -> None:
    api = client(EAST)
    alarm = alarm_of(manager, "gw-east", "c1")
    acked = await api.post(f"/api/v1/alarms/{alarm.id}/ack", json={"note": "crew sent"})
    assert acked.status_code == 200
    body = acked.json()
    assert body["state"] == "acknowledged" and body["acknowledgedBy"] == "user:ana"
    assert body["ackNote"] == "crew sent" and body["history"][-1]["actor"] == "user:ana"
    again = await api.post(f"/api/v1/alarms/{alarm.id}/ack", json={"note": "twice"})
    assert again.status_code == 200 and again.json()["revision"] == body["revision"]
    assert again.json()["ackNote"] == "crew sent"
    closed = await api.post(f"/api/v1/alarms/{alarm.id}/close")  # the note is optional
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert closed.json()["closedBy"] == "user:ana"
    assert (await api.post(f"/api/v1/alarms/{alarm.id}/close")).status_code == 200
    conflict = await api.post(f"/api/v1/alarms/{alarm_of(manager, 'gw-east', 'c3').id}/ack")
    assert conflict.status_code == 409  # still pending (debounce)
    assert conflict.json()["error"] == "conflict" and "pending" in conflict.json()["detail"]


async def test_writes_need_the_scope_and_the_tenant(client: Client,
                                                   manager: AlarmManager) -> None:
    east = alarm_of(manager, "gw-east", "c2")
    west = alarm_of(manager, "gw-west", "c1")
    new = alarm_of(manager, "gw-new", "c1")
    denied = await client(EAST_READER).post(f"/api/v1/alarms/{east.id}/ack", json={})
    assert denied.status_code == 403
    assert (await client(NOBODY).get("/api/v1/alarms")).status_code == 403
    assert (await client(EAST).post(f"/api/v1/alarms/{west.id}/ack")).status_code == 404
    assert (await client(EAST).post(f"/api/v1/alarms/{new.id}/close")).status_code == 404
    assert manager.get(west.id).state == "open" and manager.get(new.id).state == "open"
    too_long = await client(EAST).post(f"/api/v1/alarms/{east.id}/ack", json={"note": "x" * 3000})
    assert too_long.status_code == 422
    admin = await client(ADMIN).post(f"/api/v1/alarms/{new.id}/ack", json={"note": "mine"})
    assert admin.status_code == 200 and admin.json()["state"] == "acknowledged"


async def test_without_a_manager_the_api_says_so(client: Client) -> None:
    api = client(ADMIN, with_manager=False)
    response = await api.get("/api/v1/alarms")
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
