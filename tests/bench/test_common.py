"""The small helpers every bench in bench/ ends with: progress to stderr, the exit status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.common import finish, loadavg, log


@pytest.mark.parametrize(("failures", "status", "listed"), [
    ([], 0, False),
    ([{"scenario": "get_4k", "where": "proxy", "error": "ReadTimeout"}], 1, True),
])
def test_finish_says_where_and_fails_on_any_failed_cell(
        capsys: pytest.CaptureFixture[str], failures: list[dict[str, Any]], status: int,
        listed: bool) -> None:
    out = {"wall_seconds": 12.5, "failures": failures}
    assert finish(Path("bench/results/x.json"), out) == status
    printed = capsys.readouterr().out
    assert "wrote bench/results/x.json (12.5 s)" in printed
    assert ("1 failure(s):" in printed and "ReadTimeout" in printed) is listed


def test_log_goes_to_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    log("measuring")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "measuring\n")


def test_loadavg_reads_the_kernel_figures() -> None:
    assert len(loadavg().split()) == 5
