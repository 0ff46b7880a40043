"""What a migrated user carries over besides files: OAuth2 clients and tokens, the avatar, and
system tags with their assignments to the user's files. Every import is an idempotent upsert
(ids kept), so a job run again, or resumed after a crash, ends with the same rows."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.formats import avatar_path as avatar_path  # noqa: F401 - callers use it here
from migrate.source import LegacySource
from newstack.avatars import avatar_files
from newstack.metadata import schema
from newstack.metadata.store import MetadataStore
from newstack.storage.base import StorageDriver, StorageError

#: the object type of files in oc_systemtag_object_mapping
FILES_OBJECT: Final = "files"

Note = Callable[[str, str, str], None]


# ---------------------------------------------------------------------------------------------
# OAuth2 (owncloud/oauth2: oc_oauth2_clients, _access_tokens, _refresh_tokens, _auth_codes)


@dataclass(frozen=True)
class OAuthCounts:
    clients: int = 0
    access_tokens: int = 0
    refresh_tokens: int = 0


def import_oauth2(source: LegacySource, store: MetadataStore, uid: str, now: float,
                  note: Note) -> OAuthCounts:
    """The user's access and refresh tokens, as stored (in clear, ids kept), and the clients
    they belong to. A token of a client that no longer exists is dropped with a finding:
    ownCloud would not accept it either once the client is gone (the app deletes them)."""
    t = source.t
    access = source.table_rows(t.oauth2_access_tokens,
                               t.oauth2_access_tokens.c.user_id == uid)
    refresh = source.table_rows(t.oauth2_refresh_tokens,
                                t.oauth2_refresh_tokens.c.user_id == uid)
    codes = source.table_rows(t.oauth2_auth_codes, t.oauth2_auth_codes.c.user_id == uid)
    wanted = {int(r["client_id"]) for r in (*access, *refresh)}
    clients = {int(r["id"]): r for r in source.table_rows(
        t.oauth2_clients, t.oauth2_clients.c.id.in_(sorted(wanted)))} if wanted else {}
    orphans = [r for r in (*access, *refresh) if int(r["client_id"]) not in clients]
    if orphans:
        note("oauth2-token-without-client", "",
             f"{len(orphans)} OAuth2 token(s) of a client that no longer exists: not migrated")
    expired = [r for r in access if int(r["expires"]) <= now]
    if expired:
        note("oauth2-token-expired", "",
             f"{len(expired)} OAuth2 access token(s) already expired: carried over, refused "
             "as ownCloud refuses them")
    if codes:
        note("oauth2-auth-code", "",
             f"{len(codes)} pending OAuth2 authorization code(s) (valid for minutes): not "
             "migrated; a client in the middle of a login starts it again")
    client_rows = [dict(id=cid, identifier=c["identifier"], secret=c["secret"],
                        redirect_uri=c["redirect_uri"], name=c["name"],
                        allow_subdomains=bool(c["allow_subdomains"]),
                        trusted=bool(c["trusted"])) for cid, c in sorted(clients.items())]
    access_rows = [dict(id=int(r["id"]), token=r["token"], client_id=int(r["client_id"]),
                        uid=uid, expires=int(r["expires"]))
                   for r in access if int(r["client_id"]) in clients]
    refresh_rows = [dict(id=int(r["id"]), token=r["token"], client_id=int(r["client_id"]),
                         uid=uid, access_token_id=r["access_token_id"])
                    for r in refresh if int(r["client_id"]) in clients]
    with store.write(uid) as conn:
        _upsert(conn, schema.oauth2_clients, client_rows)
        for table, rows in ((schema.oauth2_access_tokens, access_rows),
                            (schema.oauth2_refresh_tokens, refresh_rows)):
            # the user's tokens are replaced as a whole: one revoked on ownCloud since the
            # last pass goes too
            conn.execute(sa.delete(table).where(table.c.uid == uid))
            if rows:
                conn.execute(sa.insert(table), rows)
    return OAuthCounts(len(client_rows), len(access_rows), len(refresh_rows))


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Rows by primary key `id`: replaced when present (another user's job may have brought
    them already), inserted otherwise."""
    if not rows:
        return
    ids = [r["id"] for r in rows]
    conn.execute(sa.delete(table).where(table.c.id.in_(ids)))
    conn.execute(sa.insert(table), rows)


# ---------------------------------------------------------------------------------------------
# Avatars


def avatar_candidates(data_dir: Path, home: Path, uid: str) -> list[tuple[Path, str]]:
    """Where ownCloud keeps a user's avatar (newstack/avatars.py, which serves them from
    there on the legacy side): the same files are imported."""
    return avatar_files(data_dir, home, uid)


def avatar_blob_id(uid: str, mtime: int) -> str:
    """One blob per (user, avatar version): a re-run overwrites it."""
    return f"avatar-{hashlib.md5(uid.encode('utf-8')).hexdigest()}-{mtime}"


def import_avatar(source: LegacySource, store: MetadataStore, driver: StorageDriver,
                  uid: str, home: Path, note: Note) -> bool:
    """The user's uploaded avatar (not the generated letter one, which the new stack makes
    alike from the display name); False when there is none. Run again (a catch-up pass), it
    copies only an avatar that changed, and removes the one ownCloud no longer has, so that
    both stacks serve the same (newstack/avatars.py); the blob replaced goes after the commit."""
    a = schema.avatars
    with store.read() as conn:
        held = conn.execute(sa.select(a.c.blob_id, a.c.mimetype, a.c.size)
                            .where(a.c.uid == uid)).first()
    for path, mimetype in avatar_candidates(source.instance.data_dir, home, uid):
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            note("avatar-unreadable", str(path), f"not migrated: {exc}")
            return False
        mtime = int(st.st_mtime)
        blob_id = avatar_blob_id(uid, mtime)
        if held is not None and (held.blob_id, held.mimetype, int(held.size)) == \
                (blob_id, mimetype, st.st_size):
            return True
        try:
            info = driver.link_from_path(blob_id, path, "copy")
        except (StorageError, OSError) as exc:
            note("avatar-unreadable", str(path), f"not migrated: {exc}")
            return False
        with store.write(uid) as conn:
            conn.execute(sa.delete(a).where(a.c.uid == uid))
            conn.execute(sa.insert(a).values(uid=uid, blob_id=blob_id, mimetype=mimetype,
                                             size=info.size, mtime=mtime))
        if held is not None and held.blob_id != blob_id:
            driver.delete(held.blob_id, missing_ok=True)
        return True
    if held is not None:  # removed on ownCloud since the last pass
        with store.write(uid) as conn:
            conn.execute(sa.delete(a).where(a.c.uid == uid))
        driver.delete(held.blob_id, missing_ok=True)
    return False


# ---------------------------------------------------------------------------------------------
# System tags


def import_systemtag_definitions(source: LegacySource, conn: Connection) -> int:
    """Every system tag of the instance (few, and global: a tag that exists with no file of
    this stack must still answer a REPORT with an empty list, not 412) and its groups."""
    t = source.t
    with source.engine.connect() as legacy:
        tags = [dict(id=int(r.id), name=r.name, visibility=int(r.visibility),
                     editable=int(r.editable), assignable=int(r.assignable))
                for r in legacy.execute(sa.select(t.systemtag).order_by(t.systemtag.c.id))]
        groups = [dict(tag_id=int(r.systemtagid), gid=r.gid)
                  for r in legacy.execute(sa.select(t.systemtag_group))]
    ids = [row["id"] for row in tags]
    s, g = schema.systemtags, schema.systemtag_groups
    if ids:
        # update in place: deleting a tag would cascade to other users' assignments
        have = set(conn.execute(sa.select(s.c.id).where(s.c.id.in_(ids))).scalars())
        for row in tags:
            if row["id"] in have:
                conn.execute(sa.update(s).where(s.c.id == row["id"]).values(**row))
        new = [row for row in tags if row["id"] not in have]
        if new:
            conn.execute(sa.insert(s), new)
        conn.execute(sa.delete(g).where(g.c.tag_id.in_(ids)))
    known = set(ids)
    groups = [row for row in groups if row["tag_id"] in known]
    if groups:
        conn.execute(sa.insert(g), groups)
    return len(tags)


def systemtag_rows(t: Any, storage: int) -> sa.Select[Any]:
    """(fileid, tag id) of the home storage's files, in fileid order: oc_filecache drives
    the join (objectid is a string column: the fileid is cast to it, which the mapping index
    serves). Without the order SQLite drives from the mapping and, the cast leaving it no
    index on oc_filecache, scans the storage's rows once per mapping row: 57 s for 3,300
    assignments at 100,000 files (bench/extras.py). `t`: ownCloud's tables."""
    m, fc = t.systemtag_object_mapping, t.filecache
    return (sa.select(fc.c.fileid, m.c.systemtagid)
            .join(m, m.c.objectid == sa.cast(fc.c.fileid, m.c.objectid.type))
            .where(fc.c.storage == storage, m.c.objecttype == FILES_OBJECT)
            .order_by(fc.c.fileid))


def systemtag_assignments(source: LegacySource, storage: int, known: set[int]
                          ) -> list[dict[str, Any]]:
    """(fileid, tag_id) rows of the user's migrated nodes: one query joined on the home
    storage."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    with source.engine.connect() as conn:
        for fileid, tag_id in conn.execute(systemtag_rows(source.t, storage)):
            if int(fileid) in known:
                rows[(int(fileid), int(tag_id))] = dict(fileid=int(fileid), tag_id=int(tag_id))
    return list(rows.values())


# ---------------------------------------------------------------------------------------------
# What the verify gate compares (migrate/verify.py): the same view of both databases


@dataclass
class AccountData:
    #: id -> (token, client id, expires)
    access_tokens: dict[int, tuple[str, int, int]]
    #: id -> (token, client id, access token id)
    refresh_tokens: dict[int, tuple[str, int, int | None]]
    #: id -> (identifier, secret, redirect uri, name, allow subdomains, trusted) of the
    #: clients the user's tokens belong to
    clients: dict[int, tuple[str, str, str, str, bool, bool]]
    #: (fileid, tag id) -> True for the system tags on the user's files and trash
    assignments: dict[tuple[int, int], bool]
    #: tag id -> (name, visibility, editable, assignable, groups): every system tag
    tags: dict[int, tuple[str, int, int, int, tuple[str, ...]]]
    #: 'avatar' -> (mimetype, size, sha1 of the bytes), or empty without one
    avatar: dict[str, tuple[str, int, str]]


def legacy_account_data(backend: Any, uid: str) -> AccountData:
    """The ownCloud side, read from an Oc10Backend's database and data directory."""
    from bridge.oc10.formats import home_storage_id

    t, engine = backend.t, backend.engine
    with engine.connect() as conn:
        clients = {int(r.id): (r.identifier, r.secret, r.redirect_uri, r.name,
                               bool(r.allow_subdomains), bool(r.trusted))
                   for r in conn.execute(sa.select(t.oauth2_clients))}
        a, r = t.oauth2_access_tokens, t.oauth2_refresh_tokens
        access = {int(x.id): (x.token, int(x.client_id), int(x.expires))
                  for x in conn.execute(sa.select(a).where(a.c.user_id == uid))
                  if int(x.client_id) in clients}
        refresh = {int(x.id): (x.token, int(x.client_id), _int_or_none(x.access_token_id))
                   for x in conn.execute(sa.select(r).where(r.c.user_id == uid))
                   if int(x.client_id) in clients}
        used = {c for _, c, _ in access.values()} | {c for _, c, _ in refresh.values()}
        storage = conn.execute(sa.select(t.storages.c.numeric_id).where(
            t.storages.c.id == home_storage_id(uid))).scalar()
        assignments: dict[tuple[int, int], bool] = {}
        if storage is not None:
            fc = t.filecache
            mine = (fc.c.path == "files") | fc.c.path.startswith("files/", autoescape=True) \
                | (fc.c.path == "files_trashbin/files") \
                | fc.c.path.startswith("files_trashbin/files/", autoescape=True)
            query = systemtag_rows(t, storage).where(mine)
            assignments = {(int(f), int(g)): True for f, g in conn.execute(query)}
        groups: dict[int, list[str]] = {}
        for row in conn.execute(sa.select(t.systemtag_group)):
            groups.setdefault(int(row.systemtagid), []).append(row.gid)
        tags = {int(x.id): (x.name, int(x.visibility), int(x.editable), int(x.assignable),
                            tuple(sorted(groups.get(int(x.id), []))))
                for x in conn.execute(sa.select(t.systemtag))}
    avatar: dict[str, tuple[str, int, str]] = {}
    for path, mimetype in avatar_candidates(backend.instance.data_dir, backend.home(uid), uid):
        if path.is_file():
            with path.open("rb") as file:
                avatar["avatar"] = (mimetype, *_sha1(iter(lambda: file.read(1 << 20), b"")))
            break
    return AccountData(access, refresh, {c: clients[c] for c in used}, assignments, tags,
                       avatar)


def native_account_data(backend: Any, uid: str) -> AccountData:
    """The new stack's side, from a NativeBackend's store and driver."""
    store, driver = backend.store, backend.driver
    a, r, c = schema.oauth2_access_tokens, schema.oauth2_refresh_tokens, schema.oauth2_clients
    s, g, o, n = schema.systemtags, schema.systemtag_groups, schema.systemtag_objects, \
        schema.nodes
    with store.read() as conn:
        access = {int(x.id): (x.token, int(x.client_id), int(x.expires))
                  for x in conn.execute(sa.select(a).where(a.c.uid == uid))}
        refresh = {int(x.id): (x.token, int(x.client_id), _int_or_none(x.access_token_id))
                   for x in conn.execute(sa.select(r).where(r.c.uid == uid))}
        used = sorted({cid for _, cid, _ in access.values()}
                      | {cid for _, cid, _ in refresh.values()})
        clients = {int(x.id): (x.identifier, x.secret, x.redirect_uri, x.name,
                               bool(x.allow_subdomains), bool(x.trusted))
                   for x in conn.execute(sa.select(c).where(c.c.id.in_(used)))}
        assignments = {(int(f), int(tid)): True for f, tid in conn.execute(
            sa.select(o.c.fileid, o.c.tag_id).join(n, n.c.fileid == o.c.fileid)
            .where(n.c.owner == uid))}
        groups: dict[int, list[str]] = {}
        for row in conn.execute(sa.select(g)):
            groups.setdefault(int(row.tag_id), []).append(row.gid)
        tags = {int(x.id): (x.name, int(x.visibility), int(x.editable), int(x.assignable),
                            tuple(sorted(groups.get(int(x.id), []))))
                for x in conn.execute(sa.select(s))}
        row = conn.execute(sa.select(schema.avatars).where(schema.avatars.c.uid == uid)).first()
    avatar: dict[str, tuple[str, int, str]] = {}
    if row is not None:
        avatar["avatar"] = (row.mimetype, *_sha1(driver.open(row.blob_id)))
    return AccountData(access, refresh, clients, assignments, tags, avatar)


def _sha1(chunks: Iterable[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha1(usedforsecurity=False), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
