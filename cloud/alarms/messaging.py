"""Template messages (SMS, WeChat) through a provider: the interface, and a recording stand-in.

Real providers share one shape, which :class:`MessageGateway` follows:

* Aliyun SMS ``SendSms``: PhoneNumbers, SignName, TemplateCode, TemplateParam (JSON), OutId
  -> BizId;
* Tencent Cloud SMS ``SendSms``: PhoneNumberSet, SignName, TemplateId, TemplateParamSet
  (positional: ``params`` in order), SessionContext -> SerialNo per number;
* WeChat official account template message: touser (openid), template_id, data
  ``{name: {value}}`` -> msgid per user.

So a message is recipients + template id + named params (+ signature for SMS) + an idempotency
key (OutId / SessionContext), and the answer is one receipt per recipient carrying the
provider's message id or its error. No provider can run on this machine:
:class:`RecordingGateway` records what would have been sent (demo, tests).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cloud.alarms.errors import ChannelError


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    """One template message to one or more recipients."""

    kind: Literal["sms", "wechat"]
    recipients: tuple[str, ...]  # phone numbers (E.164) or openids
    template_id: str
    params: dict[str, str]  # template variables, in the template's order
    idempotency_key: str  # the provider's OutId / SessionContext
    sign_name: str | None = None  # SMS signature


@dataclass(frozen=True, slots=True)
class Receipt:
    """The provider's answer for one recipient: its message id, or why it was refused."""

    recipient: str
    message_id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.message_id is not None


class MessageGateway(Protocol):
    """A template-message provider.

    Raise :class:`~cloud.alarms.errors.ChannelError` when the request as a whole fails
    (``retryable=False`` for refusals a retry cannot fix: bad template, no balance); refusals of
    single recipients are receipts with ``error``.
    """

    async def send_template(self, message: TemplateMessage) -> list[Receipt]: ...


@dataclass
class RecordingGateway:
    """Records messages instead of sending them; answers like a provider.

    A repeated idempotency key returns the first receipts and is recorded once (providers
    deduplicate on OutId). :meth:`fail_next` makes the next calls fail (outage drills).
    """

    name: str = "recording"
    messages: list[TemplateMessage] = field(default_factory=list)
    _receipts: dict[str, list[Receipt]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _failures: list[ChannelError] = field(default_factory=list)

    def fail_next(self, times: int = 1, *, retryable: bool = True,
                  message: str = "provider unavailable") -> None:
        """Fail the next ``times`` calls with :class:`ChannelError`."""
        self._failures.extend(ChannelError(self.name, message, retryable=retryable)
                              for _ in range(times))

    async def send_template(self, message: TemplateMessage) -> list[Receipt]:
        if self._failures:
            raise self._failures.pop(0)
        known = self._receipts.get(message.idempotency_key)
        if known is not None:
            return known
        receipts = [Receipt(r, f"{self.name}-{next(self._ids)}") for r in message.recipients]
        self._receipts[message.idempotency_key] = receipts
        self.messages.append(message)
        return receipts
