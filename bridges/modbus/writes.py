"""Services -> write requests, and (for devices and simulators) write requests -> services."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridges.modbus.codec import decode_point, encode_point
from bridges.modbus.errors import EncodeError, PointValueError
from bridges.modbus.regmap import PropertyValue, RegisterMap, Write
from bridges.modbus.schema import Function

__all__ = ["ServiceCall", "WriteRequest", "encode_service", "identify_write"]


@dataclass(frozen=True)
class WriteRequest:
    """One write: ``values`` (registers or coil states) to ``function`` from ``address``."""

    function: Function
    address: int
    values: tuple[int, ...] | tuple[bool, ...]
    multiple: bool = False

    @property
    def function_code(self) -> int:
        """5 / 15 (one / many coils) or 6 / 16 (one / many holding registers)."""
        if self.function is Function.COIL:
            return 15 if self.multiple else 5
        return 16 if self.multiple else 6


@dataclass(frozen=True)
class ServiceCall:
    """A service recognised from a write, with the inputs the write carried."""

    service: str
    inputs: dict[str, PropertyValue]


def encode_service(regmap: RegisterMap, service: str,
                   inputs: Mapping[str, object] | None = None) -> tuple[WriteRequest, ...]:
    """The writes that perform ``service``, in order.

    ``inputs`` are the service call's input values in thing-model units; a write fed by an
    input that is missing is skipped when the map marks it optional, else refused. Inputs
    the map does not use are ignored. A write of one register (coil) uses function 6 (5)
    unless the map sets ``write_multiple``.
    """
    spec = regmap.service(service)
    given = inputs or {}
    requests: list[WriteRequest] = []
    for write in spec.writes:
        values: tuple[int, ...] | tuple[bool, ...]
        if write.point is None:
            raw = write.value
            if isinstance(raw, int):  # a coil's bool is an int too
                values = (raw,)
            else:  # pragma: no cover - the schema allows nothing else
                raise EncodeError(f"raw write of {raw!r}")
        else:
            if write.input is not None:
                if write.input not in given:
                    if write.optional:
                        continue
                    raise EncodeError(f"service {service!r} needs input {write.input!r}")
                value: object = given[write.input]
            else:
                value = write.value
            try:
                values = tuple(encode_point(write.point, value))
            except EncodeError as exc:
                raise EncodeError(f"service {service!r}: {exc}") from None
        requests.append(WriteRequest(write.function, write.address, values,
                                     regmap.write_multiple or len(values) > 1))
    return tuple(requests)


def identify_write(regmap: RegisterMap, function: Function, address: int,
                   values: Sequence[int] | Sequence[bool]) -> ServiceCall | None:
    """The service a client's write performs, if it carries a service's last write.

    Constant writes must match exactly; writes fed by inputs give those inputs (decoded in
    thing-model units). Earlier writes of the service that this request does not cover are
    not checked (a device sees them as separate requests before the command).
    """
    end = address + len(values)
    for service in regmap.services.values():
        if not _covers(service.writes[-1], function, address, end):
            continue
        inputs: dict[str, PropertyValue] = {}
        if all(_matches(w, address, values, inputs) for w in service.writes
               if _covers(w, function, address, end)):
            return ServiceCall(service.name, inputs)
    return None


def _covers(write: Write, function: Function, address: int, end: int) -> bool:
    return write.function is function and address <= write.address and \
        write.address + write.width <= end


def _matches(write: Write, address: int, values: Sequence[int] | Sequence[bool],
             inputs: dict[str, PropertyValue]) -> bool:
    offset = write.address - address
    chunk = list(values[offset:offset + write.width])
    if write.point is None:
        if write.function is Function.COIL:
            return [bool(x) for x in chunk] == [write.value]
        return chunk == [write.value]
    if write.input is not None:
        try:
            inputs[write.input] = decode_point(write.point, chunk)
        except PointValueError:
            return False
        return True
    expected = encode_point(write.point, write.value)
    if write.function is Function.COIL:
        return [bool(x) for x in chunk] == expected
    return chunk == expected
