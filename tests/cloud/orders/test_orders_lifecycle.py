"""Events -> facts (cloud/orders/lifecycle.py): first report wins, fixed precedence, status."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cloud.actions import BillSessionEvent
from cloud.orders.errors import BadSessionEvent
from cloud.orders.events import SessionEvent, parse
from cloud.orders.lifecycle import apply_event, derive, open_status
from cloud.orders.models import Order
from cloud.orders.status import OrderStatus

D = Decimal


def ev(name: str, params: dict[str, Any], ts: int = 1_000, msg: str = "m") -> SessionEvent:
    parsed = parse(BillSessionEvent(rule="r", key=f"{msg}:r:0", gw="g", product="connector",
                                    device="d", name=name, params=params, msg_id=msg, ts_ms=ts))
    assert parsed is not None
    return parsed


def fresh() -> Order:
    return Order(gw="g", device="d", session_id="s", created_ms=0, updated_ms=0)


RECORD = {"sessionId": "s", "startedAt": 500, "endedAt": 900, "meterStart": D("3"),
          "meterStop": D("8"), "energy": D("5"), "amount": D("4"), "tiers": [],
          "tradeType": "vin", "vin": "LSVAU2180N2183294"}


def test_precedence_and_repair_from_the_record() -> None:
    o = fresh()
    apply_event(o, ev("sessionStarted", {"sessionId": "s", "seq": 0, "meterStart": D("0"),
                                         "offline": True}, ts=400, msg="a"))
    apply_event(o, ev("transactionRecord", RECORD, msg="b"))
    derive(o)
    assert o.started_ms == 500 and o.ended_ms == 900  # the charger's own record wins
    assert o.meter_start == D("3")  # 0 placeholder replaced
    assert {"code": "baseline_repaired",
            "detail": "meterStart 0 replaced by the charger record's 3.0000 kWh"} in o.anomalies
    assert (o.id_tag, o.id_type, o.start_method) == ("LSVAU2180N2183294", "vin", "offline")
    assert open_status(o) is OrderStatus.FINISHED


def test_record_time_zero_is_not_a_time() -> None:
    o = fresh()
    apply_event(o, ev("transactionRecord", dict(RECORD, startedAt=0, endedAt=0), ts=950))
    apply_event(o, ev("sessionStarted", {"sessionId": "s", "seq": 0}, ts=450, msg="c"))
    derive(o)
    assert o.started_ms == 450 and o.ended_ms == 950


def test_first_report_wins_and_a_different_one_is_an_anomaly() -> None:
    o = fresh()
    first = {"sessionId": "s", "seq": 3, "meterStart": D("1"), "meterStop": D("2")}
    assert apply_event(o, ev("sessionEnded", first, msg="x")) == {}
    assert apply_event(o, ev("sessionEnded", first, msg="y")) == {"duplicate": True}
    changed = dict(first, meterStop=D("9"))
    assert apply_event(o, ev("sessionEnded", changed, msg="z")) == {"conflict": True}
    derive(o)
    assert o.meter_stop == D("2")
    assert {a["code"] for a in o.anomalies} == {"stop_conflict"}


def test_open_status() -> None:
    o = fresh()
    apply_event(o, ev("startResult", {"sessionId": "s", "accepted": False, "reason": "busy"}))
    assert open_status(o) is OrderStatus.START_FAILED
    apply_event(o, ev("sessionStarted", {"sessionId": "s", "seq": 0}, msg="s1"))
    assert open_status(o) is OrderStatus.AUTHORISED
    apply_event(o, ev("sample", {"sessionId": "s", "meterEnergy": D("5")}, msg="s2"))
    assert open_status(o) is OrderStatus.CHARGING and o.live_meter == D("5")
    apply_event(o, ev("sample", {"sessionId": "s", "meterEnergy": D("4")}, msg="s3"))
    assert o.live_meter == D("5")  # the highest register, whatever the order


def test_parse_rounds_to_a_tenth_of_a_watt_hour_and_refuses_bad_values() -> None:
    e = ev("sessionUpdated", {"sessionId": "s", "seq": 1, "meter": "12.34565"})
    assert e.params["meter"] == D("12.3457")
    assert parse(BillSessionEvent(rule="r", key="k", gw="g", product="connector", device="d",
                                  name="sample", params={"sessionId": "", "energy": "1"},
                                  msg_id="m", ts_ms=1)) is None
    for name, params in (("sessionEnded", {"sessionId": "s", "seq": 1, "meterStop": "-1"}),
                         ("sessionEnded", {"sessionId": "s", "seq": 1, "energy": 2.5}),
                         ("sessionUpdated", {"sessionId": "s", "seq": 1, "meter": "1e12"}),
                         ("sessionStarted", {"sessionId": " ", "seq": 0})):
        with pytest.raises(BadSessionEvent):
            parse(BillSessionEvent(rule="r", key="k", gw="g", product="connector",
                                   device="d", name=name, params=params, msg_id="m", ts_ms=1))
