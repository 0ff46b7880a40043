"""The small fixture instance on each database, shared by a test module; each test runs in a
transaction that is rolled back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.newstack.legacy.instances import DATABASES, Instance, small_instance


@pytest.fixture(scope="module", params=DATABASES)
def instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Instance]:
    with small_instance(request.param, tmp_path_factory.mktemp("oc10")) as inst:
        yield inst


@pytest.fixture
def conn(instance: Instance) -> Iterator[sa.Connection]:
    with instance.engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()
