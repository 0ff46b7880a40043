"""PosixDriver: the storage contract, plus layout, link mode detection, atomicity and symlinks."""

import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from newstack.storage.base import BlobNotFoundError, StorageError
from newstack.storage.posix import TMP_DIR, PosixDriver
from tests.newstack.storage.contract import (
    Boom,
    StorageDriverContract,
    failing_stream,
    new_id,
    random_bytes,
    read_all,
)


@pytest.fixture
def driver(tmp_path: Path) -> PosixDriver:
    return PosixDriver(tmp_path / "blobs")


def temp_files(driver: PosixDriver) -> list[str]:
    return os.listdir(driver.root / TMP_DIR)


def fail_with(code: int) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


class TestPosixDriver(StorageDriverContract):
    pass


# -- layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blob_id", "relative"),
    [
        ("abcdef", "ab/cd/abcdef"),
        ("abcd", "ab/cd/abcd"),
        ("abc", "ab/c_/abc"),
        ("a", "a_/__/a"),
        ("ab.x", "ab/.x/ab.x"),
    ],
)
def test_blobs_fan_out_by_id_prefix(driver: PosixDriver, blob_id: str, relative: str) -> None:
    driver.put(blob_id, [b"data"])
    assert (driver.root / relative).read_bytes() == b"data"
    assert temp_files(driver) == []


def test_root_is_created(tmp_path: Path) -> None:
    driver = PosixDriver(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / TMP_DIR).is_dir()
    driver.put("x1", [b"1"])
    assert driver.exists("x1")


def test_root_may_itself_be_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    driver = PosixDriver(tmp_path / "alias")
    driver.put("abcd", [b"ok"])
    assert (tmp_path / "real" / "ab" / "cd" / "abcd").read_bytes() == b"ok"


def test_without_fsync(tmp_path: Path) -> None:
    driver = PosixDriver(tmp_path, fsync=False)
    driver.put("nofsync", [b"fast"])
    assert read_all(driver, "nofsync") == b"fast"


# -- link mode detection --------------------------------------------------------------------------


def test_auto_shares_the_file_on_the_same_filesystem(driver: PosixDriver, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(random_bytes(2 * 1024 * 1024, seed=1))
    info = driver.link_from_path("shared", source)
    blob = driver.root / "sh" / "ar" / "shared"
    assert info.linked_by in ("reflink", "hardlink")
    if info.linked_by == "hardlink":
        assert blob.stat().st_ino == source.stat().st_ino
        assert source.stat().st_nlink == 2
    assert temp_files(driver) == []


def test_hardlink_mode(driver: PosixDriver, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"linked")
    info = driver.link_from_path("linked", source, "hardlink")
    assert info.linked_by == "hardlink"
    assert (driver.root / "li" / "nk" / "linked").stat().st_ino == source.stat().st_ino
    assert info.checksums is not None and info.size == 6


def test_copy_mode_makes_an_independent_file(driver: PosixDriver, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"copied")
    info = driver.link_from_path("copied", source, "copy")
    assert info.linked_by == "copy"
    assert (driver.root / "co" / "pi" / "copied").stat().st_ino != source.stat().st_ino
    assert source.stat().st_nlink == 1


def test_auto_copies_across_filesystems(driver: PosixDriver) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == driver.root.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to import from")
    source = other / f"ocbridge-test-{new_id()}"
    try:
        source.write_bytes(b"from another filesystem")
        info = driver.link_from_path("crossfs", source)
        assert info.linked_by == "copy"
        with pytest.raises(StorageError) as raised:
            driver.link_from_path("crossfs2", source, "hardlink")
        assert raised.value.errno == errno.EXDEV
        assert not driver.exists("crossfs2")
    finally:
        source.unlink(missing_ok=True)
    assert read_all(driver, "crossfs") == b"from another filesystem"
    assert temp_files(driver) == []


def test_auto_copies_when_devices_differ(
    driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver, "_device", -1)
    source = tmp_path / "source.bin"
    source.write_bytes(b"elsewhere")
    assert driver.link_from_path("elsewhere", source).linked_by == "copy"


def test_reflink_attempt_falls_back_cleanly(
    driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever this filesystem does, the reflink either works or leaves nothing behind."""
    source = tmp_path / "source.bin"
    data = random_bytes(1024 * 1024 + 7, seed=2)
    source.write_bytes(data)
    try:
        info = driver.link_from_path("reflinked", source, "reflink")
    except StorageError as exc:  # ext4, tmpfs...: FICLONE unsupported
        assert exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV)
        assert not driver.exists("reflinked")
    else:  # btrfs, xfs, ...
        assert info.linked_by == "reflink"
        assert read_all(driver, "reflinked") == data
    assert temp_files(driver) == []

    # And "auto" steps past a refused reflink to the next way.
    monkeypatch.setattr(fcntl, "ioctl", fail_with(errno.EOPNOTSUPP))
    info = driver.link_from_path("auto", source)
    assert info.linked_by == "hardlink"
    assert read_all(driver, "auto") == data
    assert temp_files(driver) == []


@pytest.mark.parametrize("code", [errno.EMLINK, errno.EPERM, errno.EXDEV])
def test_refused_hardlink_falls_back_to_copy(
    driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(fcntl, "ioctl", fail_with(errno.EOPNOTSUPP))
    monkeypatch.setattr(os, "link", fail_with(code))
    source = tmp_path / "source.bin"
    source.write_bytes(b"too many links")
    info = driver.link_from_path("fallback", source)
    assert info.linked_by == "copy"
    assert read_all(driver, "fallback") == b"too many links"
    assert temp_files(driver) == []


def test_unexpected_link_error_is_not_papered_over(
    driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fcntl, "ioctl", fail_with(errno.EOPNOTSUPP))
    monkeypatch.setattr(os, "link", fail_with(errno.EIO))
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    with pytest.raises(StorageError) as raised:
        driver.link_from_path("broken", source)
    assert raised.value.errno == errno.EIO
    assert not driver.exists("broken")
    assert temp_files(driver) == []


def test_importing_the_same_file_twice_leaves_no_temp_file(
    driver: PosixDriver, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"retried import")
    for _ in range(2):
        assert driver.link_from_path("again", source, "hardlink").linked_by == "hardlink"
    driver.copy("again", "again")
    assert temp_files(driver) == []
    assert read_all(driver, "again") == b"retried import"


def test_copy_between_blobs_shares_the_file(driver: PosixDriver) -> None:
    driver.put("original", [b"versioned"])
    driver.copy("original", "version1")
    original = driver.root / "or" / "ig" / "original"
    version = driver.root / "ve" / "rs" / "version1"
    assert version.read_bytes() == b"versioned"
    if original.stat().st_ino == version.stat().st_ino:  # hardlinked, not reflinked
        driver.put("original", [b"rewritten"])  # replaced by rename: the copy keeps its bytes
        assert version.read_bytes() == b"versioned"


# -- temp files never stay behind -----------------------------------------------------------------


def test_failed_stream_leaves_no_temp_file(driver: PosixDriver) -> None:
    with pytest.raises(Boom):
        driver.put("failing", failing_stream(2 * 1024 * 1024))
    assert temp_files(driver) == []
    assert not driver.exists("failing")


def test_size_mismatch_leaves_no_temp_file(driver: PosixDriver) -> None:
    with pytest.raises(StorageError):
        driver.put("short", [b"abc"], size=4)
    assert temp_files(driver) == []


@pytest.mark.parametrize("call", ["fsync", "rename", "write"])
def test_os_failures_leave_no_temp_file(
    driver: PosixDriver, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    driver.put("kept", [b"previous"])
    if call == "write":
        original = os.fdopen

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            file = original(fd, *args, **kwargs)
            if "w" in args[0]:
                file.write = fail_with(errno.ENOSPC)
            return file

        monkeypatch.setattr(os, "fdopen", fdopen)
    else:
        monkeypatch.setattr(os, call, fail_with(errno.EIO))
    with pytest.raises(StorageError) as raised:
        driver.put("kept", [b"new bytes"])
    assert raised.value.errno in (errno.EIO, errno.ENOSPC)
    monkeypatch.undo()
    assert temp_files(driver) == []
    assert read_all(driver, "kept") == b"previous"


def test_failed_hardlink_rename_leaves_no_temp_file(
    driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    # a free name is linked directly; replacing a blob goes through a temp name and rename
    driver.put("nolink", [b"old"])
    monkeypatch.setattr(os, "rename", fail_with(errno.EIO))
    with pytest.raises(StorageError):
        driver.link_from_path("nolink", source, "hardlink")
    monkeypatch.undo()
    assert temp_files(driver) == []
    assert source.stat().st_nlink == 1
    assert read_all(driver, "nolink") == b"old"


def test_stale_temp_files_are_removed(driver: PosixDriver) -> None:
    stale = driver.root / TMP_DIR / "left-by-a-crash"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    fresh = driver.root / TMP_DIR / "being-written"
    fresh.write_bytes(b"partial")
    assert driver.remove_stale_temp_files(older_than_seconds=3600) == 1
    assert temp_files(driver) == ["being-written"]


# -- symlinks inside the root are never followed --------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_bytes(b"not yours")
    return directory


def test_symlinked_fan_out_dir_is_refused(driver: PosixDriver, outside: Path) -> None:
    (driver.root / "ab").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        driver.put("abcd", [b"escape"])
    with pytest.raises(StorageError, match="symlink"):
        driver.stat("abcd")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert temp_files(driver) == []


def test_symlinked_blob_is_not_read(driver: PosixDriver, outside: Path) -> None:
    (driver.root / "se" / "cr").mkdir(parents=True)
    (driver.root / "se" / "cr" / "secret").symlink_to(outside / "secret")
    with pytest.raises(StorageError, match="regular file"):
        driver.stat("secret")
    with pytest.raises(StorageError):
        driver.open("secret")
    with pytest.raises(StorageError):
        driver.copy("secret", "stolen")
    assert not driver.exists("stolen")


def test_fan_out_path_that_is_a_file_is_refused(driver: PosixDriver) -> None:
    (driver.root / "zz").write_bytes(b"not a directory")
    with pytest.raises(StorageError) as raised:
        driver.put("zzzz", [b"x"])
    assert not isinstance(raised.value, BlobNotFoundError)


def test_a_fifo_in_place_of_a_blob_is_refused_without_waiting(driver: PosixDriver) -> None:
    (driver.root / "fi" / "fo").mkdir(parents=True)
    os.mkfifo(driver.root / "fi" / "fo" / "fifo")  # opening it for reading would block
    with pytest.raises(StorageError, match="regular file"):
        driver.open("fifo")
    with pytest.raises(StorageError, match="regular file"):
        driver.stat("fifo")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reading_leaves_no_file_descriptor_open(driver: PosixDriver) -> None:
    blob_id = new_id()
    driver.put(blob_id, [random_bytes(3 * 1024 * 1024, seed=9)])
    before = open_fds()
    assert len(b"".join(driver.open(blob_id))) == 3 * 1024 * 1024
    assert b"".join(driver.open(blob_id, 10, 20)) == read_all(driver, blob_id)[10:20]
    driver.open(blob_id)  # never iterated: closed when dropped
    chunks = driver.open(blob_id)
    next(chunks)
    close = getattr(chunks, "close", None)
    assert close is not None
    close()
    with pytest.raises(StopIteration):
        next(chunks)
    assert open_fds() == before


def test_deferred_sync_syncs_each_directory_once_at_the_end(
        driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 100)
    ids = ["aaaa" + str(n) for n in range(5)] + ["bbbb" + str(n) for n in range(5)]
    with driver.deferred_sync():
        for blob_id in ids:
            driver.link_from_path(blob_id, source, "hardlink")
        assert synced == [], "nothing is synced inside the block"
    assert len(synced) == len(set(synced)) == 2, "each directory once, at the end"
    assert all(b"".join(driver.open(blob_id)) == b"x" * 100 for blob_id in ids)


def test_deferred_sync_of_copies_is_one_syncfs(
        driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newstack.storage import posix

    calls: list[str] = []
    real_fsync, real_syncfs = os.fsync, posix._syncfs
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(posix, "_syncfs",
                        lambda fd, root: (calls.append("syncfs"), real_syncfs(fd, root)))
    source = tmp_path / "source.bin"
    source.write_bytes(b"y" * 100)
    with driver.deferred_sync():
        for n in range(6):
            driver.link_from_path(f"cc{n}", source, "copy")
        driver.put("dd0", [b"z"])
        assert calls == [], "no file or directory is synced inside the block"
    assert calls == ["syncfs"], "file data: one syncfs of the filesystem at the end"
    assert b"".join(driver.open("cc5")) == b"y" * 100
    assert os.listdir(driver.root / TMP_DIR) == []


def test_link_without_checksums_reads_nothing(driver: PosixDriver, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"q" * 5000)
    info = driver.link_from_path("unread", source, "hardlink", checksums=False)
    assert (info.size, info.checksums, info.linked_by) == (5000, None, "hardlink")
    assert os.stat(source).st_ino == os.stat(driver.root / "un" / "re" / "unread").st_ino
    # the name taken: replaced atomically through a temp name, which does not stay behind
    other = tmp_path / "other.bin"
    other.write_bytes(b"r" * 7)
    with driver.deferred_sync():
        assert driver.link_from_path("unread", other, "hardlink", checksums=False).size == 7
    assert read_all(driver, "unread") == b"r" * 7
    assert os.listdir(driver.root / TMP_DIR) == []
    copied = driver.link_from_path("copied", source, "copy", checksums=False)
    assert copied.checksums is not None, "a copy reads every byte and says so"


def test_auto_stops_trying_reflink_where_it_was_refused(
        driver: PosixDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []
    real_ioctl = fcntl.ioctl

    def refusing_ioctl(fd: int, request: int, *args: Any) -> Any:
        tried.append("reflink")
        raise OSError(errno.EOPNOTSUPP, "no reflinks here")

    monkeypatch.setattr(fcntl, "ioctl", refusing_ioctl)
    source = tmp_path / "source.bin"
    source.write_bytes(b"y" * 10)
    for n in range(3):
        info = driver.link_from_path(f"blob{n}", source, "auto")
        assert info.linked_by in ("hardlink", "copy")
    assert tried == ["reflink"], "one refusal is enough"
    monkeypatch.setattr(fcntl, "ioctl", real_ioctl)
