"""Fixtures shared by the migration tests: the "small" ownCloud 10 fixture instance and its
source and backend, and closing every new stack a test opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.manifest import Manifest
from migrate.source import LegacySource
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from tests.fixtures.test_instances import build
from tests.migrate.stacks import close_opened


@pytest.fixture(autouse=True)
def close_stacks() -> Iterator[None]:
    yield
    close_opened()


@pytest.fixture
def small(tmp_path: Path, mariadb_url: str) -> Manifest:
    return build(tmp_path, mariadb_url, "small")


@pytest.fixture
def legacy(small: Manifest) -> Iterator[tuple[LegacySource, Oc10Backend]]:
    instance = open_instance(Path(small.config_php))
    source = LegacySource(instance)
    backend = Oc10Backend(open_instance(Path(small.config_php)), read_only=False)
    yield source, backend
    backend.close()
    instance.close()
