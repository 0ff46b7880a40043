"""The lifecycle table (bridge/lifecycle.py), every pair of states, and its recording in the
bridge store: routing follows the state in the same transaction, every move is audited."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.lifecycle import (
    ALLOWED,
    FROZEN,
    LIFECYCLE_STATES,
    ROUTING_STATE,
    TransitionError,
    check_transition,
    initial_state,
)
from bridge.store import FROZEN_STATES, STATES, BridgeStore, StoreError

#: the whole table written out once more, by hand: the code's table must match it exactly
EXPECTED = {
    "legacy": {"copying", "failed"},
    "copying": {"catching_up", "failed"},
    "catching_up": {"frozen", "failed"},
    "frozen": {"verifying", "reversing", "failed"},
    "verifying": {"new", "failed"},
    "new": {"frozen", "failed"},
    "reversing": {"legacy", "failed"},
    "failed": {"legacy", "new"},
}


@pytest.mark.parametrize(("current", "target"),
                         list(itertools.product(LIFECYCLE_STATES, repeat=2)))
def test_every_pair_of_states(current: str, target: str) -> None:
    allowed = target in EXPECTED[current]
    needs_reason = "failed" in (current, target)
    if allowed:
        check_transition(current, target, "why" if needs_reason else "")
        if needs_reason:
            with pytest.raises(TransitionError, match="needs a reason"):
                check_transition(current, target, "  ")
    else:
        with pytest.raises(TransitionError, match="cannot move|already failed"):
            check_transition(current, target, "a reason does not make it allowed")


def test_the_table_has_no_move_the_expectation_lacks() -> None:
    listed = {(f, t) for f, targets in EXPECTED.items() for t in targets if t != "failed"}
    assert ALLOWED == listed - {("failed", "failed")}
    assert set(EXPECTED) == set(LIFECYCLE_STATES)


@pytest.mark.parametrize("bad", ["", "migrated", "LEGACY", "frozen "])
def test_unknown_states_are_refused_by_name(bad: str) -> None:
    with pytest.raises(TransitionError, match="unknown lifecycle state"):
        check_transition("legacy", bad, "x")
    with pytest.raises(TransitionError, match="unknown lifecycle state"):
        check_transition(bad, "legacy", "x")


def test_refusal_lists_where_the_user_can_go() -> None:
    with pytest.raises(TransitionError) as caught:
        check_transition("legacy", "new")
    assert "copying, failed" in str(caught.value)


@pytest.mark.parametrize(("state", "routing", "frozen"), [
    ("legacy", "legacy", False), ("copying", "copying", False),
    ("catching_up", "copying", False), ("frozen", "frozen", True),
    ("verifying", "cutover", True), ("new", "new", False), ("reversing", "cutover", True),
    ("failed", None, False),
])
def test_each_state_routes_as_the_proxy_understands_it(state: str, routing: str | None,
                                                       frozen: bool) -> None:
    assert ROUTING_STATE[state] == routing  # type: ignore[index]
    assert routing is None or routing in STATES
    assert (state in FROZEN) == frozen
    assert routing is None or (routing in FROZEN_STATES) == frozen


@pytest.mark.parametrize(("stack", "state"), [(None, "legacy"), ("legacy", "legacy"),
                                              ("new", "new")])
def test_a_user_without_a_record_is_where_the_routing_puts_them(stack: str | None,
                                                                state: str) -> None:
    assert initial_state(stack) == state


# ---------------------------------------------------------------------------------------------
# recorded in the bridge store

@pytest.fixture
def store(tmp_path: Path) -> Iterator[BridgeStore]:
    opened = BridgeStore.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    yield opened
    opened.close()


def test_a_cutover_path_routes_and_audits_each_step(store: BridgeStore) -> None:
    steps = [("copying", "copying", "legacy"), ("catching_up", "copying", "legacy"),
             ("frozen", "frozen", "legacy"), ("verifying", "cutover", "legacy"),
             ("new", "new", "new")]
    epochs = []
    for state, routing, stack in steps:
        moved = store.transition("alice", state, actor="test", reason=f"to {state}")
        route = store.route("alice")
        assert route is not None and (route.state, route.stack) == (routing, stack)
        assert store.lifecycle("alice") == state
        epochs.append(moved.epoch)
    # catching_up routes like copying: no routing change, no epoch bump
    assert epochs[1] is None
    assert [e for e in epochs if e is not None] == sorted(e for e in epochs if e is not None)
    trail = store.audit("alice")
    assert [(t.from_state, t.to_state) for t in reversed(trail)] == [
        ("legacy", "copying"), ("copying", "catching_up"), ("catching_up", "frozen"),
        ("frozen", "verifying"), ("verifying", "new")]
    assert {t.actor for t in trail} == {"test"}
    assert trail[0].reason == "to new" and trail[0].at >= trail[-1].at


def test_a_refused_move_changes_nothing(store: BridgeStore) -> None:
    epoch = store.epoch()
    with pytest.raises(TransitionError):
        store.transition("bob", "new", actor="test")
    assert store.route("bob") is None and store.audit("bob") == []
    assert store.epoch() == epoch and store.lifecycle("bob") == "legacy"


def test_failure_keeps_the_routing_until_the_user_is_returned(store: BridgeStore) -> None:
    for state in ("copying", "catching_up", "frozen"):
        store.transition("carol", state, actor="test")
    store.transition("carol", "failed", actor="test", reason="gate: 3 differences")
    route = store.route("carol")
    assert route is not None and route.frozen and route.stack == "legacy"
    store.transition("carol", "legacy", actor="test", reason="returned")
    route = store.route("carol")
    assert route is not None and (route.state, route.stack) == ("legacy", "legacy")
    failures = store.audit(to_state="failed")
    assert [(f.uid, f.from_state, f.reason) for f in failures] == [
        ("carol", "frozen", "gate: 3 differences")]


def test_a_hand_set_route_to_new_counts_as_new(store: BridgeStore) -> None:
    store.set_state("dave", "new")
    assert store.lifecycle("dave") == "new"
    store.transition("dave", "frozen", actor="rollback")
    route = store.route("dave")
    assert route is not None and route.frozen and route.stack == "new"


def test_two_jobs_moving_one_user_at_once_cannot_both_win(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    setup = BridgeStore.open(url)
    setup.transition("erin", "copying", actor="setup")
    setup.close()
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def job() -> None:
        store = BridgeStore.open(url)
        barrier.wait()
        try:
            store.transition("erin", "catching_up", actor=threading.current_thread().name)
            outcomes.append("moved")
        except (TransitionError, StoreError) as exc:
            outcomes.append(type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - SQLite's "database is locked" counts as lost
            outcomes.append(type(exc).__name__)
        finally:
            store.close()

    threads = [threading.Thread(target=job) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("moved") == 1, outcomes
    store = BridgeStore.open(url)
    try:
        assert [t.to_state for t in store.audit("erin")].count("catching_up") == 1
    finally:
        store.close()


@pytest.mark.parametrize("uid", ["", "x" * 65])
def test_user_ids_are_checked(store: BridgeStore, uid: str) -> None:
    with pytest.raises(StoreError, match="not a user id"):
        store.transition(uid, "copying", actor="test")
