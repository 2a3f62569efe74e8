"""One charge point's uplink translation, with its sessions held in memory.

:class:`ChargePointTranslator` routes each CALL the charger sends to the right mapper and keeps
the :class:`~bridges.ocpp.sessions.SessionState` of its sessions between messages. It is pure
(no I/O, no clock: the receive time is passed in); the gateway persists
:meth:`ChargePointTranslator.export_sessions` and restores them with the constructor.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from bridges.ocpp import sessions as sess
from bridges.ocpp import uplink
from bridges.ocpp.devices import check_charge_point_id, evse_device_id
from bridges.ocpp.errors import MappingError
from bridges.ocpp.rpc import Call
from bridges.ocpp.sessions import DEFAULT_MAX_POWER_KW, SessionState
from bridges.ocpp.timestamps import (
    DEFAULT_SKEW_THRESHOLD_S,
    clock_skew_event,
    optional_timestamp_ms,
)
from bridges.ocpp.translation import Translation
from bridges.ocpp.versions import OcppVersion

KEEP_ENDED = 16
"""Ended sessions kept (so that a repeated stop is recognised), per charge point. A repeated
stop is the charger re-sending one whose answer it lost, before any later transaction message
(transaction messages are delivered in order), so the last few per connector suffice. Each
costs ~1.1 KB of gateway memory for as long as the gateway runs (the translator outlives the
connection) and ~0.5 KB of the JSON persisted at every session start and end: 64 were ~70 KB
and 34 KB per busy charger, more than its connection (docs/protocols/ocpp.md "Memory per
connection")."""


class ChargePointTranslator:
    """Uplink mapping for one charge point."""

    def __init__(self, charge_point_id: str, version: OcppVersion, *,
                 max_power_kw: Decimal = DEFAULT_MAX_POWER_KW,
                 skew_threshold_s: float = DEFAULT_SKEW_THRESHOLD_S,
                 sessions: Iterable[SessionState] = ()) -> None:
        self.charge_point_id = check_charge_point_id(charge_point_id)
        self.version = version
        self.max_power_kw = max_power_kw
        self.skew_threshold_s = skew_threshold_s
        self.sessions: dict[str, SessionState] = {s.session_id: s for s in sessions}

    # -- sessions ------------------------------------------------------------------------------

    def open_session(self, device: str) -> SessionState | None:
        """The running session on a connector device, if any (latest started)."""
        found = None
        for state in self.sessions.values():
            if state.device == device and not state.ended:
                found = state
        return found

    def export_sessions(self) -> list[SessionState]:
        """Everything to persist."""
        return list(self.sessions.values())

    def _store(self, state: SessionState) -> None:
        self.sessions.pop(state.session_id, None)
        self.sessions[state.session_id] = state  # re-insert: dict order = recency
        ended = [k for k, s in self.sessions.items() if s.ended]
        for key in ended[:-KEEP_ENDED] if len(ended) > KEEP_ENDED else ():
            del self.sessions[key]

    # -- routing -------------------------------------------------------------------------------

    def translate(self, call: Call, *, receive_ms: int, transaction_id: int | None = None,
                  device: str | None = None) -> Translation:
        """Map one (schema-valid) CALL from the charger.

        ``transaction_id``: for a 1.6 StartTransaction, the id the gateway answers with (reuse it
        for a retry: :func:`~bridges.ocpp.sessions.start_transaction_key`). ``device``: for a
        stop of a session the gateway does not know, the connector it happened on.
        """
        cp, v, payload = self.charge_point_id, self.version, call.payload
        action = call.action
        if action == "BootNotification":
            return uplink.boot_notification(v, cp, payload)
        if action == "Heartbeat":
            return uplink.heartbeat(cp, receive_ms)
        if action == "StatusNotification":
            charging = None
            if v is OcppVersion.V201:
                target = evse_device_id(cp, int(payload["evseId"]), int(payload["connectorId"]))
                running = self.open_session(target)
                charging = running.charging_state if running is not None else None
            tr = uplink.status_notification(v, cp, payload, charging_state=charging)
            self._skew(tr, optional_timestamp_ms(payload.get("timestamp")), receive_ms,
                       live=False)
            return tr
        if action == "MeterValues":
            state = None
            if v is OcppVersion.V16 and payload.get("transactionId") is not None:
                state = self.sessions.get(str(payload["transactionId"]))
            tr, new_state = uplink.meter_values(v, cp, payload, state)
            if new_state is not None and new_state is not state:
                self._store(new_state)
            return tr
        if action == "Authorize":
            return uplink.authorize(v, cp, payload)
        if action == "StartTransaction":
            if transaction_id is None:
                raise MappingError("StartTransaction needs the transactionId the gateway assigns")
            existing = self.sessions.get(str(transaction_id))
            new, tr = sess.start_transaction(cp, payload, transaction_id)
            if existing is None:
                self._store(new)
            else:
                tr.flag("duplicate_start", f"StartTransaction for transaction {transaction_id} "
                        "again", existing.device)
            return tr
        if action == "StopTransaction":
            state = self.sessions.get(str(payload["transactionId"]))
            new, tr = sess.stop_transaction(cp, payload, state, device=device,
                                            max_power_kw=self.max_power_kw)
            self._store(new)
            return tr
        if action == "TransactionEvent":
            state = self.sessions.get(str(payload["transactionInfo"]["transactionId"]))
            new, tr = sess.transaction_event(cp, payload, state, device=device,
                                             max_power_kw=self.max_power_kw)
            self._store(new)
            if not payload.get("offline"):
                self._skew(tr, optional_timestamp_ms(payload.get("timestamp")), receive_ms,
                           live=True)
            return tr
        if action in ("FirmwareStatusNotification", "SignedFirmwareStatusNotification"):
            return uplink.firmware_status(cp, payload)
        if action in ("DiagnosticsStatusNotification", "LogStatusNotification"):
            return uplink.diagnostics_status(cp, payload)
        if action == "SecurityEventNotification":
            return uplink.security_event(cp, payload)
        if action == "NotifyEvent":
            return uplink.notify_event(cp, payload)
        if action == "DataTransfer":
            return uplink.data_transfer(cp, payload)
        tr = Translation()
        tr.flag("unmapped_action", f"{action} has no thing-model mapping yet", cp)
        return tr

    def _skew(self, tr: Translation, device_ms: int | None, receive_ms: int, *,
              live: bool) -> None:
        """Report the skew; alarm when the charger is ahead (never explained by delay), or
        behind on a message sent live (a StatusNotification may carry an older time)."""
        if device_ms is None:
            return
        tr.prop("charger", self.charge_point_id,
                {"clockSkew": round((device_ms - receive_ms) / 1000, 3)})
        event = clock_skew_event(device_ms, receive_ms, self.skew_threshold_s)
        if event is not None and (live or event["skew"] > 0):
            tr.event("charger", self.charge_point_id, "clockSkew", event, ts=device_ms)
