"""``voltmesh sim``: a fleet of simulated devices speaking the real protocols to a gateway.

YKC piles (:mod:`sim.ykc`), OCPP 1.6J and 2.0.1 chargers (:mod:`sim.ocpp`), Modbus meters,
temperature sensors and parking locks served over Modbus TCP (:mod:`sim.modbus`) and MQTT AI
cameras / environment sensors (:mod:`sim.mqtt.devices`), with session schedules, a ramp,
worker processes, live progress, a summary with acknowledgement latencies and a ledger of
every session as the chargers billed it. Usage: ``docs/sim.md``.

Public API
==========

:class:`FleetSpec` / :func:`build_spec` (``SpecError`` naming the option)
    what a run is: counts per kind, targets, intervals, session pattern, duration, ramp,
    seed, processes, ledger, pass criteria.
:func:`plan_devices`, :func:`shard_devices`, :func:`modbus_layout`
    the devices (ids, connectors) and which worker runs which.
:func:`plan_sessions` / :func:`sessions_until`, :func:`card_pool`
    the deterministic session schedule of a connector, and the drivers' cards.
:func:`gateway_snippet`, :func:`provisioning`, :func:`render_yaml`
    the gateway config for the Modbus / MQTT devices; the gateway desired state admitting
    the chargers and cards.
``await run_fleet(spec, stop=None, progress=None, on_modbus_ports=None) -> Summary``
    the whole run; :class:`ShardRunner` runs one worker's share in the current loop.
:class:`Summary` (``ok``, ``exit_code``, ``failures()``, ``to_dict()``, ``render()``),
:class:`Snapshot`, :class:`Progress`, :class:`LedgerWriter`, :class:`Histogram`.

Exceptions: :mod:`sim.fleet.errors` (``FleetError`` > ``SpecError``, ``WorkerError``).
"""

from sim.fleet.errors import FleetError, SpecError, WorkerError
from sim.fleet.gateway_config import DEFAULT_TARIFF, gateway_snippet, provisioning, render_yaml
from sim.fleet.ledger import LedgerWriter
from sim.fleet.meter import Histogram, KindMeter
from sim.fleet.progress import Progress
from sim.fleet.runner import ShardRunner, run_fleet
from sim.fleet.schedule import PlannedSession, card_pool, plan_sessions, sessions_until
from sim.fleet.spec import (
    DevicePlan,
    FleetSpec,
    Kind,
    build_spec,
    modbus_layout,
    plan_devices,
    shard_devices,
)
from sim.fleet.summary import KindSnapshot, Snapshot, Summary

__all__ = [
    "DEFAULT_TARIFF",
    "DevicePlan",
    "FleetError",
    "FleetSpec",
    "Histogram",
    "Kind",
    "KindMeter",
    "KindSnapshot",
    "LedgerWriter",
    "PlannedSession",
    "Progress",
    "ShardRunner",
    "Snapshot",
    "SpecError",
    "Summary",
    "WorkerError",
    "build_spec",
    "card_pool",
    "gateway_snippet",
    "modbus_layout",
    "plan_devices",
    "plan_sessions",
    "provisioning",
    "render_yaml",
    "run_fleet",
    "sessions_until",
    "shard_devices",
]
