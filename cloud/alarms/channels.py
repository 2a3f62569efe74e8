"""Notification channels: webhook (httpx), e-mail (aiosmtplib), template messages (SMS, WeChat).

Each channel has a ``name`` and ``async send(alarm, event)``; it raises
:class:`~cloud.alarms.errors.ChannelError` with ``retryable`` telling the notifier whether
another attempt may help. Every delivery carries the idempotency key
``{alarm id}:{event}:{revision}`` (one per transition), so a retried delivery can be recognised
by the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

import aiosmtplib
import httpx

from cloud.alarms.errors import ChannelError
from cloud.alarms.messaging import MessageGateway, TemplateMessage
from cloud.alarms.view import AlarmView, alarm_dict

log = logging.getLogger("voltmesh.cloud.alarms.notify")

_RETRYABLE_HTTP = frozenset({408, 425, 429})


def idempotency_key(alarm: AlarmView, event: str) -> str:
    """The key of one transition: ``{alarm id}:{event}:{revision}``."""
    return f"{alarm.id}:{event}:{alarm.revision}"


def template_fields(alarm: AlarmView, event: str) -> dict[str, str]:
    """The values template texts may use (see :data:`cloud.alarms.config.TEMPLATE_FIELDS`)."""
    ts = alarm.updated_ms
    return {
        "id": alarm.id, "type": alarm.type, "level": alarm.level, "event": event,
        "state": alarm.state.value, "gw": alarm.gw, "product": alarm.product,
        "device": alarm.device, "message": alarm.message,
        "value": "" if alarm.last_value is None else str(alarm.last_value),
        "count": str(alarm.raise_count), "dedupe": alarm.dedupe,
        "time": datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="seconds"),
    }


class WebhookChannel:
    """POST ``{"event", "alarm"}`` as JSON to a URL.

    2xx is delivered; 408, 425, 429, 5xx and transport errors are retryable; other statuses are
    refusals (not retried). With ``secret``, ``X-Voltmesh-Signature: sha256=<hex>`` is the HMAC
    of the exact body.
    """

    def __init__(self, name: str, url: str, *, headers: dict[str, str] | None = None,
                 secret: str | None = None, client: httpx.AsyncClient | None = None,
                 timeout: float = 10.0) -> None:
        self.name = name
        self.url = url
        self.headers = dict(headers or {})
        self._secret = secret.encode() if secret else None
        self._own_client = client is None
        self._client = client
        self.timeout = timeout

    async def send(self, alarm: AlarmView, event: str) -> None:
        body = json.dumps({"event": event, "alarm": alarm_dict(alarm)},
                          separators=(",", ":"), default=str).encode()
        headers = {**self.headers, "Content-Type": "application/json",
                   "Idempotency-Key": idempotency_key(alarm, event)}
        if self._secret is not None:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["X-Voltmesh-Signature"] = f"sha256={digest}"
        if self._client is None:
            self._client = httpx.AsyncClient()
        try:
            response = await self._client.post(self.url, content=body, headers=headers,
                                                timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ChannelError(self.name, f"POST {self.url}: {exc!r}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status >= 500 or status in _RETRYABLE_HTTP
        raise ChannelError(self.name, f"POST {self.url}: HTTP {status} {response.text[:200]!r}",
                           retryable=retryable)

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class EmailChannel:
    """One e-mail per transition through SMTP (plain, STARTTLS or implicit TLS).

    The Message-ID is made from the idempotency key, so a retried delivery is the same message.
    SMTP 4xx answers and connection failures are retryable, 5xx answers are not.
    """

    def __init__(self, name: str, *, host: str, port: int, sender: str, to: list[str],
                 user: str | None = None, password: str | None = None,
                 starttls: bool = False, tls: bool = False, ca_file: str | None = None,
                 subject: str = "[voltmesh] {level} {event}: {type} at {gw}/{product}/{device}",
                 timeout: float = 10.0) -> None:
        if starttls and tls:
            raise ValueError("starttls and tls exclude each other")
        self.name = name
        self.host, self.port = host, port
        self.sender, self.to = sender, list(to)
        self.user, self._password = user, password
        self.starttls, self.tls, self.ca_file = starttls, tls, ca_file
        self.subject = subject
        self.timeout = timeout

    def message(self, alarm: AlarmView, event: str) -> EmailMessage:
        """The e-mail for one transition."""
        fields = template_fields(alarm, event)
        msg = EmailMessage()
        msg["Subject"] = self.subject.format_map(fields)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<{idempotency_key(alarm, event).replace(':', '.')}@voltmesh>"
        msg["X-Voltmesh-Alarm"] = alarm.id
        lines = [
            f"{alarm.level.upper()} alarm {alarm.type} {event}",
            "",
            f"device:       {alarm.gw}/{alarm.product}/{alarm.device}",
            f"state:        {alarm.state.value}",
            f"message:      {alarm.message}",
            f"last value:   {fields['value']}",
            f"raised:       {alarm.raise_count} time(s), first at {_iso(alarm.first_raised_ms)}",
            f"time:         {fields['time']}",
        ]
        if alarm.acknowledged_by:
            lines.append(f"acknowledged: by {alarm.acknowledged_by}"
                         + (f" ({alarm.ack_note})" if alarm.ack_note else ""))
        if alarm.closed_by:
            lines.append(f"closed:       by {alarm.closed_by}"
                         + (f" ({alarm.close_note})" if alarm.close_note else ""))
        lines += ["", f"alarm id: {alarm.id}"]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    async def send(self, alarm: AlarmView, event: str) -> None:
        msg = self.message(alarm, event)
        try:
            errors, _ = await aiosmtplib.send(
                msg, hostname=self.host, port=self.port, username=self.user,
                password=self._password, use_tls=self.tls, start_tls=self.starttls,
                cert_bundle=self.ca_file, timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise ChannelError(self.name, f"all recipients refused: {exc}",
                               retryable=any(400 <= c < 500 for c in codes)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise ChannelError(self.name, f"SMTP {exc.code}: {exc.message}",
                               retryable=400 <= exc.code < 500) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ChannelError(self.name, f"SMTP {self.host}:{self.port}: {exc!r}") from exc
        if errors:
            log.warning("e-mail for alarm %s refused by some recipients: %s", alarm.id,
                        {k: str(v) for k, v in errors.items()})


class TemplateChannel:
    """A template message (SMS or WeChat) to fixed recipients through a gateway.

    Fails (retryable) only when no recipient got the message; single refusals are logged.
    """

    def __init__(self, name: str, gateway: MessageGateway, *, kind: Literal["sms", "wechat"],
                 recipients: list[str], template_id: str, params: dict[str, str],
                 sign_name: str | None = None) -> None:
        self.name = name
        self.gateway = gateway
        self.kind: Literal["sms", "wechat"] = kind
        self.recipients = tuple(recipients)
        self.template_id = template_id
        self.params = dict(params)
        self.sign_name = sign_name

    def message(self, alarm: AlarmView, event: str) -> TemplateMessage:
        """The template message for one transition."""
        fields = template_fields(alarm, event)
        return TemplateMessage(
            kind=self.kind, recipients=self.recipients, template_id=self.template_id,
            params={k: v.format_map(fields) for k, v in self.params.items()},
            idempotency_key=idempotency_key(alarm, event), sign_name=self.sign_name,
        )

    async def send(self, alarm: AlarmView, event: str) -> None:
        receipts = await self.gateway.send_template(self.message(alarm, event))
        failed = [r for r in receipts if not r.ok]
        if not receipts or len(failed) == len(receipts):
            raise ChannelError(self.name, "no recipient accepted: "
                               + "; ".join(f"{r.recipient}: {r.error}" for r in failed))
        if failed:
            log.warning("%s for alarm %s refused for %s", self.kind, alarm.id,
                        {r.recipient: r.error for r in failed})


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")

