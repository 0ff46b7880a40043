"""OAuth2 clients and tokens, avatars and system tags carried over from ownCloud 10
(migrate/account_data.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["uid"], ["users.uid"], name=op.f(f"fk_{table}_uid"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "oauth2_clients",
        sa.Column("id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("allow_subdomains", sa.Boolean(), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth2_clients")),
        sa.UniqueConstraint("identifier", name=op.f("uq_oauth2_clients_identifier")),
    )
    for table, extra in (("oauth2_access_tokens", sa.Column("expires", BIGINT, nullable=False)),
                         ("oauth2_refresh_tokens",
                          sa.Column("access_token_id", BIGINT, nullable=True))):
        op.create_table(
            table,
            sa.Column("id", BIGINT, autoincrement=False, nullable=False),
            sa.Column("token", sa.String(length=64), nullable=False),
            sa.Column("client_id", BIGINT, nullable=False),
            sa.Column("uid", sa.String(length=255), nullable=False),
            extra,
            _user_fk(table),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("token", name=op.f(f"uq_{table}_token")),
        )
        op.create_index(op.f(f"ix_{table}_uid"), table, ["uid"], unique=False)
    op.create_table(
        "avatars",
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("blob_id", sa.String(length=200), nullable=False),
        sa.Column("mimetype", sa.String(length=255), nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("mtime", BIGINT, nullable=False),
        _user_fk("avatars"),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_avatars")),
    )
    op.create_table(
        "systemtags",
        sa.Column("id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("visibility", sa.SmallInteger(), nullable=False),
        sa.Column("editable", sa.SmallInteger(), nullable=False),
        sa.Column("assignable", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_systemtags")),
        sa.UniqueConstraint("name", "visibility", "editable", "assignable",
                            name=op.f("uq_systemtags_name_visibility_editable_assignable")),
    )
    op.create_table(
        "systemtag_objects",
        sa.Column("fileid", BIGINT, nullable=False),
        sa.Column("tag_id", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(["fileid"], ["nodes.fileid"],
                                name=op.f("fk_systemtag_objects_fileid"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tag_id"], ["systemtags.id"],
                                name=op.f("fk_systemtag_objects_tag_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("fileid", "tag_id", name=op.f("pk_systemtag_objects")),
    )
    op.create_index(op.f("ix_systemtag_objects_tag_id"), "systemtag_objects", ["tag_id"],
                    unique=False)
    op.create_table(
        "systemtag_groups",
        sa.Column("tag_id", BIGINT, nullable=False),
        sa.Column("gid", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["tag_id"], ["systemtags.id"],
                                name=op.f("fk_systemtag_groups_tag_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("gid", "tag_id", name=op.f("pk_systemtag_groups")),
    )


def downgrade() -> None:
    op.drop_table("systemtag_groups")
    op.drop_index(op.f("ix_systemtag_objects_tag_id"), table_name="systemtag_objects")
    op.drop_table("systemtag_objects")
    op.drop_table("systemtags")
    op.drop_table("avatars")
    for table in ("oauth2_refresh_tokens", "oauth2_access_tokens"):
        op.drop_index(op.f(f"ix_{table}_uid"), table_name=table)
        op.drop_table(table)
    op.drop_table("oauth2_clients")
