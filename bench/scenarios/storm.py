"""``storm``: a reconnect storm with sessions open, and no transaction record lost.

All ``--piles`` piles log in and start charging (``POST /api/v1/commands/start``). Then the
gateway process is killed with SIGKILL (every pile socket drops at once, the gateway's memory
is gone; only its outbox file survives) and, while it is down, half of the sessions are stopped
at the piles (their transaction records, 0x3B, wait on the piles). The gateway is started again
on the same port; measured: the time from the restart until every pile is logged in again with
its billing model. Then the other half is stopped. Check: every session in the piles' ledgers
ended as an order in the cloud with its energy (lost records = 0), and every record was
confirmed (0x40) to its pile.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

from bench.scenarios.errors import ScenarioError
from bench.scenarios.report import Report, machine
from bench.scenarios.site import Site, running_site
from cloud.orders.queries import OrderQuery

NAME = "storm"
HELP = "reconnect storm: gateway SIGKILLed with sessions open; recovery time, records lost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--piles", type=int, default=None, help="simulated YKC piles (500)")
    parser.add_argument("--outage", type=float, default=None,
                        help="seconds the gateway stays down (5)")
    parser.add_argument("--settle-timeout", type=float, default=None,
                        help="seconds to wait for every record to reach the cloud (180)")


async def _start_all(site: Site, concurrency: int) -> list[str]:
    sem = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    users = [c.user_id for c in site.seed.customers]

    async def one(index: int) -> None:
        code = site.seed.chargers[index].connectors[0].code
        async with sem:
            reply = await site.post("/api/v1/commands/start",
                                    {"code": code, "userId": users[index]},
                                    key=uuid.uuid4().hex)
        body = reply.json()
        if reply.status_code != 200 or not (body.get("reply") or {}).get("accepted"):
            errors.append(f"start {code}: {reply.status_code} {reply.text[:200]}")

    await asyncio.gather(*(one(i) for i in range(len(site.piles))))
    return errors


async def _missing_orders(site: Site, trades: list[str]) -> list[str]:
    def check() -> list[str]:
        missing = []
        for trade in trades:
            page = site.cloud.orders.list_orders(None, OrderQuery(session_id=trade, limit=1))
            if not page.items or page.items[0].ended_ms is None \
                    or page.items[0].energy is None:
                missing.append(trade)
        return missing

    return await asyncio.to_thread(check)


async def run(args: argparse.Namespace, workdir: Path) -> Report:
    piles = args.piles or (20 if args.small else 500)
    outage = args.outage if args.outage is not None else (2.0 if args.small else 5.0)
    settle = args.settle_timeout or (60.0 if args.small else 180.0)
    report = Report(NAME)
    report.figures.update(machine())
    report.figures.update(piles=piles, outage_s=outage)
    async with running_site(workdir, piles=piles, realtime_interval=5.0,
                            connect_timeout=max(120.0, piles / 20)) as site:
        errors = await _start_all(site, concurrency=20)
        report.check(not errors, f"{len(errors)} starts failed: {'; '.join(errors[:3])}")
        charging = [p for p in site.piles if p.session(1) is not None]
        report.figures["sessions_open"] = len(charging)
        await asyncio.sleep(2.0)  # some energy on every session

        t_kill = time.monotonic()
        await asyncio.to_thread(site.kill_gateway)
        deadline = time.monotonic() + 30
        while site.logged_in() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        report.figures["piles_dropped"] = len(site.piles) - site.logged_in()
        report.figures["drop_detected_s"] = round(time.monotonic() - t_kill, 2)
        offline_stopped = charging[: len(charging) // 2]
        for pile in offline_stopped:
            pile.stop_charging(1)
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - t_kill)))

        t_restart = time.monotonic()
        await asyncio.to_thread(site.start_gateway)
        listening = time.monotonic() - t_restart
        back = await site.all_logged_in(max(120.0, piles / 10))
        recovered = time.monotonic() - t_restart
        report.figures["gateway_listening_s"] = round(listening, 2)
        report.figures["all_back_s"] = round(recovered, 2)
        report.figures["piles_back"] = site.logged_in()
        report.check(back, f"only {site.logged_in()} of {piles} piles back after "
                           f"{recovered:.0f} s")
        if not back:
            not_back = [p.pile_code for p in site.piles if not p.logged_in.is_set()]
            report.figures["not_back_sample"] = ", ".join(not_back[:5])

        for pile in charging[len(charging) // 2:]:
            pile.stop_charging(1)
        entries = [e for pile in site.piles for e in pile.ledger if e.ended]
        trades = [e.trade_no for e in entries]
        report.figures["sessions_ended_at_piles"] = len(trades)
        t_settle = time.monotonic()
        missing = await _missing_orders(site, trades)
        while (missing or any(p.unconfirmed for p in site.piles)) \
                and time.monotonic() - t_settle < settle:
            await asyncio.sleep(1.0)
            missing = await _missing_orders(site, trades)
        report.figures["records_settled_s"] = round(time.monotonic() - t_settle, 1)
        unconfirmed = sum(len(p.unconfirmed) for p in site.piles)
        report.figures["records_lost"] = len(missing)
        report.figures["records_unconfirmed_at_piles"] = unconfirmed
        report.figures["record_resends"] = sum(max(0, e.record_sends - 1) for e in entries)
        report.check(not missing, f"{len(missing)} transaction records lost: {missing[:3]}")
        report.check(unconfirmed == 0, f"{unconfirmed} records never confirmed to the pile")
        if not trades:
            raise ScenarioError("no session ended at the piles: nothing was measured")
    return report
