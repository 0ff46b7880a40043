"""Flips through `ocbridge proxy --workers 2` in front of two real backends: a flip counts from
the very next request through any worker, and no write reaches a stack the user is not on."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.harness import (
    USERS,
    Backends,
    ProxyProcess,
    backends,
    dav,
    listing,
    proxy_process,
)


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Backends]:
    with backends(tmp_path) as running:
        yield running


def fresh_get(proxy: ProxyProcess, uid: str, path: str) -> bytes:
    # a new connection per request: the kernel spreads them over both workers
    with httpx.Client(base_url=proxy.url, auth=(uid, USERS[uid]), timeout=30) as client:
        response = client.get(dav(uid, path))
        assert response.status_code == 200, response.text
        return response.content


def test_a_flip_counts_from_the_next_request_through_every_worker(
        tmp_path: Path, stacks: Backends) -> None:
    for stack in ("legacy", "new"):
        with httpx.Client(base_url=stacks.url(stack), auth=("bob", USERS["bob"])) as direct:
            assert direct.put(dav("bob", "where.txt"), content=stack.encode()).status_code == 201
    with proxy_process(tmp_path, stacks, workers=2) as proxy:
        assert fresh_get(proxy, "bob", "where.txt") == b"legacy"  # no routing row: default
        for state in ("new", "legacy", "new", "legacy"):
            proxy.flip("bob", state)
            answers = {fresh_get(proxy, "bob", "where.txt") for _ in range(12)}
            assert answers == {state.encode()}, (state, answers)
        # a kept-alive connection follows the flip too: routing is per request
        with httpx.Client(base_url=proxy.url, auth=("bob", USERS["bob"]), timeout=30) as bob:
            assert bob.get(dav("bob", "where.txt")).content == b"legacy"
            proxy.flip("bob", "new")
            assert bob.get(dav("bob", "where.txt")).content == b"new"


@dataclasses.dataclass(frozen=True)
class Attempt:
    name: str
    sent: float
    answered: float
    status: int


@dataclasses.dataclass(frozen=True)
class Phase:
    """`stack` served the user's writes from `start` (the change was asked for) until `end`
    (the freeze that closed the phase was acknowledged: nothing routed in it was in flight)."""

    stack: str
    start: float
    end: float


def candidate_stacks(attempt: Attempt, phases: list[Phase]) -> set[str]:
    """The stacks a write may have been admitted to: it was admitted between its sending and
    its answer, and only while a phase was open."""
    return {p.stack for p in phases if p.start <= attempt.answered and attempt.sent <= p.end}


def test_candidate_stacks_table() -> None:
    phases = [Phase("legacy", float("-inf"), 10.0), Phase("new", 12.0, 20.0),
              Phase("legacy", 22.0, float("inf"))]
    cases = [
        (Attempt("a", 1.0, 2.0, 201), {"legacy"}),
        (Attempt("b", 9.0, 11.0, 201), {"legacy"}),     # answered in the frozen gap
        (Attempt("c", 11.0, 13.0, 201), {"new"}),       # sent frozen, admitted after the flip
        (Attempt("d", 9.5, 12.5, 201), {"legacy", "new"}),  # spans the whole gap: ambiguous
        (Attempt("e", 20.5, 21.0, 423), set()),
        (Attempt("f", 25.0, 26.0, 201), {"legacy"}),
    ]
    for attempt, expected in cases:
        assert candidate_stacks(attempt, phases) == expected, attempt


def test_concurrent_writers_during_flips_reach_only_the_current_stack(
        tmp_path: Path, stacks: Backends) -> None:
    uid = "alice"
    attempts: list[Attempt] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with httpx.Client(base_url=proxy.url, auth=(uid, USERS[uid]), timeout=30) as c:
                for seq in itertools.count():
                    if stop.is_set():
                        return
                    name = f"w{n}-{seq:05d}.txt"
                    sent = time.monotonic()
                    status = c.put(dav(uid, name), content=name.encode()).status_code
                    with lock:
                        attempts.append(Attempt(name, sent, time.monotonic(), status))
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    with proxy_process(tmp_path, stacks, workers=2) as proxy:
        phases: list[Phase] = []
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        start, stack = float("-inf"), "legacy"  # no routing row yet: the default stack
        for thread in threads:
            thread.start()
        try:
            for target in ("new", "legacy", "new", "legacy", "new"):
                time.sleep(0.4)  # writes land on `stack`
                _, frozen_at = proxy.flip(uid, "frozen")
                phases.append(Phase(stack, start, frozen_at))
                time.sleep(0.15)  # writes get 423
                start = time.monotonic()
                proxy.flip(uid, target)
                stack = target
            time.sleep(0.4)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        phases.append(Phase(stack, start, float("inf")))
        assert not errors, errors

    on = {name: listing(stacks.url(name), uid) for name in ("legacy", "new")}
    statuses = {a.status for a in attempts}
    assert statuses <= {201, 423}, statuses
    written = [a for a in attempts if a.status == 201]
    refused = [a for a in attempts if a.status == 423]
    assert len(written) > 40 and refused, (len(written), len(refused))
    for attempt in refused:  # a frozen user's write reaches no stack
        assert not any(attempt.name in names for names in on.values()), attempt
    decided = 0
    for attempt in written:
        found = {name for name, names in on.items() if attempt.name in names}
        assert len(found) == 1, (attempt, found)
        allowed = candidate_stacks(attempt, phases)
        assert found <= allowed, (attempt, found, phases)
        decided += len(allowed) == 1
    # every stack was written to in turn, and nearly every write had a single possible stack
    assert all(on.values())
    assert decided >= 0.9 * len(written), (decided, len(written))
    # and nothing reached a backend that no writer sent
    assert set().union(*on.values()) <= {a.name for a in written}
