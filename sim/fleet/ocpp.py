"""OCPP 1.6J / 2.0.1 chargers in the fleet: :class:`sim.ocpp.OcppChargePointSim` with
measurements, and their driver.

The charger's WebSocket is wrapped in :class:`MeteredConnection` before the ``ocpp`` library
gets it, so every frame is counted and every CALL timed from its send to its CALLRESULT
(labels: the action, ``TransactionEvent.Ended`` etc. for 2.0.1 transaction events). A
CALLERROR counts as the error ``callerror:{label}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bridges.ocpp import OcppVersion
from bridges.ocpp.devices import device_id
from sim.fleet.app import AppClient
from sim.fleet.driver import ChargerDriver, LedgerSink, RunClock
from sim.fleet.ledger import ocpp_row
from sim.fleet.meter import KindMeter
from sim.fleet.schedule import PlannedSession, device_seed
from sim.fleet.spec import DevicePlan, FleetSpec, Kind
from sim.ocpp import OcppChargePointSim, SessionRecord, SimConfig, SimError
from sim.ocpp.protocol import Protocol
from sim.ocpp.protocol16 import Protocol16
from sim.ocpp.protocol201 import Protocol201

__all__ = ["MeteredConnection", "MeteredOcppSim", "OcppDriver"]

log = logging.getLogger("voltmesh.sim.fleet.ocpp")

_START_WAIT = 15.0
_CALL, _RESULT, _ERROR = 2, 3, 4


class MeteredConnection:
    """A WebSocket connection that counts frames and times CALL -> CALLRESULT."""

    def __init__(self, ws: Any, meter: KindMeter, response_timeout: float) -> None:
        self._ws = ws
        self._meter = meter
        self._timeout = response_timeout
        self._loop = asyncio.get_running_loop()
        self._pending: dict[str, tuple[str, float]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def send(self, message: str) -> None:
        now = self._loop.time()
        frame = _parse(message)
        if frame is not None and frame[0] == _CALL and len(frame) >= 4:
            label = str(frame[2])
            payload = frame[3]
            if label == "TransactionEvent" and isinstance(payload, dict):
                label = f"TransactionEvent.{payload.get('eventType')}"
            self._expire(now)
            self._pending[str(frame[1])] = (label, now)
        await self._ws.send(message)
        self._meter.sent += 1

    async def recv(self) -> Any:
        message = await self._ws.recv()
        self._meter.received += 1
        frame = _parse(message)
        if frame is not None and frame[0] in (_RESULT, _ERROR) and len(frame) >= 2:
            entry = self._pending.pop(str(frame[1]), None)
            if entry is not None:
                label, sent = entry
                if frame[0] == _RESULT:
                    self._meter.ack(label, self._loop.time() - sent)
                else:
                    self._meter.error(f"callerror:{label}")
        return message

    def _expire(self, now: float) -> None:
        """Calls unanswered past the response timeout count as errors (checked on send)."""
        stale = [uid for uid, (_, sent) in self._pending.items()
                 if now - sent > self._timeout]
        for uid in stale:
            label, _ = self._pending.pop(uid)
            self._meter.error(f"unanswered:{label}")


def _parse(message: Any) -> list[Any] | None:
    try:
        frame = json.loads(message)
    except (TypeError, ValueError):
        return None
    return frame if isinstance(frame, list) and frame else None


class _Metered16(Protocol16):
    def __init__(self, sim: Any, meter: KindMeter) -> None:
        super().__init__(sim)
        self.meter = meter

    def make_charge_point(self, connection: Any) -> Any:
        return super().make_charge_point(MeteredConnection(
            connection, self.meter, self.sim.config.response_timeout_s))


class _Metered201(Protocol201):
    def __init__(self, sim: Any, meter: KindMeter) -> None:
        super().__init__(sim)
        self.meter = meter

    def make_charge_point(self, connection: Any) -> Any:
        return super().make_charge_point(MeteredConnection(
            connection, self.meter, self.sim.config.response_timeout_s))


class MeteredOcppSim(OcppChargePointSim):
    """An OCPP simulator whose frames are metered; ``heartbeat`` (seconds) replaces the
    interval the CSMS gives at boot (None: the CSMS's)."""

    def __init__(self, config: SimConfig, meter: KindMeter,
                 heartbeat: float | None = None) -> None:
        super().__init__(config)
        self.forced_heartbeat = heartbeat
        self.ever_booted = False
        self.connect_failures = 0
        proto: Protocol = (_Metered16(self, meter) if config.version is OcppVersion.V16
                           else _Metered201(self, meter))
        self._proto = proto

    async def _connection(self) -> None:
        before = self.connect_count
        try:
            await super()._connection()
        except asyncio.CancelledError:
            raise
        except BaseException:
            if self.connect_count == before:
                self.connect_failures += 1
            raise

    async def _boot(self) -> None:
        await super()._boot()
        self.ever_booted = True
        if self.forced_heartbeat is not None:
            self.heartbeat_interval = self.forced_heartbeat


class OcppDriver(ChargerDriver[SessionRecord]):
    """The OCPP chargers of one version in one worker, and their sessions."""

    def __init__(self, kind: Kind, spec: FleetSpec, clock: RunClock, ledger: LedgerSink,
                 app: AppClient | None) -> None:
        super().__init__(kind, spec, clock, ledger, app)
        self.version = OcppVersion.V16 if kind is Kind.OCPP16 else OcppVersion.V201
        self.sims: dict[str, MeteredOcppSim] = {}
        self._open: dict[tuple[str, int], tuple[SessionRecord, str]] = {}
        self._runs: list[asyncio.Task[None]] = []

    def add(self, plan: DevicePlan, delay: float) -> None:
        spec = self.spec
        assert spec.ocpp_url is not None
        config = SimConfig(
            charge_point_id=plan.device_id, url=spec.ocpp_url, version=self.version,
            password=spec.ocpp_password(plan.device_id), connectors=plan.connectors,
            serial_number=f"SN-{plan.device_id}"[:25], meter_interval_s=spec.meter_interval,
            heartbeat_default_s=spec.heartbeat or 300.0,
            seed=device_seed(spec.seed, self.kind, plan.device_id))
        sim = MeteredOcppSim(config, self.meter, spec.heartbeat)
        self.plans.append(plan)
        self.sims[plan.device_id] = sim
        self._runs.append(asyncio.create_task(self._run(sim, delay),
                                              name=f"sim-{plan.device_id}"))
        self.spawn_sessions(plan)

    async def _run(self, sim: MeteredOcppSim, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await sim.run()

    # -- counts ------------------------------------------------------------------------------

    def connected(self) -> int:
        return sum(1 for sim in self.sims.values() if sim.online)

    def ever_connected(self) -> int:
        return sum(1 for sim in self.sims.values() if sim.ever_booted)

    def active_sessions(self) -> int:
        return sum(1 for sim in self.sims.values() for number in sim.connectors
                   if sim.active_session(number) is not None)

    def refresh(self) -> None:
        self.meter.reconnects = sum(max(0, sim.connect_count - 1) for sim in self.sims.values())
        self.meter.connect_failures = sum(sim.connect_failures for sim in self.sims.values())
        crashed = sum(len(sim.errors) for sim in self.sims.values())
        if crashed:
            self.meter.errors["station_exception"] = crashed

    # -- sessions ----------------------------------------------------------------------------

    def ready(self, device_id: str, connector: int) -> bool:
        sim = self.sims[device_id]
        return sim.online and sim.active_session(connector) is None and \
            sim.connector(connector).status == "Available"

    async def start_session(self, plan: DevicePlan, connector: int,
                            planned: PlannedSession) -> SessionRecord | None:
        sim = self.sims[plan.device_id]
        if planned.method == "card":
            try:
                record = await sim.start_session(connector, planned.card)
            except SimError as exc:
                log.info("%s/%d: card start failed: %s", plan.device_id, connector, exc)
                self.meter.error("card_start_refused")
                return None
        else:
            device = device_id(self.version, plan.device_id, connector)
            output = await self.app_start(plan, device, planned)
            if output is None:
                return None
            if not output.get("accepted"):
                self.meter.error("app_start_refused")
                return None

            def begun() -> bool:
                running = sim.active_session(connector)
                return running is not None and running.authorization is not None

            if not await self.clock.until(begun, _START_WAIT):
                if not self.clock.stopping:
                    self.meter.error("app_start_never_began")
                return None
            found = sim.active_session(connector)
            if found is None:
                self.meter.error("app_start_never_began")
                return None
            record = found
        self.meter.sessions_started += 1
        self._open[(plan.device_id, connector)] = (record, planned.method)
        return record

    async def stop_session(self, plan: DevicePlan, connector: int,
                           handle: SessionRecord) -> None:
        sim = self.sims[plan.device_id]
        if sim.active_session(connector) is handle:
            try:
                await sim.stop_session(connector)
            except SimError as exc:
                log.info("%s/%d: stop failed: %s", plan.device_id, connector, exc)
                self.meter.error("stop_failed")
                return
        else:  # stopped by someone else: acknowledged once the queue is empty
            await self.clock.until(lambda: handle.ended and
                                   sim.pending_transaction_messages() == 0, stop_aware=False)
        self._complete(plan, connector, handle)

    def _complete(self, plan: DevicePlan, connector: int, record: SessionRecord) -> None:
        _, method = self._open.pop((plan.device_id, connector), (record, "other"))
        self.meter.sessions_completed += 1
        self.ledger(ocpp_row(str(self.kind), plan.device_id,
                             device_id(self.version, plan.device_id, connector), record,
                             method=method, confirmed=True))

    def leftover_rows(self) -> list[dict[str, Any]]:
        return [ocpp_row(str(self.kind), cp, device_id(self.version, cp, connector), record,
                         method=method, confirmed=False)
                for (cp, connector), (record, method) in self._open.items()]

    async def stop(self) -> None:
        await super().stop()  # session loops first: no start may race the close
        await asyncio.gather(*(sim.close() for sim in self.sims.values()),
                             return_exceptions=True)
        for task in self._runs:
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
