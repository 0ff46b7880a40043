"""The new stack's own metadata schema (SQLAlchemy Core), for SQLite and PostgreSQL.

The alembic revisions in `migrations/versions/` must build exactly these tables; a test compares
the two. Values keep ownCloud 10's shapes (etags, checksums, quota strings, token hashes) so the
migration copies them verbatim and the new stack serves them byte for byte.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import sqlite

AREA_FILES: Final = "files"
AREA_TRASH: Final = "trash"
#: `nodes.parent` of an area root, as oc_filecache has for a storage root
NO_PARENT: Final = -1

# SQLite makes an INTEGER PRIMARY KEY the rowid (fast, and what autoincrement needs); every
# SQLite integer is 64-bit anyway.
BIGINT = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
UID = String(255)  # oc_accounts.user_id is VARCHAR(255)

_ZERO = text("0")
_EMPTY = text("''")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

instance = Table(
    "instance",
    metadata,
    # instance_id, secret, passwordsalt, data_fingerprint, default_quota (config.php/appconfig)
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

fileid_alloc = Table(
    "fileid_alloc",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    #: the configured base the range started at; ids below it belong to ownCloud 10
    Column("base", BIGINT, nullable=False),
    #: the next id to hand out; every id in [base, next_id) has been handed out once
    Column("next_id", BIGINT, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("uid", UID, primary_key=True),
    #: uid.lower(): logins match case-insensitively (oC10: LOWER(uid) = LOWER(?)), one per name
    Column("uid_lower", UID, nullable=False, unique=True),
    Column("display_name", String(255), nullable=True),
    Column("email", String(255), nullable=True),
    #: email.lower(), for login by e-mail
    Column("email_lower", String(255), nullable=True, index=True),
    #: oC10 Hasher format (`1|$2y$…`, legacy bcrypt, legacy sha1); '' = no password login
    Column("password", String(255), nullable=False, server_default=_EMPTY),
    #: as oC10 stores it: 'none', 'default', a human size like '10 GB', or NULL (= default)
    Column("quota", String(32), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created", BIGINT, nullable=False, server_default=_ZERO),
    Column("last_login", BIGINT, nullable=False, server_default=_ZERO),
    Column("language", String(32), nullable=True),
)

groups = Table(
    "groups",
    metadata,
    Column("gid", String(255), primary_key=True),
)

group_members = Table(
    "group_members",
    metadata,
    Column("gid", String(255), ForeignKey("groups.gid", ondelete="CASCADE"), nullable=False),
    Column("uid", UID, ForeignKey("users.uid", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("gid", "uid"),
)

app_passwords = Table(
    "app_passwords",
    metadata,
    Column("id", BIGINT, primary_key=True, autoincrement=True),
    Column("uid", UID, ForeignKey("users.uid", ondelete="CASCADE"), nullable=False, index=True),
    #: what the user typed at creation; Basic auth must present it (case-insensitively)
    Column("login_name", String(255), nullable=False),
    #: sha512 hex of token + config secret, exactly oc_authtoken.token
    Column("token_hash", String(200), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    #: 0 temporary (session), 1 permanent (app password)
    Column("type", SmallInteger, nullable=False, server_default=_ZERO),
    Column("last_activity", BIGINT, nullable=False, server_default=_ZERO),
    Column("last_check", BIGINT, nullable=False, server_default=_ZERO),
    #: oc_authtoken.password (login password encrypted with token + secret) or NULL
    Column("password_enc", Text, nullable=True),
)

nodes = Table(
    "nodes",
    metadata,
    # given explicitly: migrated nodes keep their oC10 fileid, new ones come from fileid_alloc
    Column("fileid", BIGINT, primary_key=True, autoincrement=False),
    Column("owner", UID, ForeignKey("users.uid", ondelete="CASCADE"), nullable=False),
    #: 'files' (what clients see), 'trash', or 'parked' (only during a catch-up pass:
    #: migrate/delta.py PARKED_AREA)
    Column("area", String(8), nullable=False),
    #: relative to the area root, no leading '/', '' = the area root
    Column("path", Text, nullable=False),
    Column("path_hash", String(32), nullable=False),
    Column("parent", BIGINT, nullable=False),
    #: 250 characters at most in the files area (oC10's VARCHAR(250)); trash names add `.d<t>`
    Column("name", String(300), nullable=False),
    Column("is_dir", Boolean, nullable=False),
    #: bytes; folders = sum of children; -1/-2 = unknown (migrated from oC10)
    Column("size", BIGINT, nullable=False, server_default=_ZERO),
    Column("mtime", BIGINT, nullable=False, server_default=_ZERO),
    Column("etag", String(40), nullable=False),
    #: 'SHA1:… MD5:… ADLER32:…' or ''
    Column("checksum", String(255), nullable=False, server_default=_EMPTY),
    Column("mimetype", String(255), nullable=False),
    Column("permissions", Integer, nullable=False),
    #: the storage driver's blob; NULL for folders
    Column("blob_id", String(200), nullable=True),
    UniqueConstraint("owner", "area", "path_hash"),
    Index("ix_nodes_parent_name", "parent", "name"),
)

trash = Table(
    "trash",
    metadata,
    # the trashed top-level node (its descendants have no row, as in oc_files_trash)
    Column(
        "fileid",
        BIGINT,
        ForeignKey("nodes.fileid", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("owner", UID, nullable=False, index=True),
    Column("original_name", String(250), nullable=False),
    #: original parent folder relative to the files root; '.' for the top level
    Column("original_location", Text, nullable=False),
    Column("deleted_at", BIGINT, nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("fileid", BIGINT, ForeignKey("nodes.fileid", ondelete="CASCADE"), nullable=False),
    #: the mtime of the content this version holds (files_versions/<name>.v<T>)
    Column("version_id", BIGINT, nullable=False),
    Column("size", BIGINT, nullable=False),
    Column("etag", String(40), nullable=False),
    Column("checksum", String(255), nullable=False, server_default=_EMPTY),
    Column("mimetype", String(255), nullable=False),
    Column("blob_id", String(200), nullable=False),
    PrimaryKeyConstraint("fileid", "version_id"),
)

favorites = Table(
    "favorites",
    metadata,
    Column("uid", UID, nullable=False),
    Column(
        "fileid",
        BIGINT,
        ForeignKey("nodes.fileid", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    PrimaryKeyConstraint("uid", "fileid"),
)

tags = Table(
    "tags",
    metadata,
    Column("uid", UID, nullable=False),
    Column(
        "fileid",
        BIGINT,
        ForeignKey("nodes.fileid", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("tag", String(255), nullable=False),
    PrimaryKeyConstraint("uid", "fileid", "tag"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", BIGINT, primary_key=True, autoincrement=True),
    Column("fileid", BIGINT, ForeignKey("nodes.fileid", ondelete="CASCADE"), nullable=False),
    Column("actor", UID, nullable=False),
    Column("message", Text, nullable=False),
    Column("created", BIGINT, nullable=False),
    Column("parent_id", BIGINT, nullable=False, server_default=_ZERO),
    Index("ix_comments_fileid_created", "fileid", "created"),
)

# oc_comments_read_markers: what a user has read, for oc:comments-unread
comment_read_markers = Table(
    "comment_read_markers",
    metadata,
    Column("uid", UID, nullable=False),
    Column(
        "fileid",
        BIGINT,
        ForeignKey("nodes.fileid", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("marked_at", BIGINT, nullable=False),
    PrimaryKeyConstraint("uid", "fileid"),
)

dead_props = Table(
    "dead_props",
    metadata,
    Column("fileid", BIGINT, ForeignKey("nodes.fileid", ondelete="CASCADE"), nullable=False),
    #: Clark notation '{namespace}local'
    Column("name", String(255), nullable=False),
    #: raw XML text of the value
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("fileid", "name"),
)

migration_checkpoints = Table(
    "migration_checkpoints",
    metadata,
    # how far a per-user migration job got; written in the same transaction as the batch it
    # describes, so a killed job resumes exactly after the last committed batch
    Column("uid", UID, nullable=False),
    #: 'bulk', 'versions', 'extras', 'delta', ...
    Column("phase", String(16), nullable=False),
    #: the last oC10 fileid imported in this phase (-1: not started); state in `detail`
    Column("position", BIGINT, nullable=False),
    Column("detail", Text, nullable=False, server_default=_EMPTY),
    Column("updated", BIGINT, nullable=False),
    PrimaryKeyConstraint("uid", "phase"),
)

locks = Table(
    "locks",
    metadata,
    Column("token", String(1024), primary_key=True),
    #: whose files tree the lock is in
    Column("uid", UID, nullable=False, index=True),
    Column("path", Text, nullable=False),
    #: 'exclusive' | 'shared'
    Column("scope", String(16), nullable=False),
    #: 0 or -1 (infinity)
    Column("depth", SmallInteger, nullable=False),
    #: seconds the lock lives after created_at; < 0 = until unlocked
    Column("timeout", BIGINT, nullable=False),
    Column("created_at", BIGINT, nullable=False),
    #: the DAV <owner> element as XML text
    Column("owner", Text, nullable=True),
)

shares = Table(
    "shares",
    metadata,
    # oc_share's columns under oc_share's names (REFERENCE §1.4, §5.2), so migrated rows copy
    # one to one; migrated ids are kept, new ones start at the fileid base (above any oC10 id)
    Column("id", BIGINT, primary_key=True, autoincrement=False),
    Column("share_type", SmallInteger, nullable=False),
    #: recipient uid (0, 2), gid (1), link password hash (3), cloud id (6, 7)
    Column("share_with", String(255), nullable=True),
    Column("uid_owner", UID, nullable=False),
    Column("uid_initiator", UID, nullable=True),
    #: type-2 rows: the group share they belong to
    Column("parent", BIGINT, nullable=True),
    Column("item_type", String(64), nullable=False),
    Column("item_source", String(255), nullable=True),
    Column("item_target", String(255), nullable=True),
    Column("file_source", BIGINT, nullable=True),
    Column("file_target", String(512), nullable=True),
    Column("permissions", SmallInteger, nullable=False, server_default=_ZERO),
    Column("stime", BIGINT, nullable=False, server_default=_ZERO),
    Column("accepted", SmallInteger, nullable=False, server_default=_ZERO),
    #: midnight of the expiry day, as oC10 stores it
    Column("expiration", DateTime, nullable=True),
    Column("token", String(32), nullable=True),
    Column("mail_send", SmallInteger, nullable=False, server_default=_ZERO),
    Column("share_name", String(64), nullable=True),
    Column("attributes", Text, nullable=True),
    Index("ix_shares_file_source", "file_source"),
    Index("ix_shares_share_with", "share_with"),
    Index("ix_shares_token", "token"),
    Index("ix_shares_parent", "parent"),
    Index("ix_shares_uid_initiator", "uid_initiator"),
    Index("ix_shares_uid_owner", "uid_owner"),
)

# Carried over from ownCloud 10 by migration (migrate/account_data.py), ids kept: OAuth2 clients
# and tokens (owncloud/oauth2's oc_oauth2_*; bearer tokens are stored in clear, as there),
# avatars, and system tags with their file assignments.

oauth2_clients = Table(
    "oauth2_clients",
    metadata,
    Column("id", BIGINT, primary_key=True, autoincrement=False),
    Column("identifier", String(64), nullable=False, unique=True),
    Column("secret", String(64), nullable=False),
    Column("redirect_uri", String(2000), nullable=False),
    Column("name", String(80), nullable=False),
    Column("allow_subdomains", Boolean, nullable=False),
    Column("trusted", Boolean, nullable=False),
)

oauth2_access_tokens = Table(
    "oauth2_access_tokens",
    metadata,
    Column("id", BIGINT, primary_key=True, autoincrement=False),
    Column("token", String(64), nullable=False, unique=True),
    Column("client_id", BIGINT, nullable=False),
    Column("uid", UID, ForeignKey("users.uid", ondelete="CASCADE"), nullable=False, index=True),
    #: unix time; the token is refused from this second on (AccessToken::hasExpired)
    Column("expires", BIGINT, nullable=False),
)

oauth2_refresh_tokens = Table(
    "oauth2_refresh_tokens",
    metadata,
    Column("id", BIGINT, primary_key=True, autoincrement=False),
    Column("token", String(64), nullable=False, unique=True),
    Column("client_id", BIGINT, nullable=False),
    Column("uid", UID, ForeignKey("users.uid", ondelete="CASCADE"), nullable=False, index=True),
    Column("access_token_id", BIGINT, nullable=True),
)

avatars = Table(
    "avatars",
    metadata,
    Column("uid", UID, ForeignKey("users.uid", ondelete="CASCADE"), primary_key=True),
    Column("blob_id", String(200), nullable=False),
    #: image/png or image/jpeg (avatar.png / avatar.jpg)
    Column("mimetype", String(255), nullable=False),
    Column("size", BIGINT, nullable=False),
    Column("mtime", BIGINT, nullable=False),
)

systemtags = Table(
    "systemtags",
    metadata,
    Column("id", BIGINT, primary_key=True, autoincrement=False),
    Column("name", String(64), nullable=False),
    Column("visibility", SmallInteger, nullable=False),
    Column("editable", SmallInteger, nullable=False),
    Column("assignable", SmallInteger, nullable=False),
    UniqueConstraint("name", "visibility", "editable", "assignable"),
)

systemtag_objects = Table(
    "systemtag_objects",
    metadata,
    Column("fileid", BIGINT, ForeignKey("nodes.fileid", ondelete="CASCADE"), nullable=False),
    Column("tag_id", BIGINT, ForeignKey("systemtags.id", ondelete="CASCADE"), nullable=False,
           index=True),
    PrimaryKeyConstraint("fileid", "tag_id"),
)

systemtag_groups = Table(
    "systemtag_groups",
    metadata,
    Column("tag_id", BIGINT, ForeignKey("systemtags.id", ondelete="CASCADE"), nullable=False),
    Column("gid", String(255), nullable=False),
    PrimaryKeyConstraint("gid", "tag_id"),
)
