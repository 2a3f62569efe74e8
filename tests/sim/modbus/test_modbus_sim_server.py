"""Simulated devices over real Modbus TCP on loopback, read with pymodbus's client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bridges.modbus import (
    SHIPPED_MAPS_DIR,
    Function,
    PropertyValue,
    RegisterMap,
    decode_response,
    encode_service,
    plan_reads,
    shipped_map,
)
from sim.modbus import (
    ModbusSimServer,
    ModbusSimulator,
    ParkingLockBehaviour,
    RelayBehaviour,
    ServerError,
    SimulatedDevice,
)
from tests.support.net import eventually

SHIPPED = sorted(p.stem for p in SHIPPED_MAPS_DIR.glob("*.yaml"))


@asynccontextmanager
async def client(port: int) -> AsyncIterator[AsyncModbusTcpClient]:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await modbus.connect()
    try:
        yield modbus
    finally:
        modbus.close()


async def poll(modbus: AsyncModbusTcpClient, regmap: RegisterMap,
               device_id: int) -> dict[str, PropertyValue]:
    """What the edge poller will do: plan, read, decode."""
    values: dict[str, PropertyValue] = {}
    for request in plan_reads(regmap):
        read = {
            Function.COIL: modbus.read_coils,
            Function.DISCRETE: modbus.read_discrete_inputs,
            Function.HOLDING: modbus.read_holding_registers,
            Function.INPUT: modbus.read_input_registers,
        }[request.function]
        response = await read(request.address, count=request.count, device_id=device_id)
        assert not response.isError(), response
        data = response.bits if request.function.is_bit else response.registers
        decoded = decode_response(regmap, request, data)
        assert decoded.problems == ()
        values.update(decoded.values)
    return values


async def perform(modbus: AsyncModbusTcpClient, regmap: RegisterMap, service: str,
                  device_id: int) -> None:
    for write in encode_service(regmap, service):
        if write.function is Function.COIL:
            response = await modbus.write_coil(write.address, bool(write.values[0]),
                                               device_id=device_id)
        else:
            response = await modbus.write_registers(write.address, list(write.values),
                                                    device_id=device_id)
        assert not response.isError(), response


async def test_every_shipped_map_on_one_port_reads_back_through_the_bridge() -> None:
    devices = [SimulatedDevice(shipped_map(name), unit) for unit, name in enumerate(SHIPPED, 1)]
    async with ModbusSimServer(devices, "127.0.0.1", 0) as server, client(server.port) as modbus:
        assert server.port > 0
        for unit, device in server.devices.items():
            values = await poll(modbus, device.regmap, unit)
            assert values == device.values()
            assert set(values) == set(device.regmap.properties)
        meter = next(d for d in devices if d.regmap.product == "meter")
        polled = await poll(modbus, meter.regmap, meter.device_id)
        assert polled["energyImport"] == Decimal("12345.6")
        assert isinstance(polled["energyImport"], Decimal)


async def test_values_set_by_property_go_out_as_real_registers() -> None:
    async with ModbusSimulator("eastron_sdm630", "127.0.0.1", 0, device_id=3,
                               values={"voltageL1": 230.5}) as sim, client(sim.port) as modbus:
        response = await modbus.read_input_registers(0, count=2, device_id=3)
        assert response.registers == [0x4366, 0x8000]  # float32 230.5, high word first
        sim.set("energyImport", Decimal("12345.67"))
        response = await modbus.read_input_registers(0x48, count=2, device_id=3)
        assert response.registers == [0x4640, 0xE6AE]
        sim.set("power", 4.3215)  # kW -> W on the wire
        response = await modbus.read_input_registers(0x34, count=2, device_id=3)
        assert response.registers == [0x4587, 0x0C00]  # 4321.5 W
    async with ModbusSimulator("water_immersion") as sim, client(sim.port) as modbus:
        assert (await modbus.read_holding_registers(0, count=1, device_id=1)).registers == [0]
        sim.set("water", True)
        assert (await modbus.read_holding_registers(0, count=1, device_id=1)).registers == [1]
        assert (await poll(modbus, sim.device.regmap, 1)) == {"water": True}


async def test_raise_written_by_a_client_moves_the_lock_after_a_delay() -> None:
    lock = shipped_map("parking_lock")
    async with ModbusSimulator(lock, behaviour=ParkingLockBehaviour(travel_time=0.1)) as sim, \
            client(sim.port) as modbus:
        assert (await poll(modbus, lock, 1))["position"] == "lowered"
        await perform(modbus, lock, "raise", 1)
        assert (await poll(modbus, lock, 1))["position"] == "moving"
        await eventually(lambda: sim.get("position") == "raised", timeout=2)
        assert (await poll(modbus, lock, 1))["position"] == "raised"
        await perform(modbus, lock, "lower", 1)
        await eventually(lambda: sim.get("position") == "lowered", timeout=2)
        assert [c.service for c in sim.device.calls] == ["raise", "lower"]


async def test_a_stuck_lock_accepts_raise_but_stays_down() -> None:
    lock = shipped_map("parking_lock")
    async with ModbusSimulator(lock, behaviour=ParkingLockBehaviour(travel_time=0.05)) as sim, \
            client(sim.port) as modbus:
        sim.faults.add("stuck")
        await perform(modbus, lock, "raise", 1)  # accepted: no exception response
        await asyncio.sleep(0.15)
        assert (await poll(modbus, lock, 1))["position"] == "lowered"
        sim.faults.discard("stuck")
        sim.set("occupied", True)  # a car above the lock: raise is accepted, arm stays down
        await perform(modbus, lock, "raise", 1)
        await asyncio.sleep(0.15)
        assert sim.get("position") == "lowered"
        assert [c.service for c in sim.device.calls] == ["raise", "raise"]


async def test_relay_cut_and_restore_through_coil_writes() -> None:
    relay = shipped_map("cabinet_relay")
    async with ModbusSimulator(relay, behaviour=RelayBehaviour(switch_time=0.05)) as sim, \
            client(sim.port) as modbus:
        assert await poll(modbus, relay, 1) == {"commanded": True, "closed": True}
        await perform(modbus, relay, "cut", 1)
        assert (await modbus.read_coils(0, count=1, device_id=1)).bits[0] is False
        await eventually(lambda: sim.get("closed") is False, timeout=2)
        assert await poll(modbus, relay, 1) == {"commanded": False, "closed": False}
        sim.faults.add("stuck")  # welded contactor: the relay opens, power stays on
        await perform(modbus, relay, "restore", 1)
        await perform(modbus, relay, "cut", 1)
        await asyncio.sleep(0.15)
        assert await poll(modbus, relay, 1) == {"commanded": False, "closed": False}
        sim.faults.clear()
        await perform(modbus, relay, "restore", 1)
        await eventually(lambda: sim.get("closed") is True, timeout=2)


async def test_exception_responses_of_a_real_device() -> None:
    async with ModbusSimulator("parking_lock") as sim, client(sim.port) as modbus:
        not_writable = await modbus.write_register(0x0001, 1, device_id=1)
        assert not_writable.isError()
        assert not_writable.exception_code == 0x02  # ILLEGAL ADDRESS
        bad_command = await modbus.write_register(0x0010, 7, device_id=1)
        assert bad_command.exception_code == 0x03  # ILLEGAL VALUE
        outside = await modbus.read_holding_registers(0x0100, count=1, device_id=1)
        assert outside.exception_code == 0x02
        no_table = await modbus.read_input_registers(0, count=1, device_id=1)
        assert no_table.exception_code == 0x02
        no_coils = await modbus.read_coils(0, count=1, device_id=1)
        assert no_coils.exception_code == 0x02
        nobody = await modbus.read_holding_registers(0, count=1, device_id=42)
        assert nobody.exception_code == 0x0B  # gateway target failed to respond
        # gaps inside a table read as zeros (0x0004..0x000F lie between status and command)
        gap = await modbus.read_holding_registers(0, count=17, device_id=1)
        assert gap.registers[4:16] == [0] * 12
        assert sim.device.calls == []


async def test_several_ports() -> None:
    meter = SimulatedDevice(shipped_map("eastron_sdm630"), 1)
    lock = SimulatedDevice(shipped_map("parking_lock"), 1)
    async with ModbusSimServer([meter]) as first, ModbusSimServer([lock]) as second:
        assert first.port != second.port
        async with client(first.port) as modbus:
            assert (await poll(modbus, meter.regmap, 1))["frequency"] == 50.0
        async with client(second.port) as modbus:
            assert (await poll(modbus, lock.regmap, 1))["position"] == "lowered"


async def test_server_refusals() -> None:
    lock = shipped_map("parking_lock")
    with pytest.raises(ServerError, match="two devices with unit id 1"):
        ModbusSimServer([SimulatedDevice(lock, 1), SimulatedDevice(lock, 1)])
    with pytest.raises(ServerError, match="not a loopback"):
        ModbusSimServer([SimulatedDevice(lock, 1)], "0.0.0.0")
    with pytest.raises(ServerError, match="at least one"):
        ModbusSimServer([])
    async with ModbusSimulator(lock) as sim:
        taken = ModbusSimServer([SimulatedDevice(lock, 2)], "127.0.0.1", sim.port)
        with pytest.raises(ServerError, match="cannot listen"):
            await taken.start()
