"""MemoryDriver runs the whole storage contract; it is also the fake other tests use."""

import errno
from pathlib import Path

import pytest

from newstack.storage.base import StorageError
from newstack.storage.memory import MemoryDriver
from tests.newstack.storage.contract import StorageDriverContract


@pytest.fixture
def driver() -> MemoryDriver:
    return MemoryDriver()


class TestMemoryDriver(StorageDriverContract):
    def test_blobs_view_is_a_snapshot(self, driver: MemoryDriver) -> None:
        driver.put("one", [b"1"])
        view = driver.blobs
        view["two"] = b"2"
        assert driver.blobs == {"one": b"1"}

    @pytest.mark.parametrize("mode", ["reflink", "hardlink"])
    def test_sharing_link_modes_are_unsupported(
        self, driver: MemoryDriver, tmp_path: Path, mode: str
    ) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"x")
        with pytest.raises(StorageError) as raised:
            driver.link_from_path("blob", source, mode)  # type: ignore[arg-type]
        assert raised.value.errno == errno.EOPNOTSUPP
        assert driver.blobs == {}
