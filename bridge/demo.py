"""`ocbridge demo`: a fixture ownCloud 10 instance, the legacy server, the new stack and the proxy
as child processes on free loopback ports, a simulated client writing through the proxy, and the
users cut over one by one (bridge/cutover.py) with progress bars and measured freezes."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from bridge.errors import OcbridgeError

#: how long a child server may take to answer its first status.php
START_SECONDS: Final = 60.0
DEMO_JSON: Final = "demo.json"
#: files the simulated client keeps rewriting per user
FILES_KEPT: Final = 20


class DemoError(OcbridgeError):
    """The demo could not set up or run; the message says which part and where its log is."""


# ---------------------------------------------------------------------------------------------
# The configuration


@dataclass(frozen=True)
class DemoPorts:
    legacy: int
    newstack: int
    proxy: int

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self, name)}"


def demo_config(config_php: Path, new_dir: Path, ports: DemoPorts,
                verify_ignore: Sequence[str] = ()) -> str:
    """The demo's TOML: embedded defaults (SQLite, POSIX) on the given loopback ports."""
    ignore = ", ".join(json.dumps(f) for f in verify_ignore)
    return (
        "# written by `ocbridge demo`; `ocbridge cutover --config THIS --user U` works against "
        "the running demo\n"
        f"[legacy]\nconfig_php = {json.dumps(str(config_php))}\n"
        f'listen = "127.0.0.1:{ports.legacy}"\n\n'
        f"[newstack]\ndata_dir = {json.dumps(str(new_dir))}\n"
        f'listen = "127.0.0.1:{ports.newstack}"\nworkers = 1\n\n'
        f'[proxy]\nlisten = "127.0.0.1:{ports.proxy}"\n'
        f'legacy_url = "{ports.url("legacy")}"\nnewstack_url = "{ports.url("newstack")}"\n\n'
        f"[cutover]\nverify_ignore = [{ignore}]\n")


def choose_users(spec: str, known: Sequence[str]) -> list[str]:
    """`--migrate`: none, all, or U1,U2 (each must be a user of the instance)."""
    spec = spec.strip()
    if spec == "none":
        return []
    if spec == "all":
        return list(known)
    chosen = [u.strip() for u in spec.split(",") if u.strip()]
    unknown = [u for u in chosen if u not in known]
    if unknown or not chosen:
        what = f"no user {', '.join(unknown)}" if unknown else "no user named"
        raise DemoError(f"--migrate {spec!r}: {what}; the demo instance's users are "
                        f"{', '.join(known)} (or use all, none)")
    return list(dict.fromkeys(chosen))


# ---------------------------------------------------------------------------------------------
# Child servers


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Servers:
    """Child `ocbridge` servers, each logging to its own file; all stopped on exit."""

    def __init__(self, config: Path, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: Sequence[str], ready_url: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        command = [sys.executable, "-c", "from bridge.cli import main; main()", *args,
                   "--config", str(self.config)]
        with log.open("wb") as out:
            self.children[name] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
        self._wait_ready(name, ready_url, log)

    def _wait_ready(self, name: str, url: str, log: Path) -> None:
        deadline = time.monotonic() + START_SECONDS
        child = self.children[name]
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise DemoError(f"the {name} server exited with status {child.returncode} "
                                f"while starting; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise DemoError(f"the {name} server did not answer {url} within {START_SECONDS:.0f} s; "
                        f"see {log}")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children.values():
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# The simulated client


@dataclass
class ClientTally:
    writes: int = 0
    reads: int = 0
    #: writes refused with 423 (a freeze): retried until they succeed
    frozen: int = 0
    errors: list[str] = field(default_factory=list)
    #: (uid, name) → sha1 of the last content the proxy accepted
    written: dict[tuple[str, str], str] = field(default_factory=dict)


class SimulatedClient:
    """Keeps reading and writing for every user through the proxy, as a sync client would:
    PUT a new or changed file, GET it back, PROPFIND the root; a 423 is retried later."""

    def __init__(self, proxy_url: str, users: Sequence[tuple[str, str]],
                 pause: float = 0.05) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.users = list(users)
        self.pause = pause
        self.tally = ClientTally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-client", daemon=True)

    def __enter__(self) -> SimulatedClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _url(self, uid: str, name: str) -> str:
        return f"{self.proxy_url}/remote.php/dav/files/{uid}/{name}"

    def _run(self) -> None:
        pending: dict[str, tuple[str, bytes]] = {}
        step = 0
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                for uid, password in self.users:
                    auth = (uid, password)
                    # a score of files: new ones, then changes of earlier ones (each rewritten
                    # seconds apart: ownCloud names versions by the second)
                    name, body = pending.pop(uid, (f"demo-client-{step % FILES_KEPT}.txt",
                                                   f"{uid} wrote {step}\n".encode()))
                    self._write(http, auth, uid, name, body, pending)
                    self._read(http, auth, uid)
                step += 1
                self._stop.wait(self.pause)

    def _write(self, http: httpx.Client, auth: tuple[str, str], uid: str, name: str,
               body: bytes, pending: dict[str, tuple[str, bytes]]) -> None:
        try:
            answer = http.put(self._url(uid, name), content=body, auth=auth)
        except httpx.HTTPError as exc:
            self.tally.errors.append(f"PUT {uid}/{name}: {exc}")
            return
        if answer.status_code == 423:
            self.tally.frozen += 1
            pending[uid] = (name, body)  # as a sync client does: the same upload, later
        elif answer.status_code in (201, 204):
            self.tally.writes += 1
            self.tally.written[(uid, name)] = hashlib.sha1(body).hexdigest()
        else:
            self.tally.errors.append(f"PUT {uid}/{name}: {answer.status_code}")

    def _read(self, http: httpx.Client, auth: tuple[str, str], uid: str) -> None:
        try:
            answer = http.request("PROPFIND", self._url(uid, ""), auth=auth,
                                  headers={"Depth": "1"})
        except httpx.HTTPError as exc:
            self.tally.errors.append(f"PROPFIND {uid}: {exc}")
            return
        if answer.status_code == 207:
            self.tally.reads += 1
        else:
            self.tally.errors.append(f"PROPFIND {uid}: {answer.status_code}")

    def check_written(self) -> list[str]:
        """Every write the proxy accepted, read back through the proxy: what is missing or
        different (empty when everything is there)."""
        wrong = []
        passwords = dict(self.users)
        with httpx.Client(timeout=30) as http:
            for (uid, name), digest in sorted(self.tally.written.items()):
                answer = http.get(self._url(uid, name), auth=(uid, passwords[uid]))
                if answer.status_code != 200:
                    wrong.append(f"{uid}/{name}: {answer.status_code}")
                elif hashlib.sha1(answer.content).hexdigest() != digest:
                    wrong.append(f"{uid}/{name}: other content")
        return wrong


# ---------------------------------------------------------------------------------------------
# The demo


@dataclass(frozen=True)
class DemoOptions:
    demo_dir: Path
    profile: str = "small"
    seed: int = 1
    migrate: str = "all"
    client: bool = True
    keep: bool = False


def run_demo(options: DemoOptions, report: Callable[[str], None],
             progress: Callable[[], Any] | None = None,
             keep_waiting: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the demo; `report` gets the story line by line, `progress()` a rich Progress to
    show the cutovers in; with `keep`, `keep_waiting()` blocks while everything runs."""
    import shutil

    from bridge import config as config_mod
    from bridge.store import BridgeStore
    from fixtures.builder import build_instance
    from fixtures.manifest import MANIFEST_NAME
    from fixtures.profiles import get_profile
    from newstack.server import free_port

    demo_dir = options.demo_dir.resolve()
    instance = demo_dir / "legacy"
    manifest, stats = build_instance(instance, "sqlite", get_profile(options.profile),
                                     options.seed, replace=(instance / MANIFEST_NAME).exists())
    users = [(str(u["uid"]), str(u["password"])) for u in manifest.users
             if u.get("state", 1) == 1 and u.get("has_home", True)]
    moving = choose_users(options.migrate, [u for u, _ in users])
    report(f"ownCloud 10 instance ({options.profile}, seed {options.seed}): {len(users)} "
           f"users, {stats.files} files, {stats.folders} folders in {instance}")

    new_dir = demo_dir / "new"  # empty on every run: the instance was just rebuilt
    shutil.rmtree(new_dir, ignore_errors=True)
    ports = DemoPorts(free_port(), free_port(), free_port())
    config_file = demo_dir / "ocbridge.toml"
    # sharing is still missing on the new stack: share-types are the one tolerated difference
    config_file.write_text(demo_config(Path(manifest.config_php), new_dir, ports,
                                       ("extras share_types",)), encoding="utf-8")
    settings = config_mod.load_settings(config_file)
    summary: dict[str, Any] = {
        "proxy_url": ports.url("proxy"), "legacy_url": ports.url("legacy"),
        "newstack_url": ports.url("newstack"), "config": str(config_file),
        "users": [{"name": u, "password": p} for u, p in users], "cutovers": [],
    }
    with Servers(config_file, demo_dir / "logs") as servers:
        servers.start("legacy", ["serve", "legacy"], ports.url("legacy") + "/status.php")
        servers.start("newstack", ["serve", "newstack"], ports.url("newstack") + "/status.php")
        servers.start("proxy", ["proxy"], ports.url("proxy") + "/status.php")
        report(f"legacy {ports.url('legacy')}, new stack {ports.url('newstack')}, proxy "
               f"{ports.url('proxy')} (logs in {demo_dir / 'logs'})")
        client = SimulatedClient(ports.url("proxy"), users if options.client else [])
        store = BridgeStore.from_settings(settings)
        try:
            with client if options.client else contextlib.nullcontext():
                summary["cutovers"] = _cut_over_each(settings, store, moving, report, progress)
            summary["client"] = _client_summary(client, options.client, report)
        finally:
            store.close()
        if options.keep:
            # written aside and renamed: a script polling for the file never reads half of it
            partial = demo_dir / f".{DEMO_JSON}.tmp"
            partial.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            partial.replace(demo_dir / DEMO_JSON)
            report(f"everything keeps running until Ctrl-C: point a browser or a sync client "
                   f"at {ports.url('proxy')} as one of")
            for uid, password in users:
                report(f"  {uid} / {password}")
            report(f"(also in {demo_dir / DEMO_JSON}); move someone from another terminal: "
                   f"ocbridge cutover --config {config_file} --user {users[0][0]}")
            if keep_waiting is not None:
                keep_waiting()
    return summary


def _cut_over_each(settings: Any, store: Any, moving: list[str], report: Callable[[str], None],
                   progress: Callable[[], Any] | None) -> list[dict[str, Any]]:
    from bridge.cutover import Cutover

    results = []
    bars = progress() if progress is not None else contextlib.nullcontext()
    with bars as shown:
        tasks = {uid: shown.add_task(uid, total=None) for uid in moving} if shown else {}
        for uid in moving:
            def bar(label: str, done: int, total: int, uid: str = uid) -> None:
                if shown:
                    shown.update(tasks[uid], description=f"{uid}: {label}", completed=done,
                                 total=total or None)

            def phase(who: str, state: str) -> None:
                if shown:
                    shown.update(tasks[who], description=f"{who}: {state.replace('_', ' ')}")

            result = Cutover(settings, store, actor="ocbridge demo", progress=bar,
                             on_phase=phase).run(uid)
            if shown:
                shown.update(tasks[uid], description=f"{uid}: {result.state}", completed=1,
                             total=1)
            results.append(result.to_dict())
    for done in results:
        if done["ok"]:
            tolerated = ", ".join(f"{k} {v}" for k, v in done["verify_tolerated"].items())
            checked = ", ".join(f"{v} {k}" for k, v in (
                done["verify_checked"] or done["verify_checked_frozen"]).items() if v)
            where = ("compared before the freeze, what changed under it"
                     if done["gate"] == "changes" else "compared under the freeze")
            report(f"{done['uid']}: on the new stack; gate identical ({checked}; {where})"
                   + (f", tolerated: {tolerated}" if tolerated else "")
                   + f"; writes frozen {done['freeze_seconds']} s")
        else:
            report(f"{done['uid']}: back on ownCloud 10: {done['reason']}")
    return results


def _client_summary(client: SimulatedClient, enabled: bool,
                    report: Callable[[str], None]) -> dict[str, Any]:
    if not enabled:
        return {"enabled": False}
    tally = client.tally
    missing = client.check_written()
    report(f"simulated client: {tally.writes} writes and {tally.reads} listings through the "
           f"proxy, {tally.frozen} writes refused during freezes (423, then retried), "
           f"{len(tally.errors)} errors; {len(tally.written) - len(missing)} of "
           f"{len(tally.written)} files it wrote read back identical")
    return {"enabled": True, "writes": tally.writes, "reads": tally.reads,
            "frozen_423": tally.frozen, "errors": tally.errors[:20],
            "files": len(tally.written), "missing": missing}


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the demo as Ctrl-C does: through the `finally` blocks that stop servers."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_forever() -> None:
    while True:
        time.sleep(3600)

