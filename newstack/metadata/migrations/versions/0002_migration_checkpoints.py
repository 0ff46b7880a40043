"""Checkpoints of per-user migration jobs (migrate/runner.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "migration_checkpoints",
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("position", BIGINT, nullable=False),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("updated", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("uid", "phase", name=op.f("pk_migration_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("migration_checkpoints")
