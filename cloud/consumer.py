"""The cloud's MQTT consumer: one session per worker, shared subscriptions when available.

With ``protocol: auto`` the worker first connects with MQTT 5; a broker that refuses it (amqtt)
gets MQTT 3.1.1 and plain subscriptions, so the embedded default runs one worker. On MQTT 5
(Mosquitto, EMQX) uplink filters are subscribed as ``$share/{group}/...``: N workers split the load
and nothing in a worker depends on seeing every message. Service replies are subscribed without
sharing, so the worker that sent a call always sees its reply.

Every message is decoded (topic grammar, envelope); malformed ones are counted in ``/metrics``
by reason, logged once per (gateway, reason), and dropped: the consumer keeps going.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.config import CloudMqttConfig
from cloud.errors import CommandError, CommandTimeout
from cloud.metrics import CloudMetrics
from thingmodels.envelope import Envelope, decode, encode
from thingmodels.errors import EnvelopeError, TopicError
from thingmodels.ids import now_ms
from thingmodels.topics import PREFIX, Kind, Topic, parse, shared

log = logging.getLogger("voltmesh.cloud.consumer")

Handler = Callable[[Topic, Envelope], Awaitable[None]]

_UPLINK = [f"{PREFIX}/+/+/+/prop", f"{PREFIX}/+/+/+/state", f"{PREFIX}/+/+/+/event/+"]
_REPLIES = f"{PREFIX}/+/+/+/svc/+/reply"


class _Dedupe:
    """Recently seen message ids (per gateway) in a bounded LRU."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def first_time(self, gw: str, msg_id: str) -> bool:
        key = (gw, msg_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class Consumer:
    """Consumes gateway traffic and sends service calls."""

    def __init__(self, config: CloudMqttConfig, metrics: CloudMetrics, *, worker_id: str) -> None:
        self.config = config
        self.metrics = metrics
        self.worker_id = worker_id
        self.handlers: list[tuple[str, Handler]] = []
        self.shared_active = False
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._calls: dict[str, asyncio.Future[Envelope]] = {}
        self._dedupe = _Dedupe()
        self._logged: set[tuple[str, str]] = set()

    def add_handler(self, name: str, handler: Handler) -> None:
        """Call ``handler(topic, envelope)`` for every valid uplink message."""
        self.handlers.append((name, handler))

    # -- connection -----------------------------------------------------------------------

    def _make_client(self, protocol: aiomqtt.ProtocolVersion, *,
                     probe: bool = False) -> aiomqtt.Client:
        cfg = self.config
        v5 = protocol == aiomqtt.ProtocolVersion.V5
        persistent = cfg.session_expiry > 0 and not probe
        properties: Properties | None = None
        if v5 and persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = cfg.session_expiry
        identifier = cfg.client_id or f"vm-cloud-{self.worker_id}"
        client = aiomqtt.Client(
            cfg.host, cfg.port, username=cfg.username, password=cfg.password,
            identifier=identifier + "-probe" if probe else identifier, protocol=protocol,
            # a persistent session: what gateways publish while this worker reconnects (or
            # restarts) is queued by the broker, not lost (duplicates are dropped by _Dedupe)
            clean_session=None if v5 else not persistent,
            clean_start=not persistent if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=cfg.keepalive, timeout=10, max_inflight_messages=200,
            max_queued_incoming_messages=0,
            # paho leaves Nagle on: with delayed ACKs that adds ~40 ms to a request/reply
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = 10_000
        return client

    async def _broker_speaks_v5(self) -> bool:
        """Probe with a bare MQTT 5 CONNECT (no properties, its own client id).

        A v3-only broker refuses it cleanly; amqtt, for one, hangs on a v5 CONNECT that carries
        properties, so the persistent session is only requested once v5 is known to work.
        """
        while True:
            try:
                async with self._make_client(aiomqtt.ProtocolVersion.V5, probe=True):
                    return True
            except aiomqtt.MqttError as exc:
                if _refused_protocol(exc):
                    log.info("broker refuses MQTT 5: using 3.1.1 without shared "
                             "subscriptions (run one worker)")
                    return False
                log.warning("cloud consumer cannot reach the broker: %s", exc)
            await asyncio.sleep(random.uniform(0, min(self.config.backoff_max, 2.0)))  # noqa: S311

    async def run(self) -> None:
        """Connect and consume forever, reconnecting with jittered backoff."""
        attempt = 0
        if self.config.protocol == "auto":
            use_v5 = await self._broker_speaks_v5()
        else:
            use_v5 = self.config.protocol == "v5"
        while True:
            protocol = aiomqtt.ProtocolVersion.V5 if use_v5 else aiomqtt.ProtocolVersion.V311
            try:
                async with self._make_client(protocol) as client:
                    attempt = 0
                    self._client = client
                    self.metrics.mqtt_connects.inc()
                    await self._subscribe(client, v5=use_v5)
                    self.connected.set()
                    log.info("cloud worker %s consuming from %s:%s (MQTT %s, shared=%s)",
                             self.worker_id, self.config.host, self.config.port,
                             "5" if use_v5 else "3.1.1", self.shared_active)
                    async for message in client.messages:
                        await self.on_message(message.topic.value, message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("cloud consumer lost the broker: %s", exc)
            finally:
                self._client = None
                self.connected.clear()
                for future in self._calls.values():
                    if not future.done():
                        future.set_exception(CommandError("broker connection lost"))
            await asyncio.sleep(random.uniform(0, min(self.config.backoff_max,  # noqa: S311
                                                      0.5 * 2 ** min(attempt, 10))))
            attempt += 1

    async def _subscribe(self, client: aiomqtt.Client, *, v5: bool) -> None:
        group = self.config.shared_group
        self.shared_active = bool(v5 and group)
        filters = [shared(group, f) if self.shared_active and group else f for f in _UPLINK]
        await client.subscribe([(f, 1) for f in [*filters, _REPLIES]])

    # -- consuming ------------------------------------------------------------------------

    def _malformed(self, reason: str, topic: str, detail: str) -> None:
        self.metrics.malformed.labels(reason=reason).inc()
        parts = topic.split("/")
        gw = parts[2] if len(parts) > 2 else "?"
        key = (gw, reason)
        if key not in self._logged and len(self._logged) < 10_000:
            self._logged.add(key)
            log.warning("malformed message (%s) on %s: %s (further ones from %s are only "
                        "counted)", reason, topic, detail, gw)

    async def on_message(self, topic_str: str, payload: Any) -> None:
        """Handle one message (public for tests)."""
        try:
            topic = parse(topic_str)
        except TopicError as exc:
            self._malformed("topic", topic_str, str(exc))
            return
        if not isinstance(payload, bytes | bytearray):
            self._malformed("payload_type", topic_str, type(payload).__name__)
            return
        try:
            env = decode(bytes(payload))
        except EnvelopeError as exc:
            self._malformed("envelope", topic_str, str(exc))
            return
        self.metrics.messages.labels(kind=topic.kind.value).inc()
        if topic.kind is Kind.SVC_REPLY:
            self._resolve(env)
            return
        if not self._dedupe.first_time(topic.gw, env.id):
            self.metrics.duplicates.inc()
            return
        for name, handler in self.handlers:
            try:
                await handler(topic, env)
            except Exception:
                self.metrics.handler_errors.labels(handler=name).inc()
                log.exception("handler %s failed on %s", name, topic_str)

    # -- commands -------------------------------------------------------------------------

    def _resolve(self, env: Envelope) -> None:
        if env.cid is None:
            return
        future = self._calls.get(env.cid)
        if future is not None and not future.done():
            future.set_result(env)

    async def publish(self, topic: Topic, env: Envelope, *, retain: bool = False) -> None:
        """Publish a downlink message (QoS 1)."""
        client = self._client
        if client is None:
            raise CommandError("not connected to the broker")
        await client.publish(topic.render(), encode(env), qos=1, retain=retain)

    async def publish_desired(self, gw: str, product: str, device: str,
                              doc: dict[str, Any]) -> int:
        """Publish a retained desired-state document; returns its version.

        The version is taken from the document when given, else the current time in ms, so
        versions grow across workers without coordination.
        """
        version = doc.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            version = now_ms()
        body = {**doc, "version": version}
        await self.publish(Topic(gw, product, device, Kind.DESIRED),
                           Envelope.new(src="cloud", p=body), retain=True)
        return version

    async def call(self, gw: str, product: str, device: str, service: str,
                   params: dict[str, Any] | None = None, *, timeout: float = 10.0,
                   deadline_ms: int | None = None) -> Envelope:
        """Invoke a device service and wait for its reply (raises on timeout)."""
        topic = Topic(gw, product, device, Kind.SVC, service)
        dl = deadline_ms if deadline_ms is not None else now_ms() + int(timeout * 1000)
        env = Envelope.new(src="cloud", p=params or {}, dl=dl)
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._calls[env.id] = future
        try:
            await self.publish(topic, env)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise CommandTimeout(f"{product}/{device} {service}: no reply in {timeout}s") from None
        finally:
            self._calls.pop(env.id, None)


def _refused_protocol(exc: aiomqtt.MqttError) -> bool:
    text = str(exc).lower()
    return "unsupported protocol" in text or "132" in text or "protocol version" in text
