"""PROPFIND and PROPPATCH checks (WebDavPropertiesContext): properties of a resource, stored
etags and whether they changed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

from acceptance.registry import step
from acceptance.world import World

Table = tuple[tuple[str, ...], ...]

NAMESPACES = {"d": "DAV:", "oc": "http://owncloud.org/ns", "s": "http://sabredav.org/ns",
              "ocs": "http://open-collaboration-services.org/ns"}


def clark(name: str) -> str:
    """'oc:fileid' -> '{http://owncloud.org/ns}fileid'; a bare name is in DAV:."""
    prefix, _, local = name.rpartition(":")
    return f"{{{NAMESPACES.get(prefix or 'd', prefix)}}}{local}"


def propfind_body(names: list[str]) -> bytes:
    if not names:
        return (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:allprop/>'
                b"</d:propfind>")
    props = []
    for name in names:
        ns, local = clark(name)[1:].split("}")
        props.append(f'<x:{local} xmlns:x="{ns}"/>')
    return ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop>' + "".join(props)
            + "</d:prop></d:propfind>").encode()


def propfind(world: World, user: str, path: str, names: list[str], depth: str = "0",
             record: bool = True) -> None:
    world.send("PROPFIND", world.dav_path(user, world.substitute(path)), user=user,
               headers={"Depth": depth}, content=propfind_body(names), record=record)


@step(r'user "([^"]*)" gets the properties of (?:file|folder|entry) "([^"]*)" using the WebDAV '
      r"API")
def get_properties(world: World, user: str, path: str) -> None:
    _propfind_xml_only(world, user, path, "0")


def _propfind_xml_only(world: World, user: str, path: str, depth: str) -> None:
    world.xml_response = world.send(
        "PROPFIND", world.dav_path(user, world.substitute(path)), user=user,
        headers={"Depth": depth}, content=propfind_body([]), record=False)


@step(r'user "([^"]*)" gets the properties of (?:file|folder|entry) "([^"]*)" with depth (\d+|'
      r'infinity) using the WebDAV API')
def get_properties_depth(world: World, user: str, path: str, depth: str) -> None:
    _propfind_xml_only(world, user, path, depth)


@step(r'user "([^"]*)" gets the following properties of (?:file|folder|entry) "([^"]*)" using '
      r"the WebDAV API")
def get_named_properties(world: World, user: str, path: str, table: Table) -> None:
    # like "gets the properties": ownCloud's step keeps the last HTTP status (features check
    # the upload's 201 right after it)
    world.xml_response = world.send(
        "PROPFIND", world.dav_path(user, world.substitute(path)), user=user,
        headers={"Depth": "0"}, content=propfind_body([row[0] for row in table[1:]]),
        record=False)


def _single_prop(world: World, name: str) -> ET.Element | None:
    responses = world.xml().findall("{DAV:}response")
    assert len(responses) == 1, f"expected a single response, got {len(responses)}"
    for propstat in responses[0].findall("{DAV:}propstat"):
        status = propstat.findtext("{DAV:}status") or ""
        found = propstat.find(f"{{DAV:}}prop/{clark(name)}")
        if found is not None and " 200 " in status:
            return found
    return None


def _value(element: ET.Element) -> str:
    """A property's value as ownCloud's tests read it: its text, or its first child's name."""
    if len(element):
        child = element[0]
        return child.tag.split("}")[-1] if child.text is None else child.text
    return element.text or ""


@step(r'the single response should contain a property "([^"]*)" with value "([^"]*)"')
def single_value(world: World, name: str, expected: str) -> None:
    found = _single_prop(world, name)
    assert found is not None, f"no property {name} in the PROPFIND answer"
    want = world.substitute(expected)
    assert _value(found) == want, f"{name}: {_value(found)!r}, expected {want!r}"


@step(r'the single response should contain a property "([^"]*)" with value like "([^"]*)"')
def single_value_like(world: World, name: str, pattern: str) -> None:
    found = _single_prop(world, name)
    assert found is not None, f"no property {name} in the PROPFIND answer"
    regex = _php_pattern(world.substitute(pattern))
    assert regex.search(_value(found)), f"{name}: {_value(found)!r} does not match {pattern}"


def _php_pattern(text: str) -> re.Pattern[str]:
    m = re.fullmatch(r"/(.*)/([a-z]*)", text, re.S)
    if not m:
        return re.compile(re.escape(text))
    return re.compile(m.group(1), re.I if "i" in m.group(2) else 0)


@step(r'the single response should contain a property "([^"]*)" with a child property "([^"]*)"')
def single_child(world: World, name: str, child: str) -> None:
    found = _single_prop(world, name)
    assert found is not None, f"no property {name}"
    assert found.find(clark(child)) is not None, f"{name} has no child {child}"


@step(r"the properties response should contain an etag")
def has_etag(world: World) -> None:
    found = _single_prop(world, "d:getetag")
    assert found is not None and re.fullmatch(r'"[^"]+"', found.text or ""), (
        "no quoted etag in the PROPFIND answer")


def etag_of(world: World, user: str, path: str) -> str:
    response = world.send("PROPFIND", world.dav_path(user, world.substitute(path)), user=user,
                          headers={"Depth": "0"}, content=propfind_body(["d:getetag"]),
                          record=False)
    assert response.status_code == 207, f"PROPFIND {path}: HTTP {response.status_code}"
    etag = world.xml(response).findtext(".//{DAV:}getetag") or ""
    assert etag, f"{path} of {user} has no etag"
    return etag


@step(r'user "([^"]*)" has stored etag of element "([^"]*)"')
def store_etag(world: World, user: str, path: str) -> None:
    world.etags[(world.uid(user), path)] = etag_of(world, user, path)


@step(r'user "([^"]*)" has stored etag of element "([^"]*)" on path "([^"]*)"')
def store_etag_on(world: World, user: str, path: str, stored_as: str) -> None:
    world.etags[(world.uid(user), stored_as)] = etag_of(world, user, path)


def _etags_compare(world: World, table: Table, changed: bool) -> None:
    problems = []
    for user, path in table[1:]:
        key = (world.uid(user), path)
        assert key in world.etags, f"no etag stored for {path} of {user}"
        now = etag_of(world, user, path)
        if (now != world.etags[key]) != changed:
            problems.append(f"{user} {path}: {world.etags[key]} -> {now}")
    verb = "changed" if changed else "stayed the same"
    assert not problems, f"these etags should have {verb}: " + "; ".join(problems)


@step(r"these etags should have changed:")
def etags_changed(world: World, table: Table) -> None:
    _etags_compare(world, table, True)


@step(r"these etags should not have changed:")
def etags_unchanged(world: World, table: Table) -> None:
    _etags_compare(world, table, False)


def proppatch(world: World, user: str, path: str, name: str, value: str | None,
              namespace: str | None = None) -> None:
    ns, local = (namespace, name) if namespace else clark(name)[1:].split("}")
    if value is None:
        body = (f'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:remove><d:prop>'
                f'<x:{local} xmlns:x="{ns}"/></d:prop></d:remove></d:propertyupdate>')
    else:
        body = (f'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop>'
                f'<x:{local} xmlns:x="{ns}">{value}</x:{local}></d:prop></d:set>'
                f"</d:propertyupdate>")
    world.send("PROPPATCH", world.dav_path(user, world.substitute(path)), user=user,
               content=body.encode())


@step(r'user "([^"]*)" has set property "([^"]*)" with namespace "([^"]*)" of (?:file|folder) '
      r'"([^"]*)" to "([^"]*)"')
def has_set_property(world: World, user: str, name: str, namespace: str, path: str,
                     value: str) -> None:
    ns = _namespace(namespace)
    proppatch(world, user, path, name, value, ns)
    assert world.last().status_code == 207, f"PROPPATCH: HTTP {world.last().status_code}"


def _namespace(text: str) -> str:
    """'x1='http://whatever.org/ns'' -> the URI; a bare URI stays."""
    m = re.fullmatch(r"\w+='([^']*)'", text)
    return m.group(1) if m else text


@step(r'user "([^"]*)" gets a custom property "([^"]*)" with namespace "([^"]*)" of (?:file|'
      r'folder) "([^"]*)"')
def get_custom(world: World, user: str, name: str, namespace: str, path: str) -> None:
    ns = _namespace(namespace)
    body = (f'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><x:{name} xmlns:x="{ns}"/>'
            f"</d:prop></d:propfind>")
    world.send("PROPFIND", world.dav_path(user, world.substitute(path)), user=user,
               headers={"Depth": "0"}, content=body.encode())
    world.extra["custom_ns"] = ns


@step(r'the response should contain a custom "([^"]*)" property with namespace "([^"]*)" and '
      r'value "([^"]*)"')
def custom_value(world: World, name: str, namespace: str, expected: str) -> None:
    ns = _namespace(namespace)
    found = world.xml().find(f".//{{{ns}}}{name}")
    assert found is not None, f"no {name} in {(world.xml_response or world.last()).text[:300]!r}"
    assert (found.text or "") == expected, f"{name}: {found.text!r}, expected {expected!r}"


@step(r'the DAV exception should be "([^"]*)"')
def dav_exception(world: World, expected: str) -> None:
    got = world.xml().findtext("{http://sabredav.org/ns}exception")
    assert got == expected, f"DAV exception {got!r}, expected {expected!r}"


@step(r'the DAV message should be "([^"]*)"')
def dav_message(world: World, expected: str) -> None:
    got = world.xml().findtext("{http://sabredav.org/ns}message")
    assert got == expected, f"DAV message {got!r}, expected {expected!r}"


@step(r'there should be an entry with href containing "([^"]*)" in the response to user '
      r'"([^"]*)"')
def href_containing(world: World, fragment: str, user: str) -> None:
    want = world.substitute(fragment, world.uid(user))
    # compared decoded, as ownCloud's step does
    hrefs = [unquote(h.text or "") for h in world.xml().iter("{DAV:}href")]
    assert any(want in h for h in hrefs), f"no href containing {want!r} among {hrefs}"


@step(r'as user "([^"]*)" (?:file|folder|entry) "([^"]*)" should contain a property "([^"]*)" '
      r'with value "([^"]*)"')
def resource_property(world: World, user: str, path: str, name: str, expected: str) -> None:
    response = world.send("PROPFIND", world.dav_path(user, world.substitute(path)), user=user,
                          headers={"Depth": "0"}, content=propfind_body([name]), record=False)
    assert response.status_code == 207, f"PROPFIND {path}: HTTP {response.status_code}"
    found = world.xml(response).find(f".//{{DAV:}}prop/{clark(name)}")
    assert found is not None, f"no {name} on {path}"
    want = world.substitute(expected)
    assert _value(found) == want, f"{name} of {path}: {_value(found)!r}, expected {want!r}"
