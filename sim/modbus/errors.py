"""The exception tree of :mod:`sim.modbus`.

::

    SimulatorError                 base of everything raised here
    ├── ScenarioError              a scenario file or step that cannot run on these devices
    └── ServerError                the listener or serial port could not start

Setting a value the map cannot hold raises the bridge's own errors
(:class:`bridges.modbus.UnknownName`, :class:`bridges.modbus.EncodeError`).
"""

from __future__ import annotations

__all__ = ["ScenarioError", "ServerError", "SimulatorError"]


class SimulatorError(Exception):
    """Base class of every error raised by :mod:`sim.modbus`."""


class ScenarioError(SimulatorError):
    """A scenario that cannot run: bad file, unknown device id or property."""


class ServerError(SimulatorError):
    """The listener could not start (address in use, not a loopback host, no such tty ...)."""
