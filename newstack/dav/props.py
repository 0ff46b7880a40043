"""The value of every WebDAV property ownCloud 10 serves, as the inner XML Sabre writes.

render_node_props() answers for a file or folder (REFERENCE §6.3), render_trash_props() for a
trash-bin entry (§6.8), render_version_props() for a file version (§6.9). Results go to
newstack.dav.xml.Multistatus; the request comes from newstack.dav.xml.parse_propfind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from typing import Final

from bridge.oc10.formats import PERM_CREATE, PERM_DELETE, dav_permissions, rfc1123
from newstack.backend import Node, NodeExtras, Quota, TrashItem, Version
from newstack.dav.xml import (
    NAMESPACES,
    SUPPORTEDLOCK_XML,
    ActiveLock,
    Found,
    Multistatus,
    PropRequest,
    lockdiscovery_xml,
    xml_text,
)

D: Final = "{DAV:}"
OC: Final = "{http://owncloud.org/ns}"
OCS: Final = "{http://open-collaboration-services.org/ns}"

#: allprop in Sabre's order (PropFind::ALLPROPS); what a node lacks is left out, not 404
ALLPROP_NAMES: Final = (f"{D}getlastmodified", f"{D}getcontentlength", f"{D}resourcetype",
                        f"{D}quota-used-bytes", f"{D}quota-available-bytes", f"{D}getetag",
                        f"{D}getcontenttype")
ALLPROP_FILE: Final = (f"{D}getlastmodified", f"{D}getcontentlength", f"{D}resourcetype",
                       f"{D}getetag", f"{D}getcontenttype")
ALLPROP_DIR: Final = (f"{D}getlastmodified", f"{D}resourcetype", f"{D}quota-used-bytes",
                      f"{D}quota-available-bytes", f"{D}getetag")

#: never looked up among dead properties (AbstractCustomPropertiesBackend::$ignoredProperties)
IGNORED_DEAD: Final = frozenset({
    f"{D}getcontentlength", f"{D}getcontenttype", f"{D}getetag", f"{D}quota-used-bytes",
    f"{D}quota-available-bytes", f"{OC}permissions", f"{OC}downloadURL", f"{OC}dDC",
    f"{OC}size"})

#: Server::getAllowedMethods for an existing node, with the Locks plugin's LOCK and UNLOCK
ALLOWED_METHODS: Final = ("OPTIONS", "GET", "HEAD", "DELETE", "PROPFIND", "PUT", "PROPPATCH",
                          "COPY", "MOVE", "REPORT", "LOCK", "UNLOCK")
SUPPORTED_METHOD_SET_XML: Final = "".join(
    f'<d:supported-method name="{m}"/>' for m in ALLOWED_METHODS)

_MASK_FILE_SHARE: Final = ~(PERM_CREATE | PERM_DELETE)
_NO_EXTRAS: Final = NodeExtras()


@dataclass(frozen=True)
class PropContext:
    """What property values need beyond the node: per request, shared by all its nodes.

    privatelink_base: e.g. 'http://host/index.php/f/' ('' leaves oc:privatelink out);
    comments_base: e.g. '/remote.php/dav/comments/files/' ('' leaves oc:comments-href out);
    quota: of the user whose folders are listed; its `available` is every folder's
    d:quota-available-bytes (None = unlimited, -3), while d:quota-used-bytes is each folder's
    own size, as OC_Helper::getStorageInfo computes it. is_public_link strips S and M from
    oc:permissions.
    """

    instance_id: str
    data_fingerprint: str = ""
    privatelink_base: str = ""
    comments_base: str = ""
    owner_display_names: Mapping[str, str] = field(default_factory=dict)
    quota: Quota | None = None
    is_public_link: bool = False

    # escaped once per context ---------------------------------------------------------------
    @cached_property
    def _instance_id_xml(self) -> str:
        return xml_text(self.instance_id)

    @cached_property
    def _fingerprint_xml(self) -> str:
        return xml_text(self.data_fingerprint)

    @cached_property
    def _privatelink_xml(self) -> str:
        return xml_text(self.privatelink_base)

    @cached_property
    def _comments_xml(self) -> str:
        return xml_text(self.comments_base)

    @cached_property
    def _available_xml(self) -> str:
        return str(self.quota.available) if self.quota is not None else "-3"

    @cached_property
    def _owner_xml(self) -> dict[str, tuple[str, str]]:
        return {}

    def owner_xml(self, uid: str) -> tuple[str, str]:
        """(escaped uid, escaped display name); the uid stands in for an unknown name."""
        cache = self._owner_xml
        pair = cache.get(uid)
        if pair is None:
            pair = cache[uid] = (xml_text(uid),
                                 xml_text(self.owner_display_names.get(uid, uid)))
        return pair


# --- small fast formatters ---------------------------------------------------------------------

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                  "Nov", "Dec")
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_HOUR_MINUTE: Final = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SECOND: Final = tuple(f"{s:02d} GMT" for s in range(60))
_day_prefix: dict[int, str] = {}


def http_date(ts: int) -> str:
    """Sabre\\HTTP\\toDate: 'Tue, 06 Mar 2018 22:10:00 GMT' (same as formats.rfc1123, faster)."""
    days, secs = divmod(ts, 86400)
    prefix = _day_prefix.get(days)
    if prefix is None:
        try:
            d = date.fromordinal(_EPOCH_ORDINAL + days)
        except (ValueError, OverflowError):
            return rfc1123(ts)
        prefix = f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month]} {d.year:04d} "
        if len(_day_prefix) < 100_000:
            _day_prefix[days] = prefix
    minutes, seconds = divmod(secs, 60)
    return prefix + _HOUR_MINUTE[minutes] + _SECOND[seconds]


_letters: dict[tuple[int, bool, bool, bool], str] = {}


def _permission_letters(bits: int, is_dir: bool, public: bool, shared: bool = False) -> str:
    key = (bits, is_dir, public, shared)
    letters = _letters.get(key)
    if letters is None:
        letters = dav_permissions(bits, is_dir=is_dir, shared=shared)
        if public:  # public links hide where an item is mounted from
            letters = letters.replace("S", "").replace("M", "")
        letters = _letters[key] = letters
    return letters


_texts: dict[str, str] = {}


def _cached_text(value: str) -> str:
    """xml_text for values that repeat across nodes (mimetypes)."""
    out = _texts.get(value)
    if out is None:
        out = xml_text(value)
        if len(_texts) < 10_000:
            _texts[value] = out
    return out


def _etag_xml(etag: str) -> str:
    if etag.isalnum():
        return f"&quot;{etag}&quot;"
    return f"&quot;{xml_text(etag)}&quot;"


def _checksums_xml(checksum: str) -> str:
    """ownCloud's ChecksumList: one <oc:checksum> per ','-separated part (the DB uses spaces)."""
    if "," not in checksum:
        return "<oc:checksum>" + xml_text(checksum) + "</oc:checksum>"
    return "".join([f"<oc:checksum>{xml_text(part)}</oc:checksum>"
                    for part in checksum.split(",")])


# --- node properties ---------------------------------------------------------------------------
#
# Each property is an expression over n (Node), x (NodeExtras), c (PropContext) and lk (locks).
# A _Spec says for which kind of node it exists ('file', 'dir' or both), under which extra
# condition (normally true, e.g. a known mtime), and gives its inner XML, which may be None
# (an element without content) only where `maybe_empty` says so. The functions rendering a
# request are generated from these once per distinct request, so a listing costs no call per
# property: a fast path per kind of node writes the whole <d:response> in one string, a
# general path covers dead properties and the rare conditions.


@dataclass(frozen=True)
class _Spec:
    value: str
    kinds: str = "both"
    cond: str | None = None
    maybe_empty: bool = False
    dir_value: str | None = None
    #: fast path only: f-string text of the value, and a condition it needs besides `cond`
    fast: str | None = None
    fast_cond: str | None = None
    #: fast path only, for maybe_empty values: when the element is empty
    fast_empty: str | None = None

    def applies(self, is_dir: bool) -> bool:
        return self.kinds == "both" or self.kinds == ("dir" if is_dir else "file")

    def value_for(self, is_dir: bool) -> str:
        return self.dir_value if is_dir and self.dir_value is not None else self.value

    @property
    def present(self) -> str | None:
        """The whole runtime condition (None = always)."""
        parts = {"both": [], "dir": ["n.is_dir"], "file": ["not n.is_dir"]}[self.kinds]
        if self.cond:
            parts.append(f"({self.cond})")
        return " and ".join(parts) or None

    @property
    def any_value(self) -> str:
        if self.dir_value is None:
            return self.value
        return f"({self.dir_value} if n.is_dir else {self.value})"


NODE_PROPS: Final[dict[str, _Spec]] = {
    f"{D}resourcetype": _Spec("None", maybe_empty=True, dir_value='"<d:collection/>"'),
    # Node::getLastModified gives 0 for an unknown mtime and Sabre leaves a falsy one out
    f"{D}getlastmodified": _Spec("http_date(n.mtime)", cond="n.mtime"),
    f"{D}getetag": _Spec("etag_xml(n.etag)", fast="&quot;{n.etag}&quot;",
                         fast_cond="n.etag.isalnum()"),
    f"{D}getcontentlength": _Spec("str(n.size)", "file", "n.size >= 0", fast="{n.size}"),
    f"{D}getcontenttype": _Spec("cached_text(n.mimetype)", "file"),
    # OC_Helper::getStorageInfo: 'used' is the size of this very folder, 0 when unknown
    f"{D}quota-used-bytes": _Spec('str(n.size) if n.size > 0 else "0"', "dir"),
    f"{D}quota-available-bytes": _Spec("c._available_xml", "dir"),
    f"{D}supportedlock": _Spec("SUPPORTEDLOCK_XML"),
    f"{D}lockdiscovery": _Spec("lockdiscovery_xml(lk)", maybe_empty=True, fast_empty="not lk"),
    f"{D}supported-method-set": _Spec("SUPPORTED_METHOD_SET_XML"),
    f"{OC}id": _Spec('f"{n.fileid:08d}" + c._instance_id_xml', cond="n.fileid",
                     fast="{n.fileid:08d}{c._instance_id_xml}"),
    f"{OC}fileid": _Spec("str(n.fileid)", fast="{n.fileid}"),
    f"{OC}permissions": _Spec("permission_letters(n.permissions, n.is_dir, c.is_public_link, "
                              "n.shared)",
                              fast="{PERMISSIONS[n.is_dir][n.permissions]}",
                              fast_cond="0 <= n.permissions < 32 and not c.is_public_link "
                                        "and not n.shared"),
    # Node::getSharePermissions: files never carry CREATE or DELETE
    # (in a received share: the share's permissions, whatever the node's own bits)
    f"{OCS}share-permissions": _Spec(
        "str((n.permissions if n.share_permissions is None else n.share_permissions)"
        " & MASK_FILE_SHARE)",
        dir_value="str(n.permissions if n.share_permissions is None else n.share_permissions)",
        fast="{n.permissions if n.is_dir else n.permissions & MASK_FILE_SHARE}",
        fast_cond="n.share_permissions is None"),
    f"{OC}size": _Spec("str(n.size)", cond="n.size >= 0", fast="{n.size}"),
    f"{OC}owner-id": _Spec("c.owner_xml(n.owner)[0]"),
    f"{OC}owner-display-name": _Spec("c.owner_xml(n.owner)[1]"),
    f"{OC}privatelink": _Spec("c._privatelink_xml + str(n.fileid)", cond="c.privatelink_base",
                              fast="{c._privatelink_xml}{n.fileid}"),
    f"{OC}data-fingerprint": _Spec("c._fingerprint_xml"),
    # local and home storages have no direct download: PHP false, written as <x></x>
    f"{OC}downloadURL": _Spec('""', "file"),
    f"{OC}checksums": _Spec("checksums_xml(n.checksum)", "file", "n.checksum"),
    f"{OC}share-types": _Spec("share_types_xml(x.share_types)", maybe_empty=True,
                              fast_empty="not x.share_types"),
    f"{OC}favorite": _Spec('"1" if x.favorite else "0"', fast='{"1" if x.favorite else "0"}'),
    f"{OC}tags": _Spec("tags_xml(x.tags)", maybe_empty=True, fast_empty="not x.tags"),
    f"{OC}comments-count": _Spec("str(x.comments_count)", fast="{x.comments_count}"),
    f"{OC}comments-unread": _Spec("str(x.comments_unread)", fast="{x.comments_unread}"),
    f"{OC}comments-href": _Spec("c._comments_xml + str(n.fileid)", cond="c.comments_base",
                                fast="{c._comments_xml}{n.fileid}"),
}

TRASH_PROPS: Final = frozenset({
    f"{OC}trashbin-original-filename", f"{OC}trashbin-original-location",
    f"{OC}trashbin-delete-timestamp", f"{OC}trashbin-delete-datetime"})
VERSION_PROPS: Final = frozenset({
    f"{OC}meta-version-edited-by", f"{OC}meta-version-edited-by-name",
    f"{OC}meta-version-tag"})

#: every property this module can answer (anything else is 404 unless a dead property)
KNOWN_PROPS: Final = frozenset(NODE_PROPS) | TRASH_PROPS | VERSION_PROPS


def _share_types_xml(types: tuple[int, ...]) -> str | None:
    if not types:
        return None
    return "".join([f"<oc:share-type>{t}</oc:share-type>" for t in types])


def _tags_xml(tags: tuple[str, ...]) -> str | None:
    if not tags:
        return None
    return "".join([f"<oc:tag>{xml_text(t)}</oc:tag>" for t in tags])


_GLOBALS: Final[dict[str, object]] = {
    "PERMISSIONS": {is_dir: tuple(dav_permissions(bits, is_dir=is_dir) for bits in range(32))
                    for is_dir in (False, True)},
    "http_date": http_date, "etag_xml": _etag_xml, "cached_text": _cached_text,
    "SUPPORTEDLOCK_XML": SUPPORTEDLOCK_XML, "SUPPORTED_METHOD_SET_XML": SUPPORTED_METHOD_SET_XML,
    "lockdiscovery_xml": lockdiscovery_xml, "permission_letters": _permission_letters,
    "MASK_FILE_SHARE": _MASK_FILE_SHARE, "checksums_xml": _checksums_xml,
    "share_types_xml": _share_types_xml, "tags_xml": _tags_xml,
}

PairsRenderer = Callable[[Node, NodeExtras, PropContext, Sequence[ActiveLock]],
                         tuple[Found, list[str]]]
ResponseRenderer = Callable[[Node, NodeExtras, PropContext, Sequence[ActiveLock], Multistatus,
                             str], str]


def _names(request: PropRequest) -> tuple[str, ...]:
    return ALLPROP_NAMES if request.is_allprop else request.props


def _generate(name: str, args: str, lines: list[str], namespace: dict[str, object]
              ) -> Callable[..., object]:
    source = f"def {name}({args}):\n" + "\n".join("    " + line for line in lines) + "\n"
    scope = dict(_GLOBALS)
    scope.update(namespace)
    exec(compile(source, f"<dav props {name}>", "exec"), scope)
    return scope[name]  # type: ignore[return-value]


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


@lru_cache(maxsize=512)
def _pairs_renderer(request: PropRequest) -> PairsRenderer:
    """render_node_props for one request: (found, missing) as names and values."""
    consts: dict[str, object] = {}
    lines = ["found = []", "missing = []", "fa = found.append", "ma = missing.append",
             "dead = x.dead"]
    keep_missing = not request.is_allprop
    for i, name in enumerate(_names(request)):
        consts[f"K{i}"] = name
        spec = NODE_PROPS.get(name)
        otherwise = []
        if name not in IGNORED_DEAD:
            otherwise += [f"if dead and K{i} in dead:", f"    fa((K{i}, dead[K{i}]))"]
            if keep_missing:
                otherwise += ["else:", f"    ma(K{i})"]
        elif keep_missing:
            otherwise += [f"ma(K{i})"]
        if spec is None:
            lines += otherwise
        elif spec.present is None:
            lines.append(f"fa((K{i}, {spec.any_value}))")
        else:
            lines += [f"if {spec.present}:", f"    fa((K{i}, {spec.any_value}))"]
            if otherwise:
                lines += ["else:", *_indent(otherwise)]
    lines.append("return found, missing")
    return _generate("render_pairs", "n, x, c, lk", lines, consts)  # type: ignore[return-value]


def _static_tags(clark: str) -> tuple[str, str, str] | None:
    for uri, prefix in NAMESPACES:
        if clark.startswith(f"{{{uri}}}"):
            qname = f"{prefix}:{clark[len(uri) + 2:]}"
            return f"<{qname}>", f"</{qname}>", f"<{qname}/>"
    return None


def _literal(text: str) -> str:
    """`text` as the literal part of an f-string."""
    return (text.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}")
            .replace('"', '\\"'))


@lru_cache(maxsize=512)
def _response_renderer(request: PropRequest, strip_404: bool) -> ResponseRenderer:
    """node_response for one request: the whole <d:response> as one string.

    Names outside d/s/oc get their tags from the writer when written (their xN prefix is per
    document), 404 ones after the found ones, as Sabre numbers them.
    """
    consts: dict[str, object] = {}
    names = _names(request)
    keep_missing = not request.is_allprop and not strip_404
    lines = ["tags = w.tags"]
    for i, name in enumerate(names):
        consts[f"K{i}"] = name
    for is_dir in (True, False):
        lines += _fast_path(names, is_dir, keep_missing, consts)
    # general path: dead properties or an unusual node
    lines += ["found = []", "missing = []", "fa = found.append", "ma = missing.append",
              "dead = x.dead"]
    for i, name in enumerate(names):
        static = _static_tags(name)
        if static is not None:
            open_, close, empty = (repr(t) for t in static)
            pre: list[str] = []
        else:
            open_, close, empty = "t[0]", "t[1]", "t[2]"
            pre = [f"t = tags(K{i})"]
        missing_item = empty if static is not None else f"K{i}"
        spec = NODE_PROPS.get(name)
        otherwise = []
        if name not in IGNORED_DEAD:
            otherwise += [f"if dead and K{i} in dead:", *_indent(pre),
                          f"    fa({open_} + dead[K{i}] + {close})"]
            if keep_missing:
                otherwise += ["else:", f"    ma({missing_item})"]
        elif keep_missing:
            otherwise += [f"ma({missing_item})"]
        if spec is None:
            lines += otherwise
            continue
        if spec.maybe_empty:
            emit = [f"v = {spec.any_value}", *pre,
                    f"fa({empty} if v is None else {open_} + v + {close})"]
        else:
            emit = [*pre, f"fa({open_} + ({spec.any_value}) + {close})"]
        if spec.present is None:
            lines += emit
        else:
            lines += [f"if {spec.present}:", *_indent(emit)]
            if otherwise:
                lines += ["else:", *_indent(otherwise)]
    lines.append("return w.wrap(href, found, missing)")
    return _generate("render_response", "n, x, c, lk, w, href", lines,  # type: ignore[return-value]
                     consts)


def _fast_path(names: tuple[str, ...], is_dir: bool, keep_missing: bool,
               consts: dict[str, object]) -> list[str]:
    """Lines answering a node of one kind whose normally-true conditions all hold and that
    has no dead properties: one f-string, the 404 block a constant where it can be."""
    conds = ["n.is_dir" if is_dir else "not n.is_dir", "not x.dead"]
    pre: list[str] = []
    pieces: list[str] = []
    missing: list[tuple[int, tuple[str, str, str] | None]] = []
    for i, name in enumerate(names):
        spec = NODE_PROPS.get(name)
        static = _static_tags(name)
        if spec is None or not spec.applies(is_dir):
            missing.append((i, static))
            continue
        for cond in (spec.cond, spec.fast_cond):
            if cond and f"({cond})" not in conds:
                conds.append(f"({cond})")
        value = spec.value_for(is_dir)
        if static is not None:
            open_, close, empty = (_literal(t) for t in static)
        else:
            pre.append(f"t{i} = tags(K{i})")
            open_, close, empty = f"{{t{i}[0]}}", f"{{t{i}[1]}}", f"{{t{i}[2]}}"
        if value == "None":
            pieces.append(empty)
        elif value.startswith('"') and value.endswith('"') and '"' not in value[1:-1]:
            pieces.append(open_ + _literal(value[1:-1]) + close)
        elif spec.maybe_empty:
            consts[f"O{i}"], consts[f"C{i}"], consts[f"E{i}"] = static or ("", "", "")
            e, o, c = (f"E{i}", f"O{i}", f"C{i}") if static else (
                f"t{i}[2]", f"t{i}[0]", f"t{i}[1]")
            if spec.fast_empty:
                pieces.append(f"{{{e} if {spec.fast_empty} else {o} + {value} + {c}}}")
            else:
                pre.append(f"v{i} = {value}")
                pieces.append(f"{{{e} if v{i} is None else {o} + v{i} + {c}}}")
        else:
            fast = spec.fast or f"{{{value}}}"
            # the kind is known here; 'n.is_dir' only ever stands as a whole word
            pieces.append(open_ + fast.replace("n.is_dir", repr(is_dir)) + close)
    body = ["<d:response><d:href>{href}</d:href>"]
    if pieces:
        body += ["<d:propstat><d:prop>", *pieces,
                 _literal("</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>")]
    if missing and keep_missing:
        if all(static is not None for _, static in missing):
            body.append(_literal("<d:propstat><d:prop>" + "".join(
                static[2] for _, static in missing if static is not None)
                + "</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"))
        else:
            block = " + ".join(repr(static[2]) if static is not None else f"tags(K{i})[2]"
                               for i, static in missing)
            pre.append(f"m = {block}")
            body.append("<d:propstat><d:prop>{m}</d:prop>"
                        "<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>")
    elif not pieces:
        body.append(_literal("<d:propstat><d:prop/><d:status>HTTP/1.1 418 I'm a teapot"
                             "</d:status></d:propstat>"))
    body.append("</d:response>")
    text = "".join(body)
    return [f"if {' and '.join(conds)}:", *_indent(pre), f'    return f"{text}"']


def render_node_props(node: Node, extras: NodeExtras | None, ctx: PropContext,
                      request: PropRequest, *, locks: Sequence[ActiveLock] = ()
                      ) -> tuple[Found, list[str]]:
    """(found, missing) for one file or folder, both in request order as Sabre lists them.

    found holds (Clark name, inner XML) — None for an element without content (<x/>), ''
    for an empty string (<x></x>); missing the names for the 404 propstat, which is always
    empty for allprop. Dead properties (extras.dead, raw XML) answer what no live property
    does. `locks` feed {DAV:}lockdiscovery. The caller hides nodes without READ (ownCloud
    answers 404 for them). For listings node_response()/stream_nodes() are much faster.
    """
    return _pairs_renderer(request)(node, extras if extras is not None else _NO_EXTRAS, ctx,
                                    locks)


def node_response(writer: Multistatus, path: str, node: Node, extras: NodeExtras | None,
                  ctx: PropContext, request: PropRequest, *,
                  locks: Sequence[ActiveLock] = ()) -> str:
    """One whole <d:response> for `node` at `path` (relative to the writer's base href),
    the same text as writer.response_text(path, *render_node_props(...), node.is_dir)."""
    return _response_renderer(request, writer.strip_404)(
        node, extras if extras is not None else _NO_EXTRAS, ctx, locks, writer,
        writer.href(path, node.is_dir))


def stream_nodes(writer: Multistatus, entries: Iterable[tuple[str, Node, NodeExtras | None]],
                 ctx: PropContext, request: PropRequest, *,
                 locks: Callable[[Node], Sequence[ActiveLock]] | None = None,
                 chunk_bytes: int = 64 * 1024) -> Iterator[bytes]:
    """A whole PROPFIND body for (path, node, extras) entries, in chunks of ~chunk_bytes."""
    render = _response_renderer(request, writer.strip_404)
    href = writer.href
    buffer: list[str] = []
    size = 0
    yield writer.start()
    for path, node, extras in entries:
        text = render(node, extras if extras is not None else _NO_EXTRAS, ctx,
                      locks(node) if locks is not None else (), writer,
                      href(path, node.is_dir))
        buffer.append(text)
        size += len(text)
        if size >= chunk_bytes:
            yield "".join(buffer).encode("utf-8", "surrogateescape")
            buffer.clear()
            size = 0
    buffer.append(writer.end().decode())
    yield "".join(buffer).encode("utf-8", "surrogateescape")


def select_props(request: PropRequest, available: Mapping[str, str | None]
                 ) -> tuple[Found, list[str]]:
    """(found, missing) for a node whose properties are known up front (e.g. the collection
    roots of trash-bin and versions: {'{DAV:}resourcetype': '<d:collection/>'})."""
    found: Found = []
    missing: list[str] = []
    for name in _names(request):
        if name in available:
            found.append((name, available[name]))
        else:
            missing.append(name)
    return found, ([] if request.is_allprop else missing)


# --- trash bin and versions ---------------------------------------------------------------------


def _locks_props() -> dict[str, str | None]:
    # the Locks plugin answers on every node; ownCloud has no locks for these
    return {f"{D}supportedlock": SUPPORTEDLOCK_XML, f"{D}lockdiscovery": None}


def trash_values(item: TrashItem, node: Node | None = None) -> dict[str, str | None]:
    """Every property of a trash-bin entry (TrashBinPlugin + Sabre's core props).

    `node` is a child inside a trashed folder (its path below item.node.path); None for the
    trashed item itself. Folders have no getetag/getcontenttype/getcontentlength there.
    """
    entry = node if node is not None else item.node
    prefix = "" if item.original_location in (".", "") else item.original_location + "/"
    if node is None or node.path == item.node.path:
        name = item.original_name
        location = prefix + item.original_name
    else:
        name = node.name
        sub = node.path[len(item.node.path):].lstrip("/")
        location = f"{prefix}{item.original_name}/{sub}"
    values: dict[str, str | None] = {
        f"{D}resourcetype": "<d:collection/>" if entry.is_dir else None,
    }
    if entry.mtime:
        values[f"{D}getlastmodified"] = http_date(entry.mtime)
    if not entry.is_dir:
        values[f"{D}getcontentlength"] = str(entry.size)
        values[f"{D}getetag"] = _etag_xml(entry.etag)
        values[f"{D}getcontenttype"] = xml_text(entry.mimetype)
    values[f"{OC}trashbin-original-filename"] = xml_text(name)
    values[f"{OC}trashbin-original-location"] = xml_text(location)
    values[f"{OC}trashbin-delete-timestamp"] = str(item.deleted_at)
    values[f"{OC}trashbin-delete-datetime"] = http_date(item.deleted_at)
    values.update(_locks_props())
    return values


def render_trash_props(item: TrashItem, request: PropRequest, node: Node | None = None
                       ) -> tuple[Found, list[str]]:
    """(found, missing) for an entry of remote.php/dav/trash-bin/<uid>/ (see trash_values)."""
    return select_props(request, trash_values(item, node))


def version_values(version: Version, *, edited_by: str = "", edited_by_name: str = "",
                   tag: str = "") -> dict[str, str | None]:
    """Every property of a version under remote.php/dav/meta/<fileid>/v (MetaFile, MetaPlugin)."""
    values: dict[str, str | None] = {}
    if version.version_id:
        values[f"{D}getlastmodified"] = http_date(version.version_id)
    values.update({
        f"{D}getcontentlength": str(version.size),
        f"{D}resourcetype": None,
        f"{D}getetag": _etag_xml(version.etag),
        f"{D}getcontenttype": xml_text(version.mimetype),
        f"{OC}meta-version-edited-by": xml_text(edited_by),
        f"{OC}meta-version-edited-by-name": xml_text(edited_by_name),
        f"{OC}meta-version-tag": xml_text(tag),
    })
    values.update(_locks_props())
    return values


def render_version_props(version: Version, request: PropRequest, *, edited_by: str = "",
                         edited_by_name: str = "", tag: str = "") -> tuple[Found, list[str]]:
    """(found, missing) for one version (see version_values)."""
    return select_props(request, version_values(version, edited_by=edited_by,
                                                edited_by_name=edited_by_name, tag=tag))


# --- benchmark ---------------------------------------------------------------------------------

#: what the desktop client's sync PROPFIND asks for, plus what the web UI adds
SYNC_PROPS: Final = (
    f"{D}resourcetype", f"{D}getlastmodified", f"{D}getcontentlength", f"{D}getetag",
    f"{OC}id", f"{OC}downloadURL", f"{OC}dDC", f"{OC}permissions", f"{OC}checksums",
    f"{OC}zsync", f"{OC}data-fingerprint", f"{OC}share-types", f"{OC}size", f"{OC}fileid",
    f"{OCS}share-permissions")


def bench_render(nodes: int = 1000, rounds: int = 20) -> float:
    """Milliseconds to render `nodes` nodes (props + multistatus bytes), best of `rounds`.

    A Depth 1 listing of one folder with `nodes` children (a tenth of them folders), asking
    SYNC_PROPS, rendered by stream_nodes() as a PROPFIND answer is. Date strings are cached
    per day, so repeated rounds stay realistic.
    """
    listing = [
        Node(fileid=2147480000 + i, owner="alice", path=f"Documents/file {i}.txt",
             name=f"file {i}.txt", is_dir=i % 10 == 0, size=1000 + i,
             mtime=1_700_000_000 + i * 37, etag=f"{i:032x}", permissions=27 if i % 10 else 31,
             mimetype="httpd/unix-directory" if i % 10 == 0 else "text/plain",
             checksum="" if i % 10 == 0 else
             f"SHA1:{i:040x} MD5:{i:032x} ADLER32:{i:08x}")
        for i in range(nodes)
    ]
    extras = {n.fileid: NodeExtras(favorite=n.fileid % 7 == 0,
                                   share_types=(0, 3) if n.fileid % 5 == 0 else ())
              for n in listing}
    ctx = PropContext(instance_id="ocnq90xhpk22", privatelink_base="http://host/index.php/f/",
                      owner_display_names={"alice": "Alice"}, quota=Quota(5, -3))
    request = PropRequest("prop", SYNC_PROPS)
    entries = [(f"files/alice/{n.path}", n, extras.get(n.fileid)) for n in listing]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        writer = Multistatus("/remote.php/dav/")
        body = b"".join(stream_nodes(writer, entries, ctx, request))
        best = min(best, time.perf_counter() - started)
        assert body.endswith(b"</d:multistatus>\n")
    return best * 1000.0
