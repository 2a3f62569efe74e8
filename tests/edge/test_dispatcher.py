import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from edge.adapter import Adapter
from edge.batcher import TelemetryBatcher
from edge.context import EdgeContext
from edge.dispatcher import Dispatcher
from edge.errors import DeviceRejected
from edge.outbox import Outbox
from thingmodels import Envelope, Kind, Topic, builtin_models, decode, now_ms


class RecordingAdapter(Adapter):
    name = "rec"

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.delay = delay

    def owns(self, product: str, device: str) -> bool:
        return device.startswith("c")

    async def run(self, ctx: EdgeContext) -> None:
        await asyncio.Event().wait()

    async def invoke(self, product: str, device: str, service: str, params: Mapping[str, Any],
                     deadline_ms: int) -> dict[str, Any]:
        self.calls.append((device, service, dict(params)))
        await asyncio.sleep(self.delay)
        if params.get("idTag") == "blocked":
            raise DeviceRejected("card blocked")
        return {"accepted": True, "sessionId": "S1"}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Dispatcher, RecordingAdapter, Outbox]:
    box = Outbox(tmp_path / "o.db")
    ctx = EdgeContext("gw1", builtin_models(), box, TelemetryBatcher(lambda *a: None))
    adapter = RecordingAdapter()
    return Dispatcher(ctx, [adapter]), adapter, box


def _replies(box: Outbox) -> list[tuple[str, Envelope]]:
    return [(r.topic, decode(r.payload)) for r in box.peek(100)]


START = Topic("gw1", "connector", "c1", Kind.SVC, "remoteStart")


async def test_expired_call_is_answered_with_error_and_not_executed(setup: Any) -> None:
    dispatcher, adapter, box = setup
    call = Envelope.new(p={"idTag": "card1"}, dl=now_ms() - 1000)
    await dispatcher.handle(START, call)
    await dispatcher.drain()
    assert adapter.calls == []
    [(topic, reply)] = _replies(box)
    assert topic == "ev/v1/gw1/connector/c1/svc/remoteStart/reply"
    assert reply.cid == call.id and reply.code == 408 and "not executed" in (reply.msg or "")


async def test_deadline_defaults_to_rts_plus_model_timeout(setup: Any) -> None:
    dispatcher, adapter, box = setup
    old = Envelope.new(rts=now_ms() - 11_000, p={"idTag": "x"})  # remoteStart timeout is 10 s
    await dispatcher.handle(START, old)
    await dispatcher.drain()
    assert adapter.calls == [] and _replies(box)[0][1].code == 408


async def test_call_executes_once_even_when_redelivered(setup: Any) -> None:
    dispatcher, adapter, box = setup
    call = Envelope.new(p={"idTag": "card1"}, dl=now_ms() + 5000)
    await dispatcher.handle(START, call)
    await dispatcher.drain()
    await dispatcher.handle(START, call)
    await dispatcher.drain()
    assert len(adapter.calls) == 1
    replies = _replies(box)
    assert len(replies) == 2 and replies[0][1] == replies[1][1]
    assert replies[0][1].code == 0 and replies[0][1].p == {"accepted": True, "sessionId": "S1"}


async def test_error_codes(setup: Any) -> None:
    dispatcher, _adapter, box = setup
    cases = [
        (START, {"idTag": "blocked"}, 409),
        (START, {"idTag": 5}, 400),
        (Topic("gw1", "connector", "x9", Kind.SVC, "remoteStart"), {"idTag": "a"}, 404),
        (Topic("gw1", "connector", "c1", Kind.SVC, "noSuchService"), {}, 404),
    ]
    for topic, params, _ in cases:
        await dispatcher.handle(topic, Envelope.new(p=params, dl=now_ms() + 5000))
    await dispatcher.drain()
    assert sorted(r.code or 0 for _, r in _replies(box)) == sorted(c for *_, c in cases)


async def test_device_slower_than_deadline_gets_504(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ctx = EdgeContext("gw1", builtin_models(), box, TelemetryBatcher(lambda *a: None))
    dispatcher = Dispatcher(ctx, [RecordingAdapter(delay=2.0)])
    await dispatcher.handle(START, Envelope.new(p={"idTag": "a"}, dl=now_ms() + 200))
    await dispatcher.drain()
    assert _replies(box)[0][1].code == 504


async def test_gateway_ping_and_decisions(setup: Any) -> None:
    dispatcher, _, box = setup

    async def ping(params: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "time": 1}

    dispatcher.gateway_services["ping"] = ping
    await dispatcher.handle(Topic("gw1", "gateway", "gw1", Kind.SVC, "ping"),
                            Envelope.new(dl=now_ms() + 1000))
    await dispatcher.drain()
    assert _replies(box)[0][1].p == {"pong": True, "time": 1}

    ctx = dispatcher.ctx
    ctx.cloud_connected.set()
    task = asyncio.create_task(ctx.decide("connector", "c1", "authorize",
                                          {"idTag": "card", "idType": "card"}, src="ykc16",
                                          timeout=2))
    await asyncio.sleep(0.05)
    event = next(e for t, e in _replies(box) if t.endswith("/event/authorize"))
    await dispatcher.handle(Topic("gw1", "connector", "c1", Kind.EVENT_REPLY, "authorize"),
                            Envelope.new(cid=event.id, code=0, p={"accepted": True,
                                                                   "balance": "12.50"}))
    decision = await task
    assert decision is not None and decision["accepted"] is True
    assert str(decision["balance"]) == "12.50"
    # no answer -> None (the adapter falls back)
    assert await ctx.decide("connector", "c1", "authorize", {"idTag": "c", "idType": "card"},
                            src="ykc16", timeout=0.1) is None
