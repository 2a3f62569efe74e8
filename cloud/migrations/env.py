"""Alembic's environment for the cloud database: online only, on the connection that
:mod:`cloud.db` hands over (``config.attributes["connection"]``), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cloud.db import context_options, model_metadata
from cloud.migrations.errors import MigrationError


def run() -> None:
    """Run the migrations on the connection given by :mod:`cloud.db`."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise MigrationError("run migrations through cloud.db / `voltmesh db`, on a connection")
    context.configure(connection=connection, target_metadata=model_metadata(),
                      **context_options())
    with context.begin_transaction():
        context.run_migrations()


run()
