"""Alarms as one part of a cloud worker: manager + notifier + sweep loop, built from config."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from cloud.alarms.config import AlarmsConfig
from cloud.alarms.manager import AlarmManager, EmitPoint, TenantOf
from cloud.alarms.messaging import MessageGateway
from cloud.alarms.metrics import AlarmMetrics
from cloud.alarms.notify import Notifier, build_notifier


@dataclass
class AlarmService:
    """The alarm manager and its notifier; ``run()`` delivers and sweeps until cancelled."""

    config: AlarmsConfig
    manager: AlarmManager
    notifier: Notifier
    metrics: AlarmMetrics

    async def run(self) -> None:
        """Notification workers and the deadline sweep, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.notifier.run(), name="alarm-notify")
            tg.create_task(self.manager.run(self.config.sweep_interval), name="alarm-sweep")


def build_alarms(engine: Engine, config: AlarmsConfig, *, registry: CollectorRegistry,
                 tenant_of: TenantOf | None = None, emit_point: EmitPoint | None = None,
                 gateways: Mapping[str, MessageGateway] | None = None,
                 http: httpx.AsyncClient | None = None) -> AlarmService:
    """Build the alarm part of a worker (creates the ``alarm*`` tables if needed).

    ``registry`` gets the alarm counters; ``gateways`` are the SMS/WeChat providers the
    ``sms``/``wechat`` channels name; ``http`` is shared by the webhook channels.
    """
    metrics = AlarmMetrics(registry)
    notifier = build_notifier(config, metrics=metrics, gateways=gateways, http=http)
    manager = AlarmManager(
        engine, tenant_of=tenant_of, emit_point=emit_point, notifier=notifier, metrics=metrics,
        seen_retention_ms=int(config.seen_retention * 1000),
        sweep_grace_ms=int(config.sweep_grace * 1000),
    )
    return AlarmService(config, manager, notifier, metrics)
