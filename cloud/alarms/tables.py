"""The alarm tables (SQLModel, global metadata; SQLite and PostgreSQL with the same code).

* ``alarm``: one row per alarm. The partial unique index ``alarm_live_dedupe`` admits at most
  one row per dedupe key whose state is not ``closed``: the database, not a worker's memory,
  guarantees one alarm per key, also with several cloud workers.
* ``alarm_key``: one row per dedupe key ever seen: the row every transaction on that key locks
  first (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), the newest
  raise and the newest clear seen for the key (debounce and hysteresis decide on them) and the
  live alarm's id.
* ``alarm_event``: the history, one row per transition, with time and actor.
* ``alarm_seen``: action keys already processed (replays change nothing); pruned after the
  retention.
* ``alarm_rejected``: signals that could not be processed, kept with the reason.

Times are milliseconds since the epoch in BIGINT columns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

_BIGINT = BigInteger()
#: SQLite only auto-increments an INTEGER PRIMARY KEY
_ROWID = BigInteger().with_variant(Integer(), "sqlite")
_LIVE = text("state <> 'closed'")


class AlarmRow(SQLModel, table=True):
    """An alarm and the state of its raise/clear conditions (debounce, hysteresis)."""

    __tablename__ = "alarm"
    __table_args__ = (
        Index("alarm_live_dedupe", "dedupe", unique=True, sqlite_where=_LIVE,
              postgresql_where=_LIVE),
        Index("alarm_state_first", "state", "first_raised_ms"),
        Index("alarm_device", "gw", "device"),
    )

    id: str = Field(primary_key=True, max_length=26)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    type: str = Field(index=True, max_length=128)
    level: str = Field(max_length=16)
    dedupe: str = Field(max_length=512)
    gw: str = Field(max_length=128)
    product: str = Field(max_length=32)
    device: str = Field(max_length=128)
    rule: str = Field(default="", max_length=128)
    state: str = Field(max_length=16)
    #: the first raise signal (start of the condition)
    first_raised_ms: int = Field(sa_type=_BIGINT, index=True)
    #: when it became open (first time); None while pending
    opened_ms: int | None = Field(default=None, sa_type=_BIGINT)
    last_raised_ms: int = Field(sa_type=_BIGINT)
    raise_count: int = 0
    cleared_ms: int | None = Field(default=None, sa_type=_BIGINT)
    acknowledged_by: str | None = Field(default=None, max_length=256)
    acknowledged_ms: int | None = Field(default=None, sa_type=_BIGINT)
    ack_note: str | None = None
    closed_by: str | None = Field(default=None, max_length=256)
    closed_ms: int | None = Field(default=None, sa_type=_BIGINT)
    close_note: str | None = None
    message: str = ""
    last_value: Any = Field(default=None, sa_column=Column(JSON))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    debounce_ms: int = Field(default=0, sa_type=_BIGINT)
    clear_after_ms: int = Field(default=0, sa_type=_BIGINT)
    #: start of the current run of raise signals (None after a clear signal)
    raise_since_ms: int | None = Field(default=None, sa_type=_BIGINT)
    #: start of the current run of clear signals (None after a raise signal)
    clear_since_ms: int | None = Field(default=None, sa_type=_BIGINT)
    #: the last activity (raise, clear, ack, close): list filters since/until use it
    updated_ms: int = Field(sa_type=_BIGINT, index=True)
    #: incremented on every transition (idempotency keys of notifications and points)
    revision: int = 0


class AlarmKeyRow(SQLModel, table=True):
    """The lock row of one dedupe key, its newest raise and clear signal and its live alarm."""

    __tablename__ = "alarm_key"

    dedupe: str = Field(primary_key=True, max_length=512)
    last_raise_ms: int | None = Field(default=None, sa_type=_BIGINT)
    last_clear_ms: int | None = Field(default=None, sa_type=_BIGINT)
    alarm_id: str | None = Field(default=None, max_length=26)


class AlarmEventRow(SQLModel, table=True):
    """One transition of an alarm."""

    __tablename__ = "alarm_event"

    id: int | None = Field(default=None, sa_column=Column(_ROWID, primary_key=True,
                                                          autoincrement=True))
    alarm_id: str = Field(index=True, max_length=26)
    revision: int
    ts_ms: int = Field(sa_type=_BIGINT)
    event: str = Field(max_length=16)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str = Field(max_length=16)
    actor: str = Field(max_length=256)
    note: str | None = None
    value: Any = Field(default=None, sa_column=Column(JSON))


class AlarmSeenRow(SQLModel, table=True):
    """An action key already processed."""

    __tablename__ = "alarm_seen"

    key: str = Field(primary_key=True, max_length=512)
    seen_ms: int = Field(sa_type=_BIGINT, index=True)


class AlarmRejectedRow(SQLModel, table=True):
    """A signal that could not be processed, and why."""

    __tablename__ = "alarm_rejected"

    id: int | None = Field(default=None, sa_column=Column(_ROWID, primary_key=True,
                                                          autoincrement=True))
    key: str = Field(max_length=512)
    rule: str = Field(max_length=128)
    received_ms: int = Field(sa_type=_BIGINT, index=True)
    reason: str
    signal: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


TABLES = [AlarmRow, AlarmKeyRow, AlarmEventRow, AlarmSeenRow, AlarmRejectedRow]


def create_tables(engine: Engine) -> None:
    """Create the alarm tables that do not exist yet (and only those)."""
    SQLModel.metadata.create_all(engine, tables=[
        t.__table__ for t in TABLES  # type: ignore[attr-defined]
    ])
