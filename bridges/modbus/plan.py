"""Plan the reads of a poll: neighbouring points of one table merged into few requests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridges.modbus.errors import UnknownName
from bridges.modbus.regmap import Point, RegisterMap
from bridges.modbus.schema import Function

__all__ = ["ReadRequest", "plan_reads"]


@dataclass(frozen=True)
class ReadRequest:
    """One read: ``count`` registers (or bits) of ``function`` from ``address``.

    ``points`` names the points the request covers; hand the response to
    :func:`bridges.modbus.decode.decode_response` with this request.
    """

    function: Function
    address: int
    count: int
    points: tuple[str, ...]

    @property
    def function_code(self) -> int:
        """1 (coils), 2 (discrete inputs), 3 (holding) or 4 (input registers)."""
        return self.function.read_code

    @property
    def end(self) -> int:
        """The first address after the request."""
        return self.address + self.count


def plan_reads(
    regmap: RegisterMap,
    *,
    properties: Iterable[str] | None = None,
    max_registers: int | None = None,
    max_bits: int | None = None,
    max_gap_registers: int | None = None,
    max_gap_bits: int | None = None,
) -> tuple[ReadRequest, ...]:
    """The fewest reads that cover every point feeding a property (or only ``properties``).

    Points of one table are merged while the unused registers (bits) between them are at
    most the max gap and the request stays within the max size (Modbus allows 125 registers
    and 2000 bits; the map's ``read`` section and these arguments can lower that). A max gap
    of 0 merges only adjacent points, for devices that refuse reads across undefined
    addresses. Requests come ordered by table (coil, discrete, holding, input) and address.
    """
    limits = regmap.limits
    wanted: set[str] | None = None
    if properties is not None:
        wanted = set(properties)
        missing = wanted - set(regmap.properties)
        if missing:
            raise UnknownName(f"{regmap.name}: no point feeds {', '.join(sorted(missing))}")
    requests: list[ReadRequest] = []
    for function in Function:
        points = sorted(
            (p for p in regmap.readable(function) if wanted is None or p.property in wanted),
            key=lambda p: (p.address, p.end),
        )
        if function.is_bit:
            limit = max_bits if max_bits is not None else limits.max_bits
            gap = max_gap_bits if max_gap_bits is not None else limits.max_gap_bits
        else:
            limit = max_registers if max_registers is not None else limits.max_registers
            gap = max_gap_registers if max_gap_registers is not None else limits.max_gap_registers
        requests.extend(_merge(function, points, limit, gap))
    return tuple(requests)


def _merge(function: Function, points: list[Point], limit: int, gap: int) -> list[ReadRequest]:
    out: list[ReadRequest] = []
    group: list[Point] = []
    start = end = 0
    for point in points:
        if group and point.address - end <= gap and max(end, point.end) - start <= limit:
            group.append(point)
            end = max(end, point.end)
            continue
        if group:
            out.append(ReadRequest(function, start, end - start, tuple(p.name for p in group)))
        group, start, end = [point], point.address, point.end
    if group:
        out.append(ReadRequest(function, start, end - start, tuple(p.name for p in group)))
    return out
