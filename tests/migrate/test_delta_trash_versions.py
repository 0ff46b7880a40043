"""Catch-up passes carry the versions of trashed files (files_trashbin/versions): a file
changed or made since the last pass and then deleted, a file in a deleted folder, and a
trashed file whose version ownCloud expired; the result equals a full import of the same
state, row by row."""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bridge.oc10.formats import path_hash
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.delta import DeltaPass, version_id_of, versions_folder
from migrate.runner import UserMigration
from migrate.source import LegacySource
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack
from tests.migrate.stacks import new_stack

UID = "alice"


@pytest.fixture
def instance(tmp_path: Path) -> Manifest:
    profile = dataclasses.replace(get_profile("small", users=2, files_per_user=60),
                                  hash_cost=4, large_every=0, version_ratio=0.0)
    manifest, _ = build_instance(tmp_path / "legacy", "sqlite", profile, 8)
    return manifest


@pytest.fixture
def legacy(instance: Manifest) -> Iterator[tuple[LegacySource, Oc10Backend]]:
    source = LegacySource(open_instance(Path(instance.config_php)))
    ticks = itertools.count(1_800_000_000, 7)  # every write a new mtime: distinct versions
    old = Oc10Backend(open_instance(Path(instance.config_php)), clock=lambda: next(ticks))
    yield source, old
    old.close()
    source.instance.close()


def state(stack: Newstack) -> dict[str, list[tuple[object, ...]]]:
    with stack.store.read() as conn:
        return {t.name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr)
                for t in (schema.versions, schema.nodes, schema.trash)}


def write(old: Oc10Backend, path: str, text: str) -> None:
    body = text.encode()
    old.write(UID, path, io.BytesIO(body), length=len(body))


def top_files(old: Oc10Backend) -> list[str]:
    return sorted(n.path for n in old.children(UID, "") if not n.is_dir)


def expire_version(source: LegacySource, old: Oc10Backend, path: str) -> None:
    """What ownCloud's version expiry does to a file's oldest version: file and row gone."""
    fileid = old.stat(UID, path).fileid
    oldest = min(old.versions(UID, fileid), key=lambda v: v.version_id)
    name = f"files_versions/{path}.v{oldest.version_id}"
    (old.home(UID) / name).unlink()
    fc = source.t.filecache
    with source.engine.begin() as conn:
        conn.execute(sa.delete(fc).where(fc.c.path_hash == path_hash(name)))


def test_pass_brings_trashed_files_versions(legacy: tuple[LegacySource, Oc10Backend],
                                            tmp_path: Path) -> None:
    source, old = legacy
    names = top_files(old)
    write(old, names[2], "before the bulk copy")  # a version the bulk copy carries
    write(old, names[2], "again")
    passed = new_stack(tmp_path / "passed")
    UserMigration(source, passed.store, passed.driver, UID).run()
    before = state(passed)

    # changed, then deleted: two new versions, in files_trashbin/versions/<name>.v<t>.d<t>
    write(old, names[0], "one")
    write(old, names[0], "two")
    old.delete(UID, names[0])
    # made and deleted between two passes
    write(old, "made since.txt", "first")
    write(old, "made since.txt", "second")
    old.delete(UID, "made since.txt")
    # a file in a folder, changed, then the folder deleted: files_trashbin/versions/<dir>.d<t>/
    old.mkdir(UID, "gone folder")
    write(old, "gone folder/inner.txt", "first")
    write(old, "gone folder/inner.txt", "second")
    # one version expired by ownCloud, then the file changed and deleted
    expire_version(source, old, names[2])
    write(old, names[2], "last")
    old.delete(UID, names[2])
    # moved to the trash unchanged: the versions it has follow it
    old.delete(UID, names[3])
    old.delete(UID, "gone folder")

    report = DeltaPass(source, passed.store, passed.driver, UID).delta()
    full = new_stack(tmp_path / "full")
    UserMigration(source, full.store, full.driver, UID).run()
    expected = state(full)
    assert state(passed) == expected
    assert expected["versions"] != before["versions"]
    assert report.versions_added + report.versions_replaced >= 5
    assert report.versions_removed >= 1

    # a trashed item purged: its versions go with it
    trashed = {t.node.name.partition(".d")[0]: t.node.fileid for t in old.trash(UID)}
    old.purge(UID, trashed["made since.txt"])
    DeltaPass(source, passed.store, passed.driver, UID).delta()
    again = new_stack(tmp_path / "again")
    UserMigration(source, again.store, again.driver, UID).run()
    assert state(passed) == state(again)
    with passed.store.read() as conn:
        assert not conn.execute(sa.select(schema.versions).where(
            schema.versions.c.fileid == trashed["made since.txt"])).all()


@pytest.mark.parametrize(("path", "folder"), [
    ("files/a.txt", "files_versions"),
    ("files/d/e/a.txt", "files_versions/d/e"),
    ("files_trashbin/files/a.txt.d17", "files_trashbin/versions"),
    ("files_trashbin/files/d.d17/e/a.txt", "files_trashbin/versions/d.d17/e"),
    ("files_trashbin/files/d.d17/a.txt", "files_trashbin/versions/d.d17"),
    ("cache/x", None),
])
def test_versions_folder(path: str, folder: str | None) -> None:
    assert versions_folder(path) == folder


@pytest.mark.parametrize(("path", "name", "vid"), [
    ("files/d/a.txt", "a.txt.v5", 5),
    ("files/d/a.txt", "b.txt.v5", None),
    ("files_trashbin/files/a.txt.d17", "a.txt.v5.d17", 5),
    ("files_trashbin/files/a.txt.d17", "a.txt.v5.d18", None),  # another deletion of a.txt
    ("files_trashbin/files/a.txt.d17", "a.txt.v5", None),
    ("files_trashbin/files/d.d17/a.txt", "a.txt.v5", 5),
    ("files_trashbin/files/x.d9.d17", "x.d9.v5.d17", 5),
])
def test_version_id_of(path: str, name: str, vid: int | None) -> None:
    assert version_id_of(path, name) == vid
