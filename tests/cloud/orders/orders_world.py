"""A small operator for the orders tests: the real catalogue, billing and accounts on one
engine, a station with a time-of-use tariff, a YKC pile and an OCPP charger, a customer with a
card and a wallet -- and builders of session events shaped like the ones the YKC adapter and the
OCPP translator emit (see edge/adapters/ykc.py ``record()``/``card_start()`` and
bridges/ocpp/sessions.py).

Tariff (Asia/Shanghai, UTC+8): 00:00-08:00 valley 0.30 + 0.40 service, 08:00-12:00 peak
1.20 + 0.60, 12:00-24:00 flat 0.80 + 0.50 CNY/kWh.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cloud.accounts.models import LedgerEntry
from cloud.accounts.service import AccountService
from cloud.actions import BillSessionEvent
from cloud.billing.config import BillingConfig
from cloud.catalog.repo import Catalog
from cloud.orders.adapters import BillingAdapter, CatalogueAdapter, WalletsAdapter
from cloud.orders.config import OrdersConfig
from cloud.orders.models import Order
from cloud.orders.service import OrderService

TZ = ZoneInfo("Asia/Shanghai")
TARIFF_DOC: dict[str, Any] = {
    "tiers": {"valley": {"energy": "0.30", "service": "0.40"},
              "peak": {"energy": "1.20", "service": "0.60"},
              "flat": {"energy": "0.80", "service": "0.50"}},
    "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                {"start": "08:00", "end": "12:00", "tier": "peak"},
                {"start": "12:00", "end": "24:00", "tier": "flat"}],
}
_counter = itertools.count(1)


class Clock:
    """A settable ms clock for the service (``clock.now += 6000``)."""

    def __init__(self, now: int = 1_767_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def local_ms(text: str) -> int:
    """``"2025-01-15 07:30"`` in Asia/Shanghai -> ms since the epoch."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ).timestamp() * 1000)


def D(text: str) -> Decimal:
    return Decimal(text)


@dataclass
class World:
    """Everything one test needs (ids unique per test, so tests share a database safely)."""

    engine: Engine
    catalog: Catalog
    accounts: AccountService
    service: OrderService
    tenant: str
    station_id: str
    ykc_gw: str
    pile: str
    ocpp_gw: str
    cp: str
    user_id: str
    card: str
    app_token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ykc_device(self) -> str:
        return f"{self.pile}01"

    @property
    def ocpp_device(self) -> str:
        return f"{self.cp}-1"

    def another_service(self, engine: Engine | None = None, **kwargs: Any) -> OrderService:
        """A second service (e.g. a second cloud worker on its own engine)."""
        return make_service(engine or self.engine, **kwargs)

    def balance(self, user_id: str | None = None) -> Decimal:
        return self.accounts.balance(user_id or self.user_id)

    def ledger(self, key: str) -> list[LedgerEntry]:
        with Session(self.engine) as s:
            return list(s.exec(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)))

    def debits(self, user_id: str | None = None) -> list[LedgerEntry]:
        wallet = self.accounts.wallet(user_id or self.user_id)
        with Session(self.engine) as s:
            return list(s.exec(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet.id,
                                                         LedgerEntry.kind == "debit")))

    def orders(self, gw: str | None = None) -> list[Order]:
        with Session(self.engine) as s:
            query = select(Order).where(Order.gw.in_([self.ykc_gw, self.ocpp_gw]))  # type: ignore[attr-defined]
            if gw is not None:
                query = select(Order).where(Order.gw == gw)
            return list(s.exec(query))

    def order(self, gw: str, device: str, session_id: str) -> Order:
        with Session(self.engine) as s:
            return s.exec(select(Order).where(Order.gw == gw, Order.device == device,
                                              Order.session_id == session_id)).one()

    def new_user(self, topup: str | None = None) -> tuple[str, str, str]:
        """(user id, physical card number, app token) of another customer."""
        user = self.accounts.create_user(self.tenant, f"13{secrets.randbelow(10**9):09d}", "x")
        card = f"{secrets.randbelow(16**12):012X}AB00"
        self.accounts.issue_card(self.tenant, card, user_id=user.id)
        if topup is not None:
            self.accounts.credit(user.id, D(topup), key=f"topup:{user.id}")
        return user.id, card, user.app_token


def make_service(engine: Engine, **kwargs: Any) -> OrderService:
    catalog = Catalog(engine)
    accounts = AccountService(engine)
    config = kwargs.pop("config", OrdersConfig(watch_poll_interval=0.2, settle_grace=0))
    return OrderService(engine, catalogue=CatalogueAdapter(catalog),
                        biller=BillingAdapter(BillingConfig()), wallets=WalletsAdapter(accounts),
                        config=config, **kwargs)


def build_world(engine: Engine, *, mode: str = "online_billing", topup: str = "200.00",
                **service_kwargs: Any) -> World:
    uid = uuid.uuid4().hex[:8]
    catalog = Catalog(engine)
    accounts = AccountService(engine)
    tenant = f"op-{uid}"
    station = catalog.create_station(tenant_id=tenant, name=f"station {uid}", lat=31.2,
                                     lon=121.5, tz="Asia/Shanghai")
    ykc_gw, ocpp_gw = f"gw-ykc-{uid}", f"gw-ocpp-{uid}"
    pile = f"32010{secrets.randbelow(10**9):09d}"
    cp = f"CP{uid}"
    catalog.register_charger(station_id=station.id, gateway_id=ykc_gw, device_id=pile,
                             protocol="ykc", kind="dc", rated_kw="120", operating_mode=mode,
                             connector_count=2)
    catalog.register_charger(station_id=station.id, gateway_id=ocpp_gw, device_id=cp,
                             protocol="ocpp16", kind="ac", rated_kw="60", operating_mode=mode,
                             connector_count=1)
    catalog.create_tariff(station.id, dict(TARIFF_DOC), effective_from_ms=local_ms(
        "2025-01-01 00:00"))
    service = make_service(engine, **service_kwargs)
    user = accounts.create_user(tenant, f"13{secrets.randbelow(10**9):09d}", "driver")
    card = f"{secrets.randbelow(16**12):012X}CA00"
    accounts.issue_card(tenant, card, user_id=user.id)
    if topup != "0":
        accounts.credit(user.id, D(topup), key=f"topup:{user.id}")
    return World(engine=engine, catalog=catalog, accounts=accounts, service=service,
                 tenant=tenant, station_id=station.id, ykc_gw=ykc_gw, pile=pile,
                 ocpp_gw=ocpp_gw, cp=cp, user_id=user.id, card=card, app_token=user.app_token)


def event(gw: str, device: str, name: str, params: dict[str, Any], ts_ms: int,
          msg_id: str | None = None) -> BillSessionEvent:
    """A BillSessionEvent as the rule engine hands it to the billing lane."""
    msg = msg_id or f"01TEST{next(_counter):020d}"
    return BillSessionEvent(rule="billing", key=f"{msg}:billing:0", gw=gw, product="connector",
                            device=device, name=name, params=params, msg_id=msg, ts_ms=ts_ms)


# -- YKC: session 07:30-08:30 local, crossing valley -> peak at 08:00 ---------------------------

YKC_START, YKC_END = "2025-01-15 07:30", "2025-01-15 08:30"


def ykc_record_params(w: World, trade: str, **overrides: Any) -> dict[str, Any]:
    """The transactionRecord of the YKC session, agreeing with the platform's settlement."""
    params: dict[str, Any] = {
        "sessionId": trade, "startedAt": local_ms(YKC_START), "endedAt": local_ms(YKC_END),
        "meterStart": D("1000.0000"), "meterStop": D("1051.2345"), "energy": D("51.2345"),
        "lossEnergy": D("0.0000"), "amount": D("69.8700"),
        "tiers": [
            {"tier": "tip", "price": D("0.00000"), "energy": D("0.0000"),
             "lossEnergy": D("0.0000"), "amount": D("0.0000")},
            {"tier": "peak", "price": D("1.80000"), "energy": D("30.9228"),
             "lossEnergy": D("0.0000"), "amount": D("55.6600")},
            {"tier": "flat", "price": D("1.30000"), "energy": D("0.0000"),
             "lossEnergy": D("0.0000"), "amount": D("0.0000")},
            {"tier": "valley", "price": D("0.70000"), "energy": D("20.3117"),
             "lossEnergy": D("0.0000"), "amount": D("14.2100")},
        ],
        "tradeType": "card", "stopReasonCode": 0x40, "idTag": w.card,
    }
    params.update(overrides)
    return params


def ykc_session(w: World, trade: str | None = None, *, id_tag: str | None = None,
                id_type: str = "card", record: dict[str, Any] | None = None,
                started: bool = True) -> list[BillSessionEvent]:
    """The YKC adapter's events for one session, in the order it emits them: sessionStarted
    (card start), realtime samples (session energy only), transactionRecord, sessionEnded."""
    trade = trade or secrets.token_hex(16).upper()
    dev = w.ykc_device
    rec = record or ykc_record_params(w, trade)
    out = []
    if started:
        out.append(event(w.ykc_gw, dev, "sessionStarted", {
            "sessionId": trade, "seq": 0, "idTag": id_tag or w.card, "idType": id_type},
            local_ms(YKC_START)))
    out += [
        event(w.ykc_gw, dev, "sample", {"sessionId": trade, "energy": D("10.1234"),
                                        "status": "charging"}, local_ms("2025-01-15 07:45")),
        event(w.ykc_gw, dev, "sample", {"sessionId": trade, "energy": D("30.5000"),
                                        "status": "charging"}, local_ms("2025-01-15 08:15")),
        event(w.ykc_gw, dev, "transactionRecord", rec, rec["endedAt"] or local_ms(YKC_END)),
        event(w.ykc_gw, dev, "sessionEnded", {
            "sessionId": trade, "seq": 1, "energy": rec["energy"],
            "meterStart": rec["meterStart"], "meterStop": rec["meterStop"],
            "reason": "ykc stop reason 0x40", "startedAt": rec["startedAt"],
            "endedAt": rec["endedAt"]}, local_ms(YKC_END)),
    ]
    return out


# -- OCPP 1.6: session 11:00-13:00 local, crossing peak -> flat at 12:00 ------------------------

OCPP_START, OCPP_END = "2025-01-15 11:00", "2025-01-15 13:00"


def ocpp_session(w: World, tx: str | None = None, *, id_tag: str | None = None,
                 meter_stop: str = "2045.500") -> list[BillSessionEvent]:
    """The OCPP translator's events for a 1.6 session: StartTransaction (sessionStarted +
    a sample of the start register), two MeterValues (sample + sessionUpdated each),
    StopTransaction (sessionEnded + the final prop without a session)."""
    tx = tx or str(next(_counter) + 1000)
    dev = w.ocpp_device
    start, end = local_ms(OCPP_START), local_ms(OCPP_END)
    t1, t2 = local_ms("2025-01-15 11:40"), local_ms("2025-01-15 12:20")
    tag = id_tag or w.app_token
    return [
        event(w.ocpp_gw, dev, "sessionStarted", {"sessionId": tx, "seq": 0, "idTag": tag,
                                                 "idType": "unknown",
                                                 "meterStart": D("2000.000")}, start),
        event(w.ocpp_gw, dev, "sample", {"sessionId": tx, "meterEnergy": D("2000.000"),
                                         "energy": D("0")}, start),
        event(w.ocpp_gw, dev, "sample", {"sessionId": tx, "meterEnergy": D("2012.000"),
                                         "power": 18.0}, t1),
        event(w.ocpp_gw, dev, "sessionUpdated", {"sessionId": tx, "seq": 1,
                                                 "meter": D("2012.000"),
                                                 "energy": D("12.000")}, t1),
        event(w.ocpp_gw, dev, "sample", {"sessionId": tx, "meterEnergy": D("2030.000")}, t2),
        event(w.ocpp_gw, dev, "sessionUpdated", {"sessionId": tx, "seq": 2,
                                                 "meter": D("2030.000"),
                                                 "energy": D("30.000")}, t2),
        event(w.ocpp_gw, dev, "sessionEnded", {
            "sessionId": tx, "seq": 3, "energy": D(meter_stop) - D("2000.000"),
            "meterStart": D("2000.000"), "meterStop": D(meter_stop), "reason": "Local",
            "idTag": tag, "startedAt": start, "endedAt": end}, end),
        event(w.ocpp_gw, dev, "sample", {"sessionId": "", "meterEnergy": D(meter_stop)}, end),
    ]
