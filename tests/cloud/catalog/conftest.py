"""Catalogue test databases: SQLite files and PostgreSQL (one database per test session)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from cloud.catalog.models import CATALOG_TABLES
from cloud.registry import DeviceRow, GatewayRow, make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def catalog_pg_url() -> Iterator[str]:
    """A uniquely named PostgreSQL database for this test session (dropped at the end)."""
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN} ({exc}); the SQLite variant still runs")
    name = f"vm_catalog_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine with no catalogue tables yet (they are made by Catalog)."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
        yield eng
        eng.dispose()
        return
    url = request.getfixturevalue("catalog_pg_url")
    eng = make_engine(url)
    # the catalogue's tables and the device registry's (API tests use it for live status)
    tables = [t.__table__ for t in [*CATALOG_TABLES, GatewayRow, DeviceRow]]  # type: ignore[attr-defined]
    SQLModel.metadata.drop_all(eng, tables=tables)
    yield eng
    SQLModel.metadata.drop_all(eng, tables=tables)
    eng.dispose()
