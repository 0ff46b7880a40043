"""The MySQL/MariaDB fast reading path (migrate/fastread.py) gives exactly the rows the generic
path gives — names with any character, NULLs, types made while reading — and a job reading
through it that is killed at a batch boundary ends like an uninterrupted one. PostgreSQL and
SQLite sources keep the generic path and read the same values. A link reads no file it has
no stored checksum to check against."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.oc10.formats import path_hash
from fixtures.manifest import Manifest
from migrate import fastread
from migrate.runner import InjectedCrash, MigrationOptions, UserMigration
from migrate.source import LegacySource
from newstack.legacy.filecache import Row
from newstack.legacy.instance import open_instance
from tests.fixtures.test_instances import build
from tests.migrate.stacks import new_stack
from tests.migrate.test_runner import dump

#: every character a name may hold that a parser could trip on
ODD_NAMES = [
    "comma, and,, more,commas,",
    "percent % and _underscore",
    "back\\slash \\n not a newline",
    "quote ' and \" and `",
    "new\nline and\rreturn",
    "tab\there\x0bvt\x0cff",
    "emoji 😀 ü ß 漢字 \u200b zero width",
    " leading and trailing ",
    "NULL",
    "-1",
    "ends with a dot.",
    "x" * 250,
]
NEW_MIMETYPE = "application/x-made-while-reading"


def home_storage(source: LegacySource, manifest: Manifest) -> tuple[str, int]:
    uid = next(u["uid"] for u in manifest.users if u["has_home"])
    storage = source.home_storage(uid)
    assert storage is not None
    return uid, storage


def file_type(source: LegacySource, conn: sa.Connection, storage: int) -> tuple[int, int, str]:
    """(mimetype id, mimepart id, mimetype) of one of the storage's files."""
    fc, mt = source.t.filecache, source.t.mimetypes
    mid, part, name = conn.execute(
        sa.select(fc.c.mimetype, fc.c.mimepart, mt.c.mimetype)
        .join(mt, mt.c.id == fc.c.mimetype)
        .where(fc.c.storage == storage, fc.c.path.like("files/%"),
               mt.c.mimetype != "httpd/unix-directory").limit(1)).one()
    return int(mid), int(part), str(name)


def add_odd_rows(source: LegacySource, storage: int, home: Path | None = None
                 ) -> dict[int, Row]:
    """Rows with odd names (and, given `home`, their files) plus rows with NULLs in every
    nullable column; returns the Rows both paths must give for them."""
    fc, mt = source.t.filecache, source.t.mimetypes
    expected: dict[int, Row] = {}
    with source.engine.begin() as conn:
        files = conn.execute(sa.select(fc.c.fileid).where(
            fc.c.storage == storage, fc.c.path == "files")).scalar_one()
        plain, part, mimetype = file_type(source, conn, storage)

        def insert(name: str | None, path: str | None, **values: Any) -> int:
            row = dict(storage=storage, path=path, path_hash=path_hash(path or str(values)),
                       parent=files, name=name, mimetype=plain, mimepart=part, size=5,
                       mtime=1_700_000_001, storage_mtime=1_700_000_001, encrypted=0,
                       unencrypted_size=0, etag="5f0c9a1b2c3d4", permissions=27,
                       checksum="SHA1:a MD5:b ADLER32:c")
            row.update(values)
            found = conn.execute(sa.insert(fc).values(**row)).inserted_primary_key
            assert found is not None
            return int(found[0])

        for i, name in enumerate(ODD_NAMES):
            content = f"odd {i}".encode()
            mtime = 1_700_000_100 + i
            if home is not None:
                (home / "files" / name).write_bytes(content)
                os.utime(home / "files" / name, (mtime, mtime))
            fileid = insert(name, f"files/{name}", size=len(content), mtime=mtime,
                            storage_mtime=mtime, checksum="", etag=f"odd{i}")
            expected[fileid] = Row(fileid, storage, f"files/{name}", files, name,
                                   mimetype, len(content), mtime, mtime, f"odd{i}", 27, "")
        nulls = insert(None, "files/nulls-everywhere", etag=None, checksum=None,
                       permissions=None, storage_mtime=0, size=-1, encrypted=0)
        expected[nulls] = Row(nulls, storage, "files/nulls-everywhere", files, "",
                              mimetype, -1, 1_700_000_001, 1_700_000_001, "", 0, "")
        no_path = insert("no-path", None, size=0, encrypted=2)
        expected[no_path] = Row(no_path, storage, "", files, "no-path", mimetype, 0,
                                1_700_000_001, 1_700_000_001, "5f0c9a1b2c3d4", 27,
                                "SHA1:a MD5:b ADLER32:c", 2)
        # a type made after the source loaded its mimetypes: found by reloading them
        conn.execute(sa.insert(mt).values(mimetype=NEW_MIMETYPE))
        new_type = conn.execute(sa.select(mt.c.id).where(mt.c.mimetype == NEW_MIMETYPE)
                                ).scalar_one()
        late = insert("late.type", "files/late.type", mimetype=new_type, size=2**40)
        expected[late] = Row(late, storage, "files/late.type", files, "late.type",
                             NEW_MIMETYPE, 2**40, 1_700_000_001, 1_700_000_001,
                             "5f0c9a1b2c3d4", 27, "SHA1:a MD5:b ADLER32:c")
    return expected


def read_all(source: LegacySource, storage: int, batch: int = 7) -> list[Row]:
    return [row for part in source.rows(storage, batch=batch) for row in part]


@pytest.fixture
def two_users(tmp_path: Path, oc10_db_url: str) -> Manifest:
    return build(tmp_path, oc10_db_url, "small", users=2, files_per_user=20)


@pytest.fixture
def source_of(two_users: Manifest) -> Iterator[LegacySource]:
    instance = open_instance(Path(two_users.config_php))
    yield LegacySource(instance)
    instance.close()


def test_every_backend_reads_odd_values_exactly(two_users: Manifest,
                                                source_of: LegacySource) -> None:
    source = source_of
    assert source.fast == (source.engine.dialect.name in ("mysql", "mariadb"))
    _uid, storage = home_storage(source, two_users)
    expected = add_odd_rows(source, storage)
    got = read_all(source, storage)
    assert [r.fileid for r in got] == sorted(r.fileid for r in got), "fileid order"
    assert {r.fileid: r for r in got if r.fileid in expected} == expected
    if source.fast:
        source.fast = False  # the generic path on the same rows
        assert read_all(source, storage, batch=1000) == got
    # `after` and `where` narrow the fast path as they do the generic one
    middle = got[len(got) // 2].fileid
    c = source.t.filecache.c
    assert [r.fileid for part in source.rows(storage, after=middle) for r in part] == \
        [r.fileid for r in got if r.fileid > middle]
    assert [r.path for r in source.all_rows(storage, c.path.like("files/comma%"))] == \
        ["files/" + ODD_NAMES[0]]


def test_fast_rows_are_rows() -> None:
    names = {3: "text/plain"}
    reloads: list[int] = []

    def reload() -> dict[int, str]:
        reloads.append(1)
        return {**names, 9: "image/png"}

    # a NULL in a NOT NULL integer column arrives as '' (see wire_select): refused
    part = [("12,4,3,-1,,0,0,0", None, None, None, None),
            ("13,4,9,7,100,99,27,1", "e", "SHA1:x", "n", "files/n"),
            ("14,4,77,7,100,99,27,0", "e", "", "m", "files/m")]
    with pytest.raises(ValueError):  # an empty integer field is refused, never taken as 0
        fastread.make_rows(1, part[:1], names, reload)
    rows = fastread.make_rows(1, part[1:], names, reload)
    assert rows == [Row(13, 1, "files/n", 4, "n", "image/png", 7, 100, 99, "e", 27, "SHA1:x", 1),
                    Row(14, 1, "files/m", 4, "m", "application/octet-stream", 7, 100, 99, "e",
                        27, "", 0)]
    assert reloads == [1], "reloaded once per batch at most"
    assert rows[0].is_dir is False and hash(rows[0]) == hash(Row(*vars(rows[0]).values()))
    assert dataclasses.replace(rows[0], path="files/o") == Row(
        13, 1, "files/o", 4, "n", "image/png", 7, 100, 99, "e", 27, "SHA1:x", 1)


def test_fast_path_only_on_pymysql() -> None:
    assert fastread.supported(sa.create_engine("mysql+pymysql://u@127.0.0.1/x"))
    assert not fastread.supported(sa.create_engine("sqlite://"))
    assert not fastread.supported(sa.create_engine("postgresql+psycopg://u@127.0.0.1/x"))


@pytest.fixture
def mariadb_users(tmp_path: Path, mariadb_url: str) -> Manifest:
    return build(tmp_path, mariadb_url, "small", users=2, files_per_user=20)


def test_killed_at_batch_boundaries_resumes_to_the_same_result(
        mariadb_users: Manifest, tmp_path: Path) -> None:
    instance = open_instance(Path(mariadb_users.config_php))
    try:
        source = LegacySource(instance)
        assert source.fast
        uid, storage = home_storage(source, mariadb_users)
        expected_rows = add_odd_rows(source, storage, source.home(uid))
        options = MigrationOptions(batch=3, workers=2)
        clean = new_stack(tmp_path / "clean")
        report = UserMigration(source, clean.store, clean.driver, uid, options).run()
        assert not [f for f in report.findings if f[0] not in (
            "encrypted", "row-without-file", "oauth2-token-expired")], report.findings
        expected = dump(clean)
        kept = {r[0] for r in map(eval, expected["nodes"])}  # noqa: S307 - our own repr()s
        assert set(expected_rows) - kept == {
            f for f, r in expected_rows.items() if not r.path.startswith("files/")}

        crashed = new_stack(tmp_path / "crashed")
        kills = 0
        for step in ("nodes:committed", "nodes:rows-inserted", "nodes:committed"):
            seen = 0

            def hook(at: str, step: str = step) -> None:
                nonlocal seen
                if at == step:
                    seen += 1
                    if seen == 3:  # the third batch boundary of this attempt
                        raise InjectedCrash(at)
            with pytest.raises(InjectedCrash):
                UserMigration(source, crashed.store, crashed.driver, uid, options,
                              crash_hook=hook).run()
            kills += 1
        UserMigration(source, crashed.store, crashed.driver, uid, options).run()
        assert kills == 3
        assert dump(crashed) == expected
        blobs = {p.name for p in (tmp_path / "crashed" / "blobs").rglob("*-oc10-*")}
        assert blobs == {p.name for p in (tmp_path / "clean" / "blobs").rglob("*-oc10-*")}
        odd = {b for b in blobs if any(f"-oc10-{f}-" in b for f in expected_rows)}
        assert len(odd) == len(ODD_NAMES), "every odd name's file was linked"
    finally:
        instance.close()


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_link_reads_no_file_without_a_stored_checksum(
        mariadb_users: Manifest, tmp_path: Path) -> None:
    instance = open_instance(Path(mariadb_users.config_php))
    try:
        source = LegacySource(instance)
        uid, storage = home_storage(source, mariadb_users)
        big = source.home(uid) / "files" / "big.bin"
        big.write_bytes(os.urandom(16 * 2**20))
        st = big.stat()
        fc = source.t.filecache
        with source.engine.begin() as conn:
            files = conn.execute(sa.select(fc.c.fileid).where(
                fc.c.storage == storage, fc.c.path == "files")).scalar_one()
            mid, part, _name = file_type(source, conn, storage)
            conn.execute(sa.insert(fc).values(
                storage=storage, path="files/big.bin", path_hash=path_hash("files/big.bin"),
                parent=files, name="big.bin", mimetype=mid, mimepart=part, size=st.st_size,
                mtime=int(st.st_mtime), storage_mtime=int(st.st_mtime), encrypted=0,
                unencrypted_size=0, etag="bigbin", permissions=27, checksum=""))

        def migrate(verify: bool, where: str) -> tuple[int, dict[str, int], list[Any]]:
            stack = new_stack(tmp_path / where)
            before = rchar()
            report = UserMigration(source, stack.store, stack.driver, uid, MigrationOptions(
                link_mode="hardlink", verify_content=verify)).run()
            with stack.store.read() as conn:
                stored = [tuple(r) for r in conn.execute(sa.text(
                    "SELECT checksum, size FROM nodes WHERE path = 'big.bin'"))]
            return rchar() - before, report.linked_by, stored

        read, linked_by, stored = migrate(False, "linked")
        assert read < 4 * 2**20, read
        assert set(linked_by) == {"hardlink"}
        assert stored == [("", st.st_size)], "oC10's empty checksum kept as it is"
        read, _linked_by, stored = migrate(True, "verified")
        assert read >= st.st_size, "--verify-content reads every file (the measure works)"
        assert stored == [("", st.st_size)]
    finally:
        instance.close()
