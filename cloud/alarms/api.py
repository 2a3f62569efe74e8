"""The alarms API: list, get (with history), acknowledge, close.

Mount with ``app.include_router(router)`` and put the :class:`AlarmManager` in
``app.state.alarms``. Every endpoint authenticates the caller (``alarms:read`` /
``alarms:write``) and shows only alarms of tenants the caller sees; an alarm whose tenant is not
known yet is visible to the platform admin only. An alarm the caller may not see answers 404,
like one that does not exist. Errors: ``{"error": code, "detail": text}``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from cloud.alarms.errors import AlarmConflict, AlarmNotFound
from cloud.alarms.manager import AlarmManager
from cloud.alarms.states import Level, State
from cloud.alarms.tables import AlarmRow
from cloud.alarms.view import AlarmFilter, alarm_dict
from cloud.api.errors import ApiError, ErrorMap, error_route
from cloud.auth.principal import Principal, require

#: what the alarms' exceptions are answered with (a store failure: 503 ``store_unavailable``)
ERRORS: ErrorMap = {AlarmNotFound: (404, "not_found"), AlarmConflict: (409, "conflict")}

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"],
                   route_class=error_route(ERRORS, "AlarmsRoute"))

Reader = Annotated[Principal, Depends(require("alarms:read"))]
Writer = Annotated[Principal, Depends(require("alarms:write"))]


class HistoryOut(BaseModel):
    """One transition."""

    ts: int
    event: str
    from_: str | None = Field(alias="from")
    to: str
    actor: str
    note: str | None
    value: Any = None


class AlarmOut(BaseModel):
    """An alarm (times in ms since the epoch)."""

    id: str
    tenantId: str | None  # noqa: N815 - JSON field names are camelCase
    type: str
    level: str
    dedupe: str
    gw: str
    product: str
    device: str
    rule: str
    state: str
    active: bool
    firstRaised: int  # noqa: N815
    opened: int | None
    lastRaised: int  # noqa: N815
    raiseCount: int  # noqa: N815
    cleared: int | None
    acknowledgedBy: str | None  # noqa: N815
    acknowledged: int | None
    ackNote: str | None  # noqa: N815
    closedBy: str | None  # noqa: N815
    closed: int | None
    closeNote: str | None  # noqa: N815
    message: str
    lastValue: Any = None  # noqa: N815
    details: dict[str, Any]
    updated: int
    revision: int


class AlarmDetail(AlarmOut):
    """An alarm with its history."""

    history: list[HistoryOut]


class AlarmList(BaseModel):
    """A page of alarms (newest first); ``count`` is how many match in all."""

    items: list[AlarmOut]
    count: int


class Note(BaseModel):
    """An operator's note on acknowledge / close."""

    note: str | None = Field(default=None, max_length=2000)


def _manager(request: Request) -> AlarmManager:
    manager: AlarmManager | None = getattr(request.app.state, "alarms", None)
    if manager is None:
        raise ApiError(503, "unavailable", "alarms are not enabled on this worker")
    manager.attach()  # points and notifications of operator actions go out on this loop
    return manager


@router.get("", response_model=AlarmList)
async def list_alarms(
    request: Request,
    principal: Reader,
    state: Annotated[list[State] | None, Query()] = None,
    level: Annotated[list[Level] | None, Query()] = None,
    type: Annotated[str | None, Query(max_length=128)] = None,
    gw: Annotated[str | None, Query(max_length=128)] = None,
    product: Annotated[str | None, Query(max_length=32)] = None,
    device: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[int | None, Query(ge=0, description="ms; last activity at or after")] = None,
    until: Annotated[int | None, Query(ge=0, description="ms; first raised before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlarmList:
    manager = _manager(request)
    filt = AlarmFilter(
        states=frozenset(state) if state else None,
        levels=frozenset(lv.value for lv in level) if level else None,
        type=type, gw=gw, product=product, device=device, since=since, until=until,
    )
    page = await asyncio.to_thread(
        manager.list_alarms, filt, tenant_clause=principal.tenant_clause(AlarmRow.tenant_id),
        limit=limit, offset=offset)
    return AlarmList(items=[AlarmOut(**alarm_dict(a)) for a in page.items], count=page.total)


@router.get("/{alarm_id}", response_model=AlarmDetail)
async def get_alarm(request: Request, alarm_id: str,
                    principal: Reader) -> AlarmDetail:
    manager = _manager(request)
    alarm = await asyncio.to_thread(manager.get, alarm_id, visible=principal.sees)
    return AlarmDetail(**alarm_dict(alarm, history=True))


@router.post("/{alarm_id}/ack", response_model=AlarmDetail)
async def acknowledge_alarm(request: Request, alarm_id: str, principal: Writer,
                            body: Note | None = None) -> AlarmDetail:
    manager = _manager(request)
    note = body.note if body is not None else None
    alarm = await asyncio.to_thread(manager.acknowledge, alarm_id, principal.subject, note,
                                    visible=principal.sees)
    return AlarmDetail(**alarm_dict(alarm, history=True))


@router.post("/{alarm_id}/close", response_model=AlarmDetail)
async def close_alarm(request: Request, alarm_id: str, principal: Writer,
                      body: Note | None = None) -> AlarmDetail:
    manager = _manager(request)
    note = body.note if body is not None else None
    alarm = await asyncio.to_thread(manager.close, alarm_id, principal.subject, note,
                                    visible=principal.sees)
    return AlarmDetail(**alarm_dict(alarm, history=True))
