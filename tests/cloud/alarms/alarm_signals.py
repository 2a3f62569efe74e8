"""Building alarm signals for the tests."""

from __future__ import annotations

import itertools
from typing import Any

from cloud.actions import AlarmSignal

_keys = itertools.count(1)


def signal(active: bool, ts: int, *, device: str = "c1", type: str = "overTemperature",
           level: str = "major", debounce_ms: int = 0, clear_after_ms: int = 0,
           value: Any = None, key: str | None = None, gw: str = "gw1",
           product: str = "connector", message: str = "") -> AlarmSignal:
    """A raise (``active``) or clear of ``type`` on ``gw/product/device`` at ``ts``."""
    return AlarmSignal(
        rule="temp", key=key or f"msg{next(_keys)}:temp:0", type=type,
        dedupe=f"{type}:{gw}/{product}/{device}", active=active, level=level, gw=gw,
        product=product, device=device, ts_ms=ts, message=message or f"{type} on {device}",
        value=value, debounce_ms=debounce_ms, clear_after_ms=clear_after_ms,
    )
