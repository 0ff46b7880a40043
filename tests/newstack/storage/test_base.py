"""The shared pieces of the driver contract: blob id rules, checksums, chunking, the error tree."""

import hashlib
import io
import zlib

import pytest

from newstack.storage.base import (
    CHUNK_SIZE,
    BlobNotFoundError,
    ChecksumAccumulator,
    InvalidBlobIdError,
    StorageError,
    StorageUnavailableError,
    check_blob_id,
    iter_chunks,
)
from tests.newstack.storage.contract import BAD_BLOB_IDS, GOOD_BLOB_IDS


@pytest.mark.parametrize("blob_id", GOOD_BLOB_IDS)
def test_good_blob_ids(blob_id: str) -> None:
    assert check_blob_id(blob_id) == blob_id


@pytest.mark.parametrize("blob_id", [*BAD_BLOB_IDS, None, b"bytes"], ids=repr)
def test_bad_blob_ids(blob_id: str) -> None:
    with pytest.raises(InvalidBlobIdError, match="invalid blob id"):
        check_blob_id(blob_id)


def test_checksum_accumulator_matches_hashlib_and_zlib() -> None:
    data = bytes(range(256)) * 1000
    accumulator = ChecksumAccumulator()
    for at in range(0, len(data), 999):
        accumulator.update(data[at : at + 999])
    checksums = accumulator.checksums()
    assert accumulator.size == len(data)
    assert checksums.sha1 == hashlib.sha1(data).hexdigest()
    assert checksums.md5 == hashlib.md5(data).hexdigest()
    assert checksums.adler32 == f"{zlib.adler32(data):08x}"
    assert (
        checksums.oc10() == f"SHA1:{checksums.sha1} MD5:{checksums.md5} ADLER32:{checksums.adler32}"
    )


def test_adler32_keeps_leading_zeros() -> None:
    accumulator = ChecksumAccumulator()
    accumulator.update(b"a")
    assert accumulator.checksums().adler32 == "00620062"


def test_iter_chunks_reads_file_objects_in_bounded_chunks() -> None:
    chunks = list(iter_chunks(io.BytesIO(b"x" * (2 * CHUNK_SIZE + 1))))
    assert [len(chunk) for chunk in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 1]


def test_iter_chunks_drops_empty_chunks_and_accepts_bytes_like() -> None:
    assert list(iter_chunks([b"", bytearray(b"ab"), memoryview(b"c"), b""])) == [b"ab", b"c"]


def test_error_tree() -> None:
    assert issubclass(BlobNotFoundError, FileNotFoundError)
    assert issubclass(BlobNotFoundError, StorageError)
    assert issubclass(StorageUnavailableError, StorageError)
    assert issubclass(StorageError, OSError)
    assert issubclass(InvalidBlobIdError, ValueError)
    error = BlobNotFoundError(2, "blob not found", "abc")
    assert (error.errno, error.filename, str(error)) == (
        2,
        "abc",
        "[Errno 2] blob not found: 'abc'",
    )
