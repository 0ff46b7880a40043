"""Blob storage for the new stack: the driver contract (`base`) and drivers by name (`registry`)."""

from newstack.storage.base import (
    BlobInfo,
    BlobNotFoundError,
    Checksums,
    InvalidBlobIdError,
    LinkMode,
    StorageDriver,
    StorageError,
    StorageUnavailableError,
)
from newstack.storage.registry import driver_from_settings

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "Checksums",
    "InvalidBlobIdError",
    "LinkMode",
    "StorageDriver",
    "StorageError",
    "StorageUnavailableError",
    "driver_from_settings",
]
