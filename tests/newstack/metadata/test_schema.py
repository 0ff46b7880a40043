"""The alembic revisions build exactly the tables of newstack/metadata/schema.py."""

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from newstack.metadata import schema
from newstack.metadata.engine import open_engine
from newstack.metadata.upgrade import current_revision, head_revision, upgrade_to_head


def _shape(engine: sa.Engine) -> dict[str, Any]:
    """Everything sqlalchemy.inspect reports about our tables, in a comparable form."""
    inspector = sa.inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        shape[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"],
                 tuple(fk["referred_columns"]), fk.get("options", {}).get("ondelete"))
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return shape


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    ]
)
def two_databases(
    request: pytest.FixtureRequest, new_database: Callable[[str], str]
) -> tuple[str, str]:
    kind: str = request.param
    return new_database(kind), new_database(kind)


def test_alembic_head_equals_schema_py(two_databases: tuple[str, str]) -> None:
    by_alembic, by_schema = (open_engine(url) for url in two_databases)
    try:
        upgrade_to_head(by_alembic)
        schema.metadata.create_all(by_schema)
        assert _shape(by_alembic) == _shape(by_schema)
        assert set(_shape(by_alembic)) == set(schema.metadata.tables)
        with by_alembic.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, schema.metadata) == []
    finally:
        by_alembic.dispose()
        by_schema.dispose()


def test_upgrade_is_idempotent_and_recorded(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade_to_head(engine)
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_sqlite_connections_are_set_up_for_concurrency(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            # PostgreSQL's md5() exists on SQLite too (subtree moves rehash paths in SQL)
            assert conn.exec_driver_sql("SELECT md5('ä')").scalar() == (
                "8419b71c87a225a2c70b50486fbee545"
            )
    finally:
        engine.dispose()
