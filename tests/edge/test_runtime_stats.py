"""The gateway's ``stats`` service: every counter it keeps, per kind, for an operator to read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually, free_port
from thingmodels import Envelope, Kind, Topic, decode, now_ms

# a heartbeat (0x03) of pile 32010200000001 sent before any login, and pure garbage
HEARTBEAT_BEFORE_LOGIN = bytes.fromhex("680d000000033201020000000101004ba6")
GARBAGE = b"\x00\x01GET / HTTP/1.1\r\n\r\n"


async def test_stats_service_returns_the_per_kind_counters(tmp_path: Path) -> None:
    gw = EdgeGateway(GatewayConfig(
        gateway_id="gw-st", mqtt=MqttConfig(port=free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0))))
    task = asyncio.create_task(gw.run())
    try:
        adapter: Any = gw.adapters[0]
        await eventually(gw.started.is_set)  # set once the YKC listener listens
        assert adapter.ready.is_set()
        reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
        writer.write(GARBAGE + HEARTBEAT_BEFORE_LOGIN)
        await writer.drain()

        async def stats() -> dict[str, Any]:
            env = Envelope.new(p={}, dl=now_ms() + 5000)
            await gw.dispatcher.handle(Topic("gw-st", "gateway", "gw-st", Kind.SVC, "stats"),
                                       env)
            await gw.dispatcher.drain()
            [reply] = [decode(r.payload) for r in gw.outbox.peek(100_000)
                       if r.topic.endswith("/svc/stats/reply")
                       and decode(r.payload).cid == env.id]
            assert reply.code == 0, reply.msg
            assert isinstance(reply.p, dict)
            return reply.p

        answer = await eventually(
            lambda: _counted(stats(), "malformed_frames"), timeout=10)
        assert answer["counters"]["malformed_frames"] >= 1
        assert set(answer["outbox"]) >= {"queuedEvents", "queuedTelemetry", "sent",
                                         "droppedEvents", "droppedTelemetry", "dropsByReason"}
        assert answer["outbox"]["queuedEvents"] >= 1  # the reply itself waits for a broker
        assert answer["devicesOnline"] == 0  # the pile never logged in
        assert answer["uptimeS"] >= 0
        # the periodic gateway properties carry the totals, the receipt figures among them
        def gateway_props() -> dict[str, Any]:
            props: dict[str, Any] = {}
            for row in gw.outbox.peek(100_000):
                if row.topic.endswith("/gateway/gw-st/prop"):
                    for sample in decode(row.payload).samples():
                        props.update(sample.p)
            return props

        props = await eventually(lambda: gateway_props().get("outboxAwaitingReceipt") == 0
                                 and gateway_props(), timeout=10)
        assert props["outboxResentForReceipt"] == 0
        assert "malformedFrames" in props
        writer.close()
        del reader
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _counted(answer: Any, name: str) -> dict[str, Any] | None:
    got: dict[str, Any] = await answer
    return got if got["counters"].get(name) else None
