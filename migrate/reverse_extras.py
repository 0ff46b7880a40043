"""The annotations of a rollback: favorites, personal tags, system-tag assignments, comments,
comment read markers and dead properties of the user's nodes, made equal on ownCloud 10 to
what the new stack holds (added and removed both ways: unfavorited on the new stack is
unfavorited on ownCloud).

Both sides are read as one value (`Annotations`), the new stack's fileids translated to the
ownCloud fileids the reverse delta gave the nodes it created; what to change is a pure
difference of the two, and the same difference taken again afterwards is the rollback's check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection

from migrate.runner import unix_seconds
from newstack.dav.xml import xml_text
from newstack.legacy import annotations as oc10_annotations
from newstack.legacy.annotations import FAVORITE, VT_STRING, VT_XML
from newstack.legacy.backend import Oc10Backend
from newstack.metadata import schema
from newstack.metadata.store import MetadataStore

FILES = "files"

#: comment id → (fileid, actor, message, created, parent id)
Comment = tuple[int, str, str, int, int]


@dataclass
class Annotations:
    favorites: set[int] = field(default_factory=set)
    #: (fileid, tag)
    tags: set[tuple[int, str]] = field(default_factory=set)
    #: (fileid, system tag id)
    systemtags: set[tuple[int, int]] = field(default_factory=set)
    comments: dict[int, Comment] = field(default_factory=dict)
    #: fileid → when the user last read its comments
    markers: dict[int, int] = field(default_factory=dict)
    #: (fileid, Clark name) → XML text of a dead property
    dead: dict[tuple[int, str], str] = field(default_factory=dict)

    def translated(self, ids: Mapping[int, int]) -> Annotations:
        """The same with fileids looked up in `ids` (others kept)."""
        def t(fileid: int) -> int:
            return ids.get(fileid, fileid)

        return Annotations(
            {t(f) for f in self.favorites}, {(t(f), g) for f, g in self.tags},
            {(t(f), g) for f, g in self.systemtags},
            {cid: (t(c[0]), *c[1:]) for cid, c in self.comments.items()},
            {t(f): m for f, m in self.markers.items()},
            {(t(f), name): xml for (f, name), xml in self.dead.items()})


@dataclass(frozen=True)
class AnnotationPlan:
    """What to add to and remove from ownCloud; a changed comment or marker is in both."""

    add: Annotations
    remove: Annotations

    def counts(self) -> dict[str, int]:
        """Differences per kind, as the rollback's check reports them."""
        out = {}
        for kind in ("favorites", "tags", "systemtags", "comments", "markers", "dead"):
            added, removed = getattr(self.add, kind), getattr(self.remove, kind)
            changed = len(set(added) & set(removed))
            n = len(added) + len(removed) - changed
            if n:
                out[f"annotations {kind}"] = n
        return out


def plan_annotations(want: Annotations, have: Annotations) -> AnnotationPlan:
    return AnnotationPlan(_missing(want, have), _missing(have, want))


def _missing(these: Annotations, there: Annotations) -> Annotations:
    """What `these` hold that `there` does not (a keyed value counts when it differs)."""
    return Annotations(
        these.favorites - there.favorites, these.tags - there.tags,
        these.systemtags - there.systemtags,
        {k: v for k, v in these.comments.items() if there.comments.get(k) != v},
        {k: v for k, v in these.markers.items() if there.markers.get(k) != v},
        {k: v for k, v in these.dead.items() if there.dead.get(k) != v})


# ---------------------------------------------------------------------------------------------
# reading


def native_annotations(store: MetadataStore, uid: str) -> Annotations:
    """The new stack's annotations of the nodes `uid` owns (files and trash)."""
    n = schema.nodes
    mine = sa.select(n.c.fileid).where(n.c.owner == uid)
    f, t, o = schema.favorites, schema.tags, schema.systemtag_objects
    c, m = schema.comments, schema.comment_read_markers
    found = Annotations()
    with store.read() as conn:
        found.favorites = {int(x) for x in conn.execute(sa.select(f.c.fileid).where(
            f.c.uid == uid, f.c.fileid.in_(mine))).scalars()}
        found.tags = {(int(x), g) for x, g in conn.execute(sa.select(t.c.fileid, t.c.tag).where(
            t.c.uid == uid, t.c.fileid.in_(mine)))}
        found.systemtags = {(int(x), int(g)) for x, g in conn.execute(
            sa.select(o.c.fileid, o.c.tag_id).where(o.c.fileid.in_(mine)))}
        found.comments = {int(r.id): (int(r.fileid), r.actor, r.message, int(r.created),
                                      int(r.parent_id))
                          for r in conn.execute(sa.select(c).where(c.c.fileid.in_(mine)))}
        found.markers = {int(x): int(at) for x, at in conn.execute(
            sa.select(m.c.fileid, m.c.marked_at).where(m.c.uid == uid, m.c.fileid.in_(mine)))}
        p = schema.dead_props
        found.dead = {(int(x), name): value for x, name, value in conn.execute(
            sa.select(p.c.fileid, p.c.name, p.c.value).where(p.c.fileid.in_(mine)))}
    return found


def legacy_annotations(legacy: Oc10Backend, uid: str) -> Annotations:
    """ownCloud's annotations of the nodes in `uid`'s home storage."""
    t = legacy.t
    storage = legacy.home_storage(uid)[1]
    fc = t.filecache
    cat, obj = t.vcategory, t.vcategory_to_object
    sm, cm, rm = t.systemtag_object_mapping, t.comments, t.comments_read_markers
    found = Annotations()
    with legacy.engine.connect() as conn:
        for category, objid in conn.execute(
                sa.select(cat.c.category, obj.c.objid)
                .join(obj, obj.c.categoryid == cat.c.id)
                .join(fc, fc.c.fileid == obj.c.objid)
                .where(cat.c.uid == uid, cat.c.type == FILES, obj.c.type == FILES,
                       fc.c.storage == storage)):
            if category == FAVORITE:
                found.favorites.add(int(objid))
            else:
                found.tags.add((int(objid), category))
        found.systemtags = {(int(x), int(g)) for x, g in conn.execute(
            sa.select(fc.c.fileid, sm.c.systemtagid)
            .join(sm, sm.c.objectid == sa.cast(fc.c.fileid, sm.c.objectid.type))
            .where(fc.c.storage == storage, sm.c.objecttype == FILES))}
        for row in conn.execute(
                sa.select(cm).join(fc, cm.c.object_id == sa.cast(fc.c.fileid,
                                                                 cm.c.object_id.type))
                .where(cm.c.object_type == FILES, fc.c.storage == storage)):
            found.comments[int(row.id)] = (int(row.object_id), row.actor_id, row.message or "",
                                           unix_seconds(row.creation_timestamp),
                                           int(row.parent_id or 0))
        for object_id, marked in conn.execute(
                sa.select(rm.c.object_id, rm.c.marker_datetime)
                .join(fc, rm.c.object_id == sa.cast(fc.c.fileid, rm.c.object_id.type))
                .where(rm.c.user_id == uid, rm.c.object_type == FILES,
                       fc.c.storage == storage)):
            if marked is not None:
                found.markers[int(object_id)] = unix_seconds(marked)
        p = t.properties
        for fileid, name, value, kind in conn.execute(
                sa.select(p.c.fileid, p.c.propertyname, p.c.propertyvalue, p.c.propertytype)
                .join(fc, fc.c.fileid == p.c.fileid).where(fc.c.storage == storage)
                .order_by(p.c.id)):
            # as the migration reads them; serialised PHP objects are neither migrated nor
            # touched here
            if kind == VT_STRING:
                found.dead[(int(fileid), name)] = xml_text(value or "")
            elif kind == VT_XML:
                found.dead[(int(fileid), name)] = value or ""
    return found


# ---------------------------------------------------------------------------------------------
# writing


def apply_annotations(legacy: Oc10Backend, store: MetadataStore, uid: str, want: Annotations,
                      plan: AnnotationPlan) -> None:
    """Writes `plan` into ownCloud in one transaction; `want` is the whole wanted state (for
    the comment threads' counters), `store` the new stack (system tags ownCloud lacks)."""
    t = legacy.t
    with legacy.engine.begin() as conn:
        for fileid in plan.remove.favorites:
            oc10_annotations.set_favorite(conn, t, uid, fileid, False)
        for fileid in plan.add.favorites:
            oc10_annotations.set_favorite(conn, t, uid, fileid, True)
        obj = t.vcategory_to_object
        for fileid, tag in plan.remove.tags:
            conn.execute(sa.delete(obj).where(obj.c.objid == fileid, obj.c.type == FILES,
                                              obj.c.categoryid == _category(conn, legacy, uid,
                                                                            tag)))
        for fileid, tag in plan.add.tags:
            conn.execute(sa.insert(obj).values(objid=fileid, type=FILES,
                                               categoryid=_category(conn, legacy, uid, tag)))
        sm = t.systemtag_object_mapping
        for fileid, tag_id in plan.remove.systemtags:
            conn.execute(sa.delete(sm).where(sm.c.objectid == str(fileid),
                                             sm.c.objecttype == FILES,
                                             sm.c.systemtagid == tag_id))
        _ensure_systemtags(conn, legacy, store, {g for _, g in plan.add.systemtags})
        if plan.add.systemtags:
            conn.execute(sa.insert(sm), [dict(objectid=str(f), objecttype=FILES, systemtagid=g)
                                         for f, g in sorted(plan.add.systemtags)])
        _write_comments(conn, legacy, want, plan)
        rm = t.comments_read_markers
        for fileid in plan.remove.markers.keys() | plan.add.markers.keys():
            conn.execute(sa.delete(rm).where(rm.c.user_id == uid, rm.c.object_type == FILES,
                                             rm.c.object_id == str(fileid)))
        if plan.add.markers:
            conn.execute(sa.insert(rm), [dict(user_id=uid, object_type=FILES,
                                              object_id=str(f), marker_datetime=_datetime(at))
                                         for f, at in sorted(plan.add.markers.items())])
        props: dict[int, dict[str, str | None]] = {}
        for fileid, name in plan.remove.dead:
            props.setdefault(fileid, {})[name] = None
        for (fileid, name), xml in plan.add.dead.items():
            props.setdefault(fileid, {})[name] = xml
        for fileid, values in sorted(props.items()):
            oc10_annotations.set_dead_props(conn, t, fileid, values)


def _category(conn: Connection, legacy: Oc10Backend, uid: str, tag: str) -> int:
    """The user's 'files' category `tag`, made when missing (Tags::add)."""
    cat = legacy.t.vcategory
    found = conn.execute(sa.select(cat.c.id).where(
        cat.c.uid == uid, cat.c.type == FILES, cat.c.category == tag)
        .order_by(cat.c.id).limit(1)).scalar()
    if found is not None:
        return int(found)
    key = conn.execute(sa.insert(cat).values(uid=uid, type=FILES, category=tag)
                       ).inserted_primary_key
    assert key is not None
    return int(key[0])


def _ensure_systemtags(conn: Connection, legacy: Oc10Backend, store: MetadataStore,
                       ids: set[int]) -> None:
    """System tags are global and keep their ids on both sides: one the new stack has and
    ownCloud lacks is made there with its id."""
    if not ids:
        return
    st = legacy.t.systemtag
    have = set(conn.execute(sa.select(st.c.id).where(st.c.id.in_(sorted(ids)))).scalars())
    missing = sorted(ids - {int(i) for i in have})
    if not missing:
        return
    s = schema.systemtags
    with store.read() as new:
        rows = [dict(id=int(r.id), name=r.name, visibility=int(r.visibility),
                     editable=int(r.editable), assignable=int(r.assignable))
                for r in new.execute(sa.select(s).where(s.c.id.in_(missing)))]
    if rows:
        conn.execute(sa.insert(st), rows)


def _write_comments(conn: Connection, legacy: Oc10Backend, want: Annotations,
                    plan: AnnotationPlan) -> None:
    """Comments gone or changed are deleted, new or changed ones written with their ids, and
    the thread counters of every parent touched recomputed from the wanted comments."""
    cm = legacy.t.comments
    ids = sorted(plan.remove.comments.keys() | plan.add.comments.keys())
    for start in range(0, len(ids), 500):
        conn.execute(sa.delete(cm).where(cm.c.id.in_(ids[start:start + 500])))
    children: dict[int, list[int]] = {}
    for cid, comment in want.comments.items():
        children.setdefault(comment[4], []).append(cid)

    def topmost(cid: int) -> int:
        seen = set()
        while want.comments.get(cid, (0, "", "", 0, 0))[4] and cid not in seen:
            seen.add(cid)
            cid = want.comments[cid][4]
        return cid

    rows = []
    for cid, (fileid, actor, message, created, parent) in sorted(plan.add.comments.items()):
        kids = children.get(cid, [])
        rows.append(dict(
            id=cid, parent_id=parent, topmost_parent_id=topmost(cid) if parent else 0,
            children_count=len(kids), actor_type="users", actor_id=actor, message=message,
            verb="comment", creation_timestamp=_datetime(created),
            latest_child_timestamp=_datetime(max(want.comments[k][3] for k in kids))
            if kids else None, object_type=FILES, object_id=str(fileid)))
    if rows:
        conn.execute(sa.insert(cm), rows)
    parents = {c[4] for c in plan.add.comments.values()} | \
        {c[4] for c in plan.remove.comments.values()}
    for parent in sorted(parents - {0} - set(plan.add.comments)):
        kids = children.get(parent, [])
        conn.execute(sa.update(cm).where(cm.c.id == parent).values(
            children_count=len(kids),
            latest_child_timestamp=_datetime(max(want.comments[k][3] for k in kids))
            if kids else None))


def _datetime(ts: int) -> dt.datetime:
    """Unix seconds as the naive UTC DATETIME ownCloud stores."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)
