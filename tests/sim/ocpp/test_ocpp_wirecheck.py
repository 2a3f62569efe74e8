"""The simulator's strict check of what the CSMS sends: it must catch what it is there for."""

from __future__ import annotations

from bridges.ocpp import OcppVersion
from sim.ocpp.wirecheck import VIOLATIONS, WireCheck


def test_wire_check_catches_schema_and_format_violations() -> None:
    sink: list[str] = []
    check = WireCheck("CP1", OcppVersion.V16, sink)
    check.sent('[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
    check.received('[3,"b1",{"status":"Accepted","currentTime":"2026-11-23T10:00:00Z",'
                   '"interval":300}]')
    check.received('[2,"r1","RemoteStartTransaction",{"idTag":"T1"}]')
    assert sink == []
    check.sent('[2,"h1","Heartbeat",{}]')
    check.received('[3,"h1",{"currentTime":"yesterday"}]')  # not RFC 3339
    check.sent('[2,"h2","Heartbeat",{}]')
    check.received('[3,"h2",{"currentTime":"2026-11-23T10:00:00Z","extra":1}]')  # unknown field
    check.received('[2,"x1","StartTransaction",{}]')  # a call the CSMS may not send
    check.received('[3,"nobody",{}]')  # answers no call
    v201 = WireCheck("CS2", OcppVersion.V201, sink)
    v201.received('[2,"g1","GetVariables",{"getVariableData":[]}]')  # minItems 1
    assert len(sink) == 5, sink
    assert "currentTime" in sink[0] and "extra" in sink[1] and "NotSupported" in sink[2]
    assert "answers no call" in sink[3] and "CS2" in sink[4]
    assert VIOLATIONS[-5:] == sink
    del VIOLATIONS[-5:]
