"""GET /ocs/v{1,2}.php/apps/files_sharing/api/v1/sharees: recipients for the share dialog, as
apps/files_sharing ShareesController (v10.16.4) finds them. Pure shaping here; the users and
groups come from the backend's directory (find_users / find_groups).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote_plus

from newstack.backend import User
from newstack.sharing.model import TYPE_GROUP, TYPE_REMOTE, TYPE_USER

#: ShareesController::search defaults
DEFAULT_PER_PAGE: Final = 200
ITEM_TYPES_WITH_REMOTE: Final = ("file", "folder")


@dataclass(frozen=True)
class ShareeSettings:
    """The appconfig/config keys the search reads (core/shareapi_*, user.search_min_length)."""

    group_sharing: bool = True
    enumeration: bool = True  # shareapi_allow_share_dialog_user_enumeration ('yes')
    enumeration_group_members: bool = False  # …_user_enumeration_group_members ('no')
    share_with_group_members_only: bool = False  # shareapi_only_share_with_group_members ('no')
    share_with_membership_groups_only: bool = False  # …_only_share_with_membership_groups
    search_min_length: int = 2
    additional_info_field: str = ""  # core/user_additional_info_field
    can_share: bool = True
    trusted_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShareeQuery:
    search: str
    item_type: str | None
    #: None = the default set; else the requested types (shareType or shareType[])
    share_types: tuple[int, ...] | None
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE


class ShareeError(Exception):
    """A bad query: the OCS code (400) and oC10's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_query(query: Mapping[str, list[str]]) -> ShareeQuery:
    """The search parameters as ShareesController::search reads them from $_GET."""

    def last(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    types: tuple[int, ...] | None = None
    listed = query.get("shareType[]")
    if listed is not None:
        types = tuple(int(v) for v in listed if v.strip().lstrip("-").isdigit())
    else:
        single = last("shareType")
        if single is not None and _is_numeric(single):
            types = (int(float(single)),)
    return ShareeQuery(search=last("search") or "", item_type=last("itemType"),
                       share_types=types, page=_php_int(last("page"), 1),
                       per_page=_php_int(last("perPage"), DEFAULT_PER_PAGE))


def _is_numeric(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _php_int(text: str | None, default: int) -> int:
    if text is None:
        return default
    digits = text.strip()
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    end = len(digits) - len(digits.lstrip("0123456789"))
    return sign * int(digits[:end]) if end else 0


@dataclass
class ShareeResult:
    data: dict[str, Any]
    #: `Link: <…>; rel="next"` when a list may have more on the next page
    next_link: str | None = None


@dataclass
class _Found:
    exact_users: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    exact_groups: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    exact_remotes: list[dict[str, Any]] = field(default_factory=list)
    reached_end: list[str] = field(default_factory=list)


def empty_result() -> dict[str, Any]:
    return {"exact": {"users": [], "groups": [], "remotes": []},
            "users": [], "groups": [], "remotes": []}


def search(query: ShareeQuery, *, me: User, settings: ShareeSettings,
           find_users: Callable[[str, int], Sequence[User]],
           find_groups: Callable[[str, int], Sequence[str]],
           get_user: Callable[[str], User | None],
           group_members: Callable[[str], Sequence[str]],
           ocs_url: str) -> ShareeResult:
    """ShareesController::search: users, groups and remotes in oC10's result shape."""
    if query.per_page <= 0:
        raise ShareeError("Invalid perPage argument")
    if query.page <= 0:
        raise ShareeError("Invalid page")
    if not settings.can_share:
        return ShareeResult(empty_result())
    allowed = [TYPE_USER] + ([TYPE_GROUP] if settings.group_sharing else []) + [TYPE_REMOTE]
    if query.share_types is not None:
        allowed = sorted(t for t in allowed if t in query.share_types)
    if TYPE_REMOTE in allowed and query.item_type not in ITEM_TYPES_WITH_REMOTE:
        allowed.remove(TYPE_REMOTE)
    if query.item_type is None:
        raise ShareeError("Missing itemType")
    limit, offset = query.per_page, query.per_page * (query.page - 1)
    found = _Found()
    text = query.search
    too_short = len(text.strip()) == 0 and settings.search_min_length > 0
    if TYPE_USER in allowed and not too_short:
        _users(found, text, me, settings, find_users, get_user, group_members, limit, offset)
    if TYPE_GROUP in allowed and not too_short:
        _groups(found, text, me, settings, find_groups, limit, offset)
    if TYPE_REMOTE in allowed:
        if not too_short:
            _remote(found, text, settings, offset)
        found.reached_end.append("remotes")
    data = {"exact": {"users": found.exact_users, "groups": found.exact_groups,
                      "remotes": found.exact_remotes},
            "users": found.users if settings.enumeration else [],
            "groups": found.groups if settings.enumeration else [],
            "remotes": []}
    link = None
    if len(found.reached_end) < 3:
        params = [("search", text), ("itemType", query.item_type)]
        params += [(f"shareType[{i}]", str(t)) for i, t in enumerate(allowed)]
        params += [("perPage", str(query.per_page)), ("page", str(query.page + 1))]
        link = (f"<{ocs_url}?" + "&".join(f"{quote_plus(k)}={quote_plus(v)}"
                                          for k, v in params) + '>; rel="next"')
    return ShareeResult(data, link)


def _info(user: User, settings: ShareeSettings) -> str | None:
    if settings.additional_info_field == "email":
        return user.email
    if settings.additional_info_field == "id":
        return user.uid
    return None


def _users(found: _Found, text: str, me: User, settings: ShareeSettings,
           find_users: Callable[[str, int], Sequence[User]],
           get_user: Callable[[str], User | None],
           group_members: Callable[[str], Sequence[str]], limit: int, offset: int) -> None:
    candidates: dict[str, User] = {}
    if settings.share_with_group_members_only or settings.enumeration_group_members:
        for gid in me.groups:
            members = set(group_members(gid))
            for user in find_users(text, offset + limit * 4):
                if user.uid in members:
                    candidates.setdefault(user.uid, user)
        page = list(candidates.values())[offset:offset + limit]
    else:
        page = list(find_users(text, offset + limit))[offset:offset + limit]
    candidates = {user.uid: user for user in page}
    if not settings.enumeration or len(candidates) < limit:
        found.reached_end.append("users")
    lower = text.lower()
    by_id = False
    for user in candidates.values():
        entry: dict[str, Any] = {"label": user.display_name, "value": {
            "shareType": TYPE_USER, "shareWith": user.uid, "userType": 0}}
        info = _info(user, settings)
        if info is not None:
            entry["value"]["shareWithAdditionalInfo"] = info
        exact = lower != "" and lower in (user.uid.lower(), user.display_name.lower(),
                                          (user.email or "").lower())
        if exact:
            by_id = by_id or user.uid.lower() == lower
            found.exact_users.append(entry)
        else:
            found.users.append(entry)
    if offset == 0 and not by_id:
        direct = get_user(text) if text else None
        if direct is not None and (not settings.share_with_group_members_only
                                   or set(me.groups) & set(direct.groups)):
            entry = {"label": direct.display_name,
                     "value": {"shareType": TYPE_USER, "shareWith": direct.uid}}
            info = _info(direct, settings)
            if info is not None:
                entry["value"]["shareWithAdditionalInfo"] = info
            found.exact_users.append(entry)


def _groups(found: _Found, text: str, me: User, settings: ShareeSettings,
            find_groups: Callable[[str, int], Sequence[str]], limit: int, offset: int) -> None:
    gids = list(find_groups(text, offset + limit))[offset:offset + limit]
    if not settings.enumeration or len(gids) < limit:
        found.reached_end.append("groups")
    visible = set(gids)
    if gids and (settings.share_with_membership_groups_only
                 or settings.enumeration_group_members):
        visible &= set(me.groups)
    lower = text.lower()
    for gid in gids:
        if gid not in visible:
            continue
        entry = {"label": gid, "value": {"shareType": TYPE_GROUP, "shareWith": gid}}
        (found.exact_groups if gid.lower() == lower else found.groups).append(entry)
    if offset == 0 and not found.exact_groups and text in find_groups(text, 1000):
        if not settings.share_with_membership_groups_only or text in me.groups:
            found.exact_groups.append({"label": text, "value": {"shareType": TYPE_GROUP,
                                                                "shareWith": text}})


def _remote(found: _Found, text: str, settings: ShareeSettings, offset: int) -> None:
    """No address book here: only the typed cloud id itself, as oC10 offers it."""
    if "@" not in text or offset != 0 or len(text.strip()) < settings.search_min_length:
        return
    domain = text.rsplit("@", 1)[-1]
    on_this_instance = "/" not in text and domain in settings.trusted_domains
    if not found.exact_users or not on_this_instance:
        found.exact_remotes.append({"label": text, "value": {"shareType": TYPE_REMOTE,
                                                             "shareWith": text}})
