"""Shared fixtures: a fresh database per test on real MariaDB, PostgreSQL or SQLite (dbharness)."""

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# tests/bridge/ has no __init__.py, so without the repository root first on sys.path
# `import bridge` would find that folder as a namespace package instead of the real bridge/.
# tests/ itself is added for dbharness, which --import-mode=importlib would not do.
_TESTS = Path(__file__).resolve().parent
for _path in (str(_TESTS), str(_TESTS.parent)):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)

import dbharness  # noqa: E402
import rgw  # noqa: E402

NewDatabase = Callable[[dbharness.Kind], str]

_swept: set[str] = set()


@pytest.fixture
def new_database() -> Iterator[NewDatabase]:
    """A factory: new_database(kind) creates an empty database, dropped after the test."""
    created: list[str] = []

    def make(kind: dbharness.Kind) -> str:
        if kind not in _swept:  # once per kind and process (each xdist worker is a process)
            dbharness.sweep_stale((kind,))
            _swept.add(kind)
        url = dbharness.create_temp_database(kind)
        created.append(url)
        return url

    yield make
    for url in reversed(created):
        dbharness.drop_database(url)


@pytest.fixture
def mariadb_url(new_database: NewDatabase) -> str:
    return new_database("mariadb")


@pytest.fixture
def postgres_url(new_database: NewDatabase) -> str:
    return new_database("postgres")


@pytest.fixture
def sqlite_url(new_database: NewDatabase) -> str:
    return new_database("sqlite")


@pytest.fixture(
    params=[
        pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("sqlite", id="sqlite"),
    ]
)
def oc10_db_url(request: pytest.FixtureRequest, new_database: NewDatabase) -> str:
    """The URL of an empty database, once for each backend ownCloud 10 ran on."""
    kind: dbharness.Kind = request.param
    return new_database(kind)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that ask for a server directly, so `-m "not mariadb"` deselects them too."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "mariadb_url" in names:
            item.add_marker(pytest.mark.mariadb)
        if "postgres_url" in names:
            item.add_marker(pytest.mark.postgres)


_RGW_STARTUP = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def rgw_endpoint(pytestconfig: pytest.Config) -> Iterator[rgw.RgwEndpoint]:
    """A Ceph RGW on loopback for the whole session (one per xdist worker); always torn down."""
    missing = rgw.missing_binaries()
    if missing:
        pytest.fail(rgw.INSTALL_HINT.format(missing=", ".join(missing)), pytrace=False)
    with pytest.MonkeyPatch.context() as env:
        # Traffic goes to 127.0.0.1 only: no proxy, no instance-metadata probe, no AWS profile.
        env.setenv("NO_PROXY", "127.0.0.1")
        env.setenv("no_proxy", "127.0.0.1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_CONFIG_FILE", "/dev/null")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        try:
            with rgw.running_rgw() as endpoint:
                pytestconfig.stash[_RGW_STARTUP] = endpoint.startup_seconds
                yield endpoint
        except rgw.RgwStartError as exc:
            pytest.fail(f"could not start Ceph RGW: {exc}", pytrace=False)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if _RGW_STARTUP in config.stash:
        terminalreporter.write_line(f"Ceph RGW started in {config.stash[_RGW_STARTUP]:.1f} s")
