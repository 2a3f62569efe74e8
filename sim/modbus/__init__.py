"""Simulated Modbus devices (TCP, or RTU on a serial line) driven by the shipped register maps.

Every map in ``config/modbus`` can be simulated: values are set by thing-model property name
in thing-model units and encoded with the same codec the gateway decodes with; client writes
that perform a service (lock raise/lower, relay cut/restore) are applied and the device
reacts (the arm travels, the contactor follows); scenarios script floods, ramps and faults.

Public API
==========

``ModbusSimulator(regmap, host="127.0.0.1", port=0, device_id=None, *, values=None,
behaviour=None, scenario=())``
    one device on its own listener; ``async with`` it, then ``sim.port``,
    ``sim.set(prop, value)``, ``sim.get(prop)``, ``sim.faults``, ``sim.device``.
``ModbusSimServer(devices, host="127.0.0.1", port=0, *, scenario=(),
allow_non_loopback=False)``
    many :class:`SimulatedDevice` on one listener, one unit id each (``server.devices[id]``);
    run several servers for several ports. ``start()``, ``stop()``, ``play(steps)``,
    ``serve_forever()``.
``SimulatedDevice(regmap, device_id=None, *, values=None, behaviour=None)``
    the register image of one unit id: ``set``, ``set_point``, ``update``, ``get``,
    ``values``, ``read``, ``handle_write``, ``faults``, ``calls`` (services seen), ``busy``.
``ModbusSerialSimServer(devices, tty, *, baudrate=9600, parity="N", stopbits=1,
bytesize=8, scenario=())``
    the same devices on a serial line (RTU framing) at a tty path; absent unit ids are silent.
``NullModem(directory=None, name="tty")``
    two pseudo-terminals joined by a byte pump: ``cable.a`` for the devices, ``cable.b`` for
    the gateway; ``cut()`` / ``mend()`` the cable, ``unplug()`` / ``replug()`` end b.
Scenarios
    :class:`Step` / :class:`Ramp` (pydantic), ``load_scenario(path) -> list[Step]``,
    ``await run_scenario(devices, steps)``.
Behaviours
    :class:`ParkingLockBehaviour` (``travel_time``), :class:`RelayBehaviour`
    (``switch_time``), :class:`NoBehaviour`, ``behaviour_for(product, *, travel_time=None)``.
Command line
    ``python -m sim.modbus [--host H] [--port P] [--scenario FILE] MAP[@ID][:PORT] ...``

Exceptions
==========

::

    SimulatorError
    ├── ScenarioError     a scenario file or step that cannot run on these devices
    └── ServerError       the listener could not start / duplicate unit ids / not loopback

``set``/``get`` raise the bridge's :class:`bridges.modbus.UnknownName` and
:class:`bridges.modbus.EncodeError` for unknown properties and unrepresentable values.
"""

from sim.modbus.behaviours import (
    Behaviour,
    NoBehaviour,
    ParkingLockBehaviour,
    RelayBehaviour,
    behaviour_for,
)
from sim.modbus.device import SimulatedDevice
from sim.modbus.errors import ScenarioError, ServerError, SimulatorError
from sim.modbus.nullmodem import NullModem
from sim.modbus.profiles import DEFAULT_VALUES
from sim.modbus.scenario import Ramp, ScenarioFile, Step, load_scenario, run_scenario
from sim.modbus.server import ModbusSerialSimServer, ModbusSimServer, ModbusSimulator

__all__ = [
    "DEFAULT_VALUES",
    "Behaviour",
    "ModbusSerialSimServer",
    "ModbusSimServer",
    "ModbusSimulator",
    "NoBehaviour",
    "NullModem",
    "ParkingLockBehaviour",
    "Ramp",
    "RelayBehaviour",
    "ScenarioError",
    "ScenarioFile",
    "ServerError",
    "SimulatedDevice",
    "SimulatorError",
    "Step",
    "behaviour_for",
    "load_scenario",
    "run_scenario",
]
