"""S3Driver against a real Ceph RGW on loopback: the storage contract, multipart and failures."""

import errno
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import rgw

import newstack.storage.s3 as s3
from newstack.storage.base import StorageError, StorageUnavailableError
from newstack.storage.s3 import MiB, S3Driver
from tests.newstack.storage.contract import (
    Boom,
    StorageDriverContract,
    failing_stream,
    generated_chunks,
    new_id,
    oc10_checksums,
    random_bytes,
    read_all,
)

PART_SIZE = 5 * MiB  # the S3 minimum, so modest blobs already take the multipart path


def make_driver(endpoint: rgw.RgwEndpoint, bucket: str, **options: Any) -> S3Driver:
    settings: dict[str, Any] = {
        "endpoint_url": endpoint.endpoint_url,
        "access_key": endpoint.access_key,
        "secret_key": endpoint.secret_key,
        "region": endpoint.region,
        "part_size": PART_SIZE,
        "max_concurrency": 4,
    }
    settings.update(options)
    return S3Driver(bucket, **settings)


@pytest.fixture(scope="session")
def bucket(rgw_endpoint: rgw.RgwEndpoint) -> str:
    name = f"ocbridge-{uuid.uuid4().hex[:12]}"
    make_driver(rgw_endpoint, name).ensure_bucket()
    return name


@pytest.fixture(scope="session")
def driver(rgw_endpoint: rgw.RgwEndpoint, bucket: str) -> S3Driver:
    # One for all tests: a driver keeps no state but its client, which takes 0.1-0.4 s to build.
    return make_driver(rgw_endpoint, bucket)


def multipart_uploads(driver: S3Driver, blob_id: str) -> list[Any]:
    listing = driver._client.list_multipart_uploads(Bucket=driver.bucket, Prefix=blob_id)
    return list(listing.get("Uploads", []))


def etag(driver: S3Driver, blob_id: str) -> str:
    return str(driver._client.head_object(Bucket=driver.bucket, Key=blob_id)["ETag"]).strip('"')


class TestS3Driver(StorageDriverContract):
    piecewise_size = PART_SIZE


# -- multipart ------------------------------------------------------------------------------------


def test_small_blob_is_one_put_with_md5_etag(driver: S3Driver) -> None:
    blob_id, data = new_id(), random_bytes(PART_SIZE, seed=1)
    info = driver.put(blob_id, [data])
    assert info.checksums is not None
    assert etag(driver, blob_id) == info.checksums.md5


@pytest.mark.parametrize("size", [PART_SIZE + 1, 3 * PART_SIZE, 3 * PART_SIZE + 7])
@pytest.mark.parametrize("announced", [True, False], ids=["known-size", "unknown-size"])
def test_large_blob_is_a_multipart_upload(driver: S3Driver, size: int, announced: bool) -> None:
    blob_id = new_id()
    info = driver.put(blob_id, generated_chunks(size, seed=2), size=size if announced else None)
    assert (info.size, info.checksums and info.checksums.oc10()) == oc10_checksums(
        generated_chunks(size, seed=2)
    )
    assert etag(driver, blob_id).endswith(f"-{-(-size // PART_SIZE)}")
    assert multipart_uploads(driver, blob_id) == []


def test_parts_in_memory_never_exceed_max_concurrency(
    rgw_endpoint: rgw.RgwEndpoint, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = 0
    peak = 0
    lock = threading.Lock()
    real_read_part = s3._PartReader.read_part
    real_upload_part = S3Driver._upload_part

    def read_part(self: s3._PartReader) -> bytes:
        nonlocal live, peak
        part = real_read_part(self)
        with lock:
            live += 1
            peak = max(peak, live)
        return part

    def upload_part(self: S3Driver, blob_id: str, upload_id: str, number: int, data: bytes) -> str:
        nonlocal live
        try:
            return real_upload_part(self, blob_id, upload_id, number, data)
        finally:
            with lock:
                live -= 1

    monkeypatch.setattr(s3._PartReader, "read_part", read_part)
    monkeypatch.setattr(S3Driver, "_upload_part", upload_part)
    narrow = make_driver(rgw_endpoint, bucket, max_concurrency=2)
    size = 8 * PART_SIZE + 1
    info = narrow.put(new_id(), generated_chunks(size, seed=3))
    assert info.size == size
    assert peak == 2  # parts overlapped, and never more than max_concurrency of them


def test_failed_part_aborts_the_upload(driver: S3Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    real_upload_part = S3Driver._upload_part

    def upload_part(self: S3Driver, blob_id: str, upload_id: str, number: int, data: bytes) -> str:
        if number == 3:
            raise StorageUnavailableError(errno.EAGAIN, "S3 unavailable (SlowDown)", blob_id)
        return real_upload_part(self, blob_id, upload_id, number, data)

    monkeypatch.setattr(S3Driver, "_upload_part", upload_part)
    blob_id = new_id()
    with pytest.raises(StorageUnavailableError):
        driver.put(blob_id, generated_chunks(6 * PART_SIZE, seed=4))
    assert multipart_uploads(driver, blob_id) == []
    assert not driver.exists(blob_id)


def test_failed_stream_aborts_the_upload(driver: S3Driver) -> None:
    blob_id = new_id()
    with pytest.raises(Boom):
        driver.put(blob_id, failing_stream(3 * PART_SIZE + 5))
    assert multipart_uploads(driver, blob_id) == []
    assert not driver.exists(blob_id)


def test_too_many_parts_for_an_unknown_size(
    driver: S3Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "MAX_PARTS", 2)
    blob_id = new_id()
    with pytest.raises(StorageError) as raised:
        driver.put(blob_id, generated_chunks(3 * PART_SIZE, seed=5))
    assert raised.value.errno == errno.EFBIG
    assert multipart_uploads(driver, blob_id) == []


def test_part_size_grows_for_huge_known_sizes() -> None:
    driver = S3Driver("unused", endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s")
    assert driver._part_size_for(None) == 16 * MiB
    assert driver._part_size_for(16 * MiB * s3.MAX_PARTS) == 16 * MiB
    grown = driver._part_size_for(16 * MiB * s3.MAX_PARTS + 1)
    assert grown % MiB == 0 and grown * s3.MAX_PARTS >= 16 * MiB * s3.MAX_PARTS + 1
    assert driver._part_size_for(5 * 1024**4) * s3.MAX_PARTS >= 5 * 1024**4


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Driver("b", endpoint_url="http://127.0.0.1:9", part_size=MiB)
    with pytest.raises(ValueError, match="max_concurrency"):
        S3Driver("b", endpoint_url="http://127.0.0.1:9", max_concurrency=0)


def test_link_from_path_uploads_in_parts(driver: S3Driver, tmp_path: Any) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"".join(generated_chunks(2 * PART_SIZE + 3, seed=6)))
    blob_id = new_id()
    info = driver.link_from_path(blob_id, source)
    assert info.linked_by == "copy"
    assert etag(driver, blob_id).endswith("-3")


# -- copy -----------------------------------------------------------------------------------------


def test_large_copy_uses_parallel_part_copies(rgw_endpoint: rgw.RgwEndpoint, bucket: str) -> None:
    driver = make_driver(rgw_endpoint, bucket, multipart_copy_threshold=PART_SIZE)
    src, dst = new_id(), new_id()
    size = 2 * PART_SIZE + 11
    driver.put(src, generated_chunks(size, seed=7))
    driver.copy(src, dst)
    assert etag(driver, dst).endswith("-3")
    assert oc10_checksums(driver.open(dst)) == oc10_checksums(generated_chunks(size, seed=7))
    assert multipart_uploads(driver, dst) == []


# -- ranges on RGW's edge cases -------------------------------------------------------------------


def test_range_on_an_empty_object(driver: S3Driver) -> None:
    blob_id = new_id()
    driver.put(blob_id, [])
    assert list(driver.open(blob_id, 0, 1)) == []
    assert list(driver.open(blob_id, 1)) == []


def test_iterator_close_releases_the_connection(driver: S3Driver) -> None:
    blob_id = new_id()
    driver.put(blob_id, generated_chunks(3 * MiB, seed=8))
    for _ in range(30):  # more than the connection pool holds
        chunks: Iterator[bytes] = driver.open(blob_id)
        next(chunks)
        chunks.close()  # type: ignore[attr-defined]
    assert read_all(driver, blob_id, 0, 10) == next(generated_chunks(3 * MiB, seed=8))[:10]


# -- buckets and errors ---------------------------------------------------------------------------


def test_ensure_bucket_creates_once(rgw_endpoint: rgw.RgwEndpoint) -> None:
    driver = make_driver(rgw_endpoint, f"ocbridge-new-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageError, match="ensure_bucket"):
        driver.put(new_id(), [b"x"])
    driver.ensure_bucket()
    driver.ensure_bucket()
    blob_id = new_id()
    driver.put(blob_id, [b"x"])
    assert read_all(driver, blob_id) == b"x"


def test_wrong_credentials(rgw_endpoint: rgw.RgwEndpoint, bucket: str) -> None:
    driver = make_driver(rgw_endpoint, bucket, secret_key="wrong")
    with pytest.raises(StorageError) as raised:
        driver.put(new_id(), [b"x"])
    assert raised.value.errno == errno.EACCES


def test_unreachable_endpoint() -> None:
    port = rgw.free_port()  # nothing listens there
    driver = S3Driver(
        "b",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key="k",
        secret_key="s",
        max_attempts=1,
        connect_timeout=2,
    )
    with pytest.raises(StorageUnavailableError) as raised:
        driver.stat("abc")
    assert "unreachable" in str(raised.value)
    assert isinstance(raised.value, StorageError) and isinstance(raised.value, OSError)
