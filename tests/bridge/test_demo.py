"""`ocbridge demo` end to end, as a person runs it: real child servers on loopback, a simulated
client writing through the proxy, every user cut over; and `--keep` with a cutover started from
outside against the running demo."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.demo import DemoError, choose_users, demo_config
from migrate.verify import DESKTOP_PROPS, propfind_body

DEMO = [sys.executable, "-c", "from bridge.cli import main; main()", "demo"]


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def test_the_demo_cuts_every_user_over_while_the_client_writes(tmp_path: Path) -> None:
    done = subprocess.run([*DEMO, "--dir", str(tmp_path / "demo"), "--json"],
                          capture_output=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    outcome = json.loads(done.stdout)
    cutovers = outcome["cutovers"]
    assert [c["uid"] for c in cutovers] == [u["name"] for u in outcome["users"]]
    assert len(cutovers) == 5
    for c in cutovers:
        assert c["ok"] and c["state"] == "new", c
        assert 0 < c["freeze_seconds"] < 10 and c["proxies"] == 1
        # only sharing (not yet on the new stack) may differ, and only where there are shares
        assert set(c["verify_tolerated"]) <= {"extras share_types"}
        assert c["verify_differences"] == {}
    client = outcome["client"]
    assert client["writes"] > 0 and client["reads"] > 0
    assert client["errors"] == [] and client["missing"] == [] and client["files"] > 0
    story = done.stderr.decode()
    assert "writes frozen" in story and "read back identical" in story
    for name in ("legacy_url", "newstack_url", "proxy_url"):
        assert not _port_open(outcome[name]), f"{name} still answers after the demo"
    assert not (tmp_path / "demo" / "demo.json").exists()


def test_keep_leaves_the_demo_running_for_a_cutover_from_outside(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        demo = subprocess.Popen([*DEMO, "--dir", str(demo_dir), "--migrate", "none",
                                 "--no-client", "--keep"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    info_file = demo_dir / "demo.json"
    try:
        deadline = time.monotonic() + 120
        while not info_file.exists():
            assert demo.poll() is None, output.read_text(errors="replace")
            assert time.monotonic() < deadline, "demo.json did not appear"
            time.sleep(0.2)
        info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8"))
        assert set(info) >= {"proxy_url", "legacy_url", "newstack_url", "config", "users"}
        # dave neither owns nor receives shares, which the new stack does not serve yet
        auth = ("dave", next(u["password"] for u in info["users"] if u["name"] == "dave"))
        propfind = f"{info['proxy_url']}/remote.php/dav/files/dave/"
        body = propfind_body(DESKTOP_PROPS)

        def listing() -> httpx.Response:
            return httpx.request("PROPFIND", propfind, auth=auth, content=body,
                                 headers={"Depth": "1"})

        before = listing()
        assert before.status_code == 207 and "<oc:id>" in before.text
        done = CliRunner().invoke(main, ["cutover", "--config", info["config"], "--user",
                                         "dave", "--json"])
        assert done.exit_code == 0, done.output
        [result] = json.loads(done.stdout)
        assert result["ok"] and result["proxies"] == 1
        after = listing()
        assert after.status_code == 207 and after.text == before.text
        shown = CliRunner().invoke(main, ["route", "show", "dave", "--config", info["config"],
                                          "--json"])
        assert json.loads(shown.stdout)["users"][0]["stack"] == "new"
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
    assert demo.returncode == 0 and "every server of the demo was shut down" in \
        output.read_text(errors="replace")
    for name in ("legacy_url", "newstack_url", "proxy_url"):
        assert not _port_open(info[name]), f"{name} still answers after the demo stopped"


@pytest.mark.parametrize(("spec", "users"), [
    ("all", ["a", "b", "c"]), ("none", []), ("b", ["b"]), ("c, a", ["c", "a"]),
    ("a,a", ["a"]),
])
def test_whom_the_demo_moves(spec: str, users: list[str]) -> None:
    assert choose_users(spec, ["a", "b", "c"]) == users


@pytest.mark.parametrize("spec", ["zed", "a,zed", ",", ""])
def test_unknown_demo_users_are_refused_by_name(spec: str) -> None:
    with pytest.raises(DemoError, match="the demo instance's users are a, b"):
        choose_users(spec, ["a", "b"])


def test_the_demo_config_is_a_valid_config(tmp_path: Path) -> None:
    from bridge.config import load_settings
    from bridge.demo import DemoPorts

    path = tmp_path / "x.toml"
    path.write_text(demo_config(tmp_path / "config.php", tmp_path / "new",
                                DemoPorts(1001, 1002, 1003), ["extras share_types"]),
                    encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.proxy.legacy_url == "http://127.0.0.1:1001"
    assert settings.newstack.listen == "127.0.0.1:1002" and settings.proxy.listen.endswith(
        ":1003")
    assert settings.cutover.verify_ignore == ("extras share_types",)
