"""Capture and replay: an owncloudcmd sync recorded by `ocbridge capture` in front of the legacy
server (an ownCloud 10 fixture served in place), replayed by `ocbridge replay` against it and a
new stack holding the same user migrated; a difference planted on the new stack is found, and
nothing else. Also redaction of credentials in captured flows."""

from __future__ import annotations

import base64
import dataclasses
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from click.testing import CliRunner
from mitmproxy.test import tflow

from bridge.cli import main
from bridge.config import Settings
from fixtures.manifest import Manifest
from migrate.runner import UserMigration
from migrate.source import LegacySource
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.server import free_port
from newstack.service import Newstack, open_newstack
from proxy.capture import REDACTED, redact, redact_authorization
from proxy.replay import flow_user
from tests.clients.conftest import NewstackServer
from tests.clients.test_sync_clients import local_state, owncloudcmd
from tests.fixtures.test_instances import build
from tests.newstack.live import live_server


@dataclasses.dataclass
class TwoStacks:
    """The legacy server and a new stack serving the same user, migrated."""

    manifest: Manifest
    uid: str
    password: str
    legacy: str
    new: str
    stack: Newstack

    def files(self) -> list[tuple[str, str | None, int]]:
        """(path, blob id, size) of the user's files on the new stack, deepest first."""
        with self.stack.store.read() as conn:
            rows = conn.execute(sa.select(schema.nodes.c.path, schema.nodes.c.blob_id,
                                          schema.nodes.c.size).where(
                schema.nodes.c.owner == self.uid, schema.nodes.c.area == "files",
                schema.nodes.c.is_dir.is_(False), schema.nodes.c.size > 0)).all()
        return sorted(((r[0], r[1], r[2]) for r in rows),
                      key=lambda r: (-r[0].count("/"), r[0]))

    def plant_etag(self, path: str, etag: str = "planted0etag") -> None:
        with self.stack.store.write(self.uid) as conn:
            done = conn.execute(schema.nodes.update().where(
                schema.nodes.c.owner == self.uid, schema.nodes.c.area == "files",
                schema.nodes.c.path == path).values(etag=etag))
            assert done.rowcount == 1

    def plant_content(self, blob_id: str, size: int) -> None:
        """Other bytes of the same size under the same blob (a new file: the migrated blob may
        be a hard link to the legacy file)."""
        old = b"".join(self.stack.driver.open(blob_id))
        self.stack.driver.put(blob_id, [bytes(b ^ 0xFF for b in old)], size)


def new_stack(where: Path) -> Newstack:
    defaults = Settings()
    return open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=where)))


@contextmanager
def two_stacks(tmp_path: Path) -> Iterator[TwoStacks]:
    """The small fixture on SQLite served in place, and its admin migrated into a new stack
    (its shares with it); admin receives no share."""
    manifest = build(tmp_path, "sqlite", "small")
    user = manifest.user("admin")
    receivers = {s["share_with"] for s in manifest.shares} | {
        m[0] for s in manifest.shares for m in s["members"]}
    assert user["uid"] not in receivers and user["has_home"]
    instance = open_instance(Path(manifest.config_php))
    target = new_stack(tmp_path / "new")
    try:
        report = UserMigration(LegacySource(instance), target.store, target.driver,
                               user["uid"]).run()
        # the fixture's OAuth2 tokens are carried over with notes (expired, no token endpoint
        # on the new stack yet); nothing else may be reported
        unexpected = [f for f in report.findings if not f[0].startswith("oauth2-")]
        assert not unexpected, report.findings
    finally:
        instance.close()
        target.store.engine.dispose()
    # the new stack as it starts after the migration
    stack = new_stack(tmp_path / "new")
    legacy_backend = Oc10Backend(open_instance(Path(manifest.config_php)))
    try:
        with (live_server(NewstackApp(legacy_backend, ServerInfo(hostname="testhost")),
                          threads=8) as legacy,
              live_server(NewstackApp(stack.backend, ServerInfo(hostname="testhost")),
                          threads=8) as new):
            yield TwoStacks(manifest, user["uid"], user["password"], legacy, new, stack)
    finally:
        legacy_backend.close()
        stack.store.engine.dispose()


# ---------------------------------------------------------------------------------------------
# capture and replay for real


@contextmanager
def capturing(upstream: str, out: Path, confdir: Path) -> Iterator[str]:
    """`ocbridge capture` in a subprocess in front of `upstream`; stopped with SIGTERM."""
    port = free_port()
    ocbridge = Path(sys.executable).parent / "ocbridge"
    process = subprocess.Popen(
        [str(ocbridge), "capture", "--upstream", upstream, "--listen", f"127.0.0.1:{port}",
         "--out", str(out), "--confdir", str(confdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "capture did not start listening"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "flow(s) written" in err, err


def replay(env: TwoStacks, flows: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        main, ["replay", str(flows), "--user", env.uid, "--legacy", env.legacy, "--new",
               env.new, "--json", *extra], env={"OCBRIDGE_REPLAY_PASSWORD": env.password})
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_captured_owncloudcmd_sync_replayed_finds_a_planted_difference(tmp_path: Path
                                                                         ) -> None:
    with two_stacks(tmp_path) as env:
        flows = tmp_path / "sync.flows"
        local = tmp_path / "client"
        local.mkdir()
        exclude = tmp_path / "exclude.lst"
        exclude.write_text("")
        with capturing(env.legacy, flows, tmp_path / "mitmproxy") as url:
            synced = owncloudcmd(NewstackServer(url, env.uid, env.password, None),  # type: ignore[arg-type]
                                 local, exclude)
        assert synced.returncode == 0, synced.stdout[-3000:] + synced.stderr[-3000:]
        files = env.files()
        assert {p for p, _, _ in files} <= set(local_state(local))

        # the capture holds no secret
        raw = flows.read_bytes()
        assert env.password.encode() not in raw
        assert base64.b64encode(f"{env.uid}:{env.password}".encode()) not in raw

        # both stacks answer every read of the sync alike (oc:share-types included: admin
        # owns shares and they moved with it)
        code, report = replay(env, flows)
        assert report["replayed"] == report["flows"] > len(files)
        assert not report["errors"], report["errors"]
        assert code == 0 and not report["differences"], report["differences"]

        # planted on the new stack: one file's etag, another's bytes (same size)
        (etag_path, _, _), (content_path, blob, size) = files[0], files[1]
        env.plant_etag(etag_path)
        assert blob is not None
        env.plant_content(blob, size)
        code, report = replay(env, flows)
        assert code == 1
        found = {(d["kind"], d["field"], d["href"].rsplit("/files/admin/", 1)[-1])
                 for d in report["differences"]}
        assert found == {
            ("prop", "d:getetag", etag_path),      # in its folder's PROPFIND
            ("header", "etag", etag_path),         # its download
            ("header", "oc-etag", etag_path),
            ("body", "sha256", content_path),      # the other's download
        }, report["differences"]
        planted = next(d for d in report["differences"] if d["field"] == "d:getetag")
        assert planted["new"] == '"planted0etag"' and planted["legacy"] != planted["new"]
        # an ignored field is counted apart, not reported
        code, report = replay(env, flows, "--ignore", "d:getetag")
        assert code == 1 and report["ignored_differences"]
        assert "d:getetag" not in {d["field"] for d in report["differences"]}
        # the same, for people
        text = CliRunner().invoke(
            main, ["replay", str(flows), "--user", env.uid, "--legacy", env.legacy, "--new",
                   env.new, "--password", env.password])
        assert text.exit_code == 1
        assert "4 difference(s), 0 error(s)" in text.stdout and "planted0etag" in text.stdout


# ---------------------------------------------------------------------------------------------
# redaction


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_redaction_keeps_the_basic_user_and_drops_every_secret() -> None:
    flow = tflow.tflow(resp=True)
    flow.request.headers["authorization"] = basic("Alice", "s3cret:with colon")
    flow.request.headers["cookie"] = "oc_sessionPassphrase=abc; ocbridge_route=v1.x.y.z"
    flow.response.headers["set-cookie"] = "oc123=deadbeef; path=/; HttpOnly"
    flow.response.headers.add("set-cookie", "other=1")
    copy = redact(flow)
    assert copy.request.headers["authorization"] == basic("Alice", REDACTED)
    assert flow_user(copy) == "Alice"
    assert copy.request.headers["cookie"] == (f"oc_sessionPassphrase={REDACTED}; "
                                              f"ocbridge_route={REDACTED}")
    assert copy.response.headers.get_all("set-cookie") == [
        f"oc123={REDACTED}; path=/; HttpOnly", f"other={REDACTED}"]
    # the live flow (what the client and server see) is untouched
    assert flow.request.headers["authorization"] == basic("Alice", "s3cret:with colon")
    assert flow.response.headers["set-cookie"].startswith("oc123=deadbeef")


def test_redaction_of_other_credentials_and_secret_bodies() -> None:
    assert redact_authorization("Bearer eyJabc.def") == f"Bearer {REDACTED}"
    assert redact_authorization("token AppPassword123") == f"token {REDACTED}"
    assert redact_authorization("Basic !!notbase64") == f"Basic {REDACTED}"
    assert redact_authorization("opaque") == REDACTED

    login = tflow.tflow(resp=True)
    login.request.method = "POST"
    login.request.path = "/index.php/login"
    login.request.content = b"user=alice&password=hunter2&timezone=UTC"
    copy = redact(login)
    assert b"hunter2" not in (copy.request.raw_content or b"")
    assert parse_qs((copy.request.raw_content or b"").decode()) == {
        "user": ["alice"], "password": [REDACTED], "timezone": ["UTC"]}

    app_password = tflow.tflow(resp=True)
    app_password.request.path = "/ocs/v2.php/core/getapppassword?format=json"
    app_password.response.content = b'{"ocs":{"data":{"apppassword":"AbCdE-12345"}}}'
    assert b"AbCdE" not in (redact(app_password).response.raw_content or b"")

    anonymous = tflow.tflow(resp=True)
    anonymous.request.path = "/remote.php/dav/files/bob/x.txt"
    assert flow_user(anonymous) == "bob"
