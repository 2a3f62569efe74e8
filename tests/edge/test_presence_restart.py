"""Presence across a gateway restart: devices the last run reported online and that do not come
back within ``presence_grace`` are reported offline, with a session that outranks their online."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.procs import free_port
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually
from thingmodels import decode


def _gateway(tmp_path: Path) -> EdgeGateway:
    # no broker listens: the states stay in the outbox, where the test reads them
    return EdgeGateway(GatewayConfig(
        gateway_id="gw1", presence_grace=0.5,
        mqtt=MqttConfig(port=free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db"))), adapters=[])


def _states(gw: EdgeGateway, device: str) -> list[dict[str, object]]:
    return [dict(decode(r.payload).p or {}) for r in gw.outbox.peek(1000)
            if r.topic == f"ev/v1/gw1/charger/{device}/state"]


async def test_devices_not_back_after_a_restart_are_reported_offline(tmp_path: Path) -> None:
    first = _gateway(tmp_path)
    task = asyncio.create_task(first.run())
    try:
        for device in ("A", "B", "C"):
            await first.ctx.presence("charger", device, True, src="test")
        await first.ctx.presence("charger", "C", False, src="test")  # left while we ran
        await asyncio.sleep(0.1)
    finally:
        task.cancel()  # a stop (or a crash: the record is written with each state)
        await asyncio.gather(task, return_exceptions=True)

    second = _gateway(tmp_path)
    assert sorted(second.ctx.left_online()) == [("charger", "A"), ("charger", "B")]
    online_a = _states(second, "A")[-1]
    task = asyncio.create_task(second.run())
    try:
        await second.ctx.presence("charger", "B", True, src="test")  # B is back in time
        assert second.ctx.left_online() == [("charger", "A")]
        await eventually(lambda: _states(second, "A")[-1]["online"] is False, timeout=5)
        gone = _states(second, "A")[-1]
        assert gone["reason"] == "not back after the gateway restarted"
        assert isinstance(gone["session"], int) and isinstance(online_a["session"], int)
        assert gone["session"] > online_a["session"]  # outranks the online it ends
        assert [s["online"] for s in _states(second, "B")][-1] is True  # not touched
        assert [s["online"] for s in _states(second, "C")] == [True, False]  # nothing more
        assert second.ctx.left_online() == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # the record follows: a third start has nothing to expire but B
    assert _gateway(tmp_path).ctx.left_online() == [("charger", "B")]
