"""OCPP 2.0.1 charging-station behaviour (``ocpp.v201.ChargePoint`` in the station role).

Each connector of the configuration is one EVSE with one connector (``evseId = n``,
``connectorId = 1``). Transactions are ``TransactionEvent`` Started / Updated / Ended with a
per-transaction ``seqNo`` from 0, queued (``offline: true``) while the CSMS is unreachable.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from ocpp.v201 import ChargePoint as _ChargePoint201
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from sim.ocpp.errors import Refused
from sim.ocpp.ledger import SessionRecord
from sim.ocpp.protocol import Protocol
from sim.ocpp.routing import after, on
from sim.ocpp.state import ActiveSession, ConnectorState

STATUS_201 = {
    "Available": "Available", "Preparing": "Occupied", "Charging": "Occupied",
    "SuspendedEV": "Occupied", "SuspendedEVSE": "Occupied", "Finishing": "Occupied",
    "Reserved": "Reserved", "Unavailable": "Unavailable", "Faulted": "Faulted",
}
VARIABLES: dict[tuple[str, str], tuple[str, bool]] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): ("60", False),
    ("SampledDataCtrlr", "TxUpdatedInterval"): ("10", False),
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): (
        "Energy.Active.Import.Register,Power.Active.Import,Voltage,Current.Import,SoC", False),
    ("AuthCtrlr", "AuthorizeRemoteStart"): ("false", False),
    ("AuthCtrlr", "LocalAuthorizeOffline"): ("true", False),
    ("LocalAuthListCtrlr", "Enabled"): ("true", False),
    ("TxCtrlr", "StopTxOnEVSideDisconnect"): ("true", False),
    ("DeviceDataCtrlr", "ItemsPerMessage"): ("50", True),
    ("DeviceDataCtrlr", "BytesPerMessage"): ("65536", True),
}
TRIGGERABLE = frozenset({"BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
                         "FirmwareStatusNotification", "LogStatusNotification",
                         "TransactionEvent"})
STOP_TRIGGER = {"Remote": "RemoteStop", "Local": "StopAuthorized", "EVDisconnected": "EVDeparted",
                "DeAuthorized": "Deauthorized", "ImmediateReset": "ResetCommand"}


class Protocol201(Protocol):
    """2.0.1 messages and handlers."""

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.variables: dict[tuple[str, str], list[Any]] = {
            k: [v, ro] for k, (v, ro) in VARIABLES.items()}
        self.variables[("OCPPCommCtrlr", "HeartbeatInterval")][0] = str(
            int(sim.config.heartbeat_default_s))
        self.variables[("SampledDataCtrlr", "TxUpdatedInterval")][0] = str(
            sim.config.meter_interval_s)
        self.variables[("SecurityCtrlr", "Identity")] = [sim.id, True]
        self.booted_once = False

    def make_charge_point(self, connection: Any) -> Any:
        return _Cp201(self, connection)

    async def boot(self, reason: str) -> tuple[str, int]:
        cfg = self.sim.config
        station: dict[str, Any] = {"model": cfg.model, "vendorName": cfg.vendor,
                                   "serialNumber": cfg.serial_number,
                                   "firmwareVersion": cfg.firmware_version}
        if cfg.iccid:
            station["modem"] = {"iccid": cfg.iccid}
        result = await self.sim.call(call.BootNotification(charging_station=station,
                                                           reason=reason))
        if result.status == "Accepted":
            self.booted_once = True
        if result.interval > 0:
            self.variables[("OCPPCommCtrlr", "HeartbeatInterval")][0] = str(result.interval)
        return str(result.status), int(result.interval)

    def heartbeat_payload(self) -> Any:
        return call.Heartbeat()

    async def send_status(self, conn: ConnectorState) -> None:
        await self.sim.call(call.StatusNotification(
            timestamp=self.sim.now_iso(), connector_status=STATUS_201[conn.status],
            evse_id=conn.number, connector_id=1))

    async def authorize(self, id_tag: str) -> None:
        result = await self.sim.call(call.Authorize(id_token=self._token(id_tag)))
        status = result.id_token_info.get("status")
        if status != "Accepted":
            raise Refused(f"Authorize {id_tag}: {status}")

    def _token(self, id_tag: str, kind: str | None = None) -> dict[str, str]:
        return {"idToken": id_tag, "type": kind or self.sim.config.id_token_type}

    def sampled_value(self, measurand: str, value: int | float | Decimal, unit: str,
                      context: str, phase: str | None = None,
                      location: str | None = None) -> dict[str, Any]:
        number = float(value) if isinstance(value, Decimal) else value
        item: dict[str, Any] = {"value": number, "context": context, "measurand": measurand,
                                "unitOfMeasure": {"unit": unit}}
        if phase:
            item["phase"] = phase
        if location:
            item["location"] = location
        return item

    def _event(self, session: ActiveSession, event_type: str, trigger: str,
               info: dict[str, Any], meter: dict[str, Any] | None, **extra: Any) -> Any:
        seq = session.seq_no
        session.seq_no += 1
        return call.TransactionEvent(
            event_type=event_type, timestamp=self.sim.now_iso(), trigger_reason=trigger,
            seq_no=seq, transaction_info={"transactionId": str(session.transaction_id), **info},
            meter_value=[meter] if meter is not None else None,
            offline=True if not self.sim.online else None, **extra)

    async def start_transaction(self, conn: ConnectorState, id_tag: str, *, trigger: str,
                                remote_start_id: int | None = None,
                                id_token_type: str | None = None,
                                transaction_id: str | None = None) -> SessionRecord:
        reservation = conn.reservation.reservation_id if conn.reservation else None
        conn.status = "Preparing"
        if self.sim.online:
            await self.send_status(conn)
        session = self.begin_session(conn, id_tag, remote_start_id)
        session.transaction_id = transaction_id or str(uuid.uuid4())
        session.record.session_id = session.transaction_id
        session.started.set()
        info: dict[str, Any] = {"chargingState": "Charging"}
        if remote_start_id is not None:
            info["remoteStartId"] = remote_start_id
        begin = self.meter_value(conn.physics.reading(), "Transaction.Begin", full=False)
        conn.status = "Charging"
        started = self.sim.enqueue(self._event(
            session, "Started", trigger, info, begin,
            evse={"id": conn.number, "connectorId": 1},
            id_token=self._token(id_tag, id_token_type), reservation_id=reservation))
        self.sim.ensure_meter_loop(conn)  # metering from now on, online or not
        try:
            answer = await started
        except Exception as exc:
            self.abandon_session(conn, session)
            raise Refused(f"TransactionEvent Started failed: {exc!r}") from exc
        status = (answer.id_token_info or {}).get("status", "Accepted")
        session.record.authorization = str(status)
        if status != "Accepted":
            if not session.stopping:
                await self.stop_transaction(conn, "DeAuthorized")
            raise Refused(f"TransactionEvent Started {id_tag}: {status}")
        return session.record

    async def send_meter_update(self, conn: ConnectorState, session: ActiveSession) -> None:
        value = self.meter_value(conn.physics.reading(), "Sample.Periodic")
        # made now (seqNo, timestamp, offline flag), sent when the queue gets to it
        event = self._event(session, "Updated", "MeterValuePeriodic",
                            {"chargingState": "Charging"}, value)
        self.sim.enqueue(lambda: None if session.abandoned else event, droppable=True)

    async def stop_transaction(self, conn: ConnectorState, reason: str) -> SessionRecord:
        session = conn.session
        if session is None or session.stopping:
            raise Refused(f"EVSE {conn.number} has no running transaction")
        reading = self.end_session(conn, session, reason)
        end = self.meter_value(reading, "Transaction.End", full=False)
        event = self._event(
            session, "Ended", STOP_TRIGGER.get(reason, "AbnormalCondition"),
            {"chargingState": "EVConnected", "stoppedReason": reason}, end,
            id_token=self._token(session.record.id_tag) if reason == "Local" else None)
        future = self.sim.enqueue(lambda: None if session.abandoned else event)
        await future
        conn.status = "Available" if conn.operative else "Unavailable"
        if self.sim.online:
            await self.send_status(conn)
        return session.record

    async def send_firmware_status(self, status: str, request_id: int | None) -> None:
        await self.sim.call(call.FirmwareStatusNotification(status=status,
                                                            request_id=request_id))

    async def send_upload_status(self, status: str, request_id: int | None, log: bool) -> None:
        await self.sim.call(call.LogStatusNotification(status=status, request_id=request_id))

    async def trigger(self, message: str, evse_id: int | None) -> None:
        """Send what a TriggerMessage asked for."""
        conns = ([self.sim.connectors[evse_id]] if evse_id in self.sim.connectors
                 else list(self.sim.connectors.values()))
        if message == "BootNotification":
            await self.boot("Triggered")
        elif message == "Heartbeat":
            await self.sim.call(self.heartbeat_payload())
        elif message == "StatusNotification":
            for conn in conns:
                await self.send_status(conn)
        elif message == "FirmwareStatusNotification":
            await self.send_firmware_status("Idle", None)
        elif message == "LogStatusNotification":
            await self.send_upload_status("Idle", None, log=True)
        elif message == "MeterValues":
            for conn in conns:
                self.sim.advance(conn)
                await self.sim.call(call.MeterValues(
                    evse_id=conn.number,
                    meter_value=[self.meter_value(conn.physics.reading(), "Trigger")]))
        elif message == "TransactionEvent":
            for conn in conns:
                session = conn.session
                if session is not None and not session.stopping:
                    self.sim.advance(conn)
                    value = self.meter_value(conn.physics.reading(), "Trigger")
                    self.sim.enqueue(self._event(session, "Updated", "Trigger",
                                                 {"chargingState": "Charging"}, value))

    def find_transaction(self, transaction_id: str) -> ConnectorState | None:
        """The EVSE running a transaction id."""
        for conn in self.sim.connectors.values():
            if conn.session is not None and conn.session.transaction_id == transaction_id:
                return conn
        return None


def _result(action: str, **fields: Any) -> Any:
    return getattr(call_result, action)(**fields)


def _name(obj: Any) -> str:
    return str(obj.get("name", "")) if isinstance(obj, dict) else ""


class _Cp201(_ChargePoint201):  # type: ignore[misc]
    """The ``ocpp`` charging station whose handlers delegate to :class:`Protocol201`."""

    def __init__(self, proto: Protocol201, connection: Any) -> None:
        super().__init__(proto.sim.id, connection,
                         response_timeout=proto.sim.config.response_timeout_s)
        self.proto = proto
        self.sim = proto.sim

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int,
                         evse_id: int | None = None,
                         charging_profile: dict[str, Any] | None = None, **kw: Any) -> Any:
        self.sim.record_call("RequestStartTransaction", {"id_token": id_token,
                                                         "evse_id": evse_id})
        tag, kind = str(id_token["id_token"]), str(id_token["type"])
        conn = self.proto.pick_connector(evse_id, tag)
        if conn is None:
            return _result("RequestStartTransaction", status="Rejected")
        if charging_profile is not None:
            schedules = charging_profile.get("charging_schedule") or [None]
            self.proto.apply_profile(conn, int(charging_profile["id"]), charging_profile,
                                     schedules[0])
        transaction_id = str(uuid.uuid4())
        self.proto.defer("RequestStartTransaction", lambda: self.proto.start_transaction(
            conn, tag, trigger="RemoteStart", remote_start_id=remote_start_id,
            id_token_type=kind, transaction_id=transaction_id))
        return _result("RequestStartTransaction", status="Accepted",
                       transaction_id=transaction_id)

    @after(Action.request_start_transaction)
    def after_request_start(self, **kw: Any) -> None:
        self.proto.run_deferred("RequestStartTransaction")

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **kw: Any) -> Any:
        self.sim.record_call("RequestStopTransaction", {"transaction_id": transaction_id})
        conn = self.proto.find_transaction(transaction_id)
        if conn is None:
            return _result("RequestStopTransaction", status="Rejected")
        self.proto.defer("RequestStopTransaction",
                         lambda: self.proto.stop_transaction(conn, "Remote"))
        return _result("RequestStopTransaction", status="Accepted")

    @after(Action.request_stop_transaction)
    def after_request_stop(self, **kw: Any) -> None:
        self.proto.run_deferred("RequestStopTransaction")

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.sim.record_call("GetVariables", {"get_variable_data": get_variable_data})
        results = []
        components = {c for c, _ in self.proto.variables}
        for item in get_variable_data:
            key = (_name(item.get("component")), _name(item.get("variable")))
            entry = self.proto.variables.get(key)
            out: dict[str, Any] = {"component": item["component"],
                                   "variable": item["variable"]}
            if entry is not None:
                out.update(attribute_status="Accepted", attribute_value=str(entry[0]))
            else:
                out["attribute_status"] = ("UnknownVariable" if key[0] in components
                                           else "UnknownComponent")
            results.append(out)
        return _result("GetVariables", get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.sim.record_call("SetVariables", {"set_variable_data": set_variable_data})
        results = []
        components = {c for c, _ in self.proto.variables}
        for item in set_variable_data:
            key = (_name(item.get("component")), _name(item.get("variable")))
            value = str(item.get("attribute_value", ""))
            entry = self.proto.variables.get(key)
            if entry is None:
                status = "UnknownVariable" if key[0] in components else "UnknownComponent"
            elif entry[1]:
                status = "Rejected"
            else:
                status = self._apply_variable(key, value, entry)
            results.append({"attribute_status": status, "component": item["component"],
                            "variable": item["variable"]})
        return _result("SetVariables", set_variable_result=results)

    def _apply_variable(self, key: tuple[str, str], value: str, entry: list[Any]) -> str:
        if key in (("OCPPCommCtrlr", "HeartbeatInterval"),
                   ("SampledDataCtrlr", "TxUpdatedInterval")):
            try:
                seconds = float(value)
            except ValueError:
                return "Rejected"
            if key[0] == "OCPPCommCtrlr":
                self.sim.set_heartbeat_interval(seconds)
            elif seconds > 0:
                self.sim.meter_interval = seconds
        entry[0] = value
        return "Accepted"

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **kw: Any) -> Any:
        self.sim.record_call("Reset", {"type": type, "evse_id": evse_id})
        busy = any(c.session is not None for c in self.sim.connectors.values())
        reason = "ImmediateReset" if type == "Immediate" else "Local"

        async def reset() -> None:
            if type == "Immediate":
                await self.proto.stop_all(reason)
            else:  # OnIdle: wait for the sessions to end by themselves
                while any(c.session is not None  # noqa: ASYNC110 - plain state
                          for c in self.sim.connectors.values()):
                    await asyncio.sleep(0.1)
            self.sim.request_reboot("RemoteReset")

        self.proto.defer("Reset", reset)
        return _result("Reset", status="Scheduled" if busy and type == "OnIdle" else "Accepted")

    @after(Action.reset)
    def after_reset(self, **kw: Any) -> None:
        self.proto.run_deferred("Reset")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None,
                           **kw: Any) -> Any:
        self.sim.record_call("TriggerMessage", {"requested_message": requested_message,
                                                "evse": evse})
        if requested_message not in TRIGGERABLE:
            return _result("TriggerMessage", status="NotImplemented")
        if requested_message == "BootNotification" and self.proto.booted_once:
            return _result("TriggerMessage", status="Rejected")
        evse_id = int(evse["id"]) if evse else None
        if evse_id is not None and evse_id not in self.sim.connectors:
            return _result("TriggerMessage", status="Rejected")
        self.proto.defer("TriggerMessage", lambda: self.proto.trigger(requested_message, evse_id))
        return _result("TriggerMessage", status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, **kw: Any) -> None:
        self.proto.run_deferred("TriggerMessage")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, evse_id: int, connector_id: int, **kw: Any) -> Any:
        self.sim.record_call("UnlockConnector", {"evse_id": evse_id, "connector_id": connector_id})
        conn = self.sim.connectors.get(evse_id)
        if conn is None or connector_id != 1:
            return _result("UnlockConnector", status="UnknownConnector")
        if conn.session is not None:
            return _result("UnlockConnector", status="OngoingAuthorizedTransaction")
        return _result("UnlockConnector", status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str,
                               evse: dict[str, Any] | None = None, **kw: Any) -> Any:
        self.sim.record_call("ChangeAvailability", {"operational_status": operational_status,
                                                    "evse": evse})
        numbers = [int(evse["id"])] if evse else list(self.sim.connectors)
        status = self.proto.change_availability(numbers, operational_status == "Operative")
        return _result("ChangeAvailability", status=status)

    @after(Action.change_availability)
    def after_change_availability(self, **kw: Any) -> None:
        self.proto.run_deferred("ChangeAvailability")

    @on(Action.reserve_now)
    def on_reserve_now(self, id: int, expiry_date_time: str, id_token: dict[str, Any],
                       evse_id: int | None = None, **kw: Any) -> Any:
        self.sim.record_call("ReserveNow", {"id": id, "evse_id": evse_id})
        status = self.proto.reserve(evse_id, id, str(id_token["id_token"]), expiry_date_time)
        return _result("ReserveNow", status=status)

    @after(Action.reserve_now)
    def after_reserve_now(self, **kw: Any) -> None:
        self.proto.run_deferred("ReserveNow")

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **kw: Any) -> Any:
        self.sim.record_call("CancelReservation", {"reservation_id": reservation_id})
        return _result("CancelReservation",
                       status=self.proto.cancel_reservation(reservation_id))

    @after(Action.cancel_reservation)
    def after_cancel_reservation(self, **kw: Any) -> None:
        self.proto.run_deferred("CancelReservation")

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any],
                                **kw: Any) -> Any:
        self.sim.record_call("SetChargingProfile", {"evse_id": evse_id,
                                                    "profile": charging_profile})
        targets = (list(self.sim.connectors.values()) if evse_id == 0
                   else [self.sim.connectors[evse_id]] if evse_id in self.sim.connectors
                   else [])
        if not targets:
            return _result("SetChargingProfile", status="Rejected")
        if charging_profile.get("charging_profile_purpose") == "TxProfile" and all(
                c.session is None for c in targets):
            return _result("SetChargingProfile", status="Rejected")
        schedules = charging_profile.get("charging_schedule") or [None]
        for conn in targets:
            self.proto.apply_profile(conn, int(charging_profile["id"]), charging_profile,
                                     schedules[0])
        return _result("SetChargingProfile", status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict[str, Any] | None = None,
                                  **kw: Any) -> Any:
        self.sim.record_call("ClearChargingProfile", {"id": charging_profile_id})
        evse_id = (charging_profile_criteria or {}).get("evse_id")
        targets = ([self.sim.connectors[evse_id]] if evse_id in self.sim.connectors
                   else list(self.sim.connectors.values()))
        removed = [self.proto.clear_profiles(c, charging_profile_id) for c in targets]
        return _result("ClearChargingProfile", status="Accepted" if any(removed) else "Unknown")

    @on(Action.send_local_list)
    def on_send_local_list(self, version_number: int, update_type: str,
                           local_authorization_list: list[dict[str, Any]] | None = None,
                           **kw: Any) -> Any:
        self.sim.record_call("SendLocalList", {"version_number": version_number,
                                               "update_type": update_type})
        entries = [(str(e["id_token"]["id_token"]),
                    (e.get("id_token_info") or {}).get("status"))
                   for e in local_authorization_list or []]
        status = self.proto.update_local_list(version_number, update_type == "Full", entries)
        return _result("SendLocalList", status=status)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **kw: Any) -> Any:
        self.sim.record_call("GetLocalListVersion", {})
        return _result("GetLocalListVersion", version_number=self.sim.local_list_version)

    @on(Action.clear_cache)
    def on_clear_cache(self, **kw: Any) -> Any:
        self.sim.record_call("ClearCache", {})
        return _result("ClearCache", status="Accepted")

    @on(Action.update_firmware)
    def on_update_firmware(self, request_id: int, firmware: dict[str, Any], **kw: Any) -> Any:
        self.sim.record_call("UpdateFirmware", {"request_id": request_id,
                                                "location": firmware.get("location")})
        self.proto.defer("UpdateFirmware", lambda: self.proto.firmware_flow(request_id))
        return _result("UpdateFirmware", status="Accepted")

    @after(Action.update_firmware)
    def after_update_firmware(self, **kw: Any) -> None:
        self.proto.run_deferred("UpdateFirmware")

    @on(Action.get_log)
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **kw: Any) -> Any:
        self.sim.record_call("GetLog", {"log_type": log_type, "request_id": request_id})
        self.proto.defer("GetLog", lambda: self.proto.upload_flow(request_id, log=True))
        return _result("GetLog", status="Accepted", filename=f"log-{self.sim.id}.tar.gz")

    @after(Action.get_log)
    def after_get_log(self, **kw: Any) -> None:
        self.proto.run_deferred("GetLog")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                         data: Any = None, **kw: Any) -> Any:
        self.sim.record_call("DataTransfer", {"vendor_id": vendor_id, "message_id": message_id})
        if vendor_id != self.sim.config.vendor:
            return _result("DataTransfer", status="UnknownVendorId")
        return _result("DataTransfer", status="Accepted", data=data)
