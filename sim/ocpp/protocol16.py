"""OCPP 1.6J charge-point behaviour (``ocpp.v16.ChargePoint`` in the charge-point role)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ocpp.v16 import ChargePoint as _ChargePoint16
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from sim.ocpp.errors import Refused
from sim.ocpp.ledger import SessionRecord
from sim.ocpp.protocol import Protocol
from sim.ocpp.routing import after, on
from sim.ocpp.state import ActiveSession, ConnectorState

CONFIG_KEYS: dict[str, tuple[str, bool]] = {
    # key: (default value, read-only)
    "AuthorizeRemoteTxRequests": ("false", False),
    "ChargeProfileMaxStackLevel": ("8", True),
    "ConnectionTimeOut": ("60", False),
    "GetConfigurationMaxKeys": ("50", True),
    "HeartbeatInterval": ("60", False),
    "LocalAuthListEnabled": ("true", False),
    "LocalAuthListMaxLength": ("100", True),
    "MeterValueSampleInterval": ("10", False),
    "MeterValuesSampledData": ("Energy.Active.Import.Register,Power.Active.Import,Voltage,"
                               "Current.Import,SoC", False),
    "StopTransactionOnEVSideDisconnect": ("true", False),
    "SupportedFeatureProfiles": ("Core,FirmwareManagement,LocalAuthListManagement,Reservation,"
                                 "SmartCharging,RemoteTrigger", True),
}
TRIGGERABLE = frozenset({"BootNotification", "DiagnosticsStatusNotification",
                         "FirmwareStatusNotification", "Heartbeat", "MeterValues",
                         "StatusNotification"})


class Protocol16(Protocol):
    """1.6J messages and handlers."""

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.config: dict[str, list[Any]] = {k: [v, ro] for k, (v, ro) in CONFIG_KEYS.items()}
        self.config["NumberOfConnectors"] = [str(len(sim.connectors)), True]
        self.config["HeartbeatInterval"][0] = str(int(sim.config.heartbeat_default_s))
        self.config["MeterValueSampleInterval"][0] = str(sim.config.meter_interval_s)

    def make_charge_point(self, connection: Any) -> Any:
        return _Cp16(self, connection)

    async def boot(self, reason: str) -> tuple[str, int]:
        cfg = self.sim.config
        result = await self.sim.call(call.BootNotification(
            charge_point_model=cfg.model, charge_point_vendor=cfg.vendor,
            charge_point_serial_number=cfg.serial_number, firmware_version=cfg.firmware_version,
            iccid=cfg.iccid))
        if result.interval > 0:
            self.config["HeartbeatInterval"][0] = str(result.interval)
        return str(result.status), int(result.interval)

    def heartbeat_payload(self) -> Any:
        return call.Heartbeat()

    async def send_status(self, conn: ConnectorState) -> None:
        await self.sim.call(call.StatusNotification(
            connector_id=conn.number, error_code="NoError", status=conn.status,
            timestamp=self.sim.now_iso()))

    async def authorize(self, id_tag: str) -> None:
        result = await self.sim.call(call.Authorize(id_tag=id_tag))
        status = result.id_tag_info.get("status")
        if status != "Accepted":
            raise Refused(f"Authorize {id_tag}: {status}")

    def sampled_value(self, measurand: str, value: int | float | Decimal, unit: str,
                      context: str, phase: str | None = None,
                      location: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"value": str(value), "context": context, "measurand": measurand,
                                "unit": unit}
        if phase:
            item["phase"] = phase
        if location:
            item["location"] = location
        return item

    async def start_transaction(self, conn: ConnectorState, id_tag: str, *, trigger: str,
                                remote_start_id: int | None = None,
                                id_token_type: str | None = None) -> SessionRecord:
        reservation = conn.reservation.reservation_id if conn.reservation else None
        conn.status = "Preparing"
        if self.sim.online:
            await self.send_status(conn)
        session = self.begin_session(conn, id_tag, remote_start_id)

        def bind(answer: Any) -> None:  # before the next queued message is built
            session.transaction_id = int(answer.transaction_id)
            session.record.session_id = str(answer.transaction_id)

        started = self.sim.enqueue(call.StartTransaction(
            connector_id=conn.number, id_tag=id_tag,
            meter_start=session.record.meter_start_wh, timestamp=self.sim.now_iso(),
            reservation_id=reservation), on_answer=bind)
        # the EV charges from now on, online or not: its meter values queue behind the start
        # and learn the transactionId when they are sent
        self.sim.ensure_meter_loop(conn)
        try:
            answer = await started
        except Exception as exc:
            self.abandon_session(conn, session)
            raise Refused(f"StartTransaction failed: {exc!r}") from exc
        bind(answer)
        status = str(answer.id_tag_info.get("status"))
        session.record.authorization = status
        session.started.set()
        if status != "Accepted":
            if not session.stopping:
                await self.stop_transaction(conn, "DeAuthorized")
            raise Refused(f"StartTransaction {id_tag}: {status}")
        if not session.stopping:
            conn.status = "Charging"
            if self.sim.online:
                await self.send_status(conn)
        return session.record

    async def send_meter_update(self, conn: ConnectorState, session: ActiveSession) -> None:
        """A transaction MeterValues, through the transaction queue (1.6 §4.7: delivered in
        order, also after an outage, with the sample's own timestamp)."""
        value = self.meter_value(conn.physics.reading(), "Sample.Periodic")
        number = conn.number

        def build() -> Any:
            if session.abandoned or session.transaction_id is None:
                return None
            return call.MeterValues(connector_id=number, meter_value=[value],
                                    transaction_id=session.transaction_id)

        self.sim.enqueue(build, droppable=True)

    async def stop_transaction(self, conn: ConnectorState, reason: str) -> SessionRecord:
        session = conn.session
        if session is None or session.stopping:
            raise Refused(f"connector {conn.number} has no running session")
        # stopped now (the meter is read now), even before the start was answered: the stop
        # is queued behind the start and learns its transactionId when it is sent
        reading = self.end_session(conn, session, reason)
        end = self.meter_value(reading, "Transaction.End", full=False)
        stamp = self.sim.now_iso()

        def build() -> Any:
            if session.abandoned or session.transaction_id is None:
                return None
            return call.StopTransaction(
                meter_stop=reading.register_wh, timestamp=stamp,
                transaction_id=session.transaction_id, reason=reason,
                id_tag=session.record.id_tag, transaction_data=[end])

        future = self.sim.enqueue(build)
        if self.sim.online:
            await self._set_status(conn, "Finishing")
        await future
        if self.sim.online:
            await self._set_status(conn, "Available" if conn.operative else "Unavailable")
        else:
            conn.status = "Available" if conn.operative else "Unavailable"
        return session.record

    async def send_firmware_status(self, status: str, request_id: int | None) -> None:
        await self.sim.call(call.FirmwareStatusNotification(status=status))

    async def send_upload_status(self, status: str, request_id: int | None, log: bool) -> None:
        if log:
            await self.sim.call(call.LogStatusNotification(status=status,
                                                           request_id=request_id or 0))
        else:
            await self.sim.call(call.DiagnosticsStatusNotification(status=status))

    async def trigger(self, message: str, connector_id: int | None) -> None:
        """Send what a TriggerMessage asked for."""
        conns = ([self.sim.connectors[connector_id]] if connector_id in self.sim.connectors
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
        elif message == "DiagnosticsStatusNotification":
            await self.send_upload_status("Idle", None, log=False)
        elif message == "MeterValues":
            for conn in conns:
                self.sim.advance(conn)
                session = conn.session
                await self.sim.call(call.MeterValues(
                    connector_id=conn.number,
                    meter_value=[self.meter_value(conn.physics.reading(), "Trigger")],
                    transaction_id=session.transaction_id if session else None))

    def find_transaction(self, transaction_id: int) -> ConnectorState | None:
        """The connector running a transaction id."""
        for conn in self.sim.connectors.values():
            if conn.session is not None and conn.session.transaction_id == transaction_id:
                return conn
        return None


class _Cp16(_ChargePoint16):  # type: ignore[misc]
    """The ``ocpp`` charge point whose handlers delegate to :class:`Protocol16`."""

    def __init__(self, proto: Protocol16, connection: Any) -> None:
        super().__init__(proto.sim.id, connection,
                         response_timeout=proto.sim.config.response_timeout_s)
        self.proto = proto
        self.sim = proto.sim

    # -- remote start / stop ---------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                        charging_profile: dict[str, Any] | None = None, **kw: Any) -> Any:
        self.sim.record_call("RemoteStartTransaction", {"id_tag": id_tag,
                                                        "connector_id": connector_id})
        conn = self.proto.pick_connector(connector_id, id_tag)
        if conn is None:
            return _result("RemoteStartTransaction", status="Rejected")
        if charging_profile is not None:
            self.proto.apply_profile(conn, int(charging_profile["charging_profile_id"]),
                                     charging_profile, charging_profile.get("charging_schedule"))
        self.proto.defer("RemoteStartTransaction", lambda: self.proto.start_transaction(
            conn, id_tag, trigger="RemoteStart"))
        return _result("RemoteStartTransaction", status="Accepted")

    @after(Action.remote_start_transaction)
    def after_remote_start(self, **kw: Any) -> None:
        self.proto.run_deferred("RemoteStartTransaction")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **kw: Any) -> Any:
        self.sim.record_call("RemoteStopTransaction", {"transaction_id": transaction_id})
        conn = self.proto.find_transaction(transaction_id)
        if conn is None:
            return _result("RemoteStopTransaction", status="Rejected")
        self.proto.defer("RemoteStopTransaction",
                         lambda: self.proto.stop_transaction(conn, "Remote"))
        return _result("RemoteStopTransaction", status="Accepted")

    @after(Action.remote_stop_transaction)
    def after_remote_stop(self, **kw: Any) -> None:
        self.proto.run_deferred("RemoteStopTransaction")

    # -- configuration -----------------------------------------------------------------------

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **kw: Any) -> Any:
        self.sim.record_call("GetConfiguration", {"key": key})
        config = self.proto.config
        wanted = key or sorted(config)
        known = [{"key": k, "readonly": config[k][1], "value": config[k][0]}
                 for k in wanted if k in config]
        unknown = [k for k in wanted if k not in config]
        return _result("GetConfiguration", configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **kw: Any) -> Any:
        self.sim.record_call("ChangeConfiguration", {"key": key, "value": value})
        entry = self.proto.config.get(key)
        if entry is None:
            return _result("ChangeConfiguration", status="NotSupported")
        if entry[1]:
            return _result("ChangeConfiguration", status="Rejected")
        if key in ("HeartbeatInterval", "MeterValueSampleInterval"):
            try:
                seconds = float(value)
            except ValueError:
                return _result("ChangeConfiguration", status="Rejected")
            if key == "HeartbeatInterval":
                self.sim.set_heartbeat_interval(seconds)
            elif seconds > 0:
                self.sim.meter_interval = seconds
        entry[0] = value
        return _result("ChangeConfiguration", status="Accepted")

    # -- operations --------------------------------------------------------------------------

    @on(Action.reset)
    def on_reset(self, type: str, **kw: Any) -> Any:
        self.sim.record_call("Reset", {"type": type})
        reason = "HardReset" if type == "Hard" else "SoftReset"

        async def reset() -> None:
            await self.proto.stop_all(reason)
            self.sim.request_reboot("RemoteReset")

        self.proto.defer("Reset", reset)
        return _result("Reset", status="Accepted")

    @after(Action.reset)
    def after_reset(self, **kw: Any) -> None:
        self.proto.run_deferred("Reset")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None,
                           **kw: Any) -> Any:
        self.sim.record_call("TriggerMessage", {"requested_message": requested_message,
                                                "connector_id": connector_id})
        if requested_message not in TRIGGERABLE:
            return _result("TriggerMessage", status="NotImplemented")
        if connector_id is not None and connector_id not in self.sim.connectors:
            return _result("TriggerMessage", status="Rejected")
        self.proto.defer("TriggerMessage",
                         lambda: self.proto.trigger(requested_message, connector_id))
        return _result("TriggerMessage", status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, **kw: Any) -> None:
        self.proto.run_deferred("TriggerMessage")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **kw: Any) -> Any:
        self.sim.record_call("UnlockConnector", {"connector_id": connector_id})
        conn = self.sim.connectors.get(connector_id)
        if conn is None:
            return _result("UnlockConnector", status="NotSupported")
        if conn.session is not None:
            self.proto.defer("UnlockConnector",
                             lambda: self.proto.stop_transaction(conn, "UnlockCommand"))
        return _result("UnlockConnector", status="Unlocked")

    @after(Action.unlock_connector)
    def after_unlock_connector(self, **kw: Any) -> None:
        self.proto.run_deferred("UnlockConnector")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **kw: Any) -> Any:
        self.sim.record_call("ChangeAvailability", {"connector_id": connector_id, "type": type})
        numbers = list(self.sim.connectors) if connector_id == 0 else [connector_id]
        status = self.proto.change_availability(numbers, type == "Operative")
        return _result("ChangeAvailability", status=status)

    @after(Action.change_availability)
    def after_change_availability(self, **kw: Any) -> None:
        self.proto.run_deferred("ChangeAvailability")

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                       reservation_id: int, **kw: Any) -> Any:
        self.sim.record_call("ReserveNow", {"connector_id": connector_id,
                                            "reservation_id": reservation_id})
        status = self.proto.reserve(connector_id, reservation_id, id_tag, expiry_date)
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
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any],
                                **kw: Any) -> Any:
        self.sim.record_call("SetChargingProfile", {"connector_id": connector_id,
                                                    "profile": cs_charging_profiles})
        profile = cs_charging_profiles
        targets = (list(self.sim.connectors.values()) if connector_id == 0
                   else [self.sim.connectors[connector_id]]
                   if connector_id in self.sim.connectors else [])
        if not targets:
            return _result("SetChargingProfile", status="Rejected")
        if profile.get("charging_profile_purpose") == "TxProfile" and all(
                c.session is None for c in targets):
            return _result("SetChargingProfile", status="Rejected")
        for conn in targets:
            self.proto.apply_profile(conn, int(profile["charging_profile_id"]), profile,
                                     profile.get("charging_schedule"))
        return _result("SetChargingProfile", status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, id: int | None = None,
                                  connector_id: int | None = None, **kw: Any) -> Any:
        self.sim.record_call("ClearChargingProfile", {"id": id, "connector_id": connector_id})
        targets = ([self.sim.connectors[connector_id]] if connector_id in self.sim.connectors
                   else list(self.sim.connectors.values()))
        removed = [self.proto.clear_profiles(c, id) for c in targets]
        return _result("ClearChargingProfile", status="Accepted" if any(removed) else "Unknown")

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str,
                           local_authorization_list: list[dict[str, Any]] | None = None,
                           **kw: Any) -> Any:
        self.sim.record_call("SendLocalList", {"list_version": list_version,
                                               "update_type": update_type})
        entries = [(str(e["id_tag"]), (e.get("id_tag_info") or {}).get("status"))
                   for e in local_authorization_list or []]
        status = self.proto.update_local_list(list_version, update_type == "Full", entries)
        return _result("SendLocalList", status=status)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **kw: Any) -> Any:
        self.sim.record_call("GetLocalListVersion", {})
        return _result("GetLocalListVersion", list_version=self.sim.local_list_version)

    @on(Action.clear_cache)
    def on_clear_cache(self, **kw: Any) -> Any:
        self.sim.record_call("ClearCache", {})
        return _result("ClearCache", status="Accepted")

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, **kw: Any) -> Any:
        self.sim.record_call("UpdateFirmware", {"location": location})
        self.proto.defer("UpdateFirmware", lambda: self.proto.firmware_flow(None))
        return _result("UpdateFirmware")

    @after(Action.update_firmware)
    def after_update_firmware(self, **kw: Any) -> None:
        self.proto.run_deferred("UpdateFirmware")

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, **kw: Any) -> Any:
        self.sim.record_call("GetDiagnostics", {"location": location})
        self.proto.defer("GetDiagnostics", lambda: self.proto.upload_flow(None, log=False))
        return _result("GetDiagnostics", file_name=f"diagnostics-{self.sim.id}.log")

    @after(Action.get_diagnostics)
    def after_get_diagnostics(self, **kw: Any) -> None:
        self.proto.run_deferred("GetDiagnostics")

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
                         data: str | None = None, **kw: Any) -> Any:
        self.sim.record_call("DataTransfer", {"vendor_id": vendor_id, "message_id": message_id})
        if vendor_id != self.sim.config.vendor:
            return _result("DataTransfer", status="UnknownVendorId")
        return _result("DataTransfer", status="Accepted", data=data)


def _result(action: str, **fields: Any) -> Any:
    return getattr(call_result, action)(**fields)
