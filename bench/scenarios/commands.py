"""``commands``: the command round trip API -> gateway -> pile -> gateway -> API.

Each round is ``POST /api/v1/commands/start?wait=true`` for a seeded customer on a connector,
then ``POST /api/v1/commands/stop?wait=true`` on it, as the seeded operator admin, one round per
pile at a time with ``--concurrency`` piles in parallel; the HTTP request's duration is the
round trip (the API answers when the pile's reply is back). Measured first at idle, then under
load: the ingest publisher of :mod:`bench.pipeline` (its own process) sending ``--load-rate``
connector property messages/s through the same broker to the same cloud worker.
Check: every command succeeded and every session ended as an order in the cloud.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

from bench.pipeline import Publisher
from bench.procs import cpu_seconds
from bench.scenarios.report import Report, machine, percentile
from bench.scenarios.site import Site, pids, running_site
from cloud.orders.queries import OrderQuery

NAME = "commands"
HELP = "command round trip API -> charger -> API, at idle and under ingest load"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--piles", type=int, default=None, help="simulated YKC piles (20)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="start+stop rounds per pile and phase (5)")
    parser.add_argument("--concurrency", type=int, default=None, help="piles in parallel (10)")
    parser.add_argument("--load-rate", type=float, default=None,
                        help="ingest messages/s during the loaded phase (50; keep it below what "
                             "the worker sustains, see docs/benchmarks.md, or replies queue "
                             "behind the backlog and commands time out)")


def _sizes(args: argparse.Namespace) -> tuple[int, int, int, float]:
    small = (4, 2, 4, 50.0)
    real = (20, 5, 10, 50.0)
    base = small if args.small else real
    return (args.piles or base[0], args.rounds or base[1], args.concurrency or base[2],
            args.load_rate if args.load_rate is not None else base[3])


class _Phase:
    def __init__(self) -> None:
        self.start_ms: list[float] = []
        self.stop_ms: list[float] = []
        self.errors: list[str] = []
        self.sessions: list[str] = []


async def _round(site: Site, index: int, user: str, rounds: int, phase: _Phase,
                 sem: asyncio.Semaphore) -> None:
    code = site.seed.chargers[index].connectors[0].code
    for _ in range(rounds):
        async with sem:
            t0 = time.perf_counter()
            reply = await site.post("/api/v1/commands/start", {"code": code, "userId": user},
                                    key=uuid.uuid4().hex)
            elapsed = (time.perf_counter() - t0) * 1000
            body = reply.json()
            if reply.status_code != 200 or body.get("state") != "succeeded" \
                    or not (body.get("reply") or {}).get("accepted"):
                phase.errors.append(f"start {code}: {reply.status_code} {reply.text[:200]}")
                return
            phase.start_ms.append(elapsed)
            phase.sessions.append(str(body["reply"].get("sessionId")))
            t0 = time.perf_counter()
            reply = await site.post("/api/v1/commands/stop", {"code": code},
                                    key=uuid.uuid4().hex)
            elapsed = (time.perf_counter() - t0) * 1000
            if reply.status_code != 200 or reply.json().get("state") != "succeeded":
                phase.errors.append(f"stop {code}: {reply.status_code} {reply.text[:200]}")
                return
            phase.stop_ms.append(elapsed)
        # the pile reports the stop (0x3B) and the order closes before the next start
        pile = site.piles[index]
        deadline = time.monotonic() + 30
        while pile.session(1) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def _phase(site: Site, users: list[str], rounds: int, concurrency: int) -> _Phase:
    phase = _Phase()
    sem = asyncio.Semaphore(concurrency)
    await asyncio.gather(*(_round(site, i, users[i], rounds, phase, sem)
                           for i in range(len(site.piles))))
    return phase


async def _orders_ended(site: Site, sessions: list[str], timeout: float) -> list[str]:
    """Sessions without an ended order after ``timeout`` s."""
    missing = list(sessions)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        still = []
        for session in missing:
            page = await asyncio.to_thread(site.cloud.orders.list_orders, None,
                                           OrderQuery(session_id=session, limit=1))
            if not page.items or page.items[0].ended_ms is None:
                still.append(session)
        missing = still
        if missing:
            await asyncio.sleep(0.5)
    return missing


async def run(args: argparse.Namespace, workdir: Path) -> Report:
    piles, rounds, concurrency, load_rate = _sizes(args)
    report = Report(NAME)
    report.figures.update(machine())
    report.figures.update(piles=piles, rounds_per_pile=rounds, concurrency=concurrency)
    async with running_site(workdir, piles=piles, customer_count=2 * piles) as site:
        users = [c.user_id for c in site.seed.customers]
        procs = pids(site)
        cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
        t0 = time.monotonic()
        idle = await _phase(site, users[:piles], rounds, concurrency)
        idle_s = time.monotonic() - t0
        cpu1 = {k: cpu_seconds(p) for k, p in procs.items()}
        publisher = Publisher(site.broker.port, ["gwA", "gwB"], rate=load_rate,
                              duration=3600, devices=100, samples=5)
        try:
            await publisher.ready()
            await asyncio.sleep(2.0)  # the load is flowing
            t1 = time.monotonic()
            loaded = await _phase(site, users[piles:], rounds, concurrency)
            loaded_s = time.monotonic() - t1
            cpu2 = {k: cpu_seconds(p) for k, p in procs.items()}
        finally:
            publisher.stop()
        lost = await _orders_ended(site, idle.sessions + loaded.sessions, 60)
    for label, phase, seconds in (("idle", idle, idle_s), ("load", loaded, loaded_s)):
        report.figures[f"{label}_round_trips"] = len(phase.start_ms) + len(phase.stop_ms)
        report.figures[f"{label}_start_p50_ms"] = round(percentile(phase.start_ms, 50), 1)
        report.figures[f"{label}_start_p99_ms"] = round(percentile(phase.start_ms, 99), 1)
        report.figures[f"{label}_stop_p50_ms"] = round(percentile(phase.stop_ms, 50), 1)
        report.figures[f"{label}_stop_p99_ms"] = round(percentile(phase.stop_ms, 99), 1)
        report.figures[f"{label}_seconds"] = round(seconds, 1)
        report.check(not phase.errors, f"{label}: {len(phase.errors)} commands failed: "
                                       f"{'; '.join(phase.errors[:3])}")
        report.check(len(phase.start_ms) == piles * rounds,
                     f"{label}: {len(phase.start_ms)} of {piles * rounds} starts succeeded")
    report.figures["load_rate_msg_s"] = load_rate
    for name, before in cpu0.items():
        report.figures[f"cpu_pct_idle_{name}"] = round(
            (cpu1[name] - before) / max(idle_s, 1e-9) * 100, 1)
        report.figures[f"cpu_pct_load_{name}"] = round(
            (cpu2[name] - cpu1[name]) / max(loaded_s, 1e-9) * 100, 1)
    report.figures["sessions_without_order"] = len(lost)
    report.check(not lost, f"{len(lost)} sessions have no ended order: {lost[:3]}")
    return report
