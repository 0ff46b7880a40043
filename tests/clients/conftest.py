"""Shared fixtures for real-client tests: the new stack on either backend, served over HTTP."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from newstack.app import NewstackApp, ServerInfo
from newstack.backend import FilesBackend
from tests.newstack.backends import BACKENDS, StackUser, make_backend
from tests.newstack.live import live_server


@dataclasses.dataclass(frozen=True)
class NewstackServer:
    """A live new stack with one user; `dav_url` is that user's files on remote.php/dav."""

    base_url: str
    user: str
    password: str
    backend: FilesBackend

    @property
    def dav_url(self) -> str:
        return f"{self.base_url}/remote.php/dav/files/{self.user}/"


@pytest.fixture(params=BACKENDS)
def newstack_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewstackServer]:
    """User alice on either backend in tmp_path (SQLite + POSIX), on a free port."""
    user, password = "alice", "Client-test pa55"
    backend = make_backend(request.param, tmp_path,
                           [StackUser(user, password, "Alice", "alice@example.org")])
    app = NewstackApp(backend, ServerInfo(hostname="testhost"))
    with live_server(app, threads=8) as url:
        yield NewstackServer(url, user, password, backend)


def require_binary(binary: str, package: str) -> str:
    """The path of `binary`; fails (not skips) the test with the install command if missing."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: run `apt-get install {package}` "
                    "(scripts/dev test installs it)")
    return path
