"""Prometheus counters of the alarm manager and the notifier (on a registry you give)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class AlarmMetrics:
    """One set of alarm counters; make one per registry and share it (manager + notifier)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.signals = Counter(
            "voltmesh_alarm_signals",
            "Alarm signals by outcome (processed, duplicate, stale, rejected)", ["outcome"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "voltmesh_alarm_transitions", "Alarm transitions, by event", ["event"],
            registry=self.registry,
        )
        self.point_errors = Counter(
            "voltmesh_alarm_point_errors", "Time-series points the emit_point callback refused",
            registry=self.registry,
        )
        self.notifications = Counter(
            "voltmesh_alarm_notifications",
            "Notifications by channel and outcome (queued, sent, retried, failed, dropped)",
            ["channel", "outcome"], registry=self.registry,
        )
