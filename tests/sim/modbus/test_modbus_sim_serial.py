"""Simulated devices on a serial line: a pymodbus serial server (RTU) on one end of a
null-modem cable made of two pseudo-terminals, read through the other end with pyserial."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.framer.rtu import FramerRTU

from bridges.modbus import shipped_map
from sim.modbus import ModbusSerialSimServer, NullModem, ServerError, SimulatedDevice
from tests.support.net import eventually

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


@asynccontextmanager
async def serial_client(path: str, timeout: float = 1.0) -> AsyncIterator[AsyncModbusSerialClient]:
    client = AsyncModbusSerialClient(path, framer=FramerType.RTU, baudrate=9600, timeout=timeout,
                                     retries=0)
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()


def is_link(path: str) -> bool:
    return os.path.islink(path)


def rtu(pdu_hex: str) -> bytes:
    """An RTU frame: unit + PDU + CRC."""
    frame = bytes.fromhex(pdu_hex)
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def raw_exchange(path: str, request: bytes, expect: int, timeout: float = 5.0) -> bytes:
    """Write one RTU frame to a tty and read ``expect`` bytes back (blocking, in a thread)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)  # raw enough for bytes
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        os.write(fd, request)
        answer = b""
        while len(answer) < expect:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                break
            answer += os.read(fd, expect - len(answer))
        return answer
    finally:
        os.close(fd)


async def test_the_manuals_frame_on_the_wire() -> None:
    """XY-MD02 manual: ``01 04 00 01 00 02 20 0B`` -> ``01 04 04 01 31 02 22 2A CE``."""
    sensor = SimulatedDevice(shipped_map("xymd02_temperature_humidity"), 1,
                             values={"temperature": 30.5, "humidity": 54.6})
    async with NullModem() as cable, ModbusSerialSimServer([sensor], cable.a):
        answer = await asyncio.to_thread(raw_exchange, cable.b,
                                         bytes.fromhex("010400010002200B"), 9)
        assert answer.hex(" ") == "01 04 04 01 31 02 22 2a ce"
        assert (cable.bytes_ba, cable.bytes_ab) == (8, 9)
        # a unit nobody has on the line: silence, not an exception answer
        silent = await asyncio.to_thread(raw_exchange, cable.b, rtu("070400010002"), 5, 0.5)
        assert silent == b""


async def test_every_shipped_map_on_one_line() -> None:
    names = sorted(p.stem for p in (ROOT / "config/modbus").glob("*.yaml"))
    devices = [SimulatedDevice(shipped_map(name), unit) for unit, name in enumerate(names, 1)]
    async with NullModem() as cable, ModbusSerialSimServer(devices, cable.a), \
            serial_client(cable.b) as modbus:
        relay = next(d for d in devices if d.regmap.product == "relay")
        response = await modbus.read_coils(0, count=1, device_id=relay.device_id)
        assert response.bits[0] is True  # a closed contactor by default
        response = await modbus.write_coil(0, False, device_id=relay.device_id)
        assert not response.isError()
        assert [c.service for c in relay.calls] == ["cut"]
        water = next(d for d in devices if d.regmap.product == "env_sensor"
                     and "water" in d.regmap.properties)
        water.set("water", True)
        response = await modbus.read_holding_registers(0, count=1, device_id=water.device_id)
        assert response.registers == [1]


async def test_cut_cable_and_unplugged_adapter(tmp_path: Path) -> None:
    sensor = SimulatedDevice(shipped_map("water_immersion"), 3)
    async with NullModem(tmp_path, "ttyUSB") as cable, ModbusSerialSimServer([sensor], cable.a):
        assert is_link(cable.b) and cable.b == str(tmp_path / "ttyUSB-b")
        async with serial_client(cable.b, timeout=0.3) as modbus:
            assert (await modbus.read_holding_registers(0, count=1, device_id=3)).registers == [0]
            cable.cut()
            with pytest.raises(ModbusIOException):  # no answer within the timeout
                await modbus.read_holding_registers(0, count=1, device_id=3)
            assert cable.dropped > 0
            cable.mend()
            await asyncio.sleep(0.1)  # let the RTU framer drop what it had half-read
            assert (await modbus.read_holding_registers(0, count=1, device_id=3)).registers == [0]
            cable.unplug()
            await eventually(lambda: not modbus.connected, timeout=5)  # EIO on the tty
        assert not is_link(cable.b)
        cable.replug()  # a new pty behind the same path
        async with serial_client(cable.b) as modbus:
            assert (await modbus.read_holding_registers(0, count=1, device_id=3)).registers == [0]


async def test_refusals() -> None:
    with pytest.raises(ServerError, match="at least one device"):
        ModbusSerialSimServer([], "x")
    server = ModbusSerialSimServer([SimulatedDevice(shipped_map("water_immersion"), 1)],
                                   "/nonexistent/ttyUSB9")
    with pytest.raises(ServerError, match="ttyUSB9"):
        await server.start()
    cable = NullModem()
    with pytest.raises(ServerError, match="not open"):
        _ = cable.a


def test_command_line_serves_a_serial_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.modbus", "--null-modem", str(tmp_path),
         "xymd02_temperature_humidity@5", "water_immersion@6"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == (f"null-modem cable: devices on {tmp_path}/tty-a, "
                                    f"gateway end {tmp_path}/tty-b")
        assert lines[1].startswith(f"{tmp_path}/tty-a unit 5: ")
        # the manual's request, re-addressed to unit 5 (CRC recomputed)
        answer = raw_exchange(str(tmp_path / "tty-b"), rtu("050400010002"), 9)
        assert answer[:7] == bytes.fromhex("05040400FA01C2")  # 25.0 degC, 45.0 % defaults
        assert FramerRTU.check_CRC(answer[:7], int.from_bytes(answer[7:], "big"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not (tmp_path / "tty-b").exists()  # the cable went with the process
    bad = subprocess.run([sys.executable, "-m", "sim.modbus", "--serial", "/dev/null",
                          "water_immersion:5020"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, check=False)
    assert bad.returncode == 2 and "no :PORT" in bad.stderr
