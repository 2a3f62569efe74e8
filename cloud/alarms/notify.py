"""Notifications: routes alarm transitions to channels, from a bounded queue per channel.

:meth:`Notifier.submit` never blocks and never waits for a channel (it may be called from any
thread): it puts the transition on the queue of every channel whose ``min_level`` and
``events`` match, or drops it (counted) when that queue is full. :meth:`Notifier.run` keeps one
worker per channel under a TaskGroup; a worker delivers in order, each attempt under the
channel's timeout, retrying with capped, fully jittered exponential backoff. So a dead channel
delays only its own queue: neither the alarm manager nor the other channels.

Counters (``voltmesh_alarm_notifications_total{channel, outcome}``): queued, sent, retried,
failed (gave up or refused), dropped (queue full).

Delivery is at most once per worker process: what is still queued when a worker dies is lost
(the alarm itself is in SQL; the history says what happened).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from cloud.alarms.channels import EmailChannel, TemplateChannel, WebhookChannel
from cloud.alarms.config import (
    AlarmsConfig,
    ChannelConfig,
    EmailChannelConfig,
    TemplateChannelConfig,
    WebhookChannelConfig,
)
from cloud.alarms.errors import ChannelError
from cloud.alarms.messaging import MessageGateway, Receipt, RecordingGateway, TemplateMessage
from cloud.alarms.metrics import AlarmMetrics
from cloud.alarms.states import Level, rank
from cloud.alarms.view import AlarmView
from cloud.errors import ConfigError

__all__ = [
    "Channel", "EmailChannel", "MessageGateway", "Notifier", "Receipt", "RecordingGateway",
    "Route", "TemplateChannel", "TemplateMessage", "WebhookChannel", "build_notifier",
]

log = logging.getLogger("voltmesh.cloud.alarms.notify")


@runtime_checkable
class Channel(Protocol):
    """Somewhere notifications go. ``send`` raises ChannelError (``retryable``) on failure."""

    name: str

    async def send(self, alarm: AlarmView, event: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Route:
    """Which transitions a channel gets."""

    channel: Channel
    min_level: str = Level.WARNING.value
    events: frozenset[str] = frozenset({"raised", "cleared"})
    timeout: float = 10.0

    def matches(self, alarm: AlarmView, event: str) -> bool:
        return event in self.events and rank(alarm.level) >= rank(self.min_level)


class Notifier:
    """Bounded per-channel queues with retrying workers (see the module docstring)."""

    def __init__(self, routes: Sequence[Route], *, metrics: AlarmMetrics | None = None,
                 queue_size: int = 1000, attempts: int = 4, backoff_initial: float = 1.0,
                 backoff_max: float = 60.0) -> None:
        names = [r.channel.name for r in routes]
        if len(set(names)) != len(names):
            raise ConfigError(f"channel names must be unique: {names}")
        self.routes = list(routes)
        self.metrics = metrics if metrics is not None else AlarmMetrics()
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._queues: dict[str, asyncio.Queue[tuple[AlarmView, str]]] = {
            name: asyncio.Queue(maxsize=queue_size) for name in names
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # -- producers --------------------------------------------------------------------------

    def submit(self, alarm: AlarmView, event: str) -> None:
        """Queue ``event`` of ``alarm`` for every matching channel (thread-safe, never blocks)."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._enqueue, alarm, event)
        else:
            self._enqueue(alarm, event)

    def _enqueue(self, alarm: AlarmView, event: str) -> None:
        for route in self.routes:
            if not route.matches(alarm, event):
                continue
            name = route.channel.name
            try:
                self._queues[name].put_nowait((alarm, event))
            except asyncio.QueueFull:
                self.metrics.notifications.labels(channel=name, outcome="dropped").inc()
                log.warning("notification queue of %s full: %s of alarm %s dropped", name,
                            event, alarm.id)
                continue
            self.metrics.notifications.labels(channel=name, outcome="queued").inc()

    def pending(self, channel: str | None = None) -> int:
        """Notifications waiting (for one channel, or all)."""
        if channel is not None:
            return self._queues[channel].qsize()
        return sum(q.qsize() for q in self._queues.values())

    # -- workers ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled (one worker per channel); closes the channels at the end."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            async with asyncio.TaskGroup() as tg:
                for route in self.routes:
                    tg.create_task(self._worker(route), name=f"notify-{route.channel.name}")
                await asyncio.Future()  # until cancelled (also when there is no channel)
        finally:
            self._loop = None
            await self.aclose()

    async def join(self) -> None:
        """Wait until every queued notification has been delivered or given up."""
        for queue in self._queues.values():
            await queue.join()

    async def aclose(self) -> None:
        """Close channels that hold connections."""
        for route in self.routes:
            close = getattr(route.channel, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("closing channel %s failed", route.channel.name)

    async def _worker(self, route: Route) -> None:
        queue = self._queues[route.channel.name]
        while True:
            alarm, event = await queue.get()
            try:
                await self._deliver(route, alarm, event)
            finally:
                queue.task_done()

    async def _deliver(self, route: Route, alarm: AlarmView, event: str) -> None:
        name = route.channel.name
        counter = self.metrics.notifications
        for attempt in range(1, self.attempts + 1):
            try:
                async with asyncio.timeout(route.timeout):
                    await route.channel.send(alarm, event)
            except ChannelError as exc:
                error, retryable = str(exc), exc.retryable
            except TimeoutError:
                error, retryable = f"no answer within {route.timeout}s", True
            except Exception as exc:
                log.exception("channel %s crashed", name)
                error, retryable = repr(exc), True
            else:
                counter.labels(channel=name, outcome="sent").inc()
                return
            if not retryable or attempt == self.attempts:
                counter.labels(channel=name, outcome="failed").inc()
                log.error("notification %s of alarm %s via %s failed after %d attempt(s): %s",
                          event, alarm.id, name, attempt, error)
                return
            counter.labels(channel=name, outcome="retried").inc()
            delay = random.uniform(0, min(self.backoff_max,  # noqa: S311 - jitter
                                          self.backoff_initial * 2 ** (attempt - 1)))
            log.info("notification via %s failed (%s); retry in %.1fs", name, error, delay)
            await asyncio.sleep(delay)


def channel_of(config: ChannelConfig, *, gateways: Mapping[str, MessageGateway],
               http: httpx.AsyncClient | None = None) -> Channel:
    """Build one channel from its configuration."""
    name = config.name or config.type
    if isinstance(config, WebhookChannelConfig):
        return WebhookChannel(name, config.url, headers=config.headers,
                              secret=config.secret.get_secret_value() if config.secret else None,
                              client=http, timeout=config.timeout)
    if isinstance(config, EmailChannelConfig):
        return EmailChannel(
            name, host=config.host, port=config.port, sender=config.sender, to=config.to,
            user=config.user,
            password=config.password.get_secret_value() if config.password else None,
            starttls=config.starttls, tls=config.tls, ca_file=config.ca_file,
            subject=config.subject, timeout=config.timeout,
        )
    assert isinstance(config, TemplateChannelConfig)
    gateway = gateways.get(config.gateway)
    if gateway is None:
        raise ConfigError(f"channel {name}: no message gateway {config.gateway!r} "
                          f"(known: {', '.join(sorted(gateways)) or 'none'})")
    return TemplateChannel(name, gateway, kind=config.type, recipients=config.recipients,
                           template_id=config.template_id, params=config.params,
                           sign_name=config.sign_name)


def build_notifier(config: AlarmsConfig, *, metrics: AlarmMetrics | None = None,
                   gateways: Mapping[str, MessageGateway] | None = None,
                   http: httpx.AsyncClient | None = None) -> Notifier:
    """A notifier with the configured channels (``gateways``: SMS/WeChat providers by name)."""
    routes = [
        Route(channel_of(c, gateways=gateways or {}, http=http), min_level=c.min_level,
              events=frozenset(c.events), timeout=c.timeout)
        for c in config.channels
    ]
    return Notifier(routes, metrics=metrics, queue_size=config.queue_size,
                    attempts=config.attempts, backoff_initial=config.backoff_initial,
                    backoff_max=config.backoff_max)
