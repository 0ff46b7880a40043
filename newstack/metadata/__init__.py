"""The new stack's metadata service: schema (`schema`), upgrades (`upgrade`), engines (`engine`)
and the store every backend and the migration write through (`store`)."""

from newstack.metadata.engine import open_engine
from newstack.metadata.store import (
    FileidBaseError,
    LoginThrottle,
    MetadataError,
    MetadataStore,
    NodeRecord,
    UserAdminError,
)
from newstack.metadata.upgrade import upgrade_to_head

__all__ = [
    "FileidBaseError",
    "LoginThrottle",
    "MetadataError",
    "MetadataStore",
    "NodeRecord",
    "UserAdminError",
    "open_engine",
    "upgrade_to_head",
]
