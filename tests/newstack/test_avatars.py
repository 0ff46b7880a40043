"""Avatars (newstack/avatars.py, newstack/avatar_image.py): GET /index.php/avatar/<uid>/<size>
and /remote.php/dav/avatars/<uid>/<size>.<ext> answer alike on the legacy server (ownCloud's own
avatar files) and on the new stack (the migrated avatar): same status, type and bytes for a
user with an avatar, one without, and no such user; resized as oC10 resizes."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from PIL import Image

from bridge.config import Settings
from bridge.oc10.formats import avatar_path
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.delta import DeltaPass
from migrate.runner import UserMigration
from migrate.source import LegacySource
from newstack import avatar_image
from newstack.app import NewstackApp
from newstack.avatars import (
    Avatar,
    VariantCache,
    index_answer,
    index_size,
    php_intval,
    resized_blob_id,
)
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack, open_newstack
from newstack.sharing.view import SharingBackend


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def same(self) -> tuple[int, str | None, bytes]:
        return self.status, self.headers.get("content-type"), self.body


def call(app: NewstackApp, path: str, auth: tuple[str, str] | None,
         headers: dict[str, str] | None = None) -> Answer:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path,
                               "wsgi.input": io.BytesIO(b"")}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        environ["HTTP_AUTHORIZATION"] = f"Basic {token}"
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    started: list[Any] = []
    body = b"".join(app(environ, lambda status, hdrs: started.append((status, hdrs))))
    status, hdrs = started[0]
    return Answer(int(status.split()[0]), {k.lower(): v for k, v in hdrs}, body)


@pytest.fixture
def instance(tmp_path: Path) -> Manifest:
    profile = dataclasses.replace(get_profile("small", users=4, files_per_user=5),
                                  hash_cost=4, large_every=0)
    manifest, _ = build_instance(tmp_path / "legacy", "sqlite", profile, 8)
    return manifest


@pytest.fixture
def stacks(instance: Manifest, tmp_path: Path
           ) -> Iterator[tuple[NewstackApp, NewstackApp, LegacySource, Newstack]]:
    source = LegacySource(open_instance(Path(instance.config_php)))
    defaults = Settings()
    new = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
        defaults.newstack, data_dir=tmp_path / "new")))
    for user in instance.users:
        UserMigration(source, new.store, new.driver, user["uid"]).run()
    old = Oc10Backend(open_instance(Path(instance.config_php)))
    yield NewstackApp(SharingBackend(old)), NewstackApp(SharingBackend(new.backend)), source, new
    old.close()
    new.close()
    source.instance.close()


def decoded(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


def png_of(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "red").save(out, "PNG")
    return out.getvalue()


def avatar_file(source: LegacySource, uid: str) -> Path:
    return source.instance.data_dir / avatar_path(uid) / "avatar.png"


def user_with_avatar(instance: Manifest, source: LegacySource) -> tuple[str, tuple[str, str]]:
    """The first user with an uploaded avatar, and their credentials."""
    user = next(u for u in instance.users if avatar_file(source, u["uid"]).is_file())
    return user["uid"], (user["uid"], user["password"])


def test_both_stacks_answer_alike(
        instance: Manifest,
        stacks: tuple[NewstackApp, NewstackApp, LegacySource, Newstack]) -> None:
    legacy, new, source, _stack = stacks
    users = {u["uid"]: u for u in instance.users}
    with_avatar = [uid for uid in users if avatar_file(source, uid).is_file()]
    without = [uid for uid in users if uid not in with_avatar]
    assert with_avatar and without, "the fixture gives every other user an avatar"
    me = (without[0], users[without[0]]["password"])

    for uid in (with_avatar[0], without[0], "nobody"):
        for url in (f"/index.php/avatar/{uid}/64", f"/avatar/{uid}/3000",
                    f"/remote.php/dav/avatars/{uid}/96.png",
                    f"/remote.php/dav/avatars/{uid}/96.jpeg",
                    f"/remote.php/dav/avatars/{uid}/96.jpg",
                    f"/remote.php/dav/avatars/{uid}/0.png",
                    f"/remote.php/dav/avatars/{uid}/2000.png"):
            a, b = call(legacy, url, me), call(new, url, me)
            assert a.same == b.same, url
            assert a.headers.get("etag") == b.headers.get("etag"), url

    image = call(new, f"/index.php/avatar/{with_avatar[0]}/64", me)
    assert (image.status, image.headers["content-type"]) == (200, "image/png")
    assert decoded(image.body) == ("PNG", (64, 64))
    assert image.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert image.headers["pragma"] == "public"
    assert image.headers["last-modified"].endswith(" +0000")
    dav = call(new, f"/remote.php/dav/avatars/{with_avatar[0]}/96.png", me)
    assert (dav.status, decoded(dav.body)) == (200, ("PNG", (96, 96)))
    jpeg = call(new, f"/remote.php/dav/avatars/{with_avatar[0]}/32.jpeg", me)
    assert (jpeg.status, jpeg.headers["content-type"], decoded(jpeg.body)) == \
        (200, "image/jpeg", ("JPEG", (32, 32)))
    # out of bounds on the index: clamped, as AvatarController does
    assert decoded(call(legacy, f"/avatar/{with_avatar[0]}/3000", me).body) == \
        ("PNG", (2048, 2048))
    assert decoded(call(legacy, f"/avatar/{with_avatar[0]}/0", me).body) == ("PNG", (64, 64))

    letter = call(new, f"/index.php/avatar/{without[0]}/64", me)
    assert letter.status == 200
    assert letter.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(letter.body) == \
        {"data": {"displayname": users[without[0]]["display_name"]}}
    assert json.loads(call(new, "/index.php/avatar/nobody/64", me).body) == \
        {"data": {"displayname": ""}}
    assert call(new, f"/remote.php/dav/avatars/{without[0]}/96.png", me).status == 404
    assert call(new, "/remote.php/dav/avatars/nobody/96.png", me).status == 404
    assert call(new, f"/remote.php/dav/avatars/{with_avatar[0]}/96.gif", me).status == 405

    # the ETag both give: 304 on both
    etag = image.headers["etag"]
    for app in (legacy, new):
        assert call(app, f"/index.php/avatar/{with_avatar[0]}/64", me,
                    {"If-None-Match": etag}).status == 304
    # no credentials: SecurityMiddleware's JSON 401, and Sabre's 401 on DAV
    for app in (legacy, new):
        anonymous = call(app, f"/index.php/avatar/{with_avatar[0]}/64", None)
        assert (anonymous.status, json.loads(anonymous.body)) == \
            (401, {"message": "Current user is not logged in"})
        assert call(app, f"/remote.php/dav/avatars/{with_avatar[0]}/96.png", None).status \
            == 401


def test_a_changed_or_removed_avatar_follows_on_the_next_pass(
        instance: Manifest,
        stacks: tuple[NewstackApp, NewstackApp, LegacySource, Newstack]) -> None:
    legacy, new, source, stack = stacks
    users = {u["uid"]: u for u in instance.users}
    with_avatar = [uid for uid in users if avatar_file(source, uid).is_file()]
    changed, removed = with_avatar[0], with_avatar[-1]
    me = (changed, users[changed]["password"])
    path = avatar_file(source, changed)
    path.write_bytes(path.read_bytes() + b"\0")  # other bytes, a later mtime
    os.utime(path, (path.stat().st_mtime + 100, path.stat().st_mtime + 100))
    blobs_before = {p.name for p in (stack.driver.root).rglob("avatar-*")} \
        if hasattr(stack.driver, "root") else set()
    if removed != changed:
        avatar_file(source, removed).unlink()
    for uid in {changed, removed}:
        if source.home_storage(uid) is not None:
            DeltaPass(source, stack.store, stack.driver, uid).delta()
        else:
            UserMigration(source, stack.store, stack.driver, uid).run()
    for uid in (changed, removed):
        url = f"/index.php/avatar/{uid}/64"
        assert call(legacy, url, me).same == call(new, url, me).same
    assert call(new, f"/index.php/avatar/{changed}/64", me).body == \
        avatar_image.resize(path.read_bytes(), 64, "png")
    if blobs_before:  # the replaced and removed avatars' blobs are gone
        after = {p.name for p in stack.driver.root.rglob("avatar-*")}
        assert len(after) == len(blobs_before) - (removed != changed)


def test_index_answer_escapes_as_php_json_encode() -> None:
    from newstack.backend import User

    user = User("u", "Zoë <b>/x", None)
    body = index_answer(None, user, None, 0).body
    assert b"".join(body) == b'{"data":{"displayname":"Zo\\u00eb \\u003Cb\\u003E\\/x"}}'
    image = index_answer(Avatar("image/png", 7, 3, lambda: b"png"), user, None, 0)
    assert dict(image.headers)["Last-Modified"] == "Thu, 01 Jan 1970 00:00:00 +0000"


@pytest.mark.parametrize(("text", "value"), [
    ("96", 96), ("12abc", 12), ("abc", 0), (" 7", 7), ("-3", -3), ("", 0)])
def test_php_intval(text: str, value: int) -> None:
    assert php_intval(text) == value


@pytest.mark.parametrize(("text", "size"), [
    ("64", 64), ("1", 1), ("2048", 2048), ("2049", 2048), ("99999", 2048), ("0", 64),
    ("-5", 64), ("abc", 64), ("32px", 32)])
def test_index_size(text: str, size: int) -> None:
    assert index_size(text) == size


@pytest.mark.parametrize(("width", "height", "size", "expected"), [
    (8, 8, 64, (64, 64)),         # scaled up, as OC_Image::resize does
    (200, 100, 64, (64, 32)),     # the longest side becomes the size
    (100, 200, 64, (32, 64)),
    (300, 200, 5, (5, 3)),        # 3.33 → 3
    (200, 300, 5, (3, 5)),
    (8, 3, 3, (3, 1)),            # 1.125 → 1
    (40, 25, 4, (4, 3)),          # 2.5 → 3: PHP rounds halves away from zero
    (1000, 1, 10, (10, 1)),       # never 0 pixels
])
def test_resize_keeps_the_aspect_ratio(width: int, height: int, size: int,
                                       expected: tuple[int, int]) -> None:
    assert avatar_image.target_size(width, height, size) == expected
    assert decoded(avatar_image.resize(png_of(width, height), size, "png")) == \
        ("PNG", expected)


def test_resize_converts_between_png_and_jpeg() -> None:
    jpeg = avatar_image.resize(png_of(10, 10, "RGBA"), 16, "jpeg")
    assert decoded(jpeg) == ("JPEG", (16, 16))
    back = avatar_image.resize(jpeg, 12, "png")
    assert decoded(back) == ("PNG", (12, 12))
    with Image.open(io.BytesIO(avatar_image.resize(png_of(10, 10, "RGBA"), 16, "png"))) as im:
        assert im.mode == "RGBA"  # transparency kept in PNG
    # deterministic: the same input gives the same bytes (both stacks rely on it)
    assert avatar_image.resize(png_of(10, 10), 16, "jpeg") == \
        avatar_image.resize(png_of(10, 10), 16, "jpeg")


def bomb(side: int = 6000) -> bytes:
    """A PNG whose header declares side×side pixels: a few KiB of zlib that would inflate to
    side² × 4 bytes once decoded."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    data = bomb()
    assert len(data) < 100_000
    with pytest.raises(avatar_image.AvatarImageError, match="too large: 6000x6000 pixels"):
        avatar_image.resize(data, 64, "png")
    # past Pillow's own limit it refuses in Image.open already: the same error
    with pytest.raises(avatar_image.AvatarImageError, match="avatar image too large"):
        avatar_image.resize(bomb(20000), 64, "png")
    with pytest.raises(avatar_image.AvatarImageError, match="not a readable PNG or JPEG"):
        avatar_image.resize(b"GIF89a not an avatar", 64, "png")
    with pytest.raises(avatar_image.AvatarImageError, match="avatar file too large"):
        avatar_image.resize(b"\0" * (avatar_image.MAX_SOURCE_BYTES + 1), 64, "png")


def test_a_bomb_is_answered_500_alike_on_both_stacks(
        instance: Manifest,
        stacks: tuple[NewstackApp, NewstackApp, LegacySource, Newstack]) -> None:
    legacy, new, source, stack = stacks
    uid, me = user_with_avatar(instance, source)
    path = avatar_file(source, uid)
    path.write_bytes(bomb())
    os.utime(path, (path.stat().st_mtime + 100, path.stat().st_mtime + 100))
    if source.home_storage(uid) is not None:
        DeltaPass(source, stack.store, stack.driver, uid).delta()
    else:
        UserMigration(source, stack.store, stack.driver, uid).run()
    for app in (legacy, new):
        index = call(app, f"/index.php/avatar/{uid}/64", me)
        assert index.status == 500
        assert "too large: 6000x6000 pixels" in json.loads(index.body)["message"]
        dav = call(app, f"/remote.php/dav/avatars/{uid}/64.png", me)
        assert dav.status == 500
        assert b"too large: 6000x6000 pixels" in dav.body


def test_the_new_stack_keeps_each_variant_once(
        instance: Manifest,
        stacks: tuple[NewstackApp, NewstackApp, LegacySource, Newstack]) -> None:
    legacy, new, source, stack = stacks
    uid, me = user_with_avatar(instance, source)
    with stack.store.read() as conn:
        blob_id = conn.execute(schema.avatars.select()
                               .where(schema.avatars.c.uid == uid)).one().blob_id
    cached = resized_blob_id(blob_id, 40, "jpeg")
    assert not stack.driver.exists(cached)
    first = call(new, f"/remote.php/dav/avatars/{uid}/40.jpeg", me)
    assert stack.driver.exists(cached)
    assert b"".join(stack.driver.open(cached)) == first.body
    # the cached variant is what is served (a stand-in proves it is read, not made again)
    stack.driver.put(cached, [b"cached"], size=6)
    assert call(new, f"/remote.php/dav/avatars/{uid}/40.jpeg", me).body == b"cached"
    # the legacy server writes nothing next to ownCloud's avatar
    before = sorted(p.name for p in avatar_file(source, uid).parent.iterdir())
    assert call(legacy, f"/remote.php/dav/avatars/{uid}/40.jpeg", me).body == first.body
    assert sorted(p.name for p in avatar_file(source, uid).parent.iterdir()) == before
    # the ETag names size and format (the same image on both endpoints: the same ETag)
    answers = [call(new, url, me) for url in (
        f"/remote.php/dav/avatars/{uid}/40.png", f"/remote.php/dav/avatars/{uid}/41.png",
        f"/remote.php/dav/avatars/{uid}/40.jpeg", f"/index.php/avatar/{uid}/40")]
    assert len({a.headers["etag"] for a in answers}) == 3
    assert answers[0].headers["etag"] == answers[3].headers["etag"]
    assert answers[0].body == answers[3].body
    assert call(new, f"/remote.php/dav/avatars/{uid}/41.png", me,
                {"If-None-Match": answers[1].headers["etag"]}).status == 304


def test_the_legacy_server_keeps_variants_in_memory_within_its_budget(
        instance: Manifest,
        stacks: tuple[NewstackApp, NewstackApp, LegacySource, Newstack]) -> None:
    legacy, _new, source, _stack = stacks
    uid, me = user_with_avatar(instance, source)
    variants = legacy.avatars.source.variants
    first = call(legacy, f"/remote.php/dav/avatars/{uid}/48.png", me).body
    assert variants.used == len(first)
    # a cached variant is served as kept (a stand-in proves it is not made again)
    (key,) = list(variants._items)
    variants.put(key, b"kept")
    assert call(legacy, f"/remote.php/dav/avatars/{uid}/48.png", me).body == b"kept"
    # a new avatar (other mtime and length) is a new key: never served stale
    path = avatar_file(source, uid)
    path.write_bytes(png_of(4, 2))
    os.utime(path, (path.stat().st_mtime + 100, path.stat().st_mtime + 100))
    assert decoded(call(legacy, f"/remote.php/dav/avatars/{uid}/48.png", me).body) == \
        ("PNG", (48, 24))


def test_variant_cache_drops_the_least_recently_used() -> None:
    cache = VariantCache(10)
    cache.put(("a", 1, 1, 1, "png"), b"aaaa")
    cache.put(("b", 1, 1, 1, "png"), b"bbbb")
    assert cache.get(("a", 1, 1, 1, "png")) == b"aaaa"   # a is now the most recent
    cache.put(("c", 1, 1, 1, "png"), b"cccc")             # 12 > 10: b goes
    assert cache.get(("b", 1, 1, 1, "png")) is None
    assert cache.get(("a", 1, 1, 1, "png")) == b"aaaa"
    assert cache.used == 8
    cache.put(("d", 1, 1, 1, "png"), b"x" * 11)           # larger than the budget: not kept
    assert cache.get(("d", 1, 1, 1, "png")) is None and cache.used == 8
