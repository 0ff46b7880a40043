"""Step definitions: regular expressions over the step text, matched whatever the keyword (as
behat does), each bound to a function of the world and the captured groups."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

StepFunction = Callable[..., None]


@dataclass(frozen=True)
class Definition:
    pattern: re.Pattern[str]
    function: StepFunction

    @property
    def where(self) -> str:
        return f"{self.function.__module__}.{self.function.__name__}"


_DEFINITIONS: list[Definition] = []


def step(*patterns: str) -> Callable[[StepFunction], StepFunction]:
    """Register `function(world, *groups)` for each full-match regex in `patterns`."""

    def register(function: StepFunction) -> StepFunction:
        for pattern in patterns:
            _DEFINITIONS.append(Definition(re.compile(pattern + r"\Z"), function))
        return function

    return register


class AmbiguousStepError(Exception):
    pass


def match(text: str) -> tuple[Definition, tuple[Any, ...]] | None:
    """The one definition whose pattern matches `text` fully, with its groups; None if none
    does; AmbiguousStepError if two do (a defect of the definitions, never guessed)."""
    found = [(d, m.groups()) for d in definitions() if (m := d.pattern.match(text))]
    if len(found) > 1:
        raise AmbiguousStepError(
            f"{text!r} matches {', '.join(d.where for d, _ in found)}")
    return found[0] if found else None


def definitions() -> list[Definition]:
    from acceptance import steps  # noqa: F401  (importing registers every definition)

    return _DEFINITIONS
