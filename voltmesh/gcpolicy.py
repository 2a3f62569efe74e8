"""The cyclic garbage collector's policy for a long-lived service (``voltmesh edge``).

A gateway holds ~50 tracked objects per connected YKC pile, ~70 per OCPP charger (sessions,
translators, asyncio transports and tasks). CPython's full (generation 2) pass walks every
tracked object that is not frozen, holding the event loop, and it runs whenever the objects
promoted into generation 2 since the last full pass exceed a quarter of the survivors of that
pass, which steady traffic does: at 10,000 piles ~0.3 s of CPU every ~18 s
(``python -m bench.gc_pause``, docs/benchmarks.md "Gateway GC pauses").

``gc.freeze()`` moves every object alive now into a permanent generation that no pass walks,
so the automatic passes only walk what was promoted since. But a reference cycle among frozen
objects that later becomes garbage (a disconnected charger's connection, transport and task) is
never collected while frozen. :class:`GcPolicy` therefore *re-freezes* (``gc.unfreeze()``,
``gc.collect()``, ``gc.freeze()``: one full pass that frees those cycles, then everything alive
is frozen again):

* every ``every`` seconds: a frozen garbage cycle lives at most that long (the leak bound);
* sooner when the young long-lived heap (generation 2, not frozen) has grown past ``growth``
  times the frozen heap (a fleet connected since the last freeze), but at most once per
  ``min_interval`` seconds, so a login storm costs a few full passes, not one per check.

Between re-freezes the automatic full passes walk only the young heap (a few ms).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("voltmesh.gc")


@dataclass(frozen=True)
class Refreeze:
    """What one re-freeze did."""

    #: objects the full pass found unreachable (freed cycles, frozen ones included)
    collected: int
    #: objects frozen afterwards (everything alive and tracked)
    frozen: int
    #: wall-clock seconds the re-freeze held the thread (unfreeze + full pass + freeze + count)
    seconds: float


def freeze() -> Refreeze:
    """Collect and freeze what is alive (the first freeze after a service has started)."""
    t0 = time.perf_counter()
    collected = gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    return Refreeze(collected, frozen, time.perf_counter() - t0)


def refreeze() -> Refreeze:
    """``gc.unfreeze()``, ``gc.collect()``, ``gc.freeze()``: free the garbage cycles among the
    previously frozen objects, then freeze everything alive again. One full pass."""
    t0 = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()  # walks the permanent generation once
    return Refreeze(collected, frozen, time.perf_counter() - t0)


def young_objects() -> int:
    """Tracked objects in generation 2 that are not frozen (O(their number))."""
    return len(gc.get_objects(generation=2))


class GcPolicy:
    """Freeze once the service has started, then re-freeze by age and by growth (module doc).

    ``clock`` and ``young`` are for tests; :meth:`run` is the periodic check.
    """

    def __init__(self, every: float, *, growth: float = 0.25, min_interval: float = 60.0,
                 check: float | None = None, clock: Callable[[], float] = time.monotonic,
                 young: Callable[[], int] = young_objects) -> None:
        check = min(10.0, every) if check is None else check
        if every <= 0 or growth <= 0 or min_interval < 0 or check <= 0:
            raise ValueError("every, growth and check must be > 0, min_interval >= 0")
        self.every = every
        self.growth = growth
        self.min_interval = min_interval
        #: seconds between checks (default: 10 s, or ``every`` if shorter)
        self.check = check
        self._clock = clock
        self._young = young
        self.frozen = 0
        self.last_freeze = clock()
        #: every re-freeze done, in order (the first freeze excluded)
        self.refreezes: list[Refreeze] = []

    def start(self) -> Refreeze:
        """The first freeze (what ``voltmesh`` did before there was a policy)."""
        done = freeze()
        self.frozen, self.last_freeze = done.frozen, self._clock()
        log.info("gc: %d objects frozen after start (%.1f ms)", done.frozen, done.seconds * 1000)
        return done

    def due(self) -> str | None:
        """Why a re-freeze is due now (``"age"``, ``"growth"``), or None."""
        since = self._clock() - self.last_freeze
        if since >= self.every:
            return "age"
        if since >= self.min_interval and self._young() > self.growth * max(self.frozen, 1):
            return "growth"
        return None

    def step(self) -> Refreeze | None:
        """Re-freeze if due; returns what it did."""
        why = self.due()
        if why is None:
            return None
        done = refreeze()
        self.frozen, self.last_freeze = done.frozen, self._clock()
        self.refreezes.append(done)
        log.info("gc: re-froze the heap (%s): %d objects collected, %d frozen, %.1f ms",
                 why, done.collected, done.frozen, done.seconds * 1000)
        return done

    async def run(self) -> None:
        """Check every ``check`` seconds, forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.check)
            self.step()
