"""The device registry: gateways and devices with presence and last-seen, in SQL (SQLModel).

The consumer updates an in-memory view per message (cheap) and :meth:`DeviceRegistry.flush`
writes what changed in one transaction (from a worker thread), so SQL cost does not grow with the
message rate. SQLite by default, PostgreSQL by URL, same code.

N workers share the tables and each sees only part of a device's messages, so a flush *merges*
its view into the rows (locked: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite) under rules whose result does not depend on which worker flushes first:

* a property keeps the value with the newest measure time (equal: the flushing worker's); the
  measure times are stored (``devices.measured``), so the rule holds across restarts;
* presence: the higher session wins, and within a session offline beats online (the offline
  of session N always follows its online); ``last_seen_ms`` is the max, ``first_seen_ms`` the
  min of the known ones.

The merged rows then refresh the worker's view where it is older. See ``docs/scale-out.md``,
"The device registry with N workers".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from thingmodels.ids import now_ms

log = logging.getLogger("voltmesh.registry")

_Key = tuple[str, str, str]
_T = TypeVar("_T")
#: transactions of a flush tried at most this many times (lost insert races, deadlocks, locks)
_ATTEMPTS = 6
#: devices per SELECT of a flush (at most 2 bound parameters each: within SQLite's 32,766)
_SELECT_CHUNK = 5_000


class GatewayRow(SQLModel, table=True):
    """A site gateway."""

    __tablename__ = "gateways"

    id: str = Field(primary_key=True, max_length=128)
    online: bool = False
    session: int = Field(default=0, sa_type=BigInteger)
    last_seen_ms: int | None = Field(default=None, sa_type=BigInteger)
    first_seen_ms: int | None = Field(default=None, sa_type=BigInteger)


class DeviceRow(SQLModel, table=True):
    """A device behind a gateway."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("gateway_id", "product", "device"),)

    id: int | None = Field(default=None, primary_key=True)
    gateway_id: str = Field(index=True, max_length=128)
    product: str = Field(max_length=32)
    device: str = Field(max_length=128)
    online: bool = False
    session: int = Field(default=0, sa_type=BigInteger)
    last_seen_ms: int | None = Field(default=None, sa_type=BigInteger)
    first_seen_ms: int | None = Field(default=None, sa_type=BigInteger)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    measured: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    """When each value of ``properties`` was measured (ms); NULL or a missing name: unknown
    (rows written before revision 0002), so any sample replaces that value."""


@dataclass
class _State:
    online: bool = False
    session: int = 0
    last_seen_ms: int | None = None
    first_seen_ms: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    dirty: bool = True
    measured: dict[str, int] = field(default_factory=dict)
    """When each property's held value was measured (``devices.measured``; see :meth:`seen`).
    A property without a time (an old row's) is never flushed: the row holds it already."""


def make_engine(url: str) -> Engine:
    """An engine for a database URL (``sqlite:///file.db`` or ``postgresql+psycopg://...``)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if sqlite and ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL: readers never wait for the writer (API reads vs. the consumer's writes);
            # busy_timeout: writers from several threads queue instead of failing "locked";
            # synchronous=NORMAL is durable across a process crash in WAL mode
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    return engine


class DeviceRegistry:
    """In-memory presence view with periodic write-behind to SQL."""

    def __init__(self, engine: Engine, *, silence_ms: int | None = None) -> None:
        self.engine = engine
        #: a gateway whose last sign of life is older than this is shown offline (None: never)
        self.silence_ms = silence_ms
        SQLModel.metadata.create_all(engine, tables=[
            GatewayRow.__table__, DeviceRow.__table__,  # type: ignore[attr-defined]
        ])
        self._gateways: dict[str, _State] = {}
        self._devices: dict[tuple[str, str, str], _State] = {}
        self._flush_lock = threading.Lock()
        self._lock = threading.Lock()
        self._sqlite = engine.dialect.name == "sqlite"
        self._load()

    def _load(self) -> None:
        with Session(self.engine) as db:
            for g in db.exec(select(GatewayRow)):
                self._gateways[g.id] = _gateway_state(g)
            for d in db.exec(select(DeviceRow)):
                self._devices[(d.gateway_id, d.product, d.device)] = _device_state(d)

    # -- updates from the consumer (event loop) -------------------------------------------

    def _device(self, gw: str, product: str, device: str) -> _State:
        key = (gw, product, device)
        state = self._devices.get(key)
        if state is None:
            state = self._devices[key] = _State()
        return state

    def seen(self, gw: str, product: str, device: str, ts_ms: int,
             properties: dict[str, Any] | None = None, *, sample_ts: int | None = None) -> None:
        """A message from a device (or the gateway) arrived at ``ts_ms`` (its ``rts``).

        ``properties`` were measured at ``sample_ts`` (the sample's device time, ``ts``; None:
        at ``ts_ms``). Each property keeps the value with the newest measure time, not the last
        to arrive: a backlog a device replays after an outage (older samples after newer live
        ones) does not overwrite what is current. A ``sample_ts`` after ``ts_ms`` counts as
        ``ts_ms`` (nothing is measured after it was received; a device clock running ahead
        cannot pin a value). Equal times: the later arrival wins. Measure times are stored with
        the values (``devices.measured``) and loaded on start, so the rule holds across
        restarts and between workers (:meth:`flush` merges by it). A gateway's own properties
        are kept in memory only (``gateways`` has no column for them).
        """
        when = ts_ms if sample_ts is None else min(sample_ts, ts_ms)
        with self._lock:
            gws = self._gateways.setdefault(gw, _State())
            gws.last_seen_ms = max(gws.last_seen_ms or 0, ts_ms)
            gws.first_seen_ms = gws.first_seen_ms or ts_ms
            gws.dirty = True
            if product == "gateway" and device == gw:
                if properties:
                    _keep_newest(gws, properties, when)
                return
            state = self._device(gw, product, device)
            state.last_seen_ms = max(state.last_seen_ms or 0, ts_ms)
            state.first_seen_ms = state.first_seen_ms or ts_ms
            if properties:
                _keep_newest(state, properties, when)
            state.dirty = True

    def is_online(self, gw: str, product: str, device: str) -> bool:
        """The device's own last known presence (for gateways: the gateway's)."""
        with self._lock:
            if product == "gateway" and device == gw:
                state = self._gateways.get(gw)
            else:
                state = self._devices.get((gw, product, device))
            return bool(state is not None and state.online)

    def presence(self, gw: str, product: str, device: str, online: bool, session: int,
                 ts_ms: int) -> bool:
        """Apply a presence state; False (ignored) when it is from an older session."""
        return self.transition(gw, product, device, online, session, ts_ms) is not None

    def transition(self, gw: str, product: str, device: str, online: bool, session: int,
                   ts_ms: int) -> bool | None:
        """Apply a presence state in one step: None when it is stale (ignored), else whether it
        changed the device's online flag (a transition).

        Stale: from an older session than the newest seen, or an ``online`` of the session
        whose ``offline`` was seen already (the offline of session N always follows its
        online; a late or redelivered online must not resurrect the device).
        """
        with self._lock:
            if product == "gateway" and device == gw:
                state = self._gateways.setdefault(gw, _State())
            else:
                state = self._device(gw, product, device)
            if _rank(online, session) < _rank(state.online, state.session):
                return None
            changed = bool(state.online) != online
            state.online = online
            state.session = session
            state.last_seen_ms = max(state.last_seen_ms or 0, ts_ms)
            state.first_seen_ms = state.first_seen_ms or ts_ms
            state.dirty = True
            return changed

    def _alive(self, online: bool, last_seen_ms: int | None, now: int) -> bool:
        """A gateway's shown presence: online, and heard from within ``silence_ms``."""
        return online and (self.silence_ms is None or (
            last_seen_ms is not None and now - last_seen_ms <= self.silence_ms))

    def online_count(self) -> int:
        """Devices online whose gateway is online (and not silent)."""
        now = now_ms()
        with self._lock:
            alive = {gw for gw, s in self._gateways.items()
                     if self._alive(s.online, s.last_seen_ms, now)}
            return sum(1 for (gw, _, _), s in self._devices.items() if s.online and gw in alive)

    # -- write-behind ----------------------------------------------------------------------

    def flush(self) -> int:
        """Write changed rows; returns how many (call from a worker thread).

        Flushes are serialized: a flush returns only once what it (or a flush running at the
        same time) took from memory is committed, so a read after ``flush()`` sees it.
        """
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            gws = {k: _copy(v) for k, v in self._gateways.items() if v.dirty}
            devs = {k: _copy(v) for k, v in self._devices.items() if v.dirty}
            for v in self._gateways.values():
                v.dirty = False
            for v in self._devices.values():
                v.dirty = False
        if not gws and not devs:
            return 0
        try:
            merged_gws, merged_devs = self._retry(lambda: self._merge(gws, devs))
        except BaseException:
            with self._lock:  # not written: the next flush takes them again
                for gw in gws:
                    self._gateways[gw].dirty = True
                for key in devs:
                    self._devices[key].dirty = True
            raise
        with self._lock:  # what other workers wrote, where this worker's view is older
            for gw, merged in merged_gws.items():
                _refresh(self._gateways[gw], merged)
            for key, merged in merged_devs.items():
                _refresh(self._devices[key], merged)
        return len(gws) + len(devs)

    def _retry(self, work: Callable[[], _T]) -> _T:
        """Run a flush transaction, again when it lost an insert race (another worker created
        the same row first), a deadlock or a lock timeout."""
        for attempt in range(_ATTEMPTS):
            try:
                return work()
            except (IntegrityError, OperationalError) as exc:
                if attempt == _ATTEMPTS - 1:
                    raise
                log.info("registry flush retried (%s)", type(exc.orig).__name__)
                time.sleep(0.02 * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _merge(self, gws: dict[str, _State], devs: dict[_Key, _State],
               ) -> tuple[dict[str, _State], dict[_Key, _State]]:
        """Merge the snapshots into their rows in one transaction, rows locked in one order
        (gateways by id, then devices by row id, new rows inserted by key); return the merged
        rows as states."""
        merged_gws: dict[str, _State] = {}
        merged_devs: dict[_Key, _State] = {}
        with Session(self.engine, expire_on_commit=False) as db:
            if self._sqlite:  # the write lock up front: the rows read are the rows updated
                db.connection().exec_driver_sql("BEGIN IMMEDIATE")
            if gws:
                grows = {g.id: g for g in db.exec(
                    select(GatewayRow).where(col(GatewayRow.id).in_(sorted(gws)))
                    .order_by(col(GatewayRow.id)).with_for_update())}
                for gw in sorted(gws):
                    grow = grows.get(gw) or GatewayRow(id=gw)
                    _merge_presence(grow, gws[gw])
                    db.add(grow)
                    merged_gws[gw] = _gateway_state(grow)
                db.flush()  # new gateways inserted before any device row is locked
            existing: dict[_Key, DeviceRow] = {}
            for chunk in _chunks(sorted(devs), _SELECT_CHUNK):
                # by gateway and device name (few parameters, cheap to send and plan), rows
                # of other keys that match both (rare) are locked too and skipped
                query = select(DeviceRow).where(
                    col(DeviceRow.gateway_id).in_(sorted({k[0] for k in chunk})),
                    col(DeviceRow.device).in_(sorted({k[2] for k in chunk})))
                for row in db.exec(query.order_by(col(DeviceRow.id)).with_for_update()):
                    key = (row.gateway_id, row.product, row.device)
                    if key in devs:
                        existing[key] = row
            for key in sorted(devs):  # new rows inserted in key order too
                gw, product, device = key
                drow = existing.get(key) or DeviceRow(gateway_id=gw, product=product,
                                                      device=device)
                state = devs[key]
                _merge_presence(drow, state)
                _merge_properties(drow, state)
                db.add(drow)
                merged_devs[key] = _device_state(drow)
            db.commit()
        return merged_gws, merged_devs

    # -- queries (API) ---------------------------------------------------------------------

    def list_devices(self, *, gateway: str | None = None, product: str | None = None,
                     online: bool | None = None, limit: int = 500,
                     offset: int = 0) -> list[dict[str, Any]]:
        """Devices from SQL, each with online = its own state and its gateway's."""
        now = now_ms()
        with Session(self.engine) as db:
            gateways = {g.id: g for g in db.exec(select(GatewayRow))}
            query = select(DeviceRow)
            if gateway is not None:
                query = query.where(DeviceRow.gateway_id == gateway)
            if product is not None:
                query = query.where(DeviceRow.product == product)
            query = query.order_by(DeviceRow.gateway_id, DeviceRow.product, DeviceRow.device)
            out = []
            for row in db.exec(query):
                gw = gateways.get(row.gateway_id)
                is_online = bool(row.online and gw is not None and self._alive(
                    gw.online, gw.last_seen_ms, now))
                if online is not None and is_online != online:
                    continue
                out.append({
                    "gateway": row.gateway_id, "product": row.product, "device": row.device,
                    "online": is_online, "session": row.session,
                    "lastSeen": row.last_seen_ms, "firstSeen": row.first_seen_ms,
                    "properties": row.properties or {},
                })
            return out[offset: offset + limit]

    def silent_gateways(self) -> dict[str, tuple[int, int]]:
        """Gateways whose state is online but that were not heard from within ``silence_ms``
        (SQL: every worker's flushed view): ``{gateway: (session, last_seen_ms)}``."""
        if self.silence_ms is None:
            return {}
        now = now_ms()
        with Session(self.engine) as db:
            return {g.id: (g.session, g.last_seen_ms or 0)
                    for g in db.exec(select(GatewayRow).where(col(GatewayRow.online)))
                    if not self._alive(g.online, g.last_seen_ms, now)}

    def list_gateways(self) -> list[dict[str, Any]]:
        """Gateways from SQL (online: its state, unless silent for longer than
        ``silence_ms``)."""
        now = now_ms()
        with Session(self.engine) as db:
            return [
                {"gateway": g.id, "online": self._alive(g.online, g.last_seen_ms, now),
                 "session": g.session, "lastSeen": g.last_seen_ms}
                for g in db.exec(select(GatewayRow).order_by(GatewayRow.id))
            ]


def _keep_newest(state: _State, properties: dict[str, Any], when: int) -> None:
    for name, value in properties.items():
        held = state.measured.get(name)
        if held is None or when >= held:
            state.properties[name] = value
            state.measured[name] = when


def _rank(online: bool, session: int) -> tuple[int, bool]:
    """The order of presence states: the higher session, then offline after online."""
    return session, not online


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _merge_presence(row: GatewayRow | DeviceRow, state: _State) -> None:
    # attributes are set only when they change (an ORM attribute set costs, and no UPDATE is
    # sent for a row whose merge changed nothing)
    if _rank(state.online, state.session) > _rank(row.online, row.session):
        if row.online != state.online:
            row.online = state.online
        row.session = state.session
    last_seen = _max(row.last_seen_ms, state.last_seen_ms)
    if last_seen != row.last_seen_ms:
        row.last_seen_ms = last_seen
    first_seen = _min(row.first_seen_ms, state.first_seen_ms)
    if first_seen != row.first_seen_ms:
        row.first_seen_ms = first_seen


def _merge_properties(row: DeviceRow, state: _State) -> None:
    """Merge a snapshot's properties into a row's: the snapshot's timed values win unless the
    row's is newer. New dicts are assigned, and only on a change (the ORM sees a JSON change
    only on assignment)."""
    properties, measured = row.properties or {}, row.measured or {}
    changed: list[tuple[str, Any, int]] = []
    for name, when in state.measured.items():
        held = measured.get(name)
        if held is None or when >= held:
            value = state.properties.get(name)
            if held != when or name not in properties or properties[name] != value:
                changed.append((name, value, when))
    if not changed and row.measured is not None:
        return
    properties, measured = dict(properties), dict(measured)
    for name, value, when in changed:
        properties[name] = value
        measured[name] = when
    row.properties, row.measured = properties, measured


def _refresh(state: _State, merged: _State) -> None:
    """Take from a merged row what is newer than the worker's view (not marked dirty: SQL has
    it)."""
    if _rank(merged.online, merged.session) > _rank(state.online, state.session):
        state.online, state.session = merged.online, merged.session
    state.last_seen_ms = _max(state.last_seen_ms, merged.last_seen_ms)
    state.first_seen_ms = _min(state.first_seen_ms, merged.first_seen_ms)
    for name, value in merged.properties.items():
        when = merged.measured.get(name)
        held = state.measured.get(name)
        if when is None:
            state.properties.setdefault(name, value)
        elif held is None or when > held:
            state.properties[name] = value
            state.measured[name] = when


def _gateway_state(row: GatewayRow) -> _State:
    return _State(row.online, row.session, row.last_seen_ms, row.first_seen_ms, {}, False)


def _device_state(row: DeviceRow) -> _State:
    return _State(row.online, row.session, row.last_seen_ms, row.first_seen_ms,
                  dict(row.properties or {}), False, dict(row.measured or {}))


def _copy(state: _State) -> _State:
    return _State(state.online, state.session, state.last_seen_ms, state.first_seen_ms,
                  dict(state.properties), True, dict(state.measured))


def _chunks(items: list[_T], size: int) -> Iterable[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start: start + size]
