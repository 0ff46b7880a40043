"""newstack/ocs/users.py: cloud/user and cloud/users/{uid} against the captures."""

import defusedxml.ElementTree as DET
import pytest

from newstack.backend import Quota, User
from newstack.ocs.envelope import render_ocs
from newstack.ocs.users import cloud_user, cloud_users_id, quota_definition, storage_info
from tests.newstack.ocs.golden import sample, xml_to_php

PHIL = User(uid="phil", display_name="Phil Ji", email="")
UNLIMITED = -3


def _without(data: dict[str, object], *keys: str) -> dict[str, object]:
    return {key: value for key, value in data.items() if key not in keys}


def test_cloud_user_xml_matches_the_real_capture() -> None:
    """A: GET /ocs/v1.php/cloud/user of a ~10.6 git checkout, before `language` (10.11)."""
    expected = sample("ocs-v1-cloud-user-xml-core-docs2784-2020.xml")
    data = cloud_user(PHIL)
    assert list(data) == ["id", "display-name", "email", "language"]
    status, headers, body = render_ocs(_without(data, "language"), version=1, fmt="xml")
    assert (status, body) == (200, expected)
    assert headers == [("Content-Type", "application/xml; charset=utf-8")]
    _, _, body = render_ocs(data, version=1, fmt="xml")
    assert body == expected.replace(
        b"  <email></email>\n", b"  <email></email>\n  <language>en</language>\n"
    )


def test_cloud_user_v2_json_matches_the_ios_capture() -> None:
    """B: compact json_encode form, statuscode 200 on v2, email null."""
    expected = sample("ocs-v2-cloud-user-json-iossdk.json")
    demo = User(uid="demo", display_name="demo", email=None, language="de")
    data = cloud_user(demo)
    assert render_ocs(_without(data, "language"), version=2, fmt="json") == (
        200, [("Content-Type", "application/json; charset=utf-8")], expected,
    )
    _, _, body = render_ocs(data, version=2, fmt="json")
    assert body.endswith(b'"email":null,"language":"de"}}}')


def test_cloud_user_escaping() -> None:
    user = User(uid="a/b", display_name="Zoë <admin> 🐘", email="z@x.org", language="fr")
    _, _, body = render_ocs(cloud_user(user), version=1, fmt="json")
    assert body.endswith(
        b'"data":{"id":"a\\/b","display-name":"Zo\\u00eb \\u003Cadmin\\u003E \\ud83d\\udc18",'
        b'"email":"z@x.org","language":"fr"}}}'
    )
    _, _, body = render_ocs(cloud_user(user), version=1, fmt="xml")
    assert "<display-name>Zoë &lt;admin&gt; 🐘</display-name>".encode() in body


CLOUD_USERS = "ocs-v1-cloud-users-USER-xml-core-docs2784-2020.xml"
NEWER_FIELDS = ("last_login", "creation_time", "language")


def test_cloud_users_id_xml_matches_the_capture() -> None:
    """B (real curl output, home path anonymised): legacy route, <message/>, no paging fields.
    The fields added after it (last_login 10.8, language 10.11, creation_time 10.12) follow."""
    expected = sample(CLOUD_USERS)
    data = cloud_users_id(
        PHIL, Quota(used=0, available=107902296064), home="/path/to/owncloud/data/phil",
        last_login=1600243200, creation_time=1600000000,
    )
    assert list(data)[-3:] == list(NEWER_FIELDS)
    status, headers, body = render_ocs(
        _without(data, *NEWER_FIELDS), version=1, fmt="xml", legacy=True
    )
    assert (status, body) == (200, expected)
    assert headers == [("Content-Type", "text/xml; charset=UTF-8")]
    assert list(xml_to_php(expected)["ocs"]["data"]) == list(_without(data, *NEWER_FIELDS))
    _, _, body = render_ocs(data, version=1, fmt="xml", legacy=True)
    assert body.endswith(
        b"  <two_factor_auth_enabled>false</two_factor_auth_enabled>\n"
        b"  <last_login>1600243200</last_login>\n  <creation_time>1600000000</creation_time>\n"
        b"  <language>en</language>\n </data>\n</ocs>\n"
    )
    assert DET.fromstring(body).findtext("data/quota/definition") == "default"


def test_cloud_users_id_json_types() -> None:
    data = cloud_users_id(
        User(uid="u", display_name="U", email=None, quota=10 * 1024**3),
        Quota(used=1024**3, available=9 * 1024**3),
        home="/var/www/owncloud/data/u", last_login=0, creation_time=1700000000,
        two_factor_enabled=True, viewer_is_admin=True,
    )
    _, _, body = render_ocs(data, version=2, fmt="json", legacy=True)
    assert body == (
        b'{"ocs":{"meta":{"status":"ok","statuscode":200,"message":null},"data":{'
        b'"enabled":"true","quota":{"free":9663676416,"used":1073741824,"total":10737418240,'
        b'"relative":10,"definition":"10 GB"},"email":null,"displayname":"U",'
        b'"home":"\\/var\\/www\\/owncloud\\/data\\/u","two_factor_auth_enabled":"true",'
        b'"last_login":0,"creation_time":1700000000,"language":"en"}}}'
    )


@pytest.mark.parametrize(
    ("user_quota", "used", "available", "expected"),
    [
        (None, 0, 107902296064, {"free": 107902296064, "used": 0, "total": 107902296064,
                                  "relative": 0.0}),
        (None, 5, UNLIMITED, {"free": -3, "used": 5, "total": -3, "relative": 0}),
        (None, 5, -2, {"free": -2, "used": 5, "total": -2, "relative": 0}),
        (None, -1, 10, {"free": 10, "used": 0, "total": 10, "relative": 0.0}),
        (1000, 1, 2, {"free": 2, "used": 1, "total": 3, "relative": 33.33}),
        (1000, 2, 1, {"free": 1, "used": 2, "total": 3, "relative": 66.67}),
        # free space of the disk above the quota: total is capped to the quota
        (100, 50, 10_000, {"free": 10_000, "used": 50, "total": 100, "relative": 50.0}),
        (1000, 0, 0, {"free": 0, "used": 0, "total": 0, "relative": 0}),
        (3000, 1, 2999, {"free": 2999, "used": 1, "total": 3000, "relative": 0.03}),
    ],
)
def test_storage_info(
    user_quota: int | None, used: int, available: int, expected: dict[str, object]
) -> None:
    user = User(uid="u", display_name="u", email=None, quota=user_quota)
    info = storage_info(user, Quota(used=used, available=available))
    assert info == expected
    assert [type(v) for v in info.values()] == [type(v) for v in expected.values()]


def test_relative_renders_like_php_floats() -> None:
    user = User(uid="u", display_name="u", email=None)
    data = {"quota": storage_info(user, Quota(used=1, available=2))}
    assert render_ocs(data, version=1, fmt="json")[2].endswith(b'"relative":33.33}}}}')
    assert b"<relative>33.33</relative>" in render_ocs(data, version=1, fmt="xml")[2]
    data = {"quota": storage_info(user, Quota(used=0, available=5))}
    assert render_ocs(data, version=1, fmt="json")[2].endswith(b'"relative":0}}}}')


@pytest.mark.parametrize(
    ("quota", "definition"),
    [(None, "default"), (5 * 1024**3, "5 GB"), (1536 * 1024**2, "1.5 GB"), (0, "0 B")],
)
def test_quota_definition(quota: int | None, definition: str) -> None:
    user = User(uid="u", display_name="u", email=None, quota=quota)
    assert quota_definition(user) == definition
    data = cloud_users_id(
        user, Quota(0, UNLIMITED), home="/h", last_login=0, creation_time=0, definition="none"
    )
    assert data["quota"]["definition"] == "none"


def test_enabled_only_for_admin_viewers() -> None:
    disabled = User(uid="u", display_name="u", email=None, enabled=False)
    quota = Quota(0, UNLIMITED)
    own = cloud_users_id(disabled, quota, home="/h", last_login=0, creation_time=0)
    assert "enabled" not in own
    data = cloud_users_id(
        disabled, quota, home="/h", last_login=0, creation_time=0, viewer_is_admin=True
    )
    assert list(data)[:2] == ["enabled", "quota"]
    assert data["enabled"] == "false"


def test_cloud_users_id_defaults_for_what_user_lacks() -> None:
    data = cloud_users_id(PHIL, Quota(used=0, available=UNLIMITED))
    assert (data["home"], data["last_login"], data["creation_time"]) == ("", 0, 0)
