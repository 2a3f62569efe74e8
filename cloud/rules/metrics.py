"""Prometheus metrics of the rule engine (on the registry it is given)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from cloud.actions import Lane


class RuleMetrics:
    """Counters and gauges; also the :class:`~cloud.rules.stats.RuleStats` of the engine."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.matches = Counter(
            "voltmesh_rules_matches", "Messages (batch samples) a rule matched, by rule",
            ["rule"], registry=registry,
        )
        self.actions = Counter(
            "voltmesh_rules_actions", "Actions produced, by lane", ["lane"], registry=registry,
        )
        self.eval_errors = Counter(
            "voltmesh_rules_eval_errors",
            "Evaluation failures (no match / action skipped), by rule and reason "
            "(missing, type, payload, internal)",
            ["rule", "reason"], registry=registry,
        )
        self.reloads = Counter(
            "voltmesh_rules_reloads", "Rule-file reloads, by result (ok, failed)", ["result"],
            registry=registry,
        )
        self.loaded = Gauge(
            "voltmesh_rules_loaded", "Enabled rules in the current rule set", registry=registry,
        )
        self._matches: dict[str, Counter] = {}
        self._lanes = {lane: self.actions.labels(lane=lane.value) for lane in Lane}
        for result in ("ok", "failed"):
            self.reloads.labels(result=result)

    def matched(self, rule: str, count: int = 1) -> None:
        child = self._matches.get(rule)
        if child is None:
            child = self._matches[rule] = self.matches.labels(rule=rule)
        child.inc(count)

    def failed(self, rule: str, reason: str) -> None:
        self.eval_errors.labels(rule=rule, reason=reason).inc()

    def emitted(self, lane: Lane, count: int = 1) -> None:
        self._lanes[lane].inc(count)
