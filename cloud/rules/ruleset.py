"""A loaded, immutable set of rules: which rules a message concerns, and what they do."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cloud.actions import Action, Lane
from cloud.rules.actions import Report
from cloud.rules.coerce import Coercer
from cloud.rules.expr import EvalFailure
from cloud.rules.filters import PRESENCE, FilterTrie
from cloud.rules.loader import CompiledRule, load_rules
from cloud.rules.stats import CountingStats, RuleStats
from cloud.rules.subject import KINDS, Subject
from thingmodels.envelope import Envelope, Sample
from thingmodels.errors import PayloadError, UnknownModelError
from thingmodels.loader import ModelRegistry, builtin_models
from thingmodels.topics import Topic

log = logging.getLogger("voltmesh.cloud.rules")

#: topic strings whose candidate rules are remembered (the memo is emptied when full)
MATCH_CACHE = 65_536


class _Tally:
    """Matches and actions of one evaluation, handed to the stats once at its end."""

    __slots__ = ("emitted", "matched")

    def __init__(self) -> None:
        self.matched: dict[str, int] = {}
        self.emitted: dict[Lane, int] = {}

    def flush(self, stats: RuleStats) -> None:
        for rule, count in self.matched.items():
            stats.matched(rule, count)
        for lane, count in self.emitted.items():
            stats.emitted(lane, count)


class RuleSet:
    """Rules indexed by topic filter; :meth:`evaluate` is pure (no I/O) and never raises.

    Counts go to ``stats`` (a :class:`~cloud.rules.stats.CountingStats` unless given): a
    missing field or a type error in an expression is "no match" (or the action skipped) for
    that message, counted per rule and reason and logged once per rule and reason.
    """

    def __init__(self, rules: Sequence[CompiledRule], *, models: ModelRegistry | None = None,
                 stats: RuleStats | None = None) -> None:
        self.rules = tuple(rules)
        self.models = models if models is not None else builtin_models()
        self.stats: RuleStats = stats if stats is not None else CountingStats()
        self._coercer = Coercer(self.models)
        self._trie: FilterTrie[CompiledRule] = FilterTrie()
        self._presence: list[CompiledRule] = []
        self._logged: set[tuple[str, str]] = set()
        self._matched: dict[str, tuple[CompiledRule, ...]] = {}
        self._reporters: dict[str, Report] = {}
        for rule in self.rules:
            if not rule.enabled:
                continue
            for source in rule.sources:
                if source == PRESENCE:
                    self._presence.append(rule)
                else:
                    self._trie.add(source, rule)

    @classmethod
    def load(cls, paths: Sequence[Path | str], *, models: ModelRegistry | None = None,
             stats: RuleStats | None = None) -> RuleSet:
        """Load rule files and directories of ``*.yaml``; raises RulesFileError."""
        models = models if models is not None else builtin_models()
        return cls(load_rules(paths, models), models=models, stats=stats)

    @property
    def enabled(self) -> int:
        """How many rules are enabled."""
        return sum(1 for rule in self.rules if rule.enabled)

    def candidates(self, topic: Topic) -> list[CompiledRule]:
        """The enabled rules whose ``from`` matches ``topic`` (before ``where``)."""
        return list(self._match(topic.render()))

    def _match(self, rendered: str) -> tuple[CompiledRule, ...]:
        """The trie's answer for a topic string, remembered (a set is immutable)."""
        rules = self._matched.get(rendered)
        if rules is None:
            rules = tuple(self._trie.match(rendered.split("/")))
            if len(self._matched) >= MATCH_CACHE:
                self._matched.clear()
            self._matched[rendered] = rules
        return rules

    def evaluate(self, topic: Topic, env: Envelope) -> list[Action]:
        """The actions of every matching rule, message by message (sample by sample)."""
        kind = KINDS.get(topic.kind.value)
        if kind is None:  # downlink traffic: not for rules
            return []
        rendered = topic.render()
        rules = self._match(rendered)
        if not rules:
            return []
        samples = env.samples()
        batch = env.b is not None
        if not samples and not batch:
            samples = [Sample(None, {})]
        code = env.code if kind == "reply" else None
        gw, product, device, name = topic.gw, topic.product, topic.device, topic.name
        msg_id, rts, seq, src = env.id, env.rts, env.seq, env.src
        default_ts = env.ts if env.ts is not None else rts
        # the variables every sample shares; each sample gets a copy with its own ts and p
        base: dict[str, Any] = {
            "gw": gw, "product": product, "device": device, "kind": kind, "name": name,
            "id": msg_id, "ts": default_ts, "rts": rts, "seq": seq, "src": src, "code": code,
            "topic": rendered, "p": None,
        }
        coerce = self._coercer.coerce
        validate = self._validate
        tally = _Tally()
        out: list[Action] = []
        try:
            for index, sample in enumerate(samples):
                raw = sample.p
                ts = sample.ts if sample.ts is not None else default_ts
                params = coerce(product, kind, name, raw)
                ctx = base.copy()
                ctx["ts"] = ts
                ctx["p"] = MappingProxyType(params)
                subject = Subject(gw, product, device, kind, name, msg_id, ts, rts, seq, src,
                                  rendered, raw, ctx, msg_id, validate)
                suffix = f":{index}" if batch else ""
                for rule in rules:
                    self._run(rule, subject, suffix, out, tally)
        finally:
            tally.flush(self.stats)
        return out

    def evaluate_presence(self, gw: str, product: str, device: str, online: bool, ts_ms: int,
                          session: int, *, cause: str | None = None) -> list[Action]:
        """The actions of ``$presence`` rules for a device (or gateway) going online/offline.

        ``cause`` tells a change not made by a state message apart in the idempotency keys
        (a gateway's silence, and hearing from it again, within one session)."""
        if not self._presence:
            return []
        params = {"online": online, "session": session}
        base = f"presence:{gw}/{product}/{device}:{session}:{online}"
        if cause is not None:
            base += f":{cause}"
        subject = Subject.make(
            gw=gw, product=product, device=device, kind="presence", name=None, msg_id=base,
            ts_ms=ts_ms, rts=ts_ms, seq=None, src=None, topic=PRESENCE, raw=params,
            params=params, key_base=base,
        )
        out: list[Action] = []
        tally = _Tally()
        try:
            for rule in self._presence:
                self._run(rule, subject, "", out, tally)
        finally:
            tally.flush(self.stats)
        return out

    def _validate(self, subject: Subject) -> dict[str, Any]:
        try:
            return self._coercer.validate(subject.product, subject.kind, subject.name,
                                          subject.raw)
        except (PayloadError, UnknownModelError) as exc:
            raise EvalFailure("payload", str(exc)) from None

    def _run(self, rule: CompiledRule, s: Subject, suffix: str, out: list[Action],
             tally: _Tally) -> None:
        if rule.where is not None:
            try:
                if not rule.where.condition(s.ctx):
                    return
            except EvalFailure as failure:
                self._failed(failure, s, rule.id)
                return
            except Exception:  # noqa: BLE001 - a bug must not cost the other rules this message (logged in _internal)
                self._internal(s, rule.id)
                return
        matched = tally.matched
        matched[rule.id] = matched.get(rule.id, 0) + 1
        report = self._reporter(rule.id)
        prefix = f"{s.key_base}:{rule.id}:"
        for i, builder in enumerate(rule.actions):
            try:
                action = builder.build(s, f"{prefix}{i}{suffix}", report)
            except EvalFailure as failure:
                self._failed(failure, s, rule.id)
                continue
            except Exception:  # noqa: BLE001 - a bug must not cost the other actions (logged in _internal)
                self._internal(s, rule.id)
                continue
            if action is not None:
                out.append(action)
                lanes = tally.emitted
                lanes[action.lane] = lanes.get(action.lane, 0) + 1

    def _reporter(self, rule: str) -> Report:
        report = self._reporters.get(rule)
        if report is None:
            def report(failure: EvalFailure, s: Subject) -> None:
                self._failed(failure, s, rule)
            self._reporters[rule] = report
        return report

    def _internal(self, s: Subject, rule: str) -> None:
        self.stats.failed(rule, "internal")
        if (rule, "internal") not in self._logged:
            self._logged.add((rule, "internal"))
            log.exception("rule %s failed on message %s (%s): a bug, please report; counted as "
                          "reason 'internal', logged once", rule, s.msg_id, s.topic)

    def _failed(self, failure: EvalFailure, s: Subject, rule: str) -> None:
        self.stats.failed(rule, failure.reason)
        if (rule, failure.reason) not in self._logged:
            self._logged.add((rule, failure.reason))
            log.warning("rule %s: %s on message %s (%s); counted in "
                        "voltmesh_rules_eval_errors_total, logged once", rule, failure,
                        s.msg_id, s.topic)
