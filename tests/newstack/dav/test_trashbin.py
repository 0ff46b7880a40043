"""remote.php/dav/trash-bin over real HTTP: listing, restore, purge, empty, and the answers
ownCloud 10 gives to other users (apiTrashbin acceptance features, REFERENCE §6.8)."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterator
from email.utils import parsedate
from pathlib import Path

import httpx
import pytest

from tests.newstack.backends import BACKENDS
from tests.newstack.dav.livestack import (
    BOB_PASSWORD,
    OC,
    D,
    Stack,
    error_parts,
    found_props,
    propfind,
    propfind_body,
    running_stack,
    sample,
    shape,
)

TRASH_PROPS = [f"{OC}trashbin-original-filename", f"{OC}trashbin-original-location",
               f"{OC}trashbin-delete-timestamp", f"{OC}trashbin-delete-datetime",
               f"{D}resourcetype", f"{D}getlastmodified", f"{D}getcontentlength",
               f"{D}getetag", f"{D}getcontenttype"]


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, request.param) as running:
        yield running


def trash_listing(stack: Stack, path: str = "") -> dict[str, dict[str, str]]:
    """href -> {prop local name: text} of a Depth 1 listing, the collection itself left out."""
    listing = propfind(stack.client, stack.trash(path), TRASH_PROPS)
    own = f"/remote.php/dav/trash-bin/alice/{path}"
    return {href: {name.split("}")[1]: (element.text or "") for name, element in found.items()}
            for href, found in listing.items() if href != own}


def by_location(listing: dict[str, dict[str, str]]) -> dict[str, tuple[str, dict[str, str]]]:
    return {props["trashbin-original-location"]: (href, props) for href, props in listing.items()}


def move(stack: Stack, url: str, destination: str, **headers: str) -> httpx.Response:
    return stack.client.request("MOVE", url, headers={"Destination": destination, **headers})


# ---------------------------------------------------------------------------------------------
# listing


def test_a_deleted_file_is_listed_by_fileid_with_where_it_came_from(stack: Stack) -> None:
    stack.mkcol("Documents")
    stack.mkcol("Documents/Sub")
    stack.put("Documents/Sub/report.txt", b"quarterly numbers", mtime=1_500_000_000)
    fileid = stack.fileid("Documents/Sub/report.txt")
    before = int(time.time())
    stack.delete("Documents/Sub/report.txt")
    after = int(time.time())

    listing = trash_listing(stack)
    assert list(listing) == [f"/remote.php/dav/trash-bin/alice/{fileid}"]
    props = listing[f"/remote.php/dav/trash-bin/alice/{fileid}"]
    assert props["trashbin-original-filename"] == "report.txt"
    assert props["trashbin-original-location"] == "Documents/Sub/report.txt"
    deleted = int(props["trashbin-delete-timestamp"])
    assert before <= deleted <= after + 1
    parsed = parsedate(props["trashbin-delete-datetime"])
    assert parsed is not None and calendar.timegm(parsed) == deleted
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT",
                        props["trashbin-delete-datetime"])
    assert props["getlastmodified"] == "Fri, 14 Jul 2017 02:40:00 GMT"
    assert props["getcontentlength"] == "17"
    assert props["getcontenttype"] == "text/plain"
    assert re.fullmatch(r'"[0-9a-f]{32}"', props["getetag"])
    assert props["resourcetype"] == ""


def test_the_trash_home_answers_only_resourcetype(stack: Stack) -> None:
    response = stack.client.request("PROPFIND", stack.trash(), headers={"Depth": "0"},
                                    content=propfind_body(TRASH_PROPS))
    assert response.status_code == 207
    assert response.headers["vary"] == "Brief,Prefer"
    assert shape(response.content) == [("/remote.php/dav/trash-bin/alice/", [
        ("HTTP/1.1 200 OK", [(f"{D}resourcetype", (f"{D}collection",))]),
        ("HTTP/1.1 404 Not Found", [(name, False) for name in TRASH_PROPS
                                    if name != f"{D}resourcetype"]),
    ])]


def test_a_trashed_folder_is_browsable_below_its_fileid(stack: Stack) -> None:
    stack.mkcol("PARENT")
    stack.mkcol("PARENT/CHILD")
    stack.put("PARENT/parent.txt", b"p")
    stack.put("PARENT/CHILD/child.txt", b"child")
    ids = {path: stack.fileid(path) for path in
           ("PARENT", "PARENT/CHILD", "PARENT/parent.txt", "PARENT/CHILD/child.txt")}
    stack.delete("PARENT")

    top = trash_listing(stack)
    assert list(top) == [f"/remote.php/dav/trash-bin/alice/{ids['PARENT']}/"]
    assert top[f"/remote.php/dav/trash-bin/alice/{ids['PARENT']}/"][
        "trashbin-original-location"] == "PARENT"

    inside = trash_listing(stack, f"{ids['PARENT']}/")
    base = f"/remote.php/dav/trash-bin/alice/{ids['PARENT']}/"
    assert sorted(inside) == sorted([f"{base}{ids['PARENT/CHILD']}/",
                                     f"{base}{ids['PARENT/parent.txt']}"])
    child = inside[f"{base}{ids['PARENT/CHILD']}/"]
    assert child["trashbin-original-filename"] == "CHILD"
    assert child["trashbin-original-location"] == "PARENT/CHILD"

    deeper = trash_listing(stack, f"{ids['PARENT']}/{ids['PARENT/CHILD']}/")
    (href,) = deeper
    assert href == f"{base}{ids['PARENT/CHILD']}/{ids['PARENT/CHILD/child.txt']}"
    assert deeper[href]["trashbin-original-location"] == "PARENT/CHILD/child.txt"
    assert deeper[href]["getcontentlength"] == "5"


def test_items_are_ordered_by_their_trash_name(stack: Stack) -> None:
    for name in ("b.txt", "a.txt", "C.txt"):
        stack.put(name, b"x")
        stack.delete(name)
    names = [props["trashbin-original-filename"] for props in trash_listing(stack).values()]
    assert names == ["C.txt", "a.txt", "b.txt"]  # byte order of `<name>.d<ts>`


def test_depth_infinity_is_refused(stack: Stack) -> None:
    response = stack.client.request("PROPFIND", stack.trash(), headers={"Depth": "infinity"})
    assert response.status_code == 412
    assert error_parts(response.content) == ("Sabre\\DAV\\Exception\\PreconditionFailed",
                                             "Depth infinity not supported")


def test_unknown_ids_and_live_files_are_not_found(stack: Stack) -> None:
    stack.put("alive.txt", b"x")
    alive = stack.fileid("alive.txt")
    for path in (f"{alive}", "999999999", "not-a-number"):
        response = stack.client.request("PROPFIND", stack.trash(path), headers={"Depth": "0"})
        assert response.status_code == 404, path
        assert response.content == sample("error-404-meta-notfound-empty-message-docs.xml")


def test_below_a_trashed_file_there_is_nothing(stack: Stack) -> None:
    stack.put("a.txt", b"x")
    stack.put("b.txt", b"y")
    a, b = stack.fileid("a.txt"), stack.fileid("b.txt")
    stack.delete("a.txt")
    stack.delete("b.txt")
    response = stack.client.request("PROPFIND", stack.trash(f"{a}/{b}"), headers={"Depth": "0"})
    assert response.status_code == 404
    assert error_parts(response.content) == (
        "Sabre\\DAV\\Exception\\NotFound",
        f"Could not find node at path: trash-bin/alice/{a}/{b}")


def test_golden_shape_of_the_docs_listing(stack: Stack) -> None:
    """trashbin-propfind-docs.xml (grade B) walks Level 1/Level 2/Level 3/test.txt and two
    deletions of git-image-one.png; its server answered Depth infinity, ours is walked with
    Depth 1 per folder, as ownCloud's own acceptance tests do."""
    stack.mkcol("Level 1")
    stack.mkcol("Level 1/Level 2")
    stack.mkcol("Level 1/Level 2/Level 3")
    stack.put("Level 1/Level 2/Level 3/test.txt", b"x" * 34)
    stack.put("git-image-one.png", b"i" * 10)
    stack.delete("git-image-one.png")
    stack.put("git-image-one.png", b"j" * 12)
    stack.delete("git-image-one.png")
    stack.delete("Level 1")
    wanted = [f"{OC}trashbin-original-filename", f"{OC}trashbin-original-location",
              f"{OC}trashbin-delete-datetime", f"{D}getcontentlength", f"{D}resourcetype"]

    def responses(path: str) -> list[bytes]:
        r = stack.client.request("PROPFIND", stack.trash(path), headers={"Depth": "1"},
                                 content=propfind_body(wanted))
        assert r.status_code == 207
        return re.findall(rb"<d:response>.*?</d:response>", r.content)

    wrap = (b'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" '
            b'xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns">')
    root = responses("")
    level1 = re.search(rb"trash-bin/alice/(\d+)/<", root[1]).group(1).decode()  # type: ignore
    level2_listing = responses(f"{level1}/")
    level2 = re.search(rb"/(\d+)/</d:href>", level2_listing[1]).group(1).decode()  # type: ignore
    level3_listing = responses(f"{level1}/{level2}/")
    level3 = re.search(rb"/(\d+)/</d:href>", level3_listing[1]).group(1).decode()  # type: ignore
    level3_inside = responses(f"{level1}/{level2}/{level3}/")
    ours = wrap + b"".join([root[0], root[1], level2_listing[1], level3_listing[1],
                            level3_inside[1], root[2], root[3]]) + b"</d:multistatus>"

    ids = {r"/trash-bin/\w+/": "/trash-bin/USER/", r"/\d+": "/ID"}
    assert shape(ours, ids) == shape(sample("trashbin-propfind-docs.xml"), ids)
    values = found_props(ours)
    assert [props[f"{OC}trashbin-original-location"].text for props in values.values()
            if props.get(f"{OC}trashbin-original-location") is not None] == [
        "Level 1", "Level 1/Level 2", "Level 1/Level 2/Level 3",
        "Level 1/Level 2/Level 3/test.txt", "git-image-one.png", "git-image-one.png"]
    sizes = [props[f"{D}getcontentlength"].text for props in values.values()
             if f"{D}getcontentlength" in props]
    assert sizes == ["34", "10", "12"]


# ---------------------------------------------------------------------------------------------
# restore


def test_restore_keeps_the_fileid_and_the_content(stack: Stack) -> None:
    stack.mkcol("Documents")
    stack.put("Documents/notes.txt", b"remember the milk")
    fileid = stack.fileid("Documents/notes.txt")
    stack.delete("Documents/notes.txt")

    response = move(stack, stack.trash(str(fileid)), stack.files("Documents/notes.txt"))
    assert response.status_code == 201, response.text
    assert response.headers["content-length"] == "0"
    assert re.fullmatch(r'"[a-f0-9:.]{1,32}"', response.headers["etag"])
    assert response.headers["oc-etag"] == response.headers["etag"]
    assert response.headers["oc-fileid"] == f"{fileid:08d}{stack.backend.instance_id}"
    assert stack.fileid("Documents/notes.txt") == fileid
    assert stack.client.get(stack.files("Documents/notes.txt")).content == b"remember the milk"
    assert trash_listing(stack) == {}


def test_restore_to_another_place_and_name(stack: Stack) -> None:
    stack.mkcol("elsewhere")
    stack.put("a.txt", b"content")
    fileid = stack.fileid("a.txt")
    stack.delete("a.txt")
    response = move(stack, stack.trash(str(fileid)),
                    f"{stack.url}/remote.php/dav/files/alice/elsewhere/b%20c.txt")
    assert response.status_code == 201
    assert stack.fileid("elsewhere/b c.txt") == fileid


def test_restore_over_an_existing_file_trashes_that_one(stack: Stack) -> None:
    stack.put("a.txt", b"old")
    old = stack.fileid("a.txt")
    stack.delete("a.txt")
    stack.put("a.txt", b"new")
    new = stack.fileid("a.txt")

    refused = move(stack, stack.trash(str(old)), stack.files("a.txt"), Overwrite="F")
    assert refused.status_code == 412
    assert error_parts(refused.content)[0] == "Sabre\\DAV\\Exception\\PreconditionFailed"

    response = move(stack, stack.trash(str(old)), stack.files("a.txt"))
    assert response.status_code == 204
    assert stack.fileid("a.txt") == old
    assert stack.client.get(stack.files("a.txt")).content == b"old"
    assert [href.rsplit("/", 1)[1] for href in trash_listing(stack)] == [str(new)]


def test_restore_a_file_out_of_a_trashed_folder(stack: Stack) -> None:
    stack.mkcol("PARENT")
    stack.put("PARENT/inner.txt", b"inner")
    folder, inner = stack.fileid("PARENT"), stack.fileid("PARENT/inner.txt")
    stack.delete("PARENT")
    response = move(stack, stack.trash(f"{folder}/{inner}"), stack.files("inner.txt"))
    assert response.status_code == 201
    assert stack.fileid("inner.txt") == inner
    assert trash_listing(stack, f"{folder}/") == {}


def test_restore_destinations_ownCloud_refuses(stack: Stack) -> None:
    stack.put("a.txt", b"x")
    stack.put("file.txt", b"y")
    fileid = stack.fileid("a.txt")
    stack.delete("a.txt")
    url = stack.trash(str(fileid))
    cases = [
        (stack.files("missing/a.txt"), 409, "Sabre\\DAV\\Exception\\Conflict"),
        (stack.files("file.txt/a.txt"), 415, "Sabre\\DAV\\Exception\\UnsupportedMediaType"),
        (f"{stack.url}/remote.php/dav/files/bob/a.txt", 403, "Sabre\\DAV\\Exception\\Forbidden"),
        (f"{stack.url}/remote.php/webdav/a.txt", 403, "Sabre\\DAV\\Exception\\Forbidden"),
        (stack.trash("a.txt"), 403, "Sabre\\DAV\\Exception\\Forbidden"),
    ]
    for destination, status, exception in cases:
        response = move(stack, url, destination)
        assert response.status_code == status, destination
        assert error_parts(response.content)[0] == exception
    assert stack.client.request("MOVE", url).status_code == 400
    assert len(trash_listing(stack)) == 1


# ---------------------------------------------------------------------------------------------
# purge and empty


def test_delete_one_item_and_one_item_inside_a_trashed_folder(stack: Stack) -> None:
    stack.put("textfile0.txt", b"to delete")
    stack.put("textfile1.txt", b"to delete")
    stack.mkcol("PARENT")
    stack.mkcol("PARENT/CHILD")
    stack.put("PARENT/CHILD/child.txt", b"to delete")
    keep, gone = stack.fileid("textfile0.txt"), stack.fileid("textfile1.txt")
    parent, child = stack.fileid("PARENT"), stack.fileid("PARENT/CHILD")
    for path in ("textfile0.txt", "textfile1.txt", "PARENT"):
        stack.delete(path)

    assert stack.client.delete(stack.trash(str(gone))).status_code == 204
    assert stack.client.delete(stack.trash(f"{parent}/{child}")).status_code == 204
    assert set(by_location(trash_listing(stack))) == {"textfile0.txt", "PARENT"}
    assert trash_listing(stack, f"{parent}/") == {}
    assert stack.client.delete(stack.trash(str(gone))).status_code == 404
    assert keep


def test_empty_the_trash(stack: Stack) -> None:
    for name in ("sample,0.txt", "sample,1.txt"):
        stack.put(name, b"file with comma")
        stack.delete(name)
    assert len(trash_listing(stack)) == 2
    response = stack.client.delete(stack.trash())
    assert response.status_code == 204
    assert trash_listing(stack) == {}
    assert stack.client.delete(stack.trash()).status_code == 204


# ---------------------------------------------------------------------------------------------
# what else ownCloud answers


def test_other_users_trash_is_401_and_unknown_users_404(stack: Stack) -> None:
    stack.put("secret.txt", b"x")
    fileid = stack.fileid("secret.txt")
    stack.delete("secret.txt")
    with httpx.Client(auth=("bob", BOB_PASSWORD), timeout=30) as bob:
        for method in ("PROPFIND", "DELETE"):
            response = bob.request(method, stack.trash(str(fileid)))
            assert response.status_code == 401, method
            assert error_parts(response.content) == (
                "Sabre\\DAV\\Exception\\NotAuthenticated", "")
        listing = bob.request("PROPFIND", stack.trash())
        assert listing.status_code == 401 and b"secret" not in listing.content
    response = stack.client.request("PROPFIND", f"{stack.url}/remote.php/dav/trash-bin/nobody/")
    assert response.status_code == 404
    assert error_parts(response.content) == ("Sabre\\DAV\\Exception\\NotFound",
                                             "Principal with name nobody not found")
    assert httpx.request("PROPFIND", stack.trash()).status_code == 401
    assert httpx.request("PROPFIND", stack.trash(),
                         auth=("alice", "wrong")).status_code == 401
    assert len(trash_listing(stack)) == 1


def test_the_uid_in_the_url_is_matched_ignoring_case(stack: Stack) -> None:
    url = f"{stack.url}/remote.php/dav/trash-bin/ALICE/"
    response = stack.client.request("PROPFIND", url, headers={"Depth": "0"})
    assert response.status_code == 207
    assert b"<d:href>/remote.php/dav/trash-bin/ALICE/</d:href>" in response.content


def test_trashed_files_cannot_be_downloaded(stack: Stack) -> None:
    stack.mkcol("dir")
    stack.put("a.txt", b"x")
    fileid, folder = stack.fileid("a.txt"), stack.fileid("dir")
    stack.delete("a.txt")
    stack.delete("dir")
    response = stack.client.get(stack.trash(str(fileid)))
    assert response.status_code == 403
    assert error_parts(response.content) == ("Sabre\\DAV\\Exception\\Forbidden",
                                             "Permission denied to read this file")
    listing = stack.client.get(stack.trash(str(folder)))
    assert listing.status_code == 200
    assert listing.content.startswith(b"This is the WebDAV interface.")


def test_brief_leaves_out_the_404_propstat(stack: Stack) -> None:
    response = stack.client.request("PROPFIND", stack.trash(), content=propfind_body(TRASH_PROPS),
                                    headers={"Depth": "0", "Prefer": "return=minimal"})
    assert b"404 Not Found" not in response.content
    assert b"<d:collection/>" in response.content


def test_options_on_the_trash(stack: Stack) -> None:
    response = stack.client.options(stack.trash())
    assert response.status_code == 200
    assert response.headers["dav"] == "1, 3, extended-mkcol, 2"
    assert "MOVE" in response.headers["allow"]
