"""One TOML file configures all of ocbridge; OCBRIDGE_SECTION__KEY variables override it.

Settings are frozen dataclasses. `load_settings` validates the file and the environment in one
pass and raises ConfigError listing every problem with its key and a hint. `defaults_toml`
renders the commented example printed by `ocbridge config defaults`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from bridge.errors import ConfigError

ENV_PREFIX = "OCBRIDGE_"
ENV_SEPARATOR = "__"


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying the help text shown in `ocbridge config defaults`."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class LegacySettings:
    """The ownCloud 10 instance being migrated."""

    config_php: Path | None = _doc(
        "Path of the instance's config/config.php; database, table prefix, data directory, "
        "instance id and secrets are read from it (PHP is parsed, never executed).",
        default=None,
    )
    db_url: str = _doc(
        "SQLAlchemy URL of the ownCloud database; overrides what config.php says "
        "(e.g. mysql+pymysql://owncloud:pw@127.0.0.1:3306/owncloud).",
        default="",
    )
    data_dir: Path | None = _doc(
        "The ownCloud data directory; overrides config.php's datadirectory.", default=None
    )
    table_prefix: str = _doc("Table prefix (config.php dbtableprefix).", default="oc_")
    listen: str = _doc(
        "HOST:PORT that `ocbridge serve legacy` binds: the instance served in place by the new "
        "stack's `oc10` backend (the legacy server of tests and the demo).",
        default="127.0.0.1:8300",
    )


@dataclass(frozen=True)
class NewstackSettings:
    """The new stack: WebDAV and ownCloud 10 API over a metadata service and a storage driver."""

    listen: str = _doc("HOST:PORT the new stack's HTTP server binds.", default="127.0.0.1:8200")
    workers: int = _doc(
        "Worker processes of the new stack; threads in one process share one GIL, so small "
        "requests are served best by 2 processes of 2 threads on 2 cores (docs/benchmarks.md).",
        default=2,
    )
    data_dir: Path = _doc(
        "Directory for the embedded metadata database and POSIX blobs.",
        default=Path("ocbridge-data"),
    )
    metadata_url: str = _doc(
        "SQLAlchemy URL of the metadata service; empty = SQLite in data_dir.", default=""
    )
    fileid_base: int = _doc(
        "First file id for nodes created on the new stack; must lie far above every "
        "ownCloud 10 fileid so that the two stacks never allocate the same id.",
        default=1_000_000_000_000,
    )


@dataclass(frozen=True)
class S3Settings:
    """S3 storage for blobs."""

    endpoint_url: str = _doc("S3 endpoint, e.g. http://127.0.0.1:7480.", default="")
    bucket: str = _doc("Bucket holding the blobs.", default="ocbridge")
    region: str = _doc("Region name sent to the endpoint.", default="us-east-1")
    access_key: str = _doc("Access key id.", default="")
    secret_key: str = _doc("Secret access key.", default="")
    part_size_mb: int = _doc("Multipart part size in MiB.", default=16)
    max_concurrency: int = _doc("Parallel parts per transfer.", default=4)


@dataclass(frozen=True)
class StorageSettings:
    """Where the new stack keeps file contents."""

    driver: Literal["posix", "s3", "memory"] = _doc(
        "Storage driver for blobs: posix (a directory), s3, or memory (tests only).",
        default="posix",
    )
    posix_root: Path | None = _doc(
        "Directory of the POSIX driver; empty = <newstack.data_dir>/blobs.", default=None
    )
    link_mode: Literal["auto", "reflink", "hardlink", "copy"] = _doc(
        "How migration moves POSIX blobs: auto picks reflink, then hardlink on one filesystem.",
        default="auto",
    )
    s3: S3Settings = field(default_factory=S3Settings)


@dataclass(frozen=True)
class ProxySettings:
    """The per-user routing proxy."""

    listen: str = _doc("HOST:PORT the proxy binds (the public host name points here).",
                       default="127.0.0.1:8100")
    workers: int = _doc("Proxy worker processes.", default=1)
    legacy_url: str = _doc("Base URL of the ownCloud 10 server.", default="http://127.0.0.1:8300")
    newstack_url: str = _doc("Base URL of the new stack.", default="http://127.0.0.1:8200")
    cookie_secret: str = _doc(
        "HMAC key for the routing cookie; empty = generated at start and stored in the bridge "
        "store.", default=""
    )
    freeze_status: Literal[423, 503] = _doc(
        "Answer to writes of frozen users: 423 Locked or 503 with Retry-After.", default=423
    )
    retry_after: int = _doc(
        "Seconds in the Retry-After header of a 503 answer to a frozen user's write.", default=30
    )
    default_stack: Literal["legacy", "new"] = _doc(
        "Stack of requests with no known user (anonymous, unknown link) and of users without "
        "a routing row.", default="legacy"
    )
    connect_timeout: int = _doc(
        "Seconds to wait for a backend to accept a connection (then 504).", default=5
    )
    read_timeout: int = _doc(
        "Seconds a backend may stay silent while the proxy waits for its response or the "
        "next part of its body (then 504, or the connection is cut mid-body).", default=300
    )
    refresh_ms: int = _doc(
        "How often each proxy process polls the routing epoch (milliseconds).", default=250
    )
    lookup_cache_seconds: int = _doc(
        "How long login names, app passwords, OAuth2 tokens and link tokens resolved from the "
        "ownCloud database are cached per proxy process.", default=30
    )
    cookie_max_age: int = _doc(
        "Lifetime of the signed routing cookie in seconds.", default=7 * 24 * 3600
    )
    shadow_users: tuple[str, ...] = _doc(
        "Users whose reads (GET, HEAD, PROPFIND) are mirrored to the other stack after the real "
        "answer was sent, and the two answers compared (shadow mode); \"*\" = every user. "
        "From the environment: uids separated by commas.", default=()
    )
    shadow_queue: int = _doc(
        "Mirror requests waiting per proxy process; when full, new ones are dropped and "
        "counted (the real request is never held up).", default=1000
    )
    shadow_workers: int = _doc(
        "Mirror requests in flight at once per proxy process.", default=4
    )
    shadow_multistatus_kb: int = _doc(
        "Largest PROPFIND answer (KiB) kept to compare property by property; larger ones are "
        "compared by status and body hash only.", default=16 * 1024
    )
    oidc_issuer: str = _doc(
        "OpenID Connect issuer (the `iss` of its tokens); empty = bearer JWTs are not used "
        "for routing. Needs oidc_audience and oidc_jwks too.", default=""
    )
    oidc_audience: str = _doc(
        "The `aud` a bearer JWT must carry (the client id ownCloud is registered with).",
        default=""
    )
    oidc_jwks: str = _doc(
        "The issuer's signing keys: a JWKS file path or an http(s) URL (its jwks_uri).",
        default=""
    )
    oidc_uid_claim: str = _doc(
        "The claim holding the ownCloud user id, as the openidconnect app's search "
        "attribute in userid mode; `email`: its email mode (the claim is an e-mail, resolved "
        "to its one account as logins by e-mail are).", default="preferred_username"
    )


@dataclass(frozen=True)
class BridgeSettings:
    """The control plane's own store: routing table, user states, checkpoints."""

    store_url: str = _doc("SQLAlchemy URL; empty = SQLite in newstack.data_dir.", default="")


@dataclass(frozen=True)
class CutoverSettings:
    """`ocbridge cutover` and `ocbridge rollback`: when to freeze, how long to wait, the gate."""

    delta_threshold: int = _doc(
        "Freeze once a catch-up pass finds at most this many changed nodes (added, changed, "
        "moved, deleted): what is left for the final delta under the freeze.", default=50
    )
    max_passes: int = _doc(
        "Catch-up passes before freezing anyway, however much the user still changes.",
        default=5
    )
    ack_timeout: int = _doc(
        "Seconds to wait for every live proxy to apply a freeze or flip and drain the user's "
        "writes in flight; then the cutover fails and the user goes back to ownCloud 10.",
        default=30
    )
    verify_content: Literal["none", "checksums", "bytes"] = _doc(
        "How the gate compares file contents: checksum strings, or every byte of both sides.",
        default="checksums"
    )
    gate: Literal["changes", "full"] = _doc(
        "changes: the full comparison runs before the freeze, while the user works, and under "
        "the freeze only what changed since is compared (the freeze grows with the change); "
        "full: the full comparison under the freeze (grows with the tree).", default="changes"
    )
    verify_ignore: tuple[str, ...] = _doc(
        "Gate difference fields tolerated (e.g. \"extras share_types\" while the new stack has "
        "no sharing); anything else that differs fails the cutover.", default=()
    )
    workers: int = _doc("Parallel blob imports of the copy and the deltas.", default=8)


@dataclass(frozen=True)
class Settings:
    """Everything ocbridge needs, from one file."""

    legacy: LegacySettings = field(default_factory=LegacySettings)
    newstack: NewstackSettings = field(default_factory=NewstackSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    cutover: CutoverSettings = field(default_factory=CutoverSettings)


# ---------------------------------------------------------------------------------------------
# Loading

_HINTS = {
    "listen": "use HOST:PORT, e.g. 127.0.0.1:8200",
}


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply OCBRIDGE_ overrides, validate everything at once."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    source = str(path) if path else "configuration"
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"file not found: {path} (create one with "
                               "`ocbridge config defaults > FILE`)"], source) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"not valid TOML: {exc}"], source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"cannot read the file: {exc}"], source) from None
    _apply_env(raw, env, problems)
    settings = _build(Settings, raw, "", problems)
    if not problems:
        problems.extend(_cross_checks(settings))
    if problems:
        raise ConfigError(problems, source)
    assert isinstance(settings, Settings)
    return settings


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    """Place each OCBRIDGE_ variable in `raw`, checked against the schema so that a misspelt
    variable is reported by its own name instead of being silently ignored."""
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        if ENV_SEPARATOR not in name:
            # OCBRIDGE_STORAGE=… can only be a mistake; other OCBRIDGE_ names are not ours
            section = name[len(ENV_PREFIX):].lower()
            if section in _SECTIONS:
                problems.append(f"{name}: {_check_env_keys([section])}")
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split(ENV_SEPARATOR)]
        problem = _check_env_keys(keys)
        if problem:
            problems.append(f"{name}: {problem}")
            continue
        target: Any = raw
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                break  # the file has a value where a section belongs; _build reports it
        else:
            target[keys[-1]] = _EnvValue(value, name)


def _check_env_keys(keys: list[str]) -> str:
    """Why the dotted `keys` do not name a setting, or "" if they do."""
    cls: Any = Settings
    for depth, key in enumerate(keys):
        dotted = ".".join(keys[: depth + 1])
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            prefix = ".".join(keys[:depth])
            if close:
                suggestion = ENV_PREFIX + ENV_SEPARATOR.join([*keys[:depth], close[0]]).upper()
                hint = f" (did you mean {suggestion}?)"
            else:
                hint = f" (known keys{' of ' + prefix if prefix else ''}: {', '.join(fields)})"
            return f"{dotted} is not a setting{hint}"
        typ = typing.get_type_hints(cls)[key]
        last = depth == len(keys) - 1
        if dataclasses.is_dataclass(typ):
            if last:
                first = dataclasses.fields(typ)[0].name
                example = ENV_PREFIX + ENV_SEPARATOR.join([*keys, first]).upper()
                return f"{dotted} is a section, not a setting; set its keys, e.g. {example}"
            cls = typ
        elif not last:
            return f"{dotted} is a setting, not a section; use {ENV_PREFIX}" + ENV_SEPARATOR.join(
                keys[: depth + 1]).upper()
    return ""


@dataclass(frozen=True)
class _EnvValue:
    """A string from the environment, converted to the field's type during validation."""

    text: str
    variable: str


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or '<root>'}: expected a table, got {raw!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            homes = _sections_holding(cls, key, prefix)
            if close:
                hint = f" (did you mean {prefix}{close[0]}?)"
            elif homes:
                hint = f" (it belongs in a section: {' or '.join(homes)})"
            else:
                hint = f" (known keys: {', '.join(fields)})"
            problems.append(f"{prefix}{key}: unknown key{hint}")
    values: dict[str, Any] = {}
    for name in fields:
        if name not in raw:
            continue
        typ = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(typ):
            values[name] = _build(typ, raw[name], key + ".", problems)  # type: ignore[arg-type]
            continue
        ok, value = _convert(raw[name], typ)
        if ok:
            ok, message = _validate(name, value)
            if not ok:
                problems.append(f"{_where(key, raw[name])}: {message}")
                continue
            values[name] = value
        else:
            problems.append(f"{_where(key, raw[name])}: expected {_describe(typ)}, "
                            f"got {_shown(raw[name])}")
    return cls(**values)


def _sections_holding(cls: type, key: str, prefix: str) -> list[str]:
    """Dotted names of the keys called `key` in the sections below `cls`, for a misplaced key."""
    found: list[str] = []
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        typ = hints[fld.name]
        if dataclasses.is_dataclass(typ):
            section = f"{prefix}{fld.name}."
            names = [f.name for f in dataclasses.fields(typ)]
            if key in names:
                found.append(section + key)
            found.extend(_sections_holding(typ, key, section))  # type: ignore[arg-type]
    return found


def _where(key: str, value: Any) -> str:
    return f"{key} (from {value.variable})" if isinstance(value, _EnvValue) else key


def _shown(value: Any) -> str:
    return repr(value.text) if isinstance(value, _EnvValue) else repr(value)


def _describe(typ: Any) -> str:
    if get_origin(typ) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(typ))
    args = [a for a in get_args(typ) if a is not type(None)]
    if args and get_origin(typ) in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args) + " (or empty)"
    if get_origin(typ) is tuple:
        return "a list of strings"
    return {str: "a string", int: "an integer", bool: "true or false", Path: "a path",
            float: "a number"}.get(typ, str(typ))


def _convert(value: Any, typ: Any) -> tuple[bool, Any]:
    """Convert a TOML value (or an environment string) to `typ`; (False, None) if impossible."""
    from_env = isinstance(value, _EnvValue)
    text = value.text if isinstance(value, _EnvValue) else None
    origin = get_origin(typ)
    if origin in (types.UnionType, typing.Union):
        if (from_env and text == "") or value == "":
            return True, None
        for arg in get_args(typ):
            if arg is type(None):
                continue
            ok, out = _convert(value, arg)
            if ok:
                return True, out
        return False, None
    if origin is Literal:
        for choice in get_args(typ):
            ok, out = _convert(value, type(choice))
            if ok and out == choice:
                return True, choice
        return False, None
    if typ is bool:
        if from_env:
            lowered = (text or "").strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True, True
            if lowered in ("0", "false", "no", "off"):
                return True, False
            return False, None
        return (True, value) if isinstance(value, bool) else (False, None)
    if typ is int:
        if from_env:
            try:
                return True, int((text or "").strip().replace("_", ""))
            except ValueError:
                return False, None
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (True, value) if ok else (False, None)
    if typ is str:
        if from_env:
            return True, text
        return (True, value) if isinstance(value, str) else (False, None)
    if origin is tuple:
        if from_env:
            return True, tuple(part.strip() for part in (text or "").split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return True, tuple(value)
        return False, None
    if typ is Path:
        raw = text if from_env else value
        if isinstance(raw, str) and raw:
            return True, Path(raw).expanduser()
        return False, None
    return False, None


def _validate(name: str, value: Any) -> tuple[bool, str]:
    if name == "listen" and isinstance(value, str):
        host, sep, port = value.rpartition(":")
        valid_port = port.isascii() and port.isdecimal() and 0 < int(port) < 65536
        if not sep or not host.strip() or not valid_port:
            return False, f"{value!r} is not HOST:PORT ({_HINTS['listen']})"
    if name in ("workers", "part_size_mb", "max_concurrency", "shadow_queue", "shadow_workers",
                "shadow_multistatus_kb", "max_passes", "ack_timeout") and value < 1:
        return False, f"must be at least 1, got {value}"
    if name == "delta_threshold" and value < 0:
        return False, f"must be 0 or more, got {value}"
    if name == "fileid_base" and value < 2**31:
        return False, (f"{value} is too low: ownCloud 10 fileids reach 2^31 and beyond; "
                       "use a base such as 1000000000000")
    if name == "fileid_base" and value >= 2**62:
        return False, (f"{value} is too high: file ids are signed 64-bit and need room to "
                       "grow; use a base such as 1000000000000")
    if name == "table_prefix" and not all(c.isascii() and (c.isalnum() or c == "_")
                                          for c in value):
        return False, f"{value!r} may contain only ASCII letters, digits and '_'"
    return True, ""


def validate(settings: Settings) -> list[str]:
    """Problems of settings built in code (e.g. command-line overrides), as load_settings
    reports them for a file."""
    problems: list[str] = []
    _validate_tree(settings, "", problems)
    return problems + _cross_checks(settings)


def _validate_tree(obj: Any, prefix: str, problems: list[str]) -> None:
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        if dataclasses.is_dataclass(value):
            _validate_tree(value, f"{prefix}{fld.name}.", problems)
            continue
        ok, message = _validate(fld.name, value)
        if not ok:
            problems.append(f"{prefix}{fld.name}: {message}")


def _cross_checks(settings: Settings) -> list[str]:
    problems = []
    if settings.storage.driver == "s3" and not settings.storage.s3.endpoint_url:
        problems.append("storage.s3.endpoint_url: required when storage.driver = 's3'")
    legacy = settings.legacy
    if legacy.config_php is None and legacy.db_url and legacy.data_dir is None:
        problems.append("legacy.data_dir: required when legacy.db_url is given without "
                        "legacy.config_php")
    return problems


_SECTIONS = frozenset(f.name for f in dataclasses.fields(Settings))


# ---------------------------------------------------------------------------------------------
# The commented example

def defaults_toml() -> str:
    """A complete, valid config file with every key at its default, each with its help text."""
    lines = [
        "# ocbridge configuration. Every key is shown with its default; delete what you keep.",
        f"# Any key can be overridden by an environment variable: {ENV_PREFIX}SECTION__KEY,",
        f"# e.g. {ENV_PREFIX}PROXY__LISTEN=0.0.0.0:443 or {ENV_PREFIX}STORAGE__S3__BUCKET=files.",
        "",
    ]
    _render(Settings(), "", lines)
    return "\n".join(lines).rstrip() + "\n"


def _render(obj: Any, section: str, lines: list[str]) -> None:
    nested = []
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        if dataclasses.is_dataclass(value):
            nested.append((fld.name, value))
            continue
        doc = fld.metadata.get("doc", "")
        for chunk in _wrap(doc):
            lines.append(f"# {chunk}")
        lines.append(f"{fld.name} = {_toml_value(value)}")
    for name, value in nested:
        full = f"{section}.{name}" if section else name
        if lines and lines[-1] != "":
            lines.append("")
        doc = (type(value).__doc__ or "").strip()
        lines.append(f"[{full}]")
        if doc:
            lines.insert(len(lines) - 1, f"# {doc}")
        _render(value, full, lines)
        lines.append("")


def _wrap(text: str, width: int = 96) -> list[str]:
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if value >= 100_000 else str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Path):
        value = str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
