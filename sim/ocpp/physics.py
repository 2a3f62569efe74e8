"""A connector's electrical model: energy register, power with a SoC taper, voltage, current."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sim.ocpp.config import SimConfig

TAPER_FROM_SOC = 80.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One instant of the connector's meter."""

    register_wh: int
    power_w: float
    voltage_v: float
    current_a: float
    soc: float
    phase_voltages: tuple[float, ...]
    phase_currents: tuple[float, ...]


class ConnectorPhysics:
    """Integrates power into an integer Wh register (fractions carried, never lost)."""

    def __init__(self, config: SimConfig, rng: random.Random, register_wh: int) -> None:
        self._cfg = config
        self._rng = rng
        self.register_wh = register_wh
        self._fraction_wh = 0.0
        self.soc = config.start_soc
        self.power_w = 0.0
        self.limit_w: float | None = None
        self.charging = False

    def start_vehicle(self) -> None:
        """A new EV arrives at the configured start SoC."""
        self.soc = self._cfg.start_soc

    def target_power_w(self) -> float:
        """The power the EV draws now (limit and taper applied)."""
        power = self._cfg.max_power_kw * 1000
        if self.limit_w is not None:
            power = min(power, self.limit_w)
        if self.soc >= 100:
            return 0.0
        if self.soc > TAPER_FROM_SOC:
            power *= max(0.1, (100 - self.soc) / (100 - TAPER_FROM_SOC))
        return power

    def advance(self, dt_s: float) -> None:
        """Let ``dt_s`` real seconds pass (scaled by ``time_scale``)."""
        if not self.charging or dt_s <= 0:
            self.power_w = 0.0
            return
        self.power_w = self.target_power_w() * self._rng.uniform(0.97, 1.0)
        energy_wh = self.power_w * dt_s * self._cfg.time_scale / 3600
        total = self._fraction_wh + energy_wh
        whole = int(total)
        self.register_wh += whole
        self._fraction_wh = total - whole
        self.soc = min(100.0, self.soc + energy_wh / (self._cfg.battery_kwh * 10))

    def reading(self) -> Reading:
        """The meter now."""
        cfg = self._cfg
        power = self.power_w
        if cfg.charger_type == "dc":
            voltage = 350.0 + self.soc + self._rng.uniform(-0.5, 0.5)
            current = power / voltage
            return Reading(self.register_wh, power, voltage, current, self.soc, (), ())
        phases = cfg.phases
        volts = tuple(cfg.nominal_voltage + self._rng.uniform(-2.0, 2.0) for _ in range(phases))
        amps = tuple(power / phases / v for v in volts)
        return Reading(self.register_wh, power, sum(volts) / phases, max(amps), self.soc,
                       volts, amps)
