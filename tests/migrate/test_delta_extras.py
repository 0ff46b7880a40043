"""A catch-up pass writes only the extras that differ (migrate/extras_sync.py) and ends with
exactly the rows a full import of the same ownCloud state writes: favorites, tags, comments,
read markers, dead properties, system tag assignments and trash records, row by row."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.delta import DeltaPass
from migrate.extras_sync import Item, merged
from migrate.runner import FAVORITE, InjectedCrash, MigrationOptions, UserMigration
from migrate.source import LegacySource
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack
from tests.migrate.stacks import new_stack

UID = "alice"
EXTRAS = (schema.trash, schema.favorites, schema.tags, schema.comments,
          schema.comment_read_markers, schema.dead_props, schema.systemtag_objects,
          schema.systemtags)
COLOUR = "{http://example.com/ns}colour"


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def instance(request: pytest.FixtureRequest, tmp_path: Path,
             new_database: Callable[[str], str]) -> Manifest:
    profile = dataclasses.replace(get_profile("small", users=2, files_per_user=80),
                                  hash_cost=4, large_every=0, trash_items=3)
    url = "sqlite" if request.param == "sqlite" else new_database("mariadb")
    manifest, _ = build_instance(tmp_path / "legacy", url, profile, 8)
    return manifest


@pytest.fixture
def legacy(instance: Manifest) -> Iterator[tuple[LegacySource, Oc10Backend]]:
    source = LegacySource(open_instance(Path(instance.config_php)))
    old = Oc10Backend(open_instance(Path(instance.config_php)))
    yield source, old
    old.close()
    source.instance.close()


def extras(stack: Newstack) -> dict[str, list[tuple[object, ...]]]:
    with stack.store.read() as conn:
        return {t.name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr)
                for t in EXTRAS}


def files(old: Oc10Backend) -> list[str]:
    found, todo = [], [""]
    while todo:
        for node in old.children(UID, todo.pop()):
            if node.is_dir:
                todo.append(node.path)
            else:
                found.append(node.path)
    return sorted(found)


def change_extras(source: LegacySource, old: Oc10Backend) -> None:
    """Every kind of extras change a user (or another user) makes between two passes."""
    t = source.t
    paths = files(old)
    fileid = {p: old.stat(UID, p).fileid for p in paths}
    favorites = {n.path for n in old.favorites(UID)}
    old.set_favorite(UID, sorted(set(paths) - favorites)[0], True)
    old.set_favorite(UID, sorted(favorites)[0], False)
    old.set_dead_props(UID, paths[3], {COLOUR: "purple", "{http://example.com/ns}new": "x"})
    # trash: items added (one with a comment on it), one migrated item restored, one purged
    trashed = sorted(old.trash(UID), key=lambda item: item.node.fileid)
    assert len(trashed) >= 2
    old.delete(UID, paths[5])
    old.delete(UID, paths[6])
    old.restore(UID, trashed[0].node.fileid)
    old.purge(UID, trashed[1].node.fileid)
    when = dt.datetime(2025, 1, 2, 3, 4, 5)
    with source.engine.begin() as conn:
        tag = conn.execute(sa.select(t.vcategory.c.id).where(
            t.vcategory.c.uid == UID, t.vcategory.c.category != FAVORITE)).scalars().first()
        assert tag is not None
        conn.execute(sa.update(t.vcategory).where(t.vcategory.c.id == tag)
                     .values(category="renamed"))
        conn.execute(sa.insert(t.vcategory_to_object).values(
            objid=fileid[paths[7]], categoryid=tag, type="files"))
        cm = t.comments
        mine = conn.execute(sa.select(cm.c.id, cm.c.object_id).where(
            cm.c.actor_id == UID).order_by(cm.c.id)).all()
        assert len(mine) >= 2
        conn.execute(sa.update(cm).where(cm.c.id == mine[0].id).values(message="edited"))
        conn.execute(sa.delete(cm).where(cm.c.id == mine[1].id))
        for target, parent in ((paths[8], 0), (paths[5], 0), (paths[8], mine[0].id)):
            conn.execute(sa.insert(cm).values(
                parent_id=parent, topmost_parent_id=parent, children_count=0,
                actor_type="users", actor_id="bob" if parent else UID,
                message=f"on {target}", verb="comment", creation_timestamp=when,
                latest_child_timestamp=None, object_type="files",
                object_id=str(fileid[target])))  # paths[5] is in the trash
        rm = t.comments_read_markers
        conn.execute(sa.update(rm).where(rm.c.user_id == UID).values(marker_datetime=when))
        m = t.systemtag_object_mapping
        first = conn.execute(sa.select(m.c.objectid, m.c.systemtagid).where(
            m.c.objectid.in_([str(f) for f in fileid.values()])).order_by(m.c.objectid)).first()
        assert first is not None
        conn.execute(sa.delete(m).where(m.c.objectid == first.objectid,
                                        m.c.systemtagid == first.systemtagid))
        conn.execute(sa.insert(m).values(objectid=str(fileid[paths[9]]), objecttype="files",
                                         systemtagid=3))
        conn.execute(sa.insert(t.systemtag).values(id=9, name="made since", visibility=1,
                                                   editable=1, assignable=1))
        conn.execute(sa.insert(m).values(objectid=str(fileid[paths[10]]), objecttype="files",
                                         systemtagid=9))
        ft = t.files_trash
        kept = conn.execute(sa.select(ft.c.auto_id).where(ft.c.user == UID)
                            .order_by(ft.c.auto_id)).scalars().first()
        conn.execute(sa.update(ft).where(ft.c.auto_id == kept).values(location="elsewhere"))


def test_incremental_pass_equals_a_full_import(legacy: tuple[LegacySource, Oc10Backend],
                                               tmp_path: Path) -> None:
    source, old = legacy
    passed = new_stack(tmp_path / "passed")
    UserMigration(source, passed.store, passed.driver, UID).run()
    before = extras(passed)
    idle = DeltaPass(source, passed.store, passed.driver, UID).delta()
    assert (idle.extras_added, idle.extras_changed, idle.extras_removed) == (0, 0, 0)
    assert extras(passed) == before

    change_extras(source, old)
    report = DeltaPass(source, passed.store, passed.driver, UID).delta()
    full = new_stack(tmp_path / "full")
    UserMigration(source, full.store, full.driver, UID).run()
    expected = extras(full)
    assert extras(passed) == expected
    assert expected != before
    assert report.extras_added >= 5 and report.extras_changed >= 3
    assert report.extras_removed >= 3
    again = DeltaPass(source, passed.store, passed.driver, UID).delta()
    assert (again.extras_added, again.extras_changed, again.extras_removed) == (0, 0, 0)


def test_killed_extras_resync_is_finished_by_the_next_pass(
        legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    source, old = legacy
    stack = new_stack(tmp_path / "new")
    UserMigration(source, stack.store, stack.driver, UID).run()
    change_extras(source, old)
    options = MigrationOptions(batch=1)  # a transaction per changed row

    def kill(step: str) -> None:
        if step == "delta:extras-written":
            raise InjectedCrash(step)

    with pytest.raises(InjectedCrash):
        DeltaPass(source, stack.store, stack.driver, UID, options, crash_hook=kill).delta()
    DeltaPass(source, stack.store, stack.driver, UID, options).delta()
    full = new_stack(tmp_path / "full")
    UserMigration(source, full.store, full.driver, UID).run()
    assert extras(stack) == extras(full)


def test_foreign_rows_of_the_user_go(legacy: tuple[LegacySource, Oc10Backend],
                                     tmp_path: Path) -> None:
    """A favorite the user made on the new stack of another user's node (after a rollback):
    a full import would not have it."""
    source, _old = legacy
    stack = new_stack(tmp_path / "new")
    UserMigration(source, stack.store, stack.driver, UID).run()
    with source.engine.connect() as conn:
        other_user = conn.execute(sa.select(source.t.users.c.uid).where(
            source.t.users.c.uid != UID)).scalars().first()
    assert other_user is not None
    UserMigration(source, stack.store, stack.driver, other_user).run()
    n = schema.nodes
    with stack.store.write() as conn:
        other = conn.execute(sa.select(n.c.fileid).where(n.c.owner != UID)).scalars().first()
        assert other is not None
        conn.execute(sa.insert(schema.favorites).values(uid=UID, fileid=other))
    report = DeltaPass(source, stack.store, stack.driver, UID).delta()
    assert report.extras_removed == 1
    with stack.store.read() as conn:
        assert conn.execute(sa.select(schema.favorites).where(
            schema.favorites.c.fileid == other)).first() is None


def item(fileid: int, kind: str = "favorites") -> Item:
    return Item(fileid, kind, (fileid,))


def test_merged_groups_both_sides_by_fileid() -> None:
    wanted = [item(1), item(3), item(3, "tags")]
    held = [[item(2), item(3)], [item(3, "tags"), item(5, "tags")]]
    assert [(f, len(w), len(h)) for f, w, h in merged(wanted, *held)] == \
        [(1, 1, 0), (2, 0, 1), (3, 2, 2), (5, 0, 1)]


def test_merged_refuses_unordered_input() -> None:
    with pytest.raises(ValueError, match="fileid order"):
        list(merged([item(3), item(1), item(3)]))


def test_a_change_written_in_the_legacy_tree_is_compared_not_replaced(
        legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path) -> None:
    """With files changed but no extras changed, a pass writes no extras row."""
    source, old = legacy
    stack = new_stack(tmp_path / "new")
    UserMigration(source, stack.store, stack.driver, UID).run()
    before = extras(stack)
    body = b"changed"
    old.write(UID, files(old)[0], io.BytesIO(body), length=len(body))
    touched: list[str] = []

    def written(conn: object, cursor: sa.engine.interfaces.DBAPICursor, statement: str,
                *rest: object) -> None:
        words = statement.split()
        if words[0].upper() in ("INSERT", "UPDATE", "DELETE") and cursor.rowcount and \
                any(t.name in (w.strip('"') for w in words[:4]) for t in EXTRAS[:-1]):
            touched.append(statement)

    sa.event.listen(stack.store.engine, "after_cursor_execute", written)
    report = DeltaPass(source, stack.store, stack.driver, UID).delta()
    assert report.changed == 1
    assert (report.extras_added, report.extras_changed, report.extras_removed) == (0, 0, 0)
    assert not touched, touched
    assert extras(stack) == before
