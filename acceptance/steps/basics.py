"""Choices of API flavour and checks on the last response's status, headers and OCS meta
(FeatureContext, OCSContext)."""

from __future__ import annotations

import re

from acceptance.registry import step
from acceptance.world import StepNotSupported, World, status_list

Table = tuple[tuple[str, ...], ...]


@step(r'using OCS API version "(1|2)"')
def using_ocs(world: World, version: str) -> None:
    world.ocs_version = int(version)


@step(r"using (old|new|spaces) DAV path")
def using_dav(world: World, flavour: str) -> None:
    if flavour == "spaces":
        raise StepNotSupported("the spaces DAV path is oCIS's")
    world.dav = flavour


@step(r'the HTTP status code should be "([^"]*)"')
def http_status(world: World, expected: str) -> None:
    got = world.last().status_code
    assert got in status_list(expected), (
        f"HTTP status: expected {expected}, got {got}; body {world.last().text[:300]!r}")


@step(r'the HTTP status code should be between "(\d+)" and "(\d+)"')
def http_status_between(world: World, low: str, high: str) -> None:
    got = world.last().status_code
    assert int(low) <= got <= int(high), f"HTTP status {got} not in {low}..{high}"


@step(r'the OCS status code should be "([^"]*)"')
def ocs_status(world: World, expected: str) -> None:
    got = world.ocs_meta()["statuscode"]
    assert int(got) in status_list(expected), f"OCS status: expected {expected}, got {got}"


@step(r'the OCS status message should be "([^"]*)"')
def ocs_message(world: World, expected: str) -> None:
    got = world.ocs_meta()["message"]
    assert got == world.substitute(expected), f"OCS message: expected {expected!r}, got {got!r}"


@step(r"the following headers should be set")
def headers_set(world: World, table: Table) -> None:
    response = world.last()
    for name, value in table[1:]:
        got = response.headers.get(name)
        assert got is not None, f"header {name} is missing"
        expected = world.substitute(value)
        assert got == expected, f"header {name}: expected {expected!r}, got {got!r}"


@step(r"the following headers should not be set")
def headers_not_set(world: World, table: Table) -> None:
    response = world.last()
    for (name,) in table[1:]:
        assert name not in response.headers, (
            f"header {name} is set to {response.headers[name]!r}")


@step(r'the following headers should match these regular expressions for user "([^"]*)"')
def headers_match(world: World, user: str, table: Table) -> None:
    response = world.last()
    for name, pattern in table[1:]:
        got = response.headers.get(name)
        assert got is not None, f"header {name} is missing"
        expected = world.substitute(pattern, world.uid(user))
        regex = _php_regex(expected)
        assert regex.search(got), f"header {name}: {got!r} does not match {expected}"


def _php_regex(text: str) -> re.Pattern[str]:
    """A PCRE literal like /^abc$/i as a Python pattern."""
    m = re.fullmatch(r"/(.*)/([a-z]*)", text, re.S)
    if not m:
        return re.compile(re.escape(text))
    flags = re.I if "i" in m.group(2) else 0
    return re.compile(m.group(1), flags)


@step(r'the HTTP reason phrase should be "([^"]*)"')
def reason_phrase(world: World, expected: str) -> None:
    got = world.last().reason_phrase
    assert got == expected, f"reason phrase: expected {expected!r}, got {got!r}"


@step(r'the HTTP status code of responses on all endpoints should be "([^"]*)"')
def all_statuses(world: World, expected: str) -> None:
    assert world.responses, "no multi-endpoint request was sent before this step"
    got = [r.status_code for r in world.responses]
    wanted = status_list(expected)
    assert all(code in wanted for code in got), f"HTTP statuses {got}, expected {expected}"


@step(r'the OCS status code of responses on all endpoints should be "([^"]*)"')
def all_ocs_statuses(world: World, expected: str) -> None:
    # only OCS requests carry an OCS status (ownCloud collects them from OCS steps alone)
    ocs = [r for r in world.responses if "/ocs/" in r.request.url.path]
    assert ocs, "no OCS request was sent before this step"
    got = [int(world.ocs_meta(r)["statuscode"]) for r in ocs]
    wanted = status_list(expected)
    assert all(code in wanted for code in got), f"OCS statuses {got}, expected {expected}"


@step(r'the HTTP status code of responses on each endpoint should be "([^"]*)" respectively')
def each_status(world: World, expected: str) -> None:
    got = [r.status_code for r in world.responses]
    wanted = status_list(expected)
    assert got == wanted, f"HTTP statuses {got}, expected {wanted} in that order"


@step(r'the body of the response should be empty')
def body_empty(world: World) -> None:
    assert world.last().content == b"", f"body: {world.last().text[:200]!r}"
