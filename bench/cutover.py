"""Benchmark: how long a cutover keeps one user's writes frozen, by the size of their tree.

    .venv/bin/python -m bench.cutover [--sizes 1000,10000,100000] [--changed 0.01]
    scripts/dev bench cutover [--quick] [--delta-only]

Per size: a fixture ownCloud 10 instance on SQLite whose largest user has that many files, the
new stack and the routing proxy as child processes (bridge/demo.py's Servers), and a real
`Cutover` of that user. After the last catch-up pass and just before the freeze, `--changed` of
the user's files are overwritten through the oc10 backend (oC10's write rules: new etags up to
the root): the final delta under the freeze has that much to carry. Recorded: the freeze (from
the freeze's routing change to every proxy's acknowledgment of the flip) and its steps (freeze
ack, scope of the gate, final delta, gate, flip ack; `freeze_other_s`: the rest).
Target: < 5 s at 100,000 files. Writes bench/results/cutover.json. `--delta-only`: the same
user and change, but only the final delta (migrate/delta.py DeltaPass) in this process, with its
commits, oc_filecache queries and fsyncs counted; writes bench/results/cutover-delta.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import format_table, machine_info, rnd, temp_dir, write_json
from bridge.config import Settings, load_settings
from bridge.cutover import Cutover
from bridge.demo import DemoPorts, Servers, demo_config
from bridge.store import BridgeStore
from fixtures.builder import build_instance
from fixtures.profiles import get_profile
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.server import free_port

ROOT = Path(__file__).resolve().parent.parent
SEED = 8
TARGET_SECONDS = 5.0
TARGET_FILES = 100_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def every_nth_file(legacy: Oc10Backend, uid: str, step: int) -> Iterator[str]:
    """Every `step`-th file of the user's tree, walked one folder at a time."""
    pending = [""]
    seen = 0
    while pending:
        for node in legacy.children(uid, pending.pop()):
            if node.is_dir:
                pending.append(node.path)
                continue
            seen += 1
            if seen % step == 0:
                yield node.path


def one_size(files: int, changed: float, work: Path) -> dict[str, Any]:
    profile = dataclasses.replace(
        get_profile("small", users=2, files_per_user=files), hash_cost=4, version_ratio=0.0,
        trash_items=0, large_every=0)
    started = time.monotonic()
    manifest, stats = build_instance(work / "legacy", "sqlite", profile, SEED)
    built = time.monotonic() - started
    uid = "alice"
    ports = DemoPorts(free_port(), free_port(), free_port())
    config = work / "ocbridge.toml"
    config.write_text(demo_config(Path(manifest.config_php), work / "new", ports,
                                  ("extras share_types",)), encoding="utf-8")
    settings = load_settings(config)
    legacy = Oc10Backend(open_instance(Path(manifest.config_php)))
    changes: dict[str, float] = {}

    def change(who: str) -> None:
        began = time.monotonic()
        step = max(int(round(1 / changed)), 1)
        count = 0
        for path in every_nth_file(legacy, who, step):
            body = f"changed by bench/cutover: {path}\n".encode()
            legacy.write(who, path, io.BytesIO(body), length=len(body))
            count += 1
        changes.update(files=count, seconds=time.monotonic() - began)

    with Servers(config, work / "logs") as servers:
        servers.start("legacy", ["serve", "legacy"], ports.url("legacy") + "/status.php")
        servers.start("newstack", ["serve", "newstack"], ports.url("newstack") + "/status.php")
        servers.start("proxy", ["proxy"], ports.url("proxy") + "/status.php")
        store = BridgeStore.from_settings(settings)
        try:
            result = Cutover(settings, store, actor="bench/cutover",
                             before_freeze=change).run(uid)
        finally:
            store.close()
            legacy.close()
    final = result.final_delta
    measured = [result.steps.get(k) for k in ("freeze_ack", "scope", "gate", "flip_ack")]
    if final is not None:
        measured.append(final.seconds)
    return {
        "files_per_user": files, "instance_files": stats.files, "build_s": rnd(built, 2),
        "ok": result.ok, "reason": result.reason, "bulk_nodes": result.bulk_files,
        "bulk_s": rnd(result.bulk_seconds, 2), "catch_up_passes": len(result.passes),
        "changed_files": changes.get("files", 0), "change_s": rnd(changes.get("seconds"), 2),
        "final_delta_rows_read": final.rows_read if final else None,
        "final_delta_changes": final.changes if final else None,
        "final_delta_s": rnd(final.seconds, 3) if final else None,
        "steps_s": {k: rnd(v, 3) for k, v in result.steps.items()},
        "freeze_s": rnd(result.freeze_seconds, 3), "proxies": result.proxies,
        # the freeze outside its timed steps (state changes, unfreeze)
        "freeze_other_s": (rnd(result.freeze_seconds - sum(s for s in measured if s), 3)
                           if result.freeze_seconds is not None else None),
        "verify_checked": result.verify_checked,
    }


def delta_only(files: int, changed: float, work: Path) -> dict[str, Any]:
    """The final delta alone: bulk copy, one catch-up pass, `changed` of the files overwritten
    on oC10, then the measured pass (in this process, so its statements can be counted)."""
    from migrate.delta import DeltaPass
    from migrate.runner import UserMigration
    from migrate.source import LegacySource
    from newstack.service import open_newstack

    profile = dataclasses.replace(
        get_profile("small", users=2, files_per_user=files), hash_cost=4, version_ratio=0.0,
        trash_items=0, large_every=0)
    manifest, _ = build_instance(work / "legacy", "sqlite", profile, SEED)
    uid = "alice"
    defaults = Settings()
    stack = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=work / "new")))
    source = LegacySource(open_instance(Path(manifest.config_php)))
    legacy = Oc10Backend(open_instance(Path(manifest.config_php)))
    try:
        UserMigration(source, stack.store, stack.driver, uid).run()
        DeltaPass(source, stack.store, stack.driver, uid).delta()
        step = max(int(round(1 / changed)), 1)
        count = 0
        for path in every_nth_file(legacy, uid, step):
            body = f"changed by bench/cutover: {path}\n".encode()
            legacy.write(uid, path, io.BytesIO(body), length=len(body))
            count += 1
        counts = {"commits": 0, "legacy_queries": 0, "fsyncs": 0}

        def commit(_conn: Any) -> None:
            counts["commits"] += 1

        def query(*_args: Any) -> None:
            counts["legacy_queries"] += 1

        sa.event.listen(stack.store.engine, "commit", commit)
        sa.event.listen(source.engine, "before_cursor_execute", query)
        real_fsync = os.fsync

        def counted_fsync(fd: Any) -> None:
            counts["fsyncs"] += 1
            real_fsync(fd)

        os.fsync = counted_fsync  # counting only: every call reaches the real fsync
        try:
            began = time.monotonic()
            report = DeltaPass(source, stack.store, stack.driver, uid).delta()
            seconds = time.monotonic() - began
        finally:
            os.fsync = real_fsync
    finally:
        legacy.close()
        source.instance.close()
        stack.close()
    return {"files_per_user": files, "changed_files": count, "delta_s": rnd(seconds, 3),
            "changed": report.changed, "folders_visited": report.folders_visited,
            "rows_read": report.rows_read, "versions_added": report.versions_added, **counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="files of the user cut over, comma-separated")
    parser.add_argument("--changed", type=float, default=0.01,
                        help="share of the files changed since the last catch-up pass")
    parser.add_argument("--quick", action="store_true", help="sizes 1000 and 10000 only")
    parser.add_argument("--delta-only", action="store_true",
                        help="measure only the final delta, in process, with its counts")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    if not 0 < args.changed <= 1:
        parser.error("--changed must be in (0, 1]")
    if args.delta_only:
        return delta_main(sizes, args.changed,
                          args.out or ROOT / "bench" / "results" / "cutover-delta.json")
    args.out = args.out or ROOT / "bench" / "results" / "cutover.json"
    rows = []
    for size in sizes:
        log(f"==> {size} files, {args.changed:.0%} changed before the freeze")
        with temp_dir(f"ocb-cutover-{size}-") as work:
            row = one_size(size, args.changed, work)
        log(f"    freeze {row['freeze_s']} s ({row['steps_s']}; final delta "
            f"{row['final_delta_s']} s), ok={row['ok']} {row['reason']}")
        rows.append(row)
    at_target = [r for r in rows if r["files_per_user"] >= TARGET_FILES]
    result = {
        "benchmark": "cutover", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(), "changed_share": args.changed,
        "target": {"freeze_s_below": TARGET_SECONDS, "at_files": TARGET_FILES,
                   "met": (all(r["ok"] and (r["freeze_s"] or 1e9) < TARGET_SECONDS
                               for r in at_target) if at_target else None)},
        "runs": rows,
    }
    write_json(args.out, result)
    print(format_table(
        ["files", "changed", "scope s", "final delta s", "gate s", "other s", "freeze s", "ok"],
        [[r["files_per_user"], r["changed_files"], r["steps_s"].get("scope"), r["final_delta_s"],
          r["steps_s"].get("gate"), r["freeze_other_s"], r["freeze_s"], r["ok"]]
         for r in rows]))
    log(f"written to {args.out}")
    return 0 if all(r["ok"] for r in rows) else 1


def delta_main(sizes: list[int], changed: float, out: Path) -> int:
    rows = []
    for size in sizes:
        log(f"==> final delta only: {size} files, {changed:.0%} changed")
        with temp_dir(f"ocb-delta-{size}-") as work:
            rows.append(delta_only(size, changed, work))
        log(f"    {rows[-1]}")
    write_json(out, {"benchmark": "cutover-delta",
                     "when": datetime.now(UTC).isoformat(timespec="seconds"),
                     "machine": machine_info(), "changed_share": changed, "runs": rows})
    print(format_table(
        ["files", "changed", "delta s", "commits", "fsyncs", "oC10 queries", "rows read"],
        [[r["files_per_user"], r["changed_files"], r["delta_s"], r["commits"], r["fsyncs"],
          r["legacy_queries"], r["rows_read"]] for r in rows]))
    log(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
