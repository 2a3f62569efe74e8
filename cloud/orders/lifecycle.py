"""Applying one session event to an order, and deriving the order's best-known facts.

Everything the charger said is kept as reported (``start_report``, ``end_report``,
``charger_record``, samples), and the values the order bills with are *derived* from all of it
by fixed precedence rules, so the result is the same whatever order the events arrive in:

================  ==========================================================================
field             first of
================  ==========================================================================
id tag            sessionStarted.idTag, sessionEnded.idTag, record.idTag (card), record.vin
id type           sessionStarted.idType (unless ``unknown``), record.tradeType, ``vin`` for a
                  record with only a VIN
start method      ``offline`` when the start was offline (sessionStarted.offline, tradeType
                  offline_card), else from the id type (:func:`cloud.orders.status.start_method`)
started at        record.startedAt (when valid), sessionEnded.startedAt, sessionStarted's time
ended at          record.endedAt (when valid), sessionEnded.endedAt, sessionEnded's time
meter start       sessionEnded.meterStart (the bridge's repaired baseline), sessionStarted's,
                  the record's; a 0 placeholder is replaced by the record's non-zero value
meter stop        sessionEnded.meterStop, record.meterStop
reported energy   sessionEnded.energy, record.energy
================  ==========================================================================

The first report of each kind wins; a later, different one is kept as an anomaly; an identical
one (a re-sent record, a duplicate stop) changes nothing at all (:func:`apply_event` says
``{"duplicate": True}`` and the service drops it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cloud.orders.events import SessionEvent, report_decimal, report_int, report_params
from cloud.orders.models import Order
from cloud.orders.status import BILLED, OrderStatus, start_method

_RECORD_TYPES = {"app": "app", "card": "card", "offline_card": "card", "vin": "vin"}


def add_anomaly(order: Order, code: str, detail: str) -> bool:
    """Note an anomaly once (same code and detail)."""
    entry = {"code": code, "detail": detail}
    if entry in order.anomalies:
        return False
    order.anomalies = [*order.anomalies, entry]
    return True


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _report(order: Order, attr: str, ev: SessionEvent, what: str) -> dict[str, Any]:
    """Keep the first report; a later identical one is a duplicate, a different one an anomaly."""
    current = getattr(order, attr)
    fresh = ev.wire()
    if current is None:
        setattr(order, attr, fresh)
        return {}
    if current.get("params") == fresh["params"]:
        return {"duplicate": True}
    add_anomaly(order, f"{what}_conflict", f"{ev.name} {ev.msg_id} differs from the first "
                f"({current.get('msg')}); the first is kept")
    return {"conflict": True}


def apply_event(order: Order, ev: SessionEvent) -> dict[str, Any]:
    """Record what ``ev`` says about the session; returns details for the history
    (``{"duplicate": True}``: an identical repeat, nothing was changed)."""
    p = ev.params
    detail: dict[str, Any] = {}
    if ev.name == "sessionStarted":
        detail = _report(order, "start_report", ev, "start")
    elif ev.name == "sessionEnded":
        detail = _report(order, "end_report", ev, "stop")
    elif ev.name == "transactionRecord":
        detail = _report(order, "charger_record", ev, "record")
    elif ev.name in ("sessionUpdated", "sample"):
        order.live_energy = _max(order.live_energy, ev.decimal("energy"))
        order.live_meter = _max(order.live_meter, ev.decimal("meter") or
                                ev.decimal("meterEnergy"))
    elif ev.name == "startResult":
        if p.get("accepted") is False:
            order.start_refused = True
            detail = {"accepted": False, "reason": p.get("reason")}
        else:
            detail = {"accepted": True}
    elif ev.name == "stopResult" and p.get("accepted") is False:
        add_anomaly(order, "stop_refused", f"the charger refused a stop: {p.get('reason')}")
        detail = {"accepted": False, "reason": p.get("reason")}
    if not detail.get("duplicate"):
        order.last_seen_ms = max(order.last_seen_ms or 0, ev.ts_ms)
    return detail


def derive(order: Order) -> None:
    """Recompute the best-known facts from everything reported (see the module docstring)."""
    start, end, record = order.start_report, order.end_report, order.charger_record
    sp, ep, rp = report_params(start), report_params(end), report_params(record)

    id_tag = sp.get("idTag") or ep.get("idTag") or rp.get("idTag")
    id_type = sp.get("idType") if sp.get("idType") not in (None, "unknown") else None
    if id_type is None and rp.get("tradeType") in _RECORD_TYPES and rp.get("idTag"):
        id_type = _RECORD_TYPES[rp["tradeType"]]
    if not id_tag and rp.get("vin"):
        id_tag, id_type = rp["vin"], "vin"
    order.id_tag = id_tag or None
    order.id_type = id_type or sp.get("idType") or ("unknown" if id_tag else None)
    order.offline = bool(sp.get("offline")) or rp.get("tradeType") == "offline_card"
    method = start_method(order.id_type, offline=order.offline)
    if method is None and rp.get("tradeType") in _RECORD_TYPES:
        method = start_method(rp["tradeType"])
    order.start_method = method.value if method is not None else None

    record_start = report_int(record, "startedAt") or None  # 0 = the pile had no valid time
    order.started_ms = record_start or report_int(end, "startedAt") or report_int(start, "ts")
    record_end = report_int(record, "endedAt") or None
    order.ended_ms = record_end or report_int(end, "endedAt") or report_int(end, "ts") \
        or (report_int(record, "ts") if record else None)

    meter_start = report_decimal(end, "meterStart")
    if meter_start is None:
        meter_start = report_decimal(start, "meterStart")
    record_meter_start = report_decimal(record, "meterStart")
    if meter_start is None:
        meter_start = record_meter_start
    elif meter_start == 0 and record_meter_start:
        add_anomaly(order, "baseline_repaired", f"meterStart 0 replaced by the charger "
                    f"record's {record_meter_start} kWh")
        meter_start = record_meter_start
    order.meter_start = meter_start
    meter_stop = report_decimal(end, "meterStop")
    order.meter_stop = meter_stop if meter_stop is not None \
        else report_decimal(record, "meterStop")
    reported = report_decimal(end, "energy")
    order.reported_energy = reported if reported is not None \
        else report_decimal(record, "energy")


def ended(order: Order) -> bool:
    """Whether the charger said the session is over."""
    return order.end_report is not None or order.charger_record is not None


def open_status(order: Order) -> OrderStatus:
    """The status of an order that is not billed yet, from what is known."""
    if ended(order):
        return OrderStatus.FINISHED
    charging = order.live_energy is not None or order.live_meter is not None
    if order.start_refused and order.start_report is None and not charging:
        return OrderStatus.START_FAILED
    return OrderStatus.CHARGING if charging else OrderStatus.AUTHORISED


def billed(order: Order) -> bool:
    """Whether the amounts of the order are final."""
    return order.billed_ms is not None or OrderStatus(order.status) in BILLED
