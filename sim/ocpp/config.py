"""Typed simulator configuration (pydantic, unknown keys refused)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridges.ocpp import OcppVersion
from bridges.ocpp.devices import check_charge_point_id


class SimConfig(BaseModel):
    """One simulated charge point.

    It connects to ``{url}/{charge_point_id}`` with subprotocol ``ocpp1.6`` or ``ocpp2.0.1``
    (and HTTP Basic auth ``charge_point_id:password`` when a password is set).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    charge_point_id: str
    url: str = "ws://127.0.0.1:9000/ocpp"
    version: OcppVersion = OcppVersion.V16
    password: str | None = None

    vendor: str = Field(default="VoltmeshSim", max_length=20)
    model: str = Field(default="SimAC22", max_length=20)
    serial_number: str = Field(default="SIM-0001", max_length=25)
    firmware_version: str = Field(default="1.0.0", max_length=50)
    iccid: str | None = Field(default=None, max_length=20)

    connectors: int = Field(default=1, ge=1, le=16)
    charger_type: Literal["ac", "dc"] = "ac"
    phases: Literal[1, 3] = 3
    max_power_kw: float = Field(default=22.0, gt=0, le=1000)
    nominal_voltage: float = Field(default=230.0, gt=0)
    battery_kwh: float = Field(default=60.0, gt=0)
    start_soc: float = Field(default=20.0, ge=0, le=100)
    initial_meter_wh: int = Field(default=1_000_000, ge=0)
    energy_unit: Literal["Wh", "kWh"] = "Wh"
    phase_values: bool = True
    """Send Voltage / Current.Import per phase (AC) instead of one phase-less value."""

    meter_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_default_s: float = Field(default=60.0, gt=0)
    """Used until the CSMS gives an interval (and when it gives 0)."""
    time_scale: float = Field(default=1.0, gt=0)
    """Energy accrues this many times faster than real time (demos, tests)."""
    clock_offset_s: float = 0.0
    """The charger's clock runs this far ahead of real time (clock-skew drills)."""

    id_tag: str = Field(default="SIMTAG01", max_length=20)
    id_token_type: str = "ISO14443"  # noqa: S105 - an idToken type, not a secret
    response_timeout_s: float = Field(default=10.0, gt=0)
    open_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    tx_queue_max: int = Field(default=1000, ge=1)
    """Transaction messages kept while offline (1000 = ~2.8 h of 10 s meter values). When full
    the oldest queued periodic meter value is dropped (``sim.tx_dropped``); starts and stops are
    never dropped."""
    step_delay_s: float = Field(default=0.5, ge=0)
    """Pause between firmware / diagnostics status steps."""
    seed: int | None = None

    # test knobs (off by default)
    answer_delay_s: float = Field(default=0.0, ge=0)
    """Hold every answer to a CSMS call this long (a slow charger)."""
    unanswered_actions: frozenset[str] = frozenset()
    """CSMS calls (by action) received and never answered (a hung charger)."""
    wire_log: bool = False
    """Keep every frame of both directions in ``sim.wire_log`` (:class:`WireFrame`)."""

    @field_validator("charge_point_id")
    @classmethod
    def _cp_id(cls, value: str) -> str:
        check_charge_point_id(value)
        if len(value) > 48:
            raise ValueError("chargePointId longer than 48 characters")
        return value

    @property
    def endpoint(self) -> str:
        """The WebSocket URL including the charge-point id."""
        return f"{self.url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"
