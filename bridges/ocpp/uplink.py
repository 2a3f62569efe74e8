"""Charge point -> thing model, for everything that is not a transaction.

Every function takes an already schema-valid CALL payload (:func:`bridges.ocpp.decode_frame`)
and returns a :class:`~bridges.ocpp.translation.Translation`. See :mod:`bridges.ocpp.table`
for the whole mapping as data.

Connector status (``connector.status``):

==============  ==========================  =========  ===================================
1.6 status      2.0.1 connectorStatus       status     plugged
==============  ==========================  =========  ===================================
Available       Available                   available  false
Preparing       Occupied (no transaction,   preparing  true
                or chargingState
                EVConnected / Idle)
Charging        Occupied + Charging         charging   true
SuspendedEV,    Occupied + SuspendedEV /    suspended  true
SuspendedEVSE   SuspendedEVSE
Finishing       -                           finishing  true
Reserved        Reserved                    reserved   -
Unavailable     Unavailable                 unavailable -
Faulted         Faulted                     faulted    -
==============  ==========================  =========  ===================================

A 1.6 ``errorCode`` other than ``NoError`` also raises a ``fault`` event (code = errorCode,
description = info / vendorErrorCode); the ``errorCode`` property is ``""`` for NoError so the
cloud sees it clear. 1.6 connector 0 is the charge point itself: only its fault is reported
(on the ``charger``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bridges.ocpp.devices import (
    check_charge_point_id,
    connector_device_id,
    evse_device_id,
    station_meter_id,
)
from bridges.ocpp.errors import MappingError
from bridges.ocpp.idtokens import charger_id_type, id_token
from bridges.ocpp.meter import (
    connector_properties,
    in_range,
    parse_meter_values,
    station_meter_properties,
)
from bridges.ocpp.sessions import SessionState, session_meter_values
from bridges.ocpp.timestamps import optional_timestamp_ms
from bridges.ocpp.translation import Translation
from bridges.ocpp.versions import OcppVersion

STATUS_16: dict[str, str] = {
    "Available": "available",
    "Preparing": "preparing",
    "Charging": "charging",
    "SuspendedEV": "suspended",
    "SuspendedEVSE": "suspended",
    "Finishing": "finishing",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
}
STATUS_201: dict[str, str] = {
    "Available": "available",
    "Occupied": "preparing",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
}
_OCCUPIED_BY_CHARGING_STATE = {
    "Charging": "charging",
    "SuspendedEV": "suspended",
    "SuspendedEVSE": "suspended",
}
_PLUGGED = {"available": False, "preparing": True, "charging": True, "suspended": True,
            "finishing": True}
REGISTRATION = {"Accepted": "accepted", "Pending": "pending", "Rejected": "rejected"}


def _text(value: Any, limit: int = 64) -> str:
    return str(value)[:limit]


def boot_notification(version: OcppVersion, charge_point_id: str, payload: Mapping[str, Any]
                      ) -> Translation:
    """BootNotification -> ``charger`` properties + ``boot`` event."""
    cp = check_charge_point_id(charge_point_id)
    tr = Translation()
    if version is OcppVersion.V16:
        station: Mapping[str, Any] = {
            "vendorName": payload.get("chargePointVendor"),
            "model": payload.get("chargePointModel"),
            "serialNumber": payload.get("chargePointSerialNumber")
            or payload.get("chargeBoxSerialNumber"),
            "firmwareVersion": payload.get("firmwareVersion"),
            "modem": {"iccid": payload.get("iccid")},
        }
        reason = None
    else:
        station = payload.get("chargingStation") or {}
        reason = payload.get("reason")
    props: dict[str, Any] = {"protocol": version.src}
    for prop, key in (("vendor", "vendorName"), ("model", "model"),
                      ("serialNumber", "serialNumber"), ("firmwareVersion", "firmwareVersion")):
        if station.get(key):
            props[prop] = _text(station[key])
    modem = station.get("modem")
    if isinstance(modem, Mapping) and modem.get("iccid"):
        props["iccid"] = _text(modem["iccid"], 32)
    tr.prop("charger", cp, props)
    event: dict[str, Any] = {"protocol": version.src}
    if reason:
        event["reason"] = str(reason)
    event.update({k: props[k] for k in ("vendor", "model", "firmwareVersion") if k in props})
    tr.event("charger", cp, "boot", event)
    return tr


def registration_properties(status: str, interval_s: int) -> dict[str, Any]:
    """``charger`` properties after the gateway answered a BootNotification."""
    return {"registration": REGISTRATION[status], "heartbeatInterval": interval_s}


def heartbeat(charge_point_id: str, receive_ms: int) -> Translation:
    """Heartbeat -> ``charger.lastHeartbeat`` (the gateway's receive time: a heartbeat carries
    no device time)."""
    tr = Translation()
    tr.prop("charger", check_charge_point_id(charge_point_id), {"lastHeartbeat": receive_ms})
    return tr


def connector_status(version: OcppVersion, status: str, charging_state: str | None = None
                     ) -> str | None:
    """An OCPP connector status -> ``connector.status`` (None when not a known value)."""
    if version is OcppVersion.V16:
        return STATUS_16.get(status)
    if status == "Occupied" and charging_state in _OCCUPIED_BY_CHARGING_STATE:
        return _OCCUPIED_BY_CHARGING_STATE[charging_state]
    return STATUS_201.get(status)


def status_notification(version: OcppVersion, charge_point_id: str, payload: Mapping[str, Any],
                        *, charging_state: str | None = None) -> Translation:
    """StatusNotification -> ``connector`` status (+ ``fault`` event for a 1.6 errorCode).

    ``charging_state``: the 2.0.1 chargingState of the EVSE's running transaction, if any, so
    that ``Occupied`` during charging stays ``charging``.
    """
    cp = check_charge_point_id(charge_point_id)
    tr = Translation()
    ts = optional_timestamp_ms(payload.get("timestamp"))
    if version is OcppVersion.V16:
        number = int(payload["connectorId"])
        raw_status = str(payload["status"])
        error = str(payload.get("errorCode") or "NoError")
        if error != "NoError":
            description = " ".join(str(payload[k]) for k in ("info", "vendorErrorCode")
                                   if payload.get(k))
            fault: dict[str, Any] = {"code": error, "active": True}
            if description:
                fault["description"] = description
            target = ("charger", cp) if number == 0 else (
                "connector", connector_device_id(cp, number))
            tr.event(target[0], target[1], "fault", fault, ts=ts)
        if number == 0:
            return tr
        device = connector_device_id(cp, number)
        props: dict[str, Any] = {"errorCode": "" if error == "NoError" else error[:64]}
    else:
        number = int(payload["evseId"])
        raw_status = str(payload["connectorStatus"])
        device = evse_device_id(cp, number, int(payload["connectorId"]))
        props = {}
        if number == 0:
            return tr
    status = connector_status(version, raw_status, charging_state)
    if status is None:
        tr.flag("unknown_status", f"status {raw_status!r}", device)
        return tr
    props["status"] = status
    if status in _PLUGGED:
        props["plugged"] = _PLUGGED[status]
    tr.prop("connector", device, props, ts=ts)
    return tr


def meter_values(version: OcppVersion, charge_point_id: str, payload: Mapping[str, Any],
                 session: SessionState | None = None) -> tuple[Translation, SessionState | None]:
    """MeterValues -> properties of the connector (or of the station ``meter`` for connector /
    EVSE 0), one report per sample with its own time. A 1.6 MeterValues naming the open
    ``session``'s transactionId also makes a ``sessionUpdated`` (returned state is newer)."""
    cp = check_charge_point_id(charge_point_id)
    tr = Translation()
    number = int(payload["connectorId"] if version is OcppVersion.V16 else payload["evseId"])
    if number == 0:
        device = station_meter_id(cp)
        samples, problems = parse_meter_values(version, payload.get("meterValue"), device)
        tr.anomalies.extend(problems)
        for sample in samples:
            props, bad = in_range("meter", station_meter_properties(sample), device)
            tr.anomalies.extend(bad)
            tr.prop("meter", device, props, ts=sample.ts)
        return tr, session
    device = (connector_device_id(cp, number) if version is OcppVersion.V16
              else evse_device_id(cp, number))
    samples, problems = parse_meter_values(version, payload.get("meterValue"), device)
    tr.anomalies.extend(problems)
    for sample in samples:
        props, bad = in_range("connector", connector_properties(sample), device)
        tr.anomalies.extend(bad)
        tr.prop("connector", device, props, ts=sample.ts)
    transaction_id = payload.get("transactionId") if version is OcppVersion.V16 else None
    if session is not None and transaction_id is not None:
        if session.transaction_id != transaction_id:
            raise MappingError(f"MeterValues for transaction {transaction_id} given the state "
                               f"of {session.session_id}")
        session = session_meter_values(session, samples, tr)
    elif transaction_id is not None:
        tr.flag("unknown_transaction", f"MeterValues for transaction {transaction_id}", device)
    return tr, session


def authorize(version: OcppVersion, charge_point_id: str, payload: Mapping[str, Any]
              ) -> Translation:
    """Authorize -> ``charger.authorize`` event (waits for the cloud's reply)."""
    tr = Translation()
    if version is OcppVersion.V16:
        params = {"idTag": str(payload["idTag"]), "idType": "unknown"}
    else:
        value, kind = id_token(payload["idToken"])
        params = {"idTag": value, "idType": charger_id_type(kind)}
    tr.event("charger", check_charge_point_id(charge_point_id), "authorize", params,
             needs_reply=True)
    return tr


def _status_event(charge_point_id: str, name: str, payload: Mapping[str, Any]) -> Translation:
    tr = Translation()
    cp = check_charge_point_id(charge_point_id)
    params: dict[str, Any] = {"status": str(payload["status"])}
    if payload.get("requestId") is not None:
        params["requestId"] = int(payload["requestId"])
    tr.event("charger", cp, name, params)
    tr.prop("charger", cp, {name: params["status"][:64]})
    return tr


def firmware_status(charge_point_id: str, payload: Mapping[str, Any]) -> Translation:
    """FirmwareStatusNotification (and 1.6 SignedFirmwareStatusNotification) ->
    ``firmwareStatus`` event + property."""
    return _status_event(charge_point_id, "firmwareStatus", payload)


def diagnostics_status(charge_point_id: str, payload: Mapping[str, Any]) -> Translation:
    """1.6 DiagnosticsStatusNotification and LogStatusNotification (both versions) ->
    ``diagnosticsStatus`` event + property."""
    return _status_event(charge_point_id, "diagnosticsStatus", payload)


def security_event(charge_point_id: str, payload: Mapping[str, Any]) -> Translation:
    """SecurityEventNotification -> ``securityEvent``."""
    tr = Translation()
    params: dict[str, Any] = {"type": str(payload["type"])}
    if payload.get("techInfo"):
        params["techInfo"] = str(payload["techInfo"])
    when = optional_timestamp_ms(payload.get("timestamp"))
    if when is not None:
        params["time"] = when
    tr.event("charger", check_charge_point_id(charge_point_id), "securityEvent", params, ts=when)
    return tr


def notify_event(charge_point_id: str, payload: Mapping[str, Any]) -> Translation:
    """2.0.1 NotifyEvent -> ``notifyEvent {data}`` (the payload as is: the device model's
    events have no thing-model equivalent yet)."""
    tr = Translation()
    tr.event("charger", check_charge_point_id(charge_point_id), "notifyEvent",
             {"data": dict(payload)}, ts=optional_timestamp_ms(payload.get("generatedAt")))
    return tr


def data_transfer(charge_point_id: str, payload: Mapping[str, Any]) -> Translation:
    """DataTransfer from the charger -> ``dataTransfer`` event (non-string 2.0.1 data as JSON)."""
    tr = Translation()
    params: dict[str, Any] = {"vendorId": str(payload["vendorId"])}
    if payload.get("messageId") is not None:
        params["messageId"] = str(payload["messageId"])
    data = payload.get("data")
    if data is not None:
        params["data"] = data if isinstance(data, str) else json.dumps(
            data, default=str, separators=(",", ":"))
    tr.event("charger", check_charge_point_id(charge_point_id), "dataTransfer", params)
    return tr
