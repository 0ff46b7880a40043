"""Pre-forked worker processes of ocbridge's servers (new stack, legacy, proxy)."""

from __future__ import annotations

import os
import signal
from types import FrameType


def supervise(children: list[int]) -> None:
    """In the parent: pass SIGTERM and SIGINT on to every worker, and return once all ended."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass
