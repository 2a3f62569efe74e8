"""``voltmesh sim`` arguments: clear errors with exit code 2; the config it writes is one the
gateway loads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from edge.adapters.ocpp import password_hash
from edge.config import GatewayConfig, check_referenced_files
from voltmesh.sim_cli import add_parser, main

BAD = [
    ([], "no devices"),
    (["--ykc", "3"], "--ykc needs --ykc-port"),
    (["--ykc", "-1"], "argument --ykc: must be >= 0"),
    (["--ykc", "three"], "argument --ykc: expected a whole number"),
    (["--ocpp16", "1", "--ocpp-url", "http://127.0.0.1/ocpp"], "--ocpp-url must be a ws://"),
    (["--ocpp201", "1"], "need --ocpp-url"),
    (["--ykc", "1", "--ykc-port", "9", "--sessions-per-hour", "3", "--session-minutes", "30"],
     "leaves no idle time"),
    (["--ykc", "1", "--ykc-port", "9", "--app-share", "0.5"], "--app-share > 0 needs --app-api"),
    (["--ykc", "1", "--ykc-port", "9", "--app-share", "1.5"], "share between 0 and 1"),
    (["--cameras", "1", "--app-share", "0.5", "--app-api", "http://x", "--gateway-id", "g"],
     "--app-share needs chargers"),
    (["--ykc", "2", "--ykc-port", "9", "--processes", "3"], "--processes 3 is more than the 2"),
    (["--modbus-meters", "1", "--modbus-host", "10.1.2.3"], "not a loopback address"),
    (["--ykc", "1", "--ykc-port", "70000"], "TCP port 1..65535"),
    (["--ykc", "1", "--ykc-port", "9", "--duration", "0"], "positive number of seconds"),
    (["--ykc", "1", "--ykc-port", "9", "--duration", "nan"], "positive number of seconds"),
    (["--ykc", "1", "--ykc-port", "9", "--plug-delay", "90"], "--plug-delay:"),
    (["--ykc", "1", "--ykc-port", "9", "--modbus-units-per-port", "300"],
     "--modbus-units-per-port:"),
    (["--ykc", "100", "--ykc-port", "9", "--ykc-prefix", "3201020000000"], "do not fit"),
    (["--ykc", "1", "--ykc-port", "9", "--ykc-prefix", "32AB"], "--ykc-prefix:"),
    (["--ykc", "1", "--ykc-port", "9", "--balance", "lots"], "expected an amount"),
    (["--modbus-meters", "1", "--config-only"], "--modbus-port: the Modbus ports are only known"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_arguments_exit_2_with_a_clear_message(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "usage: voltmesh sim" in err


def test_the_subcommand_registers_on_the_voltmesh_parser(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="voltmesh")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sim", "--ykc", "2", "--ykc-port", "9", "--seed", "3"])
    assert (args.ykc, args.ykc_port, args.seed, args.command) == (2, 9, 3, "sim")
    args = parser.parse_args(["sim", "--ykc", "1"])
    with pytest.raises(SystemExit) as info:
        args.func(args)
    assert info.value.code == 2 and "--ykc needs --ykc-port" in capsys.readouterr().err


def test_config_only_writes_a_gateway_config_and_provisioning_the_platform_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snippet, doc = tmp_path / "gw.yaml", tmp_path / "prov.json"
    code = main(["--ykc", "2", "--ykc-port", "9", "--ocpp16", "1", "--ocpp201", "1",
                 "--ocpp-url", "ws://127.0.0.1:9/ocpp", "--modbus-meters", "3",
                 "--parking-locks", "2", "--env-sensors", "1", "--env-sensor-transport",
                 "modbus", "--cameras", "2", "--modbus-port", "15020",
                 "--modbus-units-per-port", "4", "--mqtt-port", "18830", "--cards", "5",
                 "--config-only", "--write-gateway-config", str(snippet),
                 "--write-provisioning", str(doc)])
    assert code == 0 and capsys.readouterr().out == ""
    adapters = yaml.safe_load(snippet.read_text())["adapters"]
    config = GatewayConfig(gateway_id="gw", adapters=adapters)
    check_referenced_files(config)  # every register map loads against the thing models
    assert config.adapters.modbus is not None and config.adapters.mqtt_devices is not None
    devices = config.adapters.modbus.devices
    assert [(d.id, d.port, d.device_id) for d in devices] == [
        ("mb-meter-0001", 15020, 1), ("mb-meter-0002", 15020, 2), ("mb-meter-0003", 15020, 3),
        ("mb-env-0001", 15020, 4), ("mb-lock-0001", 15021, 1), ("mb-lock-0002", 15021, 2)]
    assert config.adapters.mqtt_devices.broker.port == 18830
    provisioned = json.loads(doc.read_text())
    chargers = {d["id"]: d for d in provisioned["devices"]}
    assert set(chargers) == {"32010200000001", "32010200000002", "SIM16-00001", "SIM201-00001"}
    assert chargers["SIM16-00001"]["password_sha256"] == password_hash("sim-SIM16-00001")
    assert chargers["32010200000001"]["protocol"] == "ykc"
    assert [c["physical"] for c in provisioned["cards"]][:2] == ["D1000001", "D1000002"]
    assert len(provisioned["cards"]) == 5 and provisioned["tariff"]["version"] == 1


def test_config_only_prints_without_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cameras", "1", "--ocpp16", "1", "--ocpp-url", "ws://127.0.0.1:9/ocpp",
                 "--ocpp-no-auth", "--config-only"]) == 0
    out = capsys.readouterr().out
    assert "mqtt_devices:" in out and "site.yaml" in out
    doc = json.loads(out[out.index("{"):])
    assert doc["devices"] == [{"product": "charger", "id": "SIM16-00001", "protocol": "ocpp"}]
