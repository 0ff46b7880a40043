"""What the trees beside files/ share (trash-bin in trashbin.py, meta in meta.py): the PROPFIND
framing Sabre gives every tree, and a Destination that must land in the user's own files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from newstack.backend import FilesBackend, Node, NotFoundError, User
from newstack.dav import errors as dav_errors
from newstack.dav import methods
from newstack.dav import xml as dav_xml
from newstack.dav.errors import DavError, SabreError
from newstack.http import Request, Response

#: Sabre's base URI of remote.php/dav: every href and Destination is relative to it
DAV_BASE: Final = "/remote.php/dav/"
UNSUPPORTED_MEDIA_TYPE: Final = SabreError(415, "Sabre\\DAV\\Exception\\UnsupportedMediaType")
_PHP_INT = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)")


def php_int(text: str) -> int:
    """PHP's (int) cast of a URL segment, as View::getPath and MetaRootNode::get apply it:
    '12abc' is 12, 'abc' is 0 (which no file has)."""
    match = _PHP_INT.match(text)
    return int(match.group(1)) if match else 0


def segments(rest: str) -> list[str]:
    return [part for part in rest.split("/") if part]


def not_found(message: str = "") -> DavError:
    """Sabre's NotFound; ownCloud's trash and meta nodes throw it without a message."""
    return DavError(dav_errors.NOT_FOUND, message)


# --- PROPFIND ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropfindRequest:
    depth: int
    props: dav_xml.PropRequest
    #: Brief: t / Prefer: return=minimal: leave out the 404 propstats
    minimal: bool


def read_propfind(req: Request) -> PropfindRequest:
    """Depth (none = 1, infinity refused with 412 as on every tree), body and Prefer."""
    depth = (req.header("Depth") or "1").strip().lower()
    if depth == "infinity":
        raise DavError(dav_errors.DEPTH_INFINITY)
    prefer = (req.header("Prefer") or "").lower()
    minimal = (req.header("Brief") or "").strip().lower() == "t" or any(
        part.strip() == "return=minimal" for part in prefer.split(","))
    return PropfindRequest(0 if depth == "0" else 1, dav_xml.parse_propfind(req.read_body()),
                           minimal)


def multistatus(responses: Iterable[dav_xml.DavResponse], minimal: bool) -> Response:
    """207 as Sabre's httpPropFind answers outside files/ (not streamed there)."""
    writer = dav_xml.Multistatus(DAV_BASE, strip_404=minimal)
    return Response.of(207, writer.render(responses), methods.XML_TYPE,
                       headers=[("Vary", "Brief,Prefer"), ("DAV", methods.DAV_HEADER)])


def collection_get(head: bool) -> Response:
    """GET on a collection: ownCloud's DummyGetResponsePlugin text, as on files/."""
    body = methods.COLLECTION_GET_BODY
    return Response(200, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                    [] if head else [body])


def options(req: Request, user: User, backend: FilesBackend) -> Response:
    return methods.options(req, methods.Target(user.uid, "", DAV_BASE, legacy=False), backend)


# --- Destination into the user's files ---------------------------------------------------------


@dataclass(frozen=True)
class FilesDestination:
    """Where a MOVE (restore) or COPY (version restore) writes: a path in the user's files,
    checked as Sabre's getCopyAndMoveInfo checks it. `existing` is the node there, if any."""

    path: str
    existing: Node | None


def files_destination(req: Request, user: User, backend: FilesBackend) -> FilesDestination:
    """The Destination header as a path under dav/files/<uid>/ of the authenticated user.

    400 without one or with a bad Overwrite header; 403 outside remote.php/dav/ or outside
    the user's own files; 409 when the parent folder is missing, 415 when it is a file; 412
    when the target exists and Overwrite is F.
    """
    value = req.header("Destination")
    if not value:
        raise dav_errors.BadRequest("The destination header was not supplied")
    overwrite = (req.header("Overwrite") or "T").upper()
    if overwrite not in ("T", "F"):
        raise dav_errors.BadRequest("The HTTP Overwrite header should be either T or F")
    raw = re.sub("/+", "/", urlsplit(value).path)
    try:
        uri = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise dav_errors.BadRequest("The Destination header is not valid UTF-8") from None
    if not (uri + "/").startswith(DAV_BASE):
        raise DavError(dav_errors.FORBIDDEN,
                       f"Requested uri ({raw}) is out of base uri ({DAV_BASE})")
    parts = segments(uri[len(DAV_BASE):])
    if len(parts) < 2 or parts[0] != "files" or parts[1].lower() != user.uid.lower():
        raise DavError(dav_errors.FORBIDDEN,
                       "The destination must be in your own files (dav/files/<user>/…)")
    if any(part in (".", "..") for part in parts):
        raise dav_errors.BadRequest("The Destination header contains '.' or '..'")
    path = "/".join(parts[2:])
    if not path:
        raise DavError(dav_errors.FORBIDDEN, "The root folder cannot be replaced")
    try:
        parent = backend.stat(user.uid, path.rpartition("/")[0])
    except NotFoundError:
        raise DavError(dav_errors.CONFLICT, "The destination node is not found") from None
    if not parent.is_dir:
        raise DavError(UNSUPPORTED_MEDIA_TYPE, "The destination node is not a collection")
    try:
        existing: Node | None = backend.stat(user.uid, path)
    except NotFoundError:
        existing = None
    if existing is not None and overwrite == "F":
        raise DavError(dav_errors.OVERWRITE_FAILED)
    return FilesDestination(path, existing)
