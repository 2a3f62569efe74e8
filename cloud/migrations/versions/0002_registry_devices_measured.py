"""registry: devices.measured

When each value of ``devices.properties`` was measured (ms since epoch, by property name), so
that a flush merges by the newest measure time across workers and restarts (cloud/registry.py).
Existing rows get NULL: their values have no known time and any sample replaces them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 04:32:46.090124
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("measured", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("measured")
