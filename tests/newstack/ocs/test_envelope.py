"""newstack/ocs/envelope.py: meta, codes, headers and bytes of OCS responses, against samples."""

import json

import defusedxml.ElementTree as DET
import pytest

from newstack.ocs.envelope import (
    JSON_CONTENT_TYPE,
    LEGACY_XML_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    Format,
    OcsVersion,
    choose_format,
    map_status_code,
    ocs_error,
    ocs_maintenance,
    ocs_unauthorised,
    ocs_unknown_endpoint,
    render_ocs,
)
from newstack.ocs.php import xml_document
from tests.newstack.ocs.golden import http_body, json_sample, meta_block, sample, xml_to_php

BASIC = ("WWW-Authenticate", 'Basic realm="Authorisation Required"')

# --- format ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fmt"),
    [
        ({}, "xml"),
        ({"format": "json"}, "json"),
        ({"format": "xml"}, "xml"),
        ({"format": ""}, "xml"),
        ({"format": "JSON"}, "xml"),
        ({"format": "yaml"}, "xml"),
        ({"format": ["xml", "json"]}, "json"),
        ({"format": ["json", "xml"]}, "xml"),
        ({"format": []}, "xml"),
    ],
)
def test_choose_format(query: dict[str, str | list[str]], fmt: str) -> None:
    assert choose_format(query) == fmt


# --- status codes ------------------------------------------------------------------------------

# (OCS code from the handler, route kind) -> v1 (HTTP, meta code, status), v2 (HTTP, meta, status)
CODES = [
    (100, False, (200, 100, "ok"), (200, 200, "ok")),
    (100, True, (200, 100, "ok"), (200, 200, "ok")),
    (997, False, (401, 997, "failure"), (401, 997, "failure")),
    (997, True, (401, 997, "failure"), (401, 997, "failure")),
    (998, False, (200, 998, "failure"), (404, 404, "failure")),
    (996, False, (200, 996, "failure"), (500, 500, "failure")),
    (999, True, (200, 999, "failure"), (500, 500, "failure")),
    (104, False, (200, 104, "failure"), (403, 403, "failure")),
    (404, False, (200, 404, "failure"), (404, 404, "failure")),
    (403, True, (200, 403, "failure"), (403, 403, "failure")),
    (400, False, (200, 400, "failure"), (400, 400, "failure")),
    (503, True, (200, 503, "failure"), (503, 503, "failure")),
    (101, True, (200, 101, "failure"), (400, 400, "failure")),
    (102, False, (200, 102, "failure"), (400, 400, "failure")),
    (600, False, (200, 600, "failure"), (400, 400, "failure")),
    # a handler answering 200 directly: AppFramework v2 calls that ok, legacy meta came first
    (200, False, (200, 200, "failure"), (200, 200, "ok")),
    (200, True, (200, 200, "failure"), (200, 200, "failure")),
    (201, False, (200, 201, "failure"), (201, 201, "failure")),
]


@pytest.mark.parametrize(("code", "legacy", "v1", "v2"), CODES)
def test_status_codes(
    code: int, legacy: bool, v1: tuple[int, int, str], v2: tuple[int, int, str]
) -> None:
    expectations: tuple[tuple[OcsVersion, tuple[int, int, str]], ...] = ((1, v1), (2, v2))
    for version, (http, meta_code, status) in expectations:
        got_http, _, body = render_ocs(
            None, version=version, fmt="json", statuscode=code, legacy=legacy
        )
        meta = json.loads(body)["ocs"]["meta"]
        assert (got_http, meta["statuscode"], meta["status"]) == (http, meta_code, status), version


def test_map_status_code_table() -> None:
    assert [map_status_code(c) for c in (100, 997, 998, 996, 999, 104, 299, 450, 599, 99, 600)] == [
        200, None, 404, 500, 500, 403, 299, 450, 599, 400, 400,
    ]


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "legacy", "content_type"),
    [
        ("xml", False, "application/xml; charset=utf-8"),
        ("json", False, "application/json; charset=utf-8"),
        ("xml", True, "text/xml; charset=UTF-8"),
        ("json", True, "application/json; charset=utf-8"),
    ],
)
def test_content_types(fmt: Format, legacy: bool, content_type: str) -> None:
    _, headers, _ = render_ocs({}, version=1, fmt=fmt, legacy=legacy)
    assert headers == [("Content-Type", content_type)]
    assert content_type in (XML_CONTENT_TYPE, LEGACY_XML_CONTENT_TYPE, JSON_CONTENT_TYPE)


@pytest.mark.parametrize("version", [1, 2])
def test_legacy_unauthorised_asks_for_basic_auth(version: OcsVersion) -> None:
    status, headers, _ = ocs_unauthorised(version, "xml", legacy=True)
    assert status == 401
    assert headers == [BASIC, ("Content-Type", LEGACY_XML_CONTENT_TYPE)]
    _, headers, _ = ocs_unauthorised(version, "json", legacy=True, xhr=True)
    assert headers[0] == ("WWW-Authenticate", 'DummyBasic realm="Authorisation Required"')


@pytest.mark.parametrize("version", [1, 2])
def test_appframework_unauthorised_has_no_www_authenticate(version: OcsVersion) -> None:
    # SecurityMiddleware answers NotLoggedInException through buildResponse: 401, no challenge
    status, headers, _ = ocs_unauthorised(version, "json")
    assert status == 401
    assert headers == [("Content-Type", JSON_CONTENT_TYPE)]


# --- bodies against samples --------------------------------------------------------------------


def test_unauthorised_json_matches_the_ios_capture() -> None:
    """B: pretty-printed by the author; values, key order and `"data": []` are real."""
    expected = json_sample("ocs-v1-capabilities-error-997-unauthorised-json-iossdk.json")
    status, _, body = ocs_unauthorised(1, "json")
    assert status == 401
    assert json.loads(body) == expected
    assert list(json.loads(body)["ocs"]["meta"]) == list(expected["ocs"]["meta"])
    # the compact form of exactly that document, as PHP sends it
    assert body == (
        b'{"ocs":{"meta":{"status":"failure","statuscode":997,"message":"Unauthorised",'
        b'"totalitems":"","itemsperpage":""},"data":[]}}'
    )


def test_unauthorised_xml_has_the_docs_shape() -> None:
    """D (hand-indented, legacy form without totalitems): compare the parsed trees."""
    expected = DET.fromstring(sample("ocs-v1-error-997-unauthorised-xml-docs.xml"))
    _, _, body = ocs_unauthorised(1, "xml", legacy=True)
    got = DET.fromstring(body)
    assert [(e.tag, (e.text or "").strip()) for e in got.iter()] == [
        (e.tag, (e.text or "").strip()) for e in expected.iter()
    ]
    assert body == (
        b'<?xml version="1.0"?>\n<ocs>\n <meta>\n  <status>failure</status>\n'
        b"  <statuscode>997</statuscode>\n  <message>Unauthorised</message>\n </meta>\n"
        b" <data/>\n</ocs>\n"
    )


def test_appframework_unauthorised_xml_keeps_the_paging_fields() -> None:
    _, _, body = ocs_unauthorised(2, "xml")
    assert meta_block(body) == (
        b" <meta>\n  <status>failure</status>\n  <statuscode>997</statuscode>\n"
        b"  <message>Unauthorised</message>\n  <totalitems></totalitems>\n"
        b"  <itemsperpage></itemsperpage>\n </meta>\n"
    )


@pytest.mark.parametrize(
    "name",
    [
        "ocs-v1-shares-delete-success-docs.xml",
        "ocs-v1-shares-list-empty-docs.xml",
    ],
)
def test_empty_legacy_success_has_the_docs_shape(name: str) -> None:
    _, _, body = render_ocs(None, version=1, fmt="xml", legacy=True)
    expected = DET.fromstring(sample(name))
    got = DET.fromstring(body)
    assert [(e.tag, e.text and e.text.strip()) for e in got.iter()] == [
        (e.tag, e.text and e.text.strip()) for e in expected.iter()
    ]
    assert b"<message/>" in body and b" <data/>\n" in body


@pytest.mark.parametrize(
    ("name", "legacy"),
    [
        ("ocs-v1-shares-accept-pending-failure-docs.xml", False),
        ("ocs-v1-error-404-wrong-share-id-docs.xml", True),
        ("ocs-v1-error-404-wrong-path-docs.xml", True),
        ("ocs-v1-error-400-unknown-share-type-docs.xml", True),
        ("ocs-v1-error-400-cant-change-link-permission-docs.xml", True),
    ],
)
def test_error_shapes_match_docs_samples(name: str, legacy: bool) -> None:
    expected = DET.fromstring(sample(name))
    code = int(expected.findtext("meta/statuscode") or 0)
    message = expected.findtext("meta/message")
    status, _, body = ocs_error(code, message, 1, "xml", legacy=legacy)
    assert status == 200
    got = DET.fromstring(body)
    assert [(e.tag, (e.text or "").strip()) for e in got.iter()] == [
        (e.tag, (e.text or "").strip()) for e in expected.iter()
    ]


IOS_LOG_XML = [
    "ocs-v1-remote-shares-accepted-xml-ioslog-2019.http.txt",
    "ocs-v1-remote-shares-pending-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-list-link-folder-filedrop-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-list-link-folder-read-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-list-link-folder-upload-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-list-owner-user+link-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-list-reshare-links-password-expiry-xml-ioslog-2019.http.txt",
    "ocs-v1-shares-shared-with-me-xml-ioslog-2019.http.txt",
]


@pytest.mark.parametrize("name", IOS_LOG_XML)
def test_xml_writer_reproduces_real_captures_byte_for_byte(name: str) -> None:
    """A: real oC10 (~10.1, then a legacy route) responses; re-render the PHP array behind them."""
    body = http_body(name)
    document = xml_to_php(body)
    assert xml_document(document) == body
    status, headers, rendered = render_ocs(
        document["ocs"]["data"], version=1, fmt="xml", legacy=True
    )
    assert (status, rendered) == (200, body)
    assert headers == [("Content-Type", "text/xml; charset=UTF-8")]
    assert b"Content-Type: text/xml; charset=UTF-8\n" in sample(name)
    assert DET.fromstring(rendered).tag == "ocs"


def test_appframework_meta_block_matches_the_real_capture() -> None:
    """A: cloud/user via an AppFramework controller: message OK and empty paging fields."""
    body = sample("ocs-v1-cloud-user-xml-core-docs2784-2020.xml")
    _, _, rendered = render_ocs({}, version=1, fmt="xml")
    assert meta_block(rendered) == meta_block(body)


def test_legacy_meta_block_matches_the_real_capture() -> None:
    body = sample("ocs-v1-cloud-users-USER-xml-core-docs2784-2020.xml")
    _, _, rendered = render_ocs({}, version=1, fmt="xml", legacy=True)
    assert meta_block(rendered) == meta_block(body)
    assert meta_block(rendered) == meta_block(http_body(IOS_LOG_XML[0]))


def test_paging_fields_when_set() -> None:
    _, _, body = render_ocs([], version=2, fmt="json", totalitems=3, itemsperpage="10")
    assert json.loads(body)["ocs"]["meta"] == {
        "status": "ok", "statuscode": 200, "message": "OK", "totalitems": 3, "itemsperpage": "10",
    }
    _, _, body = render_ocs([], version=1, fmt="xml", legacy=True, totalitems=3)
    assert b"  <message/>\n  <totalitems>3</totalitems>\n </meta>" in body
    _, _, body = render_ocs([], version=1, fmt="xml", totalitems=None, itemsperpage=None)
    assert b"totalitems" not in body and b"itemsperpage" not in body


def test_json_body_escapes_like_php_with_hex_tag() -> None:
    data = {"path": "/Ä/<b>.txt", "name": "😀 & 'q'"}
    _, _, body = render_ocs(data, version=1, fmt="json")
    assert body.endswith(
        b'"data":{"path":"\\/\\u00c4\\/\\u003Cb\\u003E.txt","name":"\\ud83d\\ude00 & \'q\'"}}}'
    )
    assert body.isascii()


def test_empty_and_odd_data() -> None:
    empties: tuple[object, ...] = (None, [], {})
    for data in empties:
        _, _, body = render_ocs(data, version=1, fmt="json")
        assert body.endswith(b'"data":[]}}')
        _, _, body = render_ocs(data, version=1, fmt="xml")
        assert body.endswith(b" <data/>\n</ocs>\n")
    # OC\OCS\Result wraps a scalar as [null] (it reads the unset property)
    _, _, body = render_ocs("x", version=1, fmt="json")
    assert body.endswith(b'"data":[null]}}')


def test_xml_data_with_nested_lists_and_nulls() -> None:
    data = [{"id": "7", "parent": None, "token": "", "share_types": [0, 3]}]
    _, _, body = render_ocs(data, version=2, fmt="xml", message=None)
    assert body == (
        b'<?xml version="1.0"?>\n<ocs>\n <meta>\n  <status>ok</status>\n'
        b"  <statuscode>200</statuscode>\n  <message/>\n  <totalitems></totalitems>\n"
        b"  <itemsperpage></itemsperpage>\n </meta>\n <data>\n  <element>\n   <id>7</id>\n"
        b"   <parent/>\n   <token></token>\n   <share_types>\n    <element>0</element>\n"
        b"    <element>3</element>\n   </share_types>\n  </element>\n </data>\n</ocs>\n"
    )


@pytest.mark.parametrize("version", [1, 2])
def test_maintenance_is_503_on_both_versions(version: OcsVersion) -> None:
    status, headers, body = ocs_maintenance(version, "json")
    assert status == 503
    assert headers == [("Content-Type", JSON_CONTENT_TYPE)]
    assert body == (
        b'{"ocs":{"meta":{"status":"failure","statuscode":503,'
        b'"message":"Service unavailable"},"data":[]}}'
    )


def test_unknown_endpoint() -> None:
    status, _, body = ocs_unknown_endpoint(1, "json")
    assert status == 200
    assert body == (
        b'{"ocs":{"meta":{"status":"failure","statuscode":999,"message":"Invalid query, please '
        b"check the syntax. API specifications are here: http:\\/\\/www.freedesktop.org\\/wiki"
        b'\\/Specifications\\/open-collaboration-services. DEBUG OUTPUT:\\n"},"data":[]}}'
    )
    status, _, body = ocs_unknown_endpoint(2, "xml")
    assert status == 500
    assert b"<statuscode>500</statuscode>" in body
    assert b"DEBUG OUTPUT:\n</message>" in body


def test_only_versions_1_and_2_exist() -> None:
    with pytest.raises(ValueError, match="1 or 2"):
        render_ocs(None, version=3, fmt="xml")
