"""PostgreSQL databases for the tests that run on SQLite AND PostgreSQL.

``VOLTMESH_PG_URL`` names the server's admin database (default: the local trust-auth server).
No PostgreSQL answering: the test is skipped with the reason, except under ``CI=true`` where it
must run, so it fails. Only the PostgreSQL variant asks for a database: the SQLite one always
runs.

In a conftest::

    pg_url = database_fixture("acct")                 # one database per test session
    engine = backend_engine("pg_url", prepare=clean)  # each test on SQLite, then PostgreSQL
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.pgdb import scratch_database
from cloud.registry import make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: the params of a fixture that runs each test on both databases
BACKENDS = ("sqlite", "postgresql")


def pg_database(tag: str) -> Iterator[str]:
    """Create a database ``vm_<tag>_<random>``, yield its URL, drop it afterwards."""
    if not re.fullmatch(r"[a-z0-9_]{1,30}", tag):
        raise ValueError(f"bad database tag {tag!r}")
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc} (the SQLite variant still runs)")
    with scratch_database(PG_ADMIN, f"vm_{tag}", admin=admin) as url:
        yield url


def database_fixture(tag: str, name: str = "pg_url", *,
                     scope: Literal["session", "function"] = "session") -> Any:
    """A fixture ``name`` yielding the URL of a new PostgreSQL database (:func:`pg_database`):
    one per test session, or with ``scope="function"`` one per test."""

    @pytest.fixture(scope=scope, name=name)
    def database() -> Iterator[str]:
        yield from pg_database(tag)

    return database


def backend_url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str = "pg_url") -> str:
    """The database of a test of a ``params=BACKENDS`` fixture: a SQLite file in ``tmp_path``,
    or the URL of the fixture named ``pg_url`` (asked for only then)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue(pg_url))


def backend_engine(pg_url: str = "pg_url", name: str = "engine", *,
                   prepare: Callable[[Engine], None] | None = None) -> Any:
    """A fixture ``name`` running each test on SQLite and on PostgreSQL (the database of the
    fixture ``pg_url``): an engine, after ``prepare(engine)`` (e.g. dropping the package's
    tables left by an earlier test of the session), disposed afterwards."""

    @pytest.fixture(params=BACKENDS, name=name)
    def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
        eng = make_engine(backend_url(request, tmp_path, pg_url))
        if prepare is not None:
            prepare(eng)
        yield eng
        eng.dispose()

    return engine
