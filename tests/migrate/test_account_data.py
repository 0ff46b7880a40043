"""OAuth2 tokens, avatars and system tags carry over with a user and the new stack serves them
as ownCloud does (bearer logins, REPORT by system tag); the verify gate sees every difference.
Also the small-file fast path's decisions: which files keep oC10's checksum unread, which go
to the thread pool, how blob ids fan out."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from fixtures.builder import DESKTOP_CLIENT_ID, DESKTOP_CLIENT_SECRET
from fixtures.manifest import Manifest
from migrate import account_data
from migrate.runner import (
    PARALLEL_MIN_SIZE,
    MigrationOptions,
    UserMigration,
    blob_id_for,
    on_pool,
    trusts_stored_checksum,
)
from migrate.source import LegacySource
from migrate.verify import AVATAR, OAUTH2, SYSTEMTAGS, compare_backends
from newstack.app import NewstackApp, ServerInfo
from newstack.backend import NotFoundError
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.filecache import Row
from newstack.metadata import schema
from newstack.oauth2 import TOKEN_PATH
from newstack.service import Newstack
from tests.migrate.stacks import new_stack
from tests.newstack.live import live_server


def propfind_status(url: str, uid: str, authorization: str) -> int:
    response = httpx.request("PROPFIND", f"{url}/remote.php/dav/files/{uid}/",
                             headers={"Authorization": authorization, "Depth": "0"})
    return response.status_code


def test_tokens_avatars_and_system_tags_carry_over_and_are_served(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    source, old = legacy
    stack = new_stack(tmp_path / "new")
    reports = {u["uid"]: UserMigration(source, stack.store, stack.driver, u["uid"]).run()
               for u in small.users}
    new = new_stack(tmp_path / "new").backend

    granted = [u for u in small.users if u["oauth"]]
    assert granted, "the fixture gives some users OAuth2 grants"
    for user in small.users:
        gate = compare_backends(old, new, user["uid"], content="none")
        assert not {OAUTH2, AVATAR, SYSTEMTAGS} & set(gate.counts), gate.summary()
        assert gate.checked["oauth2 access_tokens"] == len(user["oauth"])
        codes = {code for code, _, _ in reports[user["uid"]].findings}
        if user["oauth"]:
            assert "oauth2-token-expired" in codes

    # a migrated desktop client's bearer token keeps working; expired and unknown ones do not
    with live_server(NewstackApp(new, ServerInfo(hostname="testhost"))) as url:
        for user in granted:
            valid = next(g for g in user["oauth"] if g["expires"] > 2_000_000_000)
            expired = next(g for g in user["oauth"] if g["expires"] < 2_000_000_000)
            enabled = new.user(user["uid"]) is not None and new.user(user["uid"]).enabled  # type: ignore[union-attr]
            want = 207 if enabled else 401
            assert propfind_status(url, user["uid"], f"Bearer {valid['access_token']}") == want
            assert propfind_status(url, user["uid"], f"Bearer {expired['access_token']}") == 401
            assert propfind_status(url, user["uid"],
                                   f"Bearer {valid['refresh_token']}") == 401
        assert propfind_status(url, granted[0]["uid"], "Bearer " + "x" * 64) == 401

    # avatars: the uploaded ones, byte for byte
    with_avatar = [uid for uid, r in reports.items() if r.avatar]
    assert with_avatar, "the fixture gives every other user an avatar"
    for uid in with_avatar:
        assert account_data.native_account_data(new, uid).avatar["avatar"][0] == "image/png"

    # system tags: REPORT oc:filter-files answers alike, invisible tags refused alike
    for user in small.users:
        if not user["has_home"]:
            continue
        for tag_id in (1, 2, 3, 4, 99):
            try:
                expected = old.systemtag_fileids(user["uid"], tag_id)
            except NotFoundError:
                with pytest.raises(NotFoundError):
                    new.systemtag_fileids(user["uid"], tag_id)
                continue
            assert new.systemtag_fileids(user["uid"], tag_id) == expected
    assert sum(r.systemtags for r in reports.values()) > 0

    # the same job again changes nothing
    before = table_rows(stack)
    for uid in reports:
        UserMigration(source, stack.store, stack.driver, uid).run()
    assert table_rows(stack) == before


def table_rows(stack: Newstack) -> dict[str, list[tuple[object, ...]]]:
    tables = (schema.oauth2_clients, schema.oauth2_access_tokens, schema.oauth2_refresh_tokens,
              schema.avatars, schema.systemtags, schema.systemtag_groups,
              schema.systemtag_objects)
    with stack.store.read() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in tables}


def test_verify_reports_what_did_not_carry_over(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    source, old = legacy
    stack = new_stack(tmp_path / "new")
    user = next(u for u in small.users if u["oauth"] and u["has_home"])
    uid = user["uid"]
    report = UserMigration(source, stack.store, stack.driver, uid).run()
    new = new_stack(tmp_path / "new").backend
    assert not {OAUTH2, AVATAR, SYSTEMTAGS} & set(
        compare_backends(old, new, uid, content="none").counts)
    with stack.store.write(uid) as conn:
        conn.execute(sa.delete(schema.oauth2_access_tokens).where(
            schema.oauth2_access_tokens.c.uid == uid))
        conn.execute(sa.delete(schema.systemtag_objects))
        conn.execute(sa.update(schema.systemtags).values(name=schema.systemtags.c.name + "!"))
        conn.execute(sa.insert(schema.avatars).values(
            uid=uid, blob_id="avatar-planted", mimetype="image/png", size=1, mtime=1)
            if not report.avatar else sa.delete(schema.avatars))
    if not report.avatar:
        stack.driver.put("avatar-planted", [b"x"])
    gate = compare_backends(old, new, uid, content="none")
    assert gate.counts[OAUTH2] == len(user["oauth"])
    assert gate.counts[AVATAR] == 1
    assert gate.fields["systemtags tags"] == 4
    assert gate.fields["systemtags assignments"] == report.systemtags
    assert gate.exit_code == 1


def test_a_changed_file_is_hashed_an_unchanged_one_keeps_its_checksum(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    source, _old = legacy
    uid = next(u["uid"] for u in small.users if u["has_home"])
    storage = source.home_storage(uid)
    assert storage is not None
    c = source.t.filecache.c
    rows = [r for r in source.all_rows(storage, c.path.like("files/%"))
            if not r.is_dir and r.checksum and r.size > 0]
    assert len(rows) >= 2
    home = source.home(uid)
    # same size and mtime, other bytes: trusted unread (the documented trade-off) ...
    quiet, touched = home / rows[0].path, home / rows[1].path
    st = quiet.stat()
    quiet.write_bytes(bytes([quiet.read_bytes()[0] ^ 1]) + quiet.read_bytes()[1:])
    os.utime(quiet, (st.st_atime, st.st_mtime))
    # ... a new mtime: hashed, and the difference reported
    touched.write_bytes(bytes([touched.read_bytes()[0] ^ 1]) + touched.read_bytes()[1:])

    def mismatches(verify: bool, where: str) -> tuple[set[str], int]:
        stack = new_stack(tmp_path / where)
        options = MigrationOptions(link_mode="hardlink", verify_content=verify)
        report = UserMigration(source, stack.store, stack.driver, uid, options).run()
        return ({path for code, path, _ in report.findings if code == "checksum-mismatch"},
                report.trusted_checksums)

    found, trusted = mismatches(False, "fast")
    assert found == {rows[1].path}
    assert trusted >= 1
    found, trusted = mismatches(True, "verified")
    assert found == {rows[0].path, rows[1].path}
    assert trusted == 0


def row(size: int, mtime: int, checksum: str) -> Row:
    return Row(fileid=1, storage=1, path="files/a", parent=0, name="a", mimetype="text/plain",
               size=size, mtime=mtime + 7, storage_mtime=mtime, etag="e", permissions=27,
               checksum=checksum)


def stat_of(size: int, mtime: float) -> os.stat_result:
    return os.stat_result((0o100640, 1, 1, 1, 0, 0, size, int(mtime), int(mtime), int(mtime),
                           mtime, mtime, mtime))


@pytest.mark.parametrize(("stored", "size", "mtime", "trusted"), [
    ("SHA1:aa MD5:bb ADLER32:cc", 10, 100.0, True),
    ("SHA1:aa MD5:bb ADLER32:cc", 10, 100.9, True),  # oC10 keeps whole seconds
    ("", 10, 100.0, False),  # nothing stored to trust; a link reads nothing and keeps ''
    ("SHA1:aa MD5:bb ADLER32:cc", 11, 100.0, False),  # grew since the scan
    ("SHA1:aa MD5:bb ADLER32:cc", 10, 101.0, False),  # written since the scan
])
def test_which_stored_checksums_are_trusted(stored: str, size: int, mtime: float,
                                            trusted: bool) -> None:
    assert trusts_stored_checksum(row(10, 100, stored), stat_of(size, mtime)) is trusted


@pytest.mark.parametrize(("size", "linking", "workers", "pooled"), [
    (10, True, 8, False),  # a small link: Python time only, inline
    (PARALLEL_MIN_SIZE, True, 8, True),  # big: may be hashed (a checksum not trusted): pool
    (10, False, 8, True),  # every copy waits on the filesystem: pool
    (PARALLEL_MIN_SIZE, False, 1, False),  # one worker: all inline
])
def test_which_files_go_to_the_pool(size: int, linking: bool, workers: int,
                                    pooled: bool) -> None:
    assert on_pool(size, linking, workers) is pooled


@pytest.mark.parametrize(("fileid", "etag", "blob_id"), [
    (1, "5f1a", "0000-oc10-1-5f1a"),
    (0x12345, "abc", "0123-oc10-74565-abc"),
    (0x0102_0304, "x-y.z", "0203-oc10-16909060-xyz"),  # only what blob ids allow
    (7, "", "0000-oc10-7-none"),
    (7, "é" * 3, "0000-oc10-7-none"),
])
def test_blob_ids_fan_out_by_fileid(fileid: int, etag: str, blob_id: str) -> None:
    assert blob_id_for(fileid, etag) == blob_id


def test_avatar_places_newest_layout_first(tmp_path: Path) -> None:
    data, home = tmp_path / "data", tmp_path / "data" / "u1"
    found = account_data.avatar_candidates(data, home, "u1")
    # md5("u1") = e4774cdda0793f86414e8b9140bb6db4: avatars/<2>/<2>/<28> since 10.0
    folder = data / "avatars" / "e4" / "77" / "4cdda0793f86414e8b9140bb6db4"
    assert account_data.avatar_path("u1") == "avatars/e4/77/4cdda0793f86414e8b9140bb6db4"
    assert found == [(folder / "avatar.jpg", "image/jpeg"), (folder / "avatar.png", "image/png"),
                     (home / "avatar.jpg", "image/jpeg"), (home / "avatar.png", "image/png")]


def test_a_migrated_client_refreshes_its_token_on_the_new_stack(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    source, _old = legacy
    user = next(u for u in small.users if u["oauth"] and u["state"] == 1 and u["has_home"])
    uid = user["uid"]
    stack = new_stack(tmp_path / "new")
    UserMigration(source, stack.store, stack.driver, uid).run()
    new = new_stack(tmp_path / "new").backend
    grant = next(g for g in user["oauth"] if g["expires"] > 2_000_000_000)
    client = (DESKTOP_CLIENT_ID, DESKTOP_CLIENT_SECRET)
    with live_server(NewstackApp(new, ServerInfo(hostname="testhost"))) as url:
        endpoint = f"{url}{TOKEN_PATH}"

        def refresh(token: str, auth: tuple[str, str] | None = client,
                    **headers: str) -> httpx.Response:
            return httpx.post(endpoint, data={"grant_type": "refresh_token",
                                              "refresh_token": token},
                              auth=auth, headers=headers)

        got = refresh(grant["refresh_token"])
        assert got.status_code == 200, got.text
        pair = got.json()
        assert pair["token_type"] == "Bearer" and pair["expires_in"] == 3600
        assert pair["user_id"] == uid and len(pair["access_token"]) == 64
        assert pair["message_url"] == f"{url}/index.php/apps/oauth2/authorization-successful"
        assert "\\/" in got.text, "slashes escaped as PHP's json_encode does"
        # the new access token logs in, the pair it replaced is gone
        assert propfind_status(url, uid, f"Bearer {pair['access_token']}") == 207
        assert propfind_status(url, uid, f"Bearer {grant['access_token']}") == 401
        again = refresh(grant["refresh_token"])
        assert (again.status_code, again.json()) == (400, {
            "error": "invalid_grant", "error_description": "refresh token does not exist"})
        # desktop client 2.4.2 gets its refresh errors with 200 (it loops on a 400)
        assert refresh(grant["refresh_token"], **{
            "User-Agent": "Mozilla/5.0 (Linux) mirall/2.4.2 (build 9)"}).status_code == 200
        # a client must prove who it is; other grants are refused as oauth2 refuses them
        assert refresh(pair["refresh_token"], auth=(client[0], "wrong")).json() == {
            "error": "invalid_client"}
        assert refresh(pair["refresh_token"], auth=None).json() == {"error": "invalid_request"}
        other = httpx.post(endpoint, data={"grant_type": "password"}, auth=client)
        assert (other.status_code, other.json()["error_description"]) == (
            400, "unhandled grant type")
        assert httpx.get(endpoint).status_code == 405
        # the second refresh works with the pair the first one gave
        assert refresh(pair["refresh_token"]).status_code == 200
