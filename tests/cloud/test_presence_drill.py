"""Presence drill: is every charger shown online/offline truthfully, through the HTTP API only?

Real parts on loopback: Mosquitto from the shipped config, a cloud worker and a gateway as
``voltmesh cloud`` / ``voltmesh edge`` subprocesses (so SIGKILL is real and the gateway's MQTT
Will fires), and simulated devices over the real wire: two YKC piles (``sim.ykc``), a third pile
that logs in and then says nothing (missed heartbeats), an OCPP 1.6J and an OCPP 2.0.1 charge
point (``sim.ocpp``) and a Modbus meter (``sim.modbus``). Presence is observed only through
``GET /api/v1/gateways`` and ``GET /api/v1/devices?gateway=...``, each step within a bounded wait:

1. everything connects: the gateway and every device online;
2. a pile stops (socket closed), a pile goes silent (missed heartbeats), the 2.0.1 charger's
   link is cut (TCP abort), the meter stops answering: exactly those offline; they come back;
3. the gateway is SIGKILLed: it and every device offline (its Will); 3b. started again and
   stopped with SIGTERM (a clean DISCONNECT, no Will): offline as well;
4. the gateway starts again, a pile stays away: the rest online, that pile offline after
   ``presence_grace``;
5. the cloud worker is SIGKILLed right after a device left (before its registry flush), and a
   device changes while it is away: after its restart the API shows both changes;
6. the broker restarts (persistence on) while a device leaves: the views are right after the
   reconnects; 6b. the broker stops and the gateway dies while it is down: offline;
7. the gateway is replaced (its outbox lost, counters from 1 again): it and the devices that
   come back online.

docs/architecture.md, "Presence drill", says what the drill found.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from bench.chaos.site import Proc, Secrets
from bench.procs import free_port
from bridges.modbus import SHIPPED_MAPS_DIR, shipped_map
from bridges.ocpp import OcppVersion
from bridges.ykc.mapper import connector_id
from bridges.ykc.messages import Login, LoginReply
from cloud.config import CloudConfig
from cloud.service import CloudService
from sim.modbus import ModbusSimulator
from sim.ocpp import OcppChargePointSim, SimConfig
from sim.ykc import PileConfig, SimPile
from tests.support.api import ADMIN, admin_password
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.ykc import RawPile
from thingmodels import decode
from voltmesh.seed import OcppChargePoint, YkcPile, seed_records

ROOT = Path(__file__).resolve().parents[2]
GW = "drill-gw"  # a user of the test broker's password file (its ACL: ev/v1/drill-gw/#)
PILE_A, PILE_B, SILENT = "32010200000011", "32010200000012", "32010200000013"
CP16, CP201 = "DRILL-AC16", "DRILL-DC201"
METER = "meter-1"
GRACE = 3.0  # the gateway's presence_grace
WAIT = 15.0  # bound of every wait for the API's view

View = tuple[bool | None, dict[str, bool]]


def pile_devices(pile: str) -> set[str]:
    return {f"charger/{pile}", f"connector/{connector_id(pile, 1)}"}


class Site:
    """The drill's processes and simulated devices (ports kept across restarts)."""

    def __init__(self, broker: Mosquitto, workdir: Path) -> None:
        self.broker = broker
        self.workdir = workdir
        self.http_port, self.ykc_port, self.ocpp_port, self.modbus_port = (
            free_port(), free_port(), free_port(), free_port())
        self.api = f"http://127.0.0.1:{self.http_port}"
        self.auth = Secrets()
        self.cloud_doc: dict[str, Any] = {
            "worker_id": "presence-cloud",
            # the shipped example for one worker: plain subscriptions, persistent session
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "username": "cloud",
                     "password": USERS["cloud"], "backoff_max": 0.5, "shared_group": "voltmesh"},
            "database_url": f"sqlite:///{workdir / 'cloud.db'}",
            "http": {"host": "127.0.0.1", "port": self.http_port},
            "log_format": "console",
            "rules": {"paths": [str(ROOT / "config" / "rules")]},
            "auth": {"jwt_secret": self.auth.jwt_secret,
                     "bootstrap": {"username": ADMIN, "password": admin_password()}},
            "catalog": {"provisioning_interval": 1.0},
        }
        gateway_doc: dict[str, Any] = {
            "gateway_id": GW,
            "presence_grace": GRACE,
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "username": GW,
                     "password": USERS[GW], "backoff_initial": 0.2, "backoff_max": 1.0},
            "outbox": {"path": str(workdir / "outbox.db")},
            "telemetry": {"flush_interval": 0.5},
            "adapters": {
                "ykc": {"host": "127.0.0.1", "port": self.ykc_port,
                        "heartbeat_interval": 1.0, "missed_heartbeats": 2},
                "ocpp": {"host": "127.0.0.1", "port": self.ocpp_port, "security_profile": 1,
                         "heartbeat_interval": 30},
                "modbus": {"backoff_max": 1.0, "lost_after": 2, "devices": [
                    {"id": METER, "map": str(SHIPPED_MAPS_DIR / "eastron_sdm630.yaml"),
                     "host": "127.0.0.1", "port": self.modbus_port, "device_id": 1,
                     "interval": 0.5, "timeout": 0.5, "report_period": 5}]},
            },
        }
        env = {**self.auth.env(), "VOLTMESH_ADMIN_PASSWORD": admin_password()}
        self.cloud = Proc("cloud", "cloud", self.cloud_doc, workdir, self.http_port, env)
        self.gateway = Proc("gateway", "edge", gateway_doc, workdir, self.ykc_port, env)
        self.passwords = {CP16: "cp16-password", CP201: "cp201-password"}
        self.piles = {code: self._pile(code) for code in (PILE_A, PILE_B)}
        self.chargers = {cp: self._charger(cp) for cp in (CP16, CP201)}
        self.meter: ModbusSimulator | None = None
        self.silent: RawPile | None = None
        self.headers: dict[str, str] = {}

    # -- devices ------------------------------------------------------------------------------

    def _pile(self, code: str) -> SimPile:
        return SimPile(PileConfig(pile_code=code, guns=1, heartbeat_interval=0.4,
                                  reconnect_min=0.2, reconnect_max=1.0, seed=int(code[-2:])),
                       port=self.ykc_port)

    def _charger(self, cp: str) -> OcppChargePointSim:
        return OcppChargePointSim(SimConfig(
            charge_point_id=cp, url=f"ws://127.0.0.1:{self.ocpp_port}/ocpp",
            version=OcppVersion.V16 if cp == CP16 else OcppVersion.V201,
            password=self.passwords[cp], reconnect_min_s=0.2, reconnect_max_s=1.0,
            step_delay_s=0.0))

    async def start_meter(self) -> None:
        self.meter = ModbusSimulator(shipped_map("eastron_sdm630"), "127.0.0.1",
                                     self.modbus_port, 1)
        await self.meter.start()

    async def stop_meter(self) -> None:
        if self.meter is not None:
            await self.meter.stop()
            self.meter = None

    def start_charger(self, cp: str) -> None:
        sim = self.chargers[cp] = self._charger(cp)
        asyncio.get_running_loop().create_task(sim.run(), name=f"ocpp-{cp}")

    async def stop_charger(self, cp: str) -> None:
        await self.chargers[cp].close()

    async def silent_login(self, timeout: float = 20.0) -> None:
        """A pile that logs in and then says nothing at all (its socket stays open); tried
        again until the gateway's provisioning admits it."""
        deadline = time.monotonic() + timeout
        while True:
            pile = await RawPile.connect(self.ykc_port)
            pile.send(Login(pile_code=SILENT, pile_type=0, gun_count=1, protocol_version=0x10,
                            firmware_version="v4.1.50", network_type=1, iccid="0" * 20,
                            carrier=4))
            reply = await pile.expect(LoginReply)
            if reply.result == 0:
                self.silent = pile
                return
            pile.writer.close()
            assert time.monotonic() < deadline, "the gateway never admitted the silent pile"
            await asyncio.sleep(0.5)

    def close_silent(self) -> None:
        if self.silent is not None:
            self.silent.writer.close()
            self.silent = None

    # -- the seed --------------------------------------------------------------------------

    def seed(self) -> None:
        """The catalogue (in this process, before the worker starts): the chargers on the drill
        gateway, so its provisioning admits them (blocking)."""
        local = CloudService(CloudConfig.model_validate(self.cloud_doc))
        try:
            seed_records(local, gateway_id=GW, customers=(),
                         piles=[YkcPile(code, guns=1) for code in (PILE_A, PILE_B, SILENT)],
                         charge_points=[
                             OcppChargePoint(CP16, password=self.passwords[CP16]),
                             OcppChargePoint(CP201, protocol="ocpp201", dc=True,
                                             password=self.passwords[CP201])],
                         tenant_id="presence-operator", tenant_name="Presence Operator",
                         admin_username="presence-operator", station_name="Presence Station")
        finally:
            local.engine.dispose()

    # -- the API's view ----------------------------------------------------------------------

    async def view(self) -> View | None:
        """(gateway online, {product/device: online}) from the API; None if it does not answer."""
        try:
            async with httpx.AsyncClient(base_url=self.api, timeout=3.0) as http:
                if not self.headers:
                    token = await http.post("/api/v1/auth/token", data={
                        "username": ADMIN, "password": admin_password()})
                    token.raise_for_status()
                    self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                gws = await http.get("/api/v1/gateways", headers=self.headers)
                devs = await http.get("/api/v1/devices", headers=self.headers,
                                      params={"gateway": GW, "limit": 5000})
        except httpx.HTTPError:
            return None
        if gws.status_code != 200 or devs.status_code != 200:
            self.headers = {}
            return None
        gateway = next((g["online"] for g in gws.json()["items"] if g["gateway"] == GW), None)
        return gateway, {f"{d['product']}/{d['device']}": d["online"]
                         for d in devs.json()["items"]}

    async def expect(self, step: str, *, gateway: bool, online: Iterable[str] = (),
                     offline: Iterable[str] = (), others: bool | None = None,
                     timeout: float = WAIT) -> float:
        """Wait until the API shows ``gateway``, every device of ``online`` online and of
        ``offline`` offline (and every other listed device ``others``, when given); return
        the seconds it took. AssertionError with the last view after ``timeout``."""
        want_on, want_off = set(online), set(offline)
        t0 = time.monotonic()
        last: View | None = None
        while True:
            last = await self.view() or last
            if last is not None and _matches(last, gateway, want_on, want_off, others):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{step}: after {timeout:g}s the API shows {_show(last)}; "
                                     f"wanted gateway online={gateway}, online {sorted(want_on)}, "
                                     f"offline {sorted(want_off)}, others {others}\n"
                                     f"gateway log: {self.gateway.tail(1500)}")
            await asyncio.sleep(0.2)

    async def hold(self, step: str, seconds: float, check: Callable[[View], bool]) -> None:
        """The API's view satisfies ``check`` at every poll for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            view = await self.view()
            assert view is None or check(view), f"{step}: the API shows {_show(view)}"
            await asyncio.sleep(0.2)


def _matches(view: View, gateway: bool, online: set[str], offline: set[str],
             others: bool | None) -> bool:
    gw, devices = view
    if gw is not gateway:
        return False
    for name, is_online in devices.items():
        want = True if name in online else False if name in offline else others
        if want is not None and is_online is not want:
            return False
    return (online | offline) <= devices.keys()


def _show(view: View | None) -> str:
    if view is None:
        return "nothing (no answer)"
    gw, devices = view
    return (f"gateway online={gw}; online {sorted(d for d, o in devices.items() if o)}; "
            f"offline {sorted(d for d, o in devices.items() if not o)}")


async def _retained_state(port: int, topic: str, online: bool, timeout: float = 5.0) -> None:
    """Until the broker holds ``online`` as the retained state of ``topic`` (read as the cloud
    user, with a clean session of its own per look)."""
    async with asyncio.timeout(timeout):
        while True:
            async with aiomqtt.Client("127.0.0.1", port, username="cloud",
                                      password=USERS["cloud"],
                                      identifier=f"presence-drill-{time.monotonic_ns()}") as client:
                await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    held = decode(bytes(message.payload))
                    if (held.p or {}).get("online") is online:
                        return
                    break  # an older state: look again
            await asyncio.sleep(0.05)


def _remove(directory: Path, pattern: str) -> None:
    for path in directory.glob(pattern):
        path.unlink()


async def test_presence_drill(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site = Site(mosquitto, tmp_path)
    t0 = time.monotonic()
    await asyncio.to_thread(site.seed)
    print(f"seeded in {time.monotonic() - t0:.1f}s")
    runs: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(site.cloud.start)
        await asyncio.to_thread(site.gateway.start)
        print(f"cloud and gateway up at {time.monotonic() - t0:.1f}s")
        await site.start_meter()
        for pile in site.piles.values():
            runs.append(pile.start())
        for cp in (CP16, CP201):
            site.start_charger(cp)
        await site.silent_login()
        a, b, silent = pile_devices(PILE_A), pile_devices(PILE_B), pile_devices(SILENT)
        charger16 = {f"charger/{CP16}", f"connector/{CP16}-1"}
        charger201 = {f"charger/{CP201}", f"connector/{CP201}-1"}
        meter = f"meter/{METER}"
        everyone = a | b | silent | charger16 | charger201 | {meter}

        # 1. everything connects: the gateway and every device online
        await site.expect("1 all connect", gateway=True, online=everyone, others=True,
                          timeout=30)

        # 2. one of each kind leaves: a pile's socket closes, a pile goes silent (heartbeats),
        #    a charger's link is cut (TCP abort), the meter stops answering
        await site.piles[PILE_B].stop()
        site.chargers[CP201].cut_link(down_s=3600)
        await site.stop_meter()
        left = b | silent | charger201 | {meter}
        await site.expect("2 some leave", gateway=True, offline=left, others=True)
        # ... and come back (the silent pile's socket closes: it is gone for good)
        site.close_silent()
        runs.append(site.piles[PILE_B].start())
        await site.stop_charger(CP201)
        site.start_charger(CP201)
        await site.start_meter()
        await site.expect("2 back", gateway=True, offline=silent, others=True)

        # 3. the gateway is SIGKILLed: its Will takes it and every device offline
        await asyncio.to_thread(site.gateway.kill)
        await site.expect("3 gateway killed", gateway=False, others=False, timeout=5)

        # 3b. started again and stopped (SIGTERM: a deploy, systemctl stop): offline as well
        await asyncio.to_thread(site.gateway.start)
        await site.expect("3b gateway back", gateway=True, offline=silent, others=True)
        await asyncio.to_thread(site.gateway.stop)
        await site.expect("3b gateway stopped", gateway=False, others=False, timeout=5)

        # 4. it starts again; pile A stays away (unplugged while the gateway was down)
        await site.piles[PILE_A].stop()
        await asyncio.to_thread(site.gateway.start)
        took = await site.expect("4 gateway back", gateway=True, offline=a | silent,
                                 others=True, timeout=GRACE + WAIT)
        print(f"4: pile A offline {took:.1f}s after the gateway started (grace {GRACE:g}s)")

        # 5. the cloud worker dies right after a device left (its offline received, not yet
        #    flushed to SQL), and a device changes while it is away
        await site.stop_charger(CP16)
        await _retained_state(mosquitto.port, f"ev/v1/{GW}/charger/{CP16}/state", False)
        await asyncio.to_thread(site.cloud.kill)
        runs.append(site.piles[PILE_A].start())  # back while the cloud is away
        await asyncio.sleep(1.0)
        await asyncio.to_thread(site.cloud.start)
        site.headers = {}
        await site.expect("5 cloud restarted", gateway=True, offline=charger16 | silent,
                          online=a, others=True)

        # 6. the broker restarts (persistence on); pile B leaves while it is down
        await asyncio.to_thread(mosquitto.stop)
        await site.piles[PILE_B].stop()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(mosquitto.start)
        await site.expect("6 broker restarted", gateway=True, offline=charger16 | b | silent,
                          others=True, timeout=WAIT + 5)
        await site.hold("6 steady", 1.0, lambda v: v[0] is True)

        # 6b. the broker stops and the gateway dies while it is down: Mosquitto publishes the
        #     Wills of the clients connected at its shutdown (and persists them). A broker
        #     CRASH (SIGKILL) there leaves the gateway online for good: docs/architecture.md
        #     "Presence drill", open
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.to_thread(site.gateway.kill)
        await asyncio.to_thread(mosquitto.start)
        await site.expect("6b gateway died during the broker's restart", gateway=False,
                          others=False, timeout=WAIT + 5)

        # 7. the gateway is replaced (a new SD card: its outbox, with its counters, is gone)
        await asyncio.to_thread(_remove, tmp_path, "outbox.db*")
        await asyncio.to_thread(site.gateway.start)
        await site.expect("7 gateway replaced", gateway=True, online=a | charger201 | {meter},
                          offline=charger16 | b | silent, timeout=WAIT + GRACE)
    finally:
        site.close_silent()
        for pile in site.piles.values():
            await pile.stop()
        for sim in site.chargers.values():
            with contextlib.suppress(Exception):
                await sim.close()
        await site.stop_meter()
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await asyncio.to_thread(site.gateway.stop)
        await asyncio.to_thread(site.cloud.stop)
