"""The product's promise with real clients: owncloudcmd and rclone (vendor owncloud) work through
the proxy against ownCloud 10 (the oc10 backend), the user is cut over while writing, and the
clients notice nothing: no download of what they have, no conflict, same etags and ids."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import load_settings
from bridge.cutover import Cutover, Rollback
from bridge.demo import DemoPorts, Servers, SimulatedClient, demo_config
from bridge.store import BridgeStore
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from newstack.server import free_port
from tests.clients.conftest import NewstackServer, require_binary
from tests.clients.test_sync_clients import journal_entries, local_state, owncloudcmd
from tests.newstack.legacy.stack import TEST_HASH_COST

#: owns and receives no share (links across a cutover: test_links_cutover.py)
UID = "dave"


@dataclasses.dataclass
class Bridge:
    manifest: Manifest
    config: Path
    ports: DemoPorts
    proxy_log: Path
    user: NewstackServer  # the user as a client sees them: base URL = the proxy

    def dav(self, name: str) -> str:
        return f"{self.ports.url('proxy')}/remote.php/dav/files/{UID}/{name}"


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    profile = dataclasses.replace(get_profile("small"), hash_cost=TEST_HASH_COST)
    manifest, _ = build_instance(tmp_path / "legacy", "sqlite", profile, 11)
    ports = DemoPorts(free_port(), free_port(), free_port())
    config = tmp_path / "ocbridge.toml"
    config.write_text(demo_config(Path(manifest.config_php), tmp_path / "new", ports),
                      encoding="utf-8")
    password = next(str(u["password"]) for u in manifest.users if u["uid"] == UID)
    with Servers(config, tmp_path / "logs") as servers:
        servers.start("legacy", ["serve", "legacy"], ports.url("legacy") + "/status.php")
        servers.start("newstack", ["serve", "newstack"], ports.url("newstack") + "/status.php")
        servers.start("proxy", ["proxy"], ports.url("proxy") + "/status.php")
        yield Bridge(manifest, config, ports, tmp_path / "logs" / "proxy.log",
                     NewstackServer(ports.url("proxy"), UID, password, None))  # type: ignore[arg-type]


def rclone_tree(user: NewstackServer) -> dict[str, tuple[int, str]]:
    """path → (size, SHA-1) of every file, as rclone (vendor owncloud) lists them."""
    binary = require_binary("rclone", "rclone")
    obscured = subprocess.run([binary, "obscure", user.password], capture_output=True,
                              text=True, check=True).stdout.strip()
    env = {**os.environ, "RCLONE_CONFIG": "/dev/null", "RCLONE_CONFIG_OCB_TYPE": "webdav",
           "RCLONE_CONFIG_OCB_URL": user.dav_url, "RCLONE_CONFIG_OCB_VENDOR": "owncloud",
           "RCLONE_CONFIG_OCB_USER": user.user, "RCLONE_CONFIG_OCB_PASS": obscured}
    done = subprocess.run([binary, "lsjson", "-R", "--files-only", "--hash", "ocb:"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return {e["Path"]: (e["Size"], e.get("Hashes", {}).get("sha1", ""))
            for e in json.loads(done.stdout)}


def proxy_requests(log: Path, start: int) -> list[dict[str, Any]]:
    """The proxy's access-log lines written after byte `start` of its log."""
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the proxy's own messages
        if isinstance(entry, dict) and "method" in entry:
            out.append(entry)
    return out


def test_owncloudcmd_and_rclone_do_not_notice_the_cutover(bridge: Bridge, tmp_path: Path
                                                          ) -> None:
    user = bridge.user
    local = tmp_path / "client"
    local.mkdir()
    exclude = tmp_path / "exclude.lst"
    exclude.write_text("")

    first = owncloudcmd(user, local, exclude)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    journal_before = journal_entries(local)
    state_before = local_state(local)
    tree_before = rclone_tree(user)
    assert len(journal_before) > 20 and len(tree_before) > 20

    # the user keeps working: a client writing throughout, plus one write at each step
    written: dict[str, bytes] = {}
    refused: list[str] = []
    http = httpx.Client(auth=(user.user, user.password), timeout=30)

    def at_step(_uid: str, state: str) -> None:
        name = f"during-{state}.txt"
        body = f"written while {state}\n".encode()
        answer = http.put(bridge.dav(name), content=body)
        if state == "verifying":
            # the freeze was acknowledged by the proxy before the final delta
            assert answer.status_code == 423, answer.status_code
            assert "FileLocked" in answer.text
            refused.append(name)
        elif state == "frozen" and answer.status_code == 423:
            refused.append(name)  # the proxy had already applied the freeze
        elif state in ("copying", "catching_up", "frozen"):
            # just after the freeze was committed the proxy may still route by the epoch
            # before: the write lands on ownCloud and the drain + final delta must carry it
            assert answer.status_code in (201, 204), (state, answer.status_code)
            written[name] = body

    settings = load_settings(bridge.config)
    store = BridgeStore.from_settings(settings)
    try:
        with SimulatedClient(user.base_url, [(user.user, user.password)], pause=0.05) as client:
            result = Cutover(settings, store, on_phase=at_step).run(UID)
    finally:
        store.close()
    assert result.ok, result.reason
    assert result.proxies == 1 and result.freeze_seconds is not None
    assert "during-verifying.txt" in refused and set(written) | set(refused) == {
        f"during-{s}.txt" for s in ("copying", "catching_up", "frozen", "verifying")}
    # what was refused under the freeze succeeds now, on the new stack
    for name in refused:
        retried = http.put(bridge.dav(name), content=b"after the freeze\n")
        assert retried.status_code == 201, retried.status_code
        written[name] = b"after the freeze\n"
    for name, body in written.items():
        assert http.get(bridge.dav(name)).content == body, name
    assert client.tally.writes > 0 and client.tally.errors == []
    assert client.check_written() == []
    http.close()
    changed = set(written) | {name for _, name in client.tally.written}

    log_start = bridge.proxy_log.stat().st_size
    second = owncloudcmd(user, local, exclude)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    requests = [r for r in proxy_requests(bridge.proxy_log, log_start) if r["uid"] == UID]
    assert requests and {r["stack"] for r in requests} == {"new"}
    downloads = {r["path"].rsplit("/", 1)[-1] for r in requests
                 if r["method"] == "GET" and "/remote.php/" in r["path"]}
    uploads = [r for r in requests if r["write"]]
    # only what the user wrote during the cutover comes down; nothing goes up
    assert downloads == changed, downloads ^ changed
    assert uploads == []
    state_after = local_state(local)
    assert not [p for p in state_after if "conflict" in p.lower()]
    assert {p: h for p, h in state_after.items() if p not in changed} == state_before
    journal_after = journal_entries(local)
    for path, (etag, fileid) in journal_before.items():
        assert journal_after[path] == (etag, fileid), path

    tree_after = rclone_tree(user)
    assert {p: v for p, v in tree_after.items() if p not in changed} == tree_before

    # rollback after the user worked on the new stack
    with httpx.Client(auth=(user.user, user.password), timeout=30) as http:
        assert http.put(bridge.dav("made-on-new.txt"), content=b"new stack\n").status_code == 201
        assert http.put(bridge.dav("during-copying.txt"), content=b"v2\n").status_code == 204
        assert http.delete(bridge.dav("during-catching_up.txt")).status_code == 204
    third = owncloudcmd(user, local, exclude)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert (local / "made-on-new.txt").read_bytes() == b"new stack\n"
    journal_new = journal_entries(local)
    state_new = local_state(local)
    tree_new = rclone_tree(user)

    store = BridgeStore.from_settings(settings)
    try:
        back = Rollback(settings, store).run(UID)
    finally:
        store.close()
    assert back.ok, back.reason
    # plus whatever the simulated client and the retries wrote after the flip
    assert "made-on-new.txt" in {path for path, _, _ in back.new_ids}
    assert back.changed >= 1 and back.deleted == 1
    on_oc10 = httpx.get(f"{bridge.ports.url('legacy')}/remote.php/dav/files/{UID}/"
                        "made-on-new.txt", auth=(user.user, user.password))
    assert on_oc10.status_code == 200 and on_oc10.content == b"new stack\n"

    log_start = bridge.proxy_log.stat().st_size
    fourth = owncloudcmd(user, local, exclude)
    assert fourth.returncode == 0, fourth.stdout[-3000:] + fourth.stderr[-3000:]
    requests = [r for r in proxy_requests(bridge.proxy_log, log_start) if r["uid"] == UID]
    assert requests and {r["stack"] for r in requests} == {"legacy"}
    assert [r["path"] for r in requests if r["method"] == "GET" and "/remote.php/" in r["path"]
            ] == []
    assert [r for r in requests if r["write"]] == []
    assert local_state(local) == state_new
    new_ids = {path: f"{oc10_id:08d}{bridge.manifest.instance_id}"
               for path, _, oc10_id in back.new_ids}
    journal_back = journal_entries(local)
    for path, (etag, fileid) in journal_new.items():
        # the etag of everything is kept; what the new stack made has ownCloud's fileid now
        assert journal_back[path] == (etag, new_ids.get(path, fileid)), path
    assert rclone_tree(user) == tree_new
