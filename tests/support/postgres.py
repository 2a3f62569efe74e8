"""One PostgreSQL database per test session, for the tests that run on SQLite AND PostgreSQL.

``VOLTMESH_PG_URL`` names the server's admin database (default: the local trust-auth server).
No PostgreSQL answering: the test is skipped with the reason, except under ``CI=true`` where it
must run, so it fails.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from cloud.registry import make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
    name = f"vm_{tag}_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
