"""Benchmark: migrating one user with ocbridge against rclone copy and cp -a, on the same data.

    .venv/bin/python -m bench.migrate [--quick] [--out bench/results/migrate.json]
    scripts/dev bench migrate [--quick] [--no-s3] [--reps N] [--db URL|sqlite] [--keep] ...

Cases (one generated ownCloud 10 instance each, one user):
  small: --files small files with log-normal sizes (fixture profile `medium`, no large files,
         no versions, no trash: every contender moves the same bytes);
  big:   --big-count files of --big-mib MiB of random bytes (not sparse) with their oc_filecache
         rows.
Contenders, one after the other on the same data, interleaved over repetitions:
  ocbridge-meta (the same job with the blobs left out: what the metadata alone costs; the
  baseline of "a link costs metadata time only"),
  ocbridge-auto (`ocbridge migrate run --link-mode auto`: hardlinks on one filesystem),
  ocbridge-copy, ocbridge-s3 (Ceph RGW), rclone (`rclone copy --transfers 8` local→local),
  rclone-s3 (local→RGW), cp (`cp -a`).
Each runs as a child process: wall time, CPU (wait4), peak RSS (ru_maxrss and /proc samples),
bytes read (/proc/PID/io rchar). docs/benchmarks.md ("Migration") has the method and results.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    cleanup_on_signals,
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
    running_rgw,
    stop_process_group,
    tool_version,
    write_json,
)
from newstack.metadata.engine import SQLITE_CACHE_KIB

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MiB = 1024**2
GiB = 1024**3
SEED = 5
DEFAULT_DB = "mysql+pymysql://root@127.0.0.1:3306/"
#: the full big case needs the source, one destination at a time and slack
BIG_FREE_FACTOR = 4
#: "memory flat in the number of files" compares two sizes in one run: the `small` case and
#: `small-flat` with a tenth of its files. RSS growth over the last 75 % of the big run may
#: exceed the small run's by the bound of SQLite's page cache (it fills with the pages of the
#: metadata database, whose size follows the files, up to that bound) plus this margin
FLAT_MARGIN_MIB = 8
#: the 1 GB case with hardlinks "costs metadata time only": it may read at most this share of
#: the bytes (rchar) ...
LINK_READ_SHARE = 0.01
#: ... and take at most this share of the time a copy takes
LINK_TIME_SHARE = 0.10
FILES_PER_S_TARGET = 5000


# ---------------------------------------------------------------------------------------------
# Data: one ownCloud 10 instance per case


@dataclass
class Case:
    name: str
    title: str
    instance_dir: Path
    config_php: Path
    db_url: str  # empty for SQLite (inside the instance)
    uid: str
    src: Path  # the user's files/ folder: what rclone and cp copy
    files: int = 0
    bytes: int = 0
    build_seconds: float = 0.0

    def count_source(self) -> None:
        self.files, self.bytes = tree_size(self.src)


def tree_size(root: Path) -> tuple[int, int]:
    """(regular files, bytes) below `root`, symlinks not followed."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if not os.path.islink(os.path.join(dirpath, name)):
                files += 1
                size += st.st_size
    return files, size


def database_url(base: str, name: str) -> str:
    if base == "sqlite":
        return "sqlite"
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    if url in ("", "sqlite"):
        return
    parsed = sa.make_url(url)
    engine = sa.create_engine(parsed.set(database=None), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    finally:
        engine.dispose()


def build_small(work: Path, url: str, files: int, name: str = "small") -> Case:
    """One user with `files` small files: the medium profile without its large (sparse) files,
    versions or trash, so rclone and cp (which copy files/) move what ocbridge moves."""
    from fixtures.builder import build_instance
    from fixtures.profiles import get_profile

    profile = dataclasses.replace(get_profile("medium", users=1, files_per_user=files),
                                  large_every=0, version_ratio=0.0, trash_items=0)
    started = time.perf_counter()
    manifest, _stats = build_instance(work / f"instance-{name}", url, profile, SEED)
    uid = manifest.users[0]["uid"]
    case = Case(name, f"1 user, {files:,} small files", work / f"instance-{name}",
                Path(manifest.config_php), "" if url == "sqlite" else url, uid,
                Path(manifest.data_dir) / uid / "files")
    case.build_seconds = time.perf_counter() - started
    case.count_source()
    return case


def build_big(work: Path, url: str, count: int, size: int) -> Case:
    """One user with `count` files of `size` random bytes in files/big/, written for real (not
    sparse, incompressible) and entered in oc_filecache as a client upload leaves them: with
    their checksum (the desktop client sends OC-Checksum), so a link may take them unread."""
    from bridge.oc10.formats import file_etag, home_storage_id, path_hash, uniqid
    from bridge.oc10.mimetypes import DIR_MIMETYPE, mimepart, mimetype_for
    from bridge.oc10.schema import oc10_tables
    from fixtures.builder import build_instance
    from fixtures.profiles import get_profile
    from fixtures.tree import FILE_PERMISSIONS, FOLDER_PERMISSIONS

    profile = dataclasses.replace(get_profile("medium", users=1, files_per_user=0),
                                  large_every=0, version_ratio=0.0, trash_items=0)
    started = time.perf_counter()
    manifest, _stats = build_instance(work / "instance-big", url, profile, SEED + 1)
    uid = manifest.users[0]["uid"]
    home = Path(manifest.data_dir) / uid
    folder = home / "files" / "big"
    folder.mkdir()
    mtime = 1_700_000_000
    written: list[tuple[str, os.stat_result, str]] = []
    for i in range(count):
        name = f"big-{i:02d}.bin"
        checksum = write_random_file_summed(folder / name, size)
        os.utime(folder / name, (mtime + i, mtime + i))
        written.append((name, os.stat(folder / name), checksum))
        log(f"  wrote {folder / name} ({size / MiB:.0f} MiB)")
    os.utime(folder, (mtime + count, mtime + count))

    engine = sa.create_engine(url if url != "sqlite" else
                              f"sqlite:///{Path(manifest.data_dir) / 'owncloud.db'}")
    t = oc10_tables(manifest.table_prefix)
    fc, mt = t.filecache, t.mimetypes
    try:
        with engine.begin() as conn:
            storage = conn.execute(sa.select(t.storages.c.numeric_id).where(
                t.storages.c.id == home_storage_id(uid))).scalar_one()
            ids = {str(m): int(i) for m, i in conn.execute(sa.select(mt.c.mimetype, mt.c.id))}

            def mime_id(name: str) -> int:
                if name not in ids:
                    conn.execute(sa.insert(mt).values(mimetype=name))
                    ids[name] = conn.execute(sa.select(mt.c.id).where(
                        mt.c.mimetype == name)).scalar_one()
                return int(ids[name])

            files_id = conn.execute(sa.select(fc.c.fileid).where(
                fc.c.storage == storage, fc.c.path == "files")).scalar_one()
            next_id = int(conn.execute(sa.select(sa.func.max(fc.c.fileid))).scalar_one()) + 1
            folder_id = next_id
            total = sum(st.st_size for _, st, _ in written)
            rows: list[dict[str, Any]] = [{
                "fileid": folder_id, "storage": storage, "path": "files/big",
                "path_hash": path_hash("files/big"), "parent": files_id, "name": "big",
                "mimetype": mime_id(DIR_MIMETYPE), "mimepart": mime_id(mimepart(DIR_MIMETYPE)),
                "size": total, "mtime": mtime + count, "storage_mtime": mtime + count,
                "encrypted": 0, "unencrypted_size": 0, "etag": uniqid(float(mtime + count)),
                "permissions": FOLDER_PERMISSIONS, "checksum": "",
            }]
            for n, (name, st, checksum) in enumerate(written, start=1):
                path = f"files/big/{name}"
                mime = mimetype_for(name)
                rows.append({
                    "fileid": folder_id + n, "storage": storage, "path": path,
                    "path_hash": path_hash(path), "parent": folder_id, "name": name,
                    "mimetype": mime_id(mime), "mimepart": mime_id(mimepart(mime)),
                    "size": st.st_size, "mtime": int(st.st_mtime),
                    "storage_mtime": int(st.st_mtime), "encrypted": 0, "unencrypted_size": 0,
                    "etag": file_etag(int(st.st_mtime), st.st_ino, st.st_dev, st.st_size),
                    "permissions": FILE_PERMISSIONS, "checksum": checksum,
                })
            conn.execute(sa.insert(fc), rows)
            # propagation: the new folder's bytes count in files/ and the home root
            conn.execute(sa.update(fc).where(fc.c.storage == storage,
                                             fc.c.path.in_(["", "files"]))
                         .values(size=fc.c.size + total, mtime=mtime + count,
                                 etag=uniqid(float(mtime + count))))
    finally:
        engine.dispose()
    case = Case("big", f"{count} files of {size / MiB:,.0f} MiB", work / "instance-big",
                Path(manifest.config_php), "" if url == "sqlite" else url, uid, home / "files")
    case.build_seconds = time.perf_counter() - started
    case.count_source()
    return case


def write_random_file_summed(path: Path, size: int, chunk: int = 8 * MiB) -> str:
    """Random bytes written to `path`; returns their oc_filecache checksum string."""
    from bridge.oc10.formats import ChecksumAccumulator

    sums = ChecksumAccumulator()
    with path.open("wb") as out:
        left = size
        while left > 0:
            data = os.urandom(min(chunk, left))
            sums.update(data)
            out.write(data)
            left -= len(data)
    return sums.result()


# ---------------------------------------------------------------------------------------------
# Running one contender as a child process


@dataclass
class Measured:
    returncode: int
    wall_s: float
    cpu_s: float
    #: ru_maxrss from wait4: NOT the child's own peak, since exec() folds the forking parent's
    #: high-water mark into it; kept for reference only
    maxrss_kb: int
    hwm_kb: int  # the largest VmHWM (summed over the process tree) seen while sampling
    samples: list[tuple[float, int]]  # (seconds since start, VmRSS of the process tree)
    rchar: int  # bytes the process tree read through read()/pread() (page cache included)
    wchar: int
    stderr_tail: str

    @property
    def peak_kb(self) -> int:
        return max([self.hwm_kb] + [kb for _, kb in self.samples])

    def rss_at(self, seconds: float) -> int | None:
        """VmRSS at `seconds` after the start (the first sample at or after it)."""
        for at, kb in self.samples:
            if at >= seconds and kb:
                return kb
        return None

    def growth_after(self, start_s: float, share: float = 0.25) -> tuple[int, int]:
        """(VmRSS at `share` of the way from `start_s` to the end, peak VmRSS after that)."""
        at = start_s + share * (self.wall_s - start_s)
        base = self.rss_at(at) or 0
        later = [kb for t, kb in self.samples if t >= at]
        return base, max(later, default=base) - base if base else 0


def run_measured(argv: Sequence[str], env: dict[str, str], cwd: Path, log_path: Path,
                 timeout: float, interval: float = 0.05) -> Measured:
    """Run `argv` to completion in its own session while sampling its RSS; the child is
    reaped only after /proc/PID/io has been read (waitid with WNOWAIT)."""
    with log_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=err, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                   start_new_session=True)
    samples: list[tuple[float, int]] = []
    hwm = 0
    try:
        while True:
            if os.waitid(os.P_PID, process.pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            sample = proc_sample(process.pid)
            samples.append((time.perf_counter() - started, sample.rss_kb))
            hwm = max(hwm, sample.hwm_kb)
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{argv[0]} took longer than {timeout:.0f} s")
            time.sleep(interval)
        wall = time.perf_counter() - started
        io = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process.pid}/io").read_text().splitlines():
                key, _, value = line.partition(":")
                io[key] = int(value)
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        stop_process_group(process)
        raise
    # children of the leader left over (none expected): stop them with the group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, 9)
    tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
    return Measured(returncode=process.returncode, wall_s=wall,
                    cpu_s=usage.ru_utime + usage.ru_stime, maxrss_kb=usage.ru_maxrss,
                    hwm_kb=hwm, samples=samples, rchar=io.get("rchar", 0), wchar=io.get("wchar", 0),
                    stderr_tail="\n".join(tail))


# ---------------------------------------------------------------------------------------------
# Contenders


@dataclass(frozen=True)
class Contender:
    name: str
    tool: str  # ocbridge | rclone | cp
    storage: str  # posix | s3
    link_mode: str = ""


CONTENDERS = [
    Contender("ocbridge-meta", "ocbridge-meta", "posix", "none"),
    Contender("ocbridge-auto", "ocbridge", "posix", "auto"),
    Contender("ocbridge-copy", "ocbridge", "posix", "copy"),
    Contender("rclone", "rclone", "posix"),
    Contender("cp", "cp", "posix"),
    Contender("ocbridge-s3", "ocbridge", "s3", "auto"),
    Contender("rclone-s3", "rclone", "s3"),
]
DESCRIPTIONS = {
    "ocbridge-meta": "python -m bench.migrate --metadata-only-child: the ocbridge-auto job "
                     "(same rows, records, inserts, checkpoints) with no file opened, linked "
                     "or copied",
    "ocbridge-auto": "ocbridge migrate run --link-mode auto --workers W (POSIX driver, same "
                     "filesystem: reflink, else hardlink)",
    "ocbridge-copy": "ocbridge migrate run --link-mode copy --workers W (POSIX driver)",
    "ocbridge-s3": "ocbridge migrate run --workers W, storage.driver = s3 on Ceph RGW",
    "rclone": "rclone copy --transfers 8 SRC DST (local to local)",
    "rclone-s3": "rclone copy --transfers 8 SRC :s3:BUCKET/UID (env-configured S3 remote)",
    "cp": "cp -a SRC DST",
}


@dataclass
class S3Target:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    bucket: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"}, proxies={}))

    def listing(self, prefix: str = "") -> tuple[int, int]:
        objects = size = 0
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                objects += 1
                size += obj["Size"]
        return objects, size


def ocbridge_config(path: Path, case: Case, data_dir: Path, s3: S3Target | None) -> Path:
    lines = ["[legacy]", f"config_php = {json.dumps(str(case.config_php))}", "",
             "[newstack]", f"data_dir = {json.dumps(str(data_dir))}", "", "[storage]",
             f"driver = {json.dumps('s3' if s3 else 'posix')}"]
    if s3 is not None:
        lines += ["", "[storage.s3]", f"endpoint_url = {json.dumps(s3.endpoint_url)}",
                  f"bucket = {json.dumps(s3.bucket)}", f"region = {json.dumps(s3.region)}",
                  f"access_key = {json.dumps(s3.access_key)}",
                  f"secret_key = {json.dumps(s3.secret_key)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def child_env(work: Path) -> dict[str, str]:
    """The contenders' environment: loopback, and Python bytecode cached (in the work dir) as
    an installed ocbridge has it; a PYTHONDONTWRITEBYTECODE=1 inherited from a development
    shell would add about a second of compiling to every ocbridge run."""
    env = loopback_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def warm_bytecode(work: Path) -> None:
    """Compile what `ocbridge migrate run` imports once, before anything is timed."""
    modules = "bridge.cli, migrate.cli, migrate.runner, migrate.delta, migrate.shares, " \
        "migrate.account_data, migrate.plan, newstack.service, newstack.legacy.instance"
    subprocess.run([sys.executable, "-c", f"import {modules}"], env=child_env(work), check=True,
                   cwd=work)


def run_contender(contender: Contender, case: Case, work: Path, args: argparse.Namespace,
                  s3: S3Target | None, tag: str) -> dict[str, Any]:
    """One measured run; returns its record (raises when the copy is wrong or incomplete)."""
    dest = work / f"dest-{tag}"
    dest.mkdir()
    env = child_env(work)
    for key in [k for k in env if k.startswith("OCBRIDGE_")]:
        del env[key]  # only the bench's config file configures the runs
    report_path = dest / "report.json"
    rclone_conf = work / "rclone.conf"
    rclone_conf.touch()
    if contender.tool == "ocbridge":
        conf = ocbridge_config(dest / "ocbridge.toml", case, dest / "newstack", s3)
        argv = [str(VENV_BIN / "ocbridge"), "migrate", "run", "--config", str(conf),
                "--user", case.uid, "--workers", str(args.workers), "--json", str(report_path)]
        if s3 is None:
            argv += ["--link-mode", contender.link_mode]
        if args.copy_processes is not None:
            argv += ["--copy-processes", str(args.copy_processes)]
    elif contender.tool == "ocbridge-meta":
        conf = ocbridge_config(dest / "ocbridge.toml", case, dest / "newstack", None)
        argv = [sys.executable, "-m", "bench.migrate", "--metadata-only-child", str(conf),
                case.uid, str(report_path), "--workers", str(args.workers)]
        env["PYTHONPATH"] = str(ROOT)
    elif contender.tool == "rclone":
        target = str(dest / "files") if s3 is None else f":s3:{s3.bucket}/{case.uid}"
        argv = ["rclone", "copy", "--transfers", "8", "--config", str(rclone_conf),
                str(case.src), target]
        if s3 is not None:
            env.pop("AWS_CA_BUNDLE", None)  # rclone's SDK refuses it; RGW is plain HTTP
            env.update({"RCLONE_S3_PROVIDER": "Ceph", "RCLONE_S3_ENDPOINT": s3.endpoint_url,
                        "RCLONE_S3_ACCESS_KEY_ID": s3.access_key,
                        "RCLONE_S3_SECRET_ACCESS_KEY": s3.secret_key,
                        "RCLONE_S3_REGION": s3.region, "RCLONE_S3_FORCE_PATH_STYLE": "true"})
    else:
        argv = ["cp", "-a", str(case.src), str(dest / "files")]
    # what the previous run left in the page cache's dirty pages must not slow this one down
    os.sync()
    m = run_measured(argv, env, work, work / f"{tag}.log", timeout=args.timeout)
    if m.returncode != 0:
        raise RuntimeError(f"{contender.name} exited {m.returncode}:\n{m.stderr_tail}")
    record: dict[str, Any] = {
        "seconds": round(m.wall_s, 3),
        "files_s": round(case.files / m.wall_s, 1),
        "mb_s": round(case.bytes / m.wall_s / 1e6, 1),
        "cpu_s": round(m.cpu_s, 2),
        "cpu_share": round(m.cpu_s / m.wall_s, 2),
        "peak_rss_mib": mib(m.peak_kb),
        "read_bytes": m.rchar,
        "read_share": round(m.rchar / case.bytes, 3) if case.bytes else None,
        "samples": len(m.samples),
    }
    # check the result (not timed)
    work_start = 0.0  # when the copying starts: after the interpreter's imports for ocbridge
    if contender.tool in ("ocbridge", "ocbridge-meta"):
        reports = json.loads(report_path.read_text())
        report = reports[0]
        work_start = max(0.0, m.wall_s - report["seconds"])
        record["startup_seconds"] = round(work_start, 3)
        record["library_seconds"] = round(report["seconds"], 3)
        record["library_files_s"] = round(report["files"] / report["seconds"], 1) \
            if report["seconds"] else None
        record["linked_by"] = report["linked_by"]
        record["findings"] = len(report["findings"])
        record["folders"] = report["folders"]
        got = (report["files"], report["bytes"])
        if s3 is not None:
            objects = s3.listing()
            if objects != got:
                raise RuntimeError(f"{contender.name}: report says {got}, bucket has {objects}")
    elif s3 is not None:
        got = s3.listing(case.uid + "/")
    else:
        got = tree_size(dest / "files")
    if got != (case.files, case.bytes):
        raise RuntimeError(f"{contender.name}: moved {got[0]} files / {got[1]} bytes, "
                           f"expected {case.files} / {case.bytes}")
    base, growth = m.growth_after(work_start)
    record["rss_at_25pct_mib"] = mib(base)
    record["rss_growth_after_25pct_mib"] = mib(growth)
    return record


def metadata_only_child(argv: Sequence[str]) -> int:
    """The ocbridge-meta contender (a child process): `ocbridge migrate run` for one user with
    every blob left out: rows are read, placed, recorded with the row's size and inserted
    with their checkpoints, and no file is opened, linked or copied. Its in-library time is
    what the metadata alone costs; a link run's time beyond it is the links' own cost.
    Arguments: CONFIG UID REPORT_JSON [--workers W]."""
    parser = argparse.ArgumentParser(prog="bench.migrate --metadata-only-child")
    parser.add_argument("config", type=Path)
    parser.add_argument("uid")
    parser.add_argument("report", type=Path)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    from migrate.cli import legacy_settings, open_legacy
    from migrate.runner import _NO_SYNC, BatchSync, MigrationOptions, UserMigration, blob_id_for
    from migrate.source import LegacySource, SourceRow
    from newstack.service import open_newstack
    from newstack.storage.base import BlobInfo

    class MetadataOnly(UserMigration):
        def _import_blobs_unsynced(self, rows: Sequence[SourceRow]
                                   ) -> tuple[dict[int, tuple[str, BlobInfo]], BatchSync]:
            return {r.fileid: (blob_id_for(r.fileid, r.etag), BlobInfo(r.size))
                    for r in rows if not r.encrypted}, _NO_SYNC

    settings = legacy_settings(args.config, None)
    instance = open_legacy(settings)
    try:
        stack = open_newstack(settings)
        source = LegacySource(instance)
        report = MetadataOnly(source, stack.store, stack.driver, args.uid,
                              MigrationOptions(workers=args.workers)).run()
        stack.close()
    finally:
        instance.close()
    args.report.write_text(json.dumps([json.loads(report.to_json())]) + "\n")
    return 0


@contextlib.contextmanager
def s3_target(contender: Contender, case: Case, args: argparse.Namespace
              ) -> Iterator[S3Target | None]:
    """A fresh Ceph RGW for each S3 run (its memstore holds the data in RAM; a fresh one frees
    it at once), or None for POSIX contenders."""
    if contender.storage != "s3":
        yield None
        return
    device_gib = max(4, int(case.bytes * 1.5 / GiB) + 3)
    with running_rgw(device_gib=device_gib) as rgw:
        target = S3Target(rgw.endpoint_url, rgw.access_key, rgw.secret_key, rgw.region,
                          f"bench-{contender.name}")
        target.client().create_bucket(Bucket=target.bucket)
        yield target


# ---------------------------------------------------------------------------------------------
# Measuring, summary, targets


@dataclass
class Results:
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def runs(self, case: str, contender: str) -> list[dict[str, Any]]:
        entry = self.cases.setdefault(case, {"contenders": {}})
        runs: list[dict[str, Any]] = entry["contenders"].setdefault(
            contender, {"runs": []})["runs"]
        return runs

    def fail(self, case: str, contender: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}".strip()
        self.failures.append({"case": case, "contender": contender, "error": message[:3000]})
        log(f"  !! {case} {contender}: {message[:600]}")


def measure_case(case: Case, contenders: list[Contender], work: Path,
                 args: argparse.Namespace, results: Results) -> None:
    entry = results.cases.setdefault(case.name, {"contenders": {}})
    entry.update(title=case.title, files=case.files, bytes=case.bytes,
                 build_seconds=round(case.build_seconds, 1))
    for rep in range(args.reps):
        # rotate the order each repetition: nobody always runs first (cold) or last
        shift = rep % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        for contender in order:
            tag = f"{case.name}-{contender.name}-{rep}"
            try:
                with s3_target(contender, case, args) as s3:
                    run = run_contender(contender, case, work, args, s3, tag)
            except Exception as exc:  # noqa: BLE001 - record and go on with the others
                results.fail(case.name, contender.name, exc)
                log(traceback.format_exc(limit=3))
                continue
            finally:
                shutil.rmtree(work / f"dest-{tag}", ignore_errors=True)
            run["loadavg"] = loadavg().split(" ")[0]
            results.runs(case.name, contender.name).append(run)
            extra = ""
            if "library_seconds" in run:
                extra = (f"  (in library {run['library_seconds']} s, linked_by "
                         f"{run['linked_by']}, {run['findings']} findings)")
            log(f"  [{rep + 1}/{args.reps}] {case.name:5} {contender.name:13} "
                f"{run['seconds']:8.2f} s {run['files_s']:>10,.0f} files/s {run['mb_s']:>8} MB/s"
                f"  cpu {run['cpu_s']} s  peak RSS {run['peak_rss_mib']} MiB  read "
                f"{run['read_share']}x  load {run['loadavg']}{extra}")


def summarize(results: Results) -> None:
    for entry in results.cases.values():
        for c in entry["contenders"].values():
            runs = c["runs"]
            if not runs:
                continue
            for key, digits in (("seconds", 3), ("files_s", 1), ("mb_s", 1), ("cpu_s", 2),
                                ("read_share", 3), ("library_seconds", 3),
                                ("library_files_s", 1), ("rss_at_25pct_mib", 1)):
                values = [r[key] for r in runs if r.get(key) is not None]
                if values:
                    c[key] = rnd(median(values), digits)
            c["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
            c["rss_growth_after_25pct_mib"] = max(r["rss_growth_after_25pct_mib"] for r in runs)
            c["range_seconds"] = [min(r["seconds"] for r in runs),
                                  max(r["seconds"] for r in runs)]
            if "linked_by" in runs[0]:
                c["linked_by"] = runs[0]["linked_by"]
        cs = entry["contenders"]
        unit = "files_s" if entry.get("title", "").find("small") >= 0 else "mb_s"
        entry["unit"] = unit.replace("_", "/")
        entry["ratios"] = {
            f"{ours}_vs_{base}": ratio(cs.get(ours, {}).get(unit), cs.get(base, {}).get(unit))
            for ours, base in (("ocbridge-auto", "rclone"), ("ocbridge-copy", "rclone"),
                               ("ocbridge-auto", "cp"), ("ocbridge-copy", "cp"),
                               ("ocbridge-s3", "rclone-s3"))
        }
        entry["link_cost"] = link_cost(cs)


def link_cost(cs: dict[str, Any]) -> dict[str, float | None]:
    """What linking and copying add to the metadata-only job (in-library seconds, so process
    start-up and imports, which are alike for all three, do not count)."""
    def lib(name: str) -> float | None:
        v = cs.get(name, {}).get("library_seconds")
        return float(v) if v is not None else None

    meta, auto, copy = lib("ocbridge-meta"), lib("ocbridge-auto"), lib("ocbridge-copy")
    link_own = None if meta is None or auto is None else auto - meta
    copy_own = None if meta is None or copy is None else copy - meta
    # the interpreter reads its modules (~16 MB): what a link run reads beyond that
    meta_read, auto_read = (cs.get(n, {}).get("read_share") for n in ("ocbridge-meta",
                                                                      "ocbridge-auto"))
    return {"metadata_only_s": meta, "auto_s": auto, "copy_s": copy,
            "link_own_s": rnd(link_own, 3), "copy_own_s": rnd(copy_own, 3),
            "link_own_share_of_copy_own": ratio(link_own, copy_own),
            "link_read_share_beyond_meta": None if meta_read is None or auto_read is None
            else rnd(max(0.0, auto_read - meta_read), 4)}


def targets_met(results: Results) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def value(case: str, contender: str, key: str) -> float | None:
        v = results.cases.get(case, {}).get("contenders", {}).get(contender, {}).get(key)
        return float(v) if v is not None else None

    def add(name: str, case: str, rule: str, got: float | None, need: float | None,
            higher_is_better: bool = True) -> None:
        met = None if got is None or need is None else (
            got >= need if higher_is_better else got <= need)
        out.append({"target": name, "case": case, "rule": rule, "value": got,
                    "threshold": rnd(need, 3), "met": met})

    for case, unit in (("small", "files_s"), ("big", "mb_s")):
        for ours, base in (("ocbridge-auto", "rclone"), ("ocbridge-copy", "rclone"),
                           ("ocbridge-s3", "rclone-s3")):
            add(f"throughput >= rclone copy ({ours} vs {base})", case,
                f"{ours} {unit.replace('_', '/')} >= {base}'s", value(case, ours, unit),
                value(case, base, unit))
    for ours in ("ocbridge-auto", "ocbridge-copy"):
        add(f">= {FILES_PER_S_TARGET:,} files/s on small files ({ours})", "small",
            f"{ours} files/s >= {FILES_PER_S_TARGET}", value("small", ours, "files_s"),
            FILES_PER_S_TARGET)
    cache_mib = SQLITE_CACHE_KIB / 1024
    for ours in ("ocbridge-auto", "ocbridge-copy", "ocbridge-s3"):
        tenth = value("small-flat", ours, "rss_growth_after_25pct_mib")
        add(f"memory flat in the number of files ({ours})", "small",
            "RSS growth (peak - RSS at 25 % of the run) <= small-flat's + SQLite page cache "
            f"bound {cache_mib:.0f} MiB + {FLAT_MARGIN_MIB} MiB",
            value("small", ours, "rss_growth_after_25pct_mib"),
            None if tenth is None else tenth + cache_mib + FLAT_MARGIN_MIB,
            higher_is_better=False)
    add("same-filesystem link costs metadata time only: bytes read", "big",
        f"ocbridge-auto reads <= {LINK_READ_SHARE:.0%} of the bytes (rchar)",
        value("big", "ocbridge-auto", "read_share"), LINK_READ_SHARE, higher_is_better=False)
    auto, copy = value("big", "ocbridge-auto", "seconds"), value("big", "ocbridge-copy",
                                                                 "seconds")
    add("same-filesystem link costs metadata time only: time", "big",
        f"ocbridge-auto seconds <= {LINK_TIME_SHARE:.0%} of ocbridge-copy's", auto,
        None if copy is None else LINK_TIME_SHARE * copy, higher_is_better=False)
    cost = results.cases.get("big", {}).get("link_cost", {})
    link_own, copy_own = cost.get("link_own_s"), cost.get("copy_own_s")
    add("same-filesystem link costs metadata time only: bytes read beyond metadata-only",
        "big", f"ocbridge-auto rchar - ocbridge-meta rchar <= {LINK_READ_SHARE:.0%} of the bytes",
        cost.get("link_read_share_beyond_meta"), LINK_READ_SHARE, higher_is_better=False)
    add("same-filesystem link costs metadata time only: link's own time", "big",
        f"ocbridge-auto - ocbridge-meta (in library) <= {LINK_TIME_SHARE:.0%} of "
        "ocbridge-copy - ocbridge-meta", link_own,
        None if copy_own is None else LINK_TIME_SHARE * copy_own, higher_is_better=False)
    return out


def print_tables(results: Results, targets: list[dict[str, Any]]) -> None:
    rows = []
    for case, entry in results.cases.items():
        for name, c in entry["contenders"].items():
            if "seconds" not in c:
                continue
            rows.append([case, name, c["seconds"], c["files_s"], c["mb_s"], c["cpu_s"],
                         c["peak_rss_mib"], c["rss_growth_after_25pct_mib"], c["read_share"],
                         c.get("library_seconds"), json.dumps(c.get("linked_by"))
                         if "linked_by" in c else None])
    print(format_table(["case", "contender", "seconds", "files/s", "MB/s", "CPU s",
                        "peak RSS MiB", "RSS growth MiB", "read x", "library s", "linked_by"],
                       rows))
    print()
    ratios = [[case, key, v] for case, entry in results.cases.items()
              for key, v in entry.get("ratios", {}).items()]
    print(format_table(["case", "ratio (" + "files/s small, MB/s big" + ")", "value"], ratios))
    print()
    costs = [[case, *(entry["link_cost"].get(k) for k in (
        "metadata_only_s", "auto_s", "copy_s", "link_own_s", "copy_own_s",
        "link_own_share_of_copy_own", "link_read_share_beyond_meta"))]
        for case, entry in results.cases.items() if entry.get("link_cost")]
    print(format_table(["case", "metadata-only s", "auto s", "copy s", "link own s",
                        "copy own s", "link/copy own", "link read x beyond meta"], costs))
    print()
    print(format_table(["target", "case", "value", "threshold", "met"],
                       [[t["target"], t["case"], t["value"], t["threshold"],
                         {True: "yes", False: "NO", None: "n/a"}[t["met"]]] for t in targets]))


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="10,000 small files and 2 x 256 MiB, 2 repetitions")
    parser.add_argument("--out", type=Path, help="JSON output (default bench/results/"
                        "migrate.json, migrate-quick.json with --quick)")
    parser.add_argument("--files", type=int, help="small files (default 100,000)")
    parser.add_argument("--big-count", type=int, help="big files (default 10)")
    parser.add_argument("--big-mib", type=int, help="size of a big file in MiB (default 1024)")
    parser.add_argument("--reps", type=int, help="repetitions (default 1; 2 with --quick)")
    parser.add_argument("--cases", default="small,big", help="comma-separated: small,big")
    parser.add_argument("--contenders", default=",".join(c.name for c in CONTENDERS),
                        help="comma-separated subset of " + ", ".join(c.name for c in CONTENDERS))
    parser.add_argument("--no-s3", action="store_true", help="skip ocbridge-s3 and rclone-s3")
    parser.add_argument("--flat-files", type=int,
                        help="files of the small-flat case, which the memory check compares "
                        "small with (default a tenth of --files; 0: no memory check)")
    parser.add_argument("--db", default=DEFAULT_DB,
                        help="where the ownCloud database is built: a server URL (MariaDB "
                             f"default {DEFAULT_DB}) or 'sqlite'")
    parser.add_argument("--workers", type=int, default=8, help="ocbridge --workers")
    parser.add_argument("--copy-processes", type=int,
                        help="ocbridge --copy-processes (default: its own, one per core)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--work-root", type=Path, help="parent of the work dir (default: the "
                        "temp dir; it must have room for the data)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir and databases (for profiling); prints where")
    args = parser.parse_args(argv)
    quick = args.quick
    args.files = args.files or (10_000 if quick else 100_000)
    args.big_count = args.big_count or (2 if quick else 10)
    args.big_mib = args.big_mib or (256 if quick else 1024)
    args.reps = args.reps or (2 if quick else 1)
    args.out = args.out or ROOT / f"bench/results/migrate{'-quick' if quick else ''}.json"
    names = {c.name for c in CONTENDERS}
    wanted = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"unknown contenders: {', '.join(unknown)}")
    args.contender_list = [c for c in CONTENDERS if c.name in wanted
                           and not (args.no_s3 and c.storage == "s3")]
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not set(args.case_list) <= {"small", "big"}:
        parser.error("--cases takes small, big")
    args.flat_files = max(1, args.files // 10) if args.flat_files is None else args.flat_files
    if "small" in args.case_list and args.flat_files:
        args.case_list.insert(args.case_list.index("small"), "small-flat")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--metadata-only-child"]:
        return metadata_only_child(argv[1:])
    args = parse_args(argv)
    for tool in ("rclone", "cp"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing: apt-get install {tool}")
            return 2
    if not (VENV_BIN / "ocbridge").exists():
        log(f"{VENV_BIN / 'ocbridge'} is missing: scripts/dev setup")
        return 2
    results = Results()
    skipped: list[str] = []
    meta: dict[str, Any] = {"loadavg_start": loadavg()}
    begun = time.perf_counter()
    interrupted = False
    databases: list[str] = []
    with cleanup_on_signals(), work_dir(args.work_root, args.keep) as work:
        try:
            free = shutil.disk_usage(work).free
            meta["disk_free_gib_start"] = round(free / GiB, 1)
            log(f"work dir {work} ({free / GiB:.0f} GiB free); database "
                f"{'SQLite' if args.db == 'sqlite' else sa.make_url(args.db).drivername}")
            warm_bytecode(work)
            for name in args.case_list:
                if name == "big":
                    need = BIG_FREE_FACTOR * args.big_count * args.big_mib * MiB
                    free = shutil.disk_usage(work).free
                    if free < need:
                        message = (f"case big skipped: {free / GiB:.0f} GiB free in {work}, "
                                   f"{need / GiB:.0f} GiB needed ({BIG_FREE_FACTOR} x the data)")
                        log(message)
                        skipped.append(message)
                        continue
                log(f"== case {name}: building the instance")
                url = database_url(args.db, f"ocb_bench_migrate_{name}_{uuid.uuid4().hex[:8]}")
                if url != "sqlite":
                    databases.append(url)
                try:
                    case = (build_small(work, url, args.files) if name == "small" else
                            build_small(work, url, args.flat_files, name)
                            if name == "small-flat" else
                            build_big(work, url, args.big_count, args.big_mib * MiB))
                except Exception as exc:  # noqa: BLE001 - record, go on with the next case
                    results.fail(name, "*build*", exc)
                    log(traceback.format_exc())
                    continue
                log(f"built {case.title}: {case.files:,} files, {case.bytes / 1e6:,.1f} MB in "
                    f"{case.build_seconds:.1f} s (user {case.uid}, {case.src})")
                measure_case(case, args.contender_list if name != "small-flat" else
                             [c for c in args.contender_list if c.tool == "ocbridge"],
                             work, args, results)
                if not args.keep:
                    shutil.rmtree(case.instance_dir, ignore_errors=True)
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: stopping children and removing temp dirs")
        finally:
            if not args.keep:
                for url in databases:
                    with contextlib.suppress(sa.exc.SQLAlchemyError):
                        drop_database(url)
            else:
                log(f"kept {work} and databases {databases}")
    if interrupted:
        return 130
    meta["loadavg_end"] = loadavg()
    summarize(results)
    targets = targets_met(results)
    out = {
        "benchmark": "migrate",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "wall_seconds": round(time.perf_counter() - begun, 1),
        "machine": machine_info(),
        "versions": {
            "rclone": tool_version(["rclone", "version"]),
            "cp": tool_version(["cp", "--version"]),
            "radosgw": tool_version(["radosgw", "--version"]),
        },
        "config": {
            "files": args.files, "big_count": args.big_count, "big_bytes": args.big_mib * MiB,
            "reps": args.reps, "workers": args.workers,
            "copy_processes": args.copy_processes,
            "legacy_database": "sqlite" if args.db == "sqlite" else
            sa.make_url(args.db).render_as_string(hide_password=True),
            "metadata": "SQLite in newstack.data_dir (default)",
            "python_bytecode": "cached in the work dir, compiled before the first run",
            "contenders": {c.name: DESCRIPTIONS[c.name] for c in args.contender_list},
            "units": "MB/s = bytes / wall seconds / 10^6; files/s = files / wall seconds; "
                     "wall time includes process start-up; peak RSS = max of VmHWM and VmRSS "
                     "of the process tree sampled every 0.05 s; RSS growth = peak VmRSS after "
                     "25 % of the copying time minus VmRSS at that point (for ocbridge the "
                     "copying starts after its imports: wall - report.seconds); read x = "
                     "rchar / data bytes",
        },
        "setup": meta,
        "skipped": skipped,
        "cases": results.cases,
        "targets": targets,
        "failures": results.failures,
    }
    write_json(args.out, out)
    print_tables(results, targets)
    for message in skipped:
        print(message)
    return finish(args.out, out)


@contextlib.contextmanager
def work_dir(parent: Path | None, keep: bool) -> Iterator[Path]:
    """A fresh work dir under `parent` (default: the temp dir), removed at the end unless
    `keep`."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="ocb-bench-migrate-", dir=parent))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
