"""bridge/oc10/schema.py against shared/legacy-oc10/schema-mysql.sql, on real servers."""

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.oc10.schema import (
    DEFAULT_PREFIX,
    create_schema,
    doctrine_identifier_name,
    drop_schema,
    oc10_tables,
    reset_sequences,
    table_names,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE_SQL = REPO_ROOT.parent / "shared" / "legacy-oc10" / "schema-mysql.sql"

# What owncloud/oauth2 v0.6.x (appinfo/database.xml + Migrations) gives on MySQL through Doctrine.
OAUTH2_DDL = """
CREATE TABLE oc_oauth2_clients (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  identifier VARCHAR(64) NOT NULL,
  secret VARCHAR(64) NOT NULL,
  redirect_uri VARCHAR(2000) NOT NULL,
  name VARCHAR(80) NOT NULL,
  allow_subdomains TINYINT(1) NOT NULL DEFAULT 0,
  trusted TINYINT(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY name_idx (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE oc_oauth2_auth_codes (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  code VARCHAR(64) NOT NULL,
  client_id INT UNSIGNED NOT NULL,
  user_id VARCHAR(64) NOT NULL,
  expires INT UNSIGNED NOT NULL,
  code_challenge VARCHAR(255) DEFAULT NULL,
  code_challenge_method VARCHAR(255) DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE oc_oauth2_access_tokens (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  token VARCHAR(64) NOT NULL,
  client_id INT UNSIGNED NOT NULL,
  user_id VARCHAR(64) NOT NULL,
  expires INT UNSIGNED NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY oauth2_token (token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE oc_oauth2_refresh_tokens (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  token VARCHAR(64) NOT NULL,
  client_id INT UNSIGNED NOT NULL,
  user_id VARCHAR(64) NOT NULL,
  access_token_id INT DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
"""
OAUTH2_TABLES = {
    "oauth2_clients",
    "oauth2_auth_codes",
    "oauth2_access_tokens",
    "oauth2_refresh_tokens",
}

# Doctrine's names for prefix "owncloud_", worked out once by hand from its CRC32 rule.
OWNCLOUD_DOCTRINE_NAMES = {
    "UNIQ_907AA303A76ED395": "UNIQ_9A112C6BA76ED395",
    "UNIQ_F0C3D55BB3BC57DA": "UNIQ_A5101376B3BC57DA",
    "IDX_F0C3D55B93CB796C": "IDX_A510137693CB796C",
    "FK_F0C3D55B93CB796C": "FK_A510137693CB796C",
    "IDX_F0C3D55BC901C6FF": "IDX_A5101376C901C6FF",
    "FK_F0C3D55BC901C6FF": "FK_A5101376C901C6FF",
}


def reference_sql() -> str:
    if not REFERENCE_SQL.is_file():
        pytest.fail(
            f"{REFERENCE_SQL} is missing: these tests expect the shared/ folder beside the "
            f"repository ({REPO_ROOT.parent}/shared), as CI checks it out"
        )
    return REFERENCE_SQL.read_text(encoding="utf-8")


def with_prefix(ddl: str, prefix: str, renames: dict[str, str]) -> str:
    """The DDL as Doctrine would write it for another prefix (table names and generated names)."""
    ddl = re.sub(r"\b(CREATE TABLE|REFERENCES) oc_", rf"\1 {prefix}", ddl)
    for old, new in renames.items():
        ddl = ddl.replace(old, new)
    return ddl


def statements(ddl: str) -> list[str]:
    lines = [line for line in ddl.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# --- without a database ------------------------------------------------------------------------


def test_doctrine_names_reproduce_the_reference() -> None:
    assert doctrine_identifier_name("UNIQ", "oc_accounts", ["user_id"]) == "UNIQ_907AA303A76ED395"
    assert (
        doctrine_identifier_name("FK", "oc_persistent_locks", ["file_id"]) == "FK_F0C3D55B93CB796C"
    )
    tables = oc10_tables("owncloud_")
    assert {i.name for i in tables.accounts.indexes} >= {"UNIQ_9A112C6BA76ED395"}
    long_name = doctrine_identifier_name("IDX", "t", [f"c{i}" for i in range(20)])
    assert len(long_name) == 63 and long_name == long_name.upper()


@pytest.mark.parametrize("prefix", ["", "oc_", "OC_1", "a" * 16])
def test_valid_prefixes_name_every_table(prefix: str) -> None:
    tables = oc10_tables(prefix)
    assert tables.prefix == prefix
    assert oc10_tables(prefix) is tables
    names = table_names(tables)
    assert len(names) == 36 and all(n.startswith(prefix) for n in names)
    assert tables.filecache.name == prefix + "filecache"
    assert tables.oauth2_access_tokens.name == prefix + "oauth2_access_tokens"


@pytest.mark.parametrize("prefix", ["oc-", "oc_;drop", "a" * 17, "ö_", "oc_ "])
def test_invalid_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="table prefix"):
        oc10_tables(prefix)


def test_default_prefix() -> None:
    assert oc10_tables() is oc10_tables(DEFAULT_PREFIX) is oc10_tables(prefix="oc_")
    assert DEFAULT_PREFIX == "oc_"


# --- MariaDB: information_schema, column by column -----------------------------------------------


def describe_mysql(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """Every table of the current database as information_schema reports it."""
    described: dict[str, dict[str, Any]] = {}
    for name, engine, collation in conn.execute(
        sa.text(
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE()"
        )
    ):
        described[name] = {
            "engine": engine,
            "collation": collation,
            "columns": [],
            "indexes": {},
            "foreign_keys": {},
        }
    for row in conn.execute(
        sa.text(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, "
            "COLUMN_COMMENT, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
        )
    ):
        described[row[0]]["columns"].append(tuple(row[1:]))
    for table, index, non_unique, column in conn.execute(
        sa.text(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME "
            "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        )
    ):
        described[table]["indexes"].setdefault(index, (not non_unique, []))[1].append(column)
    for table, name, column, ref_table, ref_column, on_delete, on_update in conn.execute(
        sa.text(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
            "k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE "
            "FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
            "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
            "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME "
            "WHERE k.TABLE_SCHEMA = DATABASE() ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, "
            "k.ORDINAL_POSITION"
        )
    ):
        fk = described[table]["foreign_keys"].setdefault(
            name, ([], ref_table, [], on_delete, on_update)
        )
        fk[0].append(column)
        fk[2].append(ref_column)
    return described


def differences(ours: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    diffs = []
    for table in sorted(reference):
        if table not in ours:
            diffs.append(f"{table}: missing")
            continue
        for aspect, expected in reference[table].items():
            if ours[table][aspect] != expected:
                diffs.append(f"{table} {aspect}:\n  ours {ours[table][aspect]}\n  want {expected}")
    return diffs


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("prefix", "renames"),
    [
        pytest.param("oc_", {}, id="oc_"),
        pytest.param("owncloud_", OWNCLOUD_DOCTRINE_NAMES, id="owncloud_"),
    ],
)
def test_mariadb_matches_reference_ddl(
    mariadb_url: str, new_database: Callable[[str], str], prefix: str, renames: dict[str, str]
) -> None:
    reference_ddl = with_prefix(reference_sql() + OAUTH2_DDL, prefix, renames)
    reference_engine = sa.create_engine(new_database("mariadb"))
    our_engine = sa.create_engine(mariadb_url)
    try:
        with reference_engine.begin() as conn:
            for stmt in statements(reference_ddl):
                conn.exec_driver_sql(stmt)
        create_schema(our_engine, oc10_tables(prefix))
        with reference_engine.connect() as conn:
            reference = describe_mysql(conn)
        with our_engine.connect() as conn:
            ours = describe_mysql(conn)

        in_file = set(parse_mysql_ddl(with_prefix(reference_sql(), prefix, {})))
        assert len(in_file) == 32
        assert set(ours) - in_file == {prefix + n for n in OAUTH2_TABLES}
        assert set(ours) == set(reference)
        assert differences(ours, reference) == []
        doctrine_names = {
            name
            for table in ours.values()
            for name in (*table["indexes"], *table["foreign_keys"])
            if re.match(r"(UNIQ|IDX|FK)_", name)
        }
        assert doctrine_names == {renames.get(n, n) for n in OWNCLOUD_DOCTRINE_NAMES}
        assert all(
            t["collation"] == "utf8mb4_bin" and t["engine"] == "InnoDB" for t in ours.values()
        )

        # The comparison itself must see a one-character change.
        with our_engine.begin() as conn:
            conn.exec_driver_sql(
                f"ALTER TABLE {prefix}filecache MODIFY etag VARCHAR(41) DEFAULT NULL"
            )
            ours = describe_mysql(conn)
        assert [d.split(":")[0] for d in differences(ours, reference)] == [
            f"{prefix}filecache columns"
        ]
    finally:
        reference_engine.dispose()
        our_engine.dispose()


# --- PostgreSQL and SQLite (and MariaDB again): through SQLAlchemy's inspector -------------------


@dataclass
class RefColumn:
    name: str
    mysql_type: str
    nullable: bool
    default: str | None  # as written after DEFAULT; "auto" for AUTO_INCREMENT


@dataclass
class RefTable:
    columns: list[RefColumn] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    indexes: dict[str, tuple[bool, list[str]]] = field(default_factory=dict)
    foreign_keys: dict[str, tuple[list[str], str, list[str], str]] = field(default_factory=dict)


def _names(text: str) -> list[str]:
    return [n.strip().strip("`") for n in text.split(",")]


def parse_mysql_ddl(ddl: str) -> dict[str, RefTable]:
    tables: dict[str, RefTable] = {}
    for stmt in statements(ddl):
        head = re.match(r"CREATE TABLE (\w+) \((.*)\)\s*ENGINE=", stmt, re.S)
        if head is None:
            continue
        table = tables[head.group(1)] = RefTable()
        for raw in head.group(2).splitlines():
            line = raw.strip().rstrip(",")
            if not line:
                continue
            if m := re.fullmatch(r"PRIMARY KEY \((.*)\)", line):
                table.primary_key = _names(m.group(1))
            elif m := re.fullmatch(r"(UNIQUE )?KEY (\w+) \((.*)\)", line):
                table.indexes[m.group(2)] = (bool(m.group(1)), _names(m.group(3)))
            elif m := re.fullmatch(
                r"CONSTRAINT (\w+) FOREIGN KEY \((.*)\) REFERENCES (\w+) \((.*)\) ON DELETE (\w+)",
                line,
            ):
                table.foreign_keys[m.group(1)] = (
                    _names(m.group(2)),
                    m.group(3),
                    _names(m.group(4)),
                    m.group(5),
                )
            else:
                m = re.fullmatch(r"`?(\w+)`? (\w+(?:\(\d+\))?(?: UNSIGNED)?)(.*)", line)
                assert m, f"cannot read reference column line {line!r}"
                rest = m.group(3)
                default = re.search(r"DEFAULT ('[^']*'|\S+)", rest)
                table.columns.append(
                    RefColumn(
                        name=m.group(1),
                        mysql_type=m.group(2),
                        nullable="NOT NULL" not in rest,
                        default="auto"
                        if "AUTO_INCREMENT" in rest
                        else (default.group(1) if default and default.group(1) != "NULL" else None),
                    )
                )
    return tables


def expected_pg_type(mysql_type: str) -> str:
    base = mysql_type.removesuffix(" UNSIGNED")
    simple = {
        "INT": "INTEGER",
        "BIGINT": "BIGINT",
        "SMALLINT": "SMALLINT",
        "LONGTEXT": "TEXT",
        "DATETIME": "TIMESTAMP WITHOUT TIME ZONE",
        "TINYINT(1)": "BOOLEAN",
    }
    return simple.get(base, base)  # VARCHAR(n) stays


def expected_default(dialect: str, col: RefColumn) -> str | None:
    if col.default == "auto":
        return "auto" if dialect == "postgresql" else None
    if col.default is not None and col.mysql_type == "TINYINT(1)" and dialect == "postgresql":
        return {"0": "false", "1": "true"}[col.default]
    return col.default


PG_INTEGER_TYPES = {"integer", "bigint", "smallint"}


def _inspect_default(dialect: str, value: str | None) -> str | None:
    if value is None:
        return None
    if dialect == "postgresql":
        if value.startswith("nextval("):
            return "auto"
        # '-1'::integer is the number -1, ''::character varying the empty string
        if m := re.fullmatch(r"('.*')::([a-z ]+)", value):
            value = m.group(1).strip("'") if m.group(2) in PG_INTEGER_TYPES else m.group(1)
    return value


def test_structure_matches_reference(oc10_db_url: str) -> None:
    reference = parse_mysql_ddl(reference_sql() + OAUTH2_DDL)
    tables = oc10_tables()
    engine = sa.create_engine(oc10_db_url)
    try:
        create_schema(engine, tables)
        inspector = sa.inspect(engine)
        dialect = engine.dialect.name
        assert set(inspector.get_table_names()) == set(reference)
        diffs = []
        for name, ref in reference.items():
            columns = inspector.get_columns(name)
            got_columns = [
                (c["name"], c["nullable"], _inspect_default(dialect, c["default"])) for c in columns
            ]
            want_columns = [(c.name, c.nullable, expected_default(dialect, c)) for c in ref.columns]
            if got_columns != want_columns:
                diffs.append(f"{name} columns:\n  ours {got_columns}\n  want {want_columns}")
            if dialect == "postgresql":
                got_types = [c["type"].compile(dialect=engine.dialect) for c in columns]
                want_types = [expected_pg_type(c.mysql_type) for c in ref.columns]
                if got_types != want_types:
                    diffs.append(f"{name} types:\n  ours {got_types}\n  want {want_types}")
            got_pk = inspector.get_pk_constraint(name)["constrained_columns"]
            if got_pk != ref.primary_key:
                diffs.append(f"{name} primary key: ours {got_pk} want {ref.primary_key}")
            got_indexes = {
                i["name"]: (bool(i["unique"]), list(i["column_names"]))
                for i in inspector.get_indexes(name)
            }
            if got_indexes != ref.indexes:
                diffs.append(f"{name} indexes:\n  ours {got_indexes}\n  want {ref.indexes}")
            got_fks = {
                fk["name"]: (
                    fk["constrained_columns"],
                    fk["referred_table"],
                    fk["referred_columns"],
                    fk["options"].get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(name)
            }
            if got_fks != ref.foreign_keys:
                diffs.append(f"{name} foreign keys:\n  ours {got_fks}\n  want {ref.foreign_keys}")
        assert diffs == []
    finally:
        engine.dispose()


def _value(column: sa.Column[Any], n: int) -> Any:
    if isinstance(column.type, sa.Boolean):
        return n % 2 == 0
    if isinstance(column.type, sa.Integer):
        return n
    if isinstance(column.type, sa.DateTime):
        return datetime.datetime(2024, 1, n, 12, 0, 0)
    return f"v{n}"


def _row(table: sa.Table, n: int, explicit_id: int | None, fk_target: int) -> dict[str, Any]:
    row = {}
    for column in table.columns:
        if column is table.autoincrement_column:
            if explicit_id is not None:
                row[column.name] = explicit_id
        elif column.foreign_keys:
            row[column.name] = fk_target
        else:
            row[column.name] = _value(column, n)
    return row


def test_explicit_ids_then_reset_sequences_then_automatic_ids(oc10_db_url: str) -> None:
    tables = oc10_tables()
    engine = sa.create_engine(oc10_db_url)
    try:
        create_schema(engine, tables)
        with engine.begin() as conn:
            reset_sequences(conn, tables)  # empty tables: sequences start at 1
            first = conn.execute(
                sa.insert(tables.storages).values(_row(tables.storages, 3, None, 0))
            )
            assert first.inserted_primary_key == (1,)

            fixed_id = 1000
            ordered = tables.metadata.sorted_tables
            for table in ordered:
                conn.execute(sa.insert(table).values(_row(table, 1, fixed_id, fixed_id)))
            reset_sequences(conn, tables)
            for table in ordered:
                result = conn.execute(sa.insert(table).values(_row(table, 2, None, fixed_id)))
                if table.autoincrement_column is not None:
                    assert result.inserted_primary_key == (fixed_id + 1,), table.name
            assert conn.execute(sa.select(sa.func.count()).select_from(tables.share)).scalar() == 2

        drop_schema(engine, tables)
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
