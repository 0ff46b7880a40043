"""MetadataStore on real SQLite and PostgreSQL: fileid allocation, nodes, users, the throttle."""

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bridge.oc10.formats import path_hash
from bridge.oc10.passwords import hash_format, verify_password
from bridge.oc10.tokens import token_hash
from newstack.metadata import schema
from newstack.metadata.engine import open_engine
from newstack.metadata.store import (
    AREA_FILES,
    Changes,
    FileidBaseError,
    LoginThrottle,
    MetadataStore,
    NodeRecord,
    UserAdminError,
    ancestors,
)

SECRET = "s3cr3t-of-the-oc10-instance"
BASE = 2**31 + 1_000_000


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> MetadataStore:
    return MetadataStore(engine, BASE, fileid_block=8)


def _node(fileid: int, owner: str, path: str, parent: int, *, is_dir: bool = True,
          size: int = 0) -> NodeRecord:
    return NodeRecord(
        fileid=fileid, owner=owner, area=AREA_FILES, path=path, parent=parent,
        name=path.rpartition("/")[2], is_dir=is_dir, size=size, mtime=1_600_000_000,
        etag=f"etag{fileid}", checksum="", mimetype="httpd/unix-directory" if is_dir else
        "text/plain", permissions=31 if is_dir else 27, blob_id=None if is_dir else f"b{fileid}",
    )


# -- fileids -----------------------------------------------------------------------------------


def test_base_must_be_above_2_pow_31(engine: sa.Engine) -> None:
    with pytest.raises(FileidBaseError, match="above 2\\^31"):
        MetadataStore(engine, 2**31)


def test_base_must_be_above_every_stored_fileid(engine: sa.Engine) -> None:
    store = MetadataStore(engine, BASE)
    store.add_user("alice", create_roots=False)
    store.insert_nodes([_node(BASE - 5, "alice", "", -1)])
    # a database whose allocator row is gone, i.e. a fresh start over imported data
    with engine.begin() as conn:
        conn.execute(sa.delete(schema.fileid_alloc))
    with pytest.raises(FileidBaseError, match="not above the highest stored fileid"):
        MetadataStore(engine, BASE - 5)
    MetadataStore(engine, BASE)  # fine again


def test_base_may_rise_but_never_fall(engine: sa.Engine) -> None:
    store = MetadataStore(engine, BASE)
    first = store.allocate_fileids(1)[0]
    with pytest.raises(FileidBaseError, match="lowering"):
        MetadataStore(engine, BASE - 1)
    raised = MetadataStore(engine, BASE + 10_000)
    assert raised.allocate_fileids(1)[0] == BASE + 10_000 > first


def test_imported_ids_must_be_below_the_base(store: MetadataStore) -> None:
    store.add_user("alice", create_roots=False)
    with pytest.raises(FileidBaseError, match="raise the base"):
        store.insert_nodes([_node(BASE, "alice", "", -1)])


def test_ids_from_two_processes_never_overlap(engine: sa.Engine) -> None:
    one = MetadataStore(engine, BASE, fileid_block=5)
    two = MetadataStore(engine, BASE, fileid_block=7)  # as if in another process
    taken = one.allocate_fileids(3) + two.allocate_fileids(4) + one.allocate_fileids(9)
    taken += two.allocate_fileids(20) + one.allocate_fileids(1)
    assert len(set(taken)) == len(taken)
    assert min(taken) >= BASE


def test_ids_of_a_rolled_back_transaction_are_not_kept_back(engine: sa.Engine) -> None:
    store = MetadataStore(engine, BASE, fileid_block=8)
    other = MetadataStore(engine, BASE, fileid_block=8)  # another process
    with pytest.raises(RuntimeError), store.write() as conn:
        store.allocate_fileids(1, conn)
        raise RuntimeError("the request failed")
    mine, theirs = store.allocate_fileids(5), other.allocate_fileids(5)
    assert not set(mine) & set(theirs)


def test_ids_from_many_threads_are_unique(store: MetadataStore) -> None:
    results: list[list[int]] = []
    lock = threading.Lock()

    def take() -> None:
        ids = [i for _ in range(20) for i in store.allocate_fileids(3)]
        with lock:
            results.append(ids)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in results for i in ids]
    assert len(every) == 8 * 20 * 3 == len(set(every))
    assert min(every) >= BASE


# -- nodes -------------------------------------------------------------------------------------


def test_bulk_insert_keeps_ids_and_hashes(store: MetadataStore) -> None:
    store.add_user("alice", create_roots=False)
    rows = [_node(10, "alice", "", -1)]
    rows += [_node(100 + i, "alice", f"f{i}", 10, is_dir=False, size=i) for i in range(2500)]
    assert store.insert_nodes(rows) == 2501
    with store.read() as conn:
        node = store.node(conn, "alice", AREA_FILES, "f1234")
        assert node is not None
        assert (node.fileid, node.path_hash, node.size) == (1334, path_hash("f1234"), 1234)
        assert len(store.children(conn, 10)) == 2500


def test_children_in_byte_order(store: MetadataStore) -> None:
    store.add_user("alice", create_roots=False)
    names = ["a", "ä", "B", "_", "Z", "b", "A.txt", "a b", "Ä", "😀", "z"]
    store.insert_nodes(
        [_node(1, "alice", "", -1)] + [_node(2 + i, "alice", n, 1) for i, n in enumerate(names)]
    )
    with store.read() as conn:
        listed = [n.name for n in store.children(conn, 1)]
    assert listed == sorted(names, key=lambda n: n.encode("utf-8"))
    assert listed[:3] == ["A.txt", "B", "Z"] and listed.index("a") < listed.index("ä")


def test_propagation_gives_every_ancestor_one_etag(store: MetadataStore) -> None:
    store.add_user("alice", create_roots=False)
    store.insert_nodes([
        _node(1, "alice", "", -1, size=10),
        _node(2, "alice", "a", 1, size=10),
        _node(3, "alice", "a/b", 2, size=-1),  # unknown size stays unknown
        _node(4, "alice", "a/b/c", 3, size=10),
        _node(5, "alice", "x", 1, size=0),
    ])
    changes = Changes()
    changes.add(AREA_FILES, "a/b/c/new.txt", 7)
    with store.write("alice") as conn:
        store.propagate(conn, "alice", changes, etag="fresh", mtime=1_700_000_000)
    with store.read() as conn:
        got = {p: store.node(conn, "alice", AREA_FILES, p) for p in ("", "a", "a/b", "a/b/c", "x")}
    assert {p: n.etag for p, n in got.items() if n} == {
        "": "fresh", "a": "fresh", "a/b": "fresh", "a/b/c": "fresh", "x": "etag5"
    }
    assert {p: n.size for p, n in got.items() if n} == {
        "": 17, "a": 17, "a/b": -1, "a/b/c": 17, "x": 0
    }
    assert {p: n.mtime for p, n in got.items() if n}["a/b"] == 1_700_000_000
    assert got["x"] is not None and got["x"].mtime == 1_600_000_000


def test_ancestors() -> None:
    assert ancestors("a/b/c") == ["a/b", "a", ""]
    assert ancestors("a") == [""]
    assert ancestors("") == []


# -- users, groups, app passwords ----------------------------------------------------------------


def test_users_are_unique_ignoring_case(store: MetadataStore) -> None:
    store.add_user("Alice", email="Alice@Example.org")
    with pytest.raises(UserAdminError, match="exists"):
        store.add_user("alice")
    found = store.user_by_login("ALICE")
    assert found is not None and found.uid == "Alice"
    assert store.uids_by_email("alice@example.ORG") == ["Alice"]
    with pytest.raises(UserAdminError, match="invalid user id"):
        store.add_user("a/b")


def test_set_password_writes_the_current_format(store: MetadataStore) -> None:
    store.add_user("alice")
    store.set_password("alice", "pw")
    user = store.user("alice")
    assert user is not None
    assert hash_format(user.password) == "bcrypt" and user.password.startswith("1|$2y$10$")
    assert verify_password("pw", user.password, "")


def test_groups_and_members(store: MetadataStore) -> None:
    store.add_user("alice")
    store.add_group("admin")
    store.add_group("team")
    store.add_member("team", "alice")
    store.add_member("admin", "alice")
    store.add_member("admin", "alice")  # twice is once
    assert store.groups_of("alice") == ("admin", "team")
    store.remove_member("team", "alice")
    assert store.groups_of("alice") == ("admin",)
    with pytest.raises(UserAdminError, match="no user"):
        store.add_member("admin", "nobody")


def test_app_password_is_stored_as_oc10_token_hash(store: MetadataStore) -> None:
    store.add_user("alice")
    store.set_setting("secret", SECRET)
    token = store.add_app_password("alice", "phone", login_name="alice@example.org")
    assert len(token) == 23 and token.count("-") == 3
    record = store.app_password(token_hash(token, SECRET))
    assert record is not None
    assert (record.uid, record.login_name, record.type, record.name) == (
        "alice", "alice@example.org", 1, "phone"
    )
    assert [r.id for r in store.list_app_passwords("alice")] == [record.id]


def test_delete_user_removes_everything_and_reports_blobs(store: MetadataStore) -> None:
    store.add_user("alice", create_roots=False)
    store.add_user("bob")
    store.add_group("g")
    store.add_member("g", "alice")
    store.set_setting("secret", SECRET)
    store.add_app_password("alice", "x")
    store.insert_nodes([_node(1, "alice", "", -1), _node(2, "alice", "f", 1, is_dir=False)])
    removed: list[str] = []
    store.delete_user("alice", removed.append)
    assert removed == ["b2"]
    assert store.user("alice") is None and store.user("bob") is not None
    with store.read() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.nodes).where(
            schema.nodes.c.owner == "alice")) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.app_passwords)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.group_members)) == 0


# -- throttle --------------------------------------------------------------------------------------


def test_throttle_doubles_per_failure_and_forgets() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    assert throttle.delay("alice", "10.0.0.1") == 0
    for expected in (0.2, 0.4, 0.8, 1.6):
        throttle.failure("Alice", "10.0.0.1")
        assert throttle.delay("alice", "10.0.0.1") == pytest.approx(expected)
    assert throttle.delay("alice", "10.0.0.2") == 0  # per remote address
    for _ in range(20):
        throttle.failure("alice", "10.0.0.1")
    assert throttle.delay("alice", "10.0.0.1") == 25.0
    now[0] += 12 * 3600 + 1
    assert throttle.delay("alice", "10.0.0.1") == 0
    throttle.failure("alice", "10.0.0.1")
    throttle.success("alice", "10.0.0.1")
    assert throttle.attempts("alice", "10.0.0.1") == 0
