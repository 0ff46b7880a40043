"""Two real backends in this process (an ownCloud 10 instance served in place, a native new stack)
and `ocbridge proxy` as a separate process in front of them, with its own bridge store."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import httpx

from bridge import metrics
from bridge.store import BridgeStore
from newstack.app import NewstackApp, ServerInfo
from newstack.server import free_port
from tests.newstack.backends import StackUser, make_backend
from tests.newstack.legacy.stack import empty_instance, open_backend
from tests.newstack.live import live_server

USERS = {"alice": "Alice-pa55word", "bob": "Bob-pa55word"}


@dataclasses.dataclass(frozen=True)
class Backends:
    legacy: str
    new: str
    config_php: str

    def url(self, stack: str) -> str:
        return self.legacy if stack == "legacy" else self.new


@contextmanager
def backends(tmp_path: Path, threads: int = 8) -> Iterator[Backends]:
    """Both stacks on free loopback ports, each holding both users (as after a migration)."""
    manifest = empty_instance(tmp_path / "oc10", USERS)
    legacy_backend = open_backend(manifest)
    new_backend = make_backend("native", tmp_path / "new",
                               [StackUser(uid, pw, uid.title()) for uid, pw in USERS.items()])
    try:
        with (live_server(NewstackApp(legacy_backend, ServerInfo(hostname="legacy")),
                          threads=threads) as legacy,
              live_server(NewstackApp(new_backend, ServerInfo(hostname="new")),
                          threads=threads) as new):
            for base in (legacy, new):
                # homes exist, as for a migrated user; ownCloud makes a home at first login,
                # and concurrent first requests race each other there (409 on PUT)
                for uid in USERS:
                    listing(base, uid)
            yield Backends(legacy, new, manifest.config_php)
    finally:
        legacy_backend.close()


@dataclasses.dataclass
class ProxyProcess:
    url: str
    process: subprocess.Popen[bytes]
    store: BridgeStore
    workers: int
    log: Path

    def flip(self, uid: str, state: str) -> tuple[int, float]:
        """Change `uid`'s routing and wait until every worker applied it; (epoch, when done)."""
        row = self.store.set_state(uid, state)
        status = self.store.wait_for_acks(row.epoch, 15)
        assert status.complete, f"{status}\n{self.log_tail()}"
        assert len(status.acked) == self.workers, status
        return row.epoch, time.monotonic()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def proxy_process(tmp_path: Path, stacks: Backends, *, workers: int = 2,
                  routes: dict[str, str] | None = None) -> Iterator[ProxyProcess]:
    """`ocbridge proxy --workers N` in its own session, serving once every worker has joined
    the live set; `routes` (uid -> state) are set before it starts."""
    bridge = tmp_path / "proxy-bridge"
    bridge.mkdir()
    store = BridgeStore.open(f"sqlite:///{bridge / 'bridge.db'}")
    for uid, state in (routes or {}).items():
        store.set_state(uid, state)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
           "OCBRIDGE_LEGACY__CONFIG_PHP": stacks.config_php,
           "OCBRIDGE_NEWSTACK__DATA_DIR": str(bridge),
           "OCBRIDGE_PROXY__LEGACY_URL": stacks.legacy,
           "OCBRIDGE_PROXY__NEWSTACK_URL": stacks.new,
           "OCBRIDGE_PROXY__REFRESH_MS": "50"}
    log = tmp_path / "proxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ocbridge"), "proxy", "--listen",
             f"127.0.0.1:{port}", "--workers", str(workers)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    running = ProxyProcess(f"http://127.0.0.1:{port}", process, store, workers, log)
    try:
        deadline = time.monotonic() + 30
        while len(store.proxies()) < workers:
            assert process.poll() is None, f"the proxy exited\n{running.log_tail()}"
            assert time.monotonic() < deadline, f"the proxy did not start\n{running.log_tail()}"
            time.sleep(0.05)
        assert httpx.get(running.url + "/status.php", timeout=10).status_code == 200
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        store.close()


def dav(uid: str, path: str = "") -> str:
    return f"/remote.php/dav/files/{uid}/{path}"


def listing(base: str, uid: str) -> set[str]:
    """The names in `uid`'s root folder on one backend, asked directly."""
    with httpx.Client(base_url=base, auth=(uid, USERS[uid]), timeout=60) as client:
        response = client.request("PROPFIND", dav(uid), headers={"Depth": "1"},
                                  content=b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:">'
                                          b"<d:prop><d:resourcetype/></d:prop></d:propfind>")
    assert response.status_code == 207, response.text
    root = dav(uid)
    names = set()
    for href in ET.fromstring(response.content).iter("{DAV:}href"):
        path = unquote(href.text or "")
        if path.rstrip("/") != root.rstrip("/"):
            names.add(path.removeprefix(root).strip("/"))
    return names


def requests_by_stack() -> dict[str, float]:
    """This process's proxy request counter, summed per stack."""
    out: dict[str, float] = {}
    for family in metrics.PROXY_REQUESTS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                stack = sample.labels["stack"]
                out[stack] = out.get(stack, 0.0) + sample.value
    return out


def assert_one_request_on(stack: str, before: dict[str, float], what: object) -> None:
    """Exactly one request more than `before`, counted on `stack` (waits up to 5 s: the
    counter moves just after the answer left, and the client may look first)."""
    deadline = time.monotonic() + 5
    while (requests_by_stack().get(stack, 0) == before.get(stack, 0)
           and time.monotonic() < deadline):
        time.sleep(0.01)
    after = requests_by_stack()
    assert after.get(stack, 0) - before.get(stack, 0) == 1, (what, before, after)
    assert sum(after.values()) - sum(before.values()) == 1
