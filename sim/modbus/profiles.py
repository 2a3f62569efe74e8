"""Plausible starting values per product, so a fresh simulator reads like a live device."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["DEFAULT_VALUES"]

DEFAULT_VALUES: dict[str, dict[str, object]] = {
    "meter": {
        "voltageL1": 230.1, "voltageL2": 229.8, "voltageL3": 231.2,
        "currentL1": 12.3, "currentL2": 11.8, "currentL3": 12.6,
        "power": 8.5, "reactivePower": 0.4, "powerFactor": 0.98, "frequency": 50.0,
        "energyImport": Decimal("12345.6"), "energyExport": Decimal("0"),
    },
    "env_sensor": {"water": False, "temperature": 25.0, "humidity": 45.0, "smoke": False},
    "parking_lock": {"position": "lowered", "occupied": False, "battery": 95, "alarm": "none"},
    "relay": {"closed": True, "commanded": True},
    "storage": {"soc": 80, "power": 0, "state": "idle", "voltage": 52.0, "current": 0},
}
"""Product -> property -> value in thing-model units; properties a map lacks are skipped."""
