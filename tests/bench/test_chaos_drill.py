"""The chaos drill (bench/chaos): the verdict's rules on hand-made rows, and the ``--small``
drill against real Mosquitto, cloud and gateway processes."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import ChaosError, DrillSpec, compare, run_drill, small_spec
from bench.chaos.__main__ import parse
from bench.chaos.verdict import OrderRow, WalletRow, expected_amount
from bench.mosquitto import mosquitto_binary
from tests.conftest import IN_CI

GW = "gw-x"
RATES = {"flat": (Decimal("0.7"), Decimal("0.6")), "valley": (Decimal("0.3"), Decimal("0.6"))}


def _ykc(session: str, energy: str, amount: str, *, confirmed: bool = True,
         tier: str = "flat", price: str = "1.30000") -> dict[str, Any]:
    return {"kind": "ykc", "device": "P1", "sessionId": session, "energy": energy,
            "amount": amount, "confirmed": confirmed, "start": "card",
            "tiers": {tier: {"price": price, "energy": energy, "amount": amount}}}


def _ocpp(session: str, energy: str, *, confirmed: bool = True) -> dict[str, Any]:
    return {"kind": "ocpp16", "device": "CP-1", "sessionId": session, "energy": energy,
            "amount": None, "confirmed": confirmed, "start": "app"}


def _order(device: str, session: str, energy: str | None, total: str | None, *,
           status: str = "settled", order_id: int = 1, reconciled: bool | None = True,
           discrepancies: tuple[Any, ...] = ()) -> OrderRow:
    return OrderRow(gw=GW, device=device, session_id=session, status=status,
                    energy=Decimal(energy) if energy is not None else None,
                    total_amount=Decimal(total) if total is not None else None,
                    reconciled=reconciled, discrepancies=discrepancies, order_id=order_id)


def test_platform_rounding_of_the_piles_tiers() -> None:
    # 0.0791 kWh flat: 0.05537 -> 0.06 electricity, 0.04746 -> 0.05 service; the pile says 0.1028
    assert expected_amount({"flat": {"price": "1.30000", "energy": "0.0791"}}, RATES) == \
        Decimal("0.11")
    assert expected_amount({"flat": {"price": "1.30000", "energy": "0.0000"},
                            "valley": {"price": "0.90000", "energy": "0.0500"}}, RATES) == \
        Decimal("0.05")  # 0.015 -> 0.02 and 0.03
    # the pile priced with another tariff: not comparable
    assert expected_amount({"flat": {"price": "1.40000", "energy": "0.1"}}, RATES) is None
    assert expected_amount({"tip": {"price": "1.80000", "energy": "0.1"}}, RATES) is None


def test_a_clean_run_passes() -> None:
    ledger = [_ykc("s1", "0.0791", "0.1028"), _ocpp("7", "0.046")]
    orders = [_order("P1", "s1", "0.0791", "0.11"), _order("CP-1", "7", "0.046", "0.06",
                                                           order_id=2)]
    wallets = [WalletRow("u1", Decimal("99.83"), Decimal("99.83"), Decimal("100.00"),
                         Decimal("0.17"))]
    verdict = compare(GW, ledger, orders, wallets, rates=RATES)
    assert verdict.ok, verdict.details()
    assert verdict.sessions == 2
    assert verdict.by_kind == {"ykc": 1, "ocpp16": 1}
    verdict.chaos, verdict.seconds = "1 broker restarts, cloud killed 1x, gateway killed 1x", 61
    assert verdict.line() == (
        "CHAOS PASS: 2 sessions (1 ocpp16, 1 ykc), 0 lost, 0 duplicated, 0 extra, "
        "0 energy mismatches, 0 amount mismatches, 0 unsettled, 0 wallet mismatches, "
        "0 flagged by reconciliation (1 broker restarts, cloud killed 1x, gateway killed 1x) "
        "in 61 s")


def test_every_kind_of_loss_is_found() -> None:
    ledger = [
        _ykc("lost", "0.1", "0.13"),
        _ykc("energy", "0.1074", "0.1396"),
        _ykc("amount", "0.0791", "0.1028"),
        _ocpp("open", "0.05"),
        _ocpp("never-acked", "0.068", confirmed=False),
    ]
    orders = [
        _order("P1", "energy", "0.1000", "0.13", order_id=3, status="disputed",
               reconciled=False, discrepancies=({"field": "energy"},)),
        _order("P1", "amount", "0.0791", "0.10", order_id=4),
        _order("CP-1", "open", None, None, order_id=5, status="charging"),
        _order("CP-1", "never-acked", None, None, order_id=6, status="charging"),
        _order("CP-1", "phantom", "0.2", "0.26", order_id=7),
        _order("P1", "amount", "0.0791", "0.10", order_id=8),
    ]
    wallets = [WalletRow("u1", Decimal("90.00"), Decimal("90.00"), Decimal("100.00"),
                         Decimal("9.99"))]
    verdict = compare(GW, ledger, orders, wallets, rates=RATES)
    assert not verdict.ok
    assert [x.split(" ")[0] for x in verdict.lost] == ["gw-x/P1/lost", "gw-x/CP-1/never-acked"]
    assert verdict.unconfirmed == 1
    assert len(verdict.duplicated) == 1 and "[4, 8]" in verdict.duplicated[0]
    assert len(verdict.energy_mismatches) == 1 and "flagged" in verdict.energy_mismatches[0]
    assert len(verdict.amount_mismatches) == 1 and "0.11" in verdict.amount_mismatches[0]
    assert verdict.unsettled == ["gw-x/CP-1/open: order 5 still charging"]
    assert len(verdict.extra) == 1 and "phantom" in verdict.extra[0]
    assert len(verdict.wallet_mismatches) == 1
    assert verdict.line().startswith("CHAOS FAIL: 5 sessions")


def test_an_amount_the_platform_flagged_is_not_a_mismatch() -> None:
    ledger = [_ykc("s1", "0.1", "0.09", tier="valley", price="0.90000")]
    orders = [_order("P1", "s1", "0.1", "0.13", status="disputed", reconciled=False,
                     discrepancies=({"field": "amount", "ours": "0.13", "theirs": "0.09"},))]
    verdict = compare(GW, ledger, orders, rates={"flat": RATES["flat"]})
    assert verdict.ok, verdict.details()
    assert len(verdict.flagged) == 1


def test_an_empty_run_proves_nothing() -> None:
    verdict = compare(GW, [], [])
    assert not verdict.ok
    assert verdict.details() == ["no session completed: the drill proved nothing"]


def test_command_line() -> None:
    spec, args = parse(["--small", "--ykc", "3", "--broker-restarts", "2", "--seed", "9"])
    assert (spec.ykc, spec.ocpp, spec.broker_restarts, spec.seed, spec.duration) == \
        (3, 2, 2, 9, 60.0)
    assert not args.sqlite
    assert parse([])[0] == DrillSpec()
    with pytest.raises(ChaosError, match="at least one charger"):
        parse(["--ykc", "0", "--ocpp", "0"])
    actions = [a for _, a in small_spec().chaos_events()]
    assert sorted(actions) == ["broker", "cloud", "gateway"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("workers", [1, 2])
async def test_small_drill_loses_nothing(tmp_path: Path, workers: int) -> None:
    """One worker on plain subscriptions, and two on a shared subscription (whose messages
    Mosquitto loses across its restart: the gateway's end-to-end receipts make up for it)."""
    if mosquitto_binary() is None:
        if IN_CI:
            pytest.fail("mosquitto missing under CI=true")
        pytest.skip("mosquitto not installed (scripts/install-system-deps.sh)")
    spec = dataclasses.replace(small_spec(), workers=workers)
    verdict = await run_drill(spec, tmp_path, say=lambda _text: None)
    assert verdict.sessions > 0
    shared = " (2 workers, shared subscription)" if workers == 2 else ""
    assert verdict.chaos == f"1 broker restarts, cloud killed 1x{shared}, gateway killed 1x"
    assert verdict.ok, "\n".join([verdict.line(), *verdict.details()])
