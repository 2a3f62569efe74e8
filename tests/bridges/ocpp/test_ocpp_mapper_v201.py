"""OCPP 2.0.1 frames -> thing-model messages; TransactionEvent -> the one session model."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from bridges.ocpp import (
    Call,
    ChargePointTranslator,
    MappingError,
    MessageKind,
    OcppVersion,
    Role,
    Translation,
    authorize_response,
    decode_frame,
    transaction_event_response,
)
from bridges.ocpp.sessions import transaction_event
from thingmodels import builtin_models

V201 = OcppVersion.V201
RTS = 1_709_287_200_000  # 2024-03-01T10:00:00Z
TX = "c5b7e1a4-62f0-4bd1-9d3e-8f1a2b3c4d5e"


def call(text: str) -> Call:
    frame = decode_frame(text, V201, receiver=Role.CSMS)
    assert isinstance(frame, Call)
    return frame


def valid(tr: Translation) -> Translation:
    models = builtin_models()
    for msg in tr.messages:
        if msg.kind is MessageKind.PROP:
            models[msg.product].validate_properties(msg.params)
        else:
            assert msg.name is not None
            models[msg.product].validate_event(msg.name, msg.params)
    return tr


def only_event(tr: Translation, name: str) -> Any:
    events = tr.events(name)
    assert len(events) == 1, tr.messages
    return events[0]


def props(tr: Translation, product: str = "connector") -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for msg in tr.props(product):
        merged.update(msg.params)
    return merged


def tx_event(event_type: str, seq: int, minute: int, *, wh: str | None = None,
             context: str = "Sample.Periodic", trigger: str = "MeterValuePeriodic",
             extra: str = "", info: str = '"chargingState":"Charging"',
             offline: bool = False) -> str:
    meter = ""
    if wh is not None:
        meter = (f',"meterValue":[{{"timestamp":"2024-03-01T10:{minute:02d}:00Z",'
                 f'"sampledValue":[{{"value":{wh},"context":"{context}",'
                 '"measurand":"Energy.Active.Import.Register","unitOfMeasure":{"unit":"Wh"}},'
                 '{"value":7.2,"measurand":"Power.Active.Import",'
                 '"unitOfMeasure":{"unit":"kW"}}]}]')
    return (f'[2,"te{seq}","TransactionEvent",{{"eventType":"{event_type}",'
            f'"timestamp":"2024-03-01T10:{minute:02d}:00Z","triggerReason":"{trigger}",'
            f'"seqNo":{seq},"offline":{json.dumps(offline)},'
            f'"transactionInfo":{{"transactionId":"{TX}",{info}}}{meter}{extra}}}]')


STARTED = tx_event("Started", 0, 0, wh="2500000", context="Transaction.Begin",
                   trigger="Authorized",
                   extra=',"evse":{"id":1,"connectorId":1},'
                         '"idToken":{"idToken":"04E1A2B3C4","type":"ISO14443"},'
                         '"reservationId":3')


@pytest.fixture
def cp() -> ChargePointTranslator:
    return ChargePointTranslator("CS-7", V201)


def test_boot_notification(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"b1","BootNotification",{"reason":"PowerUp",
      "chargingStation":{"model":"Wallbox22","vendorName":"VendorY","serialNumber":"WB-77",
      "firmwareVersion":"2.0.1-rc3","modem":{"iccid":"8986001","imsi":"460001"}}}]"""),
        receive_ms=RTS))
    assert props(tr, "charger") == {"protocol": "ocpp201", "vendor": "VendorY",
                                    "model": "Wallbox22", "serialNumber": "WB-77",
                                    "firmwareVersion": "2.0.1-rc3", "iccid": "8986001"}
    assert only_event(tr, "boot").params == {"protocol": "ocpp201", "reason": "PowerUp",
                                             "vendor": "VendorY", "model": "Wallbox22",
                                             "firmwareVersion": "2.0.1-rc3"}


@pytest.mark.parametrize(("status", "thing", "plugged"), [
    ("Available", "available", False), ("Occupied", "preparing", True),
    ("Reserved", "reserved", None), ("Unavailable", "unavailable", None),
    ("Faulted", "faulted", None),
])
def test_status_notification(cp: ChargePointTranslator, status: str, thing: str,
                             plugged: bool | None) -> None:
    tr = valid(cp.translate(call(f"""[2,"s","StatusNotification",{{"timestamp":
        "2024-03-01T10:00:00Z","connectorStatus":"{status}","evseId":2,"connectorId":1}}]"""),
        receive_ms=RTS))
    msg = tr.props("connector")[0]
    assert msg.device == "CS-7-2"
    expected: dict[str, Any] = {"status": thing}
    if plugged is not None:
        expected["plugged"] = plugged
    assert msg.params == expected


def test_second_connector_of_an_evse_has_its_own_device(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"s","StatusNotification",{"timestamp":
        "2024-03-01T10:00:00Z","connectorStatus":"Available","evseId":1,"connectorId":2}]"""),
        receive_ms=RTS))
    assert tr.props("connector")[0].device == "CS-7-1-2"


def test_occupied_while_charging_stays_charging(cp: ChargePointTranslator) -> None:
    cp.translate(call(STARTED), receive_ms=RTS)
    tr = valid(cp.translate(call("""[2,"s","StatusNotification",{"timestamp":
        "2024-03-01T10:00:01Z","connectorStatus":"Occupied","evseId":1,"connectorId":1}]"""),
        receive_ms=RTS))
    assert props(tr)["status"] == "charging"


def test_meter_values_multiplier_and_evse_zero(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"m","MeterValues",{"evseId":1,"meterValue":[
      {"timestamp":"2024-03-01T10:00:00Z","sampledValue":[
        {"value":1234.5678,"measurand":"Energy.Active.Import.Register",
         "unitOfMeasure":{"unit":"Wh","multiplier":3}},
        {"value":11,"measurand":"Power.Active.Import","unitOfMeasure":{"unit":"W","multiplier":3}},
        {"value":231.4,"measurand":"Voltage","unitOfMeasure":{"unit":"V"}},
        {"value":15.9,"measurand":"Current.Import","phase":"L1"},
        {"value":72,"measurand":"SoC","location":"EV","unitOfMeasure":{"unit":"Percent"}}]}]}]"""),
        receive_ms=RTS))
    msg = tr.props("connector")[0]
    assert msg.device == "CS-7-1"
    assert msg.params == {"meterEnergy": Decimal("1234.5678"), "power": 11.0, "voltage": 231.4,
                          "current": 15.9, "soc": 72.0}
    tr = valid(cp.translate(call("""[2,"m0","MeterValues",{"evseId":0,"meterValue":[
      {"timestamp":"2024-03-01T10:00:00Z","sampledValue":[{"value":5550000},
       {"value":49.98,"measurand":"Frequency"}]}]}]"""), receive_ms=RTS))
    msg = tr.props("meter")[0]
    assert msg.device == "CS-7-0"
    assert msg.params == {"energyImport": Decimal("5550.000"), "frequency": 49.98}


def test_transaction_lifecycle(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call(STARTED), receive_ms=RTS))
    started = only_event(tr, "sessionStarted")
    assert started.device == "CS-7-1" and started.ts == RTS
    assert started.params == {"sessionId": TX, "seq": 0, "reason": "Authorized",
                              "idTag": "04E1A2B3C4", "idType": "card",
                              "meterStart": Decimal("2500.000"), "reservationId": 3}
    assert props(tr)["status"] == "charging"
    assert transaction_event_response({"accepted": True}) == {
        "idTokenInfo": {"status": "Accepted"}}

    tr = valid(cp.translate(call(tx_event("Updated", 1, 15, wh="2503600")), receive_ms=RTS))
    update = only_event(tr, "sessionUpdated")
    assert update.params == {"sessionId": TX, "seq": 1, "meter": Decimal("2503.600"),
                             "energy": Decimal("3.600"), "power": 7.2,
                             "chargingState": "Charging"}
    assert update.ts == RTS + 15 * 60_000

    tr = valid(cp.translate(call(tx_event(
        "Updated", 2, 20, trigger="ChargingStateChanged",
        info='"chargingState":"SuspendedEV"')), receive_ms=RTS))
    assert only_event(tr, "sessionUpdated").params == {
        "sessionId": TX, "seq": 2, "chargingState": "SuspendedEV"}
    assert props(tr)["status"] == "suspended"

    tr = valid(cp.translate(call(tx_event(
        "Ended", 3, 30, wh="2507250", context="Transaction.End", trigger="EVDeparted",
        info='"chargingState":"Idle","stoppedReason":"EVDisconnected"')), receive_ms=RTS))
    ended = only_event(tr, "sessionEnded")
    assert ended.params == {
        "sessionId": TX, "seq": 3, "reason": "EVDisconnected", "energy": Decimal("7.250"),
        "meterStart": Decimal("2500.000"), "meterStop": Decimal("2507.250"),
        "idTag": "04E1A2B3C4", "startedAt": RTS, "endedAt": RTS + 30 * 60_000}
    assert ended.once_key == f"ocpp:CS-7-1:{TX}:sessionEnded:3"
    assert not tr.anomalies
    assert props(tr)["sessionId"] == ""


def test_offline_replay_in_order_with_seq_numbers(cp: ChargePointTranslator) -> None:
    """A station offline for the whole session replays its queued events on reconnect."""
    frames = [
        tx_event("Started", 0, 0, wh="100000", context="Transaction.Begin",
                 trigger="Authorized", offline=True,
                 extra=',"evse":{"id":2},"idToken":{"idToken":"KEY-991","type":"KeyCode"}'),
        tx_event("Updated", 1, 10, wh="101500", offline=True),
        tx_event("Updated", 2, 20, wh="103000", offline=True),
        tx_event("Ended", 3, 25, wh="103900", context="Transaction.End", offline=True,
                 trigger="StopAuthorized", info='"stoppedReason":"Local"'),
    ]
    receive = RTS + 3_600_000  # replayed an hour later
    out = [valid(cp.translate(call(f), receive_ms=receive)) for f in frames]
    started = only_event(out[0], "sessionStarted")
    assert started.params["offline"] is True and started.params["idType"] == "unknown"
    assert started.device == "CS-7-2"
    assert [only_event(t, "sessionUpdated").params["seq"] for t in out[1:3]] == [1, 2]
    ended = only_event(out[3], "sessionEnded")
    assert ended.params["energy"] == Decimal("3.900")
    assert ended.params["seq"] == 3
    # replayed events keep the station's times, and raise no skew alarm
    assert started.ts == RTS and ended.ts == RTS + 25 * 60_000
    assert not any(t.events("clockSkew") for t in out)
    assert not any(t.anomalies for t in out)


def test_gaps_disorder_and_duplicate_end(cp: ChargePointTranslator) -> None:
    cp.translate(call(STARTED), receive_ms=RTS)
    tr = cp.translate(call(tx_event("Updated", 3, 10, wh="2501000")), receive_ms=RTS)
    assert [a.code for a in tr.anomalies] == ["seq_gap"]
    tr = cp.translate(call(tx_event("Updated", 2, 9, wh="2500900")), receive_ms=RTS)
    assert [a.code for a in tr.anomalies] == ["seq_out_of_order"]
    assert only_event(tr, "sessionUpdated").params["seq"] == 2  # emitted; ordered downstream
    end = call(tx_event("Ended", 4, 30, wh="2502000", context="Transaction.End",
                        info='"stoppedReason":"Remote"'))
    first = only_event(valid(cp.translate(end, receive_ms=RTS)), "sessionEnded")
    again = valid(cp.translate(end, receive_ms=RTS))
    assert only_event(again, "sessionEnded").params == first.params
    assert [a.code for a in again.anomalies] == ["duplicate_stop"]


def test_ended_without_started(cp: ChargePointTranslator) -> None:
    text = tx_event("Ended", 5, 30, wh="2507250", context="Transaction.End",
                    info='"stoppedReason":"PowerLoss"', extra=',"evse":{"id":1}')
    tr = valid(cp.translate(call(text), receive_ms=RTS))
    ended = only_event(tr, "sessionEnded")
    assert ended.params["meterStop"] == Decimal("2507.250")
    assert "energy" not in ended.params
    assert [a.code for a in tr.anomalies] == ["missing_started"]
    with pytest.raises(MappingError):  # no EVSE and no state: no device to put it on
        ChargePointTranslator("CS-7", V201).translate(
            call(tx_event("Updated", 1, 1, wh="1")), receive_ms=RTS)


def test_offline_zero_begin_value_is_repaired() -> None:
    """CitrineOS #1060: an offline Transaction.Begin of 0 billed 910 kWh instead of 0.083."""
    cp = ChargePointTranslator("CS-7", V201, max_power_kw=Decimal(22))
    cp.translate(call(tx_event("Started", 0, 0, wh="0", context="Transaction.Begin",
                               offline=True, extra=',"evse":{"id":1}')), receive_ms=RTS)
    cp.translate(call(tx_event("Updated", 1, 1, wh="910000", offline=True)), receive_ms=RTS)
    tr = valid(cp.translate(call(tx_event(
        "Ended", 2, 10, wh="910083", context="Transaction.End", offline=True,
        info='"stoppedReason":"Local"')), receive_ms=RTS))
    ended = only_event(tr, "sessionEnded")
    assert ended.params["energy"] == Decimal("0.083")
    assert {a.code for a in tr.anomalies} == {"implausible_energy", "baseline_repaired"}


def test_started_without_begin_value_uses_first_register() -> None:
    state, tr = transaction_event("CS-7", call(tx_event(
        "Started", 0, 0, extra=',"evse":{"id":1}')).payload, None)
    assert "meterStart" not in only_event(tr, "sessionStarted").params
    state, tr = transaction_event("CS-7", call(tx_event("Updated", 1, 5, wh="40000")).payload,
                                  state)
    state, tr = transaction_event("CS-7", call(tx_event(
        "Ended", 2, 9, wh="41000", context="Transaction.End",
        info='"stoppedReason":"Local"')).payload, state)
    ended = only_event(tr, "sessionEnded")
    assert ended.params["energy"] == Decimal("1.000")
    assert [a.code for a in tr.anomalies] == ["no_meter_start"]


def test_live_event_with_skewed_clock_raises_skew_event(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call(STARTED), receive_ms=RTS + 120_000))
    assert only_event(tr, "clockSkew").params == {"skew": -120.0, "deviceTime": RTS}


def test_authorize_id_token_types(cp: ChargePointTranslator) -> None:
    for kind, thing in [("ISO14443", "iso14443"), ("eMAID", "emaid"), ("Central", "central"),
                        ("MacAddress", "mac"), ("NoAuthorization", "unknown")]:
        tr = valid(cp.translate(call(f'[2,"a","Authorize",{{"idToken":{{"idToken":"X1",'
                                     f'"type":"{kind}"}}}}]'), receive_ms=RTS))
        assert only_event(tr, "authorize").params == {"idTag": "X1", "idType": thing}
    assert authorize_response(V201, {"accepted": False, "status": "NoCredit"}) == {
        "idTokenInfo": {"status": "NoCredit"}}


def test_notify_event_security_log_firmware(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"n","NotifyEvent",{"generatedAt":"2024-03-01T10:00:00Z",
      "seqNo":0,"eventData":[{"eventId":1,"timestamp":"2024-03-01T10:00:00Z","trigger":"Alerting",
      "actualValue":"true","eventNotificationType":"HardWiredMonitor",
      "component":{"name":"Connector","evse":{"id":1,"connectorId":1}},
      "variable":{"name":"Problem"}}]}]"""), receive_ms=RTS))
    event = only_event(tr, "notifyEvent")
    assert event.params["data"]["eventData"][0]["variable"] == {"name": "Problem"}
    assert event.ts == RTS
    tr = valid(cp.translate(call('[2,"l","LogStatusNotification",{"status":"Uploaded",'
                                 '"requestId":9}]'), receive_ms=RTS))
    assert only_event(tr, "diagnosticsStatus").params == {"status": "Uploaded", "requestId": 9}
    tr = valid(cp.translate(call('[2,"f","FirmwareStatusNotification",{"status":"Installed",'
                                 '"requestId":3}]'), receive_ms=RTS))
    assert only_event(tr, "firmwareStatus").params == {"status": "Installed", "requestId": 3}
    tr = valid(cp.translate(call('[2,"s","SecurityEventNotification",{"type":"TamperDetectionActivated",'
                                 '"timestamp":"2024-03-01T10:00:00Z"}]'), receive_ms=RTS))
    assert only_event(tr, "securityEvent").params == {"type": "TamperDetectionActivated",
                                                      "time": RTS}
    tr = valid(cp.translate(call('[2,"d","DataTransfer",{"vendorId":"org.x","data":'
                                 '{"temp":41.5,"ok":true}}]'), receive_ms=RTS))
    assert only_event(tr, "dataTransfer").params == {"vendorId": "org.x",
                                                      "data": '{"temp":"41.5","ok":true}'}
