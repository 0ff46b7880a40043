"""Who can be shared with: user and group lookups for sharee search and recipients' groups, over
the native metadata tables or ownCloud 10's oc_accounts/oc_users/oc_groups/oc_group_user.

Matching as oC10's user and group managers search: the pattern anywhere in the uid, display name
or e-mail (users) or the gid (groups), ignoring case; '%' and '_' are taken literally.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Engine

from bridge.oc10.schema import OC10Tables
from newstack.metadata import schema

_ESCAPE: Final = "\\"
#: the most rows one search returns, whatever `limit` asks for
MAX_LIMIT: Final = 1000


def like_pattern(pattern: str) -> str:
    """`%pattern%` with LIKE's wildcards in `pattern` escaped, lower-cased."""
    escaped = (pattern.lower().replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%")
               .replace("_", _ESCAPE + "_"))
    return f"%{escaped}%"


def _contains(column: Any, pattern: str) -> ColumnElement[bool]:
    return sa.func.lower(column).like(like_pattern(pattern), escape=_ESCAPE)


def _limit(limit: int) -> int:
    if limit < 0:
        raise ValueError(f"a search limit cannot be negative, got {limit}")
    return min(limit, MAX_LIMIT)


class NativeDirectory:
    """Users and groups of the metadata database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def find_uids(self, pattern: str, limit: int) -> list[str]:
        u = schema.users
        query = (sa.select(u.c.uid).where(sa.or_(_contains(u.c.uid, pattern),
                                                  _contains(u.c.display_name, pattern),
                                                  _contains(u.c.email, pattern)))
                 .order_by(u.c.uid).limit(_limit(limit)))
        with self._engine.connect() as conn:
            return [str(uid) for uid in conn.scalars(query)]

    def find_groups(self, pattern: str, limit: int) -> list[str]:
        g = schema.groups
        query = (sa.select(g.c.gid).where(_contains(g.c.gid, pattern)).order_by(g.c.gid)
                 .limit(_limit(limit)))
        with self._engine.connect() as conn:
            return [str(gid) for gid in conn.scalars(query)]

    def group_members(self, gid: str) -> list[str]:
        gm = schema.group_members
        with self._engine.connect() as conn:
            return [str(uid) for uid in conn.scalars(
                sa.select(gm.c.uid).where(gm.c.gid == gid).order_by(gm.c.uid))]


class Oc10Directory:
    """Users and groups of an ownCloud 10 database, read in place."""

    def __init__(self, engine: Engine, tables: OC10Tables) -> None:
        self._engine = engine
        self._t = tables

    def find_uids(self, pattern: str, limit: int) -> list[str]:
        a = self._t.accounts
        query = (sa.select(a.c.user_id).where(sa.or_(_contains(a.c.user_id, pattern),
                                                      _contains(a.c.display_name, pattern),
                                                      _contains(a.c.email, pattern)))
                 .order_by(a.c.user_id).limit(_limit(limit)))
        with self._engine.connect() as conn:
            return [str(uid) for uid in conn.scalars(query)]

    def find_groups(self, pattern: str, limit: int) -> list[str]:
        g = self._t.groups
        query = (sa.select(g.c.gid).where(_contains(g.c.gid, pattern)).order_by(g.c.gid)
                 .limit(_limit(limit)))
        with self._engine.connect() as conn:
            return [str(gid) for gid in conn.scalars(query)]

    def group_members(self, gid: str) -> list[str]:
        gu = self._t.group_user
        with self._engine.connect() as conn:
            return [str(uid) for uid in conn.scalars(
                sa.select(gu.c.uid).where(gu.c.gid == gid).order_by(gu.c.uid))]
