"""The commands API (``router``, under ``/api/v1``): remote start/stop, reboot, tariff push.

Every command is **tracked** in the table ``cmd_commands``: ``queued -> sent -> succeeded |
failed | timeout`` with the device's reply. ``POST /commands/<kind>?wait=true`` (the default)
answers when the command is final (200) or, if the device has not answered within the HTTP
wait, with the command as it stands (202); ``?wait=false`` answers 202 at once with the
command id; ``GET /commands/{id}`` and ``GET /commands`` read them back.

An ``Idempotency-Key`` header is unique per caller tenant: a retried POST with the same key
returns the same command (and waits for it with ``wait=true``) instead of sending it again;
the same key with a different request is 409 ``idempotency_conflict``.

Targets are named by a **code** (the QR / typed code of the catalogue): a connector code, or a
charger code plus ``connector`` (the number; may be omitted when the charger has one
connector). Start is for an end user (``userId``): the accounts service authorises the user for
the charger's operating mode first; the charger gets the user's app token as ``idTag`` (how
the orders find the payer of an ``app`` session) and the user's logical card as
``logicalCard`` (the card YKC binds the session to). Stop by a user's app (``userId``) is
allowed only for that user's open session; staff users may stop any session they see.

Device calls go through ``app.state.device_calls`` (the consumer, ``call``). Scopes:
``commands:write`` for POST, ``devices:read`` for reading commands back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, select

from cloud.accounts.errors import NotFound as AccountNotFound
from cloud.api.devices import device_calls
from cloud.api.errors import ApiError, ErrorRoute
from cloud.auth.principal import Principal, require
from cloud.catalog.models import ConnectorRef
from cloud.errors import CommandError, CommandTimeout
from cloud.orders.models import Order
from cloud.orders.status import OPEN
from thingmodels.errors import ThingModelError
from thingmodels.ids import new_id, now_ms

log = logging.getLogger("voltmesh.cloud.commands")

#: how much longer than the device timeout a ``wait=true`` request waits for the outcome
WAIT_MARGIN = 5.0


class CommandState(StrEnum):
    """Where a command is."""

    QUEUED = "queued"
    SENT = "sent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"


FINAL = frozenset({CommandState.SUCCEEDED, CommandState.FAILED, CommandState.TIMEOUT})


class CommandRow(SQLModel, table=True):
    """One command sent (or to be sent) to a device."""

    __tablename__ = "cmd_commands"
    __table_args__ = (UniqueConstraint("requester_tenant_id", "idempotency_key",
                                       name="uq_cmd_commands_key"),)

    id: str = SQLField(primary_key=True, max_length=32)
    tenant_id: str = SQLField(index=True, max_length=64)  # the device's tenant
    requester_tenant_id: str = SQLField(max_length=64)
    requested_by: str = SQLField(max_length=128)
    idempotency_key: str | None = SQLField(default=None, max_length=128)
    fingerprint: str = SQLField(max_length=64)
    kind: str = SQLField(index=True, max_length=16)
    gateway_id: str = SQLField(index=True, max_length=128)
    product: str = SQLField(max_length=32)
    device: str = SQLField(max_length=128)
    service: str = SQLField(max_length=64)
    params: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON, nullable=False))
    station_id: str | None = SQLField(default=None, max_length=64)
    charger_id: str | None = SQLField(default=None, index=True, max_length=64)
    connector_id: str | None = SQLField(default=None, max_length=64)
    user_id: str | None = SQLField(default=None, max_length=64)
    state: str = SQLField(default=CommandState.QUEUED.value, index=True, max_length=16)
    reply_code: int | None = None
    reply: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON))
    error: str | None = SQLField(default=None, max_length=1000)
    created_ms: int = SQLField(sa_column=Column(BigInteger, nullable=False, index=True))
    sent_ms: int | None = SQLField(default=None, sa_column=Column(BigInteger))
    finished_ms: int | None = SQLField(default=None, sa_column=Column(BigInteger))


class CommandStore:
    """The ``cmd_commands`` table (synchronous; call from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        SQLModel.metadata.create_all(engine, tables=[CommandRow.__table__])  # type: ignore[attr-defined]

    def by_key(self, requester_tenant_id: str, key: str) -> CommandRow | None:
        """The command created with this idempotency key by this tenant."""
        with Session(self.engine) as db:
            return db.exec(select(CommandRow).where(
                CommandRow.requester_tenant_id == requester_tenant_id,
                CommandRow.idempotency_key == key)).first()

    def create(self, row: CommandRow) -> tuple[CommandRow, bool]:
        """Insert; (the row, True), or (the existing row of its idempotency key, False)."""
        try:
            with Session(self.engine) as db:
                db.add(row)
                db.commit()
                db.refresh(row)
                return row, True
        except IntegrityError:
            if row.idempotency_key is None:
                raise
            existing = self.by_key(row.requester_tenant_id, row.idempotency_key)
            if existing is None:  # pragma: no cover - the unique key is the only constraint
                raise
            return existing, False

    def get(self, command_id: str) -> CommandRow | None:
        """A command by id."""
        with Session(self.engine) as db:
            return db.get(CommandRow, command_id)

    def update(self, command_id: str, **values: Any) -> CommandRow:
        """Set columns of a command."""
        with Session(self.engine) as db:
            row = db.get(CommandRow, command_id)
            if row is None:
                raise ApiError(404, "not_found", f"no command {command_id!r}")
            for name, value in values.items():
                setattr(row, name, value)
            db.add(row)
            db.commit()
            db.refresh(row)
            return row

    def list(self, scope: Callable[[Any], Any], *, state: str | None = None,
             kind: str | None = None, gateway: str | None = None,
             charger_id: str | None = None, since_ms: int | None = None,
             until_ms: int | None = None, limit: int = 100,
             offset: int = 0) -> tuple[list[CommandRow], int]:
        """A page of commands, newest first, and the total matching."""
        query = select(CommandRow).where(scope(CommandRow.tenant_id))
        for column, value in ((CommandRow.state, state), (CommandRow.kind, kind),
                              (CommandRow.gateway_id, gateway),
                              (CommandRow.charger_id, charger_id)):
            if value is not None:
                query = query.where(column == value)
        if since_ms is not None:
            query = query.where(col(CommandRow.created_ms) >= since_ms)
        if until_ms is not None:
            query = query.where(col(CommandRow.created_ms) < until_ms)
        with Session(self.engine) as db:
            total = db.exec(select(func.count()).select_from(query.subquery())).one()
            rows = db.exec(query.order_by(col(CommandRow.created_ms).desc(),
                                          col(CommandRow.id).desc())
                           .offset(offset).limit(limit)).all()
        return list(rows), int(total)

    def open_order(self, gw: str, device: str) -> Order | None:
        """The newest open order (session) on a connector."""
        with Session(self.engine) as db:
            return db.exec(select(Order).where(
                Order.gw == gw, Order.device == device,
                col(Order.status).in_(sorted(s.value for s in OPEN)))
                .order_by(col(Order.id).desc())).first()


# -- API bodies --------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Target(_Body):
    code: str = Field(min_length=4, max_length=32, description="connector or charger code")
    connector: int | None = Field(default=None, ge=1, le=32,
                                  description="connector number (with a charger code)")


class StartIn(_Target):
    """Remote start for an end user."""

    userId: str = Field(min_length=1, max_length=64)  # noqa: N815


class StopIn(_Target):
    """Remote stop; ``userId``: on behalf of that user (only their own session)."""

    userId: str | None = Field(default=None, min_length=1, max_length=64)  # noqa: N815


class RebootIn(_Body):
    """Reboot a charger (the ``reset`` service of charger.yaml)."""

    code: str = Field(min_length=4, max_length=32, description="charger or connector code")
    type: Literal["soft", "hard", "immediate", "on_idle"] = "soft"


class TariffIn(_Body):
    """Push the tariff in force (and every pending change) to a charger's gateway."""

    code: str = Field(min_length=4, max_length=32, description="charger or connector code")


class CommandOut(BaseModel):
    """A tracked command."""

    id: str
    tenantId: str  # noqa: N815
    kind: str
    state: CommandState
    gateway: str
    product: str
    device: str
    service: str
    params: dict[str, Any]
    stationId: str | None  # noqa: N815
    chargerId: str | None  # noqa: N815
    connectorId: str | None  # noqa: N815
    userId: str | None  # noqa: N815
    replyCode: int | None  # noqa: N815
    reply: dict[str, Any] | None
    error: str | None
    requestedBy: str  # noqa: N815
    idempotencyKey: str | None  # noqa: N815
    createdMs: int  # noqa: N815
    sentMs: int | None  # noqa: N815
    finishedMs: int | None  # noqa: N815

    @classmethod
    def of(cls, row: CommandRow) -> CommandOut:
        return cls(id=row.id, tenantId=row.tenant_id, kind=row.kind,
                   state=CommandState(row.state), gateway=row.gateway_id, product=row.product,
                   device=row.device, service=row.service, params=row.params,
                   stationId=row.station_id, chargerId=row.charger_id,
                   connectorId=row.connector_id, userId=row.user_id,
                   replyCode=row.reply_code, reply=row.reply, error=row.error,
                   requestedBy=row.requested_by, idempotencyKey=row.idempotency_key,
                   createdMs=row.created_ms, sentMs=row.sent_ms, finishedMs=row.finished_ms)


class CommandPage(BaseModel):
    """A page of commands."""

    items: list[CommandOut]
    total: int
    limit: int
    offset: int


# -- plumbing ----------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1", tags=["commands"], route_class=ErrorRoute)

Writer = Annotated[Principal, Depends(require("commands:write"))]
Reader = Annotated[Principal, Depends(require("devices:read"))]
Wait = Annotated[bool, Query(description="answer when the command is final")]
Timeout = Annotated[float, Query(gt=0, le=120, description="device timeout, seconds")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=128)]

#: a step that does the command's work: -> (state, reply code, reply, error)
Outcome = tuple[CommandState, int | None, dict[str, Any] | None, str | None]


def _store(request: Request) -> CommandStore:
    store: CommandStore = request.app.state.command_store
    return store


def _state(request: Request, name: str) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise ApiError(503, "unavailable", f"{name} is not configured")
    return value


def _fingerprint(kind: str, body: BaseModel, extra: dict[str, Any]) -> str:
    doc = {"kind": kind, "body": body.model_dump(mode="json"), **extra}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


async def _resolve(request: Request, principal: Principal, code: str,
                   number: int | None, *, charger_level: bool = False) -> ConnectorRef:
    """The connector (or for ``charger_level`` any connector of the charger) a code names."""
    catalog = _state(request, "catalog")
    found = await asyncio.to_thread(catalog.resolve_code, code)
    if found is None or not found.connectors or not principal.sees(found.connectors[0].tenant_id):
        raise ApiError(404, "not_found", f"no charger or connector with code {code!r}")
    refs: tuple[ConnectorRef, ...] = found.connectors
    if charger_level or found.kind == "connector":
        if found.kind == "connector" and number is not None and number != refs[0].number:
            raise ApiError(400, "bad_request", f"code {code!r} names connector "
                                               f"{refs[0].number}, not {number}")
        return refs[0]
    if number is None:
        if len(refs) != 1:
            raise ApiError(400, "bad_request", f"charger {code!r} has {len(refs)} connectors: "
                                               "give the connector number")
        return refs[0]
    for ref in refs:
        if ref.number == number:
            return ref
    raise ApiError(404, "not_found", f"charger {code!r} has no connector {number}")


async def _existing(request: Request, principal: Principal, key: str | None,
                    fingerprint: str) -> CommandRow | None:
    if key is None:
        return None
    row = await asyncio.to_thread(_store(request).by_key, principal.tenant_id, key)
    if row is not None and row.fingerprint != fingerprint:
        raise ApiError(409, "idempotency_conflict",
                       f"Idempotency-Key {key!r} was used for a different request")
    return row


def _tasks(request: Request) -> set[asyncio.Task[Any]]:
    tasks: set[asyncio.Task[Any]] | None = getattr(request.app.state, "command_tasks", None)
    if tasks is None:
        tasks = request.app.state.command_tasks = set()
    return tasks


async def _run(store: CommandStore, command_id: str,
               work: Callable[[], Awaitable[Outcome]]) -> None:
    """queued -> sent -> final; nothing is left in ``sent`` by an error of the work."""
    await asyncio.to_thread(store.update, command_id, state=CommandState.SENT.value,
                            sent_ms=now_ms())
    try:
        state, code, reply, error = await work()
    except CommandTimeout as exc:
        state, code, reply, error = CommandState.TIMEOUT, None, None, str(exc)
    except (CommandError, ThingModelError) as exc:
        state, code, reply, error = CommandState.FAILED, getattr(exc, "code", None), None, \
            str(exc)
    except Exception as exc:  # recorded on the command, never lost
        log.exception("command %s failed", command_id)
        state, code, reply, error = CommandState.FAILED, None, None, f"internal: {exc}"
    await asyncio.to_thread(store.update, command_id, state=state.value, reply_code=code,
                            reply=reply, error=error, finished_ms=now_ms())


def _device_work(request: Request, row: CommandRow, timeout: float
                 ) -> Callable[[], Awaitable[Outcome]]:
    calls = device_calls(request)

    async def work() -> Outcome:
        reply = await calls.call(row.gateway_id, row.product, row.device, row.service,
                                 dict(row.params), timeout=timeout)
        code = reply.code or 0
        output = reply.p if isinstance(reply.p, dict) else None
        ok = code == 0 and (output or {}).get("accepted", True) is not False
        error = None if ok else (reply.msg or (output or {}).get("reason")
                                 or f"device answered code {code}")
        return (CommandState.SUCCEEDED if ok else CommandState.FAILED), code, output, \
            None if error is None else str(error)

    return work


async def _submit(request: Request, principal: Principal, row: CommandRow,
                  work: Callable[[], Awaitable[Outcome]] | None, *, wait: bool,
                  timeout: float) -> JSONResponse:
    """Store the command, start its work (unless it exists already), answer."""
    store = _store(request)
    row, created = await asyncio.to_thread(store.create, row)
    if created and work is not None and row.state == CommandState.QUEUED.value:
        task = asyncio.get_running_loop().create_task(_run(store, row.id, work),
                                                      name=f"command-{row.id}")
        tasks = _tasks(request)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return await _answer(request, row, wait=wait, timeout=timeout)


async def _answer(request: Request, row: CommandRow, *, wait: bool,
                  timeout: float) -> JSONResponse:
    store = _store(request)
    if wait and row.state not in FINAL:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout + WAIT_MARGIN
        task = next((t for t in _tasks(request) if t.get_name() == f"command-{row.id}"), None)
        if task is not None:  # ours: wait for it (shielded: a client leaving does not stop it)
            with_timeout = max(0.0, until - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), with_timeout)
        while loop.time() < until:  # another request's (or worker's): poll the row
            fresh = await asyncio.to_thread(store.get, row.id)
            if fresh is not None:
                row = fresh
            if row.state in FINAL:
                break
            await asyncio.sleep(0.2)
        fresh = await asyncio.to_thread(store.get, row.id)
        row = fresh or row
    elif not wait:
        fresh = await asyncio.to_thread(store.get, row.id)
        row = fresh or row
    status = 200 if row.state in FINAL else 202
    return JSONResponse(status_code=status, content=CommandOut.of(row).model_dump(mode="json"))


def _row(principal: Principal, key: str | None, fingerprint: str, kind: str, ref: ConnectorRef,
         *, product: str, device: str, service: str, params: dict[str, Any],
         user_id: str | None = None, connector: bool = True) -> CommandRow:
    return CommandRow(
        id=new_id(), tenant_id=ref.tenant_id, requester_tenant_id=principal.tenant_id,
        requested_by=principal.subject, idempotency_key=key, fingerprint=fingerprint,
        kind=kind, gateway_id=ref.gateway_id, product=product, device=device, service=service,
        params=params, station_id=ref.station_id, charger_id=ref.charger_id,
        connector_id=ref.connector_id if connector else None, user_id=user_id,
        created_ms=now_ms())


# -- routes ------------------------------------------------------------------------------


@router.post("/commands/start", response_model=CommandOut,
             responses={202: {"model": CommandOut}})
async def remote_start(request: Request, body: StartIn, principal: Writer,
                       idempotency_key: IdemKey = None, wait: Wait = True,
                       timeout: Timeout = 15.0) -> JSONResponse:
    """Start charging on a connector for a user (authorised by the accounts service first)."""
    fingerprint = _fingerprint("start", body, {})
    existing = await _existing(request, principal, idempotency_key, fingerprint)
    if existing is not None:
        return await _answer(request, existing, wait=wait, timeout=timeout)
    ref = await _resolve(request, principal, body.code, body.connector)
    accounts = _state(request, "accounts")
    try:
        user = await asyncio.to_thread(accounts.get_user, body.userId,
                                       visible=principal.tenant_clause)
    except AccountNotFound as exc:
        raise ApiError(404, "not_found", f"no user {body.userId!r}") from exc
    if user.tenant_id != ref.tenant_id:
        raise ApiError(409, "conflict", "the user is a customer of another tenant than the "
                                        "charger's")
    decision = await asyncio.to_thread(accounts.authorize_user, body.userId,
                                       operating_mode=ref.operating_mode, charger_type=ref.kind)
    params: dict[str, Any] = {"idTag": user.app_token}
    if decision.logical_card:
        params["logicalCard"] = decision.logical_card
    if isinstance(decision.balance, Decimal) and decision.balance >= 0:
        params["balance"] = str(decision.balance)
    row = _row(principal, idempotency_key, fingerprint, "start", ref, product="connector",
               device=ref.connector_device_id, service="remoteStart", params=params,
               user_id=body.userId)
    if not decision.accepted:  # tracked as failed, never sent
        row.state, row.error = CommandState.FAILED.value, f"refused: {decision.reason.value}"
        row.finished_ms = row.created_ms
        return await _submit(request, principal, row, None, wait=wait, timeout=timeout)
    return await _submit(request, principal, row, _device_work(request, row, timeout),
                         wait=wait, timeout=timeout)


@router.post("/commands/stop", response_model=CommandOut, responses={202: {"model": CommandOut}})
async def remote_stop(request: Request, body: StopIn, principal: Writer,
                      idempotency_key: IdemKey = None, wait: Wait = True,
                      timeout: Timeout = 15.0) -> JSONResponse:
    """Stop the session on a connector: a user's own session, or any session for staff."""
    fingerprint = _fingerprint("stop", body, {})
    existing = await _existing(request, principal, idempotency_key, fingerprint)
    if existing is not None:
        return await _answer(request, existing, wait=wait, timeout=timeout)
    ref = await _resolve(request, principal, body.code, body.connector)
    order = await asyncio.to_thread(_store(request).open_order, ref.gateway_id,
                                    ref.connector_device_id)
    if body.userId is not None:
        if order is None:
            raise ApiError(409, "no_session", "no open session on this connector")
        if order.user_id != body.userId:
            raise ApiError(403, "forbidden", "the session on this connector is not this user's")
    elif principal.role is None:
        raise ApiError(403, "forbidden", "an API key stops a session on behalf of a user: "
                                         "give userId")
    params: dict[str, Any] = {}
    if order is not None:
        params["sessionId"] = order.session_id
    row = _row(principal, idempotency_key, fingerprint, "stop", ref, product="connector",
               device=ref.connector_device_id, service="remoteStop", params=params,
               user_id=body.userId)
    return await _submit(request, principal, row, _device_work(request, row, timeout),
                         wait=wait, timeout=timeout)


@router.post("/commands/reboot", response_model=CommandOut,
             responses={202: {"model": CommandOut}})
async def reboot(request: Request, body: RebootIn, principal: Writer,
                 idempotency_key: IdemKey = None, wait: Wait = True,
                 timeout: Timeout = 15.0) -> JSONResponse:
    """Reboot a charger (``reset``)."""
    fingerprint = _fingerprint("reboot", body, {})
    existing = await _existing(request, principal, idempotency_key, fingerprint)
    if existing is not None:
        return await _answer(request, existing, wait=wait, timeout=timeout)
    ref = await _resolve(request, principal, body.code, None, charger_level=True)
    row = _row(principal, idempotency_key, fingerprint, "reboot", ref, product="charger",
               device=ref.charger_device_id, service="reset", params={"type": body.type},
               connector=False)
    return await _submit(request, principal, row, _device_work(request, row, timeout),
                         wait=wait, timeout=timeout)


@router.post("/commands/tariff", response_model=CommandOut,
             responses={202: {"model": CommandOut}})
async def push_tariff(request: Request, body: TariffIn, principal: Writer,
                      idempotency_key: IdemKey = None, wait: Wait = True,
                      timeout: Timeout = 15.0) -> JSONResponse:
    """Push the charger's tariff (its gateway's documents) now."""
    fingerprint = _fingerprint("tariff", body, {})
    existing = await _existing(request, principal, idempotency_key, fingerprint)
    if existing is not None:
        return await _answer(request, existing, wait=wait, timeout=timeout)
    ref = await _resolve(request, principal, body.code, None, charger_level=True)
    provisioning = _state(request, "provisioning")
    publish = getattr(request.app.state, "publish_desired", None)
    row = _row(principal, idempotency_key, fingerprint, "tariff", ref, product="gateway",
               device=ref.gateway_id, service="desired", params={"charger": ref.charger_device_id},
               connector=False)

    async def work() -> Outcome:
        result = await provisioning.push(ref.gateway_id, publish,
                                         chargers=[ref.charger_device_id])
        doc: dict[str, Any] = result.to_doc()
        if result.status == "published":
            return CommandState.SUCCEEDED, 0, doc, None
        return CommandState.FAILED, None, doc, result.detail or result.status

    return await _submit(request, principal, row, work, wait=wait, timeout=timeout)


@router.get("/commands/{command_id}", response_model=CommandOut)
async def get_command(request: Request, command_id: str, principal: Reader) -> CommandOut:
    """A command (404 for another tenant's)."""
    row = await asyncio.to_thread(_store(request).get, command_id)
    if row is None or not principal.sees(row.tenant_id):
        raise ApiError(404, "not_found", f"no command {command_id!r}")
    return CommandOut.of(row)


@router.get("/commands", response_model=CommandPage)
async def list_commands(
    request: Request, principal: Reader,
    state: CommandState | None = None,
    kind: Annotated[Literal["start", "stop", "reboot", "tariff"] | None, Query()] = None,
    gateway: Annotated[str | None, Query(max_length=128)] = None,
    charger_id: Annotated[str | None, Query(max_length=64)] = None,
    since_ms: Annotated[int | None, Query(ge=0)] = None,
    until_ms: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CommandPage:
    """Commands of the caller's tenants, newest first."""
    rows, total = await asyncio.to_thread(
        _store(request).list, principal.tenant_clause,
        state=state.value if state is not None else None, kind=kind, gateway=gateway,
        charger_id=charger_id, since_ms=since_ms, until_ms=until_ms, limit=limit,
        offset=offset)
    return CommandPage(items=[CommandOut.of(r) for r in rows], total=total, limit=limit,
                       offset=offset)
