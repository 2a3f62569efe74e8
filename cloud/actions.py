"""What the rule engine decides, as plain values: the contract between rules and sinks.

The rule engine (:mod:`cloud.rules`) is pure: for a message it returns a list of these actions
and does nothing else, so ``voltmesh rules test`` can print them without side effects. The
cloud worker hands each action to the sink queue of its :attr:`Action.lane` (a separate
bounded queue per lane, so a dead InfluxDB never delays a bill or an alarm).

Every action carries ``key``: an idempotency key derived from the message id, the rule and the
action's index in the rule, so a redelivered message produces the same keys and a sink can drop
what it has already done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar


class Lane(StrEnum):
    """The sink queue an action goes to."""

    TELEMETRY = "telemetry"  # time-series writes (InfluxDB line protocol)
    BILLING = "billing"  # session events to sessions/orders
    ALARMS = "alarms"  # alarm raise / clear
    COMMANDS = "commands"  # device service calls
    WEBHOOKS = "webhooks"  # HTTP POSTs to third parties
    REPUBLISH = "republish"  # MQTT republish


FieldValue = float | int | bool | str | Decimal


@dataclass(frozen=True, slots=True)
class Action:
    """Base of all actions: which rule produced it, and its idempotency key."""

    lane: ClassVar[Lane]
    rule: str
    key: str


@dataclass(frozen=True, slots=True)
class WritePoint(Action):
    """One time-series point (InfluxDB line protocol: measurement, tags, fields, time in ms)."""

    lane: ClassVar[Lane] = Lane.TELEMETRY
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ms: int


@dataclass(frozen=True, slots=True)
class AlarmSignal(Action):
    """The raise (``active``) or clear condition of an alarm held for one dedupe key.

    ``dedupe`` identifies the alarm (by default ``{type}:{gw}/{product}/{device}``): while an
    alarm with that key is open, further raises only count; debounce and hysteresis are applied
    by the alarm manager from ``debounce_ms`` / ``clear_after_ms``.
    """

    lane: ClassVar[Lane] = Lane.ALARMS
    type: str
    dedupe: str
    active: bool
    level: str  # info | warning | minor | major | critical
    gw: str
    product: str
    device: str
    ts_ms: int
    message: str = ""
    value: Any = None
    debounce_ms: int = 0
    clear_after_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: the topic kind it was derived from (``prop``, ``event``, ``state``, ``presence``): a
    #: clear from periodic telemetry is repeated by the next sample, an event's is not
    source: str = ""


@dataclass(frozen=True, slots=True)
class InvokeService(Action):
    """Call a device service through its gateway."""

    lane: ClassVar[Lane] = Lane.COMMANDS
    gw: str
    product: str
    device: str
    service: str
    params: dict[str, Any]
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class PostWebhook(Action):
    """POST a JSON body to a URL (the key goes out as the ``Idempotency-Key`` header)."""

    lane: ClassVar[Lane] = Lane.WEBHOOKS
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Republish(Action):
    """Publish to another MQTT topic (payload: msgpack of ``payload``, or raw bytes)."""

    lane: ClassVar[Lane] = Lane.REPUBLISH
    topic: str
    payload: dict[str, Any] | bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class BillSessionEvent(Action):
    """Hand a session event (or a session meter sample) to sessions & billing.

    ``name`` is the thing-model event name (sessionStarted, sessionUpdated, sessionEnded,
    transactionRecord, startResult, stopResult) or ``"sample"`` for a connector property
    sample carrying ``sessionId`` and ``meterEnergy``/``energy``; ``params`` are the validated
    params (decimals as :class:`~decimal.Decimal`), ``msg_id`` the envelope id and ``seq`` its
    per-device sequence number.
    """

    lane: ClassVar[Lane] = Lane.BILLING
    gw: str
    product: str
    device: str
    name: str
    params: dict[str, Any]
    msg_id: str
    ts_ms: int
    seq: int | None = None
