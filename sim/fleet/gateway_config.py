"""What the platform needs to know about a simulated fleet.

* :func:`gateway_snippet`: the ``adapters`` part of a gateway config for the devices the
  simulator serves or publishes locally: the Modbus devices it serves (``modbus.devices``:
  map, host, port, unit id, poll interval) and the site broker its MQTT devices publish to
  (``mqtt_devices``, with the shipped ``config/mqtt_devices/site.yaml`` mapping). YKC and
  OCPP chargers connect to the gateway's own listeners and need no entry here.
* :func:`provisioning`: the gateway desired state the cloud publishes so the gateway admits
  the chargers (``devices``: YKC piles, OCPP chargers with the SHA-256 of their Basic-auth
  password), knows the drivers' cards (``cards``, the offline list) and has a tariff for the
  YKC billing model (``tariff``). PUT it to ``/api/v1/gateways/{gw}/desired/gateway/{gw}``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from bridges.modbus import SHIPPED_MAPS_DIR
from sim.fleet.errors import SpecError
from sim.fleet.schedule import card_pool
from sim.fleet.spec import (
    CHARGER_KINDS,
    MODBUS_MAPS,
    FleetSpec,
    Kind,
    modbus_layout,
    plan_devices,
)

__all__ = ["DEFAULT_TARIFF", "SITE_MAPPING", "gateway_snippet", "provisioning", "render_yaml"]

SITE_MAPPING = Path(__file__).resolve().parents[2] / "config" / "mqtt_devices" / "site.yaml"
"""The shipped mapping of the simulated cameras' and sensors' JSON."""

#: 尖峰平谷 tariff (yuan/kWh) for the YKC billing model, as in the demo
DEFAULT_TARIFF: dict[str, Any] = {
    "version": 1,
    "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
              "peak": {"energy": "1.0", "service": "0.6"},
              "flat": {"energy": "0.7", "service": "0.6"},
              "valley": {"energy": "0.3", "service": "0.6"}},
    "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                {"start": "08:00", "end": "10:00", "tier": "flat"},
                {"start": "10:00", "end": "11:00", "tier": "tip"},
                {"start": "11:00", "end": "12:00", "tier": "peak"},
                {"start": "12:00", "end": "18:00", "tier": "flat"},
                {"start": "18:00", "end": "21:00", "tier": "peak"},
                {"start": "21:00", "end": "23:00", "tier": "flat"},
                {"start": "23:00", "end": "24:00", "tier": "valley"}],
}


def gateway_snippet(spec: FleetSpec, ports: list[int] | None = None) -> dict[str, Any]:
    """``{"adapters": {...}}`` for the gateway config.

    ``ports`` are the Modbus ports the simulator bound, in slot order; without them the ports
    follow ``--modbus-port`` (which must then be set).
    """
    adapters: dict[str, Any] = {}
    devices = plan_devices(spec)
    layout = modbus_layout(spec, devices)
    if layout:
        slots = max(slot for _, slot, _ in layout) + 1
        if ports is None:
            if not spec.modbus_port:
                raise SpecError("--modbus-port: the Modbus ports are only known once the "
                                "simulator listens; give a fixed --modbus-port to write the "
                                "gateway config beforehand")
            ports = [spec.modbus_port + slot for slot in range(slots)]
        if len(ports) < slots:
            raise SpecError(f"{slots} Modbus ports needed, {len(ports)} given")
        adapters["modbus"] = {"backoff_max": 5.0, "devices": [
            {"id": plan.device_id, "map": str(SHIPPED_MAPS_DIR / f"{MODBUS_MAPS[plan.kind]}.yaml"),
             "host": spec.modbus_host, "port": ports[slot], "device_id": unit,
             "interval": spec.modbus_interval, "timeout": 2.0}
            for plan, slot, unit in layout]}
    if any(not spec.is_modbus(kind) for kind in (Kind.CAMERA, Kind.ENV_SENSOR)
           if spec.count(kind)):
        broker: dict[str, Any] = {"host": spec.mqtt_host, "port": spec.mqtt_port}
        if spec.mqtt_username is not None:
            broker["username"] = spec.mqtt_username
        if spec.mqtt_password is not None:
            broker["password"] = spec.mqtt_password
        adapters["mqtt_devices"] = {"broker": broker, "mappings": [str(SITE_MAPPING)]}
    return {"adapters": adapters}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def provisioning(spec: FleetSpec, *, tariff: dict[str, Any] | None = None) -> dict[str, Any]:
    """The gateway desired-state document admitting the simulated chargers and cards."""
    devices: list[dict[str, Any]] = []
    for plan in plan_devices(spec):
        if plan.kind not in CHARGER_KINDS:
            continue
        if plan.kind is Kind.YKC:
            devices.append({"product": "charger", "id": plan.device_id, "protocol": "ykc"})
            continue
        entry: dict[str, Any] = {"product": "charger", "id": plan.device_id, "protocol": "ocpp"}
        password = spec.ocpp_password(plan.device_id)
        if password is not None:
            entry["password_sha256"] = _sha256(password)
        devices.append(entry)
    cards = [{"physical": card, "idTag": card, "logical": f"{int(card, 16):016d}",
              "status": "active"} for card in card_pool(spec)]
    return {"devices": devices, "cards": cards,
            "tariff": dict(tariff if tariff is not None else DEFAULT_TARIFF)}


def render_yaml(doc: dict[str, Any]) -> str:
    """YAML text of a document (keys in order)."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
