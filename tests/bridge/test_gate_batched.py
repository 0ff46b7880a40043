"""The gate under the freeze reads both stacks a chunk at a time (`children_many`,
`versions_many`): the batched calls answer exactly as the single calls do on ownCloud 10
(MariaDB) and on the native stack (SQLite, PostgreSQL), directly and through the sharing view,
and the batched gate still finds every kind of difference, whatever the chunk size."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import bridge.gate
from bridge.gate import changed_scope, compare_scope
from fixtures.manifest import Manifest
from migrate.delta import DeltaPass
from migrate.runner import UserMigration
from migrate.source import LegacySource
from migrate.verify import MISSING, NODE, UNEXPECTED, VERSION
from newstack.backend import FilesBackend, NotFoundError, Version
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.metadata.schema import AREA_FILES
from newstack.service import Newstack
from newstack.sharing.view import SharingBackend
from tests.fixtures.test_instances import build
from tests.migrate.stacks import close_opened, new_stack

#: owns no shares (the gate compares no share state; see tests/bridge/test_cutover.py)
UID = "carol"


@dataclasses.dataclass
class Migrated:
    manifest: Manifest
    source: LegacySource
    legacy: Oc10Backend
    stack: Newstack

    def uids(self) -> list[str]:
        return [u["uid"] for u in self.manifest.users if u["has_home"]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest, new_database: Any) -> str:
    return "" if request.param == "sqlite" else str(new_database("postgres"))


@pytest.fixture
def migrated(tmp_path: Path, mariadb_url: str, metadata_url: str) -> Iterator[Migrated]:
    """The "small" fixture instance on MariaDB, every user copied to a native stack."""
    manifest = build(tmp_path, mariadb_url, "small")
    source = LegacySource(open_instance(Path(manifest.config_php)))
    legacy = Oc10Backend(open_instance(Path(manifest.config_php)))
    stack = new_stack(tmp_path / "new", metadata_url)
    try:
        world = Migrated(manifest, source, legacy, stack)
        for uid in world.uids():
            UserMigration(source, stack.store, stack.driver, uid).run()
        yield world
    finally:
        legacy.close()
        source.instance.close()
        close_opened()


def _walk(backend: FilesBackend, uid: str) -> tuple[list[str], list[int]]:
    """Every folder path and every file id of the user's tree, one `children` at a time."""
    folders, files, pending = [], [], [""]
    while pending:
        path = pending.pop()
        folders.append(path)
        for node in backend.children(uid, path):
            if node.is_dir:
                pending.append(node.path)
            else:
                files.append(node.fileid)
    return folders, files


def _singles_children(backend: FilesBackend, uid: str, paths: list[str]) -> dict[str, Any]:
    found = {}
    for path in paths:
        try:
            found[path] = backend.children(uid, path)
        except NotFoundError:
            continue
    return found


def _singles_versions(backend: FilesBackend, uid: str, ids: list[int]
                      ) -> dict[int, list[Version]]:
    found = {}
    for fileid in ids:
        try:
            found[fileid] = backend.versions(uid, fileid)
        except NotFoundError:
            continue
    return found


# ---------------------------------------------------------------------------------------------
# the batched calls answer as the single ones


def test_batched_calls_give_what_the_single_calls_give(migrated: Migrated) -> None:
    sides: dict[str, FilesBackend] = {
        "oc10": migrated.legacy, "native": migrated.stack.backend,
        "oc10 shared view": SharingBackend(migrated.legacy),
        "native shared view": SharingBackend(migrated.stack.backend),
    }
    uids = migrated.uids()
    with_versions = 0
    for uid in uids:
        folders, files = _walk(migrated.legacy, uid)
        other = next(u for u in uids if u != uid)
        # what the single calls refuse is left out: a missing path, another user's file, a
        # folder's id, an unknown id; a file's path lists nothing; other spellings of a path
        # are keyed as asked
        paths = [*folders, "no/such/folder", f"/{folders[-1]}/",
                 migrated.legacy.by_id(uid, files[0]).path]
        ids = [*files, migrated.legacy.stat(uid, folders[-1]).fileid,
               _walk(migrated.legacy, other)[1][0], max(files) + 10_000]
        for name, backend in sides.items():
            listed = backend.children_many(uid, paths)
            assert listed == _singles_children(backend, uid, paths), (name, uid)
            assert "no/such/folder" not in listed and listed[paths[-1]] == []
            assert sum(len(nodes) for nodes in listed.values()) >= len(files)
            versions = backend.versions_many(uid, ids)
            assert versions == _singles_versions(backend, uid, ids), (name, uid)
            assert set(versions) == set(files), (name, uid)
            with_versions += sum(1 for found in versions.values() if found)
        assert backend.children_many(uid, []) == {} and backend.versions_many(uid, []) == {}
    assert with_versions > 0  # the fixture has versions: their lists were compared


def test_batched_listings_keep_the_byte_order_of_names(migrated: Migrated) -> None:
    names = ["b", "B", "a", "Ä", "ä", "a b", "a-b", "a_b", "Z", "z", "éa", "eb", "日本", "😀"]
    migrated.legacy.mkdir(UID, "order")
    for name in names:
        _write(migrated.legacy, f"order/{name}", b"x")
    DeltaPass(migrated.source, migrated.stack.store, migrated.stack.driver, UID).delta()
    expected = sorted(names, key=lambda n: n.encode())
    for backend in (migrated.legacy, migrated.stack.backend):
        listed = backend.children_many(UID, ["order", ""])
        assert [n.name for n in listed["order"]] == expected
        assert listed == _singles_children(backend, UID, ["order", ""])


# ---------------------------------------------------------------------------------------------
# the batched gate finds every kind of difference


def _write(legacy: Oc10Backend, path: str, body: bytes) -> None:
    legacy.write(UID, path, io.BytesIO(body), length=len(body))


def _node(stack: Newstack, path: str) -> Any:
    record = stack.store.lookup_node(UID, AREA_FILES, path)
    assert record is not None, path
    return record


def _set(stack: Newstack, path: str, **values: Any) -> None:
    n = schema.nodes
    with stack.store.write(UID) as conn:
        conn.execute(n.update().where(n.c.owner == UID, n.c.area == AREA_FILES,
                                      n.c.path == path).values(**values))


def _changed_and_caught_up(migrated: Migrated, folders: int, made: str = "made on oc10"
                           ) -> tuple[Any, list[str]]:
    """One file written in each of the `folders` deepest folders holding files, and a folder
    made, with a file, on ownCloud; the scope taken, the final delta run: (scope, the written
    files)."""
    legacy, stack = migrated.legacy, migrated.stack
    by_folder: dict[str, str] = {}
    for fileid in _walk(legacy, UID)[1]:
        path = legacy.by_id(UID, fileid).path
        by_folder.setdefault(path.rpartition("/")[0], path)
    written = sorted(by_folder.values(), key=lambda p: (-p.count("/"), p))[:folders]
    assert len(written) == folders
    for path in written:
        _write(legacy, path, f"changed before the freeze: {path}\n".encode())
    legacy.mkdir(UID, made)
    legacy.mkdir(UID, f"{made}/below")
    _write(legacy, f"{made}/below/new.txt", b"new\n")
    scope = changed_scope(migrated.source, stack.store, UID)
    DeltaPass(migrated.source, stack.store, stack.driver, UID).delta()
    return scope, written


@pytest.mark.parametrize("chunk", [1, 2, 500])
def test_the_batched_gate_finds_each_kind_of_difference(
        migrated: Migrated, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.gate, "_CHUNK", chunk)
    legacy, stack = migrated.legacy, migrated.stack
    scope, written = _changed_and_caught_up(migrated, 3)
    assert scope.new_subtrees == ["made on oc10"] and len(scope.folders) >= 4
    clean = compare_scope(legacy, stack.backend, UID, scope, content="bytes")
    assert clean.ok, clean.to_dict()
    assert clean.checked["folders"] == len(scope.folders) + 2

    # each difference in another changed folder (so in another chunk when chunks are small)
    versioned, gone, sizes = written
    folder_of = {p: p.rpartition("/")[0] for p in written}
    siblings = {f: [n for n in legacy.children(UID, f) if not n.is_dir and n.path not in written]
                for f in folder_of.values()}
    gone_folder = folder_of[gone]
    with stack.store.write(UID) as conn:
        victim = _node(stack, gone)
        conn.execute(sa.delete(schema.versions).where(schema.versions.c.fileid == victim.fileid))
        conn.execute(sa.delete(schema.nodes).where(schema.nodes.c.fileid == victim.fileid))
        extra = dataclasses.replace(
            victim, fileid=stack.store.allocate_fileids(1, conn)[0],
            path=f"{gone_folder}/extra.txt" if gone_folder else "extra.txt", name="extra.txt",
            path_hash="")
        stack.store.insert_node(conn, extra)
        v = schema.versions
        for path in (versioned, sizes):  # the first and the last file compared by content
            fileid = _node(stack, path).fileid
            kept = conn.execute(sa.select(v.c.version_id).where(
                v.c.fileid == fileid)).scalars().all()
            assert kept  # the write on ownCloud kept the old content as a version
            conn.execute(v.update().where(v.c.fileid == fileid, v.c.version_id == max(kept))
                         .values(size=v.c.size + 1))
    _set(stack, sizes, size=_node(stack, sizes).size + 1)
    etag_file = next(n.path for n in siblings[folder_of[versioned]])
    _set(stack, etag_file, etag="0123456789abc")
    checksum_file = next(n.path for n in siblings[folder_of[sizes]])
    _set(stack, checksum_file, checksum="SHA1:" + "0" * 40)
    _set(stack, "made on oc10/below/new.txt", permissions=1)

    report = compare_scope(legacy, stack.backend, UID, scope, content="checksums")
    found = {(d.kind, d.path, d.field) for d in report.details}
    assert found == {
        (MISSING, gone, ""), (UNEXPECTED, extra.path, ""),
        (VERSION, versioned, "versions"), (VERSION, sizes, "versions"), (NODE, sizes, "size"),
        (NODE, etag_file, "etag"), (NODE, checksum_file, "checksum"),
        (NODE, "made on oc10/below/new.txt", "permissions"),
    }, report.to_dict()
    assert report.errors == []


def test_a_folder_gone_from_one_side_stops_the_gate_passing(migrated: Migrated) -> None:
    scope, written = _changed_and_caught_up(migrated, 1)
    deepest = written[0].rpartition("/")[0]
    assert deepest in scope.folders and deepest
    n = schema.nodes
    with migrated.stack.store.write(UID) as conn:
        conn.execute(n.update().where(n.c.owner == UID, n.c.path == deepest,
                                      n.c.area == AREA_FILES).values(
            path="moved away", path_hash="", name="moved away"))
    report = compare_scope(migrated.legacy, migrated.stack.backend, UID, scope)
    assert not report.ok
    assert any(repr(deepest) in e and "the new stack" in e for e in report.errors), report.errors


def _statements(migrated: Migrated, scope: Any) -> tuple[dict[str, int], Any]:
    """compare_scope's statements on each side's database, and its report."""
    statements = {"oc10": 0, "native": 0}
    engines = {"oc10": migrated.legacy.engine, "native": migrated.stack.store.engine}

    def counter(side: str) -> Any:
        def count(*_args: Any) -> None:
            statements[side] += 1
        return count

    listeners = [(engine, counter(side)) for side, engine in engines.items()]
    for engine, listener in listeners:
        sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        report = compare_scope(migrated.legacy, migrated.stack.backend, UID, scope)
    finally:
        for engine, listener in listeners:
            sa.event.remove(engine, "before_cursor_execute", listener)
    return statements, report


def test_the_gate_costs_the_same_queries_for_more_folders_and_files(
        migrated: Migrated) -> None:
    small, _ = _changed_and_caught_up(migrated, 1)
    compare_scope(migrated.legacy, migrated.stack.backend, UID, small)  # caches warmed
    few, few_report = _statements(migrated, small)
    large, _ = _changed_and_caught_up(migrated, 3, made="made on oc10 again")
    many, many_report = _statements(migrated, large)
    assert few_report.ok and many_report.ok, (few_report.to_dict(), many_report.to_dict())
    # each side's folders in one chunk, and the new subtree's two levels in one each
    assert many_report.checked["folders"] >= few_report.checked["folders"] + 3
    assert many_report.checked["files"] > few_report.checked["files"]
    assert many == few, (few, many)
