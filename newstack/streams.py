"""A file object over an iterator of byte chunks: a backend's streamed read handed on as the
body of another backend call (backend.write reads a file object), never held whole."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO


class ChunkStream(io.RawIOBase):
    """A readable raw stream over an iterator of byte chunks; closing it closes the iterator
    (a generator's `finally` releases what it holds open)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def chunk_reader(chunks: Iterator[bytes], buffer_size: int = io.DEFAULT_BUFFER_SIZE) -> BinaryIO:
    return io.BufferedReader(ChunkStream(chunks), buffer_size=buffer_size)
