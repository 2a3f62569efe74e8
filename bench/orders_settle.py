"""Orders settled per second through the full path: BillSessionEvent batches -> OrderService
(upsert, row lock, history, samples, settlement with the tariff in force at the start,
reconciliation with the pile's record) -> wallet debit (AccountService ledger) -> settled.

python -m bench.orders_settle [--db sqlite|postgresql|both] [--sessions 1000] [--batch 50]
                              [--workers 1] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]

Each session is YKC-shaped (what edge/adapters/ykc.py emits): sessionStarted (card), two
realtime samples, transactionRecord, sessionEnded -- 5 events, 07:30-08:30 local time across
the valley/peak boundary. ``--workers N`` runs N OrderService instances, each on its own engine,
on interleaved slices of the batches (cloud workers behind a shared subscription). PostgreSQL
runs in a fresh database that is dropped afterwards; SQLite in a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from bench.pgdb import scratch_database
from cloud.accounts.models import LedgerEntry
from cloud.accounts.service import AccountService
from cloud.actions import BillSessionEvent
from cloud.billing.config import BillingConfig
from cloud.catalog.repo import Catalog
from cloud.orders.adapters import BillingAdapter, CatalogueAdapter, WalletsAdapter
from cloud.orders.config import OrdersConfig
from cloud.orders.models import Order
from cloud.orders.service import OrderService
from cloud.registry import make_engine

TZ = ZoneInfo("Asia/Shanghai")
TARIFF = {
    "tiers": {"valley": {"energy": "0.30", "service": "0.40"},
              "peak": {"energy": "1.20", "service": "0.60"},
              "flat": {"energy": "0.80", "service": "0.50"}},
    "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                {"start": "08:00", "end": "12:00", "tier": "peak"},
                {"start": "12:00", "end": "24:00", "tier": "flat"}],
}
PILES, USERS = 50, 100


def local_ms(day: int, clock: str) -> int:
    hour, minute = (int(x) for x in clock.split(":"))
    return int(datetime(2025, 1, day, hour, minute, tzinfo=TZ).timestamp() * 1000)


@contextmanager
def database(kind: str, pg_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'orders.db'}"
        return
    with scratch_database(pg_url, "vm_bench_orders") as url:
        yield url


def setup(url: str) -> tuple[str, list[str], list[str]]:
    """A station, PILES YKC piles (2 guns), USERS customers with a card and money."""
    engine = make_engine(url)
    catalog, accounts = Catalog(engine), AccountService(engine)
    station = catalog.create_station(tenant_id="bench", name="bench", lat=31.2, lon=121.5)
    piles = []
    for i in range(PILES):
        pile = f"3201{i:010d}"
        catalog.register_charger(station_id=station.id, gateway_id="gw-bench", device_id=pile,
                                 protocol="ykc", kind="dc", rated_kw="120", connector_count=2)
        piles.append(pile)
    catalog.create_tariff(station.id, dict(TARIFF), effective_from_ms=local_ms(1, "00:00"))
    cards = []
    for i in range(USERS):
        user = accounts.create_user("bench", f"139{i:08d}", f"user {i}")
        card = f"{i + 1:012X}CA00"
        accounts.issue_card("bench", card, user_id=user.id)
        accounts.credit(user.id, Decimal("1000000.00"), key=f"topup:{user.id}")
        cards.append(card)
    engine.dispose()
    return station.id, piles, cards


def session_events(n: int, piles: list[str], cards: list[str]) -> list[BillSessionEvent]:
    """n YKC sessions, 5 events each, in the order the adapter emits them."""
    out: list[BillSessionEvent] = []
    seq = 0

    def ev(device: str, name: str, params: dict[str, Any], ts: int) -> BillSessionEvent:
        nonlocal seq
        seq += 1
        msg = f"01BENCH{seq:019d}"
        return BillSessionEvent(rule="billing", key=f"{msg}:billing:0", gw="gw-bench",
                                product="connector", device=device, name=name, params=params,
                                msg_id=msg, ts_ms=ts)

    for i in range(n):
        device = f"{piles[i % len(piles)]}{1 + (i // len(piles)) % 2:02d}"
        card = cards[i % len(cards)]
        trade = secrets.token_hex(16).upper()
        day = 2 + i % 27
        start, end = local_ms(day, "07:30"), local_ms(day, "08:30")
        record = {
            "sessionId": trade, "startedAt": start, "endedAt": end,
            "meterStart": Decimal("1000.0000"), "meterStop": Decimal("1051.2345"),
            "energy": Decimal("51.2345"), "amount": Decimal("69.8700"),
            "tiers": [{"tier": "peak", "price": Decimal("1.80000"), "energy": Decimal("30.9228"),
                       "amount": Decimal("55.6600")},
                      {"tier": "valley", "price": Decimal("0.70000"),
                       "energy": Decimal("20.3117"), "amount": Decimal("14.2100")}],
            "tradeType": "card", "idTag": card,
        }
        out += [
            ev(device, "sessionStarted", {"sessionId": trade, "seq": 0, "idTag": card,
                                          "idType": "card"}, start),
            ev(device, "sample", {"sessionId": trade, "energy": Decimal("10.1234")},
               local_ms(day, "07:45")),
            ev(device, "sample", {"sessionId": trade, "energy": Decimal("30.5000")},
               local_ms(day, "08:15")),
            ev(device, "transactionRecord", record, end),
            ev(device, "sessionEnded", {"sessionId": trade, "seq": 1, "energy": record["energy"],
                                        "meterStart": record["meterStart"],
                                        "meterStop": record["meterStop"], "startedAt": start,
                                        "endedAt": end}, end),
        ]
    return out


def service_for(url: str) -> OrderService:
    engine = make_engine(url)
    return OrderService(engine, catalogue=CatalogueAdapter(Catalog(engine)),
                        biller=BillingAdapter(BillingConfig()),
                        wallets=WalletsAdapter(AccountService(engine)),
                        config=OrdersConfig(settle_grace=0))


async def run(kind: str, url: str, sessions: int, batch: int, workers: int) -> dict[str, Any]:
    _, piles, cards = setup(url)
    events = session_events(sessions, piles, cards)
    batches = [events[i:i + batch] for i in range(0, len(events), batch)]
    services = [service_for(url) for _ in range(workers)]

    async def worker(index: int) -> None:
        for chunk in batches[index::workers]:
            await services[index].handle(chunk)

    t0, cpu0 = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as tg:
        for i in range(workers):
            tg.create_task(worker(i), name=f"orders-{i}")
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    engine = services[0].engine
    with Session(engine) as s:
        settled = s.exec(select(func.count()).select_from(Order)
                         .where(Order.status == "settled", Order.paid_amount > 0)).one()
        debits = s.exec(select(func.count()).select_from(LedgerEntry)
                        .where(LedgerEntry.kind == "debit")).one()
    for service in services:
        service.engine.dispose()
    if settled != sessions or debits != sessions:
        raise SystemExit(f"{kind}: {settled} settled orders and {debits} debits for "
                         f"{sessions} sessions")
    return {"db": kind, "workers": workers, "sessions": sessions, "events": len(events),
            "seconds": round(elapsed, 2), "orders_per_s": round(sessions / elapsed, 1),
            "events_per_s": round(len(events) / elapsed, 1),
            # CPU of this process (the service, SQLAlchemy, the driver; not the PostgreSQL
            # server): what one core of cloud worker sustains, less sensitive to a busy machine
            "cpu_ms_per_order": round(cpu * 1000 / sessions, 1),
            "orders_per_cpu_s": round(sessions / cpu, 1) if cpu else None,
            "load": round(os.getloadavg()[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        with database(kind, args.pg_url) as url:
            result = asyncio.run(run(kind, url, args.sessions, args.batch, args.workers))
        print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
