"""The shape of a thing-model file, as pydantic models (unknown keys refused).

A thing model declares, for one product, its ``properties`` (telemetry and state with type, unit,
range and report policy), its ``events`` (params and level) and its ``services`` (input, output
and timeout). Parameter specs nest: ``list`` items and ``object`` fields are specs themselves.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = r"^[a-z][A-Za-z0-9]*$"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")


class ParamType(StrEnum):
    """Value types of the thing model."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOL = "bool"
    ENUM = "enum"
    TIMESTAMP = "timestamp"  # ms since epoch, int
    LIST = "list"
    OBJECT = "object"
    MAP = "map"  # free-form map (vendor data, BMS frames, charging profiles)


class Strict(BaseModel):
    """Base of every file model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(Strict):
    """One typed value: a property, an event param, a service input or output field."""

    type: ParamType
    description: str | None = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    max_length: int | None = Field(default=None, ge=1)
    optional: bool = False
    items: dict[str, ParamSpec] | None = None
    fields: dict[str, ParamSpec] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type is ParamType.ENUM and not self.values:
            raise ValueError("an enum needs 'values'")
        if self.type is not ParamType.ENUM and self.values is not None:
            raise ValueError("'values' is only for type enum")
        if self.type is ParamType.LIST and self.items is None:
            raise ValueError("a list needs 'items'")
        if self.type is not ParamType.LIST and self.items is not None:
            raise ValueError("'items' is only for type list")
        if self.type is ParamType.OBJECT and self.fields is None:
            raise ValueError("an object needs 'fields'")
        if self.type is not ParamType.OBJECT and self.fields is not None:
            raise ValueError("'fields' is only for type object")
        numeric = {ParamType.INT, ParamType.FLOAT, ParamType.DECIMAL, ParamType.TIMESTAMP}
        if (self.min is not None or self.max is not None) and self.type not in numeric:
            raise ValueError("'min'/'max' are only for numeric types")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is greater than 'max'")
        return self


class ReportMode(StrEnum):
    """When a property is reported."""

    CHANGE = "change"
    PERIOD = "period"
    CHANGE_OR_PERIOD = "change_or_period"
    ALWAYS = "always"


def parse_duration(text: str | float) -> float:
    """``"10s"`` -> 10.0, ``"500ms"`` -> 0.5, ``"2m"`` -> 120.0; numbers are seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 2m, 1h, 30d)")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit]


Seconds = Annotated[float, Field(ge=0)]


class ReportPolicy(Strict):
    """Edge-side report strategy of a property (deadband and period)."""

    mode: ReportMode = ReportMode.ALWAYS
    deadband: float | None = Field(default=None, ge=0)
    period: Seconds | None = None

    @field_validator("period", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class PropertySpec(ParamSpec):
    """A property: a typed value plus access and report policy."""

    access: str = Field(default="r", pattern="^(r|rw)$")
    report: ReportPolicy = ReportPolicy()


class EventLevel(StrEnum):
    """Severity of an event."""

    INFO = "info"
    WARNING = "warning"
    ALERT = "alert"
    CRITICAL = "critical"


class EventSpec(Strict):
    """An event: params, level and, for events that wait for a decision, the reply shape."""

    description: str | None = None
    level: EventLevel = EventLevel.INFO
    params: dict[str, ParamSpec] = {}
    reply: dict[str, ParamSpec] | None = None
    reply_timeout: Seconds | None = None

    @field_validator("reply_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class ServiceSpec(Strict):
    """A service: input, output and how long a call may take."""

    description: str | None = None
    timeout: Seconds = 10.0
    input: dict[str, ParamSpec] = {}
    output: dict[str, ParamSpec] = {}

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class ThingModelFile(Strict):
    """The whole file."""

    product: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    description: str | None = None
    properties: dict[Annotated[str, Field(pattern=_NAME)], PropertySpec] = {}
    events: dict[Annotated[str, Field(pattern=_NAME)], EventSpec] = {}
    services: dict[Annotated[str, Field(pattern=_NAME)], ServiceSpec] = {}
