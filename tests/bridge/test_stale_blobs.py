"""The blobs the final delta of a cutover stops using: kept while the user is frozen (only
listed, in the transaction that stops using them), deleted right after the flip, and deleted by
the next `cutover` of the user when a job was killed between the two."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from bridge.cutover import Cutover
from migrate.delta import STALE_PHASE
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import open_newstack
from tests.bridge.test_cutover import UID, World, world  # noqa: F401 - the fixture

CHANGED = b"changed on ownCloud just before the freeze\n"


class _Watch:
    """Replaces a file on ownCloud after the catch-up passes, so that the final delta (under
    the freeze) stops using the blob the new stack held for it; then looks at that blob."""

    def __init__(self, on: World) -> None:
        self.world = on
        self.path = ""
        self.old_blob = ""
        #: (blob still stored, blob listed as stale) at each state entered after the freeze
        self.seen: dict[str, tuple[bool, bool]] = {}

    def before_freeze(self, uid: str) -> None:
        stack = open_newstack(self.world.settings)
        try:
            n = schema.nodes
            with stack.store.read() as conn:
                self.path, self.old_blob = conn.execute(
                    sa.select(n.c.path, n.c.blob_id).where(
                        n.c.owner == uid, n.c.area == "files", n.c.is_dir.is_(False),
                        n.c.size > 0).order_by(n.c.fileid).limit(1)).one()
        finally:
            stack.close()
        legacy = Oc10Backend(open_instance(Path(self.world.manifest.config_php)))
        try:
            legacy.write(uid, self.path, io.BytesIO(CHANGED), length=len(CHANGED))
        finally:
            legacy.close()

    def blob_state(self) -> tuple[bool, bool]:
        stack = open_newstack(self.world.settings)
        try:
            cp = schema.migration_checkpoints
            with stack.store.read() as conn:
                listed = conn.execute(sa.select(cp.c.detail).where(
                    cp.c.uid == UID, cp.c.phase == STALE_PHASE)).scalar() or ""
            return stack.driver.exists(self.old_blob), self.old_blob in listed.split("\n")
        finally:
            stack.close()

    def on_phase(self, uid: str, state: str) -> None:
        if state in ("verifying", "new"):
            self.seen[state] = self.blob_state()


def test_stale_blobs_stay_until_the_flip_then_go(world: World) -> None:  # noqa: F811
    watch = _Watch(world)
    result = Cutover(world.settings, world.store, before_freeze=watch.before_freeze,
                     on_phase=watch.on_phase).run(UID)
    assert result.ok, result.reason
    assert result.final_delta is not None and result.final_delta.changed == 1
    # after the final delta, under the freeze: listed, still stored
    assert watch.seen["verifying"] == (True, True)
    assert watch.seen["new"] == (True, True)  # the flip itself deletes nothing
    assert watch.blob_state() == (False, False)
    assert "stale_blobs_after_flip" in result.steps


def test_a_job_killed_after_the_flip_leaves_them_to_the_next_cutover(
        world: World) -> None:  # noqa: F811
    watch = _Watch(world)

    def killed_after_the_flip(uid: str, state: str) -> None:
        watch.on_phase(uid, state)
        if state == "new":
            raise KeyboardInterrupt  # the job dies between the flip and the deletion

    with pytest.raises(KeyboardInterrupt):
        Cutover(world.settings, world.store, before_freeze=watch.before_freeze,
                on_phase=killed_after_the_flip).run(UID)
    assert world.store.lifecycle(UID) == "new"
    assert watch.blob_state() == (True, True)
    again = Cutover(world.settings, world.store).run(UID)
    assert not again.ok and "already on the new stack" in again.reason
    assert watch.blob_state() == (False, False)
    stack = open_newstack(world.settings)
    try:
        node = stack.backend.stat(UID, watch.path)
        assert b"".join(stack.backend.read(UID, node)) == CHANGED  # the new blob is kept
    finally:
        stack.close()
