"""The OCS share API over real HTTP on both backends: create, list, get, update, delete, accept
and decline, sharees; per share type and permission set; oC10's codes and messages on v1 and
v2, in XML and JSON. Expected values are written out here, never taken from the server's code."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.oc10.passwords import verify_password
from newstack.backend import NotFoundError
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.native import NativeBackend
from newstack.ocs.shares import SharesApi
from newstack.sharing.view import SharingBackend
from tests.newstack.backends import BACKENDS
from tests.newstack.ocs.golden import xml_to_php
from tests.newstack.sharing_stack import SharingServer, sharing_server

TOKEN = re.compile(r"[A-Za-z0-9]{15}")


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharingServer]:
    with sharing_server(request.param, tmp_path) as server:
        yield server


@pytest.fixture(params=BACKENDS, scope="module")
def unchanged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[SharingServer]:
    """One server per backend for the tests that create nothing (setup costs seconds)."""
    with sharing_server(request.param, tmp_path_factory.mktemp(request.param)) as server:
        yield server


def ok(response: Any, version: int = 1) -> Any:
    assert response.status_code == 200, response.text
    meta = response.json()["ocs"]["meta"]
    assert (meta["status"], meta["statuscode"]) == ("ok", 100 if version == 1 else 200), meta
    assert meta["message"] is None or meta["message"] == "OK"
    return response.json()["ocs"]["data"]


def create(stack: SharingServer, path: str, share_type: int, version: int = 1, **fields: Any
           ) -> dict[str, Any]:
    data = {"path": path, "shareType": str(share_type), **{k: str(v) for k, v in fields.items()}}
    return ok(stack.ocs("alice", "POST", "shares", data=data, version=version),  # type: ignore[no-any-return]
              version)


def test_create_user_share_of_a_file(stack: SharingServer) -> None:
    share = create(stack, "/Docs/a.txt", 0, shareWith="bob")
    assert share["share_type"] == 0 and isinstance(share["id"], str)
    # a file share never carries create or delete: 31 -> 19
    assert share["permissions"] == 19
    assert (share["uid_owner"], share["displayname_owner"]) == ("alice", "Alice Adams")
    assert (share["share_with"], share["share_with_displayname"]) == ("bob", "Bob")
    assert share["path"] == "/Docs/a.txt" and share["file_target"] == "/a.txt"
    assert share["item_type"] == "file" and share["mimetype"] == "text/plain"
    assert share["storage_id"] == "home::alice" and isinstance(share["storage"], int)
    node = stack.backend.stat("alice", "Docs/a.txt")
    assert share["item_source"] == share["file_source"] == node.fileid
    assert share["file_parent"] == stack.backend.stat("alice", "Docs").fileid
    assert share["token"] is None and share["expiration"] is None
    assert share["attributes"] is None and share["mail_send"] == 0


@pytest.mark.parametrize("permissions", [1, 3, 5, 17, 31])
def test_group_share_keeps_the_folder_permissions_asked(stack: SharingServer,
                                                        permissions: int) -> None:
    share = create(stack, "/Docs", 1, version=2, shareWith="staff", permissions=permissions)
    assert (share["share_with"], share["permissions"]) == ("staff", permissions)
    assert share["item_type"] == "folder" and share["mimetype"] == "httpd/unix-directory"
    listed = ok(stack.ocs("alice", "GET", "shares", params={"path": "/Docs"}))
    assert [s["id"] for s in listed] == [share["id"]]


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, 1),
    ({"publicUpload": "true"}, 15),
    ({"permissions": 4}, 4),
    ({"permissions": 5}, 5),
    ({"permissions": 15}, 15),
    ({"permissions": 3}, 3),
])
def test_link_share_permissions_on_a_folder(stack: SharingServer, fields: dict[str, Any],
                                            expected: int) -> None:
    share = create(stack, "/Docs", 3, name="for the team", **fields)
    assert share["permissions"] == expected
    assert TOKEN.fullmatch(share["token"])
    assert share["url"] == f"{stack.url}/index.php/s/{share['token']}"
    assert share["name"] == "for the team" and "share_with" not in share


def test_link_password_is_stored_as_an_oc10_hash_and_redacted(stack: SharingServer) -> None:
    share = create(stack, "/photo.jpg", 3, password="s3cret pass", expireDate="2099-01-31")
    assert share["share_with"] == share["share_with_displayname"] == "***redacted***"
    assert share["expiration"] == "2099-01-31 00:00:00"
    stored = stack.backend.shares.get(int(share["id"]))
    assert stored is not None and stored.password_hash is not None
    assert stored.password_hash.startswith("1|$2y$")
    assert verify_password("s3cret pass", stored.password_hash, "")
    assert not verify_password("wrong", stored.password_hash, "")


@pytest.mark.parametrize(("version", "data", "code", "message"), [
    (1, {"shareType": "0", "shareWith": "bob"}, 404, "Please specify a file or folder path"),
    (1, {"path": "/nope", "shareType": "0"}, 404, "Wrong path, file/folder doesn't exist"),
    (2, {"path": "/nope", "shareType": "0"}, 404, "Wrong path, file/folder doesn't exist"),
    (1, {"path": "/Docs", "shareType": "9"}, 400, "Unknown share type"),
    (2, {"path": "/Docs"}, 400, "Unknown share type"),
    (1, {"path": "/Docs", "shareType": "0", "shareWith": "nobody"}, 404,
     "Please specify a valid user"),
    (1, {"path": "/Docs", "shareType": "1", "shareWith": "nogroup"}, 404,
     "Please specify a valid group"),
    (1, {"path": "/Docs", "shareType": "0", "shareWith": "alice"}, 403,
     "Can't share with yourself"),
    (2, {"path": "/", "shareType": "0", "shareWith": "bob"}, 403,
     "You can't share your root folder"),
    (1, {"path": "/Docs", "shareType": "3", "expireDate": "someday"}, 404,
     "Invalid date, date format must be YYYY-MM-DD"),
    (1, {"path": "/Docs", "shareType": "3", "expireDate": "2000-01-01"}, 404,
     "Expiration date is in the past"),
    (1, {"path": "/photo.jpg", "shareType": "3", "publicUpload": "true"}, 404,
     "Public upload is only possible for publicly shared folders"),
    (2, {"path": "/Docs", "shareType": "0", "shareWith": "bob", "permissions": "0"}, 400,
     "Cannot remove all permissions"),
    (1, {"path": "/Docs", "shareType": "0", "shareWith": "bob", "permissions": "64"}, 404,
     "Invalid permissions"),
])
def test_create_refusals(unchanged: SharingServer, version: int, data: dict[str, str], code: int,
                         message: str) -> None:
    response = unchanged.ocs("alice", "POST", "shares", data=data, version=version)
    assert response.status_code == (200 if version == 1 else code)
    meta = response.json()["ocs"]["meta"]
    assert (meta["status"], meta["statuscode"], meta["message"]) == ("failure", code, message)
    assert response.json()["ocs"]["data"] == []


def test_same_user_twice_is_refused(stack: SharingServer) -> None:
    create(stack, "/Docs", 0, shareWith="bob")
    again = stack.ocs("alice", "POST", "shares",
                      data={"path": "/Docs", "shareType": "0", "shareWith": "bob"})
    assert again.json()["ocs"]["meta"]["statuscode"] == 403
    assert again.json()["ocs"]["meta"]["message"] == "Path already shared with this user"


def test_xml_v1_list_envelope(stack: SharingServer) -> None:
    create(stack, "/Docs/a.txt", 0, shareWith="bob")
    response = stack.ocs("alice", "GET", "shares", fmt="xml")
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    doc = xml_to_php(response.content)["ocs"]
    assert doc["meta"] == {"status": "ok", "statuscode": "100", "message": None,
                           "totalitems": "", "itemsperpage": ""}
    (element,) = doc["data"]
    assert element["share_type"] == "0" and element["parent"] is None
    assert element["additional_info_owner"] is None


def test_list_filters(stack: SharingServer) -> None:
    user = create(stack, "/Docs/a.txt", 0, shareWith="bob")
    group = create(stack, "/Docs/sub", 1, shareWith="staff")
    link = create(stack, "/Docs", 3)
    everything = ok(stack.ocs("alice", "GET", "shares"))
    assert [s["id"] for s in everything] == [user["id"], group["id"], link["id"]]
    links = ok(stack.ocs("alice", "GET", "shares", params={"share_types": "3"}))
    assert [s["id"] for s in links] == [link["id"]]
    inside = ok(stack.ocs("alice", "GET", "shares", params={"path": "/Docs", "subfiles": "true"}))
    # per child in name order (a.txt, sub), as oC10 walks the listing
    assert [s["id"] for s in inside] == [user["id"], group["id"]]
    not_dir = stack.ocs("alice", "GET", "shares", params={"path": "/photo.jpg",
                                                           "subfiles": "true"})
    assert not_dir.json()["ocs"]["meta"]["statuscode"] == 400
    assert not_dir.json()["ocs"]["meta"]["message"] == "Not a directory"
    assert ok(stack.ocs("bob", "GET", "shares")) == []


def test_get_update_delete(stack: SharingServer) -> None:
    link = create(stack, "/Docs", 3)
    route = f"shares/{link['id']}"
    (got,) = ok(stack.ocs("alice", "GET", route))
    assert got == link
    updated = ok(stack.ocs("alice", "PUT", route, data={"publicUpload": "true",
                                                         "expireDate": "2099-05-01",
                                                         "name": "renamed"}))
    assert (updated["permissions"], updated["expiration"], updated["name"]) == (
        15, "2099-05-01 00:00:00", "renamed")
    protected = ok(stack.ocs("alice", "PUT", route, data={"password": "pw one"}))
    assert protected["share_with"] == "***redacted***"
    cleared = ok(stack.ocs("alice", "PUT", route, data={"password": "", "expireDate": ""}))
    assert "share_with" not in cleared and cleared["expiration"] is None
    bad = stack.ocs("alice", "PUT", route, data={"permissions": "31"})
    assert bad.json()["ocs"]["meta"]["message"] == "Can't change permissions for public share links"
    nothing = stack.ocs("alice", "PUT", route, version=2)
    assert nothing.status_code == 400
    assert nothing.json()["ocs"]["meta"]["message"] == "Wrong or no update parameter given"
    # only the owner or the sharer may change or delete it
    assert stack.ocs("bob", "DELETE", route).json()["ocs"]["meta"]["message"] == (
        "Could not delete share")
    assert ok(stack.ocs("alice", "DELETE", route)) == []
    gone = stack.ocs("alice", "GET", route, version=2)
    assert gone.status_code == 404
    assert gone.json()["ocs"]["meta"]["message"] == "Wrong share ID, share doesn't exist"


def test_user_share_permissions_update(stack: SharingServer) -> None:
    share = create(stack, "/Docs", 0, shareWith="bob", permissions=1)
    for permissions in (3, 7, 15, 31, 1):
        updated = ok(stack.ocs("alice", "PUT", f"shares/{share['id']}",
                               data={"permissions": str(permissions)}))
        assert updated["permissions"] == permissions
    file_share = create(stack, "/photo.jpg", 0, shareWith="carol")
    updated = ok(stack.ocs("alice", "PUT", f"shares/{file_share['id']}",
                           data={"permissions": "31"}))
    assert updated["permissions"] == 19


def test_expired_share_is_gone(stack: SharingServer) -> None:
    link = create(stack, "/Docs", 3, expireDate="2099-01-01")
    stack.backend.shares.update(int(link["id"]), expiration=dt.date(2001, 1, 1))
    assert ok(stack.ocs("alice", "GET", "shares")) == []
    assert stack.backend.shares.get(int(link["id"])) is None


def test_pending_share_accept_and_decline(stack: SharingServer) -> None:
    stack.app.shares_api.settings = dataclasses.replace(stack.app.shares_api.settings,
                                                        auto_accept_share=False)
    share = create(stack, "/Docs/a.txt", 0, shareWith="bob")
    assert ok(stack.ocs("bob", "GET", "shares", params={"shared_with_me": "true"})) == []
    (pending,) = ok(stack.ocs("bob", "GET", "shares", params={"shared_with_me": "true",
                                                               "state": "1"}))
    assert (pending["state"], pending["path"], pending["id"]) == (1, "/a.txt", share["id"])
    assert pending["storage_id"] == "home::alice"
    owner_try = stack.ocs("alice", "POST", f"shares/pending/{share['id']}")
    assert owner_try.json()["ocs"]["meta"] == {
        "status": "failure", "statuscode": 403,
        "message": "Only recipient can change accepted state", "totalitems": "",
        "itemsperpage": ""}
    (accepted,) = ok(stack.ocs("bob", "POST", f"shares/pending/{share['id']}"))
    assert (accepted["state"], accepted["file_target"]) == (0, "/a.txt")
    (declined,) = ok(stack.ocs("bob", "DELETE", f"shares/pending/{share['id']}", version=2),
                     version=2)
    assert declined["state"] == 2
    rejected = ok(stack.ocs("bob", "GET", "shares", params={"shared_with_me": "true",
                                                             "state": "2"}))
    assert [s["id"] for s in rejected] == [share["id"]]
    missing = stack.ocs("bob", "POST", "shares/pending/999999")
    assert missing.json()["ocs"]["meta"]["message"] == "Wrong share ID, share doesn't exist"


def test_accept_renames_a_clashing_target(stack: SharingServer) -> None:
    stack.app.shares_api.settings = dataclasses.replace(stack.app.shares_api.settings,
                                                        auto_accept_share=False)
    stack.backend.mkdir("bob", "Docs")
    share = create(stack, "/Docs", 1, shareWith="staff")
    (accepted,) = ok(stack.ocs("bob", "POST", f"shares/pending/{share['id']}"))
    assert accepted["file_target"] == "/Docs (2)"
    (carol,) = ok(stack.ocs("carol", "POST", f"shares/pending/{share['id']}"))
    assert carol["file_target"] == "/Docs"


def test_shared_with_me_after_auto_accept(stack: SharingServer) -> None:
    share = create(stack, "/Docs", 1, shareWith="staff", permissions=5)
    (received,) = ok(stack.ocs("carol", "GET", "shares", params={"shared_with_me": "true"}))
    assert (received["id"], received["state"], received["path"]) == (share["id"], 0, "/Docs")
    assert received["storage_id"] == "shared::/Docs"
    assert received["file_parent"] == stack.backend.stat("carol", "").fileid
    (mine,) = ok(stack.ocs("carol", "GET", f"shares/{share['id']}"))
    assert mine["id"] == share["id"]
    assert stack.ocs("alice", "GET", "shares", params={"shared_with_me": "true"}).json()[
        "ocs"]["data"] == []


def test_sharees_over_http(unchanged: SharingServer) -> None:
    stack = unchanged
    response = stack.ocs("alice", "GET", "sharees", version=2,
                         params={"search": "bo", "itemType": "file"})
    data = ok(response, version=2)
    assert data["users"] == [{"label": "Bob", "value": {"shareType": 0, "shareWith": "bob",
                                                        "userType": 0}}]
    assert response.json()["ocs"]["meta"]["message"] == "OK"
    exact = ok(stack.ocs("alice", "GET", "sharees", params={"search": "staff",
                                                             "itemType": "folder"}))
    assert exact["exact"]["groups"] == [{"label": "staff",
                                         "value": {"shareType": 1, "shareWith": "staff"}}]
    missing = stack.ocs("alice", "GET", "sharees", version=2, params={"search": "x"})
    assert missing.status_code == 400
    assert missing.json()["ocs"]["meta"]["message"] == "Missing itemType"


def test_unauthenticated_and_unknown_routes(unchanged: SharingServer) -> None:
    stack = unchanged
    anonymous = httpx.get(f"{stack.url}/ocs/v2.php/apps/files_sharing/api/v1/shares",
                          params={"format": "json"})
    assert anonymous.status_code == 401
    assert anonymous.json()["ocs"]["meta"]["statuscode"] == 997
    unknown = stack.ocs("alice", "GET", "nothing-here", version=2)
    assert unknown.status_code == 404


def test_reshare_by_a_recipient(stack: SharingServer) -> None:
    create(stack, "/Docs", 0, shareWith="bob", permissions=31)
    create(stack, "/photo.jpg", 0, shareWith="bob", permissions=1)
    reshare = ok(stack.ocs("bob", "POST", "shares", data={
        "path": "/Docs/sub", "shareType": "0", "shareWith": "carol", "permissions": "1"}))
    assert (reshare["uid_owner"], reshare["uid_file_owner"]) == ("bob", "alice")
    assert reshare["path"] == "/Docs/sub" and reshare["storage_id"] == "shared::/Docs"
    # no more than bob has; nothing from a share without the share permission
    wider = stack.ocs("bob", "POST", "shares", data={
        "path": "/photo.jpg", "shareType": "3"})
    assert wider.json()["ocs"]["meta"]["statuscode"] == 404
    assert wider.json()["ocs"]["meta"]["message"] == (
        "You are not allowed to share /bob/files/photo.jpg")
    # the owner sees it with reshares=true, not without
    mine = [s["id"] for s in ok(stack.ocs("alice", "GET", "shares"))]
    assert reshare["id"] not in mine
    every = [s["id"] for s in ok(stack.ocs("alice", "GET", "shares",
                                            params={"reshares": "true"}))]
    assert reshare["id"] in every
    (for_carol,) = ok(stack.ocs("carol", "GET", "shares", params={"shared_with_me": "true"}))
    assert (for_carol["id"], for_carol["path"]) == (reshare["id"], "/sub")


def test_share_folder_holds_new_shares_and_is_made_on_accept(stack: SharingServer) -> None:
    stack.app.shares_api.settings = dataclasses.replace(stack.app.shares_api.settings,
                                                        auto_accept_share=False)
    stack.app.shares_api.share_folder = "/Shares/From others"
    share = create(stack, "/Docs", 0, shareWith="bob")
    assert share["file_target"] == "/Shares/From others/Docs"
    with pytest.raises(NotFoundError):  # pending: nothing mounted, no folder made yet
        stack.backend.stat("bob", "Shares")
    (accepted,) = ok(stack.ocs("bob", "POST", f"shares/pending/{share['id']}"))
    assert (accepted["path"], accepted["storage_id"]) == (
        "/Shares/From others/Docs", "shared::/Shares/From others/Docs")
    folder = stack.backend.stat("bob", "Shares/From others")
    assert folder.is_dir and folder.owner == "bob"
    assert stack.backend.stat("bob", "Shares/From others/Docs/a.txt").owner == "alice"
    # a group share auto-accepted: each member's folder appears when the mounts are set up
    stack.app.shares_api.settings = dataclasses.replace(stack.app.shares_api.settings,
                                                        auto_accept_share=True)
    create(stack, "/photo.jpg", 1, shareWith="staff")
    assert stack.backend.stat("carol", "Shares/From others/photo.jpg").owner == "alice"
    # the recipient may delete the folder; it comes back with the mounts, as in oC10
    stack.backend.delete("carol", "Shares")
    assert stack.backend.stat("carol", "Shares/From others/photo.jpg").owner == "alice"


def test_share_folder_is_read_from_the_instance(stack: SharingServer) -> None:
    inner = stack.backend.inner  # type: ignore[attr-defined]
    assert stack.app.shares_api.share_folder == "/"
    if isinstance(inner, NativeBackend):
        inner.share_folder = "/Shares"  # the metadata store's setting, via set_identity
        assert stack.app.shares_api.share_folder == "/Shares"
        assert create(stack, "/Docs", 0, shareWith="bob")["file_target"] == "/Shares/Docs"
        assert create(stack, "/Docs", 3)["file_target"] == "/Docs"  # links have no mount
        return
    config_php = Path(inner.instance.config.path)
    config_php.write_text(config_php.read_text() + "\n$CONFIG['share_folder'] = '/Shares';\n")
    with contextlib.closing(Oc10Backend(open_instance(config_php))) as reopened:
        assert reopened.share_folder == "/Shares"
        api = SharesApi(SharingBackend(reopened), stack.app.shares_api.settings)
        assert api.share_folder == "/Shares"


def test_accepting_a_share_of_a_trashed_node_is_not_found(stack: SharingServer) -> None:
    stack.app.shares_api.settings = dataclasses.replace(stack.app.shares_api.settings,
                                                        auto_accept_share=False)
    old = create(stack, "/Docs", 0, shareWith="bob")
    ok(stack.ocs("bob", "POST", f"shares/pending/{old['id']}"))
    stack.backend.delete("alice", "Docs")
    stack.backend.mkdir("alice", "Docs")
    new = create(stack, "/Docs", 0, shareWith="bob")
    refused = stack.ocs("bob", "DELETE", f"shares/pending/{old['id']}")
    assert refused.json()["ocs"]["meta"]["statuscode"] == 404
    assert refused.json()["ocs"]["meta"]["message"] == "Wrong share ID, share doesn't exist"
    # the old share (accepted, its node in the trash) gives its target to the new one
    (accepted,) = ok(stack.ocs("bob", "POST", f"shares/pending/{new['id']}"))
    assert accepted["path"] == "/Docs"
    assert stack.backend.stat("bob", "Docs").fileid == stack.backend.stat("alice", "Docs").fileid
