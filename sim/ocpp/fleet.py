"""Many simulated charge points in one process (one asyncio loop, one task each)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from sim.ocpp.config import SimConfig
from sim.ocpp.station import OcppChargePointSim


def fleet_configs(count: int, *, prefix: str = "SIM", start: int = 1, **common: Any
                  ) -> list[SimConfig]:
    """``count`` configurations with ids ``{prefix}{n:04d}`` and distinct seeds / serials."""
    configs = []
    for n in range(start, start + count):
        cp_id = f"{prefix}{n:04d}"
        fields = {"serial_number": f"{prefix}-SN-{n:06d}"[:25], "seed": n, **common}
        configs.append(SimConfig(charge_point_id=cp_id, **fields))
    return configs


class OcppFleet:
    """Run many :class:`OcppChargePointSim` at once::

        async with OcppFleet(fleet_configs(100, url="ws://127.0.0.1:9000/ocpp")) as fleet:
            await fleet.wait_booted()
    """

    def __init__(self, configs: Iterable[SimConfig], *, stagger_s: float = 0.0) -> None:
        self.sims = [OcppChargePointSim(c) for c in configs]
        self.stagger_s = stagger_s
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self.sims)

    def __getitem__(self, charge_point_id: str) -> OcppChargePointSim:
        for sim in self.sims:
            if sim.id == charge_point_id:
                return sim
        raise KeyError(charge_point_id)

    async def __aenter__(self) -> OcppFleet:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Start every simulator (``stagger_s`` apart, to avoid a connect storm)."""
        for sim in self.sims:
            self._tasks.append(asyncio.create_task(sim.run(), name=f"ocpp-sim-{sim.id}"))
            if self.stagger_s:
                await asyncio.sleep(self.stagger_s)

    async def wait_booted(self, timeout: float = 30.0) -> None:
        """Until every simulator is booted."""
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(sim.booted.wait() for sim in self.sims))

    def online(self) -> int:
        """How many are connected and booted."""
        return sum(1 for sim in self.sims if sim.online)

    async def close(self) -> None:
        """Stop them all."""
        await asyncio.gather(*(sim.close() for sim in self.sims), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def run(self) -> None:
        """Run until cancelled."""
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.close()
