"""The StorageDriver contract as tests: every driver's test class inherits StorageDriverContract.

A driver opts in with a class that inherits the mixin and provides a `driver` fixture yielding a
fresh (or at least shared-but-empty-of-these-ids) driver. Checksums are checked against hashlib
and zlib computed independently of the driver.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from newstack.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    InvalidBlobIdError,
    StorageDriver,
    StorageError,
)

MiB = 1024 * 1024

BAD_BLOB_IDS = [
    "",
    "a/b",
    "/abs",
    "..",
    "../etc",
    "a..b",
    ".hidden",
    "a\x00b",
    "a\\b",
    "a b",
    "a\nb",
    "ümlaut",
    "x" * 201,
]
GOOD_BLOB_IDS = ["a", "ab", "abc", "A-b_c.d", "0" * 200, "-x", "_y"]


def new_id() -> str:
    return uuid.uuid4().hex


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def generated_chunks(total: int, seed: int, chunk_size: int = MiB + 17) -> Iterator[bytes]:
    """`total` pseudo-random bytes in chunks of an odd size (so parts and chunks never align)."""
    rng = random.Random(seed)
    left = total
    while left:
        size = min(chunk_size, left)
        yield rng.randbytes(size)
        left -= size


def oc10_checksums(chunks: Iterable[bytes]) -> tuple[int, str]:
    """Size and `SHA1:… MD5:… ADLER32:…` computed with hashlib and zlib directly."""
    sha1, md5, adler, size = hashlib.sha1(), hashlib.md5(), 1, 0
    for chunk in chunks:
        sha1.update(chunk)
        md5.update(chunk)
        adler = zlib.adler32(chunk, adler)
        size += len(chunk)
    return size, f"SHA1:{sha1.hexdigest()} MD5:{md5.hexdigest()} ADLER32:{adler:08x}"


def read_all(driver: StorageDriver, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
    chunks = list(driver.open(blob_id, start, end))
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
    return b"".join(chunks)


def assert_info(info: BlobInfo, data: bytes) -> None:
    assert info.size == len(data)
    assert info.checksums is not None
    assert info.checksums.oc10() == oc10_checksums([data])[1]


class Boom(Exception):
    """Raised by a test stream; must reach the caller unchanged."""


def failing_stream(good_bytes: int) -> Iterator[bytes]:
    yield from generated_chunks(good_bytes, seed=99)
    raise Boom("the client went away")


class StorageDriverContract:
    """Mixin: inherit it and provide a `driver` fixture to run the whole contract on a driver."""

    large_size = 40 * MiB
    # What a stream must exceed to make a driver write in several pieces (S3 overrides it with
    # its part size so failure tests hit the multipart path).
    piecewise_size = 3 * MiB

    # -- put / open round trips -------------------------------------------------------------------

    def test_round_trip_from_iterable(self, driver: StorageDriver) -> None:
        blob_id, data = new_id(), b"hello, world\n"
        info = driver.put(blob_id, [data[:5], data[5:]])
        assert_info(info, data)
        assert read_all(driver, blob_id) == data
        assert driver.stat(blob_id).size == len(data)
        assert driver.exists(blob_id)

    def test_round_trip_from_file_object(self, driver: StorageDriver) -> None:
        blob_id, data = new_id(), random_bytes(3 * MiB + 5, seed=1)
        info = driver.put(blob_id, io.BytesIO(data), size=len(data))
        assert_info(info, data)
        assert read_all(driver, blob_id) == data

    def test_checksums_have_the_oc10_form(self, driver: StorageDriver) -> None:
        info = driver.put(new_id(), [b"abc"])
        assert info.checksums is not None
        assert info.checksums.oc10() == (
            "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d "
            "MD5:900150983cd24fb0d6963f7d28e17f72 ADLER32:024d0127"
        )

    @pytest.mark.parametrize(
        "stream",
        [[], [b"", b""], io.BytesIO(b"")],
        ids=["no-chunks", "empty-chunks", "empty-file"],
    )
    def test_empty_blob(self, driver: StorageDriver, stream: Iterable[bytes]) -> None:
        blob_id = new_id()
        info = driver.put(blob_id, stream)
        assert_info(info, b"")
        assert info.checksums is not None
        assert info.checksums.adler32 == "00000001"
        assert driver.stat(blob_id).size == 0
        assert driver.exists(blob_id)
        assert list(driver.open(blob_id)) == []
        assert list(driver.open(blob_id, 0, 10)) == []
        assert list(driver.open(blob_id, 5)) == []

    def test_empty_blob_with_size_zero(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        assert driver.put(blob_id, io.BytesIO(b""), size=0).size == 0
        assert read_all(driver, blob_id) == b""

    def test_unknown_size_stream_with_irregular_chunks(self, driver: StorageDriver) -> None:
        sizes = [1, 7 * 1024, 3 * MiB, 1, 5 * MiB - 1, 0, 2 * MiB + 3, 64 * 1024, 4 * MiB]
        rng = random.Random(7)
        chunks = [rng.randbytes(size) for size in sizes]
        data = b"".join(chunks)
        blob_id = new_id()
        info = driver.put(blob_id, iter(chunks))
        assert_info(info, data)
        assert read_all(driver, blob_id) == data

    def test_large_streamed_blob(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        info = driver.put(blob_id, generated_chunks(self.large_size, seed=40))
        size, expected = oc10_checksums(generated_chunks(self.large_size, seed=40))
        assert info.size == size == self.large_size
        assert info.checksums is not None
        assert info.checksums.oc10() == expected
        assert driver.stat(blob_id).size == self.large_size
        chunk_sizes: list[int] = []

        def read_back() -> Iterator[bytes]:
            for chunk in driver.open(blob_id):
                chunk_sizes.append(len(chunk))
                yield chunk

        assert oc10_checksums(read_back()) == (size, expected)
        assert max(chunk_sizes) <= CHUNK_SIZE

    def test_put_replaces_existing_blob(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        driver.put(blob_id, [b"old contents, longer"])
        driver.put(blob_id, [b"new"])
        assert read_all(driver, blob_id) == b"new"
        assert driver.stat(blob_id).size == 3

    # -- failures while writing -------------------------------------------------------------------

    def test_stream_error_propagates_and_stores_nothing(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        with pytest.raises(Boom):
            driver.put(blob_id, failing_stream(self.piecewise_size + MiB))
        assert not driver.exists(blob_id)

    def test_stream_error_keeps_the_previous_blob(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        driver.put(blob_id, [b"previous"])
        with pytest.raises(Boom):
            driver.put(blob_id, failing_stream(self.piecewise_size + MiB))
        assert read_all(driver, blob_id) == b"previous"

    @pytest.mark.parametrize("announced", [0, 10, 3 * MiB])
    def test_size_mismatch_is_an_error(self, driver: StorageDriver, announced: int) -> None:
        blob_id, data = new_id(), random_bytes(MiB + 1, seed=3)
        with pytest.raises(StorageError, match="announced"):
            driver.put(blob_id, [data], size=announced)
        assert not driver.exists(blob_id)

    def test_size_mismatch_on_a_piecewise_upload(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        total = self.piecewise_size * 2 + 5
        with pytest.raises(StorageError, match="announced"):
            driver.put(blob_id, generated_chunks(total, seed=4), size=total + 1)
        assert not driver.exists(blob_id)

    # -- ranges -----------------------------------------------------------------------------------

    RANGE_SIZE = 2 * MiB + 123

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (0, None),
            (0, 0),
            (0, 1),
            (5, 10),
            (7, 7),
            (MiB - 1, MiB + 1),
            (MiB, 2 * MiB),
            (RANGE_SIZE - 1, None),
            (RANGE_SIZE - 5, RANGE_SIZE + 5),
            (0, RANGE_SIZE + 100),
            (RANGE_SIZE, None),
            (RANGE_SIZE, RANGE_SIZE + 1),
            (RANGE_SIZE + 10, None),
            (RANGE_SIZE + 10, RANGE_SIZE + 20),
        ],
    )
    def test_ranged_read(self, driver: StorageDriver, start: int, end: int | None) -> None:
        blob_id, data = new_id(), random_bytes(self.RANGE_SIZE, seed=5)
        driver.put(blob_id, [data])
        assert read_all(driver, blob_id, start, end) == data[start:end]

    @pytest.mark.parametrize(("start", "end"), [(-1, None), (-1, 5), (10, 9)])
    def test_invalid_range(self, driver: StorageDriver, start: int, end: int | None) -> None:
        blob_id = new_id()
        driver.put(blob_id, [b"0123456789abcdef"])
        with pytest.raises(ValueError, match="range"):
            driver.open(blob_id, start, end)

    def test_reading_can_stop_early(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        driver.put(blob_id, generated_chunks(3 * MiB, seed=6))
        chunks = driver.open(blob_id)
        assert len(next(chunks)) > 0
        getattr(chunks, "close", lambda: None)()
        assert driver.stat(blob_id).size == 3 * MiB  # and the driver still works

    # -- not found, delete, exists ----------------------------------------------------------------

    def test_missing_blob(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        assert not driver.exists(blob_id)
        with pytest.raises(BlobNotFoundError) as raised:
            driver.stat(blob_id)
        assert raised.value.filename == blob_id
        assert isinstance(raised.value, FileNotFoundError)
        with pytest.raises(BlobNotFoundError):
            driver.open(blob_id)  # raised on the call, before any iteration
        with pytest.raises(BlobNotFoundError):
            driver.open(blob_id, 3, 3)
        with pytest.raises(BlobNotFoundError):
            driver.delete(blob_id)
        driver.delete(blob_id, missing_ok=True)

    def test_delete(self, driver: StorageDriver) -> None:
        blob_id, other = new_id(), new_id()
        driver.put(blob_id, [b"doomed"])
        driver.put(other, [b"stays"])
        driver.delete(blob_id)
        assert not driver.exists(blob_id)
        with pytest.raises(BlobNotFoundError):
            driver.open(blob_id)
        assert read_all(driver, other) == b"stays"
        driver.put(blob_id, [b"back again"])
        assert read_all(driver, blob_id) == b"back again"

    # -- link_from_path ---------------------------------------------------------------------------

    @pytest.mark.parametrize("mode", ["auto", "copy"])
    def test_link_from_path(self, driver: StorageDriver, tmp_path: Path, mode: str) -> None:
        data = random_bytes(6 * MiB + 11, seed=8)
        source = tmp_path / "welcome.txt"
        source.write_bytes(data)
        blob_id = new_id()
        info = driver.link_from_path(blob_id, source, mode)  # type: ignore[arg-type]
        assert_info(info, data)
        assert info.linked_by in ("reflink", "hardlink", "copy")
        if mode == "copy":
            assert info.linked_by == "copy"
        assert read_all(driver, blob_id) == data
        assert source.read_bytes() == data

    def test_link_from_path_empty_file(self, driver: StorageDriver, tmp_path: Path) -> None:
        source = tmp_path / "empty"
        source.write_bytes(b"")
        blob_id = new_id()
        assert_info(driver.link_from_path(blob_id, source), b"")
        assert driver.exists(blob_id)

    @pytest.mark.parametrize("mode", ["reflink", "hardlink"])
    def test_link_from_path_explicit_mode_works_or_stores_nothing(
        self, driver: StorageDriver, tmp_path: Path, mode: str
    ) -> None:
        data = random_bytes(MiB + 3, seed=9)
        source = tmp_path / "file.bin"
        source.write_bytes(data)
        blob_id = new_id()
        try:
            info = driver.link_from_path(blob_id, source, mode)  # type: ignore[arg-type]
        except StorageError as exc:
            assert exc.errno is not None
            assert not driver.exists(blob_id)
        else:
            assert info.linked_by == mode
            assert_info(info, data)
            assert read_all(driver, blob_id) == data

    def test_link_from_path_refuses_symlinks(self, driver: StorageDriver, tmp_path: Path) -> None:
        target = tmp_path / "target"
        target.write_bytes(b"secret")
        link = tmp_path / "link"
        link.symlink_to(target)
        blob_id = new_id()
        with pytest.raises(StorageError, match="symlink"):
            driver.link_from_path(blob_id, link)
        assert not driver.exists(blob_id)

    def test_link_from_path_refuses_directories(
        self, driver: StorageDriver, tmp_path: Path
    ) -> None:
        with pytest.raises(StorageError, match="regular file"):
            driver.link_from_path(new_id(), tmp_path)

    def test_link_from_path_missing_source(self, driver: StorageDriver, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            driver.link_from_path(new_id(), tmp_path / "nope")

    def test_link_from_path_unknown_mode(self, driver: StorageDriver, tmp_path: Path) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"x")
        with pytest.raises(ValueError, match="link mode"):
            driver.link_from_path(new_id(), source, "symlink")  # type: ignore[arg-type]

    # -- copy -------------------------------------------------------------------------------------

    def test_copy(self, driver: StorageDriver) -> None:
        src, dst = new_id(), new_id()
        data = random_bytes(2 * MiB + 1, seed=10)
        driver.put(src, [data])
        driver.copy(src, dst)
        assert read_all(driver, dst) == data
        driver.delete(src)
        assert read_all(driver, dst) == data

    def test_copy_replaces_destination(self, driver: StorageDriver) -> None:
        src, dst = new_id(), new_id()
        driver.put(src, [b"source"])
        driver.put(dst, [b"old destination"])
        driver.copy(src, dst)
        assert read_all(driver, dst) == b"source"
        driver.put(src, [b"changed later"])
        assert read_all(driver, dst) == b"source"

    def test_copy_onto_itself(self, driver: StorageDriver) -> None:
        blob_id = new_id()
        driver.put(blob_id, [b"same"])
        driver.copy(blob_id, blob_id)
        assert read_all(driver, blob_id) == b"same"

    def test_copy_missing_source(self, driver: StorageDriver) -> None:
        dst = new_id()
        with pytest.raises(BlobNotFoundError):
            driver.copy(new_id(), dst)
        assert not driver.exists(dst)

    def test_copy_empty_blob(self, driver: StorageDriver) -> None:
        src, dst = new_id(), new_id()
        driver.put(src, [])
        driver.copy(src, dst)
        assert driver.stat(dst).size == 0

    # -- blob ids ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad_id", BAD_BLOB_IDS, ids=repr)
    def test_bad_blob_ids_are_rejected(
        self, driver: StorageDriver, tmp_path: Path, bad_id: str
    ) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"x")
        good = new_id()
        driver.put(good, [b"x"])
        calls: dict[str, Callable[[], object]] = {
            "put": lambda: driver.put(bad_id, [b"x"]),
            "open": lambda: driver.open(bad_id),
            "stat": lambda: driver.stat(bad_id),
            "exists": lambda: driver.exists(bad_id),
            "delete": lambda: driver.delete(bad_id, missing_ok=True),
            "link_from_path": lambda: driver.link_from_path(bad_id, source),
            "copy from": lambda: driver.copy(bad_id, good),
            "copy to": lambda: driver.copy(good, bad_id),
        }
        for name, call in calls.items():
            try:
                call()
            except InvalidBlobIdError:
                continue
            pytest.fail(f"{name} accepted {bad_id!r}")

    @pytest.mark.parametrize("good_id", GOOD_BLOB_IDS)
    def test_unusual_but_valid_blob_ids(self, driver: StorageDriver, good_id: str) -> None:
        driver.delete(good_id, missing_ok=True)  # the S3 bucket is shared by the whole session
        driver.put(good_id, [good_id.encode()])
        assert read_all(driver, good_id) == good_id.encode()
        driver.delete(good_id)
        assert not driver.exists(good_id)

    # -- concurrency ------------------------------------------------------------------------------

    def test_concurrent_puts_of_different_blobs(self, driver: StorageDriver) -> None:
        workers, per_worker = 6, 3
        errors: list[BaseException] = []
        written: dict[str, int] = {}
        lock = threading.Lock()

        def work(worker: int) -> None:
            try:
                for n in range(per_worker):
                    blob_id, seed = new_id(), worker * 100 + n
                    size = MiB + worker * 4096 + n
                    driver.put(blob_id, generated_chunks(size, seed, chunk_size=256 * 1024))
                    with lock:
                        written[blob_id] = seed
            except BaseException as exc:  # reported below, with the worker that failed
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(written) == workers * per_worker
        for blob_id, seed in written.items():
            worker, n = divmod(seed, 100)
            size = MiB + worker * 4096 + n
            assert read_all(driver, blob_id) == b"".join(
                generated_chunks(size, seed, chunk_size=256 * 1024)
            )

    def test_concurrent_puts_of_the_same_blob_leave_one_whole_version(
        self, driver: StorageDriver
    ) -> None:
        blob_id = new_id()
        versions = [random_bytes(MiB + n, seed=n) for n in range(4)]
        threads = [
            threading.Thread(target=driver.put, args=(blob_id, [version])) for version in versions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert read_all(driver, blob_id) in versions
