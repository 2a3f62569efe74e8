"""A simulated OCPP 1.6J / 2.0.1 charge point (and fleets of them) for demos, tests, benches.

Built on the ``ocpp`` library's ``ChargePoint`` in the charge-point role over
``websockets.asyncio.client``: it connects to ``{url}/{chargePointId}`` with subprotocol
``ocpp1.6`` or ``ocpp2.0.1`` (HTTP Basic auth when a password is set), boots, sends status
notifications and heartbeats at the interval the CSMS gives, authorizes, runs sessions with
periodic meter values (an integer Wh register that grows with the power drawn, power, per-phase
voltage and current, SoC with a taper above 80 %), and answers the CSMS's calls.

Public API
==========

:class:`SimConfig` (pydantic, unknown keys refused); :class:`OcppChargePointSim` ``(config)``:
``await sim.run()`` / ``async with sim``, ``wait_booted()``, ``start_session(connector,
id_tag) -> SessionRecord``, ``stop_session(connector, reason)``, ``active_session()``,
``disconnect()``, ``close()``, ``.ledger`` (:class:`Ledger` of :class:`SessionRecord`),
``.calls_received``, ``.errors``; :class:`OcppFleet` ``(configs)`` and :func:`fleet_configs`.

Answers: RemoteStart/RequestStartTransaction (starts a session), RemoteStop/
RequestStopTransaction, Reset (stops sessions, reconnects, boots again), ChangeConfiguration /
SetVariables, GetConfiguration / GetVariables, TriggerMessage, UnlockConnector,
ChangeAvailability, ReserveNow, CancelReservation, SetChargingProfile (first period's limit
caps the power), ClearChargingProfile, SendLocalList, GetLocalListVersion, ClearCache,
UpdateFirmware (status steps), GetDiagnostics / GetLog (upload steps), DataTransfer.

Transaction messages wait in an in-memory queue until answered, across reconnects (2.0.1
events made while offline carry ``offline: true``). Exceptions: see :mod:`sim.ocpp.errors`.
"""

from sim.ocpp.config import SimConfig
from sim.ocpp.errors import NotConnected, Refused, SimError
from sim.ocpp.fleet import OcppFleet, fleet_configs
from sim.ocpp.ledger import Ledger, SessionRecord
from sim.ocpp.station import OcppChargePointSim

__all__ = [
    "Ledger",
    "NotConnected",
    "OcppChargePointSim",
    "OcppFleet",
    "Refused",
    "SessionRecord",
    "SimConfig",
    "SimError",
    "fleet_configs",
]
