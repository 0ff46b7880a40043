"""`ocbridge migrate …`: the migration commands (plan, run, verify). bridge/cli.py registers
the group; each command parses options, opens the instance and calls migrate/ library code."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bridge import config as config_mod
from bridge.errors import ConfigError
from bridge.oc10.formats import human_file_size

if TYPE_CHECKING:
    from migrate.plan import Plan
    from newstack.legacy.instance import LegacyInstance

#: users listed in the terminal report when no --user is given; all of them are in --json
TABLE_USERS = 50
TABLE_COHORTS = 20
_STYLE = {"blocker": "bold red", "warning": "yellow", "info": "cyan"}
_VERDICT = {"blocked": "[bold red]blocked[/]", "warnings": "[yellow]warnings[/]",
            "ready": "[green]ready[/]"}


def _friendly[F: Callable[..., Any]](func: F) -> F:
    """bridge.cli's error handling, looked up when the command runs (bridge/cli.py imports
    this module, so importing it back at load time would be circular)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from bridge.cli import _friendly_errors

        return _friendly_errors(func)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
    help="The ocbridge TOML file; without it, embedded defaults (and OCBRIDGE_ variables).")
OC10_CONFIG_OPTION = click.option(
    "--oc10-config", "config_php", type=click.Path(path_type=Path, exists=True),
    help="The ownCloud instance's config.php (overrides legacy.config_php).")


def legacy_settings(config_file: Path | None, config_php: Path | None) -> config_mod.Settings:
    """Settings from the TOML file, with --oc10-config applied and validated."""
    settings = config_mod.load_settings(config_file)
    if config_php is not None:
        settings = dataclasses.replace(
            settings, legacy=dataclasses.replace(settings.legacy, config_php=config_php))
        problems = config_mod.validate(settings)
        if problems:
            raise ConfigError(problems, "command line")
    if settings.legacy.config_php is None:
        raise ConfigError(
            ["legacy.config_php: the ownCloud instance's config/config.php is needed to read "
             "it (database, data directory, table prefix); give it with --oc10-config or in "
             "the [legacy] section"], "legacy")
    return settings


def open_legacy(settings: config_mod.Settings) -> LegacyInstance:
    from newstack.legacy.instance import open_instance

    legacy = settings.legacy
    assert legacy.config_php is not None
    return open_instance(Path(legacy.config_php), db_url=legacy.db_url,
                         data_dir=legacy.data_dir)


@click.group("migrate")
def migrate_group() -> None:
    """Plan and carry out the move of ownCloud 10 users to the new stack."""


@migrate_group.command("plan")
@CONFIG_OPTION
@OC10_CONFIG_OPTION
@click.option("--max-cohort", type=click.IntRange(min=1),
              help="Split share-linked groups of users larger than this; the shares cut by "
                   "the split are reported.")
@click.option("--check-disk", is_flag=True,
              help="Also walk the users' folders and compare them with oc_filecache (rows "
                   "without files, files without rows, sizes, symlinks, names).")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False,
                                                     allow_dash=True),
              help="Write the whole plan as JSON to this file ('-' for standard output).")
@click.option("--user", "users", multiple=True, metavar="UID",
              help="Report only this user and their cohort (repeatable); the share graph "
                   "still covers everybody.")
@_friendly
def plan_command(config_file: Path | None, config_php: Path | None, max_cohort: int | None,
                 check_disk: bool, json_file: Path | None, users: tuple[str, ...]) -> None:
    """Read the ownCloud 10 instance (read-only) and report, per user, what will carry over,
    what will not and why, and which users should move together (cohorts)."""
    from bridge.cli import console as err_console
    from migrate.plan import build_plan

    instance = open_legacy(legacy_settings(config_file, config_php))
    try:
        with _progress(err_console) as report:
            try:
                plan = build_plan(instance, max_cohort=max_cohort, check_disk=check_disk,
                                  only_users=users, progress=report)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--user") from None
    finally:
        instance.close()
    to_stdout = json_file is not None and str(json_file) == "-"
    if json_file is not None:
        text = json.dumps(plan.to_json(), indent=2, ensure_ascii=False) + "\n"
        if to_stdout:
            click.echo(text, nl=False)
        else:
            try:
                json_file.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise click.FileError(str(json_file), hint=exc.strerror) from None
    render_plan(plan, err_console if to_stdout else Console(), detail=bool(users))
    if json_file is not None and not to_stdout:
        err_console.print(f"plan written to {escape(str(json_file))}", highlight=False)


@migrate_group.command("run")
@CONFIG_OPTION
@OC10_CONFIG_OPTION
@click.option("--user", "users", multiple=True, metavar="UID",
              help="Migrate this user (repeatable).")
@click.option("--cohort", metavar="N", type=click.IntRange(min=1),
              help="Migrate cohort N of `migrate plan` (numbered from 1).")
@click.option("--phase", type=click.Choice(["bulk", "delta"]), default="bulk", show_default=True,
              help="bulk: the first copy (resumable; a finished one is a no-op); delta: catch "
                   "up with what changed on ownCloud since, reading only changed folders.")
@click.option("--link-mode", type=click.Choice(["auto", "reflink", "hardlink", "copy"]),
              help="How POSIX blobs are made from ownCloud's files (overrides "
                   "storage.link_mode; auto: reflink, else hardlink, else copy).")
@click.option("--workers", type=click.IntRange(min=1), default=8, show_default=True,
              help="Parallel blob imports.")
@click.option("--copy-processes", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes that copy files into a POSIX storage (link mode copy, "
                   "or auto across filesystems); 0: one per core, 1: none.")
@click.option("--verify-content", is_flag=True,
              help="Read and hash every file, also those a reflink or hardlink could take "
                   "unread (oc_filecache has their checksum and their size and mtime are "
                   "unchanged since ownCloud scanned them).")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the per-user reports as JSON to this file.")
@click.option("--metrics-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write Prometheus metrics (files, bytes, findings, durations) here at the "
                   "end, for node_exporter's textfile collector.")
@_friendly
def run_command(config_file: Path | None, config_php: Path | None, users: tuple[str, ...],
                cohort: int | None, phase: str, link_mode: str | None, workers: int,
                copy_processes: int, verify_content: bool, json_file: Path | None,
                metrics_file: Path | None) -> None:
    """Copy users from ownCloud 10 into the new stack, keeping every id, etag, mtime,
    checksum, version, trash item, favorite, tag, comment and credential."""
    from bridge.cli import console as err_console
    from migrate.delta import DeltaPass
    from migrate.runner import MigrationOptions, UserMigration
    from migrate.source import LegacySource
    from newstack.service import open_newstack

    settings = legacy_settings(config_file, config_php)
    instance = open_legacy(settings)
    try:
        uids = list(users)
        if cohort is not None:
            from migrate.plan import build_plan

            cohorts = {c.index: c for c in build_plan(instance).cohorts}
            if cohort not in cohorts:
                raise click.BadParameter(f"the plan has {len(cohorts)} cohorts",
                                         param_hint="--cohort")
            uids.extend(u for u in cohorts[cohort].members if u not in uids)
        if not uids:
            raise click.UsageError("name the users to migrate: --user UID or --cohort N")
        stack = open_newstack(settings)
        source = LegacySource(instance)
        options = MigrationOptions(link_mode=link_mode or settings.storage.link_mode,  # type: ignore[arg-type]
                                   workers=workers, copy_processes=copy_processes,
                                   verify_content=verify_content)
        reports: list[dict[str, Any]] = []
        for uid in uids:
            with _progress(err_console) as progress:
                if phase == "delta":
                    delta = DeltaPass(source, stack.store, stack.driver, uid, options,
                                      progress=progress).delta()
                    summary = dict(delta.__dict__, migration=None)
                    err_console.print(
                        f"{escape(uid)}: delta read {delta.rows_read} rows in "
                        f"{delta.folders_visited} changed folders; {delta.added} added, "
                        f"{delta.changed} changed, {delta.moved} moved, {delta.deleted} deleted",
                        highlight=False)
                    reports.append(summary)
                    continue
                report = UserMigration(source, stack.store, stack.driver, uid, options,
                                       progress=progress).run()
            reports.append(json.loads(report.to_json()))
            rate = report.files / report.seconds if report.seconds else 0.0
            err_console.print(
                f"{escape(uid)}: {report.files} files, {report.folders} folders, "
                f"{human_file_size(report.bytes)}, {report.versions} versions, "
                f"{report.trash_items} trash items, {report.shares} shares, {report.links} "
                f"links, {report.oauth2_tokens} OAuth2 tokens in {report.seconds:.1f} s "
                f"({rate:,.0f} files/s); {len(report.findings)} findings", highlight=False)
            for code, path, message in report.findings[:20]:
                err_console.print(f"  [yellow]{escape(code)}[/] {escape(path)}: "
                                  f"{escape(message)}", highlight=False)
    finally:
        instance.close()
        if metrics_file is not None:
            from bridge.metrics import write_textfile

            write_textfile(str(metrics_file))
    if json_file is not None:
        json_file.write_text(json.dumps(reports, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")


@migrate_group.command("verify")
@CONFIG_OPTION
@OC10_CONFIG_OPTION
@click.option("--user", "uid", required=True, metavar="UID", help="The user to verify.")
@click.option("--password", help="The user's password (or an app password): also checks the "
                                 "login on both stacks and, with both URLs, walks both servers.")
@click.option("--legacy-url", help="Base URL of the ownCloud server (or `serve legacy`).")
@click.option("--new-url", help="Base URL of the new stack.")
@click.option("--content", type=click.Choice(["none", "checksums", "bytes"]),
              default="checksums", show_default=True,
              help="How file contents are compared.")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the report as JSON to this file.")
@_friendly
def verify_command(config_file: Path | None, config_php: Path | None, uid: str,
                   password: str | None, legacy_url: str | None, new_url: str | None,
                   content: str, json_file: Path | None) -> None:
    """The gate before a cutover: everything a client sees of UID, legacy against new.
    Exit status 0 when nothing differs, 1 when something does, 2 when it could not run."""
    from bridge.cli import console as err_console
    from migrate.verify import run_verify
    from newstack.legacy.backend import Oc10Backend
    from newstack.service import open_newstack

    settings = legacy_settings(config_file, config_php)
    legacy = Oc10Backend(open_legacy(settings))
    try:
        new = open_newstack(settings).backend
        report = run_verify(legacy, new, uid, password, legacy_url, new_url,
                            content=content)  # type: ignore[arg-type]
    finally:
        legacy.close()
    if json_file is not None:
        json_file.write_text(report.to_json() + "\n", encoding="utf-8")
    err_console.print(report)
    raise SystemExit(report.exit_code)


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("planning", total=None)

        def report(label: str, done: int, total: int) -> None:
            progress.update(task, description=f"reading {label}", completed=done,
                            total=total or None)

        yield report


# ---------------------------------------------------------------------------------------------
# the terminal report


def render_plan(plan: Plan, console: Console, *, detail: bool = False) -> None:
    """Summary, instance findings, cohorts, crossing shares and one line per user; with
    `detail`, every finding of every listed user."""
    inst, totals = plan.instance, plan.totals
    console.print(
        f"[bold]Migration plan[/] for ownCloud {escape(str(inst['version']))} instance "
        f"{escape(str(inst['instance_id']))} ({inst['database']}, {escape(inst['data_dir'])})",
        highlight=False)
    verdicts = totals["verdicts"]
    console.print(
        f"{totals['users']} users ({totals['enabled']} enabled, {totals['with_home']} with a "
        f"home): {totals['files']} files, {totals['folders']} folders, "
        f"{human_file_size(totals['bytes'])}, {totals['versions']} versions, "
        f"{totals['trash_items']} trashed items; shares "
        + (", ".join(f"{n} {k}" for k, n in totals["shares"].items()) or "none")
        + f"; ready {verdicts.get('ready', 0)}, with warnings {verdicts.get('warnings', 0)}, "
        f"blocked {verdicts.get('blocked', 0)}", highlight=False)

    if plan.findings:
        table = Table(title="Instance", title_justify="left")
        for col in ("severity", "code", "what", "examples"):
            table.add_column(col)
        for f in plan.findings:
            table.add_row(_severity(f.severity), f.code, escape(f.message),
                          escape(", ".join(f.examples[:3])))
        console.print(table)

    _render_cohorts(plan, console)

    table = Table(title="Users", title_justify="left")
    for col, justify in (("user", "left"), ("state", "left"), ("files", "right"),
                         ("size", "right"), ("shares out/in", "right"), ("links", "right"),
                         ("cohort", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    order = {"blocked": 0, "warnings": 1, "ready": 2}
    users = plan.users if detail or len(plan.users) <= TABLE_USERS else sorted(
        plan.users, key=lambda u: (order[u.verdict], u.uid))[:TABLE_USERS]
    for u in users:
        out = sum(u.shares_owned.values())
        received = sum(u.shares_received.values())
        table.add_row(escape(u.uid), u.state, str(u.files), human_file_size(u.bytes),
                      f"{out}/{received}", str(u.links.total), str(u.cohort),
                      _VERDICT[u.verdict])
    console.print(table)
    if len(users) < len(plan.users):
        console.print(f"… and {len(plan.users) - len(users)} more users (most affected shown "
                      "first); --json has all of them, --user UID details one", highlight=False)

    table = Table(title="What does not carry over as it is", title_justify="left")
    for col in ("user", "severity", "code", "count", "what"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for u in users:
        for f in u.findings:
            table.add_row(escape(u.uid), _severity(f.severity), f.code, str(f.count),
                          escape(f.message))
    if table.row_count:
        console.print(table)
    if detail:
        for u in users:
            console.print(f"\n[bold]{escape(u.uid)}[/] ({escape(u.display_name)}): "
                          f"{_VERDICT[u.verdict]}", highlight=False)
            for f in u.findings:
                console.print(f"  {_severity(f.severity)} {f.code}: {escape(f.message)}",
                              highlight=False)
                console.print(f"      → {escape(f.outcome)}", highlight=False)
                for example in f.examples:
                    console.print(f"      {escape(example)}", highlight=False)
            if not u.findings:
                console.print("  everything carries over", highlight=False)


def _render_cohorts(plan: Plan, console: Console) -> None:
    sizes = ", ".join(f"{count}×{size}" for size, count in plan.component_sizes.items())
    limit = plan.options.get("max_cohort")
    console.print(f"\nShare-linked components (count×size): {sizes or 'none'}; "
                  f"{len(plan.cohorts)} cohort(s)"
                  + (f", at most {limit} users each" if limit else ""), highlight=False)
    multi = [c for c in plan.cohorts if len(c.members) > 1]
    if multi:
        table = Table(title="Cohorts of several users", title_justify="left")
        for col in ("cohort", "size", "component", "members"):
            table.add_column(col)
        for c in multi[:TABLE_COHORTS]:
            members = ", ".join(c.members[:8]) + (" …" if len(c.members) > 8 else "")
            table.add_row(str(c.index), str(len(c.members)),
                          f"{c.component}{' (split)' if c.split else ''}", escape(members))
        console.print(table)
        if len(multi) > TABLE_COHORTS:
            console.print(f"… and {len(multi) - TABLE_COHORTS} more", highlight=False)
    if plan.crossing:
        table = Table(title="Shares across cohorts (cannot move together)",
                      title_justify="left")
        for col in ("users", "cohorts", "weight", "shares"):
            table.add_column(col)
        for link in plan.crossing[:TABLE_COHORTS]:
            table.add_row(escape(f"{link.a} – {link.b}"), f"{link.cohort_a} – {link.cohort_b}",
                          f"{link.weight:g}", ", ".join(map(str, link.share_ids[:6])))
        console.print(table)


def _severity(severity: str) -> str:
    return f"[{_STYLE[severity]}]{severity}[/]"
