"""Each user's migration lifecycle as a pure table of allowed transitions, and the routing state
each lifecycle state implies. The bridge store records the transitions (bridge/store.py); the
cutover and rollback jobs drive them (bridge/cutover.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from bridge.errors import OcbridgeError

Lifecycle = Literal["legacy", "copying", "catching_up", "frozen", "verifying", "new",
                    "reversing", "failed"]
LIFECYCLE_STATES: Final[tuple[Lifecycle, ...]] = get_args(Lifecycle)

#: every allowed move but those into `failed`, which any state other than `failed` may take
ALLOWED: Final[frozenset[tuple[Lifecycle, Lifecycle]]] = frozenset({
    ("legacy", "copying"),         # cutover starts: bulk copy while the user works
    ("copying", "catching_up"),    # bulk done: catch-up deltas
    ("catching_up", "frozen"),     # the change left is small: freeze writes
    ("frozen", "verifying"),       # final delta done under the freeze: the gate
    ("verifying", "new"),          # gate passed: the atomic flip (also the unfreeze)
    ("new", "frozen"),             # rollback starts: freeze writes on the new stack
    ("frozen", "reversing"),       # reverse delta: new-stack changes back to ownCloud 10
    ("reversing", "legacy"),       # flip back
    ("failed", "legacy"),          # a failure before the flip: returned to ownCloud untouched
    ("failed", "new"),             # a failed rollback: the user stays on the new stack
})

#: lifecycle state → the routing state the proxies act on (bridge/store.py STATES);
#: None: a failure leaves the routing as it was until the job decides where the user goes
ROUTING_STATE: Final[dict[Lifecycle, str | None]] = {
    "legacy": "legacy", "copying": "copying", "catching_up": "copying", "frozen": "frozen",
    "verifying": "cutover", "new": "new", "reversing": "cutover", "failed": None,
}

#: states in which the user's writes are refused
FROZEN: Final = frozenset({"frozen", "verifying", "reversing"})
#: states a job is moving the user through; seen at rest, an earlier job was interrupted
IN_PROGRESS: Final = frozenset({"copying", "catching_up", "frozen", "verifying", "reversing"})


class TransitionError(OcbridgeError):
    """A lifecycle move the table does not allow, or one missing its reason."""


@dataclass(frozen=True)
class Transition:
    """One recorded move: the audit trail is a list of these."""

    uid: str
    at: float
    actor: str
    from_state: Lifecycle
    to_state: Lifecycle
    reason: str
    #: the routing epoch the move produced, or None when the routing did not change
    epoch: int | None = None


def check_transition(current: str, target: str, reason: str = "") -> None:
    """Raise TransitionError unless `current` → `target` is allowed; a move into or out of
    `failed` must say why."""
    for state in (current, target):
        if state not in LIFECYCLE_STATES:
            raise TransitionError(f"unknown lifecycle state {state!r}; states are "
                                  f"{', '.join(LIFECYCLE_STATES)}")
    if target == "failed":
        if current == "failed":
            raise TransitionError("the user has already failed; return them to legacy or new")
    elif (current, target) not in ALLOWED:
        nexts = sorted(t for f, t in ALLOWED if f == current)
        if current != "failed":
            nexts.append("failed")
        raise TransitionError(f"a user in state {current!r} cannot move to {target!r} "
                              f"(from {current!r}: {', '.join(nexts)})")
    if "failed" in (current, target) and not reason.strip():
        raise TransitionError(f"moving {current!r} → {target!r} needs a reason")


def initial_state(route_stack: str | None) -> Lifecycle:
    """The lifecycle state of a user with no lifecycle record: the stack the routing puts them
    on (a route set by hand with `ocbridge route set` counts)."""
    return "new" if route_stack == "new" else "legacy"


def routing_for(state: Lifecycle) -> str | None:
    return ROUTING_STATE[state]
