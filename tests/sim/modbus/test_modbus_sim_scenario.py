"""Scenarios: timed floods, ramps and faults on simulated devices."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bridges.modbus import Function, encode_service, shipped_map
from sim.modbus import (
    ModbusSimServer,
    ParkingLockBehaviour,
    Ramp,
    ScenarioError,
    SimulatedDevice,
    Step,
    load_scenario,
    run_scenario,
)
from tests.support.net import eventually


async def test_flood_arrives_on_the_wire_at_its_time() -> None:
    water = SimulatedDevice(shipped_map("water_immersion"), 5)
    steps = [Step(at=0.1, set={"water": True}), Step(at=0.2, set={"water": False})]
    async with ModbusSimServer([water], scenario=steps) as server:
        modbus = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
        await modbus.connect()
        try:
            assert (await modbus.read_holding_registers(0, count=1, device_id=5)).registers \
                == [0]
            await eventually(lambda: water.get("water") is True, timeout=2, interval=0.01)
            assert (await modbus.read_holding_registers(0, count=1, device_id=5)).registers \
                == [1]
            await eventually(lambda: water.get("water") is False, timeout=2, interval=0.01)
        finally:
            modbus.close()


async def test_temperature_ramp_and_targeting_by_property() -> None:
    sensor = SimulatedDevice(shipped_map("xymd02_temperature_humidity"), 1)
    meter = SimulatedDevice(shipped_map("eastron_sdm630"), 2)
    seen: list[float] = []

    async def watch() -> None:
        while True:
            value = sensor.get("temperature")
            assert isinstance(value, float)
            seen.append(value)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    await run_scenario([sensor, meter], [
        Step(at=0, ramp={"temperature": Ramp(to=45.0, over=0.2, every=0.02)}),
        Step(at=0.05, set={"voltageL1": 250.0}),  # only the meter has it
    ])
    watcher.cancel()
    assert sensor.get("temperature") == 45.0
    assert seen[0] == 25.0
    assert seen == sorted(seen)  # rises monotonically, through intermediate values
    assert len(set(seen)) > 5
    assert meter.get("voltageL1") == 250.0


async def test_a_lock_jams_by_scenario() -> None:
    lock = SimulatedDevice(shipped_map("parking_lock"), 3,
                           behaviour=ParkingLockBehaviour(travel_time=0.05))
    await run_scenario([lock], [Step(at=0, fault={"stuck": True}, device=3)])
    assert lock.handle_write(*_raise(lock)) is None  # accepted
    await asyncio.sleep(0.1)
    assert lock.get("position") == "lowered"
    await run_scenario([lock], [Step(fault={"stuck": False})])
    assert lock.handle_write(*_raise(lock)) is None
    assert lock.get("position") == "moving"
    lock.faults.add("stuck")  # jams while travelling: stays moving, raises the alarm
    await eventually(lambda: lock.get("alarm") == "stuck", timeout=2, interval=0.01)
    assert lock.get("position") == "moving"


def _raise(device: SimulatedDevice) -> tuple[Function, int, list[int] | list[bool]]:
    (write,) = encode_service(device.regmap, "raise")
    return write.function, write.address, list(write.values)


def test_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "flood.yaml"
    path.write_text(
        "steps:\n"
        "  - {at: 5s, set: {water: true}, note: flood}\n"
        "  - {at: 0s, ramp: {temperature: {to: 55, over: 1m}}}\n"
        "  - {at: 250ms, fault: {stuck: true}, device: 3}\n", encoding="utf-8")
    steps = load_scenario(path)
    assert [s.at for s in steps] == [5.0, 0.0, 0.25]
    assert steps[1].ramp["temperature"] == Ramp(to=55, over=60.0)
    path.write_text("steps:\n  - {at: 5s, flood: true}\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"flood.yaml:2: .*unknown key 'flood'"):
        load_scenario(path)


async def test_scenario_refuses_what_no_device_has() -> None:
    water = SimulatedDevice(shipped_map("water_immersion"), 1)
    with pytest.raises(ScenarioError, match="no device has smoke"):
        await run_scenario([water], [Step(at=0, set={"smoke": True})])
    with pytest.raises(ScenarioError, match="no device 9"):
        await run_scenario([water], [Step(at=0, device=9, set={"water": True})])
    with pytest.raises(ScenarioError, match="device 1 has no humidity"):
        await run_scenario([water], [Step(at=0, device=1, set={"humidity": 50})])
    assert water.get("water") is False  # checked before anything ran
