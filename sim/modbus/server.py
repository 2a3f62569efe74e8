"""Serve simulated devices with pymodbus: over Modbus TCP (one listener, many unit ids) or on a
serial line (RTU, :class:`ModbusSerialSimServer`).

Each :class:`~sim.modbus.device.SimulatedDevice` becomes a pymodbus ``SimDevice`` with one
block per table it uses, spanning its lowest to its highest address (gaps read as 0). A
pymodbus *action* hook refreshes the block from the device's image before every request and
routes client writes through the device, which accepts, refuses (exception 02/03) or reacts.
Over TCP a unit id no device has is answered with exception 0x0B (gateway target failed to
respond), as a Modbus TCP gateway would; on a serial line it is not answered at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from bridges.modbus import Function, PropertyValue, RegisterMap, shipped_map
from sim.modbus.behaviours import Behaviour
from sim.modbus.device import SimulatedDevice
from sim.modbus.errors import ServerError
from sim.modbus.scenario import Step, run_scenario

__all__ = ["ModbusSerialSimServer", "ModbusSimServer", "ModbusSimulator"]

log = logging.getLogger(__name__)

_FUNCTIONS = {
    1: Function.COIL, 5: Function.COIL, 15: Function.COIL,
    2: Function.DISCRETE,
    3: Function.HOLDING, 6: Function.HOLDING, 16: Function.HOLDING, 22: Function.HOLDING,
    23: Function.HOLDING,
    4: Function.INPUT,
}
# pymodbus's tuple order for separate tables: coils, discrete inputs, holding, input
_TABLES = (Function.COIL, Function.DISCRETE, Function.HOLDING, Function.INPUT)


def _table(device: SimulatedDevice, function: Function) -> SimData:
    span = device.span(function)
    if function.is_bit:
        first, end = span if span is not None else (0, 1)
        return SimData(address=first, values=[False] * (end - first), datatype=DataType.BITS)
    if span is None:  # a table the device does not have: every address is invalid
        return SimData(address=0, datatype=DataType.INVALID)
    first, end = span
    return SimData(address=first, values=[0] * (end - first), datatype=DataType.REGISTERS)


def _sim_device(device: SimulatedDevice) -> SimDevice:
    async def action(function_code: int, start: int, address: int, count: int,
                     block: list[int], values: list[int] | list[bool] | None,
                     ) -> ExcCodes | None:
        function = _FUNCTIONS.get(function_code)
        if function is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if device.span(function) is None:
            return ExcCodes.ILLEGAL_ADDRESS
        if values is not None:
            code = device.handle_write(function, address, values)
            if code is not None:
                return ExcCodes(code)
        device.fill_block(function, start, block)
        return None

    coils, discrete, holding, inputs = (_table(device, f) for f in _TABLES)
    return SimDevice(id=device.device_id, simdata=([coils], [discrete], [holding], [inputs]),
                     action=action)


class _NoSuchDevice:
    """Stands in for pymodbus's unit id 0 (its catch-all) and answers 0x0B."""

    async def async_getValues(self, func_code: int, address: int,  # noqa: N802 - pymodbus API
                              count: int) -> ExcCodes:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def async_setValues(self, func_code: int, address: int,  # noqa: N802 - pymodbus API
                              values: list[int] | list[bool]) -> ExcCodes:
        return ExcCodes.GATEWAY_NO_RESPONSE


class ModbusSimServer:
    """One Modbus TCP listener serving simulated devices, one per unit id.

    ``port=0`` binds a free port; read :attr:`port` after start. Use several servers for
    several ports. ``scenario`` steps start playing when the server starts.
    """

    def __init__(self, devices: Iterable[SimulatedDevice], host: str = "127.0.0.1",
                 port: int = 0, *, scenario: Sequence[Step] = (),
                 allow_non_loopback: bool = False) -> None:
        self.devices: dict[int, SimulatedDevice] = {}
        for device in devices:
            if device.device_id in self.devices:
                raise ServerError(f"two devices with unit id {device.device_id}")
            self.devices[device.device_id] = device
        if not self.devices:
            raise ServerError("a server needs at least one device")
        if not allow_non_loopback and not _is_loopback(host):
            raise ServerError(f"{host!r} is not a loopback address "
                              f"(pass allow_non_loopback=True to serve a network)")
        self.host = host
        self.port = port
        self._scenario = list(scenario)
        self._server: ModbusBaseServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; :attr:`port` then holds the bound port."""
        if self._server is not None:
            raise ServerError("already started")
        self._server = await self._listen()
        if self._scenario:
            self.play(self._scenario)

    async def _listen(self) -> ModbusBaseServer:
        server = ModbusTcpServer([_sim_device(d) for d in self.devices.values()],
                                 address=(self.host, self.port))
        if isinstance(server.context, SimCore):
            server.context.devices[0] = cast(Any, _NoSuchDevice())
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise ServerError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        listener = cast(asyncio.Server, server.transport)
        self.port = int(listener.sockets[0].getsockname()[1])
        return server

    def play(self, steps: Sequence[Step]) -> asyncio.Task[None]:
        """Start a scenario on this server's devices (cancelled when the server stops)."""
        task = asyncio.create_task(run_scenario(list(self.devices.values()), steps),
                                   name=f"modbus-sim scenario {self.host}:{self.port}")
        self._tasks.add(task)
        task.add_done_callback(self._scenario_done)
        return task

    def _scenario_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scenario failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Stop listening, cancel scenarios and pending device effects."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for device in self.devices.values():
            device.close()
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def serve_forever(self) -> None:
        """Start if needed and run until cancelled."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> ModbusSimServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


class _SilentUnit:
    """Stands in for pymodbus's unit id 0 on a serial line: an absent unit never answers."""

    async def async_getValues(self, func_code: int, address: int,  # noqa: N802 - pymodbus API
                              count: int) -> ExcCodes:
        raise NoSuchIdException("no such unit on this line")

    async def async_setValues(self, func_code: int, address: int,  # noqa: N802 - pymodbus API
                              values: list[int] | list[bool]) -> ExcCodes:
        raise NoSuchIdException("no such unit on this line")


class ModbusSerialSimServer(ModbusSimServer):
    """Simulated devices on one RS485 line: a pymodbus serial server (RTU) on a tty path.

    ``tty`` is a serial device path -- a real adapter, or one end of a
    :class:`~sim.modbus.nullmodem.NullModem` whose other end the gateway opens. One unit id
    per device; a request for a unit id nobody has is not answered (as on a real bus).
    """

    def __init__(self, devices: Iterable[SimulatedDevice], tty: str, *, baudrate: int = 9600,
                 parity: str = "N", stopbits: int = 1, bytesize: int = 8,
                 scenario: Sequence[Step] = ()) -> None:
        super().__init__(devices, scenario=scenario)
        self.tty = tty
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize

    async def _listen(self) -> ModbusBaseServer:
        server = ModbusSerialServer([_sim_device(d) for d in self.devices.values()],
                                    framer=FramerType.RTU, port=self.tty,
                                    baudrate=self.baudrate, parity=self.parity,
                                    stopbits=self.stopbits, bytesize=self.bytesize,
                                    ignore_missing_devices=True)
        if isinstance(server.context, SimCore):
            server.context.devices[0] = cast(Any, _SilentUnit())
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise ServerError(f"cannot open serial port {self.tty}") from exc
        return server


class ModbusSimulator(ModbusSimServer):
    """One simulated device on its own listener::

        async with ModbusSimulator("water_immersion", "127.0.0.1", 0) as sim:
            sim.set("water", True)
            ... AsyncModbusTcpClient("127.0.0.1", port=sim.port) ...

    ``regmap`` is a loaded map, a shipped map's name or a map file path.
    """

    def __init__(self, regmap: RegisterMap | str | Path, host: str = "127.0.0.1",
                 port: int = 0, device_id: int | None = None, *,
                 values: Mapping[str, object] | None = None,
                 behaviour: Behaviour | None = None, scenario: Sequence[Step] = ()) -> None:
        loaded = regmap if isinstance(regmap, RegisterMap) else shipped_map(str(regmap))
        self.device = SimulatedDevice(loaded, device_id, values=values, behaviour=behaviour)
        super().__init__([self.device], host, port, scenario=scenario)

    async def __aenter__(self) -> ModbusSimulator:
        await self.start()
        return self

    @property
    def device_id(self) -> int:
        """The unit id the device answers."""
        return self.device.device_id

    @property
    def faults(self) -> set[str]:
        """The device's active faults (add ``"stuck"`` to jam an actuator)."""
        return self.device.faults

    def set(self, prop: str, value: object) -> None:
        """Set a property in thing-model units."""
        self.device.set(prop, value)

    def get(self, prop: str) -> PropertyValue:
        """A property as a client would decode it."""
        return self.device.get(prop)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
