"""bridge/config.py: one TOML file plus OCBRIDGE_ overrides into frozen Settings, all problems
reported at once."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bridge import config
from bridge.config import (
    ENV_PREFIX,
    LegacySettings,
    NewstackSettings,
    ProxySettings,
    S3Settings,
    Settings,
    StorageSettings,
    defaults_toml,
    load_settings,
)
from bridge.errors import ConfigError

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ocbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, NO_ENV if env is None else env)
    return info.value.problems


def only_problem(path: Path | None = None, env: dict[str, str] | None = None) -> str:
    problems = problems_of(path, env)
    assert len(problems) == 1, problems
    return problems[0]


def leaf_keys(cls: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for fld in dataclasses.fields(cls):
        default = getattr(cls(), fld.name)
        if dataclasses.is_dataclass(default):
            keys |= leaf_keys(type(default), f"{prefix}{fld.name}.")
        else:
            keys.add(prefix + fld.name)
    return keys


def flatten(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            keys |= flatten(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


# ---------------------------------------------------------------------------------------------
# Loading what is right

def test_no_file_and_no_env_gives_the_defaults() -> None:
    settings = load_settings(None, NO_ENV)
    assert settings == Settings()
    assert settings.newstack.fileid_base == 1_000_000_000_000
    assert settings.storage.driver == "posix"
    assert settings.proxy.freeze_status == 423


def test_env_variables_without_the_prefix_or_separator_are_ignored() -> None:
    env = {"HOME": "/root", "OCBRIDGE_CONFIG": "x.toml", "PROXY__LISTEN": "nonsense"}
    assert load_settings(None, env) == Settings()


FULL_FILE = """
[legacy]
config_php = "/srv/owncloud/config/config.php"
db_url = "mysql+pymysql://oc:pw@db:3306/owncloud"
data_dir = "/srv/owncloud/data"
table_prefix = "owc_"
listen = "127.0.0.1:9300"

[newstack]
listen = "0.0.0.0:9200"
workers = 4
data_dir = "/var/lib/ocbridge"
metadata_url = "postgresql+psycopg://meta@db/meta"
fileid_base = 5_000_000_000_000

[storage]
driver = "s3"
posix_root = "/srv/blobs"
link_mode = "hardlink"

[storage.s3]
endpoint_url = "http://rgw:7480"
bucket = "files"
region = "eu-central-1"
access_key = "AK"
secret_key = "SK"
part_size_mb = 64
max_concurrency = 8

[proxy]
listen = "[::1]:443"
workers = 2
legacy_url = "http://oc10:80"
newstack_url = "http://new:9200"
cookie_secret = "s3cr3t"
freeze_status = 503
retry_after = 60
default_stack = "new"
connect_timeout = 2
read_timeout = 60
refresh_ms = 100
lookup_cache_seconds = 5
cookie_max_age = 3600
shadow_users = ["alice", "bob"]
shadow_queue = 50
shadow_workers = 2
shadow_multistatus_kb = 512
oidc_issuer = "https://id.example.org"
oidc_audience = "owncloud"
oidc_jwks = "/etc/ocbridge/jwks.json"
oidc_uid_claim = "sub"

[bridge]
store_url = "sqlite:////var/lib/ocbridge/bridge.db"

[cutover]
delta_threshold = 10
max_passes = 3
ack_timeout = 60
gate = "full"
verify_content = "bytes"
verify_ignore = ["extras share_types"]
workers = 4
"""


def test_a_full_file_round_trips(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_FILE), NO_ENV)
    assert settings == Settings(
        legacy=LegacySettings(
            config_php=Path("/srv/owncloud/config/config.php"),
            db_url="mysql+pymysql://oc:pw@db:3306/owncloud",
            data_dir=Path("/srv/owncloud/data"),
            table_prefix="owc_",
            listen="127.0.0.1:9300",
        ),
        newstack=NewstackSettings(
            listen="0.0.0.0:9200", workers=4, data_dir=Path("/var/lib/ocbridge"),
            metadata_url="postgresql+psycopg://meta@db/meta", fileid_base=5_000_000_000_000,
        ),
        storage=StorageSettings(
            driver="s3", posix_root=Path("/srv/blobs"), link_mode="hardlink",
            s3=S3Settings(endpoint_url="http://rgw:7480", bucket="files",
                          region="eu-central-1", access_key="AK", secret_key="SK",
                          part_size_mb=64, max_concurrency=8),
        ),
        proxy=ProxySettings(
            listen="[::1]:443", workers=2, legacy_url="http://oc10:80",
            newstack_url="http://new:9200", cookie_secret="s3cr3t", freeze_status=503,
            retry_after=60, default_stack="new", connect_timeout=2, read_timeout=60,
            refresh_ms=100, lookup_cache_seconds=5, cookie_max_age=3600,
            shadow_users=("alice", "bob"), shadow_queue=50, shadow_workers=2,
            shadow_multistatus_kb=512, oidc_issuer="https://id.example.org",
            oidc_audience="owncloud", oidc_jwks="/etc/ocbridge/jwks.json", oidc_uid_claim="sub",
        ),
        bridge=config.BridgeSettings(store_url="sqlite:////var/lib/ocbridge/bridge.db"),
        cutover=config.CutoverSettings(delta_threshold=10, max_passes=3, ack_timeout=60,
                                       gate="full", verify_content="bytes",
                                       verify_ignore=("extras share_types",), workers=4),
    )
    # every key of the schema is in FULL_FILE, and every value differs from its default
    assert flatten(tomllib.loads(FULL_FILE)) == leaf_keys(Settings)


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[proxy]\nworkers = 3\n'), NO_ENV)
    assert settings == Settings(proxy=ProxySettings(workers=3))


def test_empty_string_means_none_for_optional_paths(tmp_path: Path) -> None:
    path = write(tmp_path, '[legacy]\nconfig_php = ""\n[storage]\nposix_root = ""\n')
    settings = load_settings(path, NO_ENV)
    assert settings.legacy.config_php is None
    assert settings.storage.posix_root is None


def test_paths_expand_the_home_directory(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[newstack]\ndata_dir = "~/ocb"\n'), NO_ENV)
    assert settings.newstack.data_dir == Path("~/ocb").expanduser()
    assert "~" not in str(settings.newstack.data_dir)


def test_settings_are_frozen() -> None:
    settings = load_settings(None, NO_ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.proxy = ProxySettings()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.storage.s3.bucket = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# The commented example

def test_defaults_toml_loads_back_to_exactly_the_defaults(tmp_path: Path) -> None:
    text = defaults_toml()
    assert flatten(tomllib.loads(text)) == leaf_keys(Settings)
    assert load_settings(write(tmp_path, text), NO_ENV) == Settings()


def test_defaults_toml_comments_every_key_and_section() -> None:
    lines = defaults_toml().splitlines()
    assignments = 0
    for number, line in enumerate(lines):
        if re.match(r"^\w+ = ", line) or line.startswith("["):
            assignments += not line.startswith("[")
            assert number > 0 and lines[number - 1].startswith("# "), (
                f"{line!r} has no comment above it")
    assert assignments == len(leaf_keys(Settings))


def test_defaults_toml_explains_the_env_overrides() -> None:
    assert f"{ENV_PREFIX}STORAGE__S3__BUCKET" in defaults_toml()


# ---------------------------------------------------------------------------------------------
# Wrong keys and wrong types in the file

def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, '[proxy]\nlisten_addr = "127.0.0.1:1"\n'))
    assert problem.startswith("proxy.listen_addr: unknown key")
    assert "did you mean proxy.listen?" in problem


def test_unknown_section_suggests_the_close_one(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, '[storag]\ndriver = "s3"\n'))
    assert problem.startswith("storag: unknown key")
    assert "did you mean storage?" in problem


def test_key_outside_its_section_names_the_section(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, 'bucket = "files"\n'))
    assert problem.startswith("bucket: unknown key")
    assert "storage.s3.bucket" in problem


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, '[bridge]\nzzz = 1\n'))
    assert problem.startswith("bridge.zzz: unknown key")
    assert "store_url" in problem


@pytest.mark.parametrize(
    ("toml", "key", "expected"),
    [
        ('[newstack]\nworkers = "4"', "newstack.workers", "expected an integer, got '4'"),
        ("[newstack]\nworkers = true", "newstack.workers", "expected an integer, got True"),
        ("[newstack]\nworkers = 2.0", "newstack.workers", "expected an integer, got 2.0"),
        ("[proxy]\nlisten = 8100", "proxy.listen", "expected a string, got 8100"),
        ("[legacy]\ndata_dir = 5", "legacy.data_dir", "expected a path (or empty), got 5"),
        ("[newstack]\ndata_dir = \"\"", "newstack.data_dir", "expected a path, got ''"),
        ('[storage]\ndriver = "ftp"', "storage.driver",
         "expected one of 'posix', 's3', 'memory', got 'ftp'"),
        ('[storage]\nlink_mode = "symlink"', "storage.link_mode", "one of 'auto', 'reflink'"),
        ("[proxy]\nfreeze_status = 404", "proxy.freeze_status", "one of 423, 503, got 404"),
        ('[proxy]\nfreeze_status = "423"', "proxy.freeze_status", "got '423'"),
        ('storage = "s3"', "storage", "expected a table, got 's3'"),
        ('[storage]\ns3 = "bucket"', "storage.s3", "expected a table, got 'bucket'"),
    ],
)
def test_wrong_types_name_the_key_and_what_was_expected(
    tmp_path: Path, toml: str, key: str, expected: str
) -> None:
    problem = only_problem(write(tmp_path, toml + "\n"))
    assert problem.startswith(f"{key}: ")
    assert expected in problem


@pytest.mark.parametrize(
    "listen",
    ["8100", ":8100", "localhost", "localhost:", "localhost:0", "localhost:65536",
     "localhost:http", "localhost:-1", "localhost:²", " :8100"],
)
def test_invalid_listen_values_are_rejected_with_a_hint(tmp_path: Path, listen: str) -> None:
    problem = only_problem(write(tmp_path, f'[newstack]\nlisten = "{listen}"\n'))
    assert problem.startswith("newstack.listen: ")
    assert "is not HOST:PORT" in problem
    assert "e.g. 127.0.0.1:8200" in problem


@pytest.mark.parametrize("listen", ["127.0.0.1:1", "0.0.0.0:65535", "[::1]:8100", "host:80"])
def test_valid_listen_values_are_accepted(tmp_path: Path, listen: str) -> None:
    settings = load_settings(write(tmp_path, f'[proxy]\nlisten = "{listen}"\n'), NO_ENV)
    assert settings.proxy.listen == listen


@pytest.mark.parametrize(
    ("section", "key"),
    [("newstack", "workers"), ("proxy", "workers"), ("storage.s3", "part_size_mb"),
     ("storage.s3", "max_concurrency")],
)
def test_counts_must_be_at_least_one(tmp_path: Path, section: str, key: str) -> None:
    problem = only_problem(write(tmp_path, f"[{section}]\n{key} = 0\n"))
    assert problem == f"{section}.{key}: must be at least 1, got 0"


def test_fileid_base_below_the_oc10_range_is_rejected(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "[newstack]\nfileid_base = 1000000\n"))
    assert problem.startswith("newstack.fileid_base: 1000000 is too low")
    assert "1000000000000" in problem
    assert load_settings(write(tmp_path, f"[newstack]\nfileid_base = {2**31}\n"), NO_ENV)


def test_fileid_base_without_room_in_64_bits_is_rejected(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, f"[newstack]\nfileid_base = {2**63 - 1}\n"))
    assert problem.startswith("newstack.fileid_base: ")
    assert "too high" in problem


@pytest.mark.parametrize("prefix", ["oc-", "oc.", "oc ", "öc_", "oc;drop"])
def test_table_prefix_must_be_a_plain_identifier(tmp_path: Path, prefix: str) -> None:
    problem = only_problem(write(tmp_path, f'[legacy]\ntable_prefix = "{prefix}"\n'))
    assert problem.startswith("legacy.table_prefix: ")
    assert "letters, digits and '_'" in problem


# ---------------------------------------------------------------------------------------------
# Environment overrides

def test_env_overrides_every_kind_of_value() -> None:
    env = {
        "OCBRIDGE_NEWSTACK__WORKERS": " 8 ",
        "OCBRIDGE_NEWSTACK__FILEID_BASE": "2_000_000_000_000",
        "OCBRIDGE_NEWSTACK__DATA_DIR": "/data/ocb",
        "OCBRIDGE_LEGACY__CONFIG_PHP": "/srv/oc/config/config.php",
        "OCBRIDGE_STORAGE__DRIVER": "memory",
        "OCBRIDGE_STORAGE__S3__BUCKET": "files",
        "OCBRIDGE_PROXY__FREEZE_STATUS": "503",
        "OCBRIDGE_PROXY__LISTEN": "0.0.0.0:443",
    }
    settings = load_settings(None, env)
    assert settings.newstack.workers == 8
    assert settings.newstack.fileid_base == 2_000_000_000_000
    assert settings.newstack.data_dir == Path("/data/ocb")
    assert settings.legacy.config_php == Path("/srv/oc/config/config.php")
    assert settings.storage.driver == "memory"
    assert settings.storage.s3.bucket == "files"
    assert settings.proxy.freeze_status == 503
    assert settings.proxy.listen == "0.0.0.0:443"


def test_env_freeze_status_accepts_423_and_rejects_other_codes() -> None:
    env = {"OCBRIDGE_PROXY__FREEZE_STATUS": "423"}
    assert load_settings(None, env).proxy.freeze_status == 423
    problem = only_problem(env={"OCBRIDGE_PROXY__FREEZE_STATUS": "500"})
    assert problem.startswith("proxy.freeze_status (from OCBRIDGE_PROXY__FREEZE_STATUS): ")
    assert "one of 423, 503, got '500'" in problem


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[storage.s3]\nbucket = "from-file"\nregion = "eu"\n')
    settings = load_settings(path, {"OCBRIDGE_STORAGE__S3__BUCKET": "from-env"})
    assert settings.storage.s3.bucket == "from-env"
    assert settings.storage.s3.region == "eu"


def test_env_empty_string_clears_an_optional_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[storage]\nposix_root = "/srv/blobs"\n')
    settings = load_settings(path, {"OCBRIDGE_STORAGE__POSIX_ROOT": ""})
    assert settings.storage.posix_root is None


def test_env_empty_string_is_not_a_required_path() -> None:
    problem = only_problem(env={"OCBRIDGE_NEWSTACK__DATA_DIR": ""})
    assert problem == ("newstack.data_dir (from OCBRIDGE_NEWSTACK__DATA_DIR): "
                       "expected a path, got ''")


@pytest.mark.parametrize("text", ["four", "4.0", "", "0x10"])
def test_env_int_that_is_not_an_integer_names_the_variable(text: str) -> None:
    problem = only_problem(env={"OCBRIDGE_PROXY__WORKERS": text})
    assert problem == (f"proxy.workers (from OCBRIDGE_PROXY__WORKERS): expected an integer, "
                       f"got {text!r}")


def test_env_values_are_validated_like_file_values() -> None:
    problem = only_problem(env={"OCBRIDGE_PROXY__WORKERS": "0"})
    assert problem == "proxy.workers (from OCBRIDGE_PROXY__WORKERS): must be at least 1, got 0"


def test_env_literal_is_case_sensitive() -> None:
    problem = only_problem(env={"OCBRIDGE_STORAGE__DRIVER": "S3"})
    assert "storage.driver (from OCBRIDGE_STORAGE__DRIVER)" in problem


# No setting is a bool yet; the converter every future flag will go through is tested directly.
@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
     ("0", False), ("false", False), ("No", False), ("off", False)],
)
def test_env_bool_spellings(text: str, expected: bool) -> None:
    assert config._convert(config._EnvValue(text, "OCBRIDGE_X__Y"), bool) == (True, expected)


@pytest.mark.parametrize("text", ["", "2", "y", "enabled"])
def test_env_bool_nonsense_is_rejected(text: str) -> None:
    assert config._convert(config._EnvValue(text, "OCBRIDGE_X__Y"), bool) == (False, None)


@pytest.mark.parametrize("value", [1, 0, "true"])
def test_file_bool_must_be_a_toml_bool(value: object) -> None:
    assert config._convert(value, bool) == (False, None)
    assert config._convert(True, bool) == (True, True)


def test_env_variable_naming_an_unknown_key_is_reported_by_its_name() -> None:
    problem = only_problem(env={"OCBRIDGE_PROXY__LISTN": "0.0.0.0:1"})
    assert problem.startswith("OCBRIDGE_PROXY__LISTN: proxy.listn is not a setting")
    assert "did you mean OCBRIDGE_PROXY__LISTEN?" in problem


def test_env_variable_naming_an_unknown_section_is_reported_by_its_name() -> None:
    problem = only_problem(env={"OCBRIDGE_NOSUCH__KEY": "1"})
    assert problem.startswith("OCBRIDGE_NOSUCH__KEY: nosuch is not a setting")
    assert "storage" in problem  # lists the known sections


def test_env_variable_overriding_a_section_is_rejected() -> None:
    problem = only_problem(env={"OCBRIDGE_STORAGE__S3": "files"})
    assert problem.startswith("OCBRIDGE_STORAGE__S3: storage.s3 is a section, not a setting")
    assert "OCBRIDGE_STORAGE__S3__" in problem


def test_env_variable_overriding_a_top_level_section_is_rejected() -> None:
    problem = only_problem(env={"OCBRIDGE_PROXY": "x"})
    assert problem.startswith("OCBRIDGE_PROXY: proxy is a section, not a setting")
    assert "OCBRIDGE_PROXY__LISTEN" in problem


def test_env_variable_with_an_empty_key_is_rejected() -> None:
    problem = only_problem(env={"OCBRIDGE_PROXY__": "x"})
    assert problem.startswith("OCBRIDGE_PROXY__: proxy. is not a setting")
    assert "listen" in problem


def test_env_variable_going_below_a_setting_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[proxy]\nlisten = "127.0.0.1:8100"\n')
    problem = only_problem(path, {"OCBRIDGE_PROXY__LISTEN__PORT": "1"})
    assert problem.startswith("OCBRIDGE_PROXY__LISTEN__PORT: proxy.listen is a setting, "
                              "not a section")
    # and without the file the same variable must not turn proxy.listen into a table
    assert only_problem(None, {"OCBRIDGE_PROXY__LISTEN__PORT": "1"}) == problem


# ---------------------------------------------------------------------------------------------
# Everything at once

def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """
[legacy]
table_prefix = "oc-"
[newstack]
workers = 0
fileid_base = 10
listen = "nowhere"
[storage]
driver = "ftp"
[storage.s3]
bukket = "x"
[proxy]
freeze_status = 200
""")
    env = {"OCBRIDGE_PROXY__WORKERS": "many", "OCBRIDGE_BRIDGE__STORE": "x"}
    with pytest.raises(ConfigError) as info:
        load_settings(path, env)
    error = info.value
    expected_keys = [
        "legacy.table_prefix", "newstack.workers", "newstack.fileid_base", "newstack.listen",
        "storage.driver", "storage.s3.bukket", "proxy.freeze_status", "proxy.workers",
        "OCBRIDGE_BRIDGE__STORE",
    ]
    assert len(error.problems) == len(expected_keys), error.problems
    for key in expected_keys:
        assert sum(p.startswith(key) for p in error.problems) == 1, (key, error.problems)
    assert error.source == str(path)
    message = str(error)
    assert message.startswith(f"{path}: 9 problem(s):")
    for problem in error.problems:
        assert f"  - {problem}" in message


# ---------------------------------------------------------------------------------------------
# The file itself

def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    problem = only_problem(path)
    assert problem.startswith(f"file not found: {path}")
    assert "ocbridge config defaults" in problem


def test_file_that_is_not_toml_points_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[proxy]\nlisten = 127.0.0.1:8100\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, NO_ENV)
    assert info.value.source == str(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("not valid TOML: ")
    assert "line 2" in info.value.problems[0]


def test_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[proxy]\ncookie_secret = "\xe9"\n')
    assert only_problem(path).startswith("cannot read the file: ")


def test_directory_instead_of_a_file_is_reported(tmp_path: Path) -> None:
    assert only_problem(tmp_path).startswith("cannot read the file: ")


# ---------------------------------------------------------------------------------------------
# Checks across sections

def test_s3_driver_needs_an_endpoint(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, '[storage]\ndriver = "s3"\n'))
    assert problem == "storage.s3.endpoint_url: required when storage.driver = 's3'"
    env = {"OCBRIDGE_STORAGE__S3__ENDPOINT_URL": "http://127.0.0.1:7480"}
    path = write(tmp_path, '[storage]\ndriver = "s3"\n')
    assert load_settings(path, env).storage.driver == "s3"


def test_db_url_without_config_php_needs_a_data_dir() -> None:
    env = {"OCBRIDGE_LEGACY__DB_URL": "sqlite:////tmp/oc.db"}
    problem = only_problem(env=env)
    assert problem.startswith("legacy.data_dir: required when legacy.db_url is given")
    with_dir = load_settings(None, {**env, "OCBRIDGE_LEGACY__DATA_DIR": "/tmp/data"})
    assert with_dir.legacy.data_dir == Path("/tmp/data")
    with_php = load_settings(None, {**env, "OCBRIDGE_LEGACY__CONFIG_PHP": "/tmp/config.php"})
    assert with_php.legacy.data_dir is None
