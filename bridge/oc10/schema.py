"""ownCloud 10 database tables as SQLAlchemy Core, for any table prefix (`dbtableprefix`).

The source of truth is shared/legacy-oc10/schema-mysql.sql (a fresh 10.16 install, utf8mb4); readers
in bridge/oc10/ and the fixture builder in fixtures/ query these tables.

The four OAuth2 tables are not in that file. They come from owncloud/oauth2 v0.6.x, the last line
for ownCloud 10: appinfo/database.xml (clients, auth_codes, access_tokens, refresh_tokens) plus
the migrations Version20170724162518 (refresh_tokens.access_token_id INT NULL),
Version20201123114127 (clients.trusted BOOLEAN NOT NULL DEFAULT false),
Version20201126140622 (auth_codes.code_challenge, code_challenge_method: Doctrine strings without
a length, so VARCHAR(255) NULL) and Version20220312110422 (UNIQUE oauth2_token on access_tokens).
The types are what Doctrine 2.13 makes of those declarations on MySQL. Nobody has checked them
against a live server.
"""

import functools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    func,
    select,
    text,
)
from sqlalchemy.dialects import mysql, sqlite

DEFAULT_PREFIX = "oc_"

_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{0,16}")
_MYSQL = ("mysql", "mariadb")

# SQLite gives a column automatic ids only if its declared type is exactly INTEGER, so every
# integer type is INTEGER there. All SQLite integers are 64-bit anyway.
INT = Integer()
INT_UNSIGNED = Integer().with_variant(mysql.INTEGER(unsigned=True), *_MYSQL)
SMALLINT = SmallInteger().with_variant(sqlite.INTEGER(), "sqlite")
SMALLINT_UNSIGNED = (
    SmallInteger()
    .with_variant(mysql.SMALLINT(unsigned=True), *_MYSQL)
    .with_variant(sqlite.INTEGER(), "sqlite")
)
BIGINT = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
BIGINT_UNSIGNED = (
    BigInteger()
    .with_variant(mysql.BIGINT(unsigned=True), *_MYSQL)
    .with_variant(sqlite.INTEGER(), "sqlite")
)
LONGTEXT = Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
DATETIME = DateTime()
BOOLEAN = Boolean()  # TINYINT(1) on MySQL, as Doctrine's boolean


# Server defaults written without quotes, so that every dialect reads them as numbers.
_ZERO = text("0")
_ONE = text("1")
_MINUS_ONE = text("-1")

_TABLE_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in _MYSQL
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def doctrine_identifier_name(
    kind: Literal["IDX", "UNIQ", "FK"], table_name: str, columns: Sequence[str]
) -> str:
    """The name Doctrine DBAL 2.13 gives an unnamed index or foreign key.

    The name is kind + "_" + the hex CRC32 of the full table name and of each column (no zero
    padding, like PHP's dechex), upper-cased and cut to 63 characters. It depends on the prefix.
    """
    digest = "".join(f"{zlib.crc32(name.encode()):x}" for name in (table_name, *columns))
    return f"{kind}_{digest}".upper()[:63]


@dataclass(frozen=True, slots=True, eq=False)
class OC10Tables:
    """Every ownCloud 10 table for one prefix; each attribute is its table's name without prefix."""

    metadata: MetaData
    prefix: str
    appconfig: Table
    storages: Table
    mounts: Table
    mimetypes: Table
    filecache: Table
    users: Table
    accounts: Table
    account_terms: Table
    groups: Table
    group_user: Table
    group_admin: Table
    preferences: Table
    share: Table
    share_external: Table
    federated_reshares: Table
    files_trash: Table
    authtoken: Table
    vcategory: Table
    vcategory_to_object: Table
    systemtag: Table
    systemtag_object_mapping: Table
    systemtag_group: Table
    comments: Table
    comments_read_markers: Table
    properties: Table
    dav_properties: Table
    file_locks: Table
    persistent_locks: Table
    jobs: Table
    privatedata: Table
    credentials: Table
    migrations: Table
    oauth2_clients: Table
    oauth2_auth_codes: Table
    oauth2_access_tokens: Table
    oauth2_refresh_tokens: Table


def _validate_prefix(prefix: str) -> None:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"invalid ownCloud table prefix {prefix!r}: use at most 16 characters from "
            "A-Z, a-z, 0-9 and '_' (the 'dbtableprefix' value of config.php, e.g. 'oc_')"
        )


def oc10_tables(prefix: str = DEFAULT_PREFIX) -> OC10Tables:
    """All ownCloud 10 tables with `prefix` on every name.

    Built once per prefix: every caller gets the same Table objects, so queries can mix them.
    """
    _validate_prefix(prefix)
    return _build_tables(prefix)


@functools.cache  # keyed on the positional prefix alone, whichever way oc10_tables was called
def _build_tables(prefix: str) -> OC10Tables:
    md = MetaData()

    def table(name: str, *parts: Any) -> Table:
        return Table(prefix + name, md, *parts, **_TABLE_OPTIONS)

    def auto_id(name: str, type_: Any) -> Column[Any]:
        return Column(name, type_, primary_key=True, autoincrement=True, nullable=False)

    appconfig = table(
        "appconfig",
        Column("appid", String(32), nullable=False, server_default=""),
        Column("configkey", String(64), nullable=False, server_default=""),
        Column("configvalue", LONGTEXT, nullable=True),
        PrimaryKeyConstraint("appid", "configkey"),
        Index("appconfig_config_key_index", "configkey"),
        Index("appconfig_appid_key", "appid"),
    )
    storages = table(
        "storages",
        Column("id", String(64), nullable=True),
        auto_id("numeric_id", INT),
        Column("available", INT, nullable=False, server_default=_ONE),
        Column("last_checked", INT, nullable=True),
        Index("storages_id_index", "id", unique=True),
    )
    mounts = table(
        "mounts",
        auto_id("id", INT),
        Column("storage_id", INT, nullable=False),
        Column("root_id", BIGINT, nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("mount_point", String(4000), nullable=False),
        Index("mounts_user_root_index", "user_id", "root_id", unique=True),
        Index("mounts_user_index", "user_id"),
        Index("mounts_storage_index", "storage_id"),
        Index("mounts_root_index", "root_id"),
    )
    mimetypes = table(
        "mimetypes",
        auto_id("id", INT),
        Column("mimetype", String(255), nullable=False, server_default=""),
        Index("mimetype_id_index", "mimetype", unique=True),
    )
    filecache = table(
        "filecache",
        auto_id("fileid", BIGINT),
        Column("storage", INT, nullable=False, server_default=_ZERO),
        Column("path", String(4000), nullable=True),
        Column("path_hash", String(32), nullable=False, server_default=""),
        Column("parent", BIGINT, nullable=False, server_default=_ZERO),
        Column("name", String(250), nullable=True),
        Column("mimetype", INT, nullable=False, server_default=_ZERO),
        Column("mimepart", INT, nullable=False, server_default=_ZERO),
        Column("size", BIGINT, nullable=False, server_default=_ZERO),
        Column("mtime", BIGINT, nullable=False, server_default=_ZERO),
        Column("storage_mtime", BIGINT, nullable=False, server_default=_ZERO),
        Column("encrypted", INT, nullable=False, server_default=_ZERO),
        Column("unencrypted_size", BIGINT, nullable=False, server_default=_ZERO),
        Column("etag", String(40), nullable=True),
        Column("permissions", INT, nullable=True, server_default=_ZERO),
        Column("checksum", String(255), nullable=True),
        Index("fs_storage_path_hash", "storage", "path_hash", unique=True),
        Index("fs_parent_name_hash", "parent", "name"),
        Index("fs_storage_mimetype", "storage", "mimetype"),
        Index("fs_storage_mimepart", "storage", "mimepart"),
        Index("fs_storage_size", "storage", "size", "fileid"),
        Index("fs_parent_storage_size", "parent", "storage", "size"),
    )
    users = table(
        "users",
        Column("uid", String(64), primary_key=True, nullable=False, server_default=""),
        Column("displayname", String(64), nullable=True),
        Column("password", String(255), nullable=False, server_default=""),
    )
    accounts = table(
        "accounts",
        auto_id("id", BIGINT_UNSIGNED),
        Column("email", String(255), nullable=True),
        Column("user_id", String(255), nullable=False),
        Column("lower_user_id", String(255), nullable=False),
        Column("display_name", String(255), nullable=True),
        Column("quota", String(32), nullable=True),
        Column("last_login", INT, nullable=False, server_default=_ZERO),
        Column("backend", String(64), nullable=False),
        Column("home", String(1024), nullable=False),
        Column(
            "state",
            SMALLINT,
            nullable=False,
            server_default=_ZERO,
            comment="0: initial, 1: enabled, 2: disabled, 3: deleted",
        ),
        Column("creation_time", INT, nullable=False, server_default=_ZERO),
        Index(
            doctrine_identifier_name("UNIQ", prefix + "accounts", ["user_id"]),
            "user_id",
            unique=True,
        ),
        Index("lower_user_id_index", "lower_user_id", unique=True),
        Index("display_name_index", "display_name"),
        Index("email_index", "email"),
    )
    account_terms = table(
        "account_terms",
        auto_id("id", BIGINT_UNSIGNED),
        Column("account_id", BIGINT_UNSIGNED, nullable=False),
        Column("term", String(191), nullable=False),
        Index("account_id_index", "account_id"),
        Index("term_index", "term"),
    )
    groups = table(
        "groups",
        Column("gid", String(64), primary_key=True, nullable=False, server_default=""),
    )
    group_user = table(
        "group_user",
        Column("gid", String(64), nullable=False, server_default=""),
        Column("uid", String(64), nullable=False, server_default=""),
        PrimaryKeyConstraint("gid", "uid"),
        Index("gu_uid_index", "uid"),
    )
    group_admin = table(
        "group_admin",
        Column("gid", String(64), nullable=False, server_default=""),
        Column("uid", String(64), nullable=False, server_default=""),
        PrimaryKeyConstraint("gid", "uid"),
        Index("group_admin_uid", "uid"),
    )
    preferences = table(
        "preferences",
        Column("userid", String(64), nullable=False, server_default=""),
        Column("appid", String(32), nullable=False, server_default=""),
        Column("configkey", String(64), nullable=False, server_default=""),
        Column("configvalue", LONGTEXT, nullable=True),
        PrimaryKeyConstraint("userid", "appid", "configkey"),
    )
    share = table(
        "share",
        auto_id("id", INT),
        Column("share_type", SMALLINT, nullable=False, server_default=_ZERO),
        Column("share_with", String(255), nullable=True),
        Column("uid_owner", String(64), nullable=False, server_default=""),
        Column("uid_initiator", String(64), nullable=True),
        Column("parent", INT, nullable=True),
        Column("item_type", String(64), nullable=False, server_default=""),
        Column("item_source", String(255), nullable=True),
        Column("item_target", String(255), nullable=True),
        Column("file_source", BIGINT, nullable=True),
        Column("file_target", String(512), nullable=True),
        Column("permissions", SMALLINT, nullable=False, server_default=_ZERO),
        Column("stime", BIGINT, nullable=False, server_default=_ZERO),
        Column("accepted", SMALLINT, nullable=False, server_default=_ZERO),
        Column("expiration", DATETIME, nullable=True),
        Column("token", String(32), nullable=True),
        Column("mail_send", SMALLINT, nullable=False, server_default=_ZERO),
        Column("share_name", String(64), nullable=True),
        Column("attributes", LONGTEXT, nullable=True),
        Index("item_share_type_index", "item_type", "share_type"),
        Index("file_source_index", "file_source"),
        Index("token_index", "token"),
        Index("share_with_index", "share_with"),
        Index("item_source_index", "item_source"),
        Index("item_source_type_index", "item_source", "share_type", "item_type"),
    )
    share_external = table(
        "share_external",
        auto_id("id", BIGINT),
        Column(
            "remote",
            String(512),
            nullable=False,
            comment="Url of the remote owncloud instance",
        ),
        Column("remote_id", String(255), nullable=False, server_default="-1"),
        Column("share_token", String(64), nullable=False, comment="Public share token"),
        Column(
            "password",
            String(64),
            nullable=True,
            comment="Optional password for the public share",
        ),
        Column("name", String(255), nullable=False, comment="Original name on the remote server"),
        Column(
            "owner",
            String(64),
            nullable=False,
            comment="User that owns the public share on the remote server",
        ),
        Column(
            "user",
            String(64),
            nullable=False,
            comment="Local user which added the external share",
        ),
        Column(
            "mountpoint",
            String(4000),
            nullable=False,
            comment="Full path where the share is mounted",
        ),
        Column("mountpoint_hash", String(32), nullable=False, comment="md5 hash of the mountpoint"),
        Column("accepted", INT, nullable=False, server_default=_ZERO),
        Column("lastscan", BIGINT_UNSIGNED, nullable=True),
        Index("sh_external_mp", "user", "mountpoint_hash", unique=True),
        Index("sh_external_user", "user"),
    )
    federated_reshares = table(
        "federated_reshares",
        Column("share_id", BIGINT, nullable=False, autoincrement=False),
        Column("remote_id", String(255), nullable=False, comment="share ID at the remote server"),
        Index("share_id_index", "share_id", unique=True),
    )
    files_trash = table(
        "files_trash",
        auto_id("auto_id", BIGINT),
        Column("id", String(250), nullable=False, server_default=""),
        Column("user", String(64), nullable=False, server_default=""),
        Column("timestamp", String(12), nullable=False, server_default=""),
        Column("location", String(512), nullable=False, server_default=""),
        Column("type", String(4), nullable=True),
        Column("mime", String(255), nullable=True),
        Index("id_index", "id"),
        Index("timestamp_index", "timestamp"),
        Index("user_index", "user"),
    )
    authtoken = table(
        "authtoken",
        auto_id("id", INT_UNSIGNED),
        Column("uid", String(64), nullable=False, server_default=""),
        Column("login_name", String(255), nullable=False, server_default=""),
        Column("password", LONGTEXT, nullable=True),
        Column("name", LONGTEXT, nullable=False),
        Column("token", String(200), nullable=False, server_default=""),
        Column("type", SMALLINT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("last_activity", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("last_check", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Index("authtoken_token_index", "token", unique=True),
        Index("authtoken_last_activity_index", "last_activity"),
    )
    vcategory = table(
        "vcategory",
        auto_id("id", INT_UNSIGNED),
        Column("uid", String(64), nullable=False, server_default=""),
        Column("type", String(64), nullable=False, server_default=""),
        Column("category", String(255), nullable=False, server_default=""),
        Index("uid_index", "uid"),
        Index("type_index", "type"),
        Index("category_index", "category"),
    )
    vcategory_to_object = table(
        "vcategory_to_object",
        Column("objid", BIGINT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("categoryid", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("type", String(64), nullable=False, server_default=""),
        PrimaryKeyConstraint("categoryid", "objid", "type"),
        Index("vcategory_objectd_index", "objid", "type"),
    )
    systemtag = table(
        "systemtag",
        auto_id("id", INT_UNSIGNED),
        Column("name", String(64), nullable=False, server_default=""),
        Column("visibility", SMALLINT, nullable=False, server_default=_ONE),
        Column("editable", SMALLINT, nullable=False, server_default=_ONE),
        Column("assignable", SMALLINT, nullable=False, server_default=_ONE),
        Index("tag_ident", "name", "visibility", "editable", "assignable", unique=True),
    )
    systemtag_object_mapping = table(
        "systemtag_object_mapping",
        Column("objectid", String(64), nullable=False, server_default=""),
        Column("objecttype", String(64), nullable=False, server_default=""),
        Column("systemtagid", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Index("mapping", "objecttype", "objectid", "systemtagid", unique=True),
    )
    systemtag_group = table(
        "systemtag_group",
        Column("systemtagid", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("gid", String(255), nullable=False),
        PrimaryKeyConstraint("gid", "systemtagid"),
    )
    comments = table(
        "comments",
        auto_id("id", INT_UNSIGNED),
        Column("parent_id", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("topmost_parent_id", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("children_count", INT_UNSIGNED, nullable=False, server_default=_ZERO),
        Column("actor_type", String(64), nullable=False, server_default=""),
        Column("actor_id", String(64), nullable=False, server_default=""),
        Column("message", LONGTEXT, nullable=True),
        Column("verb", String(64), nullable=True),
        Column("creation_timestamp", DATETIME, nullable=True),
        Column("latest_child_timestamp", DATETIME, nullable=True),
        Column("object_type", String(64), nullable=False, server_default=""),
        Column("object_id", String(64), nullable=False, server_default=""),
        Index("comments_parent_id_index", "parent_id"),
        Index("comments_topmost_parent_id_idx", "topmost_parent_id"),
        Index("comments_object_index", "object_type", "object_id", "creation_timestamp"),
        Index("comments_actor_index", "actor_type", "actor_id"),
    )
    comments_read_markers = table(
        "comments_read_markers",
        Column("user_id", String(64), nullable=False, server_default=""),
        Column("marker_datetime", DATETIME, nullable=True),
        Column("object_type", String(64), nullable=False, server_default=""),
        Column("object_id", String(64), nullable=False, server_default=""),
        Index("comments_marker_index", "user_id", "object_type", "object_id", unique=True),
        Index("comments_marker_object_index", "object_type", "object_id"),
    )
    properties = table(
        "properties",
        auto_id("id", BIGINT),
        Column("fileid", BIGINT_UNSIGNED, nullable=False),
        Column("propertyname", String(255), nullable=False, server_default=""),
        Column("propertyvalue", String(255), nullable=False),
        Column("propertytype", SMALLINT, nullable=False, server_default=_ONE),
        Index("fileid_index", "fileid"),
    )
    dav_properties = table(
        "dav_properties",
        auto_id("id", BIGINT),
        Column("propertypath", String(255), nullable=False, server_default=""),
        Column("propertyname", String(255), nullable=False, server_default=""),
        Column("propertyvalue", String(255), nullable=False),
        Column("propertytype", SMALLINT, nullable=False, server_default=_ONE),
        Index("propertypath_index", "propertypath"),
    )
    file_locks = table(
        "file_locks",
        auto_id("id", BIGINT_UNSIGNED),
        Column("lock", INT, nullable=False, server_default=_ZERO),
        Column("key", String(64), nullable=False),
        Column("ttl", INT, nullable=False, server_default=_MINUS_ONE),
        Index("lock_key_index", "key", unique=True),
        Index("lock_ttl_index", "ttl"),
    )
    locks_name = prefix + "persistent_locks"
    persistent_locks = table(
        "persistent_locks",
        auto_id("id", BIGINT_UNSIGNED),
        # The comment names "oc_file_cache" whatever the prefix: it is a literal in the migration.
        Column("file_id", BIGINT, nullable=False, comment="FK to fileid in table oc_file_cache"),
        Column(
            "owner",
            String(100),
            nullable=True,
            comment="owner of the lock - just a human readable string",
        ),
        Column("timeout", INT_UNSIGNED, nullable=False, comment="timestamp when the lock expires"),
        Column(
            "created_at",
            INT_UNSIGNED,
            nullable=False,
            comment="timestamp when the lock was created",
        ),
        Column(
            "token",
            String(1024),
            nullable=False,
            comment="uuid for webdav locks - 1024 random chars for WOPI locks",
        ),
        Column("token_hash", String(32), nullable=False, comment="md5(token)"),
        Column("scope", SMALLINT, nullable=False, comment="1 - exclusive, 2 - shared"),
        Column("depth", SMALLINT, nullable=False, comment="0, 1 or infinite"),
        Column(
            "owner_account_id",
            BIGINT_UNSIGNED,
            nullable=True,
            comment="owner of the lock - FK to account table",
        ),
        Index(
            doctrine_identifier_name("UNIQ", locks_name, ["token_hash"]), "token_hash", unique=True
        ),
        Index(doctrine_identifier_name("IDX", locks_name, ["file_id"]), "file_id"),
        Index(
            doctrine_identifier_name("IDX", locks_name, ["owner_account_id"]), "owner_account_id"
        ),
        ForeignKeyConstraint(
            ["file_id"],
            [filecache.c.fileid],
            name=doctrine_identifier_name("FK", locks_name, ["file_id"]),
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["owner_account_id"],
            [accounts.c.id],
            name=doctrine_identifier_name("FK", locks_name, ["owner_account_id"]),
            ondelete="CASCADE",
        ),
    )
    jobs = table(
        "jobs",
        auto_id("id", INT_UNSIGNED),
        Column("class", String(255), nullable=False, server_default=""),
        Column("argument", String(4000), nullable=False, server_default=""),
        Column("last_run", INT, nullable=True, server_default=_ZERO),
        Column("last_checked", INT, nullable=True, server_default=_ZERO),
        Column("reserved_at", INT, nullable=True, server_default=_ZERO),
        Column("execution_duration", INT, nullable=False, server_default=_MINUS_ONE),
        Index("job_class_index", "class"),
    )
    privatedata = table(
        "privatedata",
        auto_id("keyid", INT_UNSIGNED),
        Column("user", String(64), nullable=False, server_default=""),
        Column("app", String(255), nullable=False, server_default=""),
        Column("key", String(255), nullable=False, server_default=""),
        Column("value", String(255), nullable=False, server_default=""),
    )
    credentials = table(
        "credentials",
        Column("user", String(64), nullable=False),
        Column("identifier", String(64), nullable=False),
        Column("credentials", LONGTEXT, nullable=True),
        PrimaryKeyConstraint("user", "identifier"),
        Index("credentials_user", "user"),
    )
    migrations = table(
        "migrations",
        Column("app", String(177), nullable=False),
        Column("version", String(14), nullable=False),
        PrimaryKeyConstraint("app", "version"),
    )
    oauth2_clients = table(
        "oauth2_clients",
        auto_id("id", INT_UNSIGNED),
        Column("identifier", String(64), nullable=False),
        Column("secret", String(64), nullable=False),
        Column("redirect_uri", String(2000), nullable=False),
        Column("name", String(80), nullable=False),
        Column("allow_subdomains", BOOLEAN, nullable=False, server_default=false()),
        Column("trusted", BOOLEAN, nullable=False, server_default=false()),
        Index("name_idx", "name", unique=True),
    )
    oauth2_auth_codes = table(
        "oauth2_auth_codes",
        auto_id("id", INT_UNSIGNED),
        Column("code", String(64), nullable=False),
        Column("client_id", INT_UNSIGNED, nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("expires", INT_UNSIGNED, nullable=False),
        Column("code_challenge", String(255), nullable=True),
        Column("code_challenge_method", String(255), nullable=True),
    )
    oauth2_access_tokens = table(
        "oauth2_access_tokens",
        auto_id("id", INT_UNSIGNED),
        Column("token", String(64), nullable=False),
        Column("client_id", INT_UNSIGNED, nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("expires", INT_UNSIGNED, nullable=False),
        Index("oauth2_token", "token", unique=True),
    )
    oauth2_refresh_tokens = table(
        "oauth2_refresh_tokens",
        auto_id("id", INT_UNSIGNED),
        Column("token", String(64), nullable=False),
        Column("client_id", INT_UNSIGNED, nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("access_token_id", INT, nullable=True),
    )

    return OC10Tables(
        metadata=md,
        prefix=prefix,
        appconfig=appconfig,
        storages=storages,
        mounts=mounts,
        mimetypes=mimetypes,
        filecache=filecache,
        users=users,
        accounts=accounts,
        account_terms=account_terms,
        groups=groups,
        group_user=group_user,
        group_admin=group_admin,
        preferences=preferences,
        share=share,
        share_external=share_external,
        federated_reshares=federated_reshares,
        files_trash=files_trash,
        authtoken=authtoken,
        vcategory=vcategory,
        vcategory_to_object=vcategory_to_object,
        systemtag=systemtag,
        systemtag_object_mapping=systemtag_object_mapping,
        systemtag_group=systemtag_group,
        comments=comments,
        comments_read_markers=comments_read_markers,
        properties=properties,
        dav_properties=dav_properties,
        file_locks=file_locks,
        persistent_locks=persistent_locks,
        jobs=jobs,
        privatedata=privatedata,
        credentials=credentials,
        migrations=migrations,
        oauth2_clients=oauth2_clients,
        oauth2_auth_codes=oauth2_auth_codes,
        oauth2_access_tokens=oauth2_access_tokens,
        oauth2_refresh_tokens=oauth2_refresh_tokens,
    )


def table_names(tables: OC10Tables) -> list[str]:
    """Full table names (prefix included) in declaration order, which is safe for creating them."""
    return list(tables.metadata.tables)


def create_schema(engine: Engine, tables: OC10Tables) -> None:
    """Create every table. Fails if one already exists, so that stale tables cannot hide.

    On MySQL/MariaDB each table is InnoDB with utf8mb4/utf8mb4_bin, whatever the database default.
    """
    tables.metadata.create_all(engine, checkfirst=False)


def drop_schema(engine: Engine, tables: OC10Tables) -> None:
    """Drop every table of `tables` that exists; leave other tables alone."""
    tables.metadata.drop_all(engine, checkfirst=True)


def reset_sequences(conn: Connection, tables: OC10Tables) -> None:
    """Move every PostgreSQL id sequence past the largest id, after inserts with explicit ids.

    Other databases track this themselves, so this does nothing there. An empty table's sequence
    restarts at 1.
    """
    if conn.dialect.name != "postgresql":
        return
    preparer = conn.dialect.identifier_preparer
    for table in tables.metadata.tables.values():
        column = table.autoincrement_column
        if column is None:
            continue
        # pg_get_serial_sequence parses the table name as SQL (so it is quoted) but takes the
        # column name literally.
        sequence = func.pg_get_serial_sequence(preparer.format_table(table), column.name)
        highest = func.max(column)
        conn.execute(
            select(
                func.setval(sequence, func.coalesce(highest, 1), highest.is_not(None))
            ).select_from(table)
        )
