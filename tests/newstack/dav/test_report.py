"""REPORT oc:filter-files and oc:search-files over real HTTP, on both files endpoints
(apiFavorites acceptance features, the filter/search samples)."""

from __future__ import annotations

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
    running_stack,
    sample,
    shape,
)

SAMPLE_PROPS = [f"{OC}fileid", f"{OC}permissions", f"{OC}size", f"{OC}owner-id",
                f"{OC}owner-display-name", f"{D}getlastmodified", f"{D}getetag",
                f"{D}getcontenttype"]
EMPTY = (b'<?xml version="1.0"?>\n<d:multistatus xmlns:d="DAV:" '
         b'xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns"/>\n')


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, request.param) as running:
        for name in ("textfile0.txt", "textfile1.txt", "textfile2.txt"):
            running.put(name, b"some data")
        running.mkcol("FOLDER")
        running.mkcol("PARENT")
        running.put("PARENT/parent.txt", b"some data")
        yield running


def favorite(stack: Stack, path: str, value: str = "1") -> None:
    body = ('<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" '
            'xmlns:oc="http://owncloud.org/ns"><d:set><d:prop>'
            f"<oc:favorite>{value}</oc:favorite></d:prop></d:set></d:propertyupdate>")
    response = stack.client.request("PROPPATCH", stack.files(path), content=body.encode())
    assert response.status_code == 207, response.text


def prop_xml(props: list[str]) -> str:
    names = "".join(f"<x:{p.split('}')[1]} xmlns:x=\"{p[1:p.index('}')]}\"/>" for p in props)
    return f"<d:prop>{names}</d:prop>" if props else ""


def filter_files(stack: Stack, url: str, props: list[str], rules: str = "<oc:favorite>1"
                 "</oc:favorite>", search: str = "") -> httpx.Response:
    body = ('<?xml version="1.0" encoding="utf-8"?><oc:filter-files xmlns:d="DAV:" '
            f'xmlns:oc="http://owncloud.org/ns">{prop_xml(props)}'
            f"<oc:filter-rules>{rules}</oc:filter-rules>{search}</oc:filter-files>")
    return stack.client.request("REPORT", url, content=body.encode())


def search_files(stack: Stack, url: str, props: list[str], search: str) -> httpx.Response:
    body = ('<?xml version="1.0"?><oc:search-files xmlns:d="DAV:" '
            f'xmlns:oc="http://owncloud.org/ns">{prop_xml(props)}'
            f"<oc:search>{search}</oc:search></oc:search-files>")
    return stack.client.request("REPORT", url, content=body.encode())


def hrefs(response: httpx.Response) -> list[str]:
    assert response.status_code == 207, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    return list(found_props(response.content))


# ---------------------------------------------------------------------------------------------
# filter-files


def test_favorites_after_proppatch(stack: Stack) -> None:
    favorite(stack, "FOLDER")
    favorite(stack, "textfile0.txt")
    favorite(stack, "PARENT/parent.txt")
    favorite(stack, "textfile1.txt")
    favorite(stack, "textfile1.txt", "0")
    response = filter_files(stack, stack.files(), [f"{OC}favorite", f"{OC}fileid"])
    # by fileid, as the tag rows come back; folders without the trailing slash (no PROPFIND)
    assert hrefs(response) == ["/remote.php/dav/files/alice/textfile0.txt",
                               "/remote.php/dav/files/alice/FOLDER",
                               "/remote.php/dav/files/alice/PARENT/parent.txt"]
    for href, props in found_props(response.content).items():
        assert props[f"{OC}favorite"].text == "1"
        assert int(props[f"{OC}fileid"].text or "") == stack.fileid(
            href.removeprefix("/remote.php/dav/files/alice/"))


def test_favorites_of_a_subfolder_and_on_the_legacy_endpoint(stack: Stack) -> None:
    favorite(stack, "textfile0.txt")
    favorite(stack, "PARENT/parent.txt")
    favorite(stack, "PARENT")
    inside = filter_files(stack, stack.files("PARENT"), [f"{OC}favorite"])
    assert hrefs(inside) == ["/remote.php/dav/files/alice/PARENT",
                             "/remote.php/dav/files/alice/PARENT/parent.txt"]
    legacy = filter_files(stack, f"{stack.url}/remote.php/webdav/", [f"{OC}favorite"])
    assert hrefs(legacy) == ["/remote.php/webdav/textfile0.txt", "/remote.php/webdav/PARENT",
                             "/remote.php/webdav/PARENT/parent.txt"]


def test_golden_shape_of_the_filter_files_sample(stack: Stack) -> None:
    stack.put("welcome.txt", b"welcome")
    favorite(stack, "welcome.txt")
    response = filter_files(stack, stack.files(), SAMPLE_PROPS)
    users = {r"/files/\w+/": "/files/USER/"}
    assert shape(response.content, users) == shape(
        sample("filter-files-report-response-docs.xml"), users)
    (props,) = found_props(response.content).values()
    assert props[f"{OC}permissions"].text == "RDNVW"
    assert props[f"{OC}owner-display-name"].text == "Alice Adams"


def test_no_favorites_is_an_empty_multistatus(stack: Stack) -> None:
    response = filter_files(stack, stack.files(), [f"{OC}favorite"])
    assert response.status_code == 207
    assert response.content == EMPTY


def test_a_limit_without_offset_gives_nothing_as_in_oc10(stack: Stack) -> None:
    for name in ("textfile0.txt", "textfile1.txt", "textfile2.txt"):
        favorite(stack, name)
    limited = filter_files(stack, stack.files(), [f"{OC}favorite"],
                           search="<oc:search><oc:limit>2</oc:limit></oc:search>")
    assert limited.status_code == 207 and limited.content == EMPTY
    paged = filter_files(stack, stack.files(), [f"{OC}favorite"],
                         search="<oc:search><oc:limit>2</oc:limit><oc:offset>1</oc:offset>"
                                "</oc:search>")
    assert hrefs(paged) == ["/remote.php/dav/files/alice/textfile1.txt",
                            "/remote.php/dav/files/alice/textfile2.txt"]


def test_without_requested_properties_each_result_is_a_teapot(stack: Stack) -> None:
    favorite(stack, "textfile0.txt")
    response = filter_files(stack, stack.files(), [])
    assert response.status_code == 207
    assert shape(response.content) == [("/remote.php/dav/files/alice/textfile0.txt",
                                         [("HTTP/1.1 418 I'm a teapot", [])])]


def test_filter_errors(stack: Stack) -> None:
    cases = [
        ("", "", 400, "Sabre\\DAV\\Exception\\BadRequest", "No filter criteria specified"),
        ("<oc:favorite>1</oc:favorite>", "<oc:search><oc:pattern>x</oc:pattern></oc:search>",
         400, "Sabre\\DAV\\Exception\\BadRequest",
         "Search pattern cannot be combined with filter"),
        ("<oc:systemtag>12</oc:systemtag>", "", 412, "Sabre\\DAV\\Exception\\PreconditionFailed",
         "Cannot filter by nonexistent tag"),
        ("<oc:systemtag>abc</oc:systemtag>", "", 500, "InvalidArgumentException",
         "Tag id must be integer"),
    ]
    for rules, search, status, exception, message in cases:
        response = filter_files(stack, stack.files(), [f"{OC}fileid"], rules, search)
        assert response.status_code == status, rules
        assert error_parts(response.content) == (exception, message)


def test_reports_on_files_and_unknown_reports_are_not_supported(stack: Stack) -> None:
    on_file = filter_files(stack, stack.files("textfile0.txt"), [f"{OC}fileid"])
    assert on_file.status_code == 415
    assert error_parts(on_file.content)[0] == "Sabre\\DAV\\Exception\\ReportNotSupported"
    other = stack.client.request("REPORT", stack.files(), content=(
        b'<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"/>'))
    assert other.status_code == 415
    missing = filter_files(stack, stack.files("nothing-here"), [f"{OC}fileid"])
    assert missing.status_code == 404


# ---------------------------------------------------------------------------------------------
# search-files


def test_search_by_name_ignoring_case(stack: Stack) -> None:
    stack.put("PARENT/TextFile-upper.md", b"x")
    response = search_files(stack, stack.files(), [f"{OC}fileid", f"{D}getcontentlength"],
                            "<oc:pattern>textfile</oc:pattern>")
    assert sorted(hrefs(response)) == [
        "/remote.php/dav/files/alice/PARENT/TextFile-upper.md",
        "/remote.php/dav/files/alice/textfile0.txt",
        "/remote.php/dav/files/alice/textfile1.txt",
        "/remote.php/dav/files/alice/textfile2.txt",
    ]
    folders = search_files(stack, stack.files(), [], "<oc:pattern>old</oc:pattern>")
    (href,) = hrefs(folders)
    assert href == "/remote.php/dav/files/alice/FOLDER"
    # no <d:prop>: allprop, without 404s
    (props,) = found_props(folders.content).values()
    assert set(props) == {f"{D}getlastmodified", f"{D}resourcetype",
                          f"{D}quota-used-bytes", f"{D}quota-available-bytes", f"{D}getetag"}
    assert b"404 Not Found" not in folders.content


def test_search_limit(stack: Stack) -> None:
    limited = search_files(stack, stack.files(), [f"{OC}fileid"],
                           "<oc:pattern>textfile</oc:pattern><oc:limit>2</oc:limit>")
    assert len(hrefs(limited)) == 2
    for limit in ("0", "-1"):
        none = search_files(stack, stack.files(), [f"{OC}fileid"],
                             f"<oc:pattern>textfile</oc:pattern><oc:limit>{limit}</oc:limit>")
        assert none.content == EMPTY


@pytest.mark.parametrize(("name", "props"), [
    ("search-files-report-response-docs.xml", [f"{OC}id", f"{OC}downloadURL", *SAMPLE_PROPS]),
    ("search-files-report-nonexistent-prop-docs.xml",
     [f"{OC}id", *SAMPLE_PROPS, f"{OC}downloadUR"]),
])
def test_golden_shape_of_the_search_samples(stack: Stack, name: str, props: list[str]) -> None:
    stack.mkcol("Test")
    stack.mkcol("Test/Sub-test")
    stack.put("Test/Sub-test/Site-Plan.md", b"# plan")
    response = search_files(stack, stack.files(), props, "<oc:pattern>Plan</oc:pattern>")
    anonymous = {r"/files/\w+/.*": "/files/USER/FILE"}
    assert shape(response.content, anonymous) == shape(sample(name), anonymous)


def test_search_errors(stack: Stack) -> None:
    in_folder = search_files(stack, stack.files("PARENT"), [], "<oc:pattern>x</oc:pattern>")
    assert in_folder.status_code == 501
    assert error_parts(in_folder.content) == (
        "Sabre\\DAV\\Exception\\NotImplemented",
        "Search report only available in the root folder of the user")
    no_pattern = search_files(stack, stack.files(), [], "<oc:limit>3</oc:limit>")
    assert no_pattern.status_code == 400
    assert error_parts(no_pattern.content) == ("Sabre\\DAV\\Exception\\BadRequest",
                                               "Search pattern cannot be empty")
