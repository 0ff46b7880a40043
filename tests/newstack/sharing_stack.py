"""Both backends with users in groups and a few files, served over real HTTP, for the share API
and public/private link tests (the OCS layer and the link endpoints are shared by both)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from fixtures.accounts import add_user
from newstack.app import NewstackApp, ServerInfo
from newstack.backend import FilesBackend
from newstack.legacy.backend import Oc10Backend
from newstack.native import NativeBackend
from newstack.sharing.view import SharingBackend
from tests.newstack.backends import StackUser, make_backend
from tests.newstack.legacy.stack import TEST_HASH_COST, empty_instance, open_backend
from tests.newstack.live import live_server

PASSWORDS = {"alice": "alice's secret", "bob": "bob's secret", "carol": "carol's secret"}
USERS = [StackUser("alice", PASSWORDS["alice"], "Alice Adams", "alice@example.org"),
         StackUser("bob", PASSWORDS["bob"], "Bob"),
         StackUser("carol", PASSWORDS["carol"], "Carol")]
#: staff = bob and carol; alice is in no group
GROUPS = {"staff": ("bob", "carol")}
#: what alice has before each test
FILES = {"Docs/a.txt": b"alpha\n", "Docs/sub/b.txt": b"beta " * 1000, "photo.jpg": b"\xff\xd8jpeg"}


def make_sharing_backend(kind: str, where: Path) -> FilesBackend:
    """A backend of `kind` with USERS in GROUPS and FILES in alice's home."""
    if kind == "oc10":
        manifest = empty_instance(where / "oc10", {})
        for user in USERS:
            groups = tuple(g for g, members in GROUPS.items() if user.uid in members)
            add_user(Path(manifest.config_php), user.uid, user.password,
                     display_name=user.display_name, email=user.email, groups=groups,
                     hash_cost=TEST_HASH_COST)
        backend: Any = open_backend(manifest)
    else:
        backend = make_backend(kind, where, USERS)
        store = backend.store
        for gid, members in GROUPS.items():
            store.add_group(gid)
            for uid in members:
                store.add_member(gid, uid)
    backend = SharingBackend(backend)
    for path, content in FILES.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            try:
                backend.stat("alice", folder)
            except Exception:  # noqa: BLE001 - not there yet
                backend.mkdir("alice", folder)
        backend.write("alice", path, io.BytesIO(content), length=len(content))
    return backend  # type: ignore[no-any-return]


def close_sharing_backend(backend: SharingBackend) -> None:
    inner = backend.inner
    if isinstance(inner, NativeBackend):
        inner.store.engine.dispose()
    elif isinstance(inner, Oc10Backend):
        inner.close()


@contextmanager
def uncached_view(kind: str, where: Path) -> Iterator[SharingBackend]:
    """make_sharing_backend's view with received_ttl=0: tests change shares between two calls
    and must see the change at once."""
    backend = make_sharing_backend(kind, where)
    assert isinstance(backend, SharingBackend)
    try:
        yield SharingBackend(backend.inner, received_ttl=0)
    finally:
        close_sharing_backend(backend)


@dataclasses.dataclass
class SharingServer:
    url: str
    backend: FilesBackend
    app: NewstackApp
    clients: dict[str, httpx.Client]

    def ocs(self, uid: str, method: str, route: str, *, version: int = 1, fmt: str = "json",
            data: dict[str, Any] | None = None, params: dict[str, Any] | None = None
            ) -> httpx.Response:
        query = dict(params or {})
        if fmt == "json":
            query["format"] = "json"
        return self.clients[uid].request(
            method, f"{self.url}/ocs/v{version}.php/apps/files_sharing/api/v1/{route}",
            params=query, data=data)


@contextmanager
def sharing_server(kind: str, where: Path) -> Iterator[SharingServer]:
    backend = make_sharing_backend(kind, where)
    app = NewstackApp(backend, ServerInfo(hostname="testhost"))
    # link passwords are hashed at oC10's cost in production; cheap here
    app.shares_api.hash_cost = TEST_HASH_COST
    with live_server(app) as url:
        clients = {uid: httpx.Client(auth=(uid, password), timeout=30)
                   for uid, password in PASSWORDS.items()}
        try:
            yield SharingServer(url, backend, app, clients)
        finally:
            for client in clients.values():
                client.close()
