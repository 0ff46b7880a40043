"""The new stack's WSGI application: ownCloud 10's URLs routed to DAV and OCS handlers.

Routing, authentication and the translation of backend errors into ownCloud's error bodies
happen here, once. Handlers live in newstack/dav/methods.py and newstack/ocs/.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bridge import metrics
from newstack import avatars, oauth2
from newstack.backend import BackendError, FilesBackend, User
from newstack.dav import chunking, locking, meta, methods, report, trashbin
from newstack.dav import errors as dav_errors
from newstack.dav import public as dav_public
from newstack.dav.methods import MethodNotAllowedError, Target
from newstack.http import BadRequestError, Request, Response
from newstack.links import Links
from newstack.metadata.store import LoginThrottle
from newstack.ocs import capabilities as ocs_caps
from newstack.ocs import envelope as ocs_envelope
from newstack.ocs import shares as ocs_shares
from newstack.ocs import status as ocs_status
from newstack.ocs import users as ocs_users

log = logging.getLogger("ocbridge.newstack")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
#: a tree under /remote.php/dav/<tree>/: (request, authenticated user, path below the tree)
TreeHandler = Callable[[Request, User, str, FilesBackend], Response]
REALM = 'Basic realm="ownCloud", charset="UTF-8"'


@dataclass(frozen=True)
class ServerInfo:
    """What status.php and the capabilities say about this server."""

    version: str = "10.16.4.0"
    versionstring: str = "10.16.4"
    edition: str = "Community"
    product: str = "ownCloud"
    hostname: str = "localhost"


class NewstackApp:
    """WSGI callable serving one FilesBackend under ownCloud 10's URL layout."""

    def __init__(self, backend: FilesBackend, info: ServerInfo | None = None) -> None:
        self.backend = backend
        self.info = info or ServerInfo()
        self.capability_settings = ocs_caps.CapabilitySettings(
            version=self.info.version, versionstring=self.info.versionstring,
            edition=self.info.edition, product=self.info.product,
            hostname=self.info.hostname)
        self.throttle = LoginThrottle()
        self.shares_api = ocs_shares.SharesApi(backend, self.capability_settings)
        self.public_dav = dav_public.PublicDav(backend)
        self.links = Links(backend, webroot=self.capability_settings.webroot)
        metrics.BACKEND_UP.set(1)
        #: /remote.php/dav/<name>/… trees besides files/, each in its own module
        self.dav_trees: dict[str, TreeHandler] = {}
        self.dav_trees["trash-bin"] = trashbin.tree
        self.dav_trees["meta"] = meta.tree
        self.dav_trees["uploads"] = chunking.uploads_tree
        self.avatars = avatars.Avatars(backend)
        self.dav_trees["avatars"] = self.avatars.dav_tree

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        started = time.perf_counter()
        try:
            req = Request.from_environ(environ)
        except BadRequestError as exc:
            response = self._dav_error(400, "Sabre\\DAV\\Exception\\BadRequest", str(exc))
            method = environ.get("REQUEST_METHOD", "GET")
        else:
            method = req.method
            try:
                response = self.route(req)
            except BadRequestError as exc:
                response = self._dav_error(400, "Sabre\\DAV\\Exception\\BadRequest", str(exc))
            except Exception:
                log.exception("unhandled error on %s %s", req.method, req.path)
                response = self._dav_error(500, "Sabre\\DAV\\Exception", "Internal error")
        metrics.observe_request(method, response.status, time.perf_counter() - started)
        _count_storage_bytes(method, response, environ)
        start_response(response.status_line(), response.headers)
        return response.body

    # routing -----------------------------------------------------------------------------

    def route(self, req: Request) -> Response:
        path = req.path
        if path in ("/status.php", "/owncloud/status.php"):
            return self.status(req)
        if path.startswith("/ocs/v1.php/") or path.startswith("/ocs/v2.php/"):
            return self.ocs(req, version=1 if path.startswith("/ocs/v1.php/") else 2)
        if path == "/metrics":
            body, content_type = metrics.exposition()
            return Response.of(200, body, content_type)
        for prefix in ("/remote.php/webdav", "/remote.php/files"):
            if path == prefix or path.startswith(prefix + "/"):
                return self.dav(req, legacy_prefix=prefix)
        if path == dav_public.PUBLIC_WEBDAV or path.startswith(dav_public.PUBLIC_WEBDAV + "/"):
            return self.public_dav.public_webdav(req)
        if path.startswith(dav_public.PUBLIC_FILES):
            return self.public_dav.public_files(req)
        if path == oauth2.TOKEN_PATH:
            # the token endpoint of migrated OAuth2 clients (a backend without a metadata
            # store, such as the oc10 one, has no tokens of its own to refresh)
            store = getattr(self.backend, "store", None)
            if store is not None:
                return oauth2.TokenEndpoint(store)(req)
        link = path.removeprefix("/index.php")
        if link.startswith(avatars.INDEX_PREFIX):
            return self.avatars.index(req, self._authenticate(req),
                                      link[len(avatars.INDEX_PREFIX):],
                                      self.links.not_logged_in)
        if link.startswith("/s/"):
            return self.links.public_link(req, link[len("/s/"):])
        if link.startswith("/f/"):
            return self.links.private_link(req, self._authenticate(req),
                                           link[len("/f/"):].strip("/"))
        if path.startswith("/remote.php/dav/"):
            tree, _, rest = path[len("/remote.php/dav/"):].partition("/")
            if tree == "files":
                return self.dav(req, legacy_prefix=None)
            handler = self.dav_trees.get(tree)
            if handler is not None:
                return self.dav_tree(req, handler, rest)
        return Response.of(404, b"Not Found", "text/plain; charset=utf-8")

    def dav_tree(self, req: Request, handler: TreeHandler, rest: str) -> Response:
        """Other trees under remote.php/dav (uploads, trash-bin, meta): authenticated, with
        backend errors turned into Sabre error bodies like the files tree."""
        user = self._authenticate(req)
        if user is None:
            return self._unauthenticated(req)
        try:
            return handler(req, user, rest, self.backend)
        except (BackendError, dav_errors.DavError) as exc:
            status, body = dav_errors.error_for(exc)
            return Response.of(status, body, methods.XML_TYPE)
        except MethodNotAllowedError as exc:
            return self._dav_error(405, "Sabre\\DAV\\Exception\\MethodNotAllowed", str(exc))

    # status.php ----------------------------------------------------------------------------

    def status(self, req: Request) -> Response:
        body = ocs_status.status_json(version=self.info.version,
                                      versionstring=self.info.versionstring,
                                      edition=self.info.edition, product=self.info.product)
        return Response.of(200, body, headers=ocs_status.status_headers())

    # OCS -------------------------------------------------------------------------------------

    def ocs(self, req: Request, version: int) -> Response:
        fmt = ocs_envelope.choose_format(req.query)
        route = req.path.split(".php/", 1)[1].strip("/")
        legacy = route.startswith("cloud/users")  # provisioning_api: a legacy OCS route
        user = self._authenticate(req)
        if user is None:
            return self._ocs_result(*ocs_envelope.ocs_unauthorised(version, fmt, legacy=legacy))
        if req.method == "GET" and route == "cloud/capabilities":
            data = ocs_caps.capabilities(self.capability_settings)
        elif req.method == "GET" and route == "cloud/user":
            data = ocs_users.cloud_user(user)
        elif req.method == "GET" and route.startswith("cloud/users/"):
            wanted = route.removeprefix("cloud/users/")
            if wanted.lower() != user.uid.lower():
                # only oneself without admin rights (provisioning API's subadmin check)
                return self._ocs_result(*ocs_envelope.ocs_unauthorised(version, fmt,
                                                                       legacy=True))
            return self._ocs_result(*ocs_envelope.render_ocs(
                ocs_users.cloud_users_id(user, self.backend.quota(user.uid)), version=version,
                fmt=fmt, message=None, totalitems=None, itemsperpage=None, legacy=True))
        elif route.startswith("apps/files_sharing/api/v1/"):
            reply = self.shares_api.route(req, user, route.removeprefix("apps/files_sharing/"
                                                                        "api/v1/"),
                                          host_url=req.host_url(), version=version)
            if reply is None:
                return self._ocs_result(*ocs_envelope.ocs_error(998, "Invalid query", version,
                                                                fmt))
            status, headers, body = ocs_envelope.render_ocs(
                reply.data, version=version, fmt=fmt, statuscode=reply.statuscode,
                message=reply.message)
            return Response.of(status, body, headers=[*headers, *reply.headers])
        else:
            return self._ocs_result(*ocs_envelope.ocs_error(998, "Invalid query", version,
                                                            fmt))
        return self._ocs_result(*ocs_envelope.render_ocs(data, version=version, fmt=fmt))

    @staticmethod
    def _ocs_result(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
        return Response.of(status, body, headers=headers)

    # WebDAV ----------------------------------------------------------------------------------

    def dav(self, req: Request, legacy_prefix: str | None) -> Response:
        user = self._authenticate(req)
        if user is None:
            return self._unauthenticated(req)
        if legacy_prefix is not None:
            base = legacy_prefix + "/"
            rest = req.path[len(legacy_prefix):]
            uid = user.uid
        else:
            rest_all = req.path[len("/remote.php/dav/files/"):]
            url_uid, _, rest = rest_all.partition("/")
            if url_uid.lower() != user.uid.lower():
                return self._dav_error(404, "Sabre\\DAV\\Exception\\NotFound",
                                       f"Principal with name {url_uid} not found")
            uid = user.uid
            base = f"/remote.php/dav/files/{url_uid}/"
        path = rest.strip("/")
        if any(part in (".", "..") for part in path.split("/")):
            raise BadRequestError("The path contains '.' or '..'")
        target = Target(uid=uid, path=path, base=base, legacy=legacy_prefix is not None)
        try:
            return self.dav_method(req, target)
        except (BackendError, dav_errors.DavError) as exc:
            status, body = dav_errors.error_for(exc)
            return Response.of(status, body, methods.XML_TYPE)
        except MethodNotAllowedError as exc:
            return self._dav_error(405, "Sabre\\DAV\\Exception\\MethodNotAllowed", str(exc))

    def dav_method(self, req: Request, target: Target) -> Response:
        backend = self.backend
        match req.method:
            case "OPTIONS":
                return methods.options(req, target, backend)
            case "PROPFIND":
                return methods.propfind(req, target, backend, req.host_url())
            case "GET":
                return methods.get(req, target, backend)
            case "HEAD":
                return methods.get(req, target, backend, head=True)
            case "PUT":
                if chunking.is_v1_chunk(req):  # 503 outside the legacy endpoint
                    return chunking.put_v1(req, target, backend)
                return methods.put(req, target, backend)
            case "MKCOL":
                return methods.mkcol(req, target, backend)
            case "DELETE":
                return methods.delete(req, target, backend)
            case "MOVE":
                return methods.move_or_copy(req, target, backend, copy=False)
            case "COPY":
                return methods.move_or_copy(req, target, backend, copy=True)
            case "PROPPATCH":
                return methods.proppatch(req, target, backend)
            case "REPORT":
                return report.report(req, target, backend, req.host_url())
            case "LOCK":
                return locking.lock(req, target, backend)
            case "UNLOCK":
                return locking.unlock(req, target, backend)
        raise MethodNotAllowedError(f"{req.method} is not allowed here")

    # authentication --------------------------------------------------------------------------

    def _authenticate(self, req: Request) -> User | None:
        credentials = req.basic_credentials()
        if credentials is None:
            # owncloud/oauth2's AuthModule: 'Bearer ' and the token after it
            header = req.environ.get("HTTP_AUTHORIZATION", "")
            # (the native backend has it; a backend without OAuth2 tokens knows none)
            bearer: Callable[[str], User | None] | None = getattr(
                self.backend, "authenticate_bearer", None)
            if header.startswith("Bearer ") and bearer is not None:
                return bearer(header[7:])
            return None
        login, password = credentials
        remote = req.environ.get("REMOTE_ADDR", "")
        # slow down guessing per (login, address), as ownCloud's brute-force protection does
        delay = self.throttle.delay(login, remote)
        if delay > 0:
            time.sleep(delay)
        user = self.backend.authenticate(login, password)
        if user is None:
            self.throttle.failure(login, remote)
        else:
            self.throttle.success(login, remote)
        return user

    def _unauthenticated(self, req: Request) -> Response:
        if req.basic_credentials() is None:
            message = ("No public access to this resource., No 'Authorization: Basic' header "
                       "found. Either the client didn't send one, or the server is "
                       "misconfigured, No 'Authorization: Basic' header found. Either the "
                       "client didn't send one, or the server is misconfigured")
        else:
            message = "Username or password was incorrect"
        response = self._dav_error(401, "Sabre\\DAV\\Exception\\NotAuthenticated", message)
        response.headers.append(("WWW-Authenticate", REALM))
        return response

    @staticmethod
    def _dav_error(status: int, exception: str, message: str) -> Response:
        return Response.of(status, dav_errors.sabre_error_body(exception, message),
                           methods.XML_TYPE)


def _count_storage_bytes(method: str, response: Response, environ: dict[str, Any]) -> None:
    """File bytes served and accepted, from the lengths both sides declared."""
    if not environ.get("PATH_INFO", "").startswith("/remote.php/"):
        return
    if method == "GET" and response.status in (200, 206):
        length = None
        for name, value in response.headers:  # the last one counts, as dict() would keep it
            if name == "Content-Length":
                length = value
        if length and length.isdigit():
            metrics.count_bytes("out", int(length))
    elif method == "PUT" and response.status in (201, 204):
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit():
            metrics.count_bytes("in", int(length))
