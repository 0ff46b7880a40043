"""Native new stacks opened by migration tests; conftest.py closes them after each test."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from bridge.config import Settings
from migrate.runner import InjectedCrash
from newstack.service import Newstack, open_newstack

_OPENED: list[Newstack] = []


def new_stack(where: Path, metadata_url: str = "") -> Newstack:
    """A native new stack in `where`; closed after the test (close_stacks in conftest.py)."""
    defaults = Settings()
    stack = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=where, metadata_url=metadata_url)))
    return closed_after_test(stack)


def closed_after_test(stack: Newstack) -> Newstack:
    _OPENED.append(stack)
    return stack


def close_opened() -> None:
    while _OPENED:
        _OPENED.pop().close()


def killed_until_done(job: Callable[[Callable[[str], None]], object],
                      kill_at: Callable[[str], bool], attempts: int = 100) -> list[str]:
    """Run `job(crash_hook)` again and again until it finishes, its hook killing it (as kill -9
    would) at each step where `kill_at` says so; the steps it was killed at, in order."""
    killed: list[str] = []

    def hook(step: str) -> None:
        if kill_at(step):
            killed.append(step)
            raise InjectedCrash(step)

    for _attempt in range(attempts):
        try:
            job(hook)
            return killed
        except InjectedCrash:
            continue
    raise AssertionError(f"the job did not finish in {attempts} attempts")
