"""``voltmesh sim``: run a fleet of simulated devices against a gateway (``docs/sim.md``).

``add_parser(subparsers)`` registers the sub-command on the ``voltmesh`` parser;
``python -m voltmesh.sim_cli ...`` runs it alone. Exit codes: 0 the run met its targets,
1 it did not, 2 bad arguments. The simulators (:mod:`sim.fleet`, seconds to import) are only
imported when the command runs, so registering the parser costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from sim.fleet import FleetSpec, Progress, Summary

__all__ = ["add_parser", "build_parser", "cmd_sim", "main"]

log = logging.getLogger("voltmesh.sim")

DESCRIPTION = """\
Run a fleet of simulated devices speaking the real protocols against a gateway: YKC piles
and OCPP 1.6J / 2.0.1 chargers connect to the gateway's listeners; Modbus meters, sensors
and parking locks are SERVED on Modbus TCP ports the gateway polls; MQTT cameras and sensors
publish to the site broker. The gateway must know the devices: --write-gateway-config for
its Modbus / MQTT part, --write-provisioning for the desired state admitting the chargers.
Exit code 0 when the run met its targets (everything connected, every session acknowledged,
no more than --max-errors errors), 1 otherwise, 2 for bad arguments."""

EPILOG = """\
examples:
  voltmesh sim --ykc 3 --ykc-port 8768 --duration 60
  voltmesh sim --ykc 2000 --ykc-port 8768 --heartbeat 1 --ramp 200 --duration 120 --json
  voltmesh sim --ocpp16 50 --ocpp201 50 --ocpp-url ws://127.0.0.1:9000/ocpp \\
      --sessions-per-hour 6 --session-minutes 5 --app-share 0.3 \\
      --app-api http://127.0.0.1:8000 --gateway-id gw1 --ledger sessions.jsonl
  voltmesh sim --modbus-meters 20 --parking-locks 10 --modbus-port 1502 --config-only \\
      --write-gateway-config gw-sim.yaml"""


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _share(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text}")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {value}")
    return value


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount like 200.00, got {text!r}") \
            from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be an amount >= 0, got {text}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    counts = parser.add_argument_group("devices (how many of each)")
    for flag, what in (("--ykc", "YKC (云快充) piles"), ("--ocpp16", "OCPP 1.6J chargers"),
                       ("--ocpp201", "OCPP 2.0.1 charging stations"),
                       ("--modbus-meters", "Modbus energy meters (Eastron SDM630 map)"),
                       ("--env-sensors", "environment sensors (MQTT, or Modbus: see "
                                         "--env-sensor-transport)"),
                       ("--cameras", "MQTT AI cameras"),
                       ("--parking-locks", "Modbus parking locks")):
        counts.add_argument(flag, type=_count, default=0, metavar="N", help=what)
    counts.add_argument("--env-sensor-transport", choices=["mqtt", "modbus"], default="mqtt",
                        help="MQTT JSON sensors (default) or XY-MD02 Modbus sensors")

    targets = parser.add_argument_group("targets")
    targets.add_argument("--ykc-host", default="127.0.0.1", help="gateway YKC host")
    targets.add_argument("--ykc-port", type=_port, help="gateway YKC port (needed with --ykc)")
    targets.add_argument("--ykc-prefix", default="3201020",
                         help="pile codes: this prefix + running number (14 digits)")
    targets.add_argument("--ykc-guns", type=_positive_int, default=1, help="guns per pile")
    targets.add_argument("--ykc-bms-frames", action="store_true",
                         help="DC piles also send the BMS frames 0x15/0x17/0x23/0x25")
    targets.add_argument("--ocpp-url", help="gateway OCPP WebSocket URL, e.g. "
                                            "ws://127.0.0.1:9000/ocpp (chargers append their id)")
    targets.add_argument("--ocpp-prefix", default="SIM",
                         help="charger ids PREFIX16-00001 / PREFIX201-00001")
    targets.add_argument("--ocpp-password-prefix", default="sim-",
                         help="HTTP Basic password = PREFIX + charger id (default sim-)")
    targets.add_argument("--ocpp-no-auth", action="store_true",
                         help="send no credentials (gateway security profile 0)")
    targets.add_argument("--ocpp-connectors", type=_positive_int, default=1,
                         help="connectors (EVSEs) per OCPP charger")
    targets.add_argument("--modbus-host", default="127.0.0.1",
                         help="address the simulator serves Modbus TCP on")
    targets.add_argument("--modbus-port", type=_count, default=0,
                         help="first Modbus TCP port served (more follow); 0: free ports")
    targets.add_argument("--modbus-units-per-port", type=_positive_int, default=100,
                         help="unit ids behind each Modbus port (<= 247)")
    targets.add_argument("--modbus-interval", type=_seconds, default=5.0,
                         help="gateway poll interval written into the gateway config")
    targets.add_argument("--modbus-allow-network", action="store_true",
                         help="allow a non-loopback --modbus-host")
    targets.add_argument("--mqtt-host", default="127.0.0.1", help="site broker host")
    targets.add_argument("--mqtt-port", type=_port, default=1883, help="site broker port")
    targets.add_argument("--mqtt-username")
    targets.add_argument("--mqtt-password")
    targets.add_argument("--mqtt-interval", type=_seconds, default=5.0,
                         help="seconds between an MQTT device's reports")

    timing = parser.add_argument_group("message intervals")
    timing.add_argument("--heartbeat", type=_seconds,
                        help="heartbeat interval (YKC 0x03; OCPP, overriding the gateway's "
                             "BootNotification interval). Default: YKC 10 s, OCPP the gateway's")
    timing.add_argument("--meter-interval", type=_seconds, default=15.0,
                        help="YKC real-time data (0x13) / OCPP meter values while charging")
    timing.add_argument("--idle-interval", type=_seconds, default=300.0,
                        help="YKC real-time data while idle")

    sessions = parser.add_argument_group("sessions")
    sessions.add_argument("--sessions-per-hour", type=_non_negative, default=1.0,
                          help="sessions per connector per hour (0: none)")
    sessions.add_argument("--session-minutes", type=_seconds, default=30.0,
                          help="mean session length in minutes (each 0.5x-1.5x of it)")
    sessions.add_argument("--plug-delay", type=_non_negative, default=0.0,
                          help="YKC app starts: seconds until the car is plugged (< 60)")
    sessions.add_argument("--app-share", type=_share, default=0.0,
                          help="share of sessions started from the app (cloud API "
                               "remoteStart); the rest by card")
    sessions.add_argument("--app-api", help="the cloud's HTTP API for app starts, "
                                            "e.g. http://127.0.0.1:8000")
    sessions.add_argument("--app-token", help="bearer token for the cloud API")
    sessions.add_argument("--gateway-id", help="gateway the chargers are provisioned to")
    sessions.add_argument("--balance", type=_money, default=Decimal("200.00"),
                          help="wallet balance sent with app starts (CNY)")
    sessions.add_argument("--cards", type=_positive_int, default=100,
                          help="size of the drivers' card pool")

    run = parser.add_argument_group("the run")
    run.add_argument("--duration", type=_seconds,
                     help="seconds to run (ramp included); default: until Ctrl-C")
    run.add_argument("--ramp", type=_seconds, default=100.0, metavar="PER_SECOND",
                     help="connections per second over the whole fleet")
    run.add_argument("--drain-timeout", type=_non_negative, default=30.0,
                     help="seconds to wait at the end for the platform to acknowledge the "
                          "sessions stopped")
    run.add_argument("--seed", type=int, default=0, help="same seed: same fleet and schedule")
    run.add_argument("--processes", type=_positive_int, default=1,
                     help="split the fleet over N worker processes")
    run.add_argument("--ledger", metavar="FILE",
                     help="write every completed session (JSON lines) to FILE")
    run.add_argument("--min-connected", type=_share, default=1.0,
                     help="share of each kind that must be connected at the end (default 1)")
    run.add_argument("--max-errors", type=_count, default=0,
                     help="errors allowed for the run to pass (default 0)")

    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout (progress goes to stderr)")
    output.add_argument("--progress-interval", type=_seconds, default=10.0,
                        help="seconds between progress lines when stdout is not a terminal")
    output.add_argument("--write-gateway-config", metavar="FILE",
                        help="write the gateway config (Modbus devices, site broker) to FILE")
    output.add_argument("--write-provisioning", metavar="FILE",
                        help="write the gateway desired state (chargers, cards, tariff) as JSON")
    output.add_argument("--config-only", action="store_true",
                        help="write / print the gateway config and provisioning, then exit")
    output.add_argument("-v", "--verbose", action="store_true",
                        help="log the simulators' connection problems")


def spec_from_args(args: argparse.Namespace) -> FleetSpec:
    """The validated spec of parsed arguments (:class:`SpecError` naming the option)."""
    from sim.fleet import FleetSpec, build_spec  # noqa: PLC0415 - see the module docstring

    values: dict[str, Any] = {name: getattr(args, name) for name in FleetSpec.model_fields
                              if name != "ocpp_password_prefix" and hasattr(args, name)}
    values["ocpp_password_prefix"] = None if args.ocpp_no_auth else args.ocpp_password_prefix
    return build_spec(**values)


def _write(path: str, text: str) -> None:
    from sim.fleet import SpecError  # noqa: PLC0415

    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot write {path}: {exc.strerror or exc}") from exc


def cmd_sim(args: argparse.Namespace) -> int:
    """Run ``voltmesh sim`` with parsed arguments; the exit code."""
    from sim.fleet import (  # noqa: PLC0415 - see the module docstring
        FleetError,
        Kind,
        Progress,
        SpecError,
        gateway_snippet,
        provisioning,
        render_yaml,
    )

    parser: argparse.ArgumentParser | None = getattr(args, "sim_parser", None)
    try:
        spec = spec_from_args(args)
    except SpecError as exc:
        return _usage_error(parser, str(exc))
    _quiet_logs(args.verbose)
    info: TextIO = sys.stderr if args.json else sys.stdout
    try:
        if args.config_only:
            return _config_only(spec, args)
        if args.write_provisioning:
            _write(args.write_provisioning, json.dumps(provisioning(spec), indent=2) + "\n")
            print(f"provisioning written to {args.write_provisioning}", file=info)
    except SpecError as exc:
        return _usage_error(parser, str(exc))
    progress = Progress(info, interval=args.progress_interval)
    snippet_path: str | None = args.write_gateway_config
    needs_snippet = spec.modbus_devices() > 0 or spec.cameras > 0 or (
        spec.env_sensors > 0 and not spec.is_modbus(Kind.ENV_SENSOR))

    def on_ports(ports: list[int]) -> None:
        if not needs_snippet:
            return
        text = render_yaml(gateway_snippet(spec, ports))
        if snippet_path:
            try:
                _write(snippet_path, text)
            except SpecError as exc:
                print(f"voltmesh sim: {exc}", file=sys.stderr)
                return
            print(f"gateway config written to {snippet_path}", file=info)
        else:
            print("# gateway config for the simulated Modbus / MQTT devices "
                  "(or --write-gateway-config FILE):", file=info)
            print(text, file=info, end="")
        info.flush()

    if spec.modbus_devices() == 0:
        on_ports([])
    try:
        summary = asyncio.run(_run(spec, progress, on_ports if spec.modbus_devices() else None))
    except FleetError as exc:
        print(f"voltmesh sim: {exc}", file=sys.stderr)
        return 1
    if summary is None:
        print("voltmesh sim: stopped before the summary", file=sys.stderr)
        return 1
    if args.json:
        print(summary.render(), file=sys.stderr)
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.render())
    return summary.exit_code


def _config_only(spec: FleetSpec, args: argparse.Namespace) -> int:
    from sim.fleet import gateway_snippet, provisioning, render_yaml  # noqa: PLC0415

    adapters = gateway_snippet(spec)
    snippet = render_yaml(adapters)
    doc = json.dumps(provisioning(spec), indent=2) + "\n"
    if args.write_gateway_config:
        _write(args.write_gateway_config, snippet)
    if args.write_provisioning:
        _write(args.write_provisioning, doc)
    if not args.write_gateway_config and adapters["adapters"]:  # chargers only: nothing
        print(snippet, end="")
    if not args.write_provisioning:
        print(doc, end="")
    return 0


async def _run(spec: FleetSpec, progress: Progress, on_ports: Any) -> Summary | None:
    from sim.fleet import run_fleet  # noqa: PLC0415

    stop = asyncio.Event()
    task = asyncio.ensure_future(run_fleet(spec, stop=stop, progress=progress,
                                           on_modbus_ports=on_ports))
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if not stop.is_set():  # first Ctrl-C: drain and summarise; second: give up
            stop.set()
            print("\nvoltmesh sim: stopping (draining sessions; Ctrl-C again to abort)",
                  file=sys.stderr, flush=True)
        else:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, interrupt)
    try:
        return await task
    except asyncio.CancelledError:
        return None


def _quiet_logs(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in ("voltmesh.sim", "sim", "ocpp", "websockets", "pymodbus", "amqtt", "httpx"):
        logging.getLogger(name).setLevel(level if name != "ocpp" else logging.WARNING)


def _usage_error(parser: argparse.ArgumentParser | None, message: str) -> int:
    if parser is not None:
        parser.error(message)  # prints usage and exits with 2
    print(f"voltmesh sim: error: {message}", file=sys.stderr)
    return 2


def add_parser(subparsers: Any) -> None:
    """Register ``sim`` on the ``voltmesh`` command's sub-parsers."""
    parser = subparsers.add_parser(
        "sim", help="run a fleet of simulated devices against a gateway",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=cmd_sim, sim_parser=parser)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m voltmesh.sim_cli``."""
    parser = argparse.ArgumentParser(prog="voltmesh sim", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=cmd_sim)
    parser.set_defaults(sim_parser=parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m voltmesh.sim_cli ARGS``."""
    args = build_parser().parse_args(argv)
    return cmd_sim(args)


if __name__ == "__main__":
    sys.exit(main())
