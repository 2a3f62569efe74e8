"""OCPP-J frame codec: real frames in, typed frames or the right CALLERROR out."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bridges.ocpp import (
    Call,
    CallError,
    CallResult,
    ErrorCode,
    FrameError,
    FrameTooLarge,
    OcppVersion,
    Role,
    call_error_for,
    check_frame_size,
    decode_frame,
    encode_call,
    encode_call_error,
    encode_call_result,
    encode_frame,
    validate_payload,
)

V16 = OcppVersion.V16
V201 = OcppVersion.V201

BOOT_16 = """[2,"19223201","BootNotification",{"chargePointVendor":"VendorX",
 "chargePointModel":"SingleSocketCharger","chargePointSerialNumber":"SN-000123",
 "firmwareVersion":"1.4.2","iccid":"89860000000000000000"}]"""
BOOT_201 = """[2,"a1b2","BootNotification",{"reason":"PowerUp","chargingStation":
 {"model":"Wallbox22","vendorName":"VendorY","serialNumber":"WB-77","firmwareVersion":"2.0.1-rc3",
  "modem":{"iccid":"8986001","imsi":"460001"}}}]"""


def _error(text: str | bytes, version: OcppVersion, **kwargs: object) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_frame(text, version, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_boot_call_decodes_both_versions() -> None:
    frame = decode_frame(BOOT_16, V16, receiver=Role.CSMS)
    assert isinstance(frame, Call)
    assert (frame.unique_id, frame.action) == ("19223201", "BootNotification")
    assert frame.payload["chargePointSerialNumber"] == "SN-000123"
    frame = decode_frame(BOOT_201.encode(), V201, receiver=Role.CSMS)
    assert isinstance(frame, Call)
    assert frame.payload["chargingStation"]["modem"]["iccid"] == "8986001"


def test_call_result_validated_against_the_pending_call() -> None:
    text = '[3,"19223201",{"status":"Accepted","currentTime":"2024-03-01T10:00:00Z","interval":300}]'
    frame = decode_frame(text, V16, pending={"19223201": "BootNotification"})
    assert isinstance(frame, CallResult)
    assert frame.action == "BootNotification"
    bad = '[3,"19223201",{"status":"Maybe","currentTime":"2024-03-01T10:00:00Z","interval":300}]'
    err = _error(bad, V16, pending={"19223201": "BootNotification"})
    assert err.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert not err.answerable  # a broken CALLRESULT is never answered
    # unknown id: no action, no validation
    frame = decode_frame(bad, V16, pending={})
    assert isinstance(frame, CallResult) and frame.action is None


def test_call_error_decodes_leniently() -> None:
    frame = decode_frame('[4,"162376037","NotSupported","SetDisplayMessage not supported",{}]',
                         V201)
    assert isinstance(frame, CallError)
    assert frame.error_code == "NotSupported"
    frame = decode_frame('[4,"1","GenericError","no details"]', V16)
    assert isinstance(frame, CallError) and frame.details == {}


@pytest.mark.parametrize(("text", "v16", "v201"), [
    ("this is not json", "FormationViolation", "RpcFrameworkError"),
    ('{"not": "an array"}', "FormationViolation", "RpcFrameworkError"),
    ("[]", "FormationViolation", "RpcFrameworkError"),
    ('["2","1","Heartbeat",{}]', "FormationViolation", "RpcFrameworkError"),
    ('[2,17,"Heartbeat",{}]', "FormationViolation", "RpcFrameworkError"),
    ('[2,"1","Heartbeat"]', "FormationViolation", "RpcFrameworkError"),
    ('[2,"1","Heartbeat",{},{}]', "FormationViolation", "RpcFrameworkError"),
    ('[2,"1",42,{}]', "FormationViolation", "RpcFrameworkError"),
    ('[2,"' + "x" * 37 + '","Heartbeat",{}]', "FormationViolation", "RpcFrameworkError"),
    ('[9,"1","Heartbeat",{}]', "FormationViolation", "MessageTypeNotSupported"),
    ('[2,"1","Heartbeat",[]]', "FormationViolation", "FormatViolation"),
    ('[2,"1","Heartbeat",{"x":NaN}]', "FormationViolation", "RpcFrameworkError"),
    ('[2,"1","MakeCoffee",{}]', "NotImplemented", "NotImplemented"),
])
def test_malformed_frames_get_the_right_code(text: str, v16: str, v201: str) -> None:
    assert _error(text, V16).wire_code(V16) == v16
    assert _error(text, V201).wire_code(V201) == v201


def test_unreadable_id_is_minus_one_and_readable_id_is_kept() -> None:
    assert _error("garbage", V201).unique_id == "-1"
    err = _error('[2,"abc-1","Heartbeat",{]', V201)
    assert err.unique_id == "abc-1"  # JSON broken after the id: the id is still answered
    answer = json.loads(call_error_for(err, V201))
    assert answer[:3] == [4, "abc-1", "RpcFrameworkError"]


def test_not_utf8() -> None:
    assert _error(b'[2,"1","Heartbeat",{"a":"\xff"}]', V16).code is ErrorCode.RPC_FRAMEWORK_ERROR


def test_wrong_direction_is_not_supported() -> None:
    remote = '[2,"9","RemoteStartTransaction",{"idTag":"TAG1"}]'
    err = _error(remote, V16, receiver=Role.CSMS)
    assert err.wire_code(V16) == "NotSupported"
    assert isinstance(decode_frame(remote, V16, receiver=Role.CHARGE_POINT), Call)
    # a 1.6 action is unknown in 2.0.1
    assert _error(remote, V201).wire_code(V201) == "NotImplemented"
    # DataTransfer goes both ways
    both = '[2,"7","DataTransfer",{"vendorId":"com.example"}]'
    for role in Role:
        assert isinstance(decode_frame(both, V16, receiver=role), Call)


@pytest.mark.parametrize(("payload", "code16", "code201"), [
    # wrong JSON type
    ('{"connectorId":"1","errorCode":"NoError","status":"Available"}',
     "TypeConstraintViolation", None),
    # required field missing
    ('{"connectorId":1,"status":"Available"}', "OccurenceConstraintViolation", None),
    # value outside the enum
    ('{"connectorId":1,"errorCode":"NoError","status":"Busy"}',
     "PropertyConstraintViolation", None),
    # too long
    ('{"connectorId":1,"errorCode":"NoError","status":"Available","info":"' + "i" * 51 + '"}',
     "PropertyConstraintViolation", None),
    # unknown field
    ('{"connectorId":1,"errorCode":"NoError","status":"Available","color":"red"}',
     "FormationViolation", None),
])
def test_schema_violations_16(payload: str, code16: str, code201: None) -> None:
    err = _error(f'[2,"s1","StatusNotification",{payload}]', V16, receiver=Role.CSMS)
    assert err.wire_code(V16) == code16
    assert err.unique_id == "s1" and err.action == "StatusNotification" and err.answerable
    frame = json.loads(call_error_for(err, V16))
    assert frame[0] == 4 and frame[1] == "s1" and frame[2] == code16
    assert frame[4]["path"]


@pytest.mark.parametrize(("payload", "code"), [
    ('{"timestamp":"2024-03-01T10:00:00Z","connectorStatus":"Occupied","evseId":"1",'
     '"connectorId":1}', "TypeConstraintViolation"),
    ('{"timestamp":"2024-03-01T10:00:00Z","connectorStatus":"Occupied","evseId":1}',
     "OccurrenceConstraintViolation"),
    ('{"timestamp":"2024-03-01T10:00:00Z","connectorStatus":"Charging","evseId":1,'
     '"connectorId":1}', "PropertyConstraintViolation"),
    ('{"timestamp":"2024-03-01T10:00:00Z","connectorStatus":"Occupied","evseId":1,'
     '"connectorId":1,"errorCode":"NoError"}', "FormatViolation"),
])
def test_schema_violations_201(payload: str, code: str) -> None:
    err = _error(f'[2,"s2","StatusNotification",{payload}]', V201, receiver=Role.CSMS)
    assert err.wire_code(V201) == code


def test_nested_schema_violation_reports_its_path() -> None:
    text = """[2,"m1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":
      "2024-03-01T10:00:00Z","sampledValue":[{"value":"12","measurand":"Energy.Wrong"}]}]}]"""
    err = _error(text, V16, receiver=Role.CSMS)
    assert err.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert err.details["path"] == "meterValue/0/sampledValue/0/measurand"


def test_lenient_mode_checks_framing_only() -> None:
    text = '[2,"l1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M",' \
           '"chargePointSerialNumber":"' + "S" * 40 + '"}]'
    assert _error(text, V16).code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    frame = decode_frame(text, V16, validate=False)
    assert isinstance(frame, Call) and len(frame.payload["chargePointSerialNumber"]) == 40


def test_floats_are_exact_decimals() -> None:
    text = """[2,"t1","MeterValues",{"evseId":1,"meterValue":[{"timestamp":"2024-03-01T10:00:00Z",
      "sampledValue":[{"value":12345.678,"unitOfMeasure":{"unit":"kWh"}}]}]}]"""
    frame = decode_frame(text, V201, receiver=Role.CSMS)
    assert isinstance(frame, Call)
    assert frame.payload["meterValue"][0]["sampledValue"][0]["value"] == Decimal("12345.678")


def test_decimal_schema_actions_validate() -> None:
    # 1.6 SetChargingProfile has multipleOf 0.1: validated with Decimal as the ocpp library does
    text = """[2,"p1","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{
      "chargingProfileId":7,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile",
      "chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A",
      "chargingSchedulePeriod":[{"startPeriod":0,"limit":16.1}]}}}]"""
    frame = decode_frame(text, V16, receiver=Role.CHARGE_POINT)
    assert isinstance(frame, Call)
    bad = text.replace("16.1", "16.15")
    assert _error(bad, V16).code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


def test_size_limit() -> None:
    text = '[2,"big","DataTransfer",{"vendorId":"x","data":"' + "d" * 2000 + '"}]'
    with pytest.raises(FrameTooLarge) as info:
        decode_frame(text, V16, max_bytes=1024)
    assert info.value.unique_id == "big"
    assert info.value.wire_code(V16) == "FormationViolation"
    assert info.value.wire_code(V201) == "FormatViolation"
    check_frame_size(text, 4096)
    # multi-byte characters count as bytes
    with pytest.raises(FrameTooLarge):
        check_frame_size("充" * 400, 1000)
    assert isinstance(decode_frame(text, V16, max_bytes=None), Call)


def test_encode_round_trip_and_validation() -> None:
    text = encode_call("42", "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG"},
                       version=V16)
    assert text == '[2,"42","RemoteStartTransaction",{"connectorId":1,"idTag":"TAG"}]'
    frame = decode_frame(text, V16, receiver=Role.CHARGE_POINT)
    assert encode_frame(frame) == text
    with pytest.raises(FrameError):
        encode_call("43", "RemoteStartTransaction", {"connectorId": 1}, version=V16)
    result = encode_call_result("42", {"status": "Accepted", "limit": Decimal("16.1"),
                                       "n": Decimal("3.000")},
                                action=None)
    assert result == '[3,"42",{"status":"Accepted","limit":16.1,"n":3}]'
    assert encode_call_error("1", ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, version=V16) == \
        '[4,"1","OccurenceConstraintViolation","",{}]'
    assert encode_call_error("1", ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION) == \
        '[4,"1","OccurrenceConstraintViolation","",{}]'


def test_validate_payload_for_results() -> None:
    validate_payload(V201, 3, "TransactionEvent", {})
    with pytest.raises(FrameError) as info:
        validate_payload(V201, 3, "TransactionEvent", {"idTokenInfo": {"status": "Fine"}})
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
