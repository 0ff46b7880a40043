"""REPORT on a files collection: ownCloud's oc:filter-files (favorites, system tags) and
oc:search-files (name search), as FilesReportPlugin and FilesSearchReportPlugin answer them
(REFERENCE §6.5).

The body comes from newstack.dav.xml.parse_report, property values from newstack/dav/props.py;
called from newstack/app.py for both files endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from newstack.backend import FilesBackend, Node, NotFoundError
from newstack.dav import errors as dav_errors
from newstack.dav import methods
from newstack.dav import props as dav_props
from newstack.dav import xml as dav_xml
from newstack.dav.errors import DavError, SabreError
from newstack.dav.methods import Target
from newstack.http import Request, Response

#: search-files without an <oc:limit>
DEFAULT_SEARCH_LIMIT: Final = 30
NOT_IMPLEMENTED: Final = SabreError(501, "Sabre\\DAV\\Exception\\NotImplemented")
NONEXISTENT_TAG: Final = SabreError(412, "Sabre\\DAV\\Exception\\PreconditionFailed",
                                    "Cannot filter by nonexistent tag")
# SystemTagManager::getTagsByIds throws a plain PHP exception, which Sabre answers with 500
TAG_ID_NOT_INTEGER: Final = SabreError(500, "InvalidArgumentException",
                                       "Tag id must be integer")
#: libxml's XMLWriter closes an element without children as `/>`, so does Sabre's multistatus
EMPTY_MULTISTATUS: Final = dav_xml.Multistatus.HEAD[:-1] + b"/>\n"
_PHP_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
                          r"[ \t\n\r\v\f]*\Z")


def report(req: Request, target: Target, backend: FilesBackend, host_url: str) -> Response:
    """207 with the matching files and folders, each with the requested properties."""
    request = dav_xml.parse_report(req.read_body())
    folder = backend.stat(target.uid, target.path)
    if not folder.is_dir:
        raise DavError(dav_xml.REPORT_NOT_SUPPORTED)
    if request.name == "filter-files":
        nodes = _filter_files(request, target, backend)
        props = (dav_xml.PropRequest("prop", request.props) if request.props else None)
    else:
        nodes = _search_files(request, target, backend)
        props = dav_xml.PropRequest("prop", request.props) if request.props else \
            dav_xml.ALLPROP
    return _multistatus(target, backend, host_url, nodes, props)


def _filter_files(request: dav_xml.Report, target: Target, backend: FilesBackend
                  ) -> list[Node]:
    """FilesReportPlugin: favorites and/or system tags, intersected, then sliced by
    <oc:search> limit/offset, then kept when inside the REPORT's folder."""
    if not request.systemtags and not request.favorite:
        raise dav_errors.BadRequest("No filter criteria specified")
    if request.pattern is not None:
        raise dav_errors.BadRequest("Search pattern cannot be combined with filter")
    known: dict[int, Node] = {}
    fileids: list[int] = []
    if request.favorite:
        favorites = backend.favorites(target.uid)
        if not favorites:
            return []
        known = {node.fileid: node for node in favorites}
        fileids = list(known)
    if request.systemtags:
        tagged = _tagged(request.systemtags, target, backend)
        fileids = tagged if not fileids else [i for i in tagged if i in known]
    if request.limit is not None or request.offset is not None:
        if request.offset is None:
            # oC10 answers an empty multistatus to a limit without an offset (core issue
            # #33840, asserted by its acceptance tests)
            return []
        fileids = _php_array_slice(fileids, request.offset, request.limit)
    nodes = []
    for fileid in fileids:
        node = known.get(fileid)
        if node is None:
            try:
                node = backend.by_id(target.uid, fileid)
            except NotFoundError:
                continue
        if _inside(node.path, target.path):
            nodes.append(node)
    return nodes


def _tagged(tag_ids: Sequence[str], target: Target, backend: FilesBackend) -> list[int]:
    """Fileids carrying every tag, in the first tag's order (array_intersect)."""
    if not all(_PHP_NUMERIC.match(tag) for tag in tag_ids):
        raise DavError(TAG_ID_NOT_INTEGER)
    result: list[int] | None = None
    for tag in tag_ids:
        try:
            fileids = backend.systemtag_fileids(target.uid, int(float(tag)))
        except NotFoundError:
            raise DavError(NONEXISTENT_TAG) from None
        if not fileids:
            return []
        wanted = set(fileids)
        result = fileids if result is None else [i for i in result if i in wanted]
        if not result:
            return []
    return result or []


def _php_array_slice(items: list[int], offset: int, length: int | None) -> list[int]:
    """PHP's array_slice: a negative offset counts from the end, a negative length stops
    that many before the end, no length runs to the end."""
    count = len(items)
    start = max(count + offset, 0) if offset < 0 else min(offset, count)
    if length is None:
        end = count
    elif length < 0:
        end = max(count + length, start)
    else:
        end = min(start + length, count)
    return items[start:end]


def _inside(path: str, folder: str) -> bool:
    return not folder or path == folder or path.startswith(folder + "/")


def _search_files(request: dav_xml.Report, target: Target, backend: FilesBackend
                  ) -> list[Node]:
    """FilesSearchReportPlugin: only on the user's root; names containing the pattern."""
    if target.path:
        raise DavError(NOT_IMPLEMENTED,
                       "Search report only available in the root folder of the user")
    if request.pattern is None:
        raise dav_errors.BadRequest("Search pattern cannot be empty")
    limit = DEFAULT_SEARCH_LIMIT if request.limit is None else request.limit
    if limit <= 0:
        # the search service then returns everything, but the response stops at `limit`
        return []
    return backend.search(target.uid, request.pattern, limit)


def _multistatus(target: Target, backend: FilesBackend, host_url: str, nodes: list[Node],
                 props: dav_xml.PropRequest | None) -> Response:
    """Sabre's generateMultiStatus over PropFinds made by the plugin: hrefs are the files
    base + the node's path without a trailing slash for folders, 404 propstats kept.
    `props` None is filter-files without <d:prop>: every response is an empty propstat."""
    headers = [("Content-Type", methods.XML_TYPE)]
    if not nodes:
        return Response(207, headers, [EMPTY_MULTISTATUS])
    writer = dav_xml.Multistatus(target.base)
    parts = [writer.start()]
    if props is None:
        parts += [writer.wrap(writer.href(node.path), [], []).encode("utf-8", "surrogateescape")
                  for node in nodes]
    else:
        extras = backend.extras(target.uid, nodes)
        ctx = methods.prop_context(backend, target.uid, host_url, nodes)
        for node in nodes:
            found, missing = dav_props.render_node_props(node, extras.get(node.fileid), ctx,
                                                         props)
            parts.append(writer.response(node.path, found, missing))
    parts.append(writer.end())
    return Response(207, headers, parts)
