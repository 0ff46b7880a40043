"""Shares with oc_share's columns (newstack/sharing/native_store.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
_ZERO = sa.text("0")


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("share_type", sa.SmallInteger(), nullable=False),
        sa.Column("share_with", sa.String(length=255), nullable=True),
        sa.Column("uid_owner", sa.String(length=255), nullable=False),
        sa.Column("uid_initiator", sa.String(length=255), nullable=True),
        sa.Column("parent", BIGINT, nullable=True),
        sa.Column("item_type", sa.String(length=64), nullable=False),
        sa.Column("item_source", sa.String(length=255), nullable=True),
        sa.Column("item_target", sa.String(length=255), nullable=True),
        sa.Column("file_source", BIGINT, nullable=True),
        sa.Column("file_target", sa.String(length=512), nullable=True),
        sa.Column("permissions", sa.SmallInteger(), server_default=_ZERO, nullable=False),
        sa.Column("stime", BIGINT, server_default=_ZERO, nullable=False),
        sa.Column("accepted", sa.SmallInteger(), server_default=_ZERO, nullable=False),
        sa.Column("expiration", sa.DateTime(), nullable=True),
        sa.Column("token", sa.String(length=32), nullable=True),
        sa.Column("mail_send", sa.SmallInteger(), server_default=_ZERO, nullable=False),
        sa.Column("share_name", sa.String(length=64), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )
    for column in ("file_source", "share_with", "token", "parent", "uid_initiator",
                   "uid_owner"):
        op.create_index(f"ix_shares_{column}", "shares", [column], unique=False)


def downgrade() -> None:
    op.drop_table("shares")
