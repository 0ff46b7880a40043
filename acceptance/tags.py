"""Which test cases do not apply to an ownCloud 10 core server like ours, from their tags: the
filter ownCloud's own run.sh and core CI apply (INDEX.md "Tags"), kept as a pure table."""

from __future__ import annotations

from collections.abc import Iterable

#: tag -> why a case carrying it is not run; the first listed tag a case has decides
SKIP_TAGS: tuple[tuple[str, str], ...] = (
    ("skip", "tagged @skip in owncloud/core (not run by run.sh)"),
    ("skipOnOcV10", "expected behaviour of another edition (run.sh drops @skipOnOcV10)"),
    ("skipOnOcV10.16", "skipped on 10.16 by run.sh"),
    ("skipOnOcV10.16.4", "skipped on 10.16.4 by run.sh"),
    ("local_storage", "needs the files_external app (local storage mount)"),
    ("files_external-app-required", "needs the files_external app"),
    ("notifications-app-required", "needs the notifications app"),
    ("comments-app-required", "needs the comments app (not served)"),
    ("systemtags-app-required", "needs the systemtags app (not served)"),
    ("provisioning_api-app-required", "needs the provisioning API (not served)"),
    ("preview-extension-required", "needs preview generation (not served)"),
    ("caldav", "needs CalDAV (not served)"),
    ("carddav", "needs CardDAV (not served)"),
    ("skipOnStorage:ceph", "ownCloud skips it on Ceph primary storage"),
)


def skip_reason(tags: Iterable[str]) -> str | None:
    """The reason a case with `tags` is not run, or None when it runs."""
    present = set(tags)
    for tag, reason in SKIP_TAGS:
        if tag in present:
            return reason
    return None
