"""The shares a fixture ownCloud 10 instance wrote (every type, group members' own rows, links
with oC10 password hashes) read through the oc10 store, and imported into the native store with
nothing changed: same ids, tokens, hashes, targets, states and share types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.oc10.configphp import OC10Config
from bridge.oc10.passwords import verify_password
from newstack.legacy import annotations as oc10_annotations
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.legacy.shares import Oc10ShareStore
from newstack.metadata.engine import open_engine
from newstack.metadata.store import MetadataStore
from newstack.sharing.model import TYPE_GROUP, TYPE_LINK, TYPE_USERGROUP
from newstack.sharing.native_store import NativeShareStore
from newstack.sharing.sqlstore import share_of
from newstack.sharing.view import SharingBackend
from tests.newstack.legacy.instances import Instance, small_instance

TODAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module", params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
])
def instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Instance]:
    with small_instance(request.param, tmp_path_factory.mktemp("oc10")) as inst:
        yield inst


def _groups(inst: Instance) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with inst.engine.connect() as conn:
        for row in inst.rows(conn, "group_user"):
            found.setdefault(row["uid"], []).append(row["gid"])
    return found


def _uids(inst: Instance) -> list[str]:
    with inst.engine.connect() as conn:
        return sorted(row["user_id"] for row in inst.rows(conn, "accounts"))


def test_fixture_shares_read_as_written(instance: Instance) -> None:
    store = Oc10ShareStore(instance.engine, instance.t)
    salt = OC10Config.from_file(Path(instance.manifest.config_php)).passwordsalt
    shares: list[dict[str, Any]] = instance.manifest.shares
    assert {s["share_type"] for s in shares} >= {0, 1, 3, 6}
    for planned in shares:
        share = store.get(planned["id"])
        assert share is not None, planned
        assert (share.share_type, share.uid_owner, share.uid_initiator, share.file_source,
                share.permissions, share.token) == (
            planned["share_type"], planned["owner"], planned["initiator"], planned["fileid"],
            planned["permissions"], planned["token"])
        if share.share_type == TYPE_LINK:
            assert store.by_token(str(share.token)) == share
            if planned["password"]:
                assert share.password_hash is not None
                assert verify_password(planned["password"], share.password_hash, salt)
                assert not verify_password(planned["password"] + "x", share.password_hash, salt)
            else:
                assert share.password_hash is None
        for uid, target, state in planned["members"]:
            mine = [r for r in store.received(uid, _groups(instance).get(uid, []))
                    if r.share.id == share.id]
            assert [(r.target, r.state) for r in mine] == [(target, state)]


def test_team_share_as_each_member_sees_it(instance: Instance) -> None:
    store = Oc10ShareStore(instance.engine, instance.t)
    groups = _groups(instance)
    team = next(s for s in instance.manifest.shares
                if s["share_type"] == TYPE_GROUP and s["path"] == "Team")

    def seen(uid: str) -> tuple[str, int]:
        received = [r for r in store.received(uid, groups.get(uid, []))
                    if r.share.id == team["id"]]
        assert len(received) == 1
        return received[0].target, received[0].state

    assert seen("bob") == ("/Team (alice)", 0)
    assert seen("carol") == ("/Team", 2)
    assert not any(r.share.id == team["id"] for r in store.received("alice", groups["alice"]))


def test_import_into_the_native_store_changes_nothing(instance: Instance,
                                                      tmp_path: Path) -> None:
    legacy = Oc10ShareStore(instance.engine, instance.t)
    s = instance.t.share
    with instance.engine.connect() as conn:
        rows = conn.execute(sa.select(s).order_by(s.c.id)).all()
    shares = [share_of(r) for r in rows if r.share_type != TYPE_USERGROUP]
    members = [(int(r.parent), r.share_with, r.file_target, int(r.accepted))
               for r in rows if r.share_type == TYPE_USERGROUP]
    assert members, "the fixture writes group members' own rows"
    metadata = MetadataStore(open_engine(f"sqlite:///{tmp_path / 'metadata.db'}"), 2**40)
    try:
        native = NativeShareStore(metadata)
        native.import_shares(iter(shares), iter(members))
        native.import_shares(iter(shares), iter(members))  # a second pass changes nothing
        groups = _groups(instance)
        for uid in _uids(instance):
            assert native.received(uid, groups.get(uid, [])) == \
                legacy.received(uid, groups.get(uid, [])), uid
            assert native.created_by(uid, reshares=True) == legacy.created_by(uid,
                                                                               reshares=True)
        for share in shares:
            assert native.get(share.id) == legacy.get(share.id) == share
            if share.token:
                assert native.by_token(share.token) == share
        fileids = sorted({share.file_source for share in shares})
        with metadata.read() as conn, instance.engine.connect() as oc10:
            for uid in _uids(instance):
                expected = {fid: x.share_types for fid, x in oc10_annotations.extras(
                    oc10, instance.t, uid, fileids, today=TODAY).items() if x.share_types}
                assert native.share_types(conn, uid, fileids, TODAY) == expected, uid
    finally:
        metadata.engine.dispose()


def test_fixture_recipients_see_their_mounts(instance: Instance) -> None:
    """The fixture's shares as its recipients see them through the oc10 backend: accepted ones
    mounted at their own targets (bob's renamed group mount included), others not."""
    backend = SharingBackend(Oc10Backend(open_instance(Path(instance.manifest.config_php))),
                             received_ttl=0)
    try:
        shares = {s["note"]: s for s in instance.manifest.shares}
        projects = shares["user share, accepted"]
        team = shares["group share; bob renamed his mount, carol declined"]
        bob_root = {n.path: n for n in backend.children("bob", "")}
        for target, planned in (("Projects", projects), ("Team (alice)", team)):
            node = bob_root[target]
            assert (node.fileid, node.owner, node.shared) == (planned["fileid"], "alice", True)
        carol_root = {n.path for n in backend.children("carol", "")}
        assert "Team" not in carol_root  # declined
        assert "report.pdf" not in carol_root  # pending
        assert "notes.txt" not in carol_root  # declined user share
        assert "Website" in carol_root  # bob's reshare of alice's folder
        website = backend.stat("carol", "Website")
        assert website.owner == "alice" and website.permissions & 16
        inside = backend.children("bob", "Projects")
        owner_side = backend.children("alice", "Projects")
        assert [(n.fileid, n.name) for n in inside] == [(n.fileid, n.name) for n in owner_side]
        own = backend.inner.stat("bob", "")
        assert backend.stat("bob", "").etag != own.etag  # combined with the mounts' etags
    finally:
        backend.inner.close()  # type: ignore[attr-defined]
