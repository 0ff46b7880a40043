"""`ocbridge migrate plan`: read an ownCloud 10 instance and say, per user, what will carry over,
what will not and why, and which users move together (cohorts, from migrate/graph.py).

Read-only. Big tables are aggregated in SQL (oc_filecache per storage) or streamed in batches;
the optional disk check walks one folder at a time against that folder's rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.errors import LegacyInstanceError
from bridge.oc10.formats import home_storage_id, local_storage_id, parse_quota, path_hash
from bridge.oc10.mimetypes import DIR_MIMETYPE
from bridge.oc10.schema import OC10Tables
from migrate import graph as g
from newstack.legacy.instance import LegacyInstance

Severity = Literal["info", "warning", "blocker"]
ProgressFn = Callable[[str, int, int], None]

#: rows per fetch when streaming a table
BATCH: Final = 2_000
#: example paths, shares or mounts kept per finding
MAX_EXAMPLES: Final = 10
SEVERITIES: Final[tuple[Severity, ...]] = ("blocker", "warning", "info")


@dataclass(frozen=True)
class FindingKind:
    severity: Severity
    #: what happens to it: carried over, left behind, or blocks the user's migration
    outcome: str


#: every finding code the planner emits; docs/migration.md lists the same table
CODES: Final[Mapping[str, FindingKind]] = {
    # the account
    "user-disabled": FindingKind(
        "warning", "carried over as it is (disabled); files, shares and links move, logins "
                   "stay refused"),
    "no-home": FindingKind(
        "info", "never logged in: no home storage or files; the account carries over and the "
                "home is made at the first login"),
    "uid-over-64": FindingKind(
        "warning", "a uid longer than the 64 characters of oc_users.uid (from a user backend "
                   "such as LDAP); carried over, check the new stack's limits"),
    "hashed-storage-id": FindingKind(
        "info", "the home storage id is the md5 of 'home::<uid>' (over 64 bytes); found by "
                "that id and carried over"),
    "home-outside-data-dir": FindingKind(
        "info", "the home folder is not below the data directory; files are read from it"),
    "home-dir-missing": FindingKind(
        "blocker", "the home storage has rows but its folder is missing: no content to copy"),
    "over-quota": FindingKind(
        "info", "uses more than the quota; carried over, writes refused until below it, as in "
                "ownCloud"),
    # files
    "encrypted-files": FindingKind(
        "blocker", "server-side encryption is not supported: decrypt the files in ownCloud "
                   "(occ encryption:decrypt-all) before migrating"),
    "object-store-home": FindingKind(
        "blocker", "the home lives in an object store (primary object storage): not supported"),
    "external-storage": FindingKind(
        "warning", "not carried over: external storage mounts (SMB, SFTP, local, …) keep "
                   "their content where it is; the mount configuration is not migrated"),
    "unscanned-folders": FindingKind(
        "warning", "folders ownCloud never finished scanning (size -1); only the rows present "
                   "are carried over"),
    # sharing
    "share-recipient-disabled": FindingKind(
        "warning", "carried over; the recipient's account is disabled"),
    "share-recipient-missing": FindingKind(
        "warning", "carried over as it is: the share names a user that does not exist; it "
                   "reaches nobody and is listed as ownCloud lists it"),
    "share-group-missing": FindingKind(
        "warning", "carried over as it is: the share names a group that does not exist; it "
                   "reaches nobody and is listed as ownCloud lists it"),
    "share-file-missing": FindingKind(
        "warning", "not carried over: the shared file or folder has no oc_filecache row"),
    "share-outside-home": FindingKind(
        "warning", "not carried over: the shared item is not in the owner's home (external "
                   "storage or another storage)"),
    "share-pending": FindingKind("info", "received shares not yet accepted; carried over "
                                         "pending"),
    "share-declined": FindingKind("info", "received shares the user declined; carried over "
                                          "declined"),
    "link-expired": FindingKind("info", "links past their expiration date; carried over and "
                                        "still expired (404), as ownCloud answers"),
    "federated-share-sent": FindingKind(
        "warning", "carried as data (share row and token); the remote server is not "
                   "contacted and keeps addressing this host"),
    "federated-share-received": FindingKind(
        "warning", "carried as data (remote, token, mount point); the remote server is not "
                   "contacted and the content stays there"),
    "cross-cohort-shares": FindingKind(
        "warning", "shares with users of another cohort: for a while owner and recipient are "
                   "on different stacks"),
    # the disk (--check-disk)
    "row-without-file": FindingKind(
        "warning", "oc_filecache lists it, the data directory has no file: the row is carried "
                   "over without content (downloads answer 503, as on ownCloud)"),
    "file-without-row": FindingKind(
        "warning", "not carried over: on disk but never scanned into oc_filecache, so "
                   "ownCloud never showed it"),
    "folder-without-row": FindingKind(
        "warning", "not carried over: a folder (with its content) on disk that was never "
                   "scanned"),
    "wrong-size-row": FindingKind(
        "warning", "the row's size differs from the file's: the file's bytes are copied and "
                   "the size taken from them"),
    "type-mismatch": FindingKind(
        "warning", "not carried over: a file where the row says folder, or the reverse"),
    "symlink": FindingKind("warning", "not carried over: symbolic links are never followed"),
    "invalid-utf8-name": FindingKind(
        "warning", "not carried over: the name on disk is not UTF-8, ownCloud cannot list it"),
    "unreadable": FindingKind("warning", "the folder or file cannot be read (permissions, I/O "
                                         "errors): not compared, and the copy will fail alike"),
    # the instance
    "encryption-enabled": FindingKind(
        "blocker", "server-side encryption is enabled (appconfig core/encryption_enabled)"),
    "object-store-primary": FindingKind(
        "blocker", "primary object storage (config.php objectstore / object:: storages) is not "
                   "supported"),
    "storage-orphan-home": FindingKind(
        "info", "home storages of users that no longer exist; left behind"),
    "storage-external": FindingKind(
        "warning", "storages that are neither a home, the data directory nor uploads: "
                   "external storages, left behind"),
    "share-owner-missing": FindingKind(
        "warning", "not carried over: shares whose owner does not exist"),
    "share-legacy-item": FindingKind(
        "info", "not carried over: pre-ownCloud-8 shares of items that are not files or "
                "folders (calendars, contacts)"),
}


@dataclass
class Finding:
    code: str
    severity: Severity
    message: str
    count: int = 1
    examples: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return CODES[self.code].outcome


def finding(code: str, message: str, count: int = 1,
            examples: Collection[str] = ()) -> Finding:
    return Finding(code, CODES[code].severity, message, count, list(examples)[:MAX_EXAMPLES])


@dataclass
class LinkCounts:
    total: int = 0
    with_password: int = 0
    expired: int = 0
    #: links that let visitors upload (create permission)
    upload: int = 0


@dataclass
class UserReport:
    """One user's dry run: what they have and what will not carry over."""

    uid: str
    display_name: str
    email: str | None
    backend: str
    #: 'enabled', 'disabled', 'initial' or 'deleted' (oc_accounts.state, core/enabled)
    state: str
    last_login: int
    quota: str | None
    #: effective quota in bytes; None = unlimited
    quota_bytes: int | None
    home: str
    home_storage: str | None = None
    files: int = 0
    folders: int = 0
    bytes: int = 0
    versions: int = 0
    version_bytes: int = 0
    trash_items: int = 0
    trash_bytes: int = 0
    shares_owned: dict[str, int] = field(default_factory=dict)
    shares_received: dict[str, int] = field(default_factory=dict)
    links: LinkCounts = field(default_factory=LinkCounts)
    federated_received: int = 0
    app_passwords: int = 0
    sessions: int = 0
    oauth_tokens: int = 0
    groups: list[str] = field(default_factory=list)
    cohort: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.state == "enabled"

    @property
    def verdict(self) -> str:
        """'blocked' (a blocker), 'warnings' (something will not carry over) or 'ready'."""
        severities = {f.severity for f in self.findings}
        if "blocker" in severities:
            return "blocked"
        return "warnings" if "warning" in severities else "ready"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict
        return data


@dataclass
class Plan:
    instance: dict[str, Any]
    generated_at: str
    options: dict[str, Any]
    users: list[UserReport]
    cohorts: list[g.Cohort]
    crossing: list[g.CrossingLink]
    component_sizes: dict[int, int]
    findings: list[Finding]
    totals: dict[str, Any]

    def user(self, uid: str) -> UserReport:
        for user in self.users:
            if user.uid == uid:
                return user
        raise KeyError(uid)

    @property
    def blocked(self) -> list[str]:
        return [u.uid for u in self.users if u.verdict == "blocked"]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (json.dumps takes it as it is)."""
        return {
            "format": 1,
            "instance": self.instance,
            "generated_at": self.generated_at,
            "options": self.options,
            "totals": self.totals,
            "component_sizes": {str(k): v for k, v in self.component_sizes.items()},
            "cohorts": [{**asdict(c), "members": list(c.members), "size": len(c.members)}
                        for c in self.cohorts],
            "crossing": [{**asdict(c), "share_ids": list(c.share_ids)} for c in self.crossing],
            "findings": [asdict(f) for f in self.findings],
            "users": [u.to_json() for u in self.users],
        }


# ---------------------------------------------------------------------------------------------


def build_plan(
    instance: LegacyInstance,
    *,
    max_cohort: int | None = None,
    check_disk: bool = False,
    only_users: Collection[str] = (),
    progress: ProgressFn | None = None,
    now: dt.datetime | None = None,
) -> Plan:
    """The plan of `instance`. The share graph always covers every user; `only_users` limits
    the per-user reports (and the disk check) to those users and their cohorts."""
    now = now or dt.datetime.now()
    try:
        with instance.engine.connect() as conn:
            return _Planner(instance, conn, now, progress).run(
                max_cohort=max_cohort, check_disk=check_disk, only_users=only_users)
    except sa.exc.SQLAlchemyError as exc:
        raise LegacyInstanceError(
            f"reading the ownCloud database failed while planning: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}") from exc


def _stream(conn: Connection, query: sa.Select[Any]) -> Iterator[sa.Row[tuple[Any, ...]]]:
    result = conn.execution_options(yield_per=BATCH).execute(query)
    try:
        yield from result
    finally:
        result.close()


def _int(value: object) -> int:
    return 0 if value is None else int(value)  # type: ignore[call-overload]


def _hashed_if_long(storage_id: str) -> str:
    # Cache\Storage::adjustStorageId, as bridge.oc10.formats applies it to home:: and local::
    raw = storage_id.encode("utf-8")
    return hashlib.md5(raw).hexdigest() if len(raw) > 64 else storage_id


StorageKind = Literal["home", "uploads", "object-home", "root", "orphan-home", "object",
                      "federated", "external"]


class _Planner:
    def __init__(self, instance: LegacyInstance, conn: Connection, now: dt.datetime,
                 progress: ProgressFn | None) -> None:
        self.instance = instance
        self.t: OC10Tables = instance.tables
        self.conn = conn
        self.now = now
        self.progress = progress
        self.users: dict[str, UserReport] = {}
        self.user_findings: dict[str, list[Finding]] = defaultdict(list)
        self.findings: list[Finding] = []
        #: storage numeric id -> (kind, uid or '')
        self.storages: dict[int, tuple[StorageKind, str]] = {}
        self.home_of: dict[str, int] = {}

    def step(self, label: str, done: int = 0, total: int = 0) -> None:
        if self.progress is not None:
            self.progress(label, done, total)

    def run(self, *, max_cohort: int | None, check_disk: bool,
            only_users: Collection[str]) -> Plan:
        self.step("accounts")
        appconfig = self.read_appconfig()
        self.read_users(appconfig.get(("files", "default_quota")))
        unknown = sorted(set(only_users) - self.users.keys())
        if unknown:
            raise ValueError("no such user in the instance: " + ", ".join(unknown))
        groups = self.read_groups()
        self.step("storages")
        self.read_storages()
        self.instance_checks(appconfig)
        self.step("file cache")
        selected = set(only_users) or set(self.users)
        self.read_filecache(selected if only_users else None)
        self.step("tokens, trash, mounts")
        self.read_counts()
        self.read_mounts()
        self.step("shares")
        share_graph = self.read_shares(groups)
        cohorts = g.propose_cohorts(share_graph, max_cohort)
        self.apply_graph(share_graph, cohorts)
        self.user_checks()
        if check_disk:
            targets = [u for u in sorted(selected) if u in self.home_of]
            for done, uid in enumerate(targets):
                self.step(f"disk of {uid}", done, len(targets))
                self.check_disk(uid)
            self.step("disk", len(targets), len(targets))
        return self.assemble(cohorts, selected, max_cohort, check_disk, sorted(only_users))

    # reading -----------------------------------------------------------------------------

    def read_appconfig(self) -> dict[tuple[str, str], str]:
        ac = self.t.appconfig
        wanted = [("files", "default_quota"), ("core", "encryption_enabled")]
        rows = self.conn.execute(sa.select(ac.c.appid, ac.c.configkey, ac.c.configvalue).where(
            sa.tuple_(ac.c.appid, ac.c.configkey).in_(wanted)))
        return {(r.appid, r.configkey): str(r.configvalue) for r in rows
                if r.configvalue is not None}

    def read_users(self, default_quota: str | None) -> None:
        t = self.t
        a, u, p = t.accounts, t.users, t.preferences
        pe = p.alias("pref_enabled")
        pq = p.alias("pref_quota")

        def with_prefs(joined: Any, uid: Any) -> Any:
            return (joined
                    .outerjoin(pe, sa.and_(pe.c.userid == uid, pe.c.appid == "core",
                                           pe.c.configkey == "enabled"))
                    .outerjoin(pq, sa.and_(pq.c.userid == uid, pq.c.appid == "files",
                                           pq.c.configkey == "quota")))

        with_account = sa.select(
            a.c.user_id.label("uid"), a.c.display_name, a.c.email, a.c.quota, a.c.home,
            a.c.state, a.c.backend, a.c.last_login, u.c.displayname,
            pe.c.configvalue.label("pref_enabled"), pq.c.configvalue.label("pref_quota"),
        ).select_from(with_prefs(a.outerjoin(u, u.c.uid == a.c.user_id), a.c.user_id))
        # local users a pre-10 database never synced into oc_accounts
        without_account = sa.select(
            u.c.uid, sa.null().label("display_name"), sa.null().label("email"),
            sa.null().label("quota"), sa.null().label("home"), sa.null().label("state"),
            sa.null().label("backend"), sa.literal(0).label("last_login"), u.c.displayname,
            pe.c.configvalue.label("pref_enabled"), pq.c.configvalue.label("pref_quota"),
        ).select_from(with_prefs(u, u.c.uid)).where(
            ~sa.exists().where(a.c.user_id == u.c.uid))
        datadir = str(self.instance.config.datadirectory).rstrip("/")
        for query in (with_account, without_account):
            for r in _stream(self.conn, query):
                uid = str(r.uid)
                if r.pref_enabled is not None:
                    state = "enabled" if r.pref_enabled == "true" else "disabled"
                elif r.state is None:
                    state = "enabled"
                else:
                    state = {0: "initial", 1: "enabled", 2: "disabled", 3: "deleted"}.get(
                        int(r.state), f"state-{r.state}")
                quota = r.pref_quota if r.pref_quota is not None else r.quota
                home = str(r.home or f"{datadir}/{uid}")
                self.users[uid] = UserReport(
                    uid=uid, display_name=str(r.display_name or r.displayname or uid),
                    email=r.email, backend=str(r.backend or "OC\\User\\Database"), state=state,
                    last_login=_int(r.last_login), quota=None if quota is None else str(quota),
                    quota_bytes=parse_quota(None if quota is None else str(quota),
                                            default_quota),
                    home=home)

    def read_groups(self) -> dict[str, list[str]]:
        t = self.t
        groups: dict[str, list[str]] = {
            str(r.gid): [] for r in _stream(self.conn, sa.select(t.groups.c.gid))}
        for r in _stream(self.conn, sa.select(t.group_user.c.gid, t.group_user.c.uid)
                         .order_by(t.group_user.c.gid, t.group_user.c.uid)):
            gid, uid = str(r.gid), str(r.uid)
            if gid in groups:
                groups[gid].append(uid)
            if uid in self.users:
                self.users[uid].groups.append(gid)
        return groups

    def read_storages(self) -> None:
        datadir = str(self.instance.config.datadirectory).rstrip("/")
        expected: dict[str, tuple[StorageKind, str]] = {
            local_storage_id(f"{datadir}/"): ("root", "")}
        for uid in self.users:
            expected[home_storage_id(uid)] = ("home", uid)
            expected[local_storage_id(f"{datadir}/{uid}/uploads")] = ("uploads", uid)
            expected[_hashed_if_long(f"object::user:{uid}")] = ("object-home", uid)
        st = self.t.storages
        orphans: list[str] = []
        external: list[str] = []
        for r in _stream(self.conn, sa.select(st.c.numeric_id, st.c.id).order_by(
                st.c.numeric_id)):
            sid = str(r.id or "")
            kind: StorageKind | None = None
            uid = ""
            if sid in expected:
                kind, uid = expected[sid]
            else:
                if sid.startswith("home::"):
                    kind, uid = "orphan-home", sid.removeprefix("home::")
                    orphans.append(uid)
                elif sid.startswith("object::"):
                    kind = "object"
                elif sid.startswith("shared::"):
                    kind = "federated"  # a received federated share's storage
                else:
                    kind = "external"
                    external.append(sid)
            self.storages[int(r.numeric_id)] = (kind, uid)
            if kind in ("home", "object-home"):
                self.home_of[uid] = int(r.numeric_id)
                self.users[uid].home_storage = sid
        if orphans:
            self.findings.append(finding(
                "storage-orphan-home", f"{len(orphans)} home storage(s) of users that do not "
                "exist; their files are not migrated", len(orphans), orphans))
        if external:
            self.findings.append(finding(
                "storage-external", f"{len(external)} storage(s) that are no home: external "
                "storages whose content is not migrated", len(external), external))

    def instance_checks(self, appconfig: Mapping[tuple[str, str], str]) -> None:
        if appconfig.get(("core", "encryption_enabled")) == "yes":
            self.findings.append(finding(
                "encryption-enabled", "server-side encryption is enabled; decrypt all files "
                "(occ encryption:decrypt-all) and disable it before migrating"))
        raw = self.instance.config.raw
        objects = sorted({uid or "(root)" for kind, uid in self.storages.values()
                          if kind in ("object", "object-home")})
        keys = [k for k in ("objectstore", "objectstore_multibucket") if raw.get(k)]
        if keys or objects:
            where = f"config.php sets {', '.join(keys)}" if keys else "object:: storages exist"
            self.findings.append(finding(
                "object-store-primary", f"primary object storage: {where}", max(1, len(objects)),
                objects))

    def read_filecache(self, only: set[str] | None) -> None:
        fc, mt = self.t.filecache, self.t.mimetypes
        dir_id = self.conn.execute(sa.select(mt.c.id).where(mt.c.mimetype == DIR_MIMETYPE)
                                   ).scalar()
        is_dir = fc.c.mimetype == (dir_id if dir_id is not None else -1)

        def under(prefix: str) -> sa.ColumnElement[bool]:
            # byte-exact on every database, unlike LIKE (case-insensitive on SQLite)
            return sa.func.substr(fc.c.path, 1, len(prefix)) == prefix

        def count(*conds: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
            return sa.func.sum(sa.case((sa.and_(*conds), 1), else_=0))

        def total(*conds: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
            return sa.func.sum(sa.case((sa.and_(*conds, fc.c.size > 0), fc.c.size), else_=0))

        query = sa.select(
            fc.c.storage,
            count(under("files/"), ~is_dir).label("files"),
            total(under("files/"), ~is_dir).label("bytes"),
            count(under("files/"), is_dir).label("folders"),
            count(sa.or_(under("files/"), fc.c.path == "files"), is_dir, fc.c.size < 0
                  ).label("unscanned"),
            count(under("files_versions/"), ~is_dir).label("versions"),
            total(under("files_versions/"), ~is_dir).label("version_bytes"),
            total(under("files_trashbin/"), ~is_dir).label("trash_bytes"),
            count(fc.c.encrypted > 0).label("encrypted"),
        ).group_by(fc.c.storage)
        homes = {sid: uid for uid, sid in self.home_of.items()}
        if only is not None:
            wanted = [self.home_of[u] for u in sorted(only) if u in self.home_of]
            query = query.where(fc.c.storage.in_(wanted or [-1]))
        for r in _stream(self.conn, query):
            uid = homes.get(int(r.storage))
            if uid is None:
                continue
            user = self.users[uid]
            user.files, user.bytes, user.folders = _int(r.files), _int(r.bytes), _int(r.folders)
            user.versions, user.version_bytes = _int(r.versions), _int(r.version_bytes)
            user.trash_bytes = _int(r.trash_bytes)
            if _int(r.encrypted):
                self.user_findings[uid].append(finding(
                    "encrypted-files", f"{_int(r.encrypted)} encrypted file(s) in the home "
                    "storage", _int(r.encrypted)))
            if _int(r.unscanned):
                self.user_findings[uid].append(finding(
                    "unscanned-folders", f"{_int(r.unscanned)} folder(s) with an unknown size "
                    "(never fully scanned)", _int(r.unscanned)))

    def read_counts(self) -> None:
        t = self.t
        n = sa.func.count().label("n")
        ft = t.files_trash
        for r in _stream(self.conn, sa.select(ft.c.user.label("uid"), n).group_by(ft.c.user)):
            if (user := self.users.get(str(r.uid))) is not None:
                user.trash_items = _int(r.n)
        tok = t.authtoken
        for r in _stream(self.conn, sa.select(tok.c.uid, tok.c.type, n)
                         .group_by(tok.c.uid, tok.c.type)):
            if (user := self.users.get(str(r.uid))) is not None:
                if _int(r.type) == 1:  # permanent: an app password
                    user.app_passwords += _int(r.n)
                else:
                    user.sessions += _int(r.n)
        for table in (t.oauth2_access_tokens, t.oauth2_refresh_tokens):
            for r in _stream(self.conn, sa.select(table.c.user_id.label("uid"), n)
                             .group_by(table.c.user_id)):
                if (user := self.users.get(str(r.uid))) is not None:
                    user.oauth_tokens += _int(r.n)
        se = t.share_external
        for r in _stream(self.conn, sa.select(se.c.user.label("uid"), n).group_by(se.c.user)):
            if (user := self.users.get(str(r.uid))) is not None:
                user.federated_received = _int(r.n)

    def read_mounts(self) -> None:
        m = self.t.mounts
        external: dict[str, list[str]] = defaultdict(list)
        for r in _stream(self.conn, sa.select(m.c.user_id, m.c.storage_id, m.c.mount_point)
                         .order_by(m.c.user_id, m.c.mount_point)):
            uid = str(r.user_id)
            if uid not in self.users:
                continue
            kind, owner = self.storages.get(int(r.storage_id), ("external", ""))
            if kind in ("external", "orphan-home", "object") or (
                    kind in ("uploads", "object-home") and owner != uid):
                external[uid].append(str(r.mount_point))
        for uid, points in external.items():
            self.user_findings[uid].append(finding(
                "external-storage", f"{len(points)} external storage mount(s): "
                + ", ".join(points[:3]) + (" …" if len(points) > 3 else ""),
                len(points), points))

    def read_shares(self, groups: Mapping[str, list[str]]) -> g.ShareGraph:
        s, fc = self.t.share, self.t.filecache
        query = sa.select(
            s.c.id, s.c.share_type, s.c.share_with, s.c.uid_owner, s.c.uid_initiator,
            s.c.parent, s.c.accepted, s.c.expiration, s.c.permissions, s.c.item_type,
            fc.c.storage.label("file_storage"),
        ).select_from(s.outerjoin(fc, fc.c.fileid == s.c.file_source)).order_by(s.c.id)
        rows: list[g.ShareRow] = []
        legacy: list[str] = []
        missing_file: dict[str, list[str]] = defaultdict(list)
        outside_home: dict[str, list[str]] = defaultdict(list)
        expired: dict[str, list[str]] = defaultdict(list)
        federated: dict[str, list[str]] = defaultdict(list)
        for r in _stream(self.conn, query):
            owner = str(r.uid_owner)
            if r.item_type not in ("file", "folder"):
                legacy.append(f"share {r.id} ({r.item_type})")
                continue
            share = g.ShareRow(int(r.id), int(r.share_type), owner,
                               None if r.uid_initiator is None else str(r.uid_initiator),
                               None if r.share_with is None else str(r.share_with),
                               None if r.parent is None else int(r.parent), _int(r.accepted))
            user = self.users.get(owner)
            if user is not None and share.share_type != g.SHARE_USERGROUP:
                name = g.share_type_name(share.share_type)
                user.shares_owned[name] = user.shares_owned.get(name, 0) + 1
                label = f"share {r.id}"
                if r.file_storage is None:
                    missing_file[owner].append(label)
                elif self.home_of.get(owner) != int(r.file_storage):
                    outside_home[owner].append(label)
                if share.share_type == g.SHARE_LINK:
                    user.links.total += 1
                    user.links.with_password += r.share_with is not None
                    user.links.upload += bool(_int(r.permissions) & 4)
                    if r.expiration is not None and _as_datetime(r.expiration) < self.now:
                        user.links.expired += 1
                        expired[owner].append(f"{label} (expired {r.expiration})")
                elif share.share_type in (g.SHARE_REMOTE, g.SHARE_REMOTE_GROUP):
                    federated[owner].append(f"{label} to {r.share_with}")
            rows.append(share)
        self.step("share graph")
        share_graph = g.build_graph(rows, self.users.keys(), groups)
        for uid, items in missing_file.items():
            self.user_findings[uid].append(finding(
                "share-file-missing", f"{len(items)} share(s) or link(s) of items that no "
                "longer exist", len(items), items))
        for uid, items in outside_home.items():
            self.user_findings[uid].append(finding(
                "share-outside-home", f"{len(items)} share(s) or link(s) of items outside "
                "the home storage", len(items), items))
        for uid, items in expired.items():
            self.user_findings[uid].append(finding(
                "link-expired", f"{len(items)} expired link(s)", len(items), items))
        for uid, items in federated.items():
            self.user_findings[uid].append(finding(
                "federated-share-sent", f"{len(items)} federated share(s) to other servers",
                len(items), items))
        if legacy:
            self.findings.append(finding(
                "share-legacy-item", f"{len(legacy)} share(s) of non-file items",
                len(legacy), legacy))
        return share_graph

    # deciding ----------------------------------------------------------------------------

    def apply_graph(self, share_graph: g.ShareGraph, cohorts: g.CohortPlan) -> None:
        disabled: dict[str, list[str]] = defaultdict(list)
        pending: dict[str, list[str]] = defaultdict(list)
        declined: dict[str, list[str]] = defaultdict(list)
        for edge in share_graph.edges:
            if edge.role != "owner":
                continue
            recipient = self.users[edge.recipient]
            name = "group" if edge.via_group is not None else "user"
            recipient.shares_received[name] = recipient.shares_received.get(name, 0) + 1
            where = f"share {edge.share_id} from {edge.source}"
            if edge.via_group is not None:
                where += f" (group {edge.via_group})"
            if edge.accepted == g.PENDING:
                pending[edge.recipient].append(where)
            elif edge.accepted == g.DECLINED:
                declined[edge.recipient].append(where)
            if not recipient.enabled:
                disabled[edge.source].append(
                    f"share {edge.share_id} to {edge.recipient} ({recipient.state})")
        for uid, items in disabled.items():
            self.user_findings[uid].append(finding(
                "share-recipient-disabled", f"{len(items)} share(s) to users who cannot log "
                "in", len(items), items))
        for uid, items in pending.items():
            self.user_findings[uid].append(finding(
                "share-pending", f"{len(items)} received share(s) pending", len(items), items))
        for uid, items in declined.items():
            self.user_findings[uid].append(finding(
                "share-declined", f"{len(items)} received share(s) declined", len(items),
                items))

        unresolved: dict[tuple[str, str], list[str]] = defaultdict(list)
        for u in share_graph.unresolved:
            unresolved[(u.owner, u.reason)].append(f"share {u.share_id} to {u.share_with!r}")
        for (owner, reason), items in sorted(unresolved.items()):
            code = f"share-{reason}"
            if reason == "owner-missing":
                self.findings.append(finding(
                    code, f"{len(items)} share(s) owned by {owner!r}, who does not exist",
                    len(items), items))
                continue
            what = "users" if reason == "recipient-missing" else "groups"
            self.user_findings[owner].append(finding(
                code, f"{len(items)} share(s) to {what} that do not exist", len(items), items))

        cohort_of = cohorts.cohort_of()
        crossing: dict[str, list[str]] = defaultdict(list)
        for link in cohorts.crossing:
            crossing[link.a].append(f"{link.b} (cohort {link.cohort_b})")
            crossing[link.b].append(f"{link.a} (cohort {link.cohort_a})")
        for uid, user in self.users.items():
            user.cohort = cohort_of[uid]
            if uid in crossing:
                items = crossing[uid]
                self.user_findings[uid].append(finding(
                    "cross-cohort-shares", f"linked by shares to {len(items)} user(s) in "
                    "other cohorts: " + ", ".join(items[:3]) + (" …" if len(items) > 3 else ""),
                    len(items), items))

    def user_checks(self) -> None:
        datadir = str(self.instance.config.datadirectory).rstrip("/")
        for uid, user in self.users.items():
            found = self.user_findings[uid]
            if not user.enabled:
                how = {"initial": "not enabled yet (state 0)",
                       "deleted": "marked deleted (state 3)"}.get(user.state, user.state)
                found.append(finding("user-disabled", f"the account is {how}; it cannot log "
                                                      "in"))
            if len(uid) > 64:
                found.append(finding("uid-over-64", f"the uid has {len(uid)} characters"))
            if user.federated_received:
                found.append(finding(
                    "federated-share-received", f"{user.federated_received} share(s) received "
                    "from other servers", user.federated_received))
            if user.quota_bytes is not None and user.bytes > user.quota_bytes:
                found.append(finding("over-quota", f"uses {user.bytes} bytes of a "
                                                   f"{user.quota_bytes}-byte quota"))
            sid = self.home_of.get(uid)
            if sid is None:
                found.append(finding("no-home", "no home storage: never logged in"))
                continue
            kind, _ = self.storages[sid]
            if kind == "object-home":
                found.append(finding("object-store-home",
                                     f"home storage {user.home_storage} is an object store"))
                continue
            if user.home_storage and not user.home_storage.startswith("home::"):
                found.append(finding("hashed-storage-id",
                                     f"home storage id {user.home_storage}"))
            if not user.home.startswith(f"{datadir}/"):
                found.append(finding("home-outside-data-dir", f"home folder {user.home}"))
            if user.files + user.folders and not self.home_path(user).is_dir():
                found.append(finding(
                    "home-dir-missing", f"{self.home_path(user)} does not exist but "
                    f"{user.files} file(s) are listed"))

    def home_path(self, user: UserReport) -> Path:
        """Where the user's home is on this machine: accounts.home moved under `data_dir`."""
        datadir = str(self.instance.config.datadirectory).rstrip("/")
        if user.home.startswith(f"{datadir}/"):
            return self.instance.data_dir / user.home[len(datadir) + 1:]
        return Path(user.home)

    # the disk ----------------------------------------------------------------------------

    def check_disk(self, uid: str) -> None:
        user = self.users[uid]
        home = self.home_path(user)
        if not home.is_dir():
            return  # reported as home-dir-missing
        walker = _DiskWalker(self.conn, self.t, self.home_of[uid], os.fsencode(home))
        for top in ("files", "files_versions", "files_trashbin"):
            walker.walk_top(top)
        for code, (count, examples) in sorted(walker.found.items()):
            self.user_findings[uid].append(finding(
                code, f"{count} item(s): " + ", ".join(examples[:3])
                + (" …" if count > 3 else ""), count, examples))

    # output ------------------------------------------------------------------------------

    def assemble(self, cohorts: g.CohortPlan, selected: set[str], max_cohort: int | None,
                 check_disk: bool, only_users: list[str]) -> Plan:
        for uid, items in self.user_findings.items():
            order = {s: i for i, s in enumerate(SEVERITIES)}
            items.sort(key=lambda f: (order[f.severity], f.code))
            self.users[uid].findings = items
        wanted_cohorts = {self.users[u].cohort for u in selected}
        reports = [self.users[u] for u in sorted(self.users) if u in selected]
        kept = [c for c in cohorts.cohorts if c.index in wanted_cohorts]
        crossing = [c for c in cohorts.crossing
                    if c.cohort_a in wanted_cohorts or c.cohort_b in wanted_cohorts]
        severities = Counter(f.severity for u in reports for f in u.findings)
        codes = Counter(f.code for u in reports for f in u.findings)
        shares: Counter[str] = Counter()
        for u in reports:
            shares.update(u.shares_owned)
        totals = {
            "users": len(reports),
            "enabled": sum(u.enabled for u in reports),
            "with_home": sum(u.home_storage is not None for u in reports),
            "files": sum(u.files for u in reports),
            "folders": sum(u.folders for u in reports),
            "bytes": sum(u.bytes for u in reports),
            "versions": sum(u.versions for u in reports),
            "trash_items": sum(u.trash_items for u in reports),
            "shares": dict(sorted(shares.items())),
            "links": sum(u.links.total for u in reports),
            "verdicts": dict(sorted(Counter(u.verdict for u in reports).items())),
            "findings": {s: severities.get(s, 0) for s in SEVERITIES},
            "finding_codes": dict(sorted(codes.items())),
            "cohorts": len(kept),
            "largest_component": max((len(c) for c in cohorts.components), default=0),
            "crossing_links": len(crossing),
        }
        cfg = self.instance.config
        return Plan(
            instance={
                "instance_id": cfg.instanceid, "version": cfg.version,
                "database": self.instance.engine.dialect.name,
                "table_prefix": self.t.prefix, "data_dir": str(self.instance.data_dir),
                "config_php": str(cfg.path) if cfg.path else None,
            },
            generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            options={"max_cohort": max_cohort, "check_disk": check_disk, "users": only_users},
            users=reports, cohorts=kept, crossing=crossing,
            component_sizes=cohorts.component_sizes(), findings=self.findings, totals=totals)


def _as_datetime(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


def _display(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


class _DiskWalker:
    """Compares one home's folders with their oc_filecache rows, one folder at a time: memory
    holds one folder's rows and the stack of folders still to visit, never the whole tree."""

    def __init__(self, conn: Connection, tables: OC10Tables, storage: int, home: bytes) -> None:
        self.conn = conn
        self.fc = tables.filecache
        self.storage = storage
        self.home = home
        mt = tables.mimetypes
        self.dir_id = conn.execute(
            sa.select(mt.c.id).where(mt.c.mimetype == DIR_MIMETYPE)).scalar()
        self.found: dict[str, tuple[int, list[str]]] = {}
        fc = self.fc
        self.children = sa.select(fc.c.fileid, fc.c.name, fc.c.mimetype, fc.c.size).where(
            fc.c.parent == sa.bindparam("parent"), fc.c.storage == storage)

    def note(self, code: str, path: bytes) -> None:
        count, examples = self.found.get(code, (0, []))
        if len(examples) < MAX_EXAMPLES:
            examples.append(_display(path))
        self.found[code] = (count + 1, examples)

    def walk_top(self, top: str) -> None:
        fc = self.fc
        row = self.conn.execute(sa.select(fc.c.fileid, fc.c.mimetype).where(
            fc.c.storage == self.storage,
            fc.c.path_hash == path_hash(top))).first()
        path = os.path.join(self.home, top.encode())
        exists = os.path.isdir(path)
        if row is None:
            if exists:
                self.note("folder-without-row", top.encode())
            return
        if not exists:
            if not os.path.lexists(path):
                self.note("row-without-file", top.encode())
            else:
                self.note("type-mismatch", top.encode())
            return
        stack: list[tuple[bytes, int]] = [(top.encode(), int(row.fileid))]
        while stack:
            rel, fileid = stack.pop()
            stack.extend(self.compare(rel, fileid))

    def compare(self, rel: bytes, fileid: int) -> list[tuple[bytes, int]]:
        rows = {str(r.name): r for r in self.conn.execute(self.children, {"parent": fileid})}
        subfolders: list[tuple[bytes, int]] = []
        try:
            with os.scandir(os.path.join(self.home, rel)) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            self.note("unreadable", rel)
            return []
        for entry in entries:
            child = rel + b"/" + entry.name
            try:
                name = entry.name.decode("utf-8")
            except UnicodeDecodeError:
                self.note("invalid-utf8-name", child)
                continue
            row = rows.pop(name, None)
            try:
                if entry.is_symlink():
                    self.note("symlink", child)
                    continue
                on_disk_dir = entry.is_dir(follow_symlinks=False)
                if row is None:
                    self.note("folder-without-row" if on_disk_dir else "file-without-row",
                              child)
                    continue
                row_dir = row.mimetype == self.dir_id
                if row_dir != on_disk_dir:
                    self.note("type-mismatch", child)
                elif row_dir:
                    subfolders.append((child, int(row.fileid)))
                elif entry.stat(follow_symlinks=False).st_size != _int(row.size):
                    self.note("wrong-size-row", child)
            except OSError:
                self.note("unreadable", child)
        for name in sorted(rows):
            self.note("row-without-file", rel + b"/" + name.encode())
        subfolders.reverse()  # popped in name order
        return subfolders
