"""Read planning and decoding the answers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridges.modbus import (
    DecodeError,
    Function,
    PropertyValue,
    ReadRequest,
    UnknownName,
    decode_block,
    decode_response,
    parse_register_map,
    plan_reads,
    shipped_map,
    significant_changes,
)

MAP = """\
product: demo
name: demo
vendor: v
points:
  a: {function: input, address: 0, type: float32}
  b: {function: input, address: 2, type: u16}
  c: {function: input, address: 8, type: u32}
  d: {function: input, address: 30, type: u16}
  e: {function: holding, address: 100, type: s16}
  f: {function: coil, address: 0, type: bool}
  g: {function: coil, address: 5, type: bool}
  h: {function: coil, address: 60, type: bool}
  i: {function: discrete, address: 7, type: bool}
  flagA: {function: holding, address: 101, type: u16, bit: 0}
  flagB: {function: holding, address: 101, type: u16, bit: 15}
  cmd: {function: holding, address: 200, type: u16, property: null}
"""


def test_neighbours_merge_within_the_gap_and_tables_stay_apart() -> None:
    regmap = parse_register_map(MAP)
    plan = plan_reads(regmap)
    assert plan == (
        ReadRequest(Function.COIL, 0, 6, ("f", "g")),
        ReadRequest(Function.COIL, 60, 1, ("h",)),
        ReadRequest(Function.DISCRETE, 7, 1, ("i",)),
        ReadRequest(Function.HOLDING, 100, 2, ("e", "flagA", "flagB")),
        ReadRequest(Function.INPUT, 0, 10, ("a", "b", "c")),
        ReadRequest(Function.INPUT, 30, 1, ("d",)),
    )
    assert [r.function_code for r in plan] == [1, 1, 2, 3, 4, 4]
    assert "cmd" not in {p for r in plan for p in r.points}  # feeds no property: not read


def test_gap_and_size_limits_are_configurable() -> None:
    regmap = parse_register_map(MAP)
    contiguous = plan_reads(regmap, max_gap_registers=0, max_gap_bits=0)
    inputs = [r for r in contiguous if r.function is Function.INPUT]
    assert [(r.address, r.count) for r in inputs] == [(0, 3), (8, 2), (30, 1)]
    coils = [r for r in contiguous if r.function is Function.COIL]
    assert [(r.address, r.count) for r in coils] == [(0, 1), (5, 1), (60, 1)]
    wide = plan_reads(regmap, max_gap_registers=100, max_gap_bits=100)
    assert [(r.function, r.address, r.count) for r in wide] == [
        (Function.COIL, 0, 61), (Function.DISCRETE, 7, 1), (Function.HOLDING, 100, 2),
        (Function.INPUT, 0, 31)]
    small = plan_reads(regmap, max_gap_registers=100, max_registers=10)
    assert [(r.address, r.count) for r in small if r.function is Function.INPUT] == [
        (0, 10), (30, 1)]
    # a 32-bit value is never split across requests
    tight = plan_reads(regmap, max_gap_registers=100, max_registers=9)
    assert [(r.address, r.count) for r in tight if r.function is Function.INPUT] == [
        (0, 3), (8, 2), (30, 1)]


def test_the_map_read_section_sets_the_defaults() -> None:
    text = MAP.replace("points:", "read: {max_gap_registers: 0, max_bits: 3}\npoints:")
    plan = plan_reads(parse_register_map(text))
    assert [(r.address, r.count) for r in plan if r.function is Function.INPUT] == [
        (0, 3), (8, 2), (30, 1)]
    assert [(r.address, r.count) for r in plan if r.function is Function.COIL] == [
        (0, 1), (5, 1), (60, 1)]


def test_planning_and_limits_at_the_protocol_maximum() -> None:
    points = "\n".join(f"  p{i}: {{function: input, address: {i * 2}, type: float32}}"
                       for i in range(100))
    regmap = parse_register_map(f"product: x\nname: n\nvendor: v\npoints:\n{points}\n")
    plan = plan_reads(regmap)
    assert [(r.address, r.count) for r in plan] == [(0, 124), (124, 76)]
    assert sum(len(r.points) for r in plan) == 100
    bits = "\n".join(f"  b{i}: {{function: discrete, address: {i * 30}, type: bool}}"
                     for i in range(70))  # 30-bit gaps (< 32): one run 0..2070, split at 2000
    regmap = parse_register_map(f"product: x\nname: n\nvendor: v\npoints:\n{bits}\n")
    assert [(r.address, r.count) for r in plan_reads(regmap)] == [(0, 1981), (2010, 61)]


def test_plan_only_some_properties() -> None:
    regmap = parse_register_map(MAP)
    plan = plan_reads(regmap, properties=["a", "h"])
    assert [(r.function, r.points) for r in plan] == [
        (Function.COIL, ("h",)), (Function.INPUT, ("a",))]
    with pytest.raises(UnknownName, match="cmd"):
        plan_reads(regmap, properties=["cmd"])


def test_decode_the_answers_to_the_plan() -> None:
    regmap = parse_register_map(MAP)
    plan = {(r.function, r.address): r for r in plan_reads(regmap)}
    inputs = plan[(Function.INPUT, 0)]
    # a = 230.5 (float32), b = 7, gap, c = 123456 (u32)
    registers = [0x4366, 0x8000, 7, 0, 0, 0, 0, 0, 0x0001, 0xE240]
    decoded = decode_response(regmap, inputs, registers)
    assert decoded.values == {"a": 230.5, "b": 7, "c": 123456}
    assert decoded.problems == ()
    # pymodbus pads bits to whole bytes: coils 0..5 come back as 8 bits
    coils = plan[(Function.COIL, 0)]
    decoded = decode_response(regmap, coils, [True, False, False, False, False, True, True, True])
    assert decoded.values == {"f": True, "g": True}
    holding = plan[(Function.HOLDING, 100)]
    assert decode_response(regmap, holding, [0xFFFE, 0x8001]).values == {
        "e": -2, "flagA": True, "flagB": True}
    with pytest.raises(DecodeError, match="asked for 10 and got 9"):
        decode_response(regmap, inputs, registers[:9])


def test_decode_block_takes_every_point_inside_it() -> None:
    regmap = parse_register_map(MAP)
    decoded = decode_block(regmap, Function.INPUT, 1, [0x8000, 9, 0])
    assert decoded.values == {"b": 9}  # a starts before the block, c ends after it
    with pytest.raises(DecodeError, match="16-bit"):
        decode_block(regmap, Function.INPUT, 0, [0x10000])
    with pytest.raises(DecodeError, match="16-bit"):
        decode_block(regmap, Function.INPUT, 0, [True])
    with pytest.raises(DecodeError, match="bits"):
        decode_block(regmap, Function.COIL, 0, [2])
    with pytest.raises(DecodeError, match="address space"):
        decode_block(regmap, Function.INPUT, 0xFFFF, [0, 0])


def test_a_meaningless_point_does_not_lose_the_others() -> None:
    regmap = shipped_map("parking_lock")
    decoded = decode_block(regmap, Function.HOLDING, 0, [9, 1, 80, 7])
    assert decoded.values == {"position": "unknown", "occupied": True, "battery": 80.0}
    assert [(p.point, p.property) for p in decoded.problems] == [("alarm", "alarm")]
    assert "code 7" in decoded.problems[0].reason


def test_deadbands() -> None:
    regmap = shipped_map("eastron_sdm630")  # voltage deadband 0.5 V, current 0.1 A
    previous: dict[str, PropertyValue] = {"voltageL1": 230.0, "currentL1": 10.0, "frequency": 50.0,
                "energyImport": Decimal("100.0")}
    current: dict[str, PropertyValue] = {"voltageL1": 230.4, "currentL1": 10.1, "frequency": 50.01,
               "energyImport": Decimal("100.0"), "power": 2.3}
    assert significant_changes(regmap, previous, current) == {
        "currentL1": 10.1, "frequency": 50.01, "power": 2.3}
    lower: dict[str, PropertyValue] = {"voltageL1": 229.5}
    assert significant_changes(regmap, previous, lower) == lower
