"""The runner's pure decisions: which tags skip a case, how steps match, how results count."""

from __future__ import annotations

import pytest

from acceptance import registry
from acceptance.gherkin import DEFAULT_FEATURES, cases
from acceptance.report import count, differences, markdown
from acceptance.runner import FAILED, NOT_APPLICABLE, NOT_IMPLEMENTED, PASSED, SKIPPED, Result
from acceptance.steps.sharing import permissions_value
from acceptance.tags import skip_reason
from acceptance.world import status_list


@pytest.mark.parametrize(("tags", "skipped"), [
    ({"api"}, False),
    ({"api", "smokeTest", "files_sharing-app-required"}, False),
    ({"api", "skipOnOcV10"}, True),
    ({"api", "skip"}, True),
    ({"api", "local_storage"}, True),
    ({"api", "notToImplementOnOCIS"}, False),
    ({"api", "skipOnOcV10.3"}, False),
    ({"api", "comments-app-required"}, True),
])
def test_skip_by_tags(tags: set[str], skipped: bool) -> None:
    assert (skip_reason(tags) is not None) is skipped


@pytest.mark.parametrize(("text", "function"), [
    ('the HTTP status code should be "201"', "http_status"),
    ('using new DAV path', "using_dav"),
    ('user "Alice" has uploaded file with content "x" to "/a.txt"', "has_uploaded"),
    ('as "Alice" folder "/F" should not exist', "should_not_exist"),
    ('user "Alice" has shared folder "/F" with user "Brian" with permissions "read"',
     "has_shared_user"),
    ('user "Alice" has shared folder "/F" with user "Brian"', "has_shared_user"),
    ('user "Alice" moves file "/a" to "/b" using the WebDAV API', "moves"),
])
def test_steps_match_one_definition(text: str, function: str) -> None:
    found = registry.match(text)
    assert found is not None and found[0].function.__name__ == function


def test_unknown_step_matches_nothing() -> None:
    assert registry.match('user "Alice" juggles "/a" using the WebDAV API') is None


@pytest.mark.parametrize(("text", "codes"), [("200", [200]), ("200, 207", [200, 207])])
def test_status_lists(text: str, codes: list[int]) -> None:
    assert status_list(text) == codes


def test_bad_status_list_is_refused() -> None:
    with pytest.raises(ValueError, match="not a status code list"):
        status_list("ok")


@pytest.mark.parametrize(("text", "mask"), [("31", "31"), ("read", "1"),
                                             ("read,update", "3"), ("all", "31")])
def test_permissions(text: str, mask: str) -> None:
    assert permissions_value(text) == mask


def test_outlines_expand_per_example_row_with_background() -> None:
    expanded = list(cases(DEFAULT_FEATURES, "apiFavorites"))
    assert len(expanded) == 44  # INDEX.md: 44 test cases
    first = expanded[0]
    assert first.steps[0].text == 'using OCS API version "1"'  # the Background comes first
    assert first.address.startswith("apiFavorites/favorites.feature:")
    assert len({c.address for c in expanded}) == 44


def _r(address: str, status: str, kind: str = "") -> Result:
    return Result(address, address.split("/")[0], "t", status, kind)


def test_counts_and_differences() -> None:
    legacy = [_r("s/a:1", PASSED), _r("s/a:2", FAILED), _r("s/a:3", SKIPPED, NOT_APPLICABLE),
              _r("s/a:4", SKIPPED, NOT_IMPLEMENTED)]
    new = [_r("s/a:1", PASSED), _r("s/a:2", PASSED), _r("s/a:3", SKIPPED, NOT_APPLICABLE),
           _r("s/a:4", SKIPPED, NOT_IMPLEMENTED)]
    counts = count(legacy)["s"]
    assert (counts.cases, counts.passed, counts.failed, counts.not_applicable,
            counts.not_implemented) == (4, 1, 1, 1, 1)
    assert counts.pass_rate == 0.5
    assert [d["address"] for d in differences({"legacy": legacy, "new": new})] == ["s/a:2"]
    table = markdown({"legacy": count(legacy)}, ["s"])
    assert "| s | legacy | 4 | 1 | 1 | 1 | 1 | 50.0 |" in table
