"""insert_nodes on SQLite goes around SQLAlchemy (tuples into the driver's executemany): it
stores exactly what the generic path stores, and fails the way it fails."""

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from newstack.metadata import schema
from newstack.metadata.engine import open_engine
from newstack.metadata.store import AREA_FILES, FileidBaseError, MetadataStore, NodeRecord

BASE = 2**31 + 1_000_000


def nodes() -> list[NodeRecord]:
    root = NodeRecord(fileid=10, owner="alice", area=AREA_FILES, path="", parent=-1, name="",
                      is_dir=True, size=-1, mtime=1_600_000_000, etag="e10", checksum="",
                      mimetype="httpd/unix-directory", permissions=31, blob_id=None)
    out = [root]
    for n in range(11, 2600):  # more than one generic batch of 1,000
        out.append(NodeRecord(
            fileid=n, owner="alice", area=AREA_FILES, path=f"d/é {n}.txt", parent=10,
            name=f"é {n}.txt", is_dir=False, size=n * 3, mtime=1_600_000_000 + n,
            etag=f"e{n}", checksum="SHA1:ab" if n % 2 else "", mimetype="text/plain",
            permissions=27, blob_id=f"0000-oc10-{n}-e{n}",
            path_hash="0123456789abcdef0123456789abcdef" if n == 11 else ""))
    return out


def stored(store: MetadataStore) -> list[tuple[object, ...]]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(schema.nodes).order_by(schema.nodes.c.fileid))]


def sqlite_store(path: Path) -> MetadataStore:
    store = MetadataStore(open_engine(f"sqlite:///{path}"), BASE)
    store.add_user("alice", create_roots=False)
    return store


def test_same_rows_as_the_generic_path(tmp_path: Path) -> None:
    fast, generic = sqlite_store(tmp_path / "fast.db"), sqlite_store(tmp_path / "generic.db")
    assert fast.insert_nodes(nodes()) == 2590
    with generic.write() as conn:
        conn.execute(sa.insert(schema.nodes), [n.row() for n in nodes()])
    assert stored(fast) == stored(generic)
    assert stored(fast)[1][schema.nodes.c.keys().index("path_hash")] == \
        "0123456789abcdef0123456789abcdef", "a given path hash is kept"


def test_failures_roll_back_and_are_sqlalchemy_errors(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path / "m.db")
    store.insert_nodes(nodes()[:5])
    with pytest.raises(sa.exc.IntegrityError):
        store.insert_nodes(nodes()[4:8])  # fileid 14 is taken
    with pytest.raises(FileidBaseError):
        store.insert_nodes([*nodes()[5:8], dataclasses.replace(nodes()[9], fileid=BASE)])
    assert len(stored(store)) == 5, "neither failed call left a row"
