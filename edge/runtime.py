"""The gateway process: composes outbox, uplink, dispatcher, batcher and adapters.

Long-lived tasks run under one :class:`asyncio.TaskGroup` with names; an adapter that crashes
is logged and restarted after a pause rather than taking the gateway down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import msgpack

from edge.adapter import Adapter
from edge.adapters.modbus import ModbusAdapter
from edge.adapters.mqtt_devices import MqttDevicesAdapter
from edge.adapters.ocpp import OcppAdapter
from edge.adapters.ykc import YkcAdapter
from edge.batcher import TelemetryBatcher
from edge.config import GatewayConfig
from edge.context import EdgeContext
from edge.dispatcher import Dispatcher
from edge.errors import ConfigError
from edge.interlocks import InterlockEngine, load_interlocks
from edge.outbox import Outbox, RowKind
from edge.uplink import Uplink
from thingmodels.errors import ModelFileError
from thingmodels.ids import now_ms
from thingmodels.loader import ModelRegistry, builtin_models

log = logging.getLogger("voltmesh.edge")

VERSION = "0.1.0"


class EdgeGateway:
    """One site gateway."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        adapters: Sequence[Adapter] | None = None,
        models: ModelRegistry | None = None,
    ) -> None:
        self.config = config
        self.models = models or builtin_models()
        oc = config.outbox
        self.outbox = Outbox(
            config.resolve(oc.path), max_events=oc.max_events, max_telemetry=oc.max_telemetry,
            max_bytes=oc.max_bytes, event_max_age=oc.event_max_age,
            telemetry_max_age=oc.telemetry_max_age, synchronous=oc.synchronous,
            receipts=oc.receipts, receipt_timeout=oc.receipt_timeout,
            receipt_timeout_max=oc.receipt_timeout_max,
        )
        self.batcher = TelemetryBatcher(
            self._flush, interval=config.telemetry.flush_interval,
            max_batch=config.telemetry.max_batch,
        )
        self.ctx = EdgeContext(
            config.gateway_id, self.models, self.outbox, self.batcher,
            decision_timeout=config.decision_timeout,
            clock_skew_threshold=config.clock_skew_threshold,
        )
        self.adapters: list[Adapter] = list(adapters) if adapters is not None else []
        if adapters is None:
            self.adapters.extend(self._configured_adapters())
        self.dispatcher = Dispatcher(self.ctx, self.adapters)
        self.dispatcher.gateway_services["ping"] = self._ping
        self.dispatcher.gateway_services["reloadDesired"] = self._reload_desired
        self.dispatcher.gateway_services["stats"] = self._stats
        self.interlocks: InterlockEngine | None = None
        if config.interlocks is not None:
            try:
                specs = load_interlocks(config.resolve(config.interlocks), self.models)
            except ModelFileError as exc:
                raise ConfigError(str(exc)) from exc
            self.interlocks = InterlockEngine(specs, self.ctx, self.dispatcher)
            self.ctx.add_observer(self.interlocks)
        self.uplink = Uplink(config.mqtt, self.ctx, self.dispatcher.handle, batch=oc.batch)
        self._pending_drops: dict[tuple[str, str], int] = {}
        self.outbox.on_drop(self._on_drop)
        self.started_ms = now_ms()
        #: set once every listener of the adapters is listening (see :meth:`_mark_started`)
        self.started = asyncio.Event()
        self._restore_desired()

    def _configured_adapters(self) -> list[Adapter]:
        out: list[Adapter] = []
        cfg = self.config.adapters
        if cfg.mqtt_devices is not None:
            out.append(MqttDevicesAdapter.from_files(
                cfg.mqtt_devices.broker,
                [self.config.resolve(p) for p in cfg.mqtt_devices.mappings],
                self.models,
            ))
        if cfg.ykc is not None:
            out.append(YkcAdapter(cfg.ykc))
        if cfg.modbus is not None:
            out.append(ModbusAdapter.from_config(cfg.modbus, self.config.resolve, self.models))
        if cfg.ocpp is not None:
            out.append(OcppAdapter(cfg.ocpp))
        return out

    def _flush(self, product: str, device: str, src: str, samples: list[Any]) -> None:
        self.ctx.flush_telemetry(product, device, src, samples)

    def _on_drop(self, kind: RowKind, count: int, reason: str) -> None:
        key = (kind.name.lower(), reason)
        self._pending_drops[key] = self._pending_drops.get(key, 0) + count
        log.warning("outbox dropped %d %s rows (%s)", count, kind.name.lower(), reason)

    def _restore_desired(self) -> None:
        """Desired state cached from the last run, so an offline start still has tariffs etc."""
        for row in self.outbox._db.execute(
            "SELECT key, value FROM kv WHERE key LIKE 'desired/%'"
        ).fetchall():
            _, product, device = str(row[0]).split("/", 2)
            doc = msgpack.unpackb(row[1], raw=False)
            version = doc.get("version")
            if isinstance(version, int):
                self.ctx.set_desired(product, device, version, doc)

    async def _expire_left_online(self) -> None:
        """Devices the last run reported online that have not come back within
        ``presence_grace`` of this start are reported offline: else the cloud would hold a
        charger that was unplugged during a gateway restart (or crash) online for good."""
        if not self.ctx.left_online():
            return
        await asyncio.sleep(self.config.presence_grace)
        gone = self.ctx.left_online()
        for product, device in gone:
            await self.ctx.presence(product, device, False, src="edge",
                                    reason="not back after the gateway restarted")
        if gone:
            log.warning("%d devices online before the gateway restarted did not come back "
                        "within %.0f s: reported offline", len(gone), self.config.presence_grace)

    async def _mark_started(self) -> None:
        """Set :attr:`started` once every adapter is ready (listeners bound)."""
        for adapter in self.adapters:
            await adapter.wait_ready()
        self.started.set()

    async def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "time": now_ms()}

    async def _reload_desired(self, params: dict[str, Any]) -> dict[str, Any]:
        held = self.ctx.desired("gateway", self.config.gateway_id)
        return {"accepted": True, "version": held.version if held else 0}

    async def _stats(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every counter the gateway keeps: the adapters' per-kind counters (malformed frames by
        kind, unsolicited replies, handshake failures ...) and the outbox's."""
        s = self.outbox.stats
        return {
            "counters": dict(sorted(self.ctx.stats.counters.items())),
            "outbox": {"queuedEvents": s.queued_events, "queuedTelemetry": s.queued_telemetry,
                       "queuedBytes": s.queued_bytes, "sent": s.sent,
                       "droppedTelemetry": s.dropped_telemetry,
                       "droppedEvents": s.dropped_events,
                       "dropsByReason": dict(s.drops_by_reason),
                       "awaitingReceipt": s.awaiting_receipt,
                       "resentForReceipt": s.resent_for_receipt,
                       "receipted": s.receipted},
            "devicesOnline": self.ctx.online_devices(),
            "uptimeS": (now_ms() - self.started_ms) // 1000,
        }

    async def _report_stats(self) -> None:
        gw = self.config.gateway_id
        # the gateway's own presence is the uplink's (retained state and Will, one session
        # counter): a second writer with another counter made the Will look stale to the cloud
        while True:
            self.outbox.expire()
            for (kind, reason), count in list(self._pending_drops.items()):
                del self._pending_drops[(kind, reason)]
                await self.ctx.event("gateway", gw, "outboxDropped",
                                     {"kind": kind, "count": count, "reason": reason}, src="edge")
            s = self.outbox.stats
            self.ctx.report("gateway", gw, {
                "version": VERSION, "startedAt": self.started_ms, "session": self.uplink.session,
                "devicesOnline": self.ctx.online_devices(), "outboxQueued": s.queued,
                "outboxEvents": s.queued_events, "outboxTelemetry": s.queued_telemetry,
                "outboxSent": s.sent, "outboxDropped": s.dropped_telemetry + s.dropped_events,
                "outboxDroppedEvents": s.dropped_events,
                "outboxOldestAge": self.outbox.oldest_age(),
                "outboxAwaitingReceipt": s.awaiting_receipt,
                "outboxResentForReceipt": s.resent_for_receipt,
                "malformedFrames": self.ctx.stats.counters["malformed_frames"],
            }, src="edge")
            self.outbox.prune_replies()
            await asyncio.sleep(self.config.telemetry.stats_interval)

    async def _supervise(self, adapter: Adapter) -> None:
        while True:
            try:
                await adapter.run(self.ctx)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.ctx.stats.inc(f"adapter_crash_{adapter.name}")
                log.exception("adapter %s crashed; restarting in 1 s", adapter.name)
                await asyncio.sleep(1.0)

    async def run(self) -> None:
        """Run until cancelled."""
        log.info("gateway %s starting with adapters %s", self.config.gateway_id,
                 [a.name for a in self.adapters])
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.uplink.run(), name="uplink")
                tg.create_task(self.batcher.run(), name="telemetry-batcher")
                tg.create_task(self._report_stats(), name="gateway-stats")
                if self.interlocks is not None:
                    tg.create_task(self.interlocks.run(), name="interlocks")
                for adapter in self.adapters:
                    tg.create_task(self._supervise(adapter), name=f"adapter-{adapter.name}")
                tg.create_task(self._mark_started(), name="started")
                tg.create_task(self._expire_left_online(), name="presence-after-restart")
        finally:
            self.batcher.flush_all()
            self.outbox.close()
