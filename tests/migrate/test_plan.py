"""migrate/plan.py on real fixture instances: counts, cohorts and findings recomputed here from
the raw rows, the manifest and the disk (not with the planner's own helpers), and the
`ocbridge migrate plan` command through click's CliRunner."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bridge.cli import main
from bridge.config import ENV_PREFIX
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from migrate.plan import CODES, Plan, build_plan
from newstack.legacy.instance import open_instance
from tests.fixtures.test_instances import build, rows
from tests.newstack.legacy.instances import DATABASES, built_instance

FOLDER = "httpd/unix-directory"
DISK_CODES = {"row-without-file", "file-without-row", "folder-without-row", "wrong-size-row",
              "type-mismatch", "symlink", "invalid-utf8-name", "unreadable"}


def plan_of(manifest: Manifest, **options: Any) -> Plan:
    instance = open_instance(Path(manifest.config_php))
    try:
        return build_plan(instance, **options)
    finally:
        instance.close()


@pytest.fixture(scope="module", params=DATABASES)
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Manifest]:
    with built_instance(request.param, tmp_path_factory.mktemp("small"),
                        get_profile("small")) as manifest:
        yield manifest


@pytest.fixture(scope="module")
def small_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manifest]:
    with built_instance("sqlite", tmp_path_factory.mktemp("small"),
                        get_profile("small")) as manifest:
        yield manifest


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manifest]:
    with built_instance("sqlite", tmp_path_factory.mktemp("edge"),
                        get_profile("edge")) as manifest:
        yield manifest


def codes_of(plan: Plan, uid: str) -> set[str]:
    return {f.code for f in plan.user(uid).findings}


def the_finding(plan: Plan, uid: str, code: str) -> Any:
    [found] = [f for f in plan.user(uid).findings if f.code == code]
    return found


# ---------------------------------------------------------------------------------------------
# independent expectations


def share_links(manifest: Manifest) -> set[tuple[str, str]]:
    """User pairs linked by user and group shares, from oc_share and oc_group_user."""
    users = {r["uid"] for r in rows(manifest, "users")}
    members: dict[str, set[str]] = defaultdict(set)
    for r in rows(manifest, "group_user"):
        members[r["gid"]].add(r["uid"])
    links: set[tuple[str, str]] = set()
    for r in rows(manifest, "share"):
        if r["share_type"] == 0:
            recipients = {r["share_with"]}
        elif r["share_type"] == 1:
            recipients = members[r["share_with"]]
        else:
            continue
        for who in (recipients & users) - {r["uid_owner"]}:
            for source in {r["uid_owner"], r["uid_initiator"]} - {who}:
                links.add((min(source, who), max(source, who)))
    return links


def bfs_components(users: set[str], links: set[tuple[str, str]]) -> set[frozenset[str]]:
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in links:
        neighbours[a].add(b)
        neighbours[b].add(a)
    found: set[frozenset[str]] = set()
    seen: set[str] = set()
    for start in sorted(users):
        if start in seen:
            continue
        comp, todo = {start}, deque([start])
        while todo:
            for n in neighbours[todo.popleft()] - comp:
                comp.add(n)
                todo.append(n)
        seen |= comp
        found.add(frozenset(comp))
    return found


# ---------------------------------------------------------------------------------------------
# the small profile, on every database


def test_counts_match_the_rows(small: Manifest) -> None:
    plan = plan_of(small)
    storages = {r["id"]: r["numeric_id"] for r in rows(small, "storages")}
    folder = next(r["id"] for r in rows(small, "mimetypes") if r["mimetype"] == FOLDER)
    cache = rows(small, "filecache")
    shares = rows(small, "share")
    tokens = rows(small, "authtoken")
    trash = Counter(r["user"] for r in rows(small, "files_trash"))
    oauth = Counter(r["user_id"] for t in ("oauth2_access_tokens", "oauth2_refresh_tokens")
                    for r in rows(small, t))
    names = {0: "user", 1: "group", 3: "link", 6: "federated"}

    assert [u.uid for u in plan.users] == sorted(u["uid"] for u in small.users)
    for mu in small.users:
        uid = mu["uid"]
        report = plan.user(uid)
        mine = [r for r in cache if r["storage"] == storages[f"home::{uid}"]]
        files = [r for r in mine if r["path"].startswith("files/") and r["mimetype"] != folder]
        assert report.files == len(files), uid
        assert report.bytes == sum(r["size"] for r in files), uid
        assert report.folders == sum(1 for r in mine if r["path"].startswith("files/")
                                     and r["mimetype"] == folder), uid
        assert report.versions == sum(1 for r in mine if r["path"].startswith("files_versions/")
                                      and r["mimetype"] != folder), uid
        assert report.trash_items == trash[uid]
        assert report.app_passwords == sum(1 for t in tokens if t["uid"] == uid and t["type"] == 1)
        assert report.sessions == sum(1 for t in tokens if t["uid"] == uid and t["type"] == 0)
        assert report.oauth_tokens == oauth[uid]
        owned = Counter(names[r["share_type"]] for r in shares
                        if r["uid_owner"] == uid and r["share_type"] != 2)
        assert report.shares_owned == dict(owned), uid
        links = [r for r in shares if r["uid_owner"] == uid and r["share_type"] == 3]
        assert report.links.total == len(links)
        assert report.links.with_password == sum(1 for r in links if r["share_with"])
        assert report.state == ("enabled" if mu["state"] == 1 else "disabled")
        assert report.home_storage == f"home::{uid}"
    assert plan.totals["files"] == small.counts["files"] - sum(
        1 for r in cache if not r["path"].startswith("files/") and r["mimetype"] != folder)
    assert not plan.blocked


def test_cohorts_are_the_share_components(small: Manifest) -> None:
    plan = plan_of(small)
    users = {u["uid"] for u in small.users}
    expected = bfs_components(users, share_links(small))
    assert {frozenset(c.members) for c in plan.cohorts} == expected
    assert len(expected) < len(users), "the small profile's shares link some users"
    assert plan.crossing == []
    assert sum(n * size for size, n in plan.component_sizes.items()) == len(users)
    assert [len(c.members) for c in plan.cohorts] == sorted(
        (len(c.members) for c in plan.cohorts), reverse=True)
    for c in plan.cohorts:
        for uid in c.members:
            assert plan.user(uid).cohort == c.index


def test_share_states_and_federated_shares(small: Manifest) -> None:
    plan = plan_of(small)
    shares = rows(small, "share")
    # carol: a pending user share, a declined user share and a declined group-member row
    pending = {r["id"] for r in shares if r["share_with"] == "carol" and r["accepted"] == 1
               and r["share_type"] == 0}
    declined = {r["id"] if r["share_type"] == 0 else r["parent"] for r in shares
                if r["share_with"] == "carol" and r["accepted"] == 2}
    assert pending and len(declined) == 2

    def ids(f: Any) -> set[int]:
        return {int(e.split()[1]) for e in f.examples}

    assert ids(the_finding(plan, "carol", "share-pending")) == pending
    assert ids(the_finding(plan, "carol", "share-declined")) == declined
    federated = [r["id"] for r in shares if r["share_type"] == 6]
    sent = the_finding(plan, "alice", "federated-share-sent")
    assert ids(sent) == set(federated) and sent.severity == "warning"


# ---------------------------------------------------------------------------------------------
# the edge profile: every oddity is a finding


#: manifest oddity kind -> the finding the planner must report on that user
ODDITY_CODES = {
    "row-without-file": "row-without-file",
    "file-without-row": "file-without-row",
    "folder-without-row": "folder-without-row",
    "wrong-size-row": "wrong-size-row",
    "symlink-outside-data-dir": "symlink",
    "invalid-utf8-name": "invalid-utf8-name",
    "disabled-user": "user-disabled",
    "never-logged-in": "no-home",
    "over-quota": "over-quota",
    "expired-link": "link-expired",
}


def test_edge_oddities_are_findings(edge: Manifest) -> None:
    plan = plan_of(edge, check_disk=True)
    seen_kinds = set()
    for oddity in edge.oddities:
        code = ODDITY_CODES.get(oddity.kind)
        if code is None:
            continue
        seen_kinds.add(oddity.kind)
        found = the_finding(plan, oddity.user, code)
        assert found.severity == CODES[code].severity
        if code in DISK_CODES:
            assert oddity.path in found.examples, (oddity, found)
    assert seen_kinds == set(ODDITY_CODES)
    # nothing else on the disk differs from the rows
    disk = Counter(f.code for u in plan.users for f in u.findings if f.code in DISK_CODES)
    assert disk == Counter(ODDITY_CODES[o.kind] for o in edge.oddities
                           if ODDITY_CODES.get(o.kind) in DISK_CODES)
    assert plan.user("nina").home_storage is None and plan.user("nina").files == 0
    assert plan.user("dan").verdict == "warnings"


def test_disk_findings_only_with_check_disk(edge: Manifest) -> None:
    plan = plan_of(edge)
    assert not {f.code for u in plan.users for f in u.findings} & DISK_CODES


def test_shares_to_disabled_users(edge: Manifest) -> None:
    plan = plan_of(edge)
    disabled = {u["uid"] for u in edge.users if u["state"] != 1}
    members: dict[str, set[str]] = defaultdict(set)
    for r in rows(edge, "group_user"):
        members[r["gid"]].add(r["uid"])
    expected: dict[str, set[int]] = defaultdict(set)
    for r in rows(edge, "share"):
        reached = {r["share_with"]} if r["share_type"] == 0 else (
            members[r["share_with"]] if r["share_type"] == 1 else set())
        if (reached - {r["uid_owner"]}) & disabled:
            expected[r["uid_owner"]].add(r["id"])
    assert expected, "the edge profile shares with its disabled user"
    for owner, ids in expected.items():
        found = the_finding(plan, owner, "share-recipient-disabled")
        assert {int(e.split()[1]) for e in found.examples} == ids


# ---------------------------------------------------------------------------------------------
# what the fixtures do not have: injected rows


def test_injected_oddities(tmp_path: Path) -> None:
    manifest = build(tmp_path, "sqlite", "small")
    p = manifest.table_prefix
    storages = {r["id"]: r["numeric_id"] for r in rows(manifest, "storages")}
    bob_file = next(r for r in rows(manifest, "filecache")
                    if r["storage"] == storages["home::bob"] and r["path"].startswith("files/")
                    and "." in r["name"])
    dave_folder = next(r for r in rows(manifest, "filecache")
                       if r["storage"] == storages["home::dave"]
                       and r["path"].startswith("files/") and "." not in r["name"])
    long_uid = "u" * 60  # home::<60 chars> is 66 bytes: the storage id is its md5
    ldap_uid = "L" * 70
    hashed = hashlib.md5(f"home::{long_uid}".encode()).hexdigest()
    statements = [
        # a share to a user and a group that do not exist, one of a missing owner, one of a
        # file that is gone
        f"INSERT INTO {p}share (share_type, share_with, uid_owner, uid_initiator, item_type, "
        "item_source, file_source, file_target, permissions, stime, accepted) VALUES "
        f"(0, 'ghost', 'alice', 'alice', 'folder', '1', {bob_file['fileid']}, '/x', 1, 0, 0), "
        f"(1, 'no-such-group', 'alice', 'alice', 'file', '1', {bob_file['fileid']}, '/y', 1, "
        "0, 0), "
        "(0, 'bob', 'gone', 'gone', 'file', '1', 1, '/z', 1, 0, 0), "
        "(0, 'bob', 'dave', 'dave', 'file', '987654321', 987654321, '/w', 1, 0, 0), "
        "(0, 'dave', 'admin', 'admin', 'calendar', '5', NULL, NULL, 1, 0, 0)",
        f"UPDATE {p}filecache SET encrypted = 1 WHERE fileid = {bob_file['fileid']}",
        f"UPDATE {p}filecache SET size = -1 WHERE fileid = {dave_folder['fileid']}",
        f"INSERT INTO {p}storages (id, available) VALUES ('smb::dave@fileserver//team/', 1), "
        f"('home::olduser', 1), ('{hashed}', 1)",
        f"INSERT INTO {p}mounts (storage_id, root_id, user_id, mount_point) SELECT numeric_id, "
        f"1, 'dave', '/dave/files/Team share/' FROM {p}storages WHERE id LIKE 'smb::%'",
        f"INSERT INTO {p}share_external (remote, remote_id, share_token, password, name, owner, "
        "\"user\", mountpoint, mountpoint_hash, accepted) VALUES ('https://other.example', "
        "'7', 'tok', NULL, 'x', 'marta', 'carol', '/x', 'abc', 1)",
        f"INSERT INTO {p}appconfig (appid, configkey, configvalue) VALUES "
        "('core', 'encryption_enabled', 'yes')",
        f"INSERT INTO {p}users (uid, displayname, password) VALUES ('{long_uid}', NULL, '')",
        f"INSERT INTO {p}accounts (user_id, lower_user_id, backend, home, state) VALUES "
        f"('{long_uid}', '{long_uid}', 'OC\\User\\Database', '/elsewhere/{long_uid}', 1), "
        f"('{ldap_uid}', '{ldap_uid.lower()}', 'OCA\\User_LDAP\\User_Proxy', '/x', 1)",
        f"INSERT INTO {p}preferences (userid, appid, configkey, configvalue) VALUES "
        "('dave', 'core', 'enabled', 'false')",
    ]
    engine = sa.create_engine(manifest.db_url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()

    plan = plan_of(manifest)
    assert codes_of(plan, "alice") >= {"share-recipient-missing", "share-group-missing",
                                       "share-outside-home"}
    assert "share-file-missing" in codes_of(plan, "dave")
    assert {"encrypted-files"} <= codes_of(plan, "bob")
    assert plan.user("bob").verdict == "blocked" and "bob" in plan.blocked
    assert {"unscanned-folders", "external-storage", "user-disabled"} <= codes_of(plan, "dave")
    assert the_finding(plan, "dave", "external-storage").examples == ["/dave/files/Team share/"]
    assert "federated-share-received" in codes_of(plan, "carol")
    assert plan.user("carol").federated_received == 1
    assert {"hashed-storage-id", "home-outside-data-dir"} <= codes_of(plan, long_uid)
    assert plan.user(long_uid).home_storage == hashed
    assert {"uid-over-64", "no-home"} <= codes_of(plan, ldap_uid)
    instance = {f.code: f for f in plan.findings}
    assert set(instance) == {"encryption-enabled", "storage-orphan-home", "storage-external",
                             "share-owner-missing", "share-legacy-item"}
    assert instance["storage-orphan-home"].examples == ["olduser"]
    assert instance["storage-external"].examples == ["smb::dave@fileserver//team/"]
    assert instance["encryption-enabled"].severity == "blocker"


def test_object_store_is_a_blocker(tmp_path: Path) -> None:
    manifest = build(tmp_path, "sqlite", "small", users=2, files_per_user=2)
    engine = sa.create_engine(manifest.db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {manifest.table_prefix}storages SET id = "
                             "'object::user:alice' WHERE id = 'home::alice'"))
    engine.dispose()
    plan = plan_of(manifest)
    assert "object-store-home" in codes_of(plan, "alice")
    assert plan.blocked == ["alice"]
    assert {f.code for f in plan.findings} == {"object-store-primary"}


# ---------------------------------------------------------------------------------------------
# options


def test_max_cohort_splits_and_reports_the_cut(small_sqlite: Manifest) -> None:
    plan = plan_of(small_sqlite, max_cohort=2)
    assert all(len(c.members) <= 2 for c in plan.cohorts)
    links = share_links(small_sqlite)
    cohort = {u.uid: u.cohort for u in plan.users}
    cut = {(a, b) for a, b in links if cohort[a] != cohort[b]}
    assert cut, "the small profile's biggest component has more than two users"
    assert {(c.a, c.b) for c in plan.crossing} == cut
    for a, b in cut:
        assert "cross-cohort-shares" in codes_of(plan, a)
        assert "cross-cohort-shares" in codes_of(plan, b)
    assert plan_of(small_sqlite, max_cohort=2).to_json()["cohorts"] == plan.to_json()["cohorts"]


def test_only_some_users(small_sqlite: Manifest) -> None:
    full = plan_of(small_sqlite)
    plan = plan_of(small_sqlite, only_users=["carol"])
    assert [u.uid for u in plan.users] == ["carol"]
    assert plan.user("carol").to_json() == full.user("carol").to_json()
    assert [c.index for c in plan.cohorts] == [full.user("carol").cohort]
    with pytest.raises(ValueError, match="nobody"):
        plan_of(small_sqlite, only_users=["nobody"])


# ---------------------------------------------------------------------------------------------
# the command


@pytest.fixture
def no_ocbridge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_ocbridge_env")
def test_cli_writes_the_plan_as_json(small_sqlite: Manifest, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["migrate", "plan", "--oc10-config",
                                       small_sqlite.config_php, "--json", str(out),
                                       "--check-disk", "--max-cohort", "3"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["options"] == {"max_cohort": 3, "check_disk": True, "users": []}
    assert sorted(u["uid"] for u in data["users"]) == sorted(u["uid"] for u in small_sqlite.users)
    assert {u["verdict"] for u in data["users"]} <= {"ready", "warnings", "blocked"}
    assert sum(c["size"] for c in data["cohorts"]) == len(small_sqlite.users)
    assert "Migration plan" in result.stdout and "Users" in result.stdout

    # --json - : the JSON alone on standard output, the report on standard error
    result = CliRunner().invoke(main, ["migrate", "plan", "--oc10-config",
                                       small_sqlite.config_php, "--json", "-", "--user", "carol"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [u["uid"] for u in data["users"]] == ["carol"]
    assert "share-declined" in result.stderr


@pytest.mark.usefixtures("no_ocbridge_env")
def test_cli_errors_are_clear(small_sqlite: Manifest, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["migrate", "plan"])
    assert result.exit_code == 2 and "legacy.config_php" in result.stderr
    assert "Traceback" not in result.stderr
    result = CliRunner().invoke(main, ["migrate", "plan", "--oc10-config",
                                       small_sqlite.config_php, "--user", "nobody"])
    assert result.exit_code == 2 and "nobody" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    bad = tmp_path / "config.php"
    bad.write_text("<?php $CONFIG = array('instanceid' => 'x', 'datadirectory' => "
                   f"'{tmp_path}', 'dbtype' => 'sqlite3');\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["migrate", "plan", "--oc10-config", str(bad)])
    assert result.exit_code == 2 and "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_code_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text("utf-8")
    for code, kind in CODES.items():
        assert f"| `{code}` | {kind.severity} |" in doc, code
