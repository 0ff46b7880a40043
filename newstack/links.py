"""Links a browser opens: the public link page /s/<token> with its password form and downloads
(a file as is, folders and selections as a streamed zip, or tar for Macs, as OC_Files::get does),
and private links /f/<fileid> (ShareController and ViewController::showFile of v10.16.4).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import json
import re
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode

from bridge.oc10.formats import PERM_READ, dav_encode_path
from newstack.backend import FilesBackend, Node, NotFoundError, User
from newstack.dav import methods
from newstack.http import Headers, Request, Response, closing_iter
from newstack.sharing.public import (
    LinkNotFoundError,
    PublicLink,
    PublicView,
    open_link,
    password_matches,
)

HTML_TYPE: Final = "text/html; charset=UTF-8"
#: Streamer's preferTarFor: these user agents get a tar instead of a zip
_TAR_AGENTS: Final = re.compile(r"macintosh|mac os x", re.IGNORECASE)
NO_PERMISSION: Final = ("You don't have permissions to access this file/folder - Please "
                        "contact the owner to share it with you.")
#: the cookie that stands for oC10's session key `public_link_authenticated`
COOKIE_PREFIX: Final = "oc_link_"


# --- pure: what to send ---------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """downloadShare's `path` and `files`, resolved against the link's folder."""

    #: folder of the link the names are in ('' = the shared folder)
    folder: str
    #: names in `folder`; () = the folder itself
    names: tuple[str, ...]


def parse_selection(query: dict[str, list[str]]) -> Selection:
    """`path` (a folder inside the link) and `files` (one name, `files[]` names, or a JSON
    list as the web UI sends several)."""
    folder = "/".join(p for p in (query.get("path") or [""])[-1].split("/") if p)
    names: list[str] = list(query.get("files[]", []))
    if not names and query.get("files"):
        raw = query["files"][-1]
        decoded: Any = None
        if raw.startswith("["):
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
        if isinstance(decoded, list):
            names = [str(name) for name in decoded]
        elif raw != "":
            names = [raw]
    for part in "/".join([folder, *names]).split("/"):
        if part in (".", ".."):
            raise NotFoundError(f"{part!r} is not a name in this link")
    return Selection(folder, tuple(n.strip("/") for n in names))


def archive_name(base: str, *, tar: bool) -> str:
    """Streamer::sendHeaders: '<name>.zip' (or .tar); the root of a link is 'download'."""
    return f"{base or 'download'}{'.tar' if tar else '.zip'}"


def files_app_url(node: Node, *, webroot: str = "") -> str:
    """linkToRoute('files.view.index', …) for a private link: the folder, or the parent with
    scrollto=<name> for a file."""
    if node.is_dir:
        params = {"dir": "/" + node.path}
    else:
        params = {"dir": "/" + node.path.rpartition("/")[0], "scrollto": node.name}
    return f"{webroot}/index.php/apps/files/?{urlencode(params)}"


def webdav_location(uid: str, node: Node, *, webroot: str = "") -> str:
    return f"{webroot}/remote.php/dav/files/{quote(uid, safe='')}/{dav_encode_path(node.path)}"


def link_cookie(link: PublicLink, salt: str) -> tuple[str, str]:
    """(name, value) of the cookie that proves the visitor gave this link's password: keyed on
    the instance's password salt and the stored hash, so it dies with a password change."""
    stored = link.share.password_hash or ""
    key = hashlib.sha256(f"ocbridge-link\0{salt}\0{stored}".encode()).digest()
    value = hmac.new(key, str(link.share.id).encode(), hashlib.sha256).hexdigest()
    return f"{COOKIE_PREFIX}{link.share.id}", value


# --- HTML ---------------------------------------------------------------------------------------


def _page(title: str, body: str) -> bytes:
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title></head><body>{body}</body></html>\n").encode()


def not_found_page() -> Response:
    return Response.of(404, _page("ownCloud", "<h2>File not found</h2><p>The specified "
                                              "document has not been found on the server.</p>"),
                       HTML_TYPE)


def _redirect(location: str, status: int = 303, headers: Headers | None = None) -> Response:
    return Response.of(status, b"", headers=[("Location", location), *(headers or [])])


# --- the handlers -------------------------------------------------------------------------------


class Links:
    """The /s/ and /f/ URLs over one backend (the app's, with sharing)."""

    def __init__(self, backend: FilesBackend, *, webroot: str = "") -> None:
        self.backend = backend
        self.webroot = webroot

    # /s/<token>[/download|/authenticate] ---------------------------------------------------

    def public_link(self, req: Request, rest: str) -> Response:
        token, _, action = rest.partition("/")
        try:
            link = open_link(self.backend, token)
        except LinkNotFoundError:
            return not_found_page()
        if action == "authenticate":
            return self._authenticate(req, link)
        if action not in ("", "download"):
            return not_found_page()
        if link.password_protected and not self._authenticated(req, link):
            return _redirect(f"{self.webroot}/index.php/s/{token}/authenticate")
        if action == "download":
            if req.method not in ("GET", "HEAD"):
                return Response.of(405, b"")
            return self._download(req, link)
        return self._show(link)

    def _authenticated(self, req: Request, link: PublicLink) -> bool:
        name, value = link_cookie(link, self.backend.passwordsalt)
        cookies = SimpleCookie()
        try:
            cookies.load(req.header("Cookie") or "")
        except Exception:  # noqa: BLE001 - a malformed Cookie header proves nothing
            return False
        morsel = cookies.get(name)
        return morsel is not None and hmac.compare_digest(morsel.value, value)

    def _authenticate(self, req: Request, link: PublicLink) -> Response:
        token = link.token
        if req.method == "POST":
            form = parse_qs(req.read_body().decode("utf-8", "replace"), keep_blank_values=True)
            password = (form.get("password") or [""])[-1]
            if password_matches(self.backend, link, password):
                name, value = link_cookie(link, self.backend.passwordsalt)
                cookie = f"{name}={value}; path={self.webroot or '/'}; HttpOnly; SameSite=Lax"
                return _redirect(f"{self.webroot}/index.php/s/{token}",
                                 headers=[("Set-Cookie", cookie)])
            return Response.of(200, self._password_form(token, wrong=True), HTML_TYPE)
        if self._authenticated(req, link):
            return _redirect(f"{self.webroot}/index.php/s/{token}")
        return Response.of(200, self._password_form(token, wrong=False), HTML_TYPE)

    def _password_form(self, token: str, *, wrong: bool) -> bytes:
        hint = "<p>The password is wrong. Try again.</p>" if wrong else ""
        action = html.escape(f"{self.webroot}/index.php/s/{token}/authenticate")
        return _page("ownCloud", f"<p>This share is password-protected</p>{hint}"
                                 f'<form method="post" action="{action}">'
                                 '<input type="password" name="password"><input type="submit" '
                                 'value="Submit"></form>')

    def _show(self, link: PublicLink) -> Response:
        owner = self.backend.user(link.owner)
        who = owner.display_name if owner is not None else link.owner
        root = link.root
        download = html.escape(f"{self.webroot}/index.php/s/{link.token}/download")
        body = (f"<h1>{html.escape(root.name)}</h1><p>shared by {html.escape(who)}</p>")
        if link.permissions & PERM_READ:
            body += f'<p><a href="{download}">Download</a> ({root.size} bytes)</p>'
        else:
            body += "<p>Upload files here (file drop).</p>"
        return Response.of(200, _page(f"{root.name} - ownCloud", body), HTML_TYPE)

    def _download(self, req: Request, link: PublicLink) -> Response:
        if not link.permissions & PERM_READ:
            return not_found_page()
        view = PublicView(self.backend, link)
        tar = bool(_TAR_AGENTS.search(req.header("User-Agent") or ""))
        head = req.method == "HEAD"
        if not link.root.is_dir:
            return self._single(req, view, view.stat(""))
        try:
            selection = parse_selection(req.query)
            folder = view.stat(selection.folder)
            if not folder.is_dir:
                return self._single(req, view, folder)
            if len(selection.names) == 1:
                chosen = view.stat(_join(selection.folder, selection.names[0]))
                if not chosen.is_dir:
                    return self._single(req, view, chosen)
                return _archive(view, [chosen], archive_name(chosen.name, tar=tar), tar=tar,
                                    head=head)
            if selection.names:
                nodes = [view.stat(_join(selection.folder, n)) for n in selection.names]
                name = folder.name if selection.folder else link.root.name
                return _archive(view, nodes, archive_name(name, tar=tar), tar=tar, head=head)
        except NotFoundError:
            return not_found_page()
        name = folder.name if selection.folder else link.root.name
        return _archive(view, [folder], archive_name(name, tar=tar), tar=tar, head=head)

    def _single(self, req: Request, view: PublicView, node: Node) -> Response:
        adapter = _ViewFiles(view, self.backend)
        target = methods.Target(uid=view.owner, path=node.path, base="/", legacy=False)
        return methods.get(req, target, adapter, head=req.method == "HEAD")  # type: ignore[arg-type]

    # /f/<fileid> and /index.php/f/<fileid> ---------------------------------------------------

    def private_link(self, req: Request, user: User | None, raw_id: str) -> Response:
        if user is None:
            return self.not_logged_in(req)
        try:
            node = self.backend.by_id(user.uid, int(raw_id)) if raw_id.isdigit() else None
        except NotFoundError:
            node = None
        if node is None:
            return Response.of(404, _page("ownCloud", f"<p>{html.escape(NO_PERMISSION)}</p>"),
                               HTML_TYPE)
        return _redirect(files_app_url(node, webroot=self.webroot), headers=[
            ("Webdav-Location", webdav_location(user.uid, node, webroot=self.webroot))])


    def not_logged_in(self, req: Request) -> Response:
        """SecurityMiddleware on NotLoggedInException: a browser goes to the login page (which
        returns here; the URI is urlencoded twice, as oC10 does), anything else gets JSON."""
        accept = req.header("Accept") or ""
        if accept != "*/*" and "html" not in accept.lower():
            return Response.of(401, b'{"message":"Current user is not logged in"}',
                               "application/json; charset=utf-8")
        uri = req.environ.get("REQUEST_URI") or quote(req.path, safe="/") + (
            "?" + req.environ["QUERY_STRING"] if req.environ.get("QUERY_STRING") else "")
        back = quote(quote(uri, safe=""), safe="")
        return _redirect(f"{self.webroot}/index.php/login?redirect_url={back}")


def _join(folder: str, name: str) -> str:
    name = name.strip("/")
    return f"{folder}/{name}" if folder and name else folder or name


class _ViewFiles:
    """Just enough FilesBackend for methods.get over a link's view."""

    def __init__(self, view: PublicView, backend: FilesBackend) -> None:
        self.view = view
        self.instance_id = backend.instance_id

    def stat(self, uid: str, path: str) -> Node:
        return self.view.stat(path)

    def read(self, uid: str, node: Node, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        return self.view.read(node, start, end)


# --- streamed archives --------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file that hands what was written to the response: zipfile
    then writes data descriptors instead of seeking back, so nothing is buffered whole."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._written

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _entries(view: PublicView, node: Node, prefix: str) -> Iterator[tuple[str, Node]]:
    """Streamer::addDirRecursive: the folder entry, then its files and folders, depth first;
    one folder's listing in memory at a time."""
    name = f"{prefix}{node.name}"
    if not node.is_dir:
        yield name, node
        return
    yield name + "/", node
    for child in view.children(node.path):
        yield from _entries(view, child, name + "/")


def stream_zip(view: PublicView, nodes: list[Node]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for top in nodes:
            for name, node in _entries(view, top, ""):
                info = zipfile.ZipInfo(name, time.localtime(max(node.mtime, 315532800))[:6])
                if node.is_dir:
                    info.external_attr = 0o40755 << 16 | 0x10
                    archive.writestr(info, b"")
                else:
                    info.external_attr = 0o644 << 16
                    with archive.open(info, "w", force_zip64=node.size >= 1 << 31) as out:
                        for chunk in view.read(node):
                            out.write(chunk)
                            yield sink.drain()
                yield sink.drain()
    yield sink.drain()


def stream_tar(view: PublicView, nodes: list[Node]) -> Iterator[bytes]:
    """A POSIX (pax) tar written block by block: header, content as it is read, padding."""
    for top in nodes:
        for name, node in _entries(view, top, ""):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = node.mtime
            if node.is_dir:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
                continue
            info.size, info.mode = node.size, 0o644
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            sent = 0
            for chunk in view.read(node):
                sent += len(chunk)
                yield chunk
            if sent != node.size:
                raise OSError(f"{node.path!r} changed size while being archived")
            if node.size % tarfile.BLOCKSIZE:
                yield tarfile.NUL * (tarfile.BLOCKSIZE - node.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (tarfile.BLOCKSIZE * 2)


def _archive(view: PublicView, nodes: list[Node], name: str, *, tar: bool,
             head: bool = False) -> Response:
    headers: Headers = [
        ("Content-Type", "application/x-tar" if tar else "application/zip"),
        ("Content-Disposition", methods.attachment_disposition(name)),
        ("X-Accel-Buffering", "no"),
    ]
    if head:
        return Response(200, headers, [])
    body = stream_tar(view, nodes) if tar else stream_zip(view, nodes)
    return Response(200, headers, closing_iter(_nonempty(body)))


def _nonempty(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            if chunk:
                yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
