"""ownCloud 10's avatar endpoints, answered alike by both stacks.

`GET /index.php/avatar/<uid>/<size>` (core's AvatarController::getAvatar): any logged-in user
may fetch anyone's avatar; the image with its type, or, when the user has none, 200 with JSON
`{"data":{"displayname":…}}` (the web UI then draws the coloured letter itself); '' as the name
when no such user exists. Every answer has `Cache-Control: no-cache, no-store,
must-revalidate`, `Pragma: public` and `Last-Modified` = now, as oC10's has.

`GET /remote.php/dav/avatars/<uid>/<size>.<ext>` (the dav app's AvatarHome): `<ext>` is
`png` or `jpeg` and `<size>` 1..1024, else 405; 404 without an avatar.

Where the avatar is: the new stack's `avatars` table and blob (migrate/account_data.py imports
them), or ownCloud's files (the root storage's avatars/<md5 path>/avatar.jpg|png, then the
home's avatar.jpg|png) for the oc10 backend.

Sizes, as oC10: the index endpoint clamps `<size>` (PHP intval) to 1..2048, 0 or less meaning
64 (AvatarController::getAvatar), and answers in the avatar's own format; the DAV node answers
`<size>` in the format its extension names. The image is resized by newstack/avatar_image.py
(the longest side becomes `<size>`, aspect kept), the one code path both stacks run, so they
answer the same bytes. The new stack keeps each resized variant as a blob next to the avatar's
(`resized-<avatar blob>-<size>.<png|jpeg>`, written once, never changed: a new avatar has a new
blob id); the legacy server keeps them in memory (VARIANT_CACHE_BYTES, least recently used
dropped first) and writes nothing into ownCloud's data directory (ownCloud's own
`avatar.<size>.<ext>` files are GD's pixels, which the new stack cannot reproduce, so they are
not read either). An avatar too large to decode (over avatar_image.MAX_PIXELS or
MAX_SOURCE_BYTES: a decompression bomb) or not an image is answered
500 with the reason, never decoded.

Not as oC10: the pixels are Pillow's, not GD's; the ETag is made of the avatar's mtime and
length, the size and the format (oC10's is the resized file's mtime, inode, device and length,
which no other server can reproduce), so that both stacks give the same one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import unquote

import sqlalchemy as sa

from bridge.oc10.formats import avatar_path
from newstack import avatar_image
from newstack.backend import User
from newstack.dav import errors as dav_errors
from newstack.http import Request, Response
from newstack.metadata import schema
from newstack.ocs.php import json_encode

INDEX_PREFIX: Final = "/avatar/"
#: what oC10 looks for, in this order (Avatar::getExtension: avatar.jpg, then avatar.png)
AVATAR_NAMES: Final = (("avatar.jpg", "image/jpeg"), ("avatar.png", "image/png"))
#: AvatarHome::getChild
DAV_EXTENSIONS: Final = ("jpeg", "png")
MAX_DAV_SIZE: Final = 1024
_NO_STORE: Final = "no-cache, no-store, must-revalidate"
#: AvatarController::getAvatar's bounds and default
MAX_INDEX_SIZE: Final = 2048
DEFAULT_SIZE: Final = 64
#: the legacy server's in-process variants (it writes nothing to ownCloud's data directory)
VARIANT_CACHE_BYTES: Final = 32 * 1024 * 1024
_LEADING_INT: Final = re.compile(r"[ \t\n\r\v\f]*[+-]?[0-9]+")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Avatar:
    """The uploaded avatar: its bytes are read only when a variant must be made."""

    mimetype: str
    mtime: int
    length: int
    load: Callable[[], bytes]

    def etag(self, size: int, fmt: str) -> str:
        return hashlib.md5(f"{self.mtime}:{self.length}:{size}:{fmt}".encode(),
                           usedforsecurity=False).hexdigest()


class AvatarSource(Protocol):
    def avatar(self, uid: str) -> Avatar | None: ...

    def resized(self, avatar: Avatar, size: int, fmt: str) -> bytes:
        """The avatar at `size` in `fmt` (avatar_image.resize, possibly cached)."""
        ...


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _checked_length(length: int) -> int:
    # refused before reading: the bytes are held in memory to be decoded
    if length > avatar_image.MAX_SOURCE_BYTES:
        raise avatar_image.AvatarImageError(
            f"avatar file too large: {length} bytes (limit {avatar_image.MAX_SOURCE_BYTES})")
    return length


def avatar_files(data_dir: Path, home: Path, uid: str) -> list[tuple[Path, str]]:
    """Where ownCloud keeps a user's avatar, most recent layout first: the root storage's
    avatars/<md5 path>/ (since 10.0), then the home folder (before it), jpg before png."""
    folders = (data_dir / avatar_path(uid), home)
    return [(folder / name, mimetype) for folder in folders for name, mimetype in AVATAR_NAMES]


class Oc10Avatars:
    """ownCloud's own avatar files (the `oc10` backend serving an instance in place)."""

    def __init__(self, backend: Any, cache_bytes: int = VARIANT_CACHE_BYTES) -> None:
        self.backend = backend
        self.variants = VariantCache(cache_bytes)

    def avatar(self, uid: str) -> Avatar | None:
        try:
            home = self.backend.home(uid)
        except Exception:  # no such user: no home, and no avatar either
            return None
        for path, mimetype in avatar_files(self.backend.instance.data_dir, home, uid):
            try:
                with path.open("rb") as file:
                    st = os.fstat(file.fileno())
                    data = file.read(_checked_length(st.st_size) + 1)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            return _FileAvatar(mimetype, int(st.st_mtime), len(data), _constant(data),
                               str(path))
        return None

    def resized(self, avatar: Avatar, size: int, fmt: str) -> bytes:
        # kept in memory only: ownCloud's avatar folder is its own (the module's docstring)
        if not isinstance(avatar, _FileAvatar):
            return avatar_image.resize(avatar.load(), size, fmt)
        key = (avatar.path, avatar.mtime, avatar.length, size, fmt)
        data = self.variants.get(key)
        if data is None:
            data = avatar_image.resize(avatar.load(), size, fmt)
            self.variants.put(key, data)
        return data


@dataclass(frozen=True)
class _FileAvatar(Avatar):
    path: str


class VariantCache:
    """Resized avatars, least recently used dropped first, at most `limit` bytes in all
    (the server's threads share it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._items: OrderedDict[tuple[str, int, int, int, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int, int, str]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, int, int, int, str], data: bytes) -> None:
        if len(data) > self.limit:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.used -= len(old) if old is not None else 0
            self._items[key] = data
            self.used += len(data)
            while self.used > self.limit:
                _, dropped = self._items.popitem(last=False)
                self.used -= len(dropped)


class StoredAvatars:
    """The new stack's `avatars` row and blob."""

    def __init__(self, store: Any, driver: Any) -> None:
        self.store = store
        self.driver = driver

    def avatar(self, uid: str) -> Avatar | None:
        a = schema.avatars
        with self.store.read() as conn:
            row = conn.execute(sa.select(a.c.blob_id, a.c.mimetype, a.c.mtime, a.c.size)
                               .where(a.c.uid == uid)).first()
        if row is None:
            return None
        blob_id = str(row.blob_id)
        return _StoredAvatar(row.mimetype, int(row.mtime), int(row.size),
                             lambda: b"".join(self.driver.open(blob_id)), blob_id)

    def resized(self, avatar: Avatar, size: int, fmt: str) -> bytes:
        if not isinstance(avatar, _StoredAvatar):
            return avatar_image.resize(avatar.load(), size, fmt)
        cached = resized_blob_id(avatar.blob_id, size, fmt)
        try:
            return b"".join(self.driver.open(cached))
        except FileNotFoundError:
            pass
        _checked_length(avatar.length)
        data = avatar_image.resize(avatar.load(), size, fmt)
        try:
            self.driver.put(cached, [data], size=len(data))
        except OSError as exc:  # answered all the same; made again next time
            log.warning("could not cache avatar variant %s: %s", cached, exc)
        return data


@dataclass(frozen=True)
class _StoredAvatar(Avatar):
    blob_id: str


def resized_blob_id(blob_id: str, size: int, fmt: str) -> str:
    """The blob of one variant of the avatar in `blob_id` (which names one avatar version)."""
    return f"resized-{blob_id}-{size}.{fmt}"


def source_for(backend: Any) -> AvatarSource:
    """The avatars of the backend a NewstackApp serves (possibly wrapped, e.g. for sharing)."""
    inner = backend
    while hasattr(inner, "inner"):
        inner = inner.inner
    if hasattr(inner, "store") and hasattr(inner, "driver"):
        return StoredAvatars(inner.store, inner.driver)
    if hasattr(inner, "instance"):
        return Oc10Avatars(inner)
    raise TypeError(f"no avatars for a {type(inner).__name__}")


# -- the answers (pure) -----------------------------------------------------------------------


def php_intval(text: str) -> int:
    """PHP's intval() of a string: leading blanks, a sign and the digits that follow; 0 when
    there are none ('12abc' → 12, 'abc' → 0)."""
    match = _LEADING_INT.match(text)
    return int(match.group(0)) if match else 0


def _index_headers(now: float) -> list[tuple[str, str]]:
    # PHP's DateTime::RFC2822 ('D, d M Y H:i:s O'): the offset as +0000, not GMT
    return [("Pragma", "public"), ("Cache-Control", _NO_STORE),
            ("Last-Modified", format_datetime(_utc(int(now))).replace("-0000", "+0000"))]


def index_size(text: str) -> int:
    """AvatarController::getAvatar's size: over 2048 is 2048, 0 or less is 64."""
    size = php_intval(text)
    return MAX_INDEX_SIZE if size > MAX_INDEX_SIZE else DEFAULT_SIZE if size <= 0 else size


def image_response(etag: str, mimetype: str, image: Callable[[], bytes],
                   if_none_match: str | None, headers: list[tuple[str, str]]) -> Response:
    """200 with `image()`, or 304 (without making it) when the client holds `etag`."""
    quoted = f'"{etag}"'
    out = [*headers, ("ETag", quoted)]
    if if_none_match is not None and quoted in (t.strip() for t in if_none_match.split(",")):
        return Response(304, out)
    return Response.of(200, image(), mimetype, out)


def index_answer(avatar: Avatar | None, user: User | None, if_none_match: str | None,
                 now: float, image: Callable[[], bytes] = bytes, size: int = DEFAULT_SIZE
                 ) -> Response:
    """GET /index.php/avatar/<uid>/<size> of a user with `avatar` (or None) who is `user`
    (None: no such user); `image()` makes the avatar at `size` in its own format."""
    headers = _index_headers(now)
    if avatar is not None:
        fmt = avatar_image.MIMETYPE_FORMAT.get(avatar.mimetype, "png")
        return image_response(avatar.etag(size, fmt), avatar_image.FORMATS[fmt][1], image,
                              if_none_match, headers)
    name = user.display_name if user is not None else ""
    body = json_encode({"data": {"displayname": name}}, hex_tag=True).encode()
    return Response.of(200, body, "application/json; charset=utf-8", headers)


# -- the endpoints ------------------------------------------------------------------------------


class Avatars:
    """Both endpoints over one backend."""

    def __init__(self, backend: Any, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.clock = clock
        self._source: AvatarSource | None = None

    @property
    def source(self) -> AvatarSource:
        # found at the first request: an app is also made over backends without avatars
        if self._source is None:
            self._source = source_for(self.backend)
        return self._source

    def _user(self, uid: str) -> User | None:
        try:
            user: User | None = self.backend.user(uid)
        except Exception:  # an unknown user may raise rather than answer None
            return None
        return user

    def index(self, req: Request, requester: User | None, rest: str,
              not_logged_in: Callable[[Request], Response]) -> Response:
        """`rest`: what follows /avatar/ ("<uid>/<size>")."""
        uid, _, size = rest.partition("/")
        if req.method != "GET" or not uid or not size or "/" in size:
            return Response.of(404, b"Not Found", "text/plain; charset=utf-8")
        if requester is None:
            return not_logged_in(req)
        uid, pixels = unquote(uid), index_size(unquote(size))
        try:
            avatar = self.source.avatar(uid)
            fmt = avatar_image.MIMETYPE_FORMAT.get(avatar.mimetype, "png") if avatar else "png"
            return index_answer(
                avatar, self._user(uid), req.header("If-None-Match"), self.clock(),
                lambda: self.source.resized(avatar, pixels, fmt) if avatar else b"", pixels)
        except avatar_image.AvatarImageError as exc:
            log.warning("avatar of %s not served: %s", uid, exc)
            body = json_encode({"message": str(exc)}, hex_tag=True).encode()
            return Response.of(500, body, "application/json; charset=utf-8",
                               _index_headers(self.clock()))

    def dav_tree(self, req: Request, requester: User, rest: str, backend: Any) -> Response:
        """/remote.php/dav/avatars/<uid>/<size>.<ext> (a NewstackApp dav_trees handler)."""
        uid, _, name = rest.partition("/")
        uid, name = unquote(uid), unquote(name.strip("/"))
        if not uid or self._user(uid) is None:
            raise dav_errors.DavError(dav_errors.NOT_FOUND,
                                      f"Principal with name {uid} not found")
        if not name or req.method not in ("GET", "HEAD"):
            raise dav_errors.DavError(dav_errors.METHOD_NOT_ALLOWED,
                                      f"{req.method} is not allowed here")
        stem, dot, ext = name.rpartition(".")
        if not dot or ext not in DAV_EXTENSIONS:
            raise dav_errors.DavError(dav_errors.METHOD_NOT_ALLOWED, "File format not allowed")
        size = php_intval(stem)
        if size <= 0 or size > MAX_DAV_SIZE:
            raise dav_errors.DavError(dav_errors.METHOD_NOT_ALLOWED, "Invalid image size")
        try:
            avatar = self.source.avatar(uid)
            if avatar is None:
                raise dav_errors.DavError(dav_errors.NOT_FOUND)
            # Sabre's GET: the node's mtime as an HTTP date
            headers = [("Last-Modified", format_datetime(_utc(avatar.mtime), usegmt=True))]
            found = avatar
            response = image_response(
                avatar.etag(size, ext), avatar_image.FORMATS[ext][1],
                lambda: self.source.resized(found, size, ext),
                req.header("If-None-Match"), headers)
        except avatar_image.AvatarImageError as exc:
            log.warning("avatar of %s not served: %s", uid, exc)
            raise dav_errors.DavError(dav_errors.INTERNAL, str(exc)) from exc
        if req.method == "HEAD":
            response.body = ()
        return response


def _utc(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)
