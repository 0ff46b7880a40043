"""NativeBackend on real SQLite and PostgreSQL with the memory and POSIX drivers."""

import hashlib
import io
import re
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dbharness
import pytest
import sqlalchemy as sa

from bridge.oc10.formats import PERM_ALL, ChecksumAccumulator, dav_permissions
from bridge.oc10.passwords import (
    VerifiedCredentialCache,
    hash_argon2,
    hash_format,
    hash_legacy_bcrypt,
    hash_legacy_sha1,
    hash_password,
)
from newstack.backend import (
    AlreadyExistsError,
    ChecksumMismatchError,
    ConflictError,
    ForbiddenError,
    IncompleteBodyError,
    InvalidPathError,
    Lock,
    LockedError,
    Node,
    NotFoundError,
    PreconditionFailedError,
    QuotaExceededError,
)
from newstack.metadata import schema
from newstack.metadata.engine import open_engine
from newstack.metadata.store import MetadataStore, NodeRecord
from newstack.metadata.upgrade import upgrade_to_head
from newstack.native import NativeBackend
from newstack.storage.base import StorageDriver
from newstack.storage.memory import MemoryDriver
from newstack.storage.posix import PosixDriver

BASE = 2**31 + 7_000_000
SECRET = "oc10-secret"
SALT = "oc10-passwordsalt"
T0 = 2_000_000_000.0  # later than now: roots made by add_user are older
MiB = 1024 * 1024


Setup = tuple[sa.Engine, StorageDriver]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


class _Databases:
    """One database per kind for the whole module, emptied before each test (creating a
    PostgreSQL database per test would cost a second each)."""

    def __init__(self) -> None:
        self.engines: dict[str, sa.Engine] = {}
        self.urls: list[str] = []

    def empty(self, kind: str) -> sa.Engine:
        if kind not in self.engines:
            url = dbharness.create_temp_database(kind)
            self.urls.append(url)
            self.engines[kind] = open_engine(url)
            upgrade_to_head(self.engines[kind])
        engine = self.engines[kind]
        # the fileid counter stays: ids are never reused, across tests too
        tables = [t for t in schema.metadata.sorted_tables if t is not schema.fileid_alloc]
        with engine.begin() as conn:
            if kind == "postgres":
                conn.exec_driver_sql(f"TRUNCATE {', '.join(f'"{t.name}"' for t in tables)}")
            else:
                for table in reversed(tables):
                    conn.execute(sa.delete(table))
        return engine

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        for url in self.urls:
            dbharness.drop_database(url)


@pytest.fixture(scope="module")
def databases() -> Iterator[_Databases]:
    databases = _Databases()
    yield databases
    databases.close()


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "memory"), id="sqlite-memory"),
        pytest.param(("sqlite", "posix"), id="sqlite-posix"),
        pytest.param(("postgres", "posix"), marks=pytest.mark.postgres, id="postgres-posix"),
    ]
)
def setup(request: pytest.FixtureRequest, databases: _Databases, tmp_path: Path) -> Setup:
    database, driver_name = request.param
    engine = databases.empty(database)
    driver: StorageDriver = (
        MemoryDriver() if driver_name == "memory" else PosixDriver(tmp_path / "blob", fsync=False)
    )
    return engine, driver


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(setup: Setup) -> MetadataStore:
    return MetadataStore(setup[0], BASE)


@pytest.fixture
def backend(setup: Setup, store: MetadataStore, clock: Clock) -> NativeBackend:
    store.add_user("alice", email="alice@example.org")
    return _backend(store, setup[1], clock)


def _backend(
    store: MetadataStore, driver: StorageDriver, clock: Clock, **kw: Any
) -> NativeBackend:
    return NativeBackend(
        store, driver, instance_id="ocabcdef1234", secret=SECRET, passwordsalt=SALT,
        credential_cache=VerifiedCredentialCache(), clock=clock, **kw,
    )


def put(backend: NativeBackend, path: str, data: bytes, **kw: Any) -> Node:
    kw.setdefault("length", len(data))
    return backend.write("alice", path, io.BytesIO(data), **kw).node


def content(backend: NativeBackend, path: str) -> bytes:
    return b"".join(backend.read("alice", backend.stat("alice", path)))


def snapshot(backend: NativeBackend, path: str = "") -> dict[str, Node]:
    """Every node of alice's files below `path`, by path."""
    nodes = {path: backend.stat("alice", path)}
    for child in backend.children("alice", path):
        nodes.update(snapshot(backend, child.path) if child.is_dir else {child.path: child})
    return nodes


def blobs(backend: NativeBackend) -> set[str]:
    driver = backend.driver
    if isinstance(driver, MemoryDriver):
        return set(driver.blobs)
    assert isinstance(driver, PosixDriver)
    return {p.name for p in driver.root.rglob("*") if p.is_file() and ".tmp" not in p.parts}


def count_rows(backend: NativeBackend, table: sa.Table) -> int:
    with backend.store.read() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def tree(backend: NativeBackend) -> None:
    """''/A/B/C/deep.txt, A/B/sib.txt, A/D/cousin/x.txt, Z/z.txt, top.txt"""
    for folder in ("A", "A/B", "A/B/C", "A/D", "A/D/cousin", "Z"):
        backend.mkdir("alice", folder)
    for path in ("A/B/C/deep.txt", "A/B/sib.txt", "A/D/cousin/x.txt", "Z/z.txt", "top.txt"):
        put(backend, path, path.encode())


# -- propagation ---------------------------------------------------------------------------------


def test_change_deep_in_tree_reetags_every_ancestor_alike_and_nothing_else(
    backend: NativeBackend, clock: Clock
) -> None:
    tree(backend)
    clock.tick(100)
    before = snapshot(backend)
    new = put(backend, "A/B/C/new.txt", b"0123456789")
    after = snapshot(backend)

    ancestors = ["", "A", "A/B", "A/B/C"]
    fresh = {after[p].etag for p in ancestors}
    assert len(fresh) == 1 and re.fullmatch(r"[0-9a-f]{13}", fresh.pop())
    for p in ancestors:
        assert after[p].etag != before[p].etag
        assert after[p].size == before[p].size + 10
        assert after[p].mtime == int(clock.now)
        assert after[p].fileid == before[p].fileid
    untouched = set(before) - set(ancestors)
    assert untouched == {"A/B/C/deep.txt", "A/B/sib.txt", "A/D", "A/D/cousin",
                         "A/D/cousin/x.txt", "Z", "Z/z.txt", "top.txt"}
    for p in untouched:
        assert after[p] == before[p]
    assert re.fullmatch(r"[0-9a-f]{32}", new.etag)
    assert after[""].size == sum(n.size for n in after.values() if not n.is_dir)


def test_client_mtime_is_applied_and_propagated_as_the_greater(
    backend: NativeBackend, clock: Clock
) -> None:
    backend.mkdir("alice", "A")
    clock.tick(50)
    result = backend.write("alice", "A/old.txt", io.BytesIO(b"x"), length=1, mtime=1_000)
    assert result.mtime_accepted and result.node.mtime == 1_000
    assert backend.stat("alice", "A").mtime == int(T0)  # max(mtime, 1000)
    result = backend.write("alice", "A/new.txt", io.BytesIO(b"x"), length=1, mtime=int(T0) + 999)
    assert backend.stat("alice", "A").mtime == int(T0) + 999
    assert backend.stat("alice", "").mtime == int(T0) + 999
    assert not backend.write("alice", "A/now.txt", io.BytesIO(b""), length=0).mtime_accepted


def test_overwrite_delete_and_move_keep_folder_sizes_right(
    backend: NativeBackend, clock: Clock
) -> None:
    tree(backend)
    put(backend, "A/B/sib.txt", b"much longer content than before")
    backend.delete("alice", "A/D")
    backend.move("alice", "A/B/C", "Z/C", overwrite=False)
    after = snapshot(backend)
    for folder in (p for p, n in after.items() if n.is_dir):
        direct = [n for n in backend.children("alice", folder)]
        assert after[folder].size == sum(n.size for n in direct), folder


def test_move_gives_both_parent_chains_one_new_etag(backend: NativeBackend, clock: Clock) -> None:
    tree(backend)
    clock.tick(10)
    before = snapshot(backend)
    result = backend.move("alice", "A/B/C/deep.txt", "Z/deep.txt", overwrite=False)
    after = snapshot(backend)
    assert result.created and result.node.fileid == before["A/B/C/deep.txt"].fileid
    assert result.node.etag == before["A/B/C/deep.txt"].etag  # a move does not touch content
    changed = {p for p in after if p in before and after[p].etag != before[p].etag}
    assert changed == {"", "A", "A/B", "A/B/C", "Z"}
    assert len({after[p].etag for p in changed}) == 1
    assert after["A/B/C"].size == 0 and after["Z"].size == before["Z"].size + len(b"A/B/C/deep.txt")
    assert after[""].size == before[""].size


# -- fileids -----------------------------------------------------------------------------------


def test_new_fileids_are_above_the_base_and_never_reused(backend: NativeBackend) -> None:
    seen: list[int] = [backend.stat("alice", "").fileid]
    for _ in range(3):
        seen.append(backend.mkdir("alice", "d").fileid)
        seen.append(put(backend, "d/f.txt", b"x").fileid)
        seen.append(put(backend, "f.txt", b"y").fileid)
        backend.delete("alice", "d")
        backend.delete("alice", "f.txt")
        backend.purge("alice")
    assert len(seen) == len(set(seen))
    assert min(seen) >= BASE


def test_move_keeps_every_fileid_of_the_subtree(backend: NativeBackend) -> None:
    tree(backend)
    before = {p.removeprefix("A/"): n.fileid for p, n in snapshot(backend, "A").items()}
    backend.move("alice", "A", "Z/Moved", overwrite=False)
    after = {p.removeprefix("Z/Moved/"): n.fileid for p, n in snapshot(backend, "Z/Moved").items()}
    after["A"] = after.pop("Z/Moved")
    assert after == before
    with pytest.raises(NotFoundError):
        backend.stat("alice", "A/B")
    assert content(backend, "Z/Moved/B/C/deep.txt") == b"A/B/C/deep.txt"


def test_rename_updates_mimetype_but_not_etag(backend: NativeBackend) -> None:
    node = put(backend, "notes.txt", b"# hi")
    moved = backend.move("alice", "notes.txt", "notes.md", overwrite=False).node
    assert (moved.mimetype, moved.etag, moved.fileid) == ("text/markdown", node.etag, node.fileid)


def test_rename_keeps_a_stored_mimetype_while_the_extension_stays(
    backend: NativeBackend, store: MetadataStore
) -> None:
    root = backend.stat("alice", "")
    store.insert_nodes([
        NodeRecord(fileid=77, owner="alice", area="files", path="a.txt", parent=root.fileid,
                   name="a.txt", is_dir=False, size=0, mtime=1, etag="e" * 32, checksum="",
                   mimetype="text/x-legacy", permissions=27, blob_id=None),
    ])
    assert backend.move("alice", "a.txt", "b.txt", overwrite=False).node.mimetype == "text/x-legacy"
    backend.delete("alice", "b.txt")
    assert backend.restore("alice", 77).mimetype == "text/x-legacy"
    assert backend.move("alice", "b.txt", "b.md", overwrite=False).node.mimetype == "text/markdown"


def test_move_onto_existing_needs_overwrite_and_trashes_the_target(backend: NativeBackend) -> None:
    put(backend, "a.txt", b"a")
    old_b = put(backend, "b.txt", b"b")
    with pytest.raises(AlreadyExistsError):
        backend.move("alice", "a.txt", "b.txt", overwrite=False)
    result = backend.move("alice", "a.txt", "b.txt", overwrite=True)
    assert not result.created and content(backend, "b.txt") == b"a"
    assert [item.node.fileid for item in backend.trash("alice")] == [old_b.fileid]


def test_copy_gets_new_fileids_and_its_own_blobs(backend: NativeBackend, clock: Clock) -> None:
    tree(backend)
    put(backend, "A/B/sib.txt", b"second")  # sib.txt now has a version
    source = snapshot(backend, "A")
    result = backend.copy("alice", "A", "Copy", overwrite=False)
    copied = snapshot(backend, "Copy")
    assert result.created and len(copied) == len(source)
    assert not {n.fileid for n in copied.values()} & {n.fileid for n in source.values()}
    assert min(n.fileid for n in copied.values()) >= BASE
    assert content(backend, "Copy/B/sib.txt") == b"second"
    sib = copied["Copy/B/sib.txt"]
    assert [v.version_id for v in backend.versions("alice", sib.fileid)] == [int(T0)]
    assert b"".join(backend.read_version("alice", sib.fileid, int(T0))) == b"A/B/sib.txt"
    # the copy is independent: purging the original leaves its content alone
    backend.delete("alice", "A")
    backend.purge("alice")
    assert content(backend, "Copy/B/C/deep.txt") == b"A/B/C/deep.txt"
    assert backend.stat("alice", "").size == sum(
        n.size for n in snapshot(backend).values() if not n.is_dir
    )


def test_copy_into_itself_is_refused(backend: NativeBackend) -> None:
    backend.mkdir("alice", "A")
    # sabre/dav refuses a target inside the source with 409, the same node with 403
    with pytest.raises(ConflictError):
        backend.copy("alice", "A", "A/inner", overwrite=False)
    with pytest.raises(ForbiddenError):
        backend.move("alice", "A", "A", overwrite=True)


# -- trash ---------------------------------------------------------------------------------------


def test_delete_and_restore_keep_the_fileid(backend: NativeBackend, clock: Clock) -> None:
    tree(backend)
    ids = {p: n.fileid for p, n in snapshot(backend, "A/B").items()}
    clock.tick(5)
    backend.delete("alice", "A/B")
    (item,) = backend.trash("alice")
    assert item.node.fileid == ids["A/B"]
    assert item.node.path == f"B.d{int(clock.now)}" and item.deleted_at == int(clock.now)
    assert (item.original_name, item.original_location) == ("B", "A")
    with pytest.raises(NotFoundError):
        backend.stat("alice", "A/B")
    restored = backend.restore("alice", item.node.fileid)
    assert restored.path == "A/B" and restored.fileid == ids["A/B"]
    assert {p: n.fileid for p, n in snapshot(backend, "A/B").items()} == ids
    assert backend.trash("alice") == []


def test_top_level_items_have_location_dot(backend: NativeBackend) -> None:
    put(backend, "top.txt", b"x")
    backend.delete("alice", "top.txt")
    assert backend.trash("alice")[0].original_location == "."


def test_restore_name_clash_and_missing_folder(backend: NativeBackend, clock: Clock) -> None:
    backend.mkdir("alice", "Docs")
    put(backend, "Docs/report.pdf", b"1")
    backend.delete("alice", "Docs/report.pdf")
    clock.tick()
    put(backend, "Docs/report.pdf", b"2")
    backend.delete("alice", "Docs/report.pdf")
    clock.tick()
    put(backend, "Docs/report.pdf", b"3")
    first, second = backend.trash("alice")
    assert backend.restore("alice", first.node.fileid).path == "Docs/report (restored).pdf"
    assert backend.restore("alice", second.node.fileid).path == "Docs/report (restored 2).pdf"
    # the original folder is gone: back to the top level
    put(backend, "Docs/gone.txt", b"g")
    backend.delete("alice", "Docs/gone.txt")
    backend.delete("alice", "Docs")
    gone = next(i for i in backend.trash("alice") if i.original_name == "gone.txt")
    assert backend.restore("alice", gone.node.fileid).path == "gone.txt"


def test_restore_to_a_destination(backend: NativeBackend) -> None:
    put(backend, "a.txt", b"a")
    put(backend, "b.txt", b"b")
    backend.delete("alice", "a.txt")
    (item,) = backend.trash("alice")
    with pytest.raises(AlreadyExistsError):
        backend.restore("alice", item.node.fileid, "b.txt")
    with pytest.raises(ConflictError):
        backend.restore("alice", item.node.fileid, "nowhere/a.txt")
    node = backend.restore("alice", item.node.fileid, "c.md")
    assert (node.path, node.mimetype) == ("c.md", "text/markdown")
    assert content(backend, "c.md") == b"a"


def test_restore_an_item_from_inside_a_trashed_folder(backend: NativeBackend) -> None:
    tree(backend)
    deep = backend.stat("alice", "A/B/C/deep.txt")
    backend.delete("alice", "A")
    node = backend.restore("alice", deep.fileid)
    # its folders are gone, so it lands at the top level; the trashed folder shrinks
    assert (node.path, node.fileid) == ("deep.txt", deep.fileid)
    (item,) = backend.trash("alice")
    assert item.node.size == sum(len(p) for p in (b"A/B/sib.txt", b"A/D/cousin/x.txt"))


def test_inside_a_trashed_folder(backend: NativeBackend) -> None:
    tree(backend)
    backend.delete("alice", "A")
    (item,) = backend.trash("alice")
    names = [n.name for n in backend.trash_children("alice", item.node.fileid)]
    assert names == ["B", "D"]
    b = backend.trash_children("alice", item.node.fileid)[0]
    sib = next(n for n in backend.trash_children("alice", b.fileid) if n.name == "sib.txt")
    assert sib.path == f"{item.node.name}/B/sib.txt"
    assert b"".join(backend.read_trashed("alice", sib.fileid, 4)) == b"sib.txt"
    with pytest.raises(NotFoundError):
        backend.trash_children("alice", backend.stat("alice", "").fileid)


def test_trash_twice_in_one_second_keeps_both(backend: NativeBackend) -> None:
    for data in (b"1", b"2"):
        put(backend, "same.txt", data)
        backend.delete("alice", "same.txt")
    names = sorted(i.node.name for i in backend.trash("alice"))
    assert names == [f"same.txt.d{int(T0)}", f"same.txt.d{int(T0) + 1}"]


def test_purge_removes_nodes_versions_and_blobs(backend: NativeBackend) -> None:
    put(backend, "keep.txt", b"keep")
    put(backend, "v.txt", b"one")
    put(backend, "v.txt", b"two")
    backend.mkdir("alice", "F")
    put(backend, "F/in.txt", b"in")
    baseline = blobs(backend)
    backend.delete("alice", "v.txt")
    backend.delete("alice", "F")
    items = backend.trash("alice")
    backend.purge("alice", items[0].node.fileid)
    assert len(backend.trash("alice")) == 1
    backend.purge("alice")
    assert backend.trash("alice") == []
    # v.txt, its version and F/in.txt are gone; keep.txt's blob is all that is left
    assert len(baseline) == 4 and len(blobs(backend)) == 1
    assert count_rows(backend, schema.versions) == 0
    assert content(backend, "keep.txt") == b"keep"
    with pytest.raises(NotFoundError):
        backend.purge("alice", 12345)


# -- versions ----------------------------------------------------------------------------------


def test_overwrite_keeps_the_old_content_as_a_version(backend: NativeBackend, clock: Clock) -> None:
    first = backend.write("alice", "doc.txt", io.BytesIO(b"v1"), length=2, mtime=1_000).node
    clock.tick()
    second = backend.write("alice", "doc.txt", io.BytesIO(b"v2!"), length=3, mtime=2_000).node
    clock.tick()
    third = put(backend, "doc.txt", b"v3")
    assert first.fileid == second.fileid == third.fileid
    assert len({first.etag, second.etag, third.etag}) == 3
    versions = backend.versions("alice", first.fileid)
    assert [(v.version_id, v.size, v.etag) for v in versions] == [
        (2_000, 3, second.etag), (1_000, 2, first.etag)
    ]
    assert versions[0].checksum == second.checksum
    assert b"".join(backend.read_version("alice", first.fileid, 1_000)) == b"v1"
    assert backend.stat("alice", "").size == 2  # versions do not count


def test_empty_content_gets_no_version(backend: NativeBackend) -> None:
    node = put(backend, "e.txt", b"")
    put(backend, "e.txt", b"data")
    assert backend.versions("alice", node.fileid) == []


def test_restore_version_swaps_current_and_old(backend: NativeBackend, clock: Clock) -> None:
    node = backend.write("alice", "doc.txt", io.BytesIO(b"old"), length=3, mtime=1_000).node
    backend.write("alice", "doc.txt", io.BytesIO(b"newer"), length=5, mtime=2_000)
    clock.tick(10)
    before = backend.stat("alice", "")
    restored = backend.restore_version("alice", node.fileid, 1_000)
    assert (restored.mtime, restored.size, restored.fileid) == (1_000, 3, node.fileid)
    assert content(backend, "doc.txt") == b"old"
    assert [v.version_id for v in backend.versions("alice", node.fileid)] == [2_000]
    assert b"".join(backend.read_version("alice", node.fileid, 2_000)) == b"newer"
    root = backend.stat("alice", "")
    assert root.etag != before.etag and root.size == before.size - 2
    with pytest.raises(NotFoundError):
        backend.restore_version("alice", node.fileid, 1_000)


def test_versions_follow_the_file_into_the_trash_and_back(backend: NativeBackend) -> None:
    node = backend.write("alice", "d.txt", io.BytesIO(b"1"), length=1, mtime=1_000).node
    put(backend, "d.txt", b"2")
    backend.delete("alice", "d.txt")
    with pytest.raises(NotFoundError):
        backend.versions("alice", node.fileid)
    backend.restore("alice", node.fileid)
    assert [v.version_id for v in backend.versions("alice", node.fileid)] == [1_000]


# -- refused writes leave no trace ---------------------------------------------------------------


def _trace(backend: NativeBackend) -> tuple[object, ...]:
    return (
        snapshot(backend),
        blobs(backend),
        count_rows(backend, schema.versions),
        count_rows(backend, schema.nodes),
    )


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_refused_writes_leave_no_trace(
    backend: NativeBackend, store: MetadataStore, existing: bool
) -> None:
    backend.mkdir("alice", "F")
    if existing:
        put(backend, "F/f.txt", b"original")
    store.update_user("alice", quota="100 B")
    before = _trace(backend)
    body = b"x" * 50
    sha1 = hashlib.sha1(body).hexdigest()
    attempts: list[tuple[type[Exception], dict[str, Any]]] = [
        (ChecksumMismatchError, dict(checksum="SHA1:" + "0" * 40)),
        (ChecksumMismatchError, dict(checksum="MD5:" + hashlib.md5(b"other").hexdigest())),
        (IncompleteBodyError, dict(length=80)),
        (QuotaExceededError, dict(data=b"x" * 101, length=101)),
        (QuotaExceededError, dict(data=b"x" * 101, length=None)),  # unknown length: while streaming
        (PreconditionFailedError, dict(if_match='"not-the-etag"')),
    ]
    if existing:
        attempts.append((PreconditionFailedError, dict(if_none_match="*")))
    for error, kw in attempts:
        data = kw.pop("data", body)
        kw.setdefault("length", len(body))
        with pytest.raises(error):
            backend.write("alice", "F/f.txt", io.BytesIO(data), **kw)
        assert _trace(backend) == before, error
    # and the same write with the right checksum goes through
    node = put(backend, "F/f.txt", body, checksum=f"SHA1:{sha1}")
    assert node.checksum.startswith(f"SHA1:{sha1} MD5:{hashlib.md5(body).hexdigest()} ADLER32:")


def test_if_match_with_the_current_etag_or_star(backend: NativeBackend) -> None:
    node = put(backend, "f.txt", b"1")
    node = put(backend, "f.txt", b"2", if_match=f'"{node.etag}"')
    node = put(backend, "f.txt", b"3", if_match="*")
    with pytest.raises(PreconditionFailedError):
        put(backend, "g.txt", b"x", if_match="*")
    put(backend, "g.txt", b"x", if_none_match="*")
    with pytest.raises(PreconditionFailedError):
        put(backend, "f.txt", b"4", if_none_match=f'"{node.etag}"')


def test_checksum_header_is_matched_as_a_substring(backend: NativeBackend) -> None:
    data = b"hello"
    acc = ChecksumAccumulator()
    acc.update(data)
    for part in acc.result().split(" "):
        node = put(backend, "c.txt", data, checksum=part)
        assert node.checksum == acc.result()


# -- names, folders, reads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (".", InvalidPathError),
        ("..", InvalidPathError),
        ("a\0b", InvalidPathError),
        ("a\\b", InvalidPathError),
        ("new\nline", InvalidPathError),
        ("*", InvalidPathError),
        ("x" * 251, InvalidPathError),
        ("ä" * 128, InvalidPathError),  # 256 bytes
        ("upload.part", InvalidPathError),
        ("folder.with.ext.part", InvalidPathError),
        (".htaccess", ForbiddenError),
        (".HTAccess", ForbiddenError),
    ],
)
def test_invalid_names_are_refused_everywhere(
    backend: NativeBackend, name: str, error: type[Exception]
) -> None:
    put(backend, "src.txt", b"s")
    before = _trace(backend)
    with pytest.raises(error):
        put(backend, name, b"x")
    with pytest.raises(error):
        backend.mkdir("alice", name)
    with pytest.raises(error):
        backend.move("alice", "src.txt", name, overwrite=False)
    with pytest.raises(error):
        backend.copy("alice", "src.txt", name, overwrite=False)
    assert _trace(backend) == before


def test_long_names_within_oc10_limits(backend: NativeBackend) -> None:
    put(backend, "x" * 250, b"1")
    put(backend, "ä" * 127, b"2")  # 254 bytes, 127 characters
    assert {n.name for n in backend.children("alice", "")} == {"x" * 250, "ä" * 127}


def test_mkdir_rules(backend: NativeBackend) -> None:
    folder = backend.mkdir("alice", "New")
    assert (folder.permissions, folder.size, folder.mimetype) == (31, 0, "httpd/unix-directory")
    assert re.fullmatch(r"[0-9a-f]{13}", folder.etag)
    assert dav_permissions(folder.permissions, is_dir=True) == "RDNVCK"
    with pytest.raises(AlreadyExistsError):
        backend.mkdir("alice", "New")
    with pytest.raises(ConflictError):
        backend.mkdir("alice", "Missing/Sub")
    put(backend, "file", b"")
    with pytest.raises(ConflictError):
        backend.mkdir("alice", "file/Sub")
    with pytest.raises(AlreadyExistsError):
        put(backend, "New", b"x")


def test_files_root_and_file_shapes(backend: NativeBackend) -> None:
    root = backend.stat("alice", "")
    assert (root.permissions, root.name, root.path, root.is_dir) == (PERM_ALL, "", "", True)
    node = put(backend, "photo.JPG", b"\xff\xd8")
    assert (node.permissions, node.mimetype, node.owner) == (27, "image/jpeg", "alice")
    assert dav_permissions(node.permissions, is_dir=False) == "RDNVW"
    assert backend.by_id("alice", node.fileid) == node
    with pytest.raises(NotFoundError):
        backend.by_id("alice", root.fileid + 10_000)


def test_read_ranges(backend: NativeBackend) -> None:
    node = put(backend, "r.bin", bytes(range(256)) * 10)
    assert b"".join(backend.read("alice", node, 10, 20)) == bytes(range(10, 20))
    assert b"".join(backend.read("alice", node, 2550)) == bytes(range(246, 256))
    with pytest.raises(ForbiddenError):
        backend.read("alice", backend.stat("alice", ""))


def test_children_in_byte_order(backend: NativeBackend) -> None:
    names = ["a", "ä", "B", "Z", "_x", "b.txt", "A", "é", "10", "9"]
    for name in names:
        put(backend, name, b"")
    listed = [n.name for n in backend.children("alice", "")]
    assert listed == ["10", "9", "A", "B", "Z", "_x", "a", "b.txt", "ä", "é"]
    assert listed.index("B") < listed.index("a") < listed.index("ä")


def test_other_users_files_are_invisible(backend: NativeBackend, store: MetadataStore) -> None:
    store.add_user("bob")
    node = put(backend, "secret.txt", b"s")
    with pytest.raises(NotFoundError):
        backend.by_id("bob", node.fileid)
    with pytest.raises(NotFoundError):
        backend.read("bob", node)
    assert backend.children("bob", "") == []


# -- annotations -------------------------------------------------------------------------------


def test_extras_take_one_query_per_kind(backend: NativeBackend, store: MetadataStore) -> None:
    for i in range(30):
        put(backend, f"f{i:02}.txt", b"x")
    backend.set_favorite("alice", "f03.txt", True)
    backend.set_favorite("alice", "f04.txt", True)
    backend.set_favorite("alice", "f04.txt", False)
    backend.set_tags("alice", "f05.txt", ["work", "blue"])
    backend.set_dead_props("alice", "f06.txt", {"{urn:x}color": "<x:c>red</x:c>", "{urn:x}y": "1"})
    backend.set_dead_props("alice", "f06.txt", {"{urn:x}y": None})
    f07 = backend.stat("alice", "f07.txt").fileid
    with store.write() as conn:
        conn.execute(sa.insert(schema.comments), [
            {"fileid": f07, "actor": "bob", "message": "m", "created": 100 + i} for i in range(3)
        ])
        conn.execute(sa.insert(schema.comment_read_markers).values(
            uid="alice", fileid=f07, marked_at=101))
    listing = backend.children("alice", "")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        extras = backend.extras("alice", listing)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # favorites, tags, comments, dead properties, share types; on SQLite the share-types
    # lookup runs on the driver connection (as the store's hot paths), unseen by events
    assert len(selects) == (5 if store.is_postgres else 4)
    by_name = {n.name: extras[n.fileid] for n in listing}
    assert [n for n, e in by_name.items() if e.favorite] == ["f03.txt"]
    assert by_name["f05.txt"].tags == ("blue", "work")
    assert by_name["f06.txt"].dead == {"{urn:x}color": "<x:c>red</x:c>"}
    assert (by_name["f07.txt"].comments_count, by_name["f07.txt"].comments_unread) == (3, 1)
    assert by_name["f00.txt"] == type(by_name["f00.txt"])()


def test_set_mtime_changes_etag_and_propagates(backend: NativeBackend, clock: Clock) -> None:
    backend.mkdir("alice", "F")
    node = put(backend, "F/f.txt", b"x")
    before = backend.stat("alice", "F")
    touched = backend.set_mtime("alice", "F/f.txt", int(T0) + 500)
    assert touched.mtime == int(T0) + 500 and touched.etag != node.etag
    folder = backend.stat("alice", "F")
    assert folder.etag != before.etag and folder.mtime == int(T0) + 500


def test_set_etag_overwrites_only_that_node(backend: NativeBackend) -> None:
    put(backend, "f.txt", b"x")
    root = backend.stat("alice", "")
    assert backend.set_etag("alice", "f.txt", '"abc123"').etag == "abc123"
    assert backend.stat("alice", "f.txt").etag == "abc123"
    assert backend.stat("alice", "") == root


# -- quota ---------------------------------------------------------------------------------------


def test_quota_values(
    backend: NativeBackend, store: MetadataStore, setup: Setup, clock: Clock
) -> None:
    put(backend, "f.txt", b"x" * 100)
    assert backend.quota("alice").available == -3  # unlimited
    store.update_user("alice", quota="1 KB")
    quota = backend.quota("alice")
    assert (quota.used, quota.available) == (100, 924)
    put(backend, "big.txt", b"x" * 924)
    assert backend.quota("alice").available == 0
    backend.delete("alice", "big.txt")  # the trash does not count
    assert backend.quota("alice").used == 100
    store.update_user("alice", quota="default")
    limited = _backend(store, setup[1], clock, default_quota="200 B")
    assert limited.quota("alice").available == 100
    assert limited.user("alice").quota == 200  # type: ignore[union-attr]


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_hash",
    [
        pytest.param(lambda pw: hash_password(pw, cost=4), id="bcrypt"),
        pytest.param(hash_argon2, id="argon2"),
        pytest.param(lambda pw: hash_legacy_bcrypt(pw, SALT, cost=4), id="legacy-bcrypt"),
        pytest.param(hash_legacy_sha1, id="legacy-sha1"),
    ],
)
def test_every_hash_format_logs_in_and_is_upgraded(
    backend: NativeBackend, store: MetadataStore, make_hash: Callable[[str], str]
) -> None:
    store.add_user("Bob", password_hash=make_hash("correct horse"), display_name="Bob B.")
    assert backend.authenticate("bob", "wrong") is None
    user = backend.authenticate("BOB", "correct horse")
    assert user is not None and (user.uid, user.display_name) == ("Bob", "Bob B.")
    stored = store.user("Bob").password  # type: ignore[union-attr]
    assert hash_format(stored) == "bcrypt" and stored.startswith("1|$2y$10$")
    assert backend.authenticate("Bob", "correct horse") is not None  # the upgraded hash works


def test_verified_passwords_are_cached(backend: NativeBackend, store: MetadataStore) -> None:
    store.add_user("carol", password_hash=hash_password("pw"))
    cache = backend._credentials
    assert backend.authenticate("carol", "pw") is not None
    assert len(cache) == 1
    assert cache.contains("carol", "pw", store.user("carol").password)  # type: ignore[union-attr]


def test_login_by_email_needs_exactly_one_account(
    backend: NativeBackend, store: MetadataStore
) -> None:
    store.add_user("dave", password_hash=hash_legacy_sha1("pw"), email="Shared@Example.org")
    user = backend.authenticate("shared@example.ORG", "pw")
    assert user is not None and user.uid == "dave"
    store.add_user("erin", password_hash=hash_legacy_sha1("pw"), email="shared@example.org")
    assert backend.authenticate("shared@example.org", "pw") is None


def test_disabled_users_are_refused(backend: NativeBackend, store: MetadataStore) -> None:
    store.add_user("frank", password_hash=hash_legacy_sha1("pw"), enabled=False)
    store.set_setting("secret", SECRET)
    token = store.add_app_password("frank", "phone")
    assert backend.authenticate("frank", "pw") is None
    assert backend.authenticate("frank", token) is None


def test_app_password_login_name_rules(backend: NativeBackend, store: MetadataStore) -> None:
    store.add_user("gina", password_hash=hash_legacy_sha1("pw"), email="gina@example.org")
    by_email = store.add_app_password("gina", "phone", secret=SECRET, login_name="Gina@Example.org")
    by_uid = store.add_app_password("gina", "laptop", secret=SECRET)
    # the Basic user name must be the token's login name, ignoring ASCII case
    assert backend.authenticate("gina@example.org", by_email).uid == "gina"  # type: ignore[union-attr]
    assert backend.authenticate("gina", by_email) is None
    assert backend.authenticate("GINA", by_uid).uid == "gina"  # type: ignore[union-attr]
    # an e-mail login is retried as the uid, so a token created under the uid matches too
    assert backend.authenticate("gina@example.org", by_uid).uid == "gina"  # type: ignore[union-attr]
    assert backend.authenticate("gina", "NOT-A-REAL-TOKEN") is None
    # the token works although the password changed; the password still works as well
    assert backend.authenticate("gina", "pw") is not None


def test_unknown_users_and_empty_credentials(backend: NativeBackend) -> None:
    assert backend.authenticate("nobody", "pw") is None
    assert backend.authenticate("alice", "") is None  # alice has no password
    assert backend.user("nobody") is None
    user = backend.user("alice")
    assert user is not None
    assert (user.display_name, user.language, user.quota) == ("alice", "en", None)


# -- locks ---------------------------------------------------------------------------------------


def _lock(
    token: str, path: str, scope: str = "exclusive", depth: int = 0, timeout: int = 60
) -> Lock:
    return Lock(token=token, path=path, owner="<d:href>me</d:href>", scope=scope, depth=depth,
                timeout=timeout, created_at=0)


def test_lock_conflicts(backend: NativeBackend, clock: Clock) -> None:
    backend.mkdir("alice", "F")
    put(backend, "F/f.txt", b"x")
    backend.lock("alice", _lock("t1", "F", depth=-1))
    with pytest.raises(LockedError):
        backend.lock("alice", _lock("t2", "F/f.txt"))  # below an infinite exclusive lock
    with pytest.raises(LockedError):
        backend.lock("alice", _lock("t3", "", depth=-1, scope="shared"))  # above it
    backend.lock("alice", _lock("t4", "", depth=0, scope="shared"))  # depth 0 above: fine
    assert [lk.token for lk in backend.locks("alice", "F/f.txt")] == ["t1"]
    assert backend.locks("alice", "F/f.txt", with_parents=False) == []
    assert {lk.token for lk in backend.locks("alice", "", with_children=True)} == {"t1", "t4"}
    backend.unlock("alice", "F/f.txt", "t1")  # a lock is removed through any path it covers
    backend.lock("alice", _lock("s1", "F/f.txt", scope="shared", timeout=5))
    backend.lock("alice", _lock("s2", "F/f.txt", scope="shared", timeout=5))
    with pytest.raises(LockedError):
        backend.lock("alice", _lock("x1", "F/f.txt"))
    clock.tick(6)  # the shared locks expire
    backend.lock("alice", _lock("x1", "F/f.txt"))
    refreshed = backend.refresh_lock("alice", "x1", 3600)
    assert (refreshed.timeout, refreshed.created_at) == (3600, int(clock.now))
    with pytest.raises(ConflictError):
        backend.unlock("alice", "F", "x1")
    with pytest.raises(NotFoundError):
        backend.refresh_lock("alice", "s1", 10)
    backend.move("alice", "F", "G", overwrite=False)  # locks do not follow a move
    assert backend.locks("alice", "G/f.txt") == [] and backend.locks("alice", "F/f.txt") == []


# -- concurrency and streaming ---------------------------------------------------------------------


def test_eight_threads_writing_into_one_folder(backend: NativeBackend) -> None:
    backend.mkdir("alice", "shared")
    errors: list[BaseException] = []
    sizes = {f"shared/t{t}-{i}.bin": (t + 1) * 100 + i for t in range(8) for i in range(6)}

    def worker(t: int) -> None:
        try:
            for i in range(6):
                path = f"shared/t{t}-{i}.bin"
                put(backend, path, b"z" * sizes[path])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    listed = backend.children("alice", "shared")
    assert {n.path: n.size for n in listed} == sizes
    assert len({n.fileid for n in listed}) == len(sizes)
    assert backend.stat("alice", "shared").size == sum(sizes.values())
    assert backend.stat("alice", "").size == sum(sizes.values())


def test_copies_and_writes_in_parallel(backend: NativeBackend) -> None:
    backend.mkdir("alice", "src")
    for i in range(5):
        put(backend, f"src/{i}.txt", b"s" * 10)
    errors: list[BaseException] = []

    def copier(t: int) -> None:
        try:
            for i in range(3):
                backend.copy("alice", "src", f"copy-{t}-{i}", overwrite=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(t: int) -> None:
        try:
            for i in range(10):
                put(backend, f"src/w{t}-{i}.txt", b"w")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=copier, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = snapshot(backend)
    assert len({n.fileid for n in everything.values()}) == len(everything)
    assert everything[""].size == sum(n.size for n in everything.values() if not n.is_dir)


class _Zeros(io.RawIOBase):
    """`size` bytes of a repeating pattern, produced on demand."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\x5a" * n


def test_50_mb_write_streams_in_flat_memory(
    setup: Setup, store: MetadataStore, tmp_path: Path, clock: Clock
) -> None:
    store.add_user("alice")
    backend = _backend(store, PosixDriver(tmp_path / "big", fsync=False), clock)
    size = 50 * MiB
    expected = ChecksumAccumulator()
    for _ in range(50):
        expected.update(b"\x5a" * MiB)
    tracemalloc.start()
    try:
        node = backend.write("alice", "big.bin", _Zeros(size), length=size).node  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert (node.size, node.checksum) == (size, expected.result())
    assert sum(len(c) for c in backend.read("alice", node)) == size


def test_unknown_sizes_from_migration_stay_unknown(
    backend: NativeBackend, store: MetadataStore
) -> None:
    root = backend.stat("alice", "")
    store.insert_nodes([
        NodeRecord(fileid=500, owner="alice", area="files", path="old", parent=root.fileid,
                   name="old", is_dir=True, size=-1, mtime=1, etag="5f0a0a0a0a0a0",
                   checksum="", mimetype="httpd/unix-directory", permissions=31, blob_id=None),
    ])
    put(backend, "old/new.txt", b"12345")
    assert backend.stat("alice", "old").size == -1
    assert backend.stat("alice", "").size == 5
    assert backend.stat("alice", "old").etag != "5f0a0a0a0a0a0"
