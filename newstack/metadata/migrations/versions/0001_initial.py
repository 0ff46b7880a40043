"""The first schema: every table of newstack/metadata/schema.py as of ocbridge 0.1.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit everywhere; on SQLite an INTEGER PRIMARY KEY is the rowid
BIGINT = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fileid_alloc",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("base", BIGINT, nullable=False),
        sa.Column("next_id", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fileid_alloc")),
    )
    op.create_table(
        "groups",
        sa.Column("gid", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("gid", name=op.f("pk_groups")),
    )
    op.create_table(
        "instance",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_instance")),
    )
    op.create_table(
        "locks",
        sa.Column("token", sa.String(length=1024), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("depth", sa.SmallInteger(), nullable=False),
        sa.Column("timeout", BIGINT, nullable=False),
        sa.Column("created_at", BIGINT, nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_locks")),
    )
    op.create_index(op.f("ix_locks_uid"), "locks", ["uid"], unique=False)
    op.create_table(
        "users",
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("uid_lower", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("email_lower", sa.String(length=255), nullable=True),
        sa.Column("password", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("quota", sa.String(length=32), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("last_login", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("language", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_users")),
        sa.UniqueConstraint("uid_lower", name=op.f("uq_users_uid_lower")),
    )
    op.create_index(op.f("ix_users_email_lower"), "users", ["email_lower"], unique=False)
    op.create_table(
        "app_passwords",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("login_name", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_activity", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("last_check", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["uid"], ["users.uid"], name=op.f("fk_app_passwords_uid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_passwords")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_app_passwords_token_hash")),
    )
    op.create_index(op.f("ix_app_passwords_uid"), "app_passwords", ["uid"], unique=False)
    op.create_table(
        "group_members",
        sa.Column("gid", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["gid"], ["groups.gid"], name=op.f("fk_group_members_gid"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uid"], ["users.uid"], name=op.f("fk_group_members_uid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("gid", "uid", name=op.f("pk_group_members")),
    )
    op.create_index(op.f("ix_group_members_uid"), "group_members", ["uid"], unique=False)
    op.create_table(
        "nodes",
        sa.Column("fileid", BIGINT, autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("area", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("path_hash", sa.String(length=32), nullable=False),
        sa.Column("parent", BIGINT, nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("is_dir", sa.Boolean(), nullable=False),
        sa.Column("size", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("mtime", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("etag", sa.String(length=40), nullable=False),
        sa.Column("checksum", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("mimetype", sa.String(length=255), nullable=False),
        sa.Column("permissions", sa.Integer(), nullable=False),
        sa.Column("blob_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner"], ["users.uid"], name=op.f("fk_nodes_owner"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("fileid", name=op.f("pk_nodes")),
        sa.UniqueConstraint(
            "owner", "area", "path_hash", name=op.f("uq_nodes_owner_area_path_hash")
        ),
    )
    op.create_index("ix_nodes_parent_name", "nodes", ["parent", "name"], unique=False)
    op.create_table(
        "comment_read_markers",
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("fileid", BIGINT, nullable=False),
        sa.Column("marked_at", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"],
            ["nodes.fileid"],
            name=op.f("fk_comment_read_markers_fileid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("uid", "fileid", name=op.f("pk_comment_read_markers")),
    )
    op.create_index(
        op.f("ix_comment_read_markers_fileid"), "comment_read_markers", ["fileid"], unique=False
    )
    op.create_table(
        "comments",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("fileid", BIGINT, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created", BIGINT, nullable=False),
        sa.Column("parent_id", BIGINT, server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"], ["nodes.fileid"], name=op.f("fk_comments_fileid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index("ix_comments_fileid_created", "comments", ["fileid", "created"], unique=False)
    op.create_table(
        "dead_props",
        sa.Column("fileid", BIGINT, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"], ["nodes.fileid"], name=op.f("fk_dead_props_fileid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("fileid", "name", name=op.f("pk_dead_props")),
    )
    op.create_table(
        "favorites",
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("fileid", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"], ["nodes.fileid"], name=op.f("fk_favorites_fileid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("uid", "fileid", name=op.f("pk_favorites")),
    )
    op.create_index(op.f("ix_favorites_fileid"), "favorites", ["fileid"], unique=False)
    op.create_table(
        "tags",
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("fileid", BIGINT, nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"], ["nodes.fileid"], name=op.f("fk_tags_fileid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("uid", "fileid", "tag", name=op.f("pk_tags")),
    )
    op.create_index(op.f("ix_tags_fileid"), "tags", ["fileid"], unique=False)
    op.create_table(
        "trash",
        sa.Column("fileid", BIGINT, autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("original_name", sa.String(length=250), nullable=False),
        sa.Column("original_location", sa.Text(), nullable=False),
        sa.Column("deleted_at", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"], ["nodes.fileid"], name=op.f("fk_trash_fileid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("fileid", name=op.f("pk_trash")),
    )
    op.create_index(op.f("ix_trash_owner"), "trash", ["owner"], unique=False)
    op.create_table(
        "versions",
        sa.Column("fileid", BIGINT, nullable=False),
        sa.Column("version_id", BIGINT, nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("etag", sa.String(length=40), nullable=False),
        sa.Column("checksum", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("mimetype", sa.String(length=255), nullable=False),
        sa.Column("blob_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["fileid"], ["nodes.fileid"], name=op.f("fk_versions_fileid"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("fileid", "version_id", name=op.f("pk_versions")),
    )


def downgrade() -> None:
    op.drop_table("versions")
    op.drop_index(op.f("ix_trash_owner"), table_name="trash")
    op.drop_table("trash")
    op.drop_index(op.f("ix_tags_fileid"), table_name="tags")
    op.drop_table("tags")
    op.drop_index(op.f("ix_favorites_fileid"), table_name="favorites")
    op.drop_table("favorites")
    op.drop_table("dead_props")
    op.drop_index("ix_comments_fileid_created", table_name="comments")
    op.drop_table("comments")
    op.drop_index(op.f("ix_comment_read_markers_fileid"), table_name="comment_read_markers")
    op.drop_table("comment_read_markers")
    op.drop_index("ix_nodes_parent_name", table_name="nodes")
    op.drop_table("nodes")
    op.drop_index(op.f("ix_group_members_uid"), table_name="group_members")
    op.drop_table("group_members")
    op.drop_index(op.f("ix_app_passwords_uid"), table_name="app_passwords")
    op.drop_table("app_passwords")
    op.drop_index(op.f("ix_users_email_lower"), table_name="users")
    op.drop_table("users")
    op.drop_index(op.f("ix_locks_uid"), table_name="locks")
    op.drop_table("locks")
    op.drop_table("instance")
    op.drop_table("groups")
    op.drop_table("fileid_alloc")
