"""Writes through the `oc10` backend leave the instance as ownCloud 10 would: rows and disk agree,
folder sizes, mtimes and etags propagate, versions and trash follow oC10's layout.

After a seeded run of random operations, every fixture invariant (tests/fixtures, checked from
the raw rows and the disk) still holds.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.manifest import Manifest
from newstack.backend import BackendError, ForbiddenError, Lock, NotFoundError
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from tests.fixtures.test_instances import build, check_instance, rows
from tests.newstack.legacy.stack import open_backend


def row_of(manifest: Manifest, uid: str, path: str) -> dict[str, Any] | None:
    storages = {r["id"]: r["numeric_id"] for r in rows(manifest, "storages")}
    numeric = storages[f"home::{uid}"]
    found = [r for r in rows(manifest, "filecache")
             if r["storage"] == numeric and r["path"] == path]
    return found[0] if found else None


def first_user(manifest: Manifest) -> str:
    return next(u["uid"] for u in manifest.users if u["has_home"] and u["state"] == 1)


@pytest.fixture
def small(tmp_path: Path, oc10_db_url: str) -> Manifest:
    return build(tmp_path, oc10_db_url, "small")


@pytest.fixture
def backend(small: Manifest) -> Iterator[Oc10Backend]:
    served = open_backend(small)
    yield served
    served.close()


def test_put_new_file_writes_rows_like_oc10(small: Manifest, backend: Oc10Backend) -> None:
    uid = first_user(small)
    before = {p: row_of(small, uid, p) for p in ("", "files")}
    result = backend.write(uid, "new.txt", io.BytesIO(b"hello world"), length=11,
                           mtime=1_600_000_000)
    assert result.created and result.mtime_accepted
    row = row_of(small, uid, "files/new.txt")
    assert row is not None
    assert row["path_hash"] == hashlib.md5(b"files/new.txt").hexdigest()
    assert row["size"] == 11 and row["mtime"] == 1_600_000_000
    disk = Path(small.data_dir) / uid / "files" / "new.txt"
    st = disk.stat()
    assert row["etag"] == hashlib.md5(
        f"{int(st.st_mtime)}{st.st_ino}{st.st_dev}{st.st_size}".encode()).hexdigest()
    assert row["checksum"] == (f"SHA1:{hashlib.sha1(b'hello world').hexdigest()} "
                               f"MD5:{hashlib.md5(b'hello world').hexdigest()} ADLER32:1a0b045d")
    # every ancestor gets one and the same fresh uniqid(), and the size
    after = {p: row_of(small, uid, p) for p in ("", "files")}
    etags = {after[p]["etag"] for p in after}  # type: ignore[index]
    assert len(etags) == 1 and re.fullmatch(r"[0-9a-f]{13}", etags.pop())
    for p in ("", "files"):
        assert after[p]["size"] == before[p]["size"] + 11  # type: ignore[index]
    assert not list(disk.parent.glob("*.part"))
    check_instance(small, served=True)


def test_overwrite_keeps_a_version_named_by_the_old_mtime(small: Manifest,
                                                          backend: Oc10Backend) -> None:
    uid = first_user(small)
    backend.write(uid, "v.txt", io.BytesIO(b"first"), length=5, mtime=1_500_000_000)
    old_id = backend.stat(uid, "v.txt").fileid
    backend.write(uid, "v.txt", io.BytesIO(b"second!"), length=7)
    assert backend.stat(uid, "v.txt").fileid == old_id
    version = row_of(small, uid, "files_versions/v.txt.v1500000000")
    assert version is not None and version["size"] == 5
    kept = Path(small.data_dir) / uid / "files_versions/v.txt.v1500000000"
    assert kept.read_bytes() == b"first"
    versions = backend.versions(uid, old_id)
    assert [v.version_id for v in versions] == [1_500_000_000]
    assert b"".join(backend.read_version(uid, old_id, 1_500_000_000)) == b"first"
    restored = backend.restore_version(uid, old_id, 1_500_000_000)
    assert restored.mtime == 1_500_000_000 and restored.size == 5
    assert b"".join(backend.read(uid, restored)) == b"first"
    # the replaced content became a version in turn
    assert {v.size for v in backend.versions(uid, old_id)} == {7}
    check_instance(small, served=True)


def test_delete_moves_to_trash_with_versions_and_restores(small: Manifest,
                                                          backend: Oc10Backend) -> None:
    uid = first_user(small)
    backend.mkdir(uid, "Docs")
    backend.write(uid, "Docs/a.txt", io.BytesIO(b"one"), length=3, mtime=1_400_000_000)
    backend.write(uid, "Docs/a.txt", io.BytesIO(b"two"), length=3)
    fileid = backend.stat(uid, "Docs/a.txt").fileid
    backend.delete(uid, "Docs/a.txt")
    with pytest.raises(NotFoundError):
        backend.stat(uid, "Docs/a.txt")
    item = next(i for i in backend.trash(uid) if i.node.fileid == fileid)
    assert item.original_location == "Docs" and item.original_name == "a.txt"
    trash_rows = [r for r in rows(small, "files_trash") if r["user"] == uid and r["id"] == "a.txt"]
    assert [(r["location"], r["timestamp"]) for r in trash_rows] == [("Docs", str(item.deleted_at))]
    trashed_version = f"files_trashbin/versions/a.txt.v1400000000.d{item.deleted_at}"
    assert row_of(small, uid, trashed_version) is not None
    check_instance(small, served=True)

    restored = backend.restore(uid, fileid)
    assert restored.path == "Docs/a.txt" and restored.fileid == fileid
    assert [v.version_id for v in backend.versions(uid, fileid)] == [1_400_000_000]
    assert not [r for r in rows(small, "files_trash") if r["user"] == uid and r["id"] == "a.txt"]
    check_instance(small, served=True)


def test_move_renames_rows_below_and_keeps_fileids(small: Manifest, backend: Oc10Backend) -> None:
    uid = first_user(small)
    backend.mkdir(uid, "A")
    backend.mkdir(uid, "A/B")
    backend.write(uid, "A/B/c.md", io.BytesIO(b"# c"), length=3)
    ids = {p: backend.stat(uid, p).fileid for p in ("A", "A/B", "A/B/c.md")}
    backend.move(uid, "A", "Z", overwrite=False)
    for old, fileid in ids.items():
        new = "Z" + old[1:]
        node = backend.stat(uid, new)
        assert node.fileid == fileid
        row = row_of(small, uid, "files/" + new)
        assert row is not None and row["path_hash"] == hashlib.md5(
            ("files/" + new).encode()).hexdigest()
    check_instance(small, served=True)


def test_random_operations_keep_every_invariant(small: Manifest, backend: Oc10Backend) -> None:
    rng = random.Random(11)
    users = [u["uid"] for u in small.users if u["state"] == 1][:2]
    done: dict[str, int] = {}
    for _ in range(120):
        uid = rng.choice(users)
        op = rng.choice(["put", "put", "mkdir", "move", "copy", "delete", "restore", "touch",
                         "version", "purge"])
        try:
            run_random(backend, uid, op, rng)
            done[op] = done.get(op, 0) + 1
        except BackendError:
            pass  # e.g. a name taken; the invariants must hold all the same
    assert sum(done.values()) >= 60, done
    check_instance(small, served=True)


def walk(backend: Oc10Backend, uid: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    todo = [""]
    while todo:
        folder = todo.pop()
        for node in backend.children(uid, folder):
            out.append((node.path, node.is_dir))
            if node.is_dir:
                todo.append(node.path)
    return out


def run_random(backend: Oc10Backend, uid: str, op: str, rng: random.Random) -> None:
    entries = walk(backend, uid)
    folders = [""] + [p for p, d in entries if d]
    files = [p for p, d in entries if not d]
    name = f"r{rng.randrange(10_000)}"
    if op == "put":
        data = rng.randbytes(rng.randrange(0, 5000))
        path = rng.choice(files) if files and rng.random() < 0.3 else \
            f"{rng.choice(folders)}/{name}.txt".lstrip("/")
        backend.write(uid, path, io.BytesIO(data), length=len(data),
                      mtime=rng.choice([None, 1_700_000_000 + rng.randrange(1000)]))
    elif op == "mkdir":
        backend.mkdir(uid, f"{rng.choice(folders)}/{name}".lstrip("/"))
    elif op in ("move", "copy") and entries:
        src = rng.choice(entries)[0]
        dst = f"{rng.choice(folders)}/{name}".lstrip("/")
        getattr(backend, op)(uid, src, dst, overwrite=False)
    elif op == "delete" and entries:
        backend.delete(uid, rng.choice(entries)[0])
    elif op == "restore":
        items = backend.trash(uid)
        if items:
            backend.restore(uid, rng.choice(items).node.fileid)
    elif op == "touch" and files:
        # files only: an older mtime set on a folder (legal in oC10 too) would end the
        # fixture invariant "a folder is at least as new as its children"
        backend.set_mtime(uid, rng.choice(files), 1_650_000_000 + rng.randrange(10**6))
    elif op == "version" and files:
        node = backend.stat(uid, rng.choice(files))
        versions = backend.versions(uid, node.fileid)
        if versions:
            backend.restore_version(uid, node.fileid, rng.choice(versions).version_id)
    elif op == "purge":
        items = backend.trash(uid)
        if items:
            backend.purge(uid, rng.choice(items).node.fileid)


def test_read_only_writes_nothing_at_all(small: Manifest) -> None:
    """--read-only: logins, listings and refused writes leave every table and the disk as
    they were, and the permissions say nothing may be written."""
    tables = ["filecache", "authtoken", "accounts", "users", "storages", "mounts", "properties",
              "persistent_locks", "vcategory_to_object", "files_trash", "mimetypes"]

    def snapshot() -> tuple[dict[str, list[str]], list[str]]:
        dump = {t: sorted(repr(sorted(r.items())) for r in rows(small, t)) for t in tables}
        disk = sorted(str(p) for p in Path(small.data_dir).rglob("*"))
        return dump, disk

    before = snapshot()
    backend = Oc10Backend(open_instance(Path(small.config_php)), read_only=True)
    try:
        for user in small.users:
            logged_in = backend.authenticate(user["uid"], user["password"])
            assert (logged_in is not None) == (user["state"] == 1)
            for app in user["app_passwords"]:
                backend.authenticate(app["login_name"], app["token"])
        uid = first_user(small)
        nodes = backend.children(uid, "")
        assert nodes and all(n.permissions == 17 for n in nodes)
        attempts = [
            lambda: backend.write(uid, "x.txt", io.BytesIO(b"x"), length=1),
            lambda: backend.mkdir(uid, "new"),
            lambda: backend.delete(uid, nodes[0].path),
            lambda: backend.move(uid, nodes[0].path, "moved", overwrite=False),
            lambda: backend.set_favorite(uid, nodes[0].path, True),
            lambda: backend.lock(uid, Lock(token="opaquelocktoken:x", path=nodes[0].path,
                                           owner="", scope="exclusive", depth=0, timeout=60,
                                           created_at=0)),
        ]
        for attempt in attempts:
            with pytest.raises(ForbiddenError):
                attempt()
        homeless = [u["uid"] for u in small.users if not u["has_home"] and u["state"] == 1]
        for other in homeless:
            with pytest.raises(NotFoundError):
                backend.children(other, "")
    finally:
        backend.close()
    assert snapshot() == before
