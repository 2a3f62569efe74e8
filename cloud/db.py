"""The cloud database's schema: Alembic migrations driven from code (no ``alembic.ini``).

::

    upgrade(target, revision="head") -> str | None    migrate (adopting a create_all database)
    downgrade(target, revision) -> str | None
    current(target) -> str | None                     the database's revision (None: none)
    stamp(target, revision) -> None                   record a revision without migrating
    differences(target) -> list                       how the tables differ from the models
    check(target) -> None                             SchemaOutOfDate / SchemaMismatch unless
                                                      at head and equal to the models
    revision(message, target=None) -> Path            autogenerate the next revision file

``target`` is an :class:`~sqlalchemy.engine.Engine` or a database URL (an engine made from a URL
is disposed of afterwards). A database that has the tables (made by the services'
``create_all``) but no ``alembic_version`` is *adopted* by :func:`upgrade`: stamped at the
revision whose schema it matches (the models' = head, or the initial revision) after checking,
refused with :class:`SchemaMismatch` otherwise. See ``docs/database.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import SQLModel

from cloud.migrations.errors import MigrationError, SchemaMismatch, SchemaOutOfDate
from cloud.registry import make_engine

log = logging.getLogger("voltmesh.db")

#: where env.py, script.py.mako and versions/ live
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: the first revision: the schema the services' create_all made before migrations existed
INITIAL_REVISION = "0001"
VERSION_TABLE = "alembic_version"

#: every module that defines tables (imported so that the SQLModel metadata holds them all)
MODEL_MODULES = (
    "cloud.registry",
    "cloud.catalog.models",
    "cloud.orders.models",
    "cloud.accounts.models",
    "cloud.payments.models",
    "cloud.alarms.tables",
    "cloud.auth.models",
)
#: modules with tables that may not exist in every checkout (imported when present)
OPTIONAL_MODEL_MODULES = ("cloud.api.commands",)
#: the dialects a revision must work on
DIALECTS = ("postgresql", "sqlite")
#: an arbitrary constant key of the PostgreSQL advisory lock held while migrating
_PG_LOCK_KEY = 0x766D_6462  # "vmdb"


def model_metadata() -> MetaData:
    """The SQLModel metadata with every table of the cloud (imports every models module)."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    for name in OPTIONAL_MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return SQLModel.metadata


# -- configuration -----------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the cloud's migrations (``connection``: the one to use)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    cfg.set_main_option("path_separator", "os")
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():  # revision files come out lint-clean and formatted
        cfg.set_section_option("post_write_hooks", "hooks", "fix, format")
        for name, args in (("fix", "check --fix --quiet"), ("format", "format --quiet")):
            cfg.set_section_option("post_write_hooks", f"{name}.type", "exec")
            cfg.set_section_option("post_write_hooks", f"{name}.executable", str(ruff))
            cfg.set_section_option("post_write_hooks", f"{name}.options",
                                   f"{args} REVISION_SCRIPT_FILENAME")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


class _NamedDialect(DefaultDialect):
    """A dialect that only has a name: a TypeDecorator's per-dialect choice, unadapted."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def _render_sa(type_: TypeEngine[Any]) -> str:
    return f"sa.{type_!r}"


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render the project's column types as plain SQLAlchemy types in revision files.

    A revision must not import the models: a :class:`TypeDecorator` (``ExactDecimal``,
    ``Money``, SQLModel's ``AutoString``) is written as the type it creates on each dialect
    (``sa.Numeric(...).with_variant(sa.String(...), 'sqlite')``), so the revision keeps creating
    what it created even when the model code changes later.
    """
    if type_ != "type" or not isinstance(obj, TypeDecorator):
        return False
    impls = {name: obj.load_dialect_impl(_NamedDialect(name)) for name in DIALECTS}
    base = impls["postgresql"]
    rendered = _render_sa(base)
    for name, impl in impls.items():
        if repr(impl) != repr(base):
            rendered += f".with_variant({_render_sa(impl)}, {name!r})"
    return rendered


def context_options() -> dict[str, Any]:
    """The options env.py passes to ``context.configure`` (also used by :func:`differences`)."""
    return {
        "render_as_batch": True,  # SQLite can only ALTER by copying a table
        "compare_type": True,
        "render_item": render_item,
        "version_table": VERSION_TABLE,
    }


# -- engines and connections -------------------------------------------------------------------


@contextlib.contextmanager
def _engine(target: Engine | str) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def _lock(conn: Connection) -> None:
    """Serialize migrations of workers starting together (PostgreSQL; SQLite is one host)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def _current(conn: Connection) -> str | None:
    heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}) \
        .get_current_heads()
    if len(heads) > 1:
        raise MigrationError(f"the database has several heads: {', '.join(heads)}")
    return heads[0] if heads else None


def head() -> str:
    """The newest revision."""
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if found is None:
        raise MigrationError(f"no revisions in {MIGRATIONS_DIR / 'versions'}")
    return found


def _run(conn: Connection, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    model_metadata()
    try:
        return action(alembic_config(conn), *args, **kwargs)
    except AlembicCommandError as exc:  # an unknown revision, several heads ...
        raise MigrationError(str(exc)) from exc


# -- comparing ---------------------------------------------------------------------------------


_CAST = re.compile(r"::[a-z_ ]+")


def _normalize_where(clause: Any) -> str:
    sql = _CAST.sub("", str(clause).lower())
    return re.sub(r"[\s()\"]", "", sql)


def _where_differences(conn: Connection, metadata: MetaData) -> list[Any]:
    """Partial indexes whose WHERE differs (Alembic compares only the indexed columns)."""
    name = conn.dialect.name
    insp = inspect(conn)
    found: list[Any] = []
    existing = set(insp.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        reflected = {ix["name"]: ix for ix in insp.get_indexes(table.name)}
        for index in table.indexes:
            want = index.dialect_kwargs.get(f"{name}_where")
            got_ix = reflected.get(index.name or "")
            if got_ix is None:
                continue  # a missing index is Alembic's finding
            got = (got_ix.get("dialect_options") or {}).get(f"{name}_where")
            if (want is None) != (got is None) or \
                    (want is not None and _normalize_where(want) != _normalize_where(got)):
                found.append(("modify_index_where", table.name, index.name, got, want))
    return found


def _differences(conn: Connection, metadata: MetaData) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts=context_options())
    diffs: list[Any] = list(compare_metadata(ctx, metadata))
    return diffs + _where_differences(conn, metadata)


def differences(target: Engine | str) -> list[Any]:
    """How the database's tables differ from the models (empty: they match).

    Alembic's ``compare_metadata`` tuples (``("add_table", Table)``, ``("remove_index", Index)``,
    lists of ``modify_*`` tuples ...) plus ``("modify_index_where", table, index, found,
    expected)`` for partial indexes.
    """
    with _engine(target) as engine, engine.connect() as conn:
        return _differences(conn, model_metadata())


def check(target: Engine | str) -> None:
    """Nothing when the database is at head and matches the models; else
    :class:`SchemaOutOfDate` or :class:`SchemaMismatch` (with the differences)."""
    with _engine(target) as engine, engine.connect() as conn:
        at, newest = _current(conn), head()
        if at != newest:
            raise SchemaOutOfDate(
                f"the database is at revision {at or '(none)'}, the code needs {newest}: "
                "run `voltmesh db upgrade`", at, newest)
        diffs = _differences(conn, model_metadata())
    if diffs:
        raise SchemaMismatch(describe_differences(
            "the database differs from the models", diffs), diffs)


def describe_differences(title: str, diffs: list[Any]) -> str:
    """A readable message listing ``diffs``."""
    lines = [f"{title}:"]
    for diff in diffs:
        items = diff if isinstance(diff, list) else [diff]
        for item in items:
            lines.append("  " + " ".join(_describe(x) for x in item))
    return "\n".join(lines)


def _describe(value: Any) -> str:
    name = getattr(value, "name", None)
    if name is not None and not isinstance(value, str):
        table = getattr(value, "table", None)
        return f"{table.name}.{name}" if table is not None and hasattr(table, "name") else name
    return repr(value) if not isinstance(value, str) else value


# -- adopting a database made by create_all ---------------------------------------------------


def _model_tables_present(conn: Connection, metadata: MetaData) -> set[str]:
    return set(inspect(conn).get_table_names()) & set(metadata.tables)


@contextlib.contextmanager
def _scratch_schema(conn: Connection, revision: str) -> Iterator[MetaData]:
    """The tables of ``revision`` (reflected from a scratch database that is thrown away)."""
    if conn.dialect.name == "sqlite":
        with _engine("sqlite://") as scratch, scratch.connect() as sconn:
            _run(sconn, command.upgrade, revision)
            sconn.commit()
            md = MetaData()
            md.reflect(sconn)
            md.remove(md.tables[VERSION_TABLE])
            yield md
        return
    if conn.dialect.name != "postgresql":
        raise MigrationError(f"cannot build the schema of {revision} on {conn.dialect.name}")
    # PostgreSQL: DDL is transactional: a schema of its own, first on the search path (the
    # reflection of the unqualified names sees it), rolled back afterwards
    schema = f"vm_scratch_{uuid.uuid4().hex[:12]}"
    md = MetaData()
    with conn.engine.connect() as sconn:
        sconn.begin()
        try:
            sconn.execute(text(f'CREATE SCHEMA "{schema}"'))
            sconn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            _run(sconn, command.upgrade, revision)
            md.reflect(sconn)
        finally:
            sconn.rollback()
    md.remove(md.tables[VERSION_TABLE])
    yield md


def _adopt(conn: Connection, metadata: MetaData) -> str:
    """Stamp a create_all database at the revision it matches; SchemaMismatch if none."""
    present = _model_tables_present(conn, metadata)
    to_models = _differences(conn, metadata)
    if not to_models:
        newest = head()
        _run(conn, command.stamp, newest)
        log.warning("adopted a database made by create_all: matches the models, stamped %s",
                    newest)
        return newest
    with _scratch_schema(conn, INITIAL_REVISION) as initial:
        to_initial = _differences(conn, initial)
    if not to_initial:
        _run(conn, command.stamp, INITIAL_REVISION)
        log.warning("adopted a database made by create_all: matches revision %s, stamped",
                    INITIAL_REVISION)
        return INITIAL_REVISION
    raise SchemaMismatch(describe_differences(
        f"the database has {len(present)} of the cloud's tables but no {VERSION_TABLE}, and "
        "matches neither the models nor the initial revision; fix it by hand, then "
        "`voltmesh db stamp <revision>`. Differences from the models", to_models), to_models)


# -- commands ----------------------------------------------------------------------------------


def upgrade(target: Engine | str, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` and return where it is now.

    Workers starting together on PostgreSQL take turns (an advisory lock); a database that has
    the cloud's tables but no ``alembic_version`` is adopted first (see the module doc).
    """
    with _engine(target) as engine:
        with engine.begin() as conn:
            _lock(conn)
            metadata = model_metadata()
            if _current(conn) is None and _model_tables_present(conn, metadata):
                _adopt(conn, metadata)
            _run(conn, command.upgrade, revision)
        with engine.connect() as conn:
            return _current(conn)


def downgrade(target: Engine | str, revision: str) -> str | None:
    """Migrate the database down to ``revision`` (``"base"``: drop everything)."""
    with _engine(target) as engine:
        with engine.begin() as conn:
            _lock(conn)
            _run(conn, command.downgrade, revision)
        with engine.connect() as conn:
            return _current(conn)


def current(target: Engine | str) -> str | None:
    """The database's revision (None: never migrated nor stamped)."""
    with _engine(target) as engine, engine.connect() as conn:
        return _current(conn)


def stamp(target: Engine | str, revision: str) -> None:
    """Record ``revision`` as the database's without running migrations."""
    with _engine(target) as engine, engine.begin() as conn:
        _lock(conn)
        _run(conn, command.stamp, revision)


def revision(message: str, target: Engine | str | None = None, *,
             rev_id: str | None = None, autogenerate: bool = True) -> Path:
    """Write the next revision file (autogenerated against ``target`` migrated to head, by
    default a scratch SQLite database) and return its path. Review it before committing."""
    with contextlib.ExitStack() as stack:
        if target is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="vm-revision-"))
            target = f"sqlite:///{Path(tmp) / 'head.db'}"
        engine = stack.enter_context(_engine(target))
        if autogenerate:
            upgrade(engine)
        conn = stack.enter_context(engine.begin())
        model_metadata()
        number = rev_id or _next_rev_id()
        script = _run(conn, command.revision, message=message, autogenerate=autogenerate,
                      rev_id=number)
    scripts = script if isinstance(script, list) else [script]
    if not scripts or scripts[0] is None:
        raise MigrationError("alembic wrote no revision")
    return Path(scripts[0].path)


def _next_rev_id() -> str:
    numbers = [int(rev.revision) for rev in
               ScriptDirectory.from_config(alembic_config()).walk_revisions()
               if rev.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


__all__ = [
    "INITIAL_REVISION",
    "MIGRATIONS_DIR",
    "MigrationError",
    "SchemaMismatch",
    "SchemaOutOfDate",
    "alembic_config",
    "check",
    "current",
    "describe_differences",
    "differences",
    "downgrade",
    "head",
    "model_metadata",
    "revision",
    "stamp",
    "upgrade",
]
