"""Copying on worker processes (migrate/copier.py): the same blobs, rows and findings as the
job's own threads make, a job killed anywhere resumes to that result, a worker that dies fails
the job loudly (and a rerun finishes it), and workers do not outlive a job killed with -9."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import migrate.runner
from fixtures.manifest import Manifest
from migrate.copier import CopyFailure, CopyItem, ProcessCopier, tasks
from migrate.runner import MigrationError, MigrationOptions, UserMigration
from migrate.source import LegacySource
from newstack.legacy.instance import open_instance
from newstack.storage.base import BlobInfo, ChecksumAccumulator
from tests.fixtures.test_instances import build
from tests.migrate.stacks import killed_until_done, new_stack
from tests.migrate.test_runner import dump, users_with_files

ROOT = Path(__file__).resolve().parents[2]


def blob_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.rglob("*-oc10-*") if p.is_file()}


def test_tasks_share_out_by_count_and_bytes() -> None:
    small = [CopyItem(f"b{i}", f"/p{i}", 10) for i in range(150)]
    assert [len(t) for t in tasks(small)] == [64, 64, 22]
    big = [CopyItem("a", "/a", 40 << 20), CopyItem("b", "/b", 40 << 20),
           CopyItem("c", "/c", 1), CopyItem("d", "/d", 100 << 20)]
    assert [[i.blob_id for i in t] for t in tasks(big)] == [["a"], ["b", "c"], ["d"]]
    assert [list(t) for t in tasks([])] == [[]]


def test_workers_copy_hash_and_refuse_like_the_driver(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    contents = {f"f{i}": os.urandom(i * 997) for i in range(40)}
    contents["big"] = os.urandom(3 * 1024 * 1024 + 5)  # past CHUNK_SIZE: the streaming copy
    for name, data in contents.items():
        (source / name).write_bytes(data)
    (source / "link").symlink_to(source / "f1")
    (source / "dir").mkdir()
    items = [CopyItem(f"00{i:02d}-oc10-{i}-e", str(source / name), len(contents[name]))
             for i, name in enumerate(contents)]
    odd = [CopyItem("0099-oc10-99-e", str(source / "gone"), 0),
           CopyItem("0098-oc10-98-e", str(source / "link"), 0),
           CopyItem("0097-oc10-97-e", str(source / "dir"), 0)]
    copier = ProcessCopier(tmp_path / "blobs", 2)
    try:
        outcomes = copier.copy(items + odd)
    finally:
        copier.close()
    stored = blob_files(tmp_path / "blobs")
    for item, outcome, data in zip(items, outcomes, contents.values(), strict=False):
        expected = ChecksumAccumulator()
        expected.update(data)
        assert outcome == BlobInfo(len(data), expected.checksums(), linked_by="copy")
        assert hashlib.sha256(stored[item.blob_id]).digest() == hashlib.sha256(data).digest()
    missing, symlink, directory = outcomes[len(items):]
    assert isinstance(missing, CopyFailure) and missing.kind == "missing"
    assert isinstance(symlink, CopyFailure) and symlink.kind == "error"
    assert "refusing to import a symlink" in symlink.message
    assert isinstance(directory, CopyFailure) and "regular file" in directory.message
    assert len(stored) == len(items)
    assert not list((tmp_path / "blobs" / ".tmp").iterdir()), "no temp file left behind"


@pytest.fixture
def edge(tmp_path: Path) -> Manifest:
    return build(tmp_path, "sqlite", "edge")


def migrate_all(manifest: Manifest, where: Path, options: MigrationOptions
                ) -> tuple[dict[str, list[object]], dict[str, list[tuple[str, str]]]]:
    instance = open_instance(Path(manifest.config_php))
    stack = new_stack(where)
    findings: dict[str, list[tuple[str, str]]] = {}
    try:
        source = LegacySource(instance)
        # a user without a home gets one made at migration time: not comparable
        for user in (u for u in manifest.users if u["has_home"]):
            report = UserMigration(source, stack.store, stack.driver, user["uid"],
                                   options).run()
            assert report.linked_by.keys() <= {"copy"}, report.linked_by
            findings[user["uid"]] = sorted((code, path) for code, path, _ in report.findings)
    finally:
        instance.close()
    return dump(stack), findings


def test_processes_make_what_threads_make(edge: Manifest, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge profile (odd names, rows without files, wrong sizes, symlinks) copied by the
    job's threads and by worker processes: identical rows, findings and blobs."""
    monkeypatch.setattr(migrate.runner, "PROCESS_MIN_FILES", 1)
    monkeypatch.setattr(migrate.runner, "PROCESS_START_FILES", 1)
    threads = migrate_all(edge, tmp_path / "threads",
                          MigrationOptions(link_mode="copy", copy_processes=1))
    processes = migrate_all(edge, tmp_path / "processes",
                            MigrationOptions(link_mode="copy", copy_processes=2, batch=9))
    assert processes == threads
    assert any(f for f in threads[1].values()), "the edge profile has findings"
    assert blob_files(tmp_path / "processes" / "blobs") == \
        blob_files(tmp_path / "threads" / "blobs")


def test_killed_copying_job_resumes_to_the_same_result(
        small: Manifest, legacy: tuple[LegacySource, object], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrate.runner, "PROCESS_MIN_FILES", 1)
    monkeypatch.setattr(migrate.runner, "PROCESS_START_FILES", 1)
    source, _ = legacy
    uid = users_with_files(small)[0]
    options = MigrationOptions(link_mode="copy", batch=10, copy_processes=2)
    clean = new_stack(tmp_path / "clean")
    UserMigration(source, clean.store, clean.driver, uid,
                  MigrationOptions(link_mode="copy", copy_processes=1)).run()
    rng = random.Random(11)
    crashed = new_stack(tmp_path / "crashed")
    kills = killed_until_done(
        lambda hook: UserMigration(source, crashed.store, crashed.driver, uid, options,
                                   crash_hook=hook).run(),
        lambda step: rng.random() < 0.3)
    assert len(kills) >= 3, "the test must actually kill the job several times"
    assert dump(crashed) == dump(clean)
    assert blob_files(tmp_path / "crashed" / "blobs") == blob_files(tmp_path / "clean" / "blobs")


def child_pids() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with open(task / "children") as children:
            pids.update(int(p) for p in children.read().split())
    return pids


def test_a_dead_worker_fails_the_job_and_a_rerun_finishes(
        small: Manifest, legacy: tuple[LegacySource, object], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrate.runner, "PROCESS_START_FILES", 1)
    source, _ = legacy
    uid = users_with_files(small)[0]
    options = MigrationOptions(link_mode="copy", batch=40, copy_processes=2)
    clean = new_stack(tmp_path / "clean")
    UserMigration(source, clean.store, clean.driver, uid, options).run()

    killed: list[int] = []
    real_copy = ProcessCopier.copy

    def copy_after_a_kill(self: ProcessCopier, items: list[CopyItem]) -> object:
        if not killed:
            before = child_pids()
            real_copy(self, items[:1])  # the pool is up
            workers = child_pids() - before or child_pids()
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return real_copy(self, items)

    monkeypatch.setattr(ProcessCopier, "copy", copy_after_a_kill)
    stack = new_stack(tmp_path / "new")
    with pytest.raises(MigrationError, match="copy worker process died.*run the job again"):
        UserMigration(source, stack.store, stack.driver, uid, options).run()
    assert killed
    monkeypatch.setattr(ProcessCopier, "copy", real_copy)
    UserMigration(source, stack.store, stack.driver, uid, options).run()
    assert dump(stack) == dump(clean)


def test_workers_do_not_outlive_a_killed_job(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100)
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from migrate.copier import CopyItem, ProcessCopier
        copier = ProcessCopier(Path({str(tmp_path / "blobs")!r}), 2)
        copier.copy([CopyItem("0000-oc10-1-e", {str(tmp_path / "f")!r}, 100)] * 2)
        pids = [p for t in os.listdir("/proc/self/task")
                for p in open(f"/proc/self/task/{{t}}/children").read().split()]
        print(" ".join(pids), flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))) as job:
        assert job.stdout is not None
        try:
            workers = [int(p) for p in job.stdout.readline().split()]
        finally:
            job.kill()
    assert workers, "the job started worker processes"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "a worker outlived its job"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
