"""newstack/ocs/shares.py and sharees.py, the pure parts: parameter parsing, oC10's permission,
expiry and password rules, target deduplication, and formatShare against the real captures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from newstack.backend import Node, User
from newstack.ocs import sharees
from newstack.ocs.capabilities import CapabilitySettings
from newstack.ocs.envelope import render_ocs
from newstack.ocs.shares import (
    REDACTED,
    ApiError,
    People,
    SeenNode,
    attributes_json,
    checked_expiration,
    checked_permissions,
    deduplicated_target,
    format_share,
    formatted_attributes,
    link_create_permissions,
    link_update_permissions,
    parse_expire_date,
    password_enforced,
    php_int,
    php_parse_str,
    requested_share_types,
    state_filter,
)
from newstack.sharing.model import Received, Share
from newstack.sharing.public import drop_name
from tests.newstack.ocs.golden import http_body, json_sample, sample, xml_to_php

SETTINGS = CapabilitySettings(hostname="testhost")
TODAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize(("query", "expected"), [
    ("path=%2FDocs%2Fa+b.txt&shareType=3", {"path": "/Docs/a b.txt", "shareType": "3"}),
    ("a=1&a=2", {"a": "2"}),
    ("a[]=1&a[]=2", {"a": ["1", "2"]}),
    ("attributes[0][scope]=permissions&attributes[0][key]=download&attributes[0][enabled]=false",
     {"attributes": {"0": {"scope": "permissions", "key": "download", "enabled": "false"}}}),
    ("x&=nothing&&y=", {"x": "", "y": ""}),
])
def test_php_parse_str(query: str, expected: dict[str, Any]) -> None:
    assert php_parse_str(query) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("12abc", 12), ("abc", 0), (" -3", -3), ("", 0), (True, 1), (7, 7), (None, 0)])
def test_php_int(value: object, expected: int) -> None:
    assert php_int(value) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-01", dt.date(2026, 12, 1)),
    ("2026-1-5", dt.date(2026, 1, 5)),
    ("2026-12-01 13:45:00", dt.date(2026, 12, 1)),
    ("2026-12-01T23:00:00+02:00", dt.date(2026, 12, 1)),
    ("2026-12-01T10:00:00Z", dt.date(2026, 12, 1)),
    ("2026-02-30", dt.date(2026, 3, 2)),    # PHP's DateTime rolls over
])
def test_parse_expire_date(text: str, expected: dt.date) -> None:
    assert parse_expire_date(text) == expected


@pytest.mark.parametrize("text", ["tomorrow-ish", "2026-13-01", "01.12.2026", "2026-02-32"])
def test_parse_expire_date_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_expire_date(text)


@pytest.mark.parametrize(("param", "outgoing", "expected"), [
    (None, True, [0, 1, 3, 6]),
    ("", False, [0, 1, 3]),
    ("3,0", True, [0, 3]),
    ("6,7,2", True, [6]),
    ("6", False, []),
    ("x,1", True, [1]),
])
def test_requested_share_types(param: str | None, outgoing: bool, expected: list[int]) -> None:
    assert requested_share_types(param, federation_outgoing=outgoing) == expected


@pytest.mark.parametrize(("param", "expected"), [
    (None, 0), ("", 0), ("all", None), ("1", 1), ("2", 2), ("x", 0)])
def test_state_filter(param: str | None, expected: int | None) -> None:
    assert state_filter(param) == expected


# createShare's link branch: (publicUpload, permissions, from request, file?, upload allowed)
@pytest.mark.parametrize(("upload", "perms", "asked", "is_file", "allowed", "expected"), [
    (None, 31, False, False, True, 1),      # no permissions: read-only link
    ("true", 31, False, False, True, 15),
    (None, 4, True, False, True, 4),        # file drop
    (None, 5, True, False, True, 5),
    (None, 3, True, True, True, 3),
    (None, 15, True, False, True, 15),
    (None, 7, True, False, True, 1),        # not a role: read-only
    (None, 17, True, False, True, 1),
    (None, 1, True, True, False, 1),
    ("true", 31, False, False, False, (403, "Public upload disabled by the administrator")),
    (None, 4, True, True, True,
     (404, "Public upload is only possible for publicly shared folders")),
    (None, 5, True, False, False, (403, "Public upload disabled by the administrator")),
])
def test_link_create_permissions(upload: str | None, perms: int, asked: bool, is_file: bool,
                                 allowed: bool, expected: int | tuple[int, str]) -> None:
    def run() -> int:
        return link_create_permissions(public_upload=upload, permissions=perms,
                                       from_request=asked, is_file=is_file,
                                       upload_allowed=allowed)
    if isinstance(expected, int):
        assert run() == expected
    else:
        with pytest.raises(ApiError) as caught:
            run()
        assert (caught.value.statuscode, caught.value.message) == expected


@pytest.mark.parametrize(("upload", "perms", "is_file", "expected"), [
    (None, None, False, None),
    ("true", None, False, 15),
    ("false", None, False, 1),
    ("true", 5, False, 5),                  # permissions win over publicUpload
    (None, 7, False, 7),                    # the legacy public-upload spelling
    (None, 3, True, 3),
    (None, 31, False, (400, "Can't change permissions for public share links")),
    (None, 2, False, (400, "Can't change permissions for public share links")),
    (None, 15, True, (400, "Public upload is only possible for publicly shared folders")),
])
def test_link_update_permissions(upload: str | None, perms: int | None, is_file: bool,
                                 expected: int | None | tuple[int, str]) -> None:
    def run() -> int | None:
        return link_update_permissions(public_upload=upload, permissions=perms,
                                       is_file=is_file, upload_allowed=True)
    if expected is None or isinstance(expected, int):
        assert run() == expected
    else:
        with pytest.raises(ApiError) as caught:
            run()
        assert (caught.value.statuscode, caught.value.message) == expected


def test_password_enforcement_follows_the_link_role() -> None:
    enforced = CapabilitySettings(hostname="h", password_enforced_upload_only=True,
                                  password_enforced_read_write_delete=True)
    assert [p for p in (1, 3, 4, 5, 15) if password_enforced(p, enforced)] == [3, 4, 15]
    assert not any(password_enforced(p, SETTINGS) for p in (1, 3, 4, 5, 15))


def test_checked_expiration() -> None:
    enforced = CapabilitySettings(hostname="h", public_expire_date_enabled=True,
                                  public_expire_date_enforced=True,
                                  public_expire_date_days="7")
    args = {"share_type": 3, "today": TODAY}
    assert checked_expiration(None, new=True, settings=SETTINGS, **args) is None
    assert checked_expiration(None, new=True, settings=enforced, **args) == dt.date(2026, 12, 2)
    with pytest.raises(ApiError, match="Expiration date is in the past"):
        checked_expiration(dt.date(2026, 11, 24), new=True, settings=SETTINGS, **args)
    with pytest.raises(ApiError, match="more than 7 days in the future"):
        checked_expiration(dt.date(2026, 12, 3), new=True, settings=enforced, **args)
    with pytest.raises(ApiError, match="Expiration date is enforced"):
        checked_expiration(None, new=False, settings=enforced, **args)
    # a user share is not under the link's policy
    assert checked_expiration(None, new=True, settings=enforced, share_type=0,
                              today=TODAY) is None


def _node(is_dir: bool, permissions: int, name: str = "x", share: int | None = None) -> Node:
    return Node(fileid=5, owner="alice", path=name, name=name, is_dir=is_dir, size=0, mtime=0,
                etag="e", permissions=permissions, mimetype="m", share_permissions=share)


@pytest.mark.parametrize(("received", "reshare", "allowed"), [
    # apiShareReshare*: a mount point shows D (and NV), yet only what the share gave passes on
    (17, 25, False), (19, 27, False), (23, 31, False), (17, 9, False), (19, 11, False),
    (17, 17, True), (19, 19, True), (31, 31, True), (31, 9, True),
])
def test_a_reshare_of_a_mount_point_passes_on_no_more_than_was_received(
        received: int, reshare: int, allowed: bool) -> None:
    mount_point = _node(True, 31 & (received | 8) | 8 | 2, share=received)
    if allowed:
        assert checked_permissions(reshare, mount_point, owner_view=False) == reshare
    else:
        with pytest.raises(ApiError, match="Cannot set the requested share permissions"):
            checked_permissions(reshare, mount_point, owner_view=False)


@pytest.mark.parametrize(("perms", "is_dir", "node_perms", "owner", "expected"), [
    (31, False, 27, True, 19),          # a file share never carries create or delete
    (31, True, 31, True, 31),
    (0, True, 31, True, (400, "Cannot remove all permissions")),
    (32, True, 31, True, (404, "Invalid permissions")),
    (-1, True, 31, True, (404, "Invalid permissions")),
    (17, True, 1 | 16, False, 17),       # a reshare within what was received
    (31, True, 1 | 16, False, (404, "Cannot set the requested share permissions for x")),
    (3, False, 1 | 16, False, (404, "Cannot set the requested share permissions for x")),
])
def test_checked_permissions(perms: int, is_dir: bool, node_perms: int, owner: bool,
                             expected: int | tuple[int, str]) -> None:
    node = _node(is_dir, node_perms)
    if isinstance(expected, int):
        assert checked_permissions(perms, node, owner_view=owner) == expected
    else:
        with pytest.raises(ApiError) as caught:
            checked_permissions(perms, node, owner_view=owner)
        assert (caught.value.statuscode, caught.value.message) == expected


@pytest.mark.parametrize(("target", "taken", "expected"), [
    ("/a.txt", set(), "/a.txt"),
    ("/a.txt", {"/a.txt"}, "/a (2).txt"),
    ("/a.txt", {"/a.txt", "/a (2).txt"}, "/a (3).txt"),
    ("/Shares/photos", {"/Shares/photos"}, "/Shares/photos (2)"),
    ("/x.tar.gz", {"/x.tar.gz"}, "/x.tar (2).gz"),
])
def test_deduplicated_target(target: str, taken: set[str], expected: str) -> None:
    assert deduplicated_target(target, taken.__contains__) == expected


def test_attributes_round_trip() -> None:
    stored = attributes_json([{"scope": "permissions", "key": "download", "enabled": "false"},
                              {"scope": "app", "key": "flag", "value": "x"}])
    assert stored == '[["permissions","download",false],["app","flag","x"]]'
    assert formatted_attributes(stored) == (
        '[{"scope":"permissions","key":"download","enabled":false},'
        '{"scope":"app","key":"flag","enabled":"x"}]')
    assert attributes_json([]) is None
    with pytest.raises(ApiError):
        attributes_json("nope")


# --- formatShare -------------------------------------------------------------------------------

ALICE = User("alice", "Alice Adams", "alice@example.org")
BOB = User("bob", "Bob", None)
PEOPLE = People({"alice": ALICE, "bob": BOB})
SEEN = SeenNode(path="/Docs/a.txt", mimetype="text/plain", storage_id="home::alice",
                storage=3, fileid=246, parent_fileid=12)


def _share(share_type: int, **kw: Any) -> Share:
    fields: dict[str, Any] = {
        "id": 27, "share_type": share_type, "share_with": "bob", "uid_owner": "alice",
        "uid_initiator": "alice", "item_type": "file", "file_source": 246,
        "file_target": "/a.txt", "permissions": 19, "stime": 1551430723}
    fields.update(kw)
    return Share(**fields)


COMMON = ["id", "share_type", "uid_owner", "displayname_owner", "permissions", "stime",
          "parent", "expiration", "token", "uid_file_owner", "displayname_file_owner",
          "additional_info_owner", "additional_info_file_owner"]
NODE_KEYS = ["path", "mimetype", "storage_id", "storage", "item_type", "item_source",
             "file_source", "file_parent", "file_target"]


def test_format_user_share_keys_and_values() -> None:
    data = format_share(_share(0), SEEN, PEOPLE, link_base="https://h")
    assert list(data) == [*COMMON, *NODE_KEYS, "share_with", "share_with_displayname",
                          "share_with_user_type", "share_with_additional_info", "mail_send",
                          "attributes"]
    assert data["id"] == "27" and data["stime"] == 1551430723 and data["file_parent"] == 12
    assert (data["displayname_owner"], data["share_with_displayname"]) == ("Alice Adams", "Bob")
    assert data["additional_info_owner"] is None


def test_format_received_share_adds_state_and_uses_the_target() -> None:
    share = _share(1, share_with="staff", file_target="/a.txt")
    pending = Received(share, "bob", "/Shares/a.txt", 1)
    data = format_share(share, SEEN, PEOPLE, link_base="https://h", received=pending)
    assert list(data) == [*COMMON, "state", *NODE_KEYS, "share_with",
                          "share_with_displayname", "mail_send", "attributes"]
    assert (data["state"], data["path"], data["file_target"]) == (1, "/Shares/a.txt",
                                                                 "/Shares/a.txt")


def test_format_link_share_redacts_the_password_hash() -> None:
    share = _share(3, share_with="1|$2y$10$abc", token="JSzGhtzHZZRG1Ns", share_name="Public link",
                   permissions=1, expiration=dt.date(2019, 3, 20))
    data = format_share(share, SEEN, PEOPLE, link_base="https://h/oc")
    assert data["share_with"] == data["share_with_displayname"] == REDACTED
    assert data["url"] == "https://h/oc/index.php/s/JSzGhtzHZZRG1Ns"
    assert data["expiration"] == "2019-03-20 00:00:00"
    assert list(data)[-6:] == ["share_with", "share_with_displayname", "name", "url",
                               "mail_send", "attributes"]
    open_link = format_share(_share(3, share_with=None, token="t"), SEEN, PEOPLE,
                             link_base="https://h", front_controller=True)
    assert "share_with" not in open_link and open_link["url"] == "https://h/s/t"


def _types(value: object) -> object:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def test_format_matches_the_json_capture_field_for_field() -> None:
    """B: a received user share as JSON (10.2): every key it has, in order, same JSON types."""
    captured = json_sample("ocs-shares-list-share-details-json-docs.json")
    (expected,) = captured["ocs"]["data"]
    share = _share(0, id=1, share_with="admin", uid_owner="testuser", uid_initiator="testuser",
                   file_target="/ownCloud Manual.pdf", file_source=97, stime=1564484858)
    people = People({"testuser": User("testuser", "test user", None),
                     "admin": User("admin", "admin", None)})
    seen = SeenNode("/ownCloud Manual.pdf", "application/pdf", "home::testuser", 3, 97, 57)
    ours = format_share(share, seen, people, link_base="h",
                        received=Received(share, "admin", "/ownCloud Manual.pdf", 1))
    # 10.4 added additional_info_owner/_file_owner, 10.5 share_with_user_type; after 10.2
    # item_type moved from after path to after storage (v10.8.0+ formatShare)
    newer = {"additional_info_owner", "additional_info_file_owner", "share_with_user_type"}
    older_order = [k for k in expected if k != "item_type"]
    older_order.insert(older_order.index("storage") + 1, "item_type")
    assert [k for k in ours if k not in newer] == older_order
    assert _types({k: v for k, v in ours.items() if k in expected}) == _types(expected)
    assert {k: v for k, v in ours.items() if k in expected} == expected
    status, _, body = render_ocs([ours], version=1, fmt="json", message=None)
    assert status == 200 and body.startswith(
        b'{"ocs":{"meta":{"status":"ok","statuscode":100,"message":null,"totalitems":"",'
        b'"itemsperpage":""},"data":[{"id":"1","share_type":0,')


@pytest.mark.parametrize("name", [
    "ocs-v1-shares-list-owner-user+link-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-shared-with-me-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-list-reshare-links-password-expiry-xml-ioslog-2019.http.txt",
])
def test_format_covers_every_field_of_the_xml_captures(name: str) -> None:
    """A: real 10.1 replies; ours has each of their fields (10.16 adds some) per share type."""
    captured = xml_to_php(http_body(name))["ocs"]["data"]
    for element in captured:
        share_type = int(element["share_type"])
        share = _share(share_type, token=element["token"] or None,
                       share_name=element.get("name"), share_with=element["share_with"])
        received = Received(share, "bob", share.file_target, 0) if "state" in element else None
        ours = format_share(share, SEEN, PEOPLE, link_base="h", received=received)
        missing = set(element) - set(ours) - {"share_with_additional_info"}
        if share_type == 3 and element["share_with"] is None:
            # 10.1 sent empty share_with fields for links; 10.16 only a redacted password
            missing -= {"share_with", "share_with_displayname"}
        assert not missing, missing


def test_empty_list_renders_like_the_capture() -> None:
    expected = xml_to_php(sample("ocs-v1-shares-list-empty-docs.xml"))
    _, _, body = render_ocs([], version=1, fmt="xml", message=None)
    assert xml_to_php(body)["ocs"]["data"] == expected["ocs"]["data"]


# --- sharees -----------------------------------------------------------------------------------

USERS = [User("admin", "admin", None), User("demo", "Demo User", "demo@x.org"),
         User("shaka", "Shakira", None), User("test", "test", None)]


def _search(query: dict[str, list[str]], **settings: Any) -> sharees.ShareeResult:
    def find_users(pattern: str, limit: int) -> list[User]:
        hits = [u for u in USERS if pattern.lower() in
                f"{u.uid}\n{u.display_name}\n{u.email or ''}".lower()]
        return hits[:limit]

    def find_groups(pattern: str, limit: int) -> list[str]:
        return [g for g in ("admin", "users") if pattern.lower() in g][:limit]

    return sharees.search(
        sharees.parse_query(query), me=User("demo", "Demo User", None, groups=("users",)),
        settings=sharees.ShareeSettings(**settings), find_users=find_users,
        find_groups=find_groups, get_user=lambda uid: next(
            (u for u in USERS if u.uid.lower() == uid.lower()), None),
        group_members=lambda gid: [], ocs_url="https://h/ocs/v1.php/apps/files_sharing/api/v1/"
                                              "sharees")


def test_sharees_shape_matches_the_captures() -> None:
    expected = json_sample("ocs-v1-sharees-json-iossdk.json")["ocs"]["data"]
    found = _search({"search": ["a"], "itemType": ["file"]})
    assert list(found.data) == list(expected) and list(found.data["exact"]) == list(
        expected["exact"])
    assert found.data["groups"] == [{"label": "admin",
                                     "value": {"shareType": 1, "shareWith": "admin"}}]
    shaka = next(e for e in found.data["users"] if e["value"]["shareWith"] == "shaka")
    assert shaka == {"label": "Shakira",
                     "value": {"shareType": 0, "shareWith": "shaka", "userType": 0}}
    assert found.next_link is None


def test_sharees_exact_matches_and_remote_ids() -> None:
    found = _search({"search": ["demo"], "itemType": ["folder"]})
    assert [e["value"]["shareWith"] for e in found.data["exact"]["users"]] == ["demo"]
    assert found.data["users"] == []
    remote = _search({"search": ["carol@other.example"], "itemType": ["file"]})
    assert remote.data["exact"]["remotes"] == [
        {"label": "carol@other.example",
         "value": {"shareType": 6, "shareWith": "carol@other.example"}}]


def test_sharees_paging_link_and_errors() -> None:
    found = _search({"search": ["e"], "itemType": ["file"], "perPage": ["1"]})
    assert found.next_link is not None and found.next_link.endswith('page=2>; rel="next"')
    assert "shareType%5B0%5D=0" in found.next_link
    with pytest.raises(sharees.ShareeError, match="Missing itemType"):
        _search({"search": ["a"]})
    with pytest.raises(sharees.ShareeError, match="Invalid perPage argument"):
        _search({"search": ["a"], "itemType": ["file"], "perPage": ["0"]})
    with pytest.raises(sharees.ShareeError, match="Invalid page"):
        _search({"search": ["a"], "itemType": ["file"], "page": ["0"]})
    only_groups = _search({"search": ["a"], "itemType": ["file"], "shareType": ["1"]})
    assert only_groups.data["users"] == [] and only_groups.data["groups"]
    assert _search({"search": [""], "itemType": ["file"]}).data == sharees.empty_result()


@pytest.mark.parametrize(("name", "taken", "expected"), [
    ("a.txt", set(), "a.txt"),
    ("a.txt", {"a.txt"}, "a (2).txt"),
    ("a.txt", {"a.txt", "a (2).txt"}, "a (3).txt"),
    ("notes", {"notes"}, "notes (2)."),     # pathinfo() has no extension: a trailing dot
])
def test_file_drop_names(name: str, taken: set[str], expected: str) -> None:
    assert drop_name(name, taken.__contains__) == expected
