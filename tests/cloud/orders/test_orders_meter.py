"""Order-level meter sanity (cloud/orders/meter.py): what a finished session hands over."""

from __future__ import annotations

from decimal import Decimal

from cloud.orders.meter import Inputs, Unbillable, billing_inputs
from cloud.orders.models import Order, OrderSample

D = Decimal
T0, T1 = 1_000_000, 1_000_000 + 3_600_000


def order(**kw: object) -> Order:
    base: dict[str, object] = {"gw": "g", "device": "d", "session_id": "s", "created_ms": 0,
                               "updated_ms": 0, "started_ms": T0, "ended_ms": T1}
    base.update(kw)
    return Order(**base)


def sample(ts: int, meter: str | None = None, energy: str | None = None) -> OrderSample:
    return OrderSample(order_id=1, ts_ms=ts, meter=None if meter is None else D(meter),
                       energy=None if energy is None else D(energy))


def test_times_are_needed_and_ordered() -> None:
    r = billing_inputs(order(started_ms=None), [])
    assert isinstance(r, Unbillable) and r.code == "no_start_time" and r.waiting
    r = billing_inputs(order(started_ms=T1, ended_ms=T0), [])
    assert isinstance(r, Unbillable) and r.code == "end_before_start" and not r.waiting


def test_missing_register_derived_from_the_reported_energy() -> None:
    r = billing_inputs(order(meter_start=D("10"), reported_energy=D("5.5")), [])
    assert isinstance(r, Inputs) and (r.meter_start, r.meter_stop) == (D("10"), D("15.5"))
    r = billing_inputs(order(meter_stop=D("20"), reported_energy=D("4")), [])
    assert isinstance(r, Inputs) and (r.meter_start, r.meter_stop) == (D("16"), D("20"))
    assert ("meter_start_derived", "meter start 16 kWh = stop - energy") in r.notes
    r = billing_inputs(order(meter_start=D("10")), [sample(T0 + 10, "12.5")])
    assert isinstance(r, Inputs) and r.meter_stop == D("12.5")
    assert r.notes[0][0] == "meter_stop_from_samples"


def test_regression_without_samples_is_an_anomaly() -> None:
    r = billing_inputs(order(meter_start=D("10"), meter_stop=D("9")), [])
    assert isinstance(r, Unbillable) and r.code == "meter_regression" and not r.waiting
    # with registers in between, the settlement decides what was a glitch
    r = billing_inputs(order(meter_start=D("10"), meter_stop=D("9")),
                       [sample(T0 + 10, "11")])
    assert isinstance(r, Inputs)


def test_relative_scale_when_no_register_is_known() -> None:
    r = billing_inputs(order(reported_energy=D("7.25")), [sample(T0 + 5, energy="3")])
    assert isinstance(r, Inputs)
    assert (r.meter_start, r.meter_stop, r.samples) == (D("0"), D("7.25"), [(T0 + 5, D("3"))])
    assert r.notes == [("relative_energy", "no meter register: billed on the session energy")]
    r = billing_inputs(order(), [])
    assert isinstance(r, Unbillable) and r.code == "no_energy" and r.waiting


def test_samples_inside_the_session_on_the_register_scale() -> None:
    samples = [sample(T0 - 1, "99"), sample(T0 + 20, energy="2.5"), sample(T0 + 10, "101"),
               sample(T1 + 1, "200")]
    r = billing_inputs(order(meter_start=D("100"), meter_stop=D("105"),
                             reported_energy=D("5")), samples)
    assert isinstance(r, Inputs)
    assert r.samples == [(T0 + 10, D("101")), (T0 + 20, D("102.5"))]
    assert r.notes == []
    r = billing_inputs(order(meter_start=D("100"), meter_stop=D("105"),
                             reported_energy=D("6")), [])
    assert isinstance(r, Inputs) and r.notes[0][0] == "energy_mismatch"
