"""DirectoryUploads on a real directory: ownCloud 10's layout, whole-or-absent chunks, safe names,
claims and cleanup. The HTTP scenarios run on it in tests/newstack/dav/test_chunking.py."""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path

import pytest

from bridge.oc10.formats import file_etag
from newstack.backend import (
    AlreadyExistsError,
    ConflictError,
    IncompleteBodyError,
    InvalidPathError,
    StorageUnavailableError,
)
from newstack.uploads.base import UploadEntry
from newstack.uploads.directory import DirectoryUploads

UNIQID = re.compile(r"^[0-9a-f]{13}$")


@pytest.fixture(params=[True, False], ids=["fsync", "no-fsync"])
def uploads(request: pytest.FixtureRequest, tmp_path: Path) -> DirectoryUploads:
    for uid in ("alice", "bob"):
        (tmp_path / uid).mkdir()
    return DirectoryUploads(lambda uid: tmp_path / uid / "uploads",
                            users=lambda: ["alice", "bob", "carol"], fsync=request.param)


def put(uploads: DirectoryUploads, folder: str, name: str, data: bytes,
        **kwargs: bool) -> tuple[UploadEntry, bool]:
    return uploads.put_chunk("alice", folder, name, io.BytesIO(data), len(data), **kwargs)


def read(uploads: DirectoryUploads, chunk: UploadEntry) -> bytes:
    return b"".join(uploads.open_chunk(chunk))


def files_below(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_chunks_live_where_oc10_keeps_them(uploads: DirectoryUploads, tmp_path: Path) -> None:
    assert uploads.root("alice") is None and uploads.folders("alice") == []
    folder = uploads.create_folder("alice", "web-file-upload-1")
    assert UNIQID.match(folder.etag) and folder.is_dir
    chunk, created = put(uploads, "web-file-upload-1", "0", b"AAAAA")
    assert created
    on_disk = tmp_path / "alice" / "uploads" / "web-file-upload-1" / "0"
    assert on_disk.read_bytes() == b"AAAAA"
    st = on_disk.stat()
    assert chunk.etag == file_etag(int(st.st_mtime), st.st_ino, st.st_dev, 5)  # Local::getETag
    assert (chunk.size, chunk.mtime, chunk.path) == (5, int(st.st_mtime), "web-file-upload-1/0")
    assert files_below(tmp_path / "alice") == ["uploads", "uploads/web-file-upload-1",
                                               "uploads/web-file-upload-1/0"]

    # an upload that ownCloud 10 received before the cutover goes on here
    started = tmp_path / "alice" / "uploads" / "started-on-oc10"
    started.mkdir()
    (started / "10").write_bytes(b"BB")
    (started / "2").write_bytes(b"A")
    chunks = uploads.chunks("alice", "started-on-oc10")
    assert [c.name for c in chunks] == ["10", "2"]  # byte order, as oc_filecache lists
    assert [read(uploads, c) for c in chunks] == [b"BB", b"A"]
    assert [f.name for f in uploads.folders("alice")] == ["started-on-oc10", "web-file-upload-1"]


def test_ids_are_the_same_in_every_process(uploads: DirectoryUploads, tmp_path: Path) -> None:
    uploads.create_folder("alice", "t")
    first, _ = put(uploads, "t", "1", b"first try")
    other_process = DirectoryUploads(lambda uid: tmp_path / uid / "uploads")
    assert other_process.chunk("alice", "t", "1") == first
    again, created = put(uploads, "t", "1", b"AAAAA")
    assert not created
    assert again.fileid == first.fileid >= 2**52, "a chunk keeps its id when re-sent"
    assert again.etag != first.etag
    assert other_process.chunk("alice", "t", "1") == again
    assert uploads.chunk("bob", "t", "1") is None
    bobs = uploads.create_folder("bob", "t")
    assert bobs.fileid != uploads.folder("alice", "t").fileid  # type: ignore[union-attr]


def test_a_broken_body_leaves_nothing(uploads: DirectoryUploads, tmp_path: Path) -> None:
    uploads.create_folder("alice", "t")
    put(uploads, "t", "0", b"AAAAA")
    with pytest.raises(IncompleteBodyError):
        uploads.put_chunk("alice", "t", "1", io.BytesIO(b"short"), 100)
    with pytest.raises(IncompleteBodyError):  # a broken re-send keeps the old chunk
        uploads.put_chunk("alice", "t", "0", io.BytesIO(b"BB"), 5)

    class Exploding(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        uploads.put_chunk("alice", "t", "2", Exploding(), None)
    assert files_below(tmp_path / "alice" / "uploads") == ["t", "t/0"]
    assert [read(uploads, c) for c in uploads.chunks("alice", "t")] == [b"AAAAA"]


@pytest.mark.parametrize("name", [
    "", ".", "..", "a/b", "../etc", "nul\x00", "tab\t", "back\\slash", "x" * 251,
    "é" * 128,  # 250 characters or fewer, but more than a file name's 255 bytes
    ".ocbridge-part-0123456789abcdef0123456789abcdef.part",
    ".ocbridge-claim-0123456789abcdef0123456789abcdef",
])
def test_unsafe_names_are_refused(uploads: DirectoryUploads, tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidPathError, match="is not a valid name for an upload or a chunk"):
        uploads.create_folder("alice", name)
    uploads.create_folder("alice", "t")
    with pytest.raises(InvalidPathError, match="is not a valid name for an upload or a chunk"):
        put(uploads, "t", name, b"x")
    assert uploads.folder("alice", name) is None
    assert uploads.chunk("alice", "t", name) is None and uploads.chunks("alice", name) == []
    assert files_below(tmp_path) == ["alice", "alice/uploads", "alice/uploads/t", "bob"]


def test_odd_but_safe_names_stay_inside(uploads: DirectoryUploads, tmp_path: Path) -> None:
    for name in ("..%2F..%2Fetc", "...", ".hidden", "ü ~$#"):
        uploads.create_folder("alice", name)
        put(uploads, name, name, b"x")
        assert (tmp_path / "alice" / "uploads" / name / name).read_bytes() == b"x"
    assert files_below(tmp_path / "bob") == []


def test_symlinks_are_never_followed(uploads: DirectoryUploads, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    uploads.create_folder("alice", "t")
    root = tmp_path / "alice" / "uploads"
    (root / "linked").symlink_to(outside)
    (root / "t" / "secret").symlink_to(outside / "secret")
    assert [f.name for f in uploads.folders("alice")] == ["t"]
    assert uploads.folder("alice", "linked") is None
    assert uploads.chunks("alice", "linked") == [] and uploads.chunks("alice", "t") == []
    assert uploads.chunk("alice", "t", "secret") is None
    with pytest.raises(ConflictError):
        put(uploads, "linked", "0", b"x")
    assert files_below(outside) == ["secret"]


def test_missing_folder_or_home(uploads: DirectoryUploads, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="non-existent collections"):
        put(uploads, "nope", "0", b"x")
    uploads.create_folder("alice", "t")
    with pytest.raises(AlreadyExistsError):
        uploads.create_folder("alice", "t")
    missing_home = DirectoryUploads(lambda uid: tmp_path / "nobody" / uid / "uploads")
    with pytest.raises(StorageUnavailableError, match="home folder of 'alice' is missing"):
        missing_home.create_folder("alice", "t")
    assert missing_home.root("alice") is None and missing_home.folders("alice") == []


def test_upload_removed_while_the_body_arrives(uploads: DirectoryUploads,
                                               tmp_path: Path) -> None:
    uploads.create_folder("alice", "t")
    folder = uploads.folder("alice", "t")
    assert folder is not None

    class AbortedMeanwhile(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            if data:
                uploads.delete(folder)
            return data

    with pytest.raises(ConflictError, match="non-existent collections"):
        uploads.put_chunk("alice", "t", "0", AbortedMeanwhile(b"AAAAA"), 5)
    assert files_below(tmp_path / "alice" / "uploads") == []


def test_delete_one_chunk_or_the_upload(uploads: DirectoryUploads, tmp_path: Path) -> None:
    uploads.create_folder("alice", "t")
    first, _ = put(uploads, "t", "0", b"A")
    put(uploads, "t", "1", b"B")
    uploads.delete(first)
    uploads.delete(first)  # gone already is fine
    assert [c.name for c in uploads.chunks("alice", "t")] == ["1"]
    with pytest.raises(StorageUnavailableError, match="it is gone"):
        uploads.open_chunk(first)
    folder = uploads.folder("alice", "t")
    assert folder is not None
    uploads.delete(folder)
    assert uploads.folder("alice", "t") is None
    assert files_below(tmp_path / "alice" / "uploads") == []


def test_only_one_request_claims(uploads: DirectoryUploads, tmp_path: Path) -> None:
    put(uploads, ".chunking-v1-7-abc", "1", b"BBBBB", create_folder=True)
    assert uploads.claim("alice", ".chunking-v1-7-abc", ["0", "1"]) is None
    put(uploads, ".chunking-v1-7-abc", "0", b"AAAAA", create_folder=True)
    put(uploads, ".chunking-v1-7-abc", "extra", b"?", create_folder=True)
    results: list[list[UploadEntry] | None] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        results.append(uploads.claim("alice", ".chunking-v1-7-abc", ["0", "1"]))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [r for r in results if r is not None]
    assert len(won) == 1 and len(results) == 4
    chunks = won[0]
    assert [c.path for c in chunks] == [".chunking-v1-7-abc/0", ".chunking-v1-7-abc/1"]
    assert uploads.folders("alice") == [], "a claimed upload is no longer listed"
    assert b"".join(read(uploads, c) for c in chunks) == b"AAAAABBBBB"
    uploads.release(chunks)
    assert files_below(tmp_path / "alice" / "uploads") == []


def test_cleanup(uploads: DirectoryUploads, tmp_path: Path) -> None:
    root = tmp_path / "alice" / "uploads"
    uploads.create_folder("alice", "stale")
    put(uploads, "stale", "0", b"x")
    uploads.create_folder("alice", "fresh")
    uploads.create_folder("bob", "bobs-stale")
    leftover = root / ".ocbridge-claim-0123456789abcdef0123456789abcdef"  # a crashed assembly
    leftover.mkdir()
    (leftover / "0").write_bytes(b"x")
    (root / "fresh" / ".ocbridge-part-0123456789abcdef0123456789abcdef.part").write_bytes(b"x")
    assert [c.name for c in uploads.chunks("alice", "fresh")] == [], "temp files are hidden"
    for path in (root / "stale", leftover, tmp_path / "bob" / "uploads" / "bobs-stale"):
        old = path.stat().st_mtime - 7200
        os.utime(path, (old, old))
    assert uploads.cleanup(3600) == 3
    assert files_below(root) == [
        "fresh", "fresh/.ocbridge-part-0123456789abcdef0123456789abcdef.part"]
    assert files_below(tmp_path / "bob" / "uploads") == []
    with pytest.raises(ValueError, match="needs `users`"):
        DirectoryUploads(lambda uid: root).cleanup(3600)
