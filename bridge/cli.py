"""The `ocbridge` command: parse, build settings, call library code, print results."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bridge import config as config_mod
from bridge.errors import OcbridgeError

if TYPE_CHECKING:
    from fixtures.builder import BuildStats
    from fixtures.manifest import Manifest

console = Console(stderr=True)


def _friendly_errors[F: Callable[..., Any]](func: F) -> F:
    """Turn our own errors into one clear message and exit status 2, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OcbridgeError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ocbridge")
def main() -> None:
    """Move ownCloud 10 users to a new stack, one user at a time, invisibly to their clients."""


# ---------------------------------------------------------------------------------------------
# config

@main.group("config")
def config_group() -> None:
    """Check or print the configuration file."""


@config_group.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_friendly_errors
def config_check(file: Path) -> None:
    """Validate FILE (and OCBRIDGE_ overrides); list every problem at once."""
    settings = config_mod.load_settings(file)
    click.echo(f"{file}: OK")
    click.echo(f"  legacy:  {settings.legacy.config_php or settings.legacy.db_url or '(not set)'}")
    click.echo(f"  storage: {settings.storage.driver}")
    click.echo(f"  proxy:   {settings.proxy.listen} -> legacy {settings.proxy.legacy_url}, "
               f"new {settings.proxy.newstack_url}")


@config_group.command("defaults")
def config_defaults() -> None:
    """Print a commented config file with every key at its default."""
    click.echo(config_mod.defaults_toml(), nl=False)


# ---------------------------------------------------------------------------------------------
# fixture

@main.group("fixture")
def fixture_group() -> None:
    """Build realistic ownCloud 10 instances for tests, demos and benchmarks."""


def _profile_names() -> list[str]:
    from fixtures.profiles import PROFILES

    return sorted(PROFILES)


@fixture_group.command("create")
@click.option("--dir", "instance_dir", required=True, type=click.Path(path_type=Path,
              file_okay=False), help="Instance directory (config/, data/, manifest.json).")
@click.option("--db", "db_url", default="sqlite", show_default=True,
              help="Database URL (mysql+pymysql://…, postgresql+psycopg://…) or 'sqlite' for "
                   "DIR/data/owncloud.db. MySQL and PostgreSQL databases are created if "
                   "missing.")
@click.option("--profile", type=click.Choice(_profile_names()), default="small",
              show_default=True, help="Size and oddities of the instance.")
@click.option("--users", type=click.IntRange(min=1), help="Override the profile's user count.")
@click.option("--files-per-user", type=click.IntRange(min=0),
              help="Override the profile's files per user.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Same seed, same instance.")
@click.option("--prefix", "table_prefix", default="oc_", show_default=True,
              help="Table prefix (config.php dbtableprefix).")
@click.option("--replace", is_flag=True,
              help="Rebuild over an earlier fixture in DIR and drop its tables in the database.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_friendly_errors
def fixture_create(instance_dir: Path, db_url: str, profile: str, users: int | None,
                   files_per_user: int | None, seed: int, table_prefix: str, replace: bool,
                   as_json: bool) -> None:
    """Create an ownCloud 10 instance shaped exactly as 10.16 leaves one."""
    from fixtures.builder import build_instance
    from fixtures.profiles import get_profile

    chosen = get_profile(profile, users=users, files_per_user=files_per_user)
    with _progress() as progress:
        task = progress.add_task("planning", total=None)

        def report(label: str, done: int, total: int) -> None:
            progress.update(task, description=label, completed=done, total=total)

        manifest, stats = build_instance(instance_dir, db_url, chosen, seed,
                                         table_prefix=table_prefix, replace=replace,
                                         progress=report)
    _print_fixture_summary(manifest, stats, as_json)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


def _print_fixture_summary(manifest: Manifest, stats: BuildStats, as_json: bool) -> None:
    filecache = stats.rows.get(f"{manifest.table_prefix}filecache", 0)
    summary = {
        "instance_dir": manifest.instance_dir,
        "config_php": manifest.config_php,
        "db_url": manifest.db_url,
        "profile": manifest.profile,
        "seed": manifest.seed,
        "users": len(manifest.users),
        "files": stats.files,
        "folders": stats.folders,
        "bytes": stats.bytes,
        "filecache_rows": filecache,
        "rows_total": sum(stats.rows.values()),
        "insert_seconds": round(stats.insert_seconds, 3),
        "wall_seconds": round(stats.wall_seconds, 3),
        "oddities": len(manifest.oddities),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    table = Table(title=f"ownCloud 10 fixture ({manifest.profile}, seed {manifest.seed})",
                  show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    Console().print(table)
    users = Table("user", "password", "app password (login name)", title="log in with")
    for user in manifest.users[:8]:
        app = user["app_passwords"][0] if user["app_passwords"] else None
        users.add_row(user["uid"], user["password"],
                      f"{app['token']} ({app['login_name']})" if app else "")
    Console().print(users)
    click.echo(f"Everything else (links, shares, oddities) is in "
               f"{Path(manifest.instance_dir) / 'manifest.json'}")


# ---------------------------------------------------------------------------------------------
# demo

@main.command("demo")
@click.option("--dir", "demo_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("demo"), show_default=True, help="Where the demo keeps its files.")
@click.option("--profile", type=click.Choice(_profile_names()), default="small",
              show_default=True, help="Fixture profile of the demo's ownCloud 10 instance.")
@click.option("--seed", type=int, default=1, show_default=True)
@_friendly_errors
def demo(demo_dir: Path, profile: str, seed: int) -> None:
    """Run ocbridge on embedded defaults (SQLite, POSIX, loopback).

    Builds an ownCloud 10 instance in DIR/legacy and prints who can log in. Serving,
    migrating and cutting over are added to the demo as those parts of ocbridge land.
    """
    from fixtures.builder import build_instance
    from fixtures.manifest import MANIFEST_NAME
    from fixtures.profiles import get_profile

    instance = demo_dir / "legacy"
    replace = (instance / MANIFEST_NAME).exists()
    with _progress() as progress:
        task = progress.add_task("building the ownCloud 10 instance", total=None)

        def report(label: str, done: int, total: int) -> None:
            progress.update(task, description=label, completed=done, total=total)

        manifest, stats = build_instance(instance, "sqlite", get_profile(profile), seed,
                                         replace=replace, progress=report)
    _print_fixture_summary(manifest, stats, as_json=False)
