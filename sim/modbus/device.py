"""A simulated Modbus device: the register image of one unit id, driven by its register map.

Values are set and read by thing-model property name in thing-model units; they are encoded
into (and decoded from) the registers with the same codec the gateway uses, so what a client
reads is exactly what a real device with that map would send. Client writes go through
:meth:`SimulatedDevice.handle_write`, which accepts only writes the map's services make,
recognises the service and lets the product's behaviour react.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from bridges.modbus import (
    Function,
    PointValueError,
    PropertyValue,
    RegisterMap,
    ServiceCall,
    decode_point,
    encode_point,
    identify_write,
)
from sim.modbus.behaviours import Behaviour, behaviour_for
from sim.modbus.profiles import DEFAULT_VALUES

__all__ = ["ILLEGAL_ADDRESS", "ILLEGAL_VALUE", "SimulatedDevice"]

ILLEGAL_ADDRESS = 0x02
"""Modbus exception code for a write to an address the device does not accept."""
ILLEGAL_VALUE = 0x03
"""Modbus exception code for a value no service of the device writes there."""


class SimulatedDevice:
    """The registers, coils and behaviour of one simulated unit id.

    ``values`` override the product's plausible defaults (:data:`DEFAULT_VALUES`);
    ``behaviour`` defaults to the product's (:func:`behaviour_for`). Timed effects need a
    running event loop; everything else is plain synchronous code.
    """

    def __init__(self, regmap: RegisterMap, device_id: int | None = None, *,
                 values: Mapping[str, object] | None = None,
                 behaviour: Behaviour | None = None) -> None:
        self.regmap = regmap
        self.device_id = regmap.default_device_id if device_id is None else device_id
        if not 1 <= self.device_id <= 247:
            raise ValueError(f"device id {self.device_id} is not 1..247")
        self.behaviour = behaviour if behaviour is not None else behaviour_for(regmap.product)
        self.faults: set[str] = set()
        self.calls: list[ServiceCall] = []
        self._image: dict[Function, dict[int, int]] = {f: {} for f in Function}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._spans: dict[Function, tuple[int, int]] = {}
        self._writable: dict[Function, set[int]] = {f: set() for f in Function}
        self._free_value: dict[Function, set[int]] = {f: set() for f in Function}
        self._allowed: dict[Function, dict[int, set[int]]] = {f: {} for f in Function}
        for point in regmap.points.values():
            self._extend(point.function, point.address, point.end)
        for service in regmap.services.values():
            for write in service.writes:
                addresses = range(write.address, write.address + write.width)
                self._extend(write.function, write.address, write.address + write.width)
                self._writable[write.function].update(addresses)
                if write.input is not None:
                    self._free_value[write.function].update(addresses)
                    continue
                if write.point is not None:
                    constant = [int(x) for x in encode_point(write.point, write.value)]
                else:  # a raw write: an int (holding) or a bool (coil), checked at load
                    constant = [int(write.value)] if isinstance(write.value, int) else []
                for addr, raw in zip(addresses, constant, strict=True):
                    self._allowed[write.function].setdefault(addr, set()).add(raw)
        defaults = DEFAULT_VALUES.get(regmap.product, {})
        start = {k: v for k, v in defaults.items() if k in regmap.properties}
        start.update(values or {})
        for prop, value in start.items():
            self.set(prop, value)

    def _extend(self, function: Function, start: int, end: int) -> None:
        low, high = self._spans.get(function, (start, end))
        self._spans[function] = (min(low, start), max(high, end))

    # -- thing-model side ------------------------------------------------------------------

    def set(self, prop: str, value: object) -> None:
        """Set a property, in thing-model units (``set("voltageL1", 230.5)``)."""
        self.set_point(self.regmap.point_for(prop).name, value)

    def set_point(self, name: str, value: object) -> None:
        """Set any point by its name, including points that feed no property."""
        point = self.regmap.point(name)
        image = self._image[point.function]
        words = encode_point(point, value, image.get(point.address, 0))
        for offset, word in enumerate(words):
            image[point.address + offset] = int(word)

    def update(self, values: Mapping[str, object]) -> None:
        """Set several properties."""
        for prop, value in values.items():
            self.set(prop, value)

    def get(self, prop: str) -> PropertyValue:
        """A property's value as a client would decode it."""
        point = self.regmap.point_for(prop)
        return decode_point(point, self.read(point.function, point.address, point.width))

    def values(self) -> dict[str, PropertyValue]:
        """Every property that currently decodes."""
        out: dict[str, PropertyValue] = {}
        for prop in self.regmap.properties:
            try:
                out[prop] = self.get(prop)
            except PointValueError:
                continue
        return out

    # -- register side ---------------------------------------------------------------------

    def span(self, function: Function) -> tuple[int, int] | None:
        """``(first, end)`` addresses this device serves in a table, None if it has none."""
        return self._spans.get(function)

    def read(self, function: Function, address: int, count: int) -> list[int] | list[bool]:
        """Raw registers (ints) or bits (bools), as a client would read them."""
        image = self._image[function]
        if function.is_bit:
            return [bool(image.get(a, 0)) for a in range(address, address + count)]
        return [image.get(a, 0) for a in range(address, address + count)]

    def handle_write(self, function: Function, address: int,
                     values: Sequence[int] | Sequence[bool]) -> int | None:
        """A client's write: None when applied, else the Modbus exception code to answer.

        Only addresses some service writes are writable (else ILLEGAL_ADDRESS); where the
        services write constants only, the value must be one of them (else ILLEGAL_VALUE).
        A recognised service is logged in :attr:`calls` and handed to the behaviour.
        """
        addresses = range(address, address + len(values))
        if not set(addresses) <= self._writable[function]:
            return ILLEGAL_ADDRESS
        free, allowed = self._free_value[function], self._allowed[function]
        for addr, value in zip(addresses, values, strict=True):
            if addr not in free and int(value) not in allowed.get(addr, ()):
                return ILLEGAL_VALUE
        call = identify_write(self.regmap, function, address, values)
        image = self._image[function]
        for addr, value in zip(addresses, values, strict=True):
            image[addr] = int(value)
        if call is not None:
            inputs = dict(call.inputs)
            for write in self.regmap.service(call.service).writes:
                if write.input is not None and write.input not in inputs and write.point:
                    try:  # written by an earlier request: take it from the registers
                        inputs[write.input] = decode_point(
                            write.point,
                            self.read(write.function, write.address, write.point.width))
                    except PointValueError:
                        continue
            self.calls.append(ServiceCall(call.service, inputs))
            self.behaviour.on_service(self, call.service, inputs)
        return None

    def fill_block(self, function: Function, start: int, block: list[int]) -> None:
        """Copy the image into a pymodbus block (16-bit words; bit tables 16 bits a word).

        ``start`` is the block's first address (for bit tables: its first word, address/16);
        the block's last element is pymodbus's end marker and is left alone.
        """
        image = self._image[function]
        for index in range(len(block) - 1):
            if function.is_bit:
                base = (start + index) * 16
                block[index] = sum(1 << bit for bit in range(16) if image.get(base + bit, 0))
            else:
                block[index] = image.get(start + index, 0)

    # -- time ------------------------------------------------------------------------------

    def later(self, delay: float, callback: Callable[[], None], *, key: str) -> None:
        """Run ``callback`` after ``delay`` seconds; replaces a pending one with the same key."""
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            callback()

        self._timers[key] = asyncio.get_running_loop().call_later(delay, fire)

    @property
    def busy(self) -> bool:
        """Whether a timed effect (an arm travelling, a contactor switching) is pending."""
        return bool(self._timers)

    def close(self) -> None:
        """Cancel pending timed effects."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
