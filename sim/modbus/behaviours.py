"""What a simulated device does when a client performs a service: the physical side.

The write itself always lands in the registers; a behaviour adds the consequences in
thing-model terms (a lock arm travels, a contactor follows its relay), so it works with any
register map of the product. Faults (``device.faults``) let scenarios break things:
``"stuck"`` makes an actuator accept commands without moving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bridges.modbus import PropertyValue

if TYPE_CHECKING:
    from sim.modbus.device import SimulatedDevice

__all__ = [
    "Behaviour",
    "NoBehaviour",
    "ParkingLockBehaviour",
    "RelayBehaviour",
    "behaviour_for",
]


class Behaviour(Protocol):
    """Reacts to a service a client performed by writing registers or coils."""

    def on_service(self, device: SimulatedDevice, service: str,
                   inputs: Mapping[str, PropertyValue]) -> None:
        """Called once the service's command write is in the registers."""


class NoBehaviour:
    """Devices whose writes have no further effect."""

    def on_service(self, device: SimulatedDevice, service: str,
                   inputs: Mapping[str, PropertyValue]) -> None:
        """Nothing to do."""


@dataclass
class ParkingLockBehaviour:
    """``raise``/``lower``: position goes ``moving``, then arrives after ``travel_time``.

    A raise while ``occupied`` is accepted but the arm stays down (locks refuse to hit a car);
    with the ``stuck`` fault every command is accepted and nothing moves. A new command
    replaces a travel in progress.
    """

    travel_time: float = 3.0
    refuse_when_occupied: bool = True

    def on_service(self, device: SimulatedDevice, service: str,
                   inputs: Mapping[str, PropertyValue]) -> None:
        """Start the arm travelling."""
        target = {"raise": "raised", "lower": "lowered"}.get(service)
        if target is None or "stuck" in device.faults:
            return
        if (target == "raised" and self.refuse_when_occupied
                and "occupied" in device.regmap.properties and device.get("occupied") is True):
            return
        device.set("position", "moving")
        device.later(self.travel_time, lambda: self._arrive(device, target), key="position")

    @staticmethod
    def _arrive(device: SimulatedDevice, target: str) -> None:
        if "stuck" in device.faults:  # jammed on the way
            if "alarm" in device.regmap.properties:
                device.set("alarm", "stuck")
            return
        device.set("position", target)


@dataclass
class RelayBehaviour:
    """``cut``/``restore``: the contactor feedback (``closed``) follows after ``switch_time``.

    With the ``stuck`` fault (a welded contactor) the relay output changes but ``closed``
    does not.
    """

    switch_time: float = 0.05

    def on_service(self, device: SimulatedDevice, service: str,
                   inputs: Mapping[str, PropertyValue]) -> None:
        """Let the contactor follow the relay."""
        target = {"cut": False, "restore": True}.get(service)
        if target is None or "stuck" in device.faults:
            return
        if "closed" in device.regmap.properties:
            device.later(self.switch_time, lambda: device.set("closed", target), key="closed")


def behaviour_for(product: str, *, travel_time: float | None = None) -> Behaviour:
    """The behaviour simulating ``product`` (``travel_time`` scales every mechanical delay)."""
    if product == "parking_lock":
        return ParkingLockBehaviour() if travel_time is None else ParkingLockBehaviour(travel_time)
    if product == "relay":
        return RelayBehaviour() if travel_time is None else RelayBehaviour(travel_time)
    return NoBehaviour()
