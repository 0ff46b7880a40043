"""The OCS share API (apps/files_sharing Share20OcsController + Share20 Manager checks, v10.16.4)
over a FilesBackend that carries a ShareStore: request parsing, validation, formatShare, and the
handlers newstack/app.py routes to. Pure decisions first; the I/O lives in SharesApi.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import unquote_plus

from bridge.oc10.formats import (
    PERM_ALL,
    PERM_CREATE,
    PERM_DELETE,
    PERM_READ,
    PERM_SHARE,
    PERM_UPDATE,
    home_storage_id,
)
from bridge.oc10.passwords import DEFAULT_COST, hash_password
from newstack.backend import FilesBackend, Node, NotFoundError, User
from newstack.http import BadRequestError, Request
from newstack.ocs import sharees
from newstack.ocs.capabilities import CapabilitySettings
from newstack.sharing.model import (
    STATE_ACCEPTED,
    STATE_PENDING,
    STATE_REJECTED,
    TYPE_GROUP,
    TYPE_LINK,
    TYPE_REMOTE,
    TYPE_REMOTE_GROUP,
    TYPE_USER,
    NewShare,
    Received,
    Share,
    ShareError,
    ShareStore,
)

# --- messages (as oC10's l10n source strings say them) -------------------------------------------

WRONG_ID: Final = "Wrong share ID, share doesn't exist"
API_DISABLED: Final = "Share API is disabled"
NO_PATH: Final = "Please specify a file or folder path"
WRONG_PATH: Final = "Wrong path, file/folder doesn't exist"
BAD_DATE: Final = "Invalid date, date format must be YYYY-MM-DD"
#: updateShare passes parseDate's own exception text on
BAD_DATE_UPDATE: Final = "Invalid date. Format must be YYYY-MM-DD"
UPLOAD_DISABLED: Final = "Public upload disabled by the administrator"
UPLOAD_FOLDERS_ONLY: Final = "Public upload is only possible for publicly shared folders"
LINK_PERMISSIONS_FIXED: Final = "Can't change permissions for public share links"

#: share types the OCS API lists (providers' capabilities: ocinternal user/group/link,
#: ocFederatedSharing remote), in Share::CONVERT_SHARE_TYPE_TO_STRING order
SUPPORTED_TYPES: Final = (TYPE_USER, TYPE_GROUP, TYPE_LINK, TYPE_REMOTE)
#: the link permission sets createShare keeps as asked; anything else becomes read-only
_LINK_CREATE_KEPT: Final = (PERM_CREATE, PERM_READ | PERM_CREATE | PERM_UPDATE | PERM_DELETE,
                            PERM_READ | PERM_UPDATE, PERM_READ | PERM_CREATE)
#: the link permission sets updateShare accepts (7 is the legacy spelling of public upload)
_LINK_UPDATE_ALLOWED: Final = (PERM_READ, PERM_CREATE, PERM_READ | PERM_UPDATE,
                               PERM_READ | PERM_CREATE, PERM_READ | PERM_CREATE | PERM_UPDATE,
                               PERM_READ | PERM_CREATE | PERM_UPDATE | PERM_DELETE)
_PUBLIC_UPLOAD: Final = PERM_READ | PERM_CREATE | PERM_UPDATE | PERM_DELETE
REDACTED: Final = "***redacted***"
#: how many substring matches a group lookup reads (the directory's own cap)
GROUP_LOOKUP_LIMIT: Final = 1000


class ApiError(Exception):
    """A share request oC10 refuses: the OCS status code (v1 numbering) and its message."""

    def __init__(self, statuscode: int, message: str) -> None:
        super().__init__(message)
        self.statuscode = statuscode
        self.message = message


@dataclass(frozen=True)
class OcsReply:
    """What a handler answers: data (None renders as an empty array) and the OCS code; the
    sharing controller returns OC\\OCS\\Result, so the message is null on success."""

    data: object = None
    statuscode: int = 100
    message: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


# --- request parameters -----------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def php_parse_str(query: str) -> dict[str, Any]:
    """PHP's parse_str for form bodies and query strings: `a[]=1&a[]=2` a list, `a[0][k]=v`
    nested arrays, the last plain `a=` wins. Arrays come back as dicts keyed by str
    (PHP arrays), lists only for `[]` appends."""
    result: dict[str, Any] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = unquote_plus(raw_key)
        value = unquote_plus(raw_value)
        if not key:
            continue
        bracket = key.find("[")
        if bracket <= 0 or not key.endswith("]"):
            result[key] = value
            continue
        head, path = key[:bracket], _KEY_PART.findall(key[bracket:])
        container: Any = result
        name: str = head
        for part in path:
            current = container.get(name) if isinstance(container, dict) else None
            if not isinstance(current, dict | list):
                current = {} if part else []
                _put(container, name, current)
            container, name = current, part
        _put(container, name, value)
    return result


def _put(container: Any, name: str, value: Any) -> None:
    if isinstance(container, list):
        container.append(value)
    elif name == "":
        # `a[]` under a dict level: the next integer key, as PHP appends
        numeric = [int(k) for k in container if str(k).isdigit()]
        container[str(max(numeric) + 1 if numeric else 0)] = value
    else:
        container[name] = value


def request_params(req: Request) -> dict[str, Any]:
    """IRequest::getParam's view: the query string, then a form or JSON body on top."""
    params = php_parse_str(req.environ.get("QUERY_STRING", ""))
    content_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if req.method in ("POST", "PUT", "DELETE", "PATCH"):
        body = req.read_body()
        if not body:
            return params
        if content_type == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError as exc:
                raise BadRequestError(f"the JSON body does not parse: {exc}") from exc
            if isinstance(decoded, dict):
                params.update({str(k): v for k, v in decoded.items()})
        else:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequestError("the form body is not UTF-8") from exc
            params.update(php_parse_str(text))
    return params


_PHP_INT = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)")


def php_int(value: object) -> int:
    """PHP's (int) cast: '12abc' is 12, 'abc' 0, true 1."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        match = _PHP_INT.match(value)
        return int(match.group(1)) if match else 0
    return 1 if value else 0


def param_str(params: Mapping[str, Any], name: str) -> str | None:
    """A scalar parameter as PHP compares it ('true' === …); arrays count as absent."""
    value = params.get(name)
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _attribute_list(value: object) -> list[Mapping[str, Any]]:
    """`attributes` as a list of {scope, key, value|enabled} maps (form arrays or JSON)."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        raise ApiError(400, "attributes must be an array of {scope, key, enabled}")
    if not all(isinstance(item, dict) for item in value):
        raise ApiError(400, "attributes must be an array of {scope, key, enabled}")
    return value


def permissions_from_request(params: Mapping[str, Any]) -> int | None:
    """getPermissionsFromRequest: `permissions` as PHP casts it, else the ownCloud-scope
    attributes (create/read/update/delete/share = 'true'), else None."""
    raw = params.get("permissions")
    if raw is not None:
        return php_int(raw)
    attributes = params.get("attributes")
    if attributes is None:
        return None
    bits = {"create": PERM_CREATE, "read": PERM_READ, "update": PERM_UPDATE,
            "delete": PERM_DELETE, "share": PERM_SHARE}
    permissions = 0
    for attribute in _attribute_list(attributes):
        if attribute.get("scope") == "ownCloud" and str(attribute.get("value")) == "true":
            permissions |= bits.get(str(attribute.get("key")), 0)
    return permissions


def attributes_json(value: object) -> str | None:
    """setShareAttributes + the provider's storage form: [[scope, key, enabled], …] as JSON,
    None when empty (the provider stores NULL then)."""
    stored: dict[tuple[str, str], object] = {}
    for attribute in _attribute_list(value):
        scope, key = attribute.get("scope"), attribute.get("key")
        if not isinstance(scope, str) or not isinstance(key, str):
            raise ApiError(400, "every attribute needs a scope and a key")
        setting: object = attribute.get("value")
        if "enabled" in attribute:
            setting = _json_bool(attribute["enabled"])
        if setting is not None:
            stored[(scope, key)] = setting
    if not stored:
        return None
    return json.dumps([[scope, key, setting] for (scope, key), setting in stored.items()],
                      separators=(",", ":"))


def _json_bool(value: object) -> bool:
    """(bool) json_decode($enabled): 'true'/'1' true; 'false', '0', '' or junk false."""
    if isinstance(value, bool):
        return value
    try:
        return bool(json.loads(str(value)))
    except ValueError:
        return False


def formatted_attributes(stored: str | None) -> str | None:
    """formatShare's attributes: json_encode of [{scope, key, enabled}, …] or null."""
    if not stored:
        return None
    triples = json.loads(stored)
    return json.dumps([{"scope": s, "key": k, "enabled": e} for s, k, e in triples],
                      separators=(",", ":"))


_DATE_ONLY = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")


def parse_expire_date(text: str) -> dt.date:
    """parseDate: what PHP's `new DateTime($expireDate)` reads, cut to the day. We take the
    forms clients send — 'YYYY-MM-DD', with a time ('YYYY-MM-DD HH:MM[:SS]', ISO 8601 'T',
    an offset or 'Z') — and refuse the rest with ValueError."""
    match = _DATE_ONLY.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        if not (1 <= month <= 12 and 0 <= day <= 31 and year >= 1):
            raise ValueError(f"{text!r} is not a date like YYYY-MM-DD")
        # PHP rolls a day past the month's end over: 2026-02-30 is 2026-03-02
        return dt.date(year, month, 1) + dt.timedelta(days=day - 1)
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")).date()
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date like YYYY-MM-DD") from exc


def requested_share_types(param: str | None, *, federation_outgoing: bool) -> list[int]:
    """getShares' share_types filter: '' or absent = all supported; unknown entries dropped;
    remote types only while outgoing federation is allowed."""
    supported = [t for t in SUPPORTED_TYPES
                 if federation_outgoing or t not in (TYPE_REMOTE, TYPE_REMOTE_GROUP)]
    if not param:
        return supported
    wanted = {int(p) for p in param.split(",") if p.isdigit()}
    return [t for t in supported if t in wanted]


def state_filter(param: str | None) -> int | None:
    """shared_with_me's `state`: absent or '' = accepted, 'all' = None (every state)."""
    if param is None or param == "":
        return STATE_ACCEPTED
    if param == "all":
        return None
    return php_int(param)


def link_create_permissions(*, public_upload: str | None, permissions: int,
                            from_request: bool, is_file: bool, upload_allowed: bool) -> int:
    """createShare's link branch: the permissions a new link gets, or ApiError."""
    if public_upload == "true" or permissions == PERM_CREATE:
        if not upload_allowed:
            raise ApiError(403, UPLOAD_DISABLED)
        if is_file:
            raise ApiError(404, UPLOAD_FOLDERS_ONLY)
    if from_request and not upload_allowed and permissions & PERM_CREATE:
        raise ApiError(403, UPLOAD_DISABLED)
    if public_upload == "true":
        return _PUBLIC_UPLOAD
    if permissions in _LINK_CREATE_KEPT:
        return permissions
    # no permissions default to ALL, which for a link means read-only
    return PERM_READ


def link_update_permissions(*, public_upload: str | None, permissions: int | None,
                            is_file: bool, upload_allowed: bool) -> int | None:
    """updateShare's link branch: the new permissions (None = unchanged), or ApiError."""
    new: int | None = None
    if public_upload == "true":
        new = _PUBLIC_UPLOAD
    elif public_upload == "false":
        new = PERM_READ
    if permissions is not None:
        new = permissions
    if new is not None and new not in _LINK_UPDATE_ALLOWED:
        raise ApiError(400, LINK_PERMISSIONS_FIXED)
    if new is not None and new & PERM_CREATE:
        if not upload_allowed:
            raise ApiError(403, UPLOAD_DISABLED)
        if is_file:
            raise ApiError(400, UPLOAD_FOLDERS_ONLY)
    return new


def password_enforced(permissions: int, settings: CapabilitySettings) -> bool:
    """Manager::passwordMustBeEnforced: the link roles whose password the admin enforces."""
    if permissions == PERM_READ:
        return settings.password_enforced_read_only
    if permissions == PERM_CREATE:
        return settings.password_enforced_upload_only
    if permissions == PERM_READ | PERM_CREATE:
        return settings.password_enforced_read_write
    if permissions in (_PUBLIC_UPLOAD, PERM_READ | PERM_UPDATE):
        return settings.password_enforced_read_write_delete
    return False


def expiry_policy(share_type: int, settings: CapabilitySettings) -> tuple[bool, bool, int]:
    """(enforced, default set, days) of validateExpirationDate for a share type."""
    table = {
        TYPE_USER: (settings.user_expire_date_enforced, settings.user_expire_date_enabled,
                    settings.user_expire_date_days),
        TYPE_GROUP: (settings.group_expire_date_enforced, settings.group_expire_date_enabled,
                     settings.group_expire_date_days),
        TYPE_LINK: (settings.public_expire_date_enforced, settings.public_expire_date_enabled,
                    settings.public_expire_date_days),
        TYPE_REMOTE: (settings.remote_expire_date_enforced,
                      settings.remote_expire_date_enabled, settings.remote_expire_date_days),
    }
    enforced, default, days = table.get(share_type, (False, False, "0"))
    return enforced, default, php_int(days)


def checked_expiration(day: dt.date | None, *, share_type: int, new: bool, today: dt.date,
                       settings: CapabilitySettings, allow_past: bool = False
                       ) -> dt.date | None:
    """validateExpirationDate: refuse the past, apply an enforced maximum (and its default
    on a new share)."""
    if day is not None and day < today and not allow_past:
        raise ApiError(404, "Expiration date is in the past")
    enforced, default, days = expiry_policy(share_type, settings)
    if enforced:
        if new and day is None and default:
            day = today + dt.timedelta(days=days)
        if day is None:
            raise ApiError(403, "Expiration date is enforced")
        if today + dt.timedelta(days=days) < day:
            raise ApiError(404,
                           f"Cannot set expiration date more than {days} days in the future")
    return day


def max_share_permissions(node: Node, *, owner_view: bool) -> int:
    """validatePermissions' ceiling: the node's permissions; an owner's home mount also grants
    update and delete (it is not a moveable mount); a file may always carry create. In a
    received share no more than the share gave: the delete (and rename) a recipient has on
    the mount point itself is for leaving (moving) it, not for passing on."""
    ceiling = node.permissions
    if node.share_permissions is not None:
        ceiling &= node.share_permissions
    if owner_view:
        ceiling |= PERM_DELETE | PERM_UPDATE
    if not node.is_dir:
        ceiling |= PERM_CREATE
    return ceiling


def checked_permissions(permissions: int, node: Node, *, owner_view: bool) -> int:
    """validatePermissions: files drop create/delete; 0 and out-of-range refused; no more than
    the sharer has."""
    if not node.is_dir:
        permissions &= ~(PERM_DELETE | PERM_CREATE)
    if permissions < 0 or permissions > PERM_ALL:
        raise ApiError(404, "Invalid permissions")
    if permissions == 0:
        raise ApiError(400, "Cannot remove all permissions")
    ceiling = max_share_permissions(node, owner_view=owner_view)
    if ceiling | permissions != ceiling:
        raise ApiError(404, f"Cannot set the requested share permissions for {node.name}")
    return permissions


def deduplicated_target(target: str, exists: Callable[[str], bool]) -> str:
    """deduplicateShareTarget: '/a.txt' taken -> '/a (2).txt', then (3), …"""
    parent, name = posixpath.split(target)
    stem, ext = _split_extension(name)
    attempt, number = target, 2
    while exists(attempt):
        attempt = posixpath.join(parent, f"{stem} ({number}){ext}")
        number += 1
    return attempt


def _split_extension(name: str) -> tuple[str, str]:
    """pathinfo(): the extension is after the last dot, also for '.hidden' (stem '')."""
    dot = name.rfind(".")
    if dot < 0:
        return name, ""
    return name[:dot], name[dot:]


def can_access(share: Share, uid: str, groups: Iterable[str], *, state: int | None = None
               ) -> bool:
    """canAccessShare: owner, initiator, the user recipient or a member of the group."""
    effective_state = share.accepted if state is None else state
    if share.permissions == 0 and not (share.share_type == TYPE_GROUP
                                       and effective_state == STATE_REJECTED):
        return False
    if uid in (share.uid_owner, share.uid_initiator):
        return True
    if share.share_type == TYPE_USER and share.share_with == uid:
        return True
    return share.share_type == TYPE_GROUP and share.share_with in set(groups)


def can_change(share: Share, uid: str) -> bool:
    """canChangeShare: only the owner or the initiator update or delete a share."""
    return uid in (share.uid_owner, share.uid_initiator)


# --- formatShare ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenNode:
    """The shared node as the requesting user's folder resolves it (formatShare's getById)."""

    #: '/Docs/a.txt' relative to that user's files
    path: str
    mimetype: str
    storage_id: str
    storage: int
    fileid: int
    parent_fileid: int


@dataclass(frozen=True)
class People:
    """Who is who, for display names and the configured additional info."""

    users: Mapping[str, User | None]
    #: config user_additional_info_field: '' (none), 'email' or 'id'
    additional_info_field: str = ""

    def display(self, uid: str) -> str:
        user = self.users.get(uid)
        return user.display_name if user is not None else uid

    def info(self, uid: str) -> str | None:
        user = self.users.get(uid)
        if user is None:
            return None
        if self.additional_info_field == "email":
            return user.email
        if self.additional_info_field == "id":
            return user.uid
        return None


def share_url(base_url: str, token: str, *, front_controller: bool = False) -> str:
    """linkToRouteAbsolute('files_sharing.sharecontroller.showShare')."""
    return f"{base_url}{'' if front_controller else '/index.php'}/s/{token}"


def format_share(share: Share, seen: SeenNode, people: People, *, link_base: str,
                 received: Received | None = None, front_controller: bool = False
                 ) -> dict[str, Any]:
    """formatShare, key for key in v10.16.4's order; `received` for shared_with_me (adds
    state, uses the recipient's own target)."""
    result: dict[str, Any] = {
        "id": str(share.id),
        "share_type": share.share_type,
        "uid_owner": share.uid_initiator,
        "displayname_owner": people.display(share.uid_initiator),
        "permissions": share.permissions,
        "stime": share.stime,
        "parent": None,
        "expiration": None,
        "token": None,
        "uid_file_owner": share.uid_owner,
        "displayname_file_owner": people.display(share.uid_owner),
    }
    if people.users.get(share.uid_initiator) is not None:
        result["additional_info_owner"] = people.info(share.uid_initiator)
    if people.users.get(share.uid_owner) is not None:
        result["additional_info_file_owner"] = people.info(share.uid_owner)
    if received is not None:
        result["state"] = received.state
    target = received.target if received is not None else share.file_target
    result["path"] = (target if received is not None and received.state != STATE_ACCEPTED
                      else seen.path)
    result["mimetype"] = seen.mimetype
    result["storage_id"] = seen.storage_id
    result["storage"] = seen.storage
    result["item_type"] = share.item_type
    result["item_source"] = seen.fileid
    result["file_source"] = seen.fileid
    result["file_parent"] = seen.parent_fileid
    result["file_target"] = target
    if share.expiration is not None:
        result["expiration"] = share.expiration.strftime("%Y-%m-%d 00:00:00")
    if share.share_type == TYPE_USER:
        recipient = share.share_with or ""
        result["share_with"] = recipient
        result["share_with_displayname"] = people.display(recipient)
        # a guest (guests app, preference owncloud/isGuest) would be 1
        result["share_with_user_type"] = 0
        if people.users.get(recipient) is not None:
            result["share_with_additional_info"] = people.info(recipient)
    elif share.share_type == TYPE_GROUP:
        result["share_with"] = share.share_with
        result["share_with_displayname"] = share.share_with
    elif share.share_type == TYPE_LINK:
        if share.password_hash is not None:
            result["share_with"] = REDACTED
            result["share_with_displayname"] = REDACTED
        result["name"] = share.share_name
        result["token"] = share.token
        if share.token is not None:
            result["url"] = share_url(link_base, share.token, front_controller=front_controller)
    elif share.share_type in (TYPE_REMOTE, TYPE_REMOTE_GROUP):
        result["share_with"] = share.share_with
        result["share_with_displayname"] = share.share_with
        result["token"] = share.token
    result["mail_send"] = 1 if share.mail_send else 0
    result["attributes"] = formatted_attributes(share.attributes)
    return result


# --- the handlers ----------------------------------------------------------------------------


@runtime_checkable
class HomeStorages(Protocol):
    """A backend that knows oC10's storage rows (oc_storages id and numeric id) of a home."""

    def home_storage(self, uid: str) -> tuple[str, int]: ...


@dataclass
class _RequestCache:
    """Lookups one request repeats: users, groups, received shares."""

    users: dict[str, User | None] = field(default_factory=dict)
    received: dict[str, list[Received]] = field(default_factory=dict)


class SharesApi:
    """One instance per app; every method answers one OCS request for `user`."""

    def __init__(self, backend: FilesBackend, settings: CapabilitySettings, *,
                 share_folder: str | None = None, additional_info_field: str = "",
                 hash_cost: int = DEFAULT_COST,
                 today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date()
                 ) -> None:
        self.backend = backend
        self.settings = settings
        self._share_folder = share_folder
        self.additional_info_field = additional_info_field
        self.hash_cost = hash_cost
        self.today = today

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def share_folder(self) -> str:
        """Where new user and group shares land: set here, else the backend's (config.php
        `share_folder` on oc10, the metadata store's setting on native), else the root."""
        if self._share_folder is not None:
            return self._share_folder
        configured = getattr(self.backend, "share_folder", None)
        return configured if isinstance(configured, str) and configured else "/"

    @share_folder.setter
    def share_folder(self, folder: str) -> None:
        self._share_folder = folder
        # the recipients' view places mounts whose folder went away in it
        settable = getattr(type(self.backend), "share_folder", None)
        if isinstance(settable, property) and settable.fset is not None:
            settable.fset(self.backend, folder)

    @property
    def store(self) -> ShareStore:
        return self.backend.shares

    def _changed(self, uid: str | None = None) -> None:
        """Tell the recipients' view (newstack/sharing/view.py) that mounts changed now."""
        forget = getattr(self.backend, "forget", None)
        if forget is not None:
            forget(uid)

    def _user(self, cache: _RequestCache, uid: str) -> User | None:
        if uid not in cache.users:
            cache.users[uid] = self.backend.user(uid)
        return cache.users[uid]

    def _received(self, cache: _RequestCache, user: User) -> list[Received]:
        if user.uid not in cache.received:
            cache.received[user.uid] = self.store.received(user.uid, user.groups)
        return cache.received[user.uid]

    def _group_exists(self, gid: str) -> bool:
        # the directory searches substrings; the exact gid is among them if it exists
        return gid in self.backend.find_groups(gid, GROUP_LOOKUP_LIMIT)

    def _alive(self, share: Share) -> bool:
        """Manager drops an expired share the moment anyone reads it."""
        if share.expired(self.today()):
            try:
                self.store.delete(share.id)
            except ShareError:
                pass  # someone else deleted it first
            self._changed()
            return False
        return True

    def _share_by_id(self, raw_id: str) -> Share:
        if not raw_id.isdigit():
            raise ApiError(404, WRONG_ID)
        share = self.store.get(int(raw_id))
        if share is None or not self._alive(share):
            raise ApiError(404, WRONG_ID)
        return share

    def _storage(self, uid: str) -> tuple[str, int]:
        if isinstance(self.backend, HomeStorages):
            return self.backend.home_storage(uid)
        # the native stack has no storage rows: the home's id text as oC10 writes it, and the
        # files root's fileid as the number (stable per user, like oC10's numeric id)
        return home_storage_id(uid), self.backend.stat(uid, "").fileid

    def _mount_of(self, cache: _RequestCache, user: User, path: str) -> str:
        """The mount point (received share target) that holds `path` in the user's files."""
        for received in self._received(cache, user):
            target = received.target
            if path == target or path.startswith(target + "/"):
                return target
        return path

    def _seen(self, cache: _RequestCache, viewer: User, share: Share) -> SeenNode:
        """formatShare's node lookup in `viewer`'s folder; NotFoundError when not there."""
        node = self.backend.by_id(viewer.uid, share.file_source)
        parent_path = node.path.rpartition("/")[0]
        parent = self.backend.stat(viewer.uid, parent_path)
        path = "/" + node.path
        if node.owner == viewer.uid:
            storage_id, storage = self._storage(viewer.uid)
        else:
            storage_id = "shared::" + self._mount_of(cache, viewer, path)
            storage = self._storage(node.owner)[1]
        return SeenNode(path=path, mimetype=node.mimetype, storage_id=storage_id,
                        storage=storage, fileid=node.fileid, parent_fileid=parent.fileid)

    def _format(self, cache: _RequestCache, user: User, share: Share, link_base: str,
                received: Received | None = None) -> dict[str, Any]:
        viewer = user
        if received is not None and received.state != STATE_ACCEPTED:
            # not mounted yet: resolve through the owner's folder, as oC10 does
            viewer = self._user(cache, share.uid_owner) or User(share.uid_owner,
                                                                 share.uid_owner, None)
        seen = self._seen(cache, viewer, share)
        # share_with names a user only for user shares (a gid, a link's hash, a cloud id else)
        recipient = [share.share_with] if share.share_type == TYPE_USER and share.share_with \
            else []
        for uid in (share.uid_initiator, share.uid_owner, *recipient):
            self._user(cache, uid)
        people = People(cache.users, self.additional_info_field)
        return format_share(share, seen, people, link_base=link_base, received=received,
                            front_controller=self.settings.front_controller_active)

    def _node(self, user: User, path: str) -> Node:
        clean = path.strip("/")
        if any(part in (".", "..") for part in clean.split("/")):
            raise ApiError(404, WRONG_PATH)
        try:
            return self.backend.stat(user.uid, clean)
        except NotFoundError:
            raise ApiError(404, WRONG_PATH) from None

    # -- routing -----------------------------------------------------------------------------

    def route(self, req: Request, user: User, route: str, *, host_url: str, version: int
              ) -> OcsReply | None:
        """Answer `route` (below apps/files_sharing/api/v1/), None when no route matches."""
        link_base = host_url + self.settings.webroot
        parts = route.strip("/").split("/")
        method = req.method
        try:
            if parts == ["sharees"] and method == "GET":
                return self.sharees(req, user, host_url, version)
            if parts == ["shares"]:
                if method == "GET":
                    return self.list_shares(user, request_params(req), link_base)
                if method == "POST":
                    return self.create_share(user, request_params(req), link_base)
            elif len(parts) == 3 and parts[:2] == ["shares", "pending"]:
                if method == "POST":
                    return self.set_state(user, parts[2], STATE_ACCEPTED, link_base)
                if method == "DELETE":
                    return self.set_state(user, parts[2], STATE_REJECTED, link_base)
            elif len(parts) == 2 and parts[0] == "shares":
                if method == "GET":
                    return self.get_share(user, parts[1], link_base)
                if method == "PUT":
                    return self.update_share(user, parts[1], request_params(req), link_base)
                if method == "DELETE":
                    return self.delete_share(user, parts[1])
        except ApiError as exc:
            return OcsReply(None, exc.statuscode, exc.message)
        return None

    def sharees(self, req: Request, user: User, host_url: str, version: int) -> OcsReply:
        settings = self.settings
        try:
            query = sharees.parse_query(req.query)
            found = sharees.search(
                query, me=user,
                settings=sharees.ShareeSettings(
                    group_sharing=settings.group_sharing,
                    enumeration=settings.user_enumeration_enabled,
                    enumeration_group_members=settings.user_enumeration_group_members_only,
                    search_min_length=settings.search_min_length,
                    additional_info_field=self.additional_info_field,
                    can_share=settings.can_share),
                find_users=self.backend.find_users,
                find_groups=self.backend.find_groups,
                get_user=self.backend.user,
                group_members=self.backend.group_members,
                ocs_url=f"{host_url}{settings.webroot}/ocs/v{version}.php/apps/files_sharing"
                        f"/api/v1/sharees")
        except sharees.ShareeError as exc:
            return OcsReply(None, 400, exc.message)
        headers = (("Link", found.next_link),) if found.next_link else ()
        return OcsReply(found.data, message="OK", headers=headers)

    # -- GET shares --------------------------------------------------------------------------

    def list_shares(self, user: User, params: Mapping[str, Any], link_base: str) -> OcsReply:
        if not self.settings.api_enabled:
            return OcsReply([])
        cache = _RequestCache()
        types = requested_share_types(param_str(params, "share_types"),
                                      federation_outgoing=self.settings.federation_outgoing)
        path = param_str(params, "path")
        node = self._node(user, path) if path is not None else None
        if param_str(params, "shared_with_me") == "true":
            return OcsReply(self._shared_with_me(cache, user, node, types,
                                                 state_filter(param_str(params, "state")),
                                                 link_base))
        if param_str(params, "subfiles") == "true":
            if node is None or not node.is_dir:
                raise ApiError(400, "Not a directory")
            nodes = self.backend.children(user.uid, node.path)
            if not nodes:
                return OcsReply([])
        else:
            nodes = [node] if node is not None else []
        reshares = param_str(params, "reshares") == "true"
        order = {fileid: i for i, fileid in enumerate(n.fileid for n in nodes)}
        shares = self.store.created_by(user.uid, types=types, reshares=reshares,
                                       file_sources=list(order) if nodes else None)
        type_rank = {t: i for i, t in enumerate(types)}
        # oC10 merges per node, then per type, each provider query ordered by id
        shares.sort(key=lambda s: (order.get(s.file_source, 0), type_rank[s.share_type], s.id))
        formatted = []
        for share in shares:
            if not self._alive(share):
                continue
            try:
                formatted.append(self._format(cache, user, share, link_base))
            except NotFoundError:
                continue  # a share of a node this user cannot resolve is left out
        return OcsReply(formatted)

    def _shared_with_me(self, cache: _RequestCache, user: User, node: Node | None,
                        types: Sequence[int], wanted_state: int | None, link_base: str
                        ) -> list[dict[str, Any]]:
        formatted = []
        for received in self._received(cache, user):
            share = received.share
            if share.share_type not in (TYPE_USER, TYPE_GROUP) or share.share_type not in types:
                continue
            if node is not None and share.file_source != node.fileid:
                continue
            if share.uid_owner == user.uid:
                continue
            if wanted_state is not None and received.state != wanted_state:
                continue
            if not can_access(share, user.uid, user.groups, state=received.state):
                continue
            if not self._alive(share):
                continue
            if not self.settings.can_share:
                share = dataclasses.replace(share, permissions=share.permissions & ~PERM_SHARE)
            try:
                formatted.append(self._format(cache, user, share, link_base, received))
            except NotFoundError:
                continue
        return formatted

    # -- GET shares/{id} ---------------------------------------------------------------------

    def get_share(self, user: User, raw_id: str, link_base: str) -> OcsReply:
        if not self.settings.api_enabled:
            raise ApiError(404, API_DISABLED)
        share = self._share_by_id(raw_id)
        if can_access(share, user.uid, user.groups):
            try:
                return OcsReply([self._format(_RequestCache(), user, share, link_base)])
            except NotFoundError:
                pass
        raise ApiError(404, WRONG_ID)

    # -- DELETE shares/{id} ------------------------------------------------------------------

    def delete_share(self, user: User, raw_id: str) -> OcsReply:
        if not self.settings.api_enabled:
            raise ApiError(404, API_DISABLED)
        share = self._share_by_id(raw_id)
        if not can_change(share, user.uid):
            raise ApiError(404, "Could not delete share")
        self.store.delete(share.id)
        self._changed()
        return OcsReply()

    # -- POST shares -------------------------------------------------------------------------

    def create_share(self, user: User, params: Mapping[str, Any], link_base: str) -> OcsReply:
        settings = self.settings
        if not settings.api_enabled:
            raise ApiError(404, API_DISABLED)
        name = param_str(params, "name")
        path = param_str(params, "path")
        if path is None:
            raise ApiError(404, NO_PATH)
        node = self._node(user, path)
        share_type = php_int(param_str(params, "shareType") or "-1")
        requested = permissions_from_request(params)
        if requested is None:
            permissions = settings.default_permissions if share_type != TYPE_LINK else PERM_ALL
        else:
            permissions = requested
        expiration: dt.date | None = None
        expire_param = param_str(params, "expireDate") or ""
        if expire_param != "":
            try:
                expiration = parse_expire_date(expire_param)
            except ValueError:
                raise ApiError(404, BAD_DATE) from None
        share_with_param = params.get("shareWith")
        share_with: str | None = None
        password = ""
        state = STATE_ACCEPTED if settings.auto_accept_share else STATE_PENDING
        if share_type == TYPE_USER:
            recipient = (self.backend.user(share_with_param)
                         if isinstance(share_with_param, str) and share_with_param else None)
            if recipient is None:
                raise ApiError(404, "Please specify a valid user")
            share_with = recipient.uid
        elif share_type == TYPE_GROUP:
            if not settings.group_sharing:
                raise ApiError(404, "Group sharing is disabled by the administrator")
            if not isinstance(share_with_param, str) or not self._group_exists(share_with_param):
                raise ApiError(404, "Please specify a valid group")
            share_with = share_with_param
        elif share_type == TYPE_LINK:
            if not settings.public_enabled:
                raise ApiError(404, "Public link sharing is disabled by the administrator")
            if not settings.can_create_public_link:
                raise ApiError(403, "Public link creation is only possible for certain groups")
            permissions = link_create_permissions(
                public_upload=param_str(params, "publicUpload"), permissions=permissions,
                from_request=requested is not None, is_file=not node.is_dir,
                upload_allowed=settings.public_upload)
            password = param_str(params, "password") or ""
        elif share_type in (TYPE_REMOTE, TYPE_REMOTE_GROUP):
            full_path = f"/{user.uid}/files/{node.path}"
            if not settings.federation_outgoing:
                raise ApiError(403, f"Sharing {full_path} failed because the back end does "
                                    f"not allow shares from type {share_type}")
            if not isinstance(share_with_param, str):
                raise ApiError(404, "shareWith parameter must be a string")
            # federation would ask the other server over HTTP; this stack does not speak it
            raise ApiError(403, f"Sharing {node.name} failed, could not find "
                                f"{share_with_param}, maybe the server is currently "
                                f"unreachable.")
        else:
            raise ApiError(400, "Unknown share type")
        attributes = attributes_json(params["attributes"]) if "attributes" in params else None
        today = self.today()
        if not settings.can_share:
            raise ApiError(403, "You are not allowed to share")
        cache = _RequestCache()
        if node.is_dir and self._holds_mounts(cache, user, node):
            raise ApiError(403, "Path contains files shared with you")
        expiration = checked_expiration(expiration, share_type=share_type, new=True,
                                        today=today, settings=settings)
        owner = node.owner
        if share_type == TYPE_USER and share_with == user.uid:
            raise ApiError(403, "Can't share with yourself")
        if node.path == "":
            raise ApiError(403, "You can't share your root folder")
        if not node.permissions & PERM_SHARE:
            raise ApiError(404, f"You are not allowed to share /{user.uid}/files/{node.path}")
        permissions = checked_permissions(permissions, node, owner_view=owner == user.uid)
        if share_type == TYPE_USER:
            self._check_not_shared_with_user(node.fileid, owner, share_with or "")
        elif share_type == TYPE_GROUP:
            self._check_not_shared_with_group(node.fileid, share_with or "")
        elif share_type == TYPE_LINK:
            if not settings.public_upload and permissions & (PERM_CREATE | PERM_UPDATE
                                                             | PERM_DELETE):
                raise ApiError(403, "Public upload not allowed")
            if password_enforced(permissions, settings) and password == "":
                raise ApiError(403, "Passwords are enforced for link shares")
            if password != "":
                # oC10's Hasher format, so links keep working on either stack
                share_with = hash_password(password, cost=self.hash_cost)
        if share_type == TYPE_USER and share_with == owner:
            raise ApiError(403, "Can't share with the share owner")
        if share_type == TYPE_LINK:
            target = "/" + node.name
        else:
            folder = [part for part in self.share_folder.split("/") if part]
            target = "/" + "/".join([*folder, node.name])
        try:
            share = self.store.create(NewShare(
                share_type=share_type, share_with=share_with, uid_owner=owner,
                uid_initiator=user.uid, item_type="folder" if node.is_dir else "file",
                file_source=node.fileid, file_target=target, permissions=permissions,
                accepted=state, expiration=expiration,
                share_name=name if share_type == TYPE_LINK else None, attributes=attributes))
        except ShareError as exc:
            raise ApiError(403, str(exc)) from None
        self._changed()
        return OcsReply(self._format(cache, user, share, link_base))

    def _holds_mounts(self, cache: _RequestCache, user: User, node: Node) -> bool:
        """pathCreateChecks: a folder with received shares mounted inside cannot be shared."""
        prefix = "/" + node.path + "/" if node.path else "/"
        return any(r.state == STATE_ACCEPTED and r.target.startswith(prefix)
                   for r in self._received(cache, user))

    def _check_not_shared_with_user(self, fileid: int, owner: str, recipient: str,
                                    except_id: int | None = None) -> None:
        for existing in self.store.on_files([fileid], types=(TYPE_USER, TYPE_GROUP)):
            if existing.id == except_id:
                continue
            if existing.share_type == TYPE_USER and existing.share_with == recipient:
                raise ApiError(403, "Path already shared with this user")
            if (existing.share_type == TYPE_GROUP and existing.uid_owner != owner
                    and recipient in self.backend.group_members(
                        existing.share_with or "")):
                raise ApiError(403, "Path already shared with this user")

    def _check_not_shared_with_group(self, fileid: int, gid: str,
                                     except_id: int | None = None) -> None:
        for existing in self.store.on_files([fileid], types=(TYPE_GROUP,)):
            if existing.id != except_id and existing.share_with == gid:
                raise ApiError(403, "Path already shared with this group")

    # -- PUT shares/{id} ---------------------------------------------------------------------

    def update_share(self, user: User, raw_id: str, params: Mapping[str, Any],
                     link_base: str) -> OcsReply:
        settings = self.settings
        if not settings.api_enabled:
            raise ApiError(404, API_DISABLED)
        share = self._share_by_id(raw_id)
        if not can_change(share, user.uid):
            raise ApiError(404, "Could not update share")
        permissions = permissions_from_request(params)
        password = param_str(params, "password")
        public_upload = param_str(params, "publicUpload")
        expire_param = param_str(params, "expireDate")
        name = param_str(params, "name")
        changes: dict[str, Any] = {}
        new_permissions = share.permissions
        password_hash = share.password_hash
        is_file = share.item_type == "file"
        if share.share_type == TYPE_LINK:
            if (permissions is None and password is None and public_upload is None
                    and expire_param is None and name is None):
                raise ApiError(400, "Wrong or no update parameter given")
            link_permissions = link_update_permissions(
                public_upload=public_upload, permissions=permissions, is_file=is_file,
                upload_allowed=settings.public_upload)
            if name is not None:
                changes["share_name"] = name
            if link_permissions is not None:
                new_permissions = link_permissions
            if password == "":
                password_hash = None
            elif password is not None:
                password_hash = hash_password(password, cost=self.hash_cost)
        elif permissions is not None:
            new_permissions = permissions
        expiration = share.expiration
        if expire_param == "":
            expiration = None
        elif expire_param is not None:
            try:
                expiration = parse_expire_date(expire_param)
            except ValueError:
                raise ApiError(400, BAD_DATE_UPDATE) from None
        if "attributes" in params:
            changes["attributes"] = attributes_json(params["attributes"])
        # Manager::updateShare
        if not settings.can_share:
            raise ApiError(403, "You are not allowed to share")
        cache = _RequestCache()
        try:
            node = self.backend.by_id(user.uid, share.file_source)
        except NotFoundError:
            raise ApiError(404, WRONG_ID) from None
        if not node.permissions & PERM_SHARE:
            raise ApiError(404, f"You are not allowed to share /{user.uid}/files/{node.path}")
        new_permissions = checked_permissions(new_permissions, node,
                                              owner_view=node.owner == user.uid)
        if expiration != share.expiration:
            expiration = checked_expiration(expiration, share_type=share.share_type, new=False,
                                            today=self.today(), settings=settings)
        if share.share_type == TYPE_USER:
            self._check_not_shared_with_user(share.file_source, share.uid_owner,
                                             share.share_with or "", except_id=share.id)
        elif share.share_type == TYPE_GROUP:
            self._check_not_shared_with_group(share.file_source, share.share_with or "",
                                              except_id=share.id)
        elif share.share_type == TYPE_LINK:
            if not settings.public_upload and new_permissions & (PERM_CREATE | PERM_UPDATE
                                                                 | PERM_DELETE):
                raise ApiError(403, "Public upload not allowed")
            if ((password_hash != share.password_hash or new_permissions != share.permissions)
                    and password_enforced(new_permissions, settings)
                    and password_hash is None):
                raise ApiError(403, "Passwords are enforced for link shares")
            if password_hash != share.password_hash:
                changes["share_with"] = password_hash
        if node.is_dir and self._holds_mounts(cache, user, node):
            raise ApiError(403, "Path contains files shared with you")
        if new_permissions != share.permissions:
            changes["permissions"] = new_permissions
        if expiration != share.expiration:
            changes["expiration"] = expiration
        try:
            updated = self.store.update(share.id, **changes) if changes else share
        except ShareError as exc:
            raise ApiError(400, str(exc)) from None
        self._changed()
        return OcsReply(self._format(cache, user, updated, link_base))

    # -- POST/DELETE shares/pending/{id} -----------------------------------------------------

    def set_state(self, user: User, raw_id: str, state: int, link_base: str) -> OcsReply:
        if not self.settings.api_enabled:
            raise ApiError(404, API_DISABLED)
        cache = _RequestCache()
        if not raw_id.isdigit():
            raise ApiError(404, WRONG_ID)
        share_id = int(raw_id)
        mine = {r.share.id: r for r in self._received(cache, user)}
        received = mine.get(share_id)
        if received is None:
            share = self._share_by_id(raw_id)
            if not can_access(share, user.uid, user.groups):
                raise ApiError(404, WRONG_ID)
            if can_change(share, user.uid):
                raise ApiError(403, "Only recipient can change accepted state")
            raise ApiError(404, WRONG_ID)
        share = received.share
        if not self._alive(share) or not can_access(share, user.uid, user.groups,
                                                     state=received.state):
            raise ApiError(404, WRONG_ID)
        if can_change(share, user.uid):
            raise ApiError(403, "Only recipient can change accepted state")
        try:
            self.backend.by_id(share.uid_owner, share.file_source)
        except NotFoundError:
            # the shared node is in its owner's trash: Manager::getShareById finds no share
            raise ApiError(404, WRONG_ID) from None
        if received.state == state:
            return OcsReply([self._format(cache, user, share, link_base, received)])
        target = received.target
        if state == STATE_ACCEPTED:
            target = deduplicated_target(target, lambda p: self._exists(user, p))
        # every share of that node this user receives follows (user and group at once)
        for other in self._received(cache, user):
            if other.share.file_source == share.file_source:
                self.store.set_received(other.share.id, user.uid, target=target, state=state)
        updated = Received(share, user.uid, target, state)
        cache.received.clear()
        self._changed(user.uid)
        return OcsReply([self._format(cache, user, share, link_base, updated)])

    def _exists(self, user: User, path: str) -> bool:
        try:
            self.backend.stat(user.uid, path.strip("/"))
        except NotFoundError:
            return False
        return True
