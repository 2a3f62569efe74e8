"""OCPP 1.6J frames -> thing-model messages (real frames as the wire carries them)."""

from __future__ import annotations

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
    SessionState,
    Translation,
    authorize_response,
    boot_response,
    decode_frame,
    start_transaction_key,
    start_transaction_response,
)
from bridges.ocpp.translator import KEEP_ENDED
from thingmodels import builtin_models

V16 = OcppVersion.V16
RTS = 1_709_287_200_000  # 2024-03-01T10:00:00Z


def call(text: str) -> Call:
    frame = decode_frame(text, V16, receiver=Role.CSMS)
    assert isinstance(frame, Call)
    return frame


def valid(tr: Translation) -> Translation:
    """Every message must pass the thing model, strictly."""
    models = builtin_models()
    for msg in tr.messages:
        if msg.kind is MessageKind.PROP:
            models[msg.product].validate_properties(msg.params)
        else:
            assert msg.name is not None
            models[msg.product].validate_event(msg.name, msg.params)
    return tr


def props(tr: Translation, product: str = "connector") -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for msg in tr.props(product):
        merged.update(msg.params)
    return merged


def only_event(tr: Translation, name: str) -> Any:
    events = tr.events(name)
    assert len(events) == 1, tr.messages
    return events[0]


@pytest.fixture
def cp() -> ChargePointTranslator:
    return ChargePointTranslator("CP-042", V16)


def test_boot_notification(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"19223201","BootNotification",{
        "chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger",
        "chargeBoxSerialNumber":"CB-991","firmwareVersion":"1.4.2","iccid":"8986011234567890123",
        "meterType":"DZG","meterSerialNumber":"M-1"}]"""), receive_ms=RTS))
    assert props(tr, "charger") == {
        "protocol": "ocpp16", "vendor": "VendorX", "model": "SingleSocketCharger",
        "serialNumber": "CB-991", "firmwareVersion": "1.4.2", "iccid": "8986011234567890123"}
    boot = only_event(tr, "boot")
    assert boot.device == "CP-042"
    assert boot.params == {"protocol": "ocpp16", "vendor": "VendorX",
                           "model": "SingleSocketCharger", "firmwareVersion": "1.4.2"}
    answer = boot_response("Accepted", RTS, 300)
    assert answer == {"status": "Accepted", "currentTime": "2024-03-01T10:00:00.000Z",
                      "interval": 300}


@pytest.mark.parametrize(("status", "thing", "plugged"), [
    ("Available", "available", False), ("Preparing", "preparing", True),
    ("Charging", "charging", True), ("SuspendedEV", "suspended", True),
    ("SuspendedEVSE", "suspended", True), ("Finishing", "finishing", True),
    ("Reserved", "reserved", None), ("Unavailable", "unavailable", None),
    ("Faulted", "faulted", None),
])
def test_status_notification(cp: ChargePointTranslator, status: str, thing: str,
                             plugged: bool | None) -> None:
    tr = valid(cp.translate(call(f"""[2,"s1","StatusNotification",{{"connectorId":2,
        "errorCode":"NoError","status":"{status}","timestamp":"2024-03-01T09:59:58Z"}}]"""),
        receive_ms=RTS))
    msg = tr.props("connector")[0]
    assert msg.device == "CP-042-2"
    assert msg.ts == RTS - 2000
    expected: dict[str, Any] = {"status": thing, "errorCode": ""}
    if plugged is not None:
        expected["plugged"] = plugged
    assert msg.params == expected
    assert props(tr, "charger") == {"clockSkew": -2.0}
    assert not tr.events("clockSkew")  # behind: may be an old status time


def test_status_fault_and_connector_zero(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"s2","StatusNotification",{"connectorId":1,
        "errorCode":"GroundFailure","status":"Faulted","info":"RCD tripped",
        "vendorErrorCode":"E42"}]"""), receive_ms=RTS))
    assert props(tr)["errorCode"] == "GroundFailure"
    fault = only_event(tr, "fault")
    assert (fault.product, fault.device) == ("connector", "CP-042-1")
    assert fault.params == {"code": "GroundFailure", "description": "RCD tripped E42",
                            "active": True}
    tr = valid(cp.translate(call("""[2,"s3","StatusNotification",{"connectorId":0,
        "errorCode":"PowerMeterFailure","status":"Faulted"}]"""), receive_ms=RTS))
    assert not tr.props("connector")
    assert only_event(tr, "fault").device == "CP-042"


def test_status_clock_ahead_raises_skew_event(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"s4","StatusNotification",{"connectorId":1,
        "errorCode":"NoError","status":"Available","timestamp":"2024-03-01T10:05:00Z"}]"""),
        receive_ms=RTS))
    assert only_event(tr, "clockSkew").params == {"skew": 300.0, "deviceTime": RTS + 300_000}


def test_meter_values_wh_phases_and_multiple_samples(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"mv1","MeterValues",{"connectorId":1,"meterValue":[
      {"timestamp":"2024-03-01T10:00:00Z","sampledValue":[
        {"value":"1234567","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register",
         "location":"Outlet","unit":"Wh"},
        {"value":"7360","measurand":"Power.Active.Import","unit":"W"},
        {"value":"229.5","measurand":"Voltage","phase":"L1-N","unit":"V"},
        {"value":"231.1","measurand":"Voltage","phase":"L2-N","unit":"V"},
        {"value":"230.3","measurand":"Voltage","phase":"L3-N","unit":"V"},
        {"value":"10.6","measurand":"Current.Import","phase":"L1","unit":"A"},
        {"value":"10.9","measurand":"Current.Import","phase":"L2","unit":"A"},
        {"value":"10.4","measurand":"Current.Import","phase":"L3","unit":"A"},
        {"value":"0.2","measurand":"Current.Import","phase":"N","unit":"A"},
        {"value":"16","measurand":"Current.Offered","unit":"A"},
        {"value":"57","measurand":"SoC","location":"EV","unit":"Percent"},
        {"value":"31.5","measurand":"Temperature","location":"Cable","unit":"Celsius"}]},
      {"timestamp":"2024-03-01T10:01:00Z","sampledValue":[{"value":"1234690"}]}]}]"""),
        receive_ms=RTS))
    first, second = tr.props("connector")
    assert first.ts == RTS and second.ts == RTS + 60_000
    assert first.params == {
        "meterEnergy": Decimal("1234.567"), "power": 7.36,
        "voltage": pytest.approx(230.3), "current": 10.9, "maxCurrentOffered": 16.0,
        "soc": 57.0, "gunTemperature": 31.5}
    # a bare value is the default measurand in the default unit (Wh register)
    assert second.params == {"meterEnergy": Decimal("1234.690")}
    assert isinstance(first.params["meterEnergy"], Decimal)


def test_meter_values_kwh_and_phase_power_sum(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"mv2","MeterValues",{"connectorId":3,"meterValue":[
      {"timestamp":"2024-03-01T10:00:00.250+08:00","sampledValue":[
        {"value":"1234.5678","measurand":"Energy.Active.Import.Register","unit":"kWh"},
        {"value":"3.6","measurand":"Power.Active.Import","phase":"L1","unit":"kW"},
        {"value":"3.7","measurand":"Power.Active.Import","phase":"L2","unit":"kW"},
        {"value":"3.5","measurand":"Power.Active.Import","phase":"L3","unit":"kW"},
        {"value":"400.2","measurand":"Voltage","phase":"L1-L2","unit":"V"},
        {"value":"QUJD","format":"SignedData","measurand":"Energy.Active.Import.Register"}
      ]}]}]"""), receive_ms=RTS))
    msg = tr.props("connector")[0]
    assert msg.device == "CP-042-3"
    assert msg.ts == RTS - 8 * 3_600_000 + 250
    assert msg.params["meterEnergy"] == Decimal("1234.5678")
    assert msg.params["power"] == pytest.approx(10.8)
    assert msg.params["voltage"] == pytest.approx(400.2)
    assert not tr.anomalies


def test_meter_values_bad_values_are_flagged_not_fatal(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"mv3","MeterValues",{"connectorId":1,"meterValue":[
      {"timestamp":"1970-01-01T00:00:12Z","sampledValue":[
        {"value":"n/a","measurand":"Voltage","unit":"V"},
        {"value":"9999","measurand":"Voltage","unit":"V"},
        {"value":"12.5","measurand":"Current.Import","unit":"A"}]}]}]"""), receive_ms=RTS))
    msg = tr.props("connector")[0]
    assert msg.params == {"current": 12.5}
    assert msg.ts is None  # a 1970 clock is not a time
    codes = sorted(a.code for a in tr.anomalies)
    assert codes == ["bad_sampled_value", "bad_timestamp", "out_of_range"]


def test_meter_values_connector_zero_is_the_station_meter(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call("""[2,"mv4","MeterValues",{"connectorId":0,"meterValue":[
      {"timestamp":"2024-03-01T10:00:00Z","sampledValue":[
        {"value":"98765432","measurand":"Energy.Active.Import.Register","unit":"Wh"},
        {"value":"230.1","measurand":"Voltage","phase":"L1-N","unit":"V"},
        {"value":"12","measurand":"Current.Import","phase":"L2","unit":"A"}]}]}]"""),
        receive_ms=RTS))
    msg = tr.props("meter")[0]
    assert msg.device == "CP-042-0"
    assert msg.params == {"energyImport": Decimal("98765.432"), "voltageL1": 230.1,
                          "currentL2": 12.0}


def _start(cp: ChargePointTranslator, transaction_id: int = 5001) -> Translation:
    text = """[2,"st1","StartTransaction",{"connectorId":1,"idTag":"04A2B3C4D5",
        "meterStart":1234567,"timestamp":"2024-03-01T10:00:00Z","reservationId":12}]"""
    return valid(cp.translate(call(text), receive_ms=RTS, transaction_id=transaction_id))


def test_session_start_updates_stop(cp: ChargePointTranslator) -> None:
    tr = _start(cp)
    started = only_event(tr, "sessionStarted")
    assert started.device == "CP-042-1"
    assert started.ts == RTS
    assert started.params == {"sessionId": "5001", "seq": 0, "idTag": "04A2B3C4D5",
                              "idType": "unknown", "meterStart": Decimal("1234.567"),
                              "reservationId": 12}
    assert started.once_key == "ocpp:CP-042-1:5001:sessionStarted:0"
    assert props(tr)["sessionId"] == "5001"
    assert start_transaction_response(5001, {"accepted": True}) == {
        "transactionId": 5001, "idTagInfo": {"status": "Accepted"}}

    for seq, (wh, minute) in enumerate([(1235000, 5), (1237467, 20)], start=1):
        tr = valid(cp.translate(call(f"""[2,"mv{seq}","MeterValues",{{"connectorId":1,
          "transactionId":5001,"meterValue":[{{"timestamp":"2024-03-01T10:{minute:02d}:00Z",
          "sampledValue":[{{"value":"{wh}","measurand":"Energy.Active.Import.Register",
          "unit":"Wh"}},{{"value":"11000","measurand":"Power.Active.Import","unit":"W"}},
          {{"value":"64","measurand":"SoC","unit":"Percent","location":"EV"}}]}}]}}]"""),
            receive_ms=RTS))
        update = only_event(tr, "sessionUpdated")
        assert update.params["seq"] == seq
        assert update.params["sessionId"] == "5001"
        assert update.params["meter"] == Decimal(wh).scaleb(-3)
        assert update.params["energy"] == Decimal(wh - 1234567).scaleb(-3)
        assert update.params["power"] == 11.0 and update.params["soc"] == 64.0
    assert update.params["energy"] == Decimal("2.900")

    tr = valid(cp.translate(call("""[2,"sp1","StopTransaction",{"transactionId":5001,
        "idTag":"04A2B3C4D5","meterStop":1240000,"timestamp":"2024-03-01T10:30:00Z",
        "reason":"EVDisconnected","transactionData":[{"timestamp":"2024-03-01T10:30:00Z",
        "sampledValue":[{"value":"1240000","context":"Transaction.End","unit":"Wh"}]}]}]"""),
        receive_ms=RTS))
    ended = only_event(tr, "sessionEnded")
    assert ended.params == {
        "sessionId": "5001", "seq": 3, "energy": Decimal("5.433"),
        "meterStart": Decimal("1234.567"), "meterStop": Decimal("1240.000"),
        "reason": "EVDisconnected", "idTag": "04A2B3C4D5",
        "startedAt": RTS, "endedAt": RTS + 1_800_000}
    assert props(tr)["sessionId"] == ""
    assert not tr.anomalies
    assert cp.open_session("CP-042-1") is None


def test_stop_retry_is_idempotent(cp: ChargePointTranslator) -> None:
    _start(cp)
    stop = call("""[2,"sp2","StopTransaction",{"transactionId":5001,"meterStop":1244567,
        "timestamp":"2024-03-01T11:00:00Z"}]""")
    first = only_event(valid(cp.translate(stop, receive_ms=RTS)), "sessionEnded")
    assert first.params["reason"] == "Local"  # absent reason means Local
    assert first.params["energy"] == Decimal("10.000")
    again = valid(cp.translate(stop, receive_ms=RTS + 30_000))
    repeat = only_event(again, "sessionEnded")
    assert repeat.params == first.params and repeat.once_key == first.once_key
    assert [a.code for a in again.anomalies] == ["duplicate_stop"]


def test_ended_sessions_kept_are_bounded_open_ones_never_dropped(
        cp: ChargePointTranslator) -> None:
    """The translator outlives connections, so what it keeps is memory per charger for as long
    as the gateway runs: the last KEEP_ENDED ended sessions (a repeated stop of the latest is
    still recognised), every open session however old."""
    def start(connector: int, tx: int) -> None:
        valid(cp.translate(call(f"""[2,"s{tx}","StartTransaction",{{"connectorId":{connector},
            "idTag":"04A2B3C4D5","meterStart":{tx},"timestamp":"2024-03-01T10:00:00Z"}}]"""),
            receive_ms=RTS, transaction_id=tx))

    def stop(tx: int) -> Call:
        return call(f"""[2,"e{tx}","StopTransaction",{{"transactionId":{tx},
            "meterStop":{tx + 500},"timestamp":"2024-03-01T11:00:00Z"}}]""")

    start(2, 1)  # stays open on connector 2 throughout
    for tx in range(100, 100 + KEEP_ENDED + 5):
        start(1, tx)
        first = only_event(valid(cp.translate(stop(tx), receive_ms=RTS)), "sessionEnded")
    ended = [s for s in cp.sessions.values() if s.ended]
    assert len(ended) == KEEP_ENDED
    assert [s.transaction_id for s in ended] == list(range(105, 105 + KEEP_ENDED))
    running = cp.open_session("CP-042-2")
    assert running is not None and running.transaction_id == 1
    again = valid(cp.translate(stop(104 + KEEP_ENDED), receive_ms=RTS + 30_000))
    repeat = only_event(again, "sessionEnded")
    assert repeat.params == first.params and repeat.once_key == first.once_key
    assert [a.code for a in again.anomalies] == ["duplicate_stop"]


def test_meter_stop_below_start_is_flagged_not_billed(cp: ChargePointTranslator) -> None:
    _start(cp)
    tr = valid(cp.translate(call("""[2,"sp3","StopTransaction",{"transactionId":5001,
        "meterStop":1200000,"timestamp":"2024-03-01T10:10:00Z","reason":"PowerLoss"}]"""),
        receive_ms=RTS))
    ended = only_event(tr, "sessionEnded")
    assert "energy" not in ended.params
    assert ended.params["meterStop"] == Decimal("1200.000")
    assert [a.code for a in tr.anomalies] == ["meter_regression"]


def test_zero_baseline_is_repaired_when_implausible() -> None:
    cp = ChargePointTranslator("CP-9", V16, max_power_kw=Decimal(22))
    cp.translate(call("""[2,"a","StartTransaction",{"connectorId":1,"idTag":"T",
        "meterStart":0,"timestamp":"2024-03-01T10:00:00Z"}]"""), receive_ms=RTS,
        transaction_id=7)
    cp.translate(call("""[2,"b","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[
        {"timestamp":"2024-03-01T10:01:00Z","sampledValue":[{"value":"910000"}]}]}]"""),
        receive_ms=RTS)
    tr = valid(cp.translate(call("""[2,"c","StopTransaction",{"transactionId":7,
        "meterStop":910083,"timestamp":"2024-03-01T10:05:00Z"}]"""), receive_ms=RTS))
    ended = only_event(tr, "sessionEnded")
    assert ended.params["energy"] == Decimal("0.083")
    assert ended.params["meterStart"] == Decimal("910.000")
    assert sorted(a.code for a in tr.anomalies) == ["baseline_repaired", "implausible_energy"]


def test_unknown_transaction(cp: ChargePointTranslator) -> None:
    stop = call("""[2,"x","StopTransaction",{"transactionId":77,"meterStop":5000,
        "timestamp":"2024-03-01T10:00:00Z"}]""")
    with pytest.raises(MappingError):
        cp.translate(stop, receive_ms=RTS)
    tr = valid(cp.translate(stop, receive_ms=RTS, device="CP-042-2"))
    ended = only_event(tr, "sessionEnded")
    assert ended.device == "CP-042-2" and "energy" not in ended.params
    assert [a.code for a in tr.anomalies] == ["unknown_transaction"]
    tr = valid(cp.translate(call("""[2,"y","MeterValues",{"connectorId":1,"transactionId":78,
        "meterValue":[{"timestamp":"2024-03-01T10:00:00Z","sampledValue":[{"value":"1"}]}]}]"""),
        receive_ms=RTS))
    assert not tr.events() and [a.code for a in tr.anomalies] == ["unknown_transaction"]
    with pytest.raises(MappingError):
        cp.translate(call("""[2,"z","StartTransaction",{"connectorId":1,"idTag":"T",
            "meterStart":0,"timestamp":"2024-03-01T10:00:00Z"}]"""), receive_ms=RTS)


def test_start_retry_key_and_duplicate_start(cp: ChargePointTranslator) -> None:
    text = """[2,"r1","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":10,
        "timestamp":"2024-03-01T10:00:00Z"}]"""
    key = start_transaction_key("CP-042", call(text).payload)
    assert key == start_transaction_key("CP-042", call(text.replace('"r1"', '"r2"')).payload)
    assert key != start_transaction_key("CP-042", call(text.replace(":10,", ":11,")).payload)
    cp.translate(call(text), receive_ms=RTS, transaction_id=1)
    tr = cp.translate(call(text), receive_ms=RTS, transaction_id=1)
    assert only_event(tr, "sessionStarted").once_key == "ocpp:CP-042-1:1:sessionStarted:0"
    assert [a.code for a in tr.anomalies] == ["duplicate_start"]


def test_session_state_persists() -> None:
    cp = ChargePointTranslator("CP-042", V16)
    _start(cp)
    saved = [s.to_dict() for s in cp.export_sessions()]
    restored = ChargePointTranslator("CP-042", V16,
                                     sessions=[SessionState.from_dict(d) for d in saved])
    tr = valid(restored.translate(call("""[2,"sp","StopTransaction",{"transactionId":5001,
        "meterStop":1235567,"timestamp":"2024-03-01T10:30:00Z"}]"""), receive_ms=RTS))
    assert only_event(tr, "sessionEnded").params["energy"] == Decimal("1.000")
    again = SessionState.from_dict(restored.sessions["5001"].to_dict())
    assert again == restored.sessions["5001"]
    assert again.ended_params == restored.sessions["5001"].ended_params


def test_authorize_and_answer(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call('[2,"au","Authorize",{"idTag":"04A2B3C4D5"}]'), receive_ms=RTS))
    event = only_event(tr, "authorize")
    assert event.needs_reply and event.product == "charger"
    assert event.params == {"idTag": "04A2B3C4D5", "idType": "unknown"}
    assert authorize_response(V16, {"accepted": True, "expiresAt": RTS}) == {
        "idTagInfo": {"status": "Accepted", "expiryDate": "2024-03-01T10:00:00.000Z"}}
    assert authorize_response(V16, {"accepted": False, "status": "Blocked"}) == {
        "idTagInfo": {"status": "Blocked"}}
    assert authorize_response(V16, None) == {"idTagInfo": {"status": "Invalid"}}


def test_status_messages_and_data_transfer(cp: ChargePointTranslator) -> None:
    tr = valid(cp.translate(call('[2,"f","FirmwareStatusNotification",{"status":"Installing"}]'),
                            receive_ms=RTS))
    assert only_event(tr, "firmwareStatus").params == {"status": "Installing"}
    assert props(tr, "charger") == {"firmwareStatus": "Installing"}
    tr = valid(cp.translate(call('[2,"d","DiagnosticsStatusNotification",{"status":"Uploaded"}]'),
                            receive_ms=RTS))
    assert only_event(tr, "diagnosticsStatus").params == {"status": "Uploaded"}
    tr = valid(cp.translate(call('[2,"l","LogStatusNotification",{"status":"Uploading",'
                                 '"requestId":4}]'), receive_ms=RTS))
    assert only_event(tr, "diagnosticsStatus").params == {"status": "Uploading", "requestId": 4}
    tr = valid(cp.translate(call('[2,"se","SecurityEventNotification",{"type":'
                                 '"InvalidCentralSystemCertificate","timestamp":'
                                 '"2024-03-01T10:00:00Z","techInfo":"expired"}]'),
                            receive_ms=RTS))
    assert only_event(tr, "securityEvent").params == {
        "type": "InvalidCentralSystemCertificate", "techInfo": "expired", "time": RTS}
    tr = valid(cp.translate(call('[2,"dt","DataTransfer",{"vendorId":"com.vendor",'
                                 '"messageId":"plug","data":"{\\"t\\":1}"}]'), receive_ms=RTS))
    assert only_event(tr, "dataTransfer").params == {"vendorId": "com.vendor",
                                                      "messageId": "plug", "data": '{"t":1}'}
    tr = valid(cp.translate(call('[2,"hb","Heartbeat",{}]'), receive_ms=RTS))
    assert props(tr, "charger") == {"lastHeartbeat": RTS}
    tr = cp.translate(call('[2,"sc","SignCertificate",{"csr":"x"}]'), receive_ms=RTS)
    assert not tr.messages and tr.anomalies[0].code == "unmapped_action"
