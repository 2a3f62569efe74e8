"""Typed gateway configuration, loaded from YAML (unknown keys refused).

Relative paths in the file are resolved against the directory of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridges.modbus import RegisterMapError, load_register_map
from edge.errors import ConfigError
from edge.interlocks import load_interlocks
from thingmodels.errors import ModelFileError, TopicError
from thingmodels.loader import builtin_models
from thingmodels.schema import parse_duration
from thingmodels.topics import check_id
from thingmodels.yamlfile import load_validated


class Strict(BaseModel):
    """Base of every config section: unknown keys refused."""

    model_config = ConfigDict(extra="forbid")


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class MqttConfig(Strict):
    """The uplink to the cloud broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    tls: bool = False
    ca_file: str | None = None
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    max_inflight: int = Field(default=100, ge=1, le=65535)
    telemetry_qos: Literal[0, 1] = 1
    #: the retained ``online`` state is published again this often: the cloud's proof that the
    #: gateway lives when no Will can come (a broker that crashed while the gateway died)
    presence_interval: float = Field(default=30.0, gt=0)

    _sec = field_validator("backoff_initial", "backoff_max", "presence_interval",
                           mode="before")(_seconds)


class OutboxConfig(Strict):
    """The durable store-and-forward queue."""

    path: str = "var/edge-outbox.db"
    max_events: int = Field(default=1_000_000, ge=10)
    max_telemetry: int = Field(default=200_000, ge=10)
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=4096)
    event_max_age: float = Field(default=30 * 86400.0, gt=0)
    telemetry_max_age: float = Field(default=86400.0, gt=0)
    synchronous: Literal["normal", "full"] = "normal"
    batch: int = Field(default=200, ge=1, le=10000)
    #: keep an event after the broker's PUBACK until a cloud worker receipts it (end to end);
    #: off for a cloud that sends no receipts (``ev/v1/{gw}/gateway/{gw}/receipt``)
    receipts: bool = True
    #: an event without a receipt this long after its PUBACK is published again (same id);
    #: the wait doubles per try up to ``receipt_timeout_max``, with jitter
    receipt_timeout: float = Field(default=30.0, gt=0)
    receipt_timeout_max: float = Field(default=600.0, gt=0)

    _sec = field_validator("event_max_age", "telemetry_max_age", "receipt_timeout",
                           "receipt_timeout_max", mode="before")(_seconds)


class TelemetryConfig(Strict):
    """Batching of property reports."""

    flush_interval: float = Field(default=1.0, gt=0)
    max_batch: int = Field(default=100, ge=1)
    stats_interval: float = Field(default=30.0, gt=0)

    _sec = field_validator("flush_interval", "stats_interval", mode="before")(_seconds)


class LocalBrokerConfig(Strict):
    """The site's local broker that MQTT-native devices publish to."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None


class MqttDevicesConfig(Strict):
    """The adapter for MQTT-native devices (AI cameras, sensors)."""

    broker: LocalBrokerConfig = LocalBrokerConfig()
    mappings: list[str] = Field(min_length=1)


class YkcConfig(Strict):
    """The YKC (云快充) TCP listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8768, ge=0, le=65535)
    heartbeat_interval: float = Field(default=10.0, gt=0)
    missed_heartbeats: int = Field(default=3, ge=1)
    login_timeout: float = Field(default=30.0, gt=0)
    auto_register: bool = False
    max_bad_frames: int = Field(default=16, ge=1)
    authorize_timeout: float = Field(default=3.0, gt=0)
    timezone: str = "Asia/Shanghai"
    time_sync_interval: float = Field(default=86400.0, gt=0)
    max_connections: int = Field(default=19000, ge=1)

    _sec = field_validator("heartbeat_interval", "login_timeout", "authorize_timeout",
                           "time_sync_interval", mode="before")(_seconds)


class SerialLineConfig(Strict):
    """An RS485/RS232 line of the gateway (serial Modbus RTU)."""

    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class ModbusDeviceConfig(Strict):
    """One polled Modbus device (one unit id on a TCP connection or a serial line).

    ``transport`` defaults to ``serial`` when a ``serial`` section is given, else ``tcp``.
    Devices with the same host and port (or the same serial port) share one connection.
    """

    id: str
    map: str
    transport: Literal["tcp", "rtu_over_tcp", "serial"] | None = None
    host: str | None = None
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int | None = Field(default=None, ge=0, le=255)
    serial: SerialLineConfig | None = None
    interval: float = Field(default=5.0, gt=0, le=86400)
    timeout: float = Field(default=1.0, gt=0, le=60)
    report_period: float = Field(default=60.0, gt=0)

    _sec = field_validator("interval", "timeout", "report_period", mode="before")(_seconds)

    @field_validator("id")
    @classmethod
    def _topic_level(cls, value: str) -> str:
        try:
            return check_id(value, "device id")
        except TopicError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _transport(self) -> ModbusDeviceConfig:
        if self.transport is None:
            self.transport = "serial" if self.serial is not None else "tcp"
        if self.transport == "serial":
            if self.serial is None:
                raise ValueError("transport serial needs a serial section (port, baudrate ...)")
            if self.host is not None:
                raise ValueError("a serial device has no host")
            if self.device_id is not None and not 1 <= self.device_id <= 247:
                raise ValueError("a serial unit id is 1..247")
        else:
            if self.host is None:
                raise ValueError(f"transport {self.transport} needs a host")
            if self.serial is not None:
                raise ValueError(f"transport {self.transport} takes no serial section")
        return self

    @property
    def link(self) -> tuple[str, ...]:
        """What identifies the connection the device is reached through."""
        if self.serial is not None:
            return ("serial", self.serial.port)
        return (str(self.transport), str(self.host), str(self.port))


class ModbusConfig(Strict):
    """The Modbus poller: devices, and how failing devices and links are retried."""

    devices: list[ModbusDeviceConfig] = Field(min_length=1)
    backoff_max: float = Field(default=30.0, gt=0)
    lost_after: int = Field(default=2, ge=1, le=100)
    reconnect_after: int = Field(default=3, ge=1, le=1000)

    _sec = field_validator("backoff_max", mode="before")(_seconds)

    @model_validator(mode="after")
    def _consistent(self) -> ModbusConfig:
        ids: set[str] = set()
        links: dict[tuple[str, ...], ModbusDeviceConfig] = {}
        units: set[tuple[tuple[str, ...], int | None]] = set()
        hosts: dict[tuple[str, int], str] = {}
        for device in self.devices:
            if device.id in ids:
                raise ValueError(f"device id {device.id!r} is used twice")
            ids.add(device.id)
            link = device.link
            first = links.setdefault(link, device)
            if device.serial is not None and first.serial != device.serial:
                raise ValueError(f"devices {first.id!r} and {device.id!r} share serial port "
                                 f"{device.serial.port} with different line settings")
            if device.host is not None:
                other = hosts.setdefault((device.host, device.port), str(device.transport))
                if other != device.transport:
                    raise ValueError(f"{device.host}:{device.port} is used with both "
                                     f"{other} and {device.transport}")
            unit = (link, device.device_id)
            if device.device_id is not None and unit in units:
                raise ValueError(f"two devices with unit id {device.device_id} on one "
                                 f"connection ({device.id!r})")
            units.add(unit)
        return self


class OcppConfig(Strict):
    """The OCPP WebSocket listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=9000, ge=0, le=65535)
    path: str = "/ocpp"
    versions: list[Literal["ocpp1.6", "ocpp2.0.1"]] = ["ocpp2.0.1", "ocpp1.6"]
    #: 0: no auth; 1: HTTP Basic (password per charger); 2: Basic over TLS
    security_profile: Literal[0, 1, 2] = 1
    tls_cert: str | None = None
    tls_key: str | None = None
    #: what to do with a charger the cloud did not provision: reject the connection, or accept
    #: it with BootNotification status Pending (so an operator can approve it)
    unknown_chargers: Literal["reject", "pending"] = "reject"
    heartbeat_interval: int = Field(default=300, ge=10)
    call_timeout: float = Field(default=30.0, gt=0)
    authorize_timeout: float = Field(default=3.0, gt=0)
    max_frame_bytes: int = Field(default=65536, ge=1024)
    max_connections: int = Field(default=19000, ge=1)
    lenient: list[str] = []
    ping_interval: float | None = 60.0
    #: accept permessage-deflate (RFC 7692) when a charger offers it. Off by default: its zlib
    #: state costs ~50 KB of RSS per connection (docs/protocols/ocpp.md "Memory per
    #: connection") and OCPP frames are small; declining it is always valid for the charger
    compression: bool = False
    #: answers kept per connection for a repeated message id (a charger re-sends its CALL
    #: when the answer was lost; it has one CALL in flight, so the last few suffice)
    answers_kept: int = Field(default=8, ge=1, le=1024)


class AdaptersConfig(Strict):
    """Which protocol adapters run on this gateway."""

    mqtt_devices: MqttDevicesConfig | None = None
    ykc: YkcConfig | None = None
    modbus: ModbusConfig | None = None
    ocpp: OcppConfig | None = None


class GatewayConfig(Strict):
    """The whole gateway configuration."""

    gateway_id: str
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    adapters: AdaptersConfig = AdaptersConfig()
    decision_timeout: float = Field(default=3.0, gt=0)
    clock_skew_threshold: float = Field(default=30.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    interlocks: str | None = None
    base_dir: str = "."
    #: ``voltmesh edge`` freezes the heap once started and then re-freezes it (unfreeze,
    #: full collection, freeze) this often, and sooner after growth: the collector's passes
    #: skip the connected chargers' objects, and a frozen garbage cycle (a disconnected
    #: charger's) lives at most this long (voltmesh/gcpolicy.py). null: freeze once at start.
    gc_refreeze: float | None = Field(default=3600.0, gt=0)
    #: devices the last run reported online and that do not come back within this long of a
    #: (re)start are reported offline (the cloud would hold them online for good)
    presence_grace: float = Field(default=120.0, gt=0)

    _sec = field_validator("decision_timeout", "clock_skew_threshold", "gc_refreeze",
                           "presence_grace", mode="before")(_seconds)

    @field_validator("gateway_id")
    @classmethod
    def _topic_level(cls, value: str) -> str:
        try:
            return check_id(value, "gateway_id")
        except TopicError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _client_id(self) -> GatewayConfig:
        if self.mqtt.username is None:
            self.mqtt.username = self.gateway_id
        if self.mqtt.client_id is None:
            self.mqtt.client_id = f"vm-gw-{self.gateway_id}"
        return self

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate


def load_gateway_config(path: Path | str) -> GatewayConfig:
    """Load and validate a gateway config file."""
    try:
        config = load_validated(path, GatewayConfig)
    except ModelFileError as exc:
        raise ConfigError(str(exc)) from exc
    config.base_dir = str(Path(path).resolve().parent)
    check_referenced_files(config)
    return config


def check_referenced_files(config: GatewayConfig) -> None:
    """Load the files the config names (register maps, interlocks) so errors show up now.

    Raises :class:`ConfigError` naming the referenced file, the path inside it and the line.
    """
    models = builtin_models()
    modbus = config.adapters.modbus
    if modbus is not None:
        for device in modbus.devices:
            try:
                load_register_map(config.resolve(device.map), models, require_model=True)
            except RegisterMapError as exc:
                raise ConfigError(f"{exc} (register map of modbus device {device.id!r})") \
                    from exc
    if config.interlocks is not None:
        try:
            load_interlocks(config.resolve(config.interlocks), models)
        except ModelFileError as exc:
            raise ConfigError(str(exc)) from exc
