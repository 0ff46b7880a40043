"""Puts the new stack together from Settings: metadata store, storage driver, backend, app."""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from bridge.config import Settings
from bridge.oc10 import tokens
from bridge.oc10.passwords import VerifiedCredentialCache
from newstack.app import NewstackApp, ServerInfo
from newstack.metadata.engine import open_engine
from newstack.metadata.store import MetadataStore
from newstack.native import NativeBackend
from newstack.sharing.view import SharingBackend
from newstack.storage.base import StorageDriver
from newstack.storage.registry import driver_from_settings

#: instance settings kept in the metadata store; migration overwrites them with the oC10 values
IDENTITY_KEYS = ("instance_id", "secret", "passwordsalt")


@dataclass(frozen=True)
class Newstack:
    store: MetadataStore
    driver: StorageDriver
    backend: NativeBackend

    def close(self) -> None:
        """Close the metadata database's connections (a server's exit does it anyway)."""
        self.store.engine.dispose()


def metadata_url(settings: Settings) -> str:
    if settings.newstack.metadata_url:
        return settings.newstack.metadata_url
    return f"sqlite:///{settings.newstack.data_dir.resolve() / 'metadata.db'}"


def open_store(settings: Settings) -> MetadataStore:
    settings.newstack.data_dir.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(open_engine(metadata_url(settings)), settings.newstack.fileid_base)
    ensure_identity(store)
    return store


def ensure_identity(store: MetadataStore) -> dict[str, str]:
    """instance_id, secret and passwordsalt of this installation; created once if missing."""
    rng = random.SystemRandom()
    makers = {"instance_id": tokens.new_instance_id, "secret": tokens.new_secret,
              "passwordsalt": tokens.new_password_salt}
    values = store.settings()
    for key in IDENTITY_KEYS:
        if not values.get(key):
            values[key] = makers[key](rng)
            store.set_setting(key, values[key])
    return values


def open_driver(settings: Settings) -> StorageDriver:
    storage = settings.storage
    if storage.driver == "posix":
        root = storage.posix_root or settings.newstack.data_dir / "blobs"
        Path(root).mkdir(parents=True, exist_ok=True)
        return driver_from_settings("posix", root=Path(root))
    if storage.driver == "s3":
        s3 = storage.s3
        return driver_from_settings(
            "s3", bucket=s3.bucket, endpoint_url=s3.endpoint_url, access_key=s3.access_key,
            secret_key=s3.secret_key, region=s3.region, part_size=s3.part_size_mb * 2**20,
            max_concurrency=s3.max_concurrency)
    return driver_from_settings("memory")


def open_newstack(settings: Settings) -> Newstack:
    store = open_store(settings)
    identity = store.settings()
    driver = open_driver(settings)
    backend = NativeBackend(
        store, driver, instance_id=identity["instance_id"],
        data_fingerprint=identity.get("data_fingerprint", ""), secret=identity["secret"],
        passwordsalt=identity["passwordsalt"],
        credential_cache=VerifiedCredentialCache(ttl=300),
        default_quota=identity.get("default_quota"),
        share_folder=identity.get("share_folder", "/"))
    return Newstack(store, driver, backend)


def make_app(settings: Settings) -> NewstackApp:
    backend = open_newstack(settings).backend
    watch_identity(backend)
    # recipients see their received shares mounted (newstack/sharing/view.py)
    return NewstackApp(SharingBackend(backend), ServerInfo(hostname=socket.gethostname()))


#: how often a serving process looks for an identity imported by a first migration
IDENTITY_RELOAD_SECONDS = 1.0
_IDENTITY_FIELDS = (*IDENTITY_KEYS, "data_fingerprint", "default_quota", "share_folder")


def watch_identity(backend: NativeBackend, interval: float = IDENTITY_RELOAD_SECONDS,
                   stop: threading.Event | None = None) -> threading.Thread:
    """Reload the instance identity when migration replaces it (once: the first user's bulk
    copy imports ownCloud's instanceid, secret and salt), so that a stack started before then
    serves ownCloud's oc:id without a restart (docs/cutover.md)."""

    stopped = stop or threading.Event()

    def watch() -> None:
        seen = {k: backend.store.settings().get(k) for k in _IDENTITY_FIELDS}
        while not stopped.wait(interval):
            try:
                current = backend.store.settings()
            except Exception:  # noqa: BLE001 - a database hiccup: look again next time
                continue
            now = {k: current.get(k) for k in _IDENTITY_FIELDS}
            if now != seen and all(now[k] for k in IDENTITY_KEYS):
                backend.set_identity(current)
                seen = now

    thread = threading.Thread(target=watch, name="identity-watch", daemon=True)
    thread.start()
    return thread
