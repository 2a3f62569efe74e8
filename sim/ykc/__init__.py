"""Simulated YKC (云快充) v1.5/v1.6 charging piles — the TCP client side, for the demo, the
integration tests and fleet benchmarks. Built on the sans-I/O codec in :mod:`bridges.ykc`; wire
reference ``shared/protocols/ykc.md``.

Public API
==========

``PileConfig(pile_code, guns=1, protocol_version=16, pile_type=DC, ...)``
    Frozen configuration of one pile (:mod:`sim.ykc.config` documents every field).
``SimPile(config, host="127.0.0.1", port=8768)``
    One pile. ``start()`` / ``await stop()`` / ``async with`` / ``await run()``;
    ``await swipe(gun, card)``, ``plug(gun)``, ``stop_charging(gun, reason)``,
    ``set_fault(gun, faulted)``, ``disconnect()``; observability: ``counters``
    (:class:`PileCounters`), ``ledger`` (list of :class:`LedgerEntry`), ``logged_in`` and
    ``model_loaded`` (Events), ``charging(gun)`` and ``record_confirmed(trade_no)`` (Events),
    ``session(gun)``, ``entry(trade_no)``, ``unconfirmed``, ``gun(n)``, ``now()``.
``PileFleet(n, host, port, code_prefix, **config)`` / ``await run_fleet(n, host, port, ...)``
    Many piles in one process with staggered connects and aggregate :class:`FleetStats`.

Running piles from Python::

    async with SimPile(PileConfig("32010200000001", guns=2), "127.0.0.1", 8768) as pile:
        await pile.logged_in.wait()
        trade = await pile.swipe(1, "D14B0A54")

    stats = asyncio.run(run_fleet(1000, "127.0.0.1", 8768, duration=60, bms_frames=False))

Behaviour (spec §5)
===================

* Power-on: connect → 0x01 → 0x02 (failure or no answer within ``login_timeout``: counted, close,
  retry after the backoff). After login: every unconfirmed 0x3B first, one 0x13 per gun, then
  0x05 with the model code held (``0000`` at first); 0x06 "differs" (or no model yet) → 0x09 →
  0x0A; 0x05/0x09 repeat every ``model_retry_interval`` until answered. 0x58 is answered 0x57.
  0x56 sets the pile clock (offset to its wall clock) and is answered 0x55 with the same time.
* Heartbeat: 0x03 per gun every ``heartbeat_interval``; a gun whose 0x04 has not arrived by the
  next round counts as missed; ``missed_heartbeats_limit`` silent rounds drop the link.
* 0x34 → 0x33: success unless pile code wrong (1), gun busy (2), faulted / disabled by 0x52 (3),
  no billing model (4), not plugged (5, then a second 0x33 success when plugged within 60 s).
  0xA4 → 0xA3 likewise on v1.6 (first gun of a parallel id is master); ignored on v1.5.
* Charging: 0x13 at once and every ``realtime_interval`` (status 3, trade no, V/I, SOC,
  energy, amount); DC piles also 0x15/0x17 at start and 0x23/0x25 with each 0x13 (``bms_frames``).
  A DC pile stops by itself at SOC 100 % (reason 0x41) unless ``stop_at_full_soc`` is off.
* 0x36 → 0x35 → stop → 0x19 (DC) → 0x3B (stop reason 0x40) → idle 0x13. The 0x3B frame is
  encoded once and the same bytes are re-sent every ``record_retry_interval`` until 0x40 (any
  result) arrives, and after every login while unconfirmed.
* Card: ``swipe`` sends 0x31 and starts on an authorised 0x32 with its trade number (flag 0x02);
  offline it checks the local card list and makes its own trade number (flag 0x04).
* Also answered: 0x12 (0x13 now), 0x42 (0x41), 0x44/0x46/0x48 (0x43/0x45/0x47), 0x52 (0x51),
  0x62 (0x63 then 0x61), 0x92 (0x91, stop, disconnect, reconnect after ``reboot_duration``),
  0x94 (0x93 status 0). Anything else, or anything undecodable, is ignored and counted.

Energy and money (:mod:`sim.ykc.billing`)
=========================================

Energy = power × time in integers (0.0001 kWh, carried remainder, nothing lost), booked per
tier by the half-hour slots of the model pinned at session start, using the pile's local clock.
Per tier: unit price = electricity + service rate (0.00001 yuan/kWh); amount = energy × price,
rounded half up to 0.0001 yuan; totals are the sums of the tiers (also in 0x13).
"""

from .billing import (
    accrue_energy,
    amount_yuan4,
    model_is_valid,
    tier_amounts_yuan4,
    tier_prices_yuan5,
)
from .config import DEFAULT_PORT, PileConfig
from .fleet import FleetStats, PileFleet, fleet_pile_codes, run_fleet
from .ledger import TIER_NAMES, LedgerEntry
from .pile import GunView, PileCounters, SimPile

__all__ = [
    "DEFAULT_PORT",
    "TIER_NAMES",
    "FleetStats",
    "GunView",
    "LedgerEntry",
    "PileConfig",
    "PileCounters",
    "PileFleet",
    "SimPile",
    "accrue_energy",
    "amount_yuan4",
    "fleet_pile_codes",
    "model_is_valid",
    "run_fleet",
    "tier_amounts_yuan4",
    "tier_prices_yuan5",
]
