import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.batcher import TelemetryBatcher
from edge.context import EdgeContext
from edge.errors import OutboxError
from edge.outbox import Outbox, RowKind
from thingmodels import Envelope, builtin_models, decode
from thingmodels.envelope import Sample


def _env(seq: int) -> Envelope:
    return Envelope.new(seq=seq, src="mqtt", p={"n": seq})


def test_append_peek_ack_and_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    for _ in range(3):
        box.append("t/a", _env, seq_key="dev-a")
    box.append("t/b", _env, seq_key="dev-b")
    rows = box.peek(10)
    assert [decode(r.payload).seq for r in rows] == [1, 2, 3, 1]
    assert box.stats.queued_events == 4
    assert box.ack([rows[0].rowid, rows[1].rowid]) == 2
    assert box.ack([rows[0].rowid]) == 0  # already gone
    assert [r.rowid for r in box.peek(10)] == [rows[2].rowid, rows[3].rowid]
    assert box.peek(10, after=rows[2].rowid)[0].rowid == rows[3].rowid
    assert box.stats.sent == 2
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.stats.queued_events == 2
    env = again.append("t/a", _env, seq_key="dev-a")
    assert env.seq == 4  # seq survives a restart


def test_full_outbox_drops_telemetry_before_any_event(tmp_path: Path) -> None:
    dropped: list[tuple[RowKind, int, str]] = []
    box = Outbox(tmp_path / "o.db", max_events=1000, max_telemetry=5, max_bytes=10_000_000)
    box.on_drop(lambda kind, count, reason: dropped.append((kind, count, reason)))
    for _ in range(3):
        box.append("e", _env, seq_key="d")
    for _ in range(8):
        box.append("t", _env, kind=RowKind.TELEMETRY, seq_key="d")
    assert box.stats.queued_telemetry == 5 and box.stats.queued_events == 3
    assert box.stats.dropped_telemetry == 3 and box.stats.dropped_events == 0
    assert all(kind is RowKind.TELEMETRY and reason == "full" for kind, _, reason in dropped)
    # oldest telemetry went first
    tele = [decode(r.payload).seq for r in box.peek(100) if r.kind is RowKind.TELEMETRY]
    assert tele == [7, 8, 9, 10, 11]


def test_byte_bound_drops_telemetry_then_events_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=4096)
    for _ in range(20):
        box.append("e", lambda s: Envelope.new(seq=s, p={"pad": "x" * 100}), seq_key="d")
    for _ in range(30):
        box.append("t", lambda s: Envelope.new(seq=s, p={"pad": "x" * 100}),
                   kind=RowKind.TELEMETRY, seq_key="d")
    assert box.stats.queued_bytes <= 4096
    assert box.stats.dropped_telemetry > 0
    events_before = box.stats.queued_events
    assert box.stats.dropped_events == 20 - events_before
    # telemetry goes first: while telemetry remains, no event was dropped
    if box.stats.queued_telemetry:
        assert box.stats.dropped_events == 0


def test_expiry_by_age(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.db", telemetry_max_age=60, event_max_age=3600, clock=lambda: now[0])
    box.append("e", _env, seq_key="d")
    box.append("t", _env, kind=RowKind.TELEMETRY, seq_key="d")
    now[0] += 120
    assert box.oldest_age() == 120
    assert box.expire() == 1
    assert box.stats.queued_events == 1 and box.stats.drops_by_reason == {"telemetry:expired": 1}
    now[0] += 3600
    assert box.expire() == 1 and box.stats.dropped_events == 1


def test_reply_memory_and_kv(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    assert box.known_reply("c1") is None
    box.remember_reply("c1", "topic/reply", b"payload")
    assert box.known_reply("c1") == ("topic/reply", b"payload")
    box.kv_set("k", b"v")
    assert box.kv_get("k") == b"v"
    assert box.next_seq("uplink/session") == 1 and box.next_seq("uplink/session") == 2



def test_reply_and_its_memo_are_one_transaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    woken: list[int] = []
    box.on_append(lambda: woken.append(1))
    env = box.append_reply(
        "c1", "t/reply", lambda s: Envelope.new(seq=s, cid="c1", p={"ok": True}), seq_key="d")
    assert env.seq == 1 and woken == [1] and box.stats.queued_events == 1
    [row] = box.peek(10, urgent=True)
    assert row.kind is RowKind.URGENT and decode(row.payload) == env
    assert box.known_reply("c1") == ("t/reply", row.payload)  # the same bytes as published
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert box.known_reply("c1") == ("t/reply", row.payload)
    # the memo cannot be written: the reply row is not written either (and its seq not taken)
    box._db.execute("DROP TABLE svc_calls")
    with pytest.raises(OutboxError):
        box.append_reply("c2", "t/reply", _env, seq_key="d")
    assert [r.rowid for r in box.peek(10)] == [row.rowid]
    assert box.stats.queued_events == 1
    assert box.next_seq("d") == 2


def _commits(box: Outbox) -> list[str]:
    statements: list[str] = []
    box._db.set_trace_callback(statements.append)
    return statements


def test_a_group_of_appends_is_one_commit_or_none(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    traced = _commits(box)
    with box.group():
        for i in range(3):
            box.append("t", _env, kind=RowKind.TELEMETRY, seq_key=f"d{i}")
    assert traced.count("COMMIT") == 1 and len(box.peek(10)) == 3
    traced.clear()

    def failing_flush() -> None:
        with box.group():
            box.append("t", _env, kind=RowKind.TELEMETRY, seq_key="d0")
            box.append("e", _env, seq_key="d0")
            raise RuntimeError("while flushing")

    with pytest.raises(RuntimeError):
        failing_flush()
    assert "COMMIT" not in traced and "ROLLBACK" in traced
    assert len(box.peek(10)) == 3  # nothing of the failed group, counters recounted
    assert (box.stats.queued_telemetry, box.stats.queued_events) == (3, 0)
    assert box.next_seq("d0") == 2


def test_a_periodic_telemetry_flush_is_one_transaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    contexts: list[EdgeContext] = []

    def flush(product: str, device: str, src: str, samples: list[Sample]) -> None:
        contexts[0].flush_telemetry(product, device, src, samples)

    batcher = TelemetryBatcher(flush)
    contexts.append(EdgeContext("gw1", builtin_models(), box, batcher))
    for i in range(50):
        batcher.add("connector", f"c{i}", "ykc", None, {"power": "1.0"})
    traced = _commits(box)
    batcher.flush_all()
    assert traced.count("COMMIT") == 1
    assert len(box.peek(100)) == 50 and box.stats.queued_telemetry == 50

def test_everything_returned_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from edge.outbox import Outbox
        from thingmodels import Envelope
        box = Outbox({str(db)!r})
        for i in range(500):
            box.append("t/e", lambda s: Envelope.new(seq=s, p={{"i": s}}), seq_key="d")
        print("stored", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == -9 and "stored" in proc.stdout
    box = Outbox(db)
    rows = box.peek(1000)
    assert [decode(r.payload).seq for r in rows] == list(range(1, 501))


def test_append_once_is_atomic_and_idempotent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    env, fresh = box.append_once("rec/T1", "t/e", _env, seq_key="d")
    assert fresh and env is not None
    again, fresh2 = box.append_once("rec/T1", "t/e", _env, seq_key="d")
    assert again is None and not fresh2
    assert len(box.peek(10)) == 1
    box.close()
    reopened = Outbox(tmp_path / "o.db")
    assert reopened.append_once("rec/T1", "t/e", _env, seq_key="d") == (None, False)
    assert reopened.append_once("rec/T2", "t/e", _env, seq_key="d")[1] is True


def test_urgent_rows_are_peeked_ahead_of_the_backlog_and_counted_as_events(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_telemetry=1000)
    for _ in range(5):
        box.append("t", _env, kind=RowKind.TELEMETRY, seq_key="d")
    reply = box.append("r", _env, kind=RowKind.URGENT, seq_key="d")
    assert box.has_urgent_after(0)
    urgent = box.peek(10, urgent=True)
    assert [decode(r.payload).seq for r in urgent] == [reply.seq]
    assert not box.has_urgent_after(urgent[-1].rowid)
    assert len(box.peek(10, urgent=False)) == 5
    assert box.stats.queued_events == 1 and box.stats.queued_telemetry == 5
    box.ack([urgent[0].rowid])
    assert box.stats.queued_events == 0
