"""Catalogue test databases: SQLite files and PostgreSQL (one database per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from cloud.catalog.models import CATALOG_TABLES
from cloud.registry import DeviceRow, GatewayRow, make_engine
from tests.support.postgres import pg_database


@pytest.fixture(scope="session")
def catalog_pg_url() -> Iterator[str]:
    """A uniquely named PostgreSQL database for this test session (dropped at the end)."""
    yield from pg_database("catalog")


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
