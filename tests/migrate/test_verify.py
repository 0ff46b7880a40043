"""The cutover gate reports every difference between two stacks, and nothing else.

Two `oc10` backends on the same fixture instance (and on a byte-for-byte copy of it) must verify
clean: no false positives. Then one row or file of the copy is changed at a time, and the report
must name exactly that difference, with its kind, path and field: no false negatives. The PROPFIND
walk runs against both stacks served over HTTP.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console

from bridge.config import Settings
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.verify import (
    CONTENT,
    DESKTOP_PROPS,
    EXIT_CLEAN,
    EXIT_COULD_NOT_RUN,
    EXIT_DIFFERENCES,
    EXTRAS,
    FAVORITES,
    FULL_PROPS,
    HTTP_MISSING,
    HTTP_PROP,
    HTTP_STATUS,
    INSTANCE,
    MISSING,
    NODE,
    QUOTA,
    TRASH,
    UNEXPECTED,
    USER,
    VERSION,
    VerifyReport,
    _merge,
    compare_backends,
    compare_over_http,
    dav_roots,
    propfind_body,
    run_verify,
)
from newstack.app import NewstackApp, ServerInfo
from newstack.backend import FilesBackend
from newstack.dav.xml import encode_href_path
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.service import open_newstack
from tests.newstack.legacy.stack import TEST_HASH_COST
from tests.newstack.live import live_server

UID = "alice"
Found = set[tuple[str, str, str]]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    profile = dataclasses.replace(get_profile("small"), hash_cost=TEST_HASH_COST)
    manifest, _ = build_instance(tmp_path_factory.mktemp("verify") / "instance", "sqlite",
                                 profile, 7)
    return manifest


@pytest.fixture(scope="module")
def legacy(instance: Manifest) -> Iterator[Oc10Backend]:
    backend = Oc10Backend(open_instance(Path(instance.config_php)))
    yield backend
    backend.close()


def password_of(manifest: Manifest, uid: str = UID) -> str:
    return str(next(u["password"] for u in manifest.users if u["uid"] == uid))


class Copy:
    """A byte-for-byte copy of the instance (database file and data directory), to change one
    thing in before it is opened as the 'new' side."""

    def __init__(self, manifest: Manifest, where: Path) -> None:
        self.manifest = manifest
        self.dir = where
        # file contents hard-linked (fast; changed only through flip_byte, which unlinks
        # first), the database and config.php copied
        shutil.copytree(manifest.instance_dir, where, symlinks=True, copy_function=_link_or_copy)
        self.data = where / Path(manifest.data_dir).relative_to(manifest.instance_dir)
        self.db_url = f"sqlite:///{self.data / 'owncloud.db'}"
        self.engine = sa.create_engine(self.db_url, poolclass=sa.NullPool)
        self.storage = int(self.scalar(
            "SELECT numeric_id FROM oc_storages WHERE id = :id", id=f"home::{UID}"))
        self._backend: Oc10Backend | None = None

    def sql(self, text: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(text), params)

    def scalar(self, text: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(text), params).scalar()

    def rows(self, text: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(text), params)]

    def fileid(self, path: str) -> int:
        """fileid of `path` (relative to the user's files/) in the user's home storage."""
        spath = f"files/{path}" if path else "files"
        return int(self.scalar("SELECT fileid FROM oc_filecache WHERE storage = :s AND "
                               "path = :p", s=self.storage, p=spath))

    def set_row(self, path: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self.sql(f"UPDATE oc_filecache SET {sets} WHERE fileid = :fid", fid=self.fileid(path),
                 **values)

    def disk(self, spath: str) -> Path:
        return self.data / UID / spath

    def flip_byte(self, spath: str, index: int) -> None:
        """Change one byte of a file of alice's home ('files/…') without touching the
        original instance, whose file shares the inode."""
        disk = self.disk(spath)
        data = bytearray(disk.read_bytes())
        data[index] ^= 0xFF
        disk.unlink()
        disk.write_bytes(bytes(data))

    def backend(self) -> Oc10Backend:
        if self._backend is None:
            self._backend = Oc10Backend(open_instance(
                self.dir / "config" / "config.php", db_url=self.db_url, data_dir=self.data))
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self.engine.dispose()


def _link_or_copy(src: str, dst: str) -> None:
    if src.endswith((".db", ".php")):
        shutil.copy2(src, dst)
    else:
        os.link(src, dst)


@pytest.fixture
def copy(instance: Manifest, tmp_path: Path) -> Iterator[Copy]:
    made = Copy(instance, tmp_path / "copy")
    yield made
    made.close()


def found(report: VerifyReport) -> Found:
    return {(d.kind, d.path, d.field) for d in report.details}


# --- Targets in alice's files, chosen from the rows (not hard-coded names) -----------------------


def plain_files(c: Copy, *, checksum: bool) -> list[str]:
    """Files of alice without annotations, shares or versions, with or without a checksum."""
    rows = c.rows(
        "SELECT f.path, f.fileid FROM oc_filecache f JOIN oc_mimetypes m ON m.id = f.mimetype "
        "WHERE f.storage = :s AND f.path LIKE 'files/%' AND m.mimetype != "
        "'httpd/unix-directory' AND (f.checksum IS NULL OR f.checksum = '') = :empty "
        "AND f.fileid NOT IN (SELECT fileid FROM oc_properties) "
        "AND f.fileid NOT IN (SELECT objid FROM oc_vcategory_to_object) "
        "AND CAST(f.fileid AS TEXT) NOT IN (SELECT object_id FROM oc_comments) "
        "AND f.fileid NOT IN (SELECT file_source FROM oc_share) ORDER BY f.path",
        s=c.storage, empty=not checksum)
    versioned = {v.rsplit(".v", 1)[0] for v in versioned_files(c, with_suffix=True)}
    return [r["path"].removeprefix("files/") for r in rows
            if r["path"].removeprefix("files/") not in versioned]


def versioned_files(c: Copy, *, with_suffix: bool = False) -> list[str]:
    rows = c.rows("SELECT path FROM oc_filecache WHERE storage = :s AND path LIKE "
                  "'files_versions/%.v%' ORDER BY path", s=c.storage)
    paths = [r["path"].removeprefix("files_versions/") for r in rows]
    return paths if with_suffix else sorted({p.rsplit(".v", 1)[0] for p in paths})


def annotated_file(c: Copy) -> tuple[str, int]:
    """The file of alice with a dead property (and, in the fixture, comments and shares)."""
    fid = int(c.scalar("SELECT p.fileid FROM oc_properties p JOIN oc_filecache f ON "
                       "f.fileid = p.fileid WHERE f.storage = :s", s=c.storage))
    path = c.scalar("SELECT path FROM oc_filecache WHERE fileid = :f", f=fid)
    return str(path).removeprefix("files/"), fid


def trash_item(c: Copy) -> dict[str, Any]:
    row = c.rows("SELECT id, timestamp, location FROM oc_files_trash WHERE user = :u "
                 "ORDER BY id", u=UID)[0]
    return row


# --- No false positives ----------------------------------------------------------------------


def test_the_same_instance_twice_is_clean(instance: Manifest, legacy: Oc10Backend) -> None:
    other = Oc10Backend(open_instance(Path(instance.config_php)))
    try:
        for user in instance.users:
            report = compare_backends(legacy, other, user["uid"], content="bytes")
            assert report.details == [] and report.errors == [], report.to_json()
            assert report.exit_code == EXIT_CLEAN and report.ok
            assert report.checked["files"] > 0 and report.checked["trash entries"] > 0
    finally:
        other.close()


def test_a_copy_of_the_instance_is_clean(legacy: Oc10Backend, copy: Copy) -> None:
    """Another database file and data directory (new inodes): stored etags, ids, bytes,
    versions and trash all still compare equal."""
    report = run_verify(legacy, copy.backend(), UID, password_of(copy.manifest),
                        content="bytes")
    assert report.ok, report.to_json()
    assert report.checked["versions"] > 0
    assert report.checked["bytes hashed"] > 0
    assert report.checked["favorites"] > 0


# --- No false negatives: one change at a time ---------------------------------------------------

Mutation = Callable[[Copy], Found]


def etag_of_a_file(c: Copy) -> Found:
    path, _ = annotated_file(c)
    c.set_row(path, etag="0123456789abcdef0123456789abcdef")
    return {(NODE, path, "etag")}


def etag_of_the_root(c: Copy) -> Found:
    c.set_row("", etag="6b068ac6004fd")
    return {(NODE, "", "etag")}


def size_of_a_file(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[0]
    c.sql("UPDATE oc_filecache SET size = size - 1 WHERE fileid = :f", f=c.fileid(path))
    return {(NODE, path, "size")}


def size_of_a_folder(c: Copy) -> Found:
    folder = plain_files(c, checksum=True)[0].rpartition("/")[0]
    c.sql("UPDATE oc_filecache SET size = size + 7 WHERE fileid = :f", f=c.fileid(folder))
    return {(NODE, folder, "size")}


def mtime_of_a_file(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[1]
    c.set_row(path, mtime=1_000_000_000)
    return {(NODE, path, "mtime")}


def permissions_of_a_file(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[2]
    c.set_row(path, permissions=25)
    return {(NODE, path, "permissions")}


def mimetype_of_a_file(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[0]
    other = c.scalar("SELECT id FROM oc_mimetypes WHERE mimetype = 'text/plain'")
    if c.scalar("SELECT mimetype FROM oc_filecache WHERE fileid = :f",
                f=c.fileid(path)) == other:
        other = c.scalar("SELECT id FROM oc_mimetypes WHERE mimetype = 'application/pdf'")
    c.set_row(path, mimetype=other)
    return {(NODE, path, "mimetype")}


def fileid_of_a_file(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[0]
    c.set_row(path, fileid=987_654)
    return {(NODE, path, "fileid")}


def checksum_of_a_file(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[0]
    c.set_row(path, checksum="SHA1:" + "0" * 40)
    return {(NODE, path, "checksum")}


def checksum_dropped(c: Copy) -> Found:
    """New has no checksum where legacy has one: a difference (oc:checksums goes 200 → 404)."""
    path = plain_files(c, checksum=True)[0]
    c.set_row(path, checksum="")
    return {(NODE, path, "checksum")}


def bytes_of_a_file_without_checksum(c: Copy) -> Found:
    """Same size, other bytes, and no checksum to compare: 'checksums' hashes both sides."""
    path = plain_files(c, checksum=False)[0]
    c.flip_byte(f"files/{path}", 0)
    return {(CONTENT, path, "sha1")}


def file_gone_from_disk(c: Copy) -> Found:
    """The row is there, the bytes are not: a GET would fail on new only."""
    path = plain_files(c, checksum=False)[0]
    c.disk(f"files/{path}").unlink()
    return {(CONTENT, path, "readable")}


def file_row_removed(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[0]
    c.sql("DELETE FROM oc_filecache WHERE fileid = :f", f=c.fileid(path))
    return {(MISSING, path, "")}


def folder_row_removed(c: Copy) -> Found:
    """A missing folder is one difference, not one per descendant."""
    folder = plain_files(c, checksum=True)[0].rpartition("/")[0]
    assert folder
    c.sql("DELETE FROM oc_filecache WHERE fileid = :f", f=c.fileid(folder))
    return {(MISSING, folder, "")}


def file_row_added(c: Copy) -> Found:
    source = plain_files(c, checksum=True)[0]
    row = c.rows("SELECT * FROM oc_filecache WHERE fileid = :f", f=c.fileid(source))[0]
    folder, _, name = source.rpartition("/")
    new_name = "zz added " + name
    path = f"{folder}/{new_name}" if folder else new_name
    row.update(fileid=900_001, name=new_name, path=f"files/{path}",
               path_hash=hashlib.md5(f"files/{path}".encode()).hexdigest())
    columns = ", ".join(row)
    c.sql(f"INSERT INTO oc_filecache ({columns}) VALUES ({', '.join(':' + k for k in row)})",
          **row)
    return {(UNEXPECTED, path, "")}


def file_became_folder(c: Copy) -> Found:
    path = plain_files(c, checksum=False)[0]
    folder = c.scalar("SELECT id FROM oc_mimetypes WHERE mimetype = 'httpd/unix-directory'")
    c.set_row(path, mimetype=folder, checksum="")
    return {(NODE, path, "is_dir"), (NODE, path, "mimetype")}


def favorite_added(c: Copy) -> Found:
    path = plain_files(c, checksum=True)[0]
    c.backend().set_favorite(UID, path, True)
    return {(EXTRAS, path, "favorite"), (FAVORITES, path, "listed")}


def tag_removed(c: Copy) -> Found:
    fid = int(c.scalar("SELECT o.objid FROM oc_vcategory_to_object o JOIN oc_vcategory v ON "
                       "v.id = o.categoryid WHERE v.uid = :u AND v.category != :fav",
                       u=UID, fav="_$!<Favorite>!$_"))
    path = str(c.scalar("SELECT path FROM oc_filecache WHERE fileid = :f", f=fid))
    c.sql("DELETE FROM oc_vcategory_to_object WHERE objid = :f AND categoryid IN (SELECT id "
          "FROM oc_vcategory WHERE uid = :u AND category != :fav)", f=fid, u=UID,
          fav="_$!<Favorite>!$_")
    return {(EXTRAS, path.removeprefix("files/"), "tags")}


def dead_property_changed(c: Copy) -> Found:
    path, fid = annotated_file(c)
    name = str(c.scalar("SELECT propertyname FROM oc_properties WHERE fileid = :f", f=fid))
    c.sql("UPDATE oc_properties SET propertyvalue = 'green' WHERE fileid = :f", f=fid)
    return {(EXTRAS, path, f"dead:{name}")}


def comment_removed(c: Copy) -> Found:
    path, fid = annotated_file(c)
    c.sql("DELETE FROM oc_comments WHERE id = (SELECT MAX(id) FROM oc_comments WHERE "
          "object_id = :f)", f=str(fid))
    return {(EXTRAS, path, "comments_count")}  # the one removed was read: unread stays


def share_removed(c: Copy) -> Found:
    path, fid = annotated_file(c)
    c.sql("DELETE FROM oc_share WHERE file_source = :f AND share_type = 0", f=fid)
    return {(EXTRAS, path, "share_types")}


def version_etag_changed(c: Copy) -> Found:
    version = versioned_files(c, with_suffix=True)[0]
    base, _, vid = version.rpartition(".v")
    c.sql("UPDATE oc_filecache SET etag = 'changed' WHERE storage = :s AND path = :p",
          s=c.storage, p=f"files_versions/{version}")
    return {(VERSION, base, f"v{vid}.etag")}


def version_removed(c: Copy) -> Found:
    version = versioned_files(c, with_suffix=True)[0]
    base, _, vid = version.rpartition(".v")
    c.sql("DELETE FROM oc_filecache WHERE storage = :s AND path = :p", s=c.storage,
          p=f"files_versions/{version}")
    return {(VERSION, base, f"v{vid}")}


def version_size_changed(c: Copy) -> Found:
    version = versioned_files(c, with_suffix=True)[-1]
    base, _, vid = version.rpartition(".v")
    c.sql("UPDATE oc_filecache SET size = size + 1 WHERE storage = :s AND path = :p",
          s=c.storage, p=f"files_versions/{version}")
    return {(VERSION, base, f"v{vid}.size")}


def trash_location_changed(c: Copy) -> Found:
    item = trash_item(c)
    c.sql("UPDATE oc_files_trash SET location = 'Elsewhere' WHERE id = :i AND timestamp = :t "
          "AND user = :u", i=item["id"], t=item["timestamp"], u=UID)
    return {(TRASH, f"{item['id']}.d{item['timestamp']}", "original_location")}


def trash_row_deleted(c: Copy) -> Found:
    item = trash_item(c)
    c.sql("DELETE FROM oc_filecache WHERE storage = :s AND path = :p", s=c.storage,
          p=f"files_trashbin/files/{item['id']}.d{item['timestamp']}")
    return {(TRASH, f"{item['id']}.d{item['timestamp']}", "")}


def trash_etag_changed(c: Copy) -> Found:
    item = trash_item(c)
    c.sql("UPDATE oc_filecache SET etag = 'changed' WHERE storage = :s AND path = :p",
          s=c.storage, p=f"files_trashbin/files/{item['id']}.d{item['timestamp']}")
    return {(TRASH, f"{item['id']}.d{item['timestamp']}", "etag")}


def quota_changed(c: Copy) -> Found:
    c.sql("UPDATE oc_preferences SET configvalue = '5 GB' WHERE userid = :u AND "
          "appid = 'files' AND configkey = 'quota'", u=UID)
    return {(USER, "", "quota"), (QUOTA, "", "available")}


def display_name_changed(c: Copy) -> Found:
    c.sql("UPDATE oc_accounts SET display_name = 'Someone Else' WHERE user_id = :u", u=UID)
    return {(USER, "", "display_name")}


def password_changed(c: Copy) -> Found:
    c.sql("UPDATE oc_users SET password = :h WHERE uid = :u",
          h="1|$2y$04$abcdefghijklmnopqrstuu9h7ZC3.mJrOXz7ZeGBfJKiAPU7Cpa9y", u=UID)
    return {(USER, "", "password")}


def instance_id_changed(c: Copy) -> Found:
    config = c.dir / "config" / "config.php"
    text = config.read_text()
    config.write_text(text.replace(c.manifest.instance_id, "ocdifferent1"))
    return {(INSTANCE, "", "instance_id")}


MUTATIONS: list[Mutation] = [
    etag_of_a_file, etag_of_the_root, size_of_a_file, size_of_a_folder, mtime_of_a_file,
    permissions_of_a_file, mimetype_of_a_file, fileid_of_a_file, checksum_of_a_file,
    checksum_dropped, bytes_of_a_file_without_checksum, file_gone_from_disk, file_row_removed,
    folder_row_removed, file_row_added, file_became_folder, favorite_added, tag_removed,
    dead_property_changed, comment_removed, share_removed, version_etag_changed,
    version_removed, version_size_changed, trash_location_changed, trash_row_deleted,
    trash_etag_changed, quota_changed, display_name_changed, password_changed,
    instance_id_changed,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=[m.__name__ for m in MUTATIONS])
def test_each_change_is_reported_exactly(legacy: Oc10Backend, copy: Copy,
                                         mutate: Mutation) -> None:
    expected = mutate(copy)
    report = run_verify(legacy, copy.backend(), UID, password_of(copy.manifest))
    assert found(report) == expected, report.to_json()
    assert report.errors == []
    assert report.exit_code == EXIT_DIFFERENCES and not report.ok
    assert sum(report.counts.values()) == len(expected)


def test_bytes_mode_reads_what_checksums_mode_trusts(legacy: Oc10Backend, copy: Copy) -> None:
    """Other bytes under an unchanged checksum string: 'checksums' trusts the string, 'bytes'
    finds it; versions and trashed files are read too."""
    path = plain_files(copy, checksum=True)[0]
    version = versioned_files(copy, with_suffix=True)[0]
    item = trash_item(copy)
    trashed = f"{item['id']}.d{item['timestamp']}"
    for spath in (f"files/{path}", f"files_versions/{version}", f"files_trashbin/files/{trashed}"):
        copy.flip_byte(spath, -1)
    new = copy.backend()
    assert compare_backends(legacy, new, UID, content="checksums").ok
    assert compare_backends(legacy, new, UID, content="none").ok
    report = compare_backends(legacy, new, UID, content="bytes")
    base, _, vid = version.rpartition(".v")
    assert found(report) == {(CONTENT, path, "sha1"), (VERSION, base, f"v{vid}.sha1"),
                             (TRASH, trashed, "sha1")}


# --- Against the new stack -------------------------------------------------------------------


def test_an_empty_new_stack_is_reported_missing(legacy: Oc10Backend, tmp_path: Path) -> None:
    defaults = Settings()
    stack = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=tmp_path / "native")))
    new: FilesBackend = stack.backend
    try:
        check_empty_new_stack(legacy, new, stack.store)
    finally:
        stack.store.engine.dispose()


def check_empty_new_stack(legacy: Oc10Backend, new: FilesBackend, store: Any) -> None:
    report = compare_backends(legacy, new, UID)
    assert report.exit_code == EXIT_DIFFERENCES
    assert (USER, "", "exists") in found(report)
    store.add_user(UID, password="pw", display_name="Alice")
    report = compare_backends(legacy, new, UID)
    assert report.exit_code == EXIT_DIFFERENCES
    top_level = legacy.children(UID, "")
    assert report.counts[MISSING] == len(top_level)
    assert {(MISSING, n.path, "") for n in top_level} <= found(report)
    assert (INSTANCE, "", "instance_id") in found(report)
    assert report.counts[TRASH] == len(legacy.trash(UID))


# --- Running, reporting, exit codes ------------------------------------------------------------


class Failing:
    """A backend that fails the way a lost database would, after `ok_calls` listings."""

    def __init__(self, inner: FilesBackend, ok_calls: int) -> None:
        self._inner = inner
        self._left = ok_calls
        self.listed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def children(self, uid: str, path: str) -> list[Any]:
        self.listed.append(path)
        if self._left == 0:
            raise ConnectionError("database connection lost")
        self._left -= 1
        return self._inner.children(uid, path)


def test_a_failure_midway_means_could_not_run(legacy: Oc10Backend, copy: Copy) -> None:
    report = compare_backends(legacy, Failing(copy.backend(), 2), UID)
    assert report.exit_code == EXIT_COULD_NOT_RUN and not report.ok
    assert "database connection lost" in report.errors[0]


def test_an_unknown_legacy_user_means_could_not_run(legacy: Oc10Backend, copy: Copy) -> None:
    report = run_verify(legacy, copy.backend(), "nobody-here")
    assert report.exit_code == EXIT_COULD_NOT_RUN
    assert "no user 'nobody-here'" in report.errors[0]


def test_a_wrong_password_means_could_not_run(legacy: Oc10Backend, copy: Copy) -> None:
    report = run_verify(legacy, copy.backend(), UID, "not the password")
    assert report.exit_code == EXIT_COULD_NOT_RUN
    report = run_verify(legacy, copy.backend(), UID, legacy_url="http://127.0.0.1:1")
    assert report.exit_code == EXIT_COULD_NOT_RUN
    assert "needs both server URLs" in report.errors[-1]


def test_the_walk_lists_each_folder_once_per_side(legacy: Oc10Backend, copy: Copy) -> None:
    """Folder by folder through children(): never a whole-tree read."""
    old, new = Failing(legacy, 10**6), Failing(copy.backend(), 10**6)
    report = compare_backends(old, new, UID, content="none")
    assert report.ok
    assert old.listed == new.listed
    assert len(old.listed) == report.checked["folders"] == len(set(old.listed))
    # depth first, in name order: each folder right after its parent's subtree position
    assert old.listed[0] == ""


def test_details_are_capped_and_counts_are_not(legacy: Oc10Backend, copy: Copy) -> None:
    copy.sql("UPDATE oc_filecache SET etag = etag || 'x' WHERE storage = :s AND (path = "
             "'files' OR path LIKE 'files/%')", s=copy.storage)
    report = compare_backends(legacy, copy.backend(), UID, content="none", max_details=3)
    assert report.counts[NODE] > 40
    assert len([d for d in report.details if d.kind == NODE]) == 3
    assert report.fields["node etag"] == report.counts[NODE]
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["exit_code"] == EXIT_DIFFERENCES
    assert data["counts"][NODE] == report.counts[NODE] and len(data["details"]) == 3
    console = Console(record=True, width=160)
    console.print(report)
    text = console.export_text()
    assert f"{report.differences} differences" in text and "etag" in text


def test_merge_keeps_the_caps(legacy: Oc10Backend) -> None:
    a, b = VerifyReport(uid=UID, max_details=2), VerifyReport(uid=UID, max_details=2)
    for i in range(3):
        a.add(NODE, f"a{i}", "etag", 1, 2)
        b.add(NODE, f"b{i}", "etag", 1, 2)
    b.add(HTTP_PROP, "/x", "d:getetag", "1", "2")
    b.error("boom")
    a.merge(b)
    assert a.counts == {NODE: 6, HTTP_PROP: 1}
    assert [d.path for d in a.details] == ["a0", "a1", "/x"]
    assert a.exit_code == EXIT_COULD_NOT_RUN


@pytest.mark.parametrize(("left", "right", "pairs"), [
    ([], [], []),
    (["a", "b"], ["a", "b"], [("a", "a"), ("b", "b")]),
    (["a", "c"], ["b", "c"], [("a", None), (None, "b"), ("c", "c")]),
    (["b", "a"], ["a"], [("a", "a"), ("b", None)]),
    (["Z", "a", "é"], ["é", "Z"], [("Z", "Z"), ("a", None), ("é", "é")]),
    (["x", "x"], ["x"], [("x", "x"), ("x", None)]),
])
def test_merge_pairs_sorted_lists(left: list[str], right: list[str],
                                  pairs: list[tuple[str | None, str | None]]) -> None:
    def key(name: str) -> bytes:
        return name.encode()

    merged = _merge(left, right, key=key)
    assert list(merged) == pairs


def test_propfind_body_declares_every_namespace() -> None:
    body = propfind_body(FULL_PROPS).decode()
    assert 'xmlns:d="DAV:"' in body and 'xmlns:oc="http://owncloud.org/ns"' in body
    assert "<ocs:share-permissions/>" in body and "<oc:data-fingerprint/>" in body
    assert set(DESKTOP_PROPS) <= set(FULL_PROPS)


# --- Through both servers ---------------------------------------------------------------------


def served(backend: FilesBackend) -> Any:
    return live_server(NewstackApp(backend, ServerInfo(hostname="testhost")))


def test_propfind_walk_is_clean_then_finds_each_change(legacy: Oc10Backend,
                                                       copy: Copy) -> None:
    password = password_of(copy.manifest)
    with served(legacy) as old_url, served(copy.backend()) as new_url:
        report = compare_over_http(old_url, new_url, UID, password, props=FULL_PROPS)
        assert report.ok, report.to_json()
        assert report.checked["hrefs"] > 2 * 40 and report.checked["propfinds"] > 4

        etag_path, _ = annotated_file(copy)
        gone = plain_files(copy, checksum=True)[0]
        copy.set_row(etag_path, etag="0123456789abcdef0123456789abcdef")
        copy.sql("DELETE FROM oc_filecache WHERE fileid = :f", f=copy.fileid(gone))
        report = run_verify(legacy, copy.backend(), UID, password, old_url, new_url,
                            content="none")
    for root in (f"/remote.php/dav/files/{UID}/", "/remote.php/webdav/"):
        etag_href = root + encode_href_path(etag_path)
        assert (HTTP_PROP, etag_href, "d:getetag") in found(report)
        assert (HTTP_MISSING, root + encode_href_path(gone), "") in found(report)
    assert {(NODE, etag_path, "etag"), (MISSING, gone, "")} <= found(report)
    assert report.counts[HTTP_PROP] == 2 and report.counts[HTTP_MISSING] == 2


def test_propfind_walk_new_refusing_the_password_is_a_difference(
        legacy: Oc10Backend, copy: Copy) -> None:
    password_changed(copy)
    with served(legacy) as old_url, served(copy.backend()) as new_url:
        report = compare_over_http(old_url, new_url, UID, password_of(copy.manifest))
        assert found(report) == {(HTTP_STATUS, f"/remote.php/dav/files/{UID}/", "status"),
                                 (HTTP_STATUS, "/remote.php/webdav/", "status")}
        assert report.exit_code == EXIT_DIFFERENCES
        # the legacy refusing means the check could not run at all
        report = compare_over_http(old_url, new_url, UID, "wrong")
        assert report.exit_code == EXIT_COULD_NOT_RUN and report.counts == {}


def test_propfind_walk_unreachable_server_could_not_run(legacy: Oc10Backend) -> None:
    with served(legacy) as old_url:
        report = compare_over_http(old_url, "http://127.0.0.1:9", UID, "x", timeout=2)
    assert report.exit_code == EXIT_COULD_NOT_RUN
    assert "PROPFIND walk stopped" in report.errors[0]


def test_edge_instance_is_clean(tmp_path: Path) -> None:
    """The oddities of real instances (NFC/NFD pair, special characters in hrefs, ids past
    2^31, rows without files, wrong sizes, '@' in a uid, a data-fingerprint) give no false
    differences. Content is left out: a 4 GiB sparse file without checksum is in there."""
    profile = dataclasses.replace(get_profile("edge"), hash_cost=TEST_HASH_COST)
    manifest, _ = build_instance(tmp_path / "edge", "sqlite", profile, 7)
    one = Oc10Backend(open_instance(Path(manifest.config_php)))
    two = Oc10Backend(open_instance(Path(manifest.config_php)))
    try:
        for user in manifest.users:
            report = compare_backends(one, two, user["uid"], content="none")
            assert report.ok, report.to_json()
        oddities = {o.user for o in manifest.oddities if o.user}
        with served(one) as old_url, served(two) as new_url:
            # alice's deep nesting costs ~100 PROPFINDs a tree: one tree is enough for her
            for uid, roots in (("alice", dav_roots("alice")[:1]),
                               ("Eve.Mixed@Example.org", dav_roots("Eve.Mixed@Example.org"))):
                assert uid in oddities
                report = compare_over_http(old_url, new_url, uid, password_of(manifest, uid),
                                           roots=roots)
                assert report.ok, report.to_json()
                assert report.checked["hrefs"] > 30
    finally:
        one.close()
        two.close()
