"""The durable outbox: SQLite in WAL mode, peek-then-ack.

Events, service replies and presence are written here *before* the device is answered, are
published with QoS 1, and are deleted only after the broker's PUBACK. Telemetry goes through the
same table at a lower priority: when a bound is reached, telemetry is dropped before any event,
and every drop is counted (and reported by the gateway as an ``outboxDropped`` event).

The same database keeps what must survive a restart besides the queue itself: the per-device
``seq`` counters (incremented in the same transaction as the row that carries them), a small
key/value store (uplink session number, cached desired state) and the replies to service calls
already executed (so that a redelivered call is answered again, never executed twice).

All methods are synchronous and short (one SQLite transaction each); they are called from the
event loop. A SIGKILL loses nothing that a method had returned from.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from edge.errors import OutboxError
from thingmodels.envelope import Envelope, encode


class RowKind(IntEnum):
    """Priority class of a row: events are never dropped while telemetry can be.

    ``URGENT`` rows (service replies, decisions a device waits for) are events that the pump
    publishes ahead of any backlog, so a reply never waits behind a queue of telemetry after an
    outage or a reconnect storm.
    """

    EVENT = 0
    TELEMETRY = 1
    URGENT = 2


@dataclass(frozen=True, slots=True)
class Row:
    """One queued message."""

    rowid: int
    kind: RowKind
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_ms: int


@dataclass
class OutboxStats:
    """Counters of the outbox (``sent`` and the drop counters are per process lifetime)."""

    queued_events: int = 0
    queued_telemetry: int = 0
    queued_bytes: int = 0
    sent: int = 0
    dropped_telemetry: int = 0
    dropped_events: int = 0
    drops_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def queued(self) -> int:
        """Rows waiting, both kinds."""
        return self.queued_events + self.queued_telemetry


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind_id ON outbox(kind, id);
CREATE TABLE IF NOT EXISTS seqs (device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS svc_calls (id TEXT PRIMARY KEY, topic TEXT NOT NULL,
                                      reply BLOB NOT NULL, created_ms INTEGER NOT NULL);
"""


class Outbox:
    """The gateway's store-and-forward queue and persistent counters."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_events: int = 1_000_000,
        max_telemetry: int = 200_000,
        max_bytes: int = 512 * 1024 * 1024,
        event_max_age: float = 30 * 86400.0,
        telemetry_max_age: float = 86400.0,
        synchronous: str = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_telemetry = max_telemetry
        self.max_bytes = max_bytes
        self.event_max_age = event_max_age
        self.telemetry_max_age = telemetry_max_age
        self._clock = clock
        self.stats = OutboxStats()
        self._listeners: list[Callable[[], None]] = []
        self._last_urgent = 0
        self._drop_listeners: list[Callable[[RowKind, int, str], None]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._load_counts()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (a checkpoint happens on close)."""
        self._db.close()

    def on_append(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every append (wakes the publisher)."""
        self._listeners.append(callback)

    def on_drop(self, callback: Callable[[RowKind, int, str], None]) -> None:
        """Call ``callback(kind, count, reason)`` whenever rows are dropped."""
        self._drop_listeners.append(callback)

    def _load_counts(self) -> None:
        rows = self._db.execute(
            "SELECT kind, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox GROUP BY kind"
        ).fetchall()
        self.stats.queued_events = self.stats.queued_telemetry = self.stats.queued_bytes = 0
        for kind, count, size in rows:
            if kind == RowKind.TELEMETRY:
                self.stats.queued_telemetry += count
            else:
                self.stats.queued_events += count
            self.stats.queued_bytes += size

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- writing ------------------------------------------------------------------------

    def append(
        self,
        topic: str,
        envelope: Envelope | Callable[[int], Envelope],
        *,
        kind: RowKind = RowKind.EVENT,
        seq_key: str | None = None,
        qos: int = 1,
        retain: bool = False,
    ) -> Envelope:
        """Store one message durably and return the envelope as stored.

        With ``seq_key``, ``envelope`` is a function of the device's next ``seq``; the counter and
        the row are written in one transaction.
        """
        try:
            with self._transaction():
                if seq_key is not None:
                    seq = self._next_seq(seq_key)
                    env = envelope(seq) if callable(envelope) else envelope
                else:
                    env = envelope if isinstance(envelope, Envelope) else envelope(0)
                payload = encode(env)
                cursor = self._db.execute(
                    "INSERT INTO outbox(kind, topic, payload, qos, retain, created_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (int(kind), topic, payload, qos, int(retain), self._now_ms()),
                )
                if kind is RowKind.URGENT and cursor.lastrowid is not None:
                    self._last_urgent = cursor.lastrowid
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot store message for {topic}: {exc}") from exc
        if kind is RowKind.TELEMETRY:
            self.stats.queued_telemetry += 1
        else:
            self.stats.queued_events += 1
        self.stats.queued_bytes += len(payload)
        self._enforce_bounds()
        for callback in self._listeners:
            callback()
        return env

    def append_once(
        self,
        once_key: str,
        topic: str,
        envelope: Callable[[int], Envelope],
        *,
        seq_key: str,
        kind: RowKind = RowKind.EVENT,
    ) -> tuple[Envelope | None, bool]:
        """Append unless ``once_key`` was appended before (e.g. a re-sent transaction record).

        The key and the row are written in one transaction, so a crash never leaves one without
        the other. Returns ``(envelope, True)`` the first time and ``(None, False)`` after.
        """
        try:
            with self._transaction():
                if self.kv_get(f"once/{once_key}") is not None:
                    return None, False
                env = self.append(topic, envelope, kind=kind, seq_key=seq_key)
                self._db.execute(
                    "INSERT INTO kv(key, value) VALUES (?, ?)",
                    (f"once/{once_key}", env.id.encode()),
                )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot store message for {topic}: {exc}") from exc
        return env, True

    def _next_seq(self, key: str) -> int:
        row = self._db.execute(
            "INSERT INTO seqs(device, seq) VALUES (?, 1)"
            " ON CONFLICT(device) DO UPDATE SET seq = seq + 1 RETURNING seq",
            (key,),
        ).fetchone()
        return int(row[0])

    def next_seq(self, key: str) -> int:
        """Take the next value of a persistent counter (device seq, session numbers)."""
        try:
            with self._transaction():
                return self._next_seq(key)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot update counter {key}: {exc}") from exc

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    # -- bounds -------------------------------------------------------------------------

    def _drop_oldest(self, kind: RowKind, count: int, reason: str) -> int:
        kinds = (1,) if kind is RowKind.TELEMETRY else (0, 2)
        rows = self._db.execute(
            f"SELECT id, LENGTH(payload) FROM outbox WHERE kind IN ({','.join('?' * len(kinds))})"  # noqa: S608
            " ORDER BY id LIMIT ?",
            (*kinds, count),
        ).fetchall()
        if not rows:
            return 0
        self._delete([r[0] for r in rows])
        size = sum(r[1] for r in rows)
        self._count_drop(kind, len(rows), size, reason)
        return len(rows)

    def _count_drop(self, kind: RowKind, count: int, size: int, reason: str) -> None:
        kind = RowKind.TELEMETRY if kind is RowKind.TELEMETRY else RowKind.EVENT
        if kind is RowKind.EVENT:
            self.stats.queued_events -= count
            self.stats.dropped_events += count
        else:
            self.stats.queued_telemetry -= count
            self.stats.dropped_telemetry += count
        self.stats.queued_bytes -= size
        key = f"{kind.name.lower()}:{reason}"
        self.stats.drops_by_reason[key] = self.stats.drops_by_reason.get(key, 0) + count
        for callback in self._drop_listeners:
            callback(kind, count, reason)

    def _enforce_bounds(self) -> None:
        stats = self.stats
        if stats.queued_telemetry > self.max_telemetry:
            self._drop_oldest(RowKind.TELEMETRY, stats.queued_telemetry - self.max_telemetry, "full")
        if stats.queued_events > self.max_events:
            self._drop_oldest(RowKind.EVENT, stats.queued_events - self.max_events, "full")
        while stats.queued_bytes > self.max_bytes and stats.queued_telemetry > 0:
            self._drop_oldest(RowKind.TELEMETRY, max(1, stats.queued_telemetry // 10), "full")
        while stats.queued_bytes > self.max_bytes and stats.queued_events > 0:
            self._drop_oldest(RowKind.EVENT, 1, "full")

    def expire(self) -> int:
        """Drop rows older than their kind's maximum age; returns how many were dropped."""
        now = self._now_ms()
        dropped = 0
        for kind, max_age in (
            (RowKind.TELEMETRY, self.telemetry_max_age),
            (RowKind.EVENT, self.event_max_age),
        ):
            cutoff = now - int(max_age * 1000)
            op = "=" if kind is RowKind.TELEMETRY else "!="
            rows = self._db.execute(
                f"SELECT id, LENGTH(payload) FROM outbox WHERE kind {op} 1 AND created_ms < ?",  # noqa: S608
                (cutoff,),
            ).fetchall()
            if rows:
                self._delete([r[0] for r in rows])
                self._count_drop(kind, len(rows), sum(r[1] for r in rows), "expired")
                dropped += len(rows)
        return dropped

    # -- reading and acknowledging ------------------------------------------------------

    def peek(self, limit: int, after: int = 0, *, urgent: bool | None = None) -> list[Row]:
        """The oldest rows with id > ``after``.

        ``urgent=None``: every row in age order; ``True``: only urgent rows; ``False``: the rest.
        """
        where = {None: "", True: " AND kind = 2", False: " AND kind != 2"}[urgent]
        rows = self._db.execute(
            "SELECT id, kind, topic, payload, qos, retain, created_ms FROM outbox"  # noqa: S608
            f" WHERE id > ?{where} ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Row(r[0], RowKind(r[1]), r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def has_urgent_after(self, after: int) -> bool:
        """Whether an urgent row newer than ``after`` is waiting (cheap: tracked in memory)."""
        return self._last_urgent > after

    def ack(self, rowids: Iterable[int]) -> int:
        """Delete rows the broker acknowledged; returns how many were still there."""
        ids = list(rowids)
        if not ids:
            return 0
        try:
            with self._transaction():
                found = self._db.execute(
                    f"SELECT kind, LENGTH(payload) FROM outbox WHERE id IN ({','.join('?' * len(ids))})",  # noqa: S608
                    ids,
                ).fetchall()
                self._delete(ids)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot acknowledge rows: {exc}") from exc
        for kind, size in found:
            if kind == RowKind.TELEMETRY:
                self.stats.queued_telemetry -= 1
            else:
                self.stats.queued_events -= 1
            self.stats.queued_bytes -= size
        self.stats.sent += len(found)
        return len(found)

    def _delete(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            self._db.execute(
                f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                chunk,
            )

    def oldest_age(self) -> float:
        """Seconds since the oldest queued row was written (0 when empty)."""
        row = self._db.execute("SELECT MIN(created_ms) FROM outbox").fetchone()
        if row is None or row[0] is None:
            return 0.0
        return max(0.0, (self._now_ms() - int(row[0])) / 1000)

    # -- key/value and service-call memory ----------------------------------------------

    def kv_get(self, key: str) -> bytes | None:
        """A stored value."""
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def kv_set(self, key: str, value: bytes) -> None:
        """Store a value durably."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def remember_reply(self, call_id: str, topic: str, reply: bytes) -> None:
        """Remember the reply sent for a service call id."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO svc_calls(id, topic, reply, created_ms) VALUES (?, ?, ?, ?)",
                (call_id, topic, reply, self._now_ms()),
            )

    def known_reply(self, call_id: str) -> tuple[str, bytes] | None:
        """The reply already sent for a call id, if any."""
        row = self._db.execute(
            "SELECT topic, reply FROM svc_calls WHERE id = ?", (call_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def prune_replies(self, max_age: float = 86400.0) -> None:
        """Forget replies older than ``max_age`` seconds."""
        with self._transaction():
            self._db.execute(
                "DELETE FROM svc_calls WHERE created_ms < ?",
                (self._now_ms() - int(max_age * 1000),),
            )


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` / ``ROLLBACK`` (nesting-safe)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._outer:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
