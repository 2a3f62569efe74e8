"""OrderService end to end on SQLite and PostgreSQL: YKC- and OCPP-shaped sessions become one
settled order with the hand-computed per-tier amounts, paid once from the wallet, whatever the
redeliveries, duplicates and order of arrival."""

from __future__ import annotations

import asyncio
import contextlib
import random
from decimal import Decimal

from sqlmodel import Session, select

from cloud.orders.config import OrdersConfig
from cloud.orders.models import OrderEvent, OrderReject, OrderTier
from cloud.orders.status import OrderStatus
from tests.cloud.orders.orders_world import (
    Clock,
    D,
    World,
    build_world,
    event,
    local_ms,
    ocpp_session,
    ykc_record_params,
    ykc_session,
)

# YKC session 07:30-08:30 (valley until 08:00, then peak), meter 1000.0000 -> 1051.2345:
#   07:30-07:45  1000.0000 -> 1010.1234   10.1234 kWh, all valley
#   07:45-08:15  1010.1234 -> 1030.5000   20.3766 kWh, 15 min valley / 15 min peak:
#                                         10.1883 valley + 10.1883 peak
#   08:15-08:30  1030.5000 -> 1051.2345   20.7345 kWh, all peak
#   valley 20.3117 kWh: 20.3117 x 0.30 = 6.09351 -> 6.09; x 0.40 = 8.12468 -> 8.12  (14.21)
#   peak   30.9228 kWh: 30.9228 x 1.20 = 37.10736 -> 37.11; x 0.60 = 18.55368 -> 18.55 (55.66)
#   electricity 6.09 + 37.11 = 43.20, service 8.12 + 18.55 = 26.67, total 69.87
YKC_TIERS = {"valley": (D("20.3117"), D("6.09"), D("8.12")),
             "peak": (D("30.9228"), D("37.11"), D("18.55")),
             "flat": (D("0.0000"), D("0.00"), D("0.00"))}
YKC_TOTAL = D("69.87")

# OCPP session 11:00-13:00 (peak until 12:00, then flat), meter 2000.000 -> 2045.500:
#   11:00-11:40  2000 -> 2012   12 kWh peak
#   11:40-12:20  2012 -> 2030   18 kWh, 20 min peak / 20 min flat: 9 + 9
#   12:20-13:00  2030 -> 2045.5 15.5 kWh flat
#   peak 21 kWh: x 1.20 = 25.20, x 0.60 = 12.60 (37.80); flat 24.5 kWh: x 0.80 = 19.60,
#   x 0.50 = 12.25 (31.85); electricity 44.80, service 24.85, total 69.65
OCPP_TOTAL = D("69.65")


def tiers_of(w: World, order_id: int) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    with Session(w.engine) as s:
        rows = s.exec(select(OrderTier).where(OrderTier.order_id == order_id)).all()
    return {r.tier: (r.energy, r.electricity_amount, r.service_amount) for r in rows}


def test_ykc_session_becomes_one_settled_order_with_tier_amounts(world: World) -> None:
    w = world
    events = ykc_session(w)
    w.service.process(events)
    (order,) = w.orders()
    assert order.status == OrderStatus.SETTLED
    assert order.start_method == "card"
    assert order.user_id == w.user_id
    assert order.tenant_id == w.tenant and order.station_id == w.station_id
    assert order.energy == D("51.2345")
    assert tiers_of(w, order.id) == YKC_TIERS
    assert (order.electricity_amount, order.service_amount, order.total_amount) == \
        (D("43.20"), D("26.67"), YKC_TOTAL)
    assert order.paid_amount == YKC_TOTAL and order.owed_amount == 0
    assert order.reconciled is True and order.discrepancies == []
    assert order.started_ms == local_ms("2025-01-15 07:30")
    assert order.charger_record is not None
    assert w.balance() == D("200.00") - YKC_TOTAL
    (entry,) = w.ledger(f"order:{order.id}")
    assert entry.amount == -YKC_TOTAL
    with Session(w.engine) as s:
        history = s.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)
                         .order_by(OrderEvent.id)).all()
    names = [h.name for h in history]
    assert names[:1] == ["sessionStarted"] and "transactionRecord" in names
    payments = [h for h in history if h.name == "payment"]
    assert [(p.from_status, p.to_status) for p in payments] == [("finished", "settled")]


def test_ocpp_session_with_app_token_settles(world: World) -> None:
    w = world
    w.service.process(ocpp_session(w, "41"))
    order = w.order(w.ocpp_gw, w.ocpp_device, "41")
    assert order.status == OrderStatus.SETTLED
    assert order.user_id == w.user_id  # the 1.6 idTag ("unknown" type) is the app token
    assert order.start_method is None or order.start_method == "app" or \
        order.id_type == "unknown"
    assert tiers_of(w, order.id) == {"peak": (D("21.0000"), D("25.20"), D("12.60")),
                                     "flat": (D("24.5000"), D("19.60"), D("12.25")),
                                     "valley": (D("0.0000"), D("0.00"), D("0.00"))}
    assert order.total_amount == OCPP_TOTAL
    assert order.reconciled is None  # OCPP has no charger record
    assert w.balance() == D("200.00") - OCPP_TOTAL


def test_redelivery_resent_record_duplicate_stop_and_shuffles_make_one_debit(
        world: World) -> None:
    w = world
    trade = "A" * 32
    events = ykc_session(w, trade)
    record = next(e for e in events if e.name == "transactionRecord")
    ended = next(e for e in events if e.name == "sessionEnded")
    assert w.service.process(events)
    (settled,) = w.orders()
    assert w.service.process(events) == set()  # the whole batch redelivered (same ids)
    # a re-sent record (the pile sends 0x3B again: same content, new message)
    assert w.service.process([event(w.ykc_gw, w.ykc_device, "transactionRecord",
                                    record.params, record.ts_ms)]) == set()
    # a late duplicate stop with a new message id
    assert w.service.process([event(w.ykc_gw, w.ykc_device, "sessionEnded", ended.params,
                                    ended.ts_ms + 5000)]) == set()
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    w.service.process(shuffled)
    (order,) = w.orders()
    assert order.status == OrderStatus.SETTLED
    assert order.total_amount == YKC_TOTAL and order.paid_amount == YKC_TOTAL
    assert order.version == settled.version and order.anomalies == settled.anomalies
    assert len(w.debits()) == 1
    assert w.balance() == D("200.00") - YKC_TOTAL
    # a stop that differs from the first is kept as an anomaly, the bill stays
    other = dict(ended.params, meterStop=D("1060.0000"))
    w.service.process([event(w.ykc_gw, w.ykc_device, "sessionEnded", other, ended.ts_ms)])
    (order,) = w.orders()
    assert [a["code"] for a in order.anomalies] == ["stop_conflict"]
    assert order.total_amount == YKC_TOTAL and len(w.debits()) == 1


def test_out_of_order_delivery_gives_the_same_bill(engine) -> None:  # type: ignore[no-untyped-def]
    """With the settle grace, samples that arrive after the end (another worker) are still
    part of the settlement: every arrival order gives the same per-tier bill."""
    for seed in range(4):
        clock = Clock()
        w = build_world(engine, config=OrdersConfig(settle_grace=5.0), clock=clock)
        events = ykc_session(w)
        random.Random(seed).shuffle(events)
        w.service.process(events)
        (order,) = w.orders()
        assert order.status == OrderStatus.FINISHED and order.billed_ms is None
        assert order.status_reason is not None and order.status_reason.startswith("settling")
        clock.now += 4_000
        assert order.id not in w.service.settle_due()
        clock.now += 1_000
        assert order.id in w.service.settle_due()
        (order,) = w.orders()
        assert order.status == OrderStatus.SETTLED, (seed, order.status_reason)
        assert tiers_of(w, order.id) == YKC_TIERS, seed
        assert order.total_amount == YKC_TOTAL and order.reconciled is True
        assert len(w.debits()) == 1
        assert order.id not in w.service.settle_due() | w.service.sweep()


def test_a_late_sample_that_bills_the_order_pays_it_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    """The end's grace has passed and a straggling sample arrives before the settle loop runs:
    the sample is what bills the order, and the wallet is debited then, not at the next sweep
    (a minute later: found by the charging end-to-end test, which waited 55 s for it)."""
    clock = Clock()
    w = build_world(engine, config=OrdersConfig(settle_grace=5.0), clock=clock)
    events = ykc_session(w)
    late = events.pop(2)  # the 08:15 sample arrives after the end
    assert late.name == "sample"
    w.service.process(events)
    (order,) = w.orders()
    assert order.status == OrderStatus.FINISHED and order.billed_ms is None
    clock.now += 6_000  # past the grace; the settle loop has not run yet
    w.service.process([late])
    (order,) = w.orders()
    assert order.billed_ms is not None
    assert order.status == OrderStatus.SETTLED, order.status_reason
    assert order.total_amount == YKC_TOTAL and len(w.debits()) == 1
    assert order.id not in w.service.settle_due() | w.service.sweep()
    assert len(w.debits()) == 1


def test_end_before_start_events_then_late_start_pays_an_app_session(world: World) -> None:
    """YKC app start: the record has no card; when it arrives before the sessionStarted (other
    worker, out of order) nobody can pay yet -> unpaid; the late start names the user -> paid."""
    w = world
    trade = "B" * 32
    record = ykc_record_params(w, trade, tradeType="app")
    del record["idTag"]
    events = ykc_session(w, trade, id_tag=w.app_token, id_type="app", record=record)
    start, rest = events[0], events[1:]
    w.service.process(rest)
    order = w.order(w.ykc_gw, w.ykc_device, trade)
    assert order.status == OrderStatus.UNPAID
    assert order.status_reason is not None and order.status_reason.startswith("no_account")
    assert order.owed_amount == YKC_TOTAL
    w.service.process([start])
    order = w.order(w.ykc_gw, w.ykc_device, trade)
    assert order.status == OrderStatus.SETTLED, order.status_reason
    assert order.start_method == "app" and order.user_id == w.user_id
    assert order.owed_amount == 0 and order.paid_amount == YKC_TOTAL
    assert len(w.debits()) == 1


def test_offline_session_is_repaired_from_the_charger_record(world: World) -> None:
    """A pile that charged offline sends only its record (and the adapter's sessionEnded) when
    it is back: start time, meter start, card and method come from the record."""
    w = world
    trade = "C" * 32
    record = ykc_record_params(w, trade, tradeType="offline_card")
    w.service.process(ykc_session(w, trade, record=record, started=False))
    order = w.order(w.ykc_gw, w.ykc_device, trade)
    assert order.status == OrderStatus.SETTLED
    assert order.start_method == "offline" and order.offline
    assert order.id_tag == w.card and order.user_id == w.user_id
    assert order.meter_start == D("1000.0000")
    assert order.started_ms == local_ms("2025-01-15 07:30")
    assert order.total_amount == YKC_TOTAL
    # the replayed offline session (the pile resends all of it) changes nothing
    assert w.service.process(ykc_session(w, trade, record=record, started=False)) == set()
    assert len(w.debits()) == 1
    assert w.order(w.ykc_gw, w.ykc_device, trade).version == order.version


def test_ocpp_offline_zero_baseline_is_repaired(world: World) -> None:
    """An OCPP charger that started offline sent meterStart 0 (a placeholder); the settlement
    drops the impossible 0 -> 2000 kWh jump and bills from the first real register."""
    w = world
    events = ocpp_session(w, "77")
    start = events[0]
    start.params["meterStart"] = D("0")
    start.params["offline"] = True
    ended = next(e for e in events if e.name == "sessionEnded")
    ended.params["meterStart"] = D("0")
    ended.params["energy"] = D("2045.500")
    w.service.process(events)
    order = w.order(w.ocpp_gw, w.ocpp_device, "77")
    assert order.status == OrderStatus.SETTLED, order.status_reason
    assert order.energy == D("45.5000")
    assert order.total_amount == OCPP_TOTAL
    assert order.start_method == "offline"
    assert any(a["code"] in ("meter_jump", "meter_reset") for a in order.anomalies)


def test_disagreeing_ykc_record_is_flagged_and_disputed_but_billed(world: World) -> None:
    w = world
    trade = "D" * 32
    record = ykc_record_params(w, trade, amount=D("72.0000"))
    record["tiers"][1] = {"tier": "peak", "price": D("1.80000"), "energy": D("30.9228"),
                          "amount": D("57.7900")}
    w.service.process(ykc_session(w, trade, record=record))
    order = w.order(w.ykc_gw, w.ykc_device, trade)
    assert order.reconciled is False
    fields = {(d["field"], d["tier"]) for d in order.discrepancies}
    assert ("amount", None) in fields and ("tier.amount", "peak") in fields
    assert order.status == OrderStatus.DISPUTED
    assert order.total_amount == YKC_TOTAL and order.paid_amount == YKC_TOTAL  # server's bill


def test_record_after_settlement_is_reconciled_late(world: World) -> None:
    w = world
    trade = "E" * 32
    events = ykc_session(w, trade)
    record = next(e for e in events if e.name == "transactionRecord")
    w.service.process([e for e in events if e is not record])
    order = w.order(w.ykc_gw, w.ykc_device, trade)
    assert order.status == OrderStatus.SETTLED and order.reconciled is None
    bad = dict(record.params, energy=D("52.0000"))
    w.service.process([event(w.ykc_gw, w.ykc_device, "transactionRecord", bad, record.ts_ms)])
    order = w.order(w.ykc_gw, w.ykc_device, trade)
    assert order.reconciled is False and order.status == OrderStatus.DISPUTED
    assert order.total_amount == YKC_TOTAL and len(w.debits()) == 1


def test_unpaid_when_the_wallet_is_short_then_paid_after_a_top_up(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine, topup="50.00")
    w.service.process(ykc_session(w, "F" * 32))
    order = w.order(w.ykc_gw, w.ykc_device, "F" * 32)
    assert order.status == OrderStatus.UNPAID
    assert order.status_reason is not None and order.status_reason.startswith(
        "insufficient_funds")
    assert order.owed_amount == YKC_TOTAL and order.paid_amount == 0
    assert w.balance() == D("50.00") and w.debits() == []
    # a duplicate event does not retry the debit by itself
    w.service.process(ykc_session(w, "F" * 32)[-1:])
    assert w.debits() == []
    w.accounts.credit(w.user_id, D("30.00"), key=f"topup2:{w.user_id}")
    view = w.service.retry_payment(order.id)
    assert view.status == "settled" and view.paid_amount == YKC_TOTAL
    assert w.balance() == D("80.00") - YKC_TOTAL
    w.service.retry_payment(order.id)
    assert len(w.debits()) == 1


def test_unknown_card_is_unpaid_with_the_amount_owed(world: World) -> None:
    w = world
    stranger = "00000000DEADBEEF"
    record = ykc_record_params(w, "G" * 32, idTag=stranger)
    w.service.process(ykc_session(w, "G" * 32, id_tag=stranger, record=record))
    order = w.order(w.ykc_gw, w.ykc_device, "G" * 32)
    assert order.status == OrderStatus.UNPAID
    assert order.owed_amount == YKC_TOTAL and order.user_id is None


def test_offline_free_mode_without_a_tariff_bills_zero(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine, mode="offline_free")
    station = w.catalog.create_station(tenant_id=w.tenant, name="free", lat=31.0, lon=121.0)
    pile = "32077" + w.pile[5:]
    w.catalog.register_charger(station_id=station.id, gateway_id=w.ykc_gw, device_id=pile,
                               protocol="ykc", kind="dc", rated_kw="120",
                               operating_mode="offline_free")
    w.service.process([event(w.ykc_gw, f"{pile}01", e.name, e.params, e.ts_ms)
                       for e in ykc_session(w, "H1" * 16)])
    order = w.order(w.ykc_gw, f"{pile}01", "H1" * 16)
    assert order.status == OrderStatus.SETTLED and order.free
    assert order.energy == D("51.2345") and order.total_amount == 0
    assert order.tariff_id is None and order.reconciled is None
    assert w.debits() == []


def test_offline_free_mode_bills_zero(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine, mode="offline_free")
    w.service.process(ykc_session(w, "H" * 32))
    order = w.order(w.ykc_gw, w.ykc_device, "H" * 32)
    assert order.status == OrderStatus.SETTLED and order.free
    assert order.total_amount == 0 and order.paid_amount == 0
    assert order.energy == D("51.2345")
    assert {t: v[0] for t, v in tiers_of(w, order.id).items()} == \
        {"valley": D("20.3117"), "peak": D("30.9228"), "flat": D("0.0000")}
    assert all(v[1] == 0 and v[2] == 0 for v in tiers_of(w, order.id).values())
    assert w.debits() == [] and w.balance() == D("200.00")


def test_offline_billing_debits_the_wallet_and_flags_a_method_it_does_not_offer(
        engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine, mode="offline_billing")
    # the YKC pile is DC: the matrix offers nothing on a DC charger in offline billing
    w.service.process(ykc_session(w, "I" * 32))
    order = w.order(w.ykc_gw, w.ykc_device, "I" * 32)
    assert order.status == OrderStatus.SETTLED and order.paid_amount == YKC_TOTAL
    assert any(a["code"] == "start_method_not_allowed" for a in order.anomalies)
    # a card session on the AC OCPP charger is what offline billing offers
    w.service.process(ocpp_session(w, "5", id_tag=w.card))
    order = w.order(w.ocpp_gw, w.ocpp_device, "5")
    assert order.status == OrderStatus.SETTLED
    assert not any(a["code"] == "start_method_not_allowed" for a in order.anomalies)
    assert w.balance() == D("200.00") - YKC_TOTAL - OCPP_TOTAL


def test_start_refused_then_nothing_else(world: World) -> None:
    w = world
    w.service.process([event(w.ykc_gw, w.ykc_device, "startResult", {
        "sessionId": "J" * 32, "accepted": False, "reason": "gun not plugged"},
        local_ms(YKC_START_TEXT))])
    order = w.order(w.ykc_gw, w.ykc_device, "J" * 32)
    assert order.status == OrderStatus.START_FAILED
    assert order.status_reason == "start refused: gun not plugged"


YKC_START_TEXT = "2025-01-15 07:30"


def test_lifecycle_authorised_charging_finished(world: World) -> None:
    w = world
    events = ocpp_session(w, "88")
    w.service.process(events[:1])
    assert w.order(w.ocpp_gw, w.ocpp_device, "88").status == OrderStatus.AUTHORISED
    w.service.process(events[1:4])
    assert w.order(w.ocpp_gw, w.ocpp_device, "88").status == OrderStatus.CHARGING
    w.service.process(events[4:])
    order = w.order(w.ocpp_gw, w.ocpp_device, "88")
    assert order.status == OrderStatus.SETTLED
    with Session(w.engine) as s:
        steps = [(h.from_status, h.to_status) for h in s.exec(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id))]
    assert steps[0] == ("authorised", "authorised")
    assert ("authorised", "charging") in steps
    assert ("charging", "finished") in steps and steps[-1] == ("finished", "settled")


def test_meter_regression_is_a_meter_anomaly_and_not_billed(world: World) -> None:
    w = world
    events = [e for e in ocpp_session(w, "99", meter_stop="1990.000")
              if e.name in ("sessionStarted", "sessionEnded")]
    ended = events[-1]
    del ended.params["energy"]  # the bridge drops a negative energy
    w.service.process(events)
    order = w.order(w.ocpp_gw, w.ocpp_device, "99")
    assert order.status == OrderStatus.METER_ANOMALY
    assert order.status_reason is not None and "meter_regression" in order.status_reason
    assert order.total_amount is None and w.debits() == []


def test_implausible_energy_is_not_billed(world: World) -> None:
    w = world
    events = [e for e in ocpp_session(w, "98", meter_stop="9000.000")
              if e.name in ("sessionStarted", "sessionEnded")]
    w.service.process(events)  # 7000 kWh in 2 h on a 60 kW charger
    order = w.order(w.ocpp_gw, w.ocpp_device, "98")
    assert order.status == OrderStatus.METER_ANOMALY, order.status_reason
    assert w.debits() == []


def test_bad_events_are_kept_with_the_error_not_raised(world: World) -> None:
    w = world
    bad = [
        event(w.ykc_gw, w.ykc_device, "sessionEnded", {"sessionId": "K", "seq": 1,
                                                       "energy": 1.5}, 1),  # a float
        event(w.ykc_gw, w.ykc_device, "sessionStarted", {"seq": 0}, 1),  # no sessionId
        event(w.ykc_gw, w.ykc_device, "sample", {"sessionId": "K"}, 1),  # no meter value
        event(w.ykc_gw, w.ykc_device, "bogus", {"sessionId": "K"}, 1),
    ]
    assert w.service.process(bad) == set()
    with Session(w.engine) as s:
        rejects = s.exec(select(OrderReject).where(OrderReject.gw == w.ykc_gw)).all()
    assert len(rejects) == 4
    assert any("float" in r.error for r in rejects)
    assert all(r.tenant_id == w.tenant for r in rejects)
    assert w.orders() == []
    w.service.process(bad)  # redelivered: still one row each
    with Session(w.engine) as s:
        assert len(s.exec(select(OrderReject).where(OrderReject.gw == w.ykc_gw)).all()) == 4


def test_unknown_connector_waits_then_settles_when_catalogued(world: World) -> None:
    w = world
    gw = w.ykc_gw + "-new"
    pile = "32099" + w.pile[5:]
    events = [event(gw, f"{pile}01", e.name, e.params, e.ts_ms) for e in ykc_session(w)]
    w.service.process(events)
    (order,) = w.orders(gw)
    assert order.status == OrderStatus.FINISHED and order.tenant_id is None
    assert order.status_reason is not None and order.status_reason.startswith(
        "unknown_connector")
    w.catalog.register_charger(station_id=w.station_id, gateway_id=gw, device_id=pile,
                               protocol="ykc", kind="dc", rated_kw="120")
    fresh = w.another_service()  # no cached "unknown"
    assert order.id in fresh.sweep()
    (order,) = w.orders(gw)
    assert order.status == OrderStatus.SETTLED and order.tenant_id == w.tenant
    assert order.total_amount == YKC_TOTAL


def test_sweep_times_out_stale_sessions(world: World) -> None:
    w = world
    events = ocpp_session(w, "66")
    w.service.process(events[:2])
    order = w.order(w.ocpp_gw, w.ocpp_device, "66")
    later = order.updated_ms + int(w.service.config.stale_after * 1000) + 1
    # (the PostgreSQL database is shared by the session's tests: look at this order only)
    assert order.id not in w.service.sweep(now=later - 10)
    assert order.id in w.service.sweep(now=later)
    assert w.order(w.ocpp_gw, w.ocpp_device, "66").status == OrderStatus.TIMEOUT
    w.service.process(events[2:])  # the charger comes back with the rest
    order = w.order(w.ocpp_gw, w.ocpp_device, "66")
    assert order.status == OrderStatus.SETTLED and order.total_amount == OCPP_TOTAL




async def test_run_bills_after_the_grace_and_wakes_watchers(engine) -> None:  # type: ignore[no-untyped-def]
    """The service's own loop (what CloudService runs in its TaskGroup) bills ended sessions
    once their grace has passed; without it they would stay ``finished``."""
    w = build_world(engine, config=OrdersConfig(settle_grace=1.0, settle_interval=0.1,
                                                watch_poll_interval=30))
    await w.service.handle(ykc_session(w, "L" * 32))
    order = w.order(w.ykc_gw, w.ykc_device, "L" * 32)
    assert order.status == OrderStatus.FINISHED  # the loop is not running yet
    task = asyncio.create_task(w.service.run())
    try:
        statuses: list[str] = []
        async with contextlib.aclosing(w.service.watch(order.id)) as views:
            async with asyncio.timeout(30):
                async for view in views:  # the notifier wakes it: the poll is 30 s
                    statuses.append(view.status)
                    if view.status == "settled":
                        break
        assert statuses[-1] == "settled"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    order = w.order(w.ykc_gw, w.ykc_device, "L" * 32)
    assert order.total_amount == YKC_TOTAL and len(w.debits()) == 1
    with Session(w.engine) as s:
        (payment,) = s.exec(select(OrderEvent.message_id).where(
            OrderEvent.order_id == order.id, OrderEvent.name == "payment")).all()
    assert payment.startswith("revisit:")  # billed and paid by run(), not by handle()
