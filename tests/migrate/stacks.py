"""Native new stacks opened by migration tests; conftest.py closes them after each test."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bridge.config import Settings
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
