"""Typed cloud configuration, loaded from YAML (unknown keys refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from cloud.accounts.config import AccountsConfig
from cloud.alarms.config import AlarmsConfig
from cloud.auth.config import AuthConfig
from cloud.billing.config import BillingConfig
from cloud.catalog.config import CatalogConfig
from cloud.errors import ConfigError
from cloud.orders.config import OrdersConfig
from cloud.payments.config import PaymentsConfig
from cloud.rules.config import RulesConfig
from cloud.sinks.config import SinksConfig
from cloud.strict import Strict
from thingmodels.errors import ModelFileError
from thingmodels.yamlfile import load_validated

__all__ = ["CloudConfig", "CloudMqttConfig", "HttpConfig", "Strict", "load_cloud_config"]


class CloudMqttConfig(Strict):
    """The cloud workers' connection to the broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive: int = Field(default=30, ge=5)
    #: auto: MQTT 5 when the broker accepts it (shared subscriptions on), else 3.1.1 without
    protocol: Literal["auto", "v5", "v311"] = "auto"
    #: shared-subscription group; None switches shared subscriptions off
    shared_group: str | None = "voltmesh"
    backoff_max: float = Field(default=15.0, gt=0)
    #: seconds the broker keeps this worker's session (subscriptions + queued QoS 1 messages)
    #: while it is disconnected; 0 = clean session (what arrives during a reconnect is lost)
    session_expiry: int = Field(default=3600, ge=0)
    #: with shared subscriptions: consume the session of a worker that is offline (see consumer)
    takeover: bool = True
    takeover_grace: float = Field(default=5.0, ge=0)
    #: receipts of committed gateway events (always sent; the gateway drops its copy on them):
    #: batched per gateway, published every ``receipt_interval`` s or at ``receipt_batch`` ids
    receipt_interval: float = Field(default=0.15, gt=0, le=10)
    receipt_batch: int = Field(default=200, ge=1, le=5000)


class HttpConfig(Strict):
    """The north-bound API server."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


class CloudConfig(Strict):
    """The whole cloud configuration."""

    worker_id: str = "cloud-1"
    mqtt: CloudMqttConfig = CloudMqttConfig()
    database_url: str = "sqlite:///var/voltmesh-cloud.db"
    http: HttpConfig = HttpConfig()
    flush_interval: float = Field(default=1.0, gt=0)
    #: a gateway not heard from for this many seconds is shown offline (with its devices) even
    #: without a Will; gateways re-publish their ``online`` every 30 s (``mqtt.presence_interval``
    #: at the edge). null: only states count
    presence_silence: float | None = Field(default=150.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    #: the rule files routing messages to the sinks (docs/rules.md)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    #: one bounded queue per lane: telemetry (InfluxDB), billing, alarms, ... (docs/sinks.md)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    billing: BillingConfig = Field(default_factory=BillingConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    orders: OrdersConfig = Field(default_factory=OrdersConfig)
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)
    payments: PaymentsConfig = Field(default_factory=PaymentsConfig)


def load_cloud_config(path: Path | str) -> CloudConfig:
    """Load and validate a cloud config file."""
    try:
        config = load_validated(path, CloudConfig)
    except ModelFileError as exc:
        raise ConfigError(str(exc)) from exc
    prefix = "sqlite:///"
    relative = config.database_url.removeprefix(prefix)
    if config.database_url.startswith(prefix) and relative and not relative.startswith("/") \
            and relative != ":memory:":
        # a relative SQLite file is relative to the config file, like every path in it
        db = (Path(path).resolve().parent / relative).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        config.database_url = prefix + str(db)
    return config
