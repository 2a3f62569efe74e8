"""Adapter for MQTT-native devices: AI cameras and sensors that publish JSON on a local broker.

Each message on a mapped local topic is turned into thing-model property reports and events by a
mapping file (:mod:`edge.adapters.mqtt_mapping`). A device is online from its first message and
offline after ``offline_after`` without one. Services are carried out by publishing JSON to the
device's command topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import aiomqtt

from edge.adapter import Adapter
from edge.adapters.mqtt_mapping import DeviceMap, MappingFile, ServiceMap, ValueSpec
from edge.config import LocalBrokerConfig
from edge.context import EdgeContext
from edge.errors import ConfigError, DeviceOffline, ServiceNotSupported, UnknownDevice
from edge.uplink import backoff_delays
from thingmodels.errors import ModelFileError, PayloadError, TopicError, UnknownModelError
from thingmodels.loader import ModelRegistry
from thingmodels.schema import ParamSpec, ParamType
from thingmodels.topics import check_id
from thingmodels.yamlfile import read_yaml, validate_located

log = logging.getLogger("voltmesh.edge.mqtt_devices")

_MISSING = object()


class MappingError(ValueError):
    """A value could not be taken from a device message."""


def get_path(data: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts and lists; ``_MISSING`` when absent."""
    node = data
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                return _MISSING
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def convert(spec: ValueSpec, target: ParamSpec, raw: Any) -> Any:
    """Convert a raw JSON value to the thing-model type, exactly."""
    if spec.map is not None:
        key = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if key not in spec.map:
            raise MappingError(f"{spec.path}: {raw!r} not in map")
        raw = spec.map[key]
    if spec.scale is not None or spec.offset is not None:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise MappingError(f"{spec.path}: {raw!r} is not a number")
        try:
            number = Decimal(str(raw))
        except InvalidOperation as exc:
            raise MappingError(f"{spec.path}: {raw!r} is not a number") from exc
        raw = number * (spec.scale if spec.scale is not None else 1) + (spec.offset or 0)
    kind = target.type
    if kind is ParamType.DECIMAL and isinstance(raw, int | float | Decimal) \
            and not isinstance(raw, bool):
        return Decimal(str(raw))
    if kind is ParamType.FLOAT and isinstance(raw, Decimal | str):
        try:
            return float(raw)
        except ValueError as exc:
            raise MappingError(f"{spec.path}: {raw!r} is not a number") from exc
    if kind is ParamType.INT and isinstance(raw, Decimal) and raw == raw.to_integral_value():
        return int(raw)
    if kind is ParamType.BOOL and isinstance(raw, int) and not isinstance(raw, bool):
        return bool(raw)
    return raw


def load_mapping(path: Path | str, models: ModelRegistry) -> MappingFile:
    """Load a mapping file and check every name against the thing models."""
    doc = read_yaml(path)
    mapping = validate_located(doc, MappingFile)
    for i, device in enumerate(mapping.devices):
        where: tuple[str | int, ...] = ("devices", i)
        try:
            model = models[device.product]
            for prop in device.properties:
                model.property(prop)
            for event in device.events:
                spec = model.event(event.name)
                for param in event.params:
                    if param not in spec.params:
                        raise UnknownModelError(f"event {event.name} has no param {param!r}")
        except UnknownModelError as exc:
            raise ModelFileError(doc.file, f"devices[{i}]", str(exc), doc.line_of(where)) from exc
    for i, svc in enumerate(mapping.services):
        try:
            models[svc.product].service(svc.service)
        except UnknownModelError as exc:
            raise ModelFileError(doc.file, f"services[{i}]", str(exc),
                                 doc.line_of(("services", i))) from exc
    return mapping


@dataclass
class _Seen:
    product: str
    last: float
    offline_after: float


class MqttDevicesAdapter(Adapter):
    """Maps JSON on a local broker into the thing model."""

    name = "mqtt_devices"
    src = "mqtt"

    def __init__(self, broker: LocalBrokerConfig, mappings: list[MappingFile]) -> None:
        self.broker = broker
        self.devices: list[tuple[DeviceMap, Any]] = []
        self.services: dict[tuple[str, str], ServiceMap] = {}
        for mapping in mappings:
            self.devices.extend((d, d.regex()) for d in mapping.devices)
            for svc in mapping.services:
                self.services[(svc.product, svc.service)] = svc
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._client: aiomqtt.Client | None = None
        self.ctx: EdgeContext | None = None

    @classmethod
    def from_files(cls, broker: LocalBrokerConfig, paths: list[Path],
                   models: ModelRegistry) -> MqttDevicesAdapter:
        """Build from mapping files (invalid files raise :class:`ConfigError`)."""
        try:
            return cls(broker, [load_mapping(p, models) for p in paths])
        except ModelFileError as exc:
            raise ConfigError(str(exc)) from exc

    def owns(self, product: str, device: str) -> bool:
        """Devices this adapter has heard from."""
        seen = self._seen.get((product, device))
        return seen is not None

    async def run(self, ctx: EdgeContext) -> None:
        """Subscribe to the mapped topics; reconnect with backoff."""
        self.ctx = ctx
        delay = backoff_delays(0.5, 15.0)
        attempt = 0
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._presence_loop(ctx), name="mqtt-devices-presence")
            while True:
                try:
                    async with aiomqtt.Client(
                        self.broker.host, self.broker.port, username=self.broker.username,
                        password=self.broker.password,
                        identifier=self.broker.client_id or f"vm-local-{ctx.gw}",
                        clean_session=True, keepalive=30, timeout=10,
                    ) as client:
                        attempt = 0
                        self._client = client
                        filters = sorted({d.mqtt_filter() for d, _ in self.devices})
                        if filters:
                            await client.subscribe([(f, 1) for f in filters])
                        log.info("mqtt devices: subscribed to %d local topics", len(filters))
                        async for message in client.messages:
                            await self.on_message(ctx, message.topic.value, message.payload)
                except aiomqtt.MqttError as exc:
                    log.warning("local broker %s:%s lost: %s", self.broker.host,
                                self.broker.port, exc)
                finally:
                    self._client = None
                await asyncio.sleep(delay(attempt))
                attempt += 1

    async def on_message(self, ctx: EdgeContext, topic: str, payload: Any) -> None:
        """Map one local message (public for tests and replay)."""
        for device_map, regex in self.devices:
            match = regex.match(topic)
            if match is None:
                continue
            raw_id = device_map.device_prefix + match.group("device")
            try:
                device = check_id(raw_id, f"{device_map.product} id")
            except TopicError as exc:
                ctx.stats.inc("mqtt_refused_ids")
                log.warning("refused device id from %s: %s", topic, exc)
                continue
            try:
                data = json.loads(payload)
            except (ValueError, TypeError) as exc:
                ctx.stats.inc("malformed_frames")
                ctx.stats.inc("mqtt_malformed")
                log.warning("malformed JSON on %s: %s", topic, exc)
                return
            await self._map(ctx, device_map, device, data)

    async def _map(self, ctx: EdgeContext, dm: DeviceMap, device: str, data: Any) -> None:
        model = ctx.models[dm.product]
        key = (dm.product, device)
        if key not in self._seen:
            self._seen[key] = _Seen(dm.product, time.monotonic(), dm.offline_after)
        self._seen[key].last = time.monotonic()
        await ctx.presence(dm.product, device, True, src=self.src)
        ts = None
        if dm.ts is not None:
            raw_ts = get_path(data, dm.ts.path)
            if isinstance(raw_ts, int | float) and not isinstance(raw_ts, bool):
                ts = int(raw_ts * 1000) if dm.ts.unit == "s" else int(raw_ts)
        try:
            props: dict[str, Any] = {}
            for name, spec in dm.properties.items():
                raw = get_path(data, spec.path)
                if raw is _MISSING:
                    raw = spec.default
                if raw is None:
                    continue
                props[name] = convert(spec, model.property(name), raw)
            if props:
                ctx.report(dm.product, device, props, src=self.src, ts=ts)
            for event in dm.events:
                if event.when is not None:
                    value = get_path(data, event.when.path)
                    if event.when.in_ is not None and value not in event.when.in_:
                        continue
                    if event.when.in_ is None and value != event.when.equals:
                        continue
                specs = model.event(event.name).params
                params: dict[str, Any] = {}
                for name, spec in event.params.items():
                    raw = get_path(data, spec.path)
                    if raw is _MISSING:
                        raw = spec.default
                    if raw is None:
                        continue
                    params[name] = convert(spec, specs[name], raw)
                await ctx.event(dm.product, device, event.name, params, src=self.src, ts=ts)
        except (MappingError, PayloadError) as exc:
            ctx.stats.inc("malformed_frames")
            ctx.stats.inc("mqtt_unmappable")
            log.warning("message from %s/%s does not map: %s", dm.product, device, exc)

    async def _presence_loop(self, ctx: EdgeContext) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for (product, device), seen in self._seen.items():
                if now - seen.last > seen.offline_after and ctx.is_online(product, device):
                    await ctx.presence(product, device, False, src=self.src, reason="silent")

    async def invoke(self, product: str, device: str, service: str, params: Mapping[str, Any],
                     deadline_ms: int) -> dict[str, Any]:
        """Publish the service's command JSON to the device."""
        if (product, device) not in self._seen:
            raise UnknownDevice(f"{product}/{device} is not an MQTT-native device here")
        svc = self.services.get((product, service))
        if svc is None:
            raise ServiceNotSupported(f"no mapping for {product}.{service}")
        client = self._client
        if client is None:
            raise DeviceOffline("the local broker is not connected")
        body = _render(svc.payload, params)
        topic = svc.topic.replace("{device}", device.removeprefix(self._prefix(product)))
        await client.publish(topic, json.dumps(body, default=str), qos=svc.qos)
        return {"accepted": True}

    def _prefix(self, product: str) -> str:
        for device_map, _ in self.devices:
            if device_map.product == product:
                return device_map.device_prefix
        return ""


def _render(template: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(template, str) and template.startswith("$"):
        return params.get(template[1:])
    if isinstance(template, dict):
        return {k: _render(v, params) for k, v in template.items()}
    if isinstance(template, list):
        return [_render(v, params) for v in template]
    return template
