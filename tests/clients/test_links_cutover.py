"""Public and private links across a real cutover and a real rollback, through the proxy only.

One owner on ownCloud 10 makes, as a client would (OCS through the proxy), a password-protected
link on a folder, a read-only link on a file and a file drop, and notes a private link
/f/<fileid>. Every URL of those links is then fetched four times with the same URLs and
passwords: on ownCloud 10, after `Cutover` (the new stack), after the owner changed two files
there, and after `ocbridge rollback` (ownCloud 10 again). The answers (status, bytes, etags,
ids) must not change except where the owner changed something, and the proxy's access log
must show that each visit was served by the owner's stack of the moment.

The scenario runs once per module (about half a minute); each test judges one promise of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote

import httpx
import pytest

from bridge.config import load_settings
from bridge.cutover import Cutover
from bridge.demo import DemoPorts, Servers, demo_config
from bridge.store import BridgeStore
from fixtures.builder import build_instance
from fixtures.profiles import get_profile
from newstack.server import free_port
from tests.clients.conftest import NewstackServer
from tests.clients.test_cutover_invisible import proxy_requests, rclone_tree
from tests.newstack.legacy.stack import TEST_HASH_COST

#: owns and receives no share in the "small" profile with seed 11: a cutover of one user
UID = "dave"
SEED = 11
LINK_PASSWORD = "Link pa55 word"
_RNG = random.Random(8)
#: the owner's files the links point at (made through the proxy before the cutover)
FILES: dict[str, bytes] = {
    "linked/a.txt": b"alpha\n" * 40,
    "linked/empty.txt": b"",
    "linked/sub/b.bin": _RNG.randbytes(70_000),
    "linked/sub/c.md": b"# c\n" * 9,
    "solo.txt": b"read-only link to a file\n",
    "drop/already.txt": b"the owner's own file in the drop folder\n",
}
FOLDERS = ("linked", "linked/sub", "drop")
#: what the owner writes on the new stack between the second and the third visit
CHANGED: dict[str, bytes] = {"solo.txt": b"changed on the new stack\n",
                             "linked/a.txt": b"alpha, changed on the new stack\n"}

#: how the proxy's access log shows a path (link tokens elided, as proxy/app.py writes it)
_LINK_IN_PATH = re.compile(r"(/s/|/public-files/)[^/]+")
D, OC = "{DAV:}", "{http://owncloud.org/ns}"
PROPS = ("<?xml version='1.0'?><d:propfind xmlns:d='DAV:' xmlns:oc='http://owncloud.org/ns'>"
         "<d:prop><d:getetag/><d:getcontentlength/><d:getlastmodified/><d:getcontenttype/>"
         "<d:resourcetype/><oc:id/><oc:fileid/><oc:size/><oc:permissions/><oc:checksums/>"
         "<oc:public-link-item-type/><oc:public-link-permission/>"
         "<oc:public-link-share-datetime/><oc:public-link-share-owner/></d:prop></d:propfind>")


@dataclasses.dataclass(frozen=True)
class Links:
    proxy: str
    owner: tuple[str, str]
    other: tuple[str, str]
    folder: str  # token of the password-protected folder link
    file: str  # token of the read-only file link
    drop: str  # token of the file drop
    fileid: int  # of solo.txt: the private link
    log: Path


@dataclasses.dataclass(frozen=True)
class LinkAsUser:
    """A public link as rclone (vendor owncloud) reaches it: /public.php/webdav, the token as
    user name, the link password (rclone_tree reads only these three)."""

    dav_url: str
    user: str
    password: str


@dataclasses.dataclass
class Visit:
    """What one round of requests got back."""

    #: every answer that must be the same on both stacks, by request
    answers: dict[str, Any]
    #: Basic `<token>:` (empty password) on /public.php/webdav, as a link without a password
    #: is opened there
    bare: dict[str, Any]
    #: the owner's drop folder afterwards: name -> bytes
    dropped: dict[str, bytes]
    #: (who, the proxy's access-log line) of each request; who: link (a public-link request
    #: with its token or password), bare, owner, other (another user), anonymous
    routed: list[tuple[str, dict[str, Any]]]


@dataclasses.dataclass
class Scenario:
    links: Links
    visits: dict[str, Visit]
    cutover: Any
    rollback: dict[str, Any]


# -- the requests ----------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def props(response: httpx.Response) -> tuple[int, dict[str, dict[str, str]]]:
    """(status, href -> {property: text}) of the properties a PROPFIND found (200)."""
    if response.status_code != 207:
        return response.status_code, {}
    found = {}
    for item in ET.fromstring(response.content).findall(f"{D}response"):
        values = {}
        for propstat in item.findall(f"{D}propstat"):
            if "200" not in (propstat.findtext(f"{D}status") or ""):
                continue
            container = propstat.find(f"{D}prop")
            for prop in container if container is not None else []:
                values[prop.tag] = "".join(prop.itertext()).strip() or "".join(
                    child.tag for child in prop)
        found[item.findtext(f"{D}href") or ""] = values
    return 207, found


def unzipped(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {i.filename: sha(archive.read(i)) for i in archive.infolist()}


class Visitor:
    """One round of every link request; `who` says how the proxy should identify each."""

    def __init__(self, links: Links, phase: str) -> None:
        self.links = links
        self.phase = phase
        self.routed: list[tuple[str, dict[str, Any]]] = []

    def call(self, client: httpx.Client, who: str, method: str, path: str, **kw: Any
             ) -> httpx.Response:
        """One request; its access-log line is awaited before the next request goes out, so
        each line is known to be this request's."""
        start = self.links.log.stat().st_size
        response = client.request(method, f"{self.links.proxy}{path}", **kw)
        lines = wait_for_log(self.links.log, start, 1)
        assert [(line["method"], line["path"]) for line in lines] == [
            (method, _LINK_IN_PATH.sub(r"\1…", path))], lines
        self.routed.append((who, lines[0]))
        return response

    def rclone(self, token: str, password: str) -> dict[str, tuple[int, str]]:
        """rclone (vendor owncloud) on the link: path -> (size, SHA-1)."""
        start = self.links.log.stat().st_size
        tree = rclone_tree(cast(NewstackServer, LinkAsUser(
            f"{self.links.proxy}/public.php/webdav/", token, password)))
        lines = settled_log(self.links.log, start)
        assert lines and all(line["path"].startswith("/public.php/webdav") for line in lines)
        self.routed.extend(("link", line) for line in lines)
        return tree

    def run(self, kept_cookies: httpx.Cookies | None) -> tuple[Visit, httpx.Cookies]:
        links = self.links
        f, r, d = links.folder, links.file, links.drop
        answers: dict[str, Any] = {}
        bare: dict[str, Any] = {}
        with (httpx.Client(timeout=30) as web, httpx.Client(timeout=30) as clean,
              httpx.Client(timeout=30, auth=links.owner) as owner,
              httpx.Client(timeout=30, auth=links.other) as other):
            call = self.call

            # /s/<token>: the password form, wrong and right passwords, page and downloads
            got = call(web, "link", "GET", f"/s/{f}")
            answers["folder page, no password yet"] = (got.status_code,
                                                       got.headers.get("location"))
            got = call(web, "link", "GET", f"/s/{f}/download")
            answers["folder download, no password yet"] = (got.status_code,
                                                           got.headers.get("location"))
            got = call(web, "link", "POST", f"/index.php/s/{f}/authenticate",
                       data={"password": "wrong"})
            answers["wrong password"] = (got.status_code, "wrong" in got.text,
                                         "set-cookie" in got.headers)
            got = call(web, "link", "POST", f"/index.php/s/{f}/authenticate",
                       data={"password": LINK_PASSWORD})
            answers["right password"] = (got.status_code, got.headers.get("location"))
            got = call(web, "link", "GET", f"/s/{f}")
            answers["folder page"] = (got.status_code, sha(got.content))
            got = call(web, "link", "GET", f"/index.php/s/{f}/download")
            answers["folder zip"] = (got.status_code, got.headers.get("content-type"),
                                     got.headers.get("content-disposition"),
                                     unzipped(got.content) if got.status_code == 200 else None)
            got = call(web, "link", "GET", f"/s/{f}/download",
                       params={"path": "/sub", "files": "b.bin"})
            answers["one file of the folder"] = (got.status_code, sha(got.content))
            # a browser that gave the password in the first visit (before the cutover)
            clean.cookies = httpx.Cookies(kept_cookies if kept_cookies is not None
                                          else web.cookies)
            got = call(clean, "link", "GET", f"/s/{f}/download",
                       params={"files": "a.txt"})
            answers["download with the cookie of the first visit"] = (got.status_code,
                                                                      sha(got.content))

            got = call(web, "link", "GET", f"/s/{r}")
            answers["file page"] = (got.status_code, sha(got.content))
            got = call(web, "link", "GET", f"/s/{r}/download")
            answers["file download"] = (got.status_code, sha(got.content),
                                        got.headers.get("content-disposition"),
                                        got.headers.get("etag"))
            got = call(web, "link", "GET", f"/index.php/s/{r}/download",
                       headers={"Range": "bytes=3-9"})
            answers["file range"] = (got.status_code, got.content)
            got = call(web, "link", "GET", f"/s/{d}")
            answers["drop page"] = (got.status_code, "file drop" in got.text)
            got = call(web, "link", "GET", f"/s/{d}/download")
            answers["drop download"] = got.status_code
            got = call(web, "anonymous", "GET", "/s/NoSuchToken0000")
            answers["unknown token"] = got.status_code

            # /public.php/webdav: the token as user name, the link password
            webdav = "/public.php/webdav"
            got = call(web, "link", "GET", f"{webdav}/a.txt", auth=(f, LINK_PASSWORD))
            answers["webdav GET"] = (got.status_code, sha(got.content), got.headers.get("etag"),
                                     got.headers.get("oc-fileid"))
            got = call(web, "link", "GET", f"{webdav}/a.txt", auth=(f, "wrong"))
            answers["webdav wrong password"] = (got.status_code,
                                                "www-authenticate" in got.headers)
            answers["webdav PROPFIND"] = props(call(
                web, "link", "PROPFIND", f"{webdav}/", auth=(f, LINK_PASSWORD),
                headers={"Depth": "1"}, content=PROPS))
            answers["rclone lsjson --hash"] = self.rclone(f, LINK_PASSWORD)

            # /remote.php/dav/public-files/<token>: user `public` and the link password
            files = f"/remote.php/dav/public-files/{f}"
            got = call(web, "link", "GET", f"{files}/sub/b.bin",
                       auth=("public", LINK_PASSWORD))
            answers["public-files GET"] = (got.status_code, sha(got.content),
                                           got.headers.get("etag"))
            answers["public-files PROPFIND"] = props(call(
                web, "link", "PROPFIND", f"{files}/",
                auth=("public", LINK_PASSWORD), headers={"Depth": "1"}, content=PROPS))
            got = call(web, "link", "PROPFIND", f"{files}/",
                       auth=("public", "wrong"), headers={"Depth": "0"})
            answers["public-files wrong password"] = got.status_code
            got = call(web, "link", "PROPFIND", f"{files}/",
                       headers={"Depth": "0"})
            answers["public-files no password"] = got.status_code
            answers["file link PROPFIND"] = props(call(
                web, "link", "PROPFIND", f"/remote.php/dav/public-files/{r}/",
                headers={"Depth": "1"}, content=PROPS))
            got = call(web, "link", "GET", f"/remote.php/dav/public-files/{r}/solo.txt")
            answers["file link public-files GET"] = (got.status_code, sha(got.content))

            # the file drop: a listing shows nothing, an upload lands in the owner's folder
            drop = f"/remote.php/dav/public-files/{d}"
            got = call(web, "link", "PUT", f"{drop}/dropped-{self.phase}.txt",
                       content=f"dropped {self.phase}\n".encode())
            answers["drop PUT"] = got.status_code
            got = call(web, "link", "PUT", f"{drop}/already.txt",
                       content=f"not the owner's {self.phase}\n".encode())
            answers["drop PUT of a taken name"] = got.status_code
            answers["drop PROPFIND"] = sorted(props(call(
                web, "link", "PROPFIND", f"{drop}/",
                headers={"Depth": "1"}))[1])
            got = call(web, "link", "GET", f"{drop}/already.txt")
            answers["drop GET"] = got.status_code

            # links without a password over /public.php/webdav: Basic `<token>:`
            got = call(web, "bare", "GET", webdav, auth=(r, ""))
            bare["GET"] = (got.status_code, sha(got.content), got.headers.get("etag"))
            bare["PROPFIND"] = props(call(web, "bare", "PROPFIND", webdav, auth=(r, ""),
                                          headers={"Depth": "0"}, content=PROPS))
            got = call(web, "bare", "PUT", f"{webdav}/bare-{self.phase}.txt", auth=(d, ""),
                       content=f"dropped {self.phase} over public.php\n".encode())
            bare["drop PUT"] = got.status_code

            # the private link: the owner is sent to the file, others are not
            for path in (f"/f/{links.fileid}", f"/index.php/f/{links.fileid}"):
                got = call(owner, "owner", "GET", path)
                answers[f"owner {path[:-len(str(links.fileid))]}"] = (
                    got.status_code, got.headers.get("location"),
                    got.headers.get("webdav-location"))
            got = call(other, "other", "GET", f"/f/{links.fileid}")
            answers["another user's private link"] = (got.status_code, sha(got.content))
            got = call(web, "anonymous", "GET", f"/f/{links.fileid}",
                       headers={"Accept": "text/html"})
            answers["private link, browser not signed in"] = (got.status_code,
                                                              got.headers.get("location"))
            got = call(web, "anonymous", "GET", f"/index.php/f/{links.fileid}",
                       headers={"Accept": "application/json"})
            answers["private link, API client not signed in"] = (got.status_code, got.content)

            cookies = httpx.Cookies(web.cookies) if kept_cookies is None else kept_cookies
            dropped = self.owner_files(owner, "drop")
        return Visit(answers, bare, dropped, self.routed), cookies

    def owner_files(self, owner: httpx.Client, folder: str) -> dict[str, bytes]:
        """name -> bytes of the files in one of the owner's folders, read as the owner."""
        base = f"/remote.php/dav/files/{self.links.owner[0]}/{folder}/"
        listing = self.call(owner, "owner", "PROPFIND", base, headers={"Depth": "1"})
        assert listing.status_code == 207, listing.status_code
        names = [unquote(href.rsplit("/", 1)[-1]) for href in props(listing)[1]
                 if not href.endswith("/")]
        return {name: self.call(owner, "owner", "GET", base + quote(name)).content
                for name in names}


def wait_for_log(log: Path, start: int, count: int) -> list[dict[str, Any]]:
    """The access-log lines after `start`, once there are `count` (the proxy writes each when
    its answer is done, which a client may see a moment before)."""
    deadline = time.monotonic() + 10
    while True:
        lines = proxy_requests(log, start)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def settled_log(log: Path, start: int) -> list[dict[str, Any]]:
    """The access-log lines after `start` once the log stopped growing for a moment (after a
    client whose number of requests is not known)."""
    size, still = log.stat().st_size, 0
    while still < 5:
        time.sleep(0.05)
        now = log.stat().st_size
        size, still = now, (still + 1 if now == size else 0)
    return proxy_requests(log, start)


# -- the scenario ----------------------------------------------------------------------------


def make_links(proxy: str, owner: tuple[str, str]) -> tuple[str, str, str, int]:
    """The owner's files and links, made through the proxy as a client would."""
    dav = f"{proxy}/remote.php/dav/files/{owner[0]}"
    ocs = f"{proxy}/ocs/v2.php/apps/files_sharing/api/v1/shares"
    with httpx.Client(auth=owner, timeout=30) as client:
        for folder in FOLDERS:
            assert client.request("MKCOL", f"{dav}/{folder}").status_code == 201, folder
        for path, content in FILES.items():
            assert client.put(f"{dav}/{path}", content=content).status_code == 201, path

        def link(path: str, **fields: str) -> str:
            made = client.post(ocs, params={"format": "json"},
                               headers={"OCS-APIRequest": "true"},
                               data={"path": path, "shareType": "3", **fields})
            assert made.status_code == 200, made.text
            return str(made.json()["ocs"]["data"]["token"])

        tokens = (link("/linked", password=LINK_PASSWORD), link("/solo.txt"),
                  link("/drop", permissions="4"))
        found = props(client.request("PROPFIND", f"{dav}/solo.txt", headers={"Depth": "0"},
                                     content=PROPS))[1]
    return (*tokens, int(next(iter(found.values()))[f"{OC}fileid"]))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("links")
    profile = dataclasses.replace(get_profile("small"), hash_cost=TEST_HASH_COST)
    manifest, _ = build_instance(tmp / "legacy", "sqlite", profile, SEED)
    passwords = {str(u["uid"]): str(u["password"]) for u in manifest.users}
    other = next(uid for uid in sorted(passwords) if uid != UID)
    ports = DemoPorts(free_port(), free_port(), free_port())
    config = tmp / "ocbridge.toml"
    config.write_text(demo_config(Path(manifest.config_php), tmp / "new", ports),
                      encoding="utf-8")
    with Servers(config, tmp / "logs") as servers:
        servers.start("legacy", ["serve", "legacy"], ports.url("legacy") + "/status.php")
        servers.start("newstack", ["serve", "newstack"], ports.url("newstack") + "/status.php")
        servers.start("proxy", ["proxy"], ports.url("proxy") + "/status.php")
        proxy = ports.url("proxy")
        owner = (UID, passwords[UID])
        folder, file, drop, fileid = make_links(proxy, owner)
        links = Links(proxy, owner, (other, passwords[other]), folder, file, drop, fileid,
                      tmp / "logs" / "proxy.log")
        visits: dict[str, Visit] = {}
        visits["before"], cookies = Visitor(links, "before").run(None)

        settings = load_settings(config)
        store = BridgeStore.from_settings(settings)
        try:
            cutover = Cutover(settings, store).run(UID)
        finally:
            store.close()
        assert cutover.ok, cutover.reason
        visits["after"], _ = Visitor(links, "after").run(cookies)

        with httpx.Client(auth=owner, timeout=30) as client:
            for path, content in CHANGED.items():
                put = client.put(f"{proxy}/remote.php/dav/files/{UID}/{path}", content=content)
                assert put.status_code == 204, (path, put.status_code)
        visits["changed"], _ = Visitor(links, "changed").run(cookies)

        done = subprocess.run(
            [sys.executable, "-c", "from bridge.cli import main; main()", "rollback", "--user",
             UID, "--config", str(config), "--json"], capture_output=True, text=True,
            timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        rollback = json.loads(done.stdout)[0]
        visits["back"], _ = Visitor(links, "back").run(cookies)
        yield Scenario(links, visits, cutover, rollback)


# -- the promises ----------------------------------------------------------------------------


def test_the_links_work_before_the_cutover(scenario: Scenario) -> None:
    """The reference answers are the ones a working ownCloud 10 gives (else equal answers
    after the cutover would prove nothing)."""
    links, first = scenario.links, scenario.visits["before"].answers
    authenticate = f"/index.php/s/{links.folder}/authenticate"
    assert first["folder page, no password yet"] == (303, authenticate)
    assert first["folder download, no password yet"] == (303, authenticate)
    assert first["wrong password"] == (200, True, False)
    assert first["right password"] == (303, f"/index.php/s/{links.folder}")
    assert first["folder page"][0] == 200
    linked = {p.removeprefix("linked/"): sha(c) for p, c in FILES.items()
              if p.startswith("linked/")}
    status, kind, disposition, members = first["folder zip"]
    assert (status, kind) == (200, "application/zip") and 'filename="linked.zip"' in disposition
    assert {k.removeprefix("linked/"): v for k, v in members.items() if not k.endswith("/")
            } == linked
    assert first["one file of the folder"] == (200, sha(FILES["linked/sub/b.bin"]))
    assert first["download with the cookie of the first visit"] == (
        200, sha(FILES["linked/a.txt"]))
    assert first["file download"][:2] == (200, sha(FILES["solo.txt"]))
    assert first["file range"] == (206, FILES["solo.txt"][3:10])
    assert first["drop page"] == (200, True) and first["drop download"] == 404
    assert first["unknown token"] == 404
    assert first["webdav GET"][:2] == (200, sha(FILES["linked/a.txt"]))
    assert first["webdav wrong password"] == (401, True)
    status, listing = first["webdav PROPFIND"]
    assert status == 207 and sorted(listing) == [
        "/public.php/webdav/", "/public.php/webdav/a.txt", "/public.php/webdav/empty.txt",
        "/public.php/webdav/sub/"]
    assert all(p[f"{D}getetag"] and p[f"{OC}id"] for p in listing.values())
    assert first["rclone lsjson --hash"] == {
        path: (len(content), sha(content)) for path, content in
        ((p.removeprefix("linked/"), c) for p, c in FILES.items() if p.startswith("linked/"))}
    assert first["public-files GET"][:2] == (200, sha(FILES["linked/sub/b.bin"]))
    status, listing = first["public-files PROPFIND"]
    root = f"/remote.php/dav/public-files/{links.folder}/"
    assert status == 207 and len(listing) == 4
    assert listing[root][f"{OC}public-link-share-owner"] == UID
    assert first["public-files wrong password"] == 401
    assert first["public-files no password"] == 401
    assert first["file link public-files GET"] == (200, sha(FILES["solo.txt"]))
    assert first["drop PUT"] == 201 and first["drop PUT of a taken name"] == 201
    assert first["drop PROPFIND"] == [f"/remote.php/dav/public-files/{links.drop}/"]
    assert first["drop GET"] == 404
    owner_link = first["owner /f/"]
    assert owner_link[0] == 303 and owner_link[1].endswith("scrollto=solo.txt")
    assert owner_link[2] == f"/remote.php/dav/files/{UID}/solo.txt"
    assert first["another user's private link"][0] == 404
    status, login = first["private link, browser not signed in"]
    assert status == 303 and login.startswith("/index.php/login?redirect_url=")
    assert first["private link, API client not signed in"][0] == 401


def test_the_cutover_and_rollback_ran_through_the_proxy(scenario: Scenario) -> None:
    assert (scenario.cutover.state, scenario.cutover.proxies) == ("new", 1)
    assert scenario.rollback["ok"] and scenario.rollback["state"] == "legacy"
    # what was dropped on the new stack went back to ownCloud 10 with ownCloud's fileids
    assert {path for path, _new, _oc10 in scenario.rollback["new_ids"]} >= {
        "drop/dropped-after.txt", "drop/dropped-changed.txt"}


def test_same_urls_and_password_give_the_same_answers_on_the_new_stack(scenario: Scenario
                                                                       ) -> None:
    before, after = scenario.visits["before"], scenario.visits["after"]
    assert after.answers == before.answers
    assert after.bare == before.bare


def test_drops_before_and_after_the_cutover_reach_the_owner(scenario: Scenario) -> None:
    """Files dropped before the cutover are in the owner's folder on the new stack, and one
    dropped after lands there too; a taken name never replaces the owner's file."""
    before = scenario.visits["before"].dropped
    assert before["dropped-before.txt"] == b"dropped before\n"
    assert before["already.txt"] == FILES["drop/already.txt"]
    assert before["already (2).txt"] == b"not the owner's before\n"
    after = scenario.visits["after"].dropped
    assert {k: v for k, v in after.items() if k in before} == before
    assert after["dropped-after.txt"] == b"dropped after\n"
    assert after["already (3).txt"] == b"not the owner's after\n"


def test_the_owners_changes_on_the_new_stack_show_through_every_link(scenario: Scenario
                                                                     ) -> None:
    after, changed = scenario.visits["after"].answers, scenario.visits["changed"].answers
    assert changed["file download"][:2] == (200, sha(CHANGED["solo.txt"]))
    assert changed["file download"][3] != after["file download"][3]  # the ETag
    assert changed["file link public-files GET"] == (200, sha(CHANGED["solo.txt"]))
    assert changed["webdav GET"][:2] == (200, sha(CHANGED["linked/a.txt"]))
    assert changed["download with the cookie of the first visit"] == (
        200, sha(CHANGED["linked/a.txt"]))
    listing = changed["webdav PROPFIND"][1]
    assert listing["/public.php/webdav/a.txt"][f"{OC}id"] == (
        after["webdav PROPFIND"][1]["/public.php/webdav/a.txt"][f"{OC}id"])
    untouched = {k: v for k, v in changed.items() if k not in (
        "file download", "file range", "file link public-files GET", "webdav GET",
        "download with the cookie of the first visit", "webdav PROPFIND",
        "public-files PROPFIND", "folder zip", "file link PROPFIND", "rclone lsjson --hash",
        "file page", "folder page")}
    assert untouched == {k: after[k] for k in untouched}


def test_links_without_password_over_public_webdav_follow_their_owner(scenario: Scenario
                                                                      ) -> None:
    for phase in ("after", "changed"):
        assert routed(scenario.visits[phase], "bare") == {("link", UID, "new")}, phase
    changed = scenario.visits["changed"]
    assert changed.bare["GET"][:2] == (200, sha(CHANGED["solo.txt"]))
    assert changed.dropped["bare-after.txt"] == b"dropped after over public.php\n"
    assert changed.dropped["bare-changed.txt"] == b"dropped changed over public.php\n"
    back = scenario.visits["back"].dropped
    assert back["bare-after.txt"] == b"dropped after over public.php\n"


def test_rollback_keeps_every_link_working(scenario: Scenario) -> None:
    """After `ocbridge rollback` the same URLs and password answer as they did on the new stack
    just before it (same etags and ids: the rollback keeps them), now from ownCloud 10."""
    changed, back = scenario.visits["changed"], scenario.visits["back"]
    assert back.answers == changed.answers
    assert {k: v for k, v in back.dropped.items() if k in changed.dropped and
            not k.startswith("bare-")} == {k: v for k, v in changed.dropped.items()
                                           if not k.startswith("bare-")}
    assert back.dropped["dropped-back.txt"] == b"dropped back\n"
    assert back.dropped["bare-back.txt"] == b"dropped back over public.php\n"


def routed(visit: Visit, who: str) -> set[tuple[str | None, str | None, str]]:
    """{(source, uid, stack)} of the visit's requests sent as `who`."""
    found = {(line["source"], line["uid"], line["stack"]) for w, line in visit.routed
             if w == who}
    assert found, who
    return found


@pytest.mark.parametrize(("phase", "stack"), [("before", "legacy"), ("after", "new"),
                                              ("changed", "new"), ("back", "legacy")])
def test_each_visit_is_served_by_the_owners_stack_of_the_moment(
        scenario: Scenario, phase: str, stack: str) -> None:
    visit = scenario.visits[phase]
    assert routed(visit, "link") == {("link", UID, stack)}
    assert routed(visit, "owner") == {("basic", UID, stack)}
    # other users and visitors who are not signed in stay on ownCloud 10 (the default)
    assert routed(visit, "other") == {("basic", scenario.links.other[0], "legacy")}
    assert routed(visit, "anonymous") == {("anonymous", None, "legacy")}
