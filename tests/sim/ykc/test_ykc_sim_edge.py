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

from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.ykc import SimPile
from tests.support.net import eventually, free_port
from thingmodels import decode

PILE = "32010200000001"
TARIFF = {"version": 7, "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                                  "peak": {"energy": "1.0", "service": "0.6"},
                                  "flat": {"energy": "0.7", "service": "0.6"},
                                  "valley": {"energy": "0.3", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "08:00", "tier": "valley"},
                      {"start": "08:00", "end": "24:00", "tier": "flat"}]}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[EdgeGateway]:
    config = GatewayConfig(
        gateway_id="gw-ykc", mqtt=MqttConfig(port=free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, heartbeat_interval=0.5,
                                              authorize_timeout=0.2)))
    gw = EdgeGateway(config)
    gw.ctx.set_desired("gateway", "gw-ykc", 1, {
        "version": 1, "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}],
        "tariff": TARIFF,
        "cards": [{"physical": "D14B0A54", "logical": "1000000573", "status": "active"}]})
    task = asyncio.create_task(gw.run())
    await eventually(gw.adapters[0].ready.is_set)  # type: ignore[attr-defined]
    yield gw
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def events(gw: EdgeGateway, name: str) -> list[Any]:
    return [decode(r.payload) for r in gw.outbox.peek(10_000) if r.topic.endswith(f"/{name}")]


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

        records = {r.p["sessionId"]: r.p for r in events(gateway, "transactionRecord")}
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
