"""Catch-up passes (migrate/delta.py) when a path changes hands between two passes: a file or
folder deleted on ownCloud 10 and made again under the same name (a new fileid at the path
the old one held), and two names swapped. The old node must leave the path before the new
one takes it, also when the pass is killed in between."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bridge.config import Settings
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.delta import PARKED_AREA, DeltaPass
from migrate.runner import MigrationOptions, UserMigration
from migrate.source import LegacySource
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack, open_newstack
from tests.migrate.stacks import closed_after_test, killed_until_done

UID = "alice"


@pytest.fixture
def instance(tmp_path: Path) -> Manifest:
    profile = dataclasses.replace(get_profile("small", users=2, files_per_user=40),
                                  hash_cost=4, large_every=0)
    manifest, _ = build_instance(tmp_path / "legacy", "sqlite", profile, 8)
    return manifest


def migrated(where: Path, source: LegacySource, metadata_url: str) -> Newstack:
    defaults = Settings()
    stack = closed_after_test(open_newstack(dataclasses.replace(
        defaults, newstack=dataclasses.replace(defaults.newstack, data_dir=where,
                                               metadata_url=metadata_url))))
    UserMigration(source, stack.store, stack.driver, UID).run()
    return stack


def dump(stack: Newstack, where: Path) -> dict[str, list[str]]:
    tables = [schema.nodes, schema.versions, schema.trash, schema.migration_checkpoints]
    with stack.store.read() as conn:
        found = {t.name: sorted(repr(tuple(r)) for r in conn.execute(sa.select(t))
                                if t is not schema.migration_checkpoints
                                or r.phase.startswith("delta"))
                 for t in tables}
    found["blobs"] = sorted(p.name for p in (where / "blobs").rglob("*-*") if p.is_file())
    return found

Change = Callable[[Oc10Backend], None]


def _put(old: Oc10Backend, path: str, body: bytes) -> None:
    old.write(UID, path, io.BytesIO(body), length=len(body))


def _file_before(old: Oc10Backend) -> None:
    old.mkdir(UID, "x")
    _put(old, "x/a.txt", b"a")


def _file_recreated(old: Oc10Backend) -> None:
    old.delete(UID, "x/a.txt")  # into the trash, keeping its fileid
    _put(old, "x/a.txt", b"again")


def _folder_before(old: Oc10Backend) -> None:
    old.mkdir(UID, "x")
    old.mkdir(UID, "x/sub")
    _put(old, "x/a.txt", b"a")
    _put(old, "x/sub/deep.txt", b"deep")


def _folder_recreated(old: Oc10Backend) -> None:
    old.delete(UID, "x")
    old.mkdir(UID, "x")
    old.mkdir(UID, "x/sub")
    _put(old, "x/b.txt", b"b")
    _put(old, "x/sub/deep.txt", b"deep again")


def _purged_and_recreated(old: Oc10Backend) -> None:
    """The old node leaves oC10 altogether (deleted from the trash too)."""
    fileid = old.stat(UID, "x/a.txt").fileid
    old.delete(UID, "x/a.txt")
    old.purge(UID, fileid)
    _put(old, "x/a.txt", b"again")


def _swapped(old: Oc10Backend) -> None:
    old.move(UID, "x/a.txt", "x/tmp", overwrite=False)
    old.move(UID, "x/sub", "x/a.txt", overwrite=False)
    old.move(UID, "x/tmp", "x/sub", overwrite=False)


CASES = {
    "file": (_file_before, _file_recreated),
    "folder": (_folder_before, _folder_recreated),
    "purged file": (_file_before, _purged_and_recreated),
    "swapped names": (_folder_before, _swapped),
}


def _prepare(tmp_path: Path, instance: Manifest, metadata: str,
             new_database: Callable[[str], str], case: str, copies: int
             ) -> tuple[LegacySource, Oc10Backend, list[Newstack]]:
    source = LegacySource(open_instance(Path(instance.config_php)))
    old = Oc10Backend(open_instance(Path(instance.config_php)))
    before, after = CASES[case]
    before(old)
    made = []
    for i in range(copies):
        url = "" if metadata == "sqlite" else new_database(metadata)
        stack = migrated(tmp_path / f"new{i}", source, url)
        DeltaPass(source, stack.store, stack.driver, UID).delta()
        made.append(stack)
    after(old)
    return source, old, made


def _served(stack: Newstack, old: Oc10Backend) -> None:
    """The new stack serves what oC10 does, in the files and in the trash."""
    todo = [""]
    while todo:
        path = todo.pop()
        mine = sorted((n.name, n.fileid, n.is_dir, n.size, n.etag)
                      for n in stack.backend.children(UID, path))
        theirs = sorted((n.name, n.fileid, n.is_dir, n.size, n.etag)
                        for n in old.children(UID, path))
        assert mine == theirs, path
        todo.extend(f"{path}/{name}" if path else name for name, _, is_dir, _, _ in theirs
                    if is_dir)
    assert sorted(t.node.fileid for t in stack.backend.trash(UID)) == \
        sorted(t.node.fileid for t in old.trash(UID))
    n = schema.nodes
    with stack.store.read() as conn:  # a finished pass leaves nothing parked
        assert conn.execute(sa.select(n.c.fileid).where(
            n.c.area == PARKED_AREA)).all() == []


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("metadata", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_path_changing_hands(instance: Manifest, tmp_path: Path, metadata: str,
                             new_database: Callable[[str], str], case: str) -> None:
    source, old, (stack,) = _prepare(tmp_path, instance, metadata, new_database, case, 1)
    DeltaPass(source, stack.store, stack.driver, UID).delta()
    _served(stack, old)
    again = DeltaPass(source, stack.store, stack.driver, UID).delta()
    assert (again.added, again.changed, again.moved, again.deleted) == (0, 0, 0, 0)
    old.close()
    source.instance.close()


@pytest.mark.parametrize("case", ["file", "folder"])
@pytest.mark.parametrize("metadata", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_killed_pass_is_finished_by_the_next(
        instance: Manifest, tmp_path: Path, metadata: str,
        new_database: Callable[[str], str], case: str) -> None:
    source, old, (clean, crashed) = _prepare(tmp_path, instance, metadata, new_database,
                                             case, 2)
    DeltaPass(source, clean.store, clean.driver, UID).delta()
    expected = dump(clean, tmp_path / "new0")
    options = MigrationOptions(batch=2, workers=1)
    # each attempt is killed at the first step no attempt was killed at yet: every step once
    seen: set[str] = set()

    def first_time(step: str) -> bool:
        if not step.startswith("delta:") or step in seen:
            return False
        seen.add(step)
        return True

    steps = killed_until_done(
        lambda hook: DeltaPass(source, crashed.store, crashed.driver, UID, options,
                               crash_hook=hook).delta(), first_time, attempts=50)
    assert "delta:parked" in steps, steps
    assert dump(crashed, tmp_path / "new1") == expected
    _served(crashed, old)
    old.close()
    source.instance.close()
