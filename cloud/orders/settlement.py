"""Billing a finished session: meter sanity, the tariff in force at its start, the settlement,
the per-tier rows, and the reconciliation with the charger's own record.

Reconciliation policy: the order is always billed on the server-side settlement (the tariff
in the catalogue and the meter values). A YKC pile's own per-tier record is compared with it;
any difference beyond the billing module's tolerances sets ``reconciled = False`` with the
differences in ``discrepancies``. When the *totals* differ (energy or amount), the order ends in
``disputed`` instead of ``settled`` (it is still paid from the wallet; finance reviews it and
may refund); a difference only in the split between tiers (a pile clock a minute off) is a flag
and nothing more.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, select

from cloud.orders.errors import SettlementFailed
from cloud.orders.lifecycle import add_anomaly
from cloud.orders.meter import Inputs, Unbillable, billing_inputs
from cloud.orders.models import Order, OrderSample, OrderTier
from cloud.orders.ports import Bill, Biller, BillTier, Catalogue, Place
from cloud.orders.status import OperatingMode, OrderStatus, start_method
from thingmodels.validate import to_wire

ZERO = Decimal("0.00")
_ZERO_KWH = Decimal("0.0000")
TOTAL_FIELDS = frozenset({"energy", "amount"})


def _mode(order: Order) -> OperatingMode | None:
    try:
        return OperatingMode(order.operating_mode) if order.operating_mode else None
    except ValueError:
        return None


def check_start_method(order: Order, place: Place) -> None:
    """Note a start method the operating-mode matrix does not offer on this charger (the
    session is billed all the same: the energy was delivered)."""
    method = start_method(order.id_type)  # an offline start is judged by its id (card ...)
    if method is None or place.allowed_methods is None:
        return
    if method.value not in place.allowed_methods:
        add_anomaly(order, "start_method_not_allowed",
                    f"{method.value} start on a {place.kind or ''} charger in "
                    f"{place.operating_mode}".replace("  ", " "))


def settle_order(session: Session, order: Order, *, place: Place | None, catalogue: Catalogue,
                 biller: Biller, now_ms: int) -> str | None:
    """Bill ``order`` if it can be; returns the status reason when it cannot (yet)."""
    if place is None:
        return "unknown_connector: the catalogue does not know this connector"
    assert order.id is not None
    samples = list(session.exec(select(OrderSample).where(OrderSample.order_id == order.id)))
    inputs = billing_inputs(order, samples)
    if isinstance(inputs, Unbillable):
        if not inputs.waiting:
            order.status = OrderStatus.METER_ANOMALY.value
        return f"{inputs.code}: {inputs.detail}"
    free = _mode(order) is OperatingMode.OFFLINE_FREE
    found = catalogue.tariff(place.station_id, inputs.started_ms)
    if found is None and not free:
        return f"no_tariff: no tariff in force at station {place.station_id} at " \
               f"{inputs.started_ms}"
    try:
        bill = _bill(biller, found.tariff, inputs, place) if found is not None \
            else _unpriced(inputs)
    except SettlementFailed as exc:
        order.status = OrderStatus.METER_ANOMALY.value
        return f"settlement_refused: {exc}"
    for code, detail in inputs.notes:
        add_anomaly(order, code, detail)
    for anomaly in bill.anomalies:
        add_anomaly(order, str(anomaly.get("kind", anomaly.get("code", "settlement"))),
                    str(anomaly.get("detail", anomaly)))
    if bill.energy == 0 and inputs.energy > 0:
        order.status = OrderStatus.METER_ANOMALY.value
        return f"nothing_billable: {inputs.energy} kWh reported, none of it believable"
    check_start_method(order, place)
    if found is not None:
        order.tariff_id, order.tariff_version = found.tariff_id, found.version
    order.meter_start, order.meter_stop = inputs.meter_start, inputs.meter_stop
    order.energy = bill.energy
    order.free = free
    write_tiers(session, order, bill.tiers, free=free)
    if free:
        order.electricity_amount = order.service_amount = order.total_amount = ZERO
    else:
        order.electricity_amount = bill.electricity_amount
        order.service_amount = bill.service_amount
        order.total_amount = bill.total_amount
    order.billed_ms = now_ms
    if order.charger_record is not None and found is not None:
        reconcile_order(order, biller, bill)
    if order.total_amount == 0:
        order.status = final_paid_status(order).value
        order.status_reason = "free: offline_free mode" if free else None
        order.paid_ms = now_ms
    else:
        order.status = OrderStatus.FINISHED.value
        order.status_reason = None
        order.owed_amount = order.total_amount
    return None


def _bill(biller: Biller, tariff: Any, inputs: Inputs, place: Place) -> Bill:
    return biller.settle(tariff, inputs.samples, started_ms=inputs.started_ms,
                         ended_ms=inputs.ended_ms, meter_start=inputs.meter_start,
                         meter_stop=inputs.meter_stop, rated_kw=place.rated_kw)


def _unpriced(inputs: Inputs) -> Bill:
    """A free session at a station without a tariff: the energy, no tiers, nothing to pay."""
    return Bill(energy=inputs.energy.quantize(_ZERO_KWH), electricity_amount=ZERO,
                service_amount=ZERO, total_amount=ZERO, tiers=[])


def write_tiers(session: Session, order: Order, tiers: Any, *, free: bool) -> None:
    """Replace the order's tier rows with ``tiers`` (amounts zero when free)."""
    assert order.id is not None
    session.execute(delete(OrderTier).where(OrderTier.order_id == order.id))  # type: ignore[arg-type]
    for t in tiers:
        electricity = ZERO if free else t.electricity_amount
        service = ZERO if free else t.service_amount
        session.add(OrderTier(order_id=order.id, tenant_id=order.tenant_id, tier=t.tier,
                              energy=t.energy, electricity_rate=t.electricity_rate,
                              service_rate=t.service_rate, electricity_amount=electricity,
                              service_amount=service, total_amount=electricity + service))


def stored_bill(session: Session, order: Order, tariff: Any = None) -> Bill:
    """The settlement of a billed order, rebuilt from its rows (for a late reconciliation)."""
    rows = session.exec(select(OrderTier).where(OrderTier.order_id == order.id)).all()
    tiers = [BillTier(tier=r.tier, energy=r.energy, electricity_rate=r.electricity_rate,
                      service_rate=r.service_rate, electricity_amount=r.electricity_amount,
                      service_amount=r.service_amount) for r in rows]
    return Bill(energy=order.energy or _ZERO_KWH,
                electricity_amount=order.electricity_amount or ZERO,
                service_amount=order.service_amount or ZERO,
                total_amount=order.total_amount or ZERO, tiers=tiers, tariff=tariff)


def reconcile_order(order: Order, biller: Biller, bill: Bill) -> None:
    """Compare the bill with the charger's own record (see the module docstring)."""
    record = order.charger_record or {}
    params = record.get("params") or {}
    found = biller.reconcile(bill, params)
    order.discrepancies = [to_wire(d) for d in found]
    order.reconciled = not found


def totals_disagree(order: Order) -> bool:
    """Whether the charger's record disagrees with the bill on total energy or amount."""
    return order.reconciled is False and any(
        d.get("field") in TOTAL_FIELDS for d in order.discrepancies if isinstance(d, dict))


def final_paid_status(order: Order) -> OrderStatus:
    """``disputed`` when the charger's record disagrees on totals (and money is involved),
    else ``settled``."""
    return OrderStatus.DISPUTED if totals_disagree(order) and not order.free \
        else OrderStatus.SETTLED
