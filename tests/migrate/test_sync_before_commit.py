"""The crash-resume invariant with the blobs' fsyncs on the commit thread: a batch's blobs are
durable (its pending sync has run) before any row naming them is inserted, let alone
committed, while the main thread already links the next batch."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from fixtures.manifest import Manifest
from migrate.runner import MigrationOptions, UserMigration
from migrate.source import LegacySource
from newstack.legacy.backend import Oc10Backend
from newstack.storage.base import BlobInfo
from newstack.storage.posix import PendingSync, PosixDriver
from tests.migrate.stacks import new_stack


class RecordingSync:
    def __init__(self, real: PendingSync, blobs: list[str], durable: set[str],
                 threads: list[str]) -> None:
        self._real, self._blobs, self._durable, self._threads = real, blobs, durable, threads

    def __call__(self) -> None:
        self._real()
        self._threads.append(threading.current_thread().name)
        self._durable.update(self._blobs)

    def close(self) -> None:
        self._real.close()


def test_blobs_are_synced_before_their_rows_are_inserted(
        small: Manifest, legacy: tuple[LegacySource, Oc10Backend], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source, _ = legacy
    stack = new_stack(tmp_path / "new")
    driver = stack.driver
    assert isinstance(driver, PosixDriver)
    block: list[str] = []
    durable: set[str] = set()
    sync_threads: list[str] = []
    inserted: list[str] = []
    real_link, real_end = driver.link_from_path, driver.end_deferred_sync
    real_insert = stack.store.insert_nodes

    def link(blob_id: str, *args: Any, **kwargs: Any) -> BlobInfo:
        block.append(blob_id)
        return real_link(blob_id, *args, **kwargs)

    def end() -> RecordingSync:
        blobs = block.copy()
        block.clear()
        return RecordingSync(real_end(), blobs, durable, sync_threads)

    def insert(rows: Any, conn: Any = None) -> int:
        rows = list(rows)
        for row in rows:
            if row.blob_id is not None:
                assert row.blob_id in durable, f"{row.path}: row inserted before its blob synced"
                inserted.append(row.blob_id)
        return real_insert(rows, conn)

    monkeypatch.setattr(driver, "link_from_path", link)
    monkeypatch.setattr(driver, "end_deferred_sync", end)
    monkeypatch.setattr(stack.store, "insert_nodes", insert)
    uid = next(u["uid"] for u in small.users if u["has_home"])
    UserMigration(source, stack.store, driver, uid, MigrationOptions(batch=5, workers=2)).run()
    assert inserted, "the user has files"
    assert "ocbridge-migrate-commit" in " ".join(sync_threads), \
        "the node batches' syncs run on the commit thread"
