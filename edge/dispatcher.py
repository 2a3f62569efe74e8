"""Routes what the cloud sends to the gateway: service calls, event replies, desired state and
receipts (the ids of events a cloud worker committed: their outbox rows are deleted).

Service calls:

* a call id seen before is answered again with the stored reply and never executed twice;
* the deadline is the envelope's ``dl``, else ``rts`` plus the service's timeout from the thing
  model; a call whose deadline has passed is answered ``408`` and never executed;
* input is validated against the thing model (``400`` on a mismatch);
* the owning adapter runs it under the remaining time (``504`` when it runs out);
* the reply (``cid`` = call id) goes through the outbox, so it survives a lost link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgpack

from edge.adapter import Adapter
from edge.context import EdgeContext
from edge.errors import (
    CODE_BAD_INPUT,
    CODE_EXPIRED,
    CODE_INTERNAL,
    CODE_OK,
    DeviceError,
    UnknownDevice,
)
from edge.outbox import RowKind
from thingmodels.envelope import Envelope, decode, reply_to
from thingmodels.errors import PayloadError, ThingModelError, UnknownModelError
from thingmodels.ids import now_ms
from thingmodels.topics import RECEIPT_IDS, Kind, Topic

log = logging.getLogger("voltmesh.edge.dispatch")

GatewayService = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Dispatcher:
    """Routes downlink messages to adapters and the context."""

    def __init__(self, ctx: EdgeContext, adapters: Sequence[Adapter]) -> None:
        self.ctx = ctx
        self.adapters = list(adapters)
        self.gateway_services: dict[str, GatewayService] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def owner(self, product: str, device: str) -> Adapter:
        """The adapter that owns a device."""
        for adapter in self.adapters:
            if adapter.owns(product, device):
                return adapter
        raise UnknownDevice(f"no adapter on gateway {self.ctx.gw} owns {product}/{device}")

    async def handle(self, topic: Topic, env: Envelope) -> None:
        """Handle one downlink message (called by the uplink's receive loop)."""
        if topic.gw != self.ctx.gw:
            self.ctx.stats.inc("foreign_topic")
            return
        if topic.kind is Kind.SVC:
            task = asyncio.create_task(self.call(topic, env), name=f"svc-{env.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif topic.kind is Kind.EVENT_REPLY:
            if not self.ctx.resolve_decision(env):
                self.ctx.stats.inc("late_decisions")
        elif topic.kind is Kind.DESIRED:
            await self.desired(topic, env)
        elif topic.kind is Kind.RECEIPT:
            self.receipt(env)

    def receipt(self, env: Envelope) -> None:
        """The cloud committed these events: their rows leave the outbox."""
        ids = (env.p or {}).get(RECEIPT_IDS)
        if not isinstance(ids, list | tuple) or not all(isinstance(i, str) for i in ids):
            self.ctx.stats.inc("malformed_receipts")
            log.warning("malformed receipt %s: p.%s is not a list of ids", env.id, RECEIPT_IDS)
            return
        self.ctx.stats.inc("receipts")
        self.ctx.outbox.receipt(ids)

    async def drain(self) -> None:
        """Wait for running calls (used on shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _reply(self, topic: Topic, call: Envelope, code: int, msg: str | None,
               p: dict[str, Any] | None) -> None:
        reply = reply_to(call, code=code, msg=msg, p=p, src="edge")
        reply_topic = topic.reply().render()
        # the reply row and its memo (for a redelivered call) in one transaction
        self.ctx.outbox.append_reply(
            call.id, reply_topic,
            lambda seq: Envelope(
                id=reply.id, rts=reply.rts, seq=seq, src=reply.src, cid=reply.cid,
                code=reply.code, msg=reply.msg, p=reply.p,
            ),
            seq_key=self.ctx.seq_key(topic.product, topic.device),
        )
        if code != CODE_OK:
            self.ctx.stats.inc(f"svc_error_{code}")

    async def call(self, topic: Topic, env: Envelope) -> None:
        """Execute one service call and reply."""
        known = self.ctx.outbox.known_reply(env.id)
        if known is not None:
            self.ctx.stats.inc("svc_duplicates")
            reply_topic, payload = known
            # same id as the first time: the cloud deduplicates it
            self.ctx.outbox.append(reply_topic, decode(payload), kind=RowKind.URGENT)
            return
        name = topic.name or ""
        try:
            model = self.ctx.models[topic.product]
            spec = model.service(name)
        except UnknownModelError as exc:
            self._reply(topic, env, 404, str(exc), None)
            return
        deadline = env.dl if env.dl is not None else env.rts + int(spec.timeout * 1000)
        remaining = (deadline - now_ms()) / 1000
        if remaining <= 0:
            log.warning("service %s on %s/%s expired %.3fs ago: not executed",
                        name, topic.product, topic.device, -remaining)
            self._reply(topic, env, CODE_EXPIRED,
                        f"deadline passed {-remaining:.3f}s before execution; not executed", None)
            return
        try:
            params = model.validate_input(name, env.p or {})
        except PayloadError as exc:
            self._reply(topic, env, CODE_BAD_INPUT, str(exc), None)
            return
        try:
            async with asyncio.timeout(remaining):
                if topic.product == "gateway" and topic.device == self.ctx.gw:
                    handler = self.gateway_services.get(name)
                    if handler is None:
                        raise UnknownDevice(f"gateway has no service {name}")
                    output = await handler(params)
                else:
                    adapter = self.owner(topic.product, topic.device)
                    output = await adapter.invoke(topic.product, topic.device, name, params,
                                                  deadline)
            output = model.validate_output(name, output)
        except TimeoutError:
            self._reply(topic, env, 504, "device did not answer before the deadline", None)
        except DeviceError as exc:
            self._reply(topic, env, exc.code, exc.message, None)
        except ThingModelError as exc:
            log.error(  # noqa: TRY400 - the cause is the data, not a traceback
                "adapter output for %s.%s does not fit the model: %s", topic.product, name, exc)
            self._reply(topic, env, CODE_INTERNAL, f"invalid output: {exc}", None)
        except Exception as exc:
            log.exception("service %s on %s/%s failed", name, topic.product, topic.device)
            self._reply(topic, env, CODE_INTERNAL, f"{exc.__class__.__name__}: {exc}", None)
        else:
            self._reply(topic, env, CODE_OK, None, output)

    async def desired(self, topic: Topic, env: Envelope) -> None:
        """Store and apply a desired-state document."""
        doc = env.p or {}
        version = doc.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            self.ctx.stats.inc("malformed_desired")
            log.warning("desired state for %s/%s has no integer version", topic.product,
                        topic.device)
            return
        if not self.ctx.set_desired(topic.product, topic.device, version, doc):
            return
        self.ctx.outbox.kv_set(
            f"desired/{topic.product}/{topic.device}", msgpack.packb(doc, use_bin_type=True)
        )
        if topic.product == "gateway":
            return
        try:
            adapter = self.owner(topic.product, topic.device)
            await adapter.apply_desired(topic.product, topic.device, version, doc)
        except DeviceError as exc:
            log.info("desired state for %s/%s not applied yet: %s", topic.product, topic.device,
                     exc.message)


