"""``python -m sim.modbus``: serve simulated Modbus devices until interrupted.

Each device is ``MAP[@ID][:PORT]``: a shipped map name (``parking_lock``) or a map file,
an optional unit id (default: the map's ``default_device_id``) and an optional port
(default ``--port``). Devices sharing a port share one listener; port 0 binds a free port
(each explicit ``:0`` its own) and the ports bound are printed.

``--serial TTY`` serves every device on one serial line instead (RTU framing, ``:PORT`` not
allowed); ``--null-modem DIR`` creates a virtual null-modem cable in DIR (two pseudo-terminals,
``DIR/tty-a`` and ``DIR/tty-b``), serves the devices on ``tty-a`` and prints ``tty-b`` for the
gateway's ``serial: {port: ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from bridges.modbus import ModbusBridgeError, shipped_map
from sim.modbus.behaviours import behaviour_for
from sim.modbus.device import SimulatedDevice
from sim.modbus.errors import SimulatorError
from sim.modbus.nullmodem import NullModem
from sim.modbus.scenario import Step, load_scenario
from sim.modbus.server import ModbusSerialSimServer, ModbusSimServer


def _parse(spec: str) -> tuple[str, int | None, int | None]:
    name, port = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit():
        name, port = head, int(tail)
    name, sep, unit = name.partition("@")
    return name, (int(unit) if sep else None), port


async def _serve_serial(args: argparse.Namespace, steps: list[Step]) -> None:
    devices = []
    for spec in args.devices:
        name, unit, port = _parse(spec)
        if port is not None:
            raise SimulatorError(f"{spec}: a device on a serial line has no :PORT")
        regmap = shipped_map(name)
        devices.append(SimulatedDevice(regmap, unit, behaviour=behaviour_for(
            regmap.product, travel_time=args.travel_time)))
    async with contextlib.AsyncExitStack() as stack:
        tty = args.serial
        if args.null_modem:
            cable = await stack.enter_async_context(NullModem(args.null_modem))
            tty = cable.a
            print(f"null-modem cable: devices on {cable.a}, gateway end {cable.b}", flush=True)
        server = ModbusSerialSimServer(devices, tty, baudrate=args.baudrate, scenario=steps)
        await stack.enter_async_context(server)
        for device in devices:
            print(f"{tty} unit {device.device_id}: {device.regmap.vendor} "
                  f"{device.regmap.name} ({device.regmap.product})", flush=True)
        await asyncio.Event().wait()


async def _serve(args: argparse.Namespace) -> None:
    steps: list[Step] = load_scenario(args.scenario) if args.scenario else []
    if args.serial or args.null_modem:
        await _serve_serial(args, steps)
        return
    # devices without :PORT share the --port listener; each explicit :0 gets a free port
    groups: dict[tuple[str, int], tuple[int, list[SimulatedDevice]]] = {}
    for index, spec in enumerate(args.devices):
        name, unit, port = _parse(spec)
        regmap = shipped_map(name)
        behaviour = behaviour_for(regmap.product, travel_time=args.travel_time)
        if port is None or (port == args.port and port != 0):
            key, port = ("port", args.port), args.port
        else:
            key = ("free", index) if port == 0 else ("port", port)
        groups.setdefault(key, (port, []))[1].append(
            SimulatedDevice(regmap, unit, behaviour=behaviour))
    async with contextlib.AsyncExitStack() as stack:
        for port, devices in groups.values():
            server = ModbusSimServer(devices, args.host, port, scenario=steps,
                                     allow_non_loopback=args.allow_network)
            await stack.enter_async_context(server)
            for device in devices:
                print(f"{args.host}:{server.port} unit {device.device_id}: "
                      f"{device.regmap.vendor} {device.regmap.name} ({device.regmap.product})",
                      flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m sim.modbus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("devices", nargs="+", metavar="MAP[@ID][:PORT]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--scenario", help="scenario YAML file (steps: ...)")
    parser.add_argument("--travel-time", type=float, default=None,
                        help="seconds a lock arm / contactor takes to move")
    parser.add_argument("--allow-network", action="store_true",
                        help="allow a non-loopback --host")
    line = parser.add_mutually_exclusive_group()
    line.add_argument("--serial", metavar="TTY", help="serve on this serial port (RTU)")
    line.add_argument("--null-modem", metavar="DIR",
                      help="create a null-modem cable of two ptys in DIR, serve on DIR/tty-a")
    parser.add_argument("--baudrate", type=int, default=9600, help="serial line speed")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except (ModbusBridgeError, SimulatorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
