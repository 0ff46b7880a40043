"""Benchmark: the new stack's WebDAV against rclone serve webdav and wsgidav on the same data.

    .venv/bin/python -m bench.newstack [--quick] [--out bench/results/newstack.json]
    scripts/dev bench newstack [--quick] [--no-s3] [--reps N] [--seconds S] ...

Scenarios (docs/benchmarks.md has the details and the latest numbers):
  PROPFIND Depth 1 on folders of 100 and 1,000 files (desktop client's property set), GET 4 KB,
  all with wrk; GET and PUT of a 1 GiB file with curl, on POSIX and on S3 (Ceph RGW).
Servers run side by side on 127.0.0.1, cells are interleaved (A B C A B C ...) and medians kept;
each cell records the server's CPU time per request and its RSS from /proc.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    running_rgw,
    temp_dir,
    tool_version,
    write_json,
    write_random_file,
    wrk_script,
)
from newstack.server import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
USER = "alice"
PASSWORD = "bench-password-1"
SMALL_FILE_BYTES = 200
GET_SMALL_BYTES = 4096
GiB = 1024**3
PUT_MTIME = "1700000000"  # fixed X-OC-Mtime: overwrites replace one version, not pile up
#: "memory flat": RSS may grow by at most this much while 1 GiB streams through
FLAT_GROWTH_MIB = 128

PROPFIND_BODY = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
  <d:prop>
    <d:resourcetype/>
    <d:getlastmodified/>
    <d:getcontentlength/>
    <d:getetag/>
    <oc:id/>
    <oc:downloadURL/>
    <oc:dDC/>
    <oc:permissions/>
    <oc:checksums/>
    <oc:data-fingerprint/>
    <oc:share-types/>
  </d:prop>
</d:propfind>
"""


@dataclass(frozen=True)
class WrkScenario:
    name: str
    title: str
    method: str
    path: str  # relative to the server's files root
    connections: int
    depth: str | None = None


WRK_SCENARIOS = [
    WrkScenario("propfind_100", "PROPFIND Depth 1, 100 entries, c=1", "PROPFIND", "d100/", 1, "1"),
    WrkScenario("propfind_1000", "PROPFIND Depth 1, 1,000 entries, c=1", "PROPFIND", "d1000/",
                1, "1"),
    WrkScenario("propfind_1000_c4", "PROPFIND Depth 1, 1,000 entries, c=4", "PROPFIND",
                "d1000/", 4, "1"),
    WrkScenario("get_4k", "GET 4 KB, c=1", "GET", "small4k.bin", 1),
    WrkScenario("get_4k_c8", "GET 4 KB, c=8", "GET", "small4k.bin", 8),
]
BIG_GET = "big/get.bin"
BIG_PUT = "big/put.bin"


@dataclass
class Target:
    """One server under test: its process and where its files live in URL space."""

    name: str
    server: Server
    files_url: str  # ends with "/"
    auth: bool = True

    @property
    def user(self) -> str | None:
        return f"{USER}:{PASSWORD}" if self.auth else None


@dataclass
class Results:
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def runs(self, scenario: str, server: str) -> dict[str, Any]:
        entry = self.scenarios.setdefault(scenario, {"servers": {}})
        runs: dict[str, Any] = entry["servers"].setdefault(server, {"runs": []})
        return runs

    def fail(self, scenario: str, server: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}".strip()
        self.failures.append({"scenario": scenario, "server": server, "error": message[:2000]})
        log(f"  !! {scenario} {server}: {message.splitlines()[0] if message else ''}")


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Dataset:
    """The files every server gets: two folders of small files, a 4 KB file, a big file."""

    small: dict[str, bytes]  # relative path -> content
    big: Path

    @classmethod
    def make(cls, work: Path, big_bytes: int) -> Dataset:
        small: dict[str, bytes] = {"small4k.bin": os.urandom(GET_SMALL_BYTES)}
        for folder, count in (("d100", 100), ("d1000", 1000)):
            for i in range(count):
                small[f"{folder}/file-{i:04d}.txt"] = os.urandom(SMALL_FILE_BYTES)
        big = work / "big-source.bin"
        write_random_file(big, big_bytes)
        return cls(small=small, big=big)

    @property
    def folders(self) -> list[str]:
        return ["d100", "d1000", "big"]

    def write_tree(self, root: Path) -> None:
        for folder in self.folders:
            (root / folder).mkdir(parents=True, exist_ok=True)
        for rel, content in self.small.items():
            (root / rel).write_bytes(content)
        shutil.copyfile(self.big, root / BIG_GET)


def upload_tree(target: Target, data: Dataset, *, big: bool = True) -> float:
    """Everything in `data` into `target` through its WebDAV API (MKCOL + PUT)."""
    started = time.perf_counter()
    with httpx.Client(base_url=target.files_url, auth=(USER, PASSWORD), trust_env=False,
                      timeout=120, limits=httpx.Limits(max_connections=4)) as client:
        for folder in data.folders:
            r = client.request("MKCOL", f"{folder}/")
            if r.status_code not in (201, 405):
                raise RuntimeError(f"MKCOL {folder}: {r.status_code} {r.text[:200]}")

        def put(item: tuple[str, bytes]) -> None:
            r = client.put(item[0], content=item[1])
            if r.status_code not in (201, 204):
                raise RuntimeError(f"PUT {item[0]}: {r.status_code} {r.text[:200]}")

        pool = ThreadPoolExecutor(4)
        try:
            list(pool.map(put, data.small.items()))
        finally:  # on Ctrl-C, drop the queued PUTs instead of waiting for them
            pool.shutdown(wait=True, cancel_futures=True)
    if big:
        result = curl_transfer(target.files_url + BIG_GET, upload=data.big, user=target.user)
        if result.status not in (201, 204):
            raise RuntimeError(f"PUT {BIG_GET}: HTTP {result.status}")
    return time.perf_counter() - started


def check_target(target: Target, data: Dataset) -> dict[str, Any]:
    """Same answers from every server before measuring: entry counts and the 4 KB body."""
    info: dict[str, Any] = {}
    with httpx.Client(base_url=target.files_url, auth=(USER, PASSWORD), trust_env=False,
                      timeout=60) as client:
        for folder, count in (("d100", 100), ("d1000", 1000)):
            r = client.request("PROPFIND", f"{folder}/", content=PROPFIND_BODY,
                               headers={"Depth": "1", "Content-Type": "application/xml"})
            if r.status_code != 207:
                raise RuntimeError(f"PROPFIND {folder}: HTTP {r.status_code}")
            responses = ET.fromstring(r.content).findall("{DAV:}response")
            if len(responses) != count + 1:
                raise RuntimeError(f"PROPFIND {folder}: {len(responses)} entries, "
                                   f"expected {count + 1}")
            info[f"propfind_{count}_response_bytes"] = len(r.content)
        r = client.get("small4k.bin")
        if r.status_code != 200 or r.content != data.small["small4k.bin"]:
            raise RuntimeError(f"GET small4k.bin: HTTP {r.status_code}, {len(r.content)} bytes")
        r = client.head(BIG_GET)
        if int(r.headers.get("content-length", -1)) != data.big.stat().st_size:
            raise RuntimeError(f"HEAD {BIG_GET}: HTTP {r.status_code}, "
                               f"length {r.headers.get('content-length')}")
    return info


# ---------------------------------------------------------------------------------------------
# Servers


def newstack_target(work: Path, name: str, args: argparse.Namespace,
                    env_extra: dict[str, str] | None = None) -> Target:
    data_dir = work / f"{name}-data"
    data_dir.mkdir()
    env = loopback_env(env_extra)
    ocbridge = str(VENV_BIN / "ocbridge")
    run_checked([ocbridge, "users", "add", USER, "--password", PASSWORD, "--data",
                 str(data_dir)], env=env)
    port = free_port()
    argv = [ocbridge, "serve", "newstack", "--data", str(data_dir),
            "--listen", f"{LOOPBACK}:{port}"]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    server = Server(name, argv, f"http://{LOOPBACK}:{port}/status.php",
                    work / f"{name}.log", env=env, cwd=work)
    return Target(name, server, f"http://{LOOPBACK}:{port}/remote.php/dav/files/{USER}/")


def rclone_target(work: Path, name: str, remote: str,
                  env_extra: dict[str, str] | None = None) -> Target:
    port = free_port()
    conf = work / "rclone.conf"
    conf.touch()
    argv = ["rclone", "serve", "webdav", remote, "--config", str(conf),
            "--addr", f"{LOOPBACK}:{port}", "--user", USER, "--pass", PASSWORD]
    env = loopback_env(env_extra)
    # rclone's S3 SDK fails on AWS_CA_BUNDLE ("HTTPClient's transport unsupported type");
    # the RGW is plain HTTP on loopback anyway
    env.pop("AWS_CA_BUNDLE", None)
    server = Server(name, argv, f"http://{LOOPBACK}:{port}/", work / f"{name}.log",
                    env=env, cwd=work)
    return Target(name, server, f"http://{LOOPBACK}:{port}/")


def wsgidav_target(work: Path, root: Path) -> Target:
    port = free_port()
    argv = [str(VENV_BIN / "wsgidav"), "--host", LOOPBACK, "--port", str(port),
            "--root", str(root), "--auth", "anonymous", "--no-config", "-q", "-q"]
    server = Server("wsgidav", argv, f"http://{LOOPBACK}:{port}/", work / "wsgidav.log",
                    cwd=work)
    # anonymous: the Basic auth header wrk sends is ignored
    return Target("wsgidav", server, f"http://{LOOPBACK}:{port}/", auth=True)


@contextlib.contextmanager
def started(targets: list[Target]) -> Iterator[list[Target]]:
    try:
        for target in targets:
            target.server.start()
            log(f"started {target.name} (pid {target.server.pid}) at {target.files_url}")
        yield targets
    finally:
        for target in reversed(targets):
            target.server.stop()


# ---------------------------------------------------------------------------------------------
# Measuring


def wrk_scripts(work: Path) -> dict[str, Path]:
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    scripts = {}
    for sc in WRK_SCENARIOS:
        headers = {"Authorization": auth}
        body = None
        if sc.method == "PROPFIND":
            headers |= {"Depth": sc.depth or "1",
                        "Content-Type": "application/xml; charset=utf-8"}
            body = PROPFIND_BODY
        path = work / f"wrk-{sc.name}.lua"
        path.write_text(wrk_script(sc.method, headers, body))
        scripts[sc.name] = path
    return scripts


def measure_wrk(results: Results, targets: list[Target], scripts: dict[str, Path],
                reps: int, seconds: float) -> None:
    for rep in range(reps):
        for sc in WRK_SCENARIOS:
            for target in targets:
                try:
                    target.server.check_alive()
                    url = target.files_url + sc.path
                    if rep == 0:  # warm caches and connection paths; not recorded
                        run_wrk(url, scripts[sc.name], seconds=1, connections=sc.connections)
                    before = proc_sample(target.server.pid)
                    w = run_wrk(url, scripts[sc.name], seconds=seconds,
                                connections=sc.connections)
                    after = proc_sample(target.server.pid)
                except Exception as exc:  # noqa: BLE001 - record and go on with the others
                    results.fail(sc.name, target.name, exc)
                    continue
                run = {
                    "req_s": round(w.rps, 1),
                    "requests": w.requests,
                    "p50_ms": round(w.p50_ms, 2),
                    "p99_ms": round(w.p99_ms, 2),
                    "errors": w.errors,
                    "non_2xx_3xx": w.non_2xx_3xx,
                    "cpu_ms_per_req": round((after.cpu_s - before.cpu_s) * 1000 / w.requests, 3)
                    if w.requests else None,
                    "rss_mib": mib(after.rss_kb),
                    "hwm_mib": mib(after.hwm_kb),
                }
                results.runs(sc.name, target.name)["runs"].append(run)
                log(f"  [{rep + 1}/{reps}] {sc.name:17} {target.name:9} {run['req_s']:>9} req/s"
                    f"  p50 {run['p50_ms']} ms  cpu {run['cpu_ms_per_req']} ms/req"
                    f"  rss {run['rss_mib']} MiB"
                    + (f"  ERRORS {w.errors}/{w.non_2xx_3xx}" if w.errors or w.non_2xx_3xx
                       else ""))


def measure_big(results: Results, targets: list[Target], data: Dataset, reps: int,
                storage: str) -> None:
    ops: list[tuple[str, Callable[[Target], Any]]] = [
        (f"get_1g_{storage}", lambda t: curl_transfer(t.files_url + BIG_GET, user=t.user)),
        (f"put_1g_{storage}", lambda t: curl_transfer(
            t.files_url + BIG_PUT, upload=data.big, user=t.user,
            headers={"X-OC-Mtime": PUT_MTIME})),
    ]
    size = data.big.stat().st_size
    for rep in range(reps):
        for scenario, op in ops:
            for target in targets:
                try:
                    target.server.check_alive()
                    before = proc_sample(target.server.pid)
                    with RssSampler(target.server.pid, interval=0.1) as rss:
                        result = op(target)
                    after = proc_sample(target.server.pid)
                    if result.status not in (200, 201, 204) or result.bytes != size:
                        raise RuntimeError(f"HTTP {result.status}, {result.bytes} of {size} bytes")
                except Exception as exc:  # noqa: BLE001 - record and go on with the others
                    results.fail(scenario, target.name, exc)
                    continue
                run = {
                    "mb_s": round(result.mb_s, 1),
                    "seconds": round(result.seconds, 3),
                    "cpu_s": round(after.cpu_s - before.cpu_s, 3),
                    "rss_start_mib": mib(rss.start_kb),
                    "rss_peak_mib": mib(rss.peak_kb),
                    "rss_end_mib": mib(rss.end_kb),
                    "rss_growth_mib": mib(rss.peak_kb - rss.start_kb),
                    "hwm_mib": mib(after.hwm_kb),
                    "samples": len(rss.samples),
                }
                results.runs(scenario, target.name)["runs"].append(run)
                log(f"  [{rep + 1}/{reps}] {scenario:17} {target.name:9} {run['mb_s']:>9} MB/s"
                    f"  {run['seconds']} s  cpu {run['cpu_s']} s  rss {run['rss_start_mib']}"
                    f" -> peak {run['rss_peak_mib']} MiB")


# ---------------------------------------------------------------------------------------------
# Phases


def posix_phase(work: Path, data: Dataset, args: argparse.Namespace, results: Results,
                meta: dict[str, Any]) -> None:
    log("== POSIX: preparing data")
    plain_rclone = work / "rclone-root"
    plain_wsgidav = work / "wsgidav-root"
    data.write_tree(plain_rclone)
    data.write_tree(plain_wsgidav)
    targets = [
        newstack_target(work, "newstack", args),
        rclone_target(work, "rclone", str(plain_rclone)),
        wsgidav_target(work, plain_wsgidav),
    ]
    with started(targets):
        seconds = upload_tree(targets[0], data)
        meta["newstack_upload_seconds"] = round(seconds, 1)
        log(f"uploaded the tree to newstack through WebDAV in {seconds:.1f} s")
        for target in targets:
            meta.setdefault("responses", {})[target.name] = check_target(target, data)
        log("== POSIX: wrk scenarios")
        measure_wrk(results, targets, wrk_scripts(work), args.reps, args.seconds)
        log("== POSIX: 1 GiB transfers")
        measure_big(results, targets, data, args.big_reps, "posix")


def s3_phase(work: Path, data: Dataset, args: argparse.Namespace, results: Results,
             meta: dict[str, Any]) -> None:
    import boto3
    from botocore.config import Config

    log("== S3: starting Ceph RGW")
    with running_rgw() as rgw:
        meta["rgw_startup_seconds"] = round(rgw.startup_seconds, 1)
        s3 = boto3.client("s3", endpoint_url=rgw.endpoint_url, aws_access_key_id=rgw.access_key,
                          aws_secret_access_key=rgw.secret_key, region_name=rgw.region,
                          config=Config(s3={"addressing_style": "path"},
                                        proxies={}))
        for bucket in ("newstack-bench", "rclone-bench"):
            s3.create_bucket(Bucket=bucket)
        newstack_env = {
            "OCBRIDGE_STORAGE__DRIVER": "s3",
            "OCBRIDGE_STORAGE__S3__ENDPOINT_URL": rgw.endpoint_url,
            "OCBRIDGE_STORAGE__S3__BUCKET": "newstack-bench",
            "OCBRIDGE_STORAGE__S3__REGION": rgw.region,
            "OCBRIDGE_STORAGE__S3__ACCESS_KEY": rgw.access_key,
            "OCBRIDGE_STORAGE__S3__SECRET_KEY": rgw.secret_key,
        }
        rclone_env = {
            "RCLONE_S3_PROVIDER": "Ceph",
            "RCLONE_S3_ENDPOINT": rgw.endpoint_url,
            "RCLONE_S3_ACCESS_KEY_ID": rgw.access_key,
            "RCLONE_S3_SECRET_ACCESS_KEY": rgw.secret_key,
            "RCLONE_S3_REGION": rgw.region,
            "RCLONE_S3_FORCE_PATH_STYLE": "true",
        }
        s3.upload_file(str(data.big), "rclone-bench", BIG_GET)
        targets = [
            newstack_target(work, "newstack-s3", args, newstack_env),
            rclone_target(work, "rclone-s3", ":s3:rclone-bench", rclone_env),
        ]
        with started(targets):
            seconds = upload_tree(targets[0], data, big=True)
            log(f"uploaded the tree to newstack-s3 through WebDAV in {seconds:.1f} s")
            for target in targets:
                r = httpx.head(target.files_url + BIG_GET, auth=(USER, PASSWORD),
                               trust_env=False, timeout=60)
                if int(r.headers.get("content-length", -1)) != data.big.stat().st_size:
                    raise RuntimeError(f"{target.name}: HEAD {BIG_GET} gave HTTP "
                                       f"{r.status_code}, length {r.headers.get('content-length')}")
            log("== S3: 1 GiB transfers")
            measure_big(results, targets, data, args.s3_reps, "s3")


# ---------------------------------------------------------------------------------------------
# Summary


def summarize(results: Results) -> None:
    for scenario, entry in results.scenarios.items():
        for s in entry["servers"].values():
            runs = s["runs"]
            if not runs:
                continue
            if "req_s" in runs[0]:
                s["req_s"] = rnd(median([r["req_s"] for r in runs]))
                s["p50_ms"] = rnd(median([r["p50_ms"] for r in runs]), 2)
                s["p99_ms"] = rnd(median([r["p99_ms"] for r in runs]), 2)
                s["cpu_ms_per_req"] = rnd(median([r["cpu_ms_per_req"] for r in runs
                                                  if r["cpu_ms_per_req"] is not None]), 3)
                s["rss_mib"] = rnd(median([r["rss_mib"] for r in runs]))
                s["hwm_mib"] = max(r["hwm_mib"] for r in runs)
                s["errors"] = sum(r["errors"] + r["non_2xx_3xx"] for r in runs)
                s["range"] = [min(r["req_s"] for r in runs), max(r["req_s"] for r in runs)]
            else:
                s["mb_s"] = rnd(median([r["mb_s"] for r in runs]))
                s["seconds"] = rnd(median([r["seconds"] for r in runs]), 3)
                s["cpu_s"] = rnd(median([r["cpu_s"] for r in runs]), 3)
                s["rss_start_mib"] = rnd(median([r["rss_start_mib"] for r in runs]))
                s["rss_peak_mib"] = max(r["rss_peak_mib"] for r in runs)
                s["rss_growth_max_mib"] = max(r["rss_growth_mib"] for r in runs)
                s["hwm_mib"] = max(r["hwm_mib"] for r in runs)
                s["range"] = [min(r["mb_s"] for r in runs), max(r["mb_s"] for r in runs)]
        unit = "req_s" if scenario.startswith(("propfind", "get_4k")) else "mb_s"
        entry["unit"] = unit.replace("_", "/")
        servers = entry["servers"]
        ours = "newstack-s3" if scenario.endswith("_s3") else "newstack"
        base = "rclone-s3" if scenario.endswith("_s3") else "rclone"
        value = servers.get(ours, {}).get(unit)
        entry["ratio_vs_rclone"] = ratio(value, servers.get(base, {}).get(unit))
        if not scenario.endswith("_s3"):
            entry["ratio_vs_wsgidav"] = ratio(value, servers.get("wsgidav", {}).get(unit))


def targets_met(results: Results) -> list[dict[str, Any]]:
    sc = results.scenarios

    def value(scenario: str, server: str, unit: str) -> float | None:
        v = sc.get(scenario, {}).get("servers", {}).get(server, {}).get(unit)
        return float(v) if v is not None else None

    out: list[dict[str, Any]] = []

    def add(name: str, scenario: str, rule: str, got: float | None, need: float | None) -> None:
        met = None if got is None or need is None else got >= need
        out.append({"target": name, "scenario": scenario, "rule": rule,
                    "value": got, "threshold": rnd(need), "met": met})

    add("PROPFIND Depth 1 on 1,000 entries >= rclone serve webdav", "propfind_1000",
        "newstack req/s >= rclone req/s", value("propfind_1000", "newstack", "req_s"),
        value("propfind_1000", "rclone", "req_s"))
    for scenario in ("get_4k", "get_4k_c8"):
        add("GET 4 KB >= wsgidav filesystem provider", scenario,
            "newstack req/s >= wsgidav req/s", value(scenario, "newstack", "req_s"),
            value(scenario, "wsgidav", "req_s"))
    for scenario in ("get_1g_posix", "put_1g_posix", "get_1g_s3", "put_1g_s3"):
        s3 = scenario.endswith("_s3")
        base = value(scenario, "rclone-s3" if s3 else "rclone", "mb_s")
        add("1 GB transfers >= 80 % of rclone serve webdav", scenario,
            "newstack MB/s >= 0.8 x rclone MB/s",
            value(scenario, "newstack-s3" if s3 else "newstack", "mb_s"),
            None if base is None else 0.8 * base)
    growth = [
        run["rss_growth_mib"]
        for scenario in ("get_1g_posix", "put_1g_posix", "get_1g_s3", "put_1g_s3")
        for server in ("newstack", "newstack-s3")
        for run in sc.get(scenario, {}).get("servers", {}).get(server, {}).get("runs", [])
    ]
    out.append({
        "target": "memory flat during 1 GB transfers", "scenario": "*_1g_*",
        "rule": f"newstack RSS peak - start <= {FLAT_GROWTH_MIB} MiB in every 1 GB transfer",
        "value": max(growth) if growth else None, "threshold": FLAT_GROWTH_MIB,
        "met": (max(growth) <= FLAT_GROWTH_MIB) if growth else None,
    })
    return out


def print_tables(results: Results, targets: list[dict[str, Any]]) -> None:
    rows = []
    for scenario, entry in results.scenarios.items():
        servers = entry["servers"]
        s3 = scenario.endswith("_s3")
        names = ("newstack-s3", "rclone-s3", None) if s3 else ("newstack", "rclone", "wsgidav")
        unit = entry["unit"].replace("/", "_")

        def cell(name: str | None, servers: dict[str, Any] = servers,
                 unit: str = unit) -> str | None:
            if name is None or unit not in servers.get(name, {}):
                return None
            s = servers[name]
            extra = (f" ({s['p50_ms']} ms)" if unit == "req_s" else "")
            return f"{s[unit]}{extra}"

        cpu = []
        for name in names:
            s = servers.get(name or "", {})
            cpu.append(s.get("cpu_ms_per_req", s.get("cpu_s")))
        rows.append([scenario, entry["unit"], cell(names[0]), cell(names[1]), cell(names[2]),
                     entry.get("ratio_vs_rclone"), entry.get("ratio_vs_wsgidav"),
                     " / ".join("–" if c is None else str(c) for c in cpu)])
    print(format_table(["scenario", "unit", "newstack", "rclone", "wsgidav", "vs rclone",
                        "vs wsgidav", "server CPU ms/req or s/transfer (ns/rc/wd)"], rows))
    print()
    mem = []
    for scenario, entry in results.scenarios.items():
        if "_1g_" not in scenario:
            continue
        for name, s in entry["servers"].items():
            if "rss_start_mib" in s:
                mem.append([scenario, name, s["rss_start_mib"], s["rss_peak_mib"],
                            s["rss_growth_max_mib"], s["hwm_mib"]])
    if mem:
        print(format_table(["1 GiB transfer", "server", "RSS start MiB", "peak MiB",
                            "max growth MiB", "VmHWM MiB"], mem))
        print()
    print(format_table(["target", "scenario", "value", "threshold", "met"],
                       [[t["target"], t["scenario"], t["value"], t["threshold"],
                         {True: "yes", False: "NO", None: "n/a"}[t["met"]]] for t in targets]))


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 s wrk cells, 2 repetitions, one 1 GiB transfer per server")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/newstack.json")
    parser.add_argument("--reps", type=int, help="wrk repetitions per cell (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk cell (default 8)")
    parser.add_argument("--big-reps", type=int, help="POSIX 1 GiB transfers per server (3)")
    parser.add_argument("--s3-reps", type=int, help="S3 1 GiB transfers per server (2)")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (Ceph RGW) phase")
    parser.add_argument("--workers", type=int, help="newstack --workers (default: its own)")
    parser.add_argument("--threads", type=int, help="newstack --threads (default: its own)")
    args = parser.parse_args()
    quick = args.quick
    args.reps = args.reps or (2 if quick else 3)
    args.seconds = args.seconds or (2.0 if quick else 8.0)
    args.big_reps = args.big_reps or (1 if quick else 3)
    args.s3_reps = args.s3_reps or (1 if quick else 2)
    return args


def main() -> int:
    args = parse_args()
    for tool in ("wrk", "curl", "rclone"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing: apt-get install {tool}")
            return 2
    if not (VENV_BIN / "wsgidav").exists():
        log(f"wsgidav is missing: {VENV_BIN / 'pip'} install wsgidav lxml")
        return 2
    results = Results()
    meta: dict[str, Any] = {"loadavg_start": loadavg()}
    begun = time.perf_counter()
    interrupted = False
    with cleanup_on_signals(), temp_dir("ocb-bench-newstack-") as work:
        try:
            log(f"work dir {work}; writing the data set ({args.big_mib} MiB big file)")
            data = Dataset.make(work, args.big_mib * 1024 * 1024)
            phases = [posix_phase] + ([] if args.no_s3 else [s3_phase])
            for phase in phases:
                try:
                    phase(work, data, args, results, meta)
                except (ServerError, RuntimeError, OSError, httpx.HTTPError) as exc:
                    results.fail(phase.__name__, "*", exc)
                    log(traceback.format_exc())
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: stopping servers and removing temp dirs")
    if interrupted:
        return 130
    meta["loadavg_end"] = loadavg()
    summarize(results)
    targets = targets_met(results)
    lxml_version = "not installed"
    with contextlib.suppress(ImportError):
        from lxml import etree

        lxml_version = ".".join(map(str, etree.LXML_VERSION[:3]))
    out = {
        "benchmark": "newstack",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "wall_seconds": round(time.perf_counter() - begun, 1),
        "machine": machine_info(),
        "versions": {
            "wrk": tool_version(["wrk", "-v"]),
            "rclone": tool_version(["rclone", "version"]),
            "wsgidav": tool_version([str(VENV_BIN / "wsgidav"), "--version"]),
            "lxml": lxml_version,
            "curl": tool_version(["curl", "--version"]),
        },
        "config": {
            "wrk_seconds": args.seconds, "wrk_reps": args.reps, "big_reps": args.big_reps,
            "s3_reps": args.s3_reps, "big_bytes": args.big_mib * 1024 * 1024,
            "newstack_workers": args.workers, "newstack_threads": args.threads,
            "small_file_bytes": SMALL_FILE_BYTES,
            "servers": {
                "newstack": "ocbridge serve newstack (POSIX storage)",
                "newstack-s3": "ocbridge serve newstack, OCBRIDGE_STORAGE__DRIVER=s3 on Ceph RGW",
                "rclone": "rclone serve webdav DIR --user --pass (defaults: no VFS cache)",
                "rclone-s3": "rclone serve webdav :s3:bucket on the same RGW",
                "wsgidav": "wsgidav --root DIR --auth anonymous (cheroot, FilesystemProvider)",
            },
        },
        "setup": meta,
        "scenarios": results.scenarios,
        "targets": targets,
        "failures": results.failures,
    }
    titles = {sc.name: sc.title for sc in WRK_SCENARIOS} | {
        f"{op}_1g_{storage}": f"{op.upper()} {args.big_mib} MiB, {storage.upper()}, curl"
        for op in ("get", "put") for storage in ("posix", "s3")
    }
    for name, entry in results.scenarios.items():
        entry["title"] = titles.get(name, name)
    write_json(args.out, out)
    print_tables(results, targets)
    return finish(args.out, out)


if __name__ == "__main__":
    sys.exit(main())
