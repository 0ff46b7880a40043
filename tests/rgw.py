"""A throwaway Ceph RGW (Debian's radosgw) on loopback for tests that need a real S3 server.

One mon, one memstore OSD and radosgw, no cephx, all state in a temp dir; recipe and pitfalls in
shared/research/tooling.md §4. Use `running_rgw()` (a context manager) or a fixture built on it;
it first sweeps clusters left by killed test runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from newstack.server import free_port

REQUIRED_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")
INSTALL_HINT = (
    "Ceph RGW is needed for the S3 storage tests but these binaries are missing: {missing}. "
    "Install them with `scripts/install-ceph.sh` (as root or with sudo; Debian packages "
    "ceph-mon, ceph-osd, radosgw, ceph-common)."
)
TEMP_PREFIX = "ocbridge-rgw-"
OWNER_FILE = "owner.pid"
ACCESS_KEY = "OCBRIDGETESTKEY00000"
SECRET_KEY = "ocbridge-test-secret-key-0000000000000000"
REGION = "us-east-1"
START_TIMEOUT = 90.0
COMMAND_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOOPBACK = "127.0.0.1"


class RgwStartError(RuntimeError):
    """The throwaway cluster did not come up; the message carries the tail of the daemons' logs."""


@dataclass(frozen=True)
class RgwEndpoint:
    """Where the running RGW listens and the S3 credentials of its only user."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    startup_seconds: float


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if shutil.which(name) is None]


@dataclass
class _Cluster:
    root: Path
    mon_port: int
    mon_v1_port: int
    rgw_port: int
    daemons: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def rgw_keyring(self) -> Path:
        return self.root / "rgw" / "keyring"

    def write_conf(self) -> None:
        for sub in ("mon", "osd", "rgw", "run", "log", "crash"):
            (self.root / sub).mkdir()
        r = self.root
        self.conf.write_text(
            f"""[global]
fsid = {uuid.uuid4()}
mon initial members = a
mon host = [v2:{LOOPBACK}:{self.mon_port},v1:{LOOPBACK}:{self.mon_v1_port}]
public addr = {LOOPBACK}
cluster addr = {LOOPBACK}
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon data avail crit = 0
mon data avail warn = 0
# A paxos round per pool RGW creates; the 1 s default makes up most of the start-up time.
paxos propose interval = 0.05
paxos min wait = 0.01
run dir = {r}/run
crash dir = {r}/crash
pid file = {r}/run/$name.pid
admin socket = {r}/run/$name.asok
log file = {r}/log/$name.log
log to stderr = false
err to stderr = false
mon data = {r}/mon/$name
osd data = {r}/osd/$name
keyring = {r}/$name.keyring

[mon.a]
public addrv = [v2:{LOOPBACK}:{self.mon_port},v1:{LOOPBACK}:{self.mon_v1_port}]

[osd.0]
osd objectstore = memstore
memstore device bytes = 4294967296

[client.rgw.r]
rgw frontends = beast endpoint={LOOPBACK}:{self.rgw_port} tcp_nodelay=1
rgw data = {r}/rgw
keyring = {self.rgw_keyring}
ms mon client mode = crc
rgw enable usage log = false
"""
        )

    def run(self, *args: str) -> str:
        try:
            completed = subprocess.run(
                [*args, "--conf", str(self.conf)],
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
                env=_loopback_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise RgwStartError(
                f"`{' '.join(args)}` did not finish in {COMMAND_TIMEOUT:.0f} s\n{self.log_tail()}"
            ) from exc
        if completed.returncode != 0:
            raise RgwStartError(
                f"`{' '.join(args)}` exited {completed.returncode}: "
                f"{completed.stderr.decode(errors='replace').strip()}\n{self.log_tail()}"
            )
        return completed.stdout.decode(errors="replace")

    def spawn(self, name: str, args: Sequence[str]) -> None:
        out = (self.root / "log" / f"{name}.stdout").open("wb")
        with out:
            process = subprocess.Popen(
                [*args, "--conf", str(self.conf), "-f"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_loopback_env(),
            )
        self.daemons.append((name, process))

    def start(self) -> None:
        self.write_conf()
        (self.root / "mon" / "mon.a").mkdir()
        self.run("ceph-mon", "--id", "a", "--mkfs", "--keyring", "/dev/null")
        (self.root / "mon" / "mon.a" / "keyring").touch()
        self.spawn("mon", ["ceph-mon", "--id", "a"])

        osd_id = self.run("ceph", "osd", "create").strip()
        if osd_id != "0":
            raise RgwStartError(f"expected osd id 0 from `ceph osd create`, got {osd_id!r}")
        self.run("ceph", "osd", "crush", "add", "osd.0", "1", "root=default")
        (self.root / "osd" / "osd.0").mkdir()
        self.run("ceph-osd", "--id", "0", "--mkfs")
        self.spawn("osd", ["ceph-osd", "--id", "0"])

        self.run(
            "ceph", "auth", "get-or-create", "client.rgw.r",
            "osd", "allow rwx", "mon", "allow rw", "-o", str(self.rgw_keyring),
        )  # fmt: skip
        self.spawn("rgw", ["radosgw", "-n", "client.rgw.r", "-k", str(self.rgw_keyring)])
        self.wait_for_rgw()
        self.run(
            "radosgw-admin", "user", "create", "--uid", "ocbridge", "--display-name", "ocbridge",
            f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}",
        )  # fmt: skip

    def wait_for_rgw(self) -> None:
        # No proxies: the probe must reach loopback even when the environment sets http_proxy.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self.daemons:
                if process.poll() is not None:
                    raise RgwStartError(
                        f"{name} exited with {process.returncode} during start-up\n"
                        + self.log_tail()
                    )
            try:
                with opener.open(f"http://{LOOPBACK}:{self.rgw_port}/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means the frontend is serving
            except OSError:
                time.sleep(0.2)
        raise RgwStartError(
            f"radosgw did not answer within {START_TIMEOUT:.0f} s\n{self.log_tail()}"
        )

    def stop(self) -> None:
        # rgw and osd before the mon: ceph-osd ignores SIGTERM once the mon is gone. radosgw gets
        # SIGKILL: its graceful shutdown waits about 5 s and nothing of this cluster is kept.
        for name, process in reversed(self.daemons):
            if process.poll() is None:
                first = signal.SIGKILL if name == "rgw" else signal.SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, first)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=STOP_TIMEOUT)
        self.daemons.clear()

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for log in sorted((self.root / "log").glob("*")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {log.name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def sweep_stale() -> None:
    """Stop the daemons and remove the temp dirs of clusters whose test process died (SIGKILL).

    Only processes started with the ceph.conf of such a dir are signalled.
    """
    for root in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not fully created yet, or not ours
        if _alive(owner):
            continue
        conf = f"--conf\0{root / 'ceph.conf'}\0"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_text()
            except OSError:
                continue
            if conf in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _loopback_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("CEPH_CONF", None)
    env.pop("CEPH_ARGS", None)
    return env


@contextlib.contextmanager
def running_rgw() -> Iterator[RgwEndpoint]:
    """Start a throwaway RGW, yield its endpoint, always stop it and remove its temp dir."""
    missing = missing_binaries()
    if missing:
        raise RgwStartError(INSTALL_HINT.format(missing=", ".join(missing)))
    sweep_stale()
    root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    cluster = _Cluster(
        root=root, mon_port=free_port(), mon_v1_port=free_port(), rgw_port=free_port()
    )
    started = time.monotonic()
    try:
        cluster.start()
        yield RgwEndpoint(
            endpoint_url=f"http://{LOOPBACK}:{cluster.rgw_port}",
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            startup_seconds=time.monotonic() - started,
        )
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    with running_rgw() as endpoint:
        print(f"RGW up at {endpoint.endpoint_url} in {endpoint.startup_seconds:.1f} s")
