"""Fixture instances on each database, for module-scoped fixtures of the `oc10` backend tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dbharness
import pytest
import sqlalchemy as sa

from bridge.oc10.schema import OC10Tables, oc10_tables
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import Profile, get_profile

#: module fixtures parametrized with these run on every database ownCloud 10 ran on
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
]


class Instance:
    """A built instance with a pool-less engine on its database, and raw row reads."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.engine = sa.create_engine(manifest.db_url, poolclass=sa.NullPool)
        self.t: OC10Tables = oc10_tables(manifest.table_prefix)

    def rows(self, conn: sa.Connection, table: str, where: str = "") -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {self.manifest.table_prefix}{table} {where}"
        return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


@contextmanager
def built_instance(kind: dbharness.Kind, where: Path, profile: Profile,
                   seed: int = 7) -> Iterator[Manifest]:
    """An instance of `profile` in `where`, its database on `kind` (dropped afterwards)."""
    url = None if kind == "sqlite" else dbharness.create_temp_database(kind)
    try:
        manifest, _ = build_instance(where / "instance", url or "sqlite", profile, seed)
        yield manifest
    finally:
        if url is not None:
            dbharness.drop_database(url)


@contextmanager
def small_instance(kind: dbharness.Kind, where: Path) -> Iterator[Instance]:
    """The "small" profile's instance on `kind`, for a module-scoped fixture."""
    with built_instance(kind, where, get_profile("small")) as manifest:
        inst = Instance(manifest)
        try:
            yield inst
        finally:
            inst.engine.dispose()
