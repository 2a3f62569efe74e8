"""Thing-model services -> OCPP calls per version, and answers -> service outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridges.ocpp import (
    ACTIONS,
    CSMS_INITIATED,
    SERVICE_ACTIONS,
    OcppVersion,
    Role,
    ServiceError,
    UnsupportedService,
    decode_frame,
    encode_call,
    service_output,
    service_request,
)
from thingmodels import builtin_models

V16 = OcppVersion.V16
V201 = OcppVersion.V201
NOW = 1_709_287_200_000  # 2024-03-01T10:00:00Z
CP = "CP-1"


def req(version: OcppVersion, product: str, service: str, params: dict[str, Any],
        device: str | None = None, **kw: Any) -> tuple[str, dict[str, Any]]:
    builtin_models()[product].validate_input(service, params)
    out = service_request(version, product, service, params, charge_point_id=CP,
                          device=device or (CP if product == "charger" else f"{CP}-1"), **kw)
    # what goes on the wire decodes as a valid CALL at the charge point
    frame = decode_frame(encode_call("1", out.action, out.payload), version,
                         receiver=Role.CHARGE_POINT)
    assert frame.message_type_id == 2
    return out.action, out.payload


def output(version: OcppVersion, product: str, service: str, payload: str) -> dict[str, Any]:
    out = service_output(version, product, service, json.loads(payload))
    return builtin_models()[product].validate_output(service, out)


def test_every_service_maps_to_an_action_of_each_version() -> None:
    for name, per_version in SERVICE_ACTIONS.items():
        product, service = name.split(".")
        builtin_models()[product].service(service)  # the service exists in the thing model
        for version, action in per_version.items():
            assert action in ACTIONS[version] and action in CSMS_INITIATED[version]


def test_remote_start() -> None:
    assert req(V16, "connector", "remoteStart", {"idTag": "TAG1"}) == (
        "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"})
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Relative", "chargingSchedule": {
                   "chargingRateUnit": "A", "chargingSchedulePeriod": [
                       {"startPeriod": 0, "limit": 16}]}}
    _, payload = req(V16, "connector", "remoteStart",
                          {"idTag": "TAG1", "chargingProfile": profile}, device="CP-1-2")
    assert payload["connectorId"] == 2 and payload["chargingProfile"] == profile
    assert req(V201, "connector", "remoteStart", {"idTag": "TAG1"}, request_id=77) == (
        "RequestStartTransaction", {"idToken": {"idToken": "TAG1", "type": "Central"},
                                    "remoteStartId": 77, "evseId": 1})
    _, payload = req(V201, "connector", "remoteStart", {"idTag": "04AB"}, request_id=1,
                     id_token_type="card")
    assert payload["idToken"]["type"] == "ISO14443"
    with pytest.raises(ServiceError, match="request_id"):
        req(V201, "connector", "remoteStart", {"idTag": "TAG1"})
    assert output(V16, "connector", "remoteStart", '{"status":"Accepted"}') == {"accepted": True}
    assert output(V16, "connector", "remoteStart", '{"status":"Rejected"}') == {
        "accepted": False, "reason": "Rejected"}
    assert output(V201, "connector", "remoteStart",
                  '{"status":"Accepted","transactionId":"tx-9"}') == {
        "accepted": True, "sessionId": "tx-9"}
    assert output(V201, "connector", "remoteStart",
                  '{"status":"Rejected","statusInfo":{"reasonCode":"Occupied",'
                  '"additionalInfo":"EV plugged"}}') == {
        "accepted": False, "reason": "Rejected: Occupied (EV plugged)"}


def test_remote_stop() -> None:
    assert req(V16, "connector", "remoteStop", {"sessionId": "5001"}) == (
        "RemoteStopTransaction", {"transactionId": 5001})
    assert req(V16, "connector", "remoteStop", {}, session_id="12") == (
        "RemoteStopTransaction", {"transactionId": 12})
    assert req(V201, "connector", "remoteStop", {"sessionId": "tx-9"}) == (
        "RequestStopTransaction", {"transactionId": "tx-9"})
    with pytest.raises(ServiceError):
        req(V16, "connector", "remoteStop", {"sessionId": "tx-9"})
    with pytest.raises(ServiceError):
        req(V16, "connector", "remoteStop", {})
    assert output(V201, "connector", "remoteStop", '{"status":"Accepted"}') == {"accepted": True}


def test_connector_operations() -> None:
    assert req(V16, "connector", "unlock", {}) == ("UnlockConnector", {"connectorId": 1})
    assert req(V201, "connector", "unlock", {}, device="CP-1-2-2") == (
        "UnlockConnector", {"evseId": 2, "connectorId": 2})
    assert output(V16, "connector", "unlock", '{"status":"Unlocked"}') == {"accepted": True}
    assert output(V201, "connector", "unlock", '{"status":"OngoingAuthorizedTransaction"}') == {
        "accepted": False, "reason": "OngoingAuthorizedTransaction"}

    assert req(V16, "connector", "changeAvailability", {"available": False}) == (
        "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert req(V201, "connector", "changeAvailability", {"available": True}) == (
        "ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}})
    assert output(V16, "connector", "changeAvailability", '{"status":"Scheduled"}') == {
        "accepted": True, "scheduled": True}

    params = {"reservationId": 9, "idTag": "TAG1", "expiresAt": NOW}
    assert req(V16, "connector", "reserveNow", params) == (
        "ReserveNow", {"connectorId": 1, "expiryDate": "2024-03-01T10:00:00.000Z",
                       "idTag": "TAG1", "reservationId": 9})
    assert req(V201, "connector", "reserveNow", params) == (
        "ReserveNow", {"id": 9, "expiryDateTime": "2024-03-01T10:00:00.000Z",
                       "idToken": {"idToken": "TAG1", "type": "Central"}, "evseId": 1})
    assert output(V16, "connector", "reserveNow", '{"status":"Occupied"}') == {
        "accepted": False, "reason": "Occupied"}
    assert req(V16, "connector", "cancelReservation", {"reservationId": 9}) == (
        "CancelReservation", {"reservationId": 9})
    assert output(V201, "connector", "cancelReservation", '{"status":"Accepted"}') == {
        "accepted": True}
    assert req(V201, "connector", "readRealtime", {}) == (
        "TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}})


def test_charging_profiles() -> None:
    p16 = {"chargingProfileId": 3, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
           "chargingProfileKind": "Absolute", "chargingSchedule": {
               "chargingRateUnit": "W", "chargingSchedulePeriod": [
                   {"startPeriod": 0, "limit": 7400.0}]}}
    assert req(V16, "connector", "setChargingProfile", {"profile": p16}) == (
        "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": p16})
    p201 = {"id": 3, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": [{
                "id": 1, "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0}]}]}
    assert req(V201, "connector", "setChargingProfile", {"profile": p201}) == (
        "SetChargingProfile", {"evseId": 1, "chargingProfile": p201})
    with pytest.raises(ServiceError, match="schema"):
        req(V201, "connector", "setChargingProfile", {"profile": p16})
    assert req(V16, "connector", "clearChargingProfile", {"profileId": 3}) == (
        "ClearChargingProfile", {"id": 3})
    assert req(V16, "connector", "clearChargingProfile", {}) == (
        "ClearChargingProfile", {"connectorId": 1})
    assert req(V201, "connector", "clearChargingProfile", {}) == (
        "ClearChargingProfile", {"chargingProfileCriteria": {"evseId": 1}})
    assert output(V201, "connector", "clearChargingProfile", '{"status":"Unknown"}') == {
        "accepted": False}
    assert output(V16, "connector", "setChargingProfile", '{"status":"NotSupported"}') == {
        "accepted": False, "reason": "NotSupported"}


def test_reset() -> None:
    assert req(V16, "charger", "reset", {"type": "hard"}) == ("Reset", {"type": "Hard"})
    assert req(V16, "charger", "reset", {"type": "on_idle"}) == ("Reset", {"type": "Soft"})
    assert req(V201, "charger", "reset", {"type": "soft"}) == ("Reset", {"type": "OnIdle"})
    assert req(V201, "charger", "reset", {"type": "immediate"}) == (
        "Reset", {"type": "Immediate"})
    assert output(V201, "charger", "reset", '{"status":"Scheduled"}') == {
        "accepted": True, "status": "Scheduled"}


def test_firmware_and_diagnostics() -> None:
    params = {"location": "https://fw.example/1.5.bin", "retries": 3}
    assert req(V16, "charger", "updateFirmware", params, now_ms=NOW) == (
        "UpdateFirmware", {"location": "https://fw.example/1.5.bin",
                           "retrieveDate": "2024-03-01T10:00:00.000Z", "retries": 3})
    assert req(V201, "charger", "updateFirmware", {**params, "retrieveAt": NOW + 1000},
               request_id=5) == (
        "UpdateFirmware", {"requestId": 5, "retries": 3, "firmware": {
            "location": "https://fw.example/1.5.bin",
            "retrieveDateTime": "2024-03-01T10:00:01.000Z"}})
    with pytest.raises(ServiceError, match="retrieveAt"):
        req(V16, "charger", "updateFirmware", params)
    assert output(V16, "charger", "updateFirmware", "{}") == {"accepted": True}
    assert output(V201, "charger", "updateFirmware", '{"status":"InvalidCertificate"}') == {
        "accepted": False, "status": "InvalidCertificate"}

    params = {"location": "ftp://logs.example/", "start": NOW - 3_600_000, "stop": NOW}
    assert req(V16, "charger", "getDiagnostics", params) == (
        "GetDiagnostics", {"location": "ftp://logs.example/",
                           "startTime": "2024-03-01T09:00:00.000Z",
                           "stopTime": "2024-03-01T10:00:00.000Z"})
    assert req(V201, "charger", "getDiagnostics", params, request_id=8) == (
        "GetLog", {"logType": "DiagnosticsLog", "requestId": 8, "log": {
            "remoteLocation": "ftp://logs.example/", "oldestTimestamp": "2024-03-01T09:00:00.000Z",
            "latestTimestamp": "2024-03-01T10:00:00.000Z"}})
    assert output(V16, "charger", "getDiagnostics", '{"fileName":"diag.zip"}') == {
        "accepted": True, "fileName": "diag.zip"}
    assert output(V201, "charger", "getDiagnostics",
                  '{"status":"Accepted","filename":"log.tgz"}') == {
        "accepted": True, "fileName": "log.tgz"}


def test_configuration() -> None:
    assert req(V16, "charger", "setConfiguration", {"key": "HeartbeatInterval",
                                                     "value": "120"}) == (
        "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"})
    expected = ("SetVariables", {"setVariableData": [{
        "attributeValue": "120", "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "HeartbeatInterval"}}]})
    assert req(V201, "charger", "setConfiguration", {"key": "HeartbeatInterval",
                                                      "value": "120",
                                                      "component": "OCPPCommCtrlr"}) == expected
    assert req(V201, "charger", "setConfiguration", {
        "key": "OCPPCommCtrlr.HeartbeatInterval", "value": "120"}) == expected
    with pytest.raises(ServiceError, match="component"):
        req(V201, "charger", "setConfiguration", {"key": "HeartbeatInterval", "value": "1"})
    assert output(V16, "charger", "setConfiguration", '{"status":"RebootRequired"}') == {
        "accepted": True, "status": "RebootRequired"}
    assert output(V201, "charger", "setConfiguration",
                  '{"setVariableResult":[{"attributeStatus":"UnknownVariable",'
                  '"component":{"name":"X"},"variable":{"name":"Y"}}]}') == {
        "accepted": False, "status": "UnknownVariable"}

    assert req(V16, "charger", "getConfiguration", {}) == ("GetConfiguration", {})
    assert req(V16, "charger", "getConfiguration", {"keys": [{"key": "HeartbeatInterval"}]}) \
        == ("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert req(V201, "charger", "getConfiguration", {"keys": [
        {"key": "HeartbeatInterval", "component": "OCPPCommCtrlr"}]}) == (
        "GetVariables", {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                              "variable": {"name": "HeartbeatInterval"}}]})
    with pytest.raises(ServiceError, match="GetBaseReport"):
        req(V201, "charger", "getConfiguration", {})
    assert output(V16, "charger", "getConfiguration",
                  '{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,'
                  '"value":"60"}],"unknownKey":["Nope"]}') == {
        "values": {"HeartbeatInterval": "60", "Nope": None}}
    assert output(V201, "charger", "getConfiguration",
                  '{"getVariableResult":[{"attributeStatus":"Accepted","attributeValue":"60",'
                  '"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}},'
                  '{"attributeStatus":"UnknownComponent","component":{"name":"X"},'
                  '"variable":{"name":"Y"}}]}') == {
        "values": {"OCPPCommCtrlr.HeartbeatInterval": "60", "X.Y": None}}


def test_trigger_local_list_data_transfer() -> None:
    assert req(V16, "charger", "triggerMessage", {"message": "status", "connector": 2}) == (
        "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 2})
    assert req(V201, "charger", "triggerMessage", {"message": "status", "connector": 2}) == (
        "TriggerMessage", {"requestedMessage": "StatusNotification",
                           "evse": {"id": 2, "connectorId": 1}})
    assert req(V201, "charger", "triggerMessage", {"message": "diagnosticsStatus"}) == (
        "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
    assert req(V16, "charger", "triggerMessage", {"message": "Heartbeat"}) == (
        "TriggerMessage", {"requestedMessage": "Heartbeat"})
    with pytest.raises(ServiceError, match="schema"):
        req(V16, "charger", "triggerMessage", {"message": "TransactionEvent"})
    assert output(V16, "charger", "triggerMessage", '{"status":"NotImplemented"}') == {
        "accepted": False, "status": "NotImplemented"}

    entries = [{"idTag": "A1", "status": "accepted", "expiresAt": NOW},
               {"idTag": "B2", "status": "Blocked"}, {"idTag": "C3", "status": "deleted"}]
    assert req(V16, "charger", "sendLocalList", {"version": 4, "full": False,
                                                  "entries": entries}) == (
        "SendLocalList", {"listVersion": 4, "updateType": "Differential",
                          "localAuthorizationList": [
                              {"idTag": "A1", "idTagInfo": {
                                  "status": "Accepted", "expiryDate": "2024-03-01T10:00:00.000Z"}},
                              {"idTag": "B2", "idTagInfo": {"status": "Blocked"}},
                              {"idTag": "C3"}]})
    _, payload = req(V201, "charger", "sendLocalList", {"version": 5, "full": True,
                                                              "entries": entries})
    assert payload["versionNumber"] == 5 and payload["updateType"] == "Full"
    assert [e["idToken"] for e in payload["localAuthorizationList"]] == [
        {"idToken": "A1", "type": "ISO14443"}, {"idToken": "B2", "type": "ISO14443"}]
    assert output(V16, "charger", "sendLocalList", '{"status":"VersionMismatch"}') == {
        "accepted": False, "status": "VersionMismatch"}

    assert req(V16, "charger", "dataTransfer", {"vendorId": "com.x", "messageId": "m",
                                                 "data": "d"}) == (
        "DataTransfer", {"vendorId": "com.x", "messageId": "m", "data": "d"})
    assert output(V201, "charger", "dataTransfer", '{"status":"Accepted","data":{"a":1}}') == {
        "status": "Accepted", "data": '{"a": 1}'}


def test_unsupported_and_bad_devices() -> None:
    with pytest.raises(UnsupportedService):
        req(V16, "charger", "setTariff", {"tiers": [], "slots": []})
    with pytest.raises(UnsupportedService):
        service_output(V16, "charger", "syncTime", {})
    with pytest.raises(ServiceError, match="not a device"):
        service_request(V16, "connector", "unlock", {}, charge_point_id=CP, device="CP-2-1")
    with pytest.raises(ServiceError):
        service_request(V16, "connector", "unlock", {}, charge_point_id=CP, device="CP-1-1-2")
    with pytest.raises(ServiceError, match="charger services"):
        service_request(V16, "charger", "reset", {"type": "soft"}, charge_point_id=CP,
                        device="CP-1-1")
