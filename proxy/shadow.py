"""Shadow mode: a read of a chosen user, once answered by that user's stack, is sent again to the
other stack and the two answers are compared: status, each DAV property, body hash. Neighbours:
app.py taps the real answer as it streams (`Shadow.watch`), replay.py reuses `fetch`/`compare`.

The real answer is never held up or altered: it is hashed (and a multistatus kept) as it passes,
the mirror request waits on a bounded queue after the answer is complete, and when the queue is
full it is dropped and counted. Only GET, HEAD and PROPFIND are mirrored: the mirror never writes.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

import aiohttp
from defusedxml import ElementTree
from multidict import CIMultiDict
from yarl import URL

from bridge import metrics
from bridge.config import ProxySettings
from bridge.oc10 import davxml
from proxy.forward import CHUNK, Backend, Message, Receive, Scope, Send, request_headers, target
from proxy.identify import Identity

log = logging.getLogger("ocbridge.proxy.shadow")

#: what shadow mode mirrors (reads only: the other stack must never be written to)
MIRRORED: Final = frozenset({"GET", "HEAD", "PROPFIND"})
#: answers to these methods are multistatus documents compared property by property
MULTISTATUS: Final = frozenset({"PROPFIND", "REPORT"})
#: response headers compared on GET and HEAD (what sync clients read besides the body)
COMPARED_HEADERS: Final = ("etag", "oc-etag", "oc-fileid", "content-length", "content-type")
#: a request body larger than this (a PROPFIND's is < 1 KiB) is not mirrored
REQUEST_BODY_LIMIT: Final = 64 * 1024
#: differences kept in memory for `recent` (the log and the metrics have them all)
RECENT: Final = 1000

D: Final = "{DAV:}"
#: field names that may be metric label values; any other is counted as "other"
_LABELLED: Final = frozenset({
    "status", "response", "sha256", "present", *COMPARED_HEADERS,
    "d:getetag", "d:getlastmodified", "d:getcontentlength", "d:getcontenttype",
    "d:resourcetype", "d:displayname", "d:quota-used-bytes", "d:quota-available-bytes",
    "d:lockdiscovery", "d:supportedlock", "oc:id", "oc:fileid", "oc:permissions", "oc:size",
    "oc:checksums", "oc:share-types", "oc:favorite", "oc:tags", "oc:downloadURL", "oc:dDC",
    "oc:data-fingerprint", "oc:owner-id", "oc:owner-display-name", "oc:privatelink",
    "oc:comments-unread", "oc:comments-count", "oc:comments-href"})


# -------------------------------------------------------------------------------------------------
# What is compared: an answer reduced to status, a few headers, body hash, multistatus


@dataclass(frozen=True)
class Answer:
    """What one stack answered, reduced to what is compared."""

    status: int
    #: the compared headers present, lower-case names
    headers: tuple[tuple[str, str], ...] = ()
    #: SHA-256 of the body as sent (content-coding untouched)
    sha256: str = ""
    size: int = 0
    #: the body of a multistatus answer when it was kept (not over the limit), else None
    multistatus: bytes | None = None
    content_encoding: str = ""


class BodyTap:
    """Hashes an answer's body as it streams past, keeping it too when it is a multistatus of
    at most `limit` bytes; nothing is buffered otherwise."""

    def __init__(self, method: str, limit: int) -> None:
        self._method = method
        self._limit = limit
        self._hash = hashlib.sha256()
        self._size = 0
        self._kept: bytearray | None = None
        self.status = 0
        self._headers: list[tuple[str, str]] = []
        self._encoding = ""
        self.complete = False

    def start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.status = status
        for name_b, value_b in headers:
            name = name_b.decode("latin-1").lower()
            if name in COMPARED_HEADERS:
                self._headers.append((name, value_b.decode("latin-1")))
            elif name == "content-encoding":
                self._encoding = value_b.decode("latin-1").strip().lower()
        if status == 207 and self._method in MULTISTATUS:
            self._kept = bytearray()
        if self._method == "HEAD":
            self.complete = True

    def feed(self, chunk: bytes, more: bool = True) -> None:
        if chunk:
            self._hash.update(chunk)
            self._size += len(chunk)
            if self._kept is not None:
                if len(self._kept) + len(chunk) > self._limit:
                    self._kept = None
                else:
                    self._kept += chunk
        if not more:
            self.complete = True

    def answer(self) -> Answer:
        return Answer(self.status, tuple(sorted(self._headers)), self._hash.hexdigest(),
                      self._size, bytes(self._kept) if self._kept is not None else None,
                      self._encoding)


@dataclass(frozen=True)
class Difference:
    """One thing the two stacks answered differently; values as a client would read them."""

    #: status, header, body, href (in one answer only) or prop
    kind: str
    #: the request path, or the multistatus href
    href: str
    #: status/response, the header name, sha256, present, or the property (d:getetag)
    field: str
    legacy: str | None
    new: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "href": self.href, "field": self.field,
                "legacy": _clip(self.legacy), "new": _clip(self.new)}


def compare(method: str, path: str, legacy: Answer, new: Answer) -> list[Difference]:
    """Every difference between the two answers to one read (pure; parses multistatus XML, so
    call it off the event loop for large answers)."""
    if legacy.status != new.status:
        return [Difference("status", path, "status", str(legacy.status), str(new.status))]
    out: list[Difference] = []
    if method in ("GET", "HEAD") and 200 <= legacy.status < 300:
        a, b = dict(legacy.headers), dict(new.headers)
        for name in COMPARED_HEADERS:
            if a.get(name) != b.get(name):
                out.append(Difference("header", path, name, a.get(name), b.get(name)))
    if method == "HEAD":
        return out
    a_tree = _multistatus(legacy)
    b_tree = _multistatus(new)
    if a_tree is not None and b_tree is not None:
        out.extend(compare_multistatus(a_tree, b_tree))
    elif legacy.sha256 != new.sha256:
        out.append(Difference("body", path, "sha256", f"{legacy.sha256} ({legacy.size} bytes)",
                              f"{new.sha256} ({new.size} bytes)"))
    return out


def compare_multistatus(legacy: dict[str, dict[str, tuple[int, str]]],
                        new: dict[str, dict[str, tuple[int, str]]]) -> list[Difference]:
    """Differences between two parsed multistatus documents, href by href, property by
    property (`parse_multistatus`)."""
    out: list[Difference] = []
    for href in sorted(legacy.keys() | new.keys()):
        a, b = legacy.get(href), new.get(href)
        if a is None or b is None:
            out.append(Difference("href", href, "present", "yes" if a is not None else None,
                                  "yes" if b is not None else None))
            continue
        if a.get("") != b.get(""):
            out.append(Difference("status", href, "response", _shown(a.get("")),
                                  _shown(b.get(""))))
        for prop in sorted(a.keys() | b.keys()):
            if prop and a.get(prop) != b.get(prop):
                out.append(Difference("prop", href, davxml.short_name(prop), _shown(a.get(prop)),
                                      _shown(b.get(prop))))
    return out


def parse_multistatus(body: bytes) -> dict[str, dict[str, tuple[int, str]]]:
    """href (decoded) → {Clark name: (propstat status, canonical value)}, '' → the response's
    own status when it has one. Raises ValueError on a document that is not XML."""
    try:
        root = ElementTree.fromstring(body)
    except Exception as exc:  # ParseError and defusedxml's refusals alike
        raise ValueError(f"not a multistatus document: {exc}") from exc
    out: dict[str, dict[str, tuple[int, str]]] = {}
    for element in root.iter(f"{D}response"):
        href = unquote((element.findtext(f"{D}href") or "").strip())
        out[href] = davxml.response_props(element)
    return out


def _multistatus(answer: Answer) -> dict[str, dict[str, tuple[int, str]]] | None:
    if answer.multistatus is None:
        return None
    body = answer.multistatus
    try:
        if answer.content_encoding in ("gzip", "x-gzip", "deflate"):
            body = zlib.decompress(body, 47 if "gzip" in answer.content_encoding else 15)
        elif answer.content_encoding not in ("", "identity"):
            return None
        return parse_multistatus(body)
    except (ValueError, zlib.error):
        return None





def _shown(value: tuple[int, str] | None) -> str | None:
    if value is None:
        return None
    status, text = value
    return text if status == 200 else f"[{status}]"


def _clip(value: str | None, limit: int = 200) -> str | None:
    return value if value is None or len(value) <= limit else value[:limit] + "…"


# -------------------------------------------------------------------------------------------------
# Asking a stack


async def fetch(session: aiohttp.ClientSession, url: URL, method: str,
                headers: CIMultiDict[str] | Sequence[tuple[str, str]], body: bytes, *,
                keep_limit: int) -> Answer:
    """Send one read and reduce its answer (streamed: hashed, a multistatus kept up to
    `keep_limit` bytes). Raises aiohttp.ClientError or TimeoutError when the stack fails."""
    async with session.request(method, url, headers=headers, data=body or None,
                               allow_redirects=False) as response:
        tap = BodyTap(method, keep_limit)
        tap.start(response.status, response.raw_headers)
        if method != "HEAD":
            async for chunk in response.content.iter_chunked(CHUNK):
                tap.feed(chunk)
        return tap.answer()


# -------------------------------------------------------------------------------------------------
# The proxy's side: watch the real answer, mirror it after, record what differs


@dataclass
class _Job:
    uid: str
    method: str
    path: str
    #: the stack that answered the client, and its answer
    stack: str
    real: Answer
    url: URL
    headers: CIMultiDict[str]
    body: bytes


class Watch:
    """One shadowed request while it is forwarded: `receive` and `send` stand in for the ASGI
    ones, copying the request body (small) and hashing the answer as they pass it on."""

    def __init__(self, uid: str, stack: str, scope: Scope, receive: Receive, send: Send,
                 keep_limit: int) -> None:
        self.uid = uid
        self.stack = stack
        self.scope = scope
        self.tap = BodyTap(scope["method"], keep_limit)
        self.body: bytearray | None = bytearray()
        self._receive = receive
        self._send = send

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and self.body is not None:
            chunk = message.get("body", b"")
            if len(self.body) + len(chunk) > REQUEST_BODY_LIMIT:
                self.body = None
            else:
                self.body += chunk
        return message

    async def send(self, message: Message) -> None:
        await self._send(message)
        kind = message["type"]
        if kind == "http.response.start":
            self.tap.start(message["status"], message.get("headers", ()))
        elif kind == "http.response.body":
            self.tap.feed(message.get("body", b""), message.get("more_body", False))


@dataclass
class ShadowCounts:
    """Mirrored reads by outcome, in this process (the metrics have the same, for all)."""

    same: int = 0
    different: int = 0
    error: int = 0
    dropped: int = 0
    skipped: int = 0
    differences: int = 0
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)


class Shadow:
    """The mirror queue and its workers, for one proxy process (`open` in the app's start-up,
    `close` at shut-down)."""

    def __init__(self, settings: ProxySettings) -> None:
        self.users = frozenset(settings.shadow_users)
        self.everyone = "*" in self.users
        self.keep_limit = settings.shadow_multistatus_kb * 1024
        self._workers = settings.shadow_workers
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=settings.shadow_queue)
        # pools of their own, as small as the workers: a slow mirror never takes a connection
        # the real traffic needs
        self._backends = {
            "legacy": Backend("legacy", settings.legacy_url,
                              connect_timeout=settings.connect_timeout,
                              read_timeout=settings.read_timeout, pool_size=self._workers),
            "new": Backend("new", settings.newstack_url, connect_timeout=settings.connect_timeout,
                           read_timeout=settings.read_timeout, pool_size=self._workers),
        }
        self._tasks: list[asyncio.Task[None]] = []
        self.counts = ShadowCounts()
        #: (uid, method, stack that answered, difference), newest last
        self.recent: collections.deque[tuple[str, str, str, Difference]] = collections.deque(
            maxlen=RECENT)

    async def open(self) -> None:
        for backend in self._backends.values():
            await backend.start()
        self._tasks = [asyncio.create_task(self._work(), name=f"shadow-{i}")
                       for i in range(self._workers)]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        for backend in self._backends.values():
            await backend.close()

    def watch(self, scope: Scope, identity: Identity, stack: str, receive: Receive,
              send: Send) -> Watch | None:
        """A Watch when this request is to be mirrored: a read of a shadowed user identified by
        a credential (the other stack cannot read the first one's session cookies)."""
        uid = identity.uid
        if uid is None or not identity.credential or scope["method"] not in MIRRORED:
            return None
        if not self.everyone and uid not in self.users:
            return None
        return Watch(uid, stack, scope, receive, send, self.keep_limit)

    def submit(self, watch: Watch, complete: bool) -> None:
        """Queue the mirror of a watched request whose answer the client has received in full
        (`complete`); never waits."""
        if not complete or not watch.tap.complete:
            return
        if watch.body is None:
            self._count("skipped")
            return
        scope = watch.scope
        other = "new" if watch.stack == "legacy" else "legacy"
        headers, _ = request_headers(scope)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        job = _Job(watch.uid, scope["method"], raw_path.decode("latin-1"), watch.stack,
                   watch.tap.answer(), target(self._backends[other].base, scope), headers,
                   bytes(watch.body))
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._count("dropped")
            return
        metrics.PROXY_SHADOW_QUEUE.set(self._queue.qsize())

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            metrics.PROXY_SHADOW_QUEUE.set(self._queue.qsize())
            try:
                await self._mirror(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shadow comparison of %s %s failed", job.method, job.path)
                self._count("error")
            finally:
                self._queue.task_done()

    async def _mirror(self, job: _Job) -> None:
        other = "new" if job.stack == "legacy" else "legacy"
        try:
            mirrored = await fetch(self._backends[other].session, job.url, job.method,
                                   job.headers, job.body, keep_limit=self.keep_limit)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning(json.dumps({"shadow": "error", "uid": job.uid, "method": job.method,
                                    "path": job.path, "stack": other,
                                    "error": f"{type(exc).__name__}: {exc}"[:300]}))
            self._count("error")
            return
        legacy, new = (job.real, mirrored) if job.stack == "legacy" else (mirrored, job.real)
        if legacy.multistatus is not None and new.multistatus is not None:
            differences = await asyncio.to_thread(compare, job.method, job.path, legacy, new)
        else:
            differences = compare(job.method, job.path, legacy, new)
        self._record(job, differences)

    def _record(self, job: _Job, differences: list[Difference]) -> None:
        self._count("different" if differences else "same")
        for diff in differences:
            label = diff.field if diff.field in _LABELLED else "other"
            metrics.PROXY_SHADOW_DIFFERENCES.labels(diff.kind, label).inc()
            self.counts.differences += 1
            self.counts.by_kind[diff.kind] += 1
            self.recent.append((job.uid, job.method, job.stack, diff))
            log.info(json.dumps({"shadow": "difference", "uid": job.uid, "method": job.method,
                                 "path": job.path, "stack": job.stack, **diff.to_dict()},
                                ensure_ascii=False))

    def _count(self, outcome: str) -> None:
        metrics.PROXY_SHADOW.labels(outcome).inc()
        setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)
