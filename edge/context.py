"""What an adapter sees of the gateway: report properties, emit events, presence, decisions.

Every call validates against the thing model (a payload that does not fit raises
:class:`~thingmodels.errors.PayloadError`: that is a mapper bug or a device deviation, and the
adapter decides whether to count and drop it). ``event`` returns only once the event is durable in
the outbox: an adapter acknowledges its device after that, never before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.batcher import TelemetryBatcher
from edge.outbox import Outbox, RowKind
from thingmodels.envelope import Envelope
from thingmodels.ids import now_ms
from thingmodels.loader import ModelRegistry
from thingmodels.topics import Kind, Topic, check_id

log = logging.getLogger("voltmesh.edge")

#: outbox kv keys of the devices last reported online (``online/{product}/{device}``)
ONLINE_PREFIX = "online/"
#: kv key of the outbox's session base (see :attr:`EdgeContext.session_base`)
SESSION_BASE = "presence/session_base"


@dataclass
class EdgeStats:
    """Counters of the gateway besides the outbox's."""

    counters: Counter[str] = field(default_factory=Counter)

    def inc(self, name: str, value: int = 1) -> None:
        """Add to a counter."""
        self.counters[name] += value


@dataclass
class DesiredDoc:
    """A desired-state document received from the cloud."""

    version: int
    doc: dict[str, Any]


class LocalObserver(Protocol):
    """Sees every validated property report and event on the gateway, locally (no MQTT).

    Called synchronously from :meth:`EdgeContext.report` / :meth:`EdgeContext.event` in the
    event loop: it must return quickly (schedule work, never block) and should not raise (an
    exception is logged and counted, the report goes on). Used by the safety interlocks.
    """

    def on_properties(self, product: str, device: str, params: Mapping[str, Any],
                      src: str) -> None:
        """A property report (validated, thing-model units)."""

    def on_event(self, product: str, device: str, name: str, params: Mapping[str, Any],
                 src: str) -> None:
        """An event, once it is durable in the outbox."""


class EdgeContext:
    """The gateway's services offered to adapters."""

    def __init__(
        self,
        gw: str,
        models: ModelRegistry,
        outbox: Outbox,
        batcher: TelemetryBatcher,
        *,
        decision_timeout: float = 3.0,
        clock_skew_threshold: float = 30.0,
    ) -> None:
        self.gw = gw
        self.models = models
        self.outbox = outbox
        self.batcher = batcher
        batcher.group = outbox.group  # a periodic flush of every device is one transaction
        self.decision_timeout = decision_timeout
        self.clock_skew_threshold = clock_skew_threshold
        self.stats = EdgeStats()
        self.cloud_connected = asyncio.Event()
        self._decisions: dict[str, asyncio.Future[Envelope]] = {}
        self._desired: dict[tuple[str, str], DesiredDoc] = {}
        self._online: dict[tuple[str, str], bool] = {}
        self._device_index: dict[str, Mapping[str, Any]] = {}
        self._device_index_version = -2
        self._observers: list[LocalObserver] = []
        self._session_base: int | None = None

    # -- local observers ------------------------------------------------------------------

    def add_observer(self, observer: LocalObserver) -> None:
        """See every validated property report and event from now on."""
        self._observers.append(observer)

    def _observe_properties(self, product: str, device: str, params: Mapping[str, Any],
                            src: str) -> None:
        for observer in self._observers:
            try:
                observer.on_properties(product, device, params, src)
            except Exception:
                self.stats.inc("observer_errors")
                log.exception("observer %r failed on %s/%s properties", observer, product,
                              device)

    def _observe_event(self, product: str, device: str, name: str, params: Mapping[str, Any],
                       src: str) -> None:
        for observer in self._observers:
            try:
                observer.on_event(product, device, name, params, src)
            except Exception:
                self.stats.inc("observer_errors")
                log.exception("observer %r failed on %s/%s event %s", observer, product,
                              device, name)

    # -- helpers --------------------------------------------------------------------------

    def topic(self, product: str, device: str, kind: Kind, name: str | None = None) -> Topic:
        """A topic of this gateway (device ids are checked)."""
        return Topic(self.gw, product, check_id(device, f"{product} id"), kind, name)

    @staticmethod
    def seq_key(product: str, device: str) -> str:
        """The key of a device's seq counter."""
        return f"{product}/{device}"

    # -- what adapters call ---------------------------------------------------------------

    def report(
        self, product: str, device: str, params: Mapping[str, Any], *, src: str,
        ts: int | None = None,
    ) -> dict[str, Any]:
        """Report properties (batched telemetry). Returns the validated params."""
        model = self.models[product]
        clean = model.validate_properties(dict(params))
        check_id(device, f"{product} id")
        if clean:
            self.batcher.add(product, device, src, ts, clean)
            if self._observers:
                self._observe_properties(product, device, clean, src)
        return clean

    def flush_telemetry(self, product: str, device: str, src: str, samples: list[Any]) -> None:
        """Batcher callback: one telemetry row for the samples of one device."""
        topic = self.topic(product, device, Kind.PROP).render()

        def build(seq: int) -> Envelope:
            if len(samples) == 1:
                return Envelope.new(ts=samples[0].ts, seq=seq, src=src, p=samples[0].p)
            return Envelope.new(seq=seq, src=src, b=tuple(samples))

        self.outbox.append(
            topic, build, kind=RowKind.TELEMETRY, seq_key=self.seq_key(product, device),
            qos=1,
        )

    async def event(
        self, product: str, device: str, name: str, params: Mapping[str, Any], *, src: str,
        ts: int | None = None, urgent: bool = False,
    ) -> Envelope:
        """Emit an event; returns once it is durable in the outbox.

        ``urgent``: published ahead of any backlog (a decision a device waits for).
        """
        clean = self.models[product].validate_event(name, dict(params))
        topic = self.topic(product, device, Kind.EVENT, name).render()
        env = self.outbox.append(
            topic,
            lambda seq: Envelope.new(ts=ts, seq=seq, src=src, p=clean),
            seq_key=self.seq_key(product, device),
            kind=RowKind.URGENT if urgent else RowKind.EVENT,
        )
        if self._observers:
            self._observe_event(product, device, name, clean, src)
        return env

    async def event_once(
        self, once_key: str, product: str, device: str, name: str, params: Mapping[str, Any],
        *, src: str, ts: int | None = None,
    ) -> bool:
        """Emit an event unless one with ``once_key`` was emitted before (durable check).

        Returns True when it was emitted now. Protocol retries (a re-sent YKC 0x3B, a replayed
        OCPP StopTransaction) use the protocol's own key, so a retry makes no second event.
        """
        clean = self.models[product].validate_event(name, dict(params))
        topic = self.topic(product, device, Kind.EVENT, name).render()
        _, fresh = self.outbox.append_once(
            once_key, topic, lambda seq: Envelope.new(ts=ts, seq=seq, src=src, p=clean),
            seq_key=self.seq_key(product, device),
        )
        if fresh and self._observers:
            self._observe_event(product, device, name, clean, src)
        return fresh

    async def presence(
        self, product: str, device: str, online: bool, *, src: str, reason: str | None = None,
    ) -> None:
        """Publish a device's presence (retained, in order with its events)."""
        key = (product, device)
        if self._online.get(key) is online:
            return
        self._online[key] = online
        topic = self.topic(product, device, Kind.STATE).render()

        # the session number of a state is the seq of its own message (plus the outbox's
        # session base): it grows with every change and survives restarts, so the newest state
        # wins wherever it lands (an offline outranks the online before it, the next online
        # outranks both)
        base = self.session_base

        def build(seq: int) -> Envelope:
            params: dict[str, Any] = {"online": online, "session": base + seq}
            if reason:
                params["reason"] = reason
            return Envelope.new(ts=now_ms(), seq=seq, src=src, p=params)

        self.outbox.append_state(topic, build, seq_key=self.seq_key(product, device),
                                 key=f"{ONLINE_PREFIX}{product}/{device}", online=online)

    @property
    def session_base(self) -> int:
        """Added to every presence session number (devices' and the gateway's): the time in ms
        at which this outbox first needed one, stored in it. A gateway whose outbox is lost (a
        replaced gateway or SD card) counts its seqs from 1 again; without the base the cloud
        took all its states for stale (older sessions than it holds) and showed it and its
        devices offline for good. Needs a sane clock at the outbox's first start."""
        if self._session_base is None:
            held = self.outbox.kv_get(SESSION_BASE)
            if held is None:
                held = str(now_ms()).encode()
                self.outbox.kv_set(SESSION_BASE, held)
            self._session_base = int(held)
        return self._session_base

    def left_online(self) -> list[tuple[str, str]]:
        """Devices last reported online by an earlier run of this gateway (the outbox's
        record), not reported since: the cloud holds them online until they are."""
        out = []
        for key in self.outbox.kv_keys(ONLINE_PREFIX):
            product, _, device = key.removeprefix(ONLINE_PREFIX).partition("/")
            if (product, device) not in self._online and (product, device) != (
                    "gateway", self.gw):  # the gateway reports itself at every start
                out.append((product, device))
        return out

    def online_devices(self) -> int:
        """How many devices behind the gateway are online now."""
        return sum(1 for v in self._online.values() if v)

    def is_online(self, product: str, device: str) -> bool:
        """Whether the device is online (as last reported)."""
        return self._online.get((product, device), False)

    async def decide(
        self, product: str, device: str, name: str, params: Mapping[str, Any], *, src: str,
        ts: int | None = None, timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Emit an event that waits for the cloud's decision.

        Returns the validated reply params, or ``None`` when the cloud did not answer within
        ``timeout`` (the adapter then decides locally and should call :meth:`fallback`).
        """
        model = self.models[product]
        spec = model.event(name)
        wait = timeout if timeout is not None else min(
            self.decision_timeout, spec.reply_timeout or self.decision_timeout
        )
        if not self.cloud_connected.is_set():
            await self.event(product, device, name, params, src=src, ts=ts)
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Envelope] = loop.create_future()
        env = await self.event(product, device, name, params, src=src, ts=ts, urgent=True)
        self._decisions[env.id] = future
        try:
            async with asyncio.timeout(wait):
                reply = await future
        except TimeoutError:
            return None
        finally:
            self._decisions.pop(env.id, None)
        if reply.code not in (None, 0) or reply.p is None:
            return None
        try:
            return model.validate_event_reply(name, reply.p)
        except Exception:  # a malformed decision is no decision
            log.warning("malformed %s.%s reply for %s", product, name, device, exc_info=True)
            self.stats.inc("malformed_replies")
            return None

    async def fallback(
        self, product: str, device: str, decision: str, reason: str, result: str, *, src: str,
    ) -> None:
        """Report that a decision was answered locally."""
        self.stats.inc(f"fallback_{decision}")
        await self.event(
            "gateway", self.gw, "fallbackUsed",
            {"decision": decision, "product": product, "device": device,
             "reason": f"{reason}: {result}"},
            src="edge",
        )

    def resolve_decision(self, env: Envelope) -> bool:
        """Dispatcher callback for ``event/+/reply``: wake the waiting ``decide``."""
        if env.cid is None:
            return False
        future = self._decisions.get(env.cid)
        if future is None or future.done():
            return False
        future.set_result(env)
        return True

    # -- desired state --------------------------------------------------------------------

    def set_desired(self, product: str, device: str, version: int, doc: dict[str, Any]) -> bool:
        """Store a desired document; False when it is not newer than the one held."""
        key = (product, device)
        held = self._desired.get(key)
        if held is not None and held.version >= version:
            return False
        self._desired[key] = DesiredDoc(version, doc)
        return True

    def desired(self, product: str, device: str) -> DesiredDoc | None:
        """The latest desired document for a device."""
        return self._desired.get((product, device))

    def local_cards(self) -> list[Mapping[str, Any]]:
        """The offline / local auth list (``cards`` in the gateway's desired state)."""
        held = self._desired.get(("gateway", self.gw))
        cards = held.doc.get("cards", []) if held is not None else []
        return [c for c in cards or [] if isinstance(c, Mapping)]

    def provisioned_devices(self) -> dict[str, Mapping[str, Any]]:
        """The gateway desired state's ``devices`` indexed by id (rebuilt when it changes).

        Adapters look chargers up here on every connect and service call, so the lookup must
        not scan the list (10,000 chargers).
        """
        held = self._desired.get(("gateway", self.gw))
        version = held.version if held is not None else -1
        if self._device_index_version != version:
            index: dict[str, Mapping[str, Any]] = {}
            for entry in (held.doc.get("devices", []) if held is not None else []) or []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    index[entry["id"]] = entry
            self._device_index = index
            self._device_index_version = version
        return self._device_index

    def check_skew(self, device_ms: int | None) -> float | None:
        """Device clock minus gateway clock in seconds, when the device gave a time."""
        if device_ms is None:
            return None
        return (device_ms - now_ms()) / 1000
