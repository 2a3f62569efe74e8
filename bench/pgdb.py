"""Scratch PostgreSQL databases: created under a unique name, dropped (forced) afterwards.

Used by the benchmarks and, through ``tests/support/postgres.py``, by the tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine

from cloud.registry import make_engine


@contextmanager
def scratch_database(admin_url: str, prefix: str, *,
                     admin: Engine | None = None) -> Iterator[str]:
    """Create ``{prefix}_{random}`` on the server of ``admin_url``, yield its URL, drop it.

    ``admin``: an engine on ``admin_url`` already made (and checked) by the caller; it is
    disposed of at the end either way."""
    engine = admin if admin is not None else make_engine(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        engine.dispose()
