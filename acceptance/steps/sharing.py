"""User, group and public-link shares over OCS (Sharing.php): create, accept, inspect."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from acceptance.registry import step
from acceptance.world import World

Table = tuple[tuple[str, ...], ...]
SHARES = "/apps/files_sharing/api/v1/shares"
SHARE_TYPES = {"user": "0", "group": "1", "public_link": "3", "link": "3", "federated": "6"}
PERMISSIONS = {"read": 1, "update": 2, "create": 4, "delete": 8, "share": 16, "change": 15,
               "all": 31, "uploadwriteonly": 4}


def permissions_value(text: str) -> str:
    """'31', 'read,update' or 'all' -> the bitmask as a string."""
    text = text.strip()
    if text.isdigit():
        return text
    total = 0
    for part in text.split(","):
        name = part.strip().lower()
        if name not in PERMISSIONS:
            raise ValueError(f"unknown permission {part!r}")
        total |= PERMISSIONS[name]
    return str(total)


def relative_date(text: str) -> str | None:
    """'+3 days' / '-1 day' / 'today' as a Y-m-d date (PHP strtotime, UTC); None otherwise."""
    text = text.strip()
    if text == "today":
        return dt.datetime.now(dt.UTC).date().isoformat()
    m = re.fullmatch(r"([+-]\d+) days?", text)
    if not m:
        return None
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=int(m.group(1)))).isoformat()


def _json(world: World, response: Any) -> Any:
    try:
        return json.loads(response.content)["ocs"]
    except (ValueError, KeyError) as exc:
        raise AssertionError(f"not an OCS JSON answer: {response.text[:300]!r}") from exc


def create_share(world: World, user: str, fields: dict[str, str]) -> Any:
    response = world.ocs("POST", SHARES + "?format=json", user=user, data=fields)
    if response.status_code == 200 or response.status_code < 300:
        payload = _json(world, response)
        if isinstance(payload.get("data"), dict):
            world.last_share = payload["data"]
            world.shares.append(payload["data"])
    return response


def _require_share_ok(world: World, what: str) -> None:
    response = world.last()
    meta = world.ocs_meta(response)
    assert response.status_code == 200 and meta["statuscode"] in ("100", "200"), (
        f"{what}: HTTP {response.status_code}, OCS {meta['statuscode']} {meta['message']!r}")


def _share_fields(world: World, user: str, table: Table) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in table[1:] if table[0] != ("path",) else ():
        value = world.substitute(value, world.uid(user))
        if key == "shareType":
            value = SHARE_TYPES.get(value, value)
        elif key == "permissions":
            value = permissions_value(value)
        elif key == "shareWith":
            value = world.uid(value)
        elif key == "expireDate" and relative_date(value) is not None:
            value = str(relative_date(value))
        fields[key] = value
    return fields


def _rows(table: Table) -> Table:
    # these tables are key | value rows without a heading: behave read the first as heading
    return (("key", "value"), table[0], *table[1:])


@step(r'user "([^"]*)" has shared (?:file|folder|entry) "([^"]*)" with user "([^"]*)"'
      r'(?: with permissions "?([^"]*?)"?)?')
def has_shared_user(world: World, user: str, path: str, sharee: str,
                    permissions: str | None) -> None:
    fields = {"path": world.substitute(path), "shareType": "0", "shareWith": world.uid(sharee)}
    if permissions:
        fields["permissions"] = permissions_value(permissions)
    create_share(world, user, fields)
    _require_share_ok(world, f"share {path} with {sharee}")
    assert world.last_share is not None and world.last_share.get("share_with") == world.uid(
        sharee), f"the share does not name {sharee}: {world.last_share}"


@step(r'user "([^"]*)" has shared (?:file|folder|entry) "([^"]*)" with group "([^"]*)"'
      r'(?: with permissions "?([^"]*?)"?)?')
def has_shared_group(world: World, user: str, path: str, group: str,
                     permissions: str | None) -> None:
    fields = {"path": world.substitute(path), "shareType": "1", "shareWith": group}
    if permissions:
        fields["permissions"] = permissions_value(permissions)
    create_share(world, user, fields)
    _require_share_ok(world, f"share {path} with group {group}")
    assert world.last_share is not None and world.last_share.get("share_with") == group, (
        f"the share does not name {group}: {world.last_share}")


@step(r'user "([^"]*)" shares (?:file|folder|entry) "([^"]*)" with user "([^"]*)"'
      r'(?: with permissions "?([^"]*?)"?)? using the sharing API')
def shares_user(world: World, user: str, path: str, sharee: str,
                permissions: str | None) -> None:
    fields = {"path": world.substitute(path), "shareType": "0", "shareWith": world.uid(sharee)}
    if permissions:
        fields["permissions"] = permissions_value(permissions)
    create_share(world, user, fields)


@step(r'user "([^"]*)" shares (?:file|folder|entry) "([^"]*)" with group "([^"]*)"'
      r'(?: with permissions "?([^"]*?)"?)? using the sharing API')
def shares_group(world: World, user: str, path: str, group: str,
                 permissions: str | None) -> None:
    fields = {"path": world.substitute(path), "shareType": "1", "shareWith": group}
    if permissions:
        fields["permissions"] = permissions_value(permissions)
    create_share(world, user, fields)


@step(r'user "([^"]*)" has created a share with settings')
def has_created_share(world: World, user: str, table: Table) -> None:
    create_share(world, user, _share_fields(world, user, _rows(table)))
    assert world.last().status_code == 200, f"create share: HTTP {world.last().status_code}"


@step(r'user "([^"]*)" creates a share using the sharing API with settings')
def creates_share(world: World, user: str, table: Table) -> None:
    create_share(world, user, _share_fields(world, user, _rows(table)))


@step(r'user "([^"]*)" has created a public link share with settings')
def has_created_link(world: World, user: str, table: Table) -> None:
    fields = _share_fields(world, user, _rows(table))
    fields.setdefault("shareType", "3")
    create_share(world, user, fields)
    _require_share_ok(world, "create a public link")


@step(r'user "([^"]*)" creates a public link share using the sharing API with settings')
def creates_link(world: World, user: str, table: Table) -> None:
    fields = _share_fields(world, user, _rows(table))
    fields.setdefault("shareType", "3")
    create_share(world, user, fields)


@step(r'user "([^"]*)" has created a public link share of (?:file|folder) "([^"]*)"')
def has_created_link_of(world: World, user: str, path: str) -> None:
    create_share(world, user, {"path": world.substitute(path), "shareType": "3"})
    _require_share_ok(world, f"create a public link of {path}")


def _received(world: World, user: str) -> list[dict[str, Any]]:
    response = world.ocs("GET", SHARES + "?format=json&shared_with_me=true&state=all",
                         user=user, record=False)
    assert response.status_code == 200, f"received shares: HTTP {response.status_code}"
    data = _json(world, response).get("data") or []
    return list(data)


def _react(world: World, user: str, action: str, share: str, offered_by: str) -> None:
    owner = world.uid(offered_by)
    name = share.strip("/").split("/")[-1]
    found = [s for s in _received(world, user)
             if s.get("uid_owner") == owner
             and str(s.get("file_target", "")).strip("/").split("/")[-1] == name]
    assert found, f"{user} has no share {share} offered by {offered_by}"
    method = "POST" if action in ("accepted", "accepts") else "DELETE"
    world.ocs(method, f"{SHARES}/pending/{found[0]['id']}?format=json", user=user)


@step(r'user "([^"]*)" has (accepted|declined) share "([^"]*)" offered by user "([^"]*)"')
def has_reacted(world: World, user: str, action: str, share: str, offered_by: str) -> None:
    _react(world, user, action, share, offered_by)
    assert world.last().status_code == 200, f"{action}: HTTP {world.last().status_code}"


@step(r'user "([^"]*)" (accepts|declines) share "([^"]*)" offered by user "([^"]*)" using the '
      r"sharing API")
def reacts(world: World, user: str, action: str, share: str, offered_by: str) -> None:
    _react(world, user, action, share, offered_by)


@step(r'the response when user "([^"]*)" gets the info of the last share should include')
def last_share_includes(world: World, user: str, table: Table) -> None:
    assert world.last_share is not None, "no share was created before this step"
    response = world.ocs("GET", f"{SHARES}/{world.last_share['id']}?format=json", user=user,
                         record=False)
    assert response.status_code == 200, f"share info: HTTP {response.status_code}"
    data = _json(world, response)["data"]
    share = data[0] if isinstance(data, list) and data else data
    assert isinstance(share, dict), f"no share in {response.text[:300]!r}"
    _includes(world, share, _rows(table), world.last_share.get("uid_owner", user))


SHAREE_FIELDS = ("share_with", "share_with_displayname", "share_with_additional_info")


def _includes(world: World, share: dict[str, Any], table: Table, owner: str,
              sharee: str | None = None) -> None:
    """ownCloud's checkFields: each listed field has the value, with its wildcards."""
    problems = []
    for key, value in table[1:]:
        about = world.uid(sharee) if sharee is not None and key in SHAREE_FIELDS else \
            world.uid(owner)
        want = world.substitute(value, about)
        if key not in share:
            problems.append(f"{key}: missing")
            continue
        got = share[key]
        got_text = "" if got is None else ("1" if got is True else "0" if got is False
                                           else str(got))
        if want == "ANY_VALUE":
            continue
        # ownCloud reads the XML answer, where every value is a string; ours is JSON
        if want == "A_STRING" and got_text:
            continue
        if want == "A_NUMBER" and got_text.lstrip("-").isdigit():
            continue
        if want == "A_TOKEN" and isinstance(got, str) and len(got) == 15:
            continue
        if key == "share_type":
            want = SHARE_TYPES.get(want, want)
        elif key == "permissions":
            want = permissions_value(want)
        elif key == "expiration" and relative_date(want) is not None:
            want = f"{relative_date(want)} 00:00:00"
        elif key in ("uid_owner", "uid_file_owner", "share_with"):
            want = world.uid(want)
        if got_text != want:
            problems.append(f"{key}: got {got_text!r}, expected {want!r}")
    assert not problems, "; ".join(problems)


def _last_data(world: World) -> dict[str, Any]:
    data = _json(world, world.last()).get("data")
    if isinstance(data, list):
        assert data, "the last response holds no share"
        data = data[0]
    assert isinstance(data, dict), f"no share in the last response: {data!r}"
    return data


@step(r'the fields of the last response to user "([^"]*)" should include')
def fields_include(world: World, owner: str, table: Table) -> None:
    _includes(world, _last_data(world), _rows(table), owner)


@step(r'the fields of the last response to user "([^"]*)" sharing with (?:user|group) '
      r'"([^"]*)" should include')
def fields_include_sharee(world: World, owner: str, sharee: str, table: Table) -> None:
    _includes(world, _last_data(world), _rows(table), owner, sharee)


def _share_info(world: World, user: str, record: bool) -> dict[str, Any]:
    assert world.last_share is not None, "no share was created before this step"
    response = world.ocs("GET", f"{SHARES}/{world.last_share['id']}?format=json", user=user,
                         record=record)
    assert response.status_code == 200, f"share info: HTTP {response.status_code}"
    data = _json(world, response)["data"]
    share = data[0] if isinstance(data, list) and data else data
    assert isinstance(share, dict), f"no share in {response.text[:300]!r}"
    return share


@step(r'the information of the last share of user "([^"]*)" should include')
def last_share_info(world: World, user: str, table: Table) -> None:
    _includes(world, _share_info(world, user, False), _rows(table), user)


@step(r'the info about the last share by user "([^"]*)" with user "([^"]*)" should include')
def last_share_info_with(world: World, owner: str, sharee: str, table: Table) -> None:
    _includes(world, _share_info(world, owner, False), _rows(table), owner, sharee)


@step(r'user "([^"]*)" gets the info of the last share using the sharing API')
def gets_last_share(world: World, user: str) -> None:
    assert world.last_share is not None, "no share was created before this step"
    world.ocs("GET", f"{SHARES}/{world.last_share['id']}?format=json", user=user)


@step(r'user "([^"]*)" deletes the last share(?: of user "[^"]*")? using the sharing API')
def deletes_last_share(world: World, user: str) -> None:
    assert world.last_share is not None, "no share was created before this step"
    world.ocs("DELETE", f"{SHARES}/{world.last_share['id']}?format=json", user=user)


def _update_fields(world: World, user: str, table: Table) -> dict[str, str]:
    fields = {}
    for key, value in _rows(table)[1:]:
        value = world.substitute(value, world.uid(user))
        if key == "permissions":
            value = permissions_value(value)
        elif key == "expireDate" and relative_date(value) is not None:
            value = str(relative_date(value))
        fields[key] = value
    return fields


@step(r'user "([^"]*)" updates the last share using the sharing API with')
def updates_last_share(world: World, user: str, table: Table) -> None:
    assert world.last_share is not None, "no share was created before this step"
    world.ocs("PUT", f"{SHARES}/{world.last_share['id']}?format=json", user=user,
              data=_update_fields(world, user, table))


@step(r'user "([^"]*)" has updated the last share with')
def has_updated_last_share(world: World, user: str, table: Table) -> None:
    updates_last_share(world, user, table)
    assert world.last().status_code == 200, f"update share: HTTP {world.last().status_code}"


@step(r'user "([^"]*)" updates the last public link share using the sharing API with')
def updates_last_link(world: World, user: str, table: Table) -> None:
    links = [s for s in world.shares if str(s.get("share_type")) == "3"]
    assert links, "no public link was created before this step"
    world.ocs("PUT", f"{SHARES}/{links[-1]['id']}?format=json", user=user,
              data=_update_fields(world, user, table))


@step(r'user "([^"]*)" should be able to accept pending share "([^"]*)" offered by user '
      r'"([^"]*)"')
def able_to_accept(world: World, user: str, share: str, offered_by: str) -> None:
    kept = world.response
    _react(world, user, "accepts", share, offered_by)
    response = world.last()
    world.response = kept
    meta = world.ocs_meta(response)
    assert response.status_code == 200 and meta["statuscode"] in ("100", "200"), (
        f"accepting {share}: HTTP {response.status_code}, OCS {meta['statuscode']}")


STATES = {"pending": "1", "accepted": "0", "declined": "2"}


def _in_state(world: World, user: str, state: str) -> list[dict[str, Any]]:
    response = world.ocs("GET", SHARES + f"?format=json&shared_with_me=true&state="
                         f"{STATES[state]}", user=user, record=False)
    assert response.status_code == 200, f"received shares: HTTP {response.status_code}"
    return list(_json(world, response).get("data") or [])


@step(r'the sharing API should report to user "([^"]*)" that no shares are in the '
      r"(pending|accepted|declined) state")
def none_in_state(world: World, user: str, state: str) -> None:
    found = _in_state(world, user, state)
    assert not found, f"{state} shares of {user}: {[s.get('file_target') for s in found]}"


@step(r'the sharing API should report to user "([^"]*)" that these shares are in the '
      r"(pending|accepted|declined) state")
def these_in_state(world: World, user: str, state: str, table: Table) -> None:
    found = _in_state(world, user, state)
    paths = {str(s.get("path", "")).rstrip("/") for s in found} | {
        str(s.get("file_target", "")).rstrip("/") for s in found}
    missing = [row[0] for row in table[1:] if row[0].rstrip("/") not in paths]
    assert not missing, f"not {state} for {user}: {missing}; {state}: {sorted(paths)}"


@step(r'user "([^"]*)" gets all the shares shared with (?:him|her|them) using the sharing API')
def gets_received(world: World, user: str) -> None:
    world.ocs("GET", SHARES + "?format=json&shared_with_me=true", user=user)


@step(r'user "([^"]*)" gets all shares shared by (?:him|her|them) using the sharing API')
def gets_own(world: World, user: str) -> None:
    world.ocs("GET", SHARES + "?format=json", user=user)


@step(r'user "([^"]*)" should not have any received shares')
def no_received(world: World, user: str) -> None:
    received = _received(world, user)
    assert not received, f"{user} receives {[s.get('file_target') for s in received]}"
