"""Benchmark: messages/s and actions/s through ``RuleSet.evaluate`` on one core.

    python -m bench.rules_throughput [--messages 20000] [--extra 500] [--repeat 3]

Three runs over the same realistic message mix (wire values: decimals as strings, as the
consumer hands them over):

* ``shipped``: the shipped rules (``config/rules/``);
* ``shipped+N``: the same plus ``--extra`` rules whose filters cannot match the mix (other
  gateways, other events) but each with a condition and an action: with the topic-filter trie
  they cost nothing; an engine that tried every rule would pay for each of them;
* ``naive select``: only the rule *selection* done without an index (every filter matched
  against every topic with ``thingmodels.topics.matches``), for comparison.

Mix per 100 messages: 40 connector property batches of 5 samples, 25 meter reports, 10
env-sensor reports, 10 sessionUpdated events, 5 charger faults, 5 waterDetected events, 5
camera plate events (no rule). Rates are per CPU second of this process (one core; the
evaluation is pure Python, no I/O) and also per wall second. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from cloud.rules import CountingStats, RuleSet
from thingmodels.envelope import Envelope, Sample
from thingmodels.topics import Topic, matches, parse

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "rules"
STATUSES = ["available", "preparing", "charging", "charging", "charging", "finishing"]


def _connector_batch(rng: random.Random, gw: str, dev: str, n: int) -> tuple[Topic, Envelope]:
    samples = []
    energy = rng.uniform(0, 60)
    for i in range(5):
        energy += 0.05
        samples.append(Sample(1_700_000_000_000 + n * 1000 + i * 200, {
            "status": rng.choice(STATUSES), "power": round(rng.uniform(0, 120), 1),
            "voltage": round(rng.uniform(380, 760), 1), "current": round(rng.uniform(0, 250), 1),
            "energy": f"{energy:.3f}", "meterEnergy": f"{10_000 + energy:.3f}",
            "soc": round(rng.uniform(10, 99), 1), "gunTemperature": round(rng.uniform(30, 90), 1),
            "sessionId": f"S{n % 997:04d}",
        }))
    return parse(f"ev/v1/{gw}/connector/{dev}/prop"), Envelope(
        id=f"B{n:025d}", rts=1_700_000_000_000 + n, seq=n, src="ykc16", b=tuple(samples))


def _single(topic: str, n: int, p: dict[str, Any]) -> tuple[Topic, Envelope]:
    return parse(topic), Envelope(id=f"M{n:025d}", rts=1_700_000_000_000 + n,
                                  ts=1_700_000_000_000 + n, seq=n, src="modbus", p=p)


def message_mix(count: int, seed: int = 7) -> list[tuple[Topic, Envelope]]:
    """A reproducible mix of ``count`` messages (see the module docstring)."""
    rng = random.Random(seed)
    out: list[tuple[Topic, Envelope]] = []
    for n in range(count):
        gw = f"site-{rng.randrange(50):02d}"
        slot = n % 100
        if slot < 40:
            out.append(_connector_batch(rng, gw, f"pile{rng.randrange(20):02d}-1", n))
        elif slot < 65:
            out.append(_single(f"ev/v1/{gw}/meter/meter-1/prop", n, {
                "voltageL1": 231.2, "voltageL2": 229.8, "voltageL3": 230.4, "currentL1": 41.0,
                "currentL2": 40.2, "currentL3": 39.9, "power": round(rng.uniform(10, 90), 2),
                "energyImport": f"{rng.uniform(1e4, 1e5):.2f}",
            }))
        elif slot < 75:
            out.append(_single(f"ev/v1/{gw}/env_sensor/cab-1/prop", n, {
                "temperature": round(rng.uniform(15, 45), 1), "humidity": 55.0}))
        elif slot < 85:
            out.append(_single(f"ev/v1/{gw}/connector/pile01-1/event/sessionUpdated", n, {
                "sessionId": f"S{n:06d}", "seq": n % 50, "energy": f"{rng.uniform(0, 60):.3f}",
                "amount": f"{rng.uniform(0, 90):.2f}", "power": 60.5}))
        elif slot < 90:
            out.append(_single(f"ev/v1/{gw}/charger/pile01/event/fault", n, {
                "code": f"E{rng.randrange(30)}", "active": rng.random() < 0.5}))
        elif slot < 95:
            out.append(_single(f"ev/v1/{gw}/env_sensor/water-1/event/waterDetected", n,
                               {"active": rng.random() < 0.5}))
        else:
            out.append(_single(f"ev/v1/{gw}/camera/cam-1/event/plateRecognized", n,
                               {"plate": "粤B12345", "confidence": 0.97}))
    return out


def extra_rules(directory: Path, count: int) -> Path:
    """``count`` rules that cannot match the mix, each with a condition and an action."""
    lines = ["rules:"]
    for i in range(count):
        if i % 2:
            source = f"ev/v1/other-{i:04d}/connector/+/prop"  # another gateway
        else:
            source = "ev/v1/+/connector/+/event/bmsStatus"  # an event not in the mix
        lines += [
            f"  - id: extra-{i:04d}",
            f"    from: [{source}]",
            f"    where: \"(p&['sessionId'] ?? '') != 'x{i}'\"",
            "    do:",
            f"      - alarm: {{type: extra{i}, level: info}}",
        ]
    path = directory / "extra.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def one_pass(ruleset: RuleSet, messages: list[tuple[Topic, Envelope]]) -> dict[str, float]:
    """One timed pass over the messages."""
    actions = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for topic, env in messages:
        actions += len(ruleset.evaluate(topic, env))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "messages": len(messages), "actions": actions, "cpu_s": cpu, "wall_s": wall,
        "messages_per_cpu_s": len(messages) / cpu, "actions_per_cpu_s": actions / cpu,
        "messages_per_wall_s": len(messages) / wall, "us_per_message": cpu / len(messages) * 1e6,
    }


def run(rulesets: dict[str, RuleSet], messages: list[tuple[Topic, Envelope]],
        repeat: int) -> dict[str, dict[str, float]]:
    """Best of ``repeat`` passes per rule set, passes interleaved (fair on a busy machine)."""
    samples = sum(len(env.samples()) for _, env in messages)
    best: dict[str, dict[str, float]] = {}
    for ruleset in rulesets.values():  # warm-up
        for topic, env in messages[: min(len(messages), 2000)]:
            ruleset.evaluate(topic, env)
    for _ in range(repeat):
        for name, ruleset in rulesets.items():
            result = one_pass(ruleset, messages)
            if name not in best or result["cpu_s"] < best[name]["cpu_s"]:
                best[name] = result
    for name, ruleset in rulesets.items():
        best[name]["samples"] = samples
        best[name]["rules"] = len(ruleset.rules)
        best[name]["candidate_rules_per_message"] = sum(
            len(ruleset.candidates(topic)) for topic, _ in messages) / len(messages)
    return best


def naive_select(filters: list[str], messages: list[tuple[Topic, Envelope]]) -> dict[str, float]:
    """Rule selection without an index: every filter against every topic."""
    topics = [topic.render() for topic, _ in messages]
    cpu0 = time.process_time()
    selected = 0
    for topic in topics:
        for topic_filter in filters:
            if matches(topic_filter, topic):
                selected += 1
    cpu = time.process_time() - cpu0
    return {"filters": len(filters), "us_per_message": cpu / len(topics) * 1e6,
            "selected": selected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--extra", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    messages = message_mix(args.messages)
    shipped = RuleSet.load([SHIPPED], stats=CountingStats())
    with tempfile.TemporaryDirectory() as tmp:
        loaded = time.perf_counter()
        bigger = RuleSet.load([SHIPPED, extra_rules(Path(tmp), args.extra)],
                              stats=CountingStats())
        load_s = time.perf_counter() - loaded
    names = ("shipped", f"shipped+{args.extra} non-matching")
    results = run(dict(zip(names, (shipped, bigger), strict=True)), messages, args.repeat)
    base, more = results[names[0]], results[names[1]]
    filters = [s for r in bigger.rules for s in r.sources if s != "$presence"]
    naive = naive_select(filters, messages[: min(len(messages), 5000)])

    print(f"rule throughput, one core, {base['messages']:,} messages "
          f"({base['samples']:,.0f} samples incl. batches), best of {args.repeat}")
    print(f"{'rule set':<26}{'rules':>6}{'cand./msg':>10}{'msg/s (cpu)':>13}{'actions/s':>11}"
          f"{'us/msg':>8}{'msg/s (wall)':>14}")
    for name in names:
        r = results[name]
        print(f"{name:<26}{r['rules']:>6.0f}{r['candidate_rules_per_message']:>10.2f}"
              f"{r['messages_per_cpu_s']:>13,.0f}{r['actions_per_cpu_s']:>11,.0f}"
              f"{r['us_per_message']:>8.1f}{r['messages_per_wall_s']:>14,.0f}")
    print(f"naive selection only ({naive['filters']} filters, no index): "
          f"{naive['us_per_message']:.1f} us per message before evaluating anything")
    print(f"loading {len(bigger.rules)} rules (compile every expression once): {load_s:.2f} s")
    print(json.dumps({"bench": "rules_throughput", "shipped": base, "with_extra": more,
                      "extra_rules": args.extra, "naive_select": naive,
                      "load_s_with_extra": load_s}))


if __name__ == "__main__":
    main()
