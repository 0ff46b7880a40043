"""GET /status.php as ownCloud 10.16 answers it, and the status object capabilities embed.

Sources (owncloud/core v10.16.4): status.php, lib/public/Util.php getStatusInfo(). Shape checked
against the real captures in shared/legacy-oc10/samples (status-php-10.14.0-greenbone.json).
"""

from __future__ import annotations

from newstack.ocs.php import json_encode

#: status.php sets exactly these two; the web server and PHP add the usual rest
STATUS_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "application/json"),
    ("Access-Control-Allow-Origin", "*"),
)


def status_info(
    *,
    version: str = "10.16.4.0",
    versionstring: str = "10.16.4",
    edition: str = "Community",
    product: str = "ownCloud",
    maintenance: bool = False,
    needs_db_upgrade: bool = False,
    version_hide: bool = False,
    hostname: str | None = None,
) -> dict[str, object]:
    """Util::getStatusInfo(): key order installed, maintenance, needsDbUpgrade, version,
    versionstring, edition, productname, product[, hostname].

    `version` is the 4-part version of the instance being imitated (release builds carry their own
    fourth number, e.g. 10.14.0.3). `version_hide` (config `version.hide`) blanks the five version
    fields and suppresses `hostname`; `hostname` is appended only when given (status.php: config
    `show_server_hostname`, cut at the first '.' with `use_relative_domain_name`; capabilities:
    always, the full gethostname())."""
    info: dict[str, object] = {
        "installed": True,
        "maintenance": maintenance,
        "needsDbUpgrade": needs_db_upgrade,
        "version": "",
        "versionstring": "",
        "edition": "",
        "productname": "",
        "product": "",
    }
    if not version_hide:
        info.update(
            version=version,
            versionstring=versionstring,
            edition=edition,
            productname=product,
            product=product,
        )
        if hostname is not None:
            info["hostname"] = hostname
    return info


def status_json(
    version: str = "10.16.4.0",
    versionstring: str = "10.16.4",
    edition: str = "Community",
    product: str = "ownCloud",
    maintenance: bool = False,
    needs_db_upgrade: bool = False,
    version_hide: bool = False,
    hostname: str | None = None,
) -> bytes:
    """The body of GET /status.php: one line of plain json_encode (no JSON_HEX_TAG), no newline."""
    info = status_info(
        version=version,
        versionstring=versionstring,
        edition=edition,
        product=product,
        maintenance=maintenance,
        needs_db_upgrade=needs_db_upgrade,
        version_hide=version_hide,
        hostname=hostname,
    )
    return json_encode(info).encode("ascii")


def status_headers() -> list[tuple[str, str]]:
    """Headers status.php sets itself (no charset on the content type)."""
    return list(STATUS_HEADERS)
