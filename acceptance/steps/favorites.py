"""Favorites (FavoritesContext): oc:favorite by PROPPATCH, checked by PROPFIND and REPORT."""

from __future__ import annotations

from urllib.parse import unquote

from acceptance.registry import step
from acceptance.steps.properties import proppatch
from acceptance.world import World

Table = tuple[tuple[str, ...], ...]


def _favorite(world: World, user: str, path: str, value: str) -> None:
    proppatch(world, user, path, "oc:favorite", value)


@step(r'user "([^"]*)" favorites element "([^"]*)" using the WebDAV API')
def favorites(world: World, user: str, path: str) -> None:
    _favorite(world, user, path, "1")


@step(r'user "([^"]*)" unfavorites element "([^"]*)" using the WebDAV API')
def unfavorites(world: World, user: str, path: str) -> None:
    _favorite(world, user, path, "0")


@step(r'user "([^"]*)" has favorited element "([^"]*)"')
def has_favorited(world: World, user: str, path: str) -> None:
    _favorite(world, user, path, "1")
    assert world.last().status_code == 207, f"PROPPATCH favorite: {world.last().status_code}"


@step(r'user "([^"]*)" has unfavorited element "([^"]*)"')
def has_unfavorited(world: World, user: str, path: str) -> None:
    _favorite(world, user, path, "0")
    assert world.last().status_code == 207, f"PROPPATCH favorite: {world.last().status_code}"


def _is_favorite(world: World, user: str, path: str) -> bool:
    response = world.send("PROPFIND", world.dav_path(user, path), user=user,
                          headers={"Depth": "0"},
                          content=b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" '
                                  b'xmlns:oc="http://owncloud.org/ns"><d:prop><oc:favorite/>'
                                  b"</d:prop></d:propfind>", record=False)
    assert response.status_code == 207, f"PROPFIND {path}: HTTP {response.status_code}"
    value = world.xml(response).findtext(".//{http://owncloud.org/ns}favorite")
    return value == "1"


@step(r'as user "([^"]*)" (?:file|folder|entry) "([^"]*)" should be favorited')
def is_favorited(world: World, user: str, path: str) -> None:
    assert _is_favorite(world, user, path), f"{path} of {user} is not a favorite"


@step(r'as user "([^"]*)" (?:file|folder|entry) "([^"]*)" should not be favorited')
def is_not_favorited(world: World, user: str, path: str) -> None:
    assert not _is_favorite(world, user, path), f"{path} of {user} is a favorite"


def favorite_hrefs(world: World, user: str, limit: int | None = None) -> list[str]:
    search = f"<oc:search><oc:limit>{limit}</oc:limit></oc:search>" if limit else ""
    body = ('<?xml version="1.0"?><oc:filter-files xmlns:d="DAV:" '
            'xmlns:oc="http://owncloud.org/ns"><d:prop><oc:favorite/></d:prop>'
            f"<oc:filter-rules><oc:favorite>1</oc:favorite></oc:filter-rules>{search}"
            "</oc:filter-files>")
    response = world.send("REPORT", world.dav_root(user) + "/", user=user,
                          content=body.encode())
    assert response.status_code == 207, f"REPORT favorites: HTTP {response.status_code}"
    return [unquote(h.text or "") for h in world.xml(response).iter("{DAV:}href")]


@step(r'user "([^"]*)" should have favorited the following elements')
def favorited_list(world: World, user: str, table: Table) -> None:
    hrefs = favorite_hrefs(world, user)
    root = unquote(world.dav_root(user))
    for (path,) in table[1:]:
        want = root + "/" + path.strip("/")
        assert any(h.rstrip("/") == want for h in hrefs), f"{path} not among favorites {hrefs}"


@step(r'user "([^"]*)" should not have favorited the following elements')
def not_favorited_list(world: World, user: str, table: Table) -> None:
    hrefs = favorite_hrefs(world, user)
    root = unquote(world.dav_root(user))
    for (path,) in table[1:]:
        want = root + "/" + path.strip("/")
        assert not any(h.rstrip("/") == want for h in hrefs), f"{path} is a favorite"
