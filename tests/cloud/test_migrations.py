"""Schema migrations (cloud.db, cloud/migrations) on SQLite and PostgreSQL.

This is the guard that a model change without a migration fails CI: ``test_upgrade_matches_models``
compares the schema the revisions build with the models (``docs/database.md``).

PostgreSQL: a uniquely named database per test (dropped afterwards); skipped when none answers at
127.0.0.1:5432, failed under CI=true.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from cloud import db
from cloud.alarms.tables import AlarmRow
from cloud.migrations.errors import MigrationError, SchemaMismatch, SchemaOutOfDate
from cloud.registry import DeviceRegistry, make_engine
from tests.support.postgres import BACKENDS, backend_url, database_fixture
from voltmesh import db_cli

#: a new PostgreSQL database for each test
pg_url = database_fixture("migr", scope="function")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database."""
    return backend_url(request, tmp_path)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _alarm(id_: str, state: str) -> AlarmRow:
    return AlarmRow(id=id_, type="t", level="major", dedupe="gw1/dev1/t", gw="gw1",
                    product="charger", device="dev1", state=state, first_raised_ms=1,
                    last_raised_ms=1, updated_ms=1)


def test_upgrade_matches_models(engine: Engine) -> None:
    """Head builds exactly the models' tables: a model change without a revision fails here."""
    with pytest.raises(SchemaOutOfDate):
        db.check(engine)
    assert db.current(engine) is None
    assert db.upgrade(engine) == db.head()
    assert db.current(engine) == db.head()
    assert _tables(engine) == set(db.model_metadata().tables) | {"alembic_version"}
    assert db.differences(engine) == []
    db.check(engine)
    assert db.upgrade(engine) == db.head()  # again: nothing to do


def test_partial_index_reproduced(engine: Engine) -> None:
    """alarm_live_dedupe admits one live alarm per key, any number of closed ones."""
    db.upgrade(engine)
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("alarm")}
    live = indexes["alarm_live_dedupe"]
    assert live["unique"]
    where = live.get("dialect_options", {}).get(f"{engine.dialect.name}_where")
    assert where is not None and "closed" in str(where)
    with Session(engine) as s:
        s.add(_alarm("a1", "closed"))
        s.add(_alarm("a2", "closed"))
        s.add(_alarm("a3", "open"))
        s.commit()
    with Session(engine) as s:
        s.add(_alarm("a4", "pending"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_a_changed_database_is_reported(engine: Engine) -> None:
    """The comparison is able to fail: a column too many, a partial index made total."""
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE gateways ADD COLUMN extra INTEGER"))
        conn.execute(text("DROP INDEX alarm_live_dedupe"))
        conn.execute(text("CREATE UNIQUE INDEX alarm_live_dedupe ON alarm (dedupe)"))
    diffs = db.differences(engine)
    kinds = {(d[0], d[2]) if d[0] == "modify_index_where" else (d[0], d[3].name)
             for d in diffs if isinstance(d, tuple)}
    assert ("remove_column", "extra") in kinds
    assert ("modify_index_where", "alarm_live_dedupe") in kinds
    with pytest.raises(SchemaMismatch) as err:
        db.check(engine)
    assert "extra" in str(err.value)
    assert "alarm_live_dedupe" in str(err.value)


def test_downgrade_base_and_up_again(engine: Engine) -> None:
    db.upgrade(engine)
    assert db.downgrade(engine, "base") is None
    assert _tables(engine) <= {"alembic_version"}
    assert db.upgrade(engine) == db.head()
    assert db.differences(engine) == []


def test_create_all_database_is_adopted(engine: Engine) -> None:
    """A database the services made with create_all is stamped, its rows kept."""
    registry = DeviceRegistry(engine)  # a real service: create_all of its tables, a row
    registry.seen("gw-legacy", "charger", "dev-1", 1_700_000_000_000, {"power": 7})
    registry.flush()
    db.model_metadata().create_all(engine)  # every other service's create_all
    assert db.current(engine) is None

    assert db.upgrade(engine) == db.head()  # matches the models: stamped at head
    assert db.differences(engine) == []
    with engine.connect() as conn:
        props = conn.execute(text("SELECT properties FROM devices WHERE gateway_id = 'gw-legacy'"))
        assert "power" in str(props.scalar_one())
    assert DeviceRegistry(engine).is_online("gw-legacy", "charger", "dev-1") is False


def test_mismatched_create_all_database_is_refused(engine: Engine) -> None:
    """Tables but no alembic_version, and a schema matching no revision: nothing is stamped."""
    db.model_metadata().create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_orders_status"))
    with pytest.raises(SchemaMismatch) as err:
        db.upgrade(engine)
    assert "ix_orders_status" in str(err.value)
    assert any(d[0] == "add_index" for d in err.value.differences if isinstance(d, tuple))
    assert db.current(engine) is None


def test_initial_revision_schema_is_scratch_built(engine: Engine) -> None:
    """The schema of the initial revision (what a pre-migration database is compared with) is
    built aside and thrown away: the database itself is untouched."""
    db.upgrade(engine)
    before = _tables(engine)
    with engine.connect() as conn, db._scratch_schema(conn, db.INITIAL_REVISION) as initial:
        assert set(initial.tables) == set(db.model_metadata().tables)
        # head == initial + 0002 (devices.measured): the database has the column, 0001 not
        diffs = db._differences(conn, initial)
        assert [(d[0], d[2], d[3].name) for d in diffs] == \
            [("remove_column", "devices", "measured")]
    assert _tables(engine) == before
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            left = conn.execute(text(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'vm_scratch_%'"))
            assert left.scalar_one() == 0


def test_unknown_revision_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(MigrationError, match="nonexistent"):
        db.upgrade(engine, "nonexistent")
    assert db.current(engine) is None


def test_workers_starting_together_take_turns(url: str, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite databases are one host's")
    results: list[object] = []

    def start() -> None:
        try:
            results.append(db.upgrade(url))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [db.head()] * 3
    assert db.differences(engine) == []


def test_cli(url: str, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert db_cli.main(["current", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == "(none)"
    assert db_cli.main(["check", "--url", url]) == 1
    assert db_cli.main(["upgrade", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == db.head()
    assert db_cli.main(["check", "--url", url]) == 0
    assert db_cli.main(["downgrade", "--url", url, "base"]) == 0
    assert db_cli.main(["stamp", "--url", url, db.head()]) == 0
    assert db.current(engine) == db.head()
    assert db_cli.main(["upgrade", "--url", url, "nonexistent"]) == 2
    assert "nonexistent" in capsys.readouterr().err


def test_cli_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cloud.yaml").write_text("database_url: sqlite:///rel.db\n")
    assert db_cli.main(["upgrade", "--config", str(tmp_path / "cloud.yaml")]) == 0
    assert (tmp_path / "rel.db").exists()  # relative to the config file, like the worker's
    assert db.current(f"sqlite:///{tmp_path / 'rel.db'}") == db.head()


def test_revision_of_unchanged_models_is_empty(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`voltmesh db revision` autogenerates against the head schema; with no model change the
    revision is empty. Written into a copy of the migrations, never the real versions/."""
    head = db.head()
    copy = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, copy)
    monkeypatch.setattr(db, "MIGRATIONS_DIR", copy)
    path = db.revision("no change")
    assert path.parent == copy / "versions"
    assert db.head() == path.name.split("_")[0] == f"{int(head) + 1:04d}"
    body = path.read_text()
    assert re.search(rf"down_revision: .* = [\"']{head}[\"']", body)
    assert "op." not in body  # no operation: the models equal the head schema
