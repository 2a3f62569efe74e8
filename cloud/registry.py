"""The device registry: gateways and devices with presence and last-seen, in SQL (SQLModel).

The consumer updates an in-memory view per message (cheap) and :meth:`DeviceRegistry.flush`
writes what changed in one transaction (from a worker thread), so SQL cost does not grow with the
message rate. SQLite by default, PostgreSQL by URL, same code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select


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


@dataclass
class _State:
    online: bool = False
    session: int = 0
    last_seen_ms: int | None = None
    first_seen_ms: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    dirty: bool = True
    measured: dict[str, int] = field(default_factory=dict)
    """When each property's held value was measured (memory only; see :meth:`seen`)."""


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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        SQLModel.metadata.create_all(engine, tables=[
            GatewayRow.__table__, DeviceRow.__table__,  # type: ignore[attr-defined]
        ])
        self._gateways: dict[str, _State] = {}
        self._devices: dict[tuple[str, str, str], _State] = {}
        self._flush_lock = threading.Lock()
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        with Session(self.engine) as db:
            for g in db.exec(select(GatewayRow)):
                self._gateways[g.id] = _State(g.online, g.session, g.last_seen_ms,
                                              g.first_seen_ms, {}, False)
            for d in db.exec(select(DeviceRow)):
                self._devices[(d.gateway_id, d.product, d.device)] = _State(
                    d.online, d.session, d.last_seen_ms, d.first_seen_ms, dict(d.properties or {}),
                    False)

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
        cannot pin a value). Equal times: the later arrival wins. Measure times are kept in
        memory only: after a restart the first sample of each property is taken as it comes.
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
        """Apply a presence state in one step: None when it is from an older session (ignored),
        else whether it changed the device's online flag (a transition)."""
        with self._lock:
            if product == "gateway" and device == gw:
                state = self._gateways.setdefault(gw, _State())
            else:
                state = self._device(gw, product, device)
            if session < state.session:
                return None
            changed = bool(state.online) != online
            state.online = online
            state.session = session
            state.last_seen_ms = max(state.last_seen_ms or 0, ts_ms)
            state.first_seen_ms = state.first_seen_ms or ts_ms
            state.dirty = True
            return changed

    def online_count(self) -> int:
        """Devices online whose gateway is online."""
        with self._lock:
            return sum(
                1 for (gw, _, _), s in self._devices.items()
                if s.online and self._gateways.get(gw, _State()).online
            )

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
        with Session(self.engine) as db:
            for gw, s in gws.items():
                grow = db.get(GatewayRow, gw) or GatewayRow(id=gw)
                grow.online, grow.session = s.online, s.session
                grow.last_seen_ms, grow.first_seen_ms = s.last_seen_ms, s.first_seen_ms
                db.add(grow)
            existing = {}
            if devs:
                for row in db.exec(select(DeviceRow).where(
                        DeviceRow.gateway_id.in_({k[0] for k in devs}))):  # type: ignore[attr-defined]
                    existing[(row.gateway_id, row.product, row.device)] = row
            for (gw, product, device), s in devs.items():
                drow = existing.get((gw, product, device)) or DeviceRow(
                    gateway_id=gw, product=product, device=device)
                drow.online, drow.session = s.online, s.session
                drow.last_seen_ms, drow.first_seen_ms = s.last_seen_ms, s.first_seen_ms
                drow.properties = dict(s.properties)
                db.add(drow)
            db.commit()
        return len(gws) + len(devs)

    # -- queries (API) ---------------------------------------------------------------------

    def list_devices(self, *, gateway: str | None = None, product: str | None = None,
                     online: bool | None = None, limit: int = 500,
                     offset: int = 0) -> list[dict[str, Any]]:
        """Devices from SQL, each with online = its own state and its gateway's."""
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
                is_online = bool(row.online and gw is not None and gw.online)
                if online is not None and is_online != online:
                    continue
                out.append({
                    "gateway": row.gateway_id, "product": row.product, "device": row.device,
                    "online": is_online, "session": row.session,
                    "lastSeen": row.last_seen_ms, "firstSeen": row.first_seen_ms,
                    "properties": row.properties or {},
                })
            return out[offset: offset + limit]

    def list_gateways(self) -> list[dict[str, Any]]:
        """Gateways from SQL."""
        with Session(self.engine) as db:
            return [
                {"gateway": g.id, "online": g.online, "session": g.session,
                 "lastSeen": g.last_seen_ms}
                for g in db.exec(select(GatewayRow).order_by(GatewayRow.id))
            ]


def _keep_newest(state: _State, properties: dict[str, Any], when: int) -> None:
    for name, value in properties.items():
        held = state.measured.get(name)
        if held is None or when >= held:
            state.properties[name] = value
            state.measured[name] = when


def _copy(state: _State) -> _State:
    return _State(state.online, state.session, state.last_seen_ms, state.first_seen_ms,
                  dict(state.properties), True)
