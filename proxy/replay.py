"""`ocbridge replay`: the read requests of one user from a capture (capture.py) sent again to
both stacks with that user's password, and every difference between the two answers reported,
compared as shadow mode compares them (shadow.py: status, each DAV property, body hash)."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from mitmproxy import http, io
from yarl import URL

from proxy.forward import HOP_BY_HOP, Backend
from proxy.shadow import Answer, Difference, compare, fetch

#: what replay sends again: reads only (both stacks are live; neither may be written to)
READS: Final = frozenset({"GET", "HEAD", "PROPFIND", "REPORT"})
#: request headers not replayed: credentials are the command line's, cookies were redacted,
#: forwarding headers are the routing proxy's business
_DROPPED: Final = HOP_BY_HOP | {"authorization", "cookie", "content-length", "x-forwarded-for",
                                "x-forwarded-proto", "x-forwarded-host", "x-real-ip",
                                "forwarded", "expect"}
_DAV_OWNER: Final = ("/remote.php/dav/files/", "/remote.php/dav/uploads/",
                     "/remote.php/dav/trash-bin/")
#: a multistatus larger than this is compared by its hash only
KEEP_LIMIT: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class Replayed:
    """One request sent to both stacks and what differed."""

    method: str
    path: str
    legacy_status: int
    new_status: int
    differences: tuple[Difference, ...] = ()
    #: a stack that could not be reached: (stack, message)
    error: tuple[str, str] | None = None


@dataclass
class ReplayReport:
    uid: str
    flows: int = 0
    requests: list[Replayed] = field(default_factory=list)
    ignored: int = 0

    @property
    def differences(self) -> list[tuple[Replayed, Difference]]:
        return [(r, d) for r in self.requests for d in r.differences]

    @property
    def errors(self) -> list[Replayed]:
        return [r for r in self.requests if r.error is not None]

    @property
    def exit_code(self) -> int:
        return 1 if self.differences or self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "flows": self.flows, "replayed": len(self.requests),
            "ignored_differences": self.ignored,
            "differences": [{"method": r.method, "path": r.path, **d.to_dict()}
                            for r, d in self.differences],
            "errors": [{"method": r.method, "path": r.path, "stack": r.error[0],
                        "error": r.error[1]} for r in self.errors if r.error is not None],
        }


def flow_user(flow: http.HTTPFlow) -> str | None:
    """Whose request it was: the Basic auth user name (kept by capture), else the owner named
    by a DAV path."""
    for value in flow.request.headers.get_all("authorization"):
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(rest.strip()).decode("utf-8").partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return None
            return user or None
    path = flow.request.path.split("?", 1)[0]
    for prefix in _DAV_OWNER:
        if path.startswith(prefix):
            owner = path[len(prefix):].split("/", 1)[0]
            return owner or None
    return None


def read_flows(path: Path) -> Iterator[http.HTTPFlow]:
    with path.open("rb") as stream:
        for flow in io.FlowReader(stream).stream():
            if isinstance(flow, http.HTTPFlow):
                yield flow


def selected(flows: Iterator[http.HTTPFlow], uid: str) -> Iterator[http.HTTPFlow]:
    """The read requests of `uid` (user names compare without case, as ownCloud logins do)."""
    for flow in flows:
        user = flow_user(flow)
        if flow.request.method in READS and user is not None and user.lower() == uid.lower():
            yield flow


def replay_headers(flow: http.HTTPFlow, login: str, password: str) -> list[tuple[str, str]]:
    """The captured request headers with the user's real credentials."""
    out = [(name, value) for name, value in flow.request.headers.items(multi=True)
           if name.lower() not in _DROPPED]
    token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    out.append(("Authorization", f"Basic {token}"))
    return out


def _target(base: str, flow: http.HTTPFlow) -> URL:
    raw: bytes = flow.request.data.path
    text = "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)
    return URL(base.rstrip("/") + text, encoded=True)


async def replay(flows: Path, uid: str, password: str, legacy_url: str, new_url: str, *,
                 login: str | None = None, ignore: Sequence[str] = (),
                 timeout: float = 60) -> ReplayReport:
    """Send each read request of `uid` in `flows` to both stacks, in capture order, and compare.
    `login` is the name to authenticate with (default: the one in the capture, else `uid`);
    differences whose field is in `ignore` (e.g. oc:share-types) are counted, not reported."""
    report = ReplayReport(uid)
    backends = {"legacy": Backend("legacy", legacy_url, connect_timeout=timeout,
                                  read_timeout=timeout, pool_size=4),
                "new": Backend("new", new_url, connect_timeout=timeout, read_timeout=timeout,
                               pool_size=4)}
    for backend in backends.values():
        await backend.start()
    try:
        for flow in selected(read_flows(flows), uid):
            report.flows += 1
            name = login or flow_user(flow) or uid
            headers = replay_headers(flow, name, password)
            body = flow.request.raw_content or b""
            answers: dict[str, Answer] = {}
            error: tuple[str, str] | None = None
            for stack, backend in backends.items():
                try:
                    answers[stack] = await fetch(backend.session, _target(backend.base, flow),
                                                 flow.request.method, headers, body,
                                                 keep_limit=KEEP_LIMIT)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    error = (stack, f"{type(exc).__name__}: {exc}"[:300])
                    break
            path = flow.request.path
            if error is not None:
                report.requests.append(Replayed(flow.request.method, path, 0, 0, error=error))
                continue
            legacy, new = answers["legacy"], answers["new"]
            found = compare(flow.request.method, path.split("?", 1)[0], legacy, new)
            kept = tuple(d for d in found if d.field not in ignore)
            report.ignored += len(found) - len(kept)
            report.requests.append(Replayed(flow.request.method, path, legacy.status,
                                            new.status, kept))
    finally:
        for backend in backends.values():
            await backend.close()
    return report
