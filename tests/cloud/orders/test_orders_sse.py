"""Live order status: ``watch()`` and the server-sent-events route on a real uvicorn server on
loopback. A change made by this worker arrives at once; one made by another worker (another
OrderService on the same database) arrives through the polling fallback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from cloud.auth.principal import ROLE_SCOPES, FixedAuthenticator, Principal, Role
from cloud.orders.api import router
from cloud.orders.errors import OrderNotFound
from tests.cloud.orders.orders_world import World, ocpp_session
from tests.support.net import free_port


def principal(w: World) -> Principal:
    return Principal(subject="user:ops", tenant_id=w.tenant, role=Role.OPERATOR_ADMIN,
                     scopes=ROLE_SCOPES[Role.OPERATOR_ADMIN],
                     visible_tenants=frozenset({w.tenant}))


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield json.loads("".join(data))
            data = []


async def next_status(events: AsyncIterator[dict[str, Any]], wanted: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        async for item in events:
            if item["status"] == wanted:
                return item
    raise AssertionError(f"stream ended before {wanted}")


async def test_sse_stream_delivers_status_changes(world: World) -> None:
    w = world
    events = ocpp_session(w, "301")
    await w.service.handle(events[:4])
    order = w.order(w.ocpp_gw, w.ocpp_device, "301")
    app = FastAPI()
    app.include_router(router)
    app.state.orders = w.service
    app.state.authenticator = FixedAuthenticator(principal(w))
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.get("/api/v1/orders/999999999/events")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        async with http.stream("GET", f"/api/v1/orders/{order.id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = sse_events(response)
            first = await next_status(stream, "charging")
            assert first["id"] == order.id and first["session_id"] == "301"
            await w.service.handle(events[4:])
            done = await next_status(stream, "settled")
            assert done["total_amount"] == "69.65" and done["version"] > first["version"]
            await asyncio.to_thread(w.service.refund, order.id, amount=None, reason="test",
                                    key="sse")
            refunded = await next_status(stream, "refunded")
            assert refunded["refunded_amount"] == "69.65"


async def test_watch_sees_another_workers_change_by_polling(world: World) -> None:
    w = world
    events = ocpp_session(w, "302")
    await w.service.handle(events[:1])
    order = w.order(w.ocpp_gw, w.ocpp_device, "302")
    other = w.another_service()  # another worker: its changes never notify this one
    seen: list[str] = []
    first = asyncio.Event()

    async def watch() -> None:
        async with contextlib.aclosing(w.service.watch(order.id, principal(w))) as views:
            async for view in views:
                seen.append(view.status)
                first.set()
                if view.status == "settled":
                    return

    task = asyncio.create_task(watch())
    async with asyncio.timeout(30):
        await first.wait()
        assert seen == ["authorised"]
        await other.handle(events[1:])
        await task
    assert seen[-1] == "settled" and w.service.notifier.watchers(order.id) == 0


async def test_watch_refuses_an_invisible_order(world: World) -> None:
    w = world
    await w.service.handle(ocpp_session(w, "303")[:1])
    order = w.order(w.ocpp_gw, w.ocpp_device, "303")
    stranger = Principal(subject="user:x", tenant_id="elsewhere", role=Role.FINANCE,
                         scopes=ROLE_SCOPES[Role.FINANCE], visible_tenants=frozenset({"elsewhere"}))
    with pytest.raises(OrderNotFound):
        async for _ in w.service.watch(order.id, stranger):
            pass
