"""Shares and links move with their owner, column for column; those that cannot are findings
(the plan's codes) and stay out of the gate's comparison; the gate sees a share or link that
differs, a member's target or state that differs, and a share that is missing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from fixtures.manifest import Manifest
from migrate.runner import UserMigration
from migrate.shares import CARRIED_AS_IS, LegacyShare, finding_for
from migrate.source import LegacySource
from migrate.verify import LINKS, SHARES, compare_backends
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.backend import Oc10Backend
from newstack.metadata import schema
from newstack.sharing.model import TYPE_GROUP, TYPE_LINK, TYPE_USER, TYPE_USERGROUP, Share
from newstack.sharing.view import SharingBackend
from tests.migrate.stacks import new_stack
from tests.newstack.live import live_server

HOME = 4


def legacy_row(share_type: int, share_with: str | None, *, item_type: str = "file",
               storage: int | None = HOME, path: str | None = "files/a.txt") -> LegacyShare:
    share = Share(id=1, share_type=share_type, share_with=share_with, uid_owner="alice",
                  uid_initiator="alice", item_type=item_type, file_source=10,
                  file_target="/a.txt", permissions=1, stime=1)
    return LegacyShare(share, storage, path, item_type)


@pytest.mark.parametrize(("row", "reason"), [
    (legacy_row(TYPE_USER, "bob"), None),
    (legacy_row(TYPE_GROUP, "staff"), None),
    (legacy_row(TYPE_LINK, None, path="files_trashbin/files/a.txt.d1"), None),
    (legacy_row(6, "carol@remote.example"), None),  # federated: carried as data
    (legacy_row(TYPE_USER, "ghost"), "share-recipient-missing"),
    (legacy_row(TYPE_GROUP, "nogroup"), "share-group-missing"),
    (legacy_row(TYPE_LINK, None, storage=None, path=None), "share-file-missing"),
    (legacy_row(TYPE_LINK, None, storage=9), "share-outside-home"),
    (legacy_row(TYPE_LINK, None, path="thumbnails/10/32-32.png"), "share-file-missing"),
    (legacy_row(TYPE_USER, "bob", item_type="calendar"), "share-legacy-item"),
])
def test_what_carries_over(row: LegacyShare, reason: str | None) -> None:
    assert finding_for(row, HOME, users={"alice", "bob"}, groups={"staff"}) == reason
    # a share to nobody stays as ownCloud keeps it; one without its item cannot
    assert (reason in CARRIED_AS_IS) == (reason in ("share-recipient-missing",
                                                    "share-group-missing"))


def most_shared(source: LegacySource, manifest: Manifest) -> str:
    s = source.t.share
    with source.engine.connect() as conn:
        counts = dict(conn.execute(sa.select(s.c.uid_owner, sa.func.count()).group_by(
            s.c.uid_owner)).all())
    return max((u["uid"] for u in manifest.users if u["has_home"]),
               key=lambda uid: counts.get(uid, 0))


def test_unresolvable_shares_are_findings_and_the_gate_sees_differences(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    source, old = legacy
    uid = most_shared(source, small)
    mine = old.shares.created_by(uid, reshares=True)
    sample = next(s for s in mine if s.share_type == TYPE_LINK)
    s = source.t.share
    base = dict(uid_owner=uid, uid_initiator=uid, item_type="file", item_source="1",
                file_source=sample.file_source, file_target="/x", permissions=1, stime=1,
                accepted=0, mail_send=0)
    with source.engine.begin() as conn:
        top = int(conn.execute(sa.select(sa.func.max(s.c.id))).scalar_one())
        conn.execute(sa.insert(s), [
            dict(base, id=top + 1, share_type=TYPE_USER, share_with="ghost"),
            dict(base, id=top + 2, share_type=TYPE_GROUP, share_with="nogroup"),
            dict(base, id=top + 3, share_type=TYPE_LINK, share_with=None, token="nofile000000001",
                 file_source=987_654_321),
        ])
    stack = new_stack(tmp_path / "new")
    report = UserMigration(source, stack.store, stack.driver, uid).run()
    found = {code: path for code, path, _ in report.findings}
    assert found["share-recipient-missing"] == f"share {top + 1}"
    assert found["share-group-missing"] == f"share {top + 2}"
    assert found["share-file-missing"] == f"share {top + 3}"
    new = new_stack(tmp_path / "new").backend
    assert new.shares.get(top + 1) is not None and new.shares.get(top + 2) is not None
    assert new.shares.by_token("nofile000000001") is None
    clean = compare_backends(old, new, uid, content="none")
    assert clean.ok, clean.summary()
    assert clean.checked["links"] + clean.checked["shares"] == report.links + report.shares > 0

    # now make the new side differ: a link's password hash and name, a member's state, and a
    # share gone
    group = next((x for x in mine if x.share_type == TYPE_GROUP), None)
    user_share = next(x for x in mine if x.share_type == TYPE_USER)
    t = schema.shares
    with stack.store.write(uid) as conn:
        conn.execute(sa.update(t).where(t.c.id == sample.id).values(
            share_with="1|$2y$10$planted", share_name="changed"))
        conn.execute(sa.delete(t).where(t.c.id == user_share.id))
        members = conn.execute(sa.select(t.c.id).where(t.c.share_type == TYPE_USERGROUP)
                               ).scalars().all()
        if group is not None and members:
            conn.execute(sa.update(t).where(t.c.id == members[0]).values(accepted=2))
    gate = compare_backends(old, new, uid, content="none")
    assert gate.fields[f"{LINKS} share_with"] == 1 and gate.fields[f"{LINKS} share_name"] == 1
    assert gate.fields[f"{SHARES} exists"] == 1
    if group is not None and members:
        assert gate.fields[f"{SHARES} target, state"] == 1
    assert gate.exit_code == 1


def fetch_link(url: str, link: dict[str, object], password: str | None) -> tuple[int, object]:
    """(status, content) of a link's download as a browser gets it: the password form first
    when there is one; folders as the entries of their zip."""
    with httpx.Client(base_url=url, timeout=30) as web:
        token = link["token"]
        if password is not None:
            answer = web.post(f"/index.php/s/{token}/authenticate", data={"password": password})
            if answer.status_code != 303:
                return answer.status_code, None
        got = web.get(f"/index.php/s/{token}/download")
    if got.status_code != 200:
        return got.status_code, None
    if got.headers["content-type"] == "application/zip":
        with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
            return 200, {i.filename: archive.read(i) for i in archive.infolist()}
    return 200, got.content


def test_fixture_links_give_the_same_bytes_after_migration(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    """Issue 7's acceptance on the fixture's own links (made as ownCloud made them, with
    password hashes, expiry, names): same URL, token and password, same answer and bytes."""
    source, old = legacy
    links = small.links()
    assert any(link["password"] for link in links) and len(links) >= 2
    stack = new_stack(tmp_path / "new")
    for owner in sorted({str(link["owner"]) for link in links}):
        UserMigration(source, stack.store, stack.driver, owner).run()
    new = new_stack(tmp_path / "new").backend
    compared = protected = 0
    with (live_server(NewstackApp(SharingBackend(old), ServerInfo(hostname="h"))) as old_url,
          live_server(NewstackApp(SharingBackend(new), ServerInfo(hostname="h"))) as new_url):
        for link in links:
            password = link["password"]
            before = fetch_link(old_url, link, password)  # type: ignore[arg-type]
            assert fetch_link(new_url, link, password) == before, link  # type: ignore[arg-type]
            if password:
                wrong = fetch_link(old_url, link, "not the password")
                assert wrong[1] is None, "the password form again, no content"
                assert fetch_link(new_url, link, "not the password") == wrong
            compared += before[0] == 200
            protected += before[0] == 200 and bool(password)
    assert compared >= 2 and protected >= 1, "links answer with content on both, one behind a "\
        "password"
