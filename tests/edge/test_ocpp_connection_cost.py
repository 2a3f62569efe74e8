"""What an OCPP connection keeps, on the wire (docs/protocols/ocpp.md "Memory per connection").

* permessage-deflate (RFC 7692) offered by a charger is declined unless ``compression`` is
  configured: the 101 answer carries no ``Sec-WebSocket-Extensions`` and the answers are plain
  frames (RSV1 clear); with ``compression`` it is accepted and the answers are compressed;
* the handshake's headers are not kept once the connection is accepted (the path is);
* an idle connection holds no worker task; CALLs sent back to back are still answered in order;
* a repeated message id is answered from the last ``answers_kept`` answers, older ids are
  handled again.

Raw sockets with hand-built frames where the bytes matter; the gateway runs without a broker
(chargers admitted with ``unknown_chargers: pending``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from websockets.typing import Subprotocol

from edge.adapters.ocpp import OcppAdapter, OcppConfig
from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.runtime import EdgeGateway
from tests.support.net import eventually, free_port


@contextlib.asynccontextmanager
async def _site(tmp_path: Path, **options: object) -> AsyncIterator[tuple[EdgeGateway,
                                                                          OcppAdapter]]:
    adapter = OcppAdapter(OcppConfig(port=0, security_profile=0, unknown_chargers="pending",
                                     **options))  # type: ignore[arg-type]
    gateway = EdgeGateway(GatewayConfig(
        gateway_id="gw-mem", mqtt=MqttConfig(port=free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db"))), adapters=[adapter])
    gateway.ctx.set_desired("gateway", "gw-mem", 1, {"version": 1, "devices": []})
    task = asyncio.create_task(gateway.run())
    try:
        await eventually(adapter.ready.is_set)
        yield gateway, adapter
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[EdgeGateway, OcppAdapter]]:
    async with _site(tmp_path, answers_kept=2) as held:
        yield held


def _client_frame(text: str) -> bytes:
    """One masked, final, uncompressed text frame (payload under 126 bytes)."""
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


async def _server_frame(reader: asyncio.StreamReader) -> tuple[bool, bytes]:
    """(RSV1 set, payload) of the next server frame (unmasked, final)."""
    head = await asyncio.wait_for(reader.readexactly(2), 10)
    assert head[0] & 0x80, "a fragmented answer"
    assert head[1] & 0x80 == 0, "a server frame must not be masked"
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return bool(head[0] & 0x40), await reader.readexactly(length)


@pytest.mark.parametrize("compression", [False, True])
async def test_deflate_is_declined_unless_configured(tmp_path: Path, compression: bool) -> None:
    async with _site(tmp_path, compression=compression) as (_, adapter):
        reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET /ocpp/MEM1 HTTP/1.1\r\nHost: 127.0.0.1:{adapter.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: ocpp1.6\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                "\r\n".encode())
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
            assert head.startswith("HTTP/1.1 101"), head
            extensions = [line for line in head.split("\r\n")
                          if line.lower().startswith("sec-websocket-extensions:")]
            if compression:
                assert len(extensions) == 1 and "permessage-deflate" in extensions[0], head
            else:
                assert extensions == [], head
            conn = await eventually(lambda: adapter.connections.get("MEM1"))
            # the handshake's headers are dropped once accepted; the path stays
            assert conn.ws.request is not None and conn.ws.response is not None
            assert list(conn.ws.request.headers.raw_items()) == []
            assert list(conn.ws.response.headers.raw_items()) == []
            assert conn.ws.request.path == "/ocpp/MEM1"

            writer.write(_client_frame('[2,"h1","Heartbeat",{}]'))
            compressed, payload = await _server_frame(reader)
            assert compressed is compression
            if compressed:  # RFC 7692 7.2.2: the tail 00 00 ff ff was removed by the sender
                payload = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
            answer = json.loads(payload)
            assert answer[:2] == [3, "h1"] and "currentTime" in answer[2], answer
        finally:
            writer.close()


async def test_idle_connection_has_no_worker_and_calls_are_answered_in_order(
        site: tuple[EdgeGateway, OcppAdapter]) -> None:
    _, adapter = site
    async with websockets.connect(f"ws://127.0.0.1:{adapter.port}/ocpp/MEM2",
                                  subprotocols=[Subprotocol("ocpp1.6")]) as ws:
        await ws.send('[2,"b1","BootNotification",{"chargePointVendor":"V",'
                      '"chargePointModel":"M"}]')
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))[:2] == [3, "b1"]
        conn = adapter.connections["MEM2"]

        def workers() -> list[asyncio.Task[object]]:
            return [t for t in asyncio.all_tasks() if t.get_name().startswith("ocpp-worker-")]

        await eventually(lambda: conn._worker_task is None and not workers())
        ids = [f"q{i}" for i in range(6)]
        for uid in ids:  # back to back, no waiting for answers
            await ws.send(json.dumps([2, uid, "Heartbeat", {}]))
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in ids]
        assert [a[1] for a in answers] == ids
        assert all(a[0] == 3 for a in answers), answers
        await eventually(lambda: conn._worker_task is None and not workers()
                         and conn.backlog == [])


async def test_repeated_ids_answered_from_the_last_answers_only(
        site: tuple[EdgeGateway, OcppAdapter]) -> None:
    gateway, adapter = site
    async with websockets.connect(f"ws://127.0.0.1:{adapter.port}/ocpp/MEM3",
                                  subprotocols=[Subprotocol("ocpp1.6")]) as ws:
        answers = {}
        for uid in ("d1", "d2", "d3"):
            await ws.send(f'[2,"{uid}","Heartbeat",{{}}]')
            answers[uid] = str(await asyncio.wait_for(ws.recv(), 10))
        assert list(adapter.connections["MEM3"].answered) == ["d2", "d3"]  # answers_kept=2
        await ws.send('[2,"d3","Heartbeat",{}]')
        assert str(await asyncio.wait_for(ws.recv(), 10)) == answers["d3"]
        assert gateway.ctx.stats.counters["ocpp_duplicate_ids"] == 1
        await ws.send('[2,"d1","Heartbeat",{}]')  # forgotten: handled again, not a duplicate
        again = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert again[:2] == [3, "d1"], again
        assert gateway.ctx.stats.counters["ocpp_duplicate_ids"] == 1
        assert list(adapter.connections["MEM3"].answered) == ["d3", "d1"]
