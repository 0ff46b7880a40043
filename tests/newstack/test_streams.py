"""chunk_reader: a chunk iterator read back as a file object, in any read sizes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newstack.streams import chunk_reader


@pytest.mark.parametrize(("chunks", "read_size"), [
    ([], 4),
    ([b""], 4),
    ([b"abc", b"", b"defgh", b"i"], 1),
    ([b"abc", b"", b"defgh", b"i"], 4),
    ([b"abc", b"defgh"], 100),
    ([bytes(range(256)) * 64] * 3, 5000),
])
def test_reads_back_every_byte_in_order(chunks: list[bytes], read_size: int) -> None:
    reader = chunk_reader(iter(chunks), buffer_size=3)
    got = b""
    while part := reader.read(read_size):
        assert len(part) <= read_size
        got += part
    assert got == b"".join(chunks)


def test_read_all_at_once() -> None:
    assert chunk_reader(iter([b"ab", b"cd"])).read() == b"abcd"


def test_closing_closes_the_source() -> None:
    released = []

    def source() -> Iterator[bytes]:
        try:
            yield b"first"
            yield b"second"
        finally:
            released.append(True)

    reader = chunk_reader(source())
    assert reader.read(2) == b"fi"
    reader.close()
    assert released == [True]
