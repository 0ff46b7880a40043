"""Copying files into a POSIX blob root from worker processes.

A copy is mostly kernel work (create, write, rename) plus three hashes; in one Python process
the threads that overlap it hand the GIL around for every file, and that made copying small
files the slowest part of a migration (0.29× rclone at 100,000 files). Worker processes each
have their own interpreter, so files are copied on every core while the job's own process
reads rows and commits metadata. Only paths and results cross the process boundary, never file
bytes.

Durability stays with the job: the workers write without syncing, and the job's batch sync
(`PosixDriver.note_foreign_writes`, then syncfs) makes their blobs durable before the batch's
rows commit, as it does for its own writes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from newstack.storage.base import BlobInfo, LinkMode, StorageError
from newstack.storage.posix import PosixDriver

#: a task's files: enough to amortise the round trip to a worker, few enough that the cores
#: share a batch evenly
TASK_FILES = 64
#: and its bytes, so one task of big files does not keep one core busy while the other idles
TASK_BYTES = 64 * 1024 * 1024
#: how often a worker checks that the job that started it is still alive
_PARENT_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class CopyFailure:
    """A file that could not be copied: `missing` (no file at the path) or `error`."""

    kind: Literal["missing", "error"]
    message: str


CopyOutcome = BlobInfo | CopyFailure


@dataclass(frozen=True)
class CopyItem:
    blob_id: str
    path: str
    size: int  # oc_filecache's size: only used to share the work out


class CopyWorkersFailed(RuntimeError):
    """A copy worker process died (killed, out of memory): the batch did not complete."""


class ProcessCopier:
    """A pool of worker processes copying files into one POSIX blob root, started on first use
    and stopped by close(). `copy()` returns one outcome per item, in order."""

    def __init__(self, root: Path, processes: int, mode: LinkMode = "copy") -> None:
        self.root = str(root)
        self.processes = max(1, processes)
        self.mode = mode
        self._pool: ProcessPoolExecutor | None = None

    def copy(self, items: Sequence[CopyItem]) -> list[CopyOutcome]:
        if not items:
            return []
        pool = self._started()
        futures: list[Future[list[CopyOutcome]]] = [
            pool.submit(copy_batch, self.root, self.mode, [(i.blob_id, i.path) for i in task])
            for task in tasks(items)]
        try:
            return [outcome for future in futures for outcome in future.result()]
        except BrokenProcessPool as exc:
            self.close()
            raise CopyWorkersFailed(f"a copy worker process died: {exc}") from exc
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the job has threads (the commit thread, database pools) whose
            # locks a forked child would inherit in whatever state they were
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started, initargs=(os.getpid(),))
        return self._pool


def tasks(items: Sequence[CopyItem]) -> Iterator[Sequence[CopyItem]]:
    """Consecutive runs of at most TASK_FILES items and (past the first) TASK_BYTES bytes."""
    start, size = 0, 0
    for index, item in enumerate(items):
        if index > start and (index - start >= TASK_FILES or size + item.size > TASK_BYTES):
            yield items[start:index]
            start, size = index, 0
        size += item.size
    yield items[start:]


# -- in the worker processes ----------------------------------------------------------------------

_DRIVERS: dict[str, PosixDriver] = {}


def copy_batch(root: str, mode: LinkMode, items: list[tuple[str, str]]) -> list[CopyOutcome]:
    """Copy each (blob id, path) into the root; the driver's deferred block keeps the blob
    directories open for the task and its fsyncs are left to the job (fsync=False here)."""
    driver = _DRIVERS.get(root)
    if driver is None:
        driver = _DRIVERS[root] = PosixDriver(Path(root), fsync=False)
    driver.start_deferred_sync()
    try:
        return [_copy_one(driver, mode, blob_id, path) for blob_id, path in items]
    finally:
        driver.end_deferred_sync().close()


def _copy_one(driver: PosixDriver, mode: LinkMode, blob_id: str, path: str) -> CopyOutcome:
    return outcome_of(lambda: driver.link_from_path(blob_id, path, mode, checksums=True))


def outcome_of(import_blob: Callable[[], BlobInfo]) -> CopyOutcome:
    """How importing one file went, wherever it ran: its blob, or why it has none."""
    try:
        return import_blob()
    except FileNotFoundError as exc:
        return CopyFailure("missing", str(exc))
    except (StorageError, OSError) as exc:
        return CopyFailure("error", str(exc))


def _worker_started(parent: int) -> None:
    """A worker outlives a job killed with -9 only until its next check: it exits when its
    parent is gone, so no copy runs on behind a dead job."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="ocbridge-copy-parent-watch", daemon=True).start()
