"""ownCloud 10 instances served in place by the `oc10` backend, for integration tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fixtures.accounts import add_user
from fixtures.builder import build_instance
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance

#: bcrypt cost of test users: ownCloud's 10 would cost ~60 ms per first login
TEST_HASH_COST = 4


def empty_instance(instance_dir: Path, users: dict[str, str], db_url: str = "sqlite",
                   display_names: dict[str, str] | None = None) -> Manifest:
    """An ownCloud 10 instance with no files and the given users (uid -> password), plus the
    fixture's 'admin'; homes are made at first use, as ownCloud does at first login."""
    profile = dataclasses.replace(get_profile("small"), users=0, files_per_user=0,
                                  trash_items=0, hash_cost=TEST_HASH_COST)
    manifest, _ = build_instance(instance_dir, db_url, profile, 1)
    names = display_names or {}
    for uid, password in users.items():
        add_user(Path(manifest.config_php), uid, password, display_name=names.get(uid),
                 hash_cost=TEST_HASH_COST)
    return manifest


def open_backend(manifest: Manifest) -> Oc10Backend:
    return Oc10Backend(open_instance(Path(manifest.config_php)))
