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
``disconnect()``, ``cut_link(down_s)`` (abort the TCP connection and stay offline),
``close()``, ``pending_transaction_messages()``, ``tx_dropped``, ``.ledger`` (:class:`Ledger`
of :class:`SessionRecord`), ``.calls_received``, ``.errors``; :class:`OcppFleet` ``(configs)`` and :func:`fleet_configs`.

Answers: RemoteStart/RequestStartTransaction (starts a session), RemoteStop/
RequestStopTransaction, Reset (stops sessions, reconnects, boots again), ChangeConfiguration /
SetVariables, GetConfiguration / GetVariables, TriggerMessage, UnlockConnector,
ChangeAvailability, ReserveNow, CancelReservation, SetChargingProfile (first period's limit
caps the power), ClearChargingProfile, SendLocalList, GetLocalListVersion, ClearCache,
UpdateFirmware (status steps), GetDiagnostics / GetLog (upload steps), DataTransfer.

Offline behaviour (1.6 §4.7, 2.0.1 E): a session keeps metering while the link is down.
Transaction messages -- 1.6 StartTransaction, StopTransaction and the transaction's MeterValues,
2.0.1 TransactionEvent (``offline: true`` and the next ``seqNo`` when made offline) -- wait in a
bounded in-memory queue (``tx_queue_max``; when full the oldest periodic meter value is dropped,
never a start or stop; :mod:`sim.ocpp.txqueue`) and are delivered in order after the reconnect,
one at a time, each waiting for its CALLRESULT, with the timestamps they were made with.
Exceptions: see :mod:`sim.ocpp.errors`.

Every frame the CSMS sends is checked strictly against the official schema of the version
(:mod:`sim.ocpp.wirecheck`); violations land in ``sim.wire_violations`` and
``sim.ocpp.wirecheck.VIOLATIONS``.

Test knobs (:class:`SimConfig`, off by default): ``wire_log`` keeps every frame of both
directions in ``sim.wire_log`` (:class:`~sim.ocpp.wirecheck.WireFrame`, with the time it was
read or written); ``answer_delay_s`` holds each answer to a CSMS call without blocking the
receive loop (a slow charger); ``unanswered_actions`` names CSMS calls that are received and
never answered (a hung charger).
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
