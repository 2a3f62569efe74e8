"""``voltmesh rules``: try rule files on recorded messages, and record messages.

::

    voltmesh rules test RULES... --messages FILE.jsonl [--json]
    voltmesh rules record --out FILE.jsonl [--host H] [--port P] [--username U] [--password P]
                          [--filter TOPIC]... [--count N] [--duration S]

``test`` has no side effects: it prints, per message, what each rule would do. A state message
is also run through the ``$presence`` rules as if it were a transition (the live cloud only
sends real transitions, computed by the registry). Exit codes: 0 done, 1 some lines of the
messages file were not messages (each reported with its line), 2 invalid rule files (the error
names file, line and rule) or an unreadable messages file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from cloud.rules import CountingStats, RecordingError, RuleSet, RulesFileError, decode_line
from cloud.rules.report import as_json, describe
from thingmodels.envelope import Envelope
from thingmodels.topics import Kind, Topic


def build_parser() -> argparse.ArgumentParser:
    """The ``voltmesh rules`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="voltmesh rules", description="Try rule files on recorded messages; record messages."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    test = sub.add_parser("test", help="print what rules would do with recorded messages")
    test.add_argument("rules", nargs="+", help="rule files or directories of *.yaml")
    test.add_argument("--messages", required=True,
                      help="recorded messages, one JSON line each ('-' reads stdin)")
    test.add_argument("--json", action="store_true", help="one JSON object per message")
    rec = sub.add_parser("record", help="append messages from a broker to a JSONL file")
    rec.add_argument("--host", default="127.0.0.1")
    rec.add_argument("--port", type=int, default=1883)
    rec.add_argument("--username", default=None)
    rec.add_argument("--password", default=None)
    rec.add_argument("--out", required=True, help="JSONL file (appended to)")
    rec.add_argument("--filter", action="append", dest="filters", default=None,
                     metavar="TOPIC", help="topic filter (repeatable; default ev/v1/#)")
    rec.add_argument("--count", type=int, default=None, help="stop after N messages")
    rec.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    rec.add_argument("--client-id", default=None)
    return parser


def main(argv: list[str]) -> int:
    """Entry point (``voltmesh rules ...``)."""
    args = build_parser().parse_args(argv)
    if args.action == "test":
        return run_test(args.rules, args.messages, as_json_lines=args.json)
    return run_record(args)


def _lines(path: str) -> Iterator[tuple[int, str]]:
    if path == "-":
        yield from enumerate(sys.stdin, start=1)
        return
    with open(path, encoding="utf-8") as handle:
        yield from enumerate(handle, start=1)


def _presence(topic: Topic, env: Envelope) -> tuple[bool, int] | None:
    if topic.kind is not Kind.STATE or env.p is None:
        return None
    online, session = env.p.get("online"), env.p.get("session")
    if isinstance(online, bool) and isinstance(session, int) and not isinstance(session, bool):
        return online, session
    return None


def run_test(rules: list[str], messages: str, *, as_json_lines: bool = False,
             out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``voltmesh rules test``; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    stats = CountingStats()
    try:
        ruleset = RuleSet.load([Path(p) for p in rules], stats=stats)
    except RulesFileError as exc:
        print(f"voltmesh rules: {exc}", file=err)
        return 2
    bad = count = actions = 0
    try:
        for number, line in _lines(messages):
            if not line.strip():
                continue
            try:
                topic, env = decode_line(line)
            except RecordingError as exc:
                print(f"{messages}:{number}: {exc}", file=err)
                bad += 1
                continue
            count += 1
            produced = ruleset.evaluate(topic, env)
            presence = _presence(topic, env)
            if presence is not None:
                produced += ruleset.evaluate_presence(
                    topic.gw, topic.product, topic.device, presence[0], env.rts, presence[1]
                )
            actions += len(produced)
            _print_message(out, number, topic, env, produced, as_json_lines)
    except OSError as exc:
        print(f"voltmesh rules: cannot read {messages}: {exc.strerror or exc}", file=err)
        return 2
    out.flush()
    lanes = ", ".join(f"{lane} {n}" for lane, n in sorted(stats.actions.items()))
    print(f"{count} messages, {actions} actions ({lanes or 'none'}), {bad} invalid lines",
          file=err)
    for (rule, reason), n in sorted(stats.failures.items()):
        print(f"  rule {rule}: {n} evaluation failures ({reason})", file=err)
    return 1 if bad else 0


def _print_message(out: TextIO, number: int, topic: Topic, env: Envelope,
                   produced: list[Any], as_json_lines: bool) -> None:
    if as_json_lines:
        out.write(json.dumps({"line": number, "topic": topic.render(), "id": env.id,
                              "actions": [as_json(a) for a in produced]},
                             ensure_ascii=False) + "\n")
        return
    batch = f" ({len(env.b)} samples)" if env.b is not None else ""
    out.write(f"#{number} {topic.render()} id={env.id}{batch}\n")
    if not produced:
        out.write("    (no rule matched)\n")
    width = max((len(a.rule) for a in produced), default=0)
    for action in produced:
        out.write(f"    {action.rule:<{width}}  {describe(action)}\n")


def run_record(args: argparse.Namespace) -> int:
    """``voltmesh rules record``; returns the exit code."""
    import aiomqtt  # noqa: PLC0415 - only this sub-command needs the client

    from cloud.rules.recorder import record  # noqa: PLC0415

    def ready() -> None:
        print(f"voltmesh rules: recording {', '.join(filters)} from {args.host}:{args.port} "
              f"into {args.out}", file=sys.stderr, flush=True)

    def skipped(reason: str) -> None:
        print(f"voltmesh rules: skipped (not a voltmesh message) {reason}", file=sys.stderr)

    filters = args.filters or ["ev/v1/#"]
    try:
        result = asyncio.run(record(
            Path(args.out), host=args.host, port=args.port, username=args.username,
            password=args.password, filters=filters, count=args.count, duration=args.duration,
            client_id=args.client_id, on_ready=ready, on_skip=skipped,
        ))
    except aiomqtt.MqttError as exc:
        print(f"voltmesh rules: broker {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"voltmesh rules: {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(f"voltmesh rules: recorded {result.recorded} messages ({result.skipped} skipped)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
