"""Notifications through real local servers (HTTP, SMTP) and the recording message gateway."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from cloud.alarms.channels import EmailChannel, TemplateChannel, WebhookChannel
from cloud.alarms.config import AlarmsConfig
from cloud.alarms.errors import ChannelError
from cloud.alarms.manager import AlarmManager
from cloud.alarms.messaging import RecordingGateway
from cloud.alarms.metrics import AlarmMetrics
from cloud.alarms.notify import Notifier, Route, build_notifier
from cloud.alarms.states import State
from cloud.alarms.view import AlarmFilter, AlarmView
from cloud.errors import ConfigError
from tests.support.net import eventually, free_port

from .alarm_signals import signal
from .local_servers import SmtpServer, WebhookServer, self_signed

ALL_EVENTS = frozenset({"raised", "escalated", "cleared", "acknowledged", "closed"})


def counted(metrics: AlarmMetrics, channel: str, outcome: str) -> float:
    value: float = metrics.notifications.labels(channel=channel, outcome=outcome)._value.get()
    return value


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Notifier], Notifier]]:
    """Starts notifiers (their workers run until the test ends)."""
    tasks: list[asyncio.Task[None]] = []

    def start(notifier: Notifier) -> Notifier:
        tasks.append(asyncio.create_task(notifier.run()))
        return notifier

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def route(channel: Any, *, min_level: str = "info", events: frozenset[str] = ALL_EVENTS,
          timeout: float = 30.0) -> Route:
    return Route(channel, min_level=min_level, events=events, timeout=timeout)


async def test_webhook_gets_each_transition_once_with_its_idempotency_key(
        engine: Engine, running: Callable[[Notifier], Notifier]) -> None:
    metrics = AlarmMetrics()
    with WebhookServer() as hook:
        notifier = running(Notifier([route(WebhookChannel("ops", hook.url, secret="s3cret"))],
                                    metrics=metrics))
        manager = AlarmManager(engine, notifier=notifier, metrics=metrics)
        await manager.handle([signal(True, 1_000, value=82), signal(False, 2_000)])
        await eventually(lambda: len(hook.requests) == 2, timeout=30)
        # the server has the second request before the notifier has its answer
        await eventually(lambda: counted(metrics, "ops", "sent") == 2, timeout=30)
    raised, cleared = hook.requests
    assert raised.json["event"] == "raised" and cleared.json["event"] == "cleared"
    alarm = raised.json["alarm"]
    assert alarm["state"] == "open" and alarm["lastValue"] == 82 and alarm["gw"] == "gw1"
    assert cleared.json["alarm"]["state"] == "cleared"
    assert raised.headers["Idempotency-Key"] == f"{alarm['id']}:raised:{alarm['revision']}"
    assert cleared.headers["Idempotency-Key"] != raised.headers["Idempotency-Key"]
    expected = hmac.new(b"s3cret", raised.body, hashlib.sha256).hexdigest()
    assert raised.headers["X-Voltmesh-Signature"] == f"sha256={expected}"
    assert counted(metrics, "ops", "sent") == 2 and counted(metrics, "ops", "queued") == 2


async def test_webhook_failures_are_retried_with_the_same_key(
        engine: Engine, running: Callable[[Notifier], Notifier]) -> None:
    metrics = AlarmMetrics()
    with WebhookServer(statuses=[503, 429]) as hook:
        notifier = running(Notifier([route(WebhookChannel("ops", hook.url))], metrics=metrics,
                                    backoff_initial=0.01, backoff_max=0.05))
        manager = AlarmManager(engine, notifier=notifier)
        await manager.handle([signal(True, 1_000)])
        await eventually(lambda: counted(metrics, "ops", "sent") == 1, timeout=30)
    assert len(hook.requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in hook.requests}) == 1
    assert counted(metrics, "ops", "retried") == 2
    assert counted(metrics, "ops", "failed") == 0


async def test_a_refused_webhook_is_not_retried(running: Callable[[Notifier], Notifier],
                                                engine: Engine) -> None:
    metrics = AlarmMetrics()
    with WebhookServer(statuses=[400]) as hook:
        notifier = running(Notifier([route(WebhookChannel("ops", hook.url))], metrics=metrics,
                                    backoff_initial=0.01))
        manager = AlarmManager(engine, notifier=notifier)
        await manager.handle([signal(True, 1_000)])
        await eventually(lambda: counted(metrics, "ops", "failed") == 1, timeout=30)
        assert len(hook.requests) == 1
        assert counted(metrics, "ops", "retried") == 0


async def test_a_dead_webhook_delays_neither_handle_nor_other_channels(
        engine: Engine, running: Callable[[Notifier], Notifier]) -> None:
    metrics = AlarmMetrics()
    sms = RecordingGateway()
    with WebhookServer(hold=True) as hook:  # accepts requests and never answers (until released)
        notifier = running(Notifier([
            route(WebhookChannel("ops", hook.url, timeout=120)),
            route(TemplateChannel("sms", sms, kind="sms", recipients=["+8613800138000"],
                                  template_id="SMS_1", params={"device": "{device}"})),
        ], metrics=metrics, queue_size=2))
        manager = AlarmManager(engine, notifier=notifier, metrics=metrics)
        await manager.handle([signal(True, 1_000, device="c1")])
        await eventually(lambda: hook.started == 1, timeout=30)  # the webhook is now stuck
        # alarm processing goes on while the webhook hangs
        for device in ("c2", "c3", "c4"):
            await manager.handle([signal(True, 2_000, device=device)])
        open_alarms = manager.list_alarms(AlarmFilter(states=frozenset({State.OPEN})))
        assert open_alarms.total == 4
        # and so do the other channels
        await eventually(lambda: len(sms.messages) == 4, timeout=30)
        assert hook.requests == []  # nothing answered: handle() never waited for it
        # the webhook's queue holds 2: c1 in flight, c2 and c3 queued, c4 dropped (counted)
        assert counted(metrics, "ops", "dropped") == 1
        assert counted(metrics, "sms", "dropped") == 0
        hook.release.set()
        await eventually(lambda: counted(metrics, "ops", "sent") == 3, timeout=60)
        devices = [r.json["alarm"]["device"] for r in hook.requests]
        assert devices == ["c1", "c2", "c3"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_email_through_smtp_with_login(engine: Engine,
                                             running: Callable[[Notifier], Notifier]) -> None:
    metrics = AlarmMetrics()
    with SmtpServer(user="alarms", password="pw") as smtp:
        channel = EmailChannel("noc", host="127.0.0.1", port=smtp.port,
                               sender="alarms@voltmesh.test", to=["noc@voltmesh.test"],
                               user="alarms", password="pw")
        notifier = running(Notifier([route(channel, min_level="major")], metrics=metrics))
        manager = AlarmManager(engine, notifier=notifier)
        await manager.handle([signal(True, 1_000, type="smoke", level="critical",
                                     message="smoke in bay 3"),
                              signal(True, 1_000, device="c9", level="warning")])
        await eventually(lambda: counted(metrics, "noc", "sent") == 1, timeout=30)
        assert len(smtp.mailbox.messages) == 1  # the warning is below min_level
        sender, recipients, msg = smtp.mailbox.messages[0]
        assert smtp.mailbox.logins == ["alarms"]
    alarm = manager.list_alarms(AlarmFilter(type="smoke")).items[0]
    assert (sender, recipients) == ("alarms@voltmesh.test", ["noc@voltmesh.test"])
    assert msg["Subject"] == "[voltmesh] critical raised: smoke at gw1/connector/c1"
    assert msg["Message-ID"] == f"<{alarm.id}.raised.{alarm.revision}@voltmesh>"
    assert msg["X-Voltmesh-Alarm"] == alarm.id
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "smoke in bay 3" in body and "gw1/connector/c1" in body


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for a cert")
async def test_email_with_starttls(tmp_path: Path) -> None:
    cert, context = self_signed(tmp_path)
    with SmtpServer(user="alarms", password="pw", tls_context=context) as smtp:
        view = _view()
        secure = EmailChannel("noc", host="127.0.0.1", port=smtp.port, sender="a@voltmesh.test",
                              to=["noc@voltmesh.test"], user="alarms", password="pw",
                              starttls=True, ca_file=str(cert))
        await secure.send(view, "raised")
        assert len(smtp.mailbox.messages) == 1
        plain = EmailChannel("plain", host="127.0.0.1", port=smtp.port,
                             sender="a@voltmesh.test", to=["noc@voltmesh.test"])
        with pytest.raises(ChannelError) as refused:
            await plain.send(view, "raised")  # the server insists on STARTTLS: 5xx, final
        assert refused.value.retryable is False
        assert len(smtp.mailbox.messages) == 1


async def test_smtp_server_down_is_retryable() -> None:
    channel = EmailChannel("noc", host="127.0.0.1", port=free_port(), sender="a@voltmesh.test",
                           to=["noc@voltmesh.test"], timeout=10)
    with pytest.raises(ChannelError) as down:
        await channel.send(_view(), "raised")
    assert down.value.retryable is True


async def test_template_messages_routing_and_retries(
        engine: Engine, running: Callable[[Notifier], Notifier]) -> None:
    metrics = AlarmMetrics()
    sms, wechat = RecordingGateway("sms"), RecordingGateway("wx")
    notifier = running(Notifier([
        route(TemplateChannel("sms", sms, kind="sms", recipients=["+8613800138000"],
                              template_id="SMS_88", sign_name="voltmesh",
                              params={"what": "{type}", "where": "{gw}/{device}"}),
              min_level="critical", events=frozenset({"raised"})),
        route(TemplateChannel("wx", wechat, kind="wechat", recipients=["oABCDEF123456"],
                              template_id="tmpl-1", params={"first": "{level} {event}"}),
              events=frozenset({"acknowledged"})),
    ], metrics=metrics, backoff_initial=0.01, backoff_max=0.05))
    manager = AlarmManager(engine, notifier=notifier)
    await manager.handle([signal(True, 1_000, level="major", device="c1")])
    sms.fail_next(2)  # the provider is briefly unavailable
    await manager.handle([signal(True, 1_000, level="critical", device="c2", type="flood")])
    await eventually(lambda: counted(metrics, "sms", "sent") == 1, timeout=30)
    (message,) = sms.messages  # the major alarm is below the SMS channel's level
    assert message.template_id == "SMS_88" and message.recipients == ("+8613800138000",)
    assert message.params == {"what": "flood", "where": "gw1/c2"}
    assert message.sign_name == "voltmesh"
    flood = manager.list_alarms(AlarmFilter(type="flood")).items[0]
    assert message.idempotency_key == f"{flood.id}:raised:{flood.revision}"
    assert counted(metrics, "sms", "retried") == 2
    assert wechat.messages == []
    await asyncio.to_thread(manager.acknowledge, flood.id, "user:ana")
    await eventually(lambda: len(wechat.messages) == 1, timeout=30)
    assert wechat.messages[0].params == {"first": "critical acknowledged"}
    assert wechat.messages[0].recipients == ("oABCDEF123456",)
    # a refusal a retry cannot fix is given up at once
    sms.fail_next(1, retryable=False, message="template not approved")
    await manager.handle([signal(True, 1_000, level="critical", device="c3", type="fire")])
    await eventually(lambda: counted(metrics, "sms", "failed") == 1, timeout=30)
    assert counted(metrics, "sms", "retried") == 2


def test_build_notifier_from_config() -> None:
    config = AlarmsConfig.model_validate({"channels": [
        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "min_level": "major"},
        {"type": "email", "host": "127.0.0.1", "from": "a@voltmesh.test", "to": ["b@x.test"],
         "events": ["raised", "acknowledged"]},
        {"type": "sms", "gateway": "rec", "recipients": ["+8613800138000"],
         "template_id": "SMS_1"},
    ]})
    notifier = build_notifier(config, gateways={"rec": RecordingGateway()})
    assert [(r.channel.name, r.min_level, sorted(r.events)) for r in notifier.routes] == [
        ("webhook1", "major", ["cleared", "raised"]),
        ("email1", "warning", ["acknowledged", "raised"]),
        ("sms1", "warning", ["cleared", "raised"]),
    ]
    with pytest.raises(ConfigError, match="no message gateway 'rec'"):
        build_notifier(config)


def _view() -> AlarmView:
    return AlarmView(
        id="01TEST00000000000000000000", tenant_id=None, type="smoke", level="critical",
        dedupe="smoke:gw1/camera/cam1", gw="gw1", product="camera", device="cam1", rule="r",
        state=State.OPEN, first_raised_ms=1_000, opened_ms=1_000, last_raised_ms=1_000,
        raise_count=1, cleared_ms=None, acknowledged_by=None, acknowledged_ms=None,
        ack_note=None, closed_by=None, closed_ms=None, close_note=None, message="smoke",
        last_value=None, details={}, updated_ms=1_000, revision=2,
    )
