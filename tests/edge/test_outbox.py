import subprocess
import sys
import textwrap
from pathlib import Path

from edge.outbox import Outbox, RowKind
from thingmodels import Envelope, decode


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
