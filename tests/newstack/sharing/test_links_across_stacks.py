"""A fixture ownCloud 10 instance served by the oc10 backend and, after migration, by the native
backend: public links open with the same token and password and give the same bytes; recipients
see the same mounts, etags and permissions."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import Settings
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.runner import UserMigration
from migrate.source import LegacySource
from newstack.backend import FilesBackend, Node
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.service import Newstack, open_newstack
from newstack.sharing.public import PublicView, open_link, password_matches
from newstack.sharing.view import SharingBackend
from tests.newstack.legacy.instances import built_instance


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Manifest, SharingBackend, SharingBackend]]:
    where = tmp_path_factory.mktemp("links")
    with built_instance("sqlite", where, get_profile("small")) as manifest:
        instance = open_instance(Path(manifest.config_php))
        old = Oc10Backend(open_instance(Path(manifest.config_php)))
        defaults = Settings()
        stack: Newstack = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
            defaults.newstack, data_dir=where / "new")))
        try:
            for uid in sorted(u["uid"] for u in manifest.users):
                UserMigration(LegacySource(instance), stack.store, stack.driver, uid).run()
            fresh = open_newstack(dataclasses.replace(defaults, newstack=dataclasses.replace(
                defaults.newstack, data_dir=where / "new")))
            try:
                yield manifest, SharingBackend(old), SharingBackend(fresh.backend)
            finally:
                fresh.close()
        finally:
            stack.close()
            old.close()
            instance.close()


def _files(view: PublicView, folder: str = "") -> Iterator[Node]:
    for node in view.children(folder):
        if node.is_dir:
            yield from _files(view, node.path)
        else:
            yield node


def _content(view: PublicView, node: Node) -> bytes:
    return b"".join(view.read(node))


def _listing(view: PublicView) -> list[tuple[str, int, str, int]]:
    return [(n.path, n.fileid, n.etag, n.permissions) for n in _files(view)]


def test_links_open_alike_before_and_after_migration(
        migrated: tuple[Manifest, FilesBackend, FilesBackend]) -> None:
    manifest, old, new = migrated
    live = [s for s in manifest.links() if s["note"] != "expired link"]
    assert live and any(s["password"] for s in live)
    compared = 0
    for planned in live:
        token = planned["token"]
        before, after = open_link(old, token), open_link(new, token)
        assert before.share == after.share, token
        assert before.root.fileid == after.root.fileid == planned["fileid"]
        if planned["password"]:
            for backend, link in ((old, before), (new, after)):
                assert password_matches(backend, link, planned["password"])
                assert not password_matches(backend, link, planned["password"] + "!")
        old_view, new_view = PublicView(old, before), PublicView(new, after)
        if before.upload_only:
            continue
        if not before.root.is_dir:
            assert _content(old_view, old_view.stat("")) == _content(new_view,
                                                                      new_view.stat(""))
            compared += 1
            continue
        assert _listing(old_view) == _listing(new_view), token
        for node in _files(old_view):
            assert _content(old_view, node) == _content(new_view, new_view.stat(node.path))
            compared += 1
    assert compared >= 3, "the fixture's links share files with content"


def _tree(backend: FilesBackend, uid: str, folder: str = "") -> Iterator[tuple[object, ...]]:
    for node in backend.children(uid, folder):
        yield node.path, node.fileid, node.etag, node.size, node.permissions, node.owner, \
            node.shared
        if node.is_dir:
            yield from _tree(backend, uid, node.path)


def test_recipients_see_the_same_mounts_on_both_stacks(
        migrated: tuple[Manifest, FilesBackend, FilesBackend]) -> None:
    manifest, old, new = migrated
    recipients = sorted({uid for s in manifest.shares if s["share_type"] in (0, 1)
                         for uid in ([s["share_with"]] if s["share_type"] == 0
                                     else [m[0] for m in s["members"]])})
    assert {"bob", "carol"} <= set(recipients)
    mounted = 0
    for uid in recipients:
        if old.user(uid) is None or not old.user(uid).enabled:  # type: ignore[union-attr]
            continue
        before = list(_tree(old, uid))
        assert before == list(_tree(new, uid)), uid
        assert old.stat(uid, "") == new.stat(uid, ""), uid
        mounted += sum(1 for entry in before if entry[6])
    assert mounted > 0
