"""Modbus devices (meters, sensors, parking locks, relays, storage): a poller on pymodbus.

Each configured device is one unit id reached over Modbus TCP, RTU-over-TCP (a serial device
server passing RTU frames through a socket) or a local serial line (RTU). Its register map
(``config/modbus/*.yaml``, :mod:`bridges.modbus`) says which points feed which thing-model
properties and which writes perform which services.

Polling
    One task per device under the adapter's TaskGroup. Every ``interval`` the device's planned
    reads run (neighbouring points merged into few requests by
    :func:`bridges.modbus.plan_reads`), are decoded in thing-model units, and what changed
    beyond the points' deadbands (:func:`bridges.modbus.significant_changes`, compared with
    the last *reported* values) is reported; everything is reported again every
    ``report_period``. A value the thing model refuses is dropped alone and counted.
Failures
    A poll stops at its first unanswered request. The device is then retried with a capped,
    jittered backoff starting at ``max(interval, 4 x timeout)`` and doubling up to
    ``backoff_max``; after ``lost_after`` failed polls in a row it is reported offline
    (presence) with a ``commLost`` event, and ``commRestored`` + online when it answers again.
    A Modbus exception answer (illegal address ...) is a map/device mismatch, not a lost
    device: counted, logged once, the rest of the poll goes on.
One dead device never delays the others
    * devices on different connections share nothing but the event loop: separate tasks,
      separate sockets, every request under its own timeout;
    * unit ids behind one connection (a Modbus TCP gateway, an RS485 bus) take turns on the
      link (:class:`~edge.adapters.modbus_link.ModbusLink`, FIFO, one request at a time);
      a request's timeout starts when it reaches the wire, so waiting for a turn never makes
      a healthy unit time out, and a silent unit holds the link for at most its own
      ``timeout`` per attempt, one attempt per backoff step (so at most a third of the link's
      time right after it dies, falling to ``timeout / backoff_max``);
    * a healthy neighbour's poll is therefore delayed by at most the silent unit's
      ``timeout`` per request, and only while that unit has an attempt in flight.
Services
    A service of the thing model that the map defines (``parking_lock.raise/lower``,
    ``relay.cut/restore`` ...) becomes its writes (:func:`bridges.modbus.encode_service`),
    sent ahead of queued reads, each under the device's timeout and the call's deadline; the
    device is polled right after so its new state is reported at once. ``readNow`` (when the
    thing model has it and the map does not define it) polls at once. Output:
    ``{"accepted": true}``. Errors: unknown device 404, no such service 501, the unit answered
    an exception 409, no answer 504, connection down 503.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridges.modbus import (
    DecodeError,
    EncodeError,
    PropertyValue,
    ReadRequest,
    RegisterMap,
    RegisterMapError,
    UnknownName,
    decode_response,
    encode_service,
    load_register_map,
    plan_reads,
    significant_changes,
)
from edge.adapter import Adapter
from edge.adapters.modbus_link import (
    CommError,
    DeviceException,
    LinkDown,
    ModbusLink,
    NoAnswer,
    SerialLine,
)
from edge.config import ModbusConfig, ModbusDeviceConfig
from edge.context import EdgeContext
from edge.errors import (
    ConfigError,
    DeviceOffline,
    DeviceRejected,
    DeviceTimeout,
    ServiceNotSupported,
    UnknownDevice,
)
from thingmodels.errors import PayloadError
from thingmodels.ids import now_ms
from thingmodels.loader import ModelRegistry

log = logging.getLogger("voltmesh.edge.modbus")

SRC = "modbus"


@dataclass
class DeviceStats:
    """What one device's poller did (for tests, benchmarks and logs)."""

    polls: int = 0
    failed_polls: int = 0
    requests: int = 0
    points: int = 0
    reports: int = 0
    exceptions: int = 0
    invalid_values: int = 0
    last_poll_s: float = 0.0
    poll_times: list[float] = field(default_factory=list)


@dataclass
class ModbusDevice:
    """One polled unit id and its state."""

    config: ModbusDeviceConfig
    regmap: RegisterMap
    unit: int
    link: ModbusLink
    plan: tuple[ReadRequest, ...]
    lost_events: bool
    values: dict[str, PropertyValue] = field(default_factory=dict)
    reported: dict[str, PropertyValue] = field(default_factory=dict)
    online: bool = False
    lost: bool = False
    failures: int = 0
    next_full_report: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stats: DeviceStats = field(default_factory=DeviceStats)
    _logged: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        """The device id (topic level)."""
        return self.config.id

    @property
    def product(self) -> str:
        """The thing-model product its map feeds."""
        return self.regmap.product

    def log_once(self, key: str, level: int, message: str, *args: object) -> None:
        """Log a recurring problem the first time only."""
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, message, *args)


class ModbusAdapter(Adapter):
    """Polls Modbus devices and carries out their services."""

    name = "modbus"
    src = SRC

    def __init__(self, config: ModbusConfig, devices: list[ModbusDevice]) -> None:
        self.config = config
        self.devices: dict[str, ModbusDevice] = {d.id: d for d in devices}
        self.links: dict[tuple[str, ...], ModbusLink] = {}
        for device in devices:
            self.links.setdefault(device.config.link, device.link)
        self.ctx: EdgeContext | None = None
        self.keep_poll_times = False  # benchmarks: record every poll's duration

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: ModbusConfig, resolve: Callable[[str], Path],
                    models: ModelRegistry) -> ModbusAdapter:
        """Load the register maps and group the devices by connection.

        Raises :class:`ConfigError` naming the map file and line, or the device at fault.
        """
        maps: dict[Path, RegisterMap] = {}
        links: dict[tuple[str, ...], ModbusLink] = {}
        units: dict[tuple[tuple[str, ...], int], str] = {}
        devices: list[ModbusDevice] = []
        for dc in config.devices:
            path = resolve(dc.map)
            regmap = maps.get(path)
            if regmap is None:
                try:
                    regmap = maps[path] = load_register_map(path, models, require_model=True)
                except RegisterMapError as exc:
                    raise ConfigError(f"{exc} (register map of modbus device {dc.id!r})") \
                        from exc
            unit = dc.device_id if dc.device_id is not None else regmap.default_device_id
            if (dc.link, unit) in units:
                raise ConfigError(f"modbus devices {units[(dc.link, unit)]!r} and {dc.id!r} "
                                  f"are both unit {unit} on one connection")
            units[(dc.link, unit)] = dc.id
            link = links.get(dc.link)
            if link is None:
                link = links[dc.link] = _link_for(dc, config)
            link.backstop_timeout = max(link.backstop_timeout, 2 * dc.timeout + 1)
            model = models[regmap.product]
            lost_events = "commLost" in model.spec.events and "commRestored" in model.spec.events
            devices.append(ModbusDevice(dc, regmap, unit, link, plan_reads(regmap),
                                        lost_events))
        return cls(config, devices)

    # -- Adapter ---------------------------------------------------------------------------

    def owns(self, product: str, device: str) -> bool:
        """The configured devices."""
        found = self.devices.get(device)
        return found is not None and found.product == product

    async def run(self, ctx: EdgeContext) -> None:
        """One poll task per device until cancelled."""
        self.ctx = ctx
        try:
            async with asyncio.TaskGroup() as tg:
                for device in self.devices.values():
                    tg.create_task(self._supervised(ctx, device), name=f"modbus-{device.id}")
        finally:
            for link in self.links.values():
                link.close()

    async def invoke(self, product: str, device: str, service: str, params: Mapping[str, Any],
                     deadline_ms: int) -> dict[str, Any]:
        """Perform a service's writes on the device."""
        dev = self.devices.get(device)
        if dev is None or dev.product != product:
            raise UnknownDevice(f"{product}/{device} is not a Modbus device here")
        if service not in dev.regmap.services:
            if service == "readNow":
                dev.wake.set()
                return {"accepted": True}
            raise ServiceNotSupported(f"the register map of {device} ({dev.regmap.name}) has "
                                      f"no service {service!r}")
        try:
            writes = encode_service(dev.regmap, service, params)
        except (EncodeError, UnknownName) as exc:
            raise DeviceRejected(str(exc)) from exc
        for write in writes:
            remaining = (deadline_ms - now_ms()) / 1000
            if remaining <= 0:
                raise DeviceTimeout(f"{service} on {device}: deadline passed between writes")
            try:
                await dev.link.write(dev.unit, write, min(dev.config.timeout, remaining))
            except DeviceException as exc:
                raise DeviceRejected(f"{device} refused the write at 0x{write.address:04X}: "
                                     f"{exc}") from exc
            except NoAnswer as exc:
                raise DeviceTimeout(str(exc)) from exc
            except LinkDown as exc:
                raise DeviceOffline(str(exc)) from exc
        log.info("modbus %s/%s: %s done (%d writes)", product, device, service, len(writes))
        dev.wake.set()  # report the new state soon
        return {"accepted": True}

    # -- polling ---------------------------------------------------------------------------

    def retry_delay(self, dev: ModbusDevice) -> float:
        """Backoff before the next attempt on a failing device (equal jitter, capped)."""
        base = max(dev.config.interval, 4 * dev.config.timeout)
        cap = max(self.config.backoff_max, base)
        step = min(cap, base * 2.0 ** min(dev.failures - 1, 30))
        return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter

    async def _supervised(self, ctx: EdgeContext, dev: ModbusDevice) -> None:
        """A bug met while polling one device restarts that device's loop, not the others."""
        while True:
            try:
                await self._poll_loop(ctx, dev)
            except Exception:
                ctx.stats.inc("modbus_poller_crashes")
                log.exception("modbus %s: poller crashed; restarting it in 1 s", dev.id)
                await asyncio.sleep(1.0)

    async def _poll_loop(self, ctx: EdgeContext, dev: ModbusDevice) -> None:
        loop = asyncio.get_running_loop()
        dev.next_full_report = loop.time() + dev.config.report_period
        # spread the first polls so that devices sharing a connection do not all queue at once
        due = loop.time() + random.uniform(0, min(dev.config.interval, 1.0))  # noqa: S311
        while True:
            woken = False
            if due > loop.time():
                try:
                    async with asyncio.timeout_at(due):
                        await dev.wake.wait()
                    woken = True  # a service wants the state now; the schedule stays
                except TimeoutError:
                    pass
            dev.wake.clear()
            ok = await self.poll(ctx, dev)
            now = loop.time()
            if not ok:
                due = now + self.retry_delay(dev)
            elif not woken:
                due = max(due + dev.config.interval, now)  # fixed rate, no catch-up bursts

    async def poll(self, ctx: EdgeContext, dev: ModbusDevice) -> bool:
        """Read the device once and report; False when it did not answer."""
        started = time.perf_counter()
        values: dict[str, PropertyValue] = {}
        for request in dev.plan:
            dev.stats.requests += 1
            try:
                data = await dev.link.read(dev.unit, request, dev.config.timeout)
            except DeviceException as exc:
                dev.stats.exceptions += 1
                dev.log_once(f"exc:{request.function}:{request.address}", logging.WARNING,
                             "modbus %s: read of %s 0x%04X+%d answered %s (map and device "
                             "disagree?)", dev.id, request.function, request.address,
                             request.count, exc)
                continue
            except CommError as exc:
                await self._failed(ctx, dev, str(exc))
                return False
            try:
                decoded = decode_response(dev.regmap, request, data)
            except DecodeError as exc:
                dev.stats.invalid_values += 1
                dev.log_once(f"decode:{request.address}", logging.WARNING,
                             "modbus %s: %s", dev.id, exc)
                continue
            values.update(decoded.values)
            for problem in decoded.problems:
                dev.stats.invalid_values += 1
                dev.log_once(f"point:{problem.point}:{problem.reason}", logging.WARNING,
                             "modbus %s: point %s: %s", dev.id, problem.point, problem.reason)
        elapsed = time.perf_counter() - started
        dev.stats.polls += 1
        dev.stats.points += len(values)
        dev.stats.last_poll_s = elapsed
        if self.keep_poll_times:
            dev.stats.poll_times.append(elapsed)
        await self._answered(ctx, dev, values)
        return True

    async def _answered(self, ctx: EdgeContext, dev: ModbusDevice,
                        values: dict[str, PropertyValue]) -> None:
        dev.failures = 0
        if not dev.online:
            dev.online = True
            await ctx.presence(dev.product, dev.id, True, src=SRC)
        if dev.lost:
            dev.lost = False
            log.info("modbus %s answers again", dev.id)
            if dev.lost_events:
                await ctx.event(dev.product, dev.id, "commRestored", {}, src=SRC)
        dev.values.update(values)
        now = asyncio.get_running_loop().time()
        if now >= dev.next_full_report:
            dev.next_full_report = now + dev.config.report_period
            changes = dict(dev.values)
        else:
            changes = significant_changes(dev.regmap, dev.reported, values)
        if changes:
            self._report(ctx, dev, changes)

    def _report(self, ctx: EdgeContext, dev: ModbusDevice,
                changes: dict[str, PropertyValue]) -> None:
        try:
            ctx.report(dev.product, dev.id, changes, src=SRC)
        except PayloadError:
            # drop only the values the thing model refuses
            model = ctx.models[dev.product]
            good: dict[str, PropertyValue] = {}
            for prop, value in changes.items():
                try:
                    model.validate_properties({prop: value})
                except PayloadError as exc:
                    dev.stats.invalid_values += 1
                    ctx.stats.inc("modbus_invalid_values")
                    dev.log_once(f"invalid:{prop}", logging.WARNING,
                                 "modbus %s: %s refused by the thing model: %s", dev.id, prop, exc)
                else:
                    good[prop] = value
            if not good:
                return
            ctx.report(dev.product, dev.id, good, src=SRC)
            changes = good
        dev.reported.update(changes)
        dev.stats.reports += 1

    async def _failed(self, ctx: EdgeContext, dev: ModbusDevice, reason: str) -> None:
        dev.failures += 1
        dev.stats.failed_polls += 1
        ctx.stats.inc("modbus_failed_polls")
        if dev.failures < self.config.lost_after or dev.lost:
            log.debug("modbus %s: %s", dev.id, reason)
            return
        dev.lost = True
        dev.online = False
        log.warning("modbus %s lost: %s", dev.id, reason)
        if dev.lost_events:
            await ctx.event(dev.product, dev.id, "commLost", {"reason": reason[:200]}, src=SRC)
        await ctx.presence(dev.product, dev.id, False, src=SRC, reason="no answer")


def _link_for(dc: ModbusDeviceConfig, config: ModbusConfig) -> ModbusLink:
    if dc.serial is not None:
        if importlib.util.find_spec("serial") is None:
            raise ConfigError(f"modbus device {dc.id!r}: a serial line needs pyserial "
                              f"(a dependency of voltmesh: pip install pyserial==3.5)")
        line = SerialLine(dc.serial.port, dc.serial.baudrate, dc.serial.parity,
                          dc.serial.stopbits, dc.serial.bytesize)
        return ModbusLink(f"serial:{dc.serial.port}", "serial", serial=line,
                          backoff_max=config.backoff_max,
                          reconnect_after=config.reconnect_after)
    transport = dc.transport or "tcp"
    return ModbusLink(f"{transport}:{dc.host}:{dc.port}", transport, host=dc.host, port=dc.port,
                      backoff_max=config.backoff_max, reconnect_after=config.reconnect_after)
