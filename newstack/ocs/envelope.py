"""The OCS envelope (`{"ocs":{"meta":…,"data":…}}` / `<ocs>…</ocs>`) as ownCloud 10.16 renders it:
(data, code, version, format, route kind) -> (HTTP status, headers, body). Neighbours: php.py
writes the bytes; the HTTP layer (newstack/app.py) picks route kind and format. Source: core
v10.16.4 lib/private/legacy/api.php, OCS/Result.php, AppFramework/OCSController.php, ocs/v1.php.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Literal

from newstack.ocs.php import json_encode, xml_document

Format = Literal["xml", "json"]
#: 1 for /ocs/v1.php, 2 for /ocs/v2.php (the functions take a plain int and check it)
OcsVersion = Literal[1, 2]
Headers = list[tuple[str, str]]

#: \OCP\API::RESPOND_* codes
UNAUTHORISED = 997
NOT_FOUND = 998
SERVER_ERROR = 996
UNKNOWN_ERROR = 999

XML_CONTENT_TYPE = "application/xml; charset=utf-8"
LEGACY_XML_CONTENT_TYPE = "text/xml; charset=UTF-8"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

#: OC_API::notFound(), for a path under /ocs/v{1,2}.php that no route matches
UNKNOWN_ENDPOINT_MESSAGE = (
    "Invalid query, please check the syntax. API specifications are here:"
    " http://www.freedesktop.org/wiki/Specifications/open-collaboration-services."
    " DEBUG OUTPUT:\n"
)


class _Default(Enum):
    """Marks an argument whose default depends on `legacy`."""

    VALUE = 0


DEFAULT = _Default.VALUE


def choose_format(query: Mapping[str, str | list[str]]) -> Format:
    """`?format=json` gives JSON; anything else, or nothing, XML (OC_API::requestedFormat).

    Accepts a plain dict or parse_qs() output (the last value wins, as in PHP's $_GET)."""
    value = query.get("format")
    if isinstance(value, list):
        value = value[-1] if value else None
    return "json" if value == "json" else "xml"


def map_status_code(statuscode: int) -> int | None:
    """OC_API::mapStatusCodes: the v2 HTTP status for an OCS code; None for 997 (kept as is)."""
    if statuscode == UNAUTHORISED:
        return None
    mapped = {100: 200, 104: 403, NOT_FOUND: 404, SERVER_ERROR: 500, UNKNOWN_ERROR: 500}
    if statuscode in mapped:
        return mapped[statuscode]
    if 200 <= statuscode < 600:
        return statuscode
    return 400


def _normalise_data(data: object) -> object:
    """OC\\OCS\\Result's constructor: null -> [], and (a PHP bug) any scalar -> [null]."""
    if data is None:
        return []
    if isinstance(data, Mapping | list | tuple):
        return data
    return [None]


def render_ocs(
    data: object,
    *,
    version: int,
    fmt: Format,
    statuscode: int = 100,
    message: str | None | _Default = DEFAULT,
    totalitems: str | int | None | _Default = DEFAULT,
    itemsperpage: str | int | None | _Default = DEFAULT,
    legacy: bool = False,
    xhr: bool = False,
) -> tuple[int, Headers, bytes]:
    """Render one OCS response as ownCloud 10.16 does.

    `statuscode` is the OCS code the handler produced (100 = success, v1 numbering); on v2 it is
    mapped (100 -> 200, 996/999 -> 500, 998 -> 404, 104 -> 403, other 2xx/4xx/5xx kept, else
    400) and used for both meta.statuscode and the HTTP status. 997 is never mapped: meta says
    997 and HTTP says 401 on v1 and v2. Otherwise v1 answers HTTP 200.

    AppFramework routes (legacy=False): message defaults to "OK", totalitems/itemsperpage to ""
    (always present), XML is `application/xml; charset=utf-8`, and 997 carries no
    WWW-Authenticate. Legacy routes (legacy=True): message, totalitems and itemsperpage default
    to None (message null, the other two absent), XML is `text/xml; charset=UTF-8`, and 997 adds
    `WWW-Authenticate: Basic realm="Authorisation Required"` (`DummyBasic` when `xhr`, i.e. the
    request had `X-Requested-With: XMLHttpRequest`). None for totalitems/itemsperpage omits them.
    """
    if version not in (1, 2):
        raise ValueError(f"OCS version must be 1 or 2, not {version!r}")
    if message is DEFAULT:
        message = None if legacy else "OK"
    if totalitems is DEFAULT:
        totalitems = None if legacy else ""
    if itemsperpage is DEFAULT:
        itemsperpage = None if legacy else ""

    headers: Headers = []
    http_status = 200
    ok = statuscode == 100
    meta_code = statuscode
    if statuscode == UNAUTHORISED:
        http_status = 401
        if legacy:
            scheme = "DummyBasic" if xhr else "Basic"
            headers.append(("WWW-Authenticate", f'{scheme} realm="Authorisation Required"'))
    if version == 2:
        mapped = map_status_code(statuscode)
        if mapped is not None:
            http_status = meta_code = mapped
            if not legacy:
                # OCSResponse::render: status 'ok' follows the mapped code on v2; legacy
                # routes computed meta from the unmapped code (so only 100 is 'ok').
                ok = mapped == 200

    meta: dict[str, object] = {
        "status": "ok" if ok else "failure",
        "statuscode": meta_code,
        "message": message,
    }
    if totalitems is not None:
        meta["totalitems"] = totalitems
    if itemsperpage is not None:
        meta["itemsperpage"] = itemsperpage
    document = {"ocs": {"meta": meta, "data": _normalise_data(data)}}

    if fmt == "json":
        headers.append(("Content-Type", JSON_CONTENT_TYPE))
        body = json_encode(document, hex_tag=True).encode("ascii")
    else:
        headers.append(("Content-Type", LEGACY_XML_CONTENT_TYPE if legacy else XML_CONTENT_TYPE))
        body = xml_document(document)
    return http_status, headers, body


def ocs_error(
    statuscode: int,
    message: str | None,
    version: int,
    fmt: Format,
    *,
    legacy: bool = False,
    xhr: bool = False,
) -> tuple[int, Headers, bytes]:
    """A failure with empty data (`[]` / `<data/>`), e.g. ocs_error(404, "Wrong share ID, share
    doesn't exist", 1, "xml")."""
    return render_ocs(
        None, version=version, fmt=fmt, statuscode=statuscode, message=message,
        legacy=legacy, xhr=xhr,
    )


def ocs_unauthorised(
    version: int, fmt: Format, *, legacy: bool = False, xhr: bool = False
) -> tuple[int, Headers, bytes]:
    """997 "Unauthorised", HTTP 401: what a request without valid credentials gets.

    AppFramework routes (capabilities, cloud/user, sharing): SecurityMiddleware's
    NotLoggedInException answer, meta with totalitems/itemsperpage "" and no WWW-Authenticate.
    Legacy routes: OC_API::call's answer, with WWW-Authenticate and no totalitems/itemsperpage."""
    return ocs_error(UNAUTHORISED, "Unauthorised", version, fmt, legacy=legacy, xhr=xhr)


def ocs_maintenance(version: int, fmt: Format) -> tuple[int, Headers, bytes]:
    """ocs/v{1,2}.php in maintenance mode or while an upgrade is pending: HTTP 503 on both
    versions (set before OC_API::respond), statuscode 503 "Service unavailable", legacy form."""
    _, headers, body = render_ocs(
        None, version=version, fmt=fmt, statuscode=503, message="Service unavailable",
        legacy=True,
    )
    return 503, headers, body


def ocs_unknown_endpoint(version: int, fmt: Format) -> tuple[int, Headers, bytes]:
    """No route matched: OC_API::notFound(), code 999 (v1 HTTP 200, v2 HTTP 500)."""
    return render_ocs(
        None, version=version, fmt=fmt, statuscode=UNKNOWN_ERROR,
        message=UNKNOWN_ENDPOINT_MESSAGE, legacy=True,
    )
