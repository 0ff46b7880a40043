"""PosixDriver's bulk-import path: unread hardlinks with one open and one fstat, and the
batched fsyncs handed over to another thread (start/end_deferred_sync)."""

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from newstack.storage.base import StorageError
from newstack.storage.posix import TMP_DIR, PosixDriver
from tests.newstack.storage.contract import read_all


@pytest.fixture
def driver(tmp_path: Path) -> PosixDriver:
    return PosixDriver(tmp_path / "blobs")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def sources(tmp_path: Path, count: int) -> list[Path]:
    folder = tmp_path / "src"
    folder.mkdir()
    paths = []
    for n in range(count):
        path = folder / f"f{n}"
        path.write_bytes(b"x" * n)
        paths.append(path)
    return paths


@pytest.mark.parametrize("deferred", [False, True])
def test_unread_links_leave_no_fd_open(driver: PosixDriver, tmp_path: Path,
                                       deferred: bool) -> None:
    paths = sources(tmp_path, 50)
    before = open_fds()
    if deferred:
        driver.start_deferred_sync()
    for n, path in enumerate(paths):
        info = driver.link_from_path(f"blob{n:04d}", path, "hardlink", checksums=False)
        assert (info.size, info.checksums, info.linked_by) == (n, None, "hardlink")
        # the name taken: the general path replaces it, and closes the source too
        driver.link_from_path(f"blob{n:04d}", path, "hardlink", checksums=False)
    if deferred:
        driver.end_deferred_sync()()
    assert open_fds() == before
    assert read_all(driver, "blob0007") == b"x" * 7
    assert os.listdir(driver.root / TMP_DIR) == []


def test_auto_links_unread_once_reflinks_are_refused(
        driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fstats: list[int] = []
    real_fstat = os.fstat

    def counting_fstat(fd: int) -> Any:
        fstats.append(fd)
        return real_fstat(fd)

    driver._reflink_refused = True  # as after the first refusal (ext4)
    monkeypatch.setattr(os, "fstat", counting_fstat)
    (tmp_path / "s").write_bytes(b"abc")
    info = driver.link_from_path("one", tmp_path / "s", "auto", checksums=False)
    assert (info.size, info.linked_by) == (3, "hardlink")
    assert len(fstats) == 1, "one fstat per linked file"


def test_unread_link_errors_are_storage_errors(
        driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s").write_bytes(b"abc")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "link", fail)
    with pytest.raises(StorageError, match="hardlink from .*I/O error") as raised:
        driver.link_from_path("one", tmp_path / "s", "hardlink", checksums=False)
    assert raised.value.errno == errno.EIO
    # "auto" meets a refusal and copies instead
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.EMLINK, "too many links")))
    driver._reflink_refused = True
    info = driver.link_from_path("two", tmp_path / "s", "auto", checksums=False)
    assert info.linked_by == "copy"
    assert read_all(driver, "two") == b"abc"


def test_symlink_and_non_regular_sources_are_refused(driver: PosixDriver,
                                                     tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"t")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(StorageError, match="refusing to import a symlink"):
        driver.link_from_path("a", tmp_path / "link", "hardlink", checksums=False)
    with pytest.raises(StorageError, match="can only import a regular file"):
        driver.link_from_path("b", tmp_path, "hardlink", checksums=False)
    with pytest.raises(FileNotFoundError):
        driver.link_from_path("c", tmp_path / "missing", "hardlink", checksums=False)


def test_pending_sync_runs_on_another_thread_while_writes_go_on(
        driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sources(tmp_path, 20)
    synced: list[int] = []
    real_fsync = os.fsync
    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    before = open_fds()
    driver.start_deferred_sync()
    for n, path in enumerate(paths[:10]):
        driver.link_from_path(f"a{n:03d}", path, "hardlink", checksums=False)
    assert synced == [], "nothing synced while the block is open"
    pending = driver.end_deferred_sync()
    # the next block starts at once; the first one's sync runs meanwhile on a thread
    driver.start_deferred_sync()
    worker = threading.Thread(target=pending)
    worker.start()
    for n, path in enumerate(paths[10:]):
        driver.link_from_path(f"b{n:03d}", path, "hardlink", checksums=False)
    worker.join()
    assert synced, "the first block's directories were synced"
    first = len(synced)
    abandoned = driver.end_deferred_sync()
    abandoned.close()
    assert len(synced) == first, "close() gives up the sync"
    assert open_fds() == before, "both blocks' directory fds are closed"
    with pytest.raises(RuntimeError, match="not active"):
        driver.end_deferred_sync()
