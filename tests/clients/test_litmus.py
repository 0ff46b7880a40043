"""litmus 0.13 (Debian's WebDAV compliance suite) against the new stack, on both endpoints.

Every test must pass except the ones listed below, each a behaviour ownCloud 10 has itself;
a listed test that starts to pass fails here too, because it means we now answer differently
from ownCloud 10. litmus writes debug.log (all traffic) into the test's tmp_path.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.conftest import NewstackServer, require_binary

SUITES = ("basic", "copymove", "props", "locks", "http")

#: (suite, test name) -> why ownCloud 10 fails it too
EXPECTED_FAILURES = {
    ("locks", "fail_complex_cond_put"): (
        "If: (<token> [bad-etag]) (Not <DAV:no-lock> [bad-etag]) must give 412, but Sabre 4.7 "
        "(Server::checkPreconditions) applies `Not` to the whole (token, etag) pair, so the "
        "second list holds and the PUT succeeds; ownCloud's own litmus image "
        "(owncloud-ci/litmus) patches this test out"),
}
#: (suite, test name) -> why ownCloud 10 draws the warning too
EXPECTED_WARNINGS = {
    ("locks", "fail_cond_put"): (
        "PUT with If: (<DAV:no-lock> [etag]) on a locked file answers 423, not 412: Sabre "
        "checks that the lock's token was submitted (validateTokens) before the conditions"),
}

_SUITE = re.compile(r"-> running `(\w+)':")
_TEST = re.compile(r"\s*(\d+)\.\s(\w+)\.*\s*(.*)$")
_CONTINUED = re.compile(r"\s*\.+\s+(.*)$")
_SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


@dataclass(frozen=True)
class LitmusRun:
    #: (suite, number, name) -> 'pass', 'FAIL (reason)', 'SKIPPED', ...
    results: dict[tuple[str, int, str], str]
    warnings: dict[tuple[str, int, str], list[str]]
    #: suite -> (run, passed, failed) as litmus sums them up
    summaries: dict[str, tuple[int, int, int]]


def parse_litmus(output: str) -> LitmusRun:
    """Results per test from litmus's progress output (names are printed, then overwritten
    after a carriage return with the name and the result; warnings go on their own lines)."""
    results: dict[tuple[str, int, str], str] = {}
    warnings: dict[tuple[str, int, str], list[str]] = {}
    summaries: dict[str, tuple[int, int, int]] = {}
    suite, current = "", None
    for segment in re.split(r"[\r\n]", output):
        if match := _SUITE.match(segment):
            suite, current = match.group(1), None
            continue
        if match := _SUMMARY.match(segment):
            run, passed, failed = (int(match.group(i)) for i in (2, 3, 4))
            summaries[match.group(1)] = (run, passed, failed)
            continue
        if match := _TEST.match(segment):
            current = (suite, int(match.group(1)), match.group(2))
            rest = match.group(3)
        elif current is not None and (match := _CONTINUED.match(segment)):
            rest = match.group(1)
        else:
            continue
        if rest.startswith("WARNING:"):
            warnings.setdefault(current, []).append(rest.removeprefix("WARNING:").strip())
        elif rest.startswith(("pass", "FAIL", "SKIPPED")):
            results[current] = rest
    return LitmusRun(results, warnings, summaries)


def run_litmus(url: str, user: str, password: str, workdir: Path) -> str:
    litmus = require_binary("litmus", "litmus")
    env = {**os.environ, "TESTS": " ".join(SUITES)}
    # --keep-going: the script otherwise stops at the first suite with a failure
    completed = subprocess.run(
        ["timeout", "120", litmus, "--keep-going", url, user, password], cwd=workdir, env=env,
        capture_output=True, text=True, errors="replace", timeout=150, check=False)
    assert completed.returncode == 0, (
        f"litmus exited with {completed.returncode}\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


@pytest.mark.parametrize("endpoint", ["dav", "webdav"])
def test_litmus(newstack_server: NewstackServer, tmp_path: Path, endpoint: str) -> None:
    srv = newstack_server
    url = srv.dav_url if endpoint == "dav" else f"{srv.base_url}/remote.php/webdav/"
    output = run_litmus(url, srv.user, srv.password, tmp_path)
    run = parse_litmus(output)
    context = f"{output}\n(traffic in {tmp_path / 'debug.log'})"

    assert sorted(run.summaries) == sorted(SUITES), context
    for suite, (ran, passed, failed) in run.summaries.items():
        parsed = [r for (s, _, _), r in run.results.items() if s == suite]
        assert len(parsed) >= ran, f"could not parse every {suite} result\n{context}"
        counted = (sum(r.startswith("pass") for r in parsed),
                   sum(r.startswith("FAIL") for r in parsed))
        assert counted == (passed, failed), (
            f"parsed results disagree with the {suite} summary\n{context}")

    not_passed = {(suite, name): result for (suite, _, name), result in run.results.items()
                  if not result.startswith("pass")}
    assert not_passed.keys() == EXPECTED_FAILURES.keys(), "\n".join(
        [f"{suite}/{name}: {result}" for (suite, name), result in not_passed.items()
         if (suite, name) not in EXPECTED_FAILURES]
        + [f"{suite}/{name} now passes: ownCloud 10 fails it ({why})"
           for (suite, name), why in EXPECTED_FAILURES.items()
           if (suite, name) not in not_passed]
        + [context])
    warned = {(suite, name): text for (suite, _, name), text in run.warnings.items()}
    assert warned.keys() == EXPECTED_WARNINGS.keys(), f"warnings: {warned}\n{context}"


def test_parse_litmus_output() -> None:
    output = (
        "-> running `locks':\n"
        "\r 0. init.................. \r 0. init.................. pass\n"
        "\r16. fail_cond_put......... \r16. fail_cond_put......... WARNING: PUT failed with "
        "423 not 412\n    ...................... pass (with 1 warning)\n"
        "\r20. fail_complex_cond_put. \r20. fail_complex_cond_put. FAIL (PUT with complex "
        "bogus conditional should fail with 412: 204 No Content)\n"
        "\r21. unlock................ \r21. unlock................ SKIPPED\n"
        "<- summary for `locks': of 3 tests run: 2 passed, 1 failed. 66.7%\n"
        "-> 1 test was skipped.\n")
    run = parse_litmus(output)
    assert run.results == {
        ("locks", 0, "init"): "pass",
        ("locks", 16, "fail_cond_put"): "pass (with 1 warning)",
        ("locks", 20, "fail_complex_cond_put"):
            "FAIL (PUT with complex bogus conditional should fail with 412: 204 No Content)",
        ("locks", 21, "unlock"): "SKIPPED",
    }
    assert run.warnings == {("locks", 16, "fail_cond_put"): ["PUT failed with 423 not 412"]}
    assert run.summaries == {"locks": (3, 2, 1)}
