"""Drivers by short name: one sorted table, lazy imports, a hint when a dependency is missing."""

from pathlib import Path

import pytest

from newstack.storage import registry
from newstack.storage.base import StorageDriver
from newstack.storage.memory import MemoryDriver
from newstack.storage.posix import PosixDriver


def test_table_is_sorted_and_complete() -> None:
    assert (
        list(registry.KNOWN_DRIVERS) == sorted(registry.KNOWN_DRIVERS) == ["memory", "posix", "s3"]
    )


@pytest.mark.parametrize("kind", sorted(registry.KNOWN_DRIVERS))
def test_every_driver_class_satisfies_the_protocol(kind: str) -> None:
    cls = registry.driver_class(kind)
    for method in ("put", "open", "stat", "exists", "delete", "link_from_path", "copy"):
        assert callable(getattr(cls, method)), f"{cls.__name__}.{method}"


def test_driver_from_settings(tmp_path: Path) -> None:
    memory = registry.driver_from_settings("memory")
    posix = registry.driver_from_settings("posix", root=tmp_path)
    assert isinstance(memory, MemoryDriver) and isinstance(memory, StorageDriver)
    assert isinstance(posix, PosixDriver) and posix.root == tmp_path.resolve()


def test_s3_driver_from_settings_does_no_io() -> None:
    driver = registry.driver_from_settings(
        "s3", bucket="b", endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s"
    )
    assert isinstance(driver, StorageDriver)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known drivers: memory, posix, s3"):
        registry.driver_from_settings("ftp")


def test_missing_dependency_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        registry.KNOWN_DRIVERS,
        "s3",
        registry.DriverEntry(
            "newstack.storage.not_there", "S3Driver", "install boto3: pip install boto3"
        ),
    )
    with pytest.raises(ImportError, match="'s3' cannot be loaded.*pip install boto3"):
        registry.driver_from_settings("s3", bucket="b")
