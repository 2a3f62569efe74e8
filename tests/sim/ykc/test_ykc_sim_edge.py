"""The simulated pile against the real edge YKC listener (cloud unreachable): the gateway's
transaction record equals the pile's ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ykc_sim_platform import fast_config

from edge.runtime import EdgeGateway
from sim.ykc import SimPile
from tests.support.net import eventually
from tests.support.ykc import CARD, PILE, desired, outbox, ykc_gateway


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[EdgeGateway]:
    async with ykc_gateway(tmp_path, desired(cards=[CARD]), heartbeat_interval=0.5,
                           authorize_timeout=0.2) as gw:
        yield gw


async def test_sim_pile_against_the_edge_listener(gateway: EdgeGateway) -> None:
    adapter: Any = gateway.adapters[0]
    async with SimPile(fast_config(power_kw=120.0), "127.0.0.1", adapter.port) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        assert pile.model is not None and pile.model.model_code == "0007"
        assert pile.counters.received[0x56] == 1 and pile.counters.sent[0x55] == 1

        # card start: the cloud is unreachable, the gateway authorises from its card list
        trade = await pile.swipe(1, "D14B0A54", timeout=3)
        assert trade is not None and trade.startswith(PILE + "01")
        await asyncio.sleep(0.5)
        entry = pile.stop_charging(1)
        assert entry is not None
        await asyncio.wait_for(pile.record_confirmed(trade).wait(), 3)

        # app start and stop through the gateway's services (0x34/0x33, 0x36/0x35)
        deadline = int(time.time() * 1000) + 3000
        started = await adapter.invoke("connector", PILE + "01", "remoteStart",
                                       {"idTag": "D14B0A54"}, deadline)
        assert started["accepted"] is True
        app_trade = started["sessionId"]
        await asyncio.sleep(0.4)
        stopped = await adapter.invoke("connector", PILE + "01", "remoteStop", {}, deadline)
        assert stopped == {"accepted": True}
        await asyncio.wait_for(pile.record_confirmed(app_trade).wait(), 3)

        records = {r.p["sessionId"]: r.p for r in outbox(gateway, "/transactionRecord")}
        assert set(records) == {trade, app_trade}
        for ledger in pile.ledger:
            got = records[ledger.trade_no]
            assert ledger.confirmed
            assert Decimal(got["energy"]) == ledger.total_energy() > 0
            assert Decimal(got["amount"]) == ledger.total_amount()
            assert [Decimal(t["energy"]) for t in got["tiers"]] == [
                Decimal(e).scaleb(-4) for e in ledger.energy_kwh4]
        assert records[trade]["tradeType"] == "card" and records[trade]["stopReasonCode"] == 0x45
        assert records[app_trade]["tradeType"] == "app"
        assert records[app_trade]["stopReasonCode"] == 0x40
        assert pile.counters.frames_ignored == 0


async def test_not_plugged_start_becomes_a_session_when_the_car_plugs_in(
        gateway: EdgeGateway) -> None:
    # the simulator's finding: the pile's second 0x33 (success after "not plugged") was
    # counted as unsolicited and the session it started was never announced
    adapter: Any = gateway.adapters[0]
    config = fast_config(start_not_plugged=True, plug_delay=0.3)
    async with SimPile(config, "127.0.0.1", adapter.port) as pile:
        await asyncio.wait_for(pile.model_loaded.wait(), 5)
        deadline = int(time.time() * 1000) + 3000
        out = await adapter.invoke("connector", PILE + "01", "remoteStart",
                                   {"idTag": "D14B0A54"}, deadline)
        assert out["accepted"] is False and out["reason"] == "not plugged"
        trade = out["sessionId"]
        await asyncio.wait_for(pile.charging(1).wait(), 5)
        [started] = await eventually(lambda: outbox(gateway, "/sessionStarted"))
        assert started.p["sessionId"] == trade
        await asyncio.sleep(0.4)
        stopped = await adapter.invoke("connector", PILE + "01", "remoteStop", {},
                                       int(time.time() * 1000) + 3000)
        assert stopped == {"accepted": True}
        await asyncio.wait_for(pile.record_confirmed(trade).wait(), 3)
    [record] = outbox(gateway, "/transactionRecord")
    assert record.p["sessionId"] == trade and Decimal(record.p["energy"]) > 0
    assert gateway.ctx.stats.counters["ykc_late_starts"] == 1
    assert gateway.ctx.stats.counters["ykc_unsolicited_replies"] == 0


async def test_time_is_synced_again_every_interval(tmp_path: Path) -> None:
    """Besides the 0x56 after login, the gateway re-syncs every pile's clock every
    ``time_sync_interval`` (24 h by default; 1 s here) and the pile answers each with 0x55."""
    async with ykc_gateway(tmp_path, desired(), heartbeat_interval=0.5,
                           time_sync_interval=1.0) as gw:
        adapter: Any = gw.adapters[0]
        async with SimPile(fast_config(), "127.0.0.1", adapter.port) as pile:
            await asyncio.wait_for(pile.model_loaded.wait(), 5)
            started = time.monotonic()
            await eventually(lambda: pile.counters.received[0x56] >= 3, timeout=10)
            # one at login, then one per interval: not a burst
            assert time.monotonic() - started >= 1.0
            assert pile.counters.sent[0x55] >= 3
