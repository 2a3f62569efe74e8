"""The MQTT topic grammar, version 1.

::

    ev/v1/{gw}/{product}/{device}/prop
    ev/v1/{gw}/{product}/{device}/event/{name}
    ev/v1/{gw}/{product}/{device}/event/{name}/reply
    ev/v1/{gw}/{product}/{device}/svc/{name}
    ev/v1/{gw}/{product}/{device}/svc/{name}/reply
    ev/v1/{gw}/{product}/{device}/state
    ev/v1/{gw}/{product}/{device}/desired
    ev/v1/{gw}/gateway/{gw}/receipt

The gateway itself is ``product = "gateway"``, ``device = gw``. ``receipt`` (down, QoS 1) carries
the ids of the gateway's events that a cloud worker has committed (``p = {"ids": [...]}``, see
:func:`gateway_receipt`); the gateway keeps an event in its outbox until then. Every level is checked: an id that
cannot be a single topic level (``/ + #``, control characters, a leading ``$``, empty, too long)
is refused with :class:`~thingmodels.errors.TopicError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from thingmodels.errors import TopicError

PREFIX = "ev/v1"
MAX_LEVEL = 128
_FORBIDDEN = re.compile(r"[/+#\x00-\x1f\x7f]")
_NAME = re.compile(r"^[a-z][A-Za-z0-9]*$")
_PRODUCT = re.compile(r"^[a-z][a-z0-9_]*$")


class Kind(StrEnum):
    """What a topic carries."""

    PROP = "prop"
    EVENT = "event"
    EVENT_REPLY = "event_reply"
    SVC = "svc"
    SVC_REPLY = "svc_reply"
    STATE = "state"
    DESIRED = "desired"
    RECEIPT = "receipt"


_NAMED = {Kind.EVENT, Kind.EVENT_REPLY, Kind.SVC, Kind.SVC_REPLY}


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it can be one topic level, else raise :class:`TopicError`."""
    if not isinstance(value, str) or not value:
        raise TopicError(f"{what} must be a non-empty string")
    if len(value) > MAX_LEVEL:
        raise TopicError(f"{what} {value[:20]!r}... is longer than {MAX_LEVEL} characters")
    bad = _FORBIDDEN.search(value)
    if bad:
        raise TopicError(f"{what} {value!r} contains {bad.group()!r}, which cannot be in a topic level")
    if value.startswith("$"):
        raise TopicError(f"{what} {value!r} must not start with '$'")
    if value != value.strip():
        raise TopicError(f"{what} {value!r} has leading or trailing white space")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed thing-model topic."""

    gw: str
    product: str
    device: str
    kind: Kind
    name: str | None = None

    def __post_init__(self) -> None:
        check_id(self.gw, "gateway id")
        if not _PRODUCT.match(self.product):
            raise TopicError(f"product {self.product!r} is not a thing-model name")
        check_id(self.device, "device id")
        if self.kind in _NAMED:
            if self.name is None or not _NAME.match(self.name):
                raise TopicError(f"{self.kind} needs a name like 'remoteStart', got {self.name!r}")
        elif self.name is not None:
            raise TopicError(f"{self.kind} topics take no name")

    def render(self) -> str:
        """The topic string."""
        base = f"{PREFIX}/{self.gw}/{self.product}/{self.device}"
        match self.kind:
            case Kind.PROP | Kind.STATE | Kind.DESIRED | Kind.RECEIPT:
                return f"{base}/{self.kind.value}"
            case Kind.EVENT:
                return f"{base}/event/{self.name}"
            case Kind.EVENT_REPLY:
                return f"{base}/event/{self.name}/reply"
            case Kind.SVC:
                return f"{base}/svc/{self.name}"
            case Kind.SVC_REPLY:
                return f"{base}/svc/{self.name}/reply"
        raise TopicError(f"unknown kind {self.kind}")  # pragma: no cover

    def __str__(self) -> str:
        return self.render()

    def reply(self) -> Topic:
        """The reply topic of an event or a service call."""
        if self.kind is Kind.EVENT:
            return Topic(self.gw, self.product, self.device, Kind.EVENT_REPLY, self.name)
        if self.kind is Kind.SVC:
            return Topic(self.gw, self.product, self.device, Kind.SVC_REPLY, self.name)
        raise TopicError(f"{self.kind} has no reply topic")


def parse(topic: str) -> Topic:
    """Parse a topic string; anything outside the grammar raises :class:`TopicError`."""
    parts = topic.split("/")
    if len(parts) < 6 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"not a voltmesh v1 topic: {topic!r}")
    gw, product, device, rest = parts[2], parts[3], parts[4], parts[5:]
    match rest:
        case ["prop"]:
            return Topic(gw, product, device, Kind.PROP)
        case ["state"]:
            return Topic(gw, product, device, Kind.STATE)
        case ["desired"]:
            return Topic(gw, product, device, Kind.DESIRED)
        case ["receipt"]:
            return Topic(gw, product, device, Kind.RECEIPT)
        case ["event", name]:
            return Topic(gw, product, device, Kind.EVENT, name)
        case ["event", name, "reply"]:
            return Topic(gw, product, device, Kind.EVENT_REPLY, name)
        case ["svc", name]:
            return Topic(gw, product, device, Kind.SVC, name)
        case ["svc", name, "reply"]:
            return Topic(gw, product, device, Kind.SVC_REPLY, name)
    raise TopicError(f"not a voltmesh v1 topic: {topic!r}")


def gateway_state(gw: str) -> Topic:
    """The gateway's own presence topic (also its MQTT Will)."""
    return Topic(gw, "gateway", gw, Kind.STATE)


def gateway_desired(gw: str) -> Topic:
    """The gateway's own desired-state topic."""
    return Topic(gw, "gateway", gw, Kind.DESIRED)


def gateway_receipt(gw: str) -> Topic:
    """Where cloud workers send the receipts of a gateway's committed events (down, QoS 1).

    One topic per gateway, for the events of all its devices: the payload is an envelope with
    ``p = {"ids": [event envelope id, ...]}`` (``RECEIPT_IDS``), batched by the cloud.
    """
    return Topic(gw, "gateway", gw, Kind.RECEIPT)


#: key of the id list in a receipt's ``p``
RECEIPT_IDS = "ids"


def uplink_filters() -> list[str]:
    """Filters a cloud worker subscribes to (everything a gateway sends up)."""
    base = f"{PREFIX}/+/+/+"
    return [f"{base}/prop", f"{base}/state", f"{base}/event/+", f"{base}/svc/+/reply"]


def downlink_filters(gw: str) -> list[str]:
    """Filters a gateway subscribes to (everything the cloud sends to it)."""
    check_id(gw, "gateway id")
    base = f"{PREFIX}/{gw}/+/+"
    return [f"{base}/svc/+", f"{base}/event/+/reply", f"{base}/desired",
            gateway_receipt(gw).render()]


def shared(group: str, topic_filter: str) -> str:
    """``$share/{group}/{filter}``: a shared subscription."""
    check_id(group, "share group")
    return f"$share/{group}/{topic_filter}"


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); ``$share/g/`` is stripped."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    f_parts = topic_filter.split("/")
    t_parts = topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts):
            return False
        if part not in ("+", t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)
