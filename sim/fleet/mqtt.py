"""MQTT-native devices in the fleet: AI cameras and environment sensors on the site broker.

Each device has its own MQTT connection (client id ``vm-sim-{device}``), as a real camera
box or 4G sensor would, and publishes the vendor JSON of :class:`sim.mqtt.devices.SimDevices`
(``site1/cameras/{device}/status|events``, ``site1/env/{device}/data``: what the shipped
``config/mqtt_devices/site.yaml`` maps) with QoS 1 every ``mqtt_interval`` seconds. The
broker's PUBACK is the acknowledgement timed (``puback``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import aiomqtt

from sim.fleet.driver import Driver, RunClock
from sim.fleet.schedule import device_seed
from sim.fleet.spec import DevicePlan, FleetSpec, Kind
from sim.mqtt.devices import SimDevices

__all__ = ["SITE", "MqttDriver"]

log = logging.getLogger("voltmesh.sim.fleet.mqtt")

SITE = "site1"
"""The site level of the topics (the shipped mapping file's)."""
_PUBLISH_TIMEOUT = 10.0
_BACKOFF_MIN, _BACKOFF_MAX = 1.0, 30.0


class MqttDriver(Driver):
    """The cameras or the environment sensors of one worker."""

    def __init__(self, kind: Kind, spec: FleetSpec, clock: RunClock) -> None:
        super().__init__(kind, spec, clock)
        self.online: set[str] = set()
        self.seen: set[str] = set()

    def add(self, plan: DevicePlan, delay: float) -> None:
        self.plans.append(plan)
        self.tasks.append(asyncio.create_task(self._device(plan, delay),
                                              name=f"sim-{plan.device_id}"))

    def connected(self) -> int:
        return len(self.online)

    def ever_connected(self) -> int:
        return len(self.seen)

    def _messages(self, source: SimDevices, index: int) -> list[tuple[str, str]]:
        if self.kind is Kind.CAMERA:
            batch = source.camera_messages(index)
        else:
            batch = source.sensor_messages(index)
        return [(topic, json.dumps(body, ensure_ascii=False)) for topic, body in batch]

    async def _device(self, plan: DevicePlan, delay: float) -> None:
        spec, meter, loop = self.spec, self.meter, asyncio.get_running_loop()
        seed = device_seed(spec.seed, self.kind, plan.device_id)
        source = SimDevices(host=spec.mqtt_host, port=spec.mqtt_port, site=SITE, cameras=0,
                            sensors=0, interval=spec.mqtt_interval, seed=seed)
        rng = random.Random(seed)
        await asyncio.sleep(delay)
        failures = 0
        while True:
            try:
                async with aiomqtt.Client(spec.mqtt_host, spec.mqtt_port,
                                          identifier=f"vm-sim-{plan.device_id}",
                                          username=spec.mqtt_username,
                                          password=spec.mqtt_password, keepalive=30) as client:
                    if plan.device_id in self.seen:
                        meter.reconnects += 1
                    self.online.add(plan.device_id)
                    self.seen.add(plan.device_id)
                    failures = 0
                    while True:
                        for topic, body in self._messages(source, plan.index):
                            sent = loop.time()
                            await client.publish(topic, body, qos=1, timeout=_PUBLISH_TIMEOUT)
                            meter.sent += 1
                            meter.received += 1  # the PUBACK
                            meter.ack("puback", loop.time() - sent)
                        await asyncio.sleep(spec.mqtt_interval)
            except aiomqtt.MqttError as exc:
                if plan.device_id in self.online:
                    meter.error("disconnected")
                else:
                    meter.connect_failures += 1
                log.info("%s: MQTT: %s", plan.device_id, exc)
            finally:
                self.online.discard(plan.device_id)
            delay = min(_BACKOFF_MAX, _BACKOFF_MIN * 2 ** min(failures, 10))
            failures += 1
            await asyncio.sleep(delay * rng.uniform(0.5, 1.0))
