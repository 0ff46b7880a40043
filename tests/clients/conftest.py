"""Shared fixtures for real-client tests: the new stack on a native backend, served over HTTP."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import Settings
from newstack.app import NewstackApp, ServerInfo
from newstack.native import NativeBackend
from newstack.service import open_newstack
from tests.newstack.live import live_server


@dataclasses.dataclass(frozen=True)
class NewstackServer:
    """A live new stack with one user; `dav_url` is that user's files on remote.php/dav."""

    base_url: str
    user: str
    password: str
    backend: NativeBackend

    @property
    def dav_url(self) -> str:
        return f"{self.base_url}/remote.php/dav/files/{self.user}/"


@pytest.fixture
def newstack_server(tmp_path: Path) -> Iterator[NewstackServer]:
    """The native backend in tmp_path (SQLite + POSIX blobs) with user alice, on a free port."""
    defaults = Settings()
    settings = dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=tmp_path / "data"))
    stack = open_newstack(settings)
    user, password = "alice", "Client-test pa55"
    stack.store.add_user(user, password=password, display_name="Alice",
                         email="alice@example.org")
    app = NewstackApp(stack.backend, ServerInfo(hostname="testhost"))
    with live_server(app, threads=8) as url:
        yield NewstackServer(url, user, password, stack.backend)


def require_binary(binary: str, package: str) -> str:
    """The path of `binary`; fails (not skips) the test with the install command if missing."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: run `apt-get install {package}` "
                    "(scripts/dev test installs it)")
    return path
