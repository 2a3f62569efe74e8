"""The mapper turns wire frames into thing-model params in units (V, A, kW, kWh, yuan as exact
Decimal, °C, %, ms since the epoch) that the thing models accept; real frames as input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bridges.ykc import decode_frame
from bridges.ykc.mapper import frame_data, login_properties, realtime_properties, record_params
from bridges.ykc.messages import BmsParameters, Login, RealTimeData, TransactionRecord
from tests.bridges.ykc.test_ykc_vectors import (
    J_SAMPLES_HIGH_FIRST,
    J_SAMPLES_LOW_FIRST,
    REAL_LOGIN,
    h,
)
from thingmodels import builtin_models

SHANGHAI = timezone(timedelta(hours=8))
MODELS = builtin_models()


def test_real_login_capture_to_charger_properties() -> None:
    login = decode_frame(REAL_LOGIN)[0].message
    assert isinstance(login, Login)
    props = login_properties(login)
    assert props == {"protocol": "ykc15", "chargerType": "ac", "connectorCount": 1,
                     "firmwareVersion": "1.10.23", "networkType": "lan", "carrier": "4"}
    assert MODELS["charger"].validate_properties(props) == props


def test_realtime_sample_to_connector_properties_in_units() -> None:
    message = decode_frame(h(J_SAMPLES_HIGH_FIRST["realtime"]))[0].message
    assert isinstance(message, RealTimeData)
    props = realtime_properties(message)
    assert props == {
        "status": "charging", "plugged": True, "voltage": 373.2, "current": 101.2,
        "power": 37.768,  # 373.2 V x 101.2 A
        "energy": Decimal("8.8000"), "amount": Decimal("9.3280"),
        "chargingTime": 16, "remainingTime": 32, "sessionId": message.trade_no,
        "faults": [], "gunTemperature": 34.0, "soc": 78.0, "batteryMaxTemperature": 35.0,
    }  # holster state 2 (unknown) is left out
    assert str(props["energy"]) == "8.8000" and str(props["amount"]) == "9.3280"
    MODELS["connector"].validate_properties(props)


def test_transaction_record_sample_to_event_params() -> None:
    record = decode_frame(h(J_SAMPLES_HIGH_FIRST["transaction"]))[0].message
    assert isinstance(record, TransactionRecord)
    params = record_params(record, SHANGHAI)
    started = datetime(2023, 12, 13, 17, 4, 14, tzinfo=SHANGHAI)
    ended = datetime(2023, 12, 13, 17, 9, 36, tzinfo=SHANGHAI)
    assert (params["startedAt"], params["endedAt"]) == (int(started.timestamp() * 1000),
                                                       int(ended.timestamp() * 1000))
    assert [t["price"] for t in params["tiers"]] == [
        Decimal("1.50000"), Decimal("1.30000"), Decimal("1.10000"), Decimal("0.90000")]
    assert params["tiers"][3] == {"tier": "valley", "price": Decimal("0.90000"),
                                  "energy": Decimal("0.1650"), "lossEnergy": Decimal("0.1650"),
                                  "amount": Decimal("0.1400")}
    assert (params["energy"], params["amount"]) == (Decimal("0.1650"), Decimal("0.1400"))
    assert params["tradeType"] == "app" and params["stopReasonCode"] == 0x40
    assert params["sessionId"] == record.trade_no and "vin" not in params
    MODELS["connector"].validate_event("transactionRecord", params)


def test_bms_frame_data_in_units() -> None:
    message = decode_frame(h(J_SAMPLES_LOW_FIRST["bms_params"]))[0].message
    assert isinstance(message, BmsParameters)
    data = frame_data(message)
    assert "trade_no" not in data and "pile_code" not in data
    # currents carry the -400 A offset of GB/T 27930: a raw 0 is -400 A
    assert data["max_charge_current_a"] == "-400.0"
    MODELS["connector"].validate_event("bmsParameters", {"data": data})
