"""Pure parts of the pile simulator: the meter, tariff arithmetic, ledger record, config."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from ykc_sim_platform import demo_model, half_up_amount

from bridges.ykc import TransactionRecord, decode_body, encode_body
from sim.ykc import (
    LedgerEntry,
    PileConfig,
    accrue_energy,
    amount_yuan4,
    fleet_pile_codes,
    tier_prices_yuan5,
)

MODEL = demo_model()


def test_energy_is_exact_over_many_small_steps() -> None:
    energies = [0, 0, 0, 0]
    remainder = 0
    start = datetime(2024, 5, 20, 3, 0)  # valley
    total = 0
    for step in range(3600):  # 1 W for one hour in 1 s steps = 1 Wh = 10 × 0.0001 kWh
        added, remainder = accrue_energy(MODEL.slots, energies, remainder, 1,
                                         start + timedelta(seconds=step), 1_000_000)
        total += added
    assert total == 10 and energies == [0, 0, 0, 10] and remainder == 0


def test_energy_is_split_at_half_hour_boundaries() -> None:
    energies = [0, 0, 0, 0]
    # 60 kW from 10:45 for one hour: 15 min tip (10:00-11:00), 45 min peak (11:00-12:00)
    added, remainder = accrue_energy(MODEL.slots, energies, 0, 60_000,
                                     datetime(2024, 5, 20, 10, 45), 3600 * 1_000_000)
    assert added == 600_000 and remainder == 0  # 60 kWh
    assert energies == [150_000, 450_000, 0, 0]
    # a long offline stretch across midnight: every half hour goes to its own tier
    energies = [0, 0, 0, 0]
    accrue_energy(MODEL.slots, energies, 0, 1000, datetime(2024, 5, 20, 0, 0),
                  24 * 3600 * 1_000_000)
    hours = [MODEL.slots.count(tier) / 2 for tier in range(4)]
    assert energies == [int(h * 10_000) for h in hours]


def test_amount_rounds_half_up() -> None:
    assert amount_yuan4(1, 50_000) == 1  # 0.5 → 1
    assert amount_yuan4(1, 49_999) == 0
    assert amount_yuan4(150, 184_568) == 277  # 276.852
    for energy in (0, 1, 7, 333, 12_345, 9_999_999):
        for price in tier_prices_yuan5(MODEL):
            assert amount_yuan4(energy, price) == half_up_amount(energy, price)


def test_ledger_entry_builds_a_consistent_record() -> None:
    entry = LedgerEntry(trade_no="3201020000000101240520105959" + "0001", gun=1, trade_flag=1,
                        physical_card="00000000D14B0A54", model_code=MODEL.model_code,
                        prices_yuan5=tier_prices_yuan5(MODEL),
                        started_at=datetime(2024, 5, 20, 10, 59, 59), meter_start_kwh4=12_345)
    with pytest.raises(ValueError, match="has not ended"):
        entry.build_record("32010200000001")
    entry.energy_kwh4[:] = [123, 4567, 0, 0]
    entry.ended_at = datetime(2024, 5, 20, 11, 3)
    entry.meter_stop_kwh4 = 12_345 + 4690
    entry.stop_reason = 0x40
    record = entry.build_record("32010200000001")
    assert decode_body(0x3B, encode_body(record)) == record
    assert isinstance(record, TransactionRecord)
    assert record.total_energy_kwh4 == 4690
    assert record.total_amount_yuan4 == sum(entry.amount_yuan4) == entry.total_amount_yuan4
    summary = entry.summary()
    assert summary["tiers"]["peak"]["energy"] == Decimal("0.4567")
    assert summary["tiers"]["tip"]["price"] == Decimal("1.84568")
    assert summary["tradeFlag"] == "app" and summary["confirmed"] is False


def test_config_validation_and_fleet_codes() -> None:
    with pytest.raises(ValueError, match="14 decimal digits"):
        PileConfig(pile_code="123")
    with pytest.raises(ValueError, match="protocol_version"):
        PileConfig(pile_code="32010200000001", protocol_version=17)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        PileConfig(pile_code="32010200000001", heartbeat_interval=0)
    assert fleet_pile_codes(3, "3201020") == ["32010200000001", "32010200000002",
                                              "32010200000003"]
    with pytest.raises(ValueError, match="do not fit"):
        fleet_pile_codes(100, "3201020000000")
