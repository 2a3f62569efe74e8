"""Reconciliation against a YKC transaction record built by the pile simulator's arithmetic.

The simulator bills like a charger: it runs the billing model compiled from our ``edge_doc``
(``billing_model_from_doc``), books energy per half hour (``accrue_energy``), rounds tier
amounts to 0.0001 yuan, and builds the 0x3B record, which the YKC mapper turns into the
``transactionRecord`` event params the cloud receives.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bridges.ykc.mapper import billing_model_from_doc, record_params
from cloud.billing import (
    BillingError,
    ReconcileTolerances,
    Settlement,
    Tariff,
    edge_doc,
    reconcile,
    settle,
)
from sim.ykc import LedgerEntry, accrue_energy, tier_prices_yuan5
from tests.cloud.billing.helpers import SHANGHAI, tariff

D = Decimal
PILE = "32010200000001"


def _charger_bills(t: Tariff, start: datetime, minutes: int, power_w: int,
                   meter_start_kwh4: int = 10_000_000) -> dict[str, Any]:
    """What a YKC charger running our model reports for constant power (event params)."""
    model = billing_model_from_doc(edge_doc(t, 1))
    entry = LedgerEntry(trade_no=PILE + "01" + "2503012030150001", gun=1, trade_flag=1,
                        physical_card="0" * 16, model_code=model.model_code,
                        prices_yuan5=tier_prices_yuan5(model), started_at=start,
                        meter_start_kwh4=meter_start_kwh4)
    added, _ = accrue_energy(model.slots, entry.energy_kwh4, 0, power_w, start,
                             minutes * 60 * 1_000_000)
    entry.ended_at = start + timedelta(minutes=minutes)
    entry.meter_stop_kwh4 = meter_start_kwh4 + added
    entry.stop_reason = 0x40
    return record_params(entry.build_record(PILE), SHANGHAI)


def _our_bill(t: Tariff, record: dict[str, Any]) -> Settlement:
    return settle(t, [], started_ms=record["startedAt"], ended_ms=record["endedAt"],
                  meter_start=record["meterStart"], meter_stop=record["meterStop"])


def test_a_charger_running_our_model_agrees() -> None:
    t = tariff()
    # 47.3 kW from 20:15 for 3 h: peak until 21:00, flat until 23:00, valley after
    record = _charger_bills(t, datetime(2025, 3, 1, 20, 15), 180, 47_300)
    ours = _our_bill(t, record)
    assert ours.energy == D("141.9000") == record["energy"]
    assert {x["tier"]: x["energy"] for x in record["tiers"]} == {
        "tip": 0, "peak": D("35.475"), "flat": D("94.6"), "valley": D("11.825")}
    assert reconcile(ours, record, tariff=t) == []
    # the charger rounds tier amounts to 0.0001 yuan, we round each part to 0.01:
    #   peak 35.475 x 1.6 = 56.76 (ours 35.48 + 21.29 = 56.77), flat 94.6 x 1.3 = 122.98,
    #   valley 11.825 x 0.9 = 10.6425 (ours 3.55 + 7.10 = 10.65): 190.3825 vs 190.40
    assert record["amount"] == D("190.3825") and ours.amount == D("190.40")
    # ... which the default total tolerance (0.01 per tier with energy: 0.03) accepts
    strict = ReconcileTolerances(total_amount_cny=D("0.01"))
    assert [(d.field, d.tier) for d in reconcile(ours, record, tariff=t, tolerances=strict)] \
        == [("amount", None)]


def test_a_record_that_disagrees_is_flagged() -> None:
    t = tariff()
    record = _charger_bills(t, datetime(2025, 3, 1, 20, 15), 180, 60_000)
    ours = _our_bill(t, record)
    # the charger moved 0.5 kWh from flat to valley and billed it at the valley price
    tampered = dict(record)
    tampered["tiers"] = [dict(tier) for tier in record["tiers"]]
    flat = next(x for x in tampered["tiers"] if x["tier"] == "flat")
    valley = next(x for x in tampered["tiers"] if x["tier"] == "valley")
    flat["energy"] -= D("0.5")
    flat["amount"] -= D("0.5") * flat["price"]
    valley["energy"] += D("0.5")
    valley["amount"] += D("0.5") * valley["price"]
    tampered["amount"] = sum((x["amount"] for x in tampered["tiers"]), D(0))
    found = {(d.field, d.tier) for d in reconcile(ours, tampered, tariff=t)}
    assert found == {("tier.energy", "flat"), ("tier.energy", "valley"),
                     ("tier.amount", "flat"), ("tier.amount", "valley"), ("amount", None)}
    diff = next(d for d in reconcile(ours, tampered, tariff=t)
                if (d.field, d.tier) == ("tier.energy", "valley"))
    assert diff.difference == D("0.5") and diff.to_doc()["difference"] == "0.5000"


def test_a_charger_on_an_old_model_is_flagged_by_price() -> None:
    t = tariff()
    old = Tariff.from_doc({**t.to_doc(), "tiers": {**t.to_doc()["tiers"],
                                                   "flat": {"energy": "0.65", "service": "0.6"}}})
    record = _charger_bills(old, datetime(2025, 3, 1, 21, 0), 60, 30_000)  # 30 kWh flat
    ours = _our_bill(t, record)
    found = {(d.field, d.tier): d for d in reconcile(ours, record, tariff=t)}
    assert set(found) == {("tier.price", "flat"), ("tier.amount", "flat"), ("amount", None)}
    assert found[("tier.price", "flat")].theirs == D("1.25000")
    assert found[("tier.price", "flat")].ours == D("1.30000")


def test_energy_total_and_tolerances() -> None:
    t = tariff()
    record = _charger_bills(t, datetime(2025, 3, 1, 9, 0), 30, 20_000)
    ours = _our_bill(t, record)
    short = dict(record, energy=record["energy"] - D("0.002"))
    assert [(d.field, d.tier) for d in reconcile(ours, short, tariff=t)] == [("energy", None)]
    loose = ReconcileTolerances(total_energy_kwh=D("0.01"))
    assert reconcile(ours, short, tariff=t, tolerances=loose) == []


def test_deep_valley_is_the_ykc_valley_position() -> None:
    t = Tariff.from_doc({"tiers": {"flat": {"energy": "0.8", "service": "0.4"},
                                   "deep_valley": {"energy": "0.2", "service": "0.4"}},
                         "periods": [{"start": "00:00", "end": "06:00", "tier": "deep_valley"},
                                     {"start": "06:00", "end": "24:00", "tier": "flat"}]})
    record = _charger_bills(t, datetime(2025, 3, 1, 5, 0), 120, 10_000)
    assert {x["tier"] for x in record["tiers"] if x["energy"]} == {"valley", "flat"}
    ours = _our_bill(t, record)
    assert reconcile(ours, record, tariff=t) == []
    # without the tariff the names are taken literally: valley is not deep_valley
    assert {d.tier for d in reconcile(ours, record)} >= {"valley", "deep_valley"}


def test_malformed_records_are_refused() -> None:
    t = tariff()
    ours = settle(t, [], started_ms=0, ended_ms=1000, meter_start="1", meter_stop="1")
    with pytest.raises(BillingError, match="needs 'energy'"):
        reconcile(ours, {"amount": "0"})
    with pytest.raises(BillingError, match="'tiers' must be a list"):
        reconcile(ours, {"energy": "0", "amount": "0", "tiers": "tip"})
    with pytest.raises(BillingError, match="not a decimal"):
        reconcile(ours, {"energy": "zero", "amount": "0"})
    found = reconcile(ours, {"energy": "0", "amount": "0",
                             "tiers": [{"tier": "super_peak", "energy": "1", "amount": "1"}]})
    assert [(d.field, d.tier) for d in found] == [("tier.unknown", "super_peak")]
