"""newstack/legacy/annotations.py against real fixture instances on SQLite, MariaDB, PostgreSQL.

Expected values are computed here from the manifest and from raw rows read with plain SQL,
never with the module's own helpers. Each test works in a transaction that is rolled back, so
the instance (built once per database) stays as the builder left it.
"""

import datetime as dt
import html
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from newstack.backend import NodeExtras, NotFoundError
from newstack.legacy import annotations
from newstack.legacy.annotations import ValueTooLongError
from tests.newstack.legacy.instances import Instance

FAV = "_$!<Favorite>!$_"
TODAY = dt.date(2025, 6, 15)




# ---------------------------------------------------------------------------------------------
# independent expectations


def when(value: Any) -> dt.datetime | None:
    """A DATETIME as the driver returns it raw (SQLite: text) -> datetime."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def home_ids(inst: Instance, conn: sa.Connection, uid: str) -> dict[str, int]:
    """'files/…' path -> fileid in the user's home storage."""
    storage = next(m["storage_id"] for m in inst.rows(conn, "mounts")
                   if m["mount_point"] == f"/{uid}/")
    return {r["path"]: int(r["fileid"]) for r in inst.rows(conn, "filecache")
            if r["storage"] == storage}


def expected_extras(inst: Instance, conn: sa.Connection, uid: str, ids: list[int]
                    ) -> dict[int, NodeExtras]:
    ids_set = set(ids)
    home = home_ids(inst, conn, uid)
    favorites = {home["files/" + p] for p in inst.manifest.favorites.get(uid, [])}

    categories = {c["id"]: c for c in inst.rows(conn, "vcategory")}
    tags: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for link in inst.rows(conn, "vcategory_to_object"):
        category = categories[link["categoryid"]]
        if category["uid"] == uid and link["type"] == "files" and category["category"] != FAV:
            tags[int(link["objid"])].append((link["categoryid"], category["category"]))

    shares: dict[int, list[tuple[bool, int, int]]] = defaultdict(list)
    for share in inst.manifest.shares:
        expiry = share["expiration"]
        if uid not in (share["owner"], share["initiator"]) or share["share_type"] not in (
                0, 1, 3, 6):
            continue
        if expiry and dt.datetime.fromisoformat(expiry).date() < TODAY:
            continue
        shares[share["fileid"]].append(
            (share["share_type"] == 6, share["id"], share["share_type"]))

    markers: dict[str, list[dt.datetime | None]] = defaultdict(list)
    for marker in inst.rows(conn, "comments_read_markers"):
        if marker["user_id"] == uid:
            markers[marker["object_id"]].append(when(marker["marker_datetime"]))
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for comment in inst.rows(conn, "comments"):
        if comment["object_type"] != "files":
            continue
        created = when(comment["creation_timestamp"])
        entry = counts[int(comment["object_id"])]
        entry[0] += 1
        if not any(m is not None and created is not None and m >= created
                   for m in markers[comment["object_id"]]):
            entry[1] += 1

    dead: dict[int, dict[str, str]] = defaultdict(dict)
    for prop in sorted(inst.rows(conn, "properties"), key=lambda p: p["id"]):
        if prop["propertytype"] == 1:
            text = html.escape(prop["propertyvalue"], quote=False).replace('"', "&quot;")
            dead[int(prop["fileid"])][prop["propertyname"]] = text.replace("\r", "&#13;")
        elif prop["propertytype"] == 2:
            dead[int(prop["fileid"])][prop["propertyname"]] = prop["propertyvalue"]

    expected = {}
    for fileid in ids:
        types: list[int] = []
        for _, _, share_type in sorted(shares.get(fileid, [])):
            if share_type not in types:
                types.append(share_type)
        expected[fileid] = NodeExtras(
            favorite=fileid in favorites,
            tags=tuple(name for _, name in sorted(tags.get(fileid, []))),
            share_types=tuple(types),
            comments_count=counts[fileid][0] if fileid in counts else 0,
            comments_unread=counts[fileid][1] if fileid in counts else 0,
            dead=dict(dead.get(fileid, {})),
        )
    assert ids_set == set(expected)
    return expected


def all_fileids(inst: Instance, conn: sa.Connection) -> list[int]:
    return sorted(int(r["fileid"]) for r in inst.rows(conn, "filecache"))


# ---------------------------------------------------------------------------------------------
# extras


def test_extras_of_every_user_match_the_rows(instance: Instance, conn: sa.Connection) -> None:
    ids = all_fileids(instance, conn)
    for user in instance.manifest.users:
        uid = user["uid"]
        got = annotations.extras(conn, instance.t, uid, ids, today=TODAY)
        assert got == expected_extras(instance, conn, uid, ids), uid
    # the fixture has each kind somewhere, so the comparison above is not vacuous
    alice = annotations.extras(conn, instance.t, "alice", ids, today=TODAY)
    assert any(x.favorite for x in alice.values()) and any(x.tags for x in alice.values())
    assert any(x.share_types for x in alice.values())
    assert any(x.comments_count for x in alice.values())
    assert any(x.dead for x in alice.values())
    assert annotations.extras(conn, instance.t, "alice", [], today=TODAY) == {}


def test_reshare_shows_to_owner_and_initiator_only(instance: Instance,
                                                   conn: sa.Connection) -> None:
    reshare = next(s for s in instance.manifest.shares if s["owner"] != s["initiator"])
    fileid = reshare["fileid"]
    for uid in (reshare["owner"], reshare["initiator"]):
        got = annotations.extras(conn, instance.t, uid, [fileid], today=TODAY)[fileid]
        assert reshare["share_type"] in got.share_types, uid
    stranger = annotations.extras(conn, instance.t, reshare["share_with"], [fileid], today=TODAY)
    assert reshare["share_type"] not in stranger[fileid].share_types


def _fresh_file(inst: Instance, conn: sa.Connection, uid: str) -> int:
    """A file of `uid` that carries no annotation at all in the fixture."""
    busy = {s["fileid"] for s in inst.manifest.shares}
    busy |= {int(r["objid"]) for r in inst.rows(conn, "vcategory_to_object")}
    busy |= {int(r["object_id"]) for r in inst.rows(conn, "comments")}
    busy |= {int(r["fileid"]) for r in inst.rows(conn, "properties")}
    return next(fid for path, fid in sorted(home_ids(inst, conn, uid).items())
                if path.startswith("files/") and path.endswith(".txt") and fid not in busy)


def _insert(inst: Instance, conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    conn.execute(sa.insert(getattr(inst.t, table)), rows)


def test_share_types_order_expiry_and_excluded_kinds(instance: Instance,
                                                     conn: sa.Connection) -> None:
    fid = _fresh_file(instance, conn, "alice")
    base = {"uid_owner": "alice", "uid_initiator": "alice", "item_type": "file",
            "item_source": str(fid), "file_source": fid, "file_target": "/x", "permissions": 1,
            "stime": 1, "accepted": 0, "mail_send": 0, "share_with": None, "expiration": None,
            "token": None, "parent": None}
    midnight = dt.datetime.combine(TODAY, dt.time())
    _insert(instance, conn, "share", [
        {**base, "id": 900, "share_type": 6, "share_with": "u@https://r.invalid"},
        {**base, "id": 901, "share_type": 1, "share_with": "staff",
         "expiration": midnight - dt.timedelta(days=1)},                  # expired yesterday
        {**base, "id": 902, "share_type": 3, "token": "t" * 15,
         "expiration": midnight},                                         # expires today: kept
        {**base, "id": 903, "share_type": 0, "share_with": "bob"},
        {**base, "id": 904, "share_type": 3, "token": "u" * 15},
        {**base, "id": 905, "share_type": 2, "share_with": "carol", "parent": 901},
        {**base, "id": 906, "share_type": 7, "share_with": "g@https://r.invalid"},
        {**base, "id": 907, "share_type": 1, "share_with": "staff", "item_type": "calendar"},
        {**base, "id": 908, "share_type": 1, "share_with": "x", "uid_owner": "carol",
         "uid_initiator": "carol"},
    ])
    got = annotations.extras(conn, instance.t, "alice", [fid], today=TODAY)[fid]
    assert got.share_types == (3, 0, 6)
    later = annotations.extras(conn, instance.t, "alice", [fid],
                               today=TODAY + dt.timedelta(days=1))[fid]
    assert later.share_types == (0, 3, 6)  # 902 expired too: 903 is now the first internal one
    assert annotations.extras(conn, instance.t, "carol", [fid], today=TODAY)[fid].share_types \
        == (1,)


def test_tags_comments_and_dead_property_kinds(instance: Instance, conn: sa.Connection) -> None:
    fid = _fresh_file(instance, conn, "bob")
    t0 = dt.datetime(2024, 5, 1, 12, 0, 0)
    _insert(instance, conn, "vcategory", [
        {"id": 500, "uid": "bob", "type": "files", "category": "zeta"},
        {"id": 501, "uid": "bob", "type": "files", "category": "alpha"},
        {"id": 502, "uid": "carol", "type": "files", "category": "carols"},
    ])
    _insert(instance, conn, "vcategory_to_object", [
        {"objid": fid, "categoryid": 501, "type": "files"},
        {"objid": fid, "categoryid": 500, "type": "files"},
        {"objid": fid, "categoryid": 502, "type": "files"},
        {"objid": fid, "categoryid": 501, "type": "contacts"},
    ])
    comment = {"parent_id": 0, "topmost_parent_id": 0, "children_count": 0,
               "actor_type": "users", "actor_id": "carol", "message": "m", "verb": "comment",
               "object_type": "files", "object_id": str(fid)}
    _insert(instance, conn, "comments", [
        {**comment, "id": 900, "creation_timestamp": t0},
        {**comment, "id": 901, "creation_timestamp": t0 + dt.timedelta(hours=1)},
        {**comment, "id": 902, "creation_timestamp": t0 + dt.timedelta(hours=2)},
        {**comment, "id": 903, "creation_timestamp": None},
        {**comment, "id": 904, "creation_timestamp": t0, "object_type": "other"},
    ])
    _insert(instance, conn, "comments_read_markers", [
        # read up to and including the second comment (>=), under another object type: oC10's
        # subquery does not compare object types
        {"user_id": "bob", "object_type": "elsewhere", "object_id": str(fid),
         "marker_datetime": t0 + dt.timedelta(hours=1)},
        {"user_id": "carol", "object_type": "files", "object_id": str(fid),
         "marker_datetime": t0 + dt.timedelta(days=1)},
    ])
    _insert(instance, conn, "properties", [
        {"fileid": fid, "propertyname": "{urn:x}text", "propertyvalue": 'a & b <c> "d"',
         "propertytype": 1},
        {"fileid": fid, "propertyname": "{urn:x}xml",
         "propertyvalue": '<x:a xmlns:x="urn:x">1</x:a>', "propertytype": 2},
        {"fileid": fid, "propertyname": "{urn:x}object", "propertyvalue": 'O:8:"stdClass":0:{}',
         "propertytype": 3},
    ])
    bob = annotations.extras(conn, instance.t, "bob", [fid], today=TODAY)[fid]
    assert bob.tags == ("zeta", "alpha")  # category-id order, carol's and 'contacts' left out
    assert not bob.favorite
    assert (bob.comments_count, bob.comments_unread) == (4, 2)  # 902 and the undated 903
    assert bob.dead == {"{urn:x}text": "a &amp; b &lt;c&gt; &quot;d&quot;",
                        "{urn:x}xml": '<x:a xmlns:x="urn:x">1</x:a>'}
    carol = annotations.extras(conn, instance.t, "carol", [fid], today=TODAY)[fid]
    assert carol.tags == ("carols",)
    assert (carol.comments_count, carol.comments_unread) == (4, 1)
    dave = annotations.extras(conn, instance.t, "dave", [fid], today=TODAY)[fid]
    assert (dave.comments_count, dave.comments_unread) == (4, 4)


def test_batches_larger_than_one_in_list(instance: Instance, conn: sa.Connection,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ids = all_fileids(instance, conn)
    whole = annotations.extras(conn, instance.t, "alice", ids, today=TODAY)
    monkeypatch.setattr(annotations, "CHUNK", 7)
    assert annotations.extras(conn, instance.t, "alice", ids, today=TODAY) == whole


# ---------------------------------------------------------------------------------------------
# favorites and system tags


def test_favorite_fileids_match_the_manifest(instance: Instance, conn: sa.Connection) -> None:
    for uid, paths in instance.manifest.favorites.items():
        home = home_ids(instance, conn, uid)
        expected = sorted(home["files/" + p] for p in paths)
        assert annotations.favorite_fileids(conn, instance.t, uid) == expected


def test_set_favorite_round_trip(instance: Instance, conn: sa.Connection) -> None:
    fid = _fresh_file(instance, conn, "carol")
    t = instance.t
    annotations.set_favorite(conn, t, "carol", fid, True)
    annotations.set_favorite(conn, t, "carol", fid, True)  # insertIfNotExist: once
    category = next(c["id"] for c in instance.rows(conn, "vcategory")
                    if c["uid"] == "carol" and c["category"] == FAV)
    links = [r for r in instance.rows(conn, "vcategory_to_object") if int(r["objid"]) == fid]
    assert links == [{"objid": fid, "categoryid": category, "type": "files"}]
    assert annotations.extras(conn, t, "carol", [fid], today=TODAY)[fid].favorite
    assert not annotations.extras(conn, t, "bob", [fid], today=TODAY)[fid].favorite
    assert fid in annotations.favorite_fileids(conn, t, "carol")
    annotations.set_favorite(conn, t, "carol", fid, False)
    assert not [r for r in instance.rows(conn, "vcategory_to_object") if int(r["objid"]) == fid]
    assert fid not in annotations.favorite_fileids(conn, t, "carol")
    assert any(c["id"] == category for c in instance.rows(conn, "vcategory"))  # kept


def test_set_favorite_creates_the_category_once(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    fid = _fresh_file(instance, conn, "dave")
    prefix = instance.manifest.table_prefix
    # as Tags::delete does: the links first (SQLite would hand the ids out again)
    conn.execute(sa.text(f"DELETE FROM {prefix}vcategory_to_object WHERE categoryid IN "
                         f"(SELECT id FROM {prefix}vcategory WHERE uid = 'dave')"))
    conn.execute(sa.text(f"DELETE FROM {prefix}vcategory WHERE uid = 'dave'"))
    annotations.set_favorite(conn, t, "dave", fid, False)  # unTag without a category: no-op
    assert not [c for c in instance.rows(conn, "vcategory") if c["uid"] == "dave"]
    assert annotations.favorite_fileids(conn, t, "dave") == []
    annotations.set_favorite(conn, t, "dave", fid, True)
    created = [c for c in instance.rows(conn, "vcategory") if c["uid"] == "dave"]
    assert [(c["type"], c["category"]) for c in created] == [("files", FAV)]
    annotations.set_favorite(conn, t, "dave", fid + 1, True)
    assert len([c for c in instance.rows(conn, "vcategory") if c["uid"] == "dave"]) == 1
    assert annotations.favorite_fileids(conn, t, "dave") == [fid, fid + 1]


def test_favorite_category_name_ignores_case(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    prefix = instance.manifest.table_prefix
    conn.execute(sa.text(f"UPDATE {prefix}vcategory SET category = '_$!<FAVORITE>!$_' "
                         "WHERE uid = 'bob' AND category = :fav"), {"fav": FAV})
    before = len(instance.rows(conn, "vcategory"))
    fid = _fresh_file(instance, conn, "bob")
    annotations.set_favorite(conn, t, "bob", fid, True)
    assert len(instance.rows(conn, "vcategory")) == before
    assert fid in annotations.favorite_fileids(conn, t, "bob")
    # PROPFIND compares exactly (array_search): the link shows as a tag, not as the favorite
    got = annotations.extras(conn, t, "bob", [fid], today=TODAY)[fid]
    assert (got.favorite, got.tags) == (False, ("_$!<FAVORITE>!$_",))


def test_systemtag_fileids_follow_visibility(instance: Instance, conn: sa.Connection) -> None:
    tags = {int(r["id"]): r for r in instance.rows(conn, "systemtag")}
    admins = {r["uid"] for r in instance.rows(conn, "group_user") if r["gid"] == "admin"}
    mapped: dict[int, set[int]] = defaultdict(set)
    for row in instance.rows(conn, "systemtag_object_mapping"):
        if row["objecttype"] == "files":
            mapped[int(row["systemtagid"])].add(int(row["objectid"]))
    assert any(not tag["visibility"] for tag in tags.values()) and admins
    for user in instance.manifest.users:
        uid = user["uid"]
        for tag_id in [*tags, 999]:
            if tag_id not in tags or (not tags[tag_id]["visibility"] and uid not in admins):
                with pytest.raises(NotFoundError):
                    annotations.systemtag_fileids(conn, instance.t, uid, tag_id)
            else:
                got = annotations.systemtag_fileids(conn, instance.t, uid, tag_id)
                assert got == sorted(mapped[tag_id]), (uid, tag_id)


# ---------------------------------------------------------------------------------------------
# dead properties


def test_set_dead_props_round_trip(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    fid = _fresh_file(instance, conn, "alice")
    xml = '<x:c xmlns:x="urn:x">red</x:c>'
    annotations.set_dead_props(conn, t, fid, {
        "{urn:x}text": "a &amp; b &lt;c&gt; &#xE4;&#228;", "{urn:x}xml": xml, "{urn:x}e": ""})
    stored = {r["propertyname"]: (r["propertyvalue"], r["propertytype"])
              for r in instance.rows(conn, "properties") if int(r["fileid"]) == fid}
    assert stored == {"{urn:x}text": ("a & b <c> ää", 1), "{urn:x}xml": (xml, 2),
                      "{urn:x}e": ("", 1)}
    assert annotations.extras(conn, t, "alice", [fid], today=TODAY)[fid].dead == {
        "{urn:x}text": "a &amp; b &lt;c&gt; ää", "{urn:x}xml": xml, "{urn:x}e": ""}
    ids_before = {r["propertyname"]: r["id"] for r in instance.rows(conn, "properties")
                  if int(r["fileid"]) == fid}
    annotations.set_dead_props(conn, t, fid, {"{urn:x}text": "<y/>", "{urn:x}xml": None,
                                              "{urn:x}never": None})
    after = {r["propertyname"]: (r["id"], r["propertyvalue"], r["propertytype"])
             for r in instance.rows(conn, "properties") if int(r["fileid"]) == fid}
    # updated in place (same row id, new type), removed, untouched
    assert after == {"{urn:x}text": (ids_before["{urn:x}text"], "<y/>", 2),
                     "{urn:x}e": (ids_before["{urn:x}e"], "", 1)}


def test_set_dead_props_refuses_what_does_not_fit(instance: Instance,
                                                  conn: sa.Connection) -> None:
    t = instance.t
    fid = _fresh_file(instance, conn, "alice")
    annotations.set_dead_props(conn, t, fid, {"{urn:x}max": "é" * 255})  # characters count
    assert annotations.extras(conn, t, "alice", [fid], today=TODAY)[fid].dead == {
        "{urn:x}max": "é" * 255}
    # the stored (unescaped) length counts: 255 × '&amp;' is 255 characters
    annotations.set_dead_props(conn, t, fid, {"{urn:x}amp": "&amp;" * 255})
    before = instance.rows(conn, "properties")
    with pytest.raises(ValueTooLongError, match="at most 255"):
        annotations.set_dead_props(conn, t, fid, {"{urn:x}ok": "1", "{urn:x}long": "x" * 256})
    with pytest.raises(ValueTooLongError, match="property name"):
        annotations.set_dead_props(conn, t, fid, {"{urn:x}" + "n" * 250: "1"})
    assert instance.rows(conn, "properties") == before  # nothing written


# ---------------------------------------------------------------------------------------------
# deleting for good


def test_delete_for_files_removes_every_annotation(instance: Instance,
                                                   conn: sa.Connection) -> None:
    t = instance.t
    prefix = instance.manifest.table_prefix
    doomed = sorted({int(r["fileid"]) for r in instance.rows(conn, "properties")})[:2]
    keys = {str(f) for f in doomed}
    account = next(int(r["id"]) for r in instance.rows(conn, "accounts")
                   if r["user_id"] == "alice")
    conn.execute(sa.insert(t.persistent_locks).values(
        file_id=doomed[0], owner="o", timeout=60, created_at=1, token="tok",
        token_hash="0" * 32, scope=1, depth=0, owner_account_id=account))
    conn.execute(sa.insert(t.vcategory_to_object).values(objid=doomed[0], categoryid=1,
                                                         type="other"))
    columns = {"properties": "fileid", "vcategory_to_object": "objid",
               "systemtag_object_mapping": "objectid", "comments": "object_id",
               "comments_read_markers": "object_id", "persistent_locks": "file_id"}

    def split(table: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows = instance.rows(conn, table)
        hit = [r for r in rows if str(r[columns[table]]) in keys
               and r.get("type", r.get("objecttype", r.get("object_type", "files"))) == "files"]
        return hit, [r for r in rows if r not in hit]

    before = {table: split(table) for table in columns}
    assert all(before[table][0] for table in ("properties", "comments", "persistent_locks"))
    annotations.delete_for_files(conn, t, doomed)
    for table in columns:
        hit, kept = split(table)
        assert hit == [], table
        assert sorted(map(repr, kept)) == sorted(map(repr, before[table][1])), table
    assert conn.scalar(sa.text(f"SELECT count(*) FROM {prefix}vcategory_to_object "
                               "WHERE type = 'other'")) == 1
