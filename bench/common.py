"""Shared helpers for the benchmarks in bench/: servers, /proc sampling, wrk, curl, JSON.

Everything binds and talks to 127.0.0.1 only. Servers run in their own session (process group),
so a Ctrl-C in the terminal reaches the bench, whose `finally` blocks stop them in order;
`cleanup_on_signals()` turns SIGTERM/SIGHUP into the same KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from newstack.server import free_port

LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---------------------------------------------------------------------------------------------
# Environment


def loopback_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without proxy variables (all traffic is to 127.0.0.1), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra or {})
    return env


def loadavg() -> str:
    """/proc/loadavg: the machine may be shared with other work while the bench runs."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays for the result tables."""
    print(message, file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
    }


def tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    # The first signal starts the clean-up; further ones must not interrupt it half-way
    # (every stop has its own timeout, so the clean-up cannot hang).
    for sig in _CLEANUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once, so `finally` blocks run."""
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in _CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# /proc sampling


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (utime+stime) and memory (KiB) of a process tree at one moment."""

    cpu_s: float
    rss_kb: int
    hwm_kb: int
    pids: int


def proc_sample(pid: int, *, tree: bool = True) -> ProcSample:
    """Sum over `pid` and (with `tree`) its live descendants; exited processes count as 0."""
    cpu = 0.0
    rss = hwm = count = 0
    for p in _descendants(pid) if tree else [pid]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
        count += 1
    return ProcSample(cpu_s=cpu, rss_kb=rss, hwm_kb=hwm, pids=count)


class RssSampler:
    """Samples VmRSS of a process tree every `interval` seconds in a thread while in `with`."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - t0, proc_sample(self.pid).rss_kb))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((self.samples[-1][0] if self.samples else 0.0,
                             proc_sample(self.pid).rss_kb))

    @property
    def start_kb(self) -> int:
        return self.samples[0][1] if self.samples else 0

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)

    @property
    def end_kb(self) -> int:
        return self.samples[-1][1] if self.samples else 0


def mib(kb: float) -> float:
    return round(kb / 1024, 1)


# ---------------------------------------------------------------------------------------------
# Servers


class ServerError(RuntimeError):
    """A server did not come up or died; the message carries the tail of its log."""


@dataclass
class Server:
    """A server process in its own session; `start()` waits until `ready_url` answers HTTP."""

    name: str
    argv: list[str]
    ready_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=loopback_env)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def start(self, timeout: float = 60.0) -> Server:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True,
            )
        wait_http(self.ready_url, timeout, self.process, self.log_tail)
        return self

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServerError(f"{self.name} is not running (exit {code})\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process_group(process, timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- {self.log_path.name} ---\n" + "\n".join(text)


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after `timeout`; the group leader is reaped."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # children of the leader may outlive it: kill whatever is left of the group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None,
              log_tail: Callable[[], str] = lambda: "") -> None:
    """Poll `url` until any HTTP answer (also 4xx/5xx) arrives."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"{url}: server exited with {process.returncode}\n{log_tail()}")
        try:
            with opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise ServerError(f"{url} did not answer within {timeout:.0f} s\n{log_tail()}")


@contextlib.contextmanager
def running(server: Server, timeout: float = 60.0) -> Iterator[Server]:
    try:
        yield server.start(timeout)
    finally:
        server.stop()


def run_checked(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                timeout: float = 120.0) -> str:
    """Run a short command; raise with its output when it fails."""
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                         env=dict(env) if env is not None else loopback_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {out.returncode}: "
                           f"{(out.stderr or out.stdout).strip()[-2000:]}")
    return out.stdout


def run_child(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a client (wrk, curl) to completion; it is killed if we are interrupted."""
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=loopback_env())
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


# ---------------------------------------------------------------------------------------------
# wrk

_WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk_script(method: str, headers: Mapping[str, str], body: str | None = None) -> str:
    """A wrk Lua script for one request shape that prints a JSON summary line when done."""
    lines = [f'wrk.method = "{method}"']
    for key, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}")
    if body is not None:
        lines.append(f"wrk.body = {_lua_long_string(body)}")
    return "\n".join(lines) + "\n" + _WRK_DONE


def _lua_long_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    non_2xx_3xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    bytes: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(url: str, script: Path, *, seconds: float, connections: int,
            threads: int | None = None, timeout_s: int = 10) -> WrkResult:
    threads = threads or min(connections, 2)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", f"{timeout_s}s", "-s", str(script), url]
    out = run_child(argv, timeout=seconds + timeout_s + 30)
    return parse_wrk(out.stdout, out.stderr, out.returncode)


def parse_wrk(stdout: str, stderr: str = "", returncode: int = 0) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[len("WRKJSON "):])
            return WrkResult(
                requests=d["requests"],
                seconds=d["duration_us"] / 1e6,
                errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
                non_2xx_3xx=d["status"],
                p50_ms=d["p50_us"] / 1000,
                p90_ms=d["p90_us"] / 1000,
                p99_ms=d["p99_us"] / 1000,
                mean_ms=d["mean_us"] / 1000,
                bytes=d["bytes"],
            )
    raise RuntimeError(f"wrk printed no summary (exit {returncode}):\n{stdout}\n{stderr}")


# ---------------------------------------------------------------------------------------------
# curl (large transfers)


@dataclass(frozen=True)
class CurlResult:
    status: int
    seconds: float
    bytes: int

    @property
    def mb_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0


def curl_transfer(url: str, *, upload: Path | None = None, user: str | None = None,
                  headers: Mapping[str, str] | None = None, timeout: float = 600) -> CurlResult:
    """GET (to /dev/null) or PUT (`upload`) with curl; status, wall seconds, bytes moved."""
    argv = ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-H", "Expect:",
            "-w", "%{http_code} %{time_total} %{size_download} %{size_upload}"]
    if user:
        argv += ["-u", user]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    if upload is not None:
        argv += ["-T", str(upload)]
    argv.append(url)
    out = run_child(argv, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"curl exited {out.returncode}: {out.stderr.strip()}")
    code, total, down, up = out.stdout.split()
    moved = int(float(up)) if upload is not None else int(float(down))
    return CurlResult(status=int(code), seconds=float(total), bytes=moved)


# ---------------------------------------------------------------------------------------------
# Statistics and output


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rnd(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def finish(out_path: Path, out: Mapping[str, Any]) -> int:
    """Says where the results went and lists the failed cells: the bench's exit status (1 when
    any cell failed, the other cells still measured)."""
    print(f"\nwrote {out_path} ({out['wall_seconds']} s)")
    failures = out["failures"]
    if failures:
        print(f"{len(failures)} failure(s):", json.dumps(failures, indent=2))
        return 1
    return 0


def write_random_file(path: Path, size: int, chunk: int = 8 * 1024 * 1024) -> None:
    with path.open("wb") as out:
        left = size
        while left > 0:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in header]] + [["–" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Ceph RGW (S3)


@contextlib.contextmanager
def running_rgw(device_gib: int = 16, gc_wait_s: int = 30) -> Iterator[Any]:
    """tests/rgw.py's throwaway cluster, with a larger memstore and a prompt garbage collector.

    Benchmarks overwrite 1 GB objects: RGW only frees deleted data in its GC (2 h by default),
    and the test cluster's memstore holds 4 GiB. Yields a `tests.rgw.RgwEndpoint`.
    """
    from tests import rgw

    class _BenchCluster(rgw._Cluster):
        def write_conf(self) -> None:
            super().write_conf()
            text = self.conf.read_text()
            text = re.sub(r"memstore device bytes = \d+",
                          f"memstore device bytes = {device_gib * 1024**3}", text)
            text += (f"rgw gc obj min wait = {gc_wait_s}\n"
                     f"rgw gc processor period = {gc_wait_s}\n")
            self.conf.write_text(text)

    missing = rgw.missing_binaries()
    if missing:
        raise rgw.RgwStartError(rgw.INSTALL_HINT.format(missing=", ".join(missing)))
    rgw.sweep_stale()
    root = Path(tempfile.mkdtemp(prefix=rgw.TEMP_PREFIX))
    (root / rgw.OWNER_FILE).write_text(str(os.getpid()))
    cluster = _BenchCluster(root=root, mon_port=free_port(), mon_v1_port=free_port(),
                            rgw_port=free_port())
    started = time.monotonic()
    try:
        cluster.start()
        yield rgw.RgwEndpoint(
            endpoint_url=f"http://{LOOPBACK}:{cluster.rgw_port}",
            access_key=rgw.ACCESS_KEY, secret_key=rgw.SECRET_KEY, region=rgw.REGION,
            startup_seconds=time.monotonic() - started,
        )
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
