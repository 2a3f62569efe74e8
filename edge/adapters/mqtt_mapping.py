"""Mapping files for MQTT-native devices: local JSON topics -> thing-model messages.

.. code-block:: yaml

    devices:
      - topic: "site/cameras/{device}/events"   # {device} captures the device id; + also allowed
        product: camera
        device_prefix: "cam-"                    # optional, prepended to the captured id
        ts: {path: ts, unit: s}                  # optional device time (unit s or ms)
        offline_after: 120s                      # no message for that long -> offline
        properties:                              # property -> JSON path (dotted) or a spec
          fps: stats.fps
        events:
          - name: plateRecognized
            when: {path: type, equals: plate}    # optional condition
            params:
              plate: plate
              confidence: {path: conf, scale: 0.01}
    services:
      - product: camera
        service: snapshot
        topic: "site/cameras/{device}/cmd"
        payload: {cmd: snapshot, channel: "$channel"}   # "$name" = service input value

A value spec is a dotted path or ``{path, scale, offset, map, default}``; ``map`` translates raw
values (e.g. ``{1: raised, 0: lowered}``). Scaling is exact (Decimal).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thingmodels.schema import parse_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Strict):
    """Where a value comes from in the device's JSON and how to convert it."""

    path: str
    scale: Decimal | None = None
    offset: Decimal | None = None
    map: dict[str, Any] | None = None
    default: Any = None


def _value_spec(value: Any) -> Any:
    if isinstance(value, str):
        return {"path": value}
    return value


class Condition(_Strict):
    """``when``: a JSON path equal to (or in) a value."""

    path: str
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EventMap(_Strict):
    """One event produced from a message."""

    name: str
    when: Condition | None = None
    params: dict[str, ValueSpec] = {}

    @field_validator("params", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> Any:
        return {k: _value_spec(v) for k, v in value.items()} if isinstance(value, dict) else value


class TimeSpec(_Strict):
    """Device time in the message."""

    path: str
    unit: str = Field(default="ms", pattern="^(s|ms)$")


class DeviceMap(_Strict):
    """One local topic pattern and what it produces."""

    topic: str
    product: str
    device_prefix: str = ""
    ts: TimeSpec | None = None
    offline_after: float = Field(default=120.0, gt=0)
    properties: dict[str, ValueSpec] = {}
    events: list[EventMap] = []

    @field_validator("offline_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("properties", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> Any:
        return {k: _value_spec(v) for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _pattern(self) -> DeviceMap:
        if self.topic.count("{device}") != 1:
            raise ValueError("topic must contain {device} exactly once")
        if "#" in self.topic:
            raise ValueError("topic must not contain '#'")
        return self

    def mqtt_filter(self) -> str:
        """The subscription filter."""
        return self.topic.replace("{device}", "+")

    def regex(self) -> re.Pattern[str]:
        """A regex capturing the device id."""
        parts = []
        for level in self.topic.split("/"):
            if level == "{device}":
                parts.append("(?P<device>[^/]+)")
            elif level == "+":
                parts.append("[^/]+")
            else:
                parts.append(re.escape(level))
        return re.compile("^" + "/".join(parts) + "$")


class ServiceMap(_Strict):
    """A thing-model service carried out by publishing to the device."""

    product: str
    service: str
    topic: str
    payload: dict[str, Any] = {}
    qos: int = Field(default=1, ge=0, le=1)


class MappingFile(_Strict):
    """A whole mapping file."""

    devices: list[DeviceMap] = []
    services: list[ServiceMap] = []
