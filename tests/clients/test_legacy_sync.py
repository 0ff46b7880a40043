"""owncloudcmd against an ownCloud 10 fixture instance served in place (the `oc10` backend): a
user's whole tree syncs down with no errors, the client's journal holds exactly the etags and
ids of oc_filecache, and a change made through the server syncs down and leaves the instance
consistent."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.manifest import Manifest
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.backend import Oc10Backend
from tests.clients.conftest import NewstackServer
from tests.clients.test_sync_clients import journal_entries, local_state, owncloudcmd
from tests.fixtures.test_instances import build, check_instance, rows
from tests.newstack.legacy.stack import open_backend
from tests.newstack.live import live_server


@pytest.fixture
def instance(tmp_path: Path, mariadb_url: str) -> Manifest:
    return build(tmp_path, mariadb_url, "small")


@pytest.fixture
def served(instance: Manifest) -> Iterator[tuple[str, Oc10Backend]]:
    backend = open_backend(instance)
    app = NewstackApp(backend, ServerInfo(hostname="testhost"))
    try:
        with live_server(app, threads=8) as url:
            yield url, backend
    finally:
        backend.close()


def user_files(manifest: Manifest, uid: str) -> dict[str, dict[str, Any]]:
    """The user's rows under files/, by path relative to files/."""
    storage = next(r["numeric_id"] for r in rows(manifest, "storages")
                   if r["id"] == f"home::{uid}")
    return {r["path"].removeprefix("files/"): r for r in rows(manifest, "filecache")
            if r["storage"] == storage and r["path"].startswith("files/")}


def test_owncloudcmd_syncs_a_fixture_user_down(instance: Manifest,
                                               served: tuple[str, Oc10Backend],
                                               tmp_path: Path) -> None:
    url, _ = served
    user = max((u for u in instance.users if u["state"] == 1 and u["has_home"]),
               key=lambda u: len(user_files(instance, u["uid"])))
    live = NewstackServer(url, user["uid"], user["password"], None)  # type: ignore[arg-type]
    local = tmp_path / "client"
    local.mkdir()
    exclude = tmp_path / "exclude.lst"
    exclude.write_text("")

    down = owncloudcmd(live, local, exclude)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    expected = user_files(instance, user["uid"])
    home = Path(instance.data_dir) / user["uid"] / "files"
    state = local_state(local)
    assert set(state) == set(expected), set(state) ^ set(expected)
    for rel in expected:
        if state[rel] != "dir":
            assert state[rel] == hashlib.sha1((home / rel).read_bytes()).hexdigest(), rel
    # the client stored what oC10 would have served: the rows' etags and oc:ids
    journal = journal_entries(local)
    for rel, row in expected.items():
        etag, fileid = journal[rel]
        assert etag == row["etag"], rel
        assert fileid == f"{row['fileid']:08d}{instance.instance_id}", rel
    assert not [p for p in state if "conflict" in p.lower()]

    # a change through the server: synced down, and the instance still obeys oC10's rules
    with httpx.Client(auth=(live.user, live.password), timeout=30) as client:
        dav = live.dav_url
        assert client.put(dav + "from-server.txt", content=b"server side\n").status_code == 201
        some_file = next(rel for rel in sorted(expected) if state[rel] != "dir")
        assert client.put(dav + some_file, content=b"replaced\n").status_code == 204
    again = owncloudcmd(live, local, exclude)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (local / "from-server.txt").read_bytes() == b"server side\n"
    assert (local / some_file).read_bytes() == b"replaced\n"
    check_instance(instance, served=True)


def test_serve_legacy_command(instance: Manifest) -> None:
    """`ocbridge serve legacy --oc10-config` starts, answers status.php with the instance's
    own version, and stops on SIGTERM."""
    import signal
    import sys
    import time

    from newstack.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ocbridge")), "serve", "legacy", "--oc10-config",
         instance.config_php, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/status.php", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert status is not None, proc.stdout.read() if proc.stdout else ""
        assert status.json()["version"] == instance.version
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
