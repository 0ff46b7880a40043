"""The write freeze: which requests write, and the answer a frozen user's write gets. Pure.

Reads of frozen users continue to their current stack; writes get 423 (ownCloud's FileLocked,
which sync clients retry later) or 503 ServiceUnavailable with Retry-After (proxy.freeze_status).
"""

from __future__ import annotations

import re
from typing import Final

from proxy.errors import ProxyAnswer, sabre_body

WRITE_METHODS: Final = frozenset(
    {"PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "PATCH"})
#: POSTs that change a user's data: OCS sharing, and anything on remote.php (comments, tags)
_WRITE_POST = re.compile(
    r"^/+(?:ocs/v[12]\.php/apps/files_sharing/|remote\.php/|public\.php/)")

FROZEN_MESSAGE: Final = ("This user's files are being moved to another server; "
                         "the change can be made again in a moment")


def is_write(method: str, raw_path: bytes) -> bool:
    if method in WRITE_METHODS:
        return True
    if method == "POST":
        return bool(_WRITE_POST.match(raw_path.decode("latin-1")))
    return False


def frozen_answer(status: int, retry_after: int) -> ProxyAnswer:
    if status == 503:
        return ProxyAnswer(503, sabre_body("Sabre\\DAV\\Exception\\ServiceUnavailable",
                                           FROZEN_MESSAGE),
                           (("Retry-After", str(retry_after)),))
    return ProxyAnswer(423, sabre_body("OCA\\DAV\\Connector\\Sabre\\Exception\\FileLocked",
                                       FROZEN_MESSAGE))
