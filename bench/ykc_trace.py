"""Trace `remoteStart` calls hop by hop: where does the time of a call go?

    python -m bench.ykc_trace [--piles 50] [--rounds 5]

Real Mosquitto (shipped config) on a free port; the gateway (`EdgeGateway`, YKC listener), the
simulated piles (`sim.ykc.SimPile`) and a cloud MQTT client all in THIS process, talking over
real loopback sockets. Each call is stamped (``time.perf_counter``, one clock) at every hop:

    publish    the cloud client hands the call to its MQTT client
    received   the gateway's dispatcher gets it from its uplink
    invoke     the YKC adapter starts the service (input validated)
    sent_34    the 0x34 frame is written to the pile's socket
    pile_34    the pile decodes the 0x34
    pile_33    the pile writes its 0x33 reply
    got_33     the gateway matches the 0x33 to the call
    stored     the reply row is durable in the outbox
    published  the outbox pump hands the reply to the MQTT client
    replied    the cloud client receives the reply

First ``--rounds`` calls one at a time (an idle system), then all ``--piles`` at once (the way
`bench/ykc_piles.py` sends them, ``--concurrency`` in flight); prints the median time spent
between consecutive hops for both, and the calls' end-to-end p50 / p99.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import socket
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from bench.mosquitto import USERS, Mosquitto
from bridges.ykc.messages import RemoteStart, RemoteStartReply
from edge.adapters.ykc import PileSession, YkcAdapter
from edge.config import AdaptersConfig, GatewayConfig, MqttConfig, OutboxConfig, YkcConfig
from edge.dispatcher import Dispatcher
from edge.outbox import Outbox
from edge.runtime import EdgeGateway
from sim.ykc import PileConfig, SimPile, fleet_pile_codes
from thingmodels import Envelope, decode, encode, now_ms

GW = "bench-gw"
HOPS = ("publish", "paho_in", "uplink", "received", "invoke", "sent_34", "pile_34", "pile_33", "got_33", "stored",
        "published", "replied")
TARIFF = {"version": 1, "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
                                  "peak": {"energy": "1.0", "service": "0.6"},
                                  "flat": {"energy": "0.7", "service": "0.6"},
                                  "valley": {"energy": "0.3", "service": "0.6"}},
          "periods": [{"start": "00:00", "end": "24:00", "tier": "flat"}]}

# call id -> hop -> perf_counter; trade number -> call id (the pile only knows the trade)
STAMPS: dict[str, dict[str, float]] = defaultdict(dict)
TRADE_CALL: dict[str, str] = {}


def _stamp(call: str | None, hop: str) -> None:
    if call is not None and hop not in STAMPS[call]:
        STAMPS[call][hop] = time.perf_counter()


def _wrap(owner: Any, name: str, before: Callable[..., None]) -> None:
    original = getattr(owner, name)

    if asyncio.iscoroutinefunction(original):
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            before(*args, **kwargs)
            return await original(*args, **kwargs)
        setattr(owner, name, async_wrapper)
    else:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before(*args, **kwargs)
            return original(*args, **kwargs)
        setattr(owner, name, wrapper)


def instrument() -> None:
    """Stamp the hops by wrapping the methods they pass through (this process only)."""
    def on_handle(self: Dispatcher, topic: Any, env: Envelope) -> None:
        _stamp(env.id, "uplink")

    def on_call(self: Dispatcher, topic: Any, env: Envelope) -> None:
        _stamp(env.id, "received")

    def on_invoke(self: YkcAdapter, product: str, device: str, service: str,
                  params: Any, deadline_ms: int) -> None:
        if service == "remoteStart":
            call = str(params.get("sessionId"))
            _stamp(call, "invoke")

    def on_send(self: PileSession, message: Any, seq: bytes | None = None) -> None:
        if isinstance(message, RemoteStart):
            _stamp(TRADE_CALL.get(message.trade_no), "sent_34")

    def on_start_reply(self: PileSession, message: Any) -> None:
        if isinstance(message, RemoteStartReply):
            _stamp(TRADE_CALL.get(message.trade_no), "got_33")

    def on_pile_start(self: SimPile, msg: Any, seq: bytes, now: float) -> None:
        _stamp(TRADE_CALL.get(msg.trade_no), "pile_34")

    def on_pile_reply(self: SimPile, msg: Any, result: int, reason: int, seq: bytes) -> None:
        _stamp(TRADE_CALL.get(msg.trade_no), "pile_33")

    _wrap(Dispatcher, "handle", on_handle)
    _wrap(Dispatcher, "call", on_call)
    _wrap(YkcAdapter, "invoke", on_invoke)
    _wrap(PileSession, "send", on_send)
    _wrap(PileSession, "start_reply", on_start_reply)
    _wrap(SimPile, "_on_remote_start", on_pile_start)
    _wrap(SimPile, "_start_reply", on_pile_reply)

    original_append = Outbox.append

    def append(self: Outbox, topic: str, envelope: Any, **kwargs: Any) -> Envelope:
        env = original_append(self, topic, envelope, **kwargs)
        if topic.endswith("/remoteStart/reply") and env.cid is not None:
            _stamp(env.cid, "stored")
            PAYLOAD_CALL[encode(env)] = env.cid
        return env

    Outbox.append = append  # type: ignore[method-assign]

    original_publish = aiomqtt.Client.publish

    async def publish(self: aiomqtt.Client, topic: str, payload: Any = None,
                      *args: Any, **kwargs: Any) -> None:
        if topic.endswith("/remoteStart/reply"):
            _stamp(PAYLOAD_CALL.get(bytes(payload)), "published")
        await original_publish(self, topic, payload, *args, **kwargs)

    aiomqtt.Client.publish = publish  # type: ignore[method-assign,assignment]

    original_on_message = aiomqtt.Client._on_message

    def on_message(self: aiomqtt.Client, client: Any, userdata: Any, message: Any) -> None:
        if "/svc/remoteStart" in message.topic and not message.topic.endswith("/reply"):
            _stamp(decode(message.payload).id, "paho_in")
        original_on_message(self, client, userdata, message)

    aiomqtt.Client._on_message = on_message  # type: ignore[method-assign]


PAYLOAD_CALL: dict[bytes, str] = {}


def summary(calls: list[str]) -> dict[str, Any]:
    """Median ms between consecutive hops, and end-to-end percentiles."""
    out: dict[str, Any] = {}
    complete = [STAMPS[c] for c in calls if all(h in STAMPS[c] for h in HOPS)]
    out["calls"] = len(calls)
    out["traced"] = len(complete)
    for a, b in itertools.pairwise(HOPS):
        out[f"{a}->{b}"] = round(statistics.median(s[b] - s[a] for s in complete) * 1000, 2)
    total = sorted((s["replied"] - s["publish"]) * 1000 for s in complete)
    if total:
        out["end_to_end_p50_ms"] = round(total[len(total) // 2], 2)
        out["end_to_end_p99_ms"] = round(total[min(len(total) - 1,
                                                   round(0.99 * (len(total) - 1)))], 2)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    instrument()
    work = Path(tempfile.mkdtemp(prefix="vm-ykc-trace-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    codes = fleet_pile_codes(args.piles + args.rounds, "3201021")
    gateway = EdgeGateway(GatewayConfig(
        gateway_id=GW, mqtt=MqttConfig(port=broker.port, password=USERS[GW], max_inflight=200),
        outbox=OutboxConfig(path=str(work / "outbox.db")),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0))))
    gateway.ctx.set_desired("gateway", GW, 1, {
        "version": 1, "tariff": TARIFF,
        "devices": [{"product": "charger", "id": c, "protocol": "ykc"} for c in codes]})
    tasks = [asyncio.create_task(gateway.run())]
    piles: list[SimPile] = []
    result: dict[str, Any] = {}
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="cloud",
                                  password=USERS["cloud"], identifier="trace-cloud", max_inflight_messages=1000,
                                  socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                                  ) as cloud:
            await cloud.subscribe(f"ev/v1/{GW}/connector/+/svc/+/reply", qos=1)
            waiters: dict[str, asyncio.Future[None]] = {}

            async def receive() -> None:
                async for message in cloud.messages:
                    env = decode(message.payload)
                    if env.cid is not None:
                        _stamp(env.cid, "replied")
                        waiter = waiters.get(env.cid)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)

            tasks.append(asyncio.create_task(receive()))
            adapter: Any = gateway.adapters[0]
            while adapter.port is None or not gateway.ctx.cloud_connected.is_set():
                await asyncio.sleep(0.05)
            for code in codes:
                pile = SimPile(PileConfig(pile_code=code, guns=1, bms_frames=False,
                                          plug_delay=None), port=adapter.port)
                pile.start()
                piles.append(pile)
            for pile in piles:
                await asyncio.wait_for(pile.model_loaded.wait(), 30)
            await asyncio.sleep(1.0)

            async def call(code: str) -> str:
                trade = adapter.new_trade(code, 1)
                env = Envelope.new(src="cloud", dl=now_ms() + 30_000,
                                   p={"idTag": "00000000D14B0A54", "sessionId": trade})
                TRADE_CALL[trade] = env.id
                STAMPS[env.id]["publish"] = time.perf_counter()
                # the invoke hook reads the call id from the trade number
                STAMPS[trade] = STAMPS[env.id]
                waiters[env.id] = asyncio.get_running_loop().create_future()
                await cloud.publish(f"ev/v1/{GW}/connector/{code}01/svc/remoteStart",
                                    encode(env), qos=1)
                await asyncio.wait_for(waiters[env.id], 30)
                return env.id

            idle = [await call(code) for code in codes[:args.rounds]]
            result["idle"] = summary(idle)
            sem = asyncio.Semaphore(args.concurrency)

            async def limited(code: str) -> str:
                async with sem:
                    return await call(code)

            burst = await asyncio.gather(*(limited(c) for c in codes[args.rounds:]))
            result["burst"] = summary(list(burst))
            result["burst"]["concurrency"] = args.concurrency
    finally:
        for pile in piles:
            await pile.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        broker.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--piles", type=int, default=50, help="piles started at once (burst)")
    parser.add_argument("--rounds", type=int, default=5, help="calls one at a time (idle)")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    for phase in ("idle", "burst"):
        print(f"-- {phase}")
        for key, value in result[phase].items():
            print(f"  {key.ljust(22)} {value}")


if __name__ == "__main__":
    main()
