"""Fixtures for the storage driver tests: a throwaway Ceph RGW for the S3 driver (tests/rgw.py)."""

from collections.abc import Iterator

import pytest
import rgw

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
