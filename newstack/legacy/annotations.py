"""Per-file annotations of an ownCloud 10 database as oC10's DAV plugins read and write them:
favorites and personal tags (oc_vcategory*), share types (oc_share), comment counts
(oc_comments*), dead properties (oc_properties) and system-tag lookups (oc_systemtag*).

Plain functions over a Connection, so newstack/legacy/backend.py calls them inside its own
transactions; WebDAV locks are in locks.py. Sources: owncloud/core v10.16.4, named per function.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.schema import OC10Tables
from newstack.backend import BackendError, NodeExtras, NotFoundError

#: Tags::TAG_FAVORITE, a category of the user's 'files' tags (lib/private/Tags.php)
FAVORITE: Final = "_$!<Favorite>!$_"
#: the object type of files in oc_vcategory*, oc_systemtag_object_mapping and oc_comments*
FILES: Final = "files"
#: AbstractCustomPropertiesBackend::VT_STRING / VT_XML / VT_OBJECT (propertytype)
VT_STRING: Final = 1
VT_XML: Final = 2
VT_OBJECT: Final = 3
#: oc_properties.propertyname and .propertyvalue are VARCHAR(255)
PROPERTY_LIMIT: Final = 255
#: IGroupManager::isAdmin: membership of this group
ADMIN_GROUP: Final = "admin"
#: ids per IN list, as oC10's own batch queries (array_chunk 900): leaves room for the other
#: parameters under an old SQLite's limit of 999
CHUNK: Final = 900

# SharesPlugin asks for user, group, link, remote and remote-group shares; DefaultShareProvider
# answers 0, 1, 3 (item_type file/folder), then FederatedShareProvider answers 6 only
_INTERNAL_SHARES: Final = (0, 1, 3)
_FEDERATED_SHARES: Final = (6,)

_ENTITY: Final = re.compile(r"&(?:#([0-9]+)|#x([0-9a-fA-F]+)|(amp|lt|gt|quot|apos));")
_NAMED: Final = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# libxml's XMLWriter text escaping (xmlEncodeSpecialChars), as newstack/dav/xml.py's xml_text
_TEXT_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


class ValueTooLongError(BackendError):
    """A value does not fit its ownCloud 10 column. MySQL (strict mode) and PostgreSQL refuse it
    and oC10 answers 500; SQLite would keep it. We refuse it everywhere instead of cutting it."""


# ---------------------------------------------------------------------------------------------
# reading: one query per kind for a whole listing


def extras(
    conn: Connection,
    t: OC10Tables,
    uid: str,
    fileids: Sequence[int],
    *,
    today: dt.date | None = None,
) -> dict[int, NodeExtras]:
    """NodeExtras for every fileid, as `uid` sees them in a PROPFIND.

    `today` (UTC, default the current date) decides which shares have expired: oC10 leaves a
    share out once its expiration date is before today (Manager::shareHasExpired).
    """
    ids = sorted(set(fileids))
    if not ids:
        return {}
    tags = _tags(conn, t, uid, ids)
    shares = _share_types(conn, t, uid, ids, today or dt.datetime.now(dt.UTC).date())
    comments = _comment_counts(conn, t, uid, ids)
    dead = _dead_props(conn, t, ids)
    empty = NodeExtras()
    found: dict[int, NodeExtras] = {}
    for fileid in ids:
        names = tags.get(fileid)
        share_types = shares.get(fileid)
        counts = comments.get(fileid)
        props = dead.get(fileid)
        if names is None and share_types is None and counts is None and props is None:
            found[fileid] = empty
            continue
        favorite = False
        if names is not None and FAVORITE in names:
            # TagsPlugin::getTagsAndFav: array_search + unset takes out the first one only
            names.remove(FAVORITE)
            favorite = True
        found[fileid] = NodeExtras(
            favorite=favorite,
            tags=tuple(names or ()),
            share_types=share_types or (),
            comments_count=counts[0] if counts else 0,
            comments_unread=counts[1] if counts else 0,
            dead=props or {},
        )
    return found


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _tags(conn: Connection, t: OC10Tables, uid: str, ids: Sequence[int]) -> dict[int, list[str]]:
    """Tags::getTagsForObjects: the user's categories linked with type 'files' (the favorite
    among them). oC10's query has no ORDER BY; on MySQL the indexes give category-id order."""
    r, c = t.vcategory_to_object, t.vcategory
    found: dict[int, list[str]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            sa.select(r.c.objid, c.c.category)
            .select_from(r.join(c, r.c.categoryid == c.c.id))
            .where(c.c.uid == uid, r.c.type == FILES, r.c.objid.in_(chunk))
            .order_by(r.c.objid, r.c.categoryid)
        )
        for objid, category in rows:
            found.setdefault(int(objid), []).append(category)
    return found


def _share_types(
    conn: Connection, t: OC10Tables, uid: str, ids: Sequence[int], today: dt.date
) -> dict[int, tuple[int, ...]]:
    """SharesPlugin over Manager::getAllSharesBy(uid, [0, 1, 3, 6, 7], ids, reshares=true):
    shares the user owns or initiated on the node, expired ones left out, each type once in
    the order the providers return them (internal shares by id, then federated by id)."""
    s = t.share
    midnight = dt.datetime.combine(today, dt.time())
    rows: list[Any] = []
    for chunk in _chunks(ids):
        rows.extend(conn.execute(
            sa.select(s.c.id, s.c.file_source, s.c.share_type, s.c.expiration)
            .where(
                s.c.file_source.in_(chunk),
                sa.or_(s.c.uid_owner == uid, s.c.uid_initiator == uid),
                sa.or_(
                    sa.and_(s.c.share_type.in_(_INTERNAL_SHARES),
                            s.c.item_type.in_(("file", "folder"))),
                    s.c.share_type.in_(_FEDERATED_SHARES),
                ),
            )
        ))
    rows.sort(key=lambda row: (row.share_type not in _INTERNAL_SHARES, row.id))
    found: dict[int, list[int]] = {}
    for row in rows:
        if row.expiration is not None and row.expiration < midnight:
            continue
        types = found.setdefault(int(row.file_source), [])
        if row.share_type not in types:
            types.append(int(row.share_type))
    return {fileid: tuple(types) for fileid, types in found.items()}


def _comment_counts(
    conn: Connection, t: OC10Tables, uid: str, ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """fileid -> (comments, unread by uid) for nodes that have comments.

    Manager::getNumberOfCommentsForObject counts every comment (replies too) of type 'files';
    getNumberOfUnreadCommentsForNodes counts those for which no read marker of the user on
    that object id (of any object type) has marker_datetime >= creation_timestamp; a NULL on
    either side compares false, so such a comment is unread. Compared here in Python, because
    SQLite keeps DATETIME as text whose format depends on who wrote it.
    """
    c, m = t.comments, t.comments_read_markers
    count: dict[int, int] = defaultdict(int)
    unread: dict[int, int] = defaultdict(int)
    for chunk in _chunks(ids):
        keys = [str(fileid) for fileid in chunk]
        markers: dict[str, list[dt.datetime]] = defaultdict(list)
        for object_id, marked in conn.execute(
            sa.select(m.c.object_id, m.c.marker_datetime)
            .where(m.c.user_id == uid, m.c.object_id.in_(keys))
        ):
            if marked is not None:
                markers[object_id].append(marked)
        for object_id, created, n in conn.execute(
            sa.select(c.c.object_id, c.c.creation_timestamp, sa.func.count())
            .where(c.c.object_type == FILES, c.c.object_id.in_(keys))
            .group_by(c.c.object_id, c.c.creation_timestamp)
        ):
            fileid = int(object_id)
            count[fileid] += int(n)
            read = created is not None and any(mark >= created for mark in markers[object_id])
            if not read:
                unread[fileid] += int(n)
    return {fileid: (n, unread[fileid]) for fileid, n in count.items()}


def _dead_props(conn: Connection, t: OC10Tables, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Clark name -> XML text, as Sabre writes the decoded value (AbstractCustomPropertiesBackend
    ::decodeValue): a string escaped as text, XML (Complex) as it is. Serialised PHP objects
    (propertytype 3) are left out: only PHP could turn them back into XML."""
    p = t.properties
    found: dict[int, dict[str, str]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            sa.select(p.c.fileid, p.c.propertyname, p.c.propertyvalue, p.c.propertytype)
            .where(p.c.fileid.in_(chunk))
            .order_by(p.c.id)
        )
        for fileid, name, value, kind in rows:
            if kind == VT_STRING:
                xml = (value or "").translate(_TEXT_ESCAPES)
            elif kind == VT_XML:
                xml = value or ""
            else:
                continue
            found.setdefault(int(fileid), {})[name] = xml
    return found


# ---------------------------------------------------------------------------------------------
# favorites and system tags


def _favorite_category(conn: Connection, t: OC10Tables, uid: str) -> int | None:
    """Tags::getTagId(TAG_FAVORITE): the user's 'files' category of that name, compared
    ignoring case, first in category order (TagMapper::loadTags)."""
    c = t.vcategory
    return conn.scalar(
        sa.select(c.c.id)
        .where(c.c.uid == uid, c.c.type == FILES,
               sa.func.lower(c.c.category) == FAVORITE.lower())
        .order_by(c.c.category, c.c.id)
        .limit(1)
    )


def set_favorite(conn: Connection, t: OC10Tables, uid: str, fileid: int, favorite: bool) -> None:
    """TagsPlugin's PROPPATCH of oc:favorite: Tags::tagAs creates the user's favorite category
    when it is missing and links the file once (insertIfNotExist); unTag removes the link and
    does nothing when there is no such category."""
    category = _favorite_category(conn, t, uid)
    r = t.vcategory_to_object
    if not favorite:
        if category is not None:
            conn.execute(sa.delete(r).where(
                r.c.objid == fileid, r.c.categoryid == category, r.c.type == FILES))
        return
    if category is None:
        c = t.vcategory
        inserted = conn.execute(
            sa.insert(c).values(uid=uid, type=FILES, category=FAVORITE))
        key = inserted.inserted_primary_key
        assert key is not None
        category = int(key[0])
    exists = conn.scalar(sa.select(sa.literal(1)).where(
        r.c.objid == fileid, r.c.categoryid == category, r.c.type == FILES))
    if exists is None:
        conn.execute(sa.insert(r).values(objid=fileid, categoryid=category, type=FILES))


def favorite_fileids(conn: Connection, t: OC10Tables, uid: str) -> list[int]:
    """Tags::getFavorites (REPORT oc:filter-files with oc:favorite): every object linked with
    the user's favorite category, whatever its type, ascending; [] without that category.
    Objects outside the user's files are for the caller to drop (findNodesByFileIds)."""
    category = _favorite_category(conn, t, uid)
    if category is None:
        return []
    r = t.vcategory_to_object
    ids = conn.scalars(sa.select(r.c.objid).distinct().where(r.c.categoryid == category))
    return sorted(int(fileid) for fileid in ids)


def is_admin(conn: Connection, t: OC10Tables, uid: str) -> bool:
    """IGroupManager::isAdmin: a member of the group 'admin'."""
    g = t.group_user
    return conn.scalar(sa.select(sa.literal(1)).where(
        g.c.gid == ADMIN_GROUP, g.c.uid == uid)) is not None


def systemtag_fileids(conn: Connection, t: OC10Tables, uid: str, tag_id: int) -> list[int]:
    """FilesReportPlugin::getSystemTagFileIds for one tag: the files it is assigned to,
    ascending. NotFoundError (oC10: 412 "Cannot filter by nonexistent tag") when the tag does
    not exist, or when it is not user-visible and the user is not an admin; whether it is
    user-assignable or restricted to groups does not matter for finding."""
    st, m = t.systemtag, t.systemtag_object_mapping
    visibility = conn.scalar(sa.select(st.c.visibility).where(st.c.id == tag_id))
    if visibility is None:
        raise NotFoundError(f"no system tag {tag_id}")
    if not visibility and not is_admin(conn, t, uid):
        raise NotFoundError(f"system tag {tag_id} is not visible to {uid!r}")
    ids = conn.scalars(sa.select(m.c.objectid).distinct().where(
        m.c.systemtagid == tag_id, m.c.objecttype == FILES))
    return sorted(int(objectid) for objectid in ids if objectid.isdigit())


# ---------------------------------------------------------------------------------------------
# dead properties


def stored_property(xml: str) -> tuple[str, int]:
    """(propertyvalue, propertytype) for a dead property's XML text, as
    AbstractCustomPropertiesBackend::encodeValue stores what Sabre parsed: a value with child
    elements (Complex) as its XML, type 2; a text value unescaped, type 1."""
    if "<" in xml:
        return xml, VT_XML
    return _ENTITY.sub(_unescape, xml), VT_STRING


def _unescape(match: re.Match[str]) -> str:
    decimal, hexadecimal, name = match.groups()
    if name:
        return _NAMED[name]
    return chr(int(decimal) if decimal else int(hexadecimal, 16))


def set_dead_props(
    conn: Connection, t: OC10Tables, fileid: int, props: Mapping[str, str | None]
) -> None:
    """FileCustomPropertiesBackend::updateProperties: None deletes the property, a value
    (XML text, as NodeExtras.dead holds it) updates its row or inserts one. A name or stored
    value over 255 characters raises ValueTooLongError before anything is written."""
    if not props:
        return
    stored: dict[str, tuple[str, int] | None] = {}
    for name, xml in props.items():
        if len(name) > PROPERTY_LIMIT:
            raise ValueTooLongError(
                f"the property name {name[:60]!r}… has {len(name)} characters; ownCloud 10 "
                f"stores at most {PROPERTY_LIMIT} (oc_properties.propertyname)")
        value = None if xml is None else stored_property(xml)
        stored[name] = value
        if value is not None and len(value[0]) > PROPERTY_LIMIT:
            raise ValueTooLongError(
                f"the value of property {name!r} has {len(value[0])} characters; ownCloud 10 "
                f"stores at most {PROPERTY_LIMIT} (oc_properties.propertyvalue): shorten it")
    p = t.properties
    existing = set(conn.scalars(sa.select(p.c.propertyname).where(
        p.c.fileid == fileid, p.c.propertyname.in_(list(stored)))))
    for name, value in stored.items():
        if value is None:
            if name in existing:
                conn.execute(sa.delete(p).where(p.c.fileid == fileid, p.c.propertyname == name))
        elif name in existing:
            conn.execute(
                sa.update(p)
                .where(p.c.fileid == fileid, p.c.propertyname == name)
                .values(propertyvalue=value[0], propertytype=value[1]))
        else:
            conn.execute(sa.insert(p).values(
                fileid=fileid, propertyname=name, propertyvalue=value[0], propertytype=value[1]))


# ---------------------------------------------------------------------------------------------
# deleting for good


def delete_for_files(conn: Connection, t: OC10Tables, fileids: Sequence[int]) -> None:
    """Everything attached to files that are gone for good (purged from the trash, or deleted
    without a trash): dead properties, personal-tag and favorite links, system-tag links,
    comments and read markers, WebDAV locks.

    oC10 removes properties when a DAV DELETE does not end in the trash
    (FileCustomPropertiesBackend::delete), locks by the foreign key's ON DELETE CASCADE, and
    the rest an hour later at most (files' DeleteOrphanedItems job: every 'files' row whose
    object id has no oc_filecache row). Doing it at once leaves the same database behind."""
    ids = sorted(set(fileids))
    p, r, m = t.properties, t.vcategory_to_object, t.systemtag_object_mapping
    c, k, lk = t.comments, t.comments_read_markers, t.persistent_locks
    for chunk in _chunks(ids):
        keys = [str(fileid) for fileid in chunk]
        conn.execute(sa.delete(p).where(p.c.fileid.in_(chunk)))
        conn.execute(sa.delete(r).where(r.c.objid.in_(chunk), r.c.type == FILES))
        conn.execute(sa.delete(m).where(m.c.objectid.in_(keys), m.c.objecttype == FILES))
        conn.execute(sa.delete(c).where(c.c.object_id.in_(keys), c.c.object_type == FILES))
        conn.execute(sa.delete(k).where(k.c.object_id.in_(keys), k.c.object_type == FILES))
        conn.execute(sa.delete(lk).where(lk.c.file_id.in_(chunk)))
