"""Register-map files: schema, checks against the thing model, errors with file and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bridges.modbus import (
    DataType,
    Function,
    ModbusBridgeError,
    Order,
    RegisterMapError,
    UnknownName,
    ValueKind,
    load_register_map,
    parse_register_map,
)
from thingmodels import ModelFileError

LOCK = """\
product: parking_lock
name: test lock
vendor: test
word_order: little
points:
  position:
    function: holding
    address: 0x0000
    type: u16
    enum: {0: lowered, 1: raised}
    enum_default: unknown
  battery: {function: holding, address: 2, type: u16, unit: "%", deadband: 2}
  command: {function: holding, address: 0x10, type: u16, property: null}
services:
  raise:
    writes: [{point: command, value: 1}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> RegisterMapError:
    path = write(tmp_path, text)
    with pytest.raises(RegisterMapError) as info:
        load_register_map(path)
    assert info.value.file == str(path)
    assert str(path) in str(info.value)
    return info.value


def test_a_valid_map_resolves_every_default(tmp_path: Path) -> None:
    regmap = load_register_map(write(tmp_path, LOCK))
    assert (regmap.product, regmap.name, regmap.vendor) == ("parking_lock", "test lock", "test")
    position = regmap.point("position")
    assert position.property == "position"  # defaults to the point name
    assert position.kind is ValueKind.ENUM
    assert position.function is Function.HOLDING
    assert position.type is DataType.U16
    battery = regmap.point_for("battery")
    assert battery.kind is ValueKind.FLOAT  # thing model: battery is a float
    assert battery.deadband == Decimal(2)
    command = regmap.point("command")
    assert command.property is None
    assert command.writable
    assert not battery.writable
    assert regmap.properties == ("position", "battery")
    assert regmap.service("raise").writes[0].address == 0x10
    assert regmap.limits.max_registers == 125
    assert regmap.has_thing_model


def test_word_order_default_applies_to_32_bit_points_only(tmp_path: Path) -> None:
    text = LOCK.replace("  command:", "  energy: {function: input, address: 0, type: u32}\n"
                                      "  command:").replace("product: parking_lock",
                                                            "product: nothing_modelled")
    text = text.replace("services:\n  raise:\n    writes: [{point: command, value: 1}]\n", "")
    regmap = load_register_map(write(tmp_path, text))
    assert regmap.point("energy").word_order is Order.LITTLE
    assert not regmap.has_thing_model
    assert regmap.point("energy").kind is ValueKind.INT  # inferred: no thing model


@pytest.mark.parametrize(("old", "new", "line", "match"), [
    # unknown key, in a point
    ("  battery: {function: holding, address: 2,",
     "  battery: {function: holding, address: 2, scael: 10,", 12, "unknown key 'scael'"),
    # unknown top-level key
    ("vendor: test\n", "vendor: test\ncolour: red\n", 4, "unknown key 'colour'"),
    # a bad type
    ("    type: u16\n    enum", "    type: u24\n    enum", 9, "points.position.type"),
    ("address: 0x10, type: u16", "address: lots, type: u16", 13, "points.command.address"),
    # bool only for coil/discrete
    ("  battery: {function: holding, address: 2, type: u16",
     "  battery: {function: holding, address: 2, type: bool", 12, "only for coil"),
    # duplicate key, which plain YAML would silently drop
    ("  command:", "  battery: {function: holding, address: 9, type: u16}\n  command:", 13,
     "duplicate key 'battery'"),
    # octal-looking address
    ("address: 2, type: u16", "address: 010, type: u16", 12, "leading zero"),
    # overlapping points
    ("address: 2, type: u16", "address: 0, type: u16", 12, "overlaps point 'position'"),
    # property unknown to the thing model
    ("  battery: {", "  batteryLevel: {", 12, "no property 'batteryLevel'"),
    # enum value not in the thing model
    ("{0: lowered, 1: raised}", "{0: lowered, 1: up}", 10, "'up' is not a value"),
    # unit mismatch
    ('unit: "%"', "unit: V", 12, "unit 'V' is not the thing model's '%'"),
    # service the thing model does not have
    ("  raise:\n", "  jump:\n", 15, "no service 'jump'"),
    # write to an unknown point / a read-only table
    ("{point: command, value: 1}", "{point: cmd, value: 1}", 16, "no point 'cmd'"),
    ("{point: command, value: 1}", "{point: command, value: 70000}", 16, "out of range"),
    ("{point: command, value: 1}", "{function: input, address: 3, value: 1}", 16,
     "cannot be written"),
    ("{point: command, value: 1}", "{point: command}", 16, "either 'value' or 'input'"),
    # two points feeding one property
    ("  command:", "  other: {function: holding, address: 5, type: u16, property: battery}\n"
                   "  command:", 13, "already fed by point 'battery'"),
    # YAML syntax error
    ("  raise:\n", "  raise: [\n", 17, "YAML"),
])
def test_bad_map_is_refused_naming_file_and_line(tmp_path: Path, old: str, new: str,
                                                 line: int, match: str) -> None:
    assert old in LOCK
    error = refused(tmp_path, LOCK.replace(old, new, 1))
    assert match in str(error)
    assert error.line == line, str(error)
    assert isinstance(error, ModelFileError)
    assert isinstance(error, ModbusBridgeError)


@pytest.mark.parametrize(("point", "match"), [
    ("{function: coil, address: 0, type: u16}", "must have type bool"),
    ("{function: input, address: 0, type: u16, word_order: big}", "only for 32-bit"),
    ("{function: coil, address: 0, type: bool, byte_order: big}", "only for registers"),
    ("{function: input, address: 0, type: s16, bit: 2}", "needs type u16"),
    ("{function: input, address: 0, type: u16, scale: 0}", "must not be 0"),
    ("{function: input, address: 0, type: u16, bit: 1, scale: 2}", "make no sense"),
    ("{function: input, address: 0, type: float32, enum: {0: a}}", "integer or bool"),
    ("{function: input, address: 0, type: u16, enum: {0: a, 1: a}}", "same name"),
    ("{function: input, address: 0, type: u16, enum_default: a}", "needs 'enum'"),
    ("{function: input, address: 65535, type: u32}", "past address 0xFFFF"),
    ("{function: input, address: 0, type: u16, bit: 16}", "less than or equal to 15"),
])
def test_point_consistency(tmp_path: Path, point: str, match: str) -> None:
    text = f"product: x\nname: n\nvendor: v\npoints:\n  p: {point}\n"
    error = refused(tmp_path, text)
    assert match in str(error)
    assert error.line == 5


def test_map_against_thing_model_types(tmp_path: Path) -> None:
    head = "product: env_sensor\nname: n\nvendor: v\npoints:\n"
    cases = {
        "  water: {function: input, address: 0, type: float32}\n": "float32 cannot feed a bool",
        "  temperature: {function: coil, address: 0, type: bool}\n": "a bit cannot feed a float",
        "  temperature: {function: input, address: 0, type: u16, enum: {0: a}}\n":
            "not an enum",
        "  rssi: {function: input, address: 0, type: u16, bit: 2}\n": "a bit cannot feed a int",
    }
    for body, match in cases.items():
        error = refused(tmp_path, head + body)
        assert match in str(error), body
        assert error.line == 5
    lock = ("product: parking_lock\nname: n\nvendor: v\npoints:\n"
            "  position: {function: input, address: 0, type: u16}\n")
    assert "give an 'enum' mapping" in str(refused(tmp_path, lock))


def test_product_without_thing_model_needs_opt_in(tmp_path: Path) -> None:
    text = "product: heat_pump\nname: n\nvendor: v\npoints:\n  closed: {function: coil, address: 0, type: bool}\n"
    assert not load_register_map(write(tmp_path, text)).has_thing_model
    with pytest.raises(RegisterMapError, match="no thing model for product 'heat_pump'") as info:
        load_register_map(write(tmp_path, text), require_model=True)
    assert info.value.line == 1


def test_service_inputs_are_checked_against_the_thing_model() -> None:
    text = """\
product: storage
name: n
vendor: v
points:
  soc: {function: holding, address: 0, type: u16}
  setpoint: {function: holding, address: 10, type: s16, scale: 0.1, property: null}
services:
  setPower:
    writes: [{point: setpoint, input: watts}]
"""
    with pytest.raises(RegisterMapError, match="no input 'watts'") as info:
        parse_register_map(text, "inline.yaml")
    assert info.value.line == 9
    assert info.value.file == "inline.yaml"
    regmap = parse_register_map(text.replace("watts", "power"))
    assert regmap.service("setPower").inputs == ("power",)


def test_service_cannot_write_a_flag_inside_a_register() -> None:
    text = """\
product: x
name: n
vendor: v
points:
  flag: {function: holding, address: 0, type: u16, bit: 1}
  other: {function: holding, address: 0, type: u16, bit: 2}
services:
  go: {writes: [{point: flag, value: true}]}
"""
    with pytest.raises(RegisterMapError, match="read-modify-write"):
        parse_register_map(text)
    # two flags of one register are fine otherwise
    regmap = parse_register_map(text.split("services", maxsplit=1)[0])
    assert {p.bit for p in regmap.points.values()} == {1, 2}


def test_missing_file_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(RegisterMapError, match="cannot read file"):
        load_register_map(tmp_path / "nope.yaml")
    regmap = load_register_map(write(tmp_path, LOCK))
    with pytest.raises(UnknownName):
        regmap.point("nope")
    with pytest.raises(UnknownName):
        regmap.point_for("occupied")
    with pytest.raises(LookupError):
        regmap.service("lower")
