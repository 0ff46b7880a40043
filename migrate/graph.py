"""The share graph: which users shares link, its connected components, and the cohorts proposed
from them (users linked by shares move together). Pure decisions; migrate/plan.py reads the rows.

An edge joins the owner of a shared file (and the initiator of a reshare) with each local
recipient: the user of a user share, every member of a group share's group (the owner aside).
Links and federated shares join nobody on this instance; they are kept as `outside` shares.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

# oc_share.share_type (REFERENCE.md §5.1)
SHARE_USER: Final = 0
SHARE_GROUP: Final = 1
SHARE_USERGROUP: Final = 2
SHARE_LINK: Final = 3
SHARE_GUEST: Final = 4
SHARE_CONTACT: Final = 5
SHARE_REMOTE: Final = 6
SHARE_REMOTE_GROUP: Final = 7

SHARE_TYPE_NAMES: Final[Mapping[int, str]] = {
    SHARE_USER: "user",
    SHARE_GROUP: "group",
    SHARE_USERGROUP: "group-member",
    SHARE_LINK: "link",
    SHARE_GUEST: "guest",
    SHARE_CONTACT: "contact",
    SHARE_REMOTE: "federated",
    SHARE_REMOTE_GROUP: "federated-group",
}

#: oc_share.accepted
ACCEPTED: Final = 0
PENDING: Final = 1
DECLINED: Final = 2

UnresolvedReason = Literal["owner-missing", "recipient-missing", "group-missing"]


def share_type_name(share_type: int) -> str:
    return SHARE_TYPE_NAMES.get(share_type, f"type-{share_type}")


@dataclass(frozen=True, slots=True)
class ShareRow:
    """The oc_share columns the graph needs."""

    id: int
    share_type: int
    owner: str
    initiator: str | None
    share_with: str | None
    parent: int | None = None
    accepted: int = ACCEPTED


@dataclass(frozen=True, slots=True)
class ShareEdge:
    """`source` (the owner, or the initiator of a reshare) reaches `recipient` through a share."""

    share_id: int
    source: str
    recipient: str
    role: Literal["owner", "initiator"]
    #: the group a group share reaches the recipient through
    via_group: str | None
    #: the recipient's own state: 0 accepted, 1 pending, 2 declined
    accepted: int
    #: 1 / number of recipients of the share: a group share to 500 people weighs as one share
    weight: float


@dataclass(frozen=True, slots=True)
class UnresolvedShare:
    """A user or group share that reaches nobody here: its owner, user or group is unknown."""

    share_id: int
    share_type: int
    owner: str
    share_with: str
    reason: UnresolvedReason


@dataclass(frozen=True)
class ShareGraph:
    users: tuple[str, ...]
    edges: tuple[ShareEdge, ...]
    unresolved: tuple[UnresolvedShare, ...]
    #: links, federated and other shares: recorded on their owner, no edge
    outside: tuple[ShareRow, ...]

    def pair_weights(self) -> dict[tuple[str, str], PairLink]:
        """Every linked pair (a < b) with its total weight and the shares that link it."""
        pairs: dict[tuple[str, str], PairLink] = {}
        for edge in self.edges:
            a, b = sorted((edge.source, edge.recipient))
            link = pairs.get((a, b))
            if link is None:
                link = pairs[(a, b)] = PairLink(a, b)
            link.weight += edge.weight
            if not link.share_ids or link.share_ids[-1] != edge.share_id:
                link.share_ids.append(edge.share_id)
        for link in pairs.values():
            link.share_ids = sorted(set(link.share_ids))
        return pairs


@dataclass
class PairLink:
    a: str
    b: str
    weight: float = 0.0
    share_ids: list[int] = field(default_factory=list)


def build_graph(
    shares: Iterable[ShareRow],
    users: Collection[str],
    groups: Mapping[str, Collection[str]],
) -> ShareGraph:
    """The share graph over `users` (every user, linked or not) from oc_share rows.

    `groups` maps every existing gid to its members. Type-2 rows only give a group member their
    own state; they reach nobody by themselves.
    """
    known = set(users)
    group_shares: list[ShareRow] = []
    member_state: dict[tuple[int, str], int] = {}
    edges: list[ShareEdge] = []
    unresolved: list[UnresolvedShare] = []
    outside: list[ShareRow] = []

    def add(share: ShareRow, recipients: list[tuple[str, int, str | None]]) -> None:
        recipients = [r for r in recipients if r[0] != share.owner]
        if not recipients:
            return
        weight = 1.0 / len(recipients)
        initiator = share.initiator
        for recipient, accepted, gid in recipients:
            edges.append(ShareEdge(share.id, share.owner, recipient, "owner", gid, accepted,
                                   weight))
            if (initiator and initiator != share.owner and initiator != recipient
                    and initiator in known):
                edges.append(ShareEdge(share.id, initiator, recipient, "initiator", gid,
                                       accepted, weight))

    for share in shares:
        if share.share_type == SHARE_USERGROUP:
            if share.parent is not None and share.share_with:
                member_state[(share.parent, share.share_with)] = share.accepted
            continue
        if share.share_type not in (SHARE_USER, SHARE_GROUP):
            outside.append(share)
            continue
        target = share.share_with or ""
        if share.owner not in known:
            unresolved.append(UnresolvedShare(share.id, share.share_type, share.owner, target,
                                              "owner-missing"))
        elif share.share_type == SHARE_GROUP:
            if target not in groups:
                unresolved.append(UnresolvedShare(share.id, share.share_type, share.owner,
                                                  target, "group-missing"))
            else:
                group_shares.append(share)
        elif target not in known:
            unresolved.append(UnresolvedShare(share.id, share.share_type, share.owner, target,
                                              "recipient-missing"))
        else:
            add(share, [(target, share.accepted, None)])

    for share in group_shares:
        gid = share.share_with or ""
        members = sorted(m for m in set(groups[gid]) if m in known)
        add(share, [(m, member_state.get((share.id, m), share.accepted), gid) for m in members])

    edges.sort(key=lambda e: (e.share_id, e.role != "owner", e.source, e.recipient))
    unresolved.sort(key=lambda u: u.share_id)
    outside.sort(key=lambda s: s.id)
    return ShareGraph(tuple(sorted(known)), tuple(edges), tuple(unresolved), tuple(outside))


# ---------------------------------------------------------------------------------------------
# components and cohorts


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller name becomes the root: the same input always gives the same trees
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def components(graph: ShareGraph) -> list[tuple[str, ...]]:
    """Connected components, each sorted; the largest first, then by their first uid."""
    uf = _UnionFind(graph.users)
    for edge in graph.edges:
        uf.union(edge.source, edge.recipient)
    groups: dict[str, list[str]] = defaultdict(list)
    for user in graph.users:
        groups[uf.find(user)].append(user)
    found = [tuple(sorted(members)) for members in groups.values()]
    found.sort(key=lambda c: (-len(c), c[0]))
    return found


@dataclass(frozen=True)
class Cohort:
    """Users migrated together. `component` is the 1-based index of the component they are in;
    `split` says that component was larger than the maximum cohort size."""

    index: int
    members: tuple[str, ...]
    component: int
    split: bool
    #: total share weight between members
    internal_weight: float


@dataclass(frozen=True)
class CrossingLink:
    """Two linked users in different cohorts: their shares span a cutover."""

    a: str
    b: str
    cohort_a: int
    cohort_b: int
    weight: float
    share_ids: tuple[int, ...]


@dataclass(frozen=True)
class CohortPlan:
    components: tuple[tuple[str, ...], ...]
    cohorts: tuple[Cohort, ...]
    crossing: tuple[CrossingLink, ...]
    max_size: int | None

    def cohort_of(self) -> dict[str, int]:
        return {uid: c.index for c in self.cohorts for uid in c.members}

    def component_sizes(self) -> dict[int, int]:
        """size -> number of components of that size, largest size first."""
        sizes: dict[int, int] = defaultdict(int)
        for component in self.components:
            sizes[len(component)] += 1
        return dict(sorted(sizes.items(), reverse=True))


def propose_cohorts(graph: ShareGraph, max_size: int | None = None) -> CohortPlan:
    """Components as cohorts; a component over `max_size` users is split greedily by share
    weight (strongest ties stay together) and the links cut by the split are reported."""
    if max_size is not None and max_size < 1:
        raise ValueError("the maximum cohort size must be at least 1")
    comps = components(graph)
    pairs = graph.pair_weights()
    adjacency: dict[str, dict[str, float]] = defaultdict(dict)
    for (a, b), link in sorted(pairs.items()):
        adjacency[a][b] = link.weight
        adjacency[b][a] = link.weight

    drafts: list[tuple[int, tuple[str, ...], bool]] = []
    for number, component in enumerate(comps, start=1):
        if max_size is None or len(component) <= max_size:
            drafts.append((number, component, False))
            continue
        for part in _split(component, adjacency, max_size):
            drafts.append((number, part, True))
    drafts.sort(key=lambda d: (d[0], -len(d[1]), d[1][0]))

    index_of: dict[str, int] = {}
    cohorts: list[Cohort] = []
    for index, (number, members, split) in enumerate(drafts, start=1):
        for uid in members:
            index_of[uid] = index
        inside = set(members)
        internal = sum((pairs[(a, b)].weight for a in members for b in adjacency.get(a, {})
                        if a < b and b in inside), 0.0)
        cohorts.append(Cohort(index, members, number, split, round(internal, 6)))

    crossing = [
        CrossingLink(link.a, link.b, index_of[link.a], index_of[link.b], round(link.weight, 6),
                     tuple(link.share_ids))
        for link in pairs.values() if index_of[link.a] != index_of[link.b]
    ]
    crossing.sort(key=lambda c: (-c.weight, c.a, c.b))
    return CohortPlan(tuple(comps), tuple(cohorts), tuple(crossing), max_size)


def _split(component: tuple[str, ...], adjacency: Mapping[str, Mapping[str, float]],
           max_size: int) -> list[tuple[str, ...]]:
    """Greedy growth: seed with the most strongly linked user left, add the user most strongly
    linked to the cohort until it is full or nobody left is linked to it; then merge parts of
    the same component while they fit, strongest link first."""
    members = set(component)
    strength = {u: sum(w for v, w in adjacency.get(u, {}).items() if v in members)
                for u in component}
    remaining = set(component)
    parts: list[list[str]] = []
    while remaining:
        seed = min(remaining, key=lambda u: (-strength[u], u))
        part = [seed]
        remaining.discard(seed)
        gain: dict[str, float] = {}
        _grow(gain, seed, adjacency, remaining)
        while len(part) < max_size and gain:
            best = min(gain, key=lambda u: (-gain[u], -strength[u], u))
            del gain[best]
            remaining.discard(best)
            part.append(best)
            _grow(gain, best, adjacency, remaining)
        parts.append(part)
    return [tuple(sorted(p)) for p in _merge_parts(parts, adjacency, max_size)]


def _grow(gain: dict[str, float], user: str, adjacency: Mapping[str, Mapping[str, float]],
          remaining: set[str]) -> None:
    for v, w in adjacency.get(user, {}).items():
        if v in remaining:
            gain[v] = gain.get(v, 0.0) + w


def _merge_parts(parts: list[list[str]], adjacency: Mapping[str, Mapping[str, float]],
                 max_size: int) -> list[list[str]]:
    while True:
        owner = {u: i for i, part in enumerate(parts) for u in part}
        between: dict[tuple[int, int], float] = defaultdict(float)
        for i, part in enumerate(parts):
            for u in part:
                for v, w in adjacency.get(u, {}).items():
                    j = owner.get(v)
                    if j is not None and i < j:
                        between[(i, j)] += w
        fitting = [(w, key) for key, w in between.items()
                   if len(parts[key[0]]) + len(parts[key[1]]) <= max_size]
        if not fitting:
            return parts
        _, (i, j) = min(fitting, key=lambda item: (-item[0], item[1]))
        parts[i] = parts[i] + parts[j]
        del parts[j]
