"""Benchmark: build a large ownCloud 10 instance on MariaDB; rows/s and wall time as JSON.

    scripts/dev bench fixtures [--users 20] [--files-per-user 50000] [--db URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from fixtures.builder import build_instance
from fixtures.profiles import get_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--files-per-user", type=int, default=50_000)
    parser.add_argument("--db", default="mysql+pymysql://root@127.0.0.1:3306/")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fixtures.json"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    name = f"ocb_bench_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(args.db).set(database=name)
    work = Path(tempfile.mkdtemp(prefix="ocb-bench-fixtures-"))
    profile = get_profile("large", users=args.users, files_per_user=args.files_per_user)
    try:
        started = time.perf_counter()
        manifest, stats = build_instance(work / "instance", url.render_as_string(False),
                                         profile, args.seed)
        wall = time.perf_counter() - started
    finally:
        engine = sa.create_engine(url._replace(database=None), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    filecache = stats.rows.get("oc_filecache", 0)
    total_rows = sum(stats.rows.values())
    result = {
        "benchmark": "fixtures",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "users": args.users,
        "files_per_user": args.files_per_user,
        "files": stats.files,
        "folders": stats.folders,
        "bytes": stats.bytes,
        "filecache_rows": filecache,
        "rows_total": total_rows,
        "insert_seconds": round(stats.insert_seconds, 3),
        "format_seconds": round(stats.format_seconds, 3),
        # rows per second of loading: formatting + LOAD DATA + building the indexes
        "filecache_rows_per_s_insert": round(filecache / stats.insert_seconds)
        if stats.insert_seconds else None,
        # the same without the Python formatting: what the database itself sustains
        "filecache_rows_per_s_database": round(
            filecache / (stats.insert_seconds - stats.format_seconds))
        if stats.insert_seconds > stats.format_seconds else None,
        "rows_per_s_insert": round(total_rows / stats.insert_seconds)
        if stats.insert_seconds else None,
        "wall_seconds": round(wall, 3),
        "files_per_s_wall": round(stats.files / wall),
        "rows_per_s_wall": round(total_rows / wall),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
