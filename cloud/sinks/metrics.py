"""Prometheus metrics of the sink queues, labelled by sink name, one set per registry.

=====================================  =========================================================
metric                                 meaning
=====================================  =========================================================
``voltmesh_sink_queued_total``         actions accepted into a queue
``voltmesh_sink_written_total``        actions written (done) by the sink
``voltmesh_sink_retried_total``        actions scheduled for another attempt
``voltmesh_sink_dropped_total``        actions given up, by ``reason`` (see below)
``voltmesh_sink_duplicates_total``     actions refused because their key was seen recently
``voltmesh_sink_failed_batches_total`` failed write attempts, by ``error``
                                       (retryable, permanent, partial, unexpected)
``voltmesh_sink_queue_depth``          actions waiting in the queue (not counting in-flight)
``voltmesh_sink_in_flight``            batches being written right now
``voltmesh_sink_write_seconds``        duration of every write attempt (histogram)
=====================================  =========================================================

Drop reasons: ``queue_full`` (drop_oldest overflow), ``max_attempts``, ``ttl`` (waited too long),
``permanent`` (the writer said it can never succeed), ``no_sink`` (no sink for the lane; the
``sink`` label is then the lane name), ``closed`` (put while shutting down), ``shutdown`` (still
queued or retrying when the drain timed out).
"""

from __future__ import annotations

import weakref
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DROP_REASONS = ("queue_full", "max_attempts", "ttl", "permanent", "no_sink", "closed", "shutdown")


class SinkMetrics:
    """The sink metrics registered on one registry (get them with :meth:`on`)."""

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, SinkMetrics]] = \
        weakref.WeakKeyDictionary()

    @classmethod
    def on(cls, registry: CollectorRegistry) -> SinkMetrics:
        """The metrics of ``registry``, registered on first use (every queue shares them)."""
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls(registry)
            cls._by_registry[registry] = metrics
        return metrics

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queued = Counter("voltmesh_sink_queued", "Actions accepted into a sink queue",
                              ["sink"], registry=registry)
        self.written = Counter("voltmesh_sink_written", "Actions written by a sink", ["sink"],
                               registry=registry)
        self.retried = Counter("voltmesh_sink_retried", "Actions scheduled for another attempt",
                               ["sink"], registry=registry)
        self.dropped = Counter("voltmesh_sink_dropped", "Actions given up, by reason",
                               ["sink", "reason"], registry=registry)
        self.duplicates = Counter("voltmesh_sink_duplicates",
                                  "Actions refused: same idempotency key seen recently",
                                  ["sink"], registry=registry)
        self.failed_batches = Counter("voltmesh_sink_failed_batches",
                                      "Failed write attempts, by error class",
                                      ["sink", "error"], registry=registry)
        self.depth = Gauge("voltmesh_sink_queue_depth", "Actions waiting in a sink queue",
                           ["sink"], registry=registry)
        self.in_flight = Gauge("voltmesh_sink_in_flight", "Batches being written", ["sink"],
                               registry=registry)
        self.write_seconds = Histogram("voltmesh_sink_write_seconds",
                                       "Duration of each write attempt", ["sink"],
                                       registry=registry)
