"""Compiled actions: each turns one matching message into one :mod:`cloud.actions` value.

Nothing here does I/O. A builder either returns an action, returns ``None`` (nothing to do:
a point without fields, an alarm between its raise and clear conditions) or raises
:class:`~cloud.rules.expr.EvalFailure` (the action is skipped and the failure counted).
Failures that only drop a part of an action (one field, one tag) go to ``report`` and the
action is still emitted.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from cloud.actions import (
    Action,
    AlarmSignal,
    BillSessionEvent,
    FieldValue,
    InvokeService,
    PostWebhook,
    Republish,
    WritePoint,
)
from cloud.rules.expr import MISSING, EvalFailure, Expr, Template, render_value
from cloud.rules.subject import Subject
from thingmodels.errors import PayloadError, TopicError, UnknownModelError
from thingmodels.loader import ModelRegistry
from thingmodels.schema import ParamType
from thingmodels.topics import check_id
from thingmodels.validate import to_wire

Report = Callable[[EvalFailure, Subject], None]


class Builder(Protocol):
    """A compiled action."""

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        """The action for one subject (see the module docstring)."""


def _value(expr: Expr, s: Subject, report: Report) -> Any:
    """An optional value: MISSING/None when absent, MISSING after a reported failure."""
    try:
        return expr.get(s.ctx)
    except EvalFailure as failure:
        report(failure, s)
        return MISSING


def jsonable(value: Any) -> Any:
    """A value as JSON can carry it: decimals as strings, bytes as base64, maps and lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _values(exprs: Mapping[str, Expr], s: Subject, report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, expr in exprs.items():
        value = _value(expr, s, report)
        if value is MISSING or value is None:
            continue
        out[name] = value
    return out


_FIELD_TYPES = (bool, int, float, Decimal, str)


class InfluxBuilder:
    """``influx``: a WritePoint; missing fields omitted, no point without fields."""

    def __init__(self, rule: str, measurement: Template, tags: dict[str, Expr],
                 fields: dict[str, Expr]) -> None:
        self.rule = rule
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        # a plain ``p['key']`` / ``p&['key']`` field is read straight from the params: its
        # value is the param's, and a missing key is skipped like a null one
        self._fields = tuple((name, expr, expr.param_key) for name, expr in fields.items())
        self._tags = tuple((name, expr, expr.param_key) for name, expr in tags.items())

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        fields: dict[str, FieldValue] = {}
        p = s.ctx["p"]
        for name, expr, pkey in self._fields:
            value = p.get(pkey) if pkey is not None else _value(expr, s, report)
            if value is MISSING or value is None:
                continue
            kind = type(value)
            if kind is float:
                if not math.isfinite(value):
                    report(EvalFailure("type", f"field {name!r}: {value} is not a finite "
                                               "number"), s)
                    continue
            elif kind is not int and kind is not str and kind is not bool:
                if (isinstance(value, float) and not math.isfinite(value)) or \
                        (isinstance(value, Decimal) and not value.is_finite()):
                    report(EvalFailure("type", f"field {name!r}: {value} is not a finite "
                                               "number"), s)
                    continue
                if not isinstance(value, _FIELD_TYPES):
                    report(EvalFailure("type", f"field {name!r}: a {type(value).__name__} is "
                                               "not a field value"), s)
                    continue
            fields[name] = value
        if not fields:
            return None
        tags: dict[str, str] = {}
        ctx = s.ctx
        for name, expr, pkey in self._tags:
            value = p.get(pkey) if pkey is not None else _value(expr, s, report)
            if value is MISSING or value is None:
                continue
            text = value if type(value) is str else render_value(value)
            if text:
                tags[name] = text
        measurement = self.measurement.render(ctx)
        return WritePoint(rule=self.rule, key=key, measurement=measurement, tags=tags,
                          fields=fields, ts_ms=s.ts_ms)


Condition = Expr | bool | None


def _holds(condition: Condition, s: Subject) -> bool:
    if condition is None or condition is True:
        return True
    if condition is False:
        return False
    return condition.condition(s.ctx)


class AlarmBuilder:
    """``alarm``: raise when ``raise`` holds, else clear when ``clear`` holds, else nothing."""

    def __init__(self, rule: str, *, type_: str, level: str, raise_: Condition,
                 clear: Condition, debounce_ms: int, clear_after_ms: int, message: Template,
                 dedupe: Template, value: Expr | None, details: dict[str, Expr]) -> None:
        self.rule = rule
        self.type = type_
        self.level = level
        self.raise_ = raise_
        self.clear = clear
        self.debounce_ms = debounce_ms
        self.clear_after_ms = clear_after_ms
        self.message = message
        self.dedupe = dedupe
        self.value = value
        self.details = details

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        if _holds(self.raise_, s):
            active = True
        elif self.clear is not None and _holds(self.clear, s):
            active = False
        else:
            return None
        value = None
        if self.value is not None:
            value = _value(self.value, s, report)
            if value is MISSING:
                value = None
        details = _values(self.details, s, report) if self.details else {}
        return AlarmSignal(
            rule=self.rule, key=key, type=self.type, dedupe=self.dedupe.render(s.ctx),
            active=active, level=self.level, gw=s.gw, product=s.product, device=s.device,
            ts_ms=s.ts_ms, message=self.message.render(s.ctx, strict=False), value=value,
            debounce_ms=self.debounce_ms, clear_after_ms=self.clear_after_ms,
            details=details, source=s.kind,
        )


def _fit_integers(specs: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Integral decimals (what expressions compute) become ints where the model wants ints."""
    out = dict(params)
    for key, value in params.items():
        spec = specs.get(key)
        if spec is not None and spec.type in (ParamType.INT, ParamType.TIMESTAMP) and \
                isinstance(value, Decimal) and value.is_finite() and value == value.to_integral():
            out[key] = int(value)
    return out


class InvokeBuilder:
    """``invoke``: a service call, params validated against the service's input."""

    def __init__(self, rule: str, *, service: str, params: dict[str, Expr],
                 gw: Template | None, product: Template | None, device: Template | None,
                 timeout_s: float | None, models: ModelRegistry) -> None:
        self.rule = rule
        self.service = service
        self.params = params
        self.gw = gw
        self.product = product
        self.device = device
        self.timeout_s = timeout_s
        self.models = models

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        gw = self.gw.render(s.ctx) if self.gw is not None else s.gw
        product = self.product.render(s.ctx) if self.product is not None else s.product
        device = self.device.render(s.ctx) if self.device is not None else s.device
        try:
            check_id(gw, "gateway id")
            check_id(device, "device id")
            spec = self.models[product].service(self.service)
        except (TopicError, UnknownModelError) as exc:
            raise EvalFailure("payload", f"invoke {self.service}: {exc}") from None
        params = _fit_integers(spec.input, _values(self.params, s, report))
        try:
            params = self.models[product].validate_input(self.service, params)
        except PayloadError as exc:
            raise EvalFailure("payload", f"invoke {product}.{self.service}: {exc}") from None
        timeout = self.timeout_s if self.timeout_s is not None else spec.timeout
        return InvokeService(rule=self.rule, key=key, gw=gw, product=product, device=device,
                             service=self.service, params=params, timeout_s=timeout)


def message_map(rule: str, s: Subject) -> dict[str, Any]:
    """The default webhook body: the message as JSON (decimals as strings)."""
    return {
        "rule": rule, "topic": s.topic, "gw": s.gw, "product": s.product, "device": s.device,
        "kind": s.kind, "name": s.name, "id": s.msg_id, "ts": s.ts_ms, "rts": s.rts,
        "seq": s.seq, "src": s.src, "p": jsonable(s.raw),
    }


class WebhookBuilder:
    """``webhook``: a POST to a URL template."""

    def __init__(self, rule: str, *, url: Template, body: dict[str, Expr] | None,
                 headers: dict[str, Template], timeout_s: float) -> None:
        self.rule = rule
        self.url = url
        self.body = body
        self.headers = headers
        self.timeout_s = timeout_s

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        url = self.url.render(s.ctx)
        if not url.startswith(("http://", "https://")):
            raise EvalFailure("type", f"webhook URL {url!r} is not http(s)")
        if self.body is None:
            body = message_map(self.rule, s)
        else:
            body = {k: jsonable(v) for k, v in _values(self.body, s, report).items()}
        headers = {name: t.render(s.ctx) for name, t in self.headers.items()}
        return PostWebhook(rule=self.rule, key=key, url=url, body=body, headers=headers,
                           timeout_s=self.timeout_s)


def check_republish_topic(topic: str) -> str | None:
    """Why ``topic`` cannot be republished to, or None."""
    if not topic:
        return "empty topic"
    if any(c in topic for c in "+#\x00"):
        return f"topic {topic!r} contains a wildcard or NUL"
    if topic.startswith("$"):
        return f"topic {topic!r} starts with '$'"
    if topic.startswith("ev/"):
        return f"topic {topic!r} is under ev/ (the rule engine would see its own output)"
    return None


class RepublishBuilder:
    """``republish``: publish the message (or a payload map) to another topic."""

    def __init__(self, rule: str, *, topic: Template, payload: dict[str, Expr] | None,
                 qos: int, retain: bool) -> None:
        self.rule = rule
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        topic = self.topic.render(s.ctx)
        problem = check_republish_topic(topic)
        if problem is not None:
            raise EvalFailure("type", f"republish: {problem}")
        if self.payload is None:
            payload: dict[str, Any] = {"id": s.msg_id, "rts": s.rts, "ts": s.ts_ms}
            if s.seq is not None:
                payload["seq"] = s.seq
            if s.src is not None:
                payload["src"] = s.src
            payload["p"] = to_wire(s.raw)
        else:
            payload = {k: to_wire(v) for k, v in _values(self.payload, s, report).items()}
        return Republish(rule=self.rule, key=key, topic=topic, payload=payload, qos=self.qos,
                         retain=self.retain)


class BillingBuilder:
    """``billing``: a session event (or property sample) with thing-model-validated params."""

    def __init__(self, rule: str, *, name: str | None) -> None:
        self.rule = rule
        self.name = name

    def build(self, s: Subject, key: str, report: Report) -> Action | None:
        if s.kind == "event":
            name = self.name or s.name or ""
        elif s.kind == "prop":
            name = self.name or "sample"
        else:
            raise EvalFailure("payload", f"billing takes events and properties, not {s.kind}")
        params = s.validated()
        return BillSessionEvent(rule=self.rule, key=key, gw=s.gw, product=s.product,
                                device=s.device, name=name, params=params, msg_id=s.msg_id,
                                ts_ms=s.ts_ms, seq=s.seq)
