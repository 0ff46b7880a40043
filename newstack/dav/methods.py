"""WebDAV methods on a user's files, answered as ownCloud 10 (Sabre 4.7) answers them.

Each handler takes the request, the resolved DAV target and the backend, and returns a
Response. Backend errors become Sabre error bodies in newstack/app.py, in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

from bridge.oc10.formats import oc_id, parse_checksums
from newstack.backend import (
    AlreadyExistsError,
    ConflictError,
    FilesBackend,
    ForbiddenError,
    Node,
    NotFoundError,
    PreconditionFailedError,
)
from newstack.dav import errors as dav_errors
from newstack.dav import locking
from newstack.dav import props as dav_props
from newstack.dav import xml as dav_xml
from newstack.http import BadRequestError, Headers, Request, Response, closing_iter

DAV_HEADER = "1, 3, extended-mkcol, 2"
XML_TYPE = "application/xml; charset=utf-8"
COLLECTION_GET_BODY = (b"This is the WebDAV interface. It can only be accessed by WebDAV "
                       b"clients such as the ownCloud desktop sync client.")
# GET answers with a "secure" content type so browsers never render user content as HTML
_SECURE_TYPES = {"text/html": "text/plain", "text/javascript": "text/plain",
                 "application/xhtml+xml": "text/plain", "image/svg+xml": "text/plain"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
#: names that quote(name, safe="") leaves as they are
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


@dataclass(frozen=True)
class Target:
    """What a DAV URL points at: a user's files under one endpoint's base href."""

    uid: str
    path: str
    #: href prefix of this endpoint, e.g. /remote.php/webdav/ or /remote.php/dav/files/alice/
    base: str
    #: True on /remote.php/webdav (chunking v1 lives there only)
    legacy: bool


class MethodNotAllowedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def node_headers(backend: FilesBackend, node: Node) -> Headers:
    headers = [("OC-FileId", oc_id(node.fileid, backend.instance_id))]
    if not node.is_dir:
        etag = f'"{node.etag}"'
        headers += [("ETag", etag), ("OC-ETag", etag)]
    return headers


# ---------------------------------------------------------------------------------------------
# reading


def options(req: Request, target: Target, backend: FilesBackend) -> Response:
    allow = "OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, PROPPATCH, COPY, MOVE, REPORT"
    return Response.of(200, headers=[("DAV", DAV_HEADER), ("MS-Author-Via", "DAV"),
                                     ("Allow", allow + ", LOCK, UNLOCK"),
                                     ("Accept-Ranges", "bytes")])


def get(req: Request, target: Target, backend: FilesBackend, *, head: bool = False
        ) -> Response:
    node = backend.stat(target.uid, target.path)
    if node.is_dir:
        return Response(200, [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(COLLECTION_GET_BODY)))],
                        [] if head else [COLLECTION_GET_BODY])
    etag = f'"{node.etag}"'
    if_none_match = req.header("If-None-Match")
    if if_none_match and _etag_matches(if_none_match, node.etag):
        return Response(304, [("ETag", etag), ("OC-ETag", etag)])
    if_match = req.header("If-Match")
    if if_match and not _etag_matches(if_match, node.etag):
        raise PreconditionFailedError("An If-Match header was specified, but none of the "
                                      "specified ETags matched.")
    headers: Headers = [
        ("Content-Type", _SECURE_TYPES.get(node.mimetype, node.mimetype)),
        ("ETag", etag), ("OC-ETag", etag),
        ("Last-Modified", dav_props.http_date(node.mtime)),
        ("Content-Disposition", attachment_disposition(node.name)),
        ("X-Accel-Buffering", "no"),
        ("Accept-Ranges", "bytes"),
        ("OC-FileId", oc_id(node.fileid, backend.instance_id)),
    ]
    sha1 = _sha1(node.checksum)
    if sha1:
        headers.append(("OC-Checksum", f"SHA1:{sha1}"))
    status, start, end = 200, 0, node.size
    wanted = req.header("Range")
    if wanted and _if_range_ok(req, node):
        parsed = _parse_range(wanted, node.size)
        if parsed is None:
            return Response.of(416, headers=[("Content-Range", f"bytes */{node.size}")])
        # one range answers 206 even when it spans the whole file (sabre's httpGet); several
        # ranges or a malformed header are ignored and get the whole file with 200
        single = "," not in wanted and _RANGE.match(wanted.strip().replace(" ", ""))
        if parsed != (0, node.size) or single:
            status, (start, end) = 206, parsed
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{node.size}"))
    headers.append(("Content-Length", str(end - start)))
    if head or end == start:
        return Response(status, headers, [])
    return Response(status, headers, closing_iter(backend.read(target.uid, node, start, end)))


@lru_cache(maxsize=4096)
def _sha1(checksum: str) -> str | None:
    """The SHA1 of a stored checksum string (cached: a file is downloaded again and again)."""
    return parse_checksums(checksum).get("SHA1")


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    return etag in tags


def _if_range_ok(req: Request, node: Node) -> bool:
    if_range = req.header("If-Range")
    return if_range is None or if_range.strip().strip('"') == node.etag


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One byte range as [start, end); None when unsatisfiable. Multiple ranges: whole file."""
    if "," in value:
        return 0, size
    match = _RANGE.match(value.strip().replace(" ", ""))
    if not match:
        return 0, size  # a malformed Range header is ignored, as RFC 9110 allows
    first, last = match.groups()
    if first == "" and last == "":
        return 0, size
    if first == "":
        length = int(last)
        if length == 0:
            return None
        return max(0, size - length), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        return None
    return start, end


def attachment_disposition(name: str) -> str:
    """Content-Disposition of downloads, as ownCloud sends it for every client but IE."""
    encoded = name if _UNRESERVED.fullmatch(name) else quote(name, safe="")
    return f"attachment; filename*=UTF-8''{encoded}; filename=\"{encoded}\""


def propfind(req: Request, target: Target, backend: FilesBackend, host_url: str) -> Response:
    depth = (req.header("Depth") or "1").strip().lower()
    if depth == "infinity":
        raise dav_errors.DavError(dav_errors.DEPTH_INFINITY)
    request = dav_xml.parse_propfind(req.read_body())
    node = backend.stat(target.uid, target.path)
    nodes = [node]
    if node.is_dir and depth != "0":
        nodes += backend.children(target.uid, target.path)
    extras = backend.extras(target.uid, nodes)
    ctx = prop_context(backend, target.uid, host_url, nodes)
    writer = dav_xml.Multistatus(target.base)
    entries = ((n.path, n, extras.get(n.fileid)) for n in nodes)
    locks = None
    if "{DAV:}lockdiscovery" in request.props:
        locks = locking.discovery(backend, target, node, listing=len(nodes) > 1)
    body = dav_props.stream_nodes(writer, entries, ctx, request, locks=locks)
    headers = [("Content-Type", XML_TYPE), ("Vary", "Brief,Prefer"), ("DAV", DAV_HEADER)]
    return Response(207, headers, body)


def prop_context(backend: FilesBackend, uid: str, host_url: str,
                 nodes: list[Node]) -> dav_props.PropContext:
    owners: dict[str, str] = {}
    for node in nodes:
        if node.owner not in owners:
            user = backend.user(node.owner)
            owners[node.owner] = user.display_name if user else node.owner
    return dav_props.PropContext(
        instance_id=backend.instance_id,
        data_fingerprint=backend.data_fingerprint,
        privatelink_base=f"{host_url}/index.php/f/",
        comments_base="/remote.php/dav/comments/files/",
        owner_display_names=owners,
        # inside a received share the space left is the owner's (SharedStorage::free_space)
        quota=backend.quota(nodes[0].owner if nodes and nodes[0].shared else uid),
    )


_OC = "{http://owncloud.org/ns}"
#: live properties a client may not set (ownCloud answers 403 for them, 424 for the rest)
_PROTECTED = {
    _OC + "id", _OC + "fileid", _OC + "permissions", _OC + "size", _OC + "downloadURL",
    _OC + "owner-id", _OC + "owner-display-name", _OC + "checksums", _OC + "data-fingerprint",
    _OC + "privatelink", "{http://open-collaboration-services.org/ns}share-permissions",
    "{DAV:}getcontentlength", "{DAV:}getcontenttype", "{DAV:}resourcetype",
    "{DAV:}quota-used-bytes", "{DAV:}quota-available-bytes", "{DAV:}lockdiscovery",
    "{DAV:}supportedlock",
}
_FAVORITE = _OC + "favorite"
_LASTMODIFIED = "{DAV:}lastmodified"


def proppatch(req: Request, target: Target, backend: FilesBackend) -> Response:
    """Set or remove properties: all or nothing, as RFC 4918 and Sabre require."""
    locking.check_if_header(req, target, backend, [locking.Scope(target.path)])
    changes = dav_xml.parse_proppatch(req.read_body())
    backend.stat(target.uid, target.path)
    refused = {name for name, value in changes
               if name in _PROTECTED or (name == _LASTMODIFIED and value is not None
                                         and not str(value).strip().isdigit())}
    if refused:
        results = [(name, 403 if name in refused else 424) for name, _ in changes]
    else:
        dead: dict[str, str | None] = {}
        for name, value in changes:
            if name == _FAVORITE:
                backend.set_favorite(target.uid, target.path,
                                     value is not None and str(value).strip() == "1")
            elif name == _LASTMODIFIED:
                if value is not None:
                    backend.set_mtime(target.uid, target.path, int(str(value).strip()))
            else:
                dead[name] = None if value is None else dav_xml.dead_value_xml(value)
        if dead:
            backend.set_dead_props(target.uid, target.path, dead)
        results = [(name, 200) for name, _ in changes]
    body = dav_xml.render_proppatch(target.base, target.path, results)
    return Response.of(207, body, XML_TYPE)


# ---------------------------------------------------------------------------------------------
# writing


def put(req: Request, target: Target, backend: FilesBackend) -> Response:
    locking.check_if_header(req, target, backend, [locking.Scope(target.path)])
    if not target.path:
        raise ForbiddenError("Can't PUT to the root folder")
    try:
        existing = backend.stat(target.uid, target.path)
    except NotFoundError:
        existing = None
    if existing is not None and existing.is_dir:
        raise MethodNotAllowedError("PUT is not allowed on non-files.")
    mtime = _oc_mtime(req)
    result = backend.write(
        target.uid, target.path, req.body_stream, length=req.content_length, mtime=mtime,
        checksum=req.header("OC-Checksum"), if_match=req.header("If-Match"),
        if_none_match=req.header("If-None-Match"))
    headers = node_headers(backend, result.node)
    if result.mtime_accepted:
        headers.append(("X-OC-MTime", "accepted"))
    return Response.of(201 if result.created else 204, headers=headers)


def _oc_mtime(req: Request) -> int | None:
    value = req.header("X-OC-MTime")
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError as exc:
        raise BadRequestError(f"X-OC-MTime {value!r} is not a unix time") from exc


def mkcol(req: Request, target: Target, backend: FilesBackend) -> Response:
    locking.check_if_header(req, target, backend, [locking.Scope(target.path)])
    if req.read_body():
        return Response.of(415)
    try:
        node = backend.mkdir(target.uid, target.path)
    except AlreadyExistsError as exc:
        raise MethodNotAllowedError("The resource you tried to create already exists") from exc
    return Response.of(201, headers=[("OC-FileId", oc_id(node.fileid, backend.instance_id))])


def delete(req: Request, target: Target, backend: FilesBackend) -> Response:
    locking.check_if_header(req, target, backend,
                            [locking.Scope(target.path, with_children=True)])
    if not target.path:
        raise ForbiddenError("The root folder cannot be deleted")
    backend.delete(target.uid, target.path)
    return Response.of(204)


def move_or_copy(req: Request, target: Target, backend: FilesBackend, *, copy: bool
                 ) -> Response:
    destination = destination_path(req, target)
    # Sabre: a MOVE needs the tokens of the source tree and the target, a COPY the target's
    writes = [] if copy else [locking.Scope(target.path, with_children=True)]
    locking.check_if_header(req, target, backend, [*writes, locking.Scope(destination)])
    if destination == target.path:
        raise ForbiddenError("Source and destination uri are identical.")
    if not target.path or not destination:
        raise ForbiddenError("The root folder cannot be moved or replaced")
    overwrite = (req.header("Overwrite") or "T").strip().upper() != "F"
    operation = backend.copy if copy else backend.move
    try:
        result = operation(target.uid, target.path, destination, overwrite=overwrite)
    except AlreadyExistsError as exc:
        raise dav_errors.DavError(dav_errors.OVERWRITE_FAILED) from exc
    return Response.of(201 if result.created else 204,
                       headers=node_headers(backend, result.node))


def destination_path(req: Request, target: Target) -> str:
    """The Destination header as a path inside the same user's files on the same endpoint."""
    value = req.header("Destination")
    if not value:
        raise BadRequestError("The destination header was not supplied")
    path = urlsplit(value).path
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequestError("The Destination header is not valid UTF-8") from exc
    if not decoded.startswith(target.base.rstrip("/")):
        raise ForbiddenError("The destination is not on this endpoint or not your own files")
    rest = decoded[len(target.base.rstrip("/")):].strip("/")
    if any(part in (".", "..") for part in rest.split("/")):
        raise BadRequestError("The Destination header contains '.' or '..'")
    return rest


def conflict_if_missing_parent(backend: FilesBackend, uid: str, path: str) -> None:
    parent = path.rpartition("/")[0]
    try:
        node = backend.stat(uid, parent)
    except NotFoundError as exc:
        raise ConflictError("Files cannot be created in non-existent collections") from exc
    if not node.is_dir:
        raise ConflictError("The parent of the target is not a folder")
