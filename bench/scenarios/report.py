"""What a scenario measured: figures, correctness failures, a table and a JSON form."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank on the sorted values); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def machine() -> dict[str, Any]:
    """CPU count and load average now (the figures depend on both)."""
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_1m": round(load[0], 2),
            "python": platform.python_version()}


@dataclass
class Report:
    """One scenario run: ``figures`` in insertion order, ``failures`` of the correctness check."""

    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def check(self, condition: bool, message: str) -> None:
        """Record ``message`` as a failure unless ``condition`` holds."""
        if not condition:
            self.failures.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "ok": self.ok, "failures": list(self.failures),
                "figures": {k: _json(v) for k, v in self.figures.items()}}

    def table(self) -> str:
        """The figures as an aligned two-column table, then the verdict."""
        rows = [(key, _fmt(value)) for key, value in self.figures.items()]
        width = max((len(key) for key, _ in rows), default=6)
        lines = [f"voltmesh bench {self.scenario}", "-" * (width + 20)]
        lines += [f"{key.ljust(width)}  {value}" for key, value in rows]
        lines.append("-" * (width + 20))
        if self.ok:
            lines.append("check: OK")
        else:
            lines += [f"check FAILED: {failure}" for failure in self.failures]
        return "\n".join(lines)


def _json(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
