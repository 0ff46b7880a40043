"""One user's migration job: ownCloud 10 rows and files → the new stack's metadata and blobs.

Phases, each resumable on its own: `nodes` (files and trash: rows with their fileids, etags,
mtimes, sizes, permissions, checksums; blobs copied or linked and checksummed), `versions`,
`extras` (trash records, favorites, tags, comments, dead properties). Every batch is committed
together with its checkpoint, and blob ids are derived from (fileid, etag), so a job killed at
any moment and run again ends exactly where an uninterrupted run ends; a finished job run again
changes nothing.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge import metrics
from bridge.errors import OcbridgeError
from bridge.oc10.formats import parse_trash_name, parse_version_name
from migrate.copier import (
    CopyFailure,
    CopyItem,
    CopyOutcome,
    CopyWorkersFailed,
    ProcessCopier,
    outcome_of,
)
from migrate.source import LegacySource, SourceRow
from newstack.metadata import schema
from newstack.metadata.schema import AREA_FILES, AREA_TRASH, NO_PARENT
from newstack.metadata.store import MetadataStore, NodeRecord
from newstack.storage.base import BlobInfo, LinkMode, StorageDriver
from newstack.storage.posix import PosixDriver

log = logging.getLogger("ocbridge.migrate")

FILES: Final = "files"
TRASH: Final = "files_trashbin/files"
VERSIONS: Final = "files_versions"
TRASH_VERSIONS: Final = "files_trashbin/versions"
PHASES: Final = ("nodes", "versions", "extras", "shares")
FAVORITE: Final = "_$!<Favorite>!$_"
#: files at least this big are imported on the job's thread pool, smaller ones inline
PARALLEL_MIN_SIZE: Final = 256 * 1024
#: a batch copies on worker processes when it has at least this many files to copy, and
#: starts them (about 0.14 s) only for this many: a small delta copies on the job's threads
PROCESS_MIN_FILES: Final = 32
PROCESS_START_FILES: Final = 256


class MigrationError(OcbridgeError):
    """A user cannot be migrated as asked; the message says why."""


class InjectedCrash(BaseException):  # noqa: N818 - not an error a caller should handle
    """Raised by a test hook to simulate kill -9 between two steps."""


@dataclass
class MigrationReport:
    uid: str
    files: int = 0
    folders: int = 0
    bytes: int = 0
    versions: int = 0
    trash_items: int = 0
    favorites: int = 0
    tags: int = 0
    comments: int = 0
    dead_props: int = 0
    app_passwords: int = 0
    oauth2_tokens: int = 0
    avatar: bool = False
    systemtags: int = 0
    shares: int = 0
    links: int = 0
    share_members: int = 0
    #: linked files that kept oC10's stored checksum unread (size and mtime unchanged)
    trusted_checksums: int = 0
    linked_by: dict[str, int] = field(default_factory=dict)
    #: rows not imported (cache/, thumbnails/, uploads/...): by top folder
    skipped: dict[str, int] = field(default_factory=dict)
    #: findings: (code, path, message)
    findings: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    #: the new stack the job writes to: a finding is logged at WARNING once per (stack, user)
    scope: str = field(default="", repr=False)

    def note(self, code: str, path: str, message: str) -> None:
        self.findings.append((code, path, message))
        if not _first_sighting(self.scope, self.uid, code, path):
            # every catch-up pass meets the same findings again: said once at WARNING
            log.info("%s: %s %s (again): %s", self.uid, code, path, message)
            return
        metrics.MIGRATION_FINDINGS.labels(code).inc()
        log.warning("%s: %s %s: %s", self.uid, code, path, message)

    def to_json(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if k != "scope"}
        return json.dumps(fields, indent=2, default=list)


#: findings already logged by this process, (scope, uid, code, path), oldest first; bounded
_SEEN_FINDINGS: collections.OrderedDict[tuple[str, str, str, str], None] = \
    collections.OrderedDict()
_SEEN_FINDINGS_MAX: Final = 100_000


_SEEN_LOCK = threading.Lock()  # blob imports note findings from the job's threads


def _first_sighting(scope: str, uid: str, code: str, path: str) -> bool:
    key = (scope, uid, code, path)
    with _SEEN_LOCK:
        if key in _SEEN_FINDINGS:
            _SEEN_FINDINGS.move_to_end(key)
            return False
        _SEEN_FINDINGS[key] = None
        if len(_SEEN_FINDINGS) > _SEEN_FINDINGS_MAX:
            _SEEN_FINDINGS.popitem(last=False)
        return True


@dataclass(frozen=True)
class MigrationOptions:
    batch: int = 1000
    link_mode: LinkMode = "auto"
    #: parallel blob imports (file reads and S3 uploads overlap; hashing releases the GIL)
    workers: int = 8
    #: hash every file even when a link could trust oC10's stored checksum
    verify_content: bool = False
    #: worker processes that copy files into a POSIX root (0: one per core; 1: none, the
    #: job's threads copy)
    copy_processes: int = 0


ProgressFn = Callable[[str, int, int], None]


class BatchSync(Protocol):
    """What a batch of blobs still owes to be durable (`PosixDriver.end_deferred_sync`): call
    it once before the batch's metadata commits, or close() it when the batch is abandoned."""

    def __call__(self) -> None: ...

    def close(self) -> None: ...


class _AlreadyDurable:
    """The batch of a driver that makes every write durable itself (S3)."""

    def __call__(self) -> None:
        pass

    def close(self) -> None:
        pass


_NO_SYNC: Final = _AlreadyDurable()


class UserMigration:
    def __init__(self, source: LegacySource, store: MetadataStore, driver: StorageDriver,
                 uid: str, options: MigrationOptions | None = None, *,
                 progress: ProgressFn | None = None,
                 crash_hook: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.store = store
        self.driver = driver
        self.uid = uid
        self.options = options or MigrationOptions()
        self.report = MigrationReport(uid, scope=str(store.engine.url))
        self._progress = progress
        #: tests: called at every step boundary with its name; raising there is a kill -9
        self._crash = crash_hook or (lambda step: None)
        self._home = source.home(uid)
        self._executor: ThreadPoolExecutor | None = None
        self._copier: ProcessCopier | None = None
        #: whether blobs are being linked rather than written (decided by the last batch)
        self._linking = self.options.link_mode != "copy"

    # -- the job ----------------------------------------------------------------------------------

    def run(self) -> MigrationReport:
        try:
            return self._run()
        finally:
            self._shutdown_pool()

    def _shutdown_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._copier is not None:
            self._copier.close()
            self._copier = None

    def _run(self) -> MigrationReport:
        started = time.monotonic()
        storage = self.source.home_storage(self.uid)
        self._import_identity()
        self._import_user(storage is not None)
        if storage is not None:
            self._phase_nodes(storage)
            self._phase_versions(storage)
            self._phase_extras(storage)
            self._phase_shares()
        else:
            self.report.note("no-home", "", "the user never logged in on ownCloud: no files; "
                             "the new stack makes an empty home")
        self.report.seconds = time.monotonic() - started
        metrics.MIGRATION_SECONDS.observe(self.report.seconds)
        return self.report

    # -- identity and account ---------------------------------------------------------------------

    def _import_identity(self) -> None:
        config = self.source.instance.config
        wanted = {"instance_id": config.instanceid, "secret": config.secret,
                  "passwordsalt": config.passwordsalt,
                  "data_fingerprint": config.data_fingerprint,
                  # where received shares land (config.php share_folder); native reads it too
                  "share_folder": config.share_folder}
        current = self.store.settings()
        if current.get("instance_id") not in (None, "", wanted["instance_id"]):
            with self.store.read() as conn:
                migrated = conn.execute(sa.select(sa.func.count()).select_from(
                    schema.migration_checkpoints)).scalar_one()
            if migrated:
                raise MigrationError(
                    f"this new stack already holds users of ownCloud instance "
                    f"{current['instance_id']!r}, not {wanted['instance_id']!r}; one new stack "
                    "serves one ownCloud instance's users (oc:id carries the instance id)")
        ac = self.source.t.appconfig
        rows = self.source.table_rows(ac, (ac.c.appid == "files")
                                      & (ac.c.configkey == "default_quota"))
        default_quota = rows[0]["configvalue"] if rows else None
        for key, value in {**wanted, "default_quota": default_quota}.items():
            if current.get(key) != value and (value or key == "data_fingerprint"
                                              or key in current):
                self.store.set_setting(key, value)

    def _import_user(self, has_home: bool) -> None:
        t = self.source.t
        accounts = self.source.table_rows(t.accounts, t.accounts.c.user_id == self.uid)
        users = self.source.table_rows(t.users, t.users.c.uid == self.uid)
        if not users and not accounts:
            raise MigrationError(f"no user {self.uid!r} in the ownCloud database")
        account = accounts[0] if accounts else {}
        stored_hash = users[0]["password"] if users else ""
        prefs = {(p["appid"], p["configkey"]): p["configvalue"] for p in self.source.table_rows(
            t.preferences, t.preferences.c.userid == self.uid)}
        display = account.get("display_name") or (users[0].get("displayname") if users else None)
        email = prefs.get(("settings", "email")) or account.get("email")
        quota = prefs.get(("files", "quota")) or account.get("quota")
        enabled = account.get("state", 1) == 1 and prefs.get(("core", "enabled")) != "false"
        values: dict[str, Any] = dict(display_name=display, email=email, quota=quota,
                                      enabled=enabled, language=prefs.get(("core", "lang")))
        existing = self.store.user(self.uid)
        if existing is None:
            self.store.add_user(self.uid, password_hash=stored_hash or None,
                                created=int(account.get("creation_time") or time.time()),
                                create_roots=not has_home, **values)
        else:
            self.store.update_user(self.uid, password=stored_hash, **values)
        self._import_groups()
        self._import_app_passwords()
        self._import_account_data()

    def _import_account_data(self) -> None:
        from migrate import account_data

        counts = account_data.import_oauth2(self.source, self.store, self.uid, time.time(),
                                            self.report.note)
        self.report.oauth2_tokens = counts.access_tokens + counts.refresh_tokens
        self.report.avatar = account_data.import_avatar(
            self.source, self.store, self.driver, self.uid, self._home, self.report.note)

    def _import_groups(self) -> None:
        t = self.source.t
        gids = [r["gid"] for r in self.source.table_rows(
            t.group_user, t.group_user.c.uid == self.uid)]
        known = set(self.store.list_groups())
        mine = set(self.store.groups_of(self.uid))
        for gid in sorted(gids):
            if gid not in known:
                self.store.add_group(gid)
            if gid not in mine:
                self.store.add_member(gid, self.uid)

    def _import_app_passwords(self) -> None:
        t = self.source.t
        tokens = self.source.table_rows(t.authtoken, t.authtoken.c.uid == self.uid)
        a = schema.app_passwords
        with self.store.write(self.uid) as conn:
            have = set(conn.execute(sa.select(a.c.token_hash).where(a.c.uid == self.uid)
                                    ).scalars())
            rows = [dict(uid=self.uid, login_name=r["login_name"], token_hash=r["token"],
                         name=r["name"] or "(none)", type=int(r["type"] or 0),
                         last_activity=int(r["last_activity"] or 0),
                         last_check=int(r["last_check"] or 0), password_enc=r["password"])
                    for r in tokens if r["token"] not in have]
            if rows:
                conn.execute(sa.insert(a), rows)
        self.report.app_passwords = len(tokens)

    # -- checkpoints ------------------------------------------------------------------------------

    def _checkpoint(self, conn: Connection | None, phase: str) -> int:
        cp = schema.migration_checkpoints
        query = sa.select(cp.c.position).where(cp.c.uid == self.uid, cp.c.phase == phase)
        if conn is None:
            with self.store.read() as own:
                found = own.execute(query).scalar()
        else:
            found = conn.execute(query).scalar()
        return -1 if found is None else int(found)

    def _save_checkpoint(self, conn: Connection, phase: str, position: int) -> None:
        cp = schema.migration_checkpoints
        conn.execute(sa.delete(cp).where(cp.c.uid == self.uid, cp.c.phase == phase))
        conn.execute(sa.insert(cp).values(uid=self.uid, phase=phase, position=position,
                                          detail="", updated=int(time.time())))

    # -- phase 1: nodes and blobs -----------------------------------------------------------------

    def _phase_nodes(self, storage: int) -> None:
        after = self._checkpoint(None, "nodes")
        c = self.source.t.filecache.c
        with self.source.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).where(
                c.storage == storage, c.fileid > after)).scalar_one()
        with contextlib.closing(self.source.rows(storage, after=after,
                                                 batch=self.options.batch)) as batches:
            self._import_node_batches(batches, total)

    def _import_node_batches(self, batches: Iterator[list[SourceRow]], total: int) -> None:
        """Each batch: blobs first, then its rows and checkpoint in one transaction. The blobs'
        fsyncs and that transaction run on a thread of their own while the next batch is read
        and linked: both mostly wait on the disk, which needs no GIL. On that thread, in
        order: a batch's blobs are made durable, then its metadata commits (a kill -9 leaves
        no committed row pointing to a blob not on disk). One batch at a time; a sync or
        commit that fails (or is cut short) surfaces before the next one is started."""
        done = 0
        committing: Future[int] | None = None
        committer = ThreadPoolExecutor(1, thread_name_prefix="ocbridge-migrate-commit")
        try:
            for batch in batches:
                wanted = [(row, place) for row in batch
                          if (place := self._place(row)) is not None]
                blobs, sync = self._import_blobs_unsynced(
                    [row for row, _ in wanted if not row.is_dir])
                try:
                    self._crash("nodes:blobs-copied")
                    records = [self._record(row, area, path, blobs.get(row.fileid))
                               for row, (area, path) in wanted]
                    if committing is not None:
                        done = self._committed(committing.result(), done, total)
                except BaseException:
                    sync.close()  # not handed over yet: the batch is abandoned
                    raise
                committing = committer.submit(
                    self._commit_nodes, sync, records, batch[-1].fileid, len(batch),
                    sum(b.size for _, b in blobs.values()))
            if committing is not None:
                self._committed(committing.result(), done, total)
        finally:
            # a sync or commit in flight ends (committed or rolled back) before the job does
            committer.shutdown(wait=True)

    def _commit_nodes(self, sync: BatchSync, records: list[NodeRecord], position: int,
                      rows: int, size: int) -> int:
        sync()  # the batch's blobs durable before any row naming them commits
        with self.store.write(self.uid) as conn:
            self.store.insert_nodes(records, conn)
            self._crash("nodes:rows-inserted")
            self._save_checkpoint(conn, "nodes", position)
        metrics.MIGRATED_FILES.labels("nodes").inc(len(records))
        metrics.MIGRATED_BYTES.labels("nodes").inc(size)
        self._crash("nodes:committed")
        return rows

    def _committed(self, rows: int, done: int, total: int) -> int:
        done += rows
        if self._progress:
            self._progress("nodes", done, total)
        return done

    def _place(self, row: SourceRow) -> tuple[str, str] | None:
        """(area, path) of a row in the new stack, or None for rows that stay behind."""
        path = row.path
        if path == FILES or path.startswith(FILES + "/"):
            return AREA_FILES, path[len(FILES) + 1:]
        if path == TRASH or path.startswith(TRASH + "/"):
            return AREA_TRASH, path[len(TRASH) + 1:]
        if not (path.startswith(VERSIONS) or path.startswith(TRASH_VERSIONS)):
            top = path.split("/", 1)[0] or "(home root)"
            self.report.skipped[top] = self.report.skipped.get(top, 0) + 1
        return None

    def _record(self, row: SourceRow, area: str, path: str, blob: tuple[str, BlobInfo] | None
                ) -> NodeRecord:
        if row.is_dir:
            self.report.folders += 1
        else:
            self.report.files += 1
        size, checksum, blob_id = row.size, row.checksum, None
        if blob is not None:
            blob_id, info = blob
            self.report.bytes += info.size
            if info.linked_by:
                self.report.linked_by[info.linked_by] = \
                    self.report.linked_by.get(info.linked_by, 0) + 1
            computed = info.checksums.oc10() if info.checksums is not None else ""
            if info.checksums is None and checksum:  # linked unread: stored checksum trusted
                self.report.trusted_checksums += 1
            if info.size != row.size:
                self.report.note("wrong-size-row", row.path,
                                 f"oc_filecache says {row.size} bytes, the file has "
                                 f"{info.size}: the file's size is taken")
                size = info.size
            # oC10's value is kept verbatim, '' included (DESIGN invariant 8: what clients saw);
            # the checksum computed on the way checks a stored one
            if checksum and computed and checksum != computed:
                self.report.note("checksum-mismatch", row.path,
                                 "the content differs from oc_filecache.checksum; the stored "
                                 "checksum is kept (clients compare it)")
        return NodeRecord(
            fileid=row.fileid, owner=self.uid, area=area, path=path,
            parent=NO_PARENT if path == "" else row.parent, name=row.name if path else "",
            is_dir=row.is_dir, size=size, mtime=row.mtime, etag=row.etag, checksum=checksum,
            mimetype=row.mimetype, permissions=row.permissions, blob_id=blob_id)

    def _import_blobs(self, rows: Sequence[SourceRow]) -> dict[int, tuple[str, BlobInfo]]:
        """`_import_blobs_unsynced`, durable when it returns."""
        blobs, sync = self._import_blobs_unsynced(rows)
        sync()
        return blobs

    def _import_blobs_unsynced(self, rows: Sequence[SourceRow]
                               ) -> tuple[dict[int, tuple[str, BlobInfo]], BatchSync]:
        """Copy, link or upload each file's bytes under a blob id made of its fileid and etag
        (so a re-run after a crash overwrites rather than duplicates); rows whose file is gone
        or unreadable get no blob (served as oC10 serves them: 503 on GET) and a finding.
        The blobs are durable once the returned sync has been called (the driver's batched
        fsyncs, one per blob directory, where it has them); the caller calls it, or close()s
        it when the batch is abandoned."""
        home = str(self._home) + "/"
        may_link = self.options.link_mode != "copy" and not self.options.verify_content

        def one(row: SourceRow) -> tuple[int, tuple[str, BlobInfo] | None]:
            if row.encrypted:
                return row.fileid, self._blob(row, None)
            path = home + row.path

            def import_blob() -> BlobInfo:
                # a link reads the file only to check a stored checksum it cannot trust:
                # without one there is nothing to check (oC10's '' is kept as it is)
                hash_it = not may_link or bool(
                    row.checksum and not trusts_stored_checksum(row, os.stat(path)))
                return self.driver.link_from_path(blob_id_for(row.fileid, row.etag), path,
                                                  self.options.link_mode, checksums=hash_it)

            return row.fileid, self._blob(row, outcome_of(import_blob))

        if not rows:
            return {}, _NO_SYNC
        copier = self._copier_for(rows)
        pooled = [] if copier is not None else \
            [r for r in rows if on_pool(r.size, self._linking, self.options.workers)]
        # the driver's batched durability where it has it (PosixDriver): fsyncs per batch
        end: Callable[[], BatchSync] | None = getattr(self.driver, "end_deferred_sync", None)
        if end is not None:
            self.driver.start_deferred_sync()  # type: ignore[attr-defined]
        try:
            if copier is not None:
                results = self._copy_on_processes(copier, rows, home)
            else:
                futures = [self._pool().submit(one, r) for r in pooled]
                results = [one(r) for r in rows
                           if not on_pool(r.size, self._linking, self.options.workers)]
                results.extend(f.result() for f in futures)
        except BaseException:
            if end is not None:
                end().close()
            raise
        sync = end() if end is not None else _NO_SYNC
        blobs = {fileid: blob for fileid, blob in results if blob is not None}
        if blobs:
            # "auto" links on one filesystem and copies across two; S3 always copies
            self._linking = not any(info.linked_by == "copy" for _, info in blobs.values())
        return blobs, sync

    def _copier_for(self, rows: Sequence[SourceRow]) -> ProcessCopier | None:
        """The copy worker processes, when this batch copies enough files into a POSIX root
        (copy mode, or "auto" once it found the files on another filesystem)."""
        if (not isinstance(self.driver, PosixDriver) or self._linking
                or len(rows) < (PROCESS_MIN_FILES if self._copier else PROCESS_START_FILES)):
            return None
        processes = self.options.copy_processes or os.cpu_count() or 1
        if processes <= 1:
            return None
        if self._copier is None:
            self._copier = ProcessCopier(self.driver.root, processes, self.options.link_mode)
        return self._copier

    def _copy_on_processes(self, copier: ProcessCopier, rows: Sequence[SourceRow], home: str
                           ) -> list[tuple[int, tuple[str, BlobInfo] | None]]:
        driver = self.driver
        assert isinstance(driver, PosixDriver)
        plain = [row for row in rows if not row.encrypted]
        try:
            outcomes = copier.copy([CopyItem(blob_id_for(row.fileid, row.etag),
                                             home + row.path, row.size) for row in plain])
        except CopyWorkersFailed as exc:
            raise MigrationError(f"{self.uid}: {exc}; run the job again to resume") from exc
        finally:
            driver.note_foreign_writes()  # whatever they wrote is synced with the batch
        results = [(row.fileid, self._blob(row, None)) for row in rows if row.encrypted]
        results.extend((row.fileid, self._blob(row, outcome))
                       for row, outcome in zip(plain, outcomes, strict=True))
        return results

    def _blob(self, row: SourceRow, outcome: CopyOutcome | None) -> tuple[str, BlobInfo] | None:
        """A file's blob from how its import went, or None (and a finding) when it has none:
        encrypted (outcome None), gone or unreadable."""
        if outcome is None:
            self.report.note("encrypted", row.path, "server-side encrypted: not migrated")
            return None
        if isinstance(outcome, CopyFailure):
            if outcome.kind == "missing":
                self.report.note("row-without-file", row.path,
                                 "no file on disk: imported without content (GET answers 503 "
                                 "as on ownCloud)")
            else:
                self.report.note("unreadable-file", row.path, f"not imported: {outcome.message}")
            return None
        return blob_id_for(row.fileid, row.etag), outcome

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.options.workers,
                                                thread_name_prefix="ocbridge-migrate")
        return self._executor

    def _durable_batch(self) -> contextlib.AbstractContextManager[None]:
        """The driver's batched durability (one fsync per blob directory per batch) where it
        has it, for writes outside `_import_blobs` (the delta pass's own copies)."""
        deferred = getattr(self.driver, "deferred_sync", None)
        return deferred() if deferred is not None else contextlib.nullcontext()

    # -- phase 2: versions ------------------------------------------------------------------------

    def _phase_versions(self, storage: int) -> None:
        c = self.source.t.filecache.c
        after = self._checkpoint(None, "versions")
        under = (c.path.like(VERSIONS + "/%") | c.path.like(TRASH_VERSIONS + "/%"))
        with contextlib.closing(self.source.rows(storage, after=after, batch=self.options.batch,
                                                 where=under)) as batches:
            self._import_version_batches(batches)

    def _import_version_batches(self, batches: Iterator[list[SourceRow]]) -> None:
        for batch in batches:
            files = [row for row in batch if not row.is_dir]
            with self.store.read() as conn:
                targets = {row.fileid: self._version_target(conn, row) for row in files}
            wanted = [row for row in files if targets[row.fileid] is not None]
            blobs = self._import_blobs(wanted)
            self._crash("versions:blobs-copied")
            records: list[dict[str, Any]] = []
            for row in wanted:
                target = targets[row.fileid]
                blob = blobs.get(row.fileid)
                if target is None or blob is None:
                    continue
                fileid, version_id = target
                records.append(dict(fileid=fileid, version_id=version_id, size=blob[1].size,
                                    etag=row.etag, checksum=row.checksum,
                                    mimetype=row.mimetype, blob_id=blob[0]))
            with self.store.write(self.uid) as conn:
                if records:
                    conn.execute(sa.insert(schema.versions), records)
                self._save_checkpoint(conn, "versions", batch[-1].fileid)
            self.report.versions += len(records)
            metrics.MIGRATED_FILES.labels("versions").inc(len(records))
            metrics.MIGRATED_BYTES.labels("versions").inc(sum(int(r["size"]) for r in records))

    def _version_target(self, conn: Connection, row: SourceRow) -> tuple[int, int] | None:
        """(fileid, version id) of the file a version row belongs to, or None (a finding)."""
        if row.path.startswith(TRASH_VERSIONS + "/"):
            rel = row.path[len(TRASH_VERSIONS) + 1:]
            top, _, inner = rel.partition("/")
            if inner:  # a file inside a trashed folder: <name>.d<t>/<inner>.v<vts>
                parsed = parse_version_name(inner)
                area, path = AREA_TRASH, (f"{top}/{parsed[0]}" if parsed else "")
            else:  # <name>.v<vts>.d<t>
                trashed = parse_trash_name(top)
                parsed = parse_version_name(trashed[0]) if trashed else None
                area = AREA_TRASH
                path = f"{parsed[0]}.d{trashed[1]}" if parsed and trashed else ""
        else:
            parsed = parse_version_name(row.path[len(VERSIONS) + 1:])
            area, path = AREA_FILES, parsed[0] if parsed else ""
        node = self.store.node(conn, self.uid, area, path) if parsed and path else None
        if node is None or node.is_dir or parsed is None:
            self.report.note("orphan-version", row.path,
                             "no file for this version: not migrated")
            return None
        return node.fileid, parsed[1]

    # -- phase 3: trash records, favorites, tags, comments, dead properties -----------------------

    def _phase_extras(self, storage: int) -> None:
        if self._checkpoint(None, "extras") >= 0:
            return
        t = self.source.t
        with self.store.read() as conn:
            known = set(conn.execute(sa.select(schema.nodes.c.fileid).where(
                schema.nodes.c.owner == self.uid)).scalars())
        trash_rows = []
        for record in self.source.table_rows(t.files_trash, t.files_trash.c.user == self.uid):
            name, ts = record["id"], record["timestamp"]
            with self.store.read() as conn:
                node = self.store.node(conn, self.uid, AREA_TRASH, f"{name}.d{ts}")
            if node is None:
                self.report.note("trash-record-without-item", f"{name}.d{ts}",
                                 "oc_files_trash row without its trashed item: dropped")
                continue
            trash_rows.append(dict(fileid=node.fileid, owner=self.uid, original_name=name,
                                   original_location=record["location"] or ".",
                                   deleted_at=int(ts)))
        favorites, tags = self._categories(known)
        comments, markers = self._comments(known)
        props = self._dead_props(storage, known)
        from migrate import account_data

        systemtags = account_data.systemtag_assignments(self.source, storage, known)
        with self.store.write(self.uid) as conn:
            account_data.import_systemtag_definitions(self.source, conn)
            for table, rows in ((schema.trash, trash_rows), (schema.favorites, favorites),
                                (schema.tags, tags), (schema.comments, comments),
                                (schema.comment_read_markers, markers),
                                (schema.dead_props, props),
                                (schema.systemtag_objects, systemtags)):
                if rows:
                    conn.execute(sa.insert(table), rows)
            self._crash("extras:rows-inserted")
            self._save_checkpoint(conn, "extras", 0)
        self.report.trash_items = len(trash_rows)
        self.report.favorites = len(favorites)
        self.report.tags = len(tags)
        self.report.comments = len(comments)
        self.report.dead_props = len(props)
        self.report.systemtags = len(systemtags)

    # -- phase 4: shares and public links ---------------------------------------------------------

    def _phase_shares(self) -> None:
        """The shares and links of the user's items (migrate/shares.py): one idempotent pass,
        checkpointed when done; a catch-up pass runs it again."""
        if self._checkpoint(None, "shares") >= 0:
            return
        from migrate import shares

        counts = shares.import_user_shares(self.source.engine, self.source.t, self.store,
                                           self.uid)
        self._crash("shares:imported")
        for code, ids in sorted(counts.skipped.items()):
            self.report.note(code, ", ".join(f"share {i}" for i in ids[:10]),
                             f"{len(ids)} share(s) or link(s) not carried over "
                             f"({SHARE_SKIPS.get(code, code)})")
        for code, ids in sorted(counts.noted.items()):
            self.report.note(code, ", ".join(f"share {i}" for i in ids[:10]),
                             f"{len(ids)} share(s) carried over as they are, reaching nobody "
                             f"as on ownCloud ({SHARE_SKIPS.get(code, code)})")
        if counts.federated:
            self.report.note("federated-share-sent", "",
                             f"{counts.federated} federated share(s) carried as data; the "
                             "remote servers are not contacted and keep addressing this host")
        t = self.source.t
        received = self.source.table_rows(t.share_external, t.share_external.c.user == self.uid)
        if received:
            self.report.note("federated-share-received", "",
                             f"{len(received)} share(s) received from other servers: not "
                             "carried over (the new stack does not mount federated shares)")
        with self.store.write(self.uid) as conn:
            self._save_checkpoint(conn, "shares", 0)
        self.report.shares = counts.shares + counts.federated
        self.report.links = counts.links
        self.report.share_members = counts.members

    def _categories(self, known: set[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        t = self.source.t
        cat, obj = t.vcategory, t.vcategory_to_object
        query = (sa.select(cat.c.category, obj.c.objid)
                 .join(obj, obj.c.categoryid == cat.c.id)
                 .where(cat.c.uid == self.uid, obj.c.type == "files"))
        favorites: dict[int, dict[str, Any]] = {}
        tags: dict[tuple[int, str], dict[str, Any]] = {}
        with self.source.engine.connect() as conn:
            for category, objid in conn.execute(query):
                fileid = int(objid)
                if fileid not in known:
                    continue
                if category == FAVORITE:
                    favorites[fileid] = dict(uid=self.uid, fileid=fileid)
                else:
                    tags[(fileid, category)] = dict(uid=self.uid, fileid=fileid, tag=category)
        return list(favorites.values()), list(tags.values())

    def _comments(self, known: set[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        t = self.source.t
        cm, rm = t.comments, t.comments_read_markers
        comments, markers = [], []
        with self.source.engine.connect() as conn:
            for row in conn.execute(sa.select(cm).where(cm.c.object_type == "files")):
                fileid = int(row.object_id)
                if fileid in known:
                    # oC10's id kept: replies point at it (parent_id), and a catch-up pass
                    # that replaces the rows must not renumber them (the new stack creates
                    # no comments of its own, so no id can be taken twice)
                    comments.append(dict(id=int(row.id), fileid=fileid, actor=row.actor_id,
                                         message=row.message or "",
                                         created=unix_seconds(row.creation_timestamp),
                                         parent_id=int(row.parent_id or 0)))
            for row in conn.execute(sa.select(rm).where(rm.c.user_id == self.uid,
                                                        rm.c.object_type == "files")):
                fileid = int(row.object_id)
                if fileid in known and row.marker_datetime is not None:
                    markers.append(dict(uid=self.uid, fileid=fileid,
                                        marked_at=unix_seconds(row.marker_datetime)))
        return comments, markers

    def _dead_props(self, storage: int, known: set[int]) -> list[dict[str, Any]]:
        """oc_properties of the user's nodes, decoded as the oc10 backend serves them (one
        query joined on the home storage rather than one per 900 fileids)."""
        from newstack.dav.xml import xml_text
        from newstack.legacy.annotations import VT_STRING, VT_XML

        p, fc = self.source.t.properties, self.source.t.filecache
        query = (sa.select(p.c.fileid, p.c.propertyname, p.c.propertyvalue, p.c.propertytype)
                 .join(fc, fc.c.fileid == p.c.fileid).where(fc.c.storage == storage)
                 .order_by(p.c.id))
        found: dict[tuple[int, str], dict[str, Any]] = {}
        with self.source.engine.connect() as conn:
            for fileid, name, value, kind in conn.execute(query):
                if int(fileid) not in known:
                    continue
                if kind == VT_STRING:
                    xml = xml_text(value or "")
                elif kind == VT_XML:
                    xml = value or ""
                else:
                    self.report.note("dead-property-php-object", str(fileid),
                                     f"{name}: a serialised PHP object; only PHP can read "
                                     "it back, not migrated (the oc10 backend does not serve "
                                     "it either)")
                    continue
                # a later row of one name wins, as a dict filled in id order does
                found[(int(fileid), name)] = dict(fileid=int(fileid), name=name, value=xml)
        return list(found.values())


def blob_id_for(fileid: int, etag: str) -> str:
    """The blob of a migrated file: one per (fileid, content), so re-runs overwrite. The first
    four characters (the POSIX driver's two fan-out levels) come from the fileid's middle
    bytes: 256 consecutive fileids share a directory, so a batch touches a handful of
    directories and no directory grows past 256 blobs per 16.7 million fileids."""
    safe = etag[:40] if etag.isascii() and etag.isalnum() else \
        "".join(ch for ch in etag if ch.isascii() and ch.isalnum())[:40]
    return f"{(fileid >> 16) & 0xFF:02x}{(fileid >> 8) & 0xFF:02x}-oc10-{fileid}-{safe or 'none'}"


#: why a share stays behind, for the report (the codes are migrate/plan.py's)
SHARE_SKIPS: Final = {
    "share-legacy-item": "pre-ownCloud-8 shares of items that are not files or folders",
    "share-file-missing": "the shared item has no oc_filecache row among the user's files",
    "share-outside-home": "the shared item is not in the owner's home (external storage)",
    "share-recipient-missing": "the recipient user does not exist",
    "share-group-missing": "the recipient group does not exist",
}


def on_pool(size: int, linking: bool, workers: int) -> bool:
    """Whether a file is imported on the job's thread pool rather than inline. A link costs
    Python time only (threads would hand the GIL around), so small linked files stay inline;
    writing a file waits on the filesystem (creating it, writing, S3 round trips), which
    threads overlap."""
    return workers > 1 and (size >= PARALLEL_MIN_SIZE or not linking)


def trusts_stored_checksum(row: SourceRow, st: os.stat_result) -> bool:
    """Whether a linked file may keep oC10's stored checksum without being read: only when
    the file is what oC10 scanned (same size, same mtime as oc_filecache.storage_mtime); a
    changed file is hashed. Without a stored checksum there is nothing to check: a link
    reads nothing and oC10's '' is kept."""
    return (bool(row.checksum) and st.st_size == row.size
            and int(st.st_mtime) == row.storage_mtime)


def unix_seconds(value: Any) -> int:
    """A DATETIME as the driver returns it (datetime, or text on SQLite) → unix seconds."""
    import datetime as dt

    if value is None:
        return 0
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def migrate_users(source: LegacySource, store: MetadataStore, driver: StorageDriver,
                  uids: Iterable[str], options: MigrationOptions | None = None,
                  progress: ProgressFn | None = None) -> list[MigrationReport]:
    return [UserMigration(source, store, driver, uid, options, progress=progress).run()
            for uid in uids]

