"""The shape of a rule file, as pydantic models (unknown keys refused).

::

    rules:
      - id: gun-over-temperature          # unique across all files: [A-Za-z0-9][A-Za-z0-9_.-]*
        description: gun above 80 degC
        enabled: true                     # default true
        from: [ev/v1/+/connector/+/prop]  # topic filters, or $presence
        where: "p&['gunTemperature'] != null"   # optional condition
        do:                               # one or more actions, each a one-key map
          - alarm: {...}

Expressions and templates are plain strings here; the loader compiles them
(:mod:`cloud.rules.expr`) and reports errors with file, line and rule id.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thingmodels.schema import parse_duration

RULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_NAME = r"^[a-z][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Seconds = Annotated[float, Field(ge=0)]
ExprText = Annotated[str, Field(min_length=1)]
Condition = ExprText | bool


class InfluxSpec(_Strict):
    """A time-series point: ``measurement`` is a template, tag and field values expressions."""

    measurement: Annotated[str, Field(min_length=1)]
    tags: dict[str, ExprText] = {}
    fields: Annotated[dict[str, ExprText], Field(min_length=1)]


class AlarmSpec(_Strict):
    """An alarm raise / clear signal.

    ``raise`` defaults to the rule's ``where`` (every matching message raises); ``clear`` has no
    default (no clear signal). Between the two nothing is emitted (hysteresis).
    """

    type: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
    level: Literal["info", "warning", "minor", "major", "critical"]
    raise_: Condition | None = Field(default=None, alias="raise")
    clear: Condition | None = None
    debounce: Seconds = 0.0
    clear_after: Seconds = 0.0
    message: str = ""
    dedupe: Annotated[str, Field(min_length=1)] = "{type}:{gw}/{product}/{device}"
    value: ExprText | None = None
    details: dict[str, ExprText] = {}

    _durations = field_validator("debounce", "clear_after", mode="before")(_duration)

    @model_validator(mode="after")
    def _raise_with_clear(self) -> AlarmSpec:
        if self.clear is not None and self.raise_ is None:
            raise ValueError("an alarm with 'clear' needs an explicit 'raise' condition "
                             "(else every matching message raises)")
        return self


class InvokeSpec(_Strict):
    """A device service call; target defaults to the message's device."""

    service: Annotated[str, Field(pattern=r"^[a-z][A-Za-z0-9]*$")]
    params: dict[str, ExprText] = {}
    gw: str | None = None
    product: str | None = None
    device: str | None = None
    timeout: Seconds | None = None

    _durations = field_validator("timeout", mode="before")(_duration)


class WebhookSpec(_Strict):
    """An HTTP POST; ``body`` values are expressions (default: the whole message)."""

    url: Annotated[str, Field(min_length=1)]
    body: dict[str, ExprText] | None = None
    headers: dict[str, str] = {}
    timeout: Seconds = 5.0

    _durations = field_validator("timeout", mode="before")(_duration)


class RepublishSpec(_Strict):
    """An MQTT publish; ``payload`` values are expressions (default: the message envelope)."""

    topic: Annotated[str, Field(min_length=1)]
    payload: dict[str, ExprText] | None = None
    qos: Literal[0, 1, 2] = 1
    retain: bool = False


class BillingSpec(_Strict):
    """Hand the message to sessions & billing (event name, or ``sample`` for properties)."""

    name: Annotated[str, Field(pattern=r"^[a-z][A-Za-z0-9]*$")] | None = None


class ActionSpec(_Strict):
    """One action: exactly one of the keys."""

    influx: InfluxSpec | None = None
    alarm: AlarmSpec | None = None
    invoke: InvokeSpec | None = None
    webhook: WebhookSpec | None = None
    republish: RepublishSpec | None = None
    billing: BillingSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionSpec:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            kinds = ", ".join(type(self).model_fields)
            raise ValueError(f"an action is exactly one of {kinds}; got {given or 'none'}")
        return self

    @property
    def kind(self) -> str:
        """The action's key."""
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


class RuleSpec(_Strict):
    """One rule: a statement (``from`` + ``where``) and its actions."""

    id: Annotated[str, Field(pattern=RULE_ID)]
    description: str = ""
    enabled: bool = True
    sources: Annotated[list[str], Field(alias="from", min_length=1)]
    where: ExprText | None = None
    do: Annotated[list[ActionSpec], Field(min_length=1)]


class RulesFileSpec(_Strict):
    """A whole rule file."""

    rules: list[RuleSpec] = []
