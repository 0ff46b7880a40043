"""Fixtures for the metadata store tests: an empty database on SQLite and on PostgreSQL."""

from collections.abc import Callable

import pytest


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    ]
)
def db_url(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> str:
    """An empty database, once on SQLite and once on PostgreSQL."""
    kind: str = request.param
    return new_database(kind)
