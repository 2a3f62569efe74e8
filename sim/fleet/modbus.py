"""Modbus devices in the fleet: the simulator SERVES Modbus TCP and the gateway polls it.

Meters (Eastron SDM630 map), temperature/humidity sensors (XY-MD02 map) and parking locks
(the shipped RS485 lock map) are :class:`sim.modbus.SimulatedDevice` images served by
:class:`sim.modbus.ModbusSimServer` listeners, ``modbus_units_per_port`` unit ids per port,
as behind a Modbus TCP gateway. Values move once a second: meter power wanders and energy
accumulates (exactly, in Decimal), temperatures drift, a lock's bay is taken now and then.

A device counts as connected while the gateway polls it: at least one request within
``3 x modbus_interval + 2`` seconds. Every request answered is one message sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from decimal import Decimal

from bridges.modbus import Function, RegisterMap, shipped_map
from sim.fleet.driver import Driver, RunClock
from sim.fleet.meter import KindMeter
from sim.fleet.schedule import device_seed
from sim.fleet.spec import MODBUS_MAPS, DevicePlan, FleetSpec, Kind, modbus_layout
from sim.modbus import ModbusSimServer, SimulatedDevice

__all__ = ["MAP_NAMES", "CountingDevice", "ModbusDriver", "ModbusKindView", "ModbusPort"]

MAP_NAMES = MODBUS_MAPS
_TICK = 1.0
_KWH = Decimal("0.001")


class CountingDevice(SimulatedDevice):
    """A simulated device that notes when the gateway last asked it for something."""

    def __init__(self, regmap: RegisterMap, device_id: int, plan: DevicePlan,
                 driver: ModbusDriver) -> None:
        super().__init__(regmap, device_id)
        self.plan = plan
        self.driver = driver
        self.last_request: float | None = None
        self.requests = 0

    def fill_block(self, function: Function, start: int, block: list[int]) -> None:
        self.requests += 1
        self.last_request = time.monotonic()
        meter = self.driver.meters[self.plan.kind]
        meter.received += 1
        meter.sent += 1
        super().fill_block(function, start, block)


class ModbusPort:
    """One listener and the devices behind it (``port`` is known once started)."""

    def __init__(self, slot: int, devices: list[CountingDevice], host: str, port: int) -> None:
        self.slot = slot
        self.devices = devices
        self.server = ModbusSimServer(devices, host, port, allow_non_loopback=True)

    @property
    def port(self) -> int:
        return self.server.port


class ModbusKindView:
    """The devices of one Modbus kind, as the runner counts kinds."""

    def __init__(self, driver: ModbusDriver, kind: Kind) -> None:
        self.driver = driver
        self.kind = kind
        self.meter = driver.meters[kind]

    def target(self) -> int:
        return sum(1 for d in self.driver.devices if d.plan.kind is self.kind)

    def connected(self) -> int:
        return self.driver.connected_of(self.kind)

    def ever_connected(self) -> int:
        return self.driver.ever_of(self.kind)

    def active_sessions(self) -> int:
        return 0

    def unfinished(self) -> int:
        return 0

    def refresh(self) -> None:
        """Counted as requests arrive."""


class ModbusDriver(Driver):
    """Every Modbus device of the run (all in worker 0), whatever their kinds; the runner
    counts them per kind through :meth:`views`."""

    def __init__(self, spec: FleetSpec, clock: RunClock, plans: Sequence[DevicePlan]) -> None:
        super().__init__(Kind.MODBUS_METER, spec, clock)
        self.meters = {kind: KindMeter() for kind in MAP_NAMES}
        maps = {kind: shipped_map(name) for kind, name in MAP_NAMES.items()}
        by_slot: dict[int, list[CountingDevice]] = {}
        self.devices: list[CountingDevice] = []
        for plan, slot, unit in modbus_layout(spec, list(plans)):
            device = CountingDevice(maps[plan.kind], unit, plan, self)
            by_slot.setdefault(slot, []).append(device)
            self.devices.append(device)
            self.plans.append(plan)
        self.ports = [ModbusPort(slot, devices, spec.modbus_host,
                                 spec.modbus_port + slot if spec.modbus_port else 0)
                      for slot, devices in sorted(by_slot.items())]
        self._rngs = {id(d): random.Random(device_seed(spec.seed, "modbus", d.plan.device_id))
                      for d in self.devices}
        self._energy = {id(d): Decimal("12345.600") for d in self.devices
                        if d.plan.kind is Kind.MODBUS_METER}

    def views(self) -> list[ModbusKindView]:
        """One view per Modbus kind this run has."""
        kinds = {d.plan.kind for d in self.devices}
        return [ModbusKindView(self, kind) for kind in MAP_NAMES if kind in kinds]

    def add(self, plan: DevicePlan, delay: float) -> None:
        raise NotImplementedError("Modbus devices are all given to the constructor")

    async def start(self) -> list[int]:
        """Listen on every port; returns the bound ports in slot order."""
        for port in self.ports:
            await port.server.start()
        self.tasks.append(asyncio.create_task(self._tick(), name="sim-modbus-values"))
        return [port.port for port in self.ports]

    def window(self) -> float:
        """How recent a request must be for its device to count as connected."""
        return 3 * self.spec.modbus_interval + 2.0

    def connected_of(self, kind: Kind) -> int:
        """Devices of ``kind`` polled within :meth:`window`."""
        since = time.monotonic() - self.window()
        return sum(1 for d in self.devices if d.plan.kind is kind
                   and d.last_request is not None and d.last_request >= since)

    def ever_of(self, kind: Kind) -> int:
        """Devices of ``kind`` polled at least once."""
        return sum(1 for d in self.devices if d.plan.kind is kind and d.requests)

    def connected(self) -> int:
        return sum(self.connected_of(kind) for kind in MAP_NAMES)

    def ever_connected(self) -> int:
        return sum(self.ever_of(kind) for kind in MAP_NAMES)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            for device in self.devices:
                self._move(device)

    def _move(self, device: SimulatedDevice) -> None:
        assert isinstance(device, CountingDevice)
        rng = self._rngs[id(device)]
        kind = device.plan.kind
        if kind is Kind.MODBUS_METER:
            power = float(device.get("power"))
            power = min(22.0, max(0.0, power + rng.uniform(-0.5, 0.5)))
            energy = self._energy[id(device)] + (Decimal(repr(power)) * Decimal(_TICK)
                                                 / 3600).quantize(_KWH)
            self._energy[id(device)] = energy
            amps = power * 1000 / 3 / 230
            device.update({"power": round(power, 3), "energyImport": energy,
                           "currentL1": round(amps, 2), "currentL2": round(amps, 2),
                           "currentL3": round(amps, 2)})
        elif kind is Kind.ENV_SENSOR:
            temp = float(device.get("temperature"))
            device.set("temperature", round(min(45.0, max(-10.0, temp + rng.uniform(-0.2, 0.2))),
                                            1))
        elif kind is Kind.PARKING_LOCK and rng.random() < 0.01:
            device.set("occupied", not device.get("occupied"))

    async def stop(self) -> None:
        await super().stop()
        for port in self.ports:
            await port.server.stop()
