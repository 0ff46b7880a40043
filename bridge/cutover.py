"""Moves one user from ownCloud 10 to the new stack while they work (bulk copy, catch-up
deltas, full gate, freeze acknowledged by every proxy, final delta, gate on what changed, flip),
and back (Rollback: freeze, migrate/reverse.py, flip back). Each step is a lifecycle transition
(bridge/lifecycle.py) in the bridge store; a failed cutover leaves ownCloud 10 untouched."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx

from bridge import metrics
from bridge.config import CutoverSettings, Settings
from bridge.errors import OcbridgeError
from bridge.gate import changed_scope, compare_scope
from bridge.lifecycle import FROZEN, IN_PROGRESS, Transition
from bridge.store import BridgeStore

if TYPE_CHECKING:
    from migrate.source import LegacySource
    from migrate.verify import Difference
    from newstack.legacy.instance import LegacyInstance
    from newstack.service import Newstack

log = logging.getLogger("ocbridge.cutover")

#: a phase name, done, total (0 = unknown): what progress bars show
ProgressFn = Callable[[str, int, int], None]
#: called with (uid, lifecycle state) as the user enters each state
PhaseFn = Callable[[str, str], None]

ACTOR_DEFAULT: Final = "ocbridge cutover"
#: full comparisons before the freeze, each followed by a catch-up pass if the user changed
#: something meanwhile
GATE_ATTEMPTS: Final = 3
#: differences detailed per kind by the check after a rollback, beyond those its new ids explain
CHECK_DETAILS: Final = 200


class CutoverError(OcbridgeError):
    """A step of a cutover or rollback did not succeed; the message says which and why."""


@dataclass
class PassSummary:
    """One catch-up (or final) delta pass."""

    rows_read: int
    added: int
    changed: int
    moved: int
    deleted: int
    seconds: float

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.moved + self.deleted


@dataclass
class CutoverResult:
    uid: str
    #: where the user ended: "new" after a flip, "legacy" after a failure before it
    state: str = "legacy"
    ok: bool = False
    reason: str = ""
    bulk_files: int = 0
    bulk_seconds: float = 0.0
    passes: list[PassSummary] = field(default_factory=list)
    final_delta: PassSummary | None = None
    verify_differences: dict[str, int] = field(default_factory=dict)
    verify_tolerated: dict[str, int] = field(default_factory=dict)
    verify_checked: dict[str, int] = field(default_factory=dict)
    #: how the gate ran: "changes" (full comparison before the freeze, what changed under
    #: it) or "full" (everything under the freeze: configured, or the user never paused)
    gate: str = ""
    #: what the gate under the freeze compared (cutover.gate = "changes": what changed)
    verify_checked_frozen: dict[str, int] = field(default_factory=dict)
    #: from the freeze's routing change until every live proxy routes the user unfrozen again
    freeze_seconds: float | None = None
    proxies: int = 0
    seconds: float = 0.0
    #: seconds of the steps under the freeze: freeze_ack, gate, flip_ack (final delta above)
    steps: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["freeze_seconds"] = (None if self.freeze_seconds is None
                                 else round(self.freeze_seconds, 3))
        out["seconds"] = round(self.seconds, 3)
        out["bulk_seconds"] = round(self.bulk_seconds, 3)
        out["steps"] = {k: round(v, 3) for k, v in self.steps.items()}
        return out


# ---------------------------------------------------------------------------------------------
# Pure decisions


def should_freeze(last_pass_changes: int, passes_done: int, cutover: CutoverSettings) -> bool:
    """Freeze once the last catch-up pass found little enough, or after the last pass allowed."""
    return last_pass_changes <= cutover.delta_threshold or passes_done >= cutover.max_passes


def gate_verdict(fields: dict[str, int], errors: list[str], ignore: tuple[str, ...]
                 ) -> tuple[bool, dict[str, int], dict[str, int]]:
    """(passed, differences that count, differences tolerated) of a verify report; an error
    (the comparison could not run to the end) never passes."""
    counted = {f: n for f, n in fields.items() if f not in ignore}
    tolerated = {f: n for f, n in fields.items() if f in ignore}
    return not counted and not errors, counted, tolerated


def unexplained(fields: dict[str, int], details: Sequence[Difference],
                new_ids: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """The differences of a check after a rollback less those its new ids explain: the fileid
    of a node the new stack created (ownCloud gave it another), and the system-tag assignments
    keyed by those fileids. `details` must hold every difference of those fields for them to
    be explained (else they count)."""
    pairs = {(old, new) for _, new, old in new_ids}
    olds, news = {old for old, _ in pairs}, {new for _, new in pairs}
    explained: dict[str, int] = {}
    for d in details:
        key = f"{d.kind} {d.field}"
        if d.field == "fileid" and (d.legacy, d.new) in pairs:
            explained[key] = explained.get(key, 0) + 1
        elif (d.kind, d.field) == ("systemtags", "assignments"):
            fileid = int(d.path.strip("()").split(",")[0])
            if (d.new is None and fileid in olds) or (d.legacy is None and fileid in news):
                explained[key] = explained.get(key, 0) + 1
    left = {f: n - explained.get(f, 0) for f, n in fields.items()}
    return {f: n for f, n in left.items() if n > 0}


def resume_plan(state: str, stack: str | None) -> str:
    """What a cutover does with a user found in `state`: "start" (from legacy), "resume" (a copy
    or catch-up interrupted: the migration jobs pick up where they stopped), "unfreeze" (an
    interrupted freeze: return the user to legacy first), "already-new" or "failed" (a
    recorded failure: return to legacy first)."""
    if state == "legacy":
        return "start"
    if state in ("copying", "catching_up"):
        return "resume"
    if state in FROZEN and stack != "new":
        return "unfreeze"
    if state == "failed":
        return "failed"
    if state == "new":
        return "already-new"
    return "busy"  # frozen on the new stack or reversing: a rollback is under way


# ---------------------------------------------------------------------------------------------
# The job


class Cutover:
    """Cut users over, one at a time, with the settings of one config file."""

    def __init__(self, settings: Settings, store: BridgeStore, *, actor: str = ACTOR_DEFAULT,
                 progress: ProgressFn | None = None, on_phase: PhaseFn | None = None,
                 before_freeze: Callable[[str], None] | None = None) -> None:
        """`before_freeze(uid)` runs after the last catch-up pass, just before the freeze:
        where bench/cutover.py makes its "changes since the last delta"."""
        self.settings = settings
        self.store = store
        self.actor = actor
        self._progress = progress
        self._on_phase = on_phase or (lambda uid, state: None)
        self._before_freeze = before_freeze or (lambda uid: None)

    def run(self, uid: str) -> CutoverResult:
        """Cut `uid` over; never raises for a failed step (the result says what happened and
        the user is back on ownCloud 10), only for Ctrl-C after putting the user back."""
        return self.run_together([uid])[0]

    def run_together(self, uids: Sequence[str]) -> list[CutoverResult]:
        """Cut `uids` over under one freeze (a cohort: users linked by shares move at once):
        each is copied and caught up, then all are frozen, finished and verified, and flipped;
        if one fails before the flips, every one of them goes back to ownCloud 10."""
        results = {uid: CutoverResult(uid) for uid in dict.fromkeys(uids)}
        started = time.monotonic()
        frozen_at: list[float] = []
        prepared: list[str] = []
        self._current: str | None = None
        try:
            for uid in results:
                self._current = uid
                self._prepare(uid)
                prepared.append(uid)
            self._cut_over(prepared, results, frozen_at)
        except BaseException as exc:
            reason, culprit = _reason(exc), self._current
            for uid, result in results.items():
                result.reason = reason if culprit in (None, uid) or len(results) == 1 else \
                    f"{culprit}, moving together with {uid}, failed: {reason}"
                if uid in prepared:
                    self._return_to_legacy(uid, result, frozen_at)
                else:
                    result.state = self.store.lifecycle(uid)
            if not isinstance(exc, Exception):
                raise
        finally:
            for result in results.values():
                result.seconds = time.monotonic() - started
                metrics.CUTOVERS.labels("new" if result.ok else "legacy").inc()
                if result.freeze_seconds is not None:
                    metrics.CUTOVER_FREEZE.observe(result.freeze_seconds)
        return list(results.values())

    # -- steps ------------------------------------------------------------------------------------

    def _prepare(self, uid: str) -> None:
        route = self.store.route(uid)
        state = self.store.lifecycle(uid)
        plan = resume_plan(state, None if route is None else route.stack)
        if plan == "already-new":
            # blobs a job killed right after the flip left listed go now
            try:
                with _Sides(self.settings) as sides:
                    _delete_stale_blobs(sides, uid, None, None)
            except Exception as exc:  # noqa: BLE001 - e.g. ownCloud 10 already retired
                log.warning("%s: the blobs a killed cutover left were not deleted: %s", uid,
                            _reason(exc))
            raise CutoverError(f"{uid} is already on the new stack")
        if plan == "busy":
            raise CutoverError(f"{uid} is in state {state!r} on the new stack (a rollback is "
                               "under way or was interrupted); run `ocbridge rollback` again")
        if plan == "unfreeze":
            self._move(uid, "failed", f"an earlier job stopped while {uid} was {state}")
            self._move(uid, "legacy", "returned to ownCloud 10 before a new cutover")
        elif plan == "failed":
            self._move(uid, "legacy", "returned to ownCloud 10 before a new cutover")

    def _cut_over(self, uids: list[str], results: dict[str, CutoverResult],
                  frozen_at: list[float]) -> None:
        from migrate.runner import MigrationOptions

        cut = self.settings.cutover
        with _Sides(self.settings) as sides:
            options = MigrationOptions(link_mode=self.settings.storage.link_mode,
                                       workers=cut.workers)
            fresh_identity = (sides.new.store.settings().get("instance_id")
                              != sides.instance.config.instanceid)
            self._current = None
            self._check_newstack_up()
            for uid in uids:
                self._current = uid
                self._copy_and_catch_up(uid, sides, results[uid], options)
            if fresh_identity:
                # a new stack started before the first migration takes up ownCloud's identity
                # (oc:id, secret) within its reload interval: wait for that before the freeze,
                # so that it does not lengthen the freeze
                from newstack.service import IDENTITY_RELOAD_SECONDS

                time.sleep(2 * IDENTITY_RELOAD_SECONDS)
            scoped: dict[str, bool] = {}
            for uid in uids:
                self._current = uid
                result = results[uid]
                scoped[uid] = cut.gate == "changes"
                if scoped[uid]:
                    began = time.monotonic()
                    scoped[uid] = self._gate_while_working(uid, sides, result, options)
                    result.steps["gate_before_freeze"] = time.monotonic() - began
                result.gate = "changes" if scoped[uid] else "full"
                self._before_freeze(uid)
            # the routing changes and their acknowledgments: from here on no write of these
            # users reaches ownCloud 10, and none that started before is still in flight
            epochs = []
            for uid in uids:
                self._current = uid
                epochs.append(self._move(uid, "frozen", "catch-up done: final delta under "
                                         "freeze").epoch)
                if not frozen_at:
                    frozen_at.append(time.monotonic())
            self._current = None
            proxies = self._wait_acks(max((e for e in epochs if e is not None), default=None),
                                      "freeze")
            for uid in uids:
                self._current = uid
                results[uid].proxies = proxies
                results[uid].steps["freeze_ack"] = time.monotonic() - frozen_at[0]
                self._finish(uid, sides, results[uid], options, scoped[uid])
            flips = []
            for uid in uids:
                self._current = uid
                flips.append(self._move(uid, "new", "gate passed: routed to the new stack")
                             .epoch)
                results[uid].state, results[uid].ok = "new", True
            self._current = None
            flipped = time.monotonic()
            try:
                self._wait_acks(max((e for e in flips if e is not None), default=None), "flip")
            except CutoverError as exc:
                # the flips are committed; proxies that have not applied them still refuse the
                # users' writes (frozen), so nothing goes wrong, it only takes longer
                for result in results.values():
                    result.reason = str(exc)
            else:
                for result in results.values():
                    result.steps["flip_ack"] = time.monotonic() - flipped
                    result.freeze_seconds = time.monotonic() - frozen_at[0]
            for uid in uids:
                _delete_stale_blobs(sides, uid, options, results[uid])

    def _copy_and_catch_up(self, uid: str, sides: _Sides, result: CutoverResult,
                           options: Any) -> None:
        from migrate.delta import DeltaPass
        from migrate.runner import UserMigration

        if self.store.lifecycle(uid) == "legacy":
            from migrate.reverse import rebuild_pending

            # left by a rollback whose job stopped after the flip back: the nodes ownCloud gave
            # other ids leave the new stack's copy, for the catch-up passes to import again
            rebuild_pending(sides.new.store, sides.new.driver, uid)
            self._move(uid, "copying", "bulk copy while the user works on ownCloud 10")
        if self.store.lifecycle(uid) == "copying" and _copied_before(self.store, sides, uid):
            # the bulk copy resumes after the last ownCloud fileid it imported, and rows made on
            # ownCloud since (after a failed cutover or a rollback, or by the rollback itself)
            # are in the copy already or for the catch-up passes: copying them would collide
            self._move(uid, "catching_up", "copied by an earlier cutover: catch-up passes "
                       "bring the copy up to date")
        if self.store.lifecycle(uid) == "copying":
            bulk = UserMigration(sides.source, sides.new.store, sides.new.driver, uid,
                                 options, progress=self._progress).run()
            result.bulk_files = bulk.files + bulk.folders
            result.bulk_seconds = bulk.seconds
            self._move(uid, "catching_up", "bulk copy done")
        while True:
            summary = self._delta(DeltaPass(sides.source, sides.new.store, sides.new.driver,
                                            uid, options))
            result.passes.append(summary)
            if should_freeze(summary.changes, len(result.passes), self.settings.cutover):
                return

    def _finish(self, uid: str, sides: _Sides, result: CutoverResult, options: Any,
                scoped: bool) -> None:
        """Under the freeze: what changed since the gate before it, the final delta, the gate
        on what changed (or the full one)."""
        from migrate.delta import DeltaPass

        began = time.monotonic()
        scope = changed_scope(sides.source, sides.new.store, uid) if scoped else None
        result.steps["scope"] = time.monotonic() - began
        result.final_delta = self._delta(DeltaPass(sides.source, sides.new.store,
                                                   sides.new.driver, uid, options),
                                         defer_stale=True)
        self._move(uid, "verifying", "final delta done: the gate")
        began = time.monotonic()
        if scope is not None:
            report = compare_scope(sides.legacy_backend(), sides.new.backend, uid, scope,
                                   content=self.settings.cutover.verify_content)
            self._judge(report, result, "the gate found differences in what changed since "
                        "the comparison before the freeze", frozen=True)
        else:
            self._judge(self._compare(uid, sides), result, "the verify gate found differences",
                        frozen=self.settings.cutover.gate == "changes")
        result.steps["gate"] = time.monotonic() - began

    def _delta(self, job: Any, *, defer_stale: bool = False) -> PassSummary:
        started = time.monotonic()
        report = job.delta(defer_stale=defer_stale)
        return PassSummary(report.rows_read, report.added, report.changed, report.moved,
                           report.deleted, time.monotonic() - started)

    def _compare(self, uid: str, sides: _Sides) -> Any:
        """The full comparison (migrate/verify.py compare_backends) of both stacks."""
        from migrate.verify import compare_backends

        if self._progress:
            self._progress("verifying", 0, 0)
        # as a serving new stack does (newstack/service.py watch_identity): the identity the
        # first bulk copy imported, not the one this process opened the store with
        sides.new.backend.set_identity(sides.new.store.settings())
        return compare_backends(sides.legacy_backend(), sides.new.backend, uid,
                                content=self.settings.cutover.verify_content)

    def _judge(self, report: Any, result: CutoverResult, failure: str, *,
               frozen: bool = False) -> None:
        passed, counted, tolerated = gate_verdict(dict(report.fields), report.errors,
                                                  self.settings.cutover.verify_ignore)
        result.verify_differences = counted
        for name, count in tolerated.items():
            result.verify_tolerated[name] = max(count, result.verify_tolerated.get(name, 0))
        if frozen:
            result.verify_checked_frozen = dict(report.checked)
        else:
            result.verify_checked = dict(report.checked)
        if not passed:
            what = "; ".join(report.errors) or ", ".join(f"{f}: {n}"
                                                          for f, n in sorted(counted.items()))
            raise CutoverError(f"{failure}: {what}")

    def _gate_while_working(self, uid: str, sides: _Sides, result: CutoverResult,
                            options: Any) -> bool:
        """The full comparison before the freeze, after one more catch-up pass. It counts only
        if ownCloud did not change from that pass to its end (any change moves the root etag);
        else again, up to GATE_ATTEMPTS times. False: the user never left a quiet moment, so the
        full comparison has to run under the freeze."""
        from migrate.delta import DeltaPass

        legacy = sides.legacy_backend()
        for _attempt in range(GATE_ATTEMPTS):
            before = legacy.stat(uid, "").etag
            result.passes.append(self._delta(DeltaPass(sides.source, sides.new.store,
                                                       sides.new.driver, uid, options)))
            report = self._compare(uid, sides)
            passed = gate_verdict(dict(report.fields), report.errors,
                                  self.settings.cutover.verify_ignore)[0]
            if passed or legacy.stat(uid, "").etag == before:
                self._judge(report, result, "the verify gate found differences")
                return True
        log.info("%s kept changing files during %d comparisons before the freeze: the full "
                 "comparison runs under the freeze", uid, GATE_ATTEMPTS)
        return False

    def _check_newstack_up(self) -> None:
        url = self.settings.proxy.newstack_url.rstrip("/") + "/status.php"
        try:
            answer = httpx.get(url, timeout=10)
        except httpx.HTTPError as exc:
            raise CutoverError(f"the new stack does not answer at {url}: {exc} (start it with "
                               "`ocbridge serve newstack`, or fix proxy.newstack_url)") from None
        if answer.status_code != 200:
            raise CutoverError(f"the new stack answers {answer.status_code} at {url}")

    # -- routing and the audit trail ---------------------------------------------------------------

    def _move(self, uid: str, state: str, reason: str) -> Transition:
        transition = self.store.transition(uid, state, actor=self.actor, reason=reason)
        log.info("%s: %s → %s (%s)", uid, transition.from_state, state, reason)
        self._on_phase(uid, state)
        return transition

    def _wait_acks(self, epoch: int | None, what: str) -> int:
        if epoch is None:
            return len(self.store.ack_status(self.store.epoch()).acked)
        status = self.store.wait_for_acks(epoch, self.settings.cutover.ack_timeout)
        if not status.complete:
            waiting = ", ".join(f"{p.proxy_id} (at epoch {p.epoch}, {p.draining} write(s) "
                                "draining)" for p in status.waiting)
            raise CutoverError(f"the {what} (epoch {epoch}) was not applied by every live proxy "
                               f"within {self.settings.cutover.ack_timeout} s: {waiting}")
        return len(status.acked)

    def _return_to_legacy(self, uid: str, result: CutoverResult, frozen_at: list[float]) -> None:
        """After a failure before the flip: record it, route the user to ownCloud 10 (which
        also unfreezes them) and wait for the proxies; ownCloud 10 was only ever read."""
        if result.ok:
            return
        try:
            state = self.store.lifecycle(uid)
            if state in IN_PROGRESS:
                self._move(uid, "failed", result.reason)
                state = "failed"
            if state == "failed":
                back = self._move(uid, "legacy", "returned to ownCloud 10 after a failure")
                self._wait_acks(back.epoch, "return to ownCloud 10")
            if frozen_at:
                result.freeze_seconds = time.monotonic() - frozen_at[0]
            result.state = self.store.lifecycle(uid)
        except Exception as exc:  # noqa: BLE001 - reported with the original failure
            result.reason += f"; and returning {uid} to ownCloud 10 failed: {_reason(exc)}"
            log.error("%s: %s", uid, result.reason)


def _copied_before(store: BridgeStore, sides: _Sides, uid: str) -> bool:
    """Whether an earlier cutover finished the user's bulk copy into this new stack."""
    from newstack.metadata.schema import AREA_FILES

    if not store.audit(uid, to_state="catching_up", limit=1):
        return False
    with sides.new.store.read() as conn:
        return sides.new.store.node(conn, uid, AREA_FILES, "") is not None


def _delete_stale_blobs(sides: _Sides, uid: str, options: Any,
                        result: CutoverResult | None) -> None:
    """After the flip: the blobs the final delta stopped using (listed in the transactions that
    stopped using them, so a job killed before this leaves them for the next cutover of the
    user). Not part of the freeze; a failure here is logged, the flip stands."""
    from migrate.delta import DeltaPass

    began = time.monotonic()
    try:
        DeltaPass(sides.source, sides.new.store, sides.new.driver, uid, options).delete_stale()
    except Exception as exc:  # noqa: BLE001 - the user is on the new stack either way
        log.warning("%s: deleting the blobs the final delta replaced failed (%s); the next "
                    "`ocbridge cutover %s` deletes them", uid, _reason(exc), uid)
    if result is not None:
        result.steps["stale_blobs_after_flip"] = time.monotonic() - began


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, OcbridgeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Sides:
    """Both stacks, opened for one job from the settings and closed after it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> _Sides:
        from migrate.cli import legacy_settings, open_legacy
        from migrate.source import LegacySource
        from newstack.service import open_newstack

        if self.settings.legacy.config_php is None:
            legacy_settings(None, None)  # raises the error that says what to configure
        self.instance: LegacyInstance = open_legacy(self.settings)
        self.source: LegacySource = LegacySource(self.instance)
        self.new: Newstack = open_newstack(self.settings)
        self._backends: list[Any] = []
        return self

    def legacy_backend(self) -> Any:
        from migrate.cli import open_legacy
        from newstack.legacy.backend import Oc10Backend

        backend = Oc10Backend(open_legacy(self.settings))
        self._backends.append(backend)
        return backend

    def __exit__(self, *exc: object) -> None:
        for backend in self._backends:
            backend.close()
        self.new.close()
        self.instance.close()


# ---------------------------------------------------------------------------------------------
# Rollback


@dataclass
class RollbackResult:
    uid: str
    #: where the user ended: "legacy" after the flip back, "new" after a failure
    state: str = "new"
    ok: bool = False
    reason: str = ""
    added: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    etags_set: int = 0
    #: trash items restored, purged and made, versions and annotations written on ownCloud
    restored: int = 0
    purged: int = 0
    trash_added: int = 0
    versions: int = 0
    annotations: int = 0
    #: nodes created on the new stack: (path, new-stack fileid, the fileid ownCloud gave them)
    new_ids: list[tuple[str, int, int]] = field(default_factory=list)
    #: what still differs afterwards, by field (fileids of the nodes above are expected); any
    #: difference not in cutover.verify_ignore fails the rollback
    differences: dict[str, int] = field(default_factory=dict)
    tolerated: dict[str, int] = field(default_factory=dict)
    #: nodes taken out of the new stack's copy after the flip back, to be imported again with
    #: ownCloud's ids by the next cutover (None: left to the next cutover, e.g. no ack)
    rebuilt: int | None = None
    freeze_seconds: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["freeze_seconds"] = (None if self.freeze_seconds is None
                                 else round(self.freeze_seconds, 3))
        out["seconds"] = round(self.seconds, 3)
        return out


class Rollback(Cutover):
    """Move users back from the new stack to ownCloud 10 with what they changed meanwhile:
    freeze (acknowledged), reverse delta (migrate/reverse.py), flip back, unfreeze. A failure
    leaves the user on the new stack, unfrozen."""

    def run(self, uid: str) -> RollbackResult:  # type: ignore[override]
        result = RollbackResult(uid)
        started = time.monotonic()
        frozen_at: list[float] = []
        try:
            self._roll_back(uid, result, frozen_at)
        except BaseException as exc:
            result.reason = _reason(exc)
            self._stay_on_new(uid, result, frozen_at)
            if not isinstance(exc, Exception):
                raise
        finally:
            result.seconds = time.monotonic() - started
        return result

    def _roll_back(self, uid: str, result: RollbackResult, frozen_at: list[float]) -> None:
        from migrate.reverse import ReverseDelta, rebuild_pending, record_rebuild
        from migrate.verify import compare_backends

        state = self.store.lifecycle(uid)
        route = self.store.route(uid)
        if state in ("frozen", "reversing") and (route is None or route.stack != "new"):
            raise CutoverError(f"{uid} is {state} on ownCloud 10: a cutover is under way")
        if state == "failed":
            if route is None or route.stack != "new":
                raise CutoverError(f"{uid} is not on the new stack (a failed cutover returns "
                                   "users to ownCloud 10): nothing to roll back")
            self._move(uid, "new", "returned to the new stack before a new rollback")
            state = "new"
        if state == "legacy":
            raise CutoverError(f"{uid} is on ownCloud 10 already")
        if state == "new":
            transition = self._move(uid, "frozen", "rollback: freeze writes on the new stack")
            frozen_at.append(time.monotonic())
            self._wait_acks(transition.epoch, "freeze")
            state = "frozen"
        elif not frozen_at:
            frozen_at.append(time.monotonic())  # resuming an interrupted rollback
        if state == "frozen":
            self._move(uid, "reversing", "reverse delta: new-stack changes back to ownCloud 10")
        elif state != "reversing":
            raise CutoverError(f"{uid} is in state {state!r}: a cutover is under way")
        with _Sides(self.settings) as sides:
            legacy = sides.legacy_backend()
            sides.new.backend.set_identity(sides.new.store.settings())
            reverse = ReverseDelta(sides.new.backend, legacy, uid)
            report = reverse.run()
            for name in ("added", "changed", "moved", "deleted", "etags_set", "restored",
                         "purged", "trash_added", "versions", "annotations", "new_ids"):
                setattr(result, name, getattr(report, name))
            check = compare_backends(legacy, sides.new.backend, uid,
                                     content=self.settings.cutover.verify_content,
                                     max_details=CHECK_DETAILS + 4 * len(report.new_ids))
            if check.errors:
                raise CutoverError("checking ownCloud 10 after the reverse delta failed: "
                                   + "; ".join(check.errors))
            fields = unexplained(dict(check.fields), check.details, report.new_ids)
            fields.update(reverse.annotation_differences())
            passed, result.differences, result.tolerated = gate_verdict(
                fields, [], self.settings.cutover.verify_ignore)
            if not passed:
                raise CutoverError("ownCloud 10 still differs from the new stack after the "
                                   "reverse delta: " + ", ".join(
                                       f"{f}: {n}" for f, n in sorted(result.differences.items())))
            record_rebuild(sides.new.store, uid, report)
            back = self._move(uid, "legacy", "reverse delta done: routed to ownCloud 10")
            result.state, result.ok = "legacy", True
            try:
                self._wait_acks(back.epoch, "flip back")
            except CutoverError as exc:
                # a proxy may still serve reads from the new stack's copy: leave it as it is,
                # the user's next cutover rebuilds it
                result.reason = str(exc)
                return
            result.freeze_seconds = time.monotonic() - frozen_at[0]
            try:
                result.rebuilt = rebuild_pending(sides.new.store, sides.new.driver, uid)
            except Exception as exc:  # noqa: BLE001 - the user is on ownCloud either way
                log.warning("%s: taking the nodes with other ids out of the new stack's copy "
                            "failed (%s); the next `ocbridge cutover %s` does it", uid,
                            _reason(exc), uid)

    def _stay_on_new(self, uid: str, result: RollbackResult, frozen_at: list[float]) -> None:
        if result.ok:
            return
        try:
            state = self.store.lifecycle(uid)
            route = self.store.route(uid)
            if state in IN_PROGRESS and route is not None and route.stack == "new":
                self._move(uid, "failed", result.reason)
                back = self._move(uid, "new", "rollback failed: the user stays on the new stack")
                self._wait_acks(back.epoch, "unfreeze")
            if frozen_at:
                result.freeze_seconds = time.monotonic() - frozen_at[0]
            result.state = self.store.lifecycle(uid)
        except Exception as exc:  # noqa: BLE001 - reported with the original failure
            result.reason += f"; and unfreezing {uid} on the new stack failed: {_reason(exc)}"
