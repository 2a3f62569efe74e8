"""The durable outbox: SQLite in WAL mode, peek-then-ack, then (events) wait for the receipt.

Events, service replies and presence are written here *before* the device is answered, are
published with QoS 1, and leave after the broker's PUBACK. Telemetry goes through the
same table at a lower priority: when a bound is reached, telemetry is dropped before any event,
and every drop is counted (and reported by the gateway as an ``outboxDropped`` event).

End-to-end receipts (``receipts=True``, the default). A PUBACK only says the broker has the
message, and a broker can still lose it (Mosquitto forgets QoS 1 messages of an offline shared
subscription across its own restart, ``docs/scale-out.md``). So an ``EVENT`` row on an event
topic is not deleted on PUBACK: it becomes *awaiting receipt* until a cloud worker that has
committed its work names the envelope id in a receipt (:meth:`Outbox.receipt`). An awaiting row
is published again, same envelope, ``receipt_timeout`` after its PUBACK, then after a doubling,
capped and jittered delay (:meth:`Outbox.take_due`); the cloud deduplicates by id and receipts a
duplicate again. Awaiting rows are events in every respect (bounds, age, drops, stats) and
survive a SIGKILL. Row states::

    queued --PUBACK--> awaiting --receipt--> deleted
      |                  |   ^
      |                  due: published again (tries + 1), PUBACK: next due time
      +--PUBACK (telemetry, presence, urgent rows, receipts off)--> deleted

A receipt for a row still queued (its PUBACK not yet processed) deletes it as well.

The same database keeps what must survive a restart besides the queue itself: the per-device
``seq`` counters (incremented in the same transaction as the row that carries them), a small
key/value store (uplink session number, cached desired state) and the replies to service calls
already executed (so that a redelivered call is answered again, never executed twice).

All methods are synchronous and short (one SQLite transaction each); they are called from the
event loop. A SIGKILL loses nothing that a method had returned from.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from edge.errors import OutboxError
from thingmodels.envelope import Envelope, encode
from thingmodels.errors import TopicError
from thingmodels.topics import Kind, parse


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
    #: events published and acknowledged by the broker, waiting for the cloud's receipt (they
    #: are also in ``queued_events``)
    awaiting_receipt: int = 0
    #: publications of awaiting rows after their receipt timeout
    resent_for_receipt: int = 0
    #: rows deleted on a receipt
    receipted: int = 0

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
    created_ms INTEGER NOT NULL,
    -- envelope id of a row that waits for the cloud's receipt after its PUBACK (events only)
    msg_id TEXT,
    -- 0 queued, 1 awaiting receipt
    state INTEGER NOT NULL DEFAULT 0,
    -- awaiting: when to publish it again (ms); tries: publications after the first
    due_ms INTEGER,
    tries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_kind_id ON outbox(kind, id);
CREATE TABLE IF NOT EXISTS seqs (device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS svc_calls (id TEXT PRIMARY KEY, topic TEXT NOT NULL,
                                      reply BLOB NOT NULL, created_ms INTEGER NOT NULL);
"""

#: columns added by the receipts (ALTER TABLE on an outbox written by an older gateway)
_RECEIPT_COLUMNS = {
    "msg_id": "TEXT",
    "state": "INTEGER NOT NULL DEFAULT 0",
    "due_ms": "INTEGER",
    "tries": "INTEGER NOT NULL DEFAULT 0",
}

_RECEIPT_INDEXES = """
CREATE INDEX IF NOT EXISTS outbox_msg_id ON outbox(msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_awaiting ON outbox(due_ms) WHERE state = 1;
"""

QUEUED = 0
AWAITING = 1


def wants_receipt(kind: RowKind, topic: str) -> bool:
    """Whether a row waits for the cloud's receipt: non-urgent events on an event topic.

    Presence (retained, superseded by the next state), telemetry, service replies and urgent
    decisions (answered locally when the cloud is late) leave on PUBACK.
    """
    if kind is not RowKind.EVENT:
        return False
    try:
        return parse(topic).kind is Kind.EVENT
    except TopicError:
        return False


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
        receipts: bool = True,
        receipt_timeout: float = 30.0,
        receipt_timeout_max: float = 600.0,
        receipt_jitter: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.receipts = receipts
        self.receipt_timeout = receipt_timeout
        self.receipt_timeout_max = max(receipt_timeout, receipt_timeout_max)
        self.receipt_jitter = min(max(receipt_jitter, 0.0), 0.9)
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
            self._migrate()
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

    def _migrate(self) -> None:
        have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(outbox)").fetchall()}
        for column, decl in _RECEIPT_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {decl}")
        self._db.executescript(_RECEIPT_INDEXES)
        if not self.receipts:
            # receipts switched off: what the broker acknowledged is done, as before receipts
            self._db.execute("DELETE FROM outbox WHERE state = ?", (AWAITING,))

    def _load_counts(self) -> None:
        rows = self._db.execute(
            "SELECT kind, state, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            " GROUP BY kind, state"
        ).fetchall()
        stats = self.stats
        stats.queued_events = stats.queued_telemetry = stats.queued_bytes = 0
        stats.awaiting_receipt = 0
        for kind, state, count, size in rows:
            if kind == RowKind.TELEMETRY:
                stats.queued_telemetry += count
            else:
                stats.queued_events += count
            if state == AWAITING:
                stats.awaiting_receipt += count
            stats.queued_bytes += size

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
                env, payload = self._insert(topic, envelope, kind, seq_key, qos, retain)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot store message for {topic}: {exc}") from exc
        self._appended(kind, payload)
        return env

    def _insert(
        self, topic: str, envelope: Envelope | Callable[[int], Envelope], kind: RowKind,
        seq_key: str | None, qos: int, retain: bool,
    ) -> tuple[Envelope, bytes]:
        """Write one row (and the device's next seq) in the caller's transaction."""
        if seq_key is not None:
            seq = self._next_seq(seq_key)
            env = envelope(seq) if callable(envelope) else envelope
        else:
            env = envelope if isinstance(envelope, Envelope) else envelope(0)
        payload = encode(env)
        msg_id = env.id if wants_receipt(kind, topic) else None
        cursor = self._db.execute(
            "INSERT INTO outbox(kind, topic, payload, qos, retain, created_ms, msg_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (int(kind), topic, payload, qos, int(retain), self._now_ms(), msg_id),
        )
        if kind is RowKind.URGENT and cursor.lastrowid is not None:
            self._last_urgent = cursor.lastrowid
        return env, payload

    def _appended(self, kind: RowKind, payload: bytes) -> None:
        """Counters, bounds and listeners after a row was committed."""
        if kind is RowKind.TELEMETRY:
            self.stats.queued_telemetry += 1
        else:
            self.stats.queued_events += 1
        self.stats.queued_bytes += len(payload)
        self._enforce_bounds()
        for callback in self._listeners:
            callback()

    def append_state(
        self, topic: str, envelope: Callable[[int], Envelope], *, seq_key: str, key: str,
        online: bool,
    ) -> Envelope:
        """Store a device's retained presence state and, in the same transaction, whether it
        was last reported online (kv ``key`` present) or not (absent): a gateway restarted
        after a crash knows which devices the cloud still holds online (:meth:`kv_keys`)."""
        try:
            with self._transaction():
                env, payload = self._insert(topic, envelope, RowKind.EVENT, seq_key, 1, True)
                if online:
                    self._db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)",
                                     (key, b""))
                else:
                    self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot store the state on {topic}: {exc}") from exc
        self._appended(RowKind.EVENT, payload)
        return env

    def append_reply(
        self, call_id: str, topic: str, envelope: Callable[[int], Envelope], *, seq_key: str,
    ) -> Envelope:
        """Store the reply to service call ``call_id`` (an urgent row) and remember it for a
        redelivered call (:meth:`known_reply`), both in ONE transaction: a crash leaves both or
        neither (a call without its memo would be executed again), and a call costs one commit
        instead of two."""
        try:
            with self._transaction():
                env, payload = self._insert(topic, envelope, RowKind.URGENT, seq_key, 1, False)
                self._db.execute(
                    "INSERT OR REPLACE INTO svc_calls(id, topic, reply, created_ms)"
                    " VALUES (?, ?, ?, ?)",
                    (call_id, topic, payload, self._now_ms()),
                )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot store the reply on {topic}: {exc}") from exc
        self._appended(RowKind.URGENT, payload)
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

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Make the appends inside one transaction (one commit for many rows, e.g. a telemetry
        flush). Nothing of the group is durable before it ends: not for events that must be
        durable before their device is answered."""
        outer = not self._db.in_transaction
        try:
            with self._transaction():
                yield
        except BaseException as exc:
            if outer:  # rolled back: the counters of the appends in it are recounted
                self._load_counts()
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"cannot store a group of messages: {exc}") from exc
            raise

    # -- bounds -------------------------------------------------------------------------

    def _drop_oldest(self, kind: RowKind, count: int, reason: str) -> int:
        kinds = (1,) if kind is RowKind.TELEMETRY else (0, 2)
        rows = self._db.execute(
            "SELECT id, LENGTH(payload), state FROM outbox"  # noqa: S608
            f" WHERE kind IN ({','.join('?' * len(kinds))}) ORDER BY id LIMIT ?",
            (*kinds, count),
        ).fetchall()
        if not rows:
            return 0
        self._delete([r[0] for r in rows])
        size = sum(r[1] for r in rows)
        self._count_drop(kind, len(rows), size, reason,
                         awaiting=sum(1 for r in rows if r[2] == AWAITING))
        return len(rows)

    def _count_drop(self, kind: RowKind, count: int, size: int, reason: str, *,
                    awaiting: int = 0) -> None:
        kind = RowKind.TELEMETRY if kind is RowKind.TELEMETRY else RowKind.EVENT
        if kind is RowKind.EVENT:
            self.stats.queued_events -= count
            self.stats.dropped_events += count
        else:
            self.stats.queued_telemetry -= count
            self.stats.dropped_telemetry += count
        self.stats.queued_bytes -= size
        self.stats.awaiting_receipt -= awaiting
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
                "SELECT id, LENGTH(payload), state FROM outbox"  # noqa: S608
                f" WHERE kind {op} 1 AND created_ms < ?",
                (cutoff,),
            ).fetchall()
            if rows:
                self._delete([r[0] for r in rows])
                self._count_drop(kind, len(rows), sum(r[1] for r in rows), "expired",
                                 awaiting=sum(1 for r in rows if r[2] == AWAITING))
                dropped += len(rows)
        return dropped

    # -- reading and acknowledging ------------------------------------------------------

    def peek(self, limit: int, after: int = 0, *, urgent: bool | None = None) -> list[Row]:
        """The oldest queued rows (not yet acknowledged by the broker) with id > ``after``.

        ``urgent=None``: every row in age order; ``True``: only urgent rows; ``False``: the rest.
        Rows awaiting a receipt are not here: :meth:`take_due` hands them out again.
        """
        where = {None: "", True: " AND kind = 2", False: " AND kind != 2"}[urgent]
        rows = self._db.execute(
            "SELECT id, kind, topic, payload, qos, retain, created_ms FROM outbox"  # noqa: S608
            f" WHERE id > ? AND state = 0{where} ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Row(r[0], RowKind(r[1]), r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def has_urgent_after(self, after: int) -> bool:
        """Whether an urgent row newer than ``after`` is waiting (cheap: tracked in memory)."""
        return self._last_urgent > after

    def ack(self, rowids: Iterable[int]) -> int:
        """Rows the broker acknowledged: deleted, or (events, receipts on) awaiting receipt
        until their next due time. Returns how many were still there."""
        ids = list(rowids)
        if not ids:
            return 0
        now = self._now_ms()
        gone: list[tuple[int, int]] = []  # (kind, size) of deleted rows
        first = 0
        try:
            with self._transaction():
                found = self._db.execute(
                    "SELECT id, kind, LENGTH(payload), msg_id, state, tries FROM outbox"  # noqa: S608
                    f" WHERE id IN ({','.join('?' * len(ids))})",
                    ids,
                ).fetchall()
                delete: list[int] = []
                for rowid, kind, size, msg_id, state, tries in found:
                    if state == QUEUED:
                        first += 1
                    if self.receipts and msg_id is not None:
                        self._db.execute(
                            "UPDATE outbox SET state = 1, due_ms = ? WHERE id = ?",
                            (now + self._receipt_delay_ms(tries), rowid),
                        )
                        if state == QUEUED:
                            self.stats.awaiting_receipt += 1
                    else:
                        delete.append(rowid)
                        gone.append((kind, size))
                        if state == AWAITING:
                            self.stats.awaiting_receipt -= 1
                self._delete(delete)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot acknowledge rows: {exc}") from exc
        self._forgotten(gone)
        self.stats.sent += first
        return len(found)

    def _forgotten(self, rows: Iterable[tuple[int, int]]) -> None:
        for kind, size in rows:
            if kind == RowKind.TELEMETRY:
                self.stats.queued_telemetry -= 1
            else:
                self.stats.queued_events -= 1
            self.stats.queued_bytes -= size

    def _receipt_delay_ms(self, tries: int) -> int:
        """Wait for a receipt after the PUBACK of publication ``tries`` (0 = the first):
        ``receipt_timeout`` doubling per try, capped, minus up to ``receipt_jitter`` of it."""
        base = min(self.receipt_timeout_max, self.receipt_timeout * 2 ** min(tries, 30))
        jitter = random.uniform(1 - self.receipt_jitter, 1.0)  # noqa: S311 - spreading, not crypto
        return int(base * jitter * 1000)

    def receipt(self, msg_ids: Iterable[str]) -> int:
        """The cloud committed these events: delete their rows (awaiting or still queued).

        Unknown ids (already receipted, dropped, another gateway's) are ignored. Returns how
        many rows were deleted.
        """
        ids = list(dict.fromkeys(msg_ids))
        if not ids:
            return 0
        found: list[tuple[int, int, int, int]] = []
        try:
            with self._transaction():
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    found += self._db.execute(
                        "SELECT id, kind, LENGTH(payload), state FROM outbox"  # noqa: S608
                        f" WHERE msg_id IN ({','.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                self._delete([r[0] for r in found])
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot apply a receipt: {exc}") from exc
        self._forgotten((kind, size) for _, kind, size, _ in found)
        for *_, state in found:
            if state == AWAITING:
                self.stats.awaiting_receipt -= 1
            else:
                self.stats.sent += 1  # receipted before its PUBACK was processed
        self.stats.receipted += len(found)
        return len(found)

    def take_due(self, limit: int) -> list[Row]:
        """Awaiting rows whose receipt is overdue, oldest due first, to publish again.

        Each one's next due time is set now (``tries`` + 1), so a row is not handed out twice
        while its publication is in flight, and one whose publication fails is due again later;
        its PUBACK (:meth:`ack`) sets the due time once more.
        """
        if not self.receipts or self.stats.awaiting_receipt <= 0:
            return []
        now = self._now_ms()
        try:
            with self._transaction():
                rows = self._db.execute(
                    "SELECT id, kind, topic, payload, qos, retain, created_ms, tries FROM outbox"
                    " WHERE state = 1 AND due_ms <= ? ORDER BY due_ms, id LIMIT ?",
                    (now, limit),
                ).fetchall()
                for r in rows:
                    self._db.execute(
                        "UPDATE outbox SET tries = ?, due_ms = ? WHERE id = ?",
                        (r[7] + 1, now + self._receipt_delay_ms(r[7] + 1), r[0]),
                    )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot take overdue rows: {exc}") from exc
        self.stats.resent_for_receipt += len(rows)
        return [Row(r[0], RowKind(r[1]), r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def next_due(self) -> float | None:
        """Seconds until the next awaiting row is due (None when nothing awaits)."""
        if not self.receipts or self.stats.awaiting_receipt <= 0:
            return None
        row = self._db.execute("SELECT MIN(due_ms) FROM outbox WHERE state = 1").fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, (int(row[0]) - self._now_ms()) / 1000)

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

    def kv_keys(self, prefix: str) -> list[str]:
        """The stored keys that start with ``prefix``, sorted."""
        rows = self._db.execute(
            "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix),
        ).fetchall()
        return [str(r[0]) for r in rows]

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
