"""Wiring: one call builds the router with a queue per lane that has a sink."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry

from cloud.actions import AlarmSignal, BillSessionEvent, Lane
from cloud.sinks.command import Call, CommandSink, command_ttl
from cloud.sinks.config import SinksConfig
from cloud.sinks.handler import Handle, HandlerSink
from cloud.sinks.influx import InfluxSink
from cloud.sinks.queue import SinkQueue
from cloud.sinks.republish import Publish, RepublishSink
from cloud.sinks.router import Router
from cloud.sinks.webhook import WebhookSink


def build_router(config: SinksConfig, registry: CollectorRegistry, *,
                 publish: Publish | None = None, call: Call | None = None,
                 billing_handler: Handle | None = None, alarm_handler: Handle | None = None,
                 http_client: httpx.AsyncClient | None = None) -> Router:
    """The router with one queue per lane whose sink is available.

    telemetry needs ``config.influx``; billing and alarms their handlers; commands ``call``;
    republish ``publish``; webhooks are always on. A lane left out counts its actions as
    dropped (``no_sink``). Queue (and metric) names are the lane names.
    """
    queues: dict[Lane, SinkQueue] = {}

    def add(lane: Lane, queue: SinkQueue) -> None:
        queues[lane] = queue

    if config.influx is not None:
        add(Lane.TELEMETRY, SinkQueue(Lane.TELEMETRY.value, InfluxSink(config.influx),
                                      config.influx.queue(), registry))
    if billing_handler is not None:
        add(Lane.BILLING, SinkQueue(Lane.BILLING.value,
                                    HandlerSink(billing_handler, accepts=(BillSessionEvent,)),
                                    config.billing, registry))
    if alarm_handler is not None:
        add(Lane.ALARMS, SinkQueue(Lane.ALARMS.value,
                                   HandlerSink(alarm_handler, accepts=(AlarmSignal,)),
                                   config.alarms, registry))
    if call is not None:
        add(Lane.COMMANDS, SinkQueue(Lane.COMMANDS.value, CommandSink(call), config.commands,
                                     registry, ttl_of=command_ttl))
    add(Lane.WEBHOOKS, SinkQueue(Lane.WEBHOOKS.value, WebhookSink(http_client),
                                 config.webhooks, registry))
    if publish is not None:
        add(Lane.REPUBLISH, SinkQueue(Lane.REPUBLISH.value, RepublishSink(publish),
                                      config.republish, registry))
    return Router(queues, registry)
