"""The orders API (``router``, under ``/api/v1``): list, detail, CSV export, live status (SSE),
refunds. Every route takes the caller from :mod:`cloud.auth.principal` and every query is
narrowed to the caller's tenants; an order of another tenant is "not found". The service is
``request.app.state.orders`` (an :class:`~cloud.orders.service.OrderService`). Error bodies are
``{"error": code, "detail": text}`` (:mod:`cloud.api.errors`, with :data:`ERRORS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from cloud.api.errors import ApiError, ErrorMap, error_route
from cloud.auth.principal import Principal, require
from cloud.orders.errors import (
    IdempotencyConflict,
    OrderNotFound,
    OrdersError,
    PaymentError,
    RefundRejected,
)
from cloud.orders.queries import OrderQuery
from cloud.orders.service import OrderService
from cloud.orders.status import OrderStatus
from cloud.orders.views import OrderDetail, OrderPage, OrderView, RefundResult

#: what the orders' exceptions are answered with (a ValueError is the caller's bad input)
ERRORS: ErrorMap = {
    OrderNotFound: (404, "not_found"), IdempotencyConflict: (409, "idempotency_conflict"),
    RefundRejected: (409, "refund_rejected"), PaymentError: (409, "payment_failed"),
    ValueError: (400, "bad_request")}

router = APIRouter(prefix="/api/v1", tags=["orders"],
                   route_class=error_route(ERRORS, "OrdersRoute"))

Reader = Annotated[Principal, Depends(require("orders:read"))]
Writer = Annotated[Principal, Depends(require("orders:write"))]
#: seconds between keep-alive comments on an idle event stream
SSE_KEEPALIVE = 15.0


class RefundIn(BaseModel):
    """A refund request: ``amount`` as a decimal string (omit it to refund all that is left)."""

    amount: str | None = Field(default=None, pattern=r"^\d{1,16}(\.\d{1,2})?$",
                               examples=["12.50"])
    reason: str = Field(min_length=1, max_length=255)


def _service(request: Request) -> OrderService:
    service = getattr(request.app.state, "orders", None)
    if not isinstance(service, OrderService):
        raise ApiError(503, "unavailable", "the orders service is not configured")
    return service


def _query(station_id: str | None, charger_id: str | None, user_id: str | None,
           status: OrderStatus | None, gw: str | None, device: str | None,
           session_id: str | None, since_ms: int | None, until_ms: int | None,
           limit: int, offset: int) -> OrderQuery:
    return OrderQuery(station_id=station_id, charger_id=charger_id, user_id=user_id,
                      status=status.value if status is not None else None, gw=gw, device=device,
                      session_id=session_id, since_ms=since_ms, until_ms=until_ms, limit=limit,
                      offset=offset)


Id = Annotated[str | None, Query(max_length=128)]
Ms = Annotated[int | None, Query(ge=0, description="ms since the epoch (session start)")]


@router.get("/orders", response_model=OrderPage)
async def list_orders(
    request: Request, principal: Reader, station_id: Id = None, charger_id: Id = None,
    user_id: Id = None, status: OrderStatus | None = None, gw: Id = None, device: Id = None,
    session_id: Id = None, since_ms: Ms = None, until_ms: Ms = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrderPage:
    """Orders the caller may see, newest start first (``since_ms`` <= start < ``until_ms``)."""
    service = _service(request)
    query = _query(station_id, charger_id, user_id, status, gw, device, session_id, since_ms,
                   until_ms, limit, offset)
    return await asyncio.to_thread(service.list_orders, principal, query)


@router.get("/orders.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
async def export_orders(
    request: Request, principal: Reader, station_id: Id = None, charger_id: Id = None,
    user_id: Id = None, status: OrderStatus | None = None, gw: Id = None, device: Id = None,
    session_id: Id = None, since_ms: Ms = None, until_ms: Ms = None,
) -> Response:
    """Every matching order as CSV, streamed (amounts and energies as exact decimals)."""
    service = _service(request)
    query = _query(station_id, charger_id, user_id, status, gw, device, session_id, since_ms,
                   until_ms, 1, 0)
    return StreamingResponse(service.export_csv(principal, query), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="orders.csv"'})


@router.get("/orders/{order_id}", response_model=OrderDetail)
async def get_order(request: Request, order_id: int, principal: Reader
                    ) -> OrderDetail:
    """One order with its per-tier breakdown, history and refunds."""
    service = _service(request)
    return await asyncio.to_thread(service.get_order, principal, order_id)


def _sse(view: OrderView) -> str:
    data = json.dumps(view.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {view.version}\nevent: order\ndata: {data}\n\n"


async def _event_stream(service: OrderService, order_id: int,
                        principal: Principal) -> AsyncIterator[str]:
    queue: asyncio.Queue[OrderView | None] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for view in service.watch(order_id, principal):
                if queue.full():  # a slow client gets the latest state, not a backlog
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(view)
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    task = asyncio.create_task(pump(), name=f"order-watch-{order_id}")
    try:
        yield "retry: 3000\n\n"
        while True:
            try:
                view = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if view is None:
                return
            yield _sse(view)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OrdersError):
            await task


@router.get("/orders/{order_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def order_events(request: Request, order_id: int, principal: Reader) -> Response:
    """Server-sent events: the order now (``event: order``, JSON data, ``id`` = its version),
    then every change, until the client goes away."""
    service = _service(request)
    await asyncio.to_thread(service.check_visible, principal, order_id)
    return StreamingResponse(_event_stream(service, order_id, principal),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/orders/{order_id}/refund", response_model=RefundResult,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": RefundIn.model_json_schema()}}}})
async def refund_order(
    request: Request, order_id: int, principal: Writer,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)] = None,
) -> RefundResult:
    """Refund (part of) what the order's wallet paid. The ``Idempotency-Key`` header is
    required: the same key returns the same refund, never a second one."""
    service = _service(request)
    if not idempotency_key or not idempotency_key.strip():
        raise ApiError(400, "bad_request", "the Idempotency-Key header is required")
    try:
        body: Any = await request.json()
        refund = RefundIn.model_validate(body)
    except (ValueError, ValidationError) as exc:
        raise ApiError(400, "bad_request", f"body: {exc}") from None
    amount = Decimal(refund.amount) if refund.amount is not None else None
    key = idempotency_key.strip()
    return await asyncio.to_thread(
        lambda: service.refund(order_id, amount=amount, reason=refund.reason, key=key,
                               principal=principal))
