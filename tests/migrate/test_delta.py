"""Catch-up passes (migrate/delta.py): a pass killed anywhere is finished by the next one, its
writes come in a few transactions whatever the number of changes, a version rewritten on
ownCloud 10 within one second is replaced, and findings are logged once."""

from __future__ import annotations

import dataclasses
import io
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.config import Settings
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.delta import DeltaPass, plan_versions
from migrate.runner import MigrationOptions, UserMigration
from migrate.source import LegacySource, SourceRow
from newstack.backend import Node
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack, open_newstack
from tests.migrate.stacks import killed_until_done

UID = "alice"


@pytest.fixture
def instance(tmp_path: Path) -> Manifest:
    profile = dataclasses.replace(get_profile("small", users=2, files_per_user=120),
                                  hash_cost=4, large_every=0)
    manifest, _ = build_instance(tmp_path / "legacy", "sqlite", profile, 8)
    return manifest


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Newstack]]:
    opened: list[Newstack] = []
    yield opened
    for stack in opened:
        stack.close()


def open_stack(where: Path, opened: list[Newstack], metadata_url: str = "") -> Newstack:
    defaults = Settings()
    stack = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=where, metadata_url=metadata_url)))
    opened.append(stack)
    return stack


def files_of(old: Oc10Backend) -> Iterator[Node]:
    todo = [""]
    while todo:
        for node in old.children(UID, todo.pop()):
            if node.is_dir:
                todo.append(node.path)
            yield node


def change_on_legacy(old: Oc10Backend, count: int) -> None:
    """Adds, overwrites (making versions), deletes and a folder move, spread over the tree."""
    nodes = list(files_of(old))
    files = [n for n in nodes if not n.is_dir]
    folders = [n for n in nodes if n.is_dir]
    step = max(len(files) // count, 1)
    for node in files[::step][:count]:
        body = f"changed {node.path}".encode()
        old.write(UID, node.path, io.BytesIO(body), length=len(body))
    old.delete(UID, files[1].path)  # into the trash: a move
    trashed = old.trash(UID)
    if trashed:  # and one trash item purged: a delete
        old.purge(UID, trashed[0].node.fileid)
    old.mkdir(UID, "made in delta")
    old.write(UID, "made in delta/new.txt", io.BytesIO(b"new"), length=3)
    old.move(UID, folders[0].path, "made in delta/moved", overwrite=False)


def dump(stack: Newstack, where: Path) -> dict[str, list[str]]:
    # comments with their ids: they keep oC10's, whatever passes replaced them
    tables = [schema.nodes, schema.versions, schema.trash, schema.favorites, schema.tags,
              schema.dead_props, schema.shares, schema.comments]
    with stack.store.read() as conn:
        found = {t.name: sorted(repr(tuple(r)) for r in conn.execute(sa.select(t)))
                 for t in tables}
    found["blobs"] = sorted(p.name for p in (where / "blobs").rglob("*-*")
                            if p.is_file())
    return found


def migrated(where: Path, source: LegacySource, opened: list[Newstack],
             metadata_url: str = "") -> Newstack:
    stack = open_stack(where, opened, metadata_url)
    UserMigration(source, stack.store, stack.driver, UID).run()
    return stack


@pytest.mark.parametrize("metadata", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_killed_pass_is_finished_by_the_next(instance: Manifest, tmp_path: Path,
                                              stacks: list[Newstack], metadata: str,
                                              new_database: Callable[[str], str]) -> None:
    source = LegacySource(open_instance(Path(instance.config_php)))
    old = Oc10Backend(open_instance(Path(instance.config_php)))
    urls = ("", "") if metadata == "sqlite" else (new_database(metadata),
                                                   new_database(metadata))
    clean = migrated(tmp_path / "clean", source, stacks, urls[0])
    crashed = migrated(tmp_path / "crashed", source, stacks, urls[1])
    change_on_legacy(old, 12)
    options = MigrationOptions(batch=5, workers=2)  # several batches per pass
    report = DeltaPass(source, clean.store, clean.driver, UID, options).delta()
    assert report.changed >= 10 and report.added >= 2 and report.moved >= 1
    assert report.deleted >= 1 and report.versions_added >= 10
    expected = dump(clean, tmp_path / "clean")

    rng = random.Random(3)
    steps = set(killed_until_done(
        lambda hook: DeltaPass(source, crashed.store, crashed.driver, UID, options,
                               crash_hook=hook).delta(),
        lambda step: step.startswith("delta:") and rng.random() < 0.3))
    assert len(steps) >= 4, f"the pass must be killed at several steps: {steps}"
    assert dump(crashed, tmp_path / "crashed") == expected
    again = DeltaPass(source, crashed.store, crashed.driver, UID, options).delta()
    assert (again.added, again.changed, again.moved, again.deleted) == (0, 0, 0, 0)
    assert dump(crashed, tmp_path / "crashed") == expected
    old.close()
    source.instance.close()


def test_writes_come_in_few_transactions(instance: Manifest, tmp_path: Path,
                                         stacks: list[Newstack]) -> None:
    """Commits and oC10 queries per pass: not one per change, no path-prefix scans."""
    source = LegacySource(open_instance(Path(instance.config_php)))
    old = Oc10Backend(open_instance(Path(instance.config_php)))
    stack = migrated(tmp_path / "new", source, stacks)
    change_on_legacy(old, 40)
    commits: list[int] = []
    legacy_sql: list[str] = []
    sa.event.listen(stack.store.engine, "commit", lambda conn: commits.append(1))
    sa.event.listen(source.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: legacy_sql.append(statement))
    report = DeltaPass(source, stack.store, stack.driver, UID).delta()
    assert report.changed >= 40
    # a fixed number whatever the change (account, 2 moves, 2 imported levels, the files with
    # their versions, the deletions, the folders, extras, shares): 15 here; one per changed
    # file or per version folder would be 40 or more
    assert len(commits) < 25, len(commits)
    assert len(legacy_sql) < 60, len(legacy_sql)
    assert not [q for q in legacy_sql if "LIKE" in q.upper() and "oc_filecache" in q], \
        "no unindexed path prefix query on oc_filecache"
    old.close()
    source.instance.close()


def test_version_rewritten_within_a_second_is_replaced(
        instance: Manifest, tmp_path: Path, stacks: list[Newstack]) -> None:
    source = LegacySource(open_instance(Path(instance.config_php)))
    now = [1_800_000_000.0]
    old = Oc10Backend(open_instance(Path(instance.config_php)), clock=lambda: now[0])
    stack = migrated(tmp_path / "new", source, stacks)
    path = "within a second.txt"
    for body in (b"first", b"second"):  # .v<T> holds "first"
        old.write(UID, path, io.BytesIO(body), length=len(body), mtime=int(now[0]))
    DeltaPass(source, stack.store, stack.driver, UID).delta()
    node = old.stat(UID, path)
    before = stack.backend.versions(UID, node.fileid)
    assert [v.size for v in before] == [5]
    old.write(UID, path, io.BytesIO(b"third!!"), length=7, mtime=int(now[0]))
    report = DeltaPass(source, stack.store, stack.driver, UID).delta()
    assert report.versions_replaced == 1
    after = stack.backend.versions(UID, node.fileid)
    assert after == old.versions(UID, node.fileid)
    assert [v.size for v in after] == [6]  # "second"
    old.close()
    source.instance.close()


def test_findings_are_logged_once(instance: Manifest, tmp_path: Path, stacks: list[Newstack],
                                  caplog: pytest.LogCaptureFixture) -> None:
    source = LegacySource(open_instance(Path(instance.config_php)))
    stack = open_stack(tmp_path / "new", stacks)
    with caplog.at_level(logging.INFO, logger="ocbridge.migrate"):
        report = UserMigration(source, stack.store, stack.driver, UID).run()
        for _ in range(2):
            DeltaPass(source, stack.store, stack.driver, UID).delta()
    assert report.findings, "the fixture user has findings (expired OAuth2 grants)"
    code = report.findings[0][0]
    levels = [r.levelno for r in caplog.records if f" {code} " in r.getMessage()]
    assert levels.count(logging.WARNING) == 1 and levels.count(logging.INFO) >= 2, levels
    source.instance.close()


def row(fileid: int, size: int, etag: str, checksum: str = "") -> SourceRow:
    return SourceRow(fileid=fileid, storage=1, path=f"files_versions/a.txt.v{fileid}",
                     parent=9, name=f"a.txt.v{fileid}", mimetype="text/plain", size=size,
                     mtime=0, storage_mtime=0, etag=etag, permissions=27, checksum=checksum,
                     encrypted=0)


@pytest.mark.parametrize(("wanted", "have", "imports", "replaced", "removals"), [
    ({}, {}, [], set(), []),
    ({1: [(10, row(101, 5, "e1"))]}, {}, [(1, 10)], set(), []),
    ({1: [(10, row(101, 5, "e1"))]}, {(1, 10): (5, "e1", "")}, [], set(), []),
    # same name, other content: replaced
    ({1: [(10, row(101, 6, "e2"))]}, {(1, 10): (5, "e1", "")}, [(1, 10)], {(1, 10)}, []),
    ({1: [(10, row(101, 5, "e1", "SHA1:b"))]}, {(1, 10): (5, "e1", "SHA1:a")}, [(1, 10)],
     {(1, 10)}, []),
    # gone on oC10: removed; other files' versions untouched
    ({}, {(1, 10): (5, "e1", ""), (2, 10): (5, "e", "")}, [], set(), [(1, 10)]),
])
def test_plan_versions(wanted: dict[int, Any], have: dict[Any, Any], imports: list[Any],
                       replaced: set[Any], removals: list[Any]) -> None:
    plan = plan_versions([1], wanted, have)
    assert [(f, v) for f, v, _ in plan.imports] == imports
    assert plan.replaced == replaced
    assert plan.removals == removals
