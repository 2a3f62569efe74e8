"""What the YKC tests share: a pile speaking raw frames over loopback, a test pile's login, the
tariff and desired document a gateway gets, and a gateway running the YKC listener."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench.ykc_piles import ykc_tariff
from bridges.ykc import CrcOrder, Frame, StreamDecoder, seq_bytes
from bridges.ykc.messages import Login, Message
from edge.config import (
    AdaptersConfig,
    GatewayConfig,
    MqttConfig,
    OutboxConfig,
    TelemetryConfig,
    YkcConfig,
)
from edge.runtime import EdgeGateway
from tests.support.net import eventually, free_port
from thingmodels import decode

PILE = "32010200000001"
#: the tariff of the YKC tests (its version is the pile's billing model code, 0007)
TARIFF = ykc_tariff(7)
#: an active card of the offline list (physical number 00000000D14B0A54)
CARD = {"physical": "D14B0A54", "logical": "1000000573", "status": "active"}


def login(pile: str = PILE, protocol_version: int = 0x10) -> Login:
    """A 0x01 login of a two-gun DC pile."""
    return Login(pile_code=pile, pile_type=0, gun_count=2, protocol_version=protocol_version,
                 firmware_version="v4.1.50", network_type=1, iccid="0" * 20, carrier=4)


class RawPile:
    """A minimal pile speaking raw frames (the full simulator lives in sim/ykc); keeps every
    frame it receives, with its sequence bytes, until a test takes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = StreamDecoder()
        self.inbox: list[Frame] = []
        self.seq = 0

    @classmethod
    async def connect(cls, port: int) -> RawPile:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, message: Message, seq: bytes | int | None = None,
             crc_order: CrcOrder = CrcOrder.LOW_FIRST) -> None:
        """Send ``message`` with ``seq`` (by default the next of this pile's own)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.writer.write(Frame(message, seq_bytes(seq)).encode(crc_order=crc_order))

    async def frame(self, kind: type[Message], timeout: float = 5.0) -> Frame:
        """The first frame received carrying a ``kind`` message (waiting for it)."""
        async with asyncio.timeout(timeout):
            while True:
                for i, frame in enumerate(self.inbox):
                    if isinstance(frame.message, kind):
                        return self.inbox.pop(i)
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("closed by the gateway")
                self._take(data)

    async def expect(self, kind: type[Message], timeout: float = 5.0) -> Any:
        """The first ``kind`` message received (waiting for it)."""
        return (await self.frame(kind, timeout)).message

    async def closed(self, timeout: float = 5.0) -> list[Frame]:
        """Read until the gateway closes (TimeoutError if it does not); the frames received."""
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(4096):
                self._take(data)
        return self.inbox

    def _take(self, data: bytes) -> None:
        self.inbox.extend(r for r in self.decoder.feed(data) if isinstance(r, Frame))


def desired(piles: Sequence[str] = (PILE,),
            cards: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A gateway's desired document: ``piles`` speaking YKC, the :data:`TARIFF`, and ``cards``
    as the offline list when given."""
    doc: dict[str, Any] = {
        "version": 1, "tariff": TARIFF,
        "devices": [{"product": "charger", "id": p, "protocol": "ykc"} for p in piles]}
    if cards is not None:
        doc["cards"] = cards
    return doc


@contextlib.asynccontextmanager
async def ykc_gateway(tmp_path: Path, doc: dict[str, Any], *, gateway_id: str = "gw-ykc",
                      mqtt_port: int | None = None, telemetry: TelemetryConfig | None = None,
                      **ykc: Any) -> AsyncIterator[EdgeGateway]:
    """A gateway running with ``doc`` as its desired document and the YKC listener (``ykc``:
    :class:`YkcConfig` fields) on a free port, ready when entered. No ``mqtt_port``: a free
    port where no broker listens, so the cloud is unreachable the whole time."""
    config = GatewayConfig(
        gateway_id=gateway_id, mqtt=MqttConfig(port=mqtt_port or free_port(), backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db")),
        telemetry=telemetry or TelemetryConfig(),
        adapters=AdaptersConfig(ykc=YkcConfig(port=0, **ykc)))
    gw = EdgeGateway(config)
    gw.ctx.set_desired("gateway", gateway_id, 1, doc)
    task = asyncio.create_task(gw.run())
    try:
        await eventually(gw.adapters[0].ready.is_set)  # type: ignore[attr-defined]
        yield gw
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def port_of(gw: EdgeGateway) -> int:
    """The port the gateway's YKC listener took."""
    return gw.adapters[0].port  # type: ignore[attr-defined,no-any-return]


def outbox(gw: EdgeGateway, suffix: str) -> list[Any]:
    """The envelopes in the gateway's outbox whose topic ends with ``suffix``."""
    return [decode(r.payload) for r in gw.outbox.peek(10_000) if r.topic.endswith(suffix)]
