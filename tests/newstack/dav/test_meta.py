"""remote.php/dav/meta over real HTTP: fileid -> path, and versions listed, downloaded and
restored (REFERENCE §6.9, the meta/versions samples)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.newstack.backends import BACKENDS
from tests.newstack.dav.livestack import (
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

V1, V2, V3 = 1_585_556_860, 1_585_557_036, 1_585_557_207
VERSION_PROPS = [f"{D}getlastmodified", f"{D}getcontentlength", f"{D}resourcetype",
                 f"{D}getetag", f"{D}getcontenttype", f"{D}quota-used-bytes",
                 f"{D}quota-available-bytes"]


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, request.param) as running:
        yield running


@pytest.fixture
def report(stack: Stack) -> int:
    """report.odt written three times, at V1, V2 and V3: versions V2 and V1 exist."""
    stack.mkcol("Docs")
    stack.put("Docs/report.odt", b"first draft", mtime=V1)
    stack.put("Docs/report.odt", b"second draft, longer", mtime=V2)
    stack.put("Docs/report.odt", b"final", mtime=V3)
    return stack.fileid("Docs/report.odt")


def copy(stack: Stack, url: str, destination: str, **headers: str) -> httpx.Response:
    return stack.client.request("COPY", url, headers={"Destination": destination, **headers})


def versions(stack: Stack, fileid: int) -> dict[str, dict[str, str]]:
    listing = propfind(stack.client, stack.meta(f"{fileid}/v"), VERSION_PROPS)
    return {href: {name.split("}")[1]: (element.text or "") for name, element in found.items()}
            for href, found in listing.items()}


# ---------------------------------------------------------------------------------------------
# meta/<fileid>


def test_meta_path_for_user_golden(stack: Stack) -> None:
    stack.mkcol("Photos")
    stack.put("Photos/San Francisco.jpg", b"\xff\xd8")
    fileid = stack.fileid("Photos/San Francisco.jpg")
    response = stack.client.request("PROPFIND", stack.meta(str(fileid)), headers={"Depth": "0"},
                                    content=propfind_body([f"{OC}meta-path-for-user"]))
    assert response.status_code == 207
    ids = {r"/meta/\d+/": "/meta/ID/"}
    assert shape(response.content, ids) == shape(sample("meta-propfind-depth0-docs.xml"), ids)
    (props,) = found_props(response.content).values()
    assert props[f"{OC}meta-path-for-user"].text == "/Photos/San Francisco.jpg"
    assert f"<d:href>/remote.php/dav/meta/{fileid}/</d:href>".encode() in response.content


def test_meta_path_of_folders_and_the_root(stack: Stack) -> None:
    stack.mkcol("A & B")
    root = stack.fileid("")
    for fileid, expected in ((root, "/"), (stack.fileid("A & B"), "/A & B")):
        listing = propfind(stack.client, stack.meta(str(fileid)), [f"{OC}meta-path-for-user"],
                           depth="0")
        (props,) = listing.values()
        assert props[f"{OC}meta-path-for-user"].text == expected


def test_depth_1_shows_the_versions_folder_without_a_path(stack: Stack, report: int) -> None:
    response = stack.client.request(
        "PROPFIND", stack.meta(str(report)), headers={"Depth": "1"},
        content=propfind_body([f"{OC}meta-path-for-user", f"{D}resourcetype"]))
    assert shape(response.content) == [
        (f"/remote.php/dav/meta/{report}/", [("HTTP/1.1 200 OK", [
            (f"{OC}meta-path-for-user", True), (f"{D}resourcetype", (f"{D}collection",))])]),
        (f"/remote.php/dav/meta/{report}/v/", [
            ("HTTP/1.1 200 OK", [(f"{D}resourcetype", (f"{D}collection",))]),
            ("HTTP/1.1 404 Not Found", [(f"{OC}meta-path-for-user", False)])]),
    ]


def test_unknown_and_foreign_fileids_are_404_with_an_empty_message(stack: Stack) -> None:
    with httpx.Client(auth=("bob", "bob's password"), timeout=30) as bob:
        assert bob.put(f"{stack.url}/remote.php/dav/files/bob/mine.txt",
                       content=b"bob").status_code == 201
        bobs = propfind(bob, f"{stack.url}/remote.php/dav/files/bob/mine.txt",
                        [f"{OC}fileid"], depth="0")
    (props,) = bobs.values()
    golden = sample("error-404-meta-notfound-empty-message-docs.xml")
    for name in (props[f"{OC}fileid"].text, "999999999", "abc"):
        response = stack.client.request("PROPFIND", stack.meta(f"{name}"),
                                         headers={"Depth": "0"})
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/xml; charset=utf-8"
        assert response.content == golden


def test_listing_meta_itself_is_not_allowed(stack: Stack) -> None:
    response = stack.client.request("PROPFIND", stack.meta(), headers={"Depth": "1"})
    assert response.status_code == 405
    assert error_parts(response.content) == ("Sabre\\DAV\\Exception\\MethodNotAllowed",
                                             "Listing members of this collection is disabled")
    assert stack.client.request("PROPFIND", stack.meta(), headers={"Depth": "0"}
                                ).status_code == 207
    assert httpx.request("PROPFIND", stack.meta()).status_code == 401


# ---------------------------------------------------------------------------------------------
# meta/<fileid>/v


def test_versions_are_named_by_the_old_mtimes_newest_first(stack: Stack, report: int) -> None:
    listing = versions(stack, report)
    base = f"/remote.php/dav/meta/{report}/v/"
    assert list(listing) == [base, f"{base}{V2}", f"{base}{V1}"]
    assert listing[f"{base}{V2}"]["getlastmodified"] == "Mon, 30 Mar 2020 08:30:36 GMT"
    assert listing[f"{base}{V1}"]["getlastmodified"] == "Mon, 30 Mar 2020 08:27:40 GMT"
    assert listing[f"{base}{V2}"]["getcontentlength"] == str(len(b"second draft, longer"))
    assert listing[f"{base}{V1}"]["getcontentlength"] == str(len(b"first draft"))
    assert listing[f"{base}{V1}"]["getcontenttype"] == "application/vnd.oasis.opendocument.text"
    assert re.fullmatch(r'"[0-9a-f]{32}"', listing[f"{base}{V1}"]["getetag"])
    assert listing[f"{base}{V1}"]["getetag"] != listing[f"{base}{V2}"]["getetag"]


def test_golden_shape_of_the_versions_listing(stack: Stack, report: int) -> None:
    """versions-propfind-depth1-multiple-docs.xml (grade B): each version's propstats
    exactly; its collection entry was trimmed to the 200 propstat by the docs."""
    response = stack.client.request("PROPFIND", stack.meta(f"{report}/v"),
                                    headers={"Depth": "1"}, content=propfind_body(VERSION_PROPS))
    ids = {r"/meta/\d+/v/\d+": "/meta/ID/v/VERSION", r"/meta/\d+/v/$": "/meta/ID/v/"}
    ours = shape(response.content, ids)
    golden = shape(sample("versions-propfind-depth1-multiple-docs.xml"), ids)
    assert ours[1:] == golden[1:3]
    assert ours[0][0] == golden[0][0] and ours[0][1][0] == golden[0][1][0]


def test_a_file_without_versions_and_a_folder_list_only_the_collection(stack: Stack) -> None:
    stack.put("once.txt", b"only one")
    stack.mkcol("folder")
    golden = shape(sample("versions-propfind-depth1-none-docs.xml"), {r"/\d+/": "/ID/"})
    for path in ("once.txt", "folder"):
        response = stack.client.request("PROPFIND", stack.meta(f"{stack.fileid(path)}/v"),
                                        headers={"Depth": "1"})
        assert response.status_code == 207
        assert shape(response.content, {r"/\d+/": "/ID/"}) == golden


def test_download_a_version(stack: Stack, report: int) -> None:
    response = stack.client.get(stack.meta(f"{report}/v/{V1}"))
    assert response.status_code == 200
    assert response.content == b"first draft"
    assert response.headers["content-type"] == "application/vnd.oasis.opendocument.text"
    assert response.headers["last-modified"] == "Mon, 30 Mar 2020 08:27:40 GMT"
    assert response.headers["content-length"] == "11"
    assert response.headers["content-disposition"] == (
        "attachment; filename*=UTF-8''report.odt; filename=\"report.odt\"")
    etag = versions(stack, report)[f"/remote.php/dav/meta/{report}/v/{V1}"]["getetag"]
    assert response.headers["etag"] == response.headers["oc-etag"] == etag
    head = stack.client.head(stack.meta(f"{report}/v/{V1}"))
    assert head.status_code == 200 and head.content == b""


def test_unknown_versions_and_names(stack: Stack, report: int) -> None:
    for path, message in ((f"{report}/v/123", "File not found: 123"),
                          (f"{report}/x", "File not found: x"),
                          (f"{report}/v/{V1}/deeper",
                           f"Could not find node at path: meta/{report}/v/{V1}/deeper")):
        response = stack.client.get(stack.meta(path))
        assert response.status_code == 404, path
        assert error_parts(response.content) == ("Sabre\\DAV\\Exception\\NotFound", message)


# ---------------------------------------------------------------------------------------------
# restore by COPY


def test_restore_swaps_the_content_and_keeps_the_fileid(stack: Stack, report: int) -> None:
    response = copy(stack, stack.meta(f"{report}/v/{V1}"), stack.files("Docs/report.odt"))
    assert response.status_code == 204, response.text
    assert response.headers["oc-fileid"] == f"{report:08d}{stack.backend.instance_id}"
    assert stack.client.get(stack.files("Docs/report.odt")).content == b"first draft"
    assert stack.fileid("Docs/report.odt") == report
    listing = versions(stack, report)
    base = f"/remote.php/dav/meta/{report}/v/"
    assert list(listing) == [base, f"{base}{V3}", f"{base}{V2}"]
    assert stack.client.get(stack.meta(f"{report}/v/{V3}")).content == b"final"
    props = propfind(stack.client, stack.files("Docs/report.odt"), [f"{D}getlastmodified"],
                     depth="0")
    (found,) = props.values()
    assert found[f"{D}getlastmodified"].text == "Mon, 30 Mar 2020 08:27:40 GMT"


def test_copy_onto_another_existing_file_changes_nothing(stack: Stack, report: int) -> None:
    stack.put("other.txt", b"untouched")
    other = stack.fileid("other.txt")
    response = copy(stack, stack.meta(f"{report}/v/{V1}"), stack.files("other.txt"))
    assert response.status_code == 204
    assert response.headers["oc-fileid"] == f"{other:08d}{stack.backend.instance_id}"
    assert stack.client.get(stack.files("other.txt")).content == b"untouched"
    assert stack.client.get(stack.files("Docs/report.odt")).content == b"final"


def test_copy_to_a_new_name_writes_the_version_there(stack: Stack, report: int) -> None:
    response = copy(stack, stack.meta(f"{report}/v/{V2}"), stack.files("Docs/old draft.odt"))
    assert response.status_code == 201
    copied = stack.fileid("Docs/old draft.odt")
    assert copied != report
    assert response.headers["oc-fileid"] == f"{copied:08d}{stack.backend.instance_id}"
    assert stack.client.get(stack.files("Docs/old draft.odt")).content == (
        b"second draft, longer")
    assert stack.client.get(stack.files("Docs/report.odt")).content == b"final"


def test_copy_destinations_that_are_refused(stack: Stack, report: int) -> None:
    url = stack.meta(f"{report}/v/{V1}")
    assert copy(stack, url, stack.files("Docs/report.odt"), Overwrite="F").status_code == 412
    assert copy(stack, url, stack.files("nowhere/x.odt")).status_code == 409
    assert copy(stack, url, f"{stack.url}/remote.php/dav/files/bob/x.odt").status_code == 403
    assert copy(stack, url, "http://elsewhere.example/x.odt").status_code == 403
    assert stack.client.request("COPY", url).status_code == 400
    assert stack.client.get(stack.files("Docs/report.odt")).content == b"final"


def test_versions_cannot_be_changed_in_place(stack: Stack, report: int) -> None:
    url = stack.meta(f"{report}/v/{V1}")
    for method in ("DELETE", "PUT", "MOVE"):
        response = stack.client.request(method, url, content=b"x",
                                        headers={"Destination": stack.files("y.odt")})
        assert response.status_code == 403, method
    assert len(versions(stack, report)) == 3
