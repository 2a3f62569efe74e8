"""Ledger against orders: what the chargers completed vs what the platform billed.

Pure functions over plain rows, so the rules are testable without a drill:

* every **confirmed** ledger row (the platform acknowledged the record) must have exactly one
  order with the same ``(gw, device, session id)``; none is **lost**;
* no two orders for one session (**duplicated**; the unique constraint should make this
  impossible, the drill checks anyway) and no order of the gateway without a ledger row
  (**extra**; unconfirmed rows count as known sessions, the charger may still deliver them);
* the order's energy equals the charger's (**energy mismatch**);
* YKC: the order's total equals the pile's own tier energies priced the platform's way (per
  tier, electricity and service each rounded half up to fen, :func:`expected_amount`; the pile
  itself keeps 0.0001 CNY), unless the pile priced with another tariff or the platform flagged
  the order itself (``reconciled = False`` with an ``amount`` / ``energy`` discrepancy): those
  count as **flagged**; any other difference is an **amount mismatch**;
* a session whose end the charger never got acknowledged (``confirmed: false`` after the drain)
  is **lost** unless its order is billed anyway;
* a confirmed session whose order is not billed yet when the drill gives up is **unsettled**;
* every wallet of the seeded customers reconciles: its balance equals the sum of its ledger
  entries and equals the top-ups minus what the orders of its user were paid (net of refunds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

FEN = Decimal("0.01")
#: order states in which the bill is final
BILLED = frozenset({"settled", "disputed", "unpaid", "refunded"})


@dataclass(frozen=True, slots=True)
class OrderRow:
    """The columns of ``orders`` the verdict reads."""

    gw: str
    device: str
    session_id: str
    status: str
    energy: Decimal | None
    total_amount: Decimal | None
    reconciled: bool | None
    discrepancies: Sequence[Any] = ()
    order_id: int | None = None


@dataclass(frozen=True, slots=True)
class WalletRow:
    """One seeded customer's wallet: balance, the sum of its ledger entries, top-ups, and the
    net amount its user's orders were paid (paid - refunded)."""

    user_id: str
    balance: Decimal
    ledger_sum: Decimal
    topups: Decimal
    orders_paid: Decimal


@dataclass
class Verdict:
    """The outcome; :meth:`line` is the one-line verdict, :attr:`details` the findings."""

    sessions: int = 0
    unconfirmed: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    energy_mismatches: list[str] = field(default_factory=list)
    amount_mismatches: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    wallet_mismatches: list[str] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    chaos: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No loss of any kind (flagged orders are the platform's own finding, not a loss)."""
        return self.sessions > 0 and not (
            self.lost or self.duplicated or self.extra or self.energy_mismatches
            or self.amount_mismatches or self.unsettled or self.wallet_mismatches)

    def line(self) -> str:
        """``CHAOS PASS: 48 sessions, 0 lost, ...`` or ``CHAOS FAIL: ...``."""
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.by_kind.items()))
        text = (f"CHAOS {'PASS' if self.ok else 'FAIL'}: {self.sessions} sessions"
                f"{f' ({kinds})' if kinds else ''}, {len(self.lost)} lost, "
                f"{len(self.duplicated)} duplicated, {len(self.extra)} extra, "
                f"{len(self.energy_mismatches)} energy mismatches, "
                f"{len(self.amount_mismatches)} amount mismatches, "
                f"{len(self.unsettled)} unsettled, {len(self.wallet_mismatches)} wallet "
                f"mismatches, {len(self.flagged)} flagged by reconciliation")
        if self.chaos:
            text += f" ({self.chaos})"
        return text + f" in {self.seconds:.0f} s"

    def details(self) -> list[str]:
        """One line per finding (empty when there is none)."""
        out: list[str] = []
        for name in ("lost", "duplicated", "extra", "energy_mismatches", "amount_mismatches",
                     "unsettled", "wallet_mismatches", "flagged"):
            out += [f"{name}: {item}" for item in getattr(self, name)]
        if self.sessions == 0:
            out.append("no session completed: the drill proved nothing")
        return out


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _key(gw: str, device: str, session: str) -> str:
    return f"{gw}/{device}/{session}"


def _flagged_totals(order: OrderRow) -> bool:
    return order.reconciled is False and any(
        isinstance(d, Mapping) and d.get("field") in ("amount", "energy")
        for d in order.discrepancies)


def expected_amount(tiers: Mapping[str, Any], rates: Mapping[str, tuple[Decimal, Decimal]],
                    ) -> Decimal | None:
    """What the platform bills for the pile's own tier energies: per tier, energy x electricity
    rate and energy x service rate, each rounded half up to fen (``cloud/billing/settle.py``).
    None when a tier the pile used is not in ``rates`` or the pile's price for it differs
    (the pile priced with another tariff)."""
    total = Decimal("0.00")
    for name, tier in tiers.items():
        energy = Decimal(str(tier.get("energy", "0")))
        if not energy:
            continue
        if name not in rates:
            return None
        electricity, service = rates[name]
        if Decimal(str(tier.get("price", "0"))) != electricity + service:
            return None
        total += (energy * electricity).quantize(FEN, rounding=ROUND_HALF_UP)
        total += (energy * service).quantize(FEN, rounding=ROUND_HALF_UP)
    return total


def compare(gw: str, ledger: Iterable[Mapping[str, Any]], orders: Iterable[OrderRow],
            wallets: Iterable[WalletRow] = (),
            rates: Mapping[str, tuple[Decimal, Decimal]] | None = None) -> Verdict:
    """Check the ledger rows of gateway ``gw`` against its orders (see the module docs).

    ``rates``: the station tariff's (electricity, service) rate per tier, to price the YKC
    piles' own tier energies the platform's way; without it a YKC amount must equal the
    pile's amount rounded to fen."""
    verdict = Verdict()
    by_key: dict[str, list[OrderRow]] = {}
    for order in orders:
        if order.gw == gw:
            by_key.setdefault(_key(gw, order.device, order.session_id), []).append(order)
    known: set[str] = set()
    for row in ledger:
        key = _key(gw, str(row["device"]), str(row["sessionId"]))
        if key in known:
            verdict.duplicated.append(f"{key}: twice in the simulators' ledger")
            continue
        known.add(key)
        found = by_key.get(key, [])
        what = (f"{row.get('kind')}, {row.get('start')} start, energy {row.get('energy')}, "
                f"ended {row.get('endedAt')}")
        verdict.sessions += 1
        verdict.by_kind[str(row.get("kind", "?"))] += 1
        if not row.get("confirmed", False):
            verdict.unconfirmed += 1
            if not found or found[0].status not in BILLED:
                state = f"order {found[0].order_id} still {found[0].status}" if found \
                    else "no order"
                verdict.lost.append(f"{key} ({what}): the charger's end was never "
                                    f"acknowledged; {state}")
                continue
        if not found:
            verdict.lost.append(f"{key} ({what}): acknowledged, but no order")
            continue
        if len(found) > 1:
            verdict.duplicated.append(f"{key}: {len(found)} orders "
                                      f"{[o.order_id for o in found]}")
        order = found[0]
        if order.status not in BILLED:
            verdict.unsettled.append(f"{key}: order {order.order_id} still {order.status}")
            continue
        energy = _dec(row.get("energy"))
        if order.energy is None or energy is None or order.energy != energy:
            flag = f"; flagged: {list(order.discrepancies)}" if _flagged_totals(order) else ""
            verdict.energy_mismatches.append(
                f"{key}: order {order.order_id} ({order.status}) energy {order.energy}, "
                f"charger {energy}{flag}")
            continue
        amount = _dec(row.get("amount"))
        if amount is None:
            continue  # OCPP chargers do not price sessions
        expected = expected_amount(row.get("tiers") or {}, rates) if rates is not None \
            else amount.quantize(FEN, rounding=ROUND_HALF_UP)
        if expected is not None and order.total_amount == expected:
            continue
        text = (f"{key}: order {order.order_id} total {order.total_amount}, pile {amount} "
                f"(platform rounding of the pile's tiers: {expected})")
        if _flagged_totals(order) or expected is None:
            verdict.flagged.append(f"{text}; discrepancies {list(order.discrepancies)}")
        else:
            verdict.amount_mismatches.append(text)
    for key, found in by_key.items():
        if key not in known:
            verdict.extra += [f"{key}: order {o.order_id} ({o.status}, energy {o.energy}) "
                              f"has no ledger row" for o in found]
    for wallet in wallets:
        expected_balance = wallet.topups - wallet.orders_paid
        if wallet.balance != wallet.ledger_sum or wallet.balance != expected_balance:
            verdict.wallet_mismatches.append(
                f"user {wallet.user_id}: balance {wallet.balance}, ledger sum "
                f"{wallet.ledger_sum}, top-ups {wallet.topups} - orders paid "
                f"{wallet.orders_paid} = {expected_balance}")
    return verdict
