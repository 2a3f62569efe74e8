"""The exceptions of the schema migrations.

::

    CloudError
    └── MigrationError        the schema could not be migrated or checked
        ├── SchemaMismatch    the database's tables differ from what they should be
        └── SchemaOutOfDate   the database is not at the newest revision
"""

from __future__ import annotations

from typing import Any

from cloud.errors import CloudError


class MigrationError(CloudError):
    """The schema could not be migrated or checked."""


class SchemaMismatch(MigrationError):
    """The database's schema differs from the expected one; ``differences`` lists how
    (Alembic's ``compare_metadata`` tuples)."""

    def __init__(self, message: str, differences: list[Any]) -> None:
        self.differences = differences
        super().__init__(message)


class SchemaOutOfDate(MigrationError):
    """The database is not at the head revision (``current`` is None when never migrated)."""

    def __init__(self, message: str, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(message)
