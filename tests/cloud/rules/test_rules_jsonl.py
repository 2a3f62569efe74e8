"""Recorded messages as JSON lines: round trip, and clear errors for lines that are not messages."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cloud.rules import RecordingError, decode_line, encode_line
from thingmodels.envelope import Envelope, Sample
from thingmodels.topics import parse


def test_round_trip_keeps_every_field() -> None:
    env = Envelope(
        id="01ROUNDTRIP000000000000000", rts=5, ts=4, seq=9, src="ocpp16",
        b=(Sample(1, {"energy": Decimal("1.250"), "raw": b"\x00\xff"}),
           Sample(None, {"list": [1, {"x": "y"}]})),
        extra={"future": {"nested": b"\x01"}},
    )
    line = encode_line(parse("ev/v1/g/connector/c/prop"), env)
    assert "\n" not in line
    data = json.loads(line)
    assert data["envelope"]["b"][0]["p"]["energy"] == "1.250"  # decimals as on the wire
    assert data["envelope"]["b"][0]["p"]["raw"] == {"$b64": "AP8="}
    topic, back = decode_line(line)
    assert topic == parse("ev/v1/g/connector/c/prop")
    assert back.to_map() == env.to_map()
    assert back.b is not None and back.b[0].p["raw"] == b"\x00\xff"
    assert back.extra == {"future": {"nested": b"\x01"}}


def test_replies_round_trip() -> None:
    env = Envelope(id="01R", rts=1, cid="01CALL", code=504, msg="timeout", p={"accepted": False})
    topic, back = decode_line(encode_line("ev/v1/g/connector/c/svc/remoteStart/reply", env))
    assert topic.name == "remoteStart"
    assert (back.cid, back.code, back.msg, back.p) == ("01CALL", 504, "timeout", {"accepted": False})


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not JSON"),
    ('["ev/v1/g/c/d/prop", {}]', "a line must be"),
    ('{"topic": "ev/v1/g/connector/c/prop"}', "a line must be"),
    ('{"topic": 5, "envelope": {}}', "'topic' must be a string"),
    ('{"topic": "ev/v1/g/connector/c/nope", "envelope": {"id": "x", "rts": 1}}', "not a voltmesh"),
    ('{"topic": "ev/v1/g/connector/c/prop", "envelope": []}', "'envelope' must be a map"),
    ('{"topic": "ev/v1/g/connector/c/prop", "envelope": {"rts": 1}}', "'id' is required"),
    ('{"topic": "ev/v1/g/connector/c/prop", "envelope": {"id": "x", "rts": "1"}}',
     "must be an integer"),
    ('{"topic": "ev/v1/g/connector/c/prop", "envelope": {"id": "x", "rts": 1, "p": {"a": {"$b64": "%%"}}}}',
     "invalid base64"),
])
def test_lines_that_are_not_messages(line: str, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        decode_line(line)
