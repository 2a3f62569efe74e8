"""SQL helpers that behave the same on SQLite and PostgreSQL.

* :func:`insert_ignore`: ``INSERT ... ON CONFLICT DO NOTHING`` (both dialects have it).
* :func:`lock_order`: ``SELECT ... FOR UPDATE`` on PostgreSQL (the row lock); on SQLite, which
  ignores ``FOR UPDATE``, ``UPDATE orders SET version = version WHERE id = :id`` first: it starts
  the write transaction (pysqlite begins one before DML), which serialises writers on the file,
  so the read that follows cannot race another worker. Every change to an order happens under
  this lock, in one transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from cloud.orders.models import Order


def insert_ignore(session: Session, table: Table,
                  values: dict[str, Any] | list[dict[str, Any]], conflict: list[str]) -> bool:
    """Insert a row (or rows) unless one with the same ``conflict`` columns exists; True when
    something was inserted."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        pg = postgresql.insert(table).values(values).on_conflict_do_nothing(
            index_elements=conflict)
        return bool(session.execute(pg).rowcount)  # type: ignore[attr-defined]
    if name == "sqlite":
        lite = sqlite.insert(table).values(values).on_conflict_do_nothing(
            index_elements=conflict)
        return bool(session.execute(lite).rowcount)  # type: ignore[attr-defined]
    try:  # pragma: no cover - other dialects: a savepoint around a plain insert
        with session.begin_nested():
            session.execute(table.insert().values(values))
        return True
    except IntegrityError:  # pragma: no cover
        return False


def lock_order(session: Session, order_id: int) -> Order | None:
    """The order, locked for this transaction (None when it does not exist)."""
    query = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        return session.exec(query.with_for_update()).first()
    session.execute(update(Order).where(Order.id == order_id)  # type: ignore[arg-type]
                    .values(version=Order.version))
    return session.exec(query).first()


def order_id_of(session: Session, gw: str, device: str, session_id: str) -> int | None:
    """The id of the order of a session."""
    return session.exec(select(Order.id).where(Order.gw == gw, Order.device == device,
                                               Order.session_id == session_id)).first()
