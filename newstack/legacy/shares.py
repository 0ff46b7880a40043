"""The oc10 backend's ShareStore: ownCloud 10's oc_share read and written in place (with the
instance's table prefix), so the instance and ocbridge see the same shares at every moment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from sqlalchemy import Engine

from bridge.oc10.schema import OC10Tables
from newstack.sharing.sqlstore import SqlShareStore


class Oc10ShareStore(SqlShareStore):
    """oc_share of one instance; new ids from oc_share's own auto-increment, as oC10 makes them."""

    def __init__(self, engine: Engine, tables: OC10Tables, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None
                 ) -> None:
        super().__init__(tables.share, reading=engine.connect, writing=engine.begin,
                         allocate=None, clock=clock, rng=rng)
