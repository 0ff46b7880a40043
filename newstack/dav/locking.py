"""WebDAV locks as ownCloud 10 (Sabre 4.7's Locks plugin over oC10's FileLocksBackend) answers
them: LOCK, UNLOCK, lock discovery, and the If header that newstack/dav/methods.py's writes check
first. The backend stores the locks (oc_persistent_locks semantics)."""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

from newstack.backend import FilesBackend, Lock, Node, NotFoundError
from newstack.dav import errors as dav_errors
from newstack.dav.errors import DavError, SabreError
from newstack.dav.xml import ActiveLock, parse_lockinfo, render_lock_response
from newstack.http import Request, Response

if TYPE_CHECKING:
    from newstack.dav.methods import Target

#: LockManager::LOCK_TIMEOUT_DEFAULT and LOCK_TIMEOUT_MAX (appconfig core/lock_timeout_default,
#: core/lock_timeout_max)
LOCK_TIMEOUT_DEFAULT: Final = 30 * 60
LOCK_TIMEOUT_MAX: Final = 24 * 60 * 60
#: Sabre\DAV\Locks\LockInfo::TIMEOUT_INFINITE, and Server::DEPTH_INFINITY
INFINITE: Final = -1
TOKEN_PREFIX: Final = "opaquelocktoken:"
DAV_ROOT: Final = "/remote.php/dav/"

_SABRE: Final = "Sabre\\DAV\\Exception\\"
LOCK_TOKEN_MISMATCH: Final = SabreError(
    409, _SABRE + "LockTokenMatchesRequestUri",
    "The locktoken supplied does not match any locks on this entity",
    (("d:lock-token-matches-request-uri", ""),))
IF_FAILED: Final = SabreError(412, _SABRE + "PreconditionFailed", "", (("s:header", "If"),))

# Server::getIfConditions: a list holds at most one state token and one entity tag
_IF_LIST: Final = re.compile(
    r"(?:<(?P<uri>.*?)>\s)?\((?P<not>Not\s)?(?:<(?P<token>[^>]*)>)?(?:\s?)"
    r"(?:\[(?P<etag>[^\]]*)\])?\)", re.IGNORECASE)
_PHP_INT: Final = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)")


@dataclass(frozen=True)
class Scope:
    """A path a request writes: its locks, those of ancestors locked with depth infinity and,
    with `with_children`, those below it must each be named by a token in the If header."""

    path: str
    with_children: bool = False


@dataclass
class IfEntry:
    """One parenthesised list: `Not` negates the (token, etag) pair as a whole (Sabre)."""

    negate: bool
    token: str
    etag: str
    valid: bool = False


@dataclass
class IfCondition:
    """The lists that apply to one resource; any one of them must hold."""

    #: path in the user's files; None for a resource outside them (it has no locks)
    path: str | None
    #: the resource as Sabre names it in its 412 message
    uri: str
    entries: list[IfEntry] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# names


def dav_root(target: Target) -> str:
    """Sabre's base URI of the endpoint: /remote.php/dav/ or the legacy /remote.php/webdav/."""
    return target.base if target.legacy else DAV_ROOT


def lock_uri(target: Target, path: str) -> str:
    """LockInfo::$uri as FileLocksBackend sets it: relative to the endpoint's base URI."""
    return path if target.legacy else f"files/{target.uid}/{path}"


def _active(target: Target, lock: Lock, now: int) -> ActiveLock:
    return ActiveLock.of(lock, dav_root(target) + lock_uri(target, lock.path), now)


def _locked(target: Target, lock: Lock) -> DavError:
    return DavError(dav_errors.dav_locked(lock_uri(target, lock.path)))


def _conflicting(target: Target, lock: Lock) -> DavError:
    return DavError(dav_errors.dav_conflicting_lock(lock_uri(target, lock.path)))


def _covers(lock: Lock, path: str) -> bool:
    """Whether `lock` applies to `path`: its own, or an ancestor's with a non-zero depth."""
    return lock.path == path or (lock.depth != 0 and (
        lock.path == "" or path.startswith(lock.path + "/")) and path != "")


def _locks(backend: FilesBackend, uid: str, path: str, *, with_children: bool = False
           ) -> list[Lock]:
    if not with_children:
        return backend.locks(uid, path)
    # FilesBackend.locks() does not declare with_children yet; NativeBackend implements it
    return backend.locks(uid, path, with_children=True)


# ---------------------------------------------------------------------------------------------
# the If header


def parse_if_header(value: str | None, target: Target) -> list[IfCondition]:
    """Server::getIfConditions: untagged lists apply to the request URI; a list without a tag
    after others joins the previous resource's alternatives."""
    conditions: list[IfCondition] = []
    if not value:
        return conditions
    for match in _IF_LIST.finditer(value):
        entry = IfEntry(negate=bool(match["not"]), token=match["token"] or "",
                        etag=match["etag"] or "")
        uri = match["uri"]
        if not uri and conditions:
            conditions[-1].entries.append(entry)
            continue
        if uri:
            path, name = _resolve(uri, target)
        else:
            path, name = target.path, lock_uri(target, target.path)
        conditions.append(IfCondition(path, name, [entry]))
    return conditions


def _resolve(uri: str, target: Target) -> tuple[str | None, str]:
    """Server::calculateUri for a tagged resource: (path in the user's files or None, name)."""
    if uri and not uri.startswith("/") and "://" in uri:
        uri = urlsplit(uri).path
    decoded = unquote(re.sub("/+", "/", uri))
    root = dav_root(target)
    if decoded.startswith(target.base) or decoded + "/" == target.base:
        path = decoded[len(target.base):].strip("/")
        return path, lock_uri(target, path)
    if decoded.startswith(root) or decoded + "/" == root:
        return None, decoded[len(root):].strip("/")
    raise DavError(dav_errors.FORBIDDEN, f"Requested uri ({uri}) is out of base uri ({root})")


def check_if_header(req: Request, target: Target, backend: FilesBackend,
                    paths: Sequence[Scope], *, trust_tokens: bool = False) -> None:
    """Sabre's precondition check for a request that writes `paths`: 423 Locked when a lock on
    them is not named by a token in the If header, 412 when an If condition does not hold.

    `trust_tokens` takes every token as valid (Sabre does so for LOCK).
    """
    conditions = parse_if_header(req.header("If"), target)
    if trust_tokens:
        for condition in conditions:
            for entry in condition.entries:
                entry.valid = True
    else:
        _validate_tokens(conditions, target, backend, paths)
    nodes: dict[str, Node] = {}
    for condition in conditions:
        if not any(_holds(entry, condition, target, backend, nodes)
                   for entry in condition.entries):
            raise DavError(IF_FAILED, "Failed to find a valid token/etag combination for "
                           + condition.uri)


def _validate_tokens(conditions: list[IfCondition], target: Target, backend: FilesBackend,
                     paths: Sequence[Scope]) -> None:
    """Locks\\Plugin::validateTokens: each submitted token releases one lock that must be
    named; a token of another live lock on the condition's resource is valid as well."""
    must: dict[str, Lock] = {}
    for scope in paths:
        for lock in _locks(backend, target.uid, scope.path, with_children=scope.with_children):
            must.setdefault(lock.token, lock)
    for condition in conditions:
        for entry in condition.entries:
            if not entry.token.startswith(TOKEN_PREFIX):
                continue
            token = entry.token[len(TOKEN_PREFIX):]
            if token in must:
                del must[token]
                entry.valid = True
            elif condition.path is not None and any(
                    lock.token == token for lock in backend.locks(target.uid, condition.path)):
                entry.valid = True
    if must:
        raise _locked(target, next(iter(must.values())))


def _holds(entry: IfEntry, condition: IfCondition, target: Target, backend: FilesBackend,
           nodes: dict[str, Node]) -> bool:
    token_valid = entry.valid or not entry.token
    etag_valid = not entry.etag
    if entry.etag and token_valid:
        if condition.path is None:
            raise NotFoundError(f"{condition.uri} is not in the files of {target.uid}")
        node = nodes.get(condition.path)
        if node is None:
            node = nodes[condition.path] = backend.stat(target.uid, condition.path)
        # Sabre compares the quoted ETag of files only (IFile)
        etag_valid = not node.is_dir and f'"{node.etag}"' == entry.etag
    return (token_valid and etag_valid) != entry.negate


# ---------------------------------------------------------------------------------------------
# LOCK and UNLOCK


def requested_timeout(value: str | None) -> int | None:
    """Locks\\Plugin::getTimeoutHeader: seconds, INFINITE, or None when absent or zero."""
    if not value:
        return None
    if value[:7].lower() == "second-":
        match = _PHP_INT.match(value[7:])
        seconds = int(match.group(1)) if match else 0
        return seconds or None
    if value[:8].lower() == "infinite":
        return INFINITE
    raise dav_errors.BadRequest("Invalid HTTP timeout header")


def effective_timeout(requested: int | None, default: int = LOCK_TIMEOUT_DEFAULT,
                      maximum: int = LOCK_TIMEOUT_MAX) -> int:
    """LockManager::lock: the default when none was asked for; Infinite, negative values and
    anything over the maximum become the maximum (the default too is capped by it)."""
    timeout = default if requested is None else requested
    return maximum if timeout < 0 or timeout > maximum else timeout


def _lock_depth(req: Request) -> int:
    value = req.header("Depth")
    if value is None or value == "infinity" or not value.isdigit():
        return INFINITE  # Server::getHTTPDepth(DEPTH_INFINITY)
    if int(value) != 0:
        # oC10 stores only 0 and infinity; Sabre hands other depths on and the mapper throws
        raise dav_errors.BadRequest(f"Depth {value} is not supported for LOCK")
    return 0


def lock(req: Request, target: Target, backend: FilesBackend) -> Response:
    """LOCK: a new lock from a lockinfo body, or a refresh (empty body, If: (<token>))."""
    check_if_header(req, target, backend, (), trust_tokens=True)
    body = req.read_body()
    existing = backend.locks(target.uid, target.path)
    timeout = requested_timeout(req.header("Timeout"))
    created = False
    if body:
        for other in existing:
            if other.scope == "exclusive":
                raise _conflicting(target, other)
        info = parse_lockinfo(body)
        depth = _lock_depth(req)
        if existing and info.scope != "shared":
            raise _conflicting(target, existing[-1])
        try:
            backend.stat(target.uid, target.path)
        except NotFoundError:
            # RFC 4918 §7.3 as Sabre does it: a LOCK on an unmapped URL creates an empty file
            backend.stat(target.uid, target.path.rpartition("/")[0])
            backend.write(target.uid, target.path, io.BytesIO(b""), length=0)
            created = True
        stored = backend.lock(target.uid, Lock(
            token=str(uuid.uuid4()), path=target.path,
            owner=info.owner_xml or _default_owner(backend, target.uid), scope=info.scope,
            depth=depth, timeout=effective_timeout(timeout), created_at=0))
    else:
        stored = _refresh(req, target, backend, existing, timeout)
    response = render_lock_response(_active(target, stored, stored.created_at))
    return Response.of(201 if created else 200, response, dav_errors.CONTENT_TYPE,
                       headers=[("Lock-Token", f"<{TOKEN_PREFIX}{stored.token}>")])


def _refresh(req: Request, target: Target, backend: FilesBackend, existing: list[Lock],
             timeout: int | None) -> Lock:
    tokens = {entry.token for condition in parse_if_header(req.header("If"), target)
              for entry in condition.entries}
    found = next((lock for lock in existing if TOKEN_PREFIX + lock.token in tokens), None)
    if found is None:
        if existing:
            raise _locked(target, existing[0])
        raise dav_errors.BadRequest("An xml body is required for lock requests")
    if timeout is None:
        # Sabre refreshes with the seconds left, counted again from now
        timeout = found.timeout - (int(time.time()) - found.created_at)
    return backend.refresh_lock(target.uid, found.token, effective_timeout(timeout))


def _default_owner(backend: FilesBackend, uid: str) -> str:
    """LockManager::lock without <d:owner>: the display name and the e-mail address."""
    user = backend.user(uid)
    if user is None:
        return ""
    return f"{user.display_name} ({user.email})" if user.email else user.display_name


def unlock(req: Request, target: Target, backend: FilesBackend) -> Response:
    """UNLOCK: the Lock-Token must name a lock on the URL or one inherited from an ancestor.

    As in oC10 (LockManager::unlock deletes by file id and token) an inherited lock is
    accepted with 204 but stays in place.
    """
    header = req.header("Lock-Token")
    if not header:
        raise dav_errors.BadRequest("No lock token was supplied")
    if not header.startswith("<"):
        header = f"<{header}>"  # Windows sometimes omits the brackets
    for existing in backend.locks(target.uid, target.path):
        if f"<{TOKEN_PREFIX}{existing.token}>" == header:
            if existing.path == target.path:
                backend.unlock(target.uid, target.path, existing.token)
            return Response.of(204)
    raise DavError(LOCK_TOKEN_MISMATCH)


# ---------------------------------------------------------------------------------------------
# PROPFIND


def discovery(backend: FilesBackend, target: Target, node: Node, *, listing: bool,
              now: int | None = None) -> Callable[[Node], Sequence[ActiveLock]]:
    """{DAV:}lockdiscovery for `node` (and its children when `listing`), from one lock query:
    each node shows its own locks and those of ancestors locked with a non-zero depth."""
    now = int(time.time()) if now is None else now
    locks = _locks(backend, target.uid, node.path, with_children=listing and node.is_dir)
    if not locks:
        return lambda _node: ()
    return lambda n: [_active(target, lk, now) for lk in locks if _covers(lk, n.path)]
