"""Sinks: carry out the rule engine's actions, each lane in its own bounded queue.

::

    Router.dispatch(actions) --lane--> SinkQueue (bounded, batches, in-flight, retries)
                                          |-- telemetry  InfluxSink     (InfluxDB v2 write API)
                                          |-- billing    HandlerSink    (sessions & billing)
                                          |-- alarms     HandlerSink    (alarm manager)
                                          |-- commands   CommandSink    (device service calls)
                                          |-- webhooks   WebhookSink    (HTTP POST)
                                          '-- republish  RepublishSink  (MQTT publish)

Exceptions (:mod:`cloud.sinks.errors`)::

    CloudError
    └── SinkError
        ├── SinkClosed
        └── WriteError
            ├── RetryableError
            ├── PermanentError
            └── PartialWriteError

Guide: docs/sinks.md.
"""

from cloud.sinks.build import build_router
from cloud.sinks.command import CommandSink, command_ttl
from cloud.sinks.config import (
    AlarmsQueueConfig,
    BillingQueueConfig,
    CommandsQueueConfig,
    InfluxConfig,
    Overflow,
    QueueConfig,
    RepublishQueueConfig,
    SinksConfig,
    WebhooksQueueConfig,
)
from cloud.sinks.errors import (
    PartialWriteError,
    PermanentError,
    RetryableError,
    SinkClosed,
    SinkError,
    WriteError,
)
from cloud.sinks.handler import HandlerSink
from cloud.sinks.influx import InfluxSink, line_of
from cloud.sinks.metrics import SinkMetrics
from cloud.sinks.queue import SinkQueue
from cloud.sinks.republish import RepublishSink
from cloud.sinks.router import Router
from cloud.sinks.webhook import WebhookSink

__all__ = [
    "AlarmsQueueConfig",
    "BillingQueueConfig",
    "CommandSink",
    "CommandsQueueConfig",
    "HandlerSink",
    "InfluxConfig",
    "InfluxSink",
    "Overflow",
    "PartialWriteError",
    "PermanentError",
    "QueueConfig",
    "RepublishQueueConfig",
    "RepublishSink",
    "RetryableError",
    "Router",
    "SinkClosed",
    "SinkError",
    "SinkMetrics",
    "SinkQueue",
    "SinksConfig",
    "WebhookSink",
    "WebhooksQueueConfig",
    "WriteError",
    "build_router",
    "command_ttl",
    "line_of",
]
