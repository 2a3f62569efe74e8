"""Catalogue tables (SQLModel, global metadata, ``catalog_`` prefix) and the values the
repository hands out (frozen dataclasses, safe to pass between threads).

Every table has an indexed ``tenant_id``. Rated power is stored in integer watts (no float, no
SQLite Decimal emulation) and handed out as Decimal kW. Tariff rows keep the validated tariff
document (JSON, decimals as strings); a row is never changed after it is written -- a new price is
a new version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from cloud.billing.tariff import Tariff

DEFAULT_TZ = "Asia/Shanghai"


class Protocol(StrEnum):
    """How a charger talks to its gateway."""

    YKC = "ykc"
    OCPP16 = "ocpp16"
    OCPP201 = "ocpp201"


class Kind(StrEnum):
    """DC or AC charger."""

    DC = "dc"
    AC = "ac"


class StationStatus(StrEnum):
    """Whether a station is listed and usable."""

    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    CLOSED = "closed"


# -- tables ---------------------------------------------------------------------------------


class StationRow(SQLModel, table=True):
    """A charging station (场站)."""

    __tablename__ = "catalog_stations"

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(index=True, max_length=64)
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=500)
    lat: float = Field(index=True)
    lon: float = Field(index=True)
    tz: str = Field(default=DEFAULT_TZ, max_length=64)
    status: str = Field(default=StationStatus.ACTIVE.value, max_length=16)
    created_ms: int = Field(sa_type=BigInteger)
    #: provisioning: the tariff row last announced to the station's gateways
    tariff_pushed_id: int | None = None


class ChargerRow(SQLModel, table=True):
    """A charger (充电桩) behind a gateway."""

    __tablename__ = "catalog_chargers"
    __table_args__ = (UniqueConstraint("gateway_id", "device_id"),)

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(index=True, max_length=64)
    station_id: str = Field(index=True, max_length=32, foreign_key="catalog_stations.id")
    gateway_id: str = Field(index=True, max_length=128)
    device_id: str = Field(max_length=128)
    protocol: str = Field(max_length=16)
    kind: str = Field(max_length=4)
    rated_w: int = Field(sa_type=BigInteger)
    operating_mode: str = Field(max_length=32)
    connector_count: int
    code: str = Field(unique=True, max_length=40)
    password_sha256: str | None = Field(default=None, max_length=64)
    created_ms: int = Field(sa_type=BigInteger)


class ConnectorRow(SQLModel, table=True):
    """A connector (枪) of a charger."""

    __tablename__ = "catalog_connectors"
    __table_args__ = (UniqueConstraint("gateway_id", "device_id"),
                      UniqueConstraint("charger_id", "number"))

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(index=True, max_length=64)
    station_id: str = Field(index=True, max_length=32)
    charger_id: str = Field(index=True, max_length=32, foreign_key="catalog_chargers.id")
    gateway_id: str = Field(max_length=128)
    number: int
    device_id: str = Field(max_length=128)
    code: str = Field(unique=True, max_length=40)
    created_ms: int = Field(sa_type=BigInteger)


class TariffRow(SQLModel, table=True):
    """One version of a station's tariff (immutable once written)."""

    __tablename__ = "catalog_tariffs"
    __table_args__ = (UniqueConstraint("station_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True, max_length=64)
    station_id: str = Field(index=True, max_length=32, foreign_key="catalog_stations.id")
    name: str = Field(default="", max_length=200)
    effective_from_ms: int = Field(index=True, sa_type=BigInteger)
    doc: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int
    #: how edge_doc treats boundaries off the half hour: refuse | majority
    ykc_rounding: str = Field(default="refuse", max_length=16)
    created_ms: int = Field(sa_type=BigInteger)


class GatewaySyncRow(SQLModel, table=True):
    """Provisioning bookkeeping per gateway: what changed vs what was pushed."""

    __tablename__ = "catalog_gateway_sync"

    gateway_id: str = Field(primary_key=True, max_length=128)
    tenant_id: str = Field(index=True, max_length=64)
    generation: int = 0  # bumped by every change that alters the gateway's desired state
    pushed_generation: int = 0  # the generation last pushed successfully
    pushed_ms: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, max_length=500)


CATALOG_TABLES = [StationRow, ChargerRow, ConnectorRow, TariffRow, GatewaySyncRow]


# -- values handed out ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Station:
    """A station."""

    id: str
    tenant_id: str
    name: str
    address: str
    lat: float
    lon: float
    tz: str
    status: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Connector:
    """A connector."""

    id: str
    tenant_id: str
    station_id: str
    charger_id: str
    gateway_id: str
    number: int
    device_id: str
    code: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Charger:
    """A charger and its connectors."""

    id: str
    tenant_id: str
    station_id: str
    gateway_id: str
    device_id: str
    protocol: str
    kind: str
    rated_kw: Decimal
    operating_mode: str
    connector_count: int
    code: str
    password_sha256: str | None = field(repr=False)  # OCPP HTTP Basic; never shown by the API
    created_ms: int = 0
    connectors: tuple[Connector, ...] = ()

    @property
    def has_password(self) -> bool:
        """Whether an OCPP password is set."""
        return self.password_sha256 is not None


@dataclass(frozen=True, slots=True)
class ConnectorRef:
    """Everything an order needs about the connector a session runs on."""

    tenant_id: str
    station_id: str
    charger_id: str
    connector_id: str
    gateway_id: str
    charger_device_id: str  # the charger thing id (YKC pile code, OCPP chargePointId)
    connector_device_id: str  # the connector thing id
    number: int
    tz: str
    operating_mode: str
    protocol: str
    kind: str
    rated_kw: Decimal
    code: str


@dataclass(frozen=True, slots=True)
class CodeRef:
    """What a QR / typed code names: one connector, or a charger (all its connectors)."""

    kind: str  # connector | charger
    code: str
    connectors: tuple[ConnectorRef, ...]


@dataclass(frozen=True, slots=True)
class TariffVersion:
    """A stored tariff version."""

    id: int
    tenant_id: str
    station_id: str
    name: str
    version: int
    effective_from_ms: int
    doc: dict[str, Any]
    ykc_rounding: str
    created_ms: int

    @property
    def code(self) -> int:
        """The YKC billing-model code of this version (row id mod 10000: unique per change)."""
        return self.id % 10000


class TariffInForce(NamedTuple):
    """``tariff_at``'s answer: the stored version (id, version, ...) and the parsed tariff."""

    ref: TariffVersion
    tariff: Tariff


@dataclass(frozen=True, slots=True)
class NearbyStation:
    """A station and its great-circle distance from the search point."""

    station: Station
    distance_km: float


def station_value(row: StationRow) -> Station:
    """The value of a station row."""
    return Station(row.id, row.tenant_id, row.name, row.address, row.lat, row.lon, row.tz,
                   row.status, row.created_ms)


def connector_value(row: ConnectorRow) -> Connector:
    """The value of a connector row."""
    return Connector(row.id, row.tenant_id, row.station_id, row.charger_id, row.gateway_id,
                     row.number, row.device_id, row.code, row.created_ms)


def charger_value(row: ChargerRow, connectors: list[ConnectorRow] | None = None) -> Charger:
    """The value of a charger row (with its connector rows, sorted by number)."""
    return Charger(
        row.id, row.tenant_id, row.station_id, row.gateway_id, row.device_id, row.protocol,
        row.kind, Decimal(row.rated_w) / 1000, row.operating_mode, row.connector_count, row.code,
        row.password_sha256, row.created_ms,
        tuple(connector_value(c) for c in sorted(connectors or [], key=lambda c: c.number)),
    )


def tariff_value(row: TariffRow) -> TariffVersion:
    """The value of a tariff row."""
    assert row.id is not None
    return TariffVersion(row.id, row.tenant_id, row.station_id, row.name, row.version,
                         row.effective_from_ms, dict(row.doc), row.ykc_rounding, row.created_ms)
