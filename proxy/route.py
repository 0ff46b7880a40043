"""Which stack serves this request? Pure: (Identity, RoutingView) → Decision.

The view is this process's copy of the bridge store's routing table at one epoch
(proxy/view.py keeps it fresh); users without a row and anonymous requests go to the default
stack.

One exception to "the request's user decides": an avatar read (Identity.avatar_owner) goes to
the new stack only if both its requester and the avatar's owner are routed there; otherwise
to ownCloud 10, which can check every login and holds every current avatar (the new stack
takes no avatar uploads, so a legacy owner's avatar there may be stale or missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from bridge.store import FROZEN_STATES, Stack, State
from proxy.identify import Identity


@dataclass(frozen=True)
class UserRouting:
    state: State
    stack: Stack
    #: the epoch at which this user's row last changed
    epoch: int


@dataclass(frozen=True)
class RoutingView:
    epoch: int
    users: Mapping[str, UserRouting] = field(default_factory=dict)
    default_stack: Stack = "legacy"


EMPTY_VIEW: Final = RoutingView(epoch=0)


@dataclass(frozen=True)
class Decision:
    stack: Stack
    #: default (no user), unlisted (user without a routing row), the user's state, or
    #: avatar (an avatar read sent to legacy whatever the user's stack) (bounded: used as a
    #: metric label)
    reason: str
    frozen: bool
    uid: str | None
    #: the view's epoch the decision was made at
    epoch: int


def route(identity: Identity, view: RoutingView) -> Decision:
    decision = _route_user(identity, view)
    owner = identity.avatar_owner
    if owner is None or decision.stack == "legacy" or stack_of(owner, view) == "new":
        return decision
    return Decision("legacy", "avatar", decision.frozen, decision.uid, decision.epoch)


def stack_of(uid: str, view: RoutingView) -> Stack:
    """The stack a user's own requests go to."""
    row = view.users.get(uid)
    return view.default_stack if row is None else row.stack


def _route_user(identity: Identity, view: RoutingView) -> Decision:
    if identity.uid is None:
        return Decision(view.default_stack, "default", False, None, view.epoch)
    row = view.users.get(identity.uid)
    if row is None:
        return Decision(view.default_stack, "unlisted", False, identity.uid, view.epoch)
    return Decision(row.stack, row.state, row.state in FROZEN_STATES, identity.uid, view.epoch)
