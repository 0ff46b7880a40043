"""Benchmark: the routing proxy against direct access to the same backend, in the same run.

    scripts/dev bench proxy [--quick] [--out bench/results/proxy.json] [--huge-gib 5] [--pin] ...

Both real backends (`ocbridge serve legacy` on an ownCloud 10 instance, `ocbridge serve newstack`)
and `ocbridge proxy --workers 2` run on 127.0.0.1; alice lives on legacy, bob on new. Every cell is
measured direct and through the proxy, interleaved; docs/benchmarks.md explains the rest.

Topology: by default every process shares every CPU (the proxy's CPU comes out of what the
backend and wrk have). `--pin` models production, where the proxy has cores of its own: the
backends, wrk and curl run on one CPU set and the proxy on another, for the direct and the
proxied cells alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from bench.common import (
    LOOPBACK,
    RssSampler,
    Server,
    ServerError,
    cleanup_on_signals,
    curl_transfer,
    finish,
    format_table,
    loadavg,
    log,
    loopback_env,
    machine_info,
    median,
    mib,
    proc_sample,
    ratio,
    rnd,
    run_checked,
    run_wrk,
    temp_dir,
    tool_version,
    write_json,
    write_random_file,
    wrk_script,
)
from bench.newstack import PROPFIND_BODY
from newstack.server import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PASSWORD: Final = "bench-password-1"
#: uid -> the stack the proxy routes it to
USERS: Final = {"alice": "legacy", "bob": "new"}
SMALL_FILES: Final = 100
GET_SMALL_BYTES: Final = 4096
PUT_MTIME: Final = "1700000000"
#: the issue's targets
CPU_MS_MAX: Final = 0.6
SMALL_RATIO_MIN: Final = 0.85
BIG_RATIO_MIN: Final = 0.9
ADDED_P50_MS_MAX: Final = 1.0
#: "RSS flat": the proxy may grow by at most this much while a huge body streams through it
FLAT_GROWTH_MIB: Final = 64


@dataclass(frozen=True)
class WrkScenario:
    name: str
    title: str
    method: str
    path: str
    connections: int


WRK_SCENARIOS: Final = [
    WrkScenario("propfind_100", "PROPFIND Depth 1, 100 entries, c=1", "PROPFIND", "d100/", 1),
    WrkScenario("get_4k", "GET 4 KB, c=1", "GET", "small4k.bin", 1),
    WrkScenario("get_4k_c8", "GET 4 KB, c=8", "GET", "small4k.bin", 8),
]
BIG_GET: Final = "big/get.bin"
BIG_PUT: Final = "big/put.bin"
HUGE: Final = "big/huge.bin"
PATHS: Final = ("direct", "proxy")


@dataclass(frozen=True)
class Topology:
    """Which CPUs the load side (backends, wrk, curl, this process) and the proxy run on."""

    mode: str  # "shared" or "pinned"
    load_cpus: tuple[int, ...]
    proxy_cpus: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "load_cpus": list(self.load_cpus),
                "proxy_cpus": list(self.proxy_cpus)}


def parse_cpus(text: str) -> tuple[int, ...]:
    """`0-2,5` -> (0, 1, 2, 5)."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return tuple(sorted(cpus))


def topology_for(pin: str | None, available: tuple[int, ...]) -> Topology:
    """`pin`: None (shared), "auto" (the proxy gets the upper half of the CPUs, at least one,
    the load side the rest) or "LOAD:PROXY" CPU lists, e.g. "0:1" or "0-3:4-5"."""
    if pin is None:
        return Topology("shared", available, available)
    if pin == "auto":
        if len(available) < 2:
            raise ValueError(f"--pin needs at least 2 CPUs, this process may use {available}")
        split = len(available) - max(1, len(available) // 2)
        return Topology("pinned", available[:split], available[split:])
    load_text, sep, proxy_text = pin.partition(":")
    if not sep:
        raise ValueError(f"--pin {pin!r}: expected auto or LOAD:PROXY CPU lists, e.g. 0:1")
    load, proxy = parse_cpus(load_text), parse_cpus(proxy_text)
    if set(load) & set(proxy):
        raise ValueError(f"--pin {pin!r}: the two CPU sets overlap")
    if not set(load + proxy) <= set(available):
        raise ValueError(f"--pin {pin!r}: CPUs outside {available}")
    return Topology("pinned", load, proxy)


def allowed_cpus(pid: int) -> str:
    """The CPUs a process may run on, as the kernel reports them (to check the pinning)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return ""


def cpu_list(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


@dataclass
class Stack:
    """One backend: its server process, its user, and its base URL."""

    name: str
    uid: str
    server: Server

    @property
    def base(self) -> str:
        return self.server.ready_url.rsplit("/status.php", 1)[0]

    def files_url(self, via: str, proxy_base: str) -> str:
        return f"{proxy_base if via == 'proxy' else self.base}/remote.php/dav/files/{self.uid}/"


@dataclass
class Results:
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def runs(self, scenario: str, stack: str, via: str) -> list[dict[str, Any]]:
        entry = self.scenarios.setdefault(scenario, {"stacks": {}})
        cell: dict[str, Any] = entry["stacks"].setdefault(stack, {}).setdefault(via, {"runs": []})
        runs: list[dict[str, Any]] = cell["runs"]
        return runs

    def fail(self, scenario: str, where: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}".strip()
        self.failures.append({"scenario": scenario, "where": where, "error": message[:2000]})
        log(f"  !! {scenario} {where}: {message.splitlines()[0] if message else ''}")


# ---------------------------------------------------------------------------------------------
# Servers and data


def legacy_stack(work: Path, args: argparse.Namespace) -> tuple[Stack, str]:
    """An ownCloud 10 instance (SQLite) with both users, served in place; (stack, config.php)."""
    from tests.newstack.legacy.stack import empty_instance

    manifest = empty_instance(work / "oc10", dict.fromkeys(USERS, PASSWORD))
    port = free_port()
    argv = [str(VENV_BIN / "ocbridge"), "serve", "legacy", "--oc10-config", manifest.config_php,
            "--listen", f"{LOOPBACK}:{port}", "--workers", str(args.backend_workers),
            "--threads", str(args.backend_threads)]
    server = Server("legacy", argv, f"http://{LOOPBACK}:{port}/status.php", work / "legacy.log",
                    cwd=work)
    return Stack("legacy", "alice", server), manifest.config_php


def new_stack(work: Path, args: argparse.Namespace) -> Stack:
    data_dir = work / "newstack-data"
    ocbridge = str(VENV_BIN / "ocbridge")
    run_checked([ocbridge, "users", "add", "bob", "--password", PASSWORD, "--data",
                 str(data_dir)])
    port = free_port()
    argv = [ocbridge, "serve", "newstack", "--data", str(data_dir),
            "--listen", f"{LOOPBACK}:{port}", "--workers", str(args.backend_workers),
            "--threads", str(args.backend_threads)]
    server = Server("new", argv, f"http://{LOOPBACK}:{port}/status.php", work / "new.log",
                    cwd=work)
    return Stack("new", "bob", server)


def proxy_env(work: Path, config_php: str, stacks: dict[str, Stack]) -> dict[str, str]:
    return loopback_env({
        "OCBRIDGE_LEGACY__CONFIG_PHP": config_php,
        "OCBRIDGE_NEWSTACK__DATA_DIR": str(work / "bridge"),
        "OCBRIDGE_PROXY__LEGACY_URL": stacks["legacy"].base,
        "OCBRIDGE_PROXY__NEWSTACK_URL": stacks["new"].base,
    })


def proxy_server(work: Path, env: dict[str, str], workers: int, topology: Topology) -> Server:
    port = free_port()
    argv = [str(VENV_BIN / "ocbridge"), "proxy", "--listen", f"{LOOPBACK}:{port}",
            "--workers", str(workers)]
    if topology.mode == "pinned":
        # taskset execs the proxy in place (same pid); its workers inherit the CPU set
        argv = ["taskset", "--cpu-list", cpu_list(topology.proxy_cpus), *argv]
    return Server("proxy", argv, f"http://{LOOPBACK}:{port}/status.php", work / "proxy.log",
                  env=env, cwd=work)


def upload(stack: Stack, big: Path, marker: bytes) -> None:
    """The data set into `stack` through its own WebDAV: a folder of small files, a 4 KB file
    starting with `marker` (so the bench can tell which stack answered), the big file."""
    url = stack.files_url("direct", "")
    with httpx.Client(base_url=url, auth=(stack.uid, PASSWORD), trust_env=False,
                      timeout=120) as client:
        for folder in ("d100", "big"):
            r = client.request("MKCOL", f"{folder}/")
            if r.status_code not in (201, 405):
                raise RuntimeError(f"{stack.name}: MKCOL {folder}: {r.status_code}")
        for i in range(SMALL_FILES):
            r = client.put(f"d100/file-{i:04d}.txt", content=os.urandom(200))
            if r.status_code not in (201, 204):
                raise RuntimeError(f"{stack.name}: PUT d100/file-{i}: {r.status_code}")
        small = marker + os.urandom(GET_SMALL_BYTES - len(marker))
        if client.put("small4k.bin", content=small).status_code not in (201, 204):
            raise RuntimeError(f"{stack.name}: PUT small4k.bin failed")
    result = curl_transfer(url + BIG_GET, upload=big, user=f"{stack.uid}:{PASSWORD}")
    if result.status not in (201, 204):
        raise RuntimeError(f"{stack.name}: PUT {BIG_GET}: HTTP {result.status}")


def check_routing(stacks: dict[str, Stack], proxy_base: str) -> None:
    """Through the proxy each user must reach their own stack (its marker in the 4 KB file)."""
    for stack in stacks.values():
        r = httpx.get(stack.files_url("proxy", proxy_base) + "small4k.bin",
                      auth=(stack.uid, PASSWORD), trust_env=False, timeout=30)
        if r.status_code != 200 or not r.content.startswith(marker_of(stack)):
            raise RuntimeError(f"{stack.uid} through the proxy: HTTP {r.status_code}, "
                               f"not the {stack.name} stack's file")


def marker_of(stack: Stack) -> bytes:
    return f"stack={stack.name};".encode()


@contextmanager
def started(servers: list[Server]) -> Iterator[None]:
    try:
        for server in servers:
            server.start()
            log(f"started {server.name} (pid {server.pid}) at {server.ready_url}")
        yield
    finally:
        for server in reversed(servers):
            server.stop()


# ---------------------------------------------------------------------------------------------
# Measuring


def write_scripts(work: Path, uid: str) -> dict[str, Path]:
    import base64

    auth = "Basic " + base64.b64encode(f"{uid}:{PASSWORD}".encode()).decode()
    scripts = {}
    for sc in WRK_SCENARIOS:
        headers = {"Authorization": auth}
        body = None
        if sc.method == "PROPFIND":
            headers |= {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
            body = PROPFIND_BODY
        path = work / f"wrk-{uid}-{sc.name}.lua"
        path.write_text(wrk_script(sc.method, headers, body))
        scripts[sc.name] = path
    return scripts


def idle_cpu_rate(proxy: Server, seconds: float = 5.0) -> float:
    """CPU seconds per second the proxy spends with no traffic: each worker polls the routing
    epoch (proxy.refresh_ms) and beats its heartbeat, whatever the request rate."""
    before = proc_sample(proxy.pid)
    started = time.monotonic()
    time.sleep(seconds)
    after = proc_sample(proxy.pid)
    return (after.cpu_s - before.cpu_s) / (time.monotonic() - started)


def measure_wrk(results: Results, stacks: list[Stack], proxy: Server, work: Path,
                args: argparse.Namespace, idle_rate: float) -> None:
    scripts = {s.name: write_scripts(work, s.uid) for s in stacks}
    proxy_base = proxy.ready_url.rsplit("/status.php", 1)[0]
    for rep in range(args.reps):
        for sc in WRK_SCENARIOS:
            for stack in stacks:
                for via in PATHS:
                    script = scripts[stack.name][sc.name]
                    url = stack.files_url(via, proxy_base) + sc.path
                    try:
                        stack.server.check_alive()
                        proxy.check_alive()
                        if rep == 0:  # warm pools, caches and code paths; not recorded
                            run_wrk(url, script, seconds=1, connections=sc.connections)
                        proxy_before = proc_sample(proxy.pid)
                        backend_before = proc_sample(stack.server.pid)
                        started = time.monotonic()
                        w = run_wrk(url, script, seconds=args.seconds,
                                    connections=sc.connections)
                        elapsed = time.monotonic() - started
                        proxy_after = proc_sample(proxy.pid)
                        backend_after = proc_sample(stack.server.pid)
                    except Exception as exc:  # noqa: BLE001 - record and go on
                        results.fail(sc.name, f"{stack.name}/{via}", exc)
                        continue
                    run: dict[str, Any] = {
                        "req_s": round(w.rps, 1), "requests": w.requests,
                        "p50_ms": round(w.p50_ms, 3), "p99_ms": round(w.p99_ms, 3),
                        "errors": w.errors, "non_2xx_3xx": w.non_2xx_3xx,
                        "backend_cpu_ms_per_req": per_request(backend_before.cpu_s,
                                                              backend_after.cpu_s, w.requests),
                    }
                    if via == "proxy":
                        # the idle polling is a fixed cost per second, not per request: at
                        # 50 req/s it would add 0.2 ms to each; both figures are kept
                        run["proxy_cpu_ms_per_req_raw"] = per_request(
                            proxy_before.cpu_s, proxy_after.cpu_s, w.requests)
                        run["proxy_cpu_ms_per_req"] = per_request(
                            proxy_before.cpu_s + idle_rate * elapsed, proxy_after.cpu_s,
                            w.requests)
                        run["proxy_rss_mib"] = mib(proxy_after.rss_kb)
                    results.runs(sc.name, stack.name, via).append(run)
                    log(f"  [{rep + 1}/{args.reps}] {sc.name:13} {stack.name:6} {via:6}"
                        f" {run['req_s']:>8} req/s  p50 {run['p50_ms']} ms"
                        + (f"  proxy cpu {run['proxy_cpu_ms_per_req']} ms/req"
                           if via == "proxy" else "")
                        + (f"  ERRORS {w.errors}/{w.non_2xx_3xx}"
                           if w.errors or w.non_2xx_3xx else ""))


def per_request(before_s: float, after_s: float, requests: int) -> float | None:
    return round((after_s - before_s) * 1000 / requests, 3) if requests else None


def transfer(stack: Stack, via: str, proxy: Server, op: str, source: Path, path: str,
             ) -> dict[str, Any]:
    """One GET (to /dev/null) or PUT of `source` with curl, the proxy's RSS sampled meanwhile."""
    proxy_base = proxy.ready_url.rsplit("/status.php", 1)[0]
    url = stack.files_url(via, proxy_base) + path
    user = f"{stack.uid}:{PASSWORD}"
    size = source.stat().st_size
    stack.server.check_alive()
    proxy.check_alive()
    before = proc_sample(proxy.pid)
    with RssSampler(proxy.pid, interval=0.1) as rss:
        if op == "get":
            result = curl_transfer(url, user=user, timeout=3600)
        else:
            result = curl_transfer(url, upload=source, user=user, timeout=3600,
                                   headers={"X-OC-Mtime": PUT_MTIME})
    after = proc_sample(proxy.pid)
    if result.status not in (200, 201, 204) or result.bytes != size:
        raise RuntimeError(f"HTTP {result.status}, {result.bytes} of {size} bytes")
    run: dict[str, Any] = {"mb_s": round(result.mb_s, 1), "seconds": round(result.seconds, 3)}
    if via == "proxy":
        run |= {
            "proxy_cpu_s": round(after.cpu_s - before.cpu_s, 3),
            "proxy_rss_start_mib": mib(rss.start_kb), "proxy_rss_peak_mib": mib(rss.peak_kb),
            "proxy_rss_end_mib": mib(rss.end_kb),
            "proxy_rss_growth_mib": mib(rss.peak_kb - rss.start_kb),
            "rss_samples": len(rss.samples),
        }
    return run


def measure_big(results: Results, stacks: list[Stack], proxy: Server, big: Path,
                args: argparse.Namespace) -> None:
    for rep in range(args.big_reps):
        for op in ("get", "put"):
            scenario = f"{op}_1g"
            for stack in stacks:
                for via in PATHS:
                    try:
                        run = transfer(stack, via, proxy, op, big,
                                       BIG_GET if op == "get" else BIG_PUT)
                    except Exception as exc:  # noqa: BLE001 - record and go on
                        results.fail(scenario, f"{stack.name}/{via}", exc)
                        continue
                    results.runs(scenario, stack.name, via).append(run)
                    log(f"  [{rep + 1}/{args.big_reps}] {scenario:8} {stack.name:6} {via:6}"
                        f" {run['mb_s']:>7} MB/s"
                        + (f"  proxy rss {run['proxy_rss_start_mib']} -> peak "
                           f"{run['proxy_rss_peak_mib']} MiB" if via == "proxy" else ""))


def measure_huge(results: Results, stacks: list[Stack], proxy: Server, work: Path,
                 gib: int) -> None:
    """PUT then GET of a `gib` GiB body through the proxy to the new stack, RSS sampled. The
    source is a sparse file: reading it costs curl nothing, the bytes still cross the proxy."""
    source = work / "huge-source.bin"
    with source.open("wb") as out:
        out.truncate(gib * 1024**3)
    stack = next(s for s in stacks if s.name == "new")
    try:
        for op in ("put", "get"):
            scenario = f"{op}_{gib}g"
            try:
                run = transfer(stack, "proxy", proxy, op, source, HUGE)
            except Exception as exc:  # noqa: BLE001 - record and go on
                results.fail(scenario, f"{stack.name}/proxy", exc)
                continue
            results.runs(scenario, stack.name, "proxy").append(run)
            log(f"  {scenario:8} {stack.name:6} proxy  {run['mb_s']:>7} MB/s  proxy rss "
                f"{run['proxy_rss_start_mib']} -> peak {run['proxy_rss_peak_mib']} -> end "
                f"{run['proxy_rss_end_mib']} MiB")
    finally:
        source.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Summary


def summarize(results: Results) -> None:
    """Medians per cell, then per stack: proxy vs direct."""
    for entry in results.scenarios.values():
        for cells in entry["stacks"].values():
            for cell in cells.values():
                runs = cell["runs"]
                keys = {k for run in runs for k in run if isinstance(run[k], int | float)}
                for key in sorted(keys):
                    cell[key] = rnd(median([r[key] for r in runs if r.get(key) is not None]), 3)
                if "req_s" in cell or "mb_s" in cell:
                    unit = "req_s" if "req_s" in cell else "mb_s"
                    cell["range"] = [min(r[unit] for r in runs), max(r[unit] for r in runs)]
            direct, proxied = cells.get("direct"), cells.get("proxy")
            if direct and proxied:
                unit = "req_s" if "req_s" in direct else "mb_s"
                cells["ratio"] = ratio(proxied.get(unit), direct.get(unit))
                if unit == "req_s":
                    cells["added_p50_ms"] = rnd(proxied["p50_ms"] - direct["p50_ms"], 3)
                    cells["added_p99_ms"] = rnd(proxied["p99_ms"] - direct["p99_ms"], 3)


def targets_met(results: Results, huge_gib: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(target: str, scenario: str, stack: str, got: float | None, limit: float,
            at_least: bool) -> None:
        met = None if got is None else (got >= limit if at_least else got <= limit)
        out.append({"target": target, "scenario": scenario, "stack": stack, "value": got,
                    "threshold": limit, "met": met})

    for sc in WRK_SCENARIOS:
        for stack, cells in results.scenarios.get(sc.name, {}).get("stacks", {}).items():
            proxied = cells.get("proxy", {})
            add(f"proxy CPU per request <= {CPU_MS_MAX} ms", sc.name, stack,
                proxied.get("proxy_cpu_ms_per_req"), CPU_MS_MAX, False)
            add(f"req/s >= {SMALL_RATIO_MIN} x direct", sc.name, stack, cells.get("ratio"),
                SMALL_RATIO_MIN, True)
            if sc.connections == 1:
                add(f"added p50 <= {ADDED_P50_MS_MAX} ms", sc.name, stack,
                    cells.get("added_p50_ms"), ADDED_P50_MS_MAX, False)
    for scenario in ("get_1g", "put_1g"):
        for stack, cells in results.scenarios.get(scenario, {}).get("stacks", {}).items():
            add(f"MB/s >= {BIG_RATIO_MIN} x direct", scenario, stack, cells.get("ratio"),
                BIG_RATIO_MIN, True)
    growth = [run["proxy_rss_growth_mib"]
              for name, entry in results.scenarios.items() if name.endswith("g")
              for cells in entry["stacks"].values()
              for run in cells.get("proxy", {}).get("runs", [])]
    add(f"proxy RSS flat: peak - start <= {FLAT_GROWTH_MIB} MiB in every 1 GiB and "
        f"{huge_gib} GiB transfer", "*_1g, *_5g", "*", max(growth) if growth else None,
        FLAT_GROWTH_MIB, False)
    return out


def print_tables(results: Results, targets: list[dict[str, Any]]) -> None:
    rows = []
    for scenario, entry in results.scenarios.items():
        for stack, cells in entry["stacks"].items():
            direct, proxied = cells.get("direct", {}), cells.get("proxy", {})
            unit = "req_s" if "req_s" in proxied else "mb_s"
            rows.append([
                scenario, stack, unit.replace("_", "/"), direct.get(unit), proxied.get(unit),
                cells.get("ratio"), cells.get("added_p50_ms"), cells.get("added_p99_ms"),
                proxied.get("proxy_cpu_ms_per_req", proxied.get("proxy_cpu_s")),
                proxied.get("proxy_rss_mib", proxied.get("proxy_rss_peak_mib")),
            ])
    print(format_table(["scenario", "stack", "unit", "direct", "proxy", "ratio",
                        "+p50 ms", "+p99 ms", "proxy CPU ms/req (s/transfer)",
                        "proxy RSS (peak) MiB"], rows))
    print()
    print(format_table(["target", "scenario", "stack", "value", "threshold", "met"],
                       [[t["target"], t["scenario"], t["stack"], t["value"], t["threshold"],
                         {True: "yes", False: "NO", None: "n/a"}[t["met"]]] for t in targets]))


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 s wrk cells, 2 repetitions, one 1 GiB transfer per cell, "
                             "no huge transfer")
    parser.add_argument("--out", type=Path,
                        help="default bench/results/proxy.json (proxy-pinned.json with --pin)")
    parser.add_argument("--reps", type=int, help="wrk repetitions per cell (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk cell (default 6)")
    parser.add_argument("--big-reps", type=int, help="1 GiB transfers per cell (default 2)")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file")
    parser.add_argument("--huge-gib", type=int,
                        help="GiB streamed up and down through the proxy (default 5, "
                             "0 to skip; --quick: 0)")
    parser.add_argument("--proxy-workers", type=int, default=2)
    parser.add_argument("--backend-workers", type=int, default=2)
    parser.add_argument("--backend-threads", type=int, default=2)
    parser.add_argument("--skip-big", action="store_true", help="only the wrk scenarios")
    parser.add_argument("--pin", nargs="?", const="auto", metavar="LOAD:PROXY",
                        help="the proxy on CPUs of its own, the backends, wrk and curl on the "
                             "others, for direct and proxied cells alike (production's "
                             "topology); bare --pin splits this process's CPUs in two, or give "
                             "CPU lists, e.g. 0:1; default: every process on every CPU. "
                             "Default --out: bench/results/proxy-pinned.json")
    args = parser.parse_args(argv)
    try:
        args.topology = topology_for(args.pin, tuple(sorted(os.sched_getaffinity(0))))
    except ValueError as exc:
        parser.error(str(exc))
    if args.out is None:
        name = "proxy-pinned.json" if args.topology.mode == "pinned" else "proxy.json"
        args.out = ROOT / "bench/results" / name
    args.reps = args.reps or (2 if args.quick else 3)
    args.seconds = args.seconds or (2.0 if args.quick else 6.0)
    args.big_reps = args.big_reps or (1 if args.quick else 2)
    if args.huge_gib is None:
        args.huge_gib = 0 if args.quick or args.skip_big else 5
    for name in ("reps", "seconds", "big_reps", "big_mib", "proxy_workers", "backend_workers",
                 "backend_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.huge_gib < 0:
        parser.error("--huge-gib must not be negative")
    return args


def run(work: Path, args: argparse.Namespace, results: Results, meta: dict[str, Any]) -> None:
    log(f"work dir {work}; writing the {args.big_mib} MiB file")
    big = work / "big-source.bin"
    write_random_file(big, args.big_mib * 1024 * 1024)
    legacy, config_php = legacy_stack(work, args)
    new = new_stack(work, args)
    stacks = {"legacy": legacy, "new": new}
    env = proxy_env(work, config_php, stacks)
    # bob is routed to the new stack before the proxy starts (it loads the view at start-up)
    run_checked([str(VENV_BIN / "ocbridge"), "route", "set", "bob", "new", "--wait", "0"],
                env=env)
    topology: Topology = args.topology
    proxy = proxy_server(work, env, args.proxy_workers, topology)
    with started([legacy.server, new.server, proxy]):
        meta["cpus_allowed"] = {server.name: allowed_cpus(server.pid)
                                for server in (legacy.server, new.server, proxy)}
        for stack in stacks.values():
            started_at = time.perf_counter()
            upload(stack, big, marker_of(stack))
            log(f"uploaded the data set to {stack.name} in "
                f"{time.perf_counter() - started_at:.1f} s")
        proxy_base = proxy.ready_url.rsplit("/status.php", 1)[0]
        check_routing(stacks, proxy_base)
        meta["proxy_rss_idle_mib"] = mib(proc_sample(proxy.pid).rss_kb)
        meta["proxy_processes"] = proc_sample(proxy.pid).pids
        idle_rate = idle_cpu_rate(proxy)
        meta["proxy_idle_cpu_ms_per_s"] = round(idle_rate * 1000, 2)
        log(f"proxy idle: {idle_rate * 1000:.1f} ms of CPU per second")
        order = list(stacks.values())
        log("== small requests (wrk)")
        measure_wrk(results, order, proxy, work, args, idle_rate)
        if not args.skip_big:
            log(f"== {args.big_mib} MiB transfers (curl)")
            measure_big(results, order, proxy, big, args)
        if args.huge_gib:
            log(f"== {args.huge_gib} GiB through the proxy")
            measure_huge(results, order, proxy, work, args.huge_gib)
        meta["proxy_rss_end_mib"] = mib(proc_sample(proxy.pid).rss_kb)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = {"wrk": "wrk", "curl": "curl", "taskset": "util-linux"}
    for tool, package in tools.items():
        if shutil.which(tool) is None and (tool != "taskset" or args.topology.mode == "pinned"):
            log(f"{tool} is missing: apt-get install {package}")
            return 2
    if args.topology.mode == "pinned":
        # this process, and so the backends, wrk and curl it starts, on the load CPUs
        os.sched_setaffinity(0, args.topology.load_cpus)
        log(f"pinned: backends, wrk, curl on CPUs {cpu_list(args.topology.load_cpus)}; "
            f"proxy on {cpu_list(args.topology.proxy_cpus)}")
    results = Results()
    meta: dict[str, Any] = {"loadavg_start": loadavg()}
    begun = time.perf_counter()
    with cleanup_on_signals(), temp_dir("ocb-bench-proxy-") as work:
        try:
            run(work, args, results, meta)
        except KeyboardInterrupt:
            log("interrupted: stopping servers and removing temp dirs")
            return 130
        except (ServerError, RuntimeError, OSError, httpx.HTTPError) as exc:
            results.fail("setup", "*", exc)
            log(traceback.format_exc())
    meta["loadavg_end"] = loadavg()
    summarize(results)
    targets = targets_met(results, args.huge_gib)
    titles = {sc.name: sc.title for sc in WRK_SCENARIOS} | {
        "get_1g": f"GET {args.big_mib} MiB, curl", "put_1g": f"PUT {args.big_mib} MiB, curl",
        f"put_{args.huge_gib}g": f"PUT {args.huge_gib} GiB through the proxy, curl",
        f"get_{args.huge_gib}g": f"GET {args.huge_gib} GiB through the proxy, curl",
    }
    for name, entry in results.scenarios.items():
        entry["title"] = titles.get(name, name)
    out = {
        "benchmark": "proxy",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "topology": args.topology.as_json(),
        "wall_seconds": round(time.perf_counter() - begun, 1),
        "machine": machine_info(),
        "versions": {"wrk": tool_version(["wrk", "-v"]),
                     "curl": tool_version(["curl", "--version"])},
        "config": {
            "wrk_seconds": args.seconds, "wrk_reps": args.reps, "big_reps": args.big_reps,
            "big_bytes": args.big_mib * 1024 * 1024, "huge_gib": args.huge_gib,
            "proxy_workers": args.proxy_workers, "backend_workers": args.backend_workers,
            "backend_threads": args.backend_threads, "users": USERS,
        },
        "setup": meta,
        "scenarios": results.scenarios,
        "targets": targets,
        "failures": results.failures,
    }
    write_json(args.out, out)
    print_tables(results, targets)
    return finish(args.out, out)


if __name__ == "__main__":
    sys.exit(main())
