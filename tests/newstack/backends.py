"""Both FilesBackends, set up alike, so that API tests run on each and prove they answer alike.

`native` is the new stack's own metadata store (SQLite) with POSIX blobs; `oc10` is an ownCloud
10 instance (SQLite database + data directory) served in place.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Final

from bridge.config import Settings
from newstack.backend import FilesBackend
from newstack.service import open_newstack
from tests.newstack.legacy.stack import TEST_HASH_COST, empty_instance, open_backend

BACKENDS: Final = ("native", "oc10")


@dataclasses.dataclass(frozen=True)
class StackUser:
    uid: str
    password: str
    display_name: str
    email: str | None = None


def make_backend(kind: str, where: Path, users: list[StackUser]) -> FilesBackend:
    """A fresh backend of `kind` with `users` (and, for oc10, the fixture's 'admin')."""
    if kind == "native":
        defaults = Settings()
        settings = dataclasses.replace(defaults, newstack=dataclasses.replace(
            defaults.newstack, data_dir=where / "data"))
        stack = open_newstack(settings)
        for user in users:
            stack.store.add_user(user.uid, password=user.password,
                                 display_name=user.display_name, email=user.email)
        return stack.backend
    if kind == "oc10":
        from fixtures.accounts import add_user

        manifest = empty_instance(where / "oc10", {})
        for user in users:
            add_user(Path(manifest.config_php), user.uid, user.password,
                     display_name=user.display_name, email=user.email,
                     hash_cost=TEST_HASH_COST)
        return open_backend(manifest)
    raise ValueError(f"unknown backend {kind!r}; choose from {BACKENDS}")
