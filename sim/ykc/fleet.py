"""Many simulated piles in one process (benchmarks, demos): one task per pile, staggered connects."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import DEFAULT_PORT, PileConfig
from .pile import PileCounters, SimPile

__all__ = ["FleetStats", "PileFleet", "fleet_pile_codes", "run_fleet"]


def fleet_pile_codes(n: int, code_prefix: str, *, first: int = 1) -> list[str]:
    """``n`` 14-digit pile codes: ``code_prefix`` + a zero-padded running number from ``first``."""
    if not code_prefix.isdigit() or not code_prefix.isascii() or len(code_prefix) >= 14:
        raise ValueError(f"code_prefix must be 1..13 decimal digits, got {code_prefix!r}")
    width = 14 - len(code_prefix)
    if n < 0 or first < 0 or first + n - 1 >= 10**width:
        raise ValueError(f"{n} piles from {first} do not fit {width} digits after {code_prefix!r}")
    return [f"{code_prefix}{number:0{width}d}" for number in range(first, first + n)]


@dataclass
class FleetStats:
    """Aggregate view of a fleet at one moment."""

    piles: int
    logged_in: int
    charging_guns: int
    unconfirmed_records: int
    counters: PileCounters = field(default_factory=PileCounters)

    def as_dict(self) -> dict[str, Any]:
        return {
            "piles": self.piles,
            "loggedIn": self.logged_in,
            "chargingGuns": self.charging_guns,
            "unconfirmedRecords": self.unconfirmed_records,
            **self.counters.as_dict(),
        }


class PileFleet:
    """``n`` piles with codes ``code_prefix`` + running number, all connecting to ``host:port``.

    Every pile gets ``template`` (or ``PileConfig(**overrides)``) with its own pile code and
    ``seed + index``. Pile ``i`` connects ``i / connect_rate`` seconds after :meth:`start`.
    """

    def __init__(
        self,
        n: int,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        code_prefix: str = "3201020",
        *,
        template: PileConfig | None = None,
        connect_rate: float = 500.0,
        seed: int = 0,
        **overrides: Any,
    ) -> None:
        if connect_rate <= 0:
            raise ValueError("connect_rate must be > 0 piles per second")
        codes = fleet_pile_codes(n, code_prefix)
        if template is None:
            template = PileConfig(pile_code=codes[0] if codes else "0" * 14, **overrides)
        elif overrides:
            template = dataclasses.replace(template, **overrides)
        self.template = template
        self.connect_rate = connect_rate
        self.piles = [
            SimPile(dataclasses.replace(template, pile_code=code, seed=seed + index), host, port)
            for index, code in enumerate(codes)
        ]
        self._by_code = {pile.pile_code: pile for pile in self.piles}
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self.piles)

    def pile(self, pile_code: str) -> SimPile:
        return self._by_code[pile_code]

    async def start(self) -> None:
        """Start every pile (staggered by ``connect_rate``); returns at once."""
        if self._tasks:
            return
        self._tasks = [pile.start(initial_delay=index / self.connect_rate)
                       for index, pile in enumerate(self.piles)]

    async def stop(self) -> None:
        """Cancel every pile and wait until all connections are closed."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pile in self.piles:
            await pile.stop()  # clears the pile's task reference

    async def __aenter__(self) -> PileFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def logged_in(self) -> int:
        return sum(pile.logged_in.is_set() for pile in self.piles)

    async def wait_logged_in(self, count: int | None = None, *, timeout: float | None = None,
                             poll: float = 0.1) -> None:
        """Wait until ``count`` (default: all) piles are logged in; TimeoutError otherwise."""
        target = len(self.piles) if count is None else count
        async with asyncio.timeout(timeout):
            while self.logged_in() < target:  # noqa: ASYNC110 - a count over n piles' events
                await asyncio.sleep(poll)

    def stats(self) -> FleetStats:
        totals = PileCounters()
        charging = unconfirmed = logged_in = 0
        for pile in self.piles:
            totals.add(pile.counters)
            logged_in += pile.logged_in.is_set()
            unconfirmed += len(pile.unconfirmed)
            charging += sum(pile.session(gun) is not None
                            for gun in range(1, pile.config.guns + 1))
        return FleetStats(piles=len(self.piles), logged_in=logged_in, charging_guns=charging,
                          unconfirmed_records=unconfirmed, counters=totals)


async def run_fleet(
    n: int,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    code_prefix: str = "3201020",
    duration: float | None = None,
    report: Callable[[FleetStats], None] | None = None,
    report_interval: float = 10.0,
    connect_rate: float = 500.0,
    seed: int = 0,
    **overrides: Any,
) -> FleetStats:
    """Run ``n`` piles for ``duration`` seconds (None: until cancelled); return the final stats.

    ``overrides`` are :class:`PileConfig` fields (``guns=2``, ``heartbeat_interval=10``,
    ``bms_frames=False``...). ``report`` is called with the stats every ``report_interval``.
    """
    fleet = PileFleet(n, host, port, code_prefix, connect_rate=connect_rate, seed=seed,
                      **overrides)
    loop = asyncio.get_running_loop()
    end = None if duration is None else loop.time() + duration
    async with fleet:
        while end is None or loop.time() < end:
            step = report_interval if end is None else min(report_interval, end - loop.time())
            await asyncio.sleep(max(step, 0.0))
            if report is not None:
                report(fleet.stats())
    return fleet.stats()
