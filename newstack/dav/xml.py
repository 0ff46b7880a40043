"""WebDAV XML as ownCloud 10 (Sabre 4.7, sabre/xml 2.2, libxml2) reads and writes it.

Reading: request bodies (PROPFIND, PROPPATCH, LOCK, REPORT) through defusedxml, refusing DTDs,
entities and bodies over 1 MiB with `BadRequest`. Writing: multistatus documents by plain string
building, byte for byte as Sabre's XMLWriter output. Property values come from newstack/dav/props.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import DefusedXMLParser

from newstack.backend import Lock
from newstack.dav.errors import BadRequest, DavError, SabreError

DAV_NS: Final = "DAV:"
SABRE_NS: Final = "http://sabredav.org/ns"
OC_NS: Final = "http://owncloud.org/ns"
OCS_NS: Final = "http://open-collaboration-services.org/ns"
#: Sabre\DAV\Server's xml namespaceMap plus 'oc' (added by ownCloud's FilesPlugin), in order
NAMESPACES: Final = ((DAV_NS, "d"), (SABRE_NS, "s"), (OC_NS, "oc"))
_PREFIXES: Final = dict(NAMESPACES)
_ROOT_XMLNS: Final = "".join(f' xmlns:{prefix}="{uri}"' for uri, prefix in NAMESPACES)

MAX_BODY_BYTES: Final = 1 << 20

#: sabre/http Response::$statusCodes (the reason phrases inside <d:status>)
STATUS_TEXT: Final = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 207: "Multi-Status",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 412: "Precondition failed",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 418: "I'm a teapot",
    422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    507: "Insufficient Storage",
}

REPORT_NOT_SUPPORTED: Final = SabreError(
    415, "Sabre\\DAV\\Exception\\ReportNotSupported", "", (("d:supported-report", ""),))


# =============================================================================================
# Escaping and hrefs

_TEXT_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def xml_text(value: str) -> str:
    """A text node as libxml's XMLWriter writes it (xmlEncodeSpecialChars): & < > " and CR."""
    if "&" in value or "<" in value or ">" in value or '"' in value or "\r" in value:
        return value.translate(_TEXT_ESCAPES)
    return value


def _char_ref(ch: str) -> str:
    return f"&#x{ord(ch):X};"


def _xml_attr(value: str) -> str:
    """An attribute value as XMLWriter writes it (no document: non-ASCII as hex char refs)."""
    out = []
    for ch in value:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;")
        elif ch == "\n":
            out.append("&#10;")
        elif ch == "\r":
            out.append("&#13;")
        elif ch == "\t":
            out.append("&#9;")
        elif ord(ch) >= 0x80:
            out.append(_char_ref(ch))
        else:
            out.append(ch)
    return "".join(out)


_HREF_BYTES: Final = str.maketrans({
    chr(b): chr(b) if chr(b) in "_-.~()/:@" or (chr(b).isalnum() and b < 0x80) else f"%{b:02x}"
    for b in range(256)})


def encode_href_path(path: str) -> str:
    """Sabre\\HTTP\\encodePath: every UTF-8 byte outside A-Z a-z 0-9 _-.~()/:@ as lowercase %xx."""
    if path.isascii():
        return path if path.isalnum() else path.translate(_HREF_BYTES)
    return path.encode("utf-8", "surrogateescape").decode("latin-1").translate(_HREF_BYTES)


# =============================================================================================
# Parsing: a small tree from defusedxml's parser, with the prefixes and empty-tag flags that
# Sabre's XMLReader sees and ElementTree would lose.


class _Element:
    __slots__ = ("ns", "local", "prefix", "nsdefs", "attrs", "children", "empty_tag")

    def __init__(self, ns: str, local: str, prefix: str | None,
                 nsdefs: list[tuple[str, str]], attrs: list[tuple[str, str, str | None, str]]):
        self.ns = ns
        self.local = local
        self.prefix = prefix
        #: namespace declarations on this element: (prefix, uri), '' = default namespace
        self.nsdefs = nsdefs
        #: (ns, local, prefix, value)
        self.attrs = attrs
        self.children: list[_Element | str] = []
        #: written as <x/> (Sabre reads that as "no value", <x></x> as an empty string)
        self.empty_tag = False

    @property
    def clark(self) -> str:
        return f"{{{self.ns}}}{self.local}"

    def elements(self) -> list[_Element]:
        return [c for c in self.children if isinstance(c, _Element)]

    def text(self) -> str:
        """The text Sabre's readers collect: text nodes, whitespace-only ones skipped."""
        return "".join(c for c in self.children if isinstance(c, str) and not _blank(c))


def _blank(s: str) -> bool:
    return not s.strip(" \t\r\n")


def _split_clark(name: str) -> tuple[str, str]:
    if name[:1] == "{":
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


class _TreeBuilder:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.expat: object = None
        self.pending: list[tuple[str, str]] = []
        self.scopes: list[list[tuple[str, str]]] = []
        self.stack: list[_Element] = []
        self.root: _Element | None = None

    def _prefix_for(self, ns: str, *, attribute: bool = False) -> str | None:
        if not ns:
            return None
        if ns == "http://www.w3.org/XML/1998/namespace":
            return "xml"
        for scope in reversed(self.scopes):
            for prefix, uri in scope:
                if uri == ns and (prefix or not attribute):
                    return prefix
        return None

    def start_ns(self, prefix: str, uri: str) -> None:
        self.pending.append((prefix or "", uri))

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        nsdefs, self.pending = self.pending, []
        self.scopes.append(nsdefs)
        ns, local = _split_clark(tag)
        attributes = []
        for name, value in attrs.items():
            ans, alocal = _split_clark(name)
            attributes.append((ans, alocal, self._prefix_for(ans, attribute=True), value))
        element = _Element(ns, local, self._prefix_for(ns), nsdefs, attributes)
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def data(self, text: str) -> None:
        children = self.stack[-1].children
        if children and isinstance(children[-1], str):
            children[-1] += text
        else:
            children.append(text)

    def end(self, tag: str) -> None:
        element = self.stack.pop()
        self.scopes.pop()
        if not element.children:
            # expat reports <x/> and <x></x> alike; only the former ends right after "/>"
            index = getattr(self.expat, "CurrentByteIndex", -1)
            element.empty_tag = index >= 2 and self.body[index - 2:index] == b"/>"

    def close(self) -> _Element | None:
        return self.root


def _parse(body: bytes, what: str) -> _Element:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"The {what} request body is larger than 1 MiB; it was refused")
    if not body:
        raise BadRequest(f"The {what} request body is empty; an XML document is required")
    builder = _TreeBuilder(body)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
    builder.expat = parser.parser
    try:
        parser.feed(body)
        root = parser.close()
    except DTDForbidden:
        raise BadRequest(f"The {what} request body contains a document type declaration "
                         "(<!DOCTYPE>); DTDs are refused, send plain XML") from None
    except EntitiesForbidden:
        raise BadRequest(f"The {what} request body declares entities; they are refused, "
                         "send plain XML") from None
    except DefusedXmlException as exc:
        raise BadRequest(f"The {what} request body was refused: {exc}") from None
    except ParseError as exc:
        raise BadRequest(f"The {what} request body is not well-formed XML: {exc}") from None
    if not isinstance(root, _Element):
        raise BadRequest(f"The {what} request body has no root element")
    return root


def _expect(root: _Element, clark: str) -> None:
    if root.clark != clark:
        raise BadRequest(f"Expected {clark} but received {root.clark} as the root element")


# --- PROPFIND --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropRequest:
    """What a PROPFIND (or REPORT) asks for. `props` are Clark names in request order, unique.

    Sabre 4.7 treats every request without property names as allprop: an empty body,
    <d:allprop/>, <d:propname/> (not implemented by Sabre) and an empty <d:prop/>.
    """

    kind: Literal["allprop", "propname", "prop"]
    props: tuple[str, ...] = ()

    @property
    def is_allprop(self) -> bool:
        return not self.props


ALLPROP: Final = PropRequest("allprop")


def parse_propfind(body: bytes) -> PropRequest:
    """A PROPFIND body; b'' is allprop. Raises BadRequest like Sabre's CorePlugin."""
    if not body:
        return ALLPROP
    root = _parse(body, "PROPFIND")
    _expect(root, "{DAV:}propfind")
    props: list[str] | None = None
    propname = False
    for child in root.elements():
        if child.clark == "{DAV:}prop":
            # Sabre's KeyValue: a later <d:prop> replaces an earlier one
            props = [c.clark for c in child.elements()]
        elif child.clark == "{DAV:}propname":
            propname = True
    if props is not None:
        return PropRequest("prop", tuple(dict.fromkeys(props)))
    return PropRequest("propname") if propname else ALLPROP


# --- PROPPATCH -------------------------------------------------------------------------------


class RawXml(str):
    """The inner XML of a complex property value, as libxml's readInnerXml gives it: each
    top-level element redeclares the namespaces it uses, non-ASCII text as &#xHH; refs."""

    __slots__ = ()


def parse_proppatch(body: bytes) -> list[tuple[str, str | None]]:
    """The mutations of a PROPPATCH, in document order, each property once (last value wins,
    first position kept, as PHP's array_merge does).

    Values: None = remove (<d:remove>, and also <x/> inside <d:set>, as Sabre reads it);
    RawXml = a value with child elements; plain str = the text (unescaped, '' for <x></x>).
    """
    root = _parse(body, "PROPPATCH")
    _expect(root, "{DAV:}propertyupdate")
    declared = bool(re.match(rb"\s*<\?xml[^>]*encoding", body))
    mutations: dict[str, str | None] = {}
    for action in root.elements():
        if action.clark not in ("{DAV:}set", "{DAV:}remove"):
            continue
        for prop in action.elements():
            if prop.clark != "{DAV:}prop":
                continue
            for element in prop.elements():
                if action.clark == "{DAV:}remove":
                    mutations[element.clark] = None
                else:
                    mutations[element.clark] = _complex_value(element, declared)
    return list(mutations.items())


def _complex_value(element: _Element, declared_encoding: bool) -> str | None:
    """Sabre\\DAV\\Xml\\Property\\Complex::xmlDeserialize."""
    if element.empty_tag:
        return None
    if element.elements():
        return RawXml(inner_xml(element, declared_encoding=declared_encoding))
    return element.text()


def dead_value_xml(value: str) -> str:
    """The XML text stored for a dead property (NodeExtras.dead): RawXml as is, text escaped."""
    if isinstance(value, RawXml):
        return str(value)
    return xml_text(value)


def tag_names(value: str | None) -> list[str]:
    """The tag names of an oc:tags PROPPATCH value (ownCloud's TagList::xmlDeserialize)."""
    if not value or not isinstance(value, RawXml):
        return []
    root = _parse(f'<r xmlns="urn:x">{value}</r>'.encode(), "oc:tags")
    return [e.text() for e in root.elements() if e.clark == "{http://owncloud.org/ns}tag"]


# libxml's xmlNodeDump without an output encoding: text escapes < > & and turns CR, control
# characters and everything non-ASCII into hexadecimal character references.
_DUMP_TEXT_SPECIAL = re.compile(r"[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\x80-\U0010ffff]")
_DUMP_NAMED: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _dump_text(text: str) -> str:
    return _DUMP_TEXT_SPECIAL.sub(
        lambda m: _DUMP_NAMED.get(m.group()) or _char_ref(m.group()), text)


def _dump_attr(value: str, raw_non_ascii: bool) -> str:
    out = []
    for ch in value:
        if ch in "&<>\"\n\r\t":
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                        "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}[ch])
        elif ord(ch) >= 0x80 and not raw_non_ascii:
            out.append(_char_ref(ch))
        else:
            out.append(ch)
    return "".join(out)


def inner_xml(element: _Element, *, declared_encoding: bool = False) -> str:
    """libxml's xmlTextReaderReadInnerXml: each child copied out of the tree and dumped."""
    parts = []
    for child in element.children:
        if isinstance(child, str):
            parts.append(_dump_text(child))
        else:
            parts.append(_dump_copy(child, declared_encoding))
    return "".join(parts)


def _dump_copy(top: _Element, raw_non_ascii: bool) -> str:
    # xmlStaticCopyNode: a namespace declared outside the copied subtree is added to the
    # subtree's top element, looked up by prefix, in the order the copy meets it.
    added: list[tuple[str, str]] = []

    def need(prefix: str | None, ns: str, scope: list[list[tuple[str, str]]]) -> None:
        if not ns or prefix == "xml":
            return
        key = prefix or ""
        for defs in scope:
            if any(p == key for p, _ in defs):
                return
        if not any(p == key for p, _ in added):
            added.append((key, ns))

    def qname(prefix: str | None, local: str) -> str:
        return f"{prefix}:{local}" if prefix else local

    def dump(el: _Element, scope: list[list[tuple[str, str]]]) -> str:
        scope = [*scope, el.nsdefs]
        need(el.prefix, el.ns, scope)
        attrs = []
        for ans, alocal, aprefix, value in el.attrs:
            need(aprefix, ans, scope)
            attrs.append(f' {qname(aprefix, alocal)}="{_dump_attr(value, raw_non_ascii)}"')
        inner = []
        for child in el.children:
            inner.append(_dump_text(child) if isinstance(child, str) else dump(child, scope))
        decls = el.nsdefs if el is not top else [*el.nsdefs, *added]
        name = qname(el.prefix, el.local)
        head = name + "".join(_xmlns(p, u, raw_non_ascii) for p, u in decls) + "".join(attrs)
        body = "".join(inner)
        return f"<{head}>{body}</{name}>" if el.children else f"<{head}/>"

    # dump() writes an element's start tag after its children, so the top element's tag
    # carries every declaration its subtree needed
    return dump(top, [])


def _xmlns(prefix: str, uri: str, raw_non_ascii: bool) -> str:
    name = f"xmlns:{prefix}" if prefix else "xmlns"
    return f' {name}="{_dump_attr(uri, raw_non_ascii)}"'


# --- LOCK ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockInfo:
    """A LOCK request body. Sabre's default scope is 'shared' unless <d:exclusive/> is given.

    owner_xml: the inner XML of <d:owner> (None when absent), as stored and echoed back.
    """

    scope: Literal["exclusive", "shared"]
    owner_xml: str | None


def parse_lockinfo(body: bytes) -> LockInfo:
    """A LOCK body (an empty body is a refresh, handled by the caller)."""
    root = _parse(body, "LOCK")
    _expect(root, "{DAV:}lockinfo")
    declared = bool(re.match(rb"\s*<\?xml[^>]*encoding", body))
    values = {child.clark: child for child in root.elements()}
    scope: Literal["exclusive", "shared"] = "shared"
    lockscope = values.get("{DAV:}lockscope")
    if lockscope is not None and any(
            e.clark == "{DAV:}exclusive" for e in lockscope.elements()):
        scope = "exclusive"
    owner = values.get("{DAV:}owner")
    owner_xml = None if owner is None else inner_xml(owner, declared_encoding=declared)
    return LockInfo(scope, owner_xml)


# --- REPORT ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A REPORT body: ownCloud's oc:filter-files or oc:search-files.

    The checks ownCloud makes afterwards are the caller's: filter-files without rules ->
    BadRequest 'No filter criteria specified', with a search pattern -> BadRequest 'Search
    pattern cannot be combined with filter'; search-files without pattern -> BadRequest
    'Search pattern cannot be empty', limit defaults to 30.
    """

    name: Literal["filter-files", "search-files"]
    props: tuple[str, ...] = ()
    #: filter-files: any <oc:favorite> rule (whatever its value) filters for favorites
    favorite: bool = False
    systemtags: tuple[str, ...] = ()
    pattern: str | None = None
    limit: int | None = None
    offset: int | None = None


_PHP_INT = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)")


def _php_int(text: str) -> int:
    match = _PHP_INT.match(text)
    return int(match.group(1)) if match else 0


def parse_report(body: bytes) -> Report:
    """A REPORT body. Other report names raise DavError(REPORT_NOT_SUPPORTED) (415)."""
    root = _parse(body, "REPORT")
    if root.ns != OC_NS or root.local not in ("filter-files", "search-files"):
        raise DavError(REPORT_NOT_SUPPORTED)
    name: Literal["filter-files", "search-files"] = (
        "filter-files" if root.local == "filter-files" else "search-files")
    props: tuple[str, ...] = ()
    favorite = False
    tags: list[str] = []
    pattern: str | None = None
    limit: int | None = None
    offset: int | None = None
    for child in root.elements():
        clark = child.clark
        if clark == "{DAV:}prop":
            props = tuple(dict.fromkeys(e.clark for e in child.elements()))
        elif clark == f"{{{OC_NS}}}filter-rules" and name == "filter-files":
            for rule in child.elements():
                if rule.clark == f"{{{OC_NS}}}systemtag":
                    tags.append(rule.text())
                elif rule.clark == f"{{{OC_NS}}}favorite":
                    favorite = True
        elif clark == f"{{{OC_NS}}}search":
            fields = {e.clark: e for e in child.elements()}
            if (el := fields.get(f"{{{OC_NS}}}pattern")) is not None and not el.empty_tag:
                pattern = el.text()
            if (el := fields.get(f"{{{OC_NS}}}limit")) is not None and not el.empty_tag:
                limit = _php_int(el.text())
            if name == "filter-files" and (
                    el := fields.get(f"{{{OC_NS}}}offset")) is not None and not el.empty_tag:
                offset = _php_int(el.text())
    return Report(name, props, favorite, tuple(tags), pattern, limit, offset)


# =============================================================================================
# Writing


#: found properties: (Clark name, inner XML); None = no content, written as <x/>
Found = list[tuple[str, str | None]]


class DavResponse(NamedTuple):
    """One <d:response> of a multistatus: `path` is relative to the writer's base href."""

    path: str
    found: Found
    missing: list[str]
    collection: bool = False


class Multistatus:
    """Writes a 207 body as Sabre does: compact, one line after the XML declaration.

    `base_href` is written as given (Sabre's base URI, e.g. '/remote.php/dav/'); paths are
    percent-encoded (encode_href_path), and collections get a trailing '/'. Namespaces other
    than d/s/oc get prefixes x1, x2, ... in order of first use in the document, declared on
    every element that uses them. With strip_404 (Brief / Prefer: return=minimal) the 404
    propstats are left out. Use start(), response()... , end(), or stream()/render().
    """

    HEAD: Final = (f'<?xml version="1.0"?>\n<d:multistatus{_ROOT_XMLNS}>').encode()
    TAIL: Final = b"</d:multistatus>\n"

    def __init__(self, base_href: str = "", *, strip_404: bool = False) -> None:
        self.base_href = xml_text(base_href)
        self.strip_404 = strip_404
        self._adhoc: dict[str, str] = {}
        self._tags: dict[str, tuple[str, str, str]] = {}
        self._parent: str | None = None
        self._parent_href = ""

    # --- tags ------------------------------------------------------------------------------

    def tags(self, clark: str) -> tuple[str, str, str]:
        """(open tag, close tag, empty element) of a Clark name, assigning xN on first use."""
        tags = _STATIC_TAGS.get(clark)
        if tags is None:
            tags = self._tags.get(clark)
            if tags is None:
                tags = self._tags[clark] = self._make_tags(clark)
        return tags

    def _make_tags(self, clark: str) -> tuple[str, str, str]:
        ns, local = _split_clark(clark)
        if ns in _PREFIXES:
            tags = _tags_for(f"{_PREFIXES[ns]}:{local}", "")
            if len(_STATIC_TAGS) < 4096:  # names chosen by clients stay per writer beyond that
                _STATIC_TAGS[clark] = tags
            return tags
        if not ns:
            return _tags_for(local, ' xmlns=""')
        prefix = self._adhoc.get(ns)
        if prefix is None:
            prefix = self._adhoc[ns] = f"x{len(self._adhoc) + 1}"
        return _tags_for(f"{prefix}:{local}", f' xmlns:{prefix}="{_xml_attr(ns)}"')

    # --- document --------------------------------------------------------------------------

    def start(self) -> bytes:
        return self.HEAD

    def end(self) -> bytes:
        return self.TAIL

    def href(self, path: str, collection: bool = False) -> str:
        """The <d:href> text for `path`: base href + encoded path (+ '/' for collections)."""
        rel = path.strip("/")
        parent, sep, name = rel.rpartition("/")
        if sep:
            # a listing shares its parent: encode that once
            if parent != self._parent:
                self._parent, self._parent_href = parent, encode_href_path(parent)
            text = self._parent_href + "/" + encode_href_path(name)
        else:
            text = encode_href_path(name)
        if collection and text:
            text += "/"
        return self.base_href + text

    def wrap(self, href: str, found: Sequence[str], missing: Sequence[str]) -> str:
        """A <d:response> around already written elements; `missing` may hold Clark names
        (written <x/> after the found ones, which is when they get their xN prefix)."""
        parts = ["<d:response><d:href>", href, "</d:href>"]
        if found:
            parts += ["<d:propstat><d:prop>", *found, _PROPSTAT_END_200]
        if missing and not self.strip_404:
            parts.append("<d:propstat><d:prop>")
            for item in missing:
                parts.append(item if item[0] == "<" else self.tags(item)[2])
            parts.append(_PROPSTAT_END_404)
        elif not found:
            # Sabre\DAV\Xml\Element\Response: a response needs at least one propstat
            parts.append("<d:propstat><d:prop/>"
                         "<d:status>HTTP/1.1 418 I'm a teapot</d:status></d:propstat>")
        parts.append("</d:response>")
        return "".join(parts)

    def response_text(self, path: str, found: Found, missing: Sequence[str],
                      collection: bool = False) -> str:
        tags = self.tags
        elements = []
        for clark, inner in found:
            open_, close, empty = tags(clark)
            elements.append(empty if inner is None else open_ + inner + close)
        return self.wrap(self.href(path, collection), elements, missing)

    def response(self, path: str, found: Found, missing: Sequence[str],
                 collection: bool = False) -> bytes:
        """One <d:response> with a 200 and a 404 propstat (each left out when empty)."""
        return self.response_text(path, found, missing, collection).encode(
            "utf-8", "surrogateescape")

    def propstats(self, path: str, groups: Sequence[tuple[int, Found]],
                  collection: bool = False) -> bytes:
        """A <d:response> with one propstat per (status, properties) group, in that order."""
        tags = self.tags
        parts = ["<d:response><d:href>", self.href(path, collection), "</d:href>"]
        for status, props in groups:
            if not props:
                continue
            parts.append("<d:propstat><d:prop>")
            for clark, inner in props:
                open_, close, empty = tags(clark)
                parts.append(empty if inner is None else open_ + inner + close)
            parts.append(f"</d:prop><d:status>HTTP/1.1 {status} {STATUS_TEXT[status]}"
                         "</d:status></d:propstat>")
        parts.append("</d:response>")
        return "".join(parts).encode("utf-8", "surrogateescape")

    def status_response(self, path: str, status: int, collection: bool = False) -> bytes:
        """A <d:response> without properties: href and <d:status> only."""
        return (f"<d:response><d:href>{self.href(path, collection)}</d:href>"
                f"<d:status>HTTP/1.1 {status} {STATUS_TEXT[status]}</d:status>"
                "</d:response>").encode("utf-8", "surrogateescape")

    def stream(self, responses: Iterable[DavResponse], chunk_bytes: int = 64 * 1024
               ) -> Iterator[bytes]:
        """The whole document in chunks of about `chunk_bytes`, produced as `responses` is read."""
        buffer: list[str] = []
        size = 0
        yield self.HEAD
        for item in responses:
            text = self.response_text(item.path, item.found, item.missing, item.collection)
            buffer.append(text)
            size += len(text)
            if size >= chunk_bytes:
                yield "".join(buffer).encode("utf-8", "surrogateescape")
                buffer.clear()
                size = 0
        buffer.append(self.TAIL.decode())
        yield "".join(buffer).encode("utf-8", "surrogateescape")

    def render(self, responses: Iterable[DavResponse]) -> bytes:
        return b"".join(self.stream(responses))


def _tags_for(qname: str, xmlns: str) -> tuple[str, str, str]:
    return f"<{qname}{xmlns}>", f"</{qname}>", f"<{qname}{xmlns}/>"


_PROPSTAT_END_200: Final = "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
_PROPSTAT_END_404: Final = "</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"


#: tags of d/s/oc names, shared by all writers
_STATIC_TAGS: Final[dict[str, tuple[str, str, str]]] = {}


def render_proppatch(base_href: str, path: str, results: Sequence[tuple[str, int]]) -> bytes:
    """The 207 body of a PROPPATCH: one propstat per status, in order of first appearance.

    Sabre writes the href of a PROPPATCH without the collection slash. `results` are
    (Clark name, status) in Sabre's result order, e.g. [(getlastmodified, 403), (favorite, 424)].
    """
    groups: dict[int, Found] = {}
    for clark, status in results:
        groups.setdefault(status, []).append((clark, None))
    writer = Multistatus(base_href)
    return b"".join((writer.HEAD, writer.propstats(path, list(groups.items())), writer.TAIL))


# --- locks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveLock:
    """A lock as <d:activelock> shows it.

    root_href: written as is (Sabre: base URI + the lock's path, not percent-encoded);
    token None hides <d:locktoken> (public links); depth -1 = infinity; timeout = seconds
    left, -1 = Infinite; owner_xml as parse_lockinfo gave it.
    """

    root_href: str
    token: str | None
    scope: Literal["exclusive", "shared"] = "exclusive"
    depth: int = -1
    timeout: int = -1
    owner_xml: str | None = None

    @classmethod
    def of(cls, lock: Lock, root_href: str, now: int, *, hide_token: bool = False
           ) -> ActiveLock:
        """From a backend Lock; `lock.timeout` counts from `lock.created_at` (as in oC10)."""
        scope: Literal["exclusive", "shared"] = (
            "shared" if lock.scope == "shared" else "exclusive")
        return cls(root_href, None if hide_token else lock.token, scope, lock.depth,
                   lock.timeout - (now - lock.created_at), lock.owner or None)


class _XmlWriter:
    """Just enough of libxml's XMLWriter (indenting or not) for lock discovery."""

    def __init__(self, *, indent: bool) -> None:
        self.indent = indent
        self.out: list[str] = []
        #: open elements: [qname, state ('name' until the start tag is closed), xmlns decls]
        self.stack: list[list[str]] = []
        self.doindent = False
        self.adhoc: dict[str, str] = {}
        self.root_written = False

    def _close_start(self, newline: bool) -> None:
        top = self.stack[-1]
        if top[1] == "name":
            self.out.append(top[2] + ">")
            if newline and self.indent:
                self.out.append("\n")
            top[1] = "text"

    def start(self, clark: str) -> None:
        if self.stack:
            self._close_start(newline=True)
        ns, local = _split_clark(clark)
        xmlns = ""
        if ns in _PREFIXES:
            qname = f"{_PREFIXES[ns]}:{local}"
        elif not ns:
            qname, xmlns = local, ' xmlns=""'
        else:
            prefix = self.adhoc.setdefault(ns, f"x{len(self.adhoc) + 1}")
            qname, xmlns = f"{prefix}:{local}", f' xmlns:{prefix}="{_xml_attr(ns)}"'
        self.stack.append([qname, "name", xmlns])
        if self.indent:
            self.out.append(" " * (len(self.stack) - 1))
        self.out.append("<" + qname)
        if not self.root_written:
            self.out.append(_ROOT_XMLNS)
            self.root_written = True

    def attribute(self, name: str, value: str) -> None:
        self.out.append(f' {name}="{_xml_attr(value)}"')

    def text(self, value: str) -> None:
        self._close_start(newline=False)
        self.out.append(xml_text(value))
        self.doindent = False

    def end(self) -> None:
        qname, state, xmlns = self.stack[-1]
        if state == "name":
            self.out.append(xmlns + "/>")
            self.doindent = True
        else:
            if self.indent and self.doindent:
                self.out.append(" " * (len(self.stack) - 1))
            self.doindent = True
            self.out.append(f"</{qname}>")
        if self.indent:
            self.out.append("\n")
        self.stack.pop()

    def element(self, clark: str, text: str | None = None) -> None:
        self.start(clark)
        if text is not None:
            self.text(text)
        self.end()

    def fragment(self, xml: str) -> None:
        """Sabre\\Xml\\Element\\XmlFragment::xmlSerialize: re-read and re-write `xml`."""
        wrapper = f'<xml-fragment xmlns="http://sabre.io/ns">{xml}</xml-fragment>'
        try:
            root = _parse(wrapper.encode("utf-8", "surrogateescape"), "lock owner")
        except BadRequest:
            self.text(xml)
            return

        def walk(el: _Element) -> None:
            for child in el.children:
                if isinstance(child, str):
                    if not _blank(child):  # XMLReader reports blank text as whitespace
                        self.text(child)
                    continue
                self.start(child.clark)
                for ans, alocal, _prefix, value in child.attrs:
                    if not ans:
                        self.attribute(alocal, value)
                    elif ans in _PREFIXES:
                        self.attribute(f"{_PREFIXES[ans]}:{alocal}", value)
                    else:
                        prefix = self.adhoc.setdefault(ans, f"x{len(self.adhoc) + 1}")
                        self.attribute(f"{prefix}:{alocal}", value)
                        self.stack[-1][2] += f' xmlns:{prefix}="{_xml_attr(ans)}"'
                walk(child)
                self.end()

        walk(root)

    def getvalue(self) -> str:
        return "".join(self.out)


def _write_activelocks(w: _XmlWriter, locks: Iterable[ActiveLock]) -> None:
    """Sabre\\DAV\\Xml\\Property\\LockDiscovery::xmlSerialize."""
    for lock in locks:
        w.start("{DAV:}activelock")
        w.start("{DAV:}lockscope")
        w.element("{DAV:}shared" if lock.scope == "shared" else "{DAV:}exclusive")
        w.end()
        w.start("{DAV:}locktype")
        w.element("{DAV:}write")
        w.end()
        w.start("{DAV:}lockroot")
        w.element("{DAV:}href", lock.root_href)
        w.end()
        w.element("{DAV:}depth", "infinity" if lock.depth == -1 else str(lock.depth))
        w.element("{DAV:}timeout",
                  "Infinite" if lock.timeout == -1 else f"Second-{lock.timeout}")
        if lock.token:
            w.start("{DAV:}locktoken")
            w.element("{DAV:}href", f"opaquelocktoken:{lock.token}")
            w.end()
        if lock.owner_xml:
            w.start("{DAV:}owner")
            w.fragment(lock.owner_xml)
            w.end()
        w.end()


def lockdiscovery_xml(locks: Sequence[ActiveLock]) -> str | None:
    """Inner XML of {DAV:}lockdiscovery inside a multistatus; None (<d:lockdiscovery/>) if none.

    Unknown namespaces inside an owner are numbered x1... within this value, not the document.
    """
    if not locks:
        return None
    w = _XmlWriter(indent=False)
    w.root_written = True
    _write_activelocks(w, locks)
    return w.getvalue()


def render_lock_response(lock: ActiveLock) -> bytes:
    """The body of a successful LOCK: Sabre's Service::write, which indents by one space."""
    w = _XmlWriter(indent=True)
    w.out.append('<?xml version="1.0"?>\n')
    w.start("{DAV:}prop")
    w.start("{DAV:}lockdiscovery")
    _write_activelocks(w, [lock])
    w.end()
    w.end()
    return w.getvalue().encode("utf-8", "surrogateescape")


SUPPORTEDLOCK_XML: Final = (
    "<d:lockentry><d:lockscope><d:exclusive/></d:lockscope><d:locktype><d:write/></d:locktype>"
    "</d:lockentry><d:lockentry><d:lockscope><d:shared/></d:lockscope><d:locktype><d:write/>"
    "</d:locktype></d:lockentry>")
