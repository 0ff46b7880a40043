"""ownCloud 10's rules for names, targets, renames, restores and quota, shared by both backends.

Pure functions: the `native` and the `oc10` backend must refuse and rename exactly alike, so
the rules live once, here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import BinaryIO, Final, Protocol

from bridge.oc10.mimetypes import mimetype_for
from newstack.backend import (
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    IncompleteBodyError,
    InvalidPathError,
    PreconditionFailedError,
    Quota,
    QuotaExceededError,
)

#: FileInfo::SPACE_UNLIMITED and SPACE_NOT_COMPUTED
SPACE_UNLIMITED: Final = -3
SPACE_NOT_COMPUTED: Final = -1
#: config.php `blacklisted_files` default; compared case-insensitively with the name
BLACKLISTED_FILES: Final = frozenset({".htaccess"})
# Common::verifyPath: more than 255 bytes is FileNameTooLong; oc_filecache.name is VARCHAR(250)
MAX_NAME_BYTES: Final = 255
MAX_NAME_CHARS: Final = 250
#: how much of a request body is read at a time
BODY_CHUNK: Final = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f]")
_PART_MESSAGE: Final = (
    "Can`t upload files with extension .part because these extensions are reserved for "
    "internal use."
)
CHECKSUM_MESSAGE: Final = "The computed checksum does not match the one received from the client."


class Existing(Protocol):
    """What the target checks need of an existing node."""

    @property
    def is_dir(self) -> bool: ...

    @property
    def etag(self) -> str: ...


def normalize(path: str) -> str:
    """A request path as oC10 looks it up: no outer '/', Unicode NFC (Filesystem::normalizePath),
    so an NFD spelling of a name finds the NFC file."""
    return unicodedata.normalize("NFC", path.strip("/"))


def check_name(name: str) -> None:
    """Common::verifyPath and the blacklist, as oC10 applies them to a new name."""
    if name in ("", ".", ".."):
        raise InvalidPathError(f"{name!r} is not a valid file name")
    if "/" in name or "\\" in name or _CONTROL.search(name):
        raise InvalidPathError(f"file name {name!r} contains an invalid character")
    if name.strip() == "*":
        raise InvalidPathError("'*' is a reserved file name")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES or len(name) > MAX_NAME_CHARS:
        raise InvalidPathError(f"file name is too long: {name[:40]!r}…")
    if name.endswith(".part"):
        raise InvalidPathError(_PART_MESSAGE)
    if name.lower() in BLACKLISTED_FILES:
        raise ForbiddenError(f"file name {name!r} is blacklisted")


def check_move(src: str, dst: str, verb: str) -> None:
    if src == "":
        raise ForbiddenError(f"cannot {verb} the files root")
    if dst == "":
        raise ForbiddenError(f"cannot {verb} onto the files root")
    if src == dst:
        raise ForbiddenError("Source and destination uri are identical.")
    if dst.startswith(src + "/"):
        # sabre/dav's CorePlugin refuses this before ownCloud sees it: 409, not 403
        raise ConflictError("The destination may not be part of the same subtree as the source "
                            "path.")


def check_replace(src: str, dst: str) -> None:
    if src.startswith(dst + "/"):
        raise ForbiddenError(f"cannot replace {dst!r} by something inside it ({src!r})")


def etag_list(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()]


def check_target(
    existing: Existing | None, path: str, if_match: str | None, if_none_match: str | None
) -> None:
    """PUT onto `path`: not a folder, and the If-Match / If-None-Match preconditions hold."""
    if existing is not None and existing.is_dir:
        raise AlreadyExistsError(f"{path!r} is a folder")
    if if_match is not None:
        tags = etag_list(if_match)
        if existing is None or ("*" not in tags and existing.etag not in tags):
            raise PreconditionFailedError(f"If-Match does not hold for {path!r}")
    if if_none_match is not None and existing is not None:
        tags = etag_list(if_none_match)
        if "*" in tags or existing.etag in tags:
            raise PreconditionFailedError(f"If-None-Match does not hold for {path!r}")


def renamed_mimetype(is_dir: bool, old_name: str, new_name: str) -> str | None:
    """The mimetype after a rename, or None to keep it: oC10 (Updater::renameFromStorage)
    re-detects it only when the extension changes."""
    if is_dir or split_extension(old_name)[1] == split_extension(new_name)[1]:
        return None
    return mimetype_for(new_name)


def split_extension(name: str) -> tuple[str, str]:
    """PHP pathinfo() FILENAME and '.'+EXTENSION (empty when there is none)."""
    dot = name.rfind(".")
    if dot < 0:
        return name, ""
    if dot == len(name) - 1:
        return name[:dot], ""
    return name[:dot], name[dot:]


def restore_names(name: str) -> Iterator[str]:
    """Trashbin::getUniqueFilename's candidates: the name, then ' (restored)', ' (restored 2)',
    ... before the extension."""
    yield name
    stem, ext = split_extension(name)
    yield f"{stem} (restored){ext}"
    counter = 2
    while True:
        yield f"{stem} (restored {counter}){ext}"
        counter += 1


def is_same_or_below(path: str, top: str) -> bool:
    return top == "" or path == top or path.startswith(top + "/")


def strictly_below(path: str, top: str) -> bool:
    return path != top and is_same_or_below(path, top)


def quota_of(used: int, limit: int | None) -> Quota:
    if used < 0:
        return Quota(used=0, available=SPACE_NOT_COMPUTED)
    if limit is None:
        return Quota(used=used, available=SPACE_UNLIMITED)
    return Quota(used=used, available=max(limit - used, 0))


def body_chunks(
    body: BinaryIO, length: int | None, limit: int | None, path: str, chunk_size: int = BODY_CHUNK
) -> Iterator[bytes]:
    """The request body as storage reads it: at most `length` bytes, an IncompleteBodyError
    when it ends early, a QuotaExceededError as soon as it passes `limit`."""
    count = 0
    while True:
        size = chunk_size if length is None else min(chunk_size, length - count)
        if size <= 0:
            return
        chunk = body.read(size)
        if not chunk:
            if length is not None and count < length:
                raise IncompleteBodyError(f"expected filesize {length} got {count}")
            return
        count += len(chunk)
        if limit is not None and count > limit:
            raise QuotaExceededError(f"upload to {path!r} exceeds the quota: {limit} bytes free")
        yield bytes(chunk)
