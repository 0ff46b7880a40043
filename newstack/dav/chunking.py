"""Chunked uploads as ownCloud 10 takes them: chunking NG (/remote.php/dav/uploads/) and v1
(`OC-Chunked` on remote.php/webdav), REFERENCE §6.6-§6.7. Chunks live in the backend's
UploadStaging (newstack/uploads/); the assembled file is streamed through FilesBackend.write.
newstack/app.py routes here."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Buffer, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from hashlib import md5
from typing import BinaryIO, Final
from urllib.parse import unquote, urlsplit

from bridge.oc10.formats import oc_id
from bridge.oc10.mimetypes import DIR_MIMETYPE, mimetype_for
from newstack.backend import (
    AlreadyExistsError,
    FilesBackend,
    Node,
    NotFoundError,
    StorageUnavailableError,
    User,
)
from newstack.dav import errors as dav_errors
from newstack.dav import methods
from newstack.dav import xml as dav_xml
from newstack.dav.errors import DavError, SabreError
from newstack.dav.methods import MethodNotAllowedError, Target
from newstack.dav.props import http_date, node_response, select_props
from newstack.http import BadRequestError, Headers, Request, Response
from newstack.metadata.store import FILE_PERMISSIONS, FOLDER_PERMISSIONS
from newstack.native import NativeBackend
from newstack.storage.base import CHUNK_SIZE
from newstack.uploads.base import CorruptChunkError, UploadEntry, UploadStaging, check_name
from newstack.uploads.metadata import AREA_UPLOADS, MetadataUploads

log = logging.getLogger("ocbridge.newstack.chunking")

#: the virtual file inside an upload folder that stands for the assembled chunks
FUTURE_FILE: Final = ".file"
DAV_BASE: Final = "/remote.php/dav/"
_FILES_PREFIX: Final = DAV_BASE + "files/"
#: OC_FileChunking::decodeName (unanchored at the end, like preg_match)
_V1_CHUNK: Final = re.compile(
    r"(?P<name>.*)-chunking-(?P<transferid>\d+)-(?P<chunkcount>\d+)-(?P<index>\d+)")
_IF_LIST: Final = re.compile(
    r"(?:<(?P<uri>.*?)>\s)?\((?P<not>Not\s)?(?:<(?P<token>[^>]*)>)?(?:\s?)"
    r"(?:\[(?P<etag>[^\]]*)\])?\)", re.IGNORECASE)
_PHP_NUMBER: Final = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PHP_INT_MAX: Final = 2**63 - 1

_SABRE: Final = "Sabre\\DAV\\Exception\\"
#: ValidateRequestPlugin: OC-Chunked anywhere but remote.php/webdav (two spaces, as in oC10)
V1_NOT_HERE: Final = SabreError(
    503, _SABRE + "ServiceUnavailable",
    "Specified  header (HTTP_OC_CHUNKED/OC-Chunked header) is allowed only in webdav endpoint")
INVALID_CHUNK_NAME: Final = SabreError(501, _SABRE + "NotImplemented", "Invalid chunk name")
NOT_A_COLLECTION: Final = SabreError(415, _SABRE + "UnsupportedMediaType",
                                     "The destination node is not a collection")
CORRUPT_CHUNK: Final = "Uploading failed due to invalid or corrupt file transfer."


# =============================================================================================
# Natural order of chunk names


def _at(s: bytes, i: int) -> int:
    # PHP strings end in NUL; strnatcmp may look one byte past the end
    return s[i] if i < len(s) else 0


def _isdigit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def _isspace(c: int) -> bool:
    return c in (0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D)


def _compare_digits(a: bytes, i: int, b: bytes, j: int, left: bool) -> tuple[int, int, int]:
    """PHP's compare_left (fractional parts: first difference wins) and compare_right (whole
    numbers: the longer run wins, else the first difference); returns (result, i, j)."""
    bias = 0
    while True:
        a_end = i >= len(a) or not _isdigit(a[i])
        b_end = j >= len(b) or not _isdigit(b[j])
        if a_end and b_end:
            return bias, i, j
        if a_end:
            return -1, i, j
        if b_end:
            return 1, i, j
        if a[i] != b[j]:
            if left:
                return (-1 if a[i] < b[j] else 1), i, j
            if not bias:
                bias = -1 if a[i] < b[j] else 1
        i += 1
        j += 1


def strnatcmp(first: str, second: str) -> int:
    """PHP's strnatcmp() (ext/standard/strnatcmp.c) on the UTF-8 bytes: -1, 0 or 1."""
    a, b = first.encode("utf-8", "surrogateescape"), second.encode("utf-8", "surrogateescape")
    if not a or not b:
        return (len(a) > len(b)) - (len(a) < len(b))
    i = j = 0
    leading = True
    while True:
        ca, cb = _at(a, i), _at(b, j)
        if leading:
            while ca == 0x30 and i + 1 < len(a) and _isdigit(a[i + 1]):
                i += 1
                ca = a[i]
            while cb == 0x30 and j + 1 < len(b) and _isdigit(b[j + 1]):
                j += 1
                cb = b[j]
            leading = False
        while _isspace(ca):
            i += 1
            ca = _at(a, i)
        while _isspace(cb):
            j += 1
            cb = _at(b, j)
        if _isdigit(ca) and _isdigit(cb):
            result, i, j = _compare_digits(a, i, b, j, left=ca == 0x30 or cb == 0x30)
            if result:
                return result
            if i == len(a) and j == len(b):
                return 0
            if i == len(a):
                return -1
            if j == len(b):
                return 1
            ca, cb = a[i], b[j]
        if ca != cb:
            return -1 if ca < cb else 1
        i += 1
        j += 1
        if i >= len(a) and j >= len(b):
            return 0
        if i >= len(a):
            return -1
        if j >= len(b):
            return 1


def natural_order(chunks: Iterable[UploadEntry]) -> list[UploadEntry]:
    """Chunks in AssemblyStream's order: usort by strnatcmp of the names (stable, so equal
    names such as '1' and '01' keep the listing's byte order)."""
    def compare(x: UploadEntry, y: UploadEntry) -> int:
        return strnatcmp(x.name, y.name)

    return sorted(chunks, key=cmp_to_key(compare))


# =============================================================================================
# Where chunks live


def staging_of(backend: FilesBackend) -> UploadStaging:
    """The backend's `uploads` attribute; the native backend's metadata store and driver when
    it has none."""
    staging: UploadStaging | None = getattr(backend, "uploads", None)
    if staging is not None:
        return staging
    if isinstance(backend, NativeBackend):
        return MetadataUploads(backend.store, backend.driver)
    raise StorageUnavailableError(
        f"chunked uploads are not available on the {type(backend).__name__} backend")


def cleanup_uploads(backend: FilesBackend, older_than_seconds: float, *,
                    now: float | None = None) -> int:
    """Remove stale chunked uploads of every user; returns the number of upload folders."""
    return staging_of(backend).cleanup(older_than_seconds, now=now)


def assembly_reader(uploads: UploadStaging, chunks: Sequence[UploadEntry]) -> BinaryIO:
    """The chunks' bytes one after the other as a file object, read CHUNK_SIZE at a time:
    the assembled file is never in memory."""
    return io.BufferedReader(_AssemblyStream(uploads, chunks), buffer_size=CHUNK_SIZE)


class _AssemblyStream(io.RawIOBase):
    """Raw reads over several chunks in a row; each must have its recorded size."""

    def __init__(self, uploads: UploadStaging, chunks: Sequence[UploadEntry]) -> None:
        super().__init__()
        self._uploads = uploads
        self._chunks = iter(chunks)
        self._chunk: UploadEntry | None = None
        self._pieces: Iterator[bytes] | None = None
        self._seen = 0
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        while not self._left:
            piece = self._next_piece()
            if piece is None:
                return 0
            self._left = memoryview(piece)
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._left))
        out[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def _next_piece(self) -> bytes | None:
        while True:
            if self._pieces is None or self._chunk is None:
                self._chunk = next(self._chunks, None)
                if self._chunk is None:
                    return None
                self._seen = 0
                self._pieces = self._open(self._chunk)
            try:
                piece = next(self._pieces)
            except StopIteration:
                if self._seen != self._chunk.size:
                    log.error("chunk %s of %s has %d bytes, expected %d", self._chunk.path,
                              self._chunk.owner, self._seen, self._chunk.size)
                    raise dav_errors.BadRequest(CORRUPT_CHUNK) from None
                self._pieces = None
                continue
            except CorruptChunkError as exc:
                raise dav_errors.BadRequest(CORRUPT_CHUNK) from exc
            self._seen += len(piece)
            if piece:
                return piece

    def _open(self, chunk: UploadEntry) -> Iterator[bytes]:
        try:
            return self._uploads.open_chunk(chunk)
        except CorruptChunkError as exc:
            log.error("chunk %s of %s: %s", chunk.path, chunk.owner, exc)
            raise dav_errors.BadRequest(CORRUPT_CHUNK) from exc

    def close(self) -> None:
        pieces, self._pieces = self._pieces, None
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
        super().close()


# =============================================================================================
# Chunking NG: /remote.php/dav/uploads/<uid>/<transfer-id>/<chunk>


@dataclass(frozen=True)
class _UploadUrl:
    """A URL below /remote.php/dav/uploads/: the uid as written, then up to two names."""

    url_uid: str
    folder: str = ""
    chunk: str = ""

    def href_path(self, folder: str = "", chunk: str = "") -> str:
        """Path below DAV_BASE, for hrefs and `If` URIs."""
        parts = ["uploads", self.url_uid, folder, chunk]
        return "/".join(p for p in parts if p)


def uploads_tree(req: Request, user: User, rest: str, backend: FilesBackend) -> Response:
    """The `uploads` tree of remote.php/dav (a NewstackApp dav_trees handler)."""
    if is_v1_chunk(req) and req.method == "PUT":
        raise DavError(V1_NOT_HERE)
    url = _parse_upload_url(rest, user)
    uploads = staging_of(backend)
    match req.method:
        case "MKCOL":
            return _mkcol(req, url, user, uploads)
        case "PUT":
            return _put_chunk(req, url, user, uploads, backend)
        case "PROPFIND":
            return _propfind(req, url, user, uploads, backend)
        case "MOVE":
            return _move(req, url, user, uploads, backend)
        case "DELETE":
            return _delete(url, user, uploads)
    raise MethodNotAllowedError(f"{req.method} is not allowed on chunked uploads")


def _parse_upload_url(rest: str, user: User) -> _UploadUrl:
    parts = [p for p in rest.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise BadRequestError("The path contains '.' or '..'")
    if not parts or parts[0].lower() != user.uid.lower():
        # the files tree answers the same for anyone else's principal
        name = parts[0] if parts else ""
        raise DavError(dav_errors.NOT_FOUND, f"Principal with name {name} not found")
    if len(parts) > 3:
        raise DavError(dav_errors.NOT_FOUND,
                       f"File with name /{'/'.join(parts[1:3])} could not be located")
    return _UploadUrl(parts[0], *parts[1:])


def _folder_not_found(name: str) -> DavError:
    # Directory::getChild on the uploads root, whose path is '/'
    return DavError(dav_errors.NOT_FOUND, f"File with name //{name} could not be located")


def _chunk_not_found(folder: str, name: str) -> DavError:
    return DavError(dav_errors.NOT_FOUND, f"File with name /{folder}/{name} could not be located")


def _mkcol(req: Request, url: _UploadUrl, user: User, uploads: UploadStaging) -> Response:
    if req.read_body():
        return Response.of(415)
    if not url.folder:
        raise DavError(dav_errors.MKCOL_EXISTS)
    if url.chunk:
        if uploads.folder(user.uid, url.folder) is None:
            raise DavError(dav_errors.CONFLICT, "Parent node does not exist")
        if url.chunk == FUTURE_FILE or uploads.chunk(user.uid, url.folder, url.chunk):
            raise DavError(dav_errors.MKCOL_EXISTS)
        raise DavError(dav_errors.FORBIDDEN,
                       f"Permission denied to create file (filename {url.chunk})")
    check_name(url.folder)
    try:
        uploads.create_folder(user.uid, url.folder)
    except AlreadyExistsError as exc:
        raise DavError(dav_errors.MKCOL_EXISTS) from exc
    # UploadFolder is no ownCloud Node: no OC-FileId (FilesPlugin::sendFileIdHeader)
    return Response.of(201)


def _put_chunk(req: Request, url: _UploadUrl, user: User, uploads: UploadStaging,
               backend: FilesBackend) -> Response:
    if not url.chunk:
        if url.folder and uploads.folder(user.uid, url.folder) is None:
            raise DavError(dav_errors.FORBIDDEN,
                           f"Permission denied to create file (filename {url.folder})")
        raise DavError(dav_errors.CONFLICT, "PUT is not allowed on non-files.")
    if url.chunk == FUTURE_FILE:
        raise DavError(dav_errors.FORBIDDEN, "Permission denied to put into this file")
    check_name(url.chunk)
    if uploads.folder(user.uid, url.folder) is None:
        raise DavError(dav_errors.CONFLICT, "Files cannot be created in non-existent collections")
    node, created = uploads.put_chunk(user.uid, url.folder, url.chunk, req.body_stream,
                                      req.content_length)
    if created:
        # UploadFolder::createFile returns no ETag
        return Response.of(201, headers=[("OC-FileId", oc_id(node.fileid,
                                                             backend.instance_id))])
    return Response.of(204, headers=methods.node_headers(backend, _as_node(node)))


def _delete(url: _UploadUrl, user: User, uploads: UploadStaging) -> Response:
    if not url.folder:
        raise DavError(dav_errors.FORBIDDEN, "Permission denied to delete the uploads folder")
    folder = uploads.folder(user.uid, url.folder)
    if folder is None:
        raise _folder_not_found(url.folder)
    if url.chunk and url.chunk != FUTURE_FILE:  # deleting .file deletes the whole upload
        chunk = uploads.chunk(user.uid, url.folder, url.chunk)
        if chunk is None:
            raise _chunk_not_found(url.folder, url.chunk)
        uploads.delete(chunk)
    else:
        uploads.delete(folder)
    return Response.of(204)


# --- PROPFIND --------------------------------------------------------------------------------

_D: Final = "{DAV:}"


def _propfind(req: Request, url: _UploadUrl, user: User, uploads: UploadStaging,
              backend: FilesBackend) -> Response:
    depth_header = (req.header("Depth") or "1").strip().lower()
    if depth_header == "infinity":
        raise DavError(dav_errors.DEPTH_INFINITY)
    depth = int(depth_header) if depth_header.isdigit() else 1
    request = dav_xml.parse_propfind(req.read_body())
    writer = dav_xml.Multistatus(DAV_BASE)
    # rendered text, or a chunk (path, node) rendered once the property context is known
    entries: list[str | tuple[str, Node]] = []

    def collection(path: str, node: UploadEntry | None) -> None:
        available: dict[str, str | None] = {_D + "resourcetype": "<d:collection/>"}
        if node is not None and node.mtime:
            available[_D + "getlastmodified"] = http_date(node.mtime)
        found, missing = select_props(request, available)
        entries.append(writer.response_text(path, found, missing, collection=True))

    def upload_folder(folder: UploadEntry, levels: int) -> None:
        collection(url.href_path(folder.name), folder)
        if levels >= 1:
            chunks = uploads.chunks(user.uid, folder.name)
            entries.extend((url.href_path(folder.name, c.name), _as_node(c)) for c in chunks)
            entries.append(_future_file(writer, request, url, folder, chunks))

    if not url.folder:
        root = uploads.root(user.uid)
        collection(url.href_path(), root)
        if depth >= 1 and root is not None:
            for child in uploads.folders(user.uid):
                upload_folder(child, depth - 1)
    else:
        folder = uploads.folder(user.uid, url.folder)
        if folder is None:
            raise _folder_not_found(url.folder)
        if not url.chunk:
            upload_folder(folder, depth)
        elif url.chunk == FUTURE_FILE:
            entries.append(_future_file(writer, request, url, folder,
                                        uploads.chunks(user.uid, folder.name)))
        else:
            chunk = uploads.chunk(user.uid, url.folder, url.chunk)
            if chunk is None:
                raise _chunk_not_found(url.folder, url.chunk)
            entries.append((url.href_path(folder.name, chunk.name), _as_node(chunk)))

    nodes = [entry[1] for entry in entries if isinstance(entry, tuple)]
    ctx = methods.prop_context(backend, user.uid, req.host_url(), nodes)
    body = "".join(entry if isinstance(entry, str)
                   else node_response(writer, entry[0], entry[1], None, ctx, request)
                   for entry in entries)
    headers = [("Content-Type", methods.XML_TYPE), ("Vary", "Brief,Prefer"),
               ("DAV", methods.DAV_HEADER)]
    return Response(207, headers, [writer.start(), body.encode("utf-8", "surrogateescape"),
                                   writer.end()])


def _future_file(writer: dav_xml.Multistatus, request: dav_xml.PropRequest, url: _UploadUrl,
                 folder: UploadEntry, chunks: Sequence[UploadEntry]) -> str:
    """FutureFile: a plain Sabre file (no oc: properties) with the folder's etag and mtime
    and the chunks' total size."""
    available: dict[str, str | None] = {
        _D + "resourcetype": None,
        _D + "getcontentlength": str(sum(max(c.size, 0) for c in chunks)),
        _D + "getetag": f"&quot;{dav_xml.xml_text(folder.etag)}&quot;",
        _D + "getcontenttype": "application/octet-stream",
    }
    if folder.mtime:
        available[_D + "getlastmodified"] = http_date(folder.mtime)
    found, missing = select_props(request, available)
    return writer.response_text(url.href_path(folder.name, FUTURE_FILE), found, missing)


# --- MOVE .file: assembly --------------------------------------------------------------------


def _move(req: Request, url: _UploadUrl, user: User, uploads: UploadStaging,
          backend: FilesBackend) -> Response:
    if url.chunk != FUTURE_FILE:
        what = "file" if url.chunk else "folder"
        raise DavError(dav_errors.FORBIDDEN, f"Permission denied to rename this {what}")
    destination = _destination(req, user)
    folder = uploads.folder(user.uid, url.folder)
    if folder is None:
        raise _folder_not_found(url.folder)
    chunks = natural_order(uploads.chunks(user.uid, folder.name))
    if_etag = _check_if_header(req, url, user, backend, destination, folder)
    existing = _stat_or_none(backend, user.uid, destination)
    _check_destination(req, backend, user.uid, destination, existing)
    if_match, if_none_match = req.header("If-Match"), req.header("If-None-Match")
    _check_preconditions(existing, if_match, if_none_match)
    total = sum(max(c.size, 0) for c in chunks)
    expected = req.header("OC-Total-Length")
    if expected is not None and not _php_equals(expected, total):
        raise dav_errors.BadRequest(
            f"Chunks on server do not sum up to {expected} but to {total}")
    mtime = _client_mtime(req)
    reader = assembly_reader(uploads, chunks)
    try:
        result = backend.write(
            user.uid, destination, reader, length=total, mtime=mtime,
            checksum=req.header("OC-Checksum"), if_match=if_match or if_etag,
            if_none_match=if_none_match)
    finally:
        reader.close()
    try:
        uploads.delete(folder)
    except Exception:  # the file is written; a leftover upload only waits for cleanup
        log.warning("could not remove upload %s of %s", url.folder, user.uid, exc_info=True)
    headers = methods.node_headers(backend, result.node)
    if result.mtime_accepted:
        headers.append(("X-OC-MTime", "accepted"))
    # Sabre's MOVE answers 201 for a new target; ChunkingPlugin 204 when it overwrote one
    return Response.of(201 if result.created else 204, headers=headers)


def _destination(req: Request, user: User) -> str:
    """The Destination header as a path in the user's own files (Server::calculateUri)."""
    value = req.header("Destination")
    if not value:
        raise dav_errors.BadRequest("The destination header was not supplied")
    path = _uri_path(value)
    if not path.startswith(_FILES_PREFIX):
        raise DavError(dav_errors.FORBIDDEN,
                       f"Chunks can only be moved into your files ({_FILES_PREFIX}<user>/…)")
    url_uid, _, rest = path[len(_FILES_PREFIX):].partition("/")
    try:
        url_uid = unquote(url_uid, errors="strict")
        rest = unquote(rest, errors="strict").strip("/")
    except UnicodeDecodeError as exc:
        raise dav_errors.BadRequest("The Destination header is not valid UTF-8") from exc
    if url_uid.lower() != user.uid.lower():
        raise DavError(dav_errors.FORBIDDEN, "The destination is not in your own files")
    if not rest:
        raise DavError(dav_errors.FORBIDDEN, "The root folder cannot be replaced")
    if any(part in (".", "..") for part in rest.split("/")):
        raise dav_errors.BadRequest("The Destination header contains '.' or '..'")
    return rest


def _uri_path(uri: str) -> str:
    """A URI's path with repeated slashes collapsed, still percent-encoded."""
    if uri and not uri.startswith("/") and "://" in uri:
        uri = urlsplit(uri).path
    return re.sub("/+", "/", uri)


def _stat_or_none(backend: FilesBackend, uid: str, path: str) -> Node | None:
    try:
        return backend.stat(uid, path)
    except NotFoundError:
        return None


def _check_destination(req: Request, backend: FilesBackend, uid: str, destination: str,
                       existing: Node | None) -> None:
    """Server::getCopyAndMoveInfo: the parent must be a folder, Overwrite: F is honoured."""
    parent = _stat_or_none(backend, uid, destination.rpartition("/")[0])
    if parent is None:
        raise DavError(dav_errors.CONFLICT, "The destination node is not found")
    if not parent.is_dir:
        raise DavError(NOT_A_COLLECTION)
    if existing is None:
        return
    if (req.header("Overwrite") or "T").strip().upper() == "F":
        raise DavError(dav_errors.OVERWRITE_FAILED)
    if existing.is_dir:
        raise DavError(dav_errors.CONFLICT, "PUT is not allowed on non-files.")


def _check_if_header(req: Request, url: _UploadUrl, user: User, backend: FilesBackend,
                     destination: str, folder: UploadEntry) -> str | None:
    """The WebDAV `If` header as Sabre's checkPreconditions reads it. Sync clients send
    `If: <destination> (["etag"])` on this MOVE, If-Match being about the source. Returns the
    destination etag a condition matched, so that the write itself checks it again."""
    header = req.header("If")
    if not header:
        return None
    source = url.href_path(url.folder, FUTURE_FILE)
    conditions: list[tuple[str, list[tuple[bool, str, str]]]] = []
    for match in _IF_LIST.finditer(header):
        entry = (bool(match["not"]), match["token"] or "", match["etag"] or "")
        if not match["uri"] and conditions:
            conditions[-1][1].append(entry)
        else:
            uri = _calculate_uri(match["uri"]) if match["uri"] else source
            conditions.append((uri, [entry]))

    def etag_of(uri: str, is_destination: bool) -> str | None:
        if is_destination:  # a missing one is a 404, as getNodeForPath throws
            node = backend.stat(user.uid, destination)
            return None if node.is_dir else node.etag
        return folder.etag if uri == source else None  # .file has the folder's etag

    matched: str | None = None
    for uri, entries in conditions:
        is_destination = _names_destination(uri, user.uid, destination)
        for negate, token, etag in entries:
            # lock tokens are only known for the destination (Locks plugin: validateTokens)
            token_valid = not token or (is_destination and token in {
                f"opaquelocktoken:{lock.token}" for lock in backend.locks(user.uid, destination)})
            etag_valid = not etag
            if etag and token_valid:
                current = etag_of(uri, is_destination)
                etag_valid = current is not None and f'"{current}"' == etag
                if etag_valid and is_destination and not negate:
                    matched = current
            if (token_valid and etag_valid) != negate:
                break
        else:
            raise DavError(SabreError(
                412, _SABRE + "PreconditionFailed",
                f"Failed to find a valid token/etag combination for {uri}",
                (("s:header", "If"),)))
    return matched


def _calculate_uri(uri: str) -> str:
    """Server::calculateUri: a URI as a decoded path below DAV_BASE."""
    path = _uri_path(uri)
    if path.startswith(DAV_BASE):
        return unquote(path[len(DAV_BASE):]).strip("/")
    if path + "/" == DAV_BASE:
        return ""
    raise DavError(dav_errors.FORBIDDEN,
                   f"Requested uri ({path}) is out of base uri ({DAV_BASE})")


def _names_destination(uri: str, uid: str, destination: str) -> bool:
    tree, _, rest = uri.partition("/")
    url_uid, _, path = rest.partition("/")
    return tree == "files" and url_uid.lower() == uid.lower() and path.strip("/") == destination


# =============================================================================================
# Chunking v1: PUT <dir>/<name>-chunking-<transferid>-<count>-<index> with OC-Chunked


def is_v1_chunk(req: Request) -> bool:
    """OC_FileChunking::isWebdavChunk: the header is there, whatever its value."""
    return "HTTP_OC_CHUNKED" in req.environ


def put_v1(req: Request, target: Target, backend: FilesBackend) -> Response:
    """One chunk of a v1 upload; the request that completes the set writes the file."""
    if not target.legacy:
        raise DavError(V1_NOT_HERE)
    folder_path, _, chunk_name = target.path.rpartition("/")
    match = _V1_CHUNK.match(chunk_name)
    if match is None:
        raise DavError(INVALID_CHUNK_NAME)
    name, transfer = match["name"], match["transferid"]
    count, index = int(match["chunkcount"]), match["index"]
    final_path = f"{folder_path}/{name}" if folder_path else name
    methods.conflict_if_missing_parent(backend, target.uid, target.path)
    existing = _stat_or_none(backend, target.uid, final_path)
    if_match, if_none_match = req.header("If-Match"), req.header("If-None-Match")
    _check_preconditions(existing, if_match, if_none_match)

    uploads = staging_of(backend)
    folder = _v1_folder(target.uid, final_path, transfer)
    uploads.put_chunk(target.uid, folder, index, req.body_stream, req.content_length,
                      create_folder=True)
    chunks = uploads.claim(target.uid, folder, [str(i) for i in range(count)])
    if chunks is None:
        # Sabre's createFile: 201 without ETag; OC-FileId once the target exists
        return Response.of(201, headers=_file_id(backend, existing))
    reader = assembly_reader(uploads, chunks)
    try:
        result = backend.write(
            target.uid, final_path, reader, length=sum(max(c.size, 0) for c in chunks),
            mtime=_client_mtime(req), checksum=req.header("OC-Checksum"),
            if_match=if_match, if_none_match=if_none_match)
    finally:
        reader.close()
        uploads.release(chunks)
    # File::createFileChunked returns the bare etag, so ETag (and OC-ETag) are unquoted here
    headers: Headers = [("OC-FileId", oc_id(result.node.fileid, backend.instance_id)),
                        ("ETag", result.node.etag), ("OC-ETag", result.node.etag)]
    if result.mtime_accepted:
        headers.append(("X-OC-MTime", "accepted"))
    return Response.of(201, headers=headers)


def _v1_folder(uid: str, final_path: str, transfer: str) -> str:
    # oC10 keys chunks by name and transfer id per user; the path hash keeps two folders'
    # uploads of the same name apart
    digest = md5(final_path.encode("utf-8", "surrogateescape"), usedforsecurity=False)
    return f".chunking-v1-{transfer}-{digest.hexdigest()[:16]}"


def _check_preconditions(existing: Node | None, if_match: str | None,
                            if_none_match: str | None) -> None:
    """Sabre's If-Match/If-None-Match, against the file being written: the target of a
    MOVE .file, and for every v1 chunk the file ObjectTree resolves the chunk name to."""
    if if_match:
        if existing is None:
            raise DavError(dav_errors.IF_MATCH_MISSING)
        if if_match.strip() != "*" and not _etag_listed(if_match, existing):
            raise DavError(dav_errors.IF_MATCH_FAILED)
    if if_none_match and existing is not None:
        if if_none_match.strip() == "*" or _etag_listed(if_none_match, existing):
            raise DavError(dav_errors.IF_NONE_MATCH_FAILED)


def _etag_listed(header: str, node: Node) -> bool:
    if node.is_dir:
        return False
    quoted = f'"{node.etag}"'
    return any(item.strip(" ").replace('\\"', '"') == quoted for item in header.split(","))


def _file_id(backend: FilesBackend, node: Node | None) -> Headers:
    return [] if node is None else [("OC-FileId", oc_id(node.fileid, backend.instance_id))]


# =============================================================================================
# Small shared helpers


def _client_mtime(req: Request) -> int | None:
    """X-OC-MTime as Node::sanitizeMtime reads it: PHP's (int) cast, so '1568643784.11' is
    1568643784 and text without a leading number is 0."""
    value = req.header("X-OC-MTime")
    if value is None:
        return None
    match = _PHP_NUMBER.match(value)
    number = float(match.group()) if match else 0.0
    return int(max(min(number, _PHP_INT_MAX), -_PHP_INT_MAX))


def _php_equals(header: str, total: int) -> bool:
    """ChunkingPlugin::verifySize's `!=` between the header and the size, with PHP 8 rules:
    a numeric string compares as a number, anything else as the string of the size."""
    if _PHP_NUMBER.fullmatch(header.rstrip(" \t\n\r\v\f")):
        return float(header) == total
    return header == str(total)


def _as_node(entry: UploadEntry) -> Node:
    # what the metadata staging stores for its nodes; the same for every staging
    return Node(fileid=entry.fileid, owner=entry.owner, path=entry.path, name=entry.name,
                is_dir=entry.is_dir, size=entry.size, mtime=entry.mtime, etag=entry.etag,
                permissions=FOLDER_PERMISSIONS if entry.is_dir else FILE_PERMISSIONS,
                mimetype=DIR_MIMETYPE if entry.is_dir else mimetype_for(entry.name),
                checksum=entry.checksum)


__all__ = [
    "AREA_UPLOADS",
    "assembly_reader",
    "cleanup_uploads",
    "is_v1_chunk",
    "natural_order",
    "put_v1",
    "staging_of",
    "strnatcmp",
    "uploads_tree",
]
