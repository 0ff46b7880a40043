"""S3 storage driver (boto3): one object per blob in one bucket, keyed by the blob id.

Objects that fit in one part go up as one signed PutObject on a per-thread keep-alive connection
(s3_fastput.py); everything else uses boto3. Large or unknown-size streams go up as multipart
uploads whose parts are sent by a bounded thread pool, never holding more than `max_concurrency`
parts in memory; a failed upload is aborted.
Tested against Ceph RGW (tests/rgw.py); any S3 with path-style addressing should do.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config

from newstack.storage import s3_fastput
from newstack.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    ChecksumAccumulator,
    LinkMode,
    StorageError,
    StorageUnavailableError,
    check_blob_id,
    check_link_mode,
    check_range,
    iter_chunks,
    open_regular_file,
    size_mismatch,
    unsupported_link_mode,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
MAX_COPY_OBJECT_SIZE = 5 * 1024 * MiB
_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "Throttling"}
_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


class _RangeNotSatisfiableError(StorageError):
    """The object exists but the requested range starts past its end."""


class S3Driver:
    """Blobs as objects in `bucket`; call `ensure_bucket()` once to create the bucket if missing.

    `part_size` (at least 5 MiB) is grown for known sizes that would need more than 10,000 parts;
    `multipart_copy_threshold` is where `copy` switches from CopyObject to parallel UploadPartCopy;
    `max_attempts` counts the tries of each request (botocore standard mode, with backoff; the
    lean single PUT retries the same way).
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
        part_size: int = 16 * MiB,
        max_concurrency: int = 4,
        *,
        multipart_copy_threshold: int = MAX_COPY_OBJECT_SIZE,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_attempts: int = 4,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} (5 MiB), not {part_size}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.bucket = bucket
        self.region = region
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.multipart_copy_threshold = min(multipart_copy_threshold, MAX_COPY_OBJECT_SIZE)
        config = Config(
            region_name=region,
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=max(10, max_concurrency + 2),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Newer botocore adds CRC trailers by default, which older S3 servers (Ceph 16)
            # reject; uploads carry Content-MD5 instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._single_put: s3_fastput.SinglePutClient | None = None
        if not s3_fastput.uses_proxy(self._client.meta.endpoint_url):
            # boto3's client pipeline costs ~1 ms of CPU per PutObject, more than RGW itself spends
            # on a small object; whole-object PUTs skip it (proxies are left to boto3).
            self._single_put = s3_fastput.SinglePutClient(
                self._client.meta.endpoint_url,
                bucket,
                region,
                session.get_credentials(),
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_attempts=max_attempts,
            )

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists and is ours."""
        try:
            with self._sdk_errors(self.bucket):
                self._client.head_bucket(Bucket=self.bucket)
            return
        except BlobNotFoundError:
            pass
        create: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            with self._sdk_errors(self.bucket):
                self._client.create_bucket(**create)
        except FileExistsError:
            pass  # created meanwhile by another process with our credentials

    # -- the StorageDriver contract ---------------------------------------------------------------

    def put(
        self, blob_id: str, stream: BinaryIO | Iterable[bytes], size: int | None = None
    ) -> BlobInfo:
        check_blob_id(blob_id)
        accumulator = ChecksumAccumulator()
        reader = _PartReader(iter_chunks(stream), self._part_size_for(size), accumulator)
        first = reader.read_part()
        if not reader.at_end():
            self._put_multipart(blob_id, first, reader, size)
            return BlobInfo(size=accumulator.size, checksums=accumulator.checksums())
        if size is not None and size != accumulator.size:
            raise size_mismatch(blob_id, size, accumulator.size)
        checksums = accumulator.checksums()
        # the object is this one part: its MD5 is already known, no second pass over the bytes
        content_md5 = base64.b64encode(bytes.fromhex(checksums.md5)).decode("ascii")
        with self._sdk_errors(blob_id):
            if self._single_put is not None:
                self._single_put.put(blob_id, first, content_md5)
            else:
                self._client.put_object(
                    Bucket=self.bucket, Key=blob_id, Body=first, ContentMD5=content_md5
                )
        return BlobInfo(size=accumulator.size, checksums=checksums)

    def open(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_blob_id(blob_id)
        check_range(start, end)
        if end == start:
            self.stat(blob_id)
            return iter(())
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": blob_id}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with self._sdk_errors(blob_id):
                response = self._client.get_object(**request)
        except _RangeNotSatisfiableError:
            return iter(())
        return _BodyChunks(response["Body"], lambda: self._sdk_errors(blob_id))

    def stat(self, blob_id: str) -> BlobInfo:
        check_blob_id(blob_id)
        with self._sdk_errors(blob_id):
            head = self._client.head_object(Bucket=self.bucket, Key=blob_id)
        return BlobInfo(size=head["ContentLength"])

    def exists(self, blob_id: str) -> bool:
        try:
            self.stat(blob_id)
        except BlobNotFoundError:
            return False
        return True

    def delete(self, blob_id: str, *, missing_ok: bool = False) -> None:
        check_blob_id(blob_id)
        if not missing_ok:
            self.stat(blob_id)  # S3 deletes are silent about missing keys
        with self._sdk_errors(blob_id):
            self._client.delete_object(Bucket=self.bucket, Key=blob_id)

    def link_from_path(
        self, blob_id: str, path: str | Path, mode: LinkMode = "auto", *, checksums: bool = True
    ) -> BlobInfo:
        check_blob_id(blob_id)
        check_link_mode(mode)
        if mode not in ("auto", "copy"):
            raise unsupported_link_mode("s3", mode, path)
        with open_regular_file(path) as source:
            info = self.put(blob_id, source, size=os.fstat(source.fileno()).st_size)
        return BlobInfo(size=info.size, checksums=info.checksums, linked_by="copy")

    def copy(self, src_blob: str, dst_blob: str) -> None:
        check_blob_id(src_blob)
        check_blob_id(dst_blob)
        size = self.stat(src_blob).size
        if src_blob == dst_blob:
            return  # S3 refuses to copy an object onto itself unchanged
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": src_blob}
        if size <= self.multipart_copy_threshold:
            with self._sdk_errors(src_blob):
                self._client.copy_object(Bucket=self.bucket, Key=dst_blob, CopySource=source)
            return
        part_size = self._part_size_for(size)
        ranges = [(at, min(at + part_size, size) - 1) for at in range(0, size, part_size)]

        def copy_part(upload_id: str, number: int) -> str:
            first, last = ranges[number - 1]
            with self._sdk_errors(dst_blob):
                part = self._client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst_blob,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={first}-{last}",
                )
            return part["CopyPartResult"]["ETag"]

        with self._multipart_upload(dst_blob) as upload_id:
            with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-copy") as pool:
                futures = [
                    pool.submit(copy_part, upload_id, number)
                    for number in range(1, len(ranges) + 1)
                ]
                try:
                    etags = [future.result() for future in futures]
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
            self._complete(dst_blob, upload_id, etags)

    # -- multipart --------------------------------------------------------------------------------

    def _put_multipart(
        self, blob_id: str, first: bytes, reader: _PartReader, size: int | None
    ) -> None:
        # One slot per part held in memory, taken before a part is read and given back when its
        # upload ends: at most max_concurrency parts exist at any time.
        slots = threading.Semaphore(self.max_concurrency - 1)  # `first` holds one already
        failures: list[BaseException] = []

        def part_done(future: Future[str]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                failures.append(error)
            slots.release()

        with self._multipart_upload(blob_id) as upload_id:
            futures: list[Future[str]] = []
            with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-put") as pool:
                try:
                    part: bytes | None = first
                    while part is not None:
                        number = len(futures) + 1
                        if number > MAX_PARTS:
                            raise StorageError(
                                errno.EFBIG,
                                f"stream needs more than {MAX_PARTS} parts of {reader.part_size} "
                                "bytes; pass its size or raise part_size",
                                blob_id,
                            )
                        future = pool.submit(self._upload_part, blob_id, upload_id, number, part)
                        future.add_done_callback(part_done)
                        futures.append(future)
                        part = None
                        if reader.at_end():
                            break
                        slots.acquire()
                        if failures:
                            slots.release()
                            raise failures[0]
                        part = reader.read_part()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
            etags = [future.result() for future in futures]
            if size is not None and size != reader.accumulator.size:
                raise size_mismatch(blob_id, size, reader.accumulator.size)
            self._complete(blob_id, upload_id, etags)

    def _upload_part(self, blob_id: str, upload_id: str, number: int, data: bytes) -> str:
        with self._sdk_errors(blob_id):
            response = self._client.upload_part(
                Bucket=self.bucket,
                Key=blob_id,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentMD5=_content_md5(data),
            )
        return response["ETag"]

    @contextlib.contextmanager
    def _multipart_upload(self, blob_id: str) -> Iterator[str]:
        """A multipart upload id; the upload is aborted if the block raises."""
        with self._sdk_errors(blob_id):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=blob_id)[
                "UploadId"
            ]
        try:
            yield upload_id
        except BaseException:
            # Best effort: the original error matters more than a failed abort; bucket
            # lifecycle rules for incomplete uploads catch what is left.
            with contextlib.suppress(StorageError), self._sdk_errors(blob_id):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=blob_id, UploadId=upload_id
                )
            raise

    def _complete(self, blob_id: str, upload_id: str, etags: list[str]) -> None:
        parts: list[CompletedPartTypeDef] = [
            {"ETag": etag, "PartNumber": number} for number, etag in enumerate(etags, start=1)
        ]
        with self._sdk_errors(blob_id):
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=blob_id,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )

    def _part_size_for(self, size: int | None) -> int:
        if size is None or size <= self.part_size * MAX_PARTS:
            return self.part_size
        smallest = -(-size // MAX_PARTS)
        return -(-smallest // MiB) * MiB

    # -- errors -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _sdk_errors(self, name: str) -> Iterator[None]:
        """The one place where boto3/botocore/urllib3 exceptions become storage errors."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            raise _translate_client_error(exc, name, self.bucket) from exc
        except s3_fastput.S3ErrorResponse as exc:
            raise _translate_s3_error(exc.code, exc.message, exc.status, name, self.bucket) from exc
        except s3_fastput.S3ConnectionError as exc:
            raise StorageUnavailableError(
                errno.EHOSTUNREACH, f"S3 endpoint unreachable or timed out: {exc}", name
            ) from exc
        except (
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
            urllib3.exceptions.HTTPError,
        ) as exc:
            raise StorageUnavailableError(
                errno.EHOSTUNREACH, f"S3 endpoint unreachable or timed out: {exc}", name
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(errno.EIO, f"S3 client error: {exc}", name) from exc


def _translate_client_error(
    exc: botocore.exceptions.ClientError, name: str, bucket: str
) -> StorageError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return _translate_s3_error(code, message, status, name, bucket)


def _translate_s3_error(
    code: str, message: str, status: int, name: str, bucket: str
) -> StorageError:
    """The one code→error table, for boto3's ClientError and the lean PUT's error responses."""
    if code == "NoSuchBucket":
        return StorageError(
            errno.ENOENT, f"bucket {bucket!r} does not exist; call ensure_bucket() first", name
        )
    if code in ("NoSuchKey", "NotFound", "404") or status == 404:
        return BlobNotFoundError(errno.ENOENT, "blob not found", name)
    if code == "InvalidRange" or status == 416:
        return _RangeNotSatisfiableError(errno.EINVAL, "range starts past the end", name)
    if code == "BucketAlreadyOwnedByYou":
        return _ExistsError(errno.EEXIST, "bucket exists", name)
    if code in _ACCESS_CODES or status == 403:
        return StorageError(errno.EACCES, f"S3 refused access ({code}): {message}", name)
    if code in _UNAVAILABLE_CODES or status >= 500:
        return StorageUnavailableError(errno.EAGAIN, f"S3 unavailable ({code}): {message}", name)
    return StorageError(errno.EIO, f"S3 error {code}: {message}", name)


class _ExistsError(FileExistsError, StorageError):
    pass


class _PartReader:
    """Cuts a chunk stream into parts of `part_size` bytes, feeding the checksum accumulator."""

    def __init__(
        self, chunks: Iterator[bytes], part_size: int, accumulator: ChecksumAccumulator
    ) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._exhausted = False
        self.part_size = part_size
        self.accumulator = accumulator

    def read_part(self) -> bytes:
        pieces: list[memoryview] = []
        have = 0
        while have < self.part_size:
            if not self._pending and not self._pull():
                break
            take = self._pending[: self.part_size - have]
            self._pending = self._pending[len(take) :]
            pieces.append(take)
            have += len(take)
        return b"".join(pieces)

    def at_end(self) -> bool:
        return not self._pending and not self._pull()

    def _pull(self) -> bool:
        if self._exhausted:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self._exhausted = True
            return False
        self.accumulator.update(chunk)
        self._pending = memoryview(chunk)
        return True


class _BodyChunks(Iterator[bytes]):
    """Chunks of a GET response body; closing it returns the connection to the pool."""

    def __init__(self, body: Any, errors: Callable[[], contextlib.AbstractContextManager[None]]):
        self._body = body
        self._errors = errors

    def __next__(self) -> bytes:
        with self._errors():
            chunk: bytes = self._body.read(CHUNK_SIZE)
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._body.close()


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
