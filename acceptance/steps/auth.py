"""Requests to many endpoints with given credentials (AuthContext), OCS requests by method and
endpoint (OCSContext), and the capabilities (CapabilitiesContext)."""

from __future__ import annotations

import json

import jsonschema

from acceptance.registry import step
from acceptance.world import StepNotSupported, World

Table = tuple[tuple[str, ...], ...]


def _endpoints(world: World, table: Table, about: str | None) -> list[str]:
    heading = table[0]
    column = heading.index("endpoint")
    uid = world.uid(about) if about is not None else None
    return [world.substitute(row[column], uid) for row in table[1:]]


def _request_all(world: World, method: str, table: Table, *, user: str | None,
                 password: str | None, body: str | None = None,
                 about: str | None = None) -> None:
    for endpoint in _endpoints(world, table, about):
        headers = {"OCS-APIREQUEST": "true"} if endpoint.startswith("/ocs") else {}
        world.send(method, endpoint, user=user, password=password, headers=headers,
                   content=body)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" using password "([^"]*)" about '
      r'user "([^"]*)"')
def endpoints_password_about(world: World, user: str, method: str, password: str,
                             about: str, table: Table) -> None:
    _request_all(world, method, table, user=user, password=world.substitute(password),
                 about=about)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" using password "([^"]*)"')
def endpoints_password(world: World, user: str, method: str, password: str,
                       table: Table) -> None:
    _request_all(world, method, table, user=user, password=world.substitute(password),
                 about=user)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" about user "([^"]*)"')
def endpoints_about(world: World, user: str, method: str, about: str, table: Table) -> None:
    _request_all(world, method, table, user=user, password=None, about=about)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" including body "([^"]*)" using '
      r'password "([^"]*)" about user "([^"]*)"')
def endpoints_body_password(world: World, user: str, method: str, body: str, password: str,
                            about: str, table: Table) -> None:
    _request_all(world, method, table, user=user, password=world.substitute(password),
                 body=body, about=about)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" including body "([^"]*)" about '
      r'user "([^"]*)"')
def endpoints_body_about(world: World, user: str, method: str, body: str, about: str,
                         table: Table) -> None:
    _request_all(world, method, table, user=user, password=None, body=body, about=about)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" including body "([^"]*)" using '
      r'the password of user "([^"]*)"')
def endpoints_body_other_password(world: World, user: str, method: str, body: str,
                                  other: str, table: Table) -> None:
    _request_all(world, method, table, user=user, password=world.password_of(other), body=body,
                 about=user)


@step(r'user "([^"]*)" requests these endpoints with "([^"]*)" using the password of user '
      r'"([^"]*)"')
def endpoints_other_password(world: World, user: str, method: str, other: str,
                             table: Table) -> None:
    _request_all(world, method, table, user=user, password=world.password_of(other),
                 about=user)


@step(r'a user requests these endpoints with "([^"]*)" and no authentication')
def endpoints_anonymous(world: World, method: str, table: Table) -> None:
    _request_all(world, method, table, user=None, password=None)


@step(r'a user requests these endpoints with "([^"]*)" with body "([^"]*)" and no '
      r'authentication about user "([^"]*)"')
def endpoints_anonymous_body(world: World, method: str, body: str, about: str,
                             table: Table) -> None:
    _request_all(world, method, table, user=None, password=None, body=body, about=about)


@step(r'a user requests these endpoints with "([^"]*)" and no authentication about user '
      r'"([^"]*)"')
def endpoints_anonymous_about(world: World, method: str, about: str, table: Table) -> None:
    _request_all(world, method, table, user=None, password=None, about=about)


@step(r'the administrator requests these endpoints with "([^"]*)"')
def endpoints_admin(world: World, method: str, table: Table) -> None:
    _request_all(world, method, table, user="admin", password=None)


def _headers(table: Table) -> dict[str, str]:
    heading = table[0]
    name_col, value_col = heading.index("header"), heading.index("value")
    return {row[name_col]: row[value_col] for row in table[1:]}


def _ocs_send(world: World, user: str | None, method: str, endpoint: str,
              headers: dict[str, str], password: str | None = None) -> None:
    url = f"/ocs/v{world.ocs_version}.php" + world.substitute(endpoint)
    world.send(method, url, user=user, password=password, headers=headers)


@step(r'user "([^"]*)" sends HTTP method "([^"]*)" to OCS API endpoint "([^"]*)"')
def ocs_send(world: World, user: str, method: str, endpoint: str) -> None:
    _ocs_send(world, user, method, endpoint, {})


@step(r'user "([^"]*)" sends HTTP method "([^"]*)" to OCS API endpoint "([^"]*)" with headers')
def ocs_send_headers(world: World, user: str, method: str, endpoint: str, table: Table) -> None:
    _ocs_send(world, user, method, endpoint, _headers(table))


@step(r'user "([^"]*)" sends HTTP method "([^"]*)" to OCS API endpoint "([^"]*)" with headers '
      r'using password "([^"]*)"')
def ocs_send_headers_password(world: World, user: str, method: str, endpoint: str,
                              password: str, table: Table) -> None:
    _ocs_send(world, user, method, endpoint, _headers(table), world.substitute(password))


@step(r'user "([^"]*)" sends HTTP method "([^"]*)" to OCS API endpoint "([^"]*)" using password '
      r'"([^"]*)"')
def ocs_send_password(world: World, user: str, method: str, endpoint: str,
                      password: str) -> None:
    _ocs_send(world, user, method, endpoint, {}, world.substitute(password))


@step(r'the administrator sends HTTP method "([^"]*)" to OCS API endpoint "([^"]*)"')
def admin_ocs_send(world: World, method: str, endpoint: str) -> None:
    _ocs_send(world, "admin", method, endpoint, {})


@step(r'the administrator sends HTTP method "([^"]*)" to OCS API endpoint "([^"]*)" with '
      r"headers")
def admin_ocs_send_headers(world: World, method: str, endpoint: str, table: Table) -> None:
    _ocs_send(world, "admin", method, endpoint, _headers(table))


@step(r"the administrator retrieves the capabilities using the capabilities API")
def capabilities(world: World) -> None:
    world.ocs("GET", "/cloud/capabilities?format=json", user="admin")


@step(r'user "([^"]*)" retrieves the capabilities using the capabilities API')
def user_capabilities(world: World, user: str) -> None:
    world.ocs("GET", "/cloud/capabilities?format=json", user=user)


@step(r"the JSON data of the response should match")
def json_data_matches(world: World, schema_text: str) -> None:
    response = world.last()
    try:
        data = json.loads(response.content)["ocs"]["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AssertionError(f"no JSON OCS data: {response.text[:300]!r}") from exc
    schema = json.loads(world.substitute(schema_text))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"JSON data does not match the schema at "
                             f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}") from exc


@step(r"token auth has been enforced",
      r"a new browser session for \"([^\"]*)\" has been started",
      r'the user has generated a new app password named "([^"]*)"')
def sessions(world: World, *_args: str) -> None:
    raise StepNotSupported("browser sessions, token enforcement and app-password generation "
                           "need ownCloud's web login")


def _capability(world: World, app: str, path: str) -> str:
    response = world.ocs("GET", "/cloud/capabilities", user="admin", record=False)
    assert response.status_code == 200, f"capabilities: HTTP {response.status_code}"
    element = world.ocs_data(response).find("capabilities/" + app + "/"
                                            + path.replace("@@@", "/"))
    assert element is not None, f"no capability {app} {path}"
    return element.text or ""


@step(r'the capabilities setting of "([^"]*)" path "([^"]*)" (?:has been confirmed to be|should '
      r'be) "([^"]*)"')
def capability_is(world: World, app: str, path: str, expected: str) -> None:
    got = _capability(world, app, path)
    assert got == expected, f"capability {app} {path}: {got!r}, expected {expected!r}"
