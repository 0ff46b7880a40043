"""A new stack (either backend, in a temporary folder) behind a real HTTP server, and the XML
helpers the trash-bin, meta and REPORT tests read its answers with."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from newstack.app import NewstackApp, ServerInfo
from newstack.backend import FilesBackend
from tests.newstack.backends import StackUser, make_backend
from tests.newstack.live import live_server

D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
PASSWORD = "correct horse battery"
BOB_PASSWORD = "bob's password"
SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "legacy-oc10" / "samples"


@dataclasses.dataclass
class Stack:
    url: str
    client: httpx.Client
    backend: FilesBackend

    def files(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/files/alice/{path}"

    def trash(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/trash-bin/alice/{path}"

    def meta(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/meta/{path}"

    def put(self, path: str, content: bytes, mtime: int | None = None) -> httpx.Response:
        headers = {"X-OC-MTime": str(mtime)} if mtime is not None else {}
        response = self.client.put(self.files(path), content=content, headers=headers)
        assert response.status_code in (201, 204), response.text
        return response

    def mkcol(self, path: str) -> None:
        response = self.client.request("MKCOL", self.files(path))
        assert response.status_code == 201, response.text

    def delete(self, path: str) -> None:
        response = self.client.delete(self.files(path))
        assert response.status_code == 204, response.text

    def fileid(self, path: str) -> int:
        props = propfind(self.client, self.files(path), [f"{OC}fileid"], depth="0")
        (found,) = props.values()
        return int(found[f"{OC}fileid"].text or "")


@contextmanager
def running_stack(tmp_path: Path, kind: str = "native") -> Iterator[Stack]:
    """alice (the client's user) and bob on a `kind` backend, served on a free loopback port."""
    backend = make_backend(kind, tmp_path, [StackUser("alice", PASSWORD, "Alice Adams"),
                                            StackUser("bob", BOB_PASSWORD, "Bob")])
    app = NewstackApp(backend, ServerInfo(hostname="testhost"))
    with live_server(app) as url, httpx.Client(auth=("alice", PASSWORD), timeout=30) as client:
        yield Stack(url, client, backend)


def propfind_body(props: list[str] | None) -> bytes:
    if props is None:
        return b""
    names = "".join(f"<x:{p[p.index('}') + 1:]} xmlns:x=\"{p[1:p.index('}')]}\"/>"
                    for p in props)
    return (f'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop>{names}</d:prop>'
            f"</d:propfind>").encode()


def propfind(client: httpx.Client, url: str, props: list[str] | None = None,
             depth: str = "1") -> dict[str, dict[str, ET.Element]]:
    """href -> {Clark name: element} of the 200 propstat, in response order."""
    response = client.request("PROPFIND", url, content=propfind_body(props),
                              headers={"Depth": depth})
    assert response.status_code == 207, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    return found_props(response.content)


def found_props(body: bytes) -> dict[str, dict[str, ET.Element]]:
    out: dict[str, dict[str, ET.Element]] = {}
    for resp in ET.fromstring(body).findall(f"{D}response"):
        found: dict[str, ET.Element] = {}
        for propstat in resp.findall(f"{D}propstat"):
            if "200" in (propstat.findtext(f"{D}status") or ""):
                prop_element = propstat.find(f"{D}prop")
                for prop in [] if prop_element is None else list(prop_element):
                    found[prop.tag] = prop
        out[resp.findtext(f"{D}href") or ""] = found
    return out


#: per response: href, then per propstat its status and (property, emptiness or children)
Shape = list[tuple[str, list[tuple[str | None, list[tuple[str, object]]]]]]


def shape(body: bytes, hrefs: dict[str, str] | None = None) -> Shape:
    """A multistatus without its values: per response the href (rewritten by `hrefs`, regex
    -> replacement) and per propstat its status and property names, with whether each is
    empty and, for d:resourcetype, its children. Layout and `<x/>` vs `<x></x>` do not count."""
    out: Shape = []
    for resp in ET.fromstring(body).findall(f"{D}response"):
        href = resp.findtext(f"{D}href") or ""
        for pattern, replacement in (hrefs or {}).items():
            href = re.sub(pattern, replacement, href)
        propstats = []
        for propstat in resp.findall(f"{D}propstat"):
            status = propstat.findtext(f"{D}status")
            names: list[tuple[str, object]] = []
            prop_element = propstat.find(f"{D}prop")
            for prop in [] if prop_element is None else list(prop_element):
                if prop.tag == f"{D}resourcetype":
                    names.append((prop.tag, tuple(child.tag for child in prop)))
                else:
                    names.append((prop.tag, bool((prop.text or "").strip() or len(prop))))
            propstats.append((status, names))
        out.append((href, propstats))
    return out


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def error_parts(body: bytes) -> tuple[str, str]:
    """(s:exception, s:message) of a Sabre error body."""
    root = ET.fromstring(body)
    s = "{http://sabredav.org/ns}"
    return root.findtext(f"{s}exception") or "", root.findtext(f"{s}message") or ""
