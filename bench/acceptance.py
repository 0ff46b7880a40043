"""ownCloud 10's API acceptance features against our servers, with a per-suite table.

    scripts/dev bench acceptance [--suite GLOB ...] [--target legacy|newstack|proxy|all]
                                 [--features DIR] [--no-docs]

Runs the chosen suites (default: the suites of issue 9) on each chosen target, one fresh server
state per test case, and writes bench/results/acceptance.json (every case's result, per-suite
counts, cases whose result differs between targets) and bench/results/acceptance.md; with all
three targets and the default suites it also replaces the table in docs/acceptance.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from acceptance import gherkin, report
from acceptance.runner import FAILED, Result, run
from acceptance.targets import TARGETS, open_target
from bench.common import cleanup_on_signals, machine_info, write_json

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "acceptance.md"
TABLE_START, TABLE_END = "<!-- acceptance table: start -->", "<!-- acceptance table: end -->"
#: the suites issue 9 asks for, in the order of its table
DEFAULT_SUITES = ("apiMain", "apiCapabilities", "apiAuth*", "apiWebdavProperties*",
                  "apiWebdavUpload*", "apiWebdavMove*", "apiWebdavOperations", "apiWebdavDelete",
                  "apiTrashbin*", "apiFavorites", "apiShare*", "apiSharePublicLink*")


def run_target(name: str, root: Path, suites: list[str],
               only: set[str] | None = None) -> list[Result]:
    results: list[Result] = []
    # tmpfs when there is one: every case rebuilds databases, and fsyncs on a disk dominate
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    # a kill must still stop the proxy process and remove the scratch directory
    with (cleanup_on_signals(),
          tempfile.TemporaryDirectory(prefix=f"ocb-acceptance-{name}-", dir=scratch) as tmp):
        target = open_target(name, Path(tmp))
        try:
            for suite in suites:
                started = time.monotonic()
                chosen = (c for c in gherkin.cases(root, suite)
                          if only is None or c.address in only)
                suite_results = list(run(chosen, target))
                results.extend(suite_results)
                c = report.count(suite_results).get(suite, report.SuiteCount())
                print(f"{name:9} {suite:32} {c.cases:4} cases  {c.passed:4} passed  "
                      f"{c.failed:4} failed  {c.not_applicable + c.not_implemented:4} skipped  "
                      f"{time.monotonic() - started:6.1f} s", flush=True)
        finally:
            target.close()
    return results


def _load(name: str, suites: list[str]) -> list[Result]:
    path = RESULTS / f"acceptance-{name}.json"
    if not path.is_file():
        raise SystemExit(f"no {path}: run `scripts/dev bench acceptance --target {name}` first")
    results = [Result(**r) for r in json.loads(path.read_text())["targets"][name]["results"]]
    missing = set(suites) - {r.suite for r in results}
    if missing:
        raise SystemExit(f"{path} has no results for {', '.join(sorted(missing))}")
    return [r for r in results if r.suite in suites or not suites]


def replace_table(doc: Path, table: str) -> None:
    text = doc.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit(f"{doc} has no {TABLE_START} … {TABLE_END} markers to replace")
    doc.write_text(text[:start + len(TABLE_START)] + "\n\n" + table + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", action="append", default=[],
                        help="suite name or shell glob (repeatable); default: issue 9's suites")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--features", type=Path, default=gherkin.DEFAULT_FEATURES)
    parser.add_argument("--combine", action="store_true",
                        help="run nothing: build the table from the acceptance-<target>.json "
                             "files of earlier single-target runs (run those in parallel)")
    parser.add_argument("--update", action="store_true",
                        help="with one --target: keep that target's earlier results of the "
                             "other suites and replace only those of the suites run now")
    parser.add_argument("--only-failed", action="store_true",
                        help="with --update: run again only the cases that failed last time")
    parser.add_argument("--no-docs", action="store_true",
                        help="never rewrite the table in docs/acceptance.md")
    args = parser.parse_args(argv)
    # the servers log each 500 with its traceback; the results carry what a failure was
    logging.getLogger("ocbridge").setLevel(logging.CRITICAL)
    patterns = args.suite or list(DEFAULT_SUITES)
    try:
        suites = gherkin.suites(args.features, patterns)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    targets = list(TARGETS) if args.target == "all" else [args.target]
    started = time.monotonic()
    if args.combine:
        per_target = {name: _load(name, suites) for name in targets}
    elif args.only_failed:
        if not args.update or len(targets) != 1:
            raise SystemExit("--only-failed needs --update and one --target")
        failed = {r.address for r in _load(targets[0], []) if r.status == FAILED}
        per_target = {targets[0]: run_target(targets[0], args.features, suites, failed)}
    else:
        per_target = {name: run_target(name, args.features, suites) for name in targets}
    if args.update:
        if len(targets) != 1 or args.combine:
            raise SystemExit("--update needs one --target and a run")
        name = targets[0]
        earlier = _load(name, [])
        redone = {r.address for r in per_target[name]}
        kept = [r for r in earlier if r.address not in redone
                and (args.only_failed or r.suite not in suites)]
        per_target[name] = kept + per_target[name]
        suites = sorted({r.suite for r in per_target[name]})
    counts = {name: report.count(results) for name, results in per_target.items()}
    table = report.markdown(counts, suites)
    data: dict[str, Any] = {
        "machine": machine_info(), "suites": suites, "seconds": round(time.monotonic() - started),
        "targets": {name: {"suites": {s: c.as_dict() for s, c in counts[name].items()},
                           "total": report.total(counts[name].values()).as_dict(),
                           "failed": [r.as_dict() for r in results if r.status == FAILED],
                           "results": [r.as_dict() for r in results]}
                    for name, results in per_target.items()},
        "differences": report.differences(per_target),
    }
    stem = "acceptance" if len(targets) > 1 else f"acceptance-{targets[0]}"
    write_json(RESULTS / f"{stem}.json", data)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)
    print(f"{len(data['differences'])} cases differ between targets; details in "
          f"{RESULTS / (stem + '.json')}")
    if not args.no_docs and not args.suite and args.target == "all":
        # only a run of every default suite on every target may replace the published table
        replace_table(DOCS, table)
        print(f"table written to {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
