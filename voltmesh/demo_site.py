"""The demo site beyond its YKC piles: OCPP chargers, Modbus devices, a flood interlock.

* two OCPP charge points from :mod:`sim.ocpp` connect to the gateway's OCPP listener (one
  OCPP 1.6J AC charger with two connectors, one OCPP 2.0.1 DC charger), security profile 1:
  each has an HTTP Basic password, generated once per data directory and seeded into the
  catalogue (the gateway gets its SHA-256 through provisioning);
* a Modbus site served by :mod:`sim.modbus` on free loopback ports, one listener per device
  (the shipped maps of ``config/modbus``): a three-phase meter, a water-immersion sensor, the
  cabinet relay and a parking lock, polled by the gateway's Modbus adapter;
* an edge interlock (:mod:`edge.interlocks`) "water detected -> stop charging on the site's
  chargers, then cut the cabinet relay"; the shipped ``config/rules/alarms.yaml`` turns the
  gateway's ``interlockTriggered`` event and a Modbus sensor's ``water`` property into alarms;
* :meth:`ModbusSite.flood`: water in the cabinet trench, for ``voltmesh demo --flood-at``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from bridges.modbus import SHIPPED_MAPS_DIR, shipped_map
from bridges.ocpp import OcppVersion
from edge.config import ModbusConfig, ModbusDeviceConfig, OcppConfig
from edge.interlocks import InterlockEngine
from sim.modbus import ModbusSimulator
from sim.ocpp import OcppChargePointSim, SimConfig
from voltmesh.seed import OcppChargePoint, YkcPile

log = logging.getLogger("voltmesh.demo")

#: the demo site's OCPP chargers (passwords are set per data directory by :func:`ocpp_points`)
DEMO_CHARGE_POINTS = (
    OcppChargePoint("DEMO-AC16", connectors=2, protocol="ocpp16", dc=False,
                    rated_kw=Decimal("22")),
    OcppChargePoint("DEMO-DC201", connectors=1, protocol="ocpp201", dc=True,
                    rated_kw=Decimal("60")),
)
OCPP_PATH = "/ocpp"

INTERLOCK = "flood-site"
WATER_SENSOR = "water-1"
RELAY = "cabinet-relay"


@dataclass(frozen=True, slots=True)
class SiteDevice:
    """A Modbus device of the demo site: thing id, shipped map, poll interval (s)."""

    id: str
    map: str
    interval: float


#: the Modbus devices (the water sensor and the relay polled every second: they are the
#: interlock's eyes and hands)
DEMO_MODBUS = (
    SiteDevice("meter-main", "eastron_sdm630", 2.0),
    SiteDevice(WATER_SENSOR, "water_immersion", 1.0),
    SiteDevice(RELAY, "cabinet_relay", 1.0),
    SiteDevice("lock-b01", "parking_lock", 2.0),
)

def ocpp_points(workdir: Path) -> list[OcppChargePoint]:
    """The demo's OCPP chargers with their Basic-auth passwords: generated on the first run
    and kept in ``ocpp-passwords.json`` of the data directory, so a second run on the same
    directory matches what the catalogue already holds."""
    path = workdir / "ocpp-passwords.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    changed = False
    for point in DEMO_CHARGE_POINTS:
        if point.id not in stored:
            stored[point.id] = secrets.token_urlsafe(12)
            changed = True
    if changed:
        path.write_text(json.dumps(stored, indent=1))
        path.chmod(0o600)
    return [replace(p, password=stored[p.id]) for p in DEMO_CHARGE_POINTS]


def ocpp_config(host: str) -> OcppConfig:
    """The gateway's OCPP listener: a free port, HTTP Basic, unknown chargers refused."""
    return OcppConfig(host=host, port=0, path=OCPP_PATH, security_profile=1,
                      heartbeat_interval=30, call_timeout=10)


def ocpp_sims(points: Sequence[OcppChargePoint], host: str, port: int
              ) -> list[OcppChargePointSim]:
    """One simulator per charger, connecting to the gateway's listener."""
    sims = []
    for i, point in enumerate(points):
        sims.append(OcppChargePointSim(SimConfig(
            charge_point_id=point.id, url=f"ws://{host}:{port}{OCPP_PATH}",
            version=OcppVersion.V16 if point.protocol == "ocpp16" else OcppVersion.V201,
            password=point.password, connectors=point.connectors,
            charger_type="dc" if point.dc else "ac", max_power_kw=float(point.rated_kw),
            model="SimDC60" if point.dc else "SimAC22", serial_number=f"DEMO-SN-{i + 1:04d}",
            meter_interval_s=5.0, heartbeat_default_s=30.0, reconnect_max_s=5.0,
            step_delay_s=0.2, seed=100 + i)))
    return sims


def interlocks_file(workdir: Path, piles: Sequence[YkcPile],
                    points: Sequence[OcppChargePoint]) -> Path:
    """Write the demo's interlock (water -> stop charging, then cut the relay)."""
    doc: dict[str, Any] = {"interlocks": [{
        "name": INTERLOCK,
        "description": "water in the cabinet trench: stop every charger, then cut the power",
        "order": "sequential",  # stop the sessions first, then cut (no arcing)
        "action_timeout": "5s",
        "conditions": [{"product": "env_sensor", "device": WATER_SENSOR,
                        "property": "water", "equals": True}],
        "actions": [
            {"action": "stop_charging", "chargers": [p.code for p in piles]
             + [p.id for p in points]},
            {"action": "cut_relay", "targets": [RELAY]},
        ],
    }]}
    path = workdir / "interlocks.yaml"
    path.write_text("# written by voltmesh demo\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


class ModbusSite:
    """The simulated Modbus devices, one listener each on a free loopback port::

        async with ModbusSite(host) as site:
            config = site.gateway_config()
            ...
            site.flood()
    """

    def __init__(self, host: str, devices: Sequence[SiteDevice] = DEMO_MODBUS) -> None:
        self.host = host
        self.devices = list(devices)
        self.sims = {d.id: ModbusSimulator(shipped_map(d.map), host, 0) for d in self.devices}

    async def __aenter__(self) -> ModbusSite:
        started: list[ModbusSimulator] = []
        try:
            for sim in self.sims.values():
                await sim.start()
                started.append(sim)
        except BaseException:
            for sim in started:
                await sim.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        for sim in self.sims.values():
            await sim.stop()

    def gateway_config(self) -> ModbusConfig:
        """The gateway's Modbus adapter section for these devices."""
        return ModbusConfig(backoff_max=5.0, devices=[ModbusDeviceConfig(
            id=d.id, map=str(SHIPPED_MAPS_DIR / f"{d.map}.yaml"), host=self.host,
            port=self.sims[d.id].port, device_id=self.sims[d.id].device_id,
            interval=d.interval, timeout=1.0) for d in self.devices])

    def describe(self) -> str:
        """``meter-main tcp://127.0.0.1:40001 (eastron_sdm630), ...``."""
        return ", ".join(f"{d.id} tcp://{self.host}:{self.sims[d.id].port}" for d in self.devices)

    def flood(self) -> None:
        """Water in the cabinet trench: the water sensor reads wet."""
        self.sims[WATER_SENSOR].set("water", True)

    def power_cut(self) -> bool:
        """Whether the cabinet's contactor is open (the relay was cut)."""
        return self.sims[RELAY].get("closed") is False


async def watch_flood(site: ModbusSite, engine: InterlockEngine | None, at: float) -> None:
    """At ``at`` seconds: flood the site, then print what the interlock did."""
    await asyncio.sleep(at)
    site.flood()
    print(f"flood: water detected by {WATER_SENSOR} (t+{at:g}s); "
          f"interlock {INTERLOCK} should act", flush=True)
    if engine is None:
        return
    state = engine.states[INTERLOCK]
    for _ in range(150):  # 30 s
        if state.triggers and state.last_results:
            break
        await asyncio.sleep(0.2)
    if not state.last_results:
        print(f"flood: interlock {INTERLOCK} did not act within 30 s", flush=True)
        return
    done = ", ".join(f"{r['action']} {r['target']} {'ok' if r['ok'] else 'FAILED'}"
                     + (f" ({r['detail']})" if r.get("detail") else "")
                     for r in state.last_results)
    print(f"flood: interlock {INTERLOCK} acted: {done}", flush=True)
