"""The `data` of GET cloud/user (AppFramework) and GET cloud/users/{uid} (provisioning_api, legacy).

Sources (owncloud/core v10.16.4): core/Controller/CloudController.php getCurrentUser,
apps/provisioning_api/lib/Users.php getUser + fillStorageInfo, lib/private/legacy/helper.php
getStorageInfo, lib/private/User/User.php getQuota. Render cloud/user with
render_ocs(…, legacy=False) and cloud/users/{uid} with render_ocs(…, legacy=True).
"""

from __future__ import annotations

from typing import Any

from newstack.backend import Quota, User
from newstack.ocs.php import human_file_size, php_round


def cloud_user(user: User) -> dict[str, Any]:
    """{id, display-name, email (null when unset), language}; `language` exists since 10.11."""
    return {
        "id": user.uid,
        "display-name": user.display_name,
        "email": user.email,
        "language": user.language,
    }


def storage_info(user: User, quota: Quota) -> dict[str, Any]:
    """OC_Helper::getStorageInfo('/') as fillStorageInfo keeps it: free, used, total, relative.

    `quota.available` is what the home storage's free_space() reported (-3 unlimited, -2
    unknown); a total above the user's quota is capped to it; relative is a percentage with two
    decimals (a PHP float) or the integer 0 when the total is not positive."""
    free = quota.available
    used = max(quota.used, 0)
    total = free + used if free >= 0 else free
    relative: float | int
    if total > 0:
        if user.quota is not None and user.quota > 0 and total > user.quota:
            total = user.quota
        relative = php_round(used / total * 10000) / 100
    else:
        relative = 0
    return {"free": free, "used": used, "total": total, "relative": relative}


def quota_definition(user: User) -> str:
    """User::getQuota() guessed from User.quota: 'default' when none is set, else the
    humanFileSize form setQuota stores ('5 GB'). Pass the stored value when it is known: an
    explicit 'none' or a quota inherited from default_quota cannot be told apart here."""
    return "default" if user.quota is None else human_file_size(user.quota)


def cloud_users_id(
    user: User,
    quota: Quota,
    *,
    home: str = "",
    last_login: int = 0,
    creation_time: int = 0,
    two_factor_enabled: bool = False,
    viewer_is_admin: bool = False,
    definition: str | None = None,
) -> dict[str, Any]:
    """Provisioning API GET cloud/users/{uid}, data for a permitted viewer.

    Keys in order: [enabled] (only when the viewer is an admin or the user's subadmin — also
    when looking at themselves), quota {free, used, total, relative, definition}, email,
    displayname, home, two_factor_auth_enabled, last_login (since 10.8), creation_time (since
    10.12), language (since 10.11). enabled and two_factor_auth_enabled are the strings
    'true'/'false', as PHP sends them.

    Pass `home` (oc_accounts.home, the oC10 path; oC10 never sends it empty), `last_login` and
    `creation_time` (oc_accounts; 0 = never / created before 10.12) when known: User lacks them."""
    data: dict[str, Any] = {}
    if viewer_is_admin:
        data["enabled"] = "true" if user.enabled else "false"
    data["quota"] = storage_info(user, quota)
    data["quota"]["definition"] = quota_definition(user) if definition is None else definition
    data["email"] = user.email
    data["displayname"] = user.display_name
    data["home"] = home
    data["two_factor_auth_enabled"] = "true" if two_factor_enabled else "false"
    data["last_login"] = last_login
    data["creation_time"] = creation_time
    data["language"] = user.language
    return data
