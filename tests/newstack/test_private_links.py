"""Private links /index.php/f/<fileid> and /f/<fileid> on both backends: the owner and
recipients get ViewController::showFile's redirect into the files app (with Webdav-Location),
others the 404 page, visitors without credentials the login page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.newstack.backends import BACKENDS
from tests.newstack.sharing_stack import PASSWORDS, SharingServer, sharing_server


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharingServer]:
    with sharing_server(request.param, tmp_path) as server:
        yield server


def opened(stack: SharingServer, uid: str | None, url: str) -> httpx.Response:
    auth = (uid, PASSWORDS[uid]) if uid is not None else None
    return httpx.get(f"{stack.url}{url}", auth=auth, follow_redirects=False)


def test_owner_and_recipient_follow_the_link(stack: SharingServer) -> None:
    file_id = stack.backend.stat("alice", "Docs/sub/b.txt").fileid
    folder_id = stack.backend.stat("alice", "Docs").fileid
    to_file = opened(stack, "alice", f"/index.php/f/{file_id}")
    assert to_file.status_code == 303
    assert to_file.headers["location"] == "/index.php/apps/files/?dir=%2FDocs%2Fsub&scrollto=b.txt"
    assert to_file.headers["webdav-location"] == "/remote.php/dav/files/alice/Docs/sub/b.txt"
    to_folder = opened(stack, "alice", f"/f/{folder_id}")
    assert to_folder.status_code == 303
    assert to_folder.headers["location"] == "/index.php/apps/files/?dir=%2FDocs"
    assert to_folder.headers["webdav-location"] == "/remote.php/dav/files/alice/Docs"

    # bob gets the folder shared; the link then resolves inside his mount
    shared = stack.ocs("alice", "POST", "shares",
                       data={"path": "/Docs", "shareType": "0", "shareWith": "bob"})
    assert shared.json()["ocs"]["meta"]["statuscode"] == 100
    for_bob = opened(stack, "bob", f"/index.php/f/{file_id}")
    assert for_bob.status_code == 303
    assert for_bob.headers["webdav-location"] == "/remote.php/dav/files/bob/Docs/sub/b.txt"

    # carol has no access: the 404 page with oC10's sentence
    for_carol = opened(stack, "carol", f"/index.php/f/{file_id}")
    assert for_carol.status_code == 404
    assert "You don&#x27;t have permissions to access this file/folder" in for_carol.text
    assert opened(stack, "alice", "/index.php/f/999999999").status_code == 404
    assert opened(stack, "alice", "/index.php/f/abc").status_code == 404


def test_without_credentials_the_login_page(stack: SharingServer) -> None:
    file_id = stack.backend.stat("alice", "photo.jpg").fileid
    response = opened(stack, None, f"/index.php/f/{file_id}")
    assert response.status_code == 303
    # urlencode()d by SecurityMiddleware, then once more by the URL generator
    assert response.headers["location"] == (
        f"/index.php/login?redirect_url=%252Findex.php%252Ff%252F{file_id}")
    api = httpx.get(f"{stack.url}/f/{file_id}", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.json() == {"message": "Current user is not logged in"}
