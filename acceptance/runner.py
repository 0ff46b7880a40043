"""Runs test cases against a target, one fresh server state per case, and yields one result
per case: passed, failed (with the step, expected and got) or skipped (with why)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import httpx

from acceptance import registry
from acceptance.gherkin import Case
from acceptance.tags import skip_reason
from acceptance.targets import Target
from acceptance.world import StepNotSupported, World

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
NOT_APPLICABLE, NOT_IMPLEMENTED = "not applicable", "step not implemented"


@dataclass(frozen=True)
class Result:
    address: str
    suite: str
    title: str
    status: str
    #: for skipped cases: NOT_APPLICABLE or NOT_IMPLEMENTED
    skip_kind: str = ""
    reason: str = ""
    #: for failed cases: the step that failed and what it said
    step: str = ""
    message: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _shares(case: Case) -> bool:
    """Whether the case shares between users (its users then live on one stack)."""
    return any("share" in step.text.lower() for step in case.steps)


def plan(case: Case) -> Result | list[tuple[registry.Definition, tuple[object, ...]]]:
    """The matched definitions of every step, or the skip result when the case cannot run
    (decided before anything is sent, so a skipped case never half-runs)."""
    reason = skip_reason(case.tags)
    if reason is not None:
        return Result(case.address, case.suite, case.title, SKIPPED, NOT_APPLICABLE, reason)
    matched = []
    for step in case.steps:
        found = registry.match(step.text)
        if found is None:
            return Result(case.address, case.suite, case.title, SKIPPED, NOT_IMPLEMENTED,
                          f"{step.keyword} {step.text}")
        matched.append(found)
    return matched


def run_case(case: Case, target: Target, index: int) -> Result:
    planned = plan(case)
    if isinstance(planned, Result):
        return planned
    started = time.monotonic()
    target.begin(index, keep_together=_shares(case))
    with httpx.Client(base_url=target.url, timeout=60, follow_redirects=False) as client:
        world = World(target, client)
        target.configure(world.settings)
        for step, (definition, groups) in zip(case.steps, planned, strict=True):
            args = [*groups]
            if step.table is not None:
                args.append(step.table)
            if step.doc is not None:
                args.append(step.doc)
            world.enter(step.keyword.strip())
            try:
                definition.function(world, *args)
            except StepNotSupported as exc:
                return Result(case.address, case.suite, case.title, SKIPPED, NOT_IMPLEMENTED,
                              f"{step.keyword} {step.text}: {exc}",
                              seconds=time.monotonic() - started)
            except AssertionError as exc:
                return Result(case.address, case.suite, case.title, FAILED,
                              step=f"{step.keyword} {step.text} (line {step.line})",
                              message=str(exc)[:600], seconds=time.monotonic() - started)
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                return Result(case.address, case.suite, case.title, FAILED,
                              step=f"{step.keyword} {step.text} (line {step.line})",
                              message=f"{type(exc).__name__}: {exc} "
                                      f"[{where.filename}:{where.lineno}]"[:600],
                              seconds=time.monotonic() - started)
    return Result(case.address, case.suite, case.title, PASSED,
                  seconds=time.monotonic() - started)


def run(cases: Iterable[Case], target: Target) -> Iterator[Result]:
    for index, case in enumerate(cases):
        yield run_case(case, target, index)
