"""``voltmesh rules test`` and ``voltmesh rules record`` (against a real broker), and the round trip."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from cloud.rules import encode_line
from tests.cloud.rules.rules_support import ROOT, SHIPPED, write
from thingmodels.envelope import Envelope, Sample, encode
from thingmodels.topics import parse
from voltmesh.cli import main

BATCH = Envelope(id="01CLIBATCH0000000000000000", rts=3000, seq=5, src="ykc16", b=(
    Sample(1000, {"status": "charging", "power": 60.5, "energy": "1.50", "sessionId": "S1",
                  "gunTemperature": 85.0}),
    Sample(2000, {"power": 61.0, "energy": "1.75", "sessionId": "S1"}),
))
FAULT = Envelope(id="01CLIFAULT0000000000000000", rts=4000, seq=6,
                 p={"code": "E42", "active": True})
STATE = Envelope(id="01CLISTATE0000000000000000", rts=5000, p={"online": False, "session": 3})


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """``voltmesh.cli.main`` sets up logging on the (captured) stderr; undo it after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def recorded(tmp_path: Path, *lines: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "messages.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def standard_messages(tmp_path: Path) -> Path:
    return recorded(
        tmp_path,
        encode_line("ev/v1/gw-1/connector/c-1/prop", BATCH),
        encode_line("ev/v1/gw-1/charger/ch-1/event/fault", FAULT),
        encode_line("ev/v1/gw-1/meter/m-1/state", STATE),
        encode_line("ev/v1/gw-1/camera/cam/event/plateRecognized",
                    Envelope(id="01CLIPLATE", rts=1, p={"plate": "A1"})),
    )


def test_rules_test_prints_what_each_rule_would_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rules", "test", str(SHIPPED), "--messages", str(standard_messages(tmp_path))])
    out, err = capsys.readouterr()
    assert code == 0, err
    blocks = out.split("#")[1:]
    assert blocks[0].startswith("1 ev/v1/gw-1/connector/c-1/prop id=01CLIBATCH")
    assert "(2 samples)" in blocks[0]
    assert "gun-over-temperature     alarm     RAISE gunOverTemperature [major]" in blocks[0]
    assert "billing   sample gw-1/connector/c-1" in blocks[0]
    assert '"energy":"1.75"' in blocks[0]
    assert "influx    connector,gw=gw-1,device=c-1,status=charging power=60.5,energy=1.50," \
        in blocks[0]
    assert "device-fault  alarm     RAISE fault [major] fault:gw-1/charger/ch-1:E42" in blocks[1]
    assert "device-offline  alarm     RAISE deviceOffline [major]" in blocks[2]  # state as presence
    assert "(no rule matched)" in blocks[3]
    assert "4 messages, 7 actions (alarms 3, billing 2, telemetry 2), 0 invalid lines" in err


def test_rules_test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rules", "test", str(SHIPPED), "--messages", str(standard_messages(tmp_path)),
                 "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["line"] for m in messages] == [1, 2, 3, 4]
    first = messages[0]["actions"]
    points = [a for a in first if a["action"] == "WritePoint"]
    assert [p["key"] for p in points] == [
        "01CLIBATCH0000000000000000:telemetry-connector:0:0",
        "01CLIBATCH0000000000000000:telemetry-connector:0:1",
    ]
    assert points[0]["fields"]["energy"] == "1.50"  # decimals as strings in JSON
    assert points[0]["fields"]["statusCode"] == "4"
    assert points[0]["lane"] == "telemetry"
    bills = [a for a in first if a["action"] == "BillSessionEvent"]
    assert [b["params"]["energy"] for b in bills] == ["1.50", "1.75"]
    assert messages[3]["actions"] == []


def test_an_invalid_rule_file_exits_2_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "rules", """
        rules:
          - id: broken
            from: [ev/v1/+/connector/+/prop]
            where: "p['gunTemperature'] >"
            do: [{alarm: {type: x, level: info}}]
        """)
    code = main(["rules", "test", str(bad), "--messages", str(standard_messages(tmp_path))])
    _, err = capsys.readouterr()
    assert code == 2
    assert f"{bad}:4: rule 'broken': rules[0].where: invalid expression" in err


def test_bad_message_lines_are_reported_and_the_rest_still_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = recorded(tmp_path, "{oops", encode_line("ev/v1/g/charger/c/event/fault", FAULT),
                        "", '{"topic": "ev/v1/g/charger/c/prop", "envelope": {"rts": 1}}')
    code = main(["rules", "test", str(SHIPPED), "--messages", str(messages)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{messages}:1: not JSON" in err
    assert f"{messages}:4: invalid envelope: 'id' is required" in err
    assert "device-fault" in out
    assert "1 messages, 1 actions (alarms 1), 2 invalid lines" in err
    assert main(["rules", "test", str(SHIPPED), "--messages", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


async def _read_until(stream: asyncio.StreamReader, text: str) -> str:
    seen = ""
    while text not in seen:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {text!r}: {seen}")
        seen += line.decode()
    return seen


async def test_record_from_a_broker_then_test_the_recording(
        amqtt_broker: int, tmp_path: Path) -> None:
    out = tmp_path / "recorded.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voltmesh", "rules", "record", "--host", "127.0.0.1",
        "--port", str(amqtt_broker), "--out", str(out), "--count", "3",
        "--filter", "ev/v1/gw-1/#", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        await asyncio.wait_for(_read_until(proc.stderr, "recording ev/v1/gw-1/#"), 60)
        async with aiomqtt.Client("127.0.0.1", amqtt_broker, identifier="rules-cli-test",
                                  protocol=aiomqtt.ProtocolVersion.V311) as client:
            await client.publish("ev/v1/gw-1/connector/c-1/prop", b"not msgpack", qos=1)
            await client.publish("ev/v1/other/charger/x/event/fault", encode(FAULT), qos=1)
            await client.publish("ev/v1/gw-1/connector/c-1/prop", encode(BATCH), qos=1)
            await client.publish("ev/v1/gw-1/charger/ch-1/event/fault", encode(FAULT), qos=1)
            await client.publish("ev/v1/gw-1/meter/m-1/state", encode(STATE), qos=1)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert b"skipped (not a voltmesh message) ev/v1/gw-1/connector/c-1/prop" in err
    assert b"recorded 3 messages (1 skipped)" in err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["topic"] for line in lines] == [
        "ev/v1/gw-1/connector/c-1/prop", "ev/v1/gw-1/charger/ch-1/event/fault",
        "ev/v1/gw-1/meter/m-1/state",
    ]
    # round trip: the recording runs through `rules test` like the original messages
    original = recorded(tmp_path / "orig",
                        encode_line(parse("ev/v1/gw-1/connector/c-1/prop"), BATCH),
                        encode_line("ev/v1/gw-1/charger/ch-1/event/fault", FAULT),
                        encode_line("ev/v1/gw-1/meter/m-1/state", STATE))
    test = [sys.executable, "-m", "voltmesh", "rules", "test", str(SHIPPED), "--json",
            "--messages"]
    results = []
    for path in (out, original):
        run = await asyncio.create_subprocess_exec(
            *test, str(path), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(run.communicate(), 60)
        assert run.returncode == 0, stderr
        results.append([json.loads(line)["actions"] for line in stdout.splitlines()])
    assert results[0] == results[1]
    assert sum(len(actions) for actions in results[0]) == 7
