"""Public links over real HTTP on both backends: /s/<token> pages and downloads (files as they
are, folders as streamed zip or tar), the password form, expiry, /public.php/webdav and
/remote.php/dav/public-files/<token>/ with read-only, file-drop and read-write links."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import Settings
from migrate.runner import UserMigration
from migrate.source import LegacySource
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.instance import open_instance
from newstack.service import open_newstack
from newstack.sharing.view import SharingBackend
from tests.newstack.backends import BACKENDS
from tests.newstack.legacy.stack import TEST_HASH_COST, empty_instance, open_backend
from tests.newstack.live import live_server
from tests.newstack.ocs.golden import sample
from tests.newstack.sharing_stack import FILES, SharingServer, sharing_server

D = "{DAV:}"


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharingServer]:
    with sharing_server(request.param, tmp_path) as server:
        yield server


def link(stack: SharingServer, path: str, **fields: Any) -> dict[str, Any]:
    data = {"path": path, "shareType": "3", **{k: str(v) for k, v in fields.items()}}
    response = stack.ocs("alice", "POST", "shares", data=data)
    assert response.json()["ocs"]["meta"]["statuscode"] == 100, response.text
    return response.json()["ocs"]["data"]  # type: ignore[no-any-return]


def anonymous(stack: SharingServer) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=30, follow_redirects=False)


def test_file_link_downloads_the_bytes(stack: SharingServer) -> None:
    share = link(stack, "/Docs/sub/b.txt")
    with anonymous(stack) as web:
        page = web.get(f"/index.php/s/{share['token']}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "b.txt" in page.text and "Alice Adams" in page.text
        got = web.get(f"/s/{share['token']}/download")
        assert got.status_code == 200 and got.content == FILES["Docs/sub/b.txt"]
        assert got.headers["content-disposition"] == (
            "attachment; filename*=UTF-8''b.txt; filename=\"b.txt\"")
        part = web.get(f"/index.php/s/{share['token']}/download", headers={"Range": "bytes=5-9"})
        assert part.status_code == 206 and part.content == FILES["Docs/sub/b.txt"][5:10]
        assert web.get("/s/nosuchtoken000").status_code == 404
        assert web.get("/index.php/s/nosuchtoken000/download").status_code == 404


def _zip(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_folder_link_downloads_a_streamed_zip_or_tar(stack: SharingServer) -> None:
    share = link(stack, "/Docs")
    with anonymous(stack) as web:
        got = web.get(f"/s/{share['token']}/download")
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert "filename=\"Docs.zip\"" in got.headers["content-disposition"]
        assert _zip(got.content) == {"Docs/": b"", "Docs/a.txt": FILES["Docs/a.txt"],
                                     "Docs/sub/": b"", "Docs/sub/b.txt": FILES["Docs/sub/b.txt"]}
        # data descriptors (bit 3): written without seeking back
        assert zipfile.ZipFile(io.BytesIO(got.content)).getinfo("Docs/a.txt").flag_bits & 0x08
        mac = web.get(f"/s/{share['token']}/download",
                      headers={"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)"})
        assert "filename=\"Docs.tar\"" in mac.headers["content-disposition"]
        with tarfile.open(fileobj=io.BytesIO(mac.content)) as archive:
            names = archive.getnames()
            member = archive.extractfile("Docs/sub/b.txt")
            assert member is not None and member.read() == FILES["Docs/sub/b.txt"]
        assert names == ["Docs", "Docs/a.txt", "Docs/sub", "Docs/sub/b.txt"]
        # a selection: one file as is, one folder zipped, several zipped under the folder
        one = web.get(f"/s/{share['token']}/download", params={"path": "/sub", "files": "b.txt"})
        assert one.content == FILES["Docs/sub/b.txt"]
        sub = web.get(f"/s/{share['token']}/download", params={"files": "sub"})
        assert set(_zip(sub.content)) == {"sub/", "sub/b.txt"}
        several = web.get(f"/s/{share['token']}/download",
                          params={"files": '["a.txt","sub"]'})
        assert "filename=\"Docs.zip\"" in several.headers["content-disposition"]
        assert set(_zip(several.content)) == {"a.txt", "sub/", "sub/b.txt"}
        missing = web.get(f"/s/{share['token']}/download", params={"files": "nope"})
        assert missing.status_code == 404


def test_password_protected_link(stack: SharingServer) -> None:
    share = link(stack, "/Docs/a.txt", password="open sesame")
    token = share["token"]
    with anonymous(stack) as web:
        first = web.get(f"/s/{token}/download")
        assert first.status_code == 303
        assert first.headers["location"] == f"/index.php/s/{token}/authenticate"
        form = web.get(first.headers["location"])
        assert form.status_code == 200 and 'name="password"' in form.text
        wrong = web.post(f"/index.php/s/{token}/authenticate", data={"password": "nope"})
        assert wrong.status_code == 200 and "wrong" in wrong.text
        assert web.get(f"/s/{token}/download").status_code == 303
        right = web.post(f"/index.php/s/{token}/authenticate",
                         data={"password": "open sesame"})
        assert right.status_code == 303 and right.headers["location"] == f"/index.php/s/{token}"
        got = web.get(f"/s/{token}/download")
        assert got.status_code == 200 and got.content == FILES["Docs/a.txt"]
    # the legacy WebDAV endpoint: token as user, link password as password
    webdav = f"{stack.url}/public.php/webdav"
    assert httpx.get(webdav, auth=(token, "open sesame")).content == FILES["Docs/a.txt"]
    refused = httpx.get(webdav, auth=(token, "wrong"))
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    assert httpx.get(webdav).status_code == 401
    # the new one: user 'public'
    files = f"{stack.url}/remote.php/dav/public-files/{token}/a.txt"
    assert httpx.get(files, auth=("public", "open sesame")).content == FILES["Docs/a.txt"]
    assert httpx.get(files, auth=("public", "wrong")).status_code == 401
    assert httpx.get(files, auth=("someone", "open sesame")).status_code == 401
    unauthenticated = httpx.get(files)
    assert unauthenticated.status_code == 401 and "WWW-Authenticate" not in (
        unauthenticated.headers)


def test_expired_link_is_not_found(stack: SharingServer) -> None:
    share = link(stack, "/Docs", expireDate="2099-01-01")
    stack.backend.shares.update(int(share["id"]), expiration=dt.date(2020, 1, 1))
    token = share["token"]
    with anonymous(stack) as web:
        assert web.get(f"/s/{token}").status_code == 404
        assert web.get(f"/s/{token}/download").status_code == 404
        assert web.request("PROPFIND", f"/remote.php/dav/public-files/{token}/").status_code \
            == 404
    assert httpx.get(f"{stack.url}/public.php/webdav", auth=(token, "")).status_code == 401


def _propfind(client: httpx.Client, url: str, **kw: Any) -> dict[str, dict[str, str]]:
    response = client.request("PROPFIND", url, headers={"Depth": "1"}, **kw)
    assert response.status_code == 207, response.text
    found = {}
    for item in ET.fromstring(response.content).findall(f"{D}response"):
        props = {}
        for propstat in item.findall(f"{D}propstat"):
            if "200" in (propstat.findtext(f"{D}status") or ""):
                container = propstat.find(f"{D}prop")
                for prop in container if container is not None else []:
                    props[prop.tag] = prop.text or ""
        found[item.findtext(f"{D}href") or ""] = props
    return found


def test_public_files_read_only_folder(stack: SharingServer) -> None:
    share = link(stack, "/Docs")
    base = f"/remote.php/dav/public-files/{share['token']}/"
    with anonymous(stack) as web:
        listing = _propfind(web, base)
        assert sorted(listing) == [base, base + "a.txt", base + "sub/"]
        assert listing[base + "a.txt"][f"{D}getcontentlength"] == str(len(FILES["Docs/a.txt"]))
        assert web.get(base + "a.txt").content == FILES["Docs/a.txt"]
        assert web.put(base + "new.txt", content=b"x").status_code == 403
        assert web.delete(base + "a.txt").status_code == 403
        assert web.request("MKCOL", base + "folder").status_code == 403
        root = web.request("PROPFIND", "/remote.php/dav/public-files/",
                           headers={"Depth": "1"})
        assert root.status_code == 405
        expected = ET.fromstring(sample("error-405-public-files-listing-disabled-docs.xml"))
        assert [(e.tag, e.text) for e in ET.fromstring(root.content)] == [
            (e.tag, e.text) for e in expected]
        with httpx.Client(base_url=stack.url, auth=(share["token"], ""), timeout=30) as legacy:
            legacy_listing = _propfind(legacy, "/public.php/webdav/")
            assert sorted(legacy_listing) == ["/public.php/webdav/",
                                              "/public.php/webdav/a.txt",
                                              "/public.php/webdav/sub/"]


def test_public_files_file_link_is_a_folder_holding_the_file(stack: SharingServer) -> None:
    share = link(stack, "/photo.jpg")
    base = f"/remote.php/dav/public-files/{share['token']}/"
    with anonymous(stack) as web:
        assert sorted(_propfind(web, base)) == [base, base + "photo.jpg"]
        assert web.get(base + "photo.jpg").content == FILES["photo.jpg"]
        assert web.get(base + "other.jpg").status_code == 404


def test_file_drop_takes_uploads_and_shows_nothing(stack: SharingServer) -> None:
    share = link(stack, "/Docs", permissions=4)
    base = f"/remote.php/dav/public-files/{share['token']}/"
    with anonymous(stack) as web:
        assert web.put(base + "dropped.txt", content=b"for alice").status_code == 201
        # a second upload with that name never replaces the first (PublicFilesPlugin)
        assert web.put(base + "dropped.txt", content=b"again").status_code == 201
        assert web.put(base + "a.txt", content=b"not alpha").status_code == 201
        assert list(_propfind(web, base)) == [base]
        assert web.get(base + "a.txt").status_code == 404
        assert web.get(f"/s/{share['token']}/download").status_code == 404
        page = web.get(f"/s/{share['token']}")
        assert page.status_code == 200 and "file drop" in page.text
    def content(path: str) -> bytes:
        return b"".join(stack.backend.read("alice", stack.backend.stat("alice", path)))

    assert content("Docs/dropped.txt") == b"for alice"
    assert content("Docs/dropped (2).txt") == b"again"
    assert content("Docs/a.txt") == FILES["Docs/a.txt"]
    assert content("Docs/a (2).txt") == b"not alpha"


def test_read_write_link_changes_the_owners_files(stack: SharingServer) -> None:
    share = link(stack, "/Docs", publicUpload="true")
    assert share["permissions"] == 15
    base = f"/remote.php/dav/public-files/{share['token']}/"
    before = stack.backend.stat("alice", "Docs").etag
    with anonymous(stack) as web:
        assert web.put(base + "a.txt", content=b"changed").status_code == 204
        assert web.request("MKCOL", base + "made").status_code == 201
        moved = web.request("MOVE", base + "a.txt",
                            headers={"Destination": f"{stack.url}{base}made/a.txt"})
        assert moved.status_code == 201, moved.text
        assert web.delete(base + "sub").status_code == 204
    moved_node = stack.backend.stat("alice", "Docs/made/a.txt")
    assert b"".join(stack.backend.read("alice", moved_node)) == b"changed"
    assert [n.name for n in stack.backend.children("alice", "Docs")] == ["made"]
    assert stack.backend.stat("alice", "Docs").etag != before


def test_a_link_survives_migration_to_the_native_stack(tmp_path: Path) -> None:
    """Made on an ownCloud 10 instance served in place, the link keeps its URL, token and
    password after its owner moves to the native stack, and gives the same bytes."""
    manifest = empty_instance(tmp_path / "oc10", {"alice": "alice's secret"})
    served = open_backend(manifest)
    old = SharingBackend(served)
    for path, content in FILES.items():
        for depth in range(1, path.count("/") + 1):
            folder = "/".join(path.split("/")[:depth])
            if not [n for n in old.children("alice", folder.rpartition("/")[0])
                    if n.path == folder]:
                old.mkdir("alice", folder)
        old.write("alice", path, io.BytesIO(content), length=len(content))

    def fetch(url: str, token: str) -> dict[str, bytes]:
        got = {}
        with httpx.Client(base_url=url, timeout=30) as web:
            assert web.post(f"/index.php/s/{token}/authenticate",
                            data={"password": "link pw"}).status_code == 303
            got["zip"] = web.get(f"/index.php/s/{token}/download").content
            got["one"] = web.get(f"/index.php/s/{token}/download",
                                 params={"path": "/sub", "files": "b.txt"}).content
        got["webdav"] = httpx.get(f"{url}/public.php/webdav/a.txt",
                                  auth=(token, "link pw")).content
        got["files"] = httpx.get(f"{url}/remote.php/dav/public-files/{token}/sub/b.txt",
                                 auth=("public", "link pw")).content
        assert httpx.get(f"{url}/public.php/webdav/a.txt",
                         auth=(token, "wrong")).status_code == 401
        return got

    app = NewstackApp(old, ServerInfo(hostname="testhost"))
    app.shares_api.hash_cost = TEST_HASH_COST
    with live_server(app) as url, httpx.Client(auth=("alice", "alice's secret")) as alice:
        created = alice.post(f"{url}/ocs/v1.php/apps/files_sharing/api/v1/shares",
                             params={"format": "json"},
                             data={"path": "/Docs", "shareType": "3", "password": "link pw"})
        share = created.json()["ocs"]["data"]
        before = fetch(url, share["token"])
    assert before["one"] == FILES["Docs/sub/b.txt"] and before["webdav"] == FILES["Docs/a.txt"]

    settings = dataclasses.replace(Settings(), newstack=dataclasses.replace(
        Settings().newstack, data_dir=tmp_path / "new"))
    served.close()
    stack = open_newstack(settings)
    instance = open_instance(Path(manifest.config_php))
    try:
        UserMigration(LegacySource(instance), stack.store, stack.driver, "alice").run()
    finally:
        instance.close()
        stack.close()
    stack = open_newstack(settings)  # as it starts after migration: oC10's identity
    try:
        new = SharingBackend(stack.backend)
        moved = new.shares.by_token(share["token"])
        assert moved is not None and str(moved.id) == share["id"]
        with live_server(NewstackApp(new, ServerInfo(hostname="testhost"))) as url:
            after = fetch(url, share["token"])
    finally:
        stack.close()
    assert _zip(after["zip"]) == _zip(before["zip"])
    assert {k: v for k, v in after.items() if k != "zip"} == {
        k: v for k, v in before.items() if k != "zip"}


LINK_PROPS = ("<?xml version='1.0'?><d:propfind xmlns:d='DAV:' xmlns:oc='http://owncloud.org/ns'>"
              "<d:prop><oc:public-link-item-type/><oc:public-link-permission/>"
              "<oc:public-link-expiration/><oc:public-link-share-datetime/>"
              "<oc:public-link-share-owner/><d:getcontentlength/></d:prop></d:propfind>")


def test_public_files_root_describes_the_link(stack: SharingServer) -> None:
    share = link(stack, "/Docs", permissions=5, expireDate="2099-03-04")
    base = f"/remote.php/dav/public-files/{share['token']}/"
    oc = "{http://owncloud.org/ns}"
    with anonymous(stack) as web:
        listing = _propfind(web, base, content=LINK_PROPS)
        root = listing[base]
        stime = dt.datetime.fromtimestamp(share["stime"], dt.UTC)
        assert {k: v for k, v in root.items() if k.startswith(oc + "public-link")} == {
            oc + "public-link-item-type": "folder",
            oc + "public-link-permission": "5",
            oc + "public-link-expiration": "Wed, 04 Mar 2099 00:00:00 GMT",
            oc + "public-link-share-datetime": stime.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            oc + "public-link-share-owner": "alice",
        }
        # only the root, and only on the new public WebDAV API
        assert not any(k.startswith(oc + "public-link") for k in listing[base + "a.txt"])
        asked = ("<?xml version='1.0'?><d:propfind xmlns:d='DAV:' "
                 "xmlns:oc='http://owncloud.org/ns'><d:prop><oc:public-link-share-owner/>"
                 "<oc:public-link-item-type/></d:prop></d:propfind>")
        file_link = link(stack, "/photo.jpg")
        found = _propfind(web, f"/remote.php/dav/public-files/{file_link['token']}/",
                          content=asked)
        assert found[f"/remote.php/dav/public-files/{file_link['token']}/"] == {
            oc + "public-link-share-owner": "alice", oc + "public-link-item-type": "file"}
    with httpx.Client(base_url=stack.url, auth=(share["token"], ""), timeout=30) as legacy:
        old_api = _propfind(legacy, "/public.php/webdav/", content=LINK_PROPS)[
            "/public.php/webdav/"]
        assert not any(k.startswith(oc + "public-link") for k in old_api)
