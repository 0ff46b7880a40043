"""Shares as ownCloud 10 keeps them (oc_share), and the ShareStore Protocol both backends serve.

A Share is one oc_share row with oC10's column meanings (REFERENCE §1.4, §5): the native
backend keeps the same columns in its metadata database, the oc10 backend reads and writes
oc_share in place, and migration copies rows one to one, ids included, so share ids, link
tokens, link password hashes, targets and accept states survive a cutover unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from bridge.errors import OcbridgeError

# share_type (lib/private/Share/Constants.php)
TYPE_USER: Final = 0
TYPE_GROUP: Final = 1
#: a group member's own row (target, accept state) under a group share; never listed as such
TYPE_USERGROUP: Final = 2
TYPE_LINK: Final = 3
TYPE_REMOTE: Final = 6
TYPE_REMOTE_GROUP: Final = 7
#: the types a user creates and lists (type 2 rows are internal)
LISTED_TYPES: Final = (TYPE_USER, TYPE_GROUP, TYPE_LINK, TYPE_REMOTE, TYPE_REMOTE_GROUP)

#: what a link may grant (REFERENCE §5.1): read, upload-only (file drop), read+create,
#: read+update, read+create+update+delete
LINK_PERMISSIONS: Final = (1, 4, 5, 3, 15)

# accepted (share state)
STATE_ACCEPTED: Final = 0
STATE_PENDING: Final = 1
STATE_REJECTED: Final = 2


@dataclass(frozen=True)
class Share:
    """One oc_share row (types 0, 1, 3, 6, 7; type-2 member rows surface through Received)."""

    id: int
    share_type: int
    #: type 0: recipient uid; 1: gid; 3: link password hash in oC10's Hasher format or None;
    #: 6/7: cloud id
    share_with: str | None
    #: whose storage holds the file
    uid_owner: str
    #: who created the share (differs from the owner for reshares)
    uid_initiator: str
    #: 'file' | 'folder'
    item_type: str
    #: fileid of the shared node (oc_share.file_source; item_source is its string)
    file_source: int
    #: the share's path in the recipient's files: '/<name>' (or '/Shared/<name>'); links
    #: store '/<name>' too; federated outgoing shares ''
    file_target: str
    permissions: int
    stime: int
    #: for type 0 the recipient's state; for type 1 the state members start with
    accepted: int = STATE_ACCEPTED
    #: the day the share expires (oC10 stores midnight, 'Y-m-d 00:00:00'); None = never
    expiration: dt.date | None = None
    #: 15 characters [A-Za-z0-9] for links and federated shares (32 for pre-OC8 links)
    token: str | None = None
    mail_send: int = 0
    #: link name (links only)
    share_name: str | None = None
    #: JSON text of [[scope, key, enabled], …] or None
    attributes: str | None = None

    @property
    def password_hash(self) -> str | None:
        """The link password hash (oc_share.share_with of type 3), None without a password."""
        return self.share_with if self.share_type == TYPE_LINK else None

    def expired(self, today: dt.date) -> bool:
        """oC10 (Manager::shareHasExpired) drops a share once its expiry day is before today."""
        return self.expiration is not None and self.expiration < today


@dataclass(frozen=True)
class NewShare:
    """What a create call supplies; the store allocates the id (and stime when 0)."""

    share_type: int
    share_with: str | None
    uid_owner: str
    uid_initiator: str
    item_type: str
    file_source: int
    file_target: str
    permissions: int
    stime: int = 0
    accepted: int = STATE_ACCEPTED
    expiration: dt.date | None = None
    token: str | None = None
    share_name: str | None = None
    attributes: str | None = None


@dataclass(frozen=True)
class Received:
    """A user or group share as one recipient sees it: the member's own target and state
    (its type-2 row when it has one, else the share's) applied."""

    share: Share
    recipient: str
    #: '/<name>' below the recipient's files root
    target: str
    state: int


class ShareError(OcbridgeError):
    """A share operation the store refuses (unknown id, duplicate, bad value)."""


class ShareNotFoundError(ShareError):
    """No share with that id or token."""


#: sentinel for update(): "leave this field as it is"
KEEP: Final = object()


class ShareStore(Protocol):
    """oc_share semantics over a database; thread-safe; every method is one transaction."""

    def get(self, share_id: int) -> Share | None:
        """A share of a listed type by id (type-2 rows are not returned)."""

    def by_token(self, token: str) -> Share | None:
        """The link (or federated) share with this token, expired ones included."""

    def created_by(self, uid: str, *, file_sources: Iterable[int] | None = None,
                   types: Iterable[int] = LISTED_TYPES, reshares: bool = False) -> list[Share]:
        """Shares `uid` initiated (also those on files `uid` owns, when reshares), optionally
        only on `file_sources`, ordered by id."""

    def on_files(self, fileids: Iterable[int], types: Iterable[int] = LISTED_TYPES
                 ) -> list[Share]:
        """Every share of these nodes, ordered by id (share types, subfiles, reshares)."""

    def received(self, uid: str, groups: Iterable[str]) -> list[Received]:
        """User shares with `uid` and group shares with any of `groups`, in every state, the
        member's own target and state applied, shares `uid` owns left out, ordered by id."""

    def create(self, share: NewShare) -> Share: ...

    def update(self, share_id: int, *, permissions: int | object = KEEP,
               expiration: dt.date | None | object = KEEP,
               share_with: str | None | object = KEEP,
               share_name: str | None | object = KEEP,
               attributes: str | None | object = KEEP) -> Share:
        """Change a share in place (share_with: a link's password hash, None to remove it);
        for a group share the members' rows follow permissions and expiration, as in oC10."""

    def delete(self, share_id: int) -> None:
        """Delete a share and its members' rows (ShareNotFoundError if there is none)."""

    def set_received(self, share_id: int, uid: str, *, target: str | None = None,
                     state: int | None = None) -> Received:
        """A recipient moves their mount point or accepts/declines: the user share's own row,
        or the member's type-2 row under a group share (created on first change)."""
