"""Exceptions of the fleet simulator (:mod:`sim.fleet`)::

    FleetError              base of everything the fleet simulator raises
    ├── SpecError           an invalid fleet specification (bad counts, missing targets ...)
    └── WorkerError         a worker process failed or sent something unreadable

``sim`` may import only ``bridges`` and ``thingmodels`` (docs/architecture.md), so this tree
roots in :class:`Exception` like :mod:`sim.ocpp.errors` and :mod:`sim.modbus.errors`, not in
``cloud.errors.CloudError``.
"""

from __future__ import annotations

__all__ = ["FleetError", "SpecError", "WorkerError"]


class FleetError(Exception):
    """Base of the fleet simulator's errors."""


class SpecError(FleetError, ValueError):
    """The fleet specification is invalid; the message names the option and the problem."""


class WorkerError(FleetError):
    """A worker process died, or its report could not be read."""
