"""The ``voltmesh`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from voltmesh.logs import setup_logging

log = logging.getLogger("voltmesh")


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine; SIGINT/SIGTERM cancel it cleanly."""

    async def main() -> Any:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            log.info("stopped")
            return None

    return asyncio.run(main())


def cmd_demo(args: argparse.Namespace) -> int:
    from voltmesh.demo import run_demo

    _run(run_demo(mqtt_port=args.mqtt_port, http_port=args.http_port, duration=args.duration,
                  data_dir=Path(args.data_dir) if args.data_dir else None,
                  operator_every=args.operator_interval, flood_at=args.flood_at))
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    from edge.config import load_gateway_config
    from edge.errors import EdgeError
    from edge.runtime import EdgeGateway

    try:
        config = load_gateway_config(args.config)
        gateway = EdgeGateway(config)
    except EdgeError as exc:
        print(f"voltmesh edge: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_format)
    _run(_frozen_after(gateway.started, gateway.run(), refreeze_every=config.gc_refreeze))
    return 0


def cmd_cloud(args: argparse.Namespace) -> int:
    from cloud.config import load_cloud_config
    from cloud.errors import CloudError
    from cloud.service import CloudService

    try:
        config = load_cloud_config(args.config)
        setup_logging(config.log_format)
        # migrates the schema, refuses example secrets ...: a clear message and exit 2
        service = CloudService(config, base_dir=Path(args.config).resolve().parent)
    except CloudError as exc:
        print(f"voltmesh cloud: {exc}", file=sys.stderr)
        return 2
    _run(_frozen_after(service.started, service.run()))
    return 0


async def _frozen_after(started: asyncio.Event, run: Coroutine[Any, Any, Any], *,
                        refreeze_every: float | None = None) -> Any:
    """Run a long-lived service; once it has started, move everything it built (models,
    compiled rules, caches) out of the cyclic garbage collector's reach (``gc.freeze``).

    Measured (``python -m bench.pipeline --gc-freeze``): the collector's full passes over that
    heap were 15-28 % of a cloud worker's CPU; frozen, a few %. A gateway's start-up heap is
    ~252,000 objects (models, libraries; ``python -m bench.gc_pause``): freezing it shortens
    every full pass by that much. A
    process-wide policy, so the command that owns the process sets it, not the library (tests
    run many services in one process).

    With ``refreeze_every`` (seconds; ``voltmesh edge``: ``gc_refreeze`` of its config) what
    was built after the start (connected chargers) is frozen too, by a periodic re-freeze that
    also frees garbage cycles among frozen objects (:class:`voltmesh.gcpolicy.GcPolicy`;
    ``python -m bench.gc_pause``).
    """
    from voltmesh.gcpolicy import GcPolicy, freeze

    task = asyncio.ensure_future(run)
    waiter = asyncio.ensure_future(started.wait())
    policy_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done() and not task.done():
            if refreeze_every is None:
                done = freeze()
                log.debug("gc: %d objects frozen after start", done.frozen)
            else:
                policy = GcPolicy(refreeze_every)
                policy.start()
                policy_task = asyncio.create_task(policy.run(), name="gc-policy")
        return await task
    finally:
        waiter.cancel()
        if policy_task is not None:
            policy_task.cancel()
        if not task.done():  # cancelled from outside (SIGTERM): let the service clean up
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def cmd_broker(args: argparse.Namespace) -> int:
    from voltmesh.broker import run_broker

    _run(run_broker(args.host, args.port))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from voltmesh.rules_cli import main as rules_main

    return rules_main(args.rules_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands)."""
    parser = argparse.ArgumentParser(prog="voltmesh", description=__doc__)
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the whole system in one process (embedded defaults)")
    demo.add_argument("--mqtt-port", type=int, default=1883,
                      help="embedded broker port (a free one is used if busy; default 1883)")
    demo.add_argument("--http-port", type=int, default=8000, help="API port (default 8000)")
    demo.add_argument("--duration", type=float, default=None,
                      help="exit cleanly after SECONDS (for scripts)")
    demo.add_argument("--data-dir", default=None, help="where to keep databases (default: temp)")
    demo.add_argument("--operator-interval", type=float, default=None,
                      help="seconds between the demo operator's start/stop steps (default 20)")
    demo.add_argument("--flood-at", type=float, default=None, metavar="SECONDS",
                      help="script water in the cabinet trench SECONDS after the start: the "
                           "interlock stops the charging, cuts the relay, an alarm opens "
                           "(default: no flood)")
    demo.set_defaults(func=cmd_demo)

    edge = sub.add_parser("edge", help="run a site gateway")
    edge.add_argument("--config", required=True, help="gateway YAML file")
    edge.set_defaults(func=cmd_edge)

    cloud = sub.add_parser("cloud", help="run a cloud worker (consumer + API)")
    cloud.add_argument("--config", required=True, help="cloud YAML file")
    cloud.set_defaults(func=cmd_cloud)

    broker = sub.add_parser("broker", help="run the embedded MQTT broker alone (amqtt)")
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument("--port", type=int, default=1883)
    broker.set_defaults(func=cmd_broker)

    # everything after "rules" (--help included: no prefix chars here) goes to voltmesh.rules_cli
    rules = sub.add_parser("rules", add_help=False, prefix_chars="\x00",
                           help="test rule files on recorded messages, record messages "
                                "(voltmesh rules --help)")
    rules.add_argument("rules_args", nargs=argparse.REMAINDER)
    rules.set_defaults(func=cmd_rules)

    from voltmesh.bench_cli import add_parser as add_bench_parser
    from voltmesh.db_cli import add_parser as add_db_parser
    from voltmesh.sim_cli import add_parser as add_sim_parser

    add_db_parser(sub)
    add_sim_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``voltmesh`` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_format)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
