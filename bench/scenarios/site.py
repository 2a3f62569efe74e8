"""A charging site for the command and storm scenarios, all real parts on loopback.

Mosquitto (shipped config, :mod:`bench.mosquitto`), one :class:`~cloud.service.CloudService`
in this process (SQLite, shipped rules, HTTP API on a free port), the catalogue, customers and
provisioning from :func:`voltmesh.seed.seed_site`, one gateway **process** (``voltmesh edge``,
YKC listener on a fixed free port, so it can be killed and restarted on the same port) and
``piles`` simulated YKC piles (:class:`sim.ykc.SimPile`) in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench.mosquitto import USERS, Mosquitto, mosquitto_binary
from bench.procs import free_port, wait_port
from bench.scenarios.errors import MissingBinary, ScenarioError
from cloud.auth.config import AuthConfig
from cloud.config import CloudConfig, CloudMqttConfig, HttpConfig
from cloud.orders.config import OrdersConfig
from cloud.rules import RulesConfig
from cloud.service import CloudService
from sim.ykc import PileConfig, SimPile
from voltmesh.seed import Customer, SeedResult, YkcPile, seed_site

ROOT = Path(__file__).resolve().parents[2]
GW = "bench-gw"


def pile_codes(count: int, prefix: str = "3201030") -> list[str]:
    """``count`` 14-digit pile codes."""
    return [f"{prefix}{i:07d}" for i in range(1, count + 1)]


def customers(count: int) -> list[Customer]:
    """``count`` customers with distinct cards and a wallet for many sessions."""
    return [Customer(phone=f"139{i:08d}", card=f"{0xB0000000 + i:08X}",
                     logical_card=f"{3000000000 + i}", name=f"Bench {i}",
                     topup=Decimal("500.00")) for i in range(1, count + 1)]


def require_mosquitto() -> None:
    if not mosquitto_binary():
        raise MissingBinary("mosquitto is not installed (scripts/install-system-deps.sh)")


@dataclass
class Site:
    """The running site; ``http`` is logged in as the seeded operator admin."""

    workdir: Path
    broker: Mosquitto
    cloud: CloudService
    seed: SeedResult
    http: httpx.AsyncClient
    ykc_port: int
    piles: list[SimPile] = field(default_factory=list)
    gateway: subprocess.Popen[bytes] | None = None
    gateway_starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud.http_port}"

    def start_gateway(self) -> None:
        """Start the gateway process and wait until its YKC listener accepts."""
        log = (self.workdir / f"gateway-{self.gateway_starts}.log").open("wb")
        self.gateway_starts += 1
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", "edge", "--config", str(self.workdir / "gw.yaml")],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.ykc_port, 60)

    def kill_gateway(self) -> None:
        """SIGKILL the gateway process (every pile socket drops at once) and reap it."""
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGKILL)
            self.gateway.wait(30)
        self.gateway = None

    def stop_gateway(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            try:
                self.gateway.wait(15)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait(5)
        self.gateway = None

    def logged_in(self) -> int:
        return sum(1 for pile in self.piles if pile.logged_in.is_set() and pile.connected)

    async def all_logged_in(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.logged_in() == len(self.piles) and all(
                    p.model_loaded.is_set() for p in self.piles):
                return True
            await asyncio.sleep(0.05)
        return False

    async def post(self, path: str, body: dict[str, Any], *, key: str | None = None,
                   timeout: float = 30.0) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.http.post(path, json=body, headers=headers,
                                    params={"wait": "true", "timeout": str(timeout)},
                                    timeout=timeout + 30)


@contextlib.asynccontextmanager
async def running_site(workdir: Path, *, piles: int, customer_count: int | None = None,
                       realtime_interval: float = 15.0, heartbeat_interval: float = 10.0,
                       connect_timeout: float = 120.0) -> AsyncIterator[Site]:
    """Everything up, every pile logged in with its billing model; everything stopped after."""
    require_mosquitto()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    broker = await asyncio.to_thread(Mosquitto, workdir / "mosquitto")
    await asyncio.to_thread(broker.start)
    cloud = CloudService(CloudConfig(
        worker_id="bench-cloud",
        mqtt=CloudMqttConfig(port=broker.port, username="cloud", password=USERS["cloud"],
                             protocol="v5"),
        database_url=f"sqlite:///{workdir / 'cloud.db'}",
        http=HttpConfig(host="127.0.0.1", port=0),
        auth=AuthConfig(dev=True),
        rules=RulesConfig(paths=[str(ROOT / "config" / "rules")]),
        orders=OrdersConfig(settle_grace=1.0),
    ), base_dir=ROOT)
    task = asyncio.create_task(cloud.run(), name="bench-cloud")
    site: Site | None = None
    try:
        async with asyncio.timeout(60):
            await cloud.started.wait()
            await cloud.consumer.connected.wait()
            while cloud.http_port is None:
                await asyncio.sleep(0.05)
        codes = pile_codes(piles)
        seed = await seed_site(cloud, gateway_id=GW, piles=[YkcPile(c) for c in codes],
                               customers=customers(customer_count or piles),
                               tenant_id="bench-operator", tenant_name="Bench Operator",
                               admin_username="bench-operator",
                               admin_password="bench-operator-password-1",
                               station_name="Bench Station")
        ykc_port = free_port()
        (workdir / "gw.yaml").write_text(f"""
gateway_id: {GW}
mqtt: {{port: {broker.port}, username: {GW}, password: {USERS[GW]}, max_inflight: 200}}
outbox: {{path: {workdir / 'edge-outbox.db'}}}
telemetry: {{flush_interval: 1s, stats_interval: 30s}}
adapters:
  ykc: {{host: 127.0.0.1, port: {ykc_port}, heartbeat_interval: {heartbeat_interval}}}
log_format: json
""")
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{cloud.http_port}", timeout=60)
        reply = await http.post("/api/v1/auth/token", data={
            "username": seed.admin_username, "password": seed.admin_password})
        if reply.status_code != 200:
            raise ScenarioError(f"operator login: {reply.status_code} {reply.text[:200]}")
        http.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
        site = Site(workdir, broker, cloud, seed, http, ykc_port)
        await asyncio.to_thread(site.start_gateway)
        site.piles = [SimPile(PileConfig(
            pile_code=code, guns=1, power_kw=60.0, realtime_interval=realtime_interval,
            heartbeat_interval=heartbeat_interval, bms_frames=False, record_retry_interval=5.0,
            reconnect_min=0.5, reconnect_max=5.0, seed=i), "127.0.0.1", ykc_port)
            for i, code in enumerate(codes)]
        rate = 200.0  # logins per second
        for i, pile in enumerate(site.piles):
            pile.start(initial_delay=i / rate)
        if not await site.all_logged_in(connect_timeout):
            raise ScenarioError(f"only {site.logged_in()} of {piles} piles logged in with a "
                                f"billing model after {connect_timeout:.0f} s")
        yield site
    finally:
        if site is not None:
            await asyncio.gather(*(pile.stop() for pile in site.piles),
                                 return_exceptions=True)
            await asyncio.to_thread(site.stop_gateway)
            await site.http.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(broker.stop)


def pids(site: Site) -> dict[str, int]:
    """The processes whose CPU a scenario reports."""
    found = {"cloud+sims": os.getpid()}
    if site.broker.proc is not None:
        found["mosquitto"] = site.broker.proc.pid
    if site.gateway is not None:
        found["gateway"] = site.gateway.pid
    return found
