"""A large body up and down through `ocbridge proxy` (its own process), generated on the fly
and hashed as it comes back, with the proxy's RSS sampled from /proc: streaming keeps it flat.
The 5 GiB run with the same measurement is `scripts/dev bench proxy` (docs/benchmarks.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.common import RssSampler
from tests.proxy.harness import USERS, Backends, backends, dav, proxy_process

SIZE = 300 * 2**20
#: a proxy that held the body would grow by SIZE; streaming needs a few 256 KiB buffers
GROWTH_LIMIT_MIB = 64


def generated(size: int, seed: bytes) -> Iterator[bytes]:
    """`size` bytes in 1 MiB pieces that differ from each other (no file, nothing kept)."""
    block = hashlib.sha256(seed).digest() * (2**20 // 32)
    for n in range(size // len(block)):
        yield n.to_bytes(8, "big") + block[8:]


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Backends]:
    with backends(tmp_path) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize(("uid", "routes"), [("bob", {"bob": "new"}), ("alice", {})])
def test_a_large_body_both_ways_leaves_the_proxy_rss_flat(
        tmp_path: Path, stacks: Backends, uid: str, routes: dict[str, str]) -> None:
    expected = hashlib.sha256()
    for piece in generated(SIZE, uid.encode()):
        expected.update(piece)
    with proxy_process(tmp_path, stacks, workers=1, routes=routes) as proxy:
        with httpx.Client(base_url=proxy.url, auth=(uid, USERS[uid]), timeout=120) as client:
            # warm the proxy (pools, imports, caches) so the baseline is its working size
            assert client.request("PROPFIND", dav(uid), headers={"Depth": "0"}).status_code == 207
            with RssSampler(proxy.process.pid, interval=0.05) as up:
                put = client.put(dav(uid, "large.bin"), content=generated(SIZE, uid.encode()),
                                 headers={"Content-Length": str(SIZE)})
            assert put.status_code == 201, put.text
            got = hashlib.sha256()
            with RssSampler(proxy.process.pid, interval=0.05) as down:
                with client.stream("GET", dav(uid, "large.bin")) as response:
                    assert response.status_code == 200
                    assert response.headers["content-length"] == str(SIZE)
                    for chunk in response.iter_raw():
                        got.update(chunk)
        assert got.hexdigest() == expected.hexdigest()
    for name, sampler in (("PUT", up), ("GET", down)):
        assert len(sampler.samples) > 5, name  # sampled while the body was moving
        growth_mib = (sampler.peak_kb - sampler.start_kb) / 1024
        assert growth_mib < GROWTH_LIMIT_MIB, (
            f"{name}: proxy RSS {sampler.start_kb // 1024} -> peak {sampler.peak_kb // 1024} MiB")
    # the body reached the stack the user is on, whole
    with httpx.Client(base_url=stacks.url("new" if routes else "legacy"),
                      auth=(uid, USERS[uid]), timeout=60) as direct:
        head = direct.head(dav(uid, "large.bin"))
        assert head.status_code == 200 and head.headers["content-length"] == str(SIZE)
