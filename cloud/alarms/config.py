"""Typed configuration of alarms and their notification channels (unknown keys refused).

The cloud config holds it as ``alarms:``::

    alarms:
      sweep_interval: 1.0
      channels:
        - type: webhook
          url: https://ops.example.com/hooks/alarms
          min_level: major
          events: [raised, cleared]
        - type: email
          host: smtp.example.com
          port: 587
          starttls: true
          user: alarms@example.com
          password: secret
          from: alarms@example.com
          to: [noc@example.com]
        - type: sms
          gateway: aliyun
          recipients: ["+8613800138000"]
          template_id: SMS_123456
          sign_name: voltmesh
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal

import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from cloud.strict import Strict

LevelName = Literal["info", "warning", "minor", "major", "critical"]
EventName = Literal["raised", "escalated", "cleared", "acknowledged", "closed"]

#: fields a template parameter or e-mail subject may use, e.g. ``"{type} at {device}"``
TEMPLATE_FIELDS = frozenset({
    "id", "type", "level", "event", "state", "gw", "product", "device", "message", "value",
    "count", "time", "dedupe",
})

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PHONE = re.compile(r"^\+?[1-9][0-9]{5,14}$")
_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _check_template(text: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad template {text!r}: {exc}") from exc
    unknown = names - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"template {text!r} uses unknown fields {sorted(unknown)}; "
                         f"known: {', '.join(sorted(TEMPLATE_FIELDS))}")
    return text


def _default_events() -> list[EventName]:
    return ["raised", "cleared"]


class ChannelBase(Strict):
    """What every channel has: a name (metrics label) and its routing."""

    #: default: the type and its position among channels of that type (``webhook1``)
    name: str | None = None
    #: least severe level sent to this channel
    min_level: LevelName = "warning"
    #: transitions sent to this channel
    events: list[EventName] = Field(default_factory=_default_events, min_length=1)
    #: seconds one delivery attempt may take
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("name: 1-64 characters of A-Z a-z 0-9 _ . -")
        return value


class WebhookChannelConfig(ChannelBase):
    """POST the alarm as JSON (``Idempotency-Key: {alarm id}:{event}:{revision}``)."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    #: when set, ``X-Voltmesh-Signature: sha256=<hex HMAC of the body>``
    secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL {value!r}: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"webhook URL must be http(s)://host/...: {value!r}")
        return value


class EmailChannelConfig(ChannelBase):
    """Send an e-mail through an SMTP server."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    type: Literal["email"]
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    #: upgrade the connection with STARTTLS (submission port 587)
    starttls: bool = False
    #: TLS from the start (port 465)
    tls: bool = False
    #: CA bundle to verify the server with (default: the system's)
    ca_file: str | None = None
    subject: str = "[voltmesh] {level} {event}: {type} at {gw}/{product}/{device}"

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _EMAIL.match(v)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return _check_template(value)

    @model_validator(mode="after")
    def _tls_modes(self) -> EmailChannelConfig:
        if self.starttls and self.tls:
            raise ValueError("choose starttls (upgrade) or tls (implicit), not both")
        if self.password is not None and self.user is None:
            raise ValueError("password without user")
        return self


def _default_params() -> dict[str, str]:
    return {"type": "{type}", "level": "{level}", "device": "{gw}/{product}/{device}",
            "event": "{event}", "time": "{time}"}


class TemplateChannelConfig(ChannelBase):
    """A template message (SMS, WeChat) through a :class:`~cloud.alarms.messaging.MessageGateway`.

    ``gateway`` names a gateway given to :func:`~cloud.alarms.notify.build_notifier`;
    ``params`` maps the template's variables to texts made from :data:`TEMPLATE_FIELDS`.
    """

    type: Literal["sms", "wechat"]
    gateway: str
    #: phone numbers (sms, E.164 like +8613800138000) or openids (wechat)
    recipients: list[str] = Field(min_length=1)
    template_id: str = Field(min_length=1, max_length=128)
    #: SMS signature name (providers require one); unused for wechat
    sign_name: str | None = None
    params: dict[str, str] = Field(default_factory=_default_params)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            _check_template(text)
        return value

    @model_validator(mode="after")
    def _recipients(self) -> TemplateChannelConfig:
        pattern, what = (_PHONE, "phone number") if self.type == "sms" else (_OPENID, "openid")
        bad = [r for r in self.recipients if not pattern.match(r)]
        if bad:
            raise ValueError(f"not {what}s: {bad}")
        return self


ChannelConfig = Annotated[
    WebhookChannelConfig | EmailChannelConfig | TemplateChannelConfig,
    Field(discriminator="type"),
]


class AlarmsConfig(Strict):
    """Alarm processing and notifications."""

    #: seconds between deadline sweeps (debounce / clear_after without further signals)
    sweep_interval: float = Field(default=1.0, gt=0)
    #: seconds a sweep waits past a deadline for a late signal
    sweep_grace: float = Field(default=5.0, ge=0)
    #: seconds processed action keys are remembered (replays within it change nothing)
    seen_retention: float = Field(default=7 * 86400.0, gt=0)
    #: notifications waiting per channel; more are dropped (and counted)
    queue_size: int = Field(default=1000, ge=1)
    #: delivery attempts per notification and channel
    attempts: int = Field(default=4, ge=1, le=20)
    #: backoff between attempts: capped exponential with full jitter (seconds)
    backoff_initial: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=60.0, gt=0)
    channels: list[ChannelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> AlarmsConfig:
        seen: set[str] = set()
        per_type: dict[str, int] = {}
        for channel in self.channels:
            per_type[channel.type] = per_type.get(channel.type, 0) + 1
            if channel.name is None:
                channel.name = f"{channel.type}{per_type[channel.type]}"
            if channel.name in seen:
                raise ValueError(f"channel name {channel.name!r} used twice")
            seen.add(channel.name)
        return self
