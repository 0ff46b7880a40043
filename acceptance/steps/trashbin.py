"""The trash bin over WebDAV (TrashbinContext): listing by original location, restore, empty."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

from acceptance.registry import step
from acceptance.world import World

Table = tuple[tuple[str, ...], ...]
OC = "{http://owncloud.org/ns}"
TRASH_PROPS = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org'
               b'/ns"><d:prop><oc:trashbin-original-filename/><oc:trashbin-original-location/>'
               b"<oc:trashbin-delete-timestamp/><d:resourcetype/><d:getcontentlength/>"
               b"</d:prop></d:propfind>")


@dataclass(frozen=True)
class TrashItem:
    href: str
    original_location: str
    collection: bool


def _trash_root(world: World, user: str) -> str:
    return f"/remote.php/dav/trash-bin/{quote(world.uid(user), safe='')}/"


def _level(world: World, user: str, href: str, record: bool) -> list[TrashItem]:
    response = world.send("PROPFIND", quote(href, safe="/"), user=user,
                          headers={"Depth": "1"}, content=TRASH_PROPS, record=record)
    assert response.status_code == 207, (
        f"PROPFIND {href} in the trash bin of {user}: HTTP {response.status_code}")
    items = []
    for resp in world.xml(response).findall("{DAV:}response"):
        child = unquote(resp.findtext("{DAV:}href") or "")
        if child.rstrip("/") == unquote(href).rstrip("/"):
            continue
        location = resp.findtext(f".//{OC}trashbin-original-location") or ""
        collection = resp.find(".//{DAV:}resourcetype/{DAV:}collection") is not None
        items.append(TrashItem(child, location, collection))
    return items


def listing(world: World, user: str, record: bool = False) -> list[TrashItem]:
    """Every item of `user`'s trash, inside trashed folders too (as ownCloud's step lists
    the trash level by level)."""
    pending = [_trash_root(world, user)]
    items: list[TrashItem] = []
    while pending:
        level = _level(world, user, pending.pop(), record)
        items.extend(level)
        pending.extend(item.href for item in level if item.collection)
    return items


def _in_trash(world: World, user: str, original: str) -> TrashItem | None:
    want = original.strip("/")
    for item in listing(world, user):
        if item.original_location.strip("/") == want:
            return item
    return None


@step(r'as "([^"]*)" the (?:file|folder|entry) with original path "([^"]*)" should exist in the '
      r"trashbin")
def in_trash(world: World, user: str, original: str) -> None:
    found = _in_trash(world, user, world.substitute(original))
    assert found is not None, f"{original} is not in the trash bin of {user}"


@step(r'as "([^"]*)" the (?:file|folder|entry) with original path "([^"]*)" should not exist in '
      r"the trashbin")
def not_in_trash(world: World, user: str, original: str) -> None:
    found = _in_trash(world, user, world.substitute(original))
    assert found is None, f"{original} is in the trash bin of {user}: {found}"


@step(r'user "([^"]*)" lists the resources in the trashbin with depth "([^"]*)" using the '
      r"WebDAV API")
def list_trash(world: World, user: str, depth: str) -> None:
    world.send("PROPFIND", _trash_root(world, user), user=user, headers={"Depth": depth},
               content=TRASH_PROPS)


def restore(world: World, user: str, original: str, destination: str | None = None) -> None:
    item = _in_trash(world, user, original)
    assert item is not None, f"{original} is not in the trash bin of {user}"
    target = destination if destination is not None else original
    dest = (str(world.client.base_url).rstrip("/")
            + world.dav_path(user, target, "new"))
    world.send("MOVE", quote(item.href, safe="/"), user=user, headers={"Destination": dest})


@step(r'user "([^"]*)" restores the (?:file|folder) with original path "([^"]*)" using the '
      r"trashbin API")
def restores(world: World, user: str, original: str) -> None:
    restore(world, user, world.substitute(original))


@step(r'user "([^"]*)" has restored the (?:file|folder) with original path "([^"]*)"')
def has_restored(world: World, user: str, original: str) -> None:
    restore(world, user, world.substitute(original))
    got = world.last().status_code
    assert got in (201, 204), f"restore of {original}: HTTP {got}"


@step(r'user "([^"]*)" restores the (?:file|folder) with original path "([^"]*)" to "([^"]*)" '
      r"using the trashbin API")
def restores_to(world: World, user: str, original: str, destination: str) -> None:
    restore(world, user, world.substitute(original), world.substitute(destination))


@step(r'user "([^"]*)" empties the trashbin using the trashbin API')
def empties(world: World, user: str) -> None:
    world.send("DELETE", _trash_root(world, user), user=user)


@step(r'user "([^"]*)" has emptied the trashbin')
def has_emptied(world: World, user: str) -> None:
    empties(world, user)
    assert world.last().status_code == 204, f"empty trash: HTTP {world.last().status_code}"


@step(r'the trashbin of user "([^"]*)" should be empty',
      r'as "([^"]*)" the trashbin should be empty')
def trash_empty(world: World, user: str) -> None:
    items = listing(world, user)
    assert not items, f"the trash bin of {user} holds {[i.original_location for i in items]}"


@step(r'user "([^"]*)" deletes the (?:file|folder) with original path "([^"]*)" from the '
      r"trashbin using the trashbin API")
def delete_from_trash(world: World, user: str, original: str) -> None:
    item = _in_trash(world, user, world.substitute(original))
    assert item is not None, f"{original} is not in the trash bin of {user}"
    world.send("DELETE", quote(item.href, safe="/"), user=user)


@step(r'as "([^"]*)" (?:file|folder|entry) "([^"]*)" should exist in the trashbin')
def path_in_trash(world: World, user: str, path: str) -> None:
    """The first segment is a trashed item's original name, the rest a path inside it; the
    trash-bin tree names everything by fileid, so each level is looked up by its name."""
    first, *rest = world.substitute(path).strip("/").split("/")
    items = [i for i in listing(world, user)
             if i.original_location.strip("/").split("/")[-1] == first]
    assert items, f"no trashed item named {first} for {user}"
    href = items[-1].href
    for name in rest:
        response = world.send("PROPFIND", quote(href, safe="/"), user=user,
                              headers={"Depth": "1"}, content=TRASH_PROPS, record=False)
        assert response.status_code == 207, f"{href} in the trash of {user}: HTTP " \
                                            f"{response.status_code}"
        children = {}
        for resp in world.xml(response).findall("{DAV:}response"):
            child = unquote(resp.findtext("{DAV:}href") or "")
            if child.rstrip("/") != href.rstrip("/"):
                children[resp.findtext(f".//{OC}trashbin-original-filename") or ""] = child
        assert name in children, f"{path}: no {name} in the trash of {user} " \
                                 f"(found {sorted(children)})"
        href = children[name]
