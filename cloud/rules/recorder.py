"""Record live messages from a broker into a JSONL file (``voltmesh rules record``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from cloud.rules.jsonl import encode_line
from thingmodels.envelope import decode
from thingmodels.errors import EnvelopeError, TopicError
from thingmodels.topics import parse


@dataclass
class RecordResult:
    """How many messages were written, and how many were not voltmesh messages."""

    recorded: int = 0
    skipped: int = 0


async def record(out: Path, *, host: str, port: int, username: str | None = None,
                 password: str | None = None, filters: Sequence[str] = ("ev/v1/#",),
                 count: int | None = None, duration: float | None = None,
                 client_id: str | None = None, on_ready: Callable[[], None] | None = None,
                 on_skip: Callable[[str], None] | None = None) -> RecordResult:
    """Subscribe (MQTT 3.1.1, clean session) and append each message to ``out`` as one line.

    Stops after ``count`` messages or ``duration`` seconds (else when cancelled). Each line is
    flushed as it is written, so a cancelled recording keeps everything it received. Messages
    that are not valid voltmesh topics/envelopes are skipped and reported to ``on_skip``.
    Connection errors raise :class:`aiomqtt.MqttError`.
    """
    result = RecordResult()
    client = aiomqtt.Client(
        hostname=host, port=port, username=username, password=password,
        identifier=client_id or f"voltmesh-record-{os.getpid()}",
        protocol=aiomqtt.ProtocolVersion.V311, clean_session=True,
    )
    async with client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        if on_ready is not None:
            on_ready()
        with out.open("a", encoding="utf-8") as handle:
            try:
                async with asyncio.timeout(duration):
                    async for message in client.messages:
                        topic_text = str(message.topic)
                        try:
                            line = encode_line(parse(topic_text), decode(message.payload))
                        except (TopicError, EnvelopeError) as exc:
                            result.skipped += 1
                            if on_skip is not None:
                                on_skip(f"{topic_text}: {exc}")
                            continue
                        handle.write(line + "\n")
                        handle.flush()
                        result.recorded += 1
                        if count is not None and result.recorded >= count:
                            break
            except TimeoutError:
                pass  # the duration is over
    return result
