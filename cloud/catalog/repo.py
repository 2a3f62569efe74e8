"""The catalogue repository: stations, chargers, connectors and tariff versions in SQL.

A :class:`Catalog` wraps a synchronous SQLAlchemy engine (SQLite or PostgreSQL, same code); call
it from a worker thread in async code (``await asyncio.to_thread(catalog.resolve_connector, gw,
device)``). Every read that the API serves takes ``scope``: a callable turning a ``tenant_id``
column into a WHERE clause -- pass ``principal.tenant_clause`` -- so a caller only ever sees its
tenants' rows; ``None`` means unrestricted (internal callers such as orders).

Identifiers: stations, chargers and connectors get ULIDs; tariff versions get an integer row id
(its ``% 10000`` is the YKC billing-model code, so every new version has a new code) and a version
number per station (1, 2, ...). Connector thing ids follow the bridges: YKC pile code + 2-digit
gun (``3201020000000101``), OCPP ``{chargePointId}-{n}``. Codes for app start (QR or typed) are
unique across chargers and connectors: a charger's code is given or a random 10-digit number,
its connectors' codes are the charger code + 2-digit number.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from cloud.billing.errors import TariffError
from cloud.billing.money import decimals, to_decimal
from cloud.billing.tariff import Tariff, edge_doc
from cloud.catalog.errors import Conflict, InvalidInput, NotFound
from cloud.catalog.models import (
    CATALOG_TABLES,
    DEFAULT_TZ,
    Charger,
    ChargerRow,
    CodeRef,
    Connector,
    ConnectorRef,
    ConnectorRow,
    GatewaySyncRow,
    Kind,
    NearbyStation,
    Protocol,
    Station,
    StationRow,
    StationStatus,
    TariffInForce,
    TariffRow,
    TariffVersion,
    charger_value,
    connector_value,
    station_value,
    tariff_value,
)
from cloud.catalog.modes import OperatingMode
from thingmodels.errors import TopicError
from thingmodels.ids import new_id, now_ms
from thingmodels.topics import check_id

#: principal.tenant_clause: a tenant_id column -> a WHERE clause
TenantScope = Callable[[Any], Any]
#: live connector status by (gateway, connector device id); None when unknown
LiveStatus = Callable[[str, str], str | None]

EARTH_RADIUS_KM = 6371.0088
_KM_PER_DEG_LAT = 110.574  # the shortest degree of latitude: the box is never too small
_KM_PER_DEG_LON_EQ = 111.320
_CODE = re.compile(r"^[A-Za-z0-9]{4,32}$")
_YKC_PILE = re.compile(r"^\d{14}$")
MAX_CONNECTORS = 32

_T = TypeVar("_T")


def _where(query: Any, column: Any, scope: TenantScope | None) -> Any:
    return query if scope is None else query.where(scope(column))


def _text(value: object, name: str, max_len: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: expected a string, got {value!r}")
    value = value.strip()
    if not value and not empty:
        raise InvalidInput(f"{name}: must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{name}: longer than {max_len} characters")
    return value


def _enum(value: object, enum: type[_T], name: str) -> _T:
    try:
        return enum(value)  # type: ignore[call-arg]
    except ValueError:
        allowed = ", ".join(str(m) for m in enum)  # type: ignore[attr-defined]
        raise InvalidInput(f"{name}: {value!r} is not one of {allowed}") from None


def _coordinate(value: object, name: str, bound: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidInput(f"{name}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not -bound <= number <= bound:
        raise InvalidInput(f"{name}: {value} is outside -{bound}..{bound}")
    return number


def _tz(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"tz: expected an IANA time zone name, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"tz: unknown time zone {value!r}") from None
    return value


def _rated_w(value: object) -> int:
    try:
        kw = to_decimal(value, "rated_kw")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not Decimal(0) < kw <= Decimal(2000):
        raise InvalidInput(f"rated_kw: {kw} is outside 0 (excluded)..2000 kW")
    if decimals(kw) > 3:
        raise InvalidInput(f"rated_kw: {kw} has more than 3 decimals (1 W)")
    return int(kw * 1000)


def _code(value: object, name: str) -> str:
    if not isinstance(value, str) or not _CODE.match(value):
        raise InvalidInput(f"{name}: 4-32 letters or digits, got {value!r}")
    return value


def _thing_id(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: expected a string, got {value!r}")
    try:
        return check_id(value, name)
    except TopicError as exc:
        raise InvalidInput(str(exc)) from None


def connector_device_id(protocol: str, charger_device_id: str, number: int) -> str:
    """The connector thing id for connector ``number`` of a charger (see the bridges)."""
    if protocol == Protocol.YKC:
        return f"{charger_device_id}{number:02d}"
    return f"{charger_device_id}-{number}"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class Catalog:
    """Stations, chargers, connectors and tariffs (see the module documentation)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], int] = now_ms,
                 tariff_cache: int = 1024) -> None:
        self.engine = engine
        self.clock = clock
        SQLModel.metadata.create_all(engine, tables=[
            t.__table__ for t in CATALOG_TABLES])  # type: ignore[attr-defined]
        self._tariffs: OrderedDict[int, Tariff] = OrderedDict()
        self._tariff_cache = tariff_cache
        self._lock = threading.Lock()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- stations -------------------------------------------------------------------------------

    def create_station(self, *, tenant_id: str, name: str, lat: float, lon: float,
                       address: str = "", tz: str = DEFAULT_TZ,
                       status: str = StationStatus.ACTIVE) -> Station:
        """Create a station."""
        row = StationRow(
            id=new_id(), tenant_id=_text(tenant_id, "tenant_id", 64),
            name=_text(name, "name", 200), address=_text(address, "address", 500, empty=True),
            lat=_coordinate(lat, "lat", 90), lon=_coordinate(lon, "lon", 180), tz=_tz(tz),
            status=_enum(status, StationStatus, "status").value, created_ms=self.clock())
        with self._session() as db:
            db.add(row)
            db.commit()
        return station_value(row)

    def _station_row(self, db: Session, station_id: str, scope: TenantScope | None) -> StationRow:
        query = _where(select(StationRow).where(StationRow.id == station_id),
                       StationRow.tenant_id, scope)
        row = db.exec(query).first()
        if row is None:
            raise NotFound(f"no station {station_id!r}")
        return row  # type: ignore[no-any-return]

    def get_station(self, station_id: str, *, scope: TenantScope | None = None) -> Station:
        """A station (NotFound when it does not exist or is not visible)."""
        with self._session() as db:
            return station_value(self._station_row(db, station_id, scope))

    def list_stations(self, *, scope: TenantScope | None = None, status: str | None = None,
                      limit: int = 500, offset: int = 0) -> list[Station]:
        """Stations by name."""
        query = _where(select(StationRow), StationRow.tenant_id, scope)
        if status is not None:
            query = query.where(StationRow.status == status)
        query = query.order_by(StationRow.name, StationRow.id).offset(offset).limit(limit)
        with self._session() as db:
            return [station_value(r) for r in db.exec(query)]

    def update_station(self, station_id: str, *, scope: TenantScope | None = None,
                       **changes: Any) -> Station:
        """Change name, address, lat, lon, tz or status."""
        checks: dict[str, Callable[[Any], Any]] = {
            "name": lambda v: _text(v, "name", 200),
            "address": lambda v: _text(v, "address", 500, empty=True),
            "lat": lambda v: _coordinate(v, "lat", 90),
            "lon": lambda v: _coordinate(v, "lon", 180),
            "tz": _tz,
            "status": lambda v: _enum(v, StationStatus, "status").value,
        }
        unknown = set(changes) - set(checks)
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a station")
        clean = {k: checks[k](v) for k, v in changes.items()}
        with self._session() as db:
            row = self._station_row(db, station_id, scope)
            for key, value in clean.items():
                setattr(row, key, value)
            db.add(row)
            db.commit()
            return station_value(row)

    def delete_station(self, station_id: str, *, scope: TenantScope | None = None) -> None:
        """Delete a station without chargers (its tariff versions go with it)."""
        with self._session() as db:
            row = self._station_row(db, station_id, scope)
            if db.exec(select(ChargerRow.id).where(ChargerRow.station_id == station_id)).first():
                raise Conflict(f"station {station_id!r} still has chargers; remove them first")
            for tariff in db.exec(select(TariffRow).where(TariffRow.station_id == station_id)):
                db.delete(tariff)
            db.flush()
            db.delete(row)
            db.commit()

    def nearby(self, lat: float, lon: float, radius_km: float, *,
               scope: TenantScope | None = None, status: str | None = StationStatus.ACTIVE,
               limit: int = 100) -> list[NearbyStation]:
        """Stations within ``radius_km`` of a point, nearest first.

        A bounding box in SQL (indexed lat/lon; longitude wrap at ±180 and the poles handled)
        preselects; the haversine distance in Python decides.
        """
        lat = _coordinate(lat, "lat", 90)
        lon = _coordinate(lon, "lon", 180)
        if isinstance(radius_km, bool) or not isinstance(radius_km, int | float) \
                or not 0 < radius_km <= 20_000:
            raise InvalidInput(f"radius_km: expected 0 < radius_km <= 20000, got {radius_km!r}")
        dlat = radius_km / _KM_PER_DEG_LAT
        query = _where(select(StationRow), StationRow.tenant_id, scope).where(
            StationRow.lat >= lat - dlat, StationRow.lat <= lat + dlat)
        if abs(lat) + dlat < 89.0:
            dlon = radius_km / (_KM_PER_DEG_LON_EQ * math.cos(math.radians(abs(lat) + dlat)))
            if dlon < 180:
                lo, hi = lon - dlon, lon + dlon
                if lo < -180:
                    query = query.where(or_(col(StationRow.lon) >= lo + 360, col(StationRow.lon) <= hi))
                elif hi > 180:
                    query = query.where(or_(col(StationRow.lon) >= lo, col(StationRow.lon) <= hi - 360))
                else:
                    query = query.where(StationRow.lon >= lo, StationRow.lon <= hi)
        if status is not None:
            query = query.where(StationRow.status == status)
        with self._session() as db:
            rows = list(db.exec(query))
        found = []
        for row in rows:
            distance = haversine_km(lat, lon, row.lat, row.lon)
            if distance <= radius_km:
                found.append(NearbyStation(station_value(row), round(distance, 3)))
        found.sort(key=lambda n: (n.distance_km, n.station.id))
        return found[:limit]

    # -- chargers and connectors -----------------------------------------------------------------

    def _code_taken(self, db: Session, code: str) -> bool:
        return db.exec(select(ChargerRow.id).where(ChargerRow.code == code)).first() is not None \
            or db.exec(select(ConnectorRow.id).where(ConnectorRow.code == code)).first() \
            is not None

    def _new_code(self, db: Session, connector_count: int) -> str:
        for _ in range(20):
            code = str(1_000_000_000 + secrets.randbelow(9_000_000_000))
            wanted = [code] + [f"{code}{n:02d}" for n in range(1, connector_count + 1)]
            if not any(self._code_taken(db, c) for c in wanted):
                return code
        raise Conflict("could not find a free charger code")  # pragma: no cover

    def register_charger(self, *, station_id: str, gateway_id: str, device_id: str,
                         protocol: str, kind: str, rated_kw: Decimal | int | str,
                         operating_mode: str = OperatingMode.ONLINE_BILLING,
                         connector_count: int = 1, code: str | None = None,
                         password: str | None = None,
                         scope: TenantScope | None = None) -> Charger:
        """Register a charger and its connectors 1..n at a station (the station's tenant).

        ``password`` (OCPP HTTP Basic, security profile 1/2) is stored as its SHA-256, which
        is what the gateway checks. Marks the gateway for provisioning.
        """
        proto = _enum(protocol, Protocol, "protocol")
        gw = _thing_id(gateway_id, "gateway_id")
        device = _thing_id(device_id, "device_id")
        if proto is Protocol.YKC and not _YKC_PILE.match(device):
            raise InvalidInput(f"device_id: a YKC pile code is 14 digits, got {device!r}")
        if proto is not Protocol.YKC and len(device) > 120:
            raise InvalidInput("device_id: an OCPP chargePointId here is at most 120 characters")
        if isinstance(connector_count, bool) or not isinstance(connector_count, int) or \
                not 1 <= connector_count <= MAX_CONNECTORS:
            raise InvalidInput(f"connector_count: 1..{MAX_CONNECTORS}, got {connector_count!r}")
        rated_w = _rated_w(rated_kw)
        kind_value = _enum(kind, Kind, "kind").value
        mode = _enum(operating_mode, OperatingMode, "operating_mode").value
        pw_hash = None
        if password is not None:
            if not isinstance(password, str) or not 8 <= len(password) <= 64 \
                    or not password.isprintable():
                raise InvalidInput("password: 8-64 printable characters")
            pw_hash = hashlib.sha256(password.encode()).hexdigest()
        created = self.clock()
        with self._session() as db:
            station = self._station_row(db, station_id, scope)
            if db.exec(select(ChargerRow.id).where(ChargerRow.gateway_id == gw,
                                                   ChargerRow.device_id == device)).first():
                raise Conflict(f"charger {device!r} is already registered on gateway {gw!r}")
            if code is None:
                charger_code = self._new_code(db, connector_count)
            else:
                charger_code = _code(code, "code")
                wanted = [charger_code] + [f"{charger_code}{n:02d}"
                                           for n in range(1, connector_count + 1)]
                taken = [c for c in wanted if self._code_taken(db, c)]
                if taken:
                    raise Conflict(f"code(s) {', '.join(taken)} already in use")
            row = ChargerRow(
                id=new_id(), tenant_id=station.tenant_id, station_id=station.id, gateway_id=gw,
                device_id=device, protocol=proto.value, kind=kind_value, rated_w=rated_w,
                operating_mode=mode, connector_count=connector_count, code=charger_code,
                password_sha256=pw_hash, created_ms=created)
            db.add(row)
            connectors = []
            for number in range(1, connector_count + 1):
                connectors.append(ConnectorRow(
                    id=new_id(), tenant_id=station.tenant_id, station_id=station.id,
                    charger_id=row.id, gateway_id=gw, number=number,
                    device_id=_thing_id(connector_device_id(proto, device, number),
                                        "connector device id"),
                    code=f"{charger_code}{number:02d}", created_ms=created))
            db.add_all(connectors)
            self._bump(db, gw, station.tenant_id)
            try:
                db.commit()
            except IntegrityError as exc:
                raise Conflict(f"charger {device!r} or its codes are already registered "
                               f"({exc.orig})") from None
            return charger_value(row, connectors)

    def _charger_row(self, db: Session, charger_id: str, scope: TenantScope | None) -> ChargerRow:
        query = _where(select(ChargerRow).where(ChargerRow.id == charger_id),
                       ChargerRow.tenant_id, scope)
        row = db.exec(query).first()
        if row is None:
            raise NotFound(f"no charger {charger_id!r}")
        return row  # type: ignore[no-any-return]

    def _connectors_of(self, db: Session, charger_ids: Iterable[str]) -> dict[str, list[ConnectorRow]]:
        ids = list(set(charger_ids))
        out: dict[str, list[ConnectorRow]] = {i: [] for i in ids}
        if ids:
            for c in db.exec(select(ConnectorRow).where(col(ConnectorRow.charger_id).in_(ids))):
                out[c.charger_id].append(c)
        return out

    def get_charger(self, charger_id: str, *, scope: TenantScope | None = None) -> Charger:
        """A charger with its connectors."""
        with self._session() as db:
            row = self._charger_row(db, charger_id, scope)
            return charger_value(row, self._connectors_of(db, [row.id])[row.id])

    def list_chargers(self, *, scope: TenantScope | None = None, station_id: str | None = None,
                      gateway_id: str | None = None, limit: int = 500,
                      offset: int = 0) -> list[Charger]:
        """Chargers (with connectors) by station and device id."""
        query = _where(select(ChargerRow), ChargerRow.tenant_id, scope)
        if station_id is not None:
            query = query.where(ChargerRow.station_id == station_id)
        if gateway_id is not None:
            query = query.where(ChargerRow.gateway_id == gateway_id)
        query = query.order_by(ChargerRow.station_id, ChargerRow.device_id, ChargerRow.id) \
            .offset(offset).limit(limit)
        with self._session() as db:
            rows = list(db.exec(query))
            connectors = self._connectors_of(db, [r.id for r in rows])
            return [charger_value(r, connectors[r.id]) for r in rows]

    def update_charger(self, charger_id: str, *, scope: TenantScope | None = None,
                       **changes: Any) -> Charger:
        """Change operating_mode, rated_kw, kind or password (None clears it)."""
        checks: dict[str, Callable[[Any], Any]] = {
            "operating_mode": lambda v: _enum(v, OperatingMode, "operating_mode").value,
            "rated_kw": _rated_w,
            "kind": lambda v: _enum(v, Kind, "kind").value,
            "password": lambda v: None if v is None else (
                hashlib.sha256(v.encode()).hexdigest()
                if isinstance(v, str) and 8 <= len(v) <= 64 and v.isprintable()
                else _raise(InvalidInput("password: 8-64 printable characters"))),
        }
        unknown = set(changes) - set(checks)
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a charger "
                               "(re-register it to move it)")
        clean = {k: checks[k](v) for k, v in changes.items()}
        columns = {"rated_kw": "rated_w", "password": "password_sha256"}
        with self._session() as db:
            row = self._charger_row(db, charger_id, scope)
            for key, value in clean.items():
                setattr(row, columns.get(key, key), value)
            db.add(row)
            self._bump(db, row.gateway_id, row.tenant_id)
            db.commit()
            return charger_value(row, self._connectors_of(db, [row.id])[row.id])

    def delete_charger(self, charger_id: str, *, scope: TenantScope | None = None) -> Charger:
        """Remove a charger and its connectors (returns what was removed)."""
        with self._session() as db:
            row = self._charger_row(db, charger_id, scope)
            connectors = self._connectors_of(db, [row.id])[row.id]
            removed = charger_value(row, connectors)
            for connector in connectors:
                db.delete(connector)
            db.flush()
            db.delete(row)
            self._bump(db, row.gateway_id, row.tenant_id)
            db.commit()
            return removed

    def _refs(self, db: Session, query: Any) -> list[ConnectorRef]:
        out = []
        for connector, charger, station in db.exec(query):
            out.append(ConnectorRef(
                tenant_id=connector.tenant_id, station_id=connector.station_id,
                charger_id=charger.id, connector_id=connector.id, gateway_id=charger.gateway_id,
                charger_device_id=charger.device_id, connector_device_id=connector.device_id,
                number=connector.number, tz=station.tz, operating_mode=charger.operating_mode,
                protocol=charger.protocol, kind=charger.kind,
                rated_kw=Decimal(charger.rated_w) / 1000, code=connector.code))
        return out

    @staticmethod
    def _ref_query() -> Any:
        return (select(ConnectorRow, ChargerRow, StationRow)
                .join(ChargerRow, ChargerRow.id == ConnectorRow.charger_id)  # type: ignore[arg-type]
                .join(StationRow, StationRow.id == ConnectorRow.station_id))  # type: ignore[arg-type]

    def resolve_connector(self, gw: str, device_id: str) -> ConnectorRef | None:
        """The connector a session on ``(gateway, connector thing id)`` runs on, or None."""
        query = self._ref_query().where(ConnectorRow.gateway_id == gw,
                                        ConnectorRow.device_id == device_id)
        with self._session() as db:
            refs = self._refs(db, query)
        return refs[0] if refs else None

    def resolve_code(self, code: str) -> CodeRef | None:
        """What a QR / typed code names: a connector, or a charger with all its connectors."""
        if not isinstance(code, str) or not _CODE.match(code.strip()):
            return None
        code = code.strip()
        with self._session() as db:
            refs = self._refs(db, self._ref_query().where(ConnectorRow.code == code))
            if refs:
                return CodeRef("connector", code, tuple(refs))
            charger = db.exec(select(ChargerRow).where(ChargerRow.code == code)).first()
            if charger is None:
                return None
            refs = self._refs(db, self._ref_query().where(ConnectorRow.charger_id == charger.id)
                              .order_by(ConnectorRow.number))
            return CodeRef("charger", code, tuple(refs))

    def connector_refs(self, *, scope: TenantScope | None = None, station_id: str | None = None,
                       charger_id: str | None = None, limit: int = 5000,
                       offset: int = 0) -> list[ConnectorRef]:
        """Connectors (as refs) of a station or charger."""
        query = _where(self._ref_query(), ConnectorRow.tenant_id, scope)
        if station_id is not None:
            query = query.where(ConnectorRow.station_id == station_id)
        if charger_id is not None:
            query = query.where(ConnectorRow.charger_id == charger_id)
        query = query.order_by(ChargerRow.device_id, ConnectorRow.number) \
            .offset(offset).limit(limit)
        with self._session() as db:
            return self._refs(db, query)

    def get_connector(self, connector_id: str, *, scope: TenantScope | None = None) -> Connector:
        """A connector."""
        query = _where(select(ConnectorRow).where(ConnectorRow.id == connector_id),
                       ConnectorRow.tenant_id, scope)
        with self._session() as db:
            row = db.exec(query).first()
        if row is None:
            raise NotFound(f"no connector {connector_id!r}")
        return connector_value(row)

    def free_connectors(self, station_id: str, live_status: LiveStatus, *,
                        scope: TenantScope | None = None) -> list[ConnectorRef]:
        """Connectors of a station whose live status is ``available``."""
        with self._session() as db:
            self._station_row(db, station_id, scope)
        refs = self.connector_refs(scope=scope, station_id=station_id)
        return [r for r in refs if live_status(r.gateway_id, r.connector_device_id) == "available"]

    # -- tariffs --------------------------------------------------------------------------------

    def create_tariff(self, station_id: str, doc: dict[str, Any], *, name: str | None = None,
                      effective_from_ms: int | None = None, ykc_rounding: str = "refuse",
                      scope: TenantScope | None = None) -> TariffVersion:
        """Store a new tariff version for a station.

        The document is validated (:meth:`Tariff.from_doc`); its ``tz`` defaults to the
        station's, ``effective_from`` to ``effective_from_ms`` or now. When the station has YKC
        chargers, the tariff must compile into a YKC model under ``ykc_rounding``.
        """
        if ykc_rounding not in ("refuse", "majority"):
            raise InvalidInput(f"ykc_rounding: refuse or majority, got {ykc_rounding!r}")
        if not isinstance(doc, dict):
            raise InvalidInput("doc: expected a tariff document (mapping)")
        with self._session() as db:
            station = self._station_row(db, station_id, scope)
            full = dict(doc)
            full.setdefault("tz", station.tz)
            if effective_from_ms is not None:
                full["effective_from"] = effective_from_ms
            full.setdefault("effective_from", self.clock())
            if name is not None:
                full["name"] = name
            try:
                tariff = Tariff.from_doc(full)
            except TariffError as exc:
                raise InvalidInput(f"tariff: {exc}") from None
            has_ykc = db.exec(select(ChargerRow.id).where(
                ChargerRow.station_id == station_id,
                ChargerRow.protocol == Protocol.YKC.value)).first() is not None
            if has_ykc:
                try:
                    edge_doc(tariff, 1, rounding=ykc_rounding)  # type: ignore[arg-type]
                except TariffError as exc:
                    raise InvalidInput(f"tariff: the station has YKC chargers: {exc}") from None
            assert tariff.effective_from_ms is not None
            db.rollback()
            for attempt in range(50):
                # PostgreSQL: the station row lock serializes version numbers per station;
                # SQLite (no row locks): a concurrent insert fails the unique constraint and
                # the next number is tried
                db.exec(select(StationRow.id).where(StationRow.id == station_id)
                        .with_for_update()).first()
                latest = db.exec(select(func.max(TariffRow.version))
                                 .where(TariffRow.station_id == station_id)).one()
                row = TariffRow(
                    tenant_id=station.tenant_id, station_id=station_id, name=tariff.name,
                    effective_from_ms=tariff.effective_from_ms, doc=tariff.to_doc(),
                    version=(latest or 0) + 1, ykc_rounding=ykc_rounding,
                    created_ms=self.clock())
                db.add(row)
                try:
                    db.commit()
                except IntegrityError:  # a concurrent version: take the next number
                    db.rollback()
                    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                    continue
                return tariff_value(row)
        raise Conflict("could not allocate a tariff version")  # pragma: no cover

    def list_tariffs(self, station_id: str, *,
                     scope: TenantScope | None = None) -> list[TariffVersion]:
        """A station's tariff versions, newest first."""
        with self._session() as db:
            self._station_row(db, station_id, scope)
            query = _where(select(TariffRow).where(TariffRow.station_id == station_id),
                           TariffRow.tenant_id, scope).order_by(col(TariffRow.version).desc())
            return [tariff_value(r) for r in db.exec(query)]

    def get_tariff(self, tariff_id: int, *, scope: TenantScope | None = None) -> TariffVersion:
        """A tariff version by row id."""
        query = _where(select(TariffRow).where(TariffRow.id == tariff_id),
                       TariffRow.tenant_id, scope)
        with self._session() as db:
            row = db.exec(query).first()
        if row is None:
            raise NotFound(f"no tariff {tariff_id!r}")
        return tariff_value(row)

    def parsed(self, version: TariffVersion) -> Tariff:
        """The parsed tariff of a stored version (cached: versions never change)."""
        with self._lock:
            held = self._tariffs.get(version.id)
            if held is not None:
                self._tariffs.move_to_end(version.id)
                return held
        tariff = Tariff.from_doc(version.doc)
        with self._lock:
            self._tariffs[version.id] = tariff
            while len(self._tariffs) > self._tariff_cache:
                self._tariffs.popitem(last=False)
        return tariff

    def tariff_at(self, station_id: str, at_ms: int, *,
                  scope: TenantScope | None = None) -> TariffInForce | None:
        """The version in force at ``at_ms`` (latest effective_from <= at_ms; then highest
        version), with its parsed tariff; None when the station has none yet."""
        query = _where(select(TariffRow).where(TariffRow.station_id == station_id,
                                               TariffRow.effective_from_ms <= at_ms),
                       TariffRow.tenant_id, scope) \
            .order_by(col(TariffRow.effective_from_ms).desc(), col(TariffRow.version).desc()) \
            .limit(1)
        with self._session() as db:
            row = db.exec(query).first()
        if row is None:
            return None
        version = tariff_value(row)
        return TariffInForce(version, self.parsed(version))

    # -- provisioning bookkeeping ------------------------------------------------------------

    def _bump(self, db: Session, gw: str, tenant_id: str) -> None:
        """Mark a gateway's desired state as changed (atomic increment, in ``db``'s
        transaction)."""
        result = db.execute(update(GatewaySyncRow).where(col(GatewaySyncRow.gateway_id) == gw)
                            .values(generation=GatewaySyncRow.generation + 1))
        if result.rowcount:  # type: ignore[attr-defined]
            return
        try:
            with db.begin_nested():
                db.add(GatewaySyncRow(gateway_id=gw, tenant_id=tenant_id, generation=1))
        except IntegrityError:  # created concurrently
            db.execute(update(GatewaySyncRow).where(col(GatewaySyncRow.gateway_id) == gw)
                       .values(generation=GatewaySyncRow.generation + 1))

    def mark_changed(self, gateways: Iterable[str], tenant_id: str = "") -> None:
        """Mark gateways for provisioning (their desired state must be pushed again)."""
        with self._session() as db:
            for gw in sorted(set(gateways)):
                self._bump(db, gw, tenant_id)
            db.commit()

    def sync_state(self, gw: str) -> tuple[int, int]:
        """``(generation, pushed_generation)`` of a gateway (0, 0 when never changed)."""
        with self._session() as db:
            row = db.get(GatewaySyncRow, gw)
        return (row.generation, row.pushed_generation) if row is not None else (0, 0)

    def mark_pushed(self, gw: str, generation: int, *, error: str | None = None) -> None:
        """Record a push of ``generation`` (or a failed attempt with ``error``)."""
        with self._session() as db:
            if error is not None:
                db.execute(update(GatewaySyncRow).where(col(GatewaySyncRow.gateway_id) == gw)
                           .values(last_error=error[:500]))
            else:
                db.execute(update(GatewaySyncRow).where(col(GatewaySyncRow.gateway_id) == gw)
                           .values(pushed_generation=case(
                               (col(GatewaySyncRow.pushed_generation) < generation, generation),
                               else_=GatewaySyncRow.pushed_generation),
                               pushed_ms=self.clock(), last_error=None))
            db.commit()

    def dirty_gateways(self) -> list[str]:
        """Gateways whose desired state changed since their last successful push."""
        with self._session() as db:
            return list(db.exec(select(GatewaySyncRow.gateway_id).where(
                col(GatewaySyncRow.generation) > col(GatewaySyncRow.pushed_generation))
                .order_by(GatewaySyncRow.gateway_id)))

    def gateways_of_station(self, station_id: str) -> list[str]:
        """Gateways serving a station's chargers."""
        with self._session() as db:
            return sorted(set(db.exec(select(ChargerRow.gateway_id)
                                      .where(ChargerRow.station_id == station_id))))

    def gateway_tenants(self, gw: str) -> list[str]:
        """Tenants whose chargers sit behind a gateway (e.g. whose cards it must know)."""
        with self._session() as db:
            return sorted(set(db.exec(select(ChargerRow.tenant_id)
                                      .where(ChargerRow.gateway_id == gw))))

    def gateways_of_tenants(self, tenants: Iterable[str]) -> list[str]:
        """Gateways serving chargers of these tenants (to mark after e.g. a card change)."""
        wanted = sorted(set(tenants))
        if not wanted:
            return []
        with self._session() as db:
            return sorted(set(db.exec(select(ChargerRow.gateway_id)
                                      .where(col(ChargerRow.tenant_id).in_(wanted)))))

    def refresh_tariffs(self, at_ms: int | None = None,
                        station_ids: Iterable[str] | None = None) -> list[str]:
        """Stations whose tariff in force changed since it was last announced: their gateways
        are marked changed (in the same transaction as the new marker). Returns the stations."""
        at = self.clock() if at_ms is None else at_ms
        changed = []
        with self._session() as db:
            query = select(StationRow).where(
                col(StationRow.id).in_(select(TariffRow.station_id).distinct()))
            if station_ids is not None:
                query = query.where(col(StationRow.id).in_(list(station_ids)))
            stations = list(db.exec(query))
            for station in stations:
                current = db.exec(
                    select(TariffRow.id).where(TariffRow.station_id == station.id,
                                               TariffRow.effective_from_ms <= at)
                    .order_by(col(TariffRow.effective_from_ms).desc(),
                              col(TariffRow.version).desc()).limit(1)).first()
                if current is None or current == station.tariff_pushed_id:
                    continue
                station.tariff_pushed_id = current
                db.add(station)
                for gw in sorted(set(db.exec(select(ChargerRow.gateway_id)
                                             .where(ChargerRow.station_id == station.id)))):
                    self._bump(db, gw, station.tenant_id)
                changed.append(station.id)
            db.commit()
        return changed


def _raise(exc: Exception) -> Any:
    raise exc
