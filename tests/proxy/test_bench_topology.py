"""bench/proxy's --pin: which CPUs the load side and the proxy get."""

from __future__ import annotations

import pytest

from bench.proxy import Topology, parse_cpus, topology_for


@pytest.mark.parametrize(("pin", "available", "expected"), [
    (None, (0, 1), Topology("shared", (0, 1), (0, 1))),
    ("auto", (0, 1), Topology("pinned", (0,), (1,))),
    ("auto", (0, 1, 2), Topology("pinned", (0, 1), (2,))),
    ("auto", (0, 1, 2, 3), Topology("pinned", (0, 1), (2, 3))),
    ("auto", (2, 5, 7), Topology("pinned", (2, 5), (7,))),
    ("0:1", (0, 1), Topology("pinned", (0,), (1,))),
    ("0-2,5:3-4", tuple(range(6)), Topology("pinned", (0, 1, 2, 5), (3, 4))),
])
def test_cpu_sets(pin: str | None, available: tuple[int, ...], expected: Topology) -> None:
    assert topology_for(pin, available) == expected


@pytest.mark.parametrize(("pin", "available", "why"), [
    ("auto", (0,), "at least 2 CPUs"),
    ("0-1:1", (0, 1), "overlap"),
    ("0:3", (0, 1), "outside"),
    ("0,1", (0, 1), "LOAD:PROXY"),
])
def test_impossible_cpu_sets_are_refused(pin: str, available: tuple[int, ...],
                                         why: str) -> None:
    with pytest.raises(ValueError, match=why):
        topology_for(pin, available)


def test_cpu_lists() -> None:
    assert parse_cpus("3,0-1, 1") == (0, 1, 3)
