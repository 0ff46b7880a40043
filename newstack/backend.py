"""The seam between the ownCloud 10 API layer and what stores files: the FilesBackend Protocol.

The HTTP layer (newstack/dav, newstack/ocs) speaks only to this interface. Two backends
implement it: `native` (newstack/metadata + a storage driver) and, later, `oc10` (an ownCloud 10
database and data directory served in place). They must give identical answers for the same data.

Paths are relative to a user's files root: '' is the root, no leading or trailing '/', segments
separated by '/', NFC as received. Every method takes the acting user's uid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

from bridge.errors import OcbridgeError

if TYPE_CHECKING:
    from newstack.sharing.model import ShareStore

# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Node:
    """A file or folder as a client sees it (one oc_filecache row, in ownCloud 10 terms)."""

    fileid: int
    owner: str
    path: str
    name: str
    is_dir: bool
    size: int
    mtime: int
    etag: str
    #: effective permission bits (bridge.oc10.formats.PERM_*)
    permissions: int
    mimetype: str
    #: 'SHA1:… MD5:… ADLER32:…' or '' when unknown
    checksum: str = ""
    #: in a share the user received (oC10's `shared::` storage: the `S` permission letter)
    shared: bool = False
    #: in a received share: that share's permissions (x1:share-permissions), else None
    share_permissions: int | None = None


#: Node is a plain frozen dataclass (no __post_init__, no __slots__): `filled_node` may fill an
#: instance's attributes directly, a third of the cost of the generated frozen __init__ (one
#: object.__setattr__ per field), which counts in listings of thousands
_PLAIN_NODE = not hasattr(Node, "__post_init__") and not hasattr(Node, "__slots__")
_new = object.__new__


def filled_node(fileid: int, owner: str, path: str, name: str, is_dir: bool, size: int,
                mtime: int, etag: str, permissions: int, mimetype: str, checksum: str) -> Node:
    """Node(...) of a node in the user's own files, equal to the one its __init__ makes."""
    if not _PLAIN_NODE:
        return Node(fileid, owner, path, name, is_dir, size, mtime, etag, permissions,
                    mimetype, checksum)
    node: Node = _new(Node)
    node.__dict__.update(fileid=fileid, owner=owner, path=path, name=name, is_dir=is_dir,
                         size=size, mtime=mtime, etag=etag, permissions=permissions,
                         mimetype=mimetype, checksum=checksum, shared=False,
                         share_permissions=None)
    return node


@dataclass(frozen=True)
class NodeExtras:
    """Per-user annotations that PROPFIND may ask for, fetched in one batch per listing."""

    favorite: bool = False
    tags: tuple[str, ...] = ()
    share_types: tuple[int, ...] = ()
    comments_count: int = 0
    comments_unread: int = 0
    #: dead properties: Clark name '{ns}local' -> raw XML text of the value
    dead: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class User:
    uid: str
    display_name: str
    email: str | None
    enabled: bool = True
    #: bytes; None = unlimited
    quota: int | None = None
    language: str = "en"
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Quota:
    used: int
    #: bytes left; -3 = unlimited (oC10's SPACE_UNLIMITED)
    available: int


@dataclass(frozen=True)
class TrashItem:
    """A top-level trashed item; `node.path` is its trash-internal path (`<name>.d<ts>`)."""

    node: Node
    original_name: str
    #: original parent folder relative to the files root; '.' = top level (oc_files_trash)
    original_location: str
    deleted_at: int


@dataclass(frozen=True)
class Version:
    fileid: int
    #: the version id: the mtime of the content it holds (files_versions/<name>.v<T>)
    version_id: int
    size: int
    etag: str
    mimetype: str
    checksum: str = ""


@dataclass(frozen=True)
class WriteResult:
    node: Node
    created: bool
    #: True when the client's X-OC-MTime was applied
    mtime_accepted: bool = False


@dataclass(frozen=True)
class Lock:
    token: str
    path: str
    owner: str
    #: 'exclusive' | 'shared'
    scope: str
    #: 0 or -1 (infinity)
    depth: int
    timeout: int
    created_at: int


# ---------------------------------------------------------------------------------------------
# Errors: each maps to one HTTP answer in the DAV layer


class BackendError(OcbridgeError):
    """Base of errors a backend raises for a client request."""


class NotFoundError(BackendError):
    """The path or id does not exist for this user (404)."""


class AlreadyExistsError(BackendError):
    """MKCOL on an existing node, or a target that exists without overwrite (405/412)."""


class ConflictError(BackendError):
    """A parent folder is missing (409)."""


class ForbiddenError(BackendError):
    """Permissions or rules forbid it, e.g. a blacklisted name (403)."""


class InvalidPathError(BackendError):
    """A name that cannot exist: too long, '/' or NUL inside, '.' or '..' (400)."""


class PreconditionFailedError(BackendError):
    """If-Match / If-None-Match did not hold (412)."""


class ChecksumMismatchError(BackendError):
    """OC-Checksum differs from the content received (400)."""


class IncompleteBodyError(BackendError):
    """Fewer bytes arrived than Content-Length announced (400)."""


class QuotaExceededError(BackendError):
    """The write would exceed the user's quota (507)."""


class LockedError(BackendError):
    """The node is locked by someone else (423)."""


class StorageUnavailableError(BackendError):
    """The storage behind the node cannot be reached (503)."""


# ---------------------------------------------------------------------------------------------
# The Protocol


class FilesBackend(Protocol):
    """Everything the ownCloud 10 API needs from storage; one instance serves all users.

    Implementations are thread-safe: a server calls them from many threads at once.
    """

    #: config.php `instanceid` of the instance whose ids we serve (in oc:id)
    instance_id: str
    #: config.php `data-fingerprint`, '' when unset
    data_fingerprint: str

    # users and credentials ---------------------------------------------------------------
    def authenticate(self, login: str, password: str) -> User | None:
        """Basic credentials as ownCloud 10 checks them: login name or e-mail, password or app
        password (oc_authtoken). None when they do not match or the user is disabled."""

    def user(self, uid: str) -> User | None: ...

    # reading -----------------------------------------------------------------------------
    def stat(self, uid: str, path: str) -> Node:
        """The node at `path` (NotFoundError if none)."""

    def children(self, uid: str, path: str) -> list[Node]:
        """Direct children of a folder, ordered by name (byte order), in one metadata read."""

    def children_many(self, uid: str, paths: Iterable[str]) -> dict[str, list[Node]]:
        """`children` of many folders in a few metadata reads, keyed by the paths as given:
        each list equals what `children` gives for that path; a path that does not exist is
        left out (where `children` raises NotFoundError)."""

    def by_id(self, uid: str, fileid: int) -> Node:
        """A node of this user's files by fileid (private links, dav/meta)."""

    def extras(self, uid: str, nodes: Iterable[Node]) -> dict[int, NodeExtras]:
        """Favorites, tags, share types, comment counts and dead props for many nodes."""

    def quota(self, uid: str) -> Quota: ...

    def read(self, uid: str, node: Node, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        """Content bytes [start, end) of a file, streamed."""

    # writing -----------------------------------------------------------------------------
    def write(self, uid: str, path: str, body: BinaryIO, *, length: int | None,
              mtime: int | None = None, checksum: str | None = None,
              if_match: str | None = None, if_none_match: str | None = None) -> WriteResult:
        """Create or replace a file from a stream. Keeps the old content as a version, checks
        `checksum` ('SHA1:<hex>' etc.), applies `mtime` (X-OC-MTime), propagates etags, sizes
        and mtimes to every ancestor, and commits only after the whole body arrived."""

    def mkdir(self, uid: str, path: str) -> Node: ...

    def delete(self, uid: str, path: str) -> None:
        """Move to the trash (the fileid is kept) and propagate."""

    def move(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult: ...

    def copy(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult: ...

    def set_mtime(self, uid: str, path: str, mtime: int) -> Node: ...

    def set_favorite(self, uid: str, path: str, favorite: bool) -> None: ...

    def set_dead_props(self, uid: str, path: str, props: dict[str, str | None]) -> None:
        """Set (value) or remove (None) dead properties, Clark names -> XML text."""

    # trash and versions --------------------------------------------------------------------
    def trash(self, uid: str) -> list[TrashItem]: ...

    def restore(self, uid: str, fileid: int, dst: str | None = None) -> Node: ...

    def trashed(self, uid: str, fileid: int) -> Node:
        """A node anywhere in the user's trash by fileid: a trashed item or something inside
        a trashed folder (trash-bin/<uid>/<fileid>/…); NotFoundError if there is none."""

    def trash_children(self, uid: str, fileid: int) -> list[Node]:
        """Children of a trashed folder, ordered by name (byte order); [] for a file."""

    def purge(self, uid: str, fileid: int | None = None) -> None:
        """Delete one trashed item for good, or empty the trash when fileid is None."""

    def versions(self, uid: str, fileid: int) -> list[Version]: ...

    def versions_many(self, uid: str, fileids: Iterable[int]) -> dict[int, list[Version]]:
        """`versions` of many files in a few metadata reads: each list equals what `versions`
        gives for that fileid; a fileid that is not a file of the user is left out (where
        `versions` raises NotFoundError)."""

    def read_version(self, uid: str, fileid: int, version_id: int) -> Iterator[bytes]: ...

    def restore_version(self, uid: str, fileid: int, version_id: int) -> Node: ...

    # finding (REPORT) ----------------------------------------------------------------------
    def favorites(self, uid: str) -> list[Node]:
        """The user's favorite files and folders, the trash left out, ordered by fileid."""

    def search(self, uid: str, pattern: str, limit: int) -> list[Node]:
        """At most `limit` files and folders whose name contains `pattern` ignoring case,
        ordered by fileid. As in oC10 (Cache::search), '%' and '_' in `pattern` are SQL
        LIKE wildcards."""

    def systemtag_fileids(self, uid: str, tag_id: int) -> list[int]:
        """Fileids carrying system tag `tag_id`; NotFoundError when no such tag is visible
        to the user."""

    # locks ---------------------------------------------------------------------------------
    def locks(self, uid: str, path: str, *, with_parents: bool = True,
              with_children: bool = False) -> list[Lock]:
        """Live locks on `path`, with depth-infinity locks of its ancestors (with_parents) and
        the locks below it (with_children: DELETE and MOVE of a folder need them)."""

    def lock(self, uid: str, lock: Lock) -> Lock: ...

    def refresh_lock(self, uid: str, token: str, timeout: int) -> Lock: ...

    def unlock(self, uid: str, path: str, token: str) -> None: ...

    # sharing (newstack/sharing; recipients' mounts come from newstack/sharing/view.py) -------
    @property
    def shares(self) -> ShareStore:
        """oc_share semantics: the native `shares` table or oC10's oc_share in place."""

    @property
    def passwordsalt(self) -> str:
        """config.php `passwordsalt`: legacy bcrypt link-password hashes depend on it."""

    def find_users(self, pattern: str, limit: int) -> list[User]:
        """At most `limit` users whose uid, display name or e-mail contains `pattern` ignoring
        case (disabled ones too), ordered by uid; for sharee search."""

    def find_groups(self, pattern: str, limit: int) -> list[str]:
        """At most `limit` gids containing `pattern` ignoring case, ordered by gid."""

    def group_members(self, gid: str) -> list[str]:
        """Uids in group `gid`, ordered; [] for an unknown group."""
