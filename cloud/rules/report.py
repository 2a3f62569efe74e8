"""Actions as text and as JSON (what ``voltmesh rules test`` prints)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cloud.actions import (
    Action,
    AlarmSignal,
    BillSessionEvent,
    InvokeService,
    PostWebhook,
    Republish,
    WritePoint,
)
from cloud.rules.actions import jsonable


def as_json(action: Action) -> dict[str, Any]:
    """An action as a JSON-able map: its type, lane and fields (decimals as strings)."""
    out: dict[str, Any] = {"action": type(action).__name__, "lane": action.lane.value}
    for item in dataclasses.fields(action):
        out[item.name] = jsonable(getattr(action, item.name))
    return out


def _j(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}s"


def describe(action: Action) -> str:
    """One line saying what an action would do."""
    if isinstance(action, WritePoint):
        tags = "".join(f",{k}={v}" for k, v in action.tags.items())
        fields = ",".join(f"{k}={v}" for k, v in action.fields.items())
        return f"influx    {action.measurement}{tags} {fields} @{action.ts_ms}"
    if isinstance(action, AlarmSignal):
        verb = "RAISE" if action.active else "CLEAR"
        extra = ""
        if action.value is not None:
            extra += f" value={action.value}"
        if action.debounce_ms:
            extra += f" debounce={_seconds(action.debounce_ms)}"
        if action.clear_after_ms:
            extra += f" clear_after={_seconds(action.clear_after_ms)}"
        if action.details:
            extra += f" details={_j(action.details)}"
        return (f"alarm     {verb} {action.type} [{action.level}] {action.dedupe} "
                f"{action.message!r}{extra} @{action.ts_ms}")
    if isinstance(action, InvokeService):
        return (f"invoke    {action.gw}/{action.product}/{action.device} {action.service} "
                f"{_j(action.params)} timeout={action.timeout_s:g}s")
    if isinstance(action, PostWebhook):
        headers = f" headers={_j(action.headers)}" if action.headers else ""
        return f"webhook   POST {action.url} {_j(action.body)}{headers}"
    if isinstance(action, Republish):
        payload = action.payload if isinstance(action.payload, dict) else \
            f"<{len(action.payload)} bytes>"
        return (f"republish {action.topic} qos={action.qos} retain={str(action.retain).lower()} "
                f"{_j(payload)}")
    if isinstance(action, BillSessionEvent):
        seq = f" seq={action.seq}" if action.seq is not None else ""
        return (f"billing   {action.name} {action.gw}/{action.product}/{action.device} "
                f"{_j(action.params)}{seq} @{action.ts_ms}")
    return f"{type(action).__name__} {_j(as_json(action))}"  # pragma: no cover - future kinds
