"""The gate before a cutover: does the new stack hold and serve a user exactly as ownCloud 10 does?

compare_backends() walks both FilesBackends folder by folder in lock-step (nodes, annotations,
versions, trash, favorites, quota, content); compare_over_http() walks PROPFIND Depth 1 through
both servers and compares every property a client reads. run_verify() runs both for the CLI
(`migrate verify --user U`); migrate/runner.py does the copying that this checks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Final, Literal

import httpx
from defusedxml.ElementTree import iterparse
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bridge.oc10 import davxml
from newstack.backend import BackendError, FilesBackend, Node, NodeExtras, NotFoundError
from newstack.dav.xml import encode_href_path
from newstack.streams import chunk_reader

Content = Literal["none", "checksums", "bytes"]

#: exit codes of `migrate verify`
EXIT_CLEAN: Final = 0
EXIT_DIFFERENCES: Final = 1
EXIT_COULD_NOT_RUN: Final = 2

#: details kept per kind; every difference is counted
DEFAULT_MAX_DETAILS: Final = 50

# Kinds of difference. Through the backends:
INSTANCE: Final = "instance"  # instance_id, data_fingerprint (oc:id, oc:data-fingerprint)
USER: Final = "user"  # display name, e-mail, enabled, quota setting, language, groups, password
QUOTA: Final = "quota"  # used / available bytes
MISSING: Final = "missing"  # in legacy, not in new (a missing folder is one item, not its tree)
UNEXPECTED: Final = "unexpected"  # in new, not in legacy
NODE: Final = "node"  # a Node field: fileid, etag, size, mtime, permissions, mimetype, …
CONTENT: Final = "content"  # the bytes (SHA1 of both streams) or whether they can be read
EXTRAS: Final = "extras"  # favorite, tags, share types, comment counts, dead properties
VERSION: Final = "version"  # versions of a file: ids, sizes, etags, checksums, content
TRASH: Final = "trash"  # trashed items and everything inside trashed folders
FAVORITES: Final = "favorites"  # the favorites list (REPORT oc:filter-files)
# Through the databases (the oc10 backend against the native one; migrate/account_data.py):
OAUTH2: Final = "oauth2"  # access and refresh tokens (token, client, expiry) and their clients
AVATAR: Final = "avatar"  # the uploaded avatar: present, type, bytes
SYSTEMTAGS: Final = "systemtags"  # system tags on the user's files, and the tags themselves
SHARES: Final = "shares"  # the user's shares: every oc_share column, members' own rows
LINKS: Final = "links"  # the user's public links: token, password hash, expiry, name, …
# Through the servers:
HTTP_STATUS: Final = "http-status"  # a PROPFIND answered differently (207/401/404/…)
HTTP_HEADER: Final = "http-header"  # Content-Type of a 207
HTTP_MISSING: Final = "http-missing"  # an href legacy lists and new does not
HTTP_UNEXPECTED: Final = "http-unexpected"  # an href new lists and legacy does not
HTTP_PROP: Final = "http-prop"  # a property value or its propstat status

D: Final = "{DAV:}"
OC: Final = "{http://owncloud.org/ns}"
OCS: Final = "{http://open-collaboration-services.org/ns}"

#: What the desktop client reads (research/anchors-perf-reliability.md §3.1, §3.7): its discovery
#: PROPFIND asks for exactly the first ten (oc:dDC and oc:downloadURL included: their 404 or
#: empty 200 must match too), data-fingerprint decides "restored from backup"; oc:fileid and
#: oc:size are read by the selective-sync folder listing, the quota pair by the account view.
DESKTOP_PROPS: Final = (
    f"{D}resourcetype", f"{D}getlastmodified", f"{D}getcontentlength", f"{D}getetag",
    f"{OC}id", f"{OC}downloadURL", f"{OC}dDC", f"{OC}permissions", f"{OC}checksums",
    f"{OC}share-types", f"{OC}data-fingerprint", f"{OC}fileid", f"{OC}size",
    f"{D}quota-used-bytes", f"{D}quota-available-bytes",
)
#: Everything else of REFERENCE §6.3 (web UI, mobile apps, other WebDAV clients); absolute URLs
#: (privatelink, comments-href) are compared with each server's own origin replaced.
FULL_PROPS: Final = DESKTOP_PROPS + (
    f"{D}getcontenttype", f"{OCS}share-permissions", f"{OC}owner-id",
    f"{OC}owner-display-name", f"{OC}privatelink", f"{OC}favorite", f"{OC}tags",
    f"{OC}comments-count", f"{OC}comments-unread", f"{OC}comments-href",
)

_NO_EXTRAS: Final = NodeExtras()
_HASH_CHUNK: Final = 1 << 20


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Difference:
    """One thing the new stack has or serves differently; values are JSON-ready."""

    kind: str
    #: user path ('' = root), trash path '<name>.d<ts>[/…]', or an href for http-* kinds
    path: str
    #: what differs: a Node field, 'v<version id>.<field>', 'dead:{ns}name', 'd:getetag', …
    field: str
    legacy: Any
    new: Any


@dataclass
class VerifyReport:
    """Differences found for one user (counted all, detailed up to `max_details` per kind),
    what was checked, and errors that kept the verification from running to the end."""

    uid: str
    max_details: int = DEFAULT_MAX_DETAILS
    #: differences per kind
    counts: Counter[str] = field(default_factory=Counter)
    #: differences per 'kind field' (versions and dead properties folded: 'version etag')
    fields: Counter[str] = field(default_factory=Counter)
    details: list[Difference] = field(default_factory=list)
    #: folders, files, versions, trash entries, bytes hashed, hrefs, … compared
    checked: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def add(self, kind: str, path: str, field_: str, legacy: Any, new: Any) -> None:
        self.counts[kind] += 1
        self.fields[f"{kind} {_field_family(field_)}"] += 1
        if self.counts[kind] <= self.max_details:
            self.details.append(Difference(kind, path, field_, legacy, new))

    def error(self, message: str) -> None:
        self.errors.append(message)

    @property
    def differences(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return not self.errors and not self.counts

    @property
    def exit_code(self) -> int:
        """0 clean, 1 differences, 2 could not run (errors win: the check is incomplete)."""
        if self.errors:
            return EXIT_COULD_NOT_RUN
        return EXIT_DIFFERENCES if self.counts else EXIT_CLEAN

    def merge(self, other: VerifyReport) -> VerifyReport:
        """Add `other`'s findings to this report (details still capped per kind)."""
        for kind, count in other.counts.items():
            room = max(self.max_details - self.counts[kind], 0)
            self.details.extend([d for d in other.details if d.kind == kind][:room])
            self.counts[kind] += count
        self.fields.update(other.fields)
        self.checked.update(other.checked)
        self.errors.extend(other.errors)
        self.duration_s += other.duration_s
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "ok": self.ok, "exit_code": self.exit_code,
            "differences": self.differences, "counts": dict(sorted(self.counts.items())),
            "fields": dict(sorted(self.fields.items())),
            "checked": dict(sorted(self.checked.items())), "errors": list(self.errors),
            "max_details_per_kind": self.max_details,
            "details": [asdict(d) for d in self.details],
            "duration_s": round(self.duration_s, 3),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def summary(self, max_rows: int = 40) -> RenderableType:
        """A rich renderable: verdict, what was checked, counts per kind, the first details."""
        verdict = {EXIT_CLEAN: ("identical", "bold green"),
                   EXIT_DIFFERENCES: (f"{self.differences} differences", "bold red"),
                   EXIT_COULD_NOT_RUN: ("could not run to the end", "bold red")}[self.exit_code]
        head = Text.assemble(("verify ", "bold"), (self.uid, "bold cyan"), ": ",
                             (verdict[0], verdict[1]), f"  ({self.duration_s:.1f} s; checked ",
                             ", ".join(f"{n} {k}" for k, n in sorted(self.checked.items())),
                             ")")
        parts: list[RenderableType] = [head]
        for message in self.errors:
            parts.append(Text(f"error: {message}", style="red"))
        if self.counts:
            counts = Table("kind", "field", "count", title="differences")
            for key, count in sorted(self.fields.items()):
                kind, _, family = key.partition(" ")
                counts.add_row(Text(kind), Text(family), str(count))
            parts.append(counts)
            details = Table("kind", "path", "field", "legacy", "new",
                            title=f"first {min(max_rows, len(self.details))} of "
                                  f"{self.differences}")
            for d in self.details[:max_rows]:
                details.add_row(*(Text(_short_value(v)) for v in
                                  (d.kind, d.path or "/", d.field, d.legacy, d.new)))
            parts.append(details)
        return Group(*parts)

    def __rich__(self) -> RenderableType:
        return self.summary()


def _field_family(field_: str) -> str:
    """Bounded key for counting: 'v1700000000.etag' → 'etag', 'dead:{ns}x' → 'dead'."""
    if field_.startswith("dead:"):
        return "dead"
    if field_.startswith("v") and "." in field_ and field_[1:field_.index(".")].isdigit():
        return field_[field_.index(".") + 1:]
    if field_.startswith("v") and field_[1:].isdigit():
        return "present"
    return field_


def _short_value(value: Any, limit: int = 80) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Through the backends


def compare_backends(legacy: FilesBackend, new: FilesBackend, uid: str, *,
                     content: Content = "checksums",
                     max_details: int = DEFAULT_MAX_DETAILS) -> VerifyReport:
    """Compare everything `uid` has in `legacy` with `new`, one folder at a time.

    Memory stays bounded by the children of the folders on the current path (never the whole
    tree). `content`: 'none' compares metadata only; 'checksums' compares the checksum strings
    and, for files whose legacy row has none, the SHA1 of both streams; 'bytes' streams every
    file and version from both sides. Errors that stop the walk (a database that went away, a
    user legacy does not know) land in `errors` (exit code 2)."""
    report = VerifyReport(uid=uid, max_details=max_details)
    started = time.monotonic()
    try:
        _compare_all(legacy, new, uid, report, content)
    except Exception as exc:  # any failure means "could not verify": reported, exit code 2
        report.error(f"comparing the backends stopped: {type(exc).__name__}: {exc}")
    report.duration_s = time.monotonic() - started
    return report


def _compare_all(legacy: FilesBackend, new: FilesBackend, uid: str, report: VerifyReport,
                 content: Content) -> None:
    for name in ("instance_id", "data_fingerprint"):
        if getattr(legacy, name) != getattr(new, name):
            report.add(INSTANCE, "", name, getattr(legacy, name), getattr(new, name))
    old_user = legacy.user(uid)
    if old_user is None:
        report.error(f"legacy has no user {uid!r}: nothing to verify")
        return
    new_user = new.user(uid)
    if new_user is None:
        report.add(USER, "", "exists", True, False)
        return
    for name in ("display_name", "email", "enabled", "quota", "language"):
        if getattr(old_user, name) != getattr(new_user, name):
            report.add(USER, "", name, getattr(old_user, name), getattr(new_user, name))
    if sorted(old_user.groups) != sorted(new_user.groups):
        report.add(USER, "", "groups", sorted(old_user.groups), sorted(new_user.groups))
    try:
        old_root = legacy.stat(uid, "")
    except NotFoundError as exc:
        report.error(f"legacy cannot show the files of {uid!r}: {exc}")
        return
    try:
        new_root = new.stat(uid, "")
    except NotFoundError:
        report.add(MISSING, "", "", _describe(old_root), None)
        return
    _compare_quota(legacy, new, uid, report)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-read") as pool:
        walk = _Walk(legacy, new, uid, report, content, pool)
        walk.pair(old_root, new_root, _extras(legacy, uid, [old_root]),
                  _extras(new, uid, [new_root]))
        walk.files()
        walk.trash()
    _compare_favorites(legacy, new, uid, report)
    _compare_account_data(legacy, new, uid, report)


def _compare_quota(legacy: FilesBackend, new: FilesBackend, uid: str,
                   report: VerifyReport) -> None:
    old, now = legacy.quota(uid), new.quota(uid)
    for name in ("used", "available"):
        if getattr(old, name) != getattr(now, name):
            report.add(QUOTA, "", name, getattr(old, name), getattr(now, name))


def _compare_favorites(legacy: FilesBackend, new: FilesBackend, uid: str,
                       report: VerifyReport) -> None:
    old = {n.path: n.fileid for n in legacy.favorites(uid)}
    now = {n.path: n.fileid for n in new.favorites(uid)}
    report.checked["favorites"] += len(old)
    for path in sorted(old.keys() | now.keys(), key=_name_key):
        if path not in now:
            report.add(FAVORITES, path, "listed", True, False)
        elif path not in old:
            report.add(FAVORITES, path, "listed", False, True)
        elif old[path] != now[path]:
            report.add(FAVORITES, path, "fileid", old[path], now[path])


#: Node fields compared for files and folders (path and name are the merge key)
_NODE_FIELDS: Final = ("fileid", "is_dir", "size", "mtime", "etag", "permissions", "mimetype",
                       "checksum", "owner")
#: for trash entries: their trash-internal path and name are each backend's own affair
_TRASH_FIELDS: Final = _NODE_FIELDS


class _Walk:
    """One lock-step walk of a user's files, then of the trash."""

    def __init__(self, legacy: FilesBackend, new: FilesBackend, uid: str,
                 report: VerifyReport, content: Content, pool: ThreadPoolExecutor) -> None:
        self.legacy, self.new, self.uid = legacy, new, uid
        self.report, self.content, self.pool = report, content, pool
        #: optional on both backends (not in the Protocol): content of trashed files
        self.read_trashed: tuple[Callable[..., Iterator[bytes]],
                                 Callable[..., Iterator[bytes]]] | None = None
        old_rt, new_rt = (getattr(b, "read_trashed", None) for b in (legacy, new))
        if old_rt is not None and new_rt is not None:
            self.read_trashed = (old_rt, new_rt)
        #: folders present on both sides, still to list (the path being walked, siblings)
        self.pending: list[str] = []

    # -- the files tree ----------------------------------------------------------------------

    def files(self) -> None:
        while self.pending:
            path = self.pending.pop()
            old, now = self._both(partial(self._children, self.legacy, path),
                                  partial(self._children, self.new, path))
            if old is None or now is None:
                # listed a moment ago, gone now: the folder itself is what is missing
                self.report.add(MISSING if now is None else UNEXPECTED, path, "children",
                                old is not None, now is not None)
                continue
            old_x, new_x = self._both(partial(_extras, self.legacy, self.uid, old),
                                      partial(_extras, self.new, self.uid, now))
            before = len(self.pending)
            for a, b in _merge(old, now, key=lambda n: _name_key(n.name)):
                if b is None:
                    assert a is not None
                    self.report.add(MISSING, a.path, "", _describe(a), None)
                elif a is None:
                    self.report.add(UNEXPECTED, b.path, "", None, _describe(b))
                else:
                    self.pair(a, b, old_x, new_x)
            # pop() takes the last: reverse so folders are walked in name order
            self.pending[before:] = reversed(self.pending[before:])

    def pair(self, a: Node, b: Node, old_x: dict[int, NodeExtras],
             new_x: dict[int, NodeExtras]) -> None:
        """Compare one node present on both sides; queue a folder, check a file's versions
        and content."""
        self.report.checked["folders" if a.is_dir else "files"] += 1
        _compare_fields(self.report, NODE, a.path, a, b, _NODE_FIELDS)
        _compare_extras(self.report, a.path, old_x.get(a.fileid, _NO_EXTRAS),
                        new_x.get(b.fileid, _NO_EXTRAS))
        if a.is_dir != b.is_dir:
            return
        if a.is_dir:
            self.pending.append(a.path)
            return
        self._versions(a, b)
        if self._wants_content(a.checksum):
            self._compare_streams(CONTENT, a.path, "sha1",
                                  lambda: self.legacy.read(self.uid, a),
                                  lambda: self.new.read(self.uid, b))

    def _children(self, backend: FilesBackend, path: str) -> list[Node] | None:
        try:
            return backend.children(self.uid, path)
        except NotFoundError:
            return None

    def _versions(self, a: Node, b: Node) -> None:
        old, now = self._both(partial(self._version_list, self.legacy, a.fileid),
                              partial(self._version_list, self.new, b.fileid))
        for va, vb in _merge(old, now, key=lambda v: -v.version_id):
            if vb is None:
                assert va is not None
                self.report.add(VERSION, a.path, f"v{va.version_id}", va.size, None)
                continue
            if va is None:
                self.report.add(VERSION, a.path, f"v{vb.version_id}", None, vb.size)
                continue
            self.report.checked["versions"] += 1
            vid = va.version_id
            for name in ("size", "etag", "checksum", "mimetype"):
                if getattr(va, name) != getattr(vb, name):
                    self.report.add(VERSION, a.path, f"v{vid}.{name}", getattr(va, name),
                                    getattr(vb, name))
            if self._wants_content(va.checksum):
                self._compare_streams(
                    VERSION, a.path, f"v{vid}.sha1",
                    partial(self.legacy.read_version, self.uid, a.fileid, vid),
                    partial(self.new.read_version, self.uid, b.fileid, vid))

    def _version_list(self, backend: FilesBackend, fileid: int) -> list[Any]:
        try:
            return sorted(backend.versions(self.uid, fileid), key=lambda v: -v.version_id)
        except NotFoundError:
            return []

    # -- the trash ---------------------------------------------------------------------------

    def trash(self) -> None:
        old, now = self._both(partial(self.legacy.trash, self.uid),
                              partial(self.new.trash, self.uid))
        folders: list[tuple[str, int, int]] = []
        for a, b in _merge(old, now, key=lambda t: (_name_key(t.original_name), t.deleted_at)):
            item = a or b
            assert item is not None
            where = f"{item.original_name}.d{item.deleted_at}"
            if b is None:
                self.report.add(TRASH, where, "", _describe(item.node), None)
                continue
            if a is None:
                self.report.add(TRASH, where, "", None, _describe(item.node))
                continue
            self.report.checked["trash entries"] += 1
            if a.original_location != b.original_location:
                self.report.add(TRASH, where, "original_location", a.original_location,
                                b.original_location)
            self._trash_node(where, a.node, b.node, folders)
        while folders:
            where, old_id, new_id = folders.pop()
            old_kids, new_kids = self._both(partial(self.legacy.trash_children, self.uid, old_id),
                                            partial(self.new.trash_children, self.uid, new_id))
            for ka, kb in _merge(old_kids, new_kids, key=lambda n: _name_key(n.name)):
                kid = ka or kb
                assert kid is not None
                inner = f"{where}/{kid.name}"
                if kb is None:
                    self.report.add(TRASH, inner, "", _describe(kid), None)
                elif ka is None:
                    self.report.add(TRASH, inner, "", None, _describe(kid))
                else:
                    self.report.checked["trash entries"] += 1
                    self._trash_node(inner, ka, kb, folders)

    def _trash_node(self, where: str, a: Node, b: Node,
                    folders: list[tuple[str, int, int]]) -> None:
        _compare_fields(self.report, TRASH, where, a, b, _TRASH_FIELDS)
        if a.is_dir and b.is_dir:
            folders.append((where, a.fileid, b.fileid))
        elif (not a.is_dir and not b.is_dir and self.read_trashed is not None
              and self._wants_content(a.checksum)):
            old_read, new_read = self.read_trashed
            self._compare_streams(TRASH, where, "sha1",
                                  lambda: old_read(self.uid, a.fileid),
                                  lambda: new_read(self.uid, b.fileid))

    def _both[L, N](self, legacy: Callable[[], L], new: Callable[[], N]) -> tuple[L, N]:
        """Run the legacy side in the pool and the new side here: each call waits on a
        database, a disk or the network (and hashlib releases the GIL), so this halves the
        time of a walk."""
        job = self.pool.submit(legacy)
        try:
            now = new()
        finally:
            old = job.result()
        return old, now

    # -- content -----------------------------------------------------------------------------

    def _wants_content(self, legacy_checksum: str) -> bool:
        if self.content == "bytes":
            return True
        return self.content == "checksums" and not legacy_checksum

    def _compare_streams(self, kind: str, path: str, field_: str,
                         old: Callable[[], Iterable[bytes]],
                         new: Callable[[], Iterable[bytes]]) -> None:
        a, b = self._both(partial(_digest, old), partial(_digest, new))
        self.report.checked["bytes hashed"] += a[1] + b[1]
        if a == b:
            return
        if a[2] != b[2]:
            # one side cannot be read (or fails differently), e.g. a row without its file
            self.report.add(kind, path, "readable", a[2] or "ok", b[2] or "ok")
        else:
            self.report.add(kind, path, field_, f"{a[0]} ({a[1]} bytes)", f"{b[0]} ({b[1]} bytes)")


def _digest(stream: Callable[[], Iterable[bytes]]) -> tuple[str, int, str | None]:
    """(sha1 hex, bytes read, error class) of a content stream; read errors are part of the
    answer a client would get (a 503, or a body shorter than announced), so they are compared."""
    sha1 = hashlib.sha1(usedforsecurity=False)
    length = 0
    error = None
    try:
        for chunk in stream():
            sha1.update(chunk)
            length += len(chunk)
    except (BackendError, OSError) as exc:
        error = type(exc).__name__
    return sha1.hexdigest(), length, error


def _compare_fields(report: VerifyReport, kind: str, path: str, a: Any, b: Any,
                    names: Sequence[str]) -> None:
    for name in names:
        old, new = getattr(a, name), getattr(b, name)
        if old != new:
            report.add(kind, path, name, old, new)


def _compare_extras(report: VerifyReport, path: str, a: NodeExtras, b: NodeExtras) -> None:
    for name in ("favorite", "tags", "share_types", "comments_count", "comments_unread"):
        old, new = getattr(a, name), getattr(b, name)
        if old != new:
            report.add(EXTRAS, path, name, list(old) if isinstance(old, tuple) else old,
                       list(new) if isinstance(new, tuple) else new)
    if a.dead != b.dead:
        for prop in sorted(a.dead.keys() | b.dead.keys()):
            if a.dead.get(prop) != b.dead.get(prop):
                report.add(EXTRAS, path, f"dead:{prop}", a.dead.get(prop), b.dead.get(prop))


def _extras(backend: FilesBackend, uid: str, nodes: list[Node]) -> dict[int, NodeExtras]:
    return backend.extras(uid, nodes) if nodes else {}


def _describe(node: Node) -> str:
    what = "folder" if node.is_dir else "file"
    return f"{what} id {node.fileid}, {node.size} bytes, etag {node.etag}"


def _name_key(name: str) -> bytes:
    """Byte order of the UTF-8 name, as both backends sort (utf8mb4_bin); sorted again here so
    a database collation cannot turn an equal listing into a false difference."""
    return name.encode("utf-8", "surrogateescape")


def _merge[T](a: Iterable[T], b: Iterable[T], key: Callable[[T], Any]
              ) -> Iterator[tuple[T | None, T | None]]:
    """Pairs of items with equal keys from two sequences (sorted here by `key`); an item
    without a partner comes with None. Equal keys within one side pair up in order."""
    left, right = sorted(a, key=key), sorted(b, key=key)
    i = j = 0
    while i < len(left) or j < len(right):
        if j == len(right) or (i < len(left) and key(left[i]) < key(right[j])):
            yield left[i], None
            i += 1
        elif i == len(left) or key(right[j]) < key(left[i]):
            yield None, right[j]
            j += 1
        else:
            yield left[i], right[j]
            i += 1
            j += 1


# ---------------------------------------------------------------------------------------------
# Through the servers


@dataclass
class _Listing:
    """One PROPFIND Depth 1 answer: status, Content-Type, and per href {prop: (status, value)}."""

    status: int
    content_type: str
    responses: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)


def dav_roots(uid: str) -> tuple[str, str]:
    """The two trees a client syncs: the new endpoint and the legacy one (REFERENCE §6.1)."""
    return f"/remote.php/dav/files/{encode_href_path(uid)}/", "/remote.php/webdav/"


def compare_over_http(legacy_url: str, new_url: str, uid: str, password: str, *,
                      props: Sequence[str] = DESKTOP_PROPS,
                      roots: Sequence[str] | None = None, timeout: float = 120.0,
                      max_details: int = DEFAULT_MAX_DETAILS,
                      transport: httpx.BaseTransport | None = None) -> VerifyReport:
    """PROPFIND Depth 1, folder by folder, through both servers (base URLs with any web root,
    e.g. https://cloud.example.org/owncloud), under each of `roots` (default: dav/files/<uid>/
    and webdav/): the sets of hrefs, each folder's status and Content-Type, and per href every
    property in `props` with its propstat status. Folders below the top are compared as their
    parent lists them (what a syncing client reads), not again in their own listing."""
    report = VerifyReport(uid=uid, max_details=max_details)
    started = time.monotonic()
    body = propfind_body(props)
    auth = httpx.BasicAuth(uid, password)
    try:
        with (httpx.Client(auth=auth, timeout=timeout, transport=transport) as old_client,
              httpx.Client(auth=auth, timeout=timeout, transport=transport) as new_client,
              ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool):
            sides = (_Server(old_client, legacy_url), _Server(new_client, new_url))
            for root in roots if roots is not None else dav_roots(uid):
                if not _walk_http(sides, root, body, props, report, pool):
                    break
    except (httpx.HTTPError, SyntaxError) as exc:
        # SyntaxError: xml.etree's ParseError; defusedxml's refusals derive from ValueError
        report.error(f"PROPFIND walk stopped: {type(exc).__name__}: {exc}")
    except ValueError as exc:
        report.error(f"PROPFIND walk stopped: unsafe or invalid XML: {exc}")
    report.duration_s = time.monotonic() - started
    return report


class _Server:
    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self.client = client
        url = httpx.URL(base_url)
        self.origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        self.web_root = url.raw_path.decode("ascii").split("?")[0].rstrip("/")

    def propfind(self, href: str, body: bytes) -> _Listing:
        headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
        with self.client.stream("PROPFIND", self.origin + href, headers=headers,
                                 content=body) as response:
            listing = _Listing(response.status_code, response.headers.get("content-type", ""))
            if response.status_code == 207:
                listing.responses = _parse_multistatus(response.iter_bytes(), self.origin)
            else:
                response.read()
        return listing


def _walk_http(sides: tuple[_Server, _Server], root: str, body: bytes, props: Sequence[str],
               report: VerifyReport, pool: ThreadPoolExecutor) -> bool:
    """Walk one tree; False when the legacy server refuses to start (nothing more to try)."""
    old_side, new_side = sides
    top = old_side.web_root + root
    if new_side.web_root != old_side.web_root:
        report.add(HTTP_HEADER, root, "web root", old_side.web_root, new_side.web_root)
    pending = [top]
    first = True
    while pending:
        href = pending.pop()
        new_href = new_side.web_root + href[len(old_side.web_root):]
        old_job = pool.submit(old_side.propfind, href, body)
        new_job = pool.submit(new_side.propfind, new_href, body)
        old, now = old_job.result(), new_job.result()
        report.checked["propfinds"] += 1
        if first and old.status != 207:
            report.error(f"legacy answered PROPFIND {href} with {old.status}; check the user "
                         "and password (verification needs the user's own credentials)")
            return False
        if old.status != now.status:
            report.add(HTTP_STATUS, href, "status", old.status, now.status)
            first = False
            continue
        if old.status != 207:
            continue
        if old.content_type != now.content_type:
            report.add(HTTP_HEADER, href, "content-type", old.content_type, now.content_type)
        if not first:
            # the folder itself was compared in its parent's listing
            old.responses.pop(href, None)
            now.responses.pop(new_href, None)
        first = False
        before = len(pending)
        new_by_href = {_rebase(h, new_side, old_side): p for h, p in now.responses.items()}
        for child, old_props in old.responses.items():
            new_props = new_by_href.pop(child, None)
            if new_props is None:
                report.add(HTTP_MISSING, child, "", _status_summary(old_props), None)
                continue
            report.checked["hrefs"] += 1
            _compare_props(report, child, props, old_props, new_props)
            if (child != href and _is_collection(old_props)
                    and _is_collection(new_props)):
                pending.append(child)
        for extra, new_props in new_by_href.items():
            report.add(HTTP_UNEXPECTED, extra, "", None, _status_summary(new_props))
        pending[before:] = reversed(pending[before:])
    return True


def _rebase(href: str, side: _Server, to: _Server) -> str:
    """An href of `side` with its web root swapped for `to`'s (so trees compare by path)."""
    if side.web_root == to.web_root or not href.startswith(side.web_root + "/"):
        return href
    return to.web_root + href[len(side.web_root):]


def _compare_props(report: VerifyReport, href: str, props: Sequence[str],
                   old: dict[str, tuple[int, str]], new: dict[str, tuple[int, str]]) -> None:
    if old.get("") != new.get(""):
        report.add(HTTP_STATUS, href, "response status", _shown(old.get("")),
                   _shown(new.get("")))
    for prop in props:
        a, b = old.get(prop), new.get(prop)
        if a != b:
            report.add(HTTP_PROP, href, davxml.short_name(prop), _shown(a), _shown(b))


def _shown(value: tuple[int, str] | None) -> str | None:
    if value is None:
        return None
    status, text = value
    return text if status == 200 else f"[{status}]"


def _status_summary(props: dict[str, tuple[int, str]]) -> str:
    return " ".join(f"{davxml.short_name(k) or 'status'}={_shown(v)}" for k, v in props.items()
                    if k in ("", f"{OC}id", f"{D}getetag"))


def _is_collection(props: dict[str, tuple[int, str]]) -> bool:
    status, value = props.get(f"{D}resourcetype", (0, ""))
    return status == 200 and "<d:collection/>" in value


def propfind_body(props: Sequence[str]) -> bytes:
    """A PROPFIND body asking for `props` (Clark names), prefixes as clients write them."""
    names: dict[str, str] = {}
    inner = []
    for prop in props:
        ns, _, local = prop[1:].partition("}")
        prefix = names.setdefault(ns, davxml.PREFIXES.get(ns, f"x{len(names)}"))
        inner.append(f"<{prefix}:{local}/>")
    names.setdefault("DAV:", "d")
    xmlns = " ".join(f'xmlns:{p}="{ns}"' for ns, p in names.items())
    return (f'<?xml version="1.0" encoding="utf-8"?><d:propfind {xmlns}><d:prop>'
            f'{"".join(inner)}</d:prop></d:propfind>').encode()


def _parse_multistatus(chunks: Iterator[bytes], origin: str
                       ) -> dict[str, dict[str, tuple[int, str]]]:
    """href → {Clark name: (propstat status, canonical value)}, '' → the response's own
    status when it has one; parsed as the body streams in, one <d:response> at a time."""
    out: dict[str, dict[str, tuple[int, str]]] = {}
    for _event, element in iterparse(chunk_reader(chunks), events=("end",)):
        if element.tag != f"{D}response":
            continue
        href = (element.findtext(f"{D}href") or "").strip()
        out[href] = davxml.response_props(element, origin)
        element.clear()
    return out





# ---------------------------------------------------------------------------------------------
def _compare_account_data(legacy: FilesBackend, new: FilesBackend, uid: str,
                          report: VerifyReport) -> None:
    """OAuth2 tokens, the avatar and system tags: kept in tables neither backend lists through
    FilesBackend, so compared row by row when legacy is an ownCloud database and new the native
    store (other pairs, e.g. two native stacks in tests, are not compared here)."""
    from newstack.legacy.backend import Oc10Backend
    from newstack.native import NativeBackend

    old_db = getattr(legacy, "inner", legacy)
    new_db = getattr(new, "inner", new)
    if not isinstance(old_db, Oc10Backend) or not isinstance(new_db, NativeBackend):
        return
    from migrate import account_data

    old, now = account_data.legacy_account_data(old_db, uid), \
        account_data.native_account_data(new_db, uid)
    for kind, name in ((OAUTH2, "access_tokens"), (OAUTH2, "refresh_tokens"),
                       (OAUTH2, "clients"), (SYSTEMTAGS, "assignments"),
                       (SYSTEMTAGS, "tags"), (AVATAR, "avatar")):
        a, b = getattr(old, name), getattr(now, name)
        report.checked[f"{kind} {name}"] += len(a)
        for key in sorted(a.keys() | b.keys(), key=str):
            if a.get(key) != b.get(key):
                report.add(kind, str(key), name, a.get(key), b.get(key))
    _compare_shares(old_db, new_db, uid, report)


def _compare_shares(old_db: Any, new_db: Any, uid: str, report: VerifyReport) -> None:
    """The owner's shares and links that carry over (migrate/shares.py decides, and reports
    the others as findings), column by column, and their group members' own rows."""
    import sqlalchemy as sa

    from migrate import shares as share_migration
    from newstack.metadata import schema
    from newstack.sharing.model import TYPE_GROUP, TYPE_LINK, TYPE_USERGROUP

    expected: dict[int, Any] = {}
    members: dict[tuple[int, str], tuple[str, int]] = {}
    for carried, _rows, _reasons in share_migration.carried_batches(old_db.engine, old_db.t,
                                                                    uid):
        expected.update((s.id, s) for s in carried)
        groups = [s.id for s in carried if s.share_type == TYPE_GROUP]
        if groups:
            with old_db.engine.connect() as conn:
                for parent, member, target, state in share_migration.members_of(
                        conn, old_db.t, groups):
                    members[(parent, member)] = (target, state)
    found = {s.id: s for s in new_db.shares.created_by(uid, reshares=True)
             if s.uid_owner == uid}
    for share_id in sorted(expected.keys() | found.keys()):
        a, b = expected.get(share_id), found.get(share_id)
        either = a if a is not None else b
        assert either is not None  # the id came from one of the two
        kind = LINKS if either.share_type == TYPE_LINK else SHARES
        report.checked[kind] += a is not None
        if a is None or b is None:
            report.add(kind, f"share {share_id}", "exists", a is not None, b is not None)
            continue
        for name in a.__dataclass_fields__:
            if getattr(a, name) != getattr(b, name):
                report.add(kind, f"share {share_id}", name, getattr(a, name), getattr(b, name))
    s = schema.shares
    groups = sorted(i for i, share in found.items() if share.share_type == TYPE_GROUP)
    now: dict[tuple[int, str], tuple[str, int]] = {}
    with new_db.store.read() as conn:
        for start in range(0, len(groups), 500):
            for row in conn.execute(sa.select(s.c.parent, s.c.share_with, s.c.file_target,
                                              s.c.accepted).where(
                    s.c.parent.in_(groups[start:start + 500]),
                    s.c.share_type == TYPE_USERGROUP)):
                now[(int(row.parent), str(row.share_with))] = (row.file_target or "",
                                                                int(row.accepted))
    report.checked["share members"] += len(members)
    for key in sorted(members.keys() | now.keys()):
        if members.get(key) != now.get(key):
            report.add(SHARES, f"share {key[0]} member {key[1]}", "target, state",
                       members.get(key), now.get(key))


# For the CLI


def run_verify(legacy: FilesBackend, new: FilesBackend, uid: str, password: str | None = None,
               legacy_url: str | None = None, new_url: str | None = None, *,
               content: Content = "checksums", props: Sequence[str] = FULL_PROPS,
               max_details: int = DEFAULT_MAX_DETAILS) -> VerifyReport:
    """`migrate verify --user U`: the backends compared; with `password`, the user's login on
    both; with both URLs (and the password), the PROPFIND walk through both servers."""
    report = compare_backends(legacy, new, uid, content=content, max_details=max_details)
    if password is not None:
        started = time.monotonic()
        if legacy.authenticate(uid, password) is None:
            report.error(f"the password given does not log {uid!r} in on legacy")
        elif new.authenticate(uid, password) is None:
            report.add(USER, "", "password", "accepted", "refused")
        report.duration_s += time.monotonic() - started
    if legacy_url is not None or new_url is not None:
        if legacy_url is None or new_url is None or password is None:
            report.error("the PROPFIND comparison needs both server URLs and the user's "
                         "password; pass all three or none")
        else:
            report.merge(compare_over_http(legacy_url, new_url, uid, password, props=props,
                                           max_details=max_details))
    return report
