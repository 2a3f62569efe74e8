"""The outbox's end-to-end receipts: an event stays after the broker's PUBACK, awaiting the
cloud's receipt; it is published again when the receipt is overdue; a SIGKILL loses nothing.

The state machine on a real SQLite file (clock injected, no jitter), then the pump on the wire:
an in-process gateway on a real Mosquitto publishes an event, publishes it again (same bytes)
while no receipt comes, and drops it when the ``cloud`` user sends the receipt on the gateway's
receipt topic (the shipped ACL).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from edge.config import GatewayConfig, MqttConfig, OutboxConfig
from edge.outbox import Outbox, RowKind, wants_receipt
from edge.runtime import EdgeGateway
from tests.support.mosquitto import USERS, Mosquitto
from tests.support.net import eventually
from thingmodels import Envelope, decode, encode
from thingmodels.topics import gateway_receipt

EVENT = "ev/v1/gw/connector/c1/event/sessionEnded"
STATE = "ev/v1/gw/connector/c1/state"
PROP = "ev/v1/gw/connector/c1/prop"
REPLY = "ev/v1/gw/connector/c1/svc/remoteStop/reply"


def _env(seq: int) -> Envelope:
    return Envelope.new(seq=seq, src="test", p={"n": seq})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _box(path: Path, clock: Clock, **kw: object) -> Outbox:
    return Outbox(path, clock=clock, receipt_timeout=30.0, receipt_timeout_max=100.0,
                  receipt_jitter=0.0, **kw)  # type: ignore[arg-type]


def test_only_plain_events_on_event_topics_wait_for_a_receipt() -> None:
    assert wants_receipt(RowKind.EVENT, EVENT)
    assert not wants_receipt(RowKind.EVENT, STATE)  # presence: retained, superseded
    assert not wants_receipt(RowKind.TELEMETRY, PROP)
    assert not wants_receipt(RowKind.URGENT, REPLY)  # service replies: out of scope
    assert not wants_receipt(RowKind.URGENT, EVENT)  # a decision answered locally when late
    assert not wants_receipt(RowKind.EVENT, "not/a/voltmesh/topic")


def test_an_acked_event_awaits_its_receipt_and_the_rest_leave_on_puback(tmp_path: Path) -> None:
    clock = Clock()
    box = _box(tmp_path / "o.db", clock, max_telemetry=100)
    event = box.append(EVENT, _env, seq_key="c1")
    box.append(STATE, _env, seq_key="c1", retain=True)
    box.append(PROP, _env, kind=RowKind.TELEMETRY, seq_key="c1")
    box.append(REPLY, _env, kind=RowKind.URGENT, seq_key="c1")
    rows = box.peek(10)
    assert len(rows) == 4
    assert box.ack([r.rowid for r in rows]) == 4
    assert box.peek(10) == []  # nothing left to publish now
    s = box.stats
    assert (s.queued_events, s.queued_telemetry, s.awaiting_receipt, s.sent) == (1, 0, 1, 4)
    assert s.queued_bytes == len(encode(event))
    # the receipt names the envelope id; unknown ids are ignored
    assert box.receipt(["01UNKNOWN", event.id]) == 1
    assert (s.queued_events, s.awaiting_receipt, s.receipted, s.queued_bytes) == (0, 0, 1, 0)
    assert box.receipt([event.id]) == 0  # a second receipt for the same id: nothing
    assert box.take_due(10) == []


def test_an_overdue_event_is_handed_out_again_with_capped_backoff(tmp_path: Path) -> None:
    clock = Clock()
    box = _box(tmp_path / "o.db", clock)
    event = box.append(EVENT, _env, seq_key="c1")
    [row] = box.peek(10)
    box.ack([row.rowid])
    clock.now += 29.9
    assert box.take_due(10) == [] and box.next_due() == pytest.approx(0.1, abs=0.01)
    clock.now += 0.2
    [again] = box.take_due(10)
    assert again.payload == row.payload and decode(again.payload).id == event.id  # same envelope
    assert box.stats.resent_for_receipt == 1
    assert box.take_due(10) == []  # not twice while its publication is in flight
    box.ack([again.rowid])  # its PUBACK: the next wait is doubled
    assert box.stats.sent == 1 and box.stats.awaiting_receipt == 1  # counted once
    clock.now += 59.0
    assert box.take_due(10) == []
    clock.now += 2.0
    assert len(box.take_due(10)) == 1
    box.ack([again.rowid])
    clock.now += 100.5  # 30 * 2**2 = 120 is capped at receipt_timeout_max = 100
    assert len(box.take_due(10)) == 1
    # a publication that never got its PUBACK (link lost) is due again after its own wait
    clock.now += 100.5
    assert len(box.take_due(10)) == 1
    assert box.stats.resent_for_receipt == 4
    assert box.receipt([event.id]) == 1
    assert box.stats.awaiting_receipt == 0 and box.stats.queued_events == 0


def test_a_receipt_before_the_puback_is_processed_deletes_the_row(tmp_path: Path) -> None:
    box = _box(tmp_path / "o.db", Clock())
    event = box.append(EVENT, _env, seq_key="c1")
    [row] = box.peek(10)
    assert box.receipt([event.id]) == 1
    assert box.ack([row.rowid]) == 0  # the late PUBACK finds nothing
    s = box.stats
    assert (s.queued_events, s.awaiting_receipt, s.sent, s.receipted) == (0, 0, 1, 1)


def test_with_receipts_off_events_leave_on_puback_and_none_are_left_awaiting(
        tmp_path: Path) -> None:
    clock = Clock()
    box = _box(tmp_path / "o.db", clock)
    for _ in range(3):
        box.append(EVENT, _env, seq_key="c1")
    box.ack([r.rowid for r in box.peek(2)])
    assert box.stats.awaiting_receipt == 2
    box.close()
    off = _box(tmp_path / "o.db", clock, receipts=False)
    # the broker acknowledged those two: with receipts off that is the end of them
    assert off.stats.awaiting_receipt == 0 and off.stats.queued_events == 1
    [row] = off.peek(10)
    off.ack([row.rowid])
    assert off.stats.queued_events == 0 and off.take_due(10) == []
    clock.now += 3600
    assert off.take_due(10) == [] and off.next_due() is None


def test_awaiting_events_count_toward_the_bounds_and_are_dropped_oldest_first(
        tmp_path: Path) -> None:
    clock = Clock()
    dropped: list[tuple[RowKind, int, str]] = []
    box = _box(tmp_path / "o.db", clock, max_events=10, event_max_age=3600.0)
    box.on_drop(lambda kind, count, reason: dropped.append((kind, count, reason)))
    for _ in range(6):
        box.append(EVENT, _env, seq_key="c1")
    box.ack([r.rowid for r in box.peek(6)])
    for _ in range(6):
        box.append(EVENT, _env, seq_key="c1")
    s = box.stats
    assert s.queued_events == 10 and s.dropped_events == 2
    assert s.awaiting_receipt == 4  # the two oldest awaiting rows went first
    assert dropped == [(RowKind.EVENT, 1, "full"), (RowKind.EVENT, 1, "full")]
    clock.now += 3601
    assert box.expire() == 10
    assert (s.queued_events, s.awaiting_receipt, s.queued_bytes) == (0, 0, 0)


def test_awaiting_events_survive_sigkill_and_are_published_again(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from edge.outbox import Outbox
        from thingmodels import Envelope
        box = Outbox({str(db)!r}, receipt_jitter=0.0)
        ids = [box.append({EVENT!r}, lambda s: Envelope.new(seq=s, p={{"i": s}}),
                          seq_key="c1").id for _ in range(50)]
        box.ack([r.rowid for r in box.peek(40)])   # 40 acknowledged by the broker
        box.receipt(ids[:10])                      # 10 of them receipted by the cloud
        print(",".join(ids), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr
    ids = proc.stdout.strip().split(",")
    clock = Clock()
    clock.now = time.time()
    box = _box(db, clock)
    s = box.stats
    assert (s.queued_events, s.awaiting_receipt) == (40, 30)
    assert [decode(r.payload).id for r in box.peek(100)] == ids[40:]  # never published
    assert box.take_due(100) == []  # their receipt is not overdue yet
    clock.now += 31
    again = box.take_due(100)
    assert [decode(r.payload).id for r in again] == ids[10:40]
    assert box.receipt(ids) == 40
    assert s.queued_events == 0 and s.awaiting_receipt == 0


def test_an_outbox_written_before_receipts_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL,
                topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
                retain INTEGER NOT NULL, created_ms INTEGER NOT NULL);
        """)
        conn.execute("INSERT INTO outbox(kind, topic, payload, qos, retain, created_ms)"
                     " VALUES (0, ?, ?, 1, 0, 1)", (EVENT, encode(_env(1))))
    box = _box(db, Clock())
    [old] = box.peek(10)
    box.ack([old.rowid])  # no envelope id recorded: it leaves on PUBACK as it would have
    assert box.stats.queued_events == 0
    box.append(EVENT, _env, seq_key="c1")
    box.ack([r.rowid for r in box.peek(10)])
    assert box.stats.awaiting_receipt == 1


@contextlib.asynccontextmanager
async def _pumping(mosquitto: Mosquitto, tmp_path: Path, receipt_timeout: float,
                   receipt_timeout_max: float,
                   ) -> AsyncIterator[tuple[EdgeGateway, aiomqtt.Client, list[bytes]]]:
    """A running gateway ``gwA`` on Mosquitto, the ``cloud`` user's client, and the list every
    event publication of the gateway lands in (bytes, in order)."""
    gw = EdgeGateway(GatewayConfig(
        gateway_id="gwA",
        mqtt=MqttConfig(port=mosquitto.port, username="gwA", password=USERS["gwA"],
                        backoff_max=0.5),
        outbox=OutboxConfig(path=str(tmp_path / "o.db"), receipt_timeout=receipt_timeout,
                            receipt_timeout_max=receipt_timeout_max)), adapters=[])
    copies: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="cloud",
                              password=USERS["cloud"]) as cloud:
        await cloud.subscribe("ev/v1/gwA/+/+/event/#", qos=1)

        async def collect() -> None:
            async for message in cloud.messages:
                assert isinstance(message.payload, bytes)
                copies.append(message.payload)

        collector = asyncio.create_task(collect())
        task = asyncio.create_task(gw.run())
        try:
            await eventually(gw.uplink.connected.is_set)
            yield gw, cloud, copies
        finally:
            task.cancel()
            collector.cancel()
            await asyncio.gather(task, collector, return_exceptions=True)


async def _receipt(cloud: aiomqtt.Client, ids: list[str]) -> None:
    await cloud.publish(gateway_receipt("gwA").render(), encode(Envelope.new(
        src="cloud", p={"ids": ids})), qos=1)


async def _session_ended(gw: EdgeGateway, n: int) -> str:
    env = await gw.ctx.event("connector", "c1", "sessionEnded", {
        "sessionId": f"S{n}", "seq": n, "energy": "1.000", "reason": "local"}, src="test")
    return env.id


@pytest.mark.mosquitto
async def test_the_pump_publishes_again_until_the_receipt_arrives(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with _pumping(mosquitto, tmp_path, 0.5, 1.0) as (gw, cloud, copies):
        event_id = await _session_ended(gw, 1)
        await eventually(lambda: len(copies) >= 3, timeout=20)  # no receipt: again
        assert {decode(c).id for c in copies} == {event_id}
        assert len(set(copies)) == 1  # the very same envelope each time
        assert gw.outbox.stats.awaiting_receipt == 1
        assert gw.outbox.stats.resent_for_receipt >= 2
        await _receipt(cloud, [event_id])
        await eventually(lambda: gw.outbox.stats.queued_events == 0, timeout=10)
        assert gw.ctx.stats.counters["receipts"] == 1
        settled = len(copies)
        await asyncio.sleep(2.0)  # past the capped wait: nothing more is published
        assert len(copies) == settled


@pytest.mark.mosquitto
async def test_while_the_cloud_is_silent_only_one_event_at_a_time_is_published_again(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    """No worker receipts anything (the cloud is away): after one round of copies the gateway
    publishes only the oldest event again, once per receipt_timeout_max, so an outage does not
    fill the workers' queues at the broker; the first receipt resumes the full rounds."""
    async with _pumping(mosquitto, tmp_path, 0.3, 1.5) as (gw, cloud, raw):
        def copies() -> list[str]:
            return [decode(c).id for c in raw]

        ids = [await _session_ended(gw, n) for n in range(5)]
        # the originals, then one full round of copies
        await eventually(lambda: len(raw) >= 10, timeout=10)
        await asyncio.sleep(4.0)  # silent: 0.3 s doubling would be ~4 more rounds of 5
        held = len(raw) - 10
        assert 1 <= held <= 4, copies()  # one at a time, every 1.5 s
        assert set(copies()[10:]) <= set(ids)
        assert gw.ctx.stats.counters["receipt_probes"] == held
        assert gw.outbox.stats.awaiting_receipt == 5
        # a receipt for one: the cloud is back, the other four go out again at once
        await _receipt(cloud, ids[:1])
        before = len(raw)
        await eventually(lambda: set(copies()[before:]) >= set(ids[1:]), timeout=5)
        await _receipt(cloud, ids[1:])
        await eventually(lambda: gw.outbox.stats.queued_events == 0, timeout=10)
