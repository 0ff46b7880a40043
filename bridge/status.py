"""`ocbridge status`: users per lifecycle state, current freezes and the last failures, read from
the bridge store (bridge/store.py) and shown as a rich table or JSON."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from bridge import metrics
from bridge.lifecycle import FROZEN, LIFECYCLE_STATES, initial_state
from bridge.store import BridgeStore


@dataclass
class Status:
    epoch: int
    #: every lifecycle state with its number of users (users with a record or a routing row)
    per_state: dict[str, int]
    #: (uid, lifecycle state, stack, since) of users whose writes are refused now
    freezes: list[dict[str, Any]] = field(default_factory=list)
    #: the newest failures, newest first
    errors: list[dict[str, Any]] = field(default_factory=list)
    proxies_live: int = 0
    proxies_behind: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "users_per_state": self.per_state,
                "freezes": self.freezes, "last_errors": self.errors,
                "proxies": {"live": self.proxies_live, "behind": self.proxies_behind}}

    def __rich__(self) -> RenderableType:
        states = Table("state", "users", title="users per state", title_justify="left")
        for state, count in self.per_state.items():
            states.add_row(state, str(count))
        parts: list[RenderableType] = [states]
        if self.freezes:
            freezes = Table("user", "state", "stack", "frozen for", title="current freezes",
                            title_justify="left")
            for f in self.freezes:
                freezes.add_row(f["uid"], f["state"], f["stack"], f"{f['seconds']:.1f} s")
            parts.append(freezes)
        if self.errors:
            errors = Table("when (UTC)", "user", "in", "reason", title="last errors",
                           title_justify="left")
            for e in self.errors:
                errors.add_row(e["at_utc"], e["uid"], e["from_state"], e["reason"])
            parts.append(errors)
        parts.append(f"routing epoch {self.epoch}; {self.proxies_live} live prox"
                     f"{'y' if self.proxies_live == 1 else 'ies'}, {self.proxies_behind} behind")
        return Group(*parts)


def collect_status(store: BridgeStore, *, errors: int = 10,
                   clock: Any = time.time) -> Status:
    """The state of every user the bridge knows; users with neither a lifecycle record nor a
    routing row are on the default stack and not counted."""
    epoch, routes = store.routes()
    stacks = {r.uid: r.stack for r in routes}
    records = {uid: (state, since) for uid, state, _reason, since in store.lifecycles()}
    counts: Counter[str] = Counter()
    for uid in stacks.keys() | records.keys():
        counts[records[uid][0] if uid in records else initial_state(stacks[uid])] += 1
    now = clock()
    freezes = [{"uid": uid, "state": state, "stack": stacks.get(uid, "legacy"),
                "since": since, "seconds": round(now - since, 3)}
               for uid, (state, since) in sorted(records.items()) if state in FROZEN]
    for route in routes:  # a freeze set by hand (`ocbridge route set U frozen`)
        if route.frozen and route.uid not in records:
            freezes.append({"uid": route.uid, "state": route.state, "stack": route.stack,
                            "since": route.updated_at,
                            "seconds": round(now - route.updated_at, 3)})
    failures = [{"uid": t.uid, "at": t.at,
                 "at_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.at)),
                 "from_state": t.from_state, "reason": t.reason, "actor": t.actor}
                for t in store.audit(to_state="failed", limit=errors)]
    acks = store.ack_status(epoch)
    for state in LIFECYCLE_STATES:
        metrics.LIFECYCLE_USERS.labels(state).set(counts.get(state, 0))
    return Status(epoch=epoch, per_state={s: counts.get(s, 0) for s in LIFECYCLE_STATES},
                  freezes=freezes, errors=failures, proxies_live=len(acks.acked + acks.waiting),
                  proxies_behind=len(acks.waiting))
