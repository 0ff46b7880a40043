"""The `oc10` backend serves fixture instances exactly as their rows say (cutover invisibility).

Every property of every file and folder, for every enabled user, is compared over HTTP with a
value computed here from raw rows (plain SELECTs) by REFERENCE.md's rules, written out below —
never with the server's own formatting code. Instances of the small, edge and (reduced) medium
profiles on SQLite, MariaDB and PostgreSQL; one built instance per module and parameter.

Received shares (mount points, combined folder etags, sizes of mounts) are not part of these
expectations: listings are exactly the rows of the user's own home storage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
import shutil
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bridge.oc10.passwords import VerifiedCredentialCache
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from tests.newstack.legacy.instances import built_instance
from tests.newstack.live import live_server

D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
OCS = "{http://open-collaboration-services.org/ns}"
FOLDER = "httpd/unix-directory"
FAVORITE = "_$!<Favorite>!$_"
DAV_FILES = "/remote.php/dav/files/"
#: bodies up to this size are compared whole; larger files by a Range request on their tail
WHOLE_GET_LIMIT = 4 * 2**20
#: files fetched per user on the profiles other than small (all of them on small)
GET_SAMPLE = 40

#: REFERENCE §6.3, every property a client may ask of a file or folder (dead ones aside)
PROPS = (
    f"{D}getetag", f"{D}getlastmodified", f"{D}getcontentlength", f"{D}getcontenttype",
    f"{D}resourcetype", f"{D}quota-used-bytes", f"{D}quota-available-bytes",
    f"{OC}id", f"{OC}fileid", f"{OC}permissions", f"{OCS}share-permissions", f"{OC}size",
    f"{OC}checksums", f"{OC}favorite", f"{OC}tags", f"{OC}share-types", f"{OC}owner-id",
    f"{OC}owner-display-name", f"{OC}data-fingerprint", f"{OC}downloadURL",
    f"{OC}privatelink", f"{OC}comments-count", f"{OC}comments-unread", f"{OC}comments-href",
)


def propfind_body(props: tuple[str, ...] = PROPS) -> bytes:
    prefixes = {D: "d", OC: "oc", OCS: "x1"}
    inner = "".join(f"<{prefixes[p[:p.index('}') + 1]]}:{p[p.index('}') + 1:]}/>" for p in props)
    return ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" '
            'xmlns:x1="http://open-collaboration-services.org/ns">'
            f"<d:prop>{inner}</d:prop></d:propfind>").encode()


BODY = propfind_body()

# --- REFERENCE's rules, written out -------------------------------------------------------------

#: §6.2: Sabre\HTTP\encodePath keeps these bytes, every other one becomes %xx (lowercase hex)
_HREF_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~()/:@")


def encode_path(text: str) -> str:
    return "".join(chr(b) if b in _HREF_SAFE else f"%{b:02x}"
                   for b in text.encode("utf-8", "surrogateescape"))


def href(uid: str, path: str, is_dir: bool) -> str:
    """§6.2: base + node path percent-encoded; collections end in '/'."""
    rel = path.removeprefix("files").lstrip("/")
    out = DAV_FILES + encode_path(uid) + "/" + encode_path(rel)
    if is_dir and rel:
        out += "/"
    return out


def oc_id(fileid: int, instance_id: str) -> str:
    """§6.3: PHP sprintf('%08d') of the fileid (never truncated), then the instance id."""
    return f"{int(fileid):08d}{instance_id}"


def permission_letters(bits: int, is_dir: bool) -> str:
    """§6.4 for items of the user's own home storage: no S (not a received share), no M (home
    storage); R share, D delete, NV update, then W (files, update) or CK (folders, create)."""
    out = ""
    if bits & 16:
        out += "R"
    if bits & 8:
        out += "D"
    if bits & 2:
        out += "NV"
    if is_dir and bits & 4:
        out += "CK"
    if not is_dir and bits & 2:
        out += "W"
    return out


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3,
          "gb": 1024**3, "t": 1024**4, "tb": 1024**4, "p": 1024**5, "pb": 1024**5}


def quota_bytes(value: str) -> int:
    """§4.4 computerFileSize: a number, optional space, a case-insensitive unit, base 1024."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
    assert match and match.group(2).lower() in _UNITS, f"unparseable quota {value!r}"
    return round(float(match.group(1)) * _UNITS[match.group(2).lower()])


def as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


# --- the rows -----------------------------------------------------------------------------------


@dataclass
class Rows:
    """What the instance's tables held before the server saw a single request."""

    instance_id: str
    fingerprint: str
    mimetypes: dict[int, str]
    #: uid -> numeric id of the home storage, found through oc_mounts ('/<uid>/', §8.3)
    homes: dict[str, int]
    filecache: dict[int, list[dict[str, Any]]]
    accounts: dict[str, dict[str, Any]]
    default_quota: str
    favorites: dict[str, set[int]] = field(default_factory=dict)
    tags: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    shares: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[str, list[dt.datetime]] = field(default_factory=dict)
    read_marks: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)

    def files_rows(self, uid: str) -> list[dict[str, Any]]:
        """The user's visible tree: 'files' and everything below it (§2.2, §8.3)."""
        return [r for r in self.filecache.get(self.homes[uid], [])
                if r["path"] == "files" or r["path"].startswith("files/")]

    def is_dir(self, row: dict[str, Any]) -> bool:
        return self.mimetypes[row["mimetype"]] == FOLDER

    def home_dir(self, uid: str) -> Path:
        return Path(self.accounts[uid]["home"])


def select(conn: sa.Connection, prefix: str, table: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {prefix}{table}"))]


def read_rows(manifest: Manifest) -> Rows:
    config = Path(manifest.config_php).read_text(encoding="utf-8")
    fingerprint = re.search(r"'data-fingerprint'\s*=>\s*'([^']*)'", config)
    instance_id = re.search(r"'instanceid'\s*=>\s*'([^']*)'", config)
    assert instance_id is not None
    engine = sa.create_engine(manifest.db_url, poolclass=sa.NullPool)
    p = manifest.table_prefix
    try:
        with engine.connect() as conn:
            mimetypes = {int(r["id"]): r["mimetype"] for r in select(conn, p, "mimetypes")}
            homes = {r["user_id"]: int(r["storage_id"]) for r in select(conn, p, "mounts")
                     if r["mount_point"] == f"/{r['user_id']}/"}
            filecache: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for r in select(conn, p, "filecache"):
                filecache[int(r["storage"])].append(r)
            accounts = {r["user_id"]: r for r in select(conn, p, "accounts")}
            default_quota = next((r["configvalue"] for r in select(conn, p, "appconfig")
                                  if (r["appid"], r["configkey"]) == ("files", "default_quota")),
                                 "none")
            rows = Rows(instance_id.group(1), fingerprint.group(1) if fingerprint else "",
                        mimetypes, homes, dict(filecache), accounts, default_quota)
            categories = {int(r["id"]): r for r in select(conn, p, "vcategory")
                          if r["type"] == "files"}
            for link in select(conn, p, "vcategory_to_object"):
                category = categories.get(int(link["categoryid"]))
                if category is None or link["type"] != "files":
                    continue
                uid, objid = category["uid"], int(link["objid"])
                if category["category"] == FAVORITE:
                    rows.favorites.setdefault(uid, set()).add(objid)
                else:
                    rows.tags.setdefault(uid, {}).setdefault(objid, []).append(
                        category["category"])
            rows.shares = select(conn, p, "share")
            for c in select(conn, p, "comments"):
                if c["object_type"] == "files":
                    rows.comments.setdefault(str(c["object_id"]), []).append(
                        as_datetime(c["creation_timestamp"]))
            for m in select(conn, p, "comments_read_markers"):
                if m["object_type"] == "files":
                    rows.read_marks[(m["user_id"], str(m["object_id"]))] = as_datetime(
                        m["marker_datetime"])
    finally:
        engine.dispose()
    return rows


def quota_available(rows: Rows, uid: str, files_size: int, data_dir: Path) -> str:
    """§6.3 d:quota-available-bytes: -3 without a quota (none, or default -> appconfig
    files/default_quota -> none); else max(quota - size of files, 0) capped by the disk's free
    space; -1 while the size of files is unknown."""
    value = rows.accounts[uid]["quota"]
    if value in (None, "", "default"):
        value = rows.default_quota or "none"
    if value == "none":
        return "-3"
    if files_size < 0:
        return "-1"
    return str(min(max(quota_bytes(value) - files_size, 0), shutil.disk_usage(data_dir).free))


def share_types(rows: Rows, uid: str, fileid: int, now: dt.datetime) -> tuple[str, ...]:
    """§6.3 oc:share-types: the distinct types (0, 1, 3, 6, 7) of shares on the node that the
    user owns or created; type-2 sub-rows are not asked for, and an expired share is gone
    (Manager::checkExpireDate deletes it when read). REFERENCE gives no order: compared sorted."""
    found = {
        int(s["share_type"]) for s in rows.shares
        if int(s["file_source"]) == fileid and uid in (s["uid_owner"], s["uid_initiator"])
        and int(s["share_type"]) in (0, 1, 3, 6, 7) and s["item_type"] in ("file", "folder")
        and (s["expiration"] is None or as_datetime(s["expiration"]) > now)
    }
    return tuple(str(t) for t in sorted(found))


@dataclass
class Context:
    """What the expected value of a property needs besides the row."""

    rows: Rows
    uid: str
    base_url: str
    quota_available: str
    now: dt.datetime


def expected_props(row: dict[str, Any], ctx: Context) -> dict[str, tuple[int, Any]]:
    """Every property of PROPS for one oc_filecache row: (200, value) or (404, None)."""
    rows, uid = ctx.rows, ctx.uid
    fileid, size, bits = int(row["fileid"]), int(row["size"]), int(row["permissions"])
    is_dir = rows.is_dir(row)
    missing = (404, None)
    display = rows.accounts[uid]["display_name"] or uid
    tags = tuple(sorted(rows.tags.get(uid, {}).get(fileid, [])))
    comments = rows.comments.get(str(fileid), [])
    mark = rows.read_marks.get((uid, str(fileid)))
    unread = [c for c in comments if mark is None or c > mark]
    checksum = row["checksum"] or ""
    out: dict[str, tuple[int, Any]] = {
        f"{D}getetag": (200, f'"{row["etag"]}"'),
        f"{D}getlastmodified": (200, formatdate(int(row["mtime"]), usegmt=True)),
        f"{D}resourcetype": (200, (f"{D}collection",) if is_dir else ()),
        f"{OC}id": (200, oc_id(fileid, rows.instance_id)),
        f"{OC}fileid": (200, str(fileid)),
        f"{OC}permissions": (200, permission_letters(bits, is_dir)),
        # own items: the storage's bits; files never carry CREATE or DELETE
        f"{OCS}share-permissions": (200, str(bits if is_dir else bits & ~(4 | 8))),
        f"{OC}size": (200, str(size)) if size >= 0 else missing,
        f"{OC}favorite": (200, "1" if fileid in rows.favorites.get(uid, set()) else "0"),
        f"{OC}tags": (200, tags),
        f"{OC}share-types": (200, share_types(rows, uid, fileid, ctx.now)),
        f"{OC}owner-id": (200, uid),
        f"{OC}owner-display-name": (200, display),
        f"{OC}data-fingerprint": (200, rows.fingerprint),
        f"{OC}privatelink": (200, f"{ctx.base_url}/index.php/f/{fileid}"),
        f"{OC}comments-count": (200, str(len(comments))),
        f"{OC}comments-unread": (200, str(len(unread))),
        f"{OC}comments-href": (200, f"/remote.php/dav/comments/files/{fileid}"),
    }
    if is_dir:
        out |= {
            f"{D}getcontentlength": missing, f"{D}getcontenttype": missing,
            f"{OC}checksums": missing, f"{OC}downloadURL": missing,
            f"{D}quota-used-bytes": (200, str(max(size, 0))),
            f"{D}quota-available-bytes": (200, ctx.quota_available),
        }
    else:
        out |= {
            f"{D}getcontentlength": (200, str(size)),
            f"{D}getcontenttype": (200, rows.mimetypes[row["mimetype"]]),
            # the whole space-separated DB string in one element; none known -> 404
            f"{OC}checksums": (200, (checksum,)) if checksum else missing,
            f"{OC}downloadURL": (200, ""),
            f"{D}quota-used-bytes": missing, f"{D}quota-available-bytes": missing,
        }
    return out


# --- what the server said -----------------------------------------------------------------------

_LISTS = {f"{OC}checksums", f"{OC}share-types", f"{OC}tags"}


def canonical(prop: ET.Element) -> Any:
    if prop.tag == f"{D}resourcetype":
        return tuple(child.tag for child in prop)
    if prop.tag in _LISTS:
        texts = [child.text or "" for child in prop]
        return tuple(texts) if prop.tag == f"{OC}checksums" else tuple(sorted(texts))
    if len(prop):
        return tuple(ET.tostring(child, encoding="unicode") for child in prop)
    return prop.text or ""


def parse_multistatus(body: bytes) -> list[tuple[str, dict[str, tuple[int, Any]]]]:
    out = []
    for response in ET.fromstring(body).findall(f"{D}response"):
        props: dict[str, tuple[int, Any]] = {}
        for propstat in response.findall(f"{D}propstat"):
            status = int((propstat.findtext(f"{D}status") or "").split()[1])
            found = propstat.find(f"{D}prop")
            for prop in found if found is not None else ():
                props[prop.tag] = (status, canonical(prop) if status == 200 else None)
        out.append((response.findtext(f"{D}href") or "", props))
    return out


# --- the served instances -----------------------------------------------------------------------


@dataclass
class Served:
    profile: str
    kind: str
    manifest: Manifest
    rows: Rows
    url: str

    @property
    def data_dir(self) -> Path:
        return Path(self.manifest.data_dir)

    def client(self, login: str, password: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(login, password), timeout=60)


#: (profile, database, overrides); medium at reduced size on MariaDB only
INSTANCES = {
    "small": ("small", {}),
    "edge": ("edge", {}),
    "medium": ("medium", {"users": 2, "files_per_user": 300}),
}


def _param(profile: str, kind: str) -> Any:
    marks = {"mariadb": [pytest.mark.mariadb], "postgres": [pytest.mark.postgres]}.get(kind, [])
    return pytest.param((profile, kind), marks=marks, id=f"{profile}-{kind}")


# PostgreSQL with the edge profile only: it already exercises every column type there
ALL = [_param("small", "sqlite"), _param("small", "mariadb"), _param("medium", "mariadb"),
       *(_param("edge", k) for k in ("sqlite", "mariadb", "postgres"))]
EDGE = [_param("edge", k) for k in ("sqlite", "mariadb", "postgres")]


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    name, kind = request.param
    profile_name, overrides = INSTANCES[name]
    # a cheap bcrypt cost: the hash formats stay those of ownCloud, logins get fast
    profile = dataclasses.replace(get_profile(profile_name, **overrides), hash_cost=4)
    with built_instance(kind, tmp_path_factory.mktemp(f"oc10-{name}"), profile) as manifest:
        rows = read_rows(manifest)
        # as newstack/legacy/service.py serves it: verified credentials cached
        backend = Oc10Backend(open_instance(Path(manifest.config_php)),
                              credential_cache=VerifiedCredentialCache(ttl=300))
        try:
            with live_server(NewstackApp(backend, ServerInfo(hostname="localhost"))) as url:
                yield Served(name, kind, manifest, rows, url)
        finally:
            backend.instance.close()


def enabled_users(s: Served) -> list[dict[str, Any]]:
    return [u for u in s.manifest.users if u["state"] == 1 and u["has_home"]]


def user_context(s: Served, uid: str) -> Context:
    files = next(r for r in s.rows.files_rows(uid) if r["path"] == "files")
    return Context(s.rows, uid, s.url,
                   quota_available(s.rows, uid, int(files["size"]), s.data_dir),
                   dt.datetime.now(dt.UTC).replace(tzinfo=None))


def propfind(client: httpx.Client, url: str, depth: str = "1") -> httpx.Response:
    return client.request("PROPFIND", url, headers={"Depth": depth}, content=BODY)


class Problems:
    """Mismatches collected over a whole walk, reported grouped by property."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, what: str, message: str) -> None:
        self.items.append((what, message))

    def report(self) -> str:
        counts = Counter(what for what, _ in self.items)
        lines = []
        for what, count in counts.most_common():
            examples = [m for w, m in self.items if w == what][:3]
            lines.append(f"{what}: {count} mismatches, e.g.\n    " + "\n    ".join(examples))
        return "\n".join(lines)


def compare_props(problems: Problems, where: str, served: dict[str, tuple[int, Any]],
                  expected: dict[str, tuple[int, Any]]) -> None:
    for name, want in expected.items():
        got = served.get(name, ("absent", None))
        if got != want:
            short = name.rpartition("}")[2]
            problems.add(short, f"{where}: served {got!r}, rows say {want!r}")


def walk(s: Served, uid: str, password: str, problems: Problems) -> set[int]:
    """PROPFIND Depth 1 on every folder of the user's tree; returns the fileids seen (a folder
    is seen twice: in its parent's listing and as the first entry of its own)."""
    rows = s.rows.files_rows(uid)
    children: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        children[int(r["parent"])].append(r)
    ctx = user_context(s, uid)
    root = next(r for r in rows if r["path"] == "files")
    queue: list[dict[str, Any]] = [root]
    seen: set[int] = set()
    with s.client(uid, password) as client:
        while queue:
            folder = queue.pop()
            own = href(uid, folder["path"], True)
            response = propfind(client, own)
            if response.status_code != 207:
                problems.add("status", f"PROPFIND {own}: {response.status_code}")
                continue
            listing = parse_multistatus(response.content)
            kids = children[int(folder["fileid"])]
            by_href = {own: folder} | {href(uid, k["path"], s.rows.is_dir(k)): k for k in kids}
            hrefs = [h for h, _ in listing]
            if not hrefs or hrefs[0] != own:
                problems.add("listing", f"{own}: first response is {hrefs[:1]}, not the folder")
            if sorted(hrefs) != sorted(by_href):
                problems.add("listing", f"{own}: served children differ from the rows: "
                             f"extra {sorted(set(hrefs) - set(by_href))[:5]}, "
                             f"missing {sorted(set(by_href) - set(hrefs))[:5]}")
            if s.kind in ("sqlite", "mariadb"):  # byte order there (utf8mb4_bin, BINARY)
                names = [by_href[h]["name"].encode() for h in hrefs[1:] if h in by_href]
                if names != sorted(names):
                    problems.add("order", f"{own}: children not in byte order of their names")
            for h, props in listing:
                row = by_href.get(h)
                if row is not None:
                    compare_props(problems, f"{uid} {row['path']!r}", props,
                                  expected_props(row, ctx))
                    seen.add(int(row["fileid"]))
            queue.extend(k for k in kids if s.rows.is_dir(k))
    return seen


def plain_file(s: Served, uid: str, row: dict[str, Any]) -> bool:
    """A file whose disk copy matches its row; the other ones are oddities, checked apart."""
    disk = s.rows.home_dir(uid) / row["path"]
    return (not s.rows.is_dir(row) and row["path"] == unicodedata.normalize("NFC", row["path"])
            and disk.is_file() and not disk.is_symlink()
            and disk.stat().st_size == int(row["size"]))


def check_get(s: Served, client: httpx.Client, uid: str, row: dict[str, Any],
              problems: Problems) -> None:
    url = href(uid, row["path"], False)
    disk = s.rows.home_dir(uid) / row["path"]
    size = int(row["size"])
    headers = {}
    if size > WHOLE_GET_LIMIT:
        headers["Range"] = f"bytes={size - 65_536}-{size - 1}"
    response = client.get(url, headers=headers)
    where = f"GET {uid} {row['path']!r}"
    if response.status_code != (206 if headers else 200):
        problems.add("GET status", f"{where}: {response.status_code}")
        return
    with open(disk, "rb") as fh:
        if headers:
            fh.seek(size - 65_536)
        body = fh.read()
    if response.content != body:
        problems.add("GET body", f"{where}: {len(response.content)} bytes differ from the disk")
    etag = f'"{row["etag"]}"'
    want = {"ETag": etag, "OC-ETag": etag,
            "OC-FileId": oc_id(row["fileid"], s.rows.instance_id),
            "Last-Modified": formatdate(int(row["mtime"]), usegmt=True)}
    if not headers:
        want["Content-Length"] = str(size)
    sha1 = re.search(r"SHA1:([0-9a-f]{40})", row["checksum"] or "")
    want["OC-Checksum"] = f"SHA1:{sha1.group(1)}" if sha1 else None  # type: ignore[assignment]
    for name, value in want.items():
        if response.headers.get(name) != value:
            problems.add(f"GET {name}", f"{where}: {response.headers.get(name)!r} != {value!r}")


# --- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("served", ALL, indirect=True)
def test_every_served_property_equals_the_rows(served: Served) -> None:
    """PROPFIND over each user's whole tree, then GET of (a sample of) the files."""
    s = served
    problems = Problems()
    nodes = 0
    for user in enabled_users(s):
        seen = walk(s, user["uid"], user["password"], problems)
        assert seen == {int(r["fileid"]) for r in s.rows.files_rows(user["uid"])} \
            or problems.items
        nodes += len(seen)
    files = 0
    for user in enabled_users(s):
        uid = user["uid"]
        candidates = [r for r in s.rows.files_rows(uid) if plain_file(s, uid, r)]
        if s.profile != "small" and len(candidates) > GET_SAMPLE:
            candidates = random.Random(uid).sample(candidates, GET_SAMPLE)
        with s.client(uid, user["password"]) as client:
            for row in candidates:
                check_get(s, client, uid, row, problems)
                files += 1
    assert not problems.items, (
        f"{len(problems.items)} mismatches over {nodes} nodes and {files} downloads:\n"
        + problems.report())


@pytest.mark.parametrize("served", [_param("small", "sqlite")], indirect=True)
def test_depth_infinity_is_refused(served: Served) -> None:
    user = enabled_users(served)[0]
    with served.client(user["uid"], user["password"]) as client:
        response = propfind(client, href(user["uid"], "files", True), depth="infinity")
    assert response.status_code == 412
    assert b"Depth infinity not supported" in response.content


def oddity(s: Served, kind: str) -> Any:
    return next(o for o in s.manifest.oddities if o.kind == kind)


def row_at(s: Served, uid: str, path: str) -> dict[str, Any]:
    return next(r for r in s.rows.files_rows(uid) if r["path"] == path)


def alice(s: Served) -> httpx.Client:
    return s.client("alice", s.manifest.user("alice")["password"])


def listing_of(client: httpx.Client, uid: str, path: str) -> set[str]:
    response = propfind(client, href(uid, path, True))
    assert response.status_code == 207, response.text
    return {h for h, _ in parse_multistatus(response.content)}


def props_of(client: httpx.Client, uid: str, path: str, is_dir: bool
             ) -> dict[str, tuple[int, Any]]:
    response = propfind(client, href(uid, path, is_dir), depth="0")
    assert response.status_code == 207, response.text
    [(_, props)] = parse_multistatus(response.content)
    return props


EDGE_DIR = "files/Edge cases"


def check_row_without_file(s: Served) -> None:
    """Listed with its row's properties; GET fails as File::get does: 503 'Could not open
    file' (Sabre\\DAV\\Exception\\ServiceUnavailable)."""
    ghost = row_at(s, "alice", oddity(s, "row-without-file").path)
    with alice(s) as client:
        assert href("alice", ghost["path"], False) in listing_of(client, "alice", EDGE_DIR)
        props = props_of(client, "alice", ghost["path"], False)
        assert props[f"{D}getcontentlength"] == (200, str(ghost["size"]))
        response = client.get(href("alice", ghost["path"], False))
    assert response.status_code == 503, response.text
    assert b"Sabre\\DAV\\Exception\\ServiceUnavailable" in response.content


def check_not_served(s: Served, kind: str, inside: str | None = None) -> None:
    """Not listed and not found by path. Documented, not oC10's: oC10 scans a file that exists
    on disk when it is asked for by path (View::getCacheEntry) and then serves it."""
    path = oddity(s, kind).path
    with alice(s) as client:
        listed = listing_of(client, "alice", EDGE_DIR)
        assert not {href("alice", path, False), href("alice", path, True)} & listed
        assert propfind(client, href("alice", path, False), depth="0").status_code == 404
        assert client.get(href("alice", path, False)).status_code == 404
        if inside is not None:
            assert client.get(href("alice", f"{path}/{inside}", False)).status_code == 404


def check_invalid_utf8_name(s: Served) -> None:
    """No row, so not listed. Sabre's decodePath reads a URL that is not UTF-8 as Latin-1, so
    'latin1-caf%e9.txt' asks for 'latin1-café.txt', which has no row either: 404."""
    url = DAV_FILES + "alice/" + encode_path(EDGE_DIR.removeprefix("files/")) \
        + "/latin1-caf%e9.txt"
    with alice(s) as client:
        assert not any("latin1" in h for h in listing_of(client, "alice", EDGE_DIR))
        response = client.get(url)
    assert response.status_code == 404, response.text


def check_wrong_size_row(s: Served) -> None:
    """PROPFIND says the row's size; GET sends the file's bytes and never more. (oC10 also
    announces the row's Content-Length, so a client sees a short body.)"""
    wrong = row_at(s, "alice", oddity(s, "wrong-size-row").path)
    disk = (s.rows.home_dir("alice") / wrong["path"]).read_bytes()
    got = b""
    with alice(s) as client:
        props = props_of(client, "alice", wrong["path"], False)
        assert props[f"{D}getcontentlength"] == (200, str(wrong["size"]))
        try:
            with client.stream("GET", href("alice", wrong["path"], False),
                               timeout=httpx.Timeout(5, read=1)) as response:
                assert response.status_code == 200
                for chunk in response.iter_raw():
                    got += chunk
        except (httpx.RemoteProtocolError, httpx.ReadTimeout):
            pass
    assert got == disk


def check_nfc_nfd_pair(s: Served) -> None:
    """Both rows are listed (each with its own href and properties). A request for the NFD href
    is normalised to NFC (Filesystem::normalizePath, Cache::get), so oC10 answers it with the
    NFC file."""
    nfc = row_at(s, "alice", oddity(s, "nfc-nfd-pair").path)
    nfd_path = unicodedata.normalize("NFD", nfc["path"])
    nfd = row_at(s, "alice", nfd_path)
    with alice(s) as client:
        listed = listing_of(client, "alice", f"{EDGE_DIR}/Names")
        assert {href("alice", nfc["path"], False), href("alice", nfd_path, False)} <= listed
        response = client.get(href("alice", nfd_path, False))
    assert response.status_code == 200
    assert response.headers["OC-FileId"] == oc_id(nfc["fileid"], s.rows.instance_id), (
        f"the NFD href served {response.headers['OC-FileId']}; oC10 serves the NFC file "
        f"{nfc['fileid']} (the NFD row is {nfd['fileid']})")
    assert response.content == (s.rows.home_dir("alice") / nfc["path"]).read_bytes()


def check_special_characters(s: Served) -> None:
    """hrefs percent-encode every byte outside Sabre's safe set, in lowercase hex."""
    with alice(s) as client:
        listed = listing_of(client, "alice", f"{EDGE_DIR}/Names")
    for needle in ("with%20space.txt", "100%25%20done.txt", "%23hash.txt", "what%3f.txt",
                   "emoji%20%f0%9f%98%80%f0%9f%8e%89.txt", "a%26b%2bc%3dd%3be%2cf%27g.txt",
                   "brackets%20%5b1%5d%20%7b2%7d%20(3).txt", "tilde~name.txt",
                   "semi%3bcolon%20%26%20%22quotes%22.txt"):
        assert any(h.endswith("/" + needle) for h in listed), needle


def check_zero_byte_file(s: Served) -> None:
    with alice(s) as client:
        response = client.get(href("alice", oddity(s, "zero-byte-file").path, False))
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["Content-Length"] == "0"


def check_huge_sparse_file(s: Served) -> None:
    """The exact size past 4 GiB, no checksum, bytes from the disk (a Range on the tail)."""
    huge = row_at(s, "alice", oddity(s, "huge-sparse-file").path)
    with alice(s) as client:
        props = props_of(client, "alice", huge["path"], False)
        tail = client.get(href("alice", huge["path"], False),
                          headers={"Range": f"bytes={huge['size'] - 10}-"})
    assert props[f"{D}getcontentlength"] == (200, str(huge["size"]))
    assert props[f"{OC}checksums"] == (404, None)
    assert (tail.status_code, tail.content) == (206, b"\0" * 10)


def check_plain_row(s: Served, kind: str) -> None:
    """Case pair, long name, deep nesting, empty folders: served like any other row."""
    row = row_at(s, "alice", oddity(s, kind).path)
    with alice(s) as client:
        props = props_of(client, "alice", row["path"], s.rows.is_dir(row))
    assert props[f"{OC}id"] == (200, oc_id(row["fileid"], s.rows.instance_id))


def check_expired_link(s: Served) -> None:
    """An expired link is gone (Manager::checkExpireDate): no 3 in oc:share-types unless
    another, live link is on the node."""
    expired = oddity(s, "expired-link")
    target = row_at(s, expired.user, f"files/{expired.path}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    live = [sh for sh in s.rows.shares if int(sh["file_source"]) == int(target["fileid"])
            and int(sh["share_type"]) == 3
            and (sh["expiration"] is None or as_datetime(sh["expiration"]) > now)]
    user = s.manifest.user(expired.user)
    with s.client(expired.user, user["password"]) as client:
        props = props_of(client, expired.user, target["path"], True)
    assert ("3" in props[f"{OC}share-types"][1]) == bool(live)


def check_fileids_past_2_31(s: Served) -> None:
    mine = next(r for r in s.rows.files_rows("alice") if int(r["fileid"]) > 2**31)
    with alice(s) as client:
        props = props_of(client, "alice", mine["path"], s.rows.is_dir(mine))
    assert props[f"{OC}id"] == (200, f"{mine['fileid']}{s.rows.instance_id}")
    assert props[f"{OC}fileid"] == (200, str(mine["fileid"]))


def check_data_fingerprint(s: Served) -> None:
    assert s.rows.fingerprint
    with alice(s) as client:
        props = props_of(client, "alice", "files", True)
    assert props[f"{OC}data-fingerprint"] == (200, s.rows.fingerprint)


def check_over_quota(s: Served) -> None:
    """Nothing available, never a negative number."""
    olga = s.manifest.user("olga")
    with s.client("olga", olga["password"]) as client:
        props = props_of(client, "olga", "files", True)
    assert props[f"{D}quota-available-bytes"] == (200, "0")


def check_disabled_user(s: Served) -> None:
    """The right password, and still 401."""
    dan = s.manifest.user("dan")
    with s.client("dan", dan["password"]) as client:
        assert propfind(client, href("dan", "files", True)).status_code == 401


def check_uid_with_at_and_case(s: Served) -> None:
    """Any case of the uid logs in; '@' and '.' stay unencoded in hrefs."""
    eve = oddity(s, "uid-with-at-and-case").user
    with s.client(eve.lower(), s.manifest.user(eve)["password"]) as client:
        response = propfind(client, href(eve, "files", True))
    assert response.status_code == 207, response.text
    assert parse_multistatus(response.content)[0][0] == f"{DAV_FILES}{eve}/"


ODDITY_CHECKS = {
    "row-without-file": check_row_without_file,
    "file-without-row": lambda s: check_not_served(s, "file-without-row"),
    "folder-without-row": lambda s: check_not_served(s, "folder-without-row", "inside.txt"),
    "symlink-outside-data-dir": lambda s: check_not_served(s, "symlink-outside-data-dir",
                                                           "secret.txt"),
    "invalid-utf8-name": check_invalid_utf8_name,
    "wrong-size-row": check_wrong_size_row,
    "nfc-nfd-pair": check_nfc_nfd_pair,
    "special-characters": check_special_characters,
    "zero-byte-file": check_zero_byte_file,
    "huge-sparse-file": check_huge_sparse_file,
    "case-pair": lambda s: check_plain_row(s, "case-pair"),
    "long-name": lambda s: check_plain_row(s, "long-name"),
    "deep-nesting": lambda s: check_plain_row(s, "deep-nesting"),
    "empty-folders": lambda s: check_plain_row(s, "empty-folders"),
    "expired-link": check_expired_link,
    "fileids-past-2^31": check_fileids_past_2_31,
    "data-fingerprint": check_data_fingerprint,
    "over-quota": check_over_quota,
    "disabled-user": check_disabled_user,
    "uid-with-at-and-case": check_uid_with_at_and_case,
    # never-logged-in: test_first_request_sets_up_a_missing_home
}


@pytest.mark.parametrize("served", EDGE, indirect=True)
@pytest.mark.parametrize("kind", sorted(ODDITY_CHECKS))
def test_edge_oddity_gets_ownclouds_answer(served: Served, kind: str) -> None:
    """Each oddity of fixtures/edge.py answered as ownCloud 10 answers it, or as documented."""
    ODDITY_CHECKS[kind](served)


@pytest.mark.parametrize("served", EDGE, indirect=True)
def test_every_oddity_kind_is_checked(served: Served) -> None:
    kinds = {o.kind for o in served.manifest.oddities}
    assert kinds - set(ODDITY_CHECKS) == {"never-logged-in"}


@pytest.mark.parametrize("served", EDGE, indirect=True)
def test_first_request_sets_up_a_missing_home(served: Served) -> None:
    """never-logged-in: the first request makes what oC10 makes at a first login (storage
    'home::<uid>', rows '' and 'files', the oc_mounts row, the folders) and lists an empty root."""
    s = served
    nina = next(u for u in s.manifest.users if not u["has_home"])
    uid = nina["uid"]
    assert uid not in s.rows.homes
    with s.client(uid, nina["password"]) as client:
        response = propfind(client, href(uid, "files", True))
    assert response.status_code == 207, response.text
    listing = parse_multistatus(response.content)
    assert [h for h, _ in listing] == [f"{DAV_FILES}{uid}/"]

    fresh = read_rows(s.manifest)
    engine = sa.create_engine(s.manifest.db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        storages = {int(r["numeric_id"]): r["id"]
                    for r in select(conn, s.manifest.table_prefix, "storages")}
        mounts = [r for r in select(conn, s.manifest.table_prefix, "mounts")
                  if r["user_id"] == uid]
    engine.dispose()
    storage = fresh.homes[uid]
    assert storages[storage] == f"home::{uid}"
    by_path = {r["path"]: r for r in fresh.filecache[storage]}
    root, files = by_path[""], by_path["files"]
    assert (root["parent"], root["name"], root["permissions"]) == (-1, "", 23)
    assert (files["parent"], files["name"], files["permissions"]) == (root["fileid"], "files", 31)
    assert {fresh.mimetypes[root["mimetype"]], fresh.mimetypes[files["mimetype"]]} == {FOLDER}
    assert [(m["storage_id"], m["root_id"], m["mount_point"]) for m in mounts] == [
        (storage, root["fileid"], f"/{uid}/")]
    assert (fresh.home_dir(uid) / "files").is_dir()

    ctx = user_context(dataclasses.replace(s, rows=fresh), uid)
    problems = Problems()
    compare_props(problems, f"{uid} files", listing[0][1], expected_props(files, ctx))
    assert not problems.items, problems.report()
