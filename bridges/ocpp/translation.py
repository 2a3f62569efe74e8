"""What the mappers return: thing-model messages to publish, plus anomalies to count."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class MessageKind(StrEnum):
    """Property report or event."""

    PROP = "prop"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class ThingMessage:
    """One thing-model message (the gateway wraps it in an envelope with ``src``, ``rts``).

    ``ts``: the device time in ms when the charger gave one (and it was plausible).
    ``once_key``: set on events that a protocol retry can repeat (session events,
    StopTransaction); the gateway emits them with ``event_once(once_key, ...)``.
    ``needs_reply``: the event waits for the cloud's decision (``authorize``).
    """

    product: str
    device: str
    kind: MessageKind
    params: dict[str, Any]
    name: str | None = None
    ts: int | None = None
    once_key: str | None = None
    needs_reply: bool = False


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something the charger sent that is accepted but suspicious (counted, maybe alarmed)."""

    code: str
    detail: str
    device: str | None = None


@dataclass(slots=True)
class Translation:
    """The result of mapping one OCPP message."""

    messages: list[ThingMessage] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)

    def prop(self, product: str, device: str, params: dict[str, Any],
             ts: int | None = None) -> None:
        """Add a property report (skipped when empty)."""
        if params:
            self.messages.append(ThingMessage(product, device, MessageKind.PROP, params, ts=ts))

    def event(self, product: str, device: str, name: str, params: dict[str, Any], *,
              ts: int | None = None, once_key: str | None = None,
              needs_reply: bool = False) -> None:
        """Add an event."""
        self.messages.append(ThingMessage(product, device, MessageKind.EVENT, params, name, ts,
                                          once_key, needs_reply))

    def flag(self, code: str, detail: str, device: str | None = None) -> None:
        """Add an anomaly."""
        self.anomalies.append(Anomaly(code, detail, device))

    def extend(self, other: Translation) -> None:
        """Append another translation's messages and anomalies."""
        self.messages.extend(other.messages)
        self.anomalies.extend(other.anomalies)

    def events(self, name: str | None = None) -> list[ThingMessage]:
        """The events (of one name)."""
        return [m for m in self.messages
                if m.kind is MessageKind.EVENT and (name is None or m.name == name)]

    def props(self, product: str | None = None) -> list[ThingMessage]:
        """The property reports (of one product)."""
        return [m for m in self.messages
                if m.kind is MessageKind.PROP and (product is None or m.product == product)]
