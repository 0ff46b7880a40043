"""Benchmark: a catch-up pass's extras (trash records, favorites, tags, comments, read markers,
dead properties, system tag assignments), written incrementally (migrate/extras_sync.py)
against replaced as a whole (what migrate/delta.py did before: delete the user's rows, then
the bulk import's `extras` phase again).

    .venv/bin/python -m bench.extras [--sizes 10000,100000] [--changed 0.01]

Per size: a fixture ownCloud 10 instance on SQLite whose user has that many files, extras
added densely (a favorite on every 20th file, a tag on every 25th, a comment and a reply on
every 50th with a read marker, a dead property on every 10th, a system tag on every 30th),
the user migrated; then both ways are timed, with nothing changed and with `--changed` of the
extras rows changed on ownCloud (properties and comments edited or removed, favorites and
tags removed). Each way starts from the same state and ends with the same rows (checked).
Writes bench/results/extras.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import format_table, loadavg, machine_info, rnd, temp_dir, write_json
from bridge.config import Settings
from fixtures.builder import build_instance
from fixtures.profiles import get_profile
from migrate import account_data, extras_sync
from migrate.runner import FAVORITE, UserMigration
from migrate.source import LegacySource
from newstack.legacy.instance import open_instance
from newstack.metadata import schema
from newstack.service import Newstack, open_newstack

ROOT = Path(__file__).resolve().parent.parent
SEED = 8
UID = "alice"
REPEATS = 3
EXTRAS = (schema.trash, schema.favorites, schema.tags, schema.comments,
          schema.comment_read_markers, schema.dead_props, schema.systemtag_objects)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_extras(source: LegacySource, storage: int) -> int:
    """Dense extras on the user's files, straight into oC10's tables; returns the rows."""
    t = source.t
    fc = t.filecache
    with source.engine.begin() as conn:
        ids = [int(f) for f in conn.execute(sa.select(fc.c.fileid).where(
            fc.c.storage == storage, fc.c.path.like("files/%"), fc.c.mimetype != 2)
            .order_by(fc.c.fileid)).scalars()]
        favorite = conn.execute(sa.select(t.vcategory.c.id).where(
            t.vcategory.c.uid == UID, t.vcategory.c.category == FAVORITE)).scalar_one()
        inserted = conn.execute(sa.insert(t.vcategory).values(
            uid=UID, type="files", category="bench")).inserted_primary_key
        assert inserted is not None
        tag = inserted[0]
        first_comment = int(conn.execute(sa.select(sa.func.max(t.comments.c.id))).scalar() or 0)
        when = dt.datetime(2025, 1, 2, 3, 4, 5)
        rows: dict[sa.Table, list[dict[str, Any]]] = {}
        have_favorite = {int(f) for f in conn.execute(sa.select(
            t.vcategory_to_object.c.objid).where(
                t.vcategory_to_object.c.categoryid == favorite)).scalars()}
        have_tags = {(int(o), int(s)) for o, s in conn.execute(sa.select(
            t.systemtag_object_mapping.c.objectid, t.systemtag_object_mapping.c.systemtagid))}
        comment_id = first_comment
        for i, fileid in enumerate(ids):
            if i % 20 == 0 and fileid not in have_favorite:
                rows.setdefault(t.vcategory_to_object, []).append(
                    dict(objid=fileid, categoryid=favorite, type="files"))
            if i % 25 == 0:
                rows.setdefault(t.vcategory_to_object, []).append(
                    dict(objid=fileid, categoryid=tag, type="files"))
            if i % 50 == 0:
                comment_id += 2
                for cid, parent in ((comment_id - 1, 0), (comment_id, comment_id - 1)):
                    rows.setdefault(t.comments, []).append(dict(
                        id=cid, parent_id=parent, topmost_parent_id=parent, children_count=0,
                        actor_type="users", actor_id=UID, message=f"comment {cid}",
                        verb="comment", creation_timestamp=when, latest_child_timestamp=None,
                        object_type="files", object_id=str(fileid)))
            if i % 10 == 0:
                rows.setdefault(t.properties, []).append(dict(
                    fileid=fileid, propertyname="{http://example.com/ns}bench",
                    propertyvalue=f"v{i}", propertytype=1))
            if i % 30 == 0 and (fileid, 1) not in have_tags:
                rows.setdefault(t.systemtag_object_mapping, []).append(dict(
                    objectid=str(fileid), objecttype="files", systemtagid=1))
        for table, values in rows.items():
            conn.execute(sa.insert(table), values)
    return sum(len(v) for v in rows.values())


def change_extras(source: LegacySource, share: float) -> int:
    """About `share` of the bench's extras rows changed: edited and removed."""
    t = source.t
    changed = 0
    with source.engine.begin() as conn:
        props = [r.id for r in conn.execute(sa.select(t.properties.c.id).where(
            t.properties.c.propertyname == "{http://example.com/ns}bench"))]
        step = max(int(1 / share), 1)
        edit = props[::step]
        conn.execute(sa.update(t.properties).where(t.properties.c.id.in_(edit[::2]))
                     .values(propertyvalue="edited"))
        conn.execute(sa.delete(t.properties).where(t.properties.c.id.in_(edit[1::4])))
        comments = [r.id for r in conn.execute(sa.select(t.comments.c.id).where(
            t.comments.c.message.like("comment %")))][::step]
        conn.execute(sa.update(t.comments).where(t.comments.c.id.in_(comments[::2]))
                     .values(message="edited"))
        conn.execute(sa.delete(t.comments).where(t.comments.c.id.in_(comments[1::4])))
        m = t.vcategory_to_object
        objects = [(r.objid, r.categoryid) for r in conn.execute(sa.select(m))][::step]
        for objid, category in objects[::2]:
            conn.execute(sa.delete(m).where(m.c.objid == objid, m.c.categoryid == category))
        changed = len(edit[::2]) + len(edit[1::4]) + len(comments[::2]) \
            + len(comments[1::4]) + len(objects[::2])
    return changed


def dump(stack: Newstack) -> dict[str, list[tuple[Any, ...]]]:
    with stack.store.read() as conn:
        return {t.name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr)
                for t in EXTRAS}


def replace_whole(source: LegacySource, stack: Newstack, storage: int) -> None:
    """The previous catch-up: the user's extras deleted, then the import's phase again."""
    job = UserMigration(source, stack.store, stack.driver, UID)
    n = schema.nodes
    mine = sa.select(n.c.fileid).where(n.c.owner == UID)
    cp = schema.migration_checkpoints
    with stack.store.write(UID) as conn:
        conn.execute(sa.delete(schema.trash).where(schema.trash.c.owner == UID))
        conn.execute(sa.delete(schema.favorites).where(schema.favorites.c.uid == UID))
        conn.execute(sa.delete(schema.tags).where(schema.tags.c.uid == UID))
        conn.execute(sa.delete(schema.comment_read_markers).where(
            schema.comment_read_markers.c.uid == UID))
        for table in (schema.comments, schema.dead_props, schema.systemtag_objects):
            conn.execute(sa.delete(table).where(table.c.fileid.in_(mine)))
        conn.execute(sa.delete(cp).where(cp.c.uid == UID, cp.c.phase == "extras"))
    job._phase_extras(storage)


def incremental(source: LegacySource, stack: Newstack, storage: int) -> None:
    with stack.store.write(UID) as conn:
        account_data.import_systemtag_definitions(source, conn)
    extras_sync.resync(source, stack.store, UID, storage, lambda *_: None)


def timed(fn: Any, *args: Any) -> float:
    began = time.monotonic()
    fn(*args)
    return time.monotonic() - began


def one_size(files: int, changed: float, work: Path) -> dict[str, Any]:
    profile = dataclasses.replace(
        get_profile("small", users=2, files_per_user=files), hash_cost=4, version_ratio=0.0,
        large_every=0)
    log(f"{files}: building")
    manifest, _ = build_instance(work / "legacy", "sqlite", profile, SEED)
    source = LegacySource(open_instance(Path(manifest.config_php)))
    storage = source.home_storage(UID)
    assert storage is not None
    rows = add_extras(source, storage)
    stacks: dict[str, Newstack] = {}
    defaults = Settings()
    try:
        for name in ("whole", "incremental"):
            log(f"{files}: migrating ({name})")
            stacks[name] = open_newstack(dataclasses.replace(
                defaults, newstack=dataclasses.replace(defaults.newstack,
                                                       data_dir=work / name)))
            UserMigration(source, stacks[name].store, stacks[name].driver, UID).run()
        result: dict[str, Any] = {"files_per_user": files, "bench_extras_rows": rows}
        for case in ("unchanged", "changed"):
            if case == "changed":
                result["changed_rows"] = change_extras(source, changed)
            # the machine is shared: the fastest of the runs (an unchanged state is the same
            # work every time; a change is there only once)
            runs = REPEATS if case == "unchanged" else 1
            for name, fn in (("whole", replace_whole), ("incremental", incremental)):
                result[f"{case}_{name}_s"] = rnd(min(
                    timed(fn, source, stacks[name], storage) for _ in range(runs)), 3)
            same = dump(stacks["whole"]) == dump(stacks["incremental"])
            result[f"{case}_same_rows"] = same
            if not same:
                raise SystemExit(f"{files}: the two ways differ after {case}")
        result["load"] = loadavg()
        return result
    finally:
        for stack in stacks.values():
            stack.close()
        source.instance.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "extras.json")
    args = parser.parse_args(argv)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        with temp_dir("ocbridge-bench-extras-") as work:
            results.append(one_size(size, args.changed, Path(work)))
    header = list(results[0])
    print(format_table(header, [[r.get(k) for k in header] for r in results]))
    write_json(args.out, {"machine": machine_info(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
