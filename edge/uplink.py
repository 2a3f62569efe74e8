"""The gateway's ONE MQTT session to the cloud broker.

* a supervised reconnect loop with capped, full-jitter exponential backoff;
* the gateway's presence: a retained ``online`` state carrying the session number, and the same
  topic as the MQTT Will (``online: false`` with the same session number). The session number
  grows with every connect, so a late Will of an old session cannot overwrite a newer ``online``:
  consumers ignore states older than the newest session they saw, and the gateway itself watches
  its state topic and re-asserts ``online`` if an old Will lands on the retained slot. A stop
  (cancellation) publishes the Will's ``offline`` itself: a clean DISCONNECT discards the Will;
* the outbox pump: rows are published in order with QoS 1 (telemetry at the configured QoS),
  up to ``max_inflight`` at once, and deleted only after the broker's PUBACK, or for events
  (receipts on) after the cloud's receipt; events whose receipt is overdue are published again
  (same envelope) ahead of the backlog, urgent rows still first (``edge/outbox.py``), and only
  one at a time while no receipt has come since the last such publication (the cloud is away);
* the receive loop: downlink messages are decoded and handed to the dispatcher; malformed ones are
  counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable

import aiomqtt

from edge.config import MqttConfig
from edge.context import EdgeContext
from edge.outbox import Outbox, Row, RowKind
from thingmodels.envelope import Envelope, decode, encode
from thingmodels.errors import EnvelopeError, TopicError
from thingmodels.ids import now_ms
from thingmodels.topics import Kind, Topic, downlink_filters, gateway_state, parse

log = logging.getLogger("voltmesh.edge.uplink")

Handler = Callable[[Topic, Envelope], Awaitable[None]]


def backoff_delays(initial: float, maximum: float) -> Callable[[int], float]:
    """Full-jitter exponential backoff: attempt n waits uniform(0, min(max, initial * 2**n))."""

    def delay(attempt: int) -> float:
        return random.uniform(0, min(maximum, initial * (2 ** min(attempt, 30))))  # noqa: S311

    return delay


class Uplink:
    """Owns the MQTT client; publishes the outbox, receives downlink messages."""

    def __init__(
        self, config: MqttConfig, ctx: EdgeContext, handler: Handler, *, batch: int = 200,
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.gw = ctx.gw
        self.outbox: Outbox = ctx.outbox
        self.handler = handler
        self.batch = batch
        self.session = 0
        self.connects = 0
        self.connected = ctx.cloud_connected
        self._wake = asyncio.Event()
        self.outbox.on_append(self._wake.set)
        self._delay = backoff_delays(config.backoff_initial, config.backoff_max)
        # receipts counted when events were last published again (None: never), and when the
        # next single one may go while the cloud is silent (see _pump's overdue)
        self._receipts_at_resend: int | None = None
        self._next_probe = 0.0

    def _state(self, online: bool) -> bytes:
        return encode(Envelope.new(ts=now_ms(), src="edge",
                                   p={"online": online, "session": self.session}))

    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        tls: ssl.SSLContext | None = None
        if cfg.tls:
            tls = ssl.create_default_context(cafile=cfg.ca_file)
        will = aiomqtt.Will(
            topic=gateway_state(self.gw).render(), payload=self._state(False), qos=1, retain=True,
        )
        client = aiomqtt.Client(
            cfg.host, cfg.port, username=cfg.username, password=cfg.password,
            identifier=cfg.client_id, will=will, clean_session=True, keepalive=cfg.keepalive,
            tls_context=tls, max_inflight_messages=cfg.max_inflight,
            max_queued_outgoing_messages=0, timeout=10,
            # paho leaves Nagle on: with delayed ACKs that adds ~40 ms to a request/reply
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = cfg.max_inflight * 4 + 100
        return client

    async def run(self) -> None:
        """Connect, serve, reconnect; forever (until cancelled)."""
        attempt = 0
        while True:
            # the gateway's own seq counter (EdgeContext.seq_key): above every session number
            # its state topic has carried, also those of releases before session 4, which
            # published the gateway's online through EdgeContext.presence with that seq; plus
            # the outbox's session base, so a replaced gateway (outbox lost) outranks its past
            self.session = self.ctx.session_base + self.outbox.next_seq(
                self.ctx.seq_key("gateway", self.gw))
            try:
                async with self._client() as client:
                    attempt = 0
                    self.connects += 1
                    log.info("uplink connected to %s:%s as %s (session %d)",
                             self.config.host, self.config.port, self.config.username,
                             self.session)
                    try:
                        await self._serve(client)
                    except asyncio.CancelledError:
                        await self._say_offline(client)
                        raise
            except* aiomqtt.MqttError as group:
                self.ctx.stats.inc("uplink_disconnects")
                log.warning("uplink to %s:%s lost: %s", self.config.host, self.config.port,
                            group.exceptions[0])
            finally:
                self.connected.clear()
            delay = self._delay(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """A stop, not a crash: the clean DISCONNECT that follows makes the broker discard the
        Will, so the gateway publishes it itself (retained ``offline`` of this session, which
        outranks its ``online``); else the cloud shows a stopped gateway online for good."""
        try:
            async with asyncio.timeout(2.0):
                await client.publish(gateway_state(self.gw).render(), self._state(False),
                                     qos=1, retain=True)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("uplink: offline state not published at stop: %s", exc)

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.publish(gateway_state(self.gw).render(), self._state(True), qos=1,
                             retain=True)
        filters = [*downlink_filters(self.gw), gateway_state(self.gw).render()]
        await client.subscribe([(f, 1) for f in filters])
        self.connected.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump(client), name="uplink-pump")
            tg.create_task(self._receive(client), name="uplink-receive")
            tg.create_task(self._keep_alive(client), name="uplink-presence")

    async def _keep_alive(self, client: aiomqtt.Client) -> None:
        """Publish the retained ``online`` again every ``presence_interval`` (outside the
        outbox: it is about now, never a backlog). The cloud takes a gateway not heard from for
        a few intervals for dead (``presence_silence``): the only sign of a gateway that died
        while its broker was down, when no Will is ever published."""
        while True:
            await asyncio.sleep(self.config.presence_interval)
            await client.publish(gateway_state(self.gw).render(), self._state(True), qos=1,
                                 retain=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                topic = parse(message.topic.value)
                env = decode(message.payload)
            except (TopicError, EnvelopeError) as exc:
                self.ctx.stats.inc("malformed_downlink")
                log.warning("malformed downlink on %s: %s", message.topic.value, exc)
                continue
            if topic.kind is Kind.STATE:
                await self._check_own_state(client, env)
                continue
            try:
                await self.handler(topic, env)
            except Exception:
                self.ctx.stats.inc("dispatch_errors")
                log.exception("dispatching %s failed", message.topic.value)

    async def _check_own_state(self, client: aiomqtt.Client, env: Envelope) -> None:
        p = env.p or {}
        if p.get("online") is False and p.get("session") != self.session:
            log.info("stale Will (session %s) on our state topic: re-asserting online",
                     p.get("session"))
            await client.publish(gateway_state(self.gw).render(), self._state(True), qos=1,
                                 retain=True)

    async def _pump(self, client: aiomqtt.Client) -> None:
        inflight = asyncio.Semaphore(self.config.max_inflight)
        acked: list[int] = []
        flush_lock = asyncio.Lock()
        last = 0
        failed = asyncio.Event()
        pending: set[asyncio.Task[None]] = set()

        async def flush_acks() -> None:
            async with flush_lock:
                if acked:
                    ids = acked[:]
                    acked.clear()
                    self.outbox.ack(ids)

        async def send(row: Row) -> None:
            try:
                qos = self.config.telemetry_qos if row.kind is RowKind.TELEMETRY else row.qos
                await client.publish(row.topic, row.payload, qos=qos, retain=row.retain)
            except aiomqtt.MqttError:
                failed.set()
                raise
            finally:
                inflight.release()
            acked.append(row.rowid)
            if len(acked) >= 100:
                await flush_acks()

        last_urgent = 0
        loop = asyncio.get_running_loop()
        next_due_check = 0.0

        def overdue() -> list[Row]:
            """Events whose receipt is overdue (checked at most once a second).

            Held while the cloud is silent: once events were published again and no receipt
            at all has come since, only one (the oldest due) goes out per
            ``receipt_timeout_max`` until a receipt shows a worker consuming. The copies of an
            outage would otherwise pile up in the workers' persistent sessions at the broker
            (Mosquitto drops beyond ``max_queued_messages``), and the originals are queued
            there already.
            """
            nonlocal next_due_check
            now = loop.time()
            if now < next_due_check:
                return []
            box = self.outbox
            held = self._receipts_at_resend is not None and \
                box.stats.receipted == self._receipts_at_resend
            if held and now < self._next_probe:
                next_due_check = now + 1.0
                return []
            limit = 1 if held else self.batch
            rows = box.take_due(limit)
            if held or len(rows) < limit:
                next_due_check = now + 1.0
            if not rows:
                return rows
            self._receipts_at_resend = box.stats.receipted
            if held:
                self._next_probe = now + box.receipt_timeout_max
                self.ctx.stats.inc("receipt_probes")
                log.warning("no receipt from the cloud since events were published again: "
                            "%d awaiting, publishing only the oldest again every %.0f s until "
                            "one comes", box.stats.awaiting_receipt, box.receipt_timeout_max)
            else:
                log.info("publishing %d events again: no receipt from the cloud in time "
                         "(%d awaiting)", len(rows), box.stats.awaiting_receipt)
            return rows

        def next_rows() -> tuple[list[Row], bool]:
            """The next rows, and whether they are publications again (no cursor move)."""
            nonlocal last_urgent
            urgent = self.outbox.peek(self.batch, after=last_urgent, urgent=True)
            if urgent:
                last_urgent = urgent[-1].rowid
                return urgent, False
            again = overdue()
            if again:
                return again, True
            return self.outbox.peek(self.batch, after=last, urgent=False), False

        try:
            while not failed.is_set():
                rows, again = next_rows()
                if not rows:
                    await flush_acks()
                    self._wake.clear()
                    rows, again = next_rows()
                    if not rows:
                        try:
                            async with asyncio.timeout(0.2):
                                await self._wake.wait()
                        except TimeoutError:
                            pass
                        continue
                for row in rows:
                    await inflight.acquire()
                    if failed.is_set():
                        inflight.release()
                        break
                    task = asyncio.create_task(send(row))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    if row.kind is not RowKind.URGENT and not again:
                        last = row.rowid
                    if row.kind is not RowKind.URGENT and self.outbox.has_urgent_after(
                            last_urgent):
                        break  # serve urgent rows that arrived meanwhile first
                await asyncio.sleep(0)
                await flush_acks()
            raise aiomqtt.MqttError("publish failed; reconnecting")
        finally:
            for task in list(pending):
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await flush_acks()
