"""remote.php/dav/meta/<fileid>[/v[/<version id>]]: where a fileid lives and the versions of a
file, as ownCloud 10's Meta tree answers (REFERENCE §6.9; apps/dav/lib/Meta/*,
lib/private/Files/Meta/*).

PROPFIND meta/<fileid> gives oc:meta-path-for-user; meta/<fileid>/v lists versions named by
version id; GET downloads one; COPY onto the same file under dav/files/<uid>/ restores it.
Property values come from newstack/dav/props.py; registered in newstack/app.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from bridge.oc10.formats import oc_id
from newstack.backend import FilesBackend, Node, NotFoundError, User, Version
from newstack.dav import errors as dav_errors
from newstack.dav import props as dav_props
from newstack.dav import trees
from newstack.dav.errors import DavError
from newstack.dav.methods import MethodNotAllowedError, attachment_disposition
from newstack.dav.xml import SUPPORTEDLOCK_XML, DavResponse, xml_text
from newstack.http import Request, Response, closing_iter
from newstack.streams import chunk_reader

OC: Final = "{http://owncloud.org/ns}"
_COLLECTION: Final = {"{DAV:}resourcetype": "<d:collection/>",
                      "{DAV:}supportedlock": SUPPORTEDLOCK_XML, "{DAV:}lockdiscovery": None}
#: MetaPlugin on a MetaFolder: no version metadata in this stack, so empty strings (200)
_VERSION_META: Final = {f"{OC}meta-version-edited-by": "",
                        f"{OC}meta-version-edited-by-name": "", f"{OC}meta-version-tag": ""}


@dataclass(frozen=True)
class _Location:
    """What a URL below meta/ names, at `path` (below remote.php/dav/, as the client spelled
    it): the root, a fileid folder, its versions folder `v`, or one version."""

    kind: Literal["root", "fileid", "versions", "version"]
    path: str
    node: Node | None = None
    version: Version | None = None


def tree(req: Request, user: User, rest: str, backend: FilesBackend) -> Response:
    """The TreeHandler for remote.php/dav/meta/."""
    where = _locate(user, trees.segments(rest), backend)
    match req.method:
        case "PROPFIND":
            return _propfind(req, user, where, backend)
        case "GET" | "HEAD":
            if where.version is None:
                return trees.collection_get(head=req.method == "HEAD")
            return _download(user, where, backend, head=req.method == "HEAD")
        case "COPY":
            return _copy(req, user, where, backend)
        case "OPTIONS":
            return trees.options(req, user, backend)
        case "DELETE" | "MOVE":
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to delete node")
        case "PUT":
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to change data")
        case "MKCOL":
            raise DavError(dav_errors.FORBIDDEN, "Permission denied to create directory")
    raise MethodNotAllowedError(f"{req.method} is not allowed on meta/")


def _locate(user: User, parts: list[str], backend: FilesBackend) -> _Location:
    """Resolve meta/<fileid>/v/<version id> as Sabre walks the Meta tree; a fileid that is
    not among the user's files is a NotFound without a message (as in the docs sample)."""
    path = "/".join(["meta", *parts])
    if not parts:
        return _Location("root", path)
    try:
        node = backend.by_id(user.uid, trees.php_int(parts[0]))
    except NotFoundError:
        raise trees.not_found() from None
    if len(parts) == 1:
        return _Location("fileid", path, node)
    if parts[1] != "v":
        raise trees.not_found(f"File not found: {parts[1]}")
    if len(parts) == 2:
        return _Location("versions", path, node)
    for version in _versions(user, node, backend):
        if str(version.version_id) == parts[2]:
            break
    else:
        raise trees.not_found(f"File not found: {parts[2]}")
    if len(parts) > 3:
        raise trees.not_found("Could not find node at path: meta/" + "/".join(parts[:4]))
    return _Location("version", path, node, version)


def _versions(user: User, node: Node, backend: FilesBackend) -> list[Version]:
    """Newest first; a folder's versions folder exists but is empty."""
    return [] if node.is_dir else backend.versions(user.uid, node.fileid)


def _propfind(req: Request, user: User, where: _Location, backend: FilesBackend) -> Response:
    propfind = trees.read_propfind(req)
    request = propfind.props

    def collection(path: str, values: dict[str, str | None]) -> DavResponse:
        return DavResponse(path, *dav_props.select_props(request, values), True)

    def version(path: str, v: Version) -> DavResponse:
        return DavResponse(path, *dav_props.render_version_props(v, request), False)

    responses: list[DavResponse] = []
    if where.kind == "root":
        if propfind.depth:
            raise DavError(dav_errors.METHOD_NOT_ALLOWED,
                           "Listing members of this collection is disabled")
        responses.append(collection(where.path, _COLLECTION))
    elif where.kind == "fileid":
        assert where.node is not None
        path_for_user = xml_text("/" + where.node.path)
        responses.append(collection(where.path, {
            **_COLLECTION, f"{OC}meta-path-for-user": path_for_user, **_VERSION_META}))
        if propfind.depth:
            responses.append(collection(f"{where.path}/v", {**_COLLECTION, **_VERSION_META}))
    elif where.kind == "versions":
        assert where.node is not None
        responses.append(collection(where.path, {**_COLLECTION, **_VERSION_META}))
        if propfind.depth:
            responses += [version(f"{where.path}/{v.version_id}", v)
                          for v in _versions(user, where.node, backend)]
    else:
        assert where.version is not None
        responses.append(version(where.path, where.version))
    return trees.multistatus(responses, propfind.minimal)


def _download(user: User, where: _Location, backend: FilesBackend, *, head: bool) -> Response:
    """A version's content (Sabre's httpGet on a MetaFile): its own mimetype, mtime and
    etag; the attachment name is the file's."""
    assert where.node is not None and where.version is not None
    v = where.version
    etag = f'"{v.etag}"'
    headers = [
        ("Content-Type", v.mimetype or "application/octet-stream"),
        ("Last-Modified", dav_props.http_date(v.version_id)),
        ("ETag", etag), ("OC-ETag", etag),
        ("Content-Disposition", attachment_disposition(where.node.name)),
        ("Content-Length", str(v.size)),
    ]
    if head:
        return Response(200, headers, [])
    chunks = backend.read_version(user.uid, v.fileid, v.version_id)
    return Response(200, headers, closing_iter(chunks))


def _copy(req: Request, user: User, where: _Location, backend: FilesBackend) -> Response:
    """COPY a version into the user's files, as ownCloud's CopyPlugin and then Sabre do:

    onto the same file: the version is restored (204); onto another existing file: nothing
    happens, still 204 (MetaFileVersionNode::copy refuses and CopyPlugin ignores that);
    anywhere else: Sabre's plain COPY, a new file with the version's content (201), or 204
    after an existing folder there went to the trash.
    """
    if where.version is None or where.node is None:
        raise DavError(dav_errors.FORBIDDEN, "Only a version can be copied out of meta/")
    destination = trees.files_destination(req, user, backend)
    existing = destination.existing
    if existing is not None and not existing.is_dir:
        if existing.fileid == where.node.fileid:
            existing = backend.restore_version(user.uid, where.node.fileid,
                                               where.version.version_id)
        return Response.of(204, headers=[("OC-FileId", oc_id(existing.fileid,
                                                              backend.instance_id))])
    if existing is not None:
        backend.delete(user.uid, destination.path)
    version = where.version
    content = chunk_reader(
        backend.read_version(user.uid, version.fileid, version.version_id))
    result = backend.write(user.uid, destination.path, content, length=version.size)
    return Response.of(201 if existing is None else 204,
                       headers=[("OC-FileId", oc_id(result.node.fileid, backend.instance_id))])
