"""Reads ownCloud's .feature files into flat test cases (one per Scenario and per Examples row,
Background steps first), using behave's Gherkin parser; streamed file by file."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from behave.model import Scenario, ScenarioOutline
from behave.parser import ParserError, parse_file

#: where the verbatim copies of owncloud/core's features live (see its INDEX.md)
DEFAULT_FEATURES = Path(__file__).resolve().parents[2] / "shared" / "oc10-acceptance" / "features"


@dataclass(frozen=True)
class Step:
    keyword: str
    text: str
    line: int
    #: a step's table as rows of cells, the heading row first
    table: tuple[tuple[str, ...], ...] | None = None
    doc: str | None = None


@dataclass(frozen=True)
class Case:
    """One test case as behat runs it: a Scenario, or one Examples row of an Outline."""

    suite: str
    feature: str
    line: int
    title: str
    tags: frozenset[str]
    steps: tuple[Step, ...]

    @property
    def address(self) -> str:
        """`suite/file.feature:LINE`, how expected-failure lists name a test case."""
        return f"{self.suite}/{self.feature}:{self.line}"


def suites(root: Path, patterns: Iterable[str]) -> list[str]:
    """Suite folder names under `root` matching any of `patterns` (shell globs), sorted."""
    if not root.is_dir():
        raise FileNotFoundError(f"no feature folder at {root}")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unknown:
        raise ValueError(f"no suite matches {', '.join(unknown)} under {root}")
    return chosen


def _steps(raw: Iterable[object]) -> tuple[Step, ...]:
    out = []
    for st in raw:
        table = None
        if st.table is not None:  # type: ignore[attr-defined]
            table = (tuple(st.table.headings),  # type: ignore[attr-defined]
                     *(tuple(row.cells) for row in st.table.rows))  # type: ignore[attr-defined]
        out.append(Step(st.keyword, st.name, st.line, table,  # type: ignore[attr-defined]
                        st.text))  # type: ignore[attr-defined]
    return tuple(out)


def cases(root: Path, suite: str) -> Iterator[Case]:
    """Every test case of one suite, in file and line order."""
    for path in sorted((root / suite).glob("*.feature")):
        try:
            feature = parse_file(str(path))
        except ParserError as exc:
            raise ValueError(f"{path}: not parseable as Gherkin: {exc}") from exc
        background = _steps(feature.background.steps) if feature.background else ()
        for item in feature.scenarios:
            expanded: list[Scenario] = (list(item.scenarios) if isinstance(item, ScenarioOutline)
                                        else [item])
            for sc in expanded:
                title = item.name if isinstance(item, ScenarioOutline) else sc.name
                yield Case(suite, path.name, sc.line, title,
                           frozenset(str(t) for t in sc.effective_tags),
                           background + _steps(sc.steps))
