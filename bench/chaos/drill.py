"""One chaos drill: the site, the fleet, the chaos schedule, the drain and the verdict."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, select

from bench.chaos.errors import ChaosError
from bench.chaos.site import (
    ADMIN,
    GATEWAY,
    Database,
    Proc,
    Secrets,
    cloud_config,
    free_ports,
    gateway_config,
    make_database,
)
from bench.chaos.spec import DrillSpec
from bench.chaos.verdict import BILLED, OrderRow, Verdict, WalletRow, compare
from bench.mosquitto import Mosquitto
from cloud.accounts.models import LedgerEntry, LedgerKind, Wallet
from cloud.config import CloudConfig
from cloud.orders.models import Order
from cloud.service import CloudService
from sim.fleet import FleetSpec, Kind, Progress, build_spec, card_pool, plan_devices, run_fleet
from voltmesh.seed import (
    DEFAULT_TARIFF,
    Customer,
    OcppChargePoint,
    SeedResult,
    YkcPile,
    seed_records,
)

log = logging.getLogger("bench.chaos")

TOPUP = Decimal("5000.00")
Say = Callable[[str], None]


def _say(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", flush=True)


def fleet_spec(spec: DrillSpec, *, ykc_port: int, ocpp_port: int, api: str, token: str,
               ledger: Path) -> FleetSpec:
    """The simulator's run for a drill."""
    return build_spec(
        ykc=spec.ykc, ocpp16=spec.ocpp, ykc_port=ykc_port,
        ocpp_url=f"ws://127.0.0.1:{ocpp_port}/ocpp", heartbeat=5.0, meter_interval=2.0,
        sessions_per_hour=spec.sessions_per_hour, session_minutes=spec.session_minutes,
        app_share=spec.app_share, app_api=api, app_token=token, gateway_id=GATEWAY,
        cards=spec.cards, duration=spec.duration, ramp=20, drain_timeout=spec.drain_timeout,
        seed=spec.seed, ledger=str(ledger), min_connected=0.0, max_errors=1_000_000)


def seed(cloud: CloudService, fleet: FleetSpec) -> SeedResult:
    """The catalogue for the fleet: its chargers on the drill gateway, the tariff, and one
    customer (wallet topped up, card bound) per card of the simulator's pool (blocking)."""
    piles: list[YkcPile] = []
    points: list[OcppChargePoint] = []
    for plan in plan_devices(fleet):
        if plan.kind is Kind.YKC:
            piles.append(YkcPile(plan.device_id, guns=plan.connectors, dc=True))
        elif plan.kind is Kind.OCPP16:
            points.append(OcppChargePoint(plan.device_id, connectors=plan.connectors,
                                          password=fleet.ocpp_password(plan.device_id)))
    customers = [Customer(phone=f"139{i:08d}", card=card, name=f"driver {i}",
                          logical_card=f"{int(card, 16):016d}", topup=TOPUP)
                 for i, card in enumerate(card_pool(fleet), start=1)]
    return seed_records(cloud, gateway_id=GATEWAY, piles=piles, charge_points=points,
                        customers=customers, tenant_id="chaos-operator",
                        tenant_name="Chaos Operator", admin_username="chaos-operator",
                        station_name="Chaos Station")


def tariff_rates() -> dict[str, tuple[Decimal, Decimal]]:
    """(electricity, service) per tier of the seeded tariff."""
    tiers: dict[str, dict[str, str]] = DEFAULT_TARIFF["tiers"]
    return {name: (Decimal(t["energy"]), Decimal(t["service"])) for name, t in tiers.items()}


def read_orders(cloud: CloudService) -> list[OrderRow]:
    """The drill gateway's orders (blocking)."""
    with Session(cloud.engine) as db:
        rows = db.exec(select(Order).where(Order.gw == GATEWAY)).all()
        return [OrderRow(gw=o.gw, device=o.device, session_id=o.session_id, status=o.status,
                         energy=o.energy, total_amount=o.total_amount, reconciled=o.reconciled,
                         discrepancies=list(o.discrepancies or ()), order_id=o.id)
                for o in rows]


def read_wallets(cloud: CloudService, seeded: SeedResult) -> list[WalletRow]:
    """The seeded customers' wallets against their ledgers and orders (blocking)."""
    out: list[WalletRow] = []
    with Session(cloud.engine) as db:
        for customer in seeded.customers:
            wallet = db.get(Wallet, customer.wallet_id)
            if wallet is None:
                raise ChaosError(f"wallet {customer.wallet_id} of {customer.user_id} is gone")
            entries = db.exec(select(LedgerEntry).where(
                LedgerEntry.wallet_id == wallet.id)).all()
            paid = db.exec(select(func.coalesce(func.sum(Order.paid_amount), 0)
                                  - func.coalesce(func.sum(Order.refunded_amount), 0))
                           .where(Order.user_id == customer.user_id)).one()
            out.append(WalletRow(
                user_id=customer.user_id, balance=wallet.balance,
                ledger_sum=sum((e.amount for e in entries), Decimal("0.00")),
                topups=sum((e.amount for e in entries if e.kind == LedgerKind.TOPUP.value),
                           Decimal("0.00")),
                orders_paid=Decimal(str(paid))))
    return out


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The simulator's ledger rows."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Chaos:
    """Breaks things on the drill's schedule (blocking steps run in threads)."""

    def __init__(self, spec: DrillSpec, broker: Mosquitto, clouds: list[Proc], gateway: Proc,
                 say: Say) -> None:
        self.spec = spec
        self.broker = broker
        self.clouds = clouds
        self.gateway = gateway
        self.say = say
        self.broker_restarts = 0
        self.cloud_kills = 0
        self.problems: list[str] = []

    def _next_cloud(self) -> Proc:
        """The worker the next cloud kill hits (they take turns)."""
        proc = self.clouds[self.cloud_kills % len(self.clouds)]
        self.cloud_kills += 1
        return proc

    def _broker(self) -> None:
        self.broker.stop()
        time.sleep(self.spec.down_for)
        self.broker.start()
        self.broker_restarts += 1

    def _bounce(self, proc: Proc) -> None:
        proc.kill()
        time.sleep(self.spec.down_for)
        proc.start()

    async def run(self, t0: float) -> None:
        """Run the schedule; a step that fails is recorded and the next one still runs."""
        for offset, action in self.spec.chaos_events():
            await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))
            step: Callable[[], None]
            if action == "broker":
                step, what = self._broker, "broker restart (SIGTERM, persistence kept)"
            elif action == "cloud":
                victim = self._next_cloud()
                step = functools.partial(self._bounce, victim)
                what = f"cloud worker {victim.name} SIGKILL + restart"
            else:
                step = functools.partial(self._bounce, self.gateway)
                what = "gateway SIGKILL + restart (outbox file kept)"
            self.say(f"t+{time.monotonic() - t0:.0f}s: {what}")
            try:
                await asyncio.to_thread(step)
            except Exception as exc:
                self.problems.append(f"{action}: {exc}")
                self.say(f"  {action} step failed: {exc}")

    def describe(self) -> str:
        """``3 broker restarts, cloud killed 1x, gateway killed 1x``."""
        workers = f" ({len(self.clouds)} workers, shared subscription)" \
            if len(self.clouds) > 1 else ""
        return (f"{self.broker_restarts} broker restarts, cloud killed "
                f"{sum(c.kills for c in self.clouds)}x{workers}, "
                f"gateway killed {self.gateway.kills}x")


async def _login(api: str, password: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        while True:
            try:
                reply = await client.post("/api/v1/auth/token",
                                          data={"username": ADMIN, "password": password})
                if reply.status_code == 200:
                    return str(reply.json()["access_token"])
                problem = f"{reply.status_code} {reply.text[:200]}"
            except httpx.HTTPError as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise ChaosError(f"cannot log in to the cloud API: {problem}")
            await asyncio.sleep(1)


async def _provisioned(cloud: CloudService, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        generation, pushed = await asyncio.to_thread(cloud.catalog.sync_state, GATEWAY)
        if pushed >= generation > 0:
            return
        if time.monotonic() > deadline:
            raise ChaosError(f"the cloud did not push the gateway's desired state within "
                             f"{timeout:g}s (generation {generation}, pushed {pushed})")
        await asyncio.sleep(0.5)


async def _settle(cloud: CloudService, ledger: Path, timeout: float, say: Say) -> None:
    """Wait until every confirmed ledger session has a billed order (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read_ledger(ledger)
        orders = {(o.device, o.session_id): o for o in await asyncio.to_thread(read_orders,
                                                                               cloud)}
        waiting = [r for r in rows if r.get("confirmed") and (
            (o := orders.get((str(r["device"]), str(r["sessionId"])))) is None
            or o.status not in BILLED)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            say(f"settle: {len(waiting)} confirmed sessions still without a billed order "
                f"after {timeout:g}s")
            return
        await asyncio.sleep(1.0)


async def run_drill(spec: DrillSpec, workdir: Path, *, postgres: bool = True,
                    keep_failed_database: bool = False, say: Say = _say) -> Verdict:
    """Run one drill in ``workdir`` (logs, configs, ledger and an orders dump stay there).

    The PostgreSQL database is dropped at the end unless the verdict fails and
    ``keep_failed_database`` is set (its URL is said then)."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    broker = Mosquitto(workdir / "broker")
    auth = Secrets()
    db: Database | None = None
    procs: list[Proc] = []
    local: CloudService | None = None
    try:
        broker.start()
        db = make_database(workdir, postgres=postgres)
        http_port, ykc_port, ocpp_port, *more_http = free_ports(2 + spec.workers)
        shared = spec.workers > 1
        cloud_docs = [cloud_config(db, broker.port, port, auth, shared=shared,
                                   worker_id=f"chaos-cloud-{i}" if shared else "chaos-cloud")
                      for i, port in enumerate([http_port, *more_http], start=1)]
        cloud_doc = cloud_docs[0]
        api = f"http://127.0.0.1:{http_port}"
        ledger = workdir / "ledger.jsonl"
        ledger.unlink(missing_ok=True)
        # the seed runs in this process against the same database, before the worker starts
        # (its provisioning loop then pushes the gateway's desired state)
        local = CloudService(CloudConfig.model_validate(cloud_doc))
        draft = fleet_spec(spec, ykc_port=ykc_port, ocpp_port=ocpp_port, api=api,
                           token="pending", ledger=ledger)
        seeded = await asyncio.to_thread(seed, local, draft)
        say(f"site: broker :{broker.port}, database {db.url.split('@')[-1]}, "
            f"{len(seeded.chargers)} chargers, {len(seeded.customers)} customers seeded, "
            f"{spec.workers} cloud worker(s)")
        clouds = [Proc(doc["worker_id"].removeprefix("chaos-"), "cloud", doc, workdir,
                       doc["http"]["port"], auth.env()) for doc in cloud_docs]
        gateway = Proc("gateway", "edge", gateway_config(workdir, broker.port, ykc_port,
                                                         ocpp_port), workdir, ykc_port)
        procs += [*clouds, gateway]
        for cloud in clouds:
            await asyncio.to_thread(cloud.start)
        await asyncio.to_thread(gateway.start)
        await _provisioned(local)
        token = await _login(api, auth.admin_password)
        fleet = fleet_spec(spec, ykc_port=ykc_port, ocpp_port=ocpp_port, api=api, token=token,
                           ledger=ledger)
        chaos = Chaos(spec, broker, clouds, gateway, say)
        say(f"fleet: {spec.ykc} YKC + {spec.ocpp} OCPP 1.6 for {spec.duration:g}s; chaos at "
            + ", ".join(f"{a}@{t:.0f}s" for t, a in spec.chaos_events()))
        t0 = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(chaos.run(t0), name="chaos")
            fleet_task = tg.create_task(run_fleet(fleet, progress=Progress(
                sys.stdout, interval=10.0)), name="fleet")
        summary = fleet_task.result()
        say(f"fleet done (exit {summary.exit_code}); waiting for the orders to settle")
        for proc in procs:
            if not proc.alive():
                chaos.problems.append(f"{proc.name} is not running after the drill")
        await _settle(local, ledger, spec.settle_timeout, say)
        orders = await asyncio.to_thread(read_orders, local)
        wallets = await asyncio.to_thread(read_wallets, local, seeded)
        (workdir / "orders.jsonl").write_text("".join(
            json.dumps({"id": o.order_id, "device": o.device, "session": o.session_id,
                        "status": o.status, "energy": str(o.energy),
                        "total": str(o.total_amount), "reconciled": o.reconciled,
                        "discrepancies": list(o.discrepancies)}, default=str) + "\n"
            for o in orders))
        verdict = compare(GATEWAY, read_ledger(ledger), orders, wallets, rates=tariff_rates())
        verdict.chaos = chaos.describe()
        verdict.lost += [f"chaos step failed: {p}" for p in chaos.problems]
        verdict.seconds = time.monotonic() - started
        if keep_failed_database and not verdict.ok and db.pg_name is not None:
            keep, db = db, None  # kept for the investigation
            say(f"database kept for investigation: {keep.url}")
        return verdict
    finally:
        for proc in reversed(procs):
            proc.stop()
        broker.stop()
        if local is not None:
            local.engine.dispose()
        if db is not None:
            db.drop()
