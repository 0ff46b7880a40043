"""Puts the legacy server together: an ownCloud 10 instance served in place by the new stack's
API layer through the `oc10` backend (`ocbridge serve legacy`)."""

from __future__ import annotations

import socket
from pathlib import Path

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.oc10.passwords import VerifiedCredentialCache
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import LegacyInstance, open_instance
from newstack.sharing.view import SharingBackend


def legacy_instance(settings: Settings) -> LegacyInstance:
    legacy = settings.legacy
    if legacy.config_php is None:
        raise ConfigError(
            ["legacy.config_php: the ownCloud instance's config/config.php is needed to serve "
             "it (instance id, secrets, database); give it with --oc10-config or in the "
             "[legacy] section"], "legacy")
    return open_instance(Path(legacy.config_php), db_url=legacy.db_url,
                         data_dir=legacy.data_dir)


def open_backend(settings: Settings, *, read_only: bool = False) -> Oc10Backend:
    return Oc10Backend(legacy_instance(settings),
                       credential_cache=VerifiedCredentialCache(ttl=300), read_only=read_only)


def make_app(settings: Settings, *, read_only: bool = False) -> NewstackApp:
    backend = open_backend(settings, read_only=read_only)
    info = ServerInfo(hostname=socket.gethostname())
    version = backend.instance.config.version
    if version:  # status.php reports the instance's own version, as the real server would
        info = ServerInfo(version=version, versionstring=".".join(version.split(".")[:3]),
                          hostname=info.hostname)
    # recipients see their received shares mounted, as on the native stack
    return NewstackApp(SharingBackend(backend), info)
