"""The cloud's MQTT consumer: one session per worker, shared subscriptions when available.

With ``protocol: auto`` the worker first connects with MQTT 5; a broker that refuses it (amqtt)
gets MQTT 3.1.1 and plain subscriptions, so the embedded default runs one worker. On MQTT 5
(Mosquitto, EMQX) uplink filters are subscribed as ``$share/{group}/...``: N workers split the load
and nothing in a worker depends on seeing every message. Service replies are subscribed without
sharing, on a connection of their own, so the worker that sent a call always sees its reply and
never behind a backlog of telemetry.

Every message is decoded (topic grammar, envelope); malformed ones are counted in ``/metrics``
by reason, logged once per (gateway, reason), and dropped: the consumer keeps going.

Acknowledgement after the work (manual PUBACK). A handler may return an awaitable: the message's
PUBACK is held until it completes (billing and alarms commit to SQL first), and PUBACKs go out in
the order the messages came, as MQTT requires. A worker killed between receipt and commit has
not acknowledged the message, so the broker delivers it again (persistent session).

Receipts (end to end). A PUBACK tells the broker, not the gateway, that the work is done, and a
broker can lose a QoS 1 message before any worker saw it (Mosquitto, shared subscriptions of
offline sessions, across its own restart: ``docs/scale-out.md``). So once the work of a gateway's
*event* has completed, its envelope id is queued for a receipt; receipts are batched per gateway
(every ``receipt_interval`` or ``receipt_batch`` ids) and published with QoS 1 on
``ev/v1/{gw}/gateway/{gw}/receipt`` (``p = {"ids": [...]}``). The gateway keeps the event and
publishes it again until a receipt names it. A duplicate is receipted again (once the
original's work is done: the first receipt may have been lost); an event whose handling failed
is not receipted and is forgotten by the dedupe, so its re-publication is worked afresh.

Session takeover (shared subscriptions on Mosquitto). Mosquitto keeps routing a shared group's
messages to a member whose persistent session is offline; they wait for that member. So each worker
announces itself on ``vm/cloud/workers/{client id}`` (retained, with an offline Will), and when a
peer is offline for ``takeover_grace`` seconds the first online worker (by client id) connects
*as that peer* and consumes its session until the peer returns (its reconnect takes the session
back). The survivors carry the whole load and nothing queued for the dead worker waits or expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from thingmodels.topics import PREFIX, RECEIPT_IDS, Kind, Topic, gateway_receipt, parse, shared

log = logging.getLogger("voltmesh.cloud.consumer")

#: a handler may return an awaitable: the message is acknowledged once it has completed
Handler = Callable[[Topic, Envelope], Awaitable[Awaitable[Any] | None]]

WORKERS_PREFIX = "vm/cloud/workers"

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

    def forget(self, gw: str, msg_id: str) -> None:
        """Treat the next copy of this message as new (its first handling failed)."""
        self._seen.pop((gw, msg_id), None)


class _Receipts:
    """Event ids to receipt, per gateway, bounded (a receipt lost here only costs the gateway a
    re-publication)."""

    def __init__(self, batch: int, limit: int = 100_000) -> None:
        self.batch = batch
        self.limit = limit
        self.pending: dict[str, list[str]] = {}
        self.count = 0
        self.dropped = 0
        self.full = asyncio.Event()

    def add(self, gw: str, msg_id: str) -> None:
        ids = self.pending.setdefault(gw, [])
        ids.append(msg_id)
        self.count += 1
        if len(ids) >= self.batch:
            self.full.set()
        while self.count > self.limit:  # nobody publishes them (broker away): oldest go
            lost = len(self.pending.pop(next(iter(self.pending))))
            self.count -= lost
            self.dropped += lost

    def take(self) -> dict[str, list[str]]:
        taken, self.pending, self.count = self.pending, {}, 0
        return taken


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
        #: completion of messages still being worked on, by (gw, id): a redelivered copy is
        #: acknowledged only once the original's work is done
        self._working: dict[tuple[str, str], asyncio.Future[Any]] = {}
        #: peer workers' presence (client id -> online) and the sessions this worker adopted
        self.peers: dict[str, bool] = {}
        self.adopted: dict[str, asyncio.Task[None]] = {}
        self._peer_changed = asyncio.Event()
        self._replies_ready = asyncio.Event()
        self._receipts = _Receipts(config.receipt_batch)
        #: event ids receipted to gateways / receipts lost (publish failed or never connected)
        self.receipts_sent = 0
        self.receipts_lost = 0

    @property
    def client_id(self) -> str:
        """This worker's MQTT client id (stable: the broker keeps its session)."""
        return self.config.client_id or f"vm-cloud-{self.worker_id}"

    def add_handler(self, name: str, handler: Handler) -> None:
        """Call ``handler(topic, envelope)`` for every valid uplink message."""
        self.handlers.append((name, handler))

    # -- connection -----------------------------------------------------------------------

    def _make_client(self, protocol: aiomqtt.ProtocolVersion, *, probe: bool = False,
                     identifier: str | None = None,
                     will: aiomqtt.Will | None = None) -> aiomqtt.Client:
        cfg = self.config
        v5 = protocol == aiomqtt.ProtocolVersion.V5
        persistent = cfg.session_expiry > 0 and not probe
        properties: Properties | None = None
        if v5 and persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = cfg.session_expiry
        identifier = identifier or self.client_id
        client = aiomqtt.Client(
            cfg.host, cfg.port, username=cfg.username, password=cfg.password,
            identifier=identifier + "-probe" if probe else identifier, protocol=protocol,
            # a persistent session: what gateways publish while this worker reconnects (or
            # restarts) is queued by the broker, not lost (duplicates are dropped by _Dedupe)
            clean_session=None if v5 else not persistent,
            clean_start=not persistent if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties, will=will,
            keepalive=cfg.keepalive, timeout=10, max_inflight_messages=200,
            max_queued_incoming_messages=0,
            # paho leaves Nagle on: with delayed ACKs that adds ~40 ms to a request/reply
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = 10_000
        # PUBACK after the work, not on receipt (see the module docstring)
        client._client.manual_ack_set(True)
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
        takeover = use_v5 and bool(self.config.shared_group) and self.config.takeover \
            and self.config.session_expiry > 0
        async with asyncio.TaskGroup() as tg:
            if takeover:
                tg.create_task(self._adopt_orphans(), name="session-takeover")
            tg.create_task(self._replies_loop(use_v5), name="service-replies")
            tg.create_task(self._receipts_loop(), name="receipts")
            while True:
                protocol = aiomqtt.ProtocolVersion.V5 if use_v5 else aiomqtt.ProtocolVersion.V311
                will = aiomqtt.Will(self._presence_topic(), self._presence(False), qos=1,
                                    retain=True) if takeover else None
                try:
                    async with self._make_client(protocol, will=will) as client:
                        attempt = 0
                        self._client = client
                        self.metrics.mqtt_connects.inc()
                        await self._subscribe(client, v5=use_v5, replies=False)
                        await self._replies_ready.wait()  # a call's reply must find us
                        if takeover:
                            await client.subscribe(f"{WORKERS_PREFIX}/+", qos=1)
                            await client.publish(self._presence_topic(), self._presence(True),
                                                 qos=1, retain=True)
                        self.connected.set()
                        log.info("cloud worker %s consuming from %s:%s (MQTT %s, shared=%s)",
                                 self.worker_id, self.config.host, self.config.port,
                                 "5" if use_v5 else "3.1.1", self.shared_active)
                        await self._consume(client)
                except aiomqtt.MqttError as exc:
                    log.warning("cloud consumer lost the broker: %s", exc)
                finally:
                    self._client = None
                    self.connected.clear()
                    for future in self._calls.values():
                        if not future.done():
                            future.set_exception(CommandError("broker connection lost"))
                await asyncio.sleep(random.uniform(0, min(  # noqa: S311
                    self.config.backoff_max, 0.5 * 2 ** min(attempt, 10))))
                attempt += 1

    async def _replies_loop(self, v5: bool) -> None:
        """Service replies on a connection of their own (clean session: they answer calls of
        this process only), so a reply never waits behind a telemetry backlog in the main
        session's in-order stream."""
        attempt = 0
        protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
        cfg = self.config
        while True:
            try:
                async with aiomqtt.Client(
                        cfg.host, cfg.port, username=cfg.username, password=cfg.password,
                        identifier=f"{self.client_id}-replies", protocol=protocol,
                        clean_session=None if v5 else True, keepalive=cfg.keepalive,
                        timeout=10, max_queued_incoming_messages=0,
                        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                ) as client:
                    attempt = 0
                    await client.subscribe(_REPLIES, qos=1)
                    self._replies_ready.set()
                    async for message in client.messages:
                        await self.on_message(message.topic.value, message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("cloud replies connection lost: %s", exc)
            finally:
                self._replies_ready.clear()
            # a clean, cheap connection the main session waits for: retry it within a second
            await asyncio.sleep(random.uniform(0, min(  # noqa: S311
                1.0, cfg.backoff_max, 0.5 * 2 ** min(attempt, 10))))
            attempt += 1

    async def _consume(self, client: aiomqtt.Client, *, adopted: str | None = None) -> None:
        """Hand every message to the handlers; acknowledge in order once its work is done."""
        acks: asyncio.Queue[tuple[int, int, Awaitable[Any] | None]] = asyncio.Queue()

        async def acker() -> None:
            while True:
                mid, qos, work = await acks.get()
                if work is not None:
                    try:
                        # shielded: a lost connection ends this acker, not the work (whose
                        # redelivered copy then waits for it, and is receipted after it)
                        await asyncio.shield(work)
                    except Exception:  # the work's owner logs and counts its failures
                        log.debug("work of message %d failed", mid, exc_info=True)
                if qos > 0:
                    client._client.ack(mid, qos)

        # a plain task, not a TaskGroup: the loop's MqttError must reach the reconnect loop as is
        ack_task = asyncio.create_task(acker(), name="acker")
        try:
            async for message in client.messages:
                topic = message.topic.value
                work: Awaitable[Any] | None = None
                if topic.startswith(WORKERS_PREFIX + "/"):
                    if adopted is None:
                        self._on_peer(topic, message.payload)
                else:
                    work = await self.on_message(topic, message.payload)
                acks.put_nowait((message.mid, message.qos, work))
        finally:
            ack_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ack_task

    # -- worker presence and session takeover ---------------------------------------------

    def _presence_topic(self, client_id: str | None = None) -> str:
        return f"{WORKERS_PREFIX}/{client_id or self.client_id}"

    def _presence(self, online: bool) -> bytes:
        return encode(Envelope.new(src="cloud", p={"online": online, "worker": self.worker_id}))

    def _on_peer(self, topic: str, payload: Any) -> None:
        peer = topic.rsplit("/", 1)[1]
        try:
            env = decode(bytes(payload))
            online = bool((env.p or {}).get("online"))
        except (EnvelopeError, TypeError):
            self._malformed("worker_state", topic, "undecodable worker presence")
            return
        if self.peers.get(peer) != online:
            self.peers[peer] = online
            self._peer_changed.set()

    def _orphans(self) -> list[str]:
        """Offline peers this worker should adopt: it is the first online worker by id."""
        online = sorted([p for p, up in self.peers.items() if up] + [self.client_id])
        if not self.connected.is_set() or online[0] != self.client_id:
            return []
        return [p for p, up in self.peers.items() if not up and p != self.client_id]

    async def _adopt_orphans(self) -> None:
        grace = self.config.takeover_grace
        while True:
            await self._peer_changed.wait()
            self._peer_changed.clear()
            await asyncio.sleep(grace)  # a restarting peer comes back within the grace
            orphans = set(self._orphans())
            for peer in orphans - set(self.adopted):
                log.warning("worker %s is offline: consuming its session until it returns",
                            peer)
                task = asyncio.create_task(self._adopt(peer), name=f"adopt-{peer}")
                self.adopted[peer] = task
                task.add_done_callback(functools.partial(self._adoption_ended, peer))
            for peer in set(self.adopted) - orphans:
                self.adopted[peer].cancel()

    def _adoption_ended(self, peer: str, _task: asyncio.Task[None]) -> None:
        self.adopted.pop(peer, None)
        self._peer_changed.set()  # still orphaned? adopted again after the grace

    async def _adopt(self, peer: str) -> None:
        try:
            async with self._make_client(aiomqtt.ProtocolVersion.V5, identifier=peer) as client:
                self.metrics.takeovers.inc()
                # the session keeps its subscriptions; subscribing again is harmless and
                # covers a session that had expired
                await self._subscribe(client, v5=True, replies=False)
                await self._consume(client, adopted=peer)
        except aiomqtt.MqttError as exc:  # the peer took its session back, or the broker left
            log.info("stopped consuming the session of %s: %s", peer, exc)

    async def _subscribe(self, client: aiomqtt.Client, *, v5: bool, replies: bool = True) -> None:
        group = self.config.shared_group
        self.shared_active = bool(v5 and group)
        filters = [shared(group, f) if self.shared_active and group else f for f in _UPLINK]
        await client.subscribe([(f, 1) for f in [*filters, *([_REPLIES] if replies else [])]])

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

    async def on_message(self, topic_str: str, payload: Any) -> Awaitable[Any] | None:
        """Handle one message; returns what its acknowledgement waits for (public for tests)."""
        try:
            topic = parse(topic_str)
        except TopicError as exc:
            self._malformed("topic", topic_str, str(exc))
            return None
        if not isinstance(payload, bytes | bytearray):
            self._malformed("payload_type", topic_str, type(payload).__name__)
            return None
        try:
            env = decode(bytes(payload))
        except EnvelopeError as exc:
            self._malformed("envelope", topic_str, str(exc))
            return None
        self.metrics.messages.labels(kind=topic.kind.value).inc()
        if topic.kind is Kind.SVC_REPLY:
            self._resolve(env)
            return None
        key = (topic.gw, env.id)
        receipt = topic.kind is Kind.EVENT
        if not self._dedupe.first_time(topic.gw, env.id):
            self.metrics.duplicates.inc()
            working = self._working.get(key)
            if receipt:  # again: the first receipt may have been lost
                self._receipt_after(topic.gw, env.id, working)
            return working  # acknowledged once the original's work is done
        works: list[Awaitable[Any]] = []
        failed = False
        for name, handler in self.handlers:
            try:
                work = await handler(topic, env)
            except Exception:
                self.metrics.handler_errors.labels(handler=name).inc()
                log.exception("handler %s failed on %s", name, topic_str)
                failed = True
                continue
            if work is not None:
                works.append(work)
        if not works:
            if receipt:
                self._receipt_after(topic.gw, env.id, None, ok=not failed)
            return None
        done = asyncio.ensure_future(self._finish(topic_str, works, ok=not failed))
        self._working[key] = done
        done.add_done_callback(lambda _f: self._working.pop(key, None))
        if receipt:
            self._receipt_after(topic.gw, env.id, done)
        return done

    async def _finish(self, topic_str: str, works: list[Awaitable[Any]], *,
                      ok: bool = True) -> bool:
        """Wait for the work of one message; True when all of it succeeded."""
        for result in await asyncio.gather(*works, return_exceptions=True):
            if isinstance(result, Exception):
                self.metrics.handler_errors.labels(handler="work").inc()
                log.error("work for %s failed: %s", topic_str, result)
                ok = False
        return ok

    # -- receipts -------------------------------------------------------------------------

    def _receipt_after(self, gw: str, msg_id: str, working: asyncio.Future[Any] | None, *,
                       ok: bool = True) -> None:
        """Receipt an event once its work (``working``, when still running) has succeeded."""
        if working is None:
            if ok:
                self._receipts.add(gw, msg_id)
            else:
                self._dedupe.forget(gw, msg_id)  # not committed: a re-publication is new
            return

        def after(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None and future.result():
                self._receipts.add(gw, msg_id)
            else:
                self._dedupe.forget(gw, msg_id)

        working.add_done_callback(after)

    async def _receipts_loop(self) -> None:
        """Publish the queued receipts every ``receipt_interval`` (sooner when a gateway has
        ``receipt_batch`` ids waiting)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.receipt_interval):
                    await self._receipts.full.wait()
            self._receipts.full.clear()
            await self.flush_receipts()

    async def flush_receipts(self) -> int:
        """Publish every queued receipt now; returns how many ids went out."""
        client = self._client
        if client is None or not self._receipts.count:
            return 0
        batch = self.config.receipt_batch
        messages = [
            (gateway_receipt(gw).render(), encode(Envelope.new(
                src="cloud", p={RECEIPT_IDS: ids[i : i + batch]})), len(ids[i : i + batch]))
            for gw, ids in self._receipts.take().items() for i in range(0, len(ids), batch)]
        results: list[Any] = []
        for start in range(0, len(messages), 500):  # bounded: paho's pending-call limit
            results += await asyncio.gather(
                *(client.publish(topic, payload, qos=1)
                  for topic, payload, _ in messages[start : start + 500]),
                return_exceptions=True)
        sent = 0
        for (topic, _, count), result in zip(messages, results, strict=True):
            if isinstance(result, Exception):
                # the gateway publishes those events again after its receipt timeout
                self.receipts_lost += count
                self.metrics.receipts.labels("lost").inc(count)
                log.warning("receipt of %d events on %s lost: %s", count, topic, result)
            else:
                sent += count
        self.receipts_sent += sent
        if sent:
            self.metrics.receipts.labels("sent").inc(sent)
        return sent

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

    async def publish_raw(self, topic: str, payload: bytes, qos: int = 1,
                          retain: bool = False) -> None:
        """Publish bytes to any topic the cloud user may write (rule republish actions)."""
        client = self._client
        if client is None:
            raise CommandError("not connected to the broker")
        await client.publish(topic, payload, qos=qos, retain=retain)

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
