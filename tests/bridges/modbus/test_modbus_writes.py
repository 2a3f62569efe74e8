"""Services -> write requests, and a device's view: write requests -> services."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridges.modbus import (
    EncodeError,
    Function,
    ServiceCall,
    UnknownName,
    WriteRequest,
    encode_service,
    identify_write,
    parse_register_map,
    shipped_map,
)

STORAGE = """\
product: storage
name: n
vendor: v
points:
  soc: {function: holding, address: 0, type: u16}
  setpoint: {function: holding, address: 10, type: s32, scale: 0.001, property: null}
  mode: {function: holding, address: 12, type: u16, property: null,
         enum: {0: idle, 1: charge, 2: discharge, 3: auto}}
services:
  setPower:
    writes:
      - {point: setpoint, input: power}
      - {function: holding, address: 20, value: 1}
  setMode:
    writes: [{point: mode, input: mode}]
"""


def test_parking_lock_raise_writes_holding_0x0010_with_fc06() -> None:
    lock = shipped_map("parking_lock")
    (request,) = encode_service(lock, "raise")
    assert request == WriteRequest(Function.HOLDING, 0x0010, (1,), multiple=False)
    assert request.function_code == 6
    assert encode_service(lock, "lower")[0].values == (2,)


def test_relay_cut_and_restore_write_coil_0_with_fc05() -> None:
    relay = shipped_map("cabinet_relay")
    (cut,) = encode_service(relay, "cut")
    assert (cut.function, cut.address, cut.values, cut.function_code) == (
        Function.COIL, 0, (False,), 5)
    assert encode_service(relay, "restore")[0].values == (True,)


def test_inputs_are_encoded_through_the_point() -> None:
    regmap = parse_register_map(STORAGE)
    setpoint, trigger = encode_service(regmap, "setPower", {"power": -12.5})
    # -12500 as s32: 0xFFFF CF2C, two registers -> FC16
    assert setpoint == WriteRequest(Function.HOLDING, 10, (0xFFFF, 0xCF2C), multiple=True)
    assert setpoint.function_code == 16
    assert trigger == WriteRequest(Function.HOLDING, 20, (1,), multiple=False)
    assert encode_service(regmap, "setMode", {"mode": "discharge"})[0].values == (2,)
    assert encode_service(regmap, "setPower", {"power": Decimal("1.5"), "extra": 1})[0].values \
        == (0, 1500)
    with pytest.raises(EncodeError, match="needs input 'power'"):
        encode_service(regmap, "setPower")
    with pytest.raises(EncodeError, match="service 'setMode'.*no enum value 'turbo'"):
        encode_service(regmap, "setMode", {"mode": "turbo"})
    with pytest.raises(UnknownName):
        encode_service(regmap, "reboot")


def test_optional_inputs_and_write_multiple() -> None:
    text = STORAGE.replace("{point: setpoint, input: power}",
                           "{point: setpoint, input: power, optional: true}")
    regmap = parse_register_map(text)
    assert encode_service(regmap, "setPower") == (
        WriteRequest(Function.HOLDING, 20, (1,), multiple=False),)
    forced = parse_register_map(text.replace("points:", "write_multiple: true\npoints:"))
    (request,) = encode_service(forced, "setPower")
    assert request.function_code == 16
    relay = parse_register_map(
        "product: relay\nname: n\nvendor: v\nwrite_multiple: true\npoints:\n"
        "  commanded: {function: coil, address: 3, type: bool}\n"
        "services:\n  cut: {writes: [{point: commanded, value: false}]}\n")
    assert encode_service(relay, "cut")[0].function_code == 15


def test_identify_a_clients_write() -> None:
    lock = shipped_map("parking_lock")
    assert identify_write(lock, Function.HOLDING, 0x10, [1]) == ServiceCall("raise", {})
    assert identify_write(lock, Function.HOLDING, 0x10, [2]) == ServiceCall("lower", {})
    assert identify_write(lock, Function.HOLDING, 0x10, [3]) is None
    assert identify_write(lock, Function.HOLDING, 0x0F, [0, 1, 0]) == ServiceCall("raise", {})
    assert identify_write(lock, Function.INPUT, 0x10, [1]) is None
    relay = shipped_map("cabinet_relay")
    assert identify_write(relay, Function.COIL, 0, [False]) == ServiceCall("cut", {})
    assert identify_write(relay, Function.COIL, 0, [True, False]) == ServiceCall("restore", {})
    regmap = parse_register_map(STORAGE)
    # the command write alone: inputs written earlier are not in this request
    assert identify_write(regmap, Function.HOLDING, 20, [1]) == ServiceCall("setPower", {})
    # parameters and command in one FC16
    regs = [0xFFFF, 0xCF2C] + [0] * 8 + [1]
    assert identify_write(regmap, Function.HOLDING, 10, regs) == ServiceCall(
        "setPower", {"power": Decimal("-12.5")})
    assert identify_write(regmap, Function.HOLDING, 12, [3]) == ServiceCall(
        "setMode", {"mode": "auto"})
    assert identify_write(regmap, Function.HOLDING, 12, [9]) is None  # not in the enum
