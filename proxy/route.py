"""Which stack serves this request? Pure: (Identity, RoutingView) → Decision.

The view is this process's copy of the bridge store's routing table at one epoch
(proxy/view.py keeps it fresh); users without a row and anonymous requests go to the default
stack.
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
    #: default (no user), unlisted (user without a routing row), or the user's state
    #: (bounded: used as a metric label)
    reason: str
    frozen: bool
    uid: str | None
    #: the view's epoch the decision was made at
    epoch: int


def route(identity: Identity, view: RoutingView) -> Decision:
    if identity.uid is None:
        return Decision(view.default_stack, "default", False, None, view.epoch)
    row = view.users.get(identity.uid)
    if row is None:
        return Decision(view.default_stack, "unlisted", False, identity.uid, view.epoch)
    return Decision(row.stack, row.state, row.state in FROZEN_STATES, identity.uid, view.epoch)
