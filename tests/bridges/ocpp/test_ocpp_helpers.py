"""Timestamps, device ids, id tokens, versions and the mapping table."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridges.ocpp import (
    SERVICE_ACTIONS,
    UPLINK,
    ConnectorRef,
    DeviceIdError,
    ErrorCode,
    OcppVersion,
    TimestampError,
    clock_skew_event,
    clock_skew_s,
    connector_device_id,
    device_id,
    evse_device_id,
    format_timestamp,
    parse_device_id,
    parse_timestamp_ms,
    render_markdown,
    station_meter_id,
    wire_error_code,
)
from bridges.ocpp.idtokens import charger_id_type, id_token_obj, ocpp_id_type, session_id_type
from bridges.ocpp.meter import parse_sampled_value
from bridges.ocpp.timestamps import optional_timestamp_ms, parse_device_time
from bridges.ocpp.versions import parse_error_code
from thingmodels import builtin_models

V16 = OcppVersion.V16
V201 = OcppVersion.V201
T0 = 1_709_287_200_000  # 2024-03-01T10:00:00Z


@pytest.mark.parametrize(("text", "ms"), [
    ("2024-03-01T10:00:00Z", T0),
    ("2024-03-01T10:00:00.123Z", T0 + 123),
    ("2024-03-01T10:00:00.1Z", T0 + 100),
    ("2024-03-01T10:00:00.123456789Z", T0 + 123),
    ("2024-03-01T18:00:00+08:00", T0),
    ("2024-03-01T10:00:00.999-00:00", T0 + 999),
    ("2024-03-01t10:00:00z", T0),
])
def test_parse_timestamps(text: str, ms: int) -> None:
    assert parse_timestamp_ms(text) == ms


def test_timestamp_without_zone_is_utc_and_reported() -> None:
    parsed = parse_device_time("2024-03-01T10:00:00")
    assert parsed.ms == T0 and not parsed.zoned and parsed.plausible
    assert not parse_device_time("1970-01-01T00:00:05Z").plausible


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", 1709287200, None,
                                 "2024-03-01T25:00:00Z"])
def test_bad_timestamps(bad: object) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp_ms(bad)
    assert optional_timestamp_ms(bad) is None


def test_format_and_skew() -> None:
    assert format_timestamp(T0 + 7) == "2024-03-01T10:00:00.007Z"
    assert parse_timestamp_ms(format_timestamp(T0 + 1234)) == T0 + 1234
    assert clock_skew_s(T0 + 1500, T0) == 1.5
    assert clock_skew_event(T0 + 10_000, T0) is None
    assert clock_skew_event(T0 - 45_000, T0) == {"skew": -45.0, "deviceTime": T0 - 45_000}
    assert clock_skew_event(None, T0) is None
    builtin_models()["charger"].validate_event("clockSkew", clock_skew_event(T0 + 99_000, T0))


def test_device_id_rule() -> None:
    assert connector_device_id("CP-1", 2) == "CP-1-2"
    assert evse_device_id("CP-1", 2) == "CP-1-2"
    assert evse_device_id("CP-1", 2, 1) == "CP-1-2"
    assert evse_device_id("CP-1", 2, 2) == "CP-1-2-2"
    assert station_meter_id("CP-1") == "CP-1-0"
    assert device_id(V16, "CP", 3) == "CP-3" and device_id(V201, "CP", 3, 2) == "CP-3-2"
    assert parse_device_id("CP-1-2", "CP-1", V16) == ConnectorRef("CP-1", 2, 2)
    assert parse_device_id("CP-1-2", "CP-1", V201) == ConnectorRef("CP-1", 2, 1)
    assert parse_device_id("CP-1-2-3", "CP-1", V201) == ConnectorRef("CP-1", 2, 3)
    for bad, version in [("CP-2-1", V16), ("CP-1-2-3", V16), ("CP-1-x", V201),
                         ("CP-1-2-1", V201), ("CP-1-", V16), ("CP-1-1-2-3", V201)]:
        with pytest.raises(DeviceIdError):
            parse_device_id(bad, "CP-1", version)
    for bad_id in ["a/b", "cp+1", "#", "", "$SYS", " CP"]:
        with pytest.raises(DeviceIdError):
            connector_device_id(bad_id, 1)


def test_id_token_types() -> None:
    assert charger_id_type("ISO15693") == "iso15693"
    assert charger_id_type(None) == "unknown"
    assert session_id_type("ISO14443") == "card"
    assert session_id_type("NoAuthorization") == "free"
    assert ocpp_id_type("card") == "ISO14443" and ocpp_id_type("eMAID") == "eMAID"
    assert ocpp_id_type(None) == "Central"
    assert id_token_obj("X", "app") == {"idToken": "X", "type": "Central"}
    charger = builtin_models()["charger"].event("authorize").params["idType"].values or ()
    connector = builtin_models()["connector"].event("sessionStarted").params["idType"].values
    for kind in ("Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress",
                 "NoAuthorization"):
        assert charger_id_type(kind) in charger
        assert session_id_type(kind) in (connector or ())


def test_versions_and_error_spelling() -> None:
    assert OcppVersion.from_subprotocol("ocpp2.0.1") is V201
    assert V16.subprotocol == "ocpp1.6" and V201.src == "ocpp201"
    with pytest.raises(ValueError, match="subprotocol"):
        OcppVersion.from_subprotocol("ocpp2.1")
    assert wire_error_code(ErrorCode.FORMAT_VIOLATION, V16) == "FormationViolation"
    assert wire_error_code(ErrorCode.FORMAT_VIOLATION, V201) == "FormatViolation"
    assert parse_error_code("OccurenceConstraintViolation") is \
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    assert parse_error_code("Vendor") is None


def test_sampled_value_units() -> None:
    def conv(version: OcppVersion, raw: dict[str, object]) -> tuple[Decimal, str]:
        value = parse_sampled_value(version, raw)
        assert value is not None and not hasattr(value, "code")
        return value.value, value.unit

    assert conv(V16, {"value": "1500", "unit": "Wh"}) == (Decimal("1.500"), "kWh")
    assert conv(V16, {"value": "0.1", "unit": "kWh"}) == (Decimal("0.1"), "kWh")
    assert conv(V201, {"value": 0.1, "unitOfMeasure": {"unit": "kWh"}}) == (Decimal("0.1"),
                                                                          "kWh")
    assert conv(V201, {"value": 15, "unitOfMeasure": {"unit": "Wh", "multiplier": -1}}) == (
        Decimal("0.0015"), "kWh")
    assert conv(V16, {"value": "300.15", "measurand": "Temperature", "unit": "K"}) == (
        Decimal("27.00"), "Celsius")
    assert conv(V16, {"value": "2200", "measurand": "Power.Active.Import"}) == (
        Decimal("2.200"), "kW")


def test_mapping_table_renders() -> None:
    text = render_markdown()
    assert "| StartTransaction | - |" in text
    assert "| - | TransactionEvent |" in text
    assert "| connector.remoteStart | RemoteStartTransaction | RequestStartTransaction |" in text
    assert set(UPLINK[V16]) >= {"BootNotification", "StartTransaction", "StopTransaction"}
    assert len(SERVICE_ACTIONS) == text.count("\n| connector.") + text.count("\n| charger.")
