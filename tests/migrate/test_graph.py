"""migrate/graph.py without a database: edges, components and cohorts as tables, and seeded
random graphs checked against a breadth-first search written here."""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Iterable
from itertools import pairwise

import pytest

from migrate.graph import (
    ShareGraph,
    ShareRow,
    build_graph,
    components,
    propose_cohorts,
)

USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
GROUPS = {"staff": ["alice", "bob", "carol"], "empty": [], "solo": ["dave"]}


def share(sid: int, stype: int, owner: str, with_: str | None, *, initiator: str | None = None,
          parent: int | None = None, accepted: int = 0) -> ShareRow:
    return ShareRow(sid, stype, owner, initiator or owner, with_, parent, accepted)


def pairs_of(graph: ShareGraph) -> set[tuple[str, str]]:
    return {(e.source, e.recipient) for e in graph.edges}


# ---------------------------------------------------------------------------------------------
# edges


def test_user_share_is_one_edge_of_full_weight() -> None:
    graph = build_graph([share(1, 0, "alice", "bob")], USERS, GROUPS)
    [edge] = graph.edges
    assert (edge.source, edge.recipient, edge.role, edge.via_group, edge.weight) == (
        "alice", "bob", "owner", None, 1.0)
    assert graph.users == tuple(sorted(USERS))


def test_group_share_reaches_every_member_but_the_owner() -> None:
    graph = build_graph([share(1, 1, "alice", "staff")], USERS, GROUPS)
    assert pairs_of(graph) == {("alice", "bob"), ("alice", "carol")}
    assert {e.via_group for e in graph.edges} == {"staff"}
    assert [e.weight for e in graph.edges] == [0.5, 0.5]


def test_member_rows_give_members_their_own_state() -> None:
    rows = [share(1, 1, "alice", "staff", accepted=0),
            share(2, 2, "alice", "carol", parent=1, accepted=2),
            share(3, 2, "alice", "frank", parent=1, accepted=1)]  # frank left the group
    graph = build_graph(rows, USERS, GROUPS)
    state = {e.recipient: e.accepted for e in graph.edges}
    assert state == {"bob": 0, "carol": 2}


def test_reshare_links_the_initiator_too() -> None:
    graph = build_graph([share(1, 0, "alice", "carol", initiator="bob")], USERS, GROUPS)
    assert pairs_of(graph) == {("alice", "carol"), ("bob", "carol")}
    assert {e.role for e in graph.edges} == {"owner", "initiator"}


@pytest.mark.parametrize("stype", [3, 4, 5, 6, 7])
def test_links_and_federated_shares_link_nobody(stype: int) -> None:
    graph = build_graph([share(1, stype, "alice", "x@https://other.example")], USERS, GROUPS)
    assert graph.edges == ()
    assert [s.id for s in graph.outside] == [1]


@pytest.mark.parametrize("row, reason", [
    (share(1, 0, "alice", "ghost"), "recipient-missing"),
    (share(1, 0, "alice", None), "recipient-missing"),
    (share(1, 1, "alice", "no-such-group"), "group-missing"),
    (share(1, 0, "gone", "bob"), "owner-missing"),
    (share(1, 1, "gone", "staff"), "owner-missing"),
])
def test_shares_that_reach_nobody_are_unresolved(row: ShareRow, reason: str) -> None:
    graph = build_graph([row], USERS, GROUPS)
    assert graph.edges == ()
    assert [(u.share_id, u.reason) for u in graph.unresolved] == [(1, reason)]


def test_empty_groups_and_self_shares_make_no_edge_and_no_complaint() -> None:
    rows = [share(1, 1, "alice", "empty"), share(2, 1, "dave", "solo"),
            share(3, 0, "bob", "bob")]
    graph = build_graph(rows, USERS, GROUPS)
    assert graph.edges == () and graph.unresolved == ()


def test_pair_weights_add_up_both_directions() -> None:
    rows = [share(1, 0, "alice", "bob"), share(2, 0, "bob", "alice"), share(3, 1, "alice", "staff")]
    pairs = build_graph(rows, USERS, GROUPS).pair_weights()
    assert pairs[("alice", "bob")].weight == 2.5
    assert pairs[("alice", "bob")].share_ids == [1, 2, 3]
    assert pairs[("alice", "carol")].weight == 0.5


# ---------------------------------------------------------------------------------------------
# components and cohorts


def test_components_largest_first_then_by_name() -> None:
    rows = [share(1, 0, "erin", "frank"), share(2, 1, "alice", "staff")]
    comps = components(build_graph(rows, USERS, GROUPS))
    assert comps == [("alice", "bob", "carol"), ("erin", "frank"), ("dave",)]


def test_without_a_maximum_cohorts_are_the_components() -> None:
    rows = [share(1, 0, "erin", "frank"), share(2, 1, "alice", "staff")]
    plan = propose_cohorts(build_graph(rows, USERS, GROUPS))
    assert [c.members for c in plan.cohorts] == [("alice", "bob", "carol"), ("erin", "frank"),
                                                ("dave",)]
    assert [c.index for c in plan.cohorts] == [1, 2, 3]
    assert not any(c.split for c in plan.cohorts)
    assert plan.crossing == ()
    assert plan.component_sizes() == {3: 1, 2: 1, 1: 1}
    assert plan.cohort_of()["frank"] == 2


def test_a_split_keeps_strong_ties_and_cuts_the_weak_one() -> None:
    # two triangles with two shares per pair, joined by one share: max 3 cuts only that one
    users = ["a1", "a2", "a3", "b1", "b2", "b3"]
    rows: list[ShareRow] = []
    sid = 0
    for side in "ab":
        for x, y in (("1", "2"), ("2", "3"), ("1", "3")):
            for _ in range(2):
                sid += 1
                rows.append(share(sid, 0, side + x, side + y))
    rows.append(share(99, 0, "a3", "b1"))
    plan = propose_cohorts(build_graph(rows, users, {}), max_size=3)
    assert sorted(c.members for c in plan.cohorts) == [("a1", "a2", "a3"), ("b1", "b2", "b3")]
    assert all(c.split and c.component == 1 for c in plan.cohorts)
    [cut] = plan.crossing
    assert (cut.a, cut.b, cut.share_ids, cut.weight) == ("a3", "b1", (99,), 1.0)


def test_a_split_merges_leftovers_that_fit() -> None:
    # a chain a-b-c-d-e with max 4: one part of 4 and the last user, one link cut
    users = list("abcde")
    rows = [share(i, 0, x, y) for i, (x, y) in enumerate(pairwise(users), start=1)]
    plan = propose_cohorts(build_graph(rows, users, {}), max_size=4)
    assert sorted(len(c.members) for c in plan.cohorts) == [1, 4]
    assert len(plan.crossing) == 1


def test_maximum_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        propose_cohorts(build_graph([], USERS, {}), max_size=0)


# ---------------------------------------------------------------------------------------------
# random graphs against an independent search


def bfs_components(users: Iterable[str], links: set[tuple[str, str]]) -> set[frozenset[str]]:
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in links:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in users:
        if start in seen:
            continue
        todo, comp = deque([start]), {start}
        while todo:
            for n in neighbours[todo.popleft()]:
                if n not in comp:
                    comp.add(n)
                    todo.append(n)
        seen |= comp
        found.add(frozenset(comp))
    return found


def random_instance(seed: int) -> tuple[list[str], dict[str, list[str]], list[ShareRow]]:
    rng = random.Random(seed)
    users = [f"u{i:03d}" for i in range(rng.randint(5, 60))]
    groups = {f"g{i}": rng.sample(users, rng.randint(0, 6)) for i in range(4)}
    rows: list[ShareRow] = []
    for sid in range(1, rng.randint(0, 80)):
        kind = rng.random()
        owner = rng.choice(users + ["ghost"])
        if kind < 0.6:
            rows.append(share(sid, 0, owner, rng.choice(users + ["nobody"]),
                              initiator=rng.choice([owner, *users[:3]])))
        elif kind < 0.8:
            rows.append(share(sid, 1, owner, rng.choice([*groups, "lost"])))
        else:
            rows.append(share(sid, rng.choice([3, 6]), owner, None))
    return users, groups, rows


def expected_links(users: list[str], groups: dict[str, list[str]],
                   rows: list[ShareRow]) -> set[tuple[str, str]]:
    """Who a share links, straight from REFERENCE.md §5: recipients of user shares, members
    of group shares, with the owner and the initiator."""
    known = set(users)
    links: set[tuple[str, str]] = set()
    for row in rows:
        if row.owner not in known or row.share_type not in (0, 1):
            continue
        target = row.share_with or ""
        recipients = {target} if row.share_type == 0 else set(groups.get(target, []))
        for r in (recipients & known) - {row.owner}:
            links.add((min(row.owner, r), max(row.owner, r)))
            initiator = row.initiator or ""
            if initiator in known and initiator not in (row.owner, r):
                links.add((min(initiator, r), max(initiator, r)))
    return links


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs(seed: int) -> None:
    users, groups, rows = random_instance(seed)
    links = expected_links(users, groups, rows)
    graph = build_graph(rows, users, groups)
    assert set(graph.pair_weights()) == links
    comps = components(graph)
    assert {frozenset(c) for c in comps} == bfs_components(users, links)

    max_size = random.Random(seed).randint(1, 8)
    plan = propose_cohorts(graph, max_size=max_size)
    members = [u for c in plan.cohorts for u in c.members]
    assert sorted(members) == sorted(users), "every user in exactly one cohort"
    assert all(len(c.members) <= max_size for c in plan.cohorts)
    cohort_of = plan.cohort_of()
    for c in plan.cohorts:  # a cohort never mixes components
        assert set(c.members) <= set(comps[c.component - 1])
        assert c.split == (len(comps[c.component - 1]) > max_size)
    cut = {(x.a, x.b) for x in plan.crossing}
    assert cut == {(a, b) for a, b in links if cohort_of[a] != cohort_of[b]}

    # the same input in another order gives the same plan
    shuffled = rows[:]
    random.Random(seed + 1000).shuffle(shuffled)
    again = propose_cohorts(build_graph(shuffled, list(reversed(users)), groups), max_size)
    assert again == plan
