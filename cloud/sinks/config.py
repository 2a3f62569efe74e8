"""Typed configuration of the sink queues (the ``sinks`` section of the cloud config).

Durations are in seconds. Every lane has its own class so that a partial section in YAML
(``billing: {max_items: 5000}``) keeps that lane's other defaults.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from cloud.strict import Strict


class Overflow(StrEnum):
    """What ``put()`` does when the queue is full."""

    #: drop the oldest waiting action (counted as ``queue_full``); the producer never waits
    DROP_OLDEST = "drop_oldest"
    #: the producer waits for room: nothing is lost, back-pressure reaches the consumer
    BLOCK = "block"


class QueueConfig(Strict):
    """One lane's queue: bounds, batching, concurrency, retries.

    Defaults suit a lane that must not lose anything (billing, alarms).
    """

    #: actions waiting at most (in-flight batches are not counted)
    max_items: int = Field(default=10_000, ge=1)
    #: actions handed to the writer at once
    batch_size: int = Field(default=100, ge=1)
    #: seconds a partial batch waits for more actions before it is written
    max_delay: float = Field(default=0.05, ge=0)
    #: batches written concurrently (1 keeps the lane in order)
    in_flight: int = Field(default=1, ge=1)
    overflow: Overflow = Overflow.BLOCK
    #: attempts per action before it is dropped (``max_attempts``); 0 = until it succeeds
    max_attempts: int = Field(default=0, ge=0)
    #: seconds an action may wait from queueing to its last attempt; None = no limit
    ttl: float | None = Field(default=None, gt=0)
    #: first retry delay; doubles per failed attempt up to ``backoff_max`` (with jitter)
    backoff_initial: float = Field(default=0.2, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    #: idempotency keys remembered after success (an action redelivered soon is not redone)
    recent_keys: int = Field(default=100_000, ge=0)
    #: seconds a shutdown waits for the queue to empty before dropping what is left
    drain_timeout: float = Field(default=5.0, ge=0)


class BillingQueueConfig(QueueConfig):
    """Session events to sessions & billing: blocking, in order, retried until done."""


class AlarmsQueueConfig(QueueConfig):
    """Alarm raise/clear to the alarm manager: blocking, in order, retried until done."""


class CommandsQueueConfig(QueueConfig):
    """Device service calls: blocking, one call per batch, several at once.

    A call that waited longer than its own ``timeout_s`` in the queue is dropped (``ttl``),
    so a command is never sent long after the rule fired.
    """

    max_items: int = Field(default=1_000, ge=1)
    batch_size: int = Field(default=1, ge=1)
    max_delay: float = Field(default=0.0, ge=0)
    in_flight: int = Field(default=8, ge=1)
    max_attempts: int = Field(default=3, ge=0)
    backoff_max: float = Field(default=5.0, gt=0)


class WebhooksQueueConfig(QueueConfig):
    """POSTs to third parties: a dead endpoint must not hold back anything else."""

    batch_size: int = Field(default=1, ge=1)
    max_delay: float = Field(default=0.0, ge=0)
    in_flight: int = Field(default=8, ge=1)
    overflow: Overflow = Overflow.DROP_OLDEST
    max_attempts: int = Field(default=10, ge=0)
    ttl: float | None = Field(default=3600.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=60.0, gt=0)


class RepublishQueueConfig(QueueConfig):
    """MQTT republish: lossy like telemetry."""

    batch_size: int = Field(default=50, ge=1)
    max_delay: float = Field(default=0.0, ge=0)
    overflow: Overflow = Overflow.DROP_OLDEST
    max_attempts: int = Field(default=5, ge=0)
    ttl: float | None = Field(default=60.0, gt=0)
    backoff_max: float = Field(default=5.0, gt=0)


class InfluxConfig(Strict):
    """The InfluxDB v2 write API (InfluxDB 2.x/3.x, or VictoriaMetrics for development)."""

    url: str = "http://127.0.0.1:8086"
    #: API token (sent as ``Authorization: Token ...``; VictoriaMetrics ignores it); kept out
    #: of the config's repr so it does not end up in logs
    token: str = Field(default="", repr=False)
    org: str = "voltmesh"
    bucket: str = "voltmesh"
    #: points per write request
    batch_size: int = Field(default=5_000, ge=1)
    #: seconds a partial batch waits for more points
    flush_interval: float = Field(default=1.0, ge=0)
    #: points waiting at most; beyond it the oldest are dropped (``queue_full``)
    max_queue: int = Field(default=100_000, ge=1)
    #: write requests at once
    in_flight: int = Field(default=2, ge=1)
    #: seconds per write request (connect + send + answer)
    timeout: float = Field(default=10.0, gt=0)
    gzip: bool = False
    overflow: Overflow = Overflow.DROP_OLDEST
    max_attempts: int = Field(default=0, ge=0)
    ttl: float | None = Field(default=900.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    recent_keys: int = Field(default=100_000, ge=0)
    drain_timeout: float = Field(default=5.0, ge=0)

    def queue(self) -> QueueConfig:
        """The telemetry lane's queue settings."""
        return QueueConfig(
            max_items=self.max_queue, batch_size=self.batch_size,
            max_delay=self.flush_interval, in_flight=self.in_flight, overflow=self.overflow,
            max_attempts=self.max_attempts, ttl=self.ttl, backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max, recent_keys=self.recent_keys,
            drain_timeout=self.drain_timeout,
        )


class SinksConfig(Strict):
    """All sinks: ``influx`` switches the telemetry lane on; the other lanes always have a queue
    once their service is wired (see :func:`cloud.sinks.build.build_router`)."""

    influx: InfluxConfig | None = None
    billing: BillingQueueConfig = Field(default_factory=BillingQueueConfig)
    alarms: AlarmsQueueConfig = Field(default_factory=AlarmsQueueConfig)
    commands: CommandsQueueConfig = Field(default_factory=CommandsQueueConfig)
    webhooks: WebhooksQueueConfig = Field(default_factory=WebhooksQueueConfig)
    republish: RepublishQueueConfig = Field(default_factory=RepublishQueueConfig)
