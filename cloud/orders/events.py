"""Session events as orders read them: checked, decimals exact, meters at 0.1 Wh.

The rule engine hands over :class:`cloud.actions.BillSessionEvent` values whose params were
validated against ``thingmodels/models/connector.yaml``; they are validated again here (lenient:
unknown keys pass) so that a hand-made or replayed action cannot slip a float or a negative
energy into a bill. Energies are quantized to 0.0001 kWh (ROUND_HALF_UP), the resolution of
every energy column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cloud.actions import BillSessionEvent
from cloud.orders.errors import BadSessionEvent
from thingmodels.errors import ThingModelError
from thingmodels.loader import builtin_models
from thingmodels.validate import to_wire

SESSION_EVENTS = frozenset({"sessionStarted", "sessionUpdated", "sessionEnded",
                            "transactionRecord", "startResult", "stopResult"})
SAMPLE = "sample"
KWH = Decimal("0.0001")
#: a register above this is not a meter reading (Numeric(18, 4) holds 10^14)
MAX_REGISTER_KWH = Decimal(10) ** 10


def kwh(value: Decimal | None) -> Decimal | None:
    """An energy at the resolution orders keep (0.1 Wh, ROUND_HALF_UP)."""
    return None if value is None else value.quantize(KWH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One event of one session."""

    name: str
    gw: str
    device: str
    session_id: str
    msg_id: str
    key: str
    ts_ms: int
    params: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        """The params in JSON-safe form (decimals as strings), with ts and message id."""
        return {"params": to_wire(self.params), "ts": self.ts_ms, "msg": self.msg_id}

    def decimal(self, name: str) -> Decimal | None:
        value = self.params.get(name)
        return value if isinstance(value, Decimal) else None


def _energies(params: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, Decimal):
            raise BadSessionEvent(f"{where}.{name}: expected a decimal, got {value!r}")
        if value < 0 or value > MAX_REGISTER_KWH:
            raise BadSessionEvent(f"{where}.{name}: {value} kWh is not a meter value")
        params[name] = kwh(value)


def parse(action: BillSessionEvent) -> SessionEvent | None:
    """A checked event, None for a sample of no session (``sessionId`` empty), or
    :class:`BadSessionEvent` saying what is wrong."""
    where = f"{action.gw}/{action.device} {action.name}"
    if action.product != "connector":
        raise BadSessionEvent(f"{where}: session events come from connectors, not "
                              f"{action.product!r}")
    model = builtin_models()["connector"]
    try:
        if action.name == SAMPLE:
            params = model.validate_properties(dict(action.params), lenient=True)
        elif action.name in SESSION_EVENTS:
            params = model.validate_event(action.name, dict(action.params), lenient=True)
        else:
            raise BadSessionEvent(f"{where}: not a session event")
    except ThingModelError as exc:
        raise BadSessionEvent(f"{where}: {exc}") from exc
    session_id = params.get("sessionId")
    if action.name == SAMPLE:
        if not session_id:
            return None
        if params.get("meterEnergy") is None and params.get("energy") is None:
            raise BadSessionEvent(f"{where}: a sample needs meterEnergy or energy")
    if not isinstance(session_id, str) or not session_id.strip():
        raise BadSessionEvent(f"{where}: no sessionId")
    if isinstance(action.ts_ms, bool) or not isinstance(action.ts_ms, int) or action.ts_ms < 0:
        raise BadSessionEvent(f"{where}: ts_ms {action.ts_ms!r} is not a time")
    _energies(params, ("meterStart", "meterStop", "energy", "meter", "meterEnergy"), where)
    if action.name == "transactionRecord":
        tiers = []
        for i, tier in enumerate(params.get("tiers", [])):
            row = dict(tier)
            _energies(row, ("energy", "lossEnergy"), f"{where}.tiers[{i}]")
            tiers.append(row)
        params["tiers"] = tiers
    return SessionEvent(name=action.name, gw=action.gw, device=action.device,
                        session_id=session_id, msg_id=action.msg_id, key=action.key,
                        ts_ms=action.ts_ms, params=params)


def report_params(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The params of a stored report (``SessionEvent.wire()``), decimals as strings."""
    if not report:
        return {}
    params = report.get("params")
    return dict(params) if isinstance(params, Mapping) else {}


def report_decimal(report: Mapping[str, Any] | None, name: str) -> Decimal | None:
    """A decimal param of a stored report."""
    value = report_params(report).get(name)
    if value is None or isinstance(value, bool | float):
        return None
    return Decimal(str(value))


def report_int(report: Mapping[str, Any] | None, name: str) -> int | None:
    """An int param of a stored report (``ts`` for the event's own time)."""
    if not report:
        return None
    value = report.get(name) if name == "ts" else report_params(report).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
