"""newstack/ocs/status.py: GET /status.php against the real captures."""

import json

from newstack.ocs.status import status_headers, status_info, status_json
from tests.newstack.ocs.golden import http_body, sample


def test_default_is_a_fresh_10_16_4() -> None:
    assert status_json() == (
        b'{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"10.16.4.0",'
        b'"versionstring":"10.16.4","edition":"Community","productname":"ownCloud",'
        b'"product":"ownCloud"}'
    )


def test_10_14_capture_byte_for_byte() -> None:
    """A: greenbone's quoted 10.14.0 response (release build 10.14.0.3)."""
    expected = sample("status-php-10.14.0-greenbone.json")
    assert status_json(version="10.14.0.3", versionstring="10.14.0") == expected
    assert not expected.endswith(b"\n")


def test_10_4_1_capture_differs_only_by_the_later_product_key() -> None:
    """B, but byte-exact (length = logged Content-Length 155); `product` arrived in 10.10."""
    body = http_body("status-php-10.4.1-enterprise-with-headers-clientlog.http")
    ours = status_json(version="10.4.1.3", versionstring="10.4.1", edition="Enterprise")
    assert ours.replace(b',"product":"ownCloud"', b"") == body
    assert len(body) == 155


def test_key_order_matches_every_oc10_capture() -> None:
    ours = list(json.loads(status_json()))
    for name in (
        "status-php-10.0.0-git-core-issue27090.json",
        "status-php-10.0.10-cloudnews.json",
        "status-php-10.0.2-string-booleans-greenbone.json",
        "status-php-10.14.0-greenbone.json",
    ):
        theirs = list(json.loads(sample(name)))
        assert ours[: len(theirs)] == theirs, name


def test_headers() -> None:
    assert status_headers() == [
        ("Content-Type", "application/json"),
        ("Access-Control-Allow-Origin", "*"),
    ]
    raw = sample("status-php-10.4.1-enterprise-with-headers-clientlog.http")
    for name, value in status_headers():
        assert f"\n{name}: {value}\n".encode() in raw


def test_flags_and_version_hide() -> None:
    body = json.loads(status_json(maintenance=True, needs_db_upgrade=True))
    assert body["maintenance"] is True and body["needsDbUpgrade"] is True
    assert status_json(version_hide=True, hostname="web1") == (
        b'{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"",'
        b'"versionstring":"","edition":"","productname":"","product":""}'
    )


def test_hostname_is_appended_last_when_shown() -> None:
    assert status_json(hostname="oc.example.com").endswith(
        b'"product":"ownCloud","hostname":"oc.example.com"}'
    )
    assert list(status_info(hostname="h"))[-1] == "hostname"
    assert "hostname" not in status_info()
