"""One cloud worker: everything the cloud does, composed.

MQTT consumer -> device registry (presence, last values) and the rule engine -> one sink queue
per lane: telemetry to InfluxDB, session events to orders & billing, alarm signals to the alarm
manager, device commands, webhooks, MQTT republish. Around it: the station catalogue and its
provisioning (desired state to the gateways), accounts and payments, tenancy and access, and
the north-bound API over all of them. N workers share one broker and one SQL database
(``docs/scale-out.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from cloud import db as schema
from cloud.accounts.api import router as accounts_router
from cloud.accounts.service import AccountService
from cloud.actions import Lane, WritePoint
from cloud.alarms import build_alarms
from cloud.alarms.api import router as alarms_router
from cloud.alarms.messaging import MessageGateway
from cloud.api.app import create_app
from cloud.auth.setup import setup_auth
from cloud.catalog.api import router as catalog_router
from cloud.catalog.provisioning import Provisioning
from cloud.catalog.repo import Catalog
from cloud.config import CloudConfig
from cloud.consumer import Consumer
from cloud.errors import CommandError
from cloud.metrics import CloudMetrics
from cloud.orders.adapters import BillingAdapter, CatalogueAdapter, WalletsAdapter
from cloud.orders.api import router as orders_router
from cloud.orders.service import OrderService
from cloud.payments import build_providers
from cloud.payments.api import router as payments_router
from cloud.payments.provider import PaymentProvider
from cloud.payments.service import PaymentService
from cloud.registry import DeviceRegistry, make_engine
from cloud.rules import RuleEngine
from cloud.sinks import build_router
from thingmodels.envelope import Envelope
from thingmodels.ids import now_ms
from thingmodels.topics import Kind, Topic

log = logging.getLogger("voltmesh.cloud")

#: lanes whose work must be done before the message is acknowledged to the broker
DURABLE_LANES = frozenset({Lane.BILLING, Lane.ALARMS})
#: how long a gateway's owning tenant is cached (found / not found), seconds
TENANT_TTL = 300.0
NO_TENANT_TTL = 10.0


class CloudService:
    """Composes the cloud worker's parts; ``run()`` until cancelled.

    ``base_dir`` resolves relative paths of the config (rule files); ``payment_providers`` and
    ``message_gateways`` replace the configured payment providers / SMS-WeChat gateways
    (tests, the demo).
    """

    def __init__(self, config: CloudConfig, *, base_dir: Path | str | None = None,
                 payment_providers: Mapping[str, PaymentProvider] | None = None,
                 message_gateways: Mapping[str, MessageGateway] | None = None) -> None:
        self.config = config
        self.metrics = CloudMetrics()
        registry = self.metrics.registry
        self.engine = make_engine(config.database_url)
        # the schema first: migrate (or adopt a create_all database) before any service
        # touches the tables; raises cloud.migrations.errors.MigrationError (a CloudError)
        schema.upgrade(self.engine)
        silence = config.presence_silence
        self.registry = DeviceRegistry(
            self.engine, silence_ms=None if silence is None else int(silence * 1000))
        self.consumer = Consumer(config.mqtt, self.metrics, worker_id=config.worker_id)

        # the business: catalogue, accounts, payments, orders, alarms
        self.catalog = Catalog(self.engine)
        self.provisioning = Provisioning(self.catalog)
        self.accounts = AccountService(self.engine, config.accounts)
        self.payments = PaymentService(
            self.engine, self.accounts,
            payment_providers if payment_providers is not None
            else build_providers(config.payments), config.payments)
        self.orders = OrderService(
            self.engine, catalogue=CatalogueAdapter(self.catalog),
            biller=BillingAdapter(config.billing), wallets=WalletsAdapter(self.accounts),
            config=config.orders, registry=registry)
        self.alarms = build_alarms(self.engine, config.alarms, registry=registry,
                                   tenant_of=self._tenant_of, emit_point=self._emit_point,
                                   gateways=message_gateways)
        # offline card lists travel in the gateways' desired documents
        self.provisioning.add_part("cards", self._cards_part)
        self.accounts.add_listener(self._cards_changed)

        # routing: rules -> sink lanes
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        self.rules = RuleEngine(config.rules.resolved(base), registry,
                                reload_interval=config.rules.reload_interval)
        self.sinks = build_router(
            config.sinks, registry, publish=self.consumer.publish_raw, call=self._call,
            billing_handler=self.orders.handle, alarm_handler=self.alarms.manager.handle)
        self.consumer.add_handler("registry", self._track)
        self.consumer.add_handler("rules", self._route)
        self.consumer.add_handler("authorize", self._authorize)

        # the north-bound API
        self.app: FastAPI = create_app(
            self.registry, self.metrics, worker_id=config.worker_id, commands=self.consumer,
            health=lambda: (self.consumer.connected.is_set(), self.consumer.shared_active),
        )
        for router in (catalog_router, accounts_router, payments_router, orders_router,
                       alarms_router):
            self.app.include_router(router)
        state = self.app.state
        state.cloud = self
        state.catalog = self.catalog
        state.provisioning = self.provisioning
        state.publish_desired = self.consumer.publish_desired
        state.registry = self.registry
        state.accounts = self.accounts
        state.payments = self.payments
        state.orders = self.orders
        state.alarms = self.alarms.manager
        self.auth = setup_auth(self.app, self.engine, config.auth)
        self.http_port: int | None = None
        self.started = asyncio.Event()
        self._tenants: dict[str, tuple[str | None, float]] = {}  # gw -> (tenant, until)

    # -- message handlers -------------------------------------------------------------------

    async def _track(self, topic: Topic, env: Envelope) -> None:
        ts = env.rts
        if topic.kind is Kind.STATE:
            p = env.p or {}
            online, session = p.get("online"), p.get("session")
            if not isinstance(online, bool) or isinstance(session, bool) or \
                    not isinstance(session, int):
                self.metrics.malformed.labels(reason="state").inc()
                return
            if topic.product == "gateway" and topic.device == topic.gw:
                # a gateway's state is heard now (its periodic re-publication is its sign of
                # life, judged by this clock: the gateway's may be off)
                ts = max(ts, now_ms())
            changed = self.registry.transition(topic.gw, topic.product, topic.device, online,
                                               session, ts)
            if changed is None:
                self.metrics.stale_states.inc()
                return
            if changed:  # a transition: the $presence rules (offline alarms ...)
                await self._dispatch(self.rules.evaluate_presence(
                    topic.gw, topic.product, topic.device, online, ts or now_ms(), session))
            return
        samples = env.samples() if topic.kind is Kind.PROP else []
        for sample in samples:  # each at its own device time: the newest value is kept
            self.registry.seen(topic.gw, topic.product, topic.device, ts, sample.p,
                               sample_ts=sample.ts)
        if not samples:
            self.registry.seen(topic.gw, topic.product, topic.device, ts)

    async def _route(self, topic: Topic, env: Envelope) -> Awaitable[Any] | None:
        """Rules -> sink lanes; the message's PUBACK waits for its billing and alarm work."""
        return await self._dispatch(self.rules.evaluate(topic, env))

    async def _dispatch(self, actions: list[Any]) -> Awaitable[Any] | None:
        if not actions:
            return None
        return await self.sinks.dispatch(actions, track=DURABLE_LANES)

    async def _authorize(self, topic: Topic, env: Envelope) -> None:
        """Answer a charger's start request (card, VIN, app) within its deadline."""
        if topic.kind is not Kind.EVENT or topic.name != "authorize" or not env.p:
            return
        place = await asyncio.to_thread(self.catalog.resolve_connector, topic.gw, topic.device)
        if place is None:
            return  # not in the catalogue: the gateway decides from its local list
        p = env.p
        try:
            decision = await asyncio.to_thread(
                self.accounts.authorize, place.tenant_id, str(p.get("idTag", "")),
                str(p.get("idType", "unknown")), operating_mode=place.operating_mode,
                charger_type=place.kind)
        except Exception:
            log.exception("authorize %s/%s failed", topic.gw, topic.device)
            return
        try:
            await self.consumer.publish(topic.reply(), Envelope.new(
                src="cloud", cid=env.id, code=0, p=decision.reply(topic.product)))
        except CommandError as exc:
            log.warning("authorize reply to %s lost: %s", topic.gw, exc)

    # -- glue -------------------------------------------------------------------------------

    async def _call(self, gw: str, product: str, device: str, service: str,
                    params: dict[str, Any], timeout: float) -> Envelope:
        return await self.consumer.call(gw, product, device, service, params, timeout=timeout)

    def _emit_point(self, point: WritePoint) -> Any:
        return self.sinks.dispatch([point])

    def _tenant_of(self, gw: str, product: str, device: str) -> str | None:
        """The tenant owning a device (via its gateway), for alarms; cached for
        ``TENANT_TTL`` s when found, ``NO_TENANT_TTL`` s when not (a gateway whose chargers are
        not registered yet gets its tenant soon after they are, not never)."""
        now = time.monotonic()
        held = self._tenants.get(gw)
        if held is not None and held[1] > now:
            return held[0]
        tenants = self.catalog.gateway_tenants(gw)
        tenant = sorted(tenants)[0] if tenants else None
        self._tenants[gw] = (tenant, now + (TENANT_TTL if tenant else NO_TENANT_TTL))
        return tenant

    def _cards_part(self, gw: str) -> Any:
        tenants = self.catalog.gateway_tenants(gw)
        return self.accounts.offline_card_list(tenants) if tenants else None

    def _cards_changed(self, tenant_id: str, what: str) -> None:
        self._tenants.clear()
        self.catalog.mark_changed(self.catalog.gateways_of_tenants([tenant_id]), tenant_id)

    # -- loops ------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.config.flush_interval)
                await asyncio.to_thread(self.registry.flush)
        finally:
            await asyncio.to_thread(self.registry.flush)

    async def _silence_loop(self) -> None:
        """``$presence`` rules for gateways that fell silent (no Will came: shown offline by
        the registry after ``presence_silence``) and for those heard from again. Read from SQL
        after the flushes, so N workers judge alike; their actions share idempotency keys."""
        silence = self.config.presence_silence
        if silence is None:
            return
        silent: dict[str, tuple[int, int]] = {}
        while True:
            await asyncio.sleep(min(5.0, max(0.2, silence / 10)))
            try:
                now = await asyncio.to_thread(self.registry.silent_gateways)
            except Exception:
                log.exception("checking for silent gateways failed")
                continue
            for gw, (session, heard) in now.items():
                if gw not in silent:
                    log.warning("gateway %s not heard from since %d (%.0f s): shown offline",
                                gw, heard, silence)
                    await self._dispatch(self.rules.evaluate_presence(
                        gw, "gateway", gw, False, now_ms(), session, cause=f"silent@{heard}"))
            for gw, (session, heard) in silent.items():
                if gw not in now and self.registry.is_online(gw, "gateway", gw):
                    log.info("gateway %s heard from again", gw)
                    await self._dispatch(self.rules.evaluate_presence(
                        gw, "gateway", gw, True, now_ms(), session, cause=f"heard@{heard}"))
            silent = now

    async def _serve_http(self) -> None:
        server = uvicorn.Server(uvicorn.Config(
            self.app, host=self.config.http.host, port=self.config.http.port, log_config=None,
            access_log=False, lifespan="off",
        ))
        # the process (voltmesh CLI) owns signals; uvicorn must not capture them
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        task = asyncio.create_task(server.serve(), name="http")
        try:
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("HTTP server stopped during start-up")
                await asyncio.sleep(0.05)
            for srv in server.servers:
                for sock in srv.sockets:
                    self.http_port = sock.getsockname()[1]
            self.started.set()
            await asyncio.shield(task)
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.sinks.run(), name="sinks")
            tg.create_task(self.rules.run(), name="rules-reload")
            tg.create_task(self.alarms.run(), name="alarms")
            tg.create_task(self.orders.run(), name="orders")
            tg.create_task(self.provisioning.run(self.consumer.publish_desired,
                                                 self.config.catalog.provisioning_interval),
                           name="provisioning")
            tg.create_task(self.consumer.run(), name="consumer")
            tg.create_task(self._flush_loop(), name="registry-flush")
            tg.create_task(self._silence_loop(), name="gateway-silence")
            tg.create_task(self._serve_http(), name="http")
