"""Every YKC service of the thing model, through the dispatcher, against the simulated pile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from sim.ykc import PileConfig, SimPile
from tests.support.net import eventually, free_port
from thingmodels import Envelope, Kind, Topic, decode, now_ms

PILE = "32010200000042"
TARIFF = {"version": 5, "tiers": {"flat": {"energy": "0.7", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "24:00", "tier": "flat"}]}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[EdgeGateway, SimPile]]:
    gw = EdgeGateway(GatewayConfig(
        gateway_id="gw-s", mqtt=MqttConfig(port=free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0))))
    gw.ctx.set_desired("gateway", "gw-s", 1, {
        "version": 1, "tariff": TARIFF,
        "devices": [{"product": "charger", "id": PILE, "protocol": "ykc"}]})
    task = asyncio.create_task(gw.run())
    adapter: Any = gw.adapters[0]
    await eventually(adapter.ready.is_set)
    pile = SimPile(PileConfig(pile_code=PILE, guns=2, parking_lock=True, plug_delay=None,
                              realtime_interval=0.2, reboot_duration=0.2, seed=3),
                   "127.0.0.1", adapter.port)
    pile.start()
    await asyncio.wait_for(pile.model_loaded.wait(), 10)
    yield gw, pile
    await pile.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def call(gw: EdgeGateway, product: str, device: str, service: str,
               params: dict[str, Any] | None = None) -> Envelope:
    env = Envelope.new(p=params or {}, dl=now_ms() + 8000)
    await gw.dispatcher.handle(Topic("gw-s", product, device, Kind.SVC, service), env)
    await gw.dispatcher.drain()
    [reply] = [decode(r.payload) for r in gw.outbox.peek(100_000)
               if r.topic.endswith(f"/svc/{service}/reply") and decode(r.payload).cid == env.id]
    assert reply.code == 0, reply.msg
    assert reply.p is not None
    return reply


async def test_charger_services(site: tuple[EdgeGateway, SimPile]) -> None:
    gw, pile = site
    assert (await call(gw, "charger", PILE, "syncTime")).p["accepted"] is True  # type: ignore[index]
    tariff = await call(gw, "charger", PILE, "setTariff", {
        "modelCode": "0042",
        "tiers": [{"tier": t, "energyPrice": "0.8", "servicePrice": "0.5"}
                  for t in ("tip", "peak", "flat", "valley")],
        "slots": [{"start": f"{i // 2:02d}:{(i % 2) * 30:02d}", "tier": "valley" if i < 16
                   else "flat"} for i in range(48)]})
    assert tariff.p == {"accepted": True, "modelCode": "0042"}
    assert pile.model is not None and pile.model.model_code == "0042"
    assert (await call(gw, "charger", PILE, "setWorkParams",
                       {"enabled": True, "maxPowerPercent": 60})).p == {"accepted": True}
    assert pile.max_power_pct == 60
    cards = [{"idTag": "D14B0A54", "status": "accepted", "logicalCard": "1000000573"},
             {"idTag": "CAFE0001", "status": "accepted"}]
    assert (await call(gw, "charger", PILE, "sendLocalList",
                       {"version": 1, "full": True, "entries": cards})).p == {"accepted": True}
    query = await call(gw, "charger", PILE, "queryLocalList",
                       {"idTags": [{"idTag": "D14B0A54"}, {"idTag": "BEEF"}]})
    assert [e["present"] for e in query.p["present"]] == [True, False]  # type: ignore[index]
    await call(gw, "charger", PILE, "clearLocalList", {"idTags": [{"idTag": "D14B0A54"}]})
    assert "00000000D14B0A54" not in pile.offline_cards
    update = await call(gw, "charger", PILE, "updateFirmware",
                        {"location": "ftp://u:p@127.0.0.1:2121/fw/v2.bin"})
    assert update.p["accepted"] is True  # type: ignore[index]
    assert pile.last_update is not None and pile.last_update.file_path == "/fw/v2.bin"
    assert (await call(gw, "charger", PILE, "reset", {"type": "soft"})).p == {"accepted": True}


async def test_connector_and_lock_services(site: tuple[EdgeGateway, SimPile]) -> None:
    gw, pile = site
    connector = PILE + "02"
    start = await call(gw, "connector", connector, "remoteStart",
                       {"idTag": "00000000D14B0A54", "balance": "50.00"})
    assert start.p["accepted"] is True  # type: ignore[index]
    await asyncio.wait_for(pile.charging(2).wait(), 5)
    assert (await call(gw, "connector", connector, "updateBalance",
                       {"card": "D14B0A54", "balance": "80.00"})).p == {"accepted": True}
    assert (await call(gw, "connector", connector, "readRealtime")).p == {"accepted": True}
    assert (await call(gw, "connector", connector, "remoteStop")).p == {"accepted": True}
    lock = await call(gw, "parking_lock", PILE + "01", "lower")
    assert lock.p == {"accepted": True}
    await eventually(lambda: [r for r in gw.outbox.peek(100_000)
                              if r.topic.endswith(f"parking_lock/{PILE}01/prop")] or
                     gw.batcher.pending, timeout=5)
    assert (await call(gw, "parking_lock", PILE + "01", "raise")).p == {"accepted": True}

    def positions() -> list[str]:
        gw.batcher.flush_all()
        return [s.p["position"] for r in gw.outbox.peek(100_000)
                if r.topic.endswith(f"parking_lock/{PILE}01/prop")
                for s in decode(r.payload).samples() if "position" in s.p]
    await eventually(lambda: positions()[-1:] == ["raised"], timeout=5)
    assert "lowered" in positions()  # the 0x61 after the lower, then the one after the raise
    parallel = await call(gw, "connector", PILE + "01", "parallelStart",
                          {"idTag": "00000000D14B0A54"})
    assert parallel.p["accepted"] is True  # type: ignore[index]
