"""CI subset: ownCloud's @smokeTest cases of a few suites on the new stack and the legacy
server. Like ownCloud's run.sh, a failing case must be listed in expected-failures.txt (with
why) and a listed case must still fail; and both servers must give every case the same result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from acceptance import gherkin
from acceptance.runner import FAILED, PASSED, SKIPPED, Result, run
from acceptance.targets import open_target

SUITES = ("apiCapabilities", "apiFavorites", "apiWebdavDelete", "apiWebdavUpload1",
          "apiTrashbin", "apiWebdavProperties2")
EXPECTED_FAILURES = Path(__file__).with_name("expected-failures.txt")


def expected_failures() -> dict[str, str]:
    """address -> reason, from `suite/file.feature:LINE  reason` lines."""
    out = {}
    for line in EXPECTED_FAILURES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            address, _, reason = line.partition(" ")
            out[address] = reason.strip()
    return out


def smoke_cases() -> Iterator[gherkin.Case]:
    for suite in SUITES:
        for case in gherkin.cases(gherkin.DEFAULT_FEATURES, suite):
            if "smokeTest" in case.tags:
                yield case


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Result]]:
    logging.getLogger("ocbridge").setLevel(logging.CRITICAL)
    out = {}
    for name in ("newstack", "legacy"):
        target = open_target(name, tmp_path_factory.mktemp(name))
        try:
            out[name] = list(run(smoke_cases(), target))
        finally:
            target.close()
    return out


@pytest.mark.parametrize("target", ["newstack", "legacy"])
def test_smoke_cases_pass_except_listed(results: dict[str, list[Result]], target: str) -> None:
    listed = expected_failures()
    ran = [r for r in results[target] if r.status != SKIPPED]
    assert len(ran) >= 30, f"only {len(ran)} smoke cases ran on {target}"
    unexpected = [f"{r.address} {r.title}: {r.step}: {r.message}" for r in ran
                  if r.status == FAILED and r.address not in listed]
    fixed = [r.address for r in ran if r.status == PASSED and r.address in listed]
    assert not unexpected, "failed and not listed:\n" + "\n".join(unexpected)
    assert not fixed, f"listed in {EXPECTED_FAILURES.name} but passing now: {fixed}"


def test_both_servers_agree(results: dict[str, list[Result]]) -> None:
    legacy = {r.address: r.status for r in results["legacy"]}
    differ = [f"{r.address}: newstack {r.status}, legacy {legacy.get(r.address)}"
              for r in results["newstack"] if legacy.get(r.address) != r.status]
    assert not differ, "\n".join(differ)
