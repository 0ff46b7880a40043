"""newstack/ocs/capabilities.py against the real captures (10.1.0, 10.4.1) and the 10.16.4
acceptance-test assertions."""

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from newstack.ocs.capabilities import (
    NOTIFICATIONS_CAPABILITIES,
    CapabilitySettings,
    capabilities,
    settings_from_oc10,
)
from newstack.ocs.envelope import render_ocs
from newstack.ocs.php import json_encode
from tests.newstack.ocs.golden import json_sample, sample

Path = tuple[str, ...]

CAPTURE_10_4_1 = "capabilities-v1-json-10.4.1-enterprise-RECONSTRUCTED-clientlog.json"
CAPTURE_10_1_0 = "capabilities-v1-json-10.1.0-iossdk.json"
ASSERTED = "capabilities-defaults-ASSERTED-core-acceptance-v10.16.4.json"

WITH_NOTIFICATIONS = (("notifications", NOTIFICATIONS_CAPABILITIES),)

#: the public demo server of the 10.4.1 capture (Enterprise, pollinterval 60, container name)
DEMO_10_4_1 = CapabilitySettings(
    hostname="owncloud", version="10.4.1.3", versionstring="10.4.1", edition="Enterprise",
    pollinterval=60, extra_apps=WITH_NOTIFICATIONS,
)
DEMO_10_1_0 = CapabilitySettings(
    hostname="owncloud", version="10.1.0.4", versionstring="10.1.0", pollinterval=60,
    extra_apps=WITH_NOTIFICATIONS,
)

CAPS = ("capabilities",)
SHARING = (*CAPS, "files_sharing")

#: keys 10.16.4 sends that 10.4.1 did not (each checked against core's git history)
ADDED_SINCE_10_4_1: set[Path] = {
    ("version", "product"),
    (*CAPS, "core", "status", "product"),
    (*CAPS, "core", "support-url-signing"),
    (*CAPS, "files", "app_providers"),
    (*CAPS, "files", "blacklisted_files_regex"),
    (*CAPS, "files", "favorites"),
    (*CAPS, "files", "file_locking_support"),
    (*CAPS, "files", "file_locking_enable_file_action"),
    (*CAPS, "dav", "propfind"),
    (*SHARING, "public", "can_create_public_link"),
    (*SHARING, "user", "profile_picture"),
    (*SHARING, "remote"),
}
ADDED_SINCE_10_1_0: set[Path] = ADDED_SINCE_10_4_1 | {
    (*CAPS, "files", "privateLinksDetailsParam"),
    (*CAPS, "dav", "trashbin"),
    (*SHARING, "public", "password", "enforced_for", "read_write_delete"),
    (*SHARING, "public", "roles_api"),
    (*SHARING, "user", "expire_date"),
    (*SHARING, "group"),
    (*SHARING, "providers_capabilities"),
}
#: values that changed: federated shares store an expiration since 10.5-ish
CHANGED_SINCE_10_4_1: dict[Path, tuple[object, object]] = {
    (*SHARING, "providers_capabilities", "ocFederatedSharing", "remote"): ([], ["shareExpiration"]),
}
#: core's CoreCapabilities opens `files` (app_providers) before the files app adds `checksums`
ORDER_10_16 = ["core", "files", "checksums", "dav", "files_sharing", "notifications"]


def _walk(ours: Any, theirs: Any, path: Path, changed: dict[Path, tuple[object, object]],
          added: set[Path]) -> None:
    if path in changed:
        assert (theirs, ours) == changed[path], path
        return
    assert type(ours) is type(theirs), path
    if isinstance(theirs, dict):
        order = ORDER_10_16 if path == CAPS else list(theirs)
        assert [key for key in ours if key in theirs] == order, path
        added.update((*path, key) for key in ours if key not in theirs)
        for key, value in theirs.items():
            _walk(ours[key], value, (*path, key), changed, added)
    else:
        assert ours == theirs, path


@pytest.mark.parametrize(
    ("capture", "settings", "expected_added", "changed"),
    [
        (CAPTURE_10_4_1, DEMO_10_4_1, ADDED_SINCE_10_4_1, CHANGED_SINCE_10_4_1),
        (CAPTURE_10_1_0, DEMO_10_1_0, ADDED_SINCE_10_1_0, {}),
    ],
)
def test_real_captures_keys_order_types_values(
    capture: str, settings: CapabilitySettings, expected_added: set[Path],
    changed: dict[Path, tuple[object, object]],
) -> None:
    """Every key of the real response is there, in its order, with its type and value;
    what 10.16 adds is exactly the documented list."""
    theirs = json_sample(capture)["ocs"]["data"]
    ours = json.loads(json_encode(capabilities(settings)))
    added: set[Path] = set()
    _walk(ours, theirs, (), changed, added)
    assert added == expected_added


def _object_text(raw: str, key: str) -> str:
    """The exact `"key":{…}` / `"key":[…]` text in a compact JSON document (balanced brackets)."""
    match = re.search(f'"{re.escape(key)}":[{{\\[]', raw)
    assert match, key
    start = match.start()
    depth = 0
    for index in range(start + len(key) + 3, len(raw)):
        depth += {"{": 1, "[": 1, "}": -1, "]": -1}.get(raw[index], 0)
        if depth == 0:
            return raw[start : index + 1]
    raise AssertionError(key)


@pytest.mark.parametrize(
    "path",
    [
        (*CAPS, "checksums"),
        (*SHARING, "public", "password"),
        (*SHARING, "user_enumeration"),
        (*SHARING, "group"),
        (*SHARING, "federation"),
        (*SHARING, "providers_capabilities", "ocinternal"),
        (*CAPS, "notifications"),
        (*CAPS, "files", "blacklisted_files"),
        (*CAPS, "dav", "reports"),
    ],
)
def test_stable_parts_are_byte_identical_to_the_10_4_1_capture(path: Path) -> None:
    raw = sample(CAPTURE_10_4_1).decode()
    ours: Any = capabilities(DEMO_10_4_1)
    for key in path:
        ours = ours[key]
    expected = _object_text(raw, path[-1])
    assert f'"{path[-1]}":{json_encode(ours, hex_tag=True)}' == expected


def test_core_status_bytes_match_the_capture_but_for_product() -> None:
    raw = sample(CAPTURE_10_4_1).decode()
    ours = capabilities(DEMO_10_4_1)["capabilities"]["core"]["status"]
    text = json_encode(ours, hex_tag=True).replace(',"product":"ownCloud"', "")
    assert f'"status":{text}' == _object_text(raw, "status")
    assert '"webdav-root":"remote.php\\/webdav"' in json_encode(capabilities(DEMO_10_4_1))


def test_v1_json_envelope_prefix_matches_the_capture() -> None:
    raw = sample(CAPTURE_10_4_1)
    status, headers, body = render_ocs(capabilities(DEMO_10_4_1), version=1, fmt="json")
    assert (status, headers) == (200, [("Content-Type", "application/json; charset=utf-8")])
    prefix = raw[: raw.index(b'"capabilities"')]
    assert body.startswith(prefix.replace(b'"Enterprise"}', b'"Enterprise","product":"ownCloud"}'))


# --- the 10.16.4 acceptance-test assertions (JSON-schema subset) --------------------------------


def _validate(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    kinds = {"object": dict, "string": str, "array": list, "boolean": bool}
    kind = schema.get("type")
    if kind in kinds and not isinstance(value, kinds[kind]):
        errors.append(f"{path}: not {kind}")
        return
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        errors.append(f"{path}: not integer")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        errors.append(f"{path}: not number")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']!r}")
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{path}.{key}: missing")
    for key in schema.get("not required", []):
        if key in value:
            errors.append(f"{path}.{key}: present")
    for key, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and key in value:
            _validate(sub, value[key], f"{path}.{key}", errors)
    if "items" in schema:
        for index, item in enumerate(value):
            _validate(schema["items"], item, f"{path}[{index}]", errors)
    if "contains" in schema:
        if not any(not _errors(schema["contains"], item) for item in value):
            errors.append(f"{path}: contains nothing matching {schema['contains']!r}")


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    errors: list[str] = []
    _validate(schema, value, "", errors)
    return errors


def _scenarios(settings: CapabilitySettings) -> list[tuple[str, dict[str, Any]]]:
    text = json.dumps(json.loads(sample(ASSERTED))["scenarios"])
    for placeholder, value in {
        "%version%": settings.version,
        "%versionstring%": settings.versionstring,
        "%edition%": settings.edition,
        "%productname%": settings.product,
    }.items():
        text = text.replace(placeholder, value)
    assert not re.search(r"%\w+%", text)
    scenarios = json.loads(text)
    return [(name, schema) for name, s in scenarios.items() for schema in s["schemas"]]


#: tests/acceptance/features/bootstrap/Sharing.php resets these to 'no' before every run, so the
#: suite's "defaults" differ from a fresh install here (both real captures say true)
TEST_HARNESS = CapabilitySettings(
    hostname="localhost", share_with_group_members_only=False,
    share_with_membership_groups_only=False,
)


def test_acceptance_assertions_hold_under_the_test_harness_settings() -> None:
    base = TEST_HARNESS
    checked = 0
    for name, schema in _scenarios(base):
        settings = replace(base, dav_enable_async="async operations are enabled" in name)
        assert _errors(schema, capabilities(settings)) == [], name
        checked += 1
    assert checked == 13


def test_stock_defaults_differ_from_the_assertions_only_in_the_harness_settings() -> None:
    settings = CapabilitySettings(hostname="localhost")
    errors = [
        error
        for name, schema in _scenarios(settings)
        if "async operations are enabled" not in name
        for error in _errors(schema, capabilities(settings))
    ]
    assert errors == [
        ".capabilities.files_sharing.share_with_group_members_only: True not in [False]",
        ".capabilities.files_sharing.share_with_membership_groups_only: True not in [False]",
    ]


def test_the_validator_can_fail() -> None:
    broken = capabilities(replace(CapabilitySettings(hostname="h"), pollinterval=60))
    (name, schema), *_ = _scenarios(CapabilitySettings(hostname="h"))
    assert ".capabilities.core.pollinterval: 60 not in [30000]" in _errors(schema, broken)


# --- facts the clients depend on ---------------------------------------------------------------


def test_what_clients_read() -> None:
    data = capabilities(CapabilitySettings(hostname="web1.example.com"))
    caps = data["capabilities"]
    assert data["version"] == {
        "major": 10, "minor": 16, "micro": 4, "string": "10.16.4",
        "edition": "Community", "product": "ownCloud",
    }
    assert list(caps) == ["core", "files", "checksums", "dav", "files_sharing"]
    assert caps["core"]["pollinterval"] == 30000
    assert caps["core"]["webdav-root"] == "remote.php/webdav"
    assert caps["core"]["status"]["hostname"] == "web1.example.com"
    assert caps["checksums"] == {"supportedTypes": ["SHA1"], "preferredUploadType": "SHA1"}
    assert caps["dav"] == {
        "chunking": "1.0", "reports": ["search-files"], "propfind": {"depth_infinity": False},
        "trashbin": "1.0",
    }
    assert caps["files"]["undelete"] is True
    assert caps["files"]["versioning"] is True
    assert caps["files"]["bigfilechunking"] is True
    assert caps["files"]["blacklisted_files"] == [".htaccess"]
    assert list(caps["files"]) == [
        "app_providers", "privateLinks", "privateLinksDetailsParam", "bigfilechunking",
        "blacklisted_files", "blacklisted_files_regex", "favorites", "file_locking_support",
        "file_locking_enable_file_action", "undelete", "versioning",
    ]
    body = json_encode(data)
    for absent in ("tus", "spaces", "space_migration", "productversion", "async"):
        assert f'"{absent}' not in body


def test_status_inside_capabilities_always_has_versions_and_hostname() -> None:
    status = capabilities(CapabilitySettings(hostname="web1.example.com"))["capabilities"]["core"][
        "status"
    ]
    assert list(status) == [
        "installed", "maintenance", "needsDbUpgrade", "version", "versionstring", "edition",
        "productname", "product", "hostname",
    ]
    assert status["version"] == "10.16.4.0"


@pytest.mark.parametrize(
    ("webroot", "pretty", "apps_url"),
    [
        ("", False, "/index.php/app/list"),
        ("/owncloud", False, "/owncloud/index.php/app/list"),
        ("/owncloud/", True, "/owncloud/app/list"),
        ("", True, "/app/list"),
    ],
)
def test_app_provider_urls(webroot: str, pretty: bool, apps_url: str) -> None:
    settings = CapabilitySettings(hostname="h", webroot=webroot, front_controller_active=pretty)
    (provider,) = capabilities(settings)["capabilities"]["files"]["app_providers"]
    assert provider["apps_url"] == apps_url
    assert provider["new_url"] == apps_url.replace("/list", "/new")
    assert provider["open_web_url"] == apps_url.replace("/list", "/open-with-web")


def test_async_goes_after_dav() -> None:
    caps = capabilities(CapabilitySettings(hostname="h", dav_enable_async=True))["capabilities"]
    assert list(caps) == ["core", "files", "checksums", "dav", "async", "files_sharing"]
    assert caps["async"] == "1.0"
    assert list(caps["dav"])[-1] == "trashbin"


def test_extra_apps_load_in_app_id_order() -> None:
    settings = CapabilitySettings(
        hostname="h",
        extra_apps=(("zzz", {"zzz": {"a": 1}}), ("activity", {"activity": {"x": True}}),
                    ("richdocuments", {"files": {"x": 1}})),
    )
    caps = capabilities(settings)["capabilities"]
    assert list(caps) == ["core", "files", "checksums", "activity", "dav", "files_sharing", "zzz"]
    assert list(caps["files"])[-3:] == ["undelete", "versioning", "x"]


def test_apps_can_be_missing() -> None:
    settings = CapabilitySettings(
        hostname="h", trashbin_app=False, versions_app=False, federated_sharing_app=False
    )
    caps = capabilities(settings)["capabilities"]
    assert "undelete" not in caps["files"] and "versioning" not in caps["files"]
    assert list(caps["files_sharing"]["providers_capabilities"]) == ["ocinternal"]


def test_expire_dates_when_enabled_send_days_as_strings() -> None:
    settings = CapabilitySettings(
        hostname="h", public_expire_date_enabled=True, public_expire_date_days="14",
        public_expire_date_enforced=True, remote_expire_date_enabled=True,
        password_enforced_upload_only=True, user_enumeration_enabled=False,
    )
    sharing = capabilities(settings)["capabilities"]["files_sharing"]
    assert sharing["public"]["expire_date"] == {"enabled": True, "days": "14", "enforced": True}
    assert sharing["remote"]["expire_date"] == {"enabled": True, "days": "7", "enforced": False}
    assert sharing["public"]["password"]["enforced"] is True
    assert sharing["user_enumeration"] == {"enabled": False}


def test_sharing_api_disabled() -> None:
    sharing = capabilities(CapabilitySettings(hostname="h", api_enabled=False))["capabilities"][
        "files_sharing"
    ]
    assert sharing == {
        "api_enabled": False,
        "public": {"enabled": False},
        "user": {"send_mail": False, "profile_picture": True},
        "resharing": False,
        "can_share": False,
        "providers_capabilities": False,
        "federation": {"outgoing": True, "incoming": True},
        "search_min_length": 2,
    }


def test_public_links_disabled() -> None:
    public = capabilities(CapabilitySettings(hostname="h", public_enabled=False))[
        "capabilities"
    ]["files_sharing"]["public"]
    assert public == {"enabled": False}


def test_settings_from_an_oc10_instance() -> None:
    empty = settings_from_oc10({}, {}, hostname="h")
    assert empty == CapabilitySettings(hostname="h")
    settings = settings_from_oc10(
        {
            ("core", "shareapi_only_share_with_group_members"): "no",
            ("core", "shareapi_allow_links"): "yes",
            ("core", "shareapi_allow_resharing"): "0",  # anything but 'yes' is false
            ("core", "shareapi_default_expire_date"): "yes",
            ("core", "shareapi_expire_after_n_days"): "30",
            ("core", "shareapi_default_permissions"): "15abc",
            ("files", "enable_lock_file_action"): "yes",
            ("files_sharing", "incoming_server2server_share_enabled"): "no",
        },
        {"pollinterval": 60, "blacklisted_files": [".htaccess", "Thumbs.db"],
         "user.search_min_length": 4},
        hostname="oc1", version="10.11.0.5", versionstring="10.11.0",
    )
    assert settings.share_with_group_members_only is False
    assert settings.resharing is False
    assert settings.public_expire_date_enabled is True
    assert settings.public_expire_date_days == "30"
    assert settings.default_permissions == 15
    assert settings.file_locking_enable_file_action is True
    assert settings.federation_incoming is False
    assert settings.pollinterval == 60
    assert settings.blacklisted_files == (".htaccess", "Thumbs.db")
    assert settings.search_min_length == 4
    assert capabilities(settings)["version"]["minor"] == 11


def test_xml_rendering_of_lists() -> None:
    _, _, body = render_ocs(capabilities(CapabilitySettings(hostname="h")), version=1, fmt="xml")
    assert (
        b"   <checksums>\n    <supportedTypes>\n     <element>SHA1</element>\n"
        b"    </supportedTypes>\n    <preferredUploadType>SHA1</preferredUploadType>\n"
        b"   </checksums>\n"
    ) in body
    assert b"<bigfilechunking>1</bigfilechunking>" in body
    assert b"<file_locking_enable_file_action></file_locking_enable_file_action>" in body
