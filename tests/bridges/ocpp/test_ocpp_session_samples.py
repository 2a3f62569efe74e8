"""Session samples reach billing: every connector sample naming a running session carries its
energy, so the cloud's ``billing-session-samples`` rule accepts it (it refused 2.0.1 samples
that had a ``sessionId`` and neither ``meterEnergy`` nor ``energy``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from bridges.ocpp import Call, ChargePointTranslator, MessageKind, OcppVersion, Role, decode_frame
from bridges.ocpp.translation import Translation
from cloud.actions import BillSessionEvent
from cloud.orders.events import SAMPLE, parse
from thingmodels import builtin_models

CONNECTOR = builtin_models()["connector"]
TS = "2024-03-01T10:{minute:02d}:00Z"


def _call(version: OcppVersion, action: str, payload: dict[str, Any], n: int) -> Call:
    frame = decode_frame(json.dumps([2, f"m{n}", action, payload]), version, receiver=Role.CSMS)
    assert isinstance(frame, Call)
    return frame


def _billing(tr: Translation) -> list[tuple[str, dict[str, Any]]]:
    """What the cloud's billing rules make of a translation: (name, parsed params) of every
    session event and every connector sample with a sessionId -- through the cloud's parser,
    which raises BadSessionEvent for a sample without meterEnergy / energy."""
    out = []
    for i, msg in enumerate(tr.messages):
        if msg.product != "connector":
            continue
        if msg.kind is MessageKind.PROP:
            params = CONNECTOR.validate_properties(dict(msg.params))
            if not params.get("sessionId"):
                continue
            name = SAMPLE
        elif msg.name in ("sessionStarted", "sessionUpdated", "sessionEnded"):
            params = CONNECTOR.validate_event(msg.name, dict(msg.params))
            name = msg.name
        else:
            continue
        ev = parse(BillSessionEvent(rule="billing", key=f"k{i}", gw="gw", product="connector",
                                    device=msg.device, name=name, params=params,
                                    msg_id=f"m{i}", ts_ms=msg.ts or 1))
        assert ev is not None
        out.append((name, ev.params))
    return out


def _tx_event(kind: str, seq: int, wh: int | None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind, "timestamp": TS.format(minute=seq), "seqNo": seq,
        "triggerReason": "Authorized" if kind == "Started" else "MeterValuePeriodic",
        "transactionInfo": {"transactionId": "TX-9", "chargingState": "Charging"}, **extra}
    if wh is not None:
        context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(
            kind, "Sample.Periodic")
        payload["meterValue"] = [{"timestamp": TS.format(minute=seq), "sampledValue": [
            {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register"}]}]
    return payload


@pytest.mark.parametrize("begin_wh", [1_000_000, None], ids=["register", "no-register"])
def test_v201_session_samples_carry_energy(begin_wh: int | None) -> None:
    cp = ChargePointTranslator("CS-1", OcppVersion.V201)
    flow = [("Started", begin_wh, {"evse": {"id": 1, "connectorId": 1},
                                   "idToken": {"idToken": "TAG1", "type": "ISO14443"}}),
            ("Updated", 1_002_500, {}), ("Updated", None, {}), ("Ended", 1_004_000, {})]
    seen: list[tuple[str, dict[str, Any]]] = []
    for seq, (kind, wh, extra) in enumerate(flow):
        tr = cp.translate(_call(OcppVersion.V201, "TransactionEvent",
                                _tx_event(kind, seq, wh, **extra), seq), receive_ms=1)
        seen += _billing(tr)
    samples = [p for name, p in seen if name == SAMPLE]
    assert samples[0]["sessionId"] == "TX-9" and samples[0]["energy"] == 0
    if begin_wh is not None:
        assert samples[0]["meterEnergy"] == Decimal("1000.000")
        assert samples[1] == {"sessionId": "TX-9", "meterEnergy": Decimal("1002.500"),
                              "energy": Decimal("2.500")}
    else:  # no start register: the sample still says the energy so far (none) at the start
        assert "meterEnergy" not in samples[0]
        assert samples[1] == {"sessionId": "TX-9", "meterEnergy": Decimal("1002.500")}
    assert len(samples) == 2  # the register-less update makes no sample, only its event
    updated = [p for name, p in seen if name == "sessionUpdated"]
    assert updated[0]["meter"] == Decimal("1002.500")
    ended = [p for name, p in seen if name == "sessionEnded"]
    assert ended[0]["meterStop"] == Decimal("1004.000")


def test_v16_session_samples_carry_energy() -> None:
    cp = ChargePointTranslator("CP-1", OcppVersion.V16)
    seen = _billing(cp.translate(_call(OcppVersion.V16, "StartTransaction", {
        "connectorId": 1, "idTag": "TAG1", "meterStart": 5000,
        "timestamp": TS.format(minute=0)}, 0), receive_ms=1, transaction_id=77))
    seen += _billing(cp.translate(_call(OcppVersion.V16, "MeterValues", {
        "connectorId": 1, "transactionId": 77, "meterValue": [{
            "timestamp": TS.format(minute=1), "sampledValue": [
                {"value": "7500", "measurand": "Energy.Active.Import.Register"}]}]}, 1),
        receive_ms=1))
    seen += _billing(cp.translate(_call(OcppVersion.V16, "StopTransaction", {
        "transactionId": 77, "meterStop": 9000, "timestamp": TS.format(minute=2)}, 2),
        receive_ms=1))
    samples = [p for name, p in seen if name == SAMPLE]
    assert samples == [
        {"sessionId": "77", "meterEnergy": Decimal("5.000"), "energy": Decimal("0.000")},
        {"sessionId": "77", "meterEnergy": Decimal("7.500"), "energy": Decimal("2.500")}]
    assert [p.get("meter") for name, p in seen if name == "sessionUpdated"] == [Decimal("7.500")]
    assert [p["meterStop"] for name, p in seen if name == "sessionEnded"] == [Decimal("9.000")]
