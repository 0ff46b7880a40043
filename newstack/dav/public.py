"""Public links over WebDAV: /public.php/webdav (Basic user = token, password = link password)
and /remote.php/dav/public-files/<token>/ (anonymous, or user `public` + the link password),
answered by the files-tree handlers (methods.py) over the link's view (newstack/sharing/public.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Final

from bridge.oc10.passwords import VerifiedCredentialCache
from newstack.backend import (
    BackendError,
    FilesBackend,
    ForbiddenError,
    Lock,
    Node,
    NodeExtras,
    NotFoundError,
    Quota,
    User,
    WriteResult,
)
from newstack.dav import errors as dav_errors
from newstack.dav import methods
from newstack.dav.methods import MethodNotAllowedError, Target
from newstack.dav.props import http_date
from newstack.dav.xml import xml_text
from newstack.http import BadRequestError, Request, Response
from newstack.sharing.model import Share
from newstack.sharing.public import (
    LinkNotFoundError,
    PublicLink,
    PublicView,
    drop_name,
    open_link,
    password_matches,
)

PUBLIC_WEBDAV: Final = "/public.php/webdav"
PUBLIC_FILES: Final = "/remote.php/dav/public-files/"
#: PublicAuth's realm is the theme name
REALM: Final = 'Basic realm="ownCloud", charset="UTF-8"'
NO_AUTH_HEADER: Final = ("No 'Authorization: Basic' header found. Either the client didn't "
                         "send one, or the server is misconfigured")
WRONG_CREDENTIALS: Final = "Username or password was incorrect"
LISTING_DISABLED: Final = "Listing members of this collection is disabled"
#: the methods a link's tree answers (no locks, no properties of its own, no REPORT)
ALLOWED: Final = ("OPTIONS", "GET", "HEAD", "PROPFIND", "PUT", "MKCOL", "DELETE", "MOVE",
                  "COPY")
_DIR_MIME: Final = "httpd/unix-directory"
_OC: Final = "{http://owncloud.org/ns}"


class PublicFiles:
    """A FilesBackend face on a link's PublicView, so the DAV handlers serve it unchanged;
    the uid they pass is ignored (everything runs as the link's owner, masked by the link).

    `file_in_folder`: on dav/public-files a link to a file is a collection (named by the
    token) holding that one file, as PublicSharedRootNode is; on public.php the file is the
    root itself."""

    def __init__(self, backend: FilesBackend, link: PublicLink, *, file_in_folder: bool,
                 listing: bool) -> None:
        self.backend = backend
        self.link = link
        self.view = PublicView(backend, link)
        self.wrapped = file_in_folder and not link.root.is_dir
        #: dav/public-files describes the link on its root (PublicFilesPlugin::propFind)
        self.describes_link = file_in_folder
        #: oC10 shows a file drop's folder empty to PROPFIND and GET
        self.listing = listing
        self.instance_id = backend.instance_id
        self.data_fingerprint = backend.data_fingerprint

    # the path a visitor uses -> the view's path --------------------------------------------

    def _inner(self, path: str) -> str:
        if not self.wrapped:
            return path
        if path == self.link.root.name:
            return ""
        raise NotFoundError(f"File with name {path} could not be located")

    def _outer(self, node: Node) -> Node:
        if not self.wrapped:
            return node
        return dataclasses.replace(node, path=self.link.root.name)

    def _wrapper(self) -> Node:
        root = self.view.stat("")
        return dataclasses.replace(root, path="", name=self.link.token, is_dir=True,
                                   mimetype=_DIR_MIME, checksum="")

    # reading --------------------------------------------------------------------------------

    def stat(self, uid: str, path: str) -> Node:
        if self.wrapped and path == "":
            return self._wrapper()
        return self._outer(self.view.stat(self._inner(path)))

    def children(self, uid: str, path: str) -> list[Node]:
        if not self.listing:
            return []
        if self.wrapped and path == "":
            return [self._outer(self.view.stat(""))]
        return self.view.children(self._inner(path))

    def extras(self, uid: str, nodes: Iterable[Node]) -> dict[int, NodeExtras]:
        # no favorites, tags or comments for anonymous visitors; on public-files the root
        # carries the link's own properties
        if not self.describes_link:
            return {}
        root = self.link.root.fileid
        if not any(node.fileid == root for node in nodes):
            return {}
        return {root: NodeExtras(dead=link_properties(self.link.share))}

    def user(self, uid: str) -> User | None:
        return self.backend.user(uid)

    def quota(self, uid: str) -> Quota:
        return self.backend.quota(self.link.owner)

    def read(self, uid: str, node: Node, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        if self.wrapped:
            node = dataclasses.replace(node, path="")
        return self.view.read(node, start, end)

    # writing --------------------------------------------------------------------------------

    def write(self, uid: str, path: str, body: BinaryIO, *, length: int | None,
              mtime: int | None = None, checksum: str | None = None,
              if_match: str | None = None, if_none_match: str | None = None) -> WriteResult:
        result = self.view.write(self._inner(path), body, length=length, mtime=mtime,
                                 checksum=checksum, if_match=if_match,
                                 if_none_match=if_none_match)
        return dataclasses.replace(result, node=self._outer(result.node))

    def mkdir(self, uid: str, path: str) -> Node:
        if self.wrapped:
            raise ForbiddenError("Creating a folder in a file is not allowed")
        return self.view.mkdir(path)

    def delete(self, uid: str, path: str) -> None:
        self.view.delete(self._inner(path))

    def move(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        return self.view.move(self._inner(src), self._inner(dst), overwrite=overwrite)

    def copy(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        return self.view.copy(self._inner(src), self._inner(dst), overwrite=overwrite)

    def set_mtime(self, uid: str, path: str, mtime: int) -> Node:
        return self.view.set_mtime(self._inner(path), mtime)

    def set_favorite(self, uid: str, path: str, favorite: bool) -> None:
        raise ForbiddenError("")

    def set_dead_props(self, uid: str, path: str, props: dict[str, str | None]) -> None:
        raise ForbiddenError("")

    def exists(self, path: str) -> bool:
        try:
            self.stat("", path)
        except NotFoundError:
            return False
        return True

    # locks: links take none (no LOCK method here), so no lock ever applies ------------------

    def locks(self, uid: str, path: str, *, with_parents: bool = True,
              with_children: bool = False) -> list[Lock]:
        return []


def _sabre(status: int, exception: str, message: str, *, challenge: bool = False) -> Response:
    response = Response.of(status, dav_errors.sabre_error_body(exception, message),
                           methods.XML_TYPE)
    if challenge:
        response.headers.append(("WWW-Authenticate", REALM))
    return response


def _unauthenticated(message: str, *, challenge: bool) -> Response:
    return _sabre(401, "Sabre\\DAV\\Exception\\NotAuthenticated", message, challenge=challenge)


class PublicDav:
    """The two public WebDAV endpoints over one backend (the app's, with sharing)."""

    def __init__(self, backend: FilesBackend) -> None:
        self.backend = backend
        self.verified = VerifiedCredentialCache(ttl=300.0)

    def _password_ok(self, link: PublicLink, password: str) -> bool:
        stored = link.share.password_hash
        if stored is None:
            return True
        key = f"link:{link.share.id}"
        if self.verified.contains(key, password, stored):
            return True
        if password_matches(self.backend, link, password):
            self.verified.add(key, password, stored)
            return True
        return False

    # /public.php/webdav ---------------------------------------------------------------------

    def public_webdav(self, req: Request) -> Response:
        credentials = req.basic_credentials()
        if credentials is None:
            return _unauthenticated(f"No public access to this resource., {NO_AUTH_HEADER}",
                                    challenge=True)
        token, password = credentials
        try:
            link = open_link(self.backend, token)
        except LinkNotFoundError:
            return _unauthenticated(WRONG_CREDENTIALS, challenge=True)
        if not self._password_ok(link, password):
            return _unauthenticated(WRONG_CREDENTIALS, challenge=True)
        rest = req.path[len(PUBLIC_WEBDAV):]
        files = PublicFiles(self.backend, link, file_in_folder=False,
                            listing=not (link.upload_only and req.method in ("PROPFIND", "GET")))
        target = Target(uid=link.owner, path=_clean(rest), base=PUBLIC_WEBDAV + "/",
                        legacy=True)
        return self._serve(req, target, files)

    # /remote.php/dav/public-files/<token>/ --------------------------------------------------

    def public_files(self, req: Request) -> Response:
        token, _, rest = req.path[len(PUBLIC_FILES):].partition("/")
        if not token:
            # RootCollection::$disableListing: nobody may enumerate the links
            return _sabre(405, "Sabre\\DAV\\Exception\\MethodNotAllowed", LISTING_DISABLED)
        try:
            link = open_link(self.backend, token)
        except LinkNotFoundError:
            return _sabre(404, "Sabre\\DAV\\Exception\\NotFound", "")
        if link.password_protected:
            credentials = req.basic_credentials()
            if credentials is None:
                # PublicSharingAuth::challenge() adds no WWW-Authenticate header
                return _unauthenticated(NO_AUTH_HEADER, challenge=False)
            user, password = credentials
            if user != "public" or not self._password_ok(link, password):
                return _unauthenticated(WRONG_CREDENTIALS, challenge=False)
        files = PublicFiles(self.backend, link, file_in_folder=True,
                            listing=not (link.upload_only and req.method in ("PROPFIND", "GET")))
        target = Target(uid=link.owner, path=_clean(rest), base=f"{PUBLIC_FILES}{token}/",
                        legacy=False)
        return self._serve(req, target, files)

    # the methods ------------------------------------------------------------------------------

    def _serve(self, req: Request, target: Target, files: PublicFiles) -> Response:
        backend: Any = files
        try:
            match req.method:
                case "OPTIONS":
                    return Response.of(200, headers=[("DAV", methods.DAV_HEADER),
                                                     ("Allow", ", ".join(ALLOWED))])
                case "PROPFIND":
                    return methods.propfind(req, target, backend, req.host_url())
                case "GET" | "HEAD":
                    if files.link.upload_only and target.path:
                        # a file drop does not tell whether a file exists
                        raise NotFoundError("")
                    return methods.get(req, target, backend, head=req.method == "HEAD")
                case "PUT":
                    # PublicView.write renames a taken name as well; naming the target
                    # here first makes the reply (201, ETag, OC-FileId) describe the new file
                    if files.link.upload_only and target.path and "/" not in target.path:
                        target = dataclasses.replace(
                            target, path=drop_name(target.path, files.exists))
                    return methods.put(req, target, backend)
                case "MKCOL":
                    return methods.mkcol(req, target, backend)
                case "DELETE":
                    return methods.delete(req, target, backend)
                case "MOVE" | "COPY":
                    return methods.move_or_copy(req, target, backend, copy=req.method == "COPY")
            raise MethodNotAllowedError(f"{req.method} is not allowed on a public link")
        except (BackendError, dav_errors.DavError) as exc:
            status, body = dav_errors.error_for(exc)
            return Response.of(status, body, methods.XML_TYPE)
        except MethodNotAllowedError as exc:
            return _sabre(405, "Sabre\\DAV\\Exception\\MethodNotAllowed", str(exc))


def link_properties(share: Share) -> dict[str, str]:
    """PublicFilesPlugin::propFind on a link's root (PublicSharedRootNode): node type,
    permissions, expiry (when set) and share time as HTTP dates, the owner's uid; XML text."""
    found = {
        f"{_OC}public-link-item-type": xml_text(share.item_type),
        f"{_OC}public-link-permission": str(share.permissions),
        f"{_OC}public-link-share-datetime": http_date(share.stime),
        f"{_OC}public-link-share-owner": xml_text(share.uid_owner),
    }
    if share.expiration is not None:
        midnight = dt.datetime.combine(share.expiration, dt.time(), dt.UTC)
        found[f"{_OC}public-link-expiration"] = http_date(int(midnight.timestamp()))
    return found


def _clean(rest: str) -> str:
    path = rest.strip("/")
    if any(part in (".", "..") for part in path.split("/")):
        raise BadRequestError("The path contains '.' or '..'")
    return path
