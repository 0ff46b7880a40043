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
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bridge import config as config_mod
from bridge.errors import ConfigError, OcbridgeError
from migrate.cli import migrate_group

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
            # escape: messages quote user input such as "[section]" or paths with brackets;
            # soft_wrap: each problem stays on one line, whatever the terminal width
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group("ocbridge", context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--migrate", "migrate_users", default="all", show_default=True,
              metavar="none|all|U1,U2", help="Whom the demo cuts over, one after another.")
@click.option("--no-client", is_flag=True, help="Leave out the simulated client.")
@click.option("--keep", is_flag=True,
              help="Leave everything running until Ctrl-C; print URLs and credentials and "
                   "write them to DIR/demo.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_friendly_errors
def demo(demo_dir: Path, profile: str, seed: int, migrate_users: str, no_client: bool,
         keep: bool, as_json: bool) -> None:
    """Run ocbridge on embedded defaults (SQLite, POSIX, loopback ports).

    Builds an ownCloud 10 instance in DIR/legacy, starts the legacy server, the new stack and
    the routing proxy, keeps a simulated client reading and writing through the proxy, and
    cuts the users over one by one (bulk copy, catch-up, freeze, final delta, verify gate,
    flip), printing the verification and the measured freeze per user. Every server stops
    when the demo ends (or with --keep, at Ctrl-C).
    """
    import logging

    from bridge.demo import DemoOptions, run_demo, stop_on_sigterm, wait_forever

    # each user's migration findings are known oddities of the fixture: the story stays short
    logging.getLogger("ocbridge.migrate").setLevel(logging.ERROR)
    out = Console()  # the demo's story goes to standard output

    def report(line: str) -> None:
        if as_json:
            console.print(escape(line), highlight=False, soft_wrap=True)
        else:
            out.print(escape(line), highlight=False, soft_wrap=True)

    def bars() -> Progress:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), console=console)

    options = DemoOptions(demo_dir, profile, seed, migrate_users, not no_client, keep)
    try:
        with stop_on_sigterm():
            summary = run_demo(options, report, bars, wait_forever if keep else None)
    except KeyboardInterrupt:
        console.print("stopped; every server of the demo was shut down")
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    failed = [c["uid"] for c in summary["cutovers"] if not c["ok"]]
    client = summary.get("client", {})
    if failed or client.get("missing") or client.get("errors"):
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# serve, users, groups

_CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
    help="The ocbridge TOML file; without it, embedded defaults (and OCBRIDGE_ variables).")


_DATA_OPTION = click.option(
    "--data", type=click.Path(path_type=Path, file_okay=False),
    help="The new stack's data directory (overrides newstack.data_dir).")


def _settings(config_file: Path | None, listen: str | None = None,
              data: Path | None = None) -> config_mod.Settings:
    import dataclasses

    settings = config_mod.load_settings(config_file)
    changes: dict[str, Any] = {}
    if listen is not None:
        changes["listen"] = listen
    if data is not None:
        changes["data_dir"] = data
    if changes:
        overridden = dataclasses.replace(settings.newstack, **changes)
        settings = dataclasses.replace(settings, newstack=overridden)
        problems = config_mod.validate(settings)
        if problems:
            raise ConfigError(problems, "command line")
    return settings


@main.group("serve")
def serve_group() -> None:
    """Run a server in the foreground until Ctrl-C or SIGTERM."""


@serve_group.command("newstack")
@_CONFIG_OPTION
@click.option("--listen", help="HOST:PORT to bind (overrides newstack.listen).")
@click.option("--data", type=click.Path(path_type=Path, file_okay=False),
              help="Data directory (overrides newstack.data_dir).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes (overrides newstack.workers).")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads per worker process.")
@_friendly_errors
def serve_newstack(config_file: Path | None, listen: str | None, data: Path | None,
                   workers: int | None, threads: int) -> None:
    """Serve the new stack: ownCloud 10's WebDAV and OCS API over its own metadata service."""
    from newstack import server, service

    settings = _settings(config_file, listen, data)
    service.open_store(settings)  # fail here, before forking, on a bad database or id base
    host, port = server.parse_listen(settings.newstack.listen)
    options = server.ServerOptions(host=host, port=port,
                                   workers=workers or settings.newstack.workers,
                                   threads=threads)

    def ready(url: str) -> None:
        console.print(f"new stack serving on [bold]{url}[/] "
                      f"(data in {settings.newstack.data_dir.resolve()})", highlight=False)

    server.serve(lambda: service.make_app(settings), options, ready)


@serve_group.command("legacy")
@_CONFIG_OPTION
@click.option("--oc10-config", "config_php", type=click.Path(path_type=Path, exists=True),
              help="The ownCloud instance's config.php (overrides legacy.config_php).")
@click.option("--listen", help="HOST:PORT to bind (overrides legacy.listen).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
@click.option("--threads", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads per worker process.")
@click.option("--read-only", is_flag=True,
              help="Write nothing to the database or data directory; writes are refused (403). "
                   "A database account with SELECT rights is then enough.")
@_friendly_errors
def serve_legacy(config_file: Path | None, config_php: Path | None, listen: str | None,
                 workers: int, threads: int, read_only: bool) -> None:
    """Serve an ownCloud 10 instance in place (database + data directory), as ownCloud 10 would:
    the legacy server of tests and the demo, or a read-only view for operators."""
    import dataclasses

    from newstack import server
    from newstack.legacy import service

    settings = _settings(config_file)
    changes: dict[str, Any] = {}
    if config_php is not None:
        changes["config_php"] = config_php
    if listen is not None:
        changes["listen"] = listen
    if changes:
        settings = dataclasses.replace(
            settings, legacy=dataclasses.replace(settings.legacy, **changes))
        problems = config_mod.validate(settings)
        if problems:
            raise ConfigError(problems, "command line")
    service.legacy_instance(settings).close()  # fail here, before forking, on a bad instance
    host, port = server.parse_listen(settings.legacy.listen)
    options = server.ServerOptions(host=host, port=port, workers=workers, threads=threads)

    def ready(url: str) -> None:
        mode = " read-only" if read_only else ""
        console.print(f"ownCloud 10 instance {settings.legacy.config_php} served{mode} on "
                      f"[bold]{url}[/]", highlight=False)

    server.serve(lambda: service.make_app(settings, read_only=read_only), options, ready)


@main.group("users")
def users_group() -> None:
    """Administer the new stack's users."""


@users_group.command("add")
@click.argument("uid")
@_CONFIG_OPTION
@_DATA_OPTION
@click.option("--password", help="The password; asked for when not given.")
@click.option("--display-name")
@click.option("--email")
@click.option("--quota", help="'none', 'default' or a size such as '10 GB'.")
@click.option("--group", "groups", multiple=True, help="Add to this group (created if missing).")
@_friendly_errors
def users_add(uid: str, config_file: Path | None, data: Path | None, password: str | None,
              display_name: str | None, email: str | None, quota: str | None,
              groups: tuple[str, ...]) -> None:
    """Create user UID."""
    from newstack import service

    store = service.open_store(_settings(config_file, data=data))
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store.add_user(uid, password=password, display_name=display_name, email=email, quota=quota)
    for gid in groups:
        if gid not in store.list_groups():
            store.add_group(gid)
        store.add_member(gid, uid)
    click.echo(f"user {uid} created")


@users_group.command("passwd")
@click.argument("uid")
@_CONFIG_OPTION
@_DATA_OPTION
@click.option("--password", help="The new password; asked for when not given.")
@_friendly_errors
def users_passwd(uid: str, config_file: Path | None, data: Path | None,
                 password: str | None) -> None:
    """Set the password of UID."""
    from newstack import service

    store = service.open_store(_settings(config_file, data=data))
    if store.user(uid) is None:
        raise click.ClickException(f"no user {uid!r}")
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    store.set_password(uid, password)
    click.echo(f"password of {uid} changed")


@users_group.command("list")
@_CONFIG_OPTION
@_DATA_OPTION
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def users_list(config_file: Path | None, data: Path | None, as_json: bool) -> None:
    """List users with display name, e-mail, quota and groups."""
    from newstack import service

    store = service.open_store(_settings(config_file, data=data))
    rows: list[dict[str, Any]] = [
            {"uid": u.uid, "display_name": u.display_name, "email": u.email,
             "quota": u.quota, "enabled": u.enabled, "groups": list(store.groups_of(u.uid))}
            for u in store.list_users()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("uid", "display name", "e-mail", "quota", "enabled", "groups")
    for row in rows:
        table.add_row(row["uid"], row["display_name"] or "", row["email"] or "",
                      row["quota"] or "", "yes" if row["enabled"] else "no",
                      ", ".join(row["groups"]))
    Console().print(table)


@users_group.command("delete")
@click.argument("uid")
@_CONFIG_OPTION
@_DATA_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_friendly_errors
def users_delete(uid: str, config_file: Path | None, data: Path | None, yes: bool) -> None:
    """Delete UID with all their files."""
    from newstack import service

    stack = service.open_newstack(_settings(config_file, data=data))
    if stack.store.user(uid) is None:
        raise click.ClickException(f"no user {uid!r}")
    if not yes:
        click.confirm(f"Delete {uid} and all their files?", abort=True)
    stack.backend.delete_user(uid)
    click.echo(f"user {uid} deleted")


@users_group.command("app-password")
@click.argument("uid")
@_CONFIG_OPTION
@_DATA_OPTION
@click.option("--name", default="ocbridge cli", show_default=True, help="Device name.")
@_friendly_errors
def users_app_password(uid: str, config_file: Path | None, data: Path | None, name: str) -> None:
    """Create an app password for UID and print it (shown once)."""
    from newstack import service

    store = service.open_store(_settings(config_file, data=data))
    if store.user(uid) is None:
        raise click.ClickException(f"no user {uid!r}")
    click.echo(store.add_app_password(uid, name))


@main.group("groups")
def groups_group() -> None:
    """Administer the new stack's groups."""


@groups_group.command("add")
@click.argument("gid")
@_CONFIG_OPTION
@_DATA_OPTION
@_friendly_errors
def groups_add(gid: str, config_file: Path | None, data: Path | None) -> None:
    """Create group GID."""
    from newstack import service

    service.open_store(_settings(config_file, data=data)).add_group(gid)
    click.echo(f"group {gid} created")


@groups_group.command("list")
@_CONFIG_OPTION
@_DATA_OPTION
@_friendly_errors
def groups_list(config_file: Path | None, data: Path | None) -> None:
    """List groups."""
    from newstack import service

    for gid in service.open_store(_settings(config_file, data=data)).list_groups():
        click.echo(gid)


@groups_group.command("add-member")
@click.argument("gid")
@click.argument("uid")
@_CONFIG_OPTION
@_DATA_OPTION
@_friendly_errors
def groups_add_member(gid: str, uid: str, config_file: Path | None, data: Path | None) -> None:
    """Add UID to GID."""
    from newstack import service

    service.open_store(_settings(config_file, data=data)).add_member(gid, uid)
    click.echo(f"{uid} is now in {gid}")


@groups_group.command("remove-member")
@click.argument("gid")
@click.argument("uid")
@_CONFIG_OPTION
@_DATA_OPTION
@_friendly_errors
def groups_remove_member(gid: str, uid: str, config_file: Path | None, data: Path | None) -> None:
    """Remove UID from GID."""
    from newstack import service

    service.open_store(_settings(config_file, data=data)).remove_member(gid, uid)
    click.echo(f"{uid} is no longer in {gid}")


# ---------------------------------------------------------------------------------------------
# proxy, route

@main.command("proxy")
@_CONFIG_OPTION
@click.option("--listen", help="HOST:PORT to bind (overrides proxy.listen).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes (overrides proxy.workers).")
@_friendly_errors
def proxy_command(config_file: Path | None, listen: str | None, workers: int | None) -> None:
    """Run the per-user routing proxy in front of ownCloud 10 and the new stack."""
    import dataclasses
    import logging

    from bridge.store import BridgeStore
    from newstack.server import parse_listen
    from proxy.directory import LegacyDirectory
    from proxy.server import problems, serve

    settings = _settings(config_file)
    if listen is not None:
        settings = dataclasses.replace(
            settings, proxy=dataclasses.replace(settings.proxy, listen=listen))
    wrong = config_mod.validate(settings) + problems(settings)
    if wrong:
        raise ConfigError(wrong, "proxy settings")
    # fail here, before forking, on a bad store or ownCloud database
    BridgeStore.from_settings(settings).close()
    LegacyDirectory.from_settings(settings).close()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    host, port = parse_listen(settings.proxy.listen)

    def ready(url: str) -> None:
        console.print(f"proxy on [bold]{url}[/] -> legacy {settings.proxy.legacy_url}, "
                      f"new {settings.proxy.newstack_url}", highlight=False)
        shadowed = settings.proxy.shadow_users
        if shadowed:
            who = "every user" if "*" in shadowed else ", ".join(shadowed)
            console.print(f"shadow mode: reads of {who} mirrored to the other stack",
                          highlight=False)

    serve(settings, host, port, workers or settings.proxy.workers, ready)


@main.group("route")
def route_group() -> None:
    """Show or change which stack serves each user."""


@route_group.command("show")
@click.argument("uid", required=False)
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def route_show(uid: str | None, config_file: Path | None, as_json: bool) -> None:
    """Show the routing of UID (or of every user with a routing row) and the proxies' acks."""
    from bridge.store import BridgeStore

    settings = _settings(config_file)
    store = BridgeStore.from_settings(settings)
    try:
        epoch, rows = store.routes()
        status = store.ack_status(epoch)
    finally:
        store.close()
    if uid is not None:
        rows = [r for r in rows if r.uid == uid]
    default = settings.proxy.default_stack
    if as_json:
        click.echo(json.dumps({
            "epoch": epoch, "default_stack": default,
            "users": [{"uid": r.uid, "state": r.state, "stack": r.stack, "epoch": r.epoch}
                      for r in rows] or ([{"uid": uid, "state": None, "stack": default}]
                                         if uid else []),
            "proxies": [{"proxy_id": p.proxy_id, "epoch": p.epoch, "draining": p.draining,
                         "acked": p in status.acked} for p in status.acked + status.waiting],
        }, indent=2))
        return
    click.echo(f"routing epoch {epoch}; users without a row go to the {default} stack")
    if uid is not None and not rows:
        click.echo(f"{uid}: no routing row ({default} stack)")
    table = Table("uid", "state", "stack", "changed at epoch")
    for r in rows:
        table.add_row(r.uid, r.state, r.stack, str(r.epoch))
    if rows:
        Console().print(table)
    live = status.acked + status.waiting
    click.echo(f"{len(live)} live prox{'y' if len(live) == 1 else 'ies'}, "
               f"{len(status.waiting)} not yet at epoch {epoch}")


@route_group.command("set")
@click.argument("uid")
@click.argument("state", type=click.Choice(["legacy", "new", "frozen"]))
@_CONFIG_OPTION
@click.option("--wait", type=click.FloatRange(min=0), default=10, show_default=True,
              help="Seconds to wait for every live proxy to apply the change.")
@_friendly_errors
def route_set(uid: str, state: str, config_file: Path | None, wait: float) -> None:
    """Route UID to the legacy or new stack, or freeze its writes (reads stay on its stack)."""
    from bridge.store import BridgeStore

    store = BridgeStore.from_settings(_settings(config_file))
    try:
        row = store.set_state(uid, state)
        status = store.wait_for_acks(row.epoch, wait)
    finally:
        store.close()
    click.echo(f"{uid}: {row.state} on the {row.stack} stack (epoch {row.epoch})")
    if not status.complete:
        waiting = ", ".join(f"{p.proxy_id} (at {p.epoch}, {p.draining} write(s) draining)"
                            for p in status.waiting)
        raise click.ClickException(f"not every proxy applied epoch {row.epoch} within {wait}s: "
                                   f"{waiting}")
    click.echo(f"applied by {len(status.acked)} live prox"
               f"{'y' if len(status.acked) == 1 else 'ies'}")


# ---------------------------------------------------------------------------------------------
# cutover, status

@main.command("cutover")
@click.option("--user", "users", multiple=True, metavar="UID", help="Cut this user over "
              "(repeatable).")
@click.option("--cohort", metavar="N", type=click.IntRange(min=1),
              help="Cut over every user of cohort N of `migrate plan` together, under one "
                   "freeze: if one fails, all go back.")
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the per-user results as JSON.")
@_friendly_errors
def cutover_command(users: tuple[str, ...], cohort: int | None, config_file: Path | None,
                    as_json: bool) -> None:
    """Move users to the new stack while they work: bulk copy, catch-up deltas, freeze
    (acknowledged by every live proxy), final delta, the verify gate, atomic flip. A user whose
    cutover fails is back on ownCloud 10, untouched; exit status 1 then."""
    from bridge.cutover import Cutover
    from bridge.store import BridgeStore

    settings = _settings(config_file)
    # a cohort moves together, under one freeze; users named one by one move one by one
    groups = [[uid] for uid in dict.fromkeys(users)]
    if cohort is not None:
        named = {g[0] for g in groups}
        groups.append([u for u in _cohort_members(settings, cohort) if u not in named])
    groups = [g for g in groups if g]
    if not groups:
        raise click.UsageError("name the users to cut over: --user UID or --cohort N")
    store = BridgeStore.from_settings(settings)
    results = []
    try:
        for group in groups:
            with _progress() as progress:
                task = progress.add_task(", ".join(group), total=None)

                def report(label: str, done: int, total: int, task: Any = task) -> None:
                    progress.update(task, description=label, completed=done,
                                    total=total or None)

                def phase(who: str, state: str, task: Any = task) -> None:
                    progress.update(task, description=f"{who}: {state.replace('_', ' ')}",
                                    completed=0, total=None)

                done = Cutover(settings, store, progress=report,
                               on_phase=phase).run_together(group)
            results.extend(done)
            if not as_json:
                for result in done:
                    console.print(_cutover_line(result), highlight=False, soft_wrap=True)
    finally:
        store.close()
    _end_with_results(results, as_json)


def _end_with_results(results: list[Any], as_json: bool) -> None:
    """Per-user results as JSON when asked; exit status 1 when any user did not move."""
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    if not all(r.ok for r in results):
        sys.exit(1)


def _cohort_members(settings: config_mod.Settings, cohort: int) -> list[str]:
    from migrate.cli import legacy_settings, open_legacy
    from migrate.plan import build_plan

    instance = open_legacy(legacy_settings(None, None) if settings.legacy.config_php is None
                           else settings)
    try:
        cohorts = {c.index: c for c in build_plan(instance).cohorts}
    finally:
        instance.close()
    if cohort not in cohorts:
        raise click.BadParameter(f"the plan has {len(cohorts)} cohorts", param_hint="--cohort")
    return list(cohorts[cohort].members)


def _cutover_line(result: Any) -> str:
    uid = escape(result.uid)
    if not result.ok:
        return (f"[bold red]{uid}: back on ownCloud 10[/] ({escape(result.reason)})"
                + (f"; frozen {result.freeze_seconds:.2f} s" if result.freeze_seconds else ""))
    tolerated = ", ".join(f"{k} {v}" for k, v in result.verify_tolerated.items())
    tolerated = f" (tolerated: {tolerated})" if tolerated else ""
    freeze = (f"[bold]{result.freeze_seconds:.2f} s[/]" if result.freeze_seconds is not None
              else f"not yet acknowledged ({escape(result.reason)})")
    final = result.final_delta.changes if result.final_delta else 0
    return (f"[green]{uid}: on the new stack[/] — bulk {result.bulk_files} nodes in "
            f"{result.bulk_seconds:.1f} s, {len(result.passes)} catch-up pass(es), final delta "
            f"{final} change(s), gate identical{tolerated}; writes frozen {freeze} "
            f"({result.proxies} live prox{'y' if result.proxies == 1 else 'ies'}); "
            f"{result.seconds:.1f} s in all")


@main.command("rollback")
@click.option("--user", "users", multiple=True, metavar="UID", required=True,
              help="Move this user back to ownCloud 10 (repeatable).")
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the per-user results as JSON.")
@_friendly_errors
def rollback_command(users: tuple[str, ...], config_file: Path | None, as_json: bool) -> None:
    """Move users back to ownCloud 10 with what they changed on the new stack: freeze, reverse
    delta, flip back. A user whose rollback fails stays on the new stack; exit status 1 then."""
    from bridge.cutover import Rollback
    from bridge.store import BridgeStore

    settings = _settings(config_file)
    store = BridgeStore.from_settings(settings)
    results = []
    try:
        for uid in dict.fromkeys(users):
            result = Rollback(settings, store, actor="ocbridge rollback").run(uid)
            results.append(result)
            if as_json:
                continue
            if result.ok:
                console.print(
                    f"[green]{escape(uid)}: back on ownCloud 10[/] — {result.added} added, "
                    f"{result.changed} changed, {result.moved} moved, {result.deleted} deleted "
                    f"({len(result.new_ids)} new fileid(s)), {result.etags_set} etag(s) kept; "
                    f"trash: {result.restored} restored, {result.purged} purged, "
                    f"{result.trash_added} added; {result.versions} version(s), "
                    f"{result.annotations} annotation(s); writes frozen "
                    f"{result.freeze_seconds or 0:.2f} s", highlight=False)
                if result.tolerated:
                    console.print("  tolerated (cutover.verify_ignore): " + ", ".join(
                        f"{f}: {n}" for f, n in sorted(result.tolerated.items())),
                        highlight=False)
            else:
                console.print(f"[bold red]{escape(uid)}: still on the {result.state} stack[/] "
                              f"({escape(result.reason)})", highlight=False, soft_wrap=True)
                if result.differences:
                    console.print("  differences that remain can be tolerated by naming them "
                                  "in cutover.verify_ignore", highlight=False)
    finally:
        store.close()
    _end_with_results(results, as_json)


@main.command("status")
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
@click.option("--errors", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the last failures to show.")
@_friendly_errors
def status_command(config_file: Path | None, as_json: bool, errors: int) -> None:
    """Users per migration state, current freezes and the last errors."""
    from bridge.status import collect_status
    from bridge.store import BridgeStore

    store = BridgeStore.from_settings(_settings(config_file))
    try:
        status = collect_status(store, errors=errors)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(status.to_dict(), indent=2, ensure_ascii=False))
    else:
        Console().print(status)


# ---------------------------------------------------------------------------------------------
# capture, replay

@main.command("capture")
@_CONFIG_OPTION
@click.option("--upstream", help="The stack to capture in front of (default: proxy.legacy_url).")
@click.option("--listen", default="127.0.0.1:8400", show_default=True,
              help="HOST:PORT that clients are pointed at.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The mitmproxy flow file to append to.")
@click.option("--cert", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="PEM certificate and key for clients that connect with TLS.")
@click.option("--confdir", type=click.Path(path_type=Path, file_okay=False),
              help="mitmproxy's directory for its CA (default ~/.mitmproxy).")
@_friendly_errors
def capture_command(config_file: Path | None, upstream: str | None, listen: str, out: Path,
                    cert: Path | None, confdir: Path | None) -> None:
    """Record client traffic to a stack (e.g. ownCloud 10 before anyone migrates) in a
    mitmproxy flow file, credentials redacted, until Ctrl-C or SIGTERM."""
    import asyncio
    import dataclasses

    from newstack.server import parse_listen
    from proxy.capture import capture

    settings = _settings(config_file)
    problems = config_mod.validate(dataclasses.replace(
        settings, proxy=dataclasses.replace(settings.proxy, listen=listen)))
    if problems:
        raise ConfigError([p.replace("proxy.listen", "--listen") for p in problems],
                          "command line")
    host, port = parse_listen(listen)
    target = upstream or settings.proxy.legacy_url

    def ready(urls: list[str]) -> None:
        console.print(f"capturing {target} on [bold]{', '.join(urls)}[/] into {out}",
                      highlight=False)

    count = asyncio.run(capture(target, host, port, out, confdir=confdir, cert=cert,
                                ready=ready))
    console.print(f"{count} flow(s) written to {out}", highlight=False)


@main.command("replay")
@click.argument("flows", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--user", "uid", required=True, help="Whose read requests to replay.")
@click.option("--password", envvar="OCBRIDGE_REPLAY_PASSWORD",
              help="The user's password (or app password); else $OCBRIDGE_REPLAY_PASSWORD, "
                   "else asked for.")
@_CONFIG_OPTION
@click.option("--legacy", "legacy_url", help="ownCloud 10's URL (default: proxy.legacy_url).")
@click.option("--new", "new_url", help="The new stack's URL (default: proxy.newstack_url).")
@click.option("--ignore", multiple=True, metavar="FIELD",
              help="A known difference not to report, e.g. oc:share-types (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def replay_command(flows: Path, uid: str, password: str | None, config_file: Path | None,
                   legacy_url: str | None, new_url: str | None, ignore: tuple[str, ...],
                   as_json: bool) -> None:
    """Replay USER's read requests (GET, HEAD, PROPFIND, REPORT) from FLOWS against both stacks
    and report every difference; exit 1 when there is one."""
    import asyncio

    from proxy.replay import replay

    settings = _settings(config_file)
    if password is None:
        password = click.prompt(f"password of {uid}", hide_input=True)
    assert password is not None
    report = asyncio.run(replay(flows, uid, password, legacy_url or settings.proxy.legacy_url,
                                new_url or settings.proxy.newstack_url, ignore=ignore))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        table = Table("request", "kind", "where", "field", "legacy", "new")
        for request, diff in report.differences:
            table.add_row(f"{request.method} {request.path}", diff.kind, diff.href, diff.field,
                          str(diff.legacy), str(diff.new))
        for request in report.errors:
            assert request.error is not None
            table.add_row(f"{request.method} {request.path}", "error", "", request.error[0],
                          request.error[1], "")
        if table.rows:
            Console(width=200).print(table)
        ignored = f", {report.ignored} ignored" if report.ignored else ""
        click.echo(f"{uid}: {len(report.requests)} of {report.flows} read request(s) replayed, "
                   f"{len(report.differences)} difference(s), {len(report.errors)} error(s)"
                   f"{ignored}")
    sys.exit(report.exit_code)


main.add_command(migrate_group)
