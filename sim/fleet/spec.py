"""What a fleet run is: :class:`FleetSpec` (typed, unknown keys refused) and the devices it makes.

Every device has a fixed identity derived from its kind and 1-based index, so the same spec
gives the same fleet whatever the number of worker processes: YKC pile codes
``{ykc_prefix}`` + running number (14 digits), OCPP ids ``{ocpp_prefix}16-00001`` /
``{ocpp_prefix}201-00001``, Modbus devices ``mb-meter-0001`` / ``mb-env-0001`` /
``mb-lock-0001``, MQTT devices ``cam01`` / ``env01`` (as :mod:`sim.mqtt.devices` names them;
the ``{device}`` level of the shipped ``config/mqtt_devices/site.yaml`` topics).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.fleet.errors import SpecError

__all__ = [
    "CHARGER_KINDS",
    "MODBUS_KINDS",
    "MODBUS_MAPS",
    "MQTT_KINDS",
    "OPTION_NAMES",
    "DevicePlan",
    "FleetSpec",
    "Kind",
    "build_spec",
    "modbus_layout",
    "plan_devices",
    "shard_devices",
]


class Kind(StrEnum):
    """The kinds of simulated device (also the keys of the summary)."""

    YKC = "ykc"
    OCPP16 = "ocpp16"
    OCPP201 = "ocpp201"
    MODBUS_METER = "modbus_meter"
    ENV_SENSOR = "env_sensor"
    CAMERA = "camera"
    PARKING_LOCK = "parking_lock"


CHARGER_KINDS = frozenset({Kind.YKC, Kind.OCPP16, Kind.OCPP201})
MQTT_KINDS = frozenset({Kind.CAMERA, Kind.ENV_SENSOR})
"""Env sensors are MQTT devices unless ``env_sensor_transport`` is ``modbus``."""
MODBUS_KINDS = frozenset({Kind.MODBUS_METER, Kind.PARKING_LOCK, Kind.ENV_SENSOR})
#: the shipped register map (``config/modbus/{name}.yaml``) each Modbus kind is simulated with
MODBUS_MAPS: dict[Kind, str] = {Kind.MODBUS_METER: "eastron_sdm630",
                                Kind.ENV_SENSOR: "xymd02_temperature_humidity",
                                Kind.PARKING_LOCK: "parking_lock"}

#: spec field -> command-line option, so errors name what the user typed
OPTION_NAMES: dict[str, str] = {
    "ykc": "--ykc", "ocpp16": "--ocpp16", "ocpp201": "--ocpp201",
    "modbus_meters": "--modbus-meters", "env_sensors": "--env-sensors", "cameras": "--cameras",
    "parking_locks": "--parking-locks", "env_sensor_transport": "--env-sensor-transport",
    "ykc_host": "--ykc-host", "ykc_port": "--ykc-port", "ykc_prefix": "--ykc-prefix",
    "ykc_guns": "--ykc-guns", "ykc_bms_frames": "--ykc-bms-frames",
    "ocpp_url": "--ocpp-url", "ocpp_prefix": "--ocpp-prefix",
    "ocpp_password_prefix": "--ocpp-password-prefix", "ocpp_connectors": "--ocpp-connectors",
    "modbus_host": "--modbus-host", "modbus_port": "--modbus-port",
    "modbus_units_per_port": "--modbus-units-per-port", "modbus_interval": "--modbus-interval",
    "modbus_allow_network": "--modbus-allow-network",
    "mqtt_host": "--mqtt-host", "mqtt_port": "--mqtt-port", "mqtt_username": "--mqtt-username",
    "mqtt_password": "--mqtt-password", "mqtt_interval": "--mqtt-interval",
    "heartbeat": "--heartbeat", "meter_interval": "--meter-interval",
    "idle_interval": "--idle-interval", "sessions_per_hour": "--sessions-per-hour",
    "session_minutes": "--session-minutes", "plug_delay": "--plug-delay",
    "app_share": "--app-share", "app_api": "--app-api", "app_token": "--app-token",
    "gateway_id": "--gateway-id", "balance": "--balance", "cards": "--cards",
    "duration": "--duration", "ramp": "--ramp", "drain_timeout": "--drain-timeout",
    "seed": "--seed", "processes": "--processes", "ledger": "--ledger",
    "min_connected": "--min-connected", "max_errors": "--max-errors",
}


class FleetSpec(BaseModel):
    """One fleet run. Durations in seconds; counts per kind; see ``docs/sim.md``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- counts ------------------------------------------------------------------------------
    ykc: int = Field(default=0, ge=0)
    ocpp16: int = Field(default=0, ge=0)
    ocpp201: int = Field(default=0, ge=0)
    modbus_meters: int = Field(default=0, ge=0)
    env_sensors: int = Field(default=0, ge=0)
    cameras: int = Field(default=0, ge=0)
    parking_locks: int = Field(default=0, ge=0)
    env_sensor_transport: Literal["mqtt", "modbus"] = "mqtt"

    # -- targets -----------------------------------------------------------------------------
    ykc_host: str = "127.0.0.1"
    ykc_port: int | None = Field(default=None, ge=1, le=65535)
    ykc_prefix: str = Field(default="3201020", pattern=r"^[0-9]{1,13}$")
    ykc_guns: int = Field(default=1, ge=1, le=99)
    ykc_bms_frames: bool = False
    ocpp_url: str | None = None
    ocpp_prefix: str = Field(default="SIM", pattern=r"^[A-Za-z0-9_.]{1,20}$")
    ocpp_password_prefix: str | None = "sim-"  # noqa: S105 - simulated chargers' passwords
    """Charger ``X`` authenticates (HTTP Basic) with ``prefix + X``; None: no credentials."""
    ocpp_connectors: int = Field(default=1, ge=1, le=16)
    modbus_host: str = "127.0.0.1"
    modbus_port: int = Field(default=0, ge=0, le=65535)
    """First Modbus TCP port the simulator serves (further ports follow); 0: free ports."""
    modbus_units_per_port: int = Field(default=100, ge=1, le=247)
    modbus_interval: float = Field(default=5.0, gt=0)
    """The poll interval written into the gateway config snippet."""
    modbus_allow_network: bool = False
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_interval: float = Field(default=5.0, gt=0)

    # -- message intervals ---------------------------------------------------------------------
    heartbeat: float | None = Field(default=None, gt=0)
    """YKC 0x03 interval; OCPP heartbeat interval overriding the CSMS's. None: YKC 10 s,
    OCPP the interval of the BootNotification answer."""
    meter_interval: float = Field(default=15.0, gt=0)
    """YKC 0x13 while charging; OCPP MeterValues / TransactionEvent Updated."""
    idle_interval: float = Field(default=300.0, gt=0)
    """YKC 0x13 while idle."""

    # -- sessions ------------------------------------------------------------------------------
    sessions_per_hour: float = Field(default=1.0, ge=0)
    """Per connector (gun): mean arrival rate of sessions."""
    session_minutes: float = Field(default=30.0, gt=0)
    """Mean session length; each is drawn uniformly from 0.5x to 1.5x this."""
    plug_delay: float = Field(default=0.0, ge=0, lt=60)
    """YKC app starts: the car is plugged this long after the remote start (0: plugged before)."""
    app_share: float = Field(default=0.0, ge=0, le=1)
    """Share of sessions started from the app (cloud API ``remoteStart``); the rest by card."""
    app_api: str | None = None
    app_token: str | None = None
    gateway_id: str | None = None
    balance: Decimal = Field(default=Decimal("200.00"), ge=0, max_digits=12, decimal_places=2)
    cards: int = Field(default=100, ge=1, le=1_000_000)

    # -- the run -------------------------------------------------------------------------------
    duration: float | None = Field(default=None, gt=0)
    ramp: float = Field(default=100.0, gt=0)
    """Connections per second over the whole fleet."""
    drain_timeout: float = Field(default=30.0, ge=0)
    seed: int = 0
    processes: int = Field(default=1, ge=1, le=256)
    ledger: str | None = None
    min_connected: float = Field(default=1.0, ge=0, le=1)
    """Share of each kind that must be connected at the end for the run to pass."""
    max_errors: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> FleetSpec:
        if self.total() == 0:
            raise ValueError("no devices: give at least one of --ykc --ocpp16 --ocpp201 "
                             "--modbus-meters --env-sensors --cameras --parking-locks")
        if self.ykc and self.ykc_port is None:
            raise ValueError("--ykc needs --ykc-port (the gateway's YKC listener)")
        if (self.ocpp16 or self.ocpp201) and not self.ocpp_url:
            raise ValueError("--ocpp16/--ocpp201 need --ocpp-url (e.g. ws://127.0.0.1:9000/ocpp)")
        if self.ocpp_url and urlsplit(self.ocpp_url).scheme not in ("ws", "wss"):
            raise ValueError(f"--ocpp-url must be a ws:// or wss:// URL, got {self.ocpp_url!r}")
        width = 14 - len(self.ykc_prefix)
        if self.ykc >= 10**width:
            raise ValueError(f"--ykc {self.ykc} piles do not fit {width} digits after "
                             f"--ykc-prefix {self.ykc_prefix}")
        if self.ocpp16 > 99999 or self.ocpp201 > 99999:
            raise ValueError("at most 99999 chargers per OCPP version")
        if self.sessions_per_hour > 0 and self.session_minutes * self.sessions_per_hour >= 60:
            raise ValueError(
                f"--sessions-per-hour {self.sessions_per_hour:g} x --session-minutes "
                f"{self.session_minutes:g} leaves no idle time: a connector has 60 minutes "
                "an hour; lower one of them")
        if self.app_share > 0 and not (self.ykc or self.ocpp16 or self.ocpp201):
            raise ValueError("--app-share needs chargers (--ykc/--ocpp16/--ocpp201)")
        if self.app_share > 0 and (not self.app_api or not self.gateway_id):
            raise ValueError("--app-share > 0 needs --app-api (the cloud's HTTP API) and "
                             "--gateway-id (the gateway the chargers are provisioned to)")
        if self.app_api and urlsplit(self.app_api).scheme not in ("http", "https"):
            raise ValueError(f"--app-api must be an http(s):// URL, got {self.app_api!r}")
        if self.modbus_devices() and not self.modbus_allow_network and \
                not _is_loopback(self.modbus_host):
            raise ValueError(f"--modbus-host {self.modbus_host} is not a loopback address "
                             "(add --modbus-allow-network to serve a network)")
        ports = math.ceil(self.modbus_devices() / self.modbus_units_per_port)
        if self.modbus_port and self.modbus_port + ports - 1 > 65535:
            raise ValueError(f"{ports} Modbus ports from --modbus-port {self.modbus_port} "
                             "go beyond 65535")
        workers = self.total() - self.modbus_devices()
        if self.processes > max(1, workers):
            raise ValueError(f"--processes {self.processes} is more than the "
                             f"{workers} chargers and MQTT devices to split")
        return self

    # -- derived -------------------------------------------------------------------------------

    def count(self, kind: Kind) -> int:
        """How many devices of a kind."""
        return {
            Kind.YKC: self.ykc, Kind.OCPP16: self.ocpp16, Kind.OCPP201: self.ocpp201,
            Kind.MODBUS_METER: self.modbus_meters, Kind.ENV_SENSOR: self.env_sensors,
            Kind.CAMERA: self.cameras, Kind.PARKING_LOCK: self.parking_locks,
        }[kind]

    def kinds(self) -> list[Kind]:
        """The kinds this run has, in display order."""
        return [kind for kind in Kind if self.count(kind)]

    def total(self) -> int:
        """All devices."""
        return sum(self.count(kind) for kind in Kind)

    def is_modbus(self, kind: Kind) -> bool:
        """Whether devices of ``kind`` are served over Modbus TCP by this simulator."""
        if kind is Kind.ENV_SENSOR:
            return self.env_sensor_transport == "modbus"
        return kind in (Kind.MODBUS_METER, Kind.PARKING_LOCK)

    def modbus_devices(self) -> int:
        """How many devices the simulator serves over Modbus."""
        return sum(self.count(kind) for kind in Kind if self.is_modbus(kind))

    def ocpp_password(self, charge_point_id: str) -> str | None:
        """The Basic-auth password of an OCPP charger (None: no credentials sent)."""
        if self.ocpp_password_prefix is None:
            return None
        return f"{self.ocpp_password_prefix}{charge_point_id}"


def build_spec(**values: Any) -> FleetSpec:
    """A validated spec; :class:`SpecError` naming the option (``--ykc: ...``) otherwise."""
    try:
        return FleetSpec(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            option = OPTION_NAMES.get(where, where)
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{option}: {message}" if option else message)
        raise SpecError("; ".join(problems)) from None


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One simulated device: its kind, 1-based index within the kind and its id."""

    kind: Kind
    index: int
    device_id: str
    connectors: int = 0
    """Guns (YKC) or connectors/EVSEs (OCPP); 0 for devices that do not charge."""


def _device_id(spec: FleetSpec, kind: Kind, index: int) -> str:
    match kind:
        case Kind.YKC:
            width = 14 - len(spec.ykc_prefix)
            return f"{spec.ykc_prefix}{index:0{width}d}"
        case Kind.OCPP16:
            return f"{spec.ocpp_prefix}16-{index:05d}"
        case Kind.OCPP201:
            return f"{spec.ocpp_prefix}201-{index:05d}"
        case Kind.MODBUS_METER:
            return f"mb-meter-{index:04d}"
        case Kind.PARKING_LOCK:
            return f"mb-lock-{index:04d}"
        case Kind.ENV_SENSOR:
            return f"mb-env-{index:04d}" if spec.is_modbus(kind) else f"env{index:02d}"
        case Kind.CAMERA:
            return f"cam{index:02d}"


def plan_devices(spec: FleetSpec) -> list[DevicePlan]:
    """Every device of the fleet, interleaved by kind in proportion to the counts.

    The order is the connection order of the ramp: with 2,000 YKC piles and 100 OCPP chargers
    an OCPP charger comes about every 20 piles, not after all of them.
    """
    keyed: list[tuple[float, int, DevicePlan]] = []
    for order, kind in enumerate(Kind):
        n = spec.count(kind)
        connectors = spec.ykc_guns if kind is Kind.YKC else \
            spec.ocpp_connectors if kind in CHARGER_KINDS else 0
        for index in range(1, n + 1):
            plan = DevicePlan(kind, index, _device_id(spec, kind, index), connectors)
            keyed.append(((index - 0.5) / n, order, plan))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [plan for _, _, plan in keyed]


def shard_devices(spec: FleetSpec, devices: list[DevicePlan], shard: int,
                  shards: int) -> list[DevicePlan]:
    """The devices worker ``shard`` of ``shards`` runs.

    Chargers and MQTT devices are dealt round robin in ramp order; the Modbus devices all
    stay in shard 0, which serves their TCP ports (the gateway config names them).
    """
    if not 0 <= shard < shards:
        raise SpecError(f"shard {shard} is not in 0..{shards - 1}")
    out: list[DevicePlan] = []
    position = 0
    for plan in devices:
        if spec.is_modbus(plan.kind):
            if shard == 0:
                out.append(plan)
            continue
        if position % shards == shard:
            out.append(plan)
        position += 1
    return out


def modbus_layout(spec: FleetSpec, devices: list[DevicePlan]) -> list[tuple[DevicePlan, int, int]]:
    """(device, port slot, unit id) of every Modbus device: ``modbus_units_per_port`` unit
    ids per port, ports numbered from slot 0 (the first port)."""
    modbus = [plan for plan in devices if spec.is_modbus(plan.kind)]
    modbus.sort(key=lambda plan: (list(Kind).index(plan.kind), plan.index))
    per = spec.modbus_units_per_port
    return [(plan, position // per, position % per + 1) for position, plan in enumerate(modbus)]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
