"""The device registry on SQLite and on PostgreSQL (same code)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cloud.registry import DeviceRegistry, make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_engine() -> Iterator[Engine]:
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"vm_test_{uuid.uuid4().hex[:10]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = make_engine(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    else:
        yield from _pg_engine()


def test_presence_last_seen_and_write_behind(engine: Engine) -> None:
    reg = DeviceRegistry(engine)
    assert reg.presence("gw", "gateway", "gw", True, 3, 1000)
    assert reg.presence("gw", "meter", "m1", True, 1, 1000)
    reg.seen("gw", "meter", "m1", 2000, {"power": 1.5})
    reg.seen("gw", "meter", "m2", 2100, None)
    assert not reg.presence("gw", "gateway", "gw", False, 2, 2500)  # older session: ignored
    assert reg.flush() == 3
    assert reg.flush() == 0  # nothing changed
    devices = {d["device"]: d for d in reg.list_devices()}
    assert devices["m1"]["online"] is True and devices["m1"]["lastSeen"] == 2000
    assert devices["m1"]["properties"] == {"power": 1.5}
    assert devices["m2"]["online"] is False
    assert reg.online_count() == 1
    # gateway offline (its own session): its devices are listed offline
    assert reg.presence("gw", "gateway", "gw", False, 3, 3000)
    reg.flush()
    assert [d["online"] for d in reg.list_devices(online=True)] == []
    # a new registry on the same database sees the same state
    again = DeviceRegistry(engine)
    assert {d["device"] for d in again.list_devices(gateway="gw")} == {"m1", "m2"}
    assert again.list_gateways()[0]["session"] == 3
