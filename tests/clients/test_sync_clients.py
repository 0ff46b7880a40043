"""Real clients from Debian against the new stack: rclone (vendor owncloud) and owncloudcmd.

Both run as subprocesses under a timeout against a live server on loopback. Missing binaries
fail the test with the install command (CI installs them through scripts/dev test).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
from pathlib import Path

import httpx

from tests.clients.conftest import NewstackServer, require_binary

Live = NewstackServer


def make_tree(root: Path, seed: int = 5) -> dict[str, bytes]:
    """A small tree with odd names, empty files and one file above the 10 MB chunking line."""
    rng = random.Random(seed)
    files = {
        "readme.txt": b"hello\n",
        "empty.txt": b"",
        "Documents/report final.pdf": rng.randbytes(70_000),
        "Documents/Ünïcödé ñame.md": b"# title\n" * 50,
        "Photos/2024/beach #1.jpg": rng.randbytes(300_000),
        "Photos/2024/100% sun.png": rng.randbytes(12_345),
        "big.bin": rng.randbytes(11 * 2**20),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "Empty folder").mkdir()
    return files


def local_state(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".sync_") or rel.startswith("._sync_") or rel == ".owncloudsync.log":
            continue
        out[rel] = "dir" if path.is_dir() else hashlib.sha1(path.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------------------------------
# rclone


def rclone(live: Live, *args: str, endpoint: str = "dav") -> subprocess.CompletedProcess[str]:
    binary = require_binary("rclone", "rclone")
    obscured = subprocess.run([binary, "obscure", live.password], capture_output=True, text=True,
                              check=True).stdout.strip()
    url = (live.dav_url if endpoint == "dav"
           else f"{live.base_url}/remote.php/webdav/")
    env = {**os.environ, "RCLONE_CONFIG": "/dev/null", "RCLONE_CONFIG_OCB_TYPE": "webdav",
           "RCLONE_CONFIG_OCB_URL": url, "RCLONE_CONFIG_OCB_VENDOR": "owncloud",
           "RCLONE_CONFIG_OCB_USER": live.user, "RCLONE_CONFIG_OCB_PASS": obscured}
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_rclone_copy_check_and_no_second_transfer(newstack_server: Live, tmp_path: Path
                                                  ) -> None:
    live = newstack_server
    src = tmp_path / "src"
    make_tree(src)
    first = rclone(live, "copy", str(src), "ocb:", "--stats-one-line", "-v")
    assert first.returncode == 0, first.stderr
    check = rclone(live, "check", str(src), "ocb:", "--download")
    assert check.returncode == 0, check.stderr
    hashes = rclone(live, "check", str(src), "ocb:")
    assert hashes.returncode == 0, hashes.stderr
    assert "0 differences found" in hashes.stderr
    second = rclone(live, "copy", str(src), "ocb:", "--use-json-log", "-v",
                    endpoint="webdav")
    assert second.returncode == 0, second.stderr
    transferred = [json.loads(line).get("stats", {}).get("transfers", 0)
                   for line in second.stderr.splitlines() if line.startswith("{")]
    assert sum(transferred) == 0, second.stderr
    listing = rclone(live, "lsf", "-R", "ocb:")
    assert "Photos/2024/beach #1.jpg" in listing.stdout.splitlines()


# ---------------------------------------------------------------------------------------------
# owncloudcmd


def owncloudcmd(live: Live, local: Path, exclude: Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("owncloudcmd", "owncloud-client-cmd")
    env = {**os.environ, "HOME": str(local.parent)}
    # owncloudcmd can hang on protocol surprises (research/tooling.md §5): always a timeout
    return subprocess.run(["timeout", "180", binary, "--non-interactive", "--exclude",
                           str(exclude), "-u", live.user, "-p", live.password, str(local),
                           live.base_url],
                          env=env, capture_output=True, text=True, timeout=200)


def journal_entries(local: Path) -> dict[str, tuple[str, str]]:
    """path -> (etag, fileid) as the client stored them in its sync journal."""
    db = next(p for p in local.iterdir() if p.name.startswith((".sync_", "._sync_"))
              and p.name.endswith(".db"))
    # read-only and closed at once: the client needs its journal unlocked for the next run
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT path, md5, fileid FROM metadata").fetchall()
    finally:
        conn.close()
    return {path: (etag, fileid) for path, etag, fileid in rows}


def test_owncloudcmd_sync_up_change_on_server_sync_down(newstack_server: Live,
                                                        tmp_path: Path) -> None:
    live = newstack_server
    local = tmp_path / "client"
    local.mkdir()
    exclude = tmp_path / "exclude.lst"
    exclude.write_text("")
    make_tree(local)
    up = owncloudcmd(live, local, exclude)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    with httpx.Client(auth=(live.user, live.password), timeout=30) as client:
        dav = live.dav_url
        listing = client.request("PROPFIND", dav + "Photos/2024/", headers={"Depth": "1"})
        assert b"beach%20%231.jpg" in listing.content
        assert client.get(dav + "big.bin").content == (local / "big.bin").read_bytes()

        # change the tree on the server, then sync down
        assert client.put(dav + "readme.txt", content=b"changed on the server\n").status_code == 204
        assert client.put(dav + "Documents/new.txt", content=b"new\n").status_code == 201
        assert client.delete(dav + "Photos/2024/100% sun.png").status_code == 204
        assert client.request("MOVE", dav + "empty.txt",
                              headers={"Destination": dav + "Documents/moved.txt"}
                              ).status_code == 201
    down = owncloudcmd(live, local, exclude)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    state = local_state(local)
    assert (local / "readme.txt").read_bytes() == b"changed on the server\n"
    assert (local / "Documents/new.txt").read_bytes() == b"new\n"
    assert not (local / "Photos/2024/100% sun.png").exists()
    assert (local / "Documents/moved.txt").exists() and not (local / "empty.txt").exists()
    assert not [p for p in state if "conflict" in p.lower()], state

    # a third run changes nothing: the journal's etags and ids stay as they are
    before = journal_entries(local)
    again = owncloudcmd(live, local, exclude)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert journal_entries(local) == before
    assert local_state(local) == state
