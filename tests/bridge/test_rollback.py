"""`ocbridge rollback` beyond the files (bridge/cutover.py Rollback, migrate/reverse.py): the
versions, trash, favorites, tags, system tags and comments the user made on the new stack end
equal on ownCloud 10; a difference the reverse delta cannot carry keeps the user on the new
stack; and a rolled-back user can be cut over again, with the ids and etags their client holds."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bridge.cutover import Cutover, Rollback, unexplained
from migrate.reverse import REBUILD_PHASE, rebuild_pending
from migrate.reverse_extras import (
    Annotations,
    legacy_annotations,
    native_annotations,
    plan_annotations,
)
from migrate.reverse_oc10 import plan_versions
from migrate.verify import Difference, compare_backends
from newstack.backend import Version
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack, open_newstack
from tests.bridge.test_cutover import UID, World, _tree, world  # noqa: F401 - the fixture

FAVORITE = ('<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" '
            'xmlns:oc="http://owncloud.org/ns"><d:set><d:prop><oc:favorite>{}</oc:favorite>'
            '</d:prop></d:set></d:propertyupdate>')

DEAD = ('<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:x="urn:example">'
        "<d:set><d:prop><x:colour>red and blue</x:colour></d:prop></d:set>"
        "</d:propertyupdate>")

# ---------------------------------------------------------------------------------------------
# pure parts


def _v(vid: int, size: int = 3, etag: str = "e", checksum: str = "SHA1:a") -> Version:
    return Version(fileid=1, version_id=vid, size=size, etag=etag, mimetype="text/plain",
                   checksum=checksum)


@pytest.mark.parametrize(("want", "have", "write", "remove", "retag"), [
    ([], [], [], [], []),
    ([_v(1), _v(2)], [_v(1)], [2], [], []),
    ([_v(1)], [_v(1), _v(2)], [], [2], []),
    ([_v(1)], [_v(1, etag="other")], [], [], [1]),  # oC10's write path made its own etag
    ([_v(1)], [_v(1, size=4)], [1], [], []),  # same id, other content
    ([_v(1)], [_v(1, checksum="SHA1:b")], [1], [], []),
    ([_v(1, checksum="")], [_v(1, checksum="SHA1:b")], [], [], [1]),
])
def test_versions_to_write_remove_and_retag(want: list[Version], have: list[Version],
                                            write: list[int], remove: list[int],
                                            retag: list[int]) -> None:
    plan = plan_versions(want, have)
    assert (plan.write, plan.remove, plan.retag) == (write, remove, retag)


def test_annotations_both_ways() -> None:
    have = Annotations({1, 2}, {(1, "red")}, {(1, 5)}, {7: (1, "carol", "hi", 10, 0)}, {1: 10},
                       {(1, "{urn:x}a"): "1", (1, "{urn:x}b"): "2"})
    want = Annotations({2, 3}, {(3, "red")}, {(3, 5)},
                       {7: (1, "carol", "edited", 10, 0), 8: (3, "carol", "new", 20, 0)},
                       {1: 30}, {(1, "{urn:x}a"): "1"})
    plan = plan_annotations(want, have)
    assert plan.add.favorites == {3} and plan.remove.favorites == {1}
    assert plan.add.tags == {(3, "red")} and plan.remove.tags == {(1, "red")}
    assert set(plan.add.comments) == {7, 8} and set(plan.remove.comments) == {7}
    assert plan.counts() == {"annotations favorites": 2, "annotations tags": 2,
                             "annotations systemtags": 2, "annotations comments": 2,
                             "annotations markers": 1, "annotations dead": 1}
    assert plan_annotations(want, want).counts() == {}
    # the new stack's ids of what it created, as ownCloud numbers them
    assert want.translated({3: 103}).favorites == {2, 103}
    assert want.translated({3: 103}).comments[8][0] == 103


@pytest.mark.parametrize(("details", "left"), [
    # the fileid of a node the new stack made: explained by new_ids
    ([Difference("node", "a", "fileid", 11, 900)], {}),
    ([Difference("node", "a", "fileid", 11, 901)], {"node fileid": 1}),
    ([Difference("trash", "t.d5", "fileid", 12, 902)], {}),
    ([Difference("systemtags", "(11, 2)", "assignments", True, None),
      Difference("systemtags", "(900, 2)", "assignments", None, True)], {}),
    ([Difference("systemtags", "(13, 2)", "assignments", True, None)],
     {"systemtags assignments": 1}),
])
def test_what_the_new_ids_explain(details: list[Difference], left: dict[str, int]) -> None:
    fields: dict[str, int] = {}
    for d in details:
        fields[f"{d.kind} {d.field}"] = fields.get(f"{d.kind} {d.field}", 0) + 1
    new_ids = [("a", 900, 11), ("files_trashbin/files/t.d5", 902, 12)]
    assert unexplained(fields, details, new_ids) == left


# ---------------------------------------------------------------------------------------------
# helpers


def _legacy(on: World) -> Oc10Backend:
    return Oc10Backend(open_instance(Path(on.manifest.config_php)))


def _dav(on: World) -> tuple[httpx.Client, str]:
    client = httpx.Client(auth=(UID, on.password(UID)), timeout=30)
    return client, f"{on.newstack_url}/remote.php/dav/files/{UID}/"


def _files(backend: Any) -> list[str]:
    return sorted(p for p, v in _tree(backend, UID).items() if not v[3])


# ---------------------------------------------------------------------------------------------
# (a) what the user made on the new stack besides files


def test_versions_trash_favorites_tags_and_comments_are_carried_back(world: World) -> None:  # noqa: F811
    first = Cutover(world.settings, world.store).run(UID)
    assert first.ok, first.reason
    stack = open_newstack(world.settings)
    new = stack.backend
    legacy_before = _legacy(world)
    try:
        trash_before = {i.original_name: i.node.fileid for i in legacy_before.trash(UID)}
        favorites_before = {n.path for n in legacy_before.favorites(UID)}
    finally:
        legacy_before.close()
    assert {"old notes 1.txt", "unused 0.txt"} <= set(trash_before)
    assert "Archive" in favorites_before
    files = _files(new)
    overwritten, deleted = files[0], files[1]
    http, dav = _dav(world)
    with http:
        # two overwrites: two versions of which ownCloud's write path makes one itself
        for n, mtime in ((1, 1_800_000_000), (2, 1_800_000_100)):
            assert http.put(dav + overwritten, content=b"overwrite %d\n" % n,
                            headers={"X-OC-MTime": str(mtime)}).status_code == 204
        for body, mtime in ((b"first\n", 1_800_000_200), (b"second\n", 1_800_000_300)):
            assert http.put(dav + "made-on-new.txt", content=body,
                            headers={"X-OC-MTime": str(mtime)}).status_code in (201, 204)
        assert http.delete(dav + deleted).status_code == 204
        assert http.put(dav + "gone-on-new.txt", content=b"short-lived\n").status_code == 201
        assert http.request("MKCOL", dav + "gone folder").status_code == 201
        assert http.put(dav + "gone folder/inside.txt", content=b"in it\n").status_code == 201
        time.sleep(1.1)  # another deletion second than the one above
        assert http.delete(dav + "gone-on-new.txt").status_code == 204
        assert http.delete(dav + "gone folder").status_code == 204
        for path, value in (("made-on-new.txt", 1), ("Archive", 0)):
            assert http.request("PROPPATCH", dav + path,
                                content=FAVORITE.format(value)).status_code == 207
        for path in ("made-on-new.txt", overwritten):
            assert http.request("PROPPATCH", dav + path, content=DEAD).status_code == 207
    restored = new.restore(UID, trash_before["old notes 1.txt"]).path
    new.purge(UID, trash_before["unused 0.txt"])
    made = new.stat(UID, "made-on-new.txt")
    readme = next(n for n in new.favorites(UID) if n.name.startswith("readme"))
    new.set_tags(UID, overwritten, ["blue"])
    new.set_tags(UID, readme.path, [])
    # system tags and comments have no write path on the new stack yet: rows as one would make
    with stack.store.write(UID) as conn:
        o, c = schema.systemtag_objects, schema.comments
        conn.execute(sa.delete(o).where(o.c.fileid == readme.fileid))
        conn.execute(sa.insert(o).values(fileid=made.fileid, tag_id=2))
        conn.execute(sa.insert(c).values(id=900, fileid=made.fileid, actor=UID,
                                         message="made on the new stack", created=1_800_000_400,
                                         parent_id=0))
        conn.execute(sa.insert(c).values(id=901, fileid=made.fileid, actor=UID,
                                         message="a reply", created=1_800_000_500,
                                         parent_id=900))
        conn.execute(sa.update(c).where(c.c.id == 8).values(message="edited on the new stack"))
        conn.execute(sa.insert(schema.comment_read_markers).values(
            uid=UID, fileid=made.fileid, marked_at=1_800_000_450))
    new_versions = {p: new.versions(UID, new.stat(UID, p).fileid)
                    for p in (overwritten, "made-on-new.txt")}
    new_content = {(p, v.version_id): b"".join(new.read_version(UID, new.stat(UID, p).fileid,
                                                                 v.version_id))
                   for p, held in new_versions.items() for v in held}
    new_trash = {i.original_name: (i.deleted_at, i.original_location) for i in new.trash(UID)}
    new_annotations = native_annotations(stack.store, UID)
    stack.close()
    assert len(new_versions[overwritten]) >= 2 and len(new_versions["made-on-new.txt"]) == 1

    result = Rollback(world.settings, world.store).run(UID)
    assert result.ok, result.reason
    assert result.differences == {}, result.differences
    assert (result.restored, result.purged, result.trash_added) == (1, 1, 2)
    assert result.versions >= 2 and result.annotations >= 8

    legacy = _legacy(world)
    try:
        for path, wanted in new_versions.items():
            node = legacy.stat(UID, path)
            held = legacy.versions(UID, node.fileid)
            assert [(v.version_id, v.size, v.etag) for v in held] == \
                [(v.version_id, v.size, v.etag) for v in wanted], path
            for v in wanted:
                got = b"".join(legacy.read_version(UID, node.fileid, v.version_id))
                assert got == new_content[(path, v.version_id)], (path, v.version_id)
        trash = {i.original_name: (i.deleted_at, i.original_location) for i in legacy.trash(UID)}
        assert trash == new_trash  # the new stack's deletion times, restored and purged ones gone
        folder = next(i for i in legacy.trash(UID) if i.original_name == "gone folder")
        [inside] = legacy.trash_children(UID, folder.node.fileid)
        assert b"".join(legacy.read_trashed(UID, inside.fileid)) == b"in it\n"
        assert legacy.stat(UID, restored).fileid == trash_before["old notes 1.txt"]
        assert {n.path for n in legacy.favorites(UID)} == \
            favorites_before - {"Archive"} | {"made-on-new.txt"}
        ids = {new_id: old_id for _, new_id, old_id in result.new_ids}
        assert legacy_annotations(legacy, UID) == new_annotations.translated(ids)
        comments = legacy_annotations(legacy, UID).comments
        assert comments[901] == (ids[made.fileid], UID, "a reply", 1_800_000_500, 900)
        assert comments[8][2] == "edited on the new stack"
        [extras] = legacy.extras(UID, [legacy.stat(UID, overwritten)]).values()
        assert extras.dead == {"{urn:example}colour": "red and blue"}
        with legacy.engine.connect() as conn:
            cm = legacy.t.comments
            top = conn.execute(sa.select(cm.c.children_count).where(cm.c.id == 900)).scalar()
            reply = conn.execute(sa.select(cm.c.topmost_parent_id).where(cm.c.id == 901)
                                 ).scalar()
        assert (top, reply) == (1, 900)
    finally:
        legacy.close()


def test_a_difference_the_reverse_delta_cannot_carry_keeps_the_user_on_the_new_stack(
        world: World) -> None:  # noqa: F811
    assert Cutover(world.settings, world.store).run(UID).ok
    stack = open_newstack(world.settings)
    try:
        with stack.store.write(UID) as conn:
            conn.execute(sa.update(schema.users).where(schema.users.c.uid == UID)
                         .values(email="changed-on-new@example.org"))
    finally:
        stack.close()
    result = Rollback(world.settings, world.store).run(UID)
    assert not result.ok and result.state == "new"
    assert "still differs" in result.reason and "user email: 1" in result.reason
    assert result.differences == {"user email": 1}
    route = world.store.route(UID)
    assert route is not None and (route.stack, route.frozen) == ("new", False)


# ---------------------------------------------------------------------------------------------
# (b) cut over again after a rollback


def test_a_rolled_back_user_is_cut_over_again_with_the_ids_and_etags_the_client_holds(
        world: World) -> None:  # noqa: F811
    first = Cutover(world.settings, world.store).run(UID)
    assert first.ok, first.reason
    stack = open_newstack(world.settings)
    files = _files(stack.backend)
    before = _tree(stack.backend, UID)
    stack.close()
    overwritten, deleted, kept, replaced = files[0], files[1], files[2], files[3]
    http, dav = _dav(world)
    with http:
        # deleted, then another file made under its name
        assert http.delete(dav + replaced).status_code == 204
        assert http.put(dav + replaced, content=b"another file\n").status_code == 201
        assert http.put(dav + "made-on-new.txt", content=b"new stack\n").status_code == 201
        assert http.request("MKCOL", dav + "New folder").status_code == 201
        assert http.put(dav + "New folder/inside.txt", content=b"inside\n").status_code == 201
        assert http.put(dav + overwritten, content=b"overwritten on new\n").status_code == 204
        assert http.put(dav + "gone-on-new.txt", content=b"short-lived\n").status_code == 201
        assert http.delete(dav + "gone-on-new.txt").status_code == 204
        assert http.delete(dav + deleted).status_code == 204
        assert http.request("PROPPATCH", dav + "made-on-new.txt",
                            content=FAVORITE.format(1)).status_code == 207
    stack = open_newstack(world.settings)
    on_new = _tree(stack.backend, UID)  # what the client synced from the new stack
    stack.close()

    back = Rollback(world.settings, world.store).run(UID)
    assert back.ok, back.reason
    # the new files, the new folder (with its file), the trash item made on the new stack
    assert back.differences == {} and back.rebuilt == 4
    ids = {new_id: old_id for _, new_id, old_id in back.new_ids}
    legacy = _legacy(world)
    try:
        after_rollback = {path: (str(legacy.stat(UID, path).fileid), legacy.stat(UID, path).etag)
                          for path in ("made-on-new.txt", "New folder", "New folder/inside.txt",
                                       overwritten, kept, replaced)}
        # the client keeps every etag; only the ids of what the new stack made change
        for path, (fileid, etag) in after_rollback.items():
            held_id, held_etag = on_new[path][:2]
            assert held_etag == etag, path
            assert fileid == str(ids.get(held_id, held_id)), path
        assert b"".join(legacy.read(UID, legacy.stat(UID, replaced))) == b"another file\n"
        trashed = {i.node.fileid for i in legacy.trash(UID)}
        assert {before[replaced][0], before[deleted][0]} <= trashed
        # then the user works on ownCloud again
        legacy.write(UID, "made-on-legacy.txt", io.BytesIO(b"legacy\n"), length=7)
        legacy.write(UID, kept, io.BytesIO(b"changed on legacy\n"), length=18)
        after_legacy = {path: (str(legacy.stat(UID, path).fileid), legacy.stat(UID, path).etag)
                        for path in (*after_rollback, "made-on-legacy.txt")}
    finally:
        legacy.close()

    again = Cutover(world.settings, world.store).run(UID)
    assert again.ok, again.reason
    assert again.verify_differences == {}
    legacy = _legacy(world)
    stack = open_newstack(world.settings)
    try:
        check = compare_backends(legacy, stack.backend, UID)
        assert check.ok, check.to_dict()
        # what the client held after the rollback, served by the new stack unchanged
        for path, (fileid, etag) in after_legacy.items():
            node = stack.backend.stat(UID, path)
            assert (str(node.fileid), node.etag) == (fileid, etag), path
        assert "made-on-new.txt" in {n.path for n in stack.backend.favorites(UID)}
    finally:
        legacy.close()
        stack.close()


def test_the_rebuild_waits_for_the_next_cutover_when_the_rollback_stops_after_the_flip(
        world: World) -> None:  # noqa: F811
    assert Cutover(world.settings, world.store).run(UID).ok
    http, dav = _dav(world)
    with http:
        assert http.put(dav + "made-on-new.txt", content=b"new stack\n").status_code == 201

    def killed_after_the_flip_back(uid: str, state: str) -> None:
        if state == "legacy":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Rollback(world.settings, world.store, on_phase=killed_after_the_flip_back).run(UID)
    assert world.store.lifecycle(UID) == "legacy"
    stack = open_newstack(world.settings)
    try:
        assert _pending(stack) != ""  # the nodes to rebuild are listed, still in the copy
        made = stack.backend.stat(UID, "made-on-new.txt")
        assert made.fileid >= world.settings.newstack.fileid_base
    finally:
        stack.close()
    again = Cutover(world.settings, world.store).run(UID)
    assert again.ok, again.reason
    stack = open_newstack(world.settings)
    legacy = _legacy(world)
    try:
        assert _pending(stack) == ""
        assert stack.backend.stat(UID, "made-on-new.txt").fileid == \
            legacy.stat(UID, "made-on-new.txt").fileid
        assert rebuild_pending(stack.store, stack.driver, UID) == 0  # nothing left to do
    finally:
        legacy.close()
        stack.close()


def _pending(stack: Newstack) -> str:
    cp = schema.migration_checkpoints
    with stack.store.read() as conn:
        return str(conn.execute(sa.select(cp.c.detail).where(
            cp.c.uid == UID, cp.c.phase == REBUILD_PHASE)).scalar() or "")

