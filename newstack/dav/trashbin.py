"""remote.php/dav/trash-bin/<uid>/…: a user's trash as ownCloud 10's TrashBin tree answers it
(REFERENCE §6.8; apps/dav/lib/TrashBin/*).

Items are named by fileid, anything inside a trashed folder too (…/<fileid>/<child fileid>).
PROPFIND lists, MOVE into dav/files/<uid>/… restores, DELETE purges one item or, on the home,
empties the trash. Property values come from newstack/dav/props.py; registered in
newstack/app.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from newstack.backend import FilesBackend, Node, NotFoundError, TrashItem, User
from newstack.dav import errors as dav_errors
from newstack.dav import methods, trees
from newstack.dav import props as dav_props
from newstack.dav.errors import DavError, SabreError
from newstack.dav.methods import MethodNotAllowedError
from newstack.dav.xml import SUPPORTEDLOCK_XML, DavResponse
from newstack.http import Request, Response

NOT_AUTHENTICATED: Final = SabreError(401, "Sabre\\DAV\\Exception\\NotAuthenticated")
_COLLECTION: Final = {"{DAV:}resourcetype": "<d:collection/>",
                      "{DAV:}supportedlock": SUPPORTEDLOCK_XML,
                      "{DAV:}lockdiscovery": None}


@dataclass(frozen=True)
class _Item:
    """A node of the trash tree below the home: `node` itself, and the trashed top-level
    item it belongs to (its original location and deletion time)."""

    top: TrashItem
    node: Node


@dataclass(frozen=True)
class _Location:
    """What a URL below trash-bin/ names: the home (item None) or an item, at `path` (the
    href path below remote.php/dav/, as the client spelled it)."""

    uid: str
    path: str
    item: _Item | None


def tree(req: Request, user: User, rest: str, backend: FilesBackend) -> Response:
    """The TreeHandler for remote.php/dav/trash-bin/."""
    parts = trees.segments(rest)
    if not parts:
        return _principals(req)
    where = _locate(user, parts, backend)
    match req.method:
        case "PROPFIND":
            return _propfind(req, where, backend)
        case "GET" | "HEAD":
            if where.item is None or where.item.node.is_dir:
                return trees.collection_get(head=req.method == "HEAD")
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to read this file")
        case "MOVE":
            return _restore(req, user, where, backend)
        case "DELETE":
            backend.purge(where.uid, None if where.item is None else where.item.node.fileid)
            return Response.of(204)
        case "OPTIONS":
            return trees.options(req, user, backend)
        case "PUT":
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to write this file")
        case "MKCOL":
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to create a folder")
        case "COPY":
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to read this file")
    raise MethodNotAllowedError(f"{req.method} is not allowed on the trash bin")


def _principals(req: Request) -> Response:
    """trash-bin/ itself (a principal collection): only its own Depth 0 properties."""
    if req.method != "PROPFIND":
        raise MethodNotAllowedError(f"{req.method} is not allowed on trash-bin/")
    propfind = trees.read_propfind(req)
    if propfind.depth:
        # Sabre lists every principal, and the first one that is not the user fails
        raise DavError(NOT_AUTHENTICATED)
    found, missing = dav_props.select_props(propfind.props, _COLLECTION)
    return trees.multistatus([DavResponse("trash-bin", found, missing, True)],
                             propfind.minimal)


def _locate(user: User, parts: list[str], backend: FilesBackend) -> _Location:
    """Resolve trash-bin/<uid>/<id>/<id>… as Sabre walks it: the home belongs to the
    authenticated user only (401 for another user, 404 for nobody), then every segment is
    looked up by fileid anywhere in the trash, each parent having to be a folder."""
    url_uid = parts[0]
    if url_uid.lower() != user.uid.lower():
        if backend.user(url_uid) is None:
            raise trees.not_found(f"Principal with name {url_uid} not found")
        raise DavError(NOT_AUTHENTICATED)
    item: _Item | None = None
    items: dict[str, TrashItem] | None = None
    for depth, name in enumerate(parts[1:], start=2):
        if item is not None and not item.node.is_dir:
            raise trees.not_found("Could not find node at path: trash-bin/"
                                  + "/".join(parts[:depth]))
        try:
            node = backend.trashed(user.uid, trees.php_int(name))
        except NotFoundError:
            raise trees.not_found() from None
        if items is None:
            items = {i.node.path: i for i in backend.trash(user.uid)}
        item = _Item(_top_item(items, node), node)
    return _Location(user.uid, "trash-bin/" + "/".join(parts), item)


def _top_item(items: dict[str, TrashItem], node: Node) -> TrashItem:
    top_path = node.path.split("/", 1)[0]
    top = items.get(top_path)
    if top is not None:
        return top
    # a trash node without its oc_files_trash row: what its `<name>.d<ts>` name tells
    name, _, ts = top_path.rpartition(".d")
    return TrashItem(node=node, original_name=name or top_path, original_location=".",
                     deleted_at=int(ts) if ts.isdigit() else 0)


def _propfind(req: Request, where: _Location, backend: FilesBackend) -> Response:
    propfind = trees.read_propfind(req)
    request = propfind.props
    responses: list[DavResponse] = []
    if where.item is None:
        found, missing = dav_props.select_props(request, _COLLECTION)
        responses.append(DavResponse(where.path, found, missing, True))
        if propfind.depth:
            listing = sorted(backend.trash(where.uid),
                             key=lambda i: i.node.name.encode("utf-8", "surrogateescape"))
            for top in listing:
                found, missing = dav_props.render_trash_props(top, request)
                responses.append(DavResponse(f"{where.path}/{top.node.fileid}", found,
                                             missing, top.node.is_dir))
    else:
        item = where.item
        found, missing = dav_props.render_trash_props(item.top, request, item.node)
        responses.append(DavResponse(where.path, found, missing, item.node.is_dir))
        if propfind.depth and item.node.is_dir:
            for child in backend.trash_children(where.uid, item.node.fileid):
                found, missing = dav_props.render_trash_props(item.top, request, child)
                responses.append(DavResponse(f"{where.path}/{child.fileid}", found, missing,
                                             child.is_dir))
    return trees.multistatus(responses, propfind.minimal)


def _restore(req: Request, user: User, where: _Location, backend: FilesBackend) -> Response:
    """MOVE an item into the user's files (Directory::moveInto -> Trashbin::restore): 201,
    or 204 after the existing target went to the trash; the fileid is kept."""
    destination = trees.files_destination(req, user, backend)
    if where.item is None:
        raise DavError(dav_errors.FORBIDDEN, "Permission denied to rename this folder")
    if destination.existing is not None:
        backend.delete(user.uid, destination.path)
    node = backend.restore(user.uid, where.item.node.fileid, destination.path)
    return Response.of(201 if destination.existing is None else 204,
                       headers=methods.node_headers(backend, node))
