"""Simulated MQTT-native devices publishing vendor JSON on a site's local broker.

The JSON shapes are what ``config/mqtt_devices/site.yaml`` maps: an AI camera reporting plates,
bay occupancy and fire/smoke detections, and an environment sensor reporting temperature,
humidity and water immersion.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt


@dataclass
class SimDevices:
    """A handful of cameras and sensors on one local broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    site: str = "site1"
    cameras: int = 2
    sensors: int = 2
    interval: float = 2.0
    seed: int = 1
    published: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def camera_messages(self, index: int) -> list[tuple[str, dict[str, Any]]]:
        """One round of a camera's messages."""
        cam = f"cam{index:02d}"
        base = f"{self.site}/cameras/{cam}"
        out: list[tuple[str, dict[str, Any]]] = [
            (f"{base}/status", {"model": "VM-AI-4", "fw": "2.3.1", "channels": 4,
                                "fps": round(self.rng.uniform(20, 25), 1)}),
        ]
        if self.rng.random() < 0.5:
            plate = "皖A" + "".join(self.rng.choice("0123456789ABCDEFGHJK") for _ in range(5))
            ev = self.rng.random() < 0.8
            out.append((f"{base}/events", {
                "type": "plate", "plate": plate, "plateColor": "green" if ev else "blue",
                "vehicle": "ev" if ev else "ice", "conf": self.rng.randint(80, 99),
                "bay": f"B{index:02d}", "ts": int(time.time() * 1000),
            }))
        return out

    def sensor_messages(self, index: int) -> list[tuple[str, dict[str, Any]]]:
        """One round of an environment sensor's messages."""
        return [(f"{self.site}/env/env{index:02d}/data", {
            "temp": round(self.rng.uniform(18, 32), 1), "hum": round(self.rng.uniform(30, 70)),
            "water": 0, "batt": 97, "ts": int(time.time()),
        })]

    async def publish_round(self, client: aiomqtt.Client) -> None:
        """Publish one round for every device."""
        messages: list[tuple[str, dict[str, Any]]] = []
        for i in range(1, self.cameras + 1):
            messages.extend(self.camera_messages(i))
        for i in range(1, self.sensors + 1):
            messages.extend(self.sensor_messages(i))
        for topic, body in messages:
            await client.publish(topic, json.dumps(body, ensure_ascii=False), qos=1)
            self.published += 1

    async def run(self) -> None:
        """Publish rounds every ``interval`` until cancelled (reconnecting as needed)."""
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port,
                                          identifier=f"sim-{self.site}-devices") as client:
                    while True:
                        await self.publish_round(client)
                        await asyncio.sleep(self.interval)
            except aiomqtt.MqttError:
                await asyncio.sleep(1.0)
