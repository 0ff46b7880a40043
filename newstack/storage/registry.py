"""Storage drivers by short name, imported only when asked for, with a hint when that fails."""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from newstack.storage.base import StorageDriver


class DriverEntry(NamedTuple):
    module: str
    class_name: str
    install_hint: str


KNOWN_DRIVERS: dict[str, DriverEntry] = {
    "memory": DriverEntry("newstack.storage.memory", "MemoryDriver", ""),
    "posix": DriverEntry("newstack.storage.posix", "PosixDriver", ""),
    "s3": DriverEntry("newstack.storage.s3", "S3Driver", "install boto3: pip install boto3"),
}
assert list(KNOWN_DRIVERS) == sorted(KNOWN_DRIVERS), "keep KNOWN_DRIVERS sorted by name"


def driver_class(kind: str) -> type[StorageDriver]:
    """The driver class registered as `kind`; ValueError for an unknown name, ImportError with
    an install hint when its dependencies are missing."""
    try:
        entry = KNOWN_DRIVERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown storage driver {kind!r}; known drivers: {', '.join(KNOWN_DRIVERS)}"
        ) from None
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        hint = f"; {entry.install_hint}" if entry.install_hint else ""
        raise ImportError(f"storage driver {kind!r} cannot be loaded ({exc}){hint}") from exc
    cls: type[StorageDriver] = getattr(module, entry.class_name)
    return cls


def driver_from_settings(kind: str, **options: Any) -> StorageDriver:
    """Build the driver registered as `kind` from its constructor options (e.g. `root=...`)."""
    return driver_class(kind)(**options)
