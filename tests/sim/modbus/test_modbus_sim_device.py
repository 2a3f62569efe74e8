"""A simulated device's register image, without a network."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bridges.modbus import EncodeError, Function, UnknownName, parse_register_map, shipped_map
from sim.modbus import NoBehaviour, SimulatedDevice
from sim.modbus.device import ILLEGAL_ADDRESS, ILLEGAL_VALUE

ROOT = Path(__file__).resolve().parents[3]

STORAGE = """\
product: storage
name: n
vendor: v
points:
  soc: {function: holding, address: 0, type: u16}
  power: {function: holding, address: 1, type: s16, scale: 0.1}
  faultFlag: {function: holding, address: 2, type: u16, bit: 4, property: null}
  otherFlag: {function: holding, address: 2, type: u16, bit: 0, property: null}
  setpoint: {function: holding, address: 10, type: s16, scale: 0.1, property: null}
services:
  setPower:
    writes: [{point: setpoint, input: power}, {function: holding, address: 11, value: 1}]
  setMode:
    writes: [{function: holding, address: 12, value: 5}, {function: holding, address: 13, value: 1}]
"""


def test_defaults_then_overrides_by_property() -> None:
    meter = SimulatedDevice(shipped_map("eastron_sdm630"), values={"frequency": 49.9})
    assert meter.device_id == 1
    assert meter.get("frequency") == 49.9
    assert meter.get("voltageL1") == 230.1
    assert meter.get("energyImport") == Decimal("12345.6")
    assert set(meter.values()) == set(meter.regmap.properties)
    battery = SimulatedDevice(shipped_map("victron_gx_battery"))
    assert battery.device_id == 100
    battery.update({"power": 1.2, "state": "discharging"})
    assert battery.read(Function.HOLDING, 842, 3) == [0xFB50, 80, 2]  # -1200 W, 80 %, 2
    with pytest.raises(UnknownName):
        battery.set("temperature", 30)  # no point for it in this map
    with pytest.raises(EncodeError):
        battery.set("state", "exploding")
    with pytest.raises(ValueError, match="1..247"):
        SimulatedDevice(shipped_map("water_immersion"), 0)


def test_bit_points_share_a_register() -> None:
    device = SimulatedDevice(parse_register_map(STORAGE), behaviour=NoBehaviour())
    device.set_point("faultFlag", True)
    device.set_point("otherFlag", True)
    assert device.read(Function.HOLDING, 2, 1) == [0b10001]
    device.set_point("faultFlag", False)
    assert device.read(Function.HOLDING, 2, 1) == [0b00001]


def test_writes_are_checked_and_services_recognised() -> None:
    device = SimulatedDevice(parse_register_map(STORAGE), behaviour=NoBehaviour())
    assert device.handle_write(Function.HOLDING, 0, [1]) == ILLEGAL_ADDRESS  # soc: read-only
    assert device.handle_write(Function.COIL, 0, [True]) == ILLEGAL_ADDRESS
    assert device.handle_write(Function.HOLDING, 11, [2]) == ILLEGAL_VALUE
    # the parameter first (any value: it is an input), then the command
    assert device.handle_write(Function.HOLDING, 10, [0xFF85]) is None  # -12.3 kW
    assert device.calls == []
    assert device.handle_write(Function.HOLDING, 11, [1]) is None
    assert [(c.service, c.inputs) for c in device.calls] == [
        ("setPower", {"power": Decimal("-12.3")})]
    # a constant parameter that is not the command is accepted too
    assert device.handle_write(Function.HOLDING, 12, [5]) is None
    assert device.handle_write(Function.HOLDING, 12, [6]) == ILLEGAL_VALUE
    assert device.handle_write(Function.HOLDING, 12, [5, 1]) is None
    assert device.calls[-1].service == "setMode"


def test_command_line_serves_until_stopped() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.modbus", "--port", "0", "--travel-time", "0.1",
         "parking_lock@4", "water_immersion@5", "eastron_sdm630:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert "unit 4: generic RS485 parking lock controller (parking_lock)" in lines[0]
        assert "unit 5: " in lines[1]
        assert "unit 1: Eastron SDM630-Modbus V2 (meter)" in lines[2]
        ports = {line.split()[0].rsplit(":", 1)[1] for line in lines}
        assert len(ports) == 2  # the meter asked for a listener of its own
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "sim.modbus", "no_such_map"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2
    assert "no_such_map.yaml" in bad.stderr
