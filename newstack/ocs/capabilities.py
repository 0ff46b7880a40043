"""The `data` of GET /ocs/v{1,2}.php/cloud/capabilities as a stock ownCloud 10.16 builds it.

CloudController::getCapabilities = {"version": …, "capabilities": …}; the capabilities are the
providers' arrays merged with array_replace_recursive in registration order: core first
(lib/private/OCS/CoreCapabilities.php), then the apps as OC_App::getEnabledApps() loads them —
`files` first, the rest sorted by app id. So in 10.16 `files` (opened by core's app_providers)
comes before `checksums`, unlike the 10.4.1 capture. Every value's source is named below;
paths are owncloud/core v10.16.4. Rendered with envelope.render_ocs (AppFramework route).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from newstack.ocs.status import status_info

#: apps/notifications lib/Capabilities.php: shipped in most tarballs, outside core; pass as
#: CapabilitySettings(extra_apps=(("notifications", NOTIFICATIONS_CAPABILITIES),)) when enabled
NOTIFICATIONS_CAPABILITIES: Mapping[str, object] = {
    "notifications": {"ocs-endpoints": ["list", "get", "delete"]},
}

#: lib/public/Files/FileInfo.php BLACKLIST_FILES_REGEX
BLACKLIST_FILES_REGEX = "\\.(part|filepart)$"


@dataclass(frozen=True, kw_only=True)
class CapabilitySettings:
    """Everything capabilities depend on; defaults are a fresh 10.16.4 install (no appconfig rows
    for these keys, nothing in config.php). Field comments name the config they stand for:
    `config.php key` or `app/appconfig key (default)`; booleans of appconfig are `=== 'yes'`.

    can_share, can_create_public_link and public_link_name depend on the requesting user (group
    exclusions, public-link allowlist, language): set them per request with dataclasses.replace.
    """

    # -- version and identity (version.php, OC_Util::getEditionString, theme name) ------------
    #: PHP gethostname() of the server (core.status.hostname is always sent, never shortened)
    hostname: str
    #: 4-part $OC_Version as installed (release builds may not end in .0)
    version: str = "10.16.4.0"
    versionstring: str = "10.16.4"
    edition: str = "Community"
    product: str = "ownCloud"

    # -- config.php ----------------------------------------------------------------------------
    pollinterval: int = 30000  # `pollinterval` (milliseconds)
    webdav_root: str = "remote.php/webdav"  # `webdav-root`
    blacklisted_files: tuple[str, ...] = (".htaccess",)  # `blacklisted_files`
    dav_propfind_depth_infinity: bool = False  # `dav.propfind.depth_infinity`
    dav_enable_async: bool = False  # `dav.enable.async` -> top-level "async": "1.0"
    search_min_length: int = 2  # `user.search_min_length`
    #: OC::$WEBROOT ('' when served at the domain root) and pretty URLs
    #: (env `front_controller_active`), for files.app_providers URLs
    webroot: str = ""
    front_controller_active: bool = False

    # -- apps/files ----------------------------------------------------------------------------
    file_locking_enable_file_action: bool = False  # files/enable_lock_file_action ('no')

    # -- apps/files_sharing (core/shareapi_* unless said otherwise) -----------------------------
    api_enabled: bool = True  # shareapi_enabled ('yes')
    public_enabled: bool = True  # shareapi_allow_links ('yes')
    password_enforced_read_only: bool = False  # shareapi_enforce_links_password_read_only ('no')
    password_enforced_read_write: bool = False  # shareapi_enforce_links_password_read_write
    password_enforced_upload_only: bool = False  # shareapi_enforce_links_password_write_only
    password_enforced_read_write_delete: bool = False  # …_password_read_write_delete ('no')
    can_create_public_link: bool = True  # public-link sharers allowlist (per user)
    public_expire_date_enabled: bool = False  # shareapi_default_expire_date ('no')
    public_expire_date_days: str = "7"  # shareapi_expire_after_n_days ('7', sent as a string)
    public_expire_date_enforced: bool = False  # shareapi_enforce_expire_date ('no')
    public_send_mail: bool = False  # shareapi_allow_public_notification ('no')
    public_social_share: bool = True  # shareapi_allow_social_share ('yes')
    public_upload: bool = True  # shareapi_allow_public_upload ('yes')
    public_link_name: str = "Public link"  # l10n of 'Public link' in the user's language
    user_send_mail: bool = False  # shareapi_allow_mail_notification ('no')
    user_expire_date_enabled: bool = False  # shareapi_default_expire_date_user_share ('no')
    user_expire_date_days: str = "7"  # shareapi_expire_after_n_days_user_share ('7')
    user_expire_date_enforced: bool = False  # shareapi_enforce_expire_date_user_share ('no')
    group_expire_date_enabled: bool = False  # shareapi_default_expire_date_group_share ('no')
    group_expire_date_days: str = "7"  # shareapi_expire_after_n_days_group_share ('7')
    group_expire_date_enforced: bool = False  # shareapi_enforce_expire_date_group_share ('no')
    remote_expire_date_enabled: bool = False  # shareapi_default_expire_date_remote_share ('no')
    remote_expire_date_days: str = "7"  # shareapi_expire_after_n_days_remote_share ('7')
    remote_expire_date_enforced: bool = False  # shareapi_enforce_expire_date_remote_share
    resharing: bool = True  # shareapi_allow_resharing ('yes')
    group_sharing: bool = True  # shareapi_allow_group_sharing ('yes')
    auto_accept_share: bool = True  # shareapi_auto_accept_share ('yes')
    #: shareapi_only_share_with_group_members: the capability reads it with default 'yes' while
    #: the share manager defaults to 'no', so a stock install *announces* true (as both real
    #: captures show); the acceptance tests assert false only because their setup writes 'no'.
    share_with_group_members_only: bool = True
    share_with_membership_groups_only: bool = True  # …_only_share_with_membership_groups ('yes')
    can_share: bool = True  # not Util::isSharingDisabledForUser() (shareapi_exclude_groups)
    user_enumeration_enabled: bool = True  # shareapi_allow_share_dialog_user_enumeration ('yes')
    #: shareapi_share_dialog_user_enumeration_group_members ('no')
    user_enumeration_group_members_only: bool = False
    default_permissions: int = 31  # (int) shareapi_default_permissions (PERMISSION_ALL)
    federation_outgoing: bool = True  # files_sharing/outgoing_server2server_share_enabled
    federation_incoming: bool = True  # files_sharing/incoming_server2server_share_enabled

    # -- which apps are enabled ------------------------------------------------------------------
    trashbin_app: bool = True  # files_trashbin: files.undelete
    versions_app: bool = True  # files_versions: files.versioning
    federated_sharing_app: bool = True  # federatedfilesharing: providers_capabilities
    #: (app id, that app's getCapabilities()) for apps outside core, e.g. notifications
    extra_apps: tuple[tuple[str, Mapping[str, object]], ...] = field(default=())


def _array_replace_recursive(base: dict[Any, Any], replacement: Mapping[Any, Any]) -> None:
    """PHP array_replace_recursive, in place: new keys go last, existing keys keep their place."""
    for key, value in replacement.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _array_replace_recursive(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged = dict(enumerate(current))
            _array_replace_recursive(merged, dict(enumerate(value)))
            base[key] = list(merged.values())
        else:
            base[key] = _copy(value)


def _copy(value: object) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _core(s: CapabilitySettings) -> dict[str, Any]:
    """lib/private/OCS/CoreCapabilities.php; URLs by Router::generate (core/routes.php)."""
    base = s.webroot.rstrip("/")
    if not s.front_controller_active:
        base += "/index.php"
    return {
        "core": {
            "pollinterval": s.pollinterval,
            "webdav-root": s.webdav_root,
            # Util::getStatusInfo(true): versions always filled, full hostname always present
            "status": status_info(
                version=s.version,
                versionstring=s.versionstring,
                edition=s.edition,
                product=s.product,
                hostname=s.hostname,
            ),
            "support-url-signing": True,
        },
        "files": {
            "app_providers": [
                {
                    "enabled": True,
                    "version": "1.1.0",
                    "apps_url": f"{base}/app/list",
                    "open_web_url": f"{base}/app/open-with-web",
                    "new_url": f"{base}/app/new",
                }
            ]
        },
    }


def _files(s: CapabilitySettings) -> dict[str, Any]:
    """apps/files/lib/Capabilities.php."""
    return {
        "checksums": {"supportedTypes": ["SHA1"], "preferredUploadType": "SHA1"},
        "files": {
            "privateLinks": True,
            "privateLinksDetailsParam": True,
            "bigfilechunking": True,
            "blacklisted_files": list(s.blacklisted_files),
            "blacklisted_files_regex": BLACKLIST_FILES_REGEX,
            "favorites": True,
            "file_locking_support": True,
            "file_locking_enable_file_action": s.file_locking_enable_file_action,
        },
    }


def _dav(s: CapabilitySettings) -> dict[str, Any]:
    """apps/dav/lib/Capabilities.php: no tus, no spaces in ownCloud 10."""
    cap: dict[str, Any] = {
        "dav": {
            "chunking": "1.0",
            "reports": ["search-files"],
            "propfind": {"depth_infinity": s.dav_propfind_depth_infinity},
        }
    }
    if s.dav_enable_async:
        cap["async"] = "1.0"
    cap["dav"]["trashbin"] = "1.0"
    return cap


def _expire_date(enabled: bool, days: str, enforced: bool) -> dict[str, Any]:
    if not enabled:
        return {"enabled": False}
    return {"enabled": True, "days": days, "enforced": enforced}


def _files_sharing(s: CapabilitySettings) -> dict[str, Any]:
    """apps/files_sharing/lib/Capabilities.php; providers from Share20\\Manager
    getProvidersCapabilities (DefaultShareProvider, FederatedShareProvider)."""
    res: dict[str, Any] = {}
    if not s.api_enabled:
        res["api_enabled"] = False
        res["public"] = {"enabled": False}
        res["user"] = {"send_mail": False, "profile_picture": True}
        res["resharing"] = False
        res["can_share"] = False
        res["providers_capabilities"] = False
    else:
        res["api_enabled"] = True
        public: dict[str, Any] = {"enabled": s.public_enabled}
        if s.public_enabled:
            enforced_for = {
                "read_only": s.password_enforced_read_only,
                "read_write": s.password_enforced_read_write,
                "upload_only": s.password_enforced_upload_only,
                "read_write_delete": s.password_enforced_read_write_delete,
            }
            public["password"] = {
                "enforced_for": enforced_for,
                "enforced": any(enforced_for.values()),
            }
            public["roles_api"] = True
            public["can_create_public_link"] = s.can_create_public_link
            public["expire_date"] = _expire_date(
                s.public_expire_date_enabled, s.public_expire_date_days,
                s.public_expire_date_enforced,
            )
            public["send_mail"] = s.public_send_mail
            public["social_share"] = s.public_social_share
            public["upload"] = s.public_upload
            public["multiple"] = True
            public["supports_upload_only"] = True
            public["defaultPublicLinkShareName"] = s.public_link_name
        res["public"] = public
        res["user"] = {
            "send_mail": s.user_send_mail,
            "profile_picture": True,
            "expire_date": _expire_date(
                s.user_expire_date_enabled, s.user_expire_date_days, s.user_expire_date_enforced
            ),
        }
        res["group"] = {
            "expire_date": _expire_date(
                s.group_expire_date_enabled, s.group_expire_date_days,
                s.group_expire_date_enforced,
            )
        }
        res["remote"] = {
            "expire_date": _expire_date(
                s.remote_expire_date_enabled, s.remote_expire_date_days,
                s.remote_expire_date_enforced,
            )
        }
        res["resharing"] = s.resharing
        res["group_sharing"] = s.group_sharing
        res["auto_accept_share"] = s.auto_accept_share
        res["share_with_group_members_only"] = s.share_with_group_members_only
        res["share_with_membership_groups_only"] = s.share_with_membership_groups_only
        res["can_share"] = s.can_share
        enumeration: dict[str, Any] = {"enabled": s.user_enumeration_enabled}
        if s.user_enumeration_enabled:
            enumeration["group_members_only"] = s.user_enumeration_group_members_only
        res["user_enumeration"] = enumeration
        res["default_permissions"] = s.default_permissions
        providers: dict[str, Any] = {
            "ocinternal": {
                "user": ["shareExpiration"],
                "group": ["shareExpiration"],
                "link": ["shareExpiration", "passwordProtected"],
            }
        }
        if s.federated_sharing_app:
            providers["ocFederatedSharing"] = {"remote": ["shareExpiration"]}
        res["providers_capabilities"] = providers
    res["federation"] = {"outgoing": s.federation_outgoing, "incoming": s.federation_incoming}
    res["search_min_length"] = s.search_min_length
    return {"files_sharing": res}


def capabilities(settings: CapabilitySettings) -> dict[str, Any]:
    """CloudController::getCapabilities(): the `data` of the OCS response."""
    major, minor, micro = (int(part) for part in settings.version.split(".")[:3])
    apps: dict[str, Mapping[str, object]] = {
        "dav": _dav(settings),
        "files_sharing": _files_sharing(settings),
    }
    if settings.trashbin_app:
        apps["files_trashbin"] = {"files": {"undelete": True}}
    if settings.versions_app:
        apps["files_versions"] = {"files": {"versioning": True}}
    apps.update(settings.extra_apps)

    merged: dict[str, Any] = {}
    _array_replace_recursive(merged, _core(settings))
    _array_replace_recursive(merged, _files(settings))
    for app_id in sorted(apps):
        _array_replace_recursive(merged, apps[app_id])
    return {
        "version": {
            "major": major,
            "minor": minor,
            "micro": micro,
            "string": settings.versionstring,
            "edition": settings.edition,
            "product": settings.product,
        },
        "capabilities": merged,
    }


# ---------------------------------------------------------------------------------------------
# Reading the settings of a real instance

#: CapabilitySettings field -> (app, appconfig key, PHP default); the field is value === 'yes'
_APPCONFIG_FLAGS: dict[str, tuple[str, str, str]] = {
    "file_locking_enable_file_action": ("files", "enable_lock_file_action", "no"),
    "api_enabled": ("core", "shareapi_enabled", "yes"),
    "public_enabled": ("core", "shareapi_allow_links", "yes"),
    "password_enforced_read_only": ("core", "shareapi_enforce_links_password_read_only", "no"),
    "password_enforced_read_write": ("core", "shareapi_enforce_links_password_read_write", "no"),
    "password_enforced_upload_only": ("core", "shareapi_enforce_links_password_write_only", "no"),
    "password_enforced_read_write_delete": (
        "core", "shareapi_enforce_links_password_read_write_delete", "no",
    ),
    "public_expire_date_enabled": ("core", "shareapi_default_expire_date", "no"),
    "public_expire_date_enforced": ("core", "shareapi_enforce_expire_date", "no"),
    "public_send_mail": ("core", "shareapi_allow_public_notification", "no"),
    "public_social_share": ("core", "shareapi_allow_social_share", "yes"),
    "public_upload": ("core", "shareapi_allow_public_upload", "yes"),
    "user_send_mail": ("core", "shareapi_allow_mail_notification", "no"),
    "user_expire_date_enabled": ("core", "shareapi_default_expire_date_user_share", "no"),
    "user_expire_date_enforced": ("core", "shareapi_enforce_expire_date_user_share", "no"),
    "group_expire_date_enabled": ("core", "shareapi_default_expire_date_group_share", "no"),
    "group_expire_date_enforced": ("core", "shareapi_enforce_expire_date_group_share", "no"),
    "remote_expire_date_enabled": ("core", "shareapi_default_expire_date_remote_share", "no"),
    "remote_expire_date_enforced": ("core", "shareapi_enforce_expire_date_remote_share", "no"),
    "resharing": ("core", "shareapi_allow_resharing", "yes"),
    "group_sharing": ("core", "shareapi_allow_group_sharing", "yes"),
    "auto_accept_share": ("core", "shareapi_auto_accept_share", "yes"),
    "share_with_group_members_only": ("core", "shareapi_only_share_with_group_members", "yes"),
    "share_with_membership_groups_only": (
        "core", "shareapi_only_share_with_membership_groups", "yes",
    ),
    "user_enumeration_enabled": ("core", "shareapi_allow_share_dialog_user_enumeration", "yes"),
    "user_enumeration_group_members_only": (
        "core", "shareapi_share_dialog_user_enumeration_group_members", "no",
    ),
    "federation_outgoing": ("files_sharing", "outgoing_server2server_share_enabled", "yes"),
    "federation_incoming": ("files_sharing", "incoming_server2server_share_enabled", "yes"),
}

#: CapabilitySettings field -> (appconfig key of app core, PHP default); sent as the raw string
_APPCONFIG_STRINGS: dict[str, tuple[str, str]] = {
    "public_expire_date_days": ("shareapi_expire_after_n_days", "7"),
    "user_expire_date_days": ("shareapi_expire_after_n_days_user_share", "7"),
    "group_expire_date_days": ("shareapi_expire_after_n_days_group_share", "7"),
    "remote_expire_date_days": ("shareapi_expire_after_n_days_remote_share", "7"),
}

#: CapabilitySettings field -> config.php key (absent keys keep the field's default)
_SYSTEM_KEYS: dict[str, str] = {
    "pollinterval": "pollinterval",
    "webdav_root": "webdav-root",
    "blacklisted_files": "blacklisted_files",
    "dav_propfind_depth_infinity": "dav.propfind.depth_infinity",
    "dav_enable_async": "dav.enable.async",
    "search_min_length": "user.search_min_length",
}


def _php_int(value: str) -> int:
    """(int) "31" -> 31, "15abc" -> 15, "abc" -> 0."""
    text = value.strip()
    end = 1 if text[:1] in "+-" else 0
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def settings_from_oc10(
    appconfig: Mapping[tuple[str, str], str],
    system: Mapping[str, object],
    **identity: Any,
) -> CapabilitySettings:
    """Settings for an existing instance from its oc_appconfig rows ((appid, configkey) ->
    configvalue) and config.php values; `identity` gives hostname, version, versionstring, … ."""
    values: dict[str, Any] = {}
    for name, (app, key, default) in _APPCONFIG_FLAGS.items():
        values[name] = appconfig.get((app, key), default) == "yes"
    for name, (key, default) in _APPCONFIG_STRINGS.items():
        values[name] = appconfig.get(("core", key), default)
    if ("core", "shareapi_default_permissions") in appconfig:
        values["default_permissions"] = _php_int(appconfig["core", "shareapi_default_permissions"])
    for name, key in _SYSTEM_KEYS.items():
        if key in system:
            raw = system[key]
            values[name] = tuple(raw) if isinstance(raw, list) else raw
    values.update(identity)
    return CapabilitySettings(**values)
