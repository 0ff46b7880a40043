"""Per-suite counts of results and the Markdown table of docs/acceptance.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from acceptance.runner import FAILED, NOT_APPLICABLE, NOT_IMPLEMENTED, PASSED, SKIPPED, Result


@dataclass
class SuiteCount:
    cases: int = 0
    passed: int = 0
    failed: int = 0
    not_applicable: int = 0
    not_implemented: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        self.cases += 1
        if result.status == PASSED:
            self.passed += 1
        elif result.status == FAILED:
            self.failed += 1
        elif result.status == SKIPPED and result.skip_kind == NOT_APPLICABLE:
            self.not_applicable += 1
            self.skip_reasons[result.reason] += 1
        elif result.status == SKIPPED and result.skip_kind == NOT_IMPLEMENTED:
            self.not_implemented += 1
        else:
            raise ValueError(f"a result of unknown status: {result}")

    @property
    def ran(self) -> int:
        return self.passed + self.failed

    @property
    def pass_rate(self) -> float | None:
        """Passed among the cases not skipped (the issue's measure)."""
        return self.passed / self.ran if self.ran else None

    def as_dict(self) -> dict[str, object]:
        return {"cases": self.cases, "passed": self.passed, "failed": self.failed,
                "skipped_not_applicable": self.not_applicable,
                "skipped_not_implemented": self.not_implemented,
                "pass_rate_of_run": self.pass_rate,
                "skip_reasons": dict(self.skip_reasons.most_common())}


def count(results: Iterable[Result]) -> dict[str, SuiteCount]:
    by_suite: dict[str, SuiteCount] = {}
    for result in results:
        by_suite.setdefault(result.suite, SuiteCount()).add(result)
    return by_suite


def total(counts: Iterable[SuiteCount]) -> SuiteCount:
    out = SuiteCount()
    for c in counts:
        out.cases += c.cases
        out.passed += c.passed
        out.failed += c.failed
        out.not_applicable += c.not_applicable
        out.not_implemented += c.not_implemented
        out.skip_reasons.update(c.skip_reasons)
    return out


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}"


def markdown(per_target: Mapping[str, Mapping[str, SuiteCount]], suites: Sequence[str]) -> str:
    """One row per suite and target: cases, passed, failed, skipped (not applicable / not
    implemented) and passed % of the cases that ran; totals per target last."""
    head = ("| suite | target | cases | passed | failed | skipped: not applicable "
            "| skipped: step not implemented | passed % of run |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = [head]
    for suite in suites:
        for target, counts in per_target.items():
            c = counts.get(suite, SuiteCount())
            rows.append(f"| {suite} | {target} | {c.cases} | {c.passed} | {c.failed} | "
                        f"{c.not_applicable} | {c.not_implemented} | {_pct(c.pass_rate)} |")
    for target, counts in per_target.items():
        t = total(counts.values())
        rows.append(f"| **total** | **{target}** | **{t.cases}** | **{t.passed}** | "
                    f"**{t.failed}** | **{t.not_applicable}** | **{t.not_implemented}** | "
                    f"**{_pct(t.pass_rate)}** |")
    return "\n".join(rows) + "\n"


def differences(per_target: Mapping[str, Sequence[Result]]) -> list[dict[str, str]]:
    """Cases whose status differs between targets (a difference is a bug to explain)."""
    statuses: dict[str, dict[str, Result]] = {}
    for target, results in per_target.items():
        for r in results:
            statuses.setdefault(r.address, {})[target] = r
    out = []
    for address, by_target in statuses.items():
        if len({r.status for r in by_target.values()}) > 1:
            row = {"address": address}
            for target, r in by_target.items():
                row[target] = r.status + (f": {r.step} — {r.message}" if r.status == FAILED
                                          else "")
            out.append(row)
    return out
