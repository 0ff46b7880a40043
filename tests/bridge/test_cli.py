"""bridge/cli.py through click's CliRunner: config, fixture and demo commands, exit codes and
messages without tracebacks."""

from __future__ import annotations

import json
import os
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge.cli import main
from bridge.config import ENV_PREFIX


@pytest.fixture(autouse=True)
def no_ocbridge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """`config check` reads the real environment; a developer's OCBRIDGE_ variables must not
    change what these tests see."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_clean_failure(result: Result) -> None:
    """Exit 2 with a message for a human: no traceback, no exception escaping click."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------------------------------------
# The group

def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"ocbridge, version {version('ocbridge')}\n"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_commands(flag: str) -> None:
    result = run(flag)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ocbridge [OPTIONS] COMMAND")
    assert "Move ownCloud 10 users" in result.stdout
    for command in ("config", "fixture", "demo"):
        assert command in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr


# ---------------------------------------------------------------------------------------------
# config

def test_config_defaults_is_accepted_by_config_check(tmp_path: Path) -> None:
    defaults = run("config", "defaults")
    assert defaults.exit_code == 0
    assert defaults.stderr == ""
    tomllib.loads(defaults.stdout)
    path = tmp_path / "ocbridge.toml"
    path.write_text(defaults.stdout, encoding="utf-8")

    check = run("config", "check", path)
    assert check.exit_code == 0, check.stderr
    assert check.stdout.startswith(f"{path}: OK\n")
    assert "storage: posix" in check.stdout
    assert "proxy:   127.0.0.1:8100 -> legacy http://127.0.0.1:8300" in check.stdout


def test_config_check_applies_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "ocbridge.toml"
    path.write_text("", encoding="utf-8")
    result = run("config", "check", path, env={"OCBRIDGE_STORAGE__DRIVER": "memory"})
    assert result.exit_code == 0, result.stderr
    assert "storage: memory" in result.stdout


def test_config_check_lists_every_problem_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[storage]\ndriver = "ftp"\n'
        '[proxy]\nlisten = "[::1]:99999"\nworkers = 0\nlistn = "x"\n'
        '[newstack]\nfileid_base = 5\n',
        encoding="utf-8",
    )
    result = run("config", "check", path, env={"OCBRIDGE_PROXY__FREEZE_STATUS": "500"})
    assert_clean_failure(result)
    assert result.stdout == ""
    expected = [
        "storage.driver: expected one of 'posix', 's3', 'memory', got 'ftp'",
        "proxy.listen: '[::1]:99999' is not HOST:PORT (use HOST:PORT, e.g. 127.0.0.1:8200)",
        "proxy.workers: must be at least 1, got 0",
        "proxy.listn: unknown key (did you mean proxy.listen?)",
        "newstack.fileid_base: 5 is too low",
        "proxy.freeze_status (from OCBRIDGE_PROXY__FREEZE_STATUS): expected one of 423, 503",
    ]
    assert f"{path}: {len(expected)} problem(s):" in result.stderr
    lines = result.stderr.splitlines()
    for problem in expected:  # one line each, whatever the width, brackets kept
        assert any(line.startswith(f"  - {problem}") for line in lines), (problem, lines)


def test_config_check_survives_markup_like_text_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[proxy]\n"[/]" = 1\n"[bold]x" = 2\n', encoding="utf-8")
    result = run("config", "check", path)
    assert_clean_failure(result)
    assert "proxy.[/]: unknown key" in result.stderr
    assert "proxy.[bold]x: unknown key" in result.stderr


def test_config_check_on_a_missing_file(tmp_path: Path) -> None:
    result = run("config", "check", tmp_path / "absent.toml")
    assert_clean_failure(result)
    assert "file not found" in result.stderr
    assert "ocbridge config defaults" in result.stderr


def test_config_check_on_a_file_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "ocbridge.toml"
    path.write_text("this is not = = toml\n", encoding="utf-8")
    result = run("config", "check", path)
    assert_clean_failure(result)
    assert "not valid TOML" in result.stderr


# ---------------------------------------------------------------------------------------------
# fixture

FIXTURE_ARGS = ("--profile", "small", "--users", "2", "--files-per-user", "5", "--seed", "3",
                "--json")


def test_fixture_create_on_sqlite_then_refuse_then_replace(tmp_path: Path) -> None:
    instance = tmp_path / "oc10"
    result = run("fixture", "create", "--dir", instance, *FIXTURE_ARGS)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["instance_dir"] == str(instance.resolve())
    assert summary["profile"] == "small"
    assert summary["seed"] == 3
    assert summary["users"] == 2
    assert summary["files"] >= 2 * 5
    assert summary["filecache_rows"] >= summary["files"] + summary["folders"]
    assert summary["db_url"] == f"sqlite:///{instance.resolve() / 'data' / 'owncloud.db'}"
    manifest = json.loads((instance / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["users"]) == 2
    assert (instance / "config" / "config.php").is_file()
    assert (instance / "data" / "owncloud.db").is_file()

    again = run("fixture", "create", "--dir", instance, *FIXTURE_ARGS)
    assert_clean_failure(again)
    assert "--replace" in again.stderr
    assert str(instance.resolve()) in again.stderr

    replaced = run("fixture", "create", "--dir", instance, *FIXTURE_ARGS, "--replace")
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads(replaced.stdout)["users"] == 2
    assert (instance / "manifest.json").is_file()


def test_fixture_create_refuses_to_replace_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    result = run("fixture", "create", "--dir", tmp_path, *FIXTURE_ARGS, "--replace")
    assert_clean_failure(result)
    assert "manifest.json" in result.stderr
    assert (tmp_path / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_fixture_create_rejects_an_unknown_profile(tmp_path: Path) -> None:
    result = run("fixture", "create", "--dir", tmp_path / "x", "--profile", "nonsense")
    assert result.exit_code == 2
    assert "Invalid value for '--profile'" in result.stderr
    assert "'small'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_fixture_create_rejects_zero_users(tmp_path: Path) -> None:
    result = run("fixture", "create", "--dir", tmp_path / "x", "--users", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--users'" in result.stderr


def test_fixture_create_with_an_unreachable_database(tmp_path: Path) -> None:
    result = run("fixture", "create", "--dir", tmp_path / "oc10", "--users", "1",
                 "--db", "mysql+pymysql://root@127.0.0.1:1/x")
    assert_clean_failure(result)
    assert "cannot reach the database server" in result.stderr
    assert "127.0.0.1:1/x" in result.stderr
    assert "Is it running?" in result.stderr


def test_fixture_create_rejects_a_database_ownCloud_never_ran_on(tmp_path: Path) -> None:
    result = run("fixture", "create", "--dir", tmp_path / "oc10", "--db", "oracle://u@h/db")
    assert_clean_failure(result)
    assert "not 'oracle'" in result.stderr


# the demo: tests/bridge/test_demo.py
