"""Real clients through the proxy, for a user on each stack: owncloudcmd syncs, litmus passes
as it does against the stack directly, and every byte lands on the user's own stack only.
(rclone copy + check through the proxy is in test_forward.py.)"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.clients.conftest import NewstackServer
from tests.clients.test_litmus import EXPECTED_FAILURES, SUITES, parse_litmus, run_litmus
from tests.clients.test_sync_clients import local_state, make_tree, owncloudcmd
from tests.proxy.harness import requests_by_stack
from tests.proxy.test_forward import USERS, Env, dav, where

SIDES = [("alice", "legacy"), ("bob", "new")]


@pytest.mark.slow
@pytest.mark.parametrize(("uid", "stack"), SIDES)
def test_owncloudcmd_syncs_through_the_proxy(env: Env, tmp_path: Path, uid: str,
                                             stack: str) -> None:
    env.flip("bob", "new")
    live = NewstackServer(env.proxy, uid, USERS[uid], None)  # type: ignore[arg-type]
    local = tmp_path / "client"
    local.mkdir()
    exclude = tmp_path / "exclude.lst"
    exclude.write_text("")
    files = make_tree(local)
    up = owncloudcmd(live, local, exclude)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    for rel in files:
        assert where(env, uid, quote(rel)) == {stack}, rel

    with env.client(uid) as client:
        assert client.put(dav(uid, "readme.txt"), content=b"changed\n").status_code == 204
        assert client.delete(dav(uid, "empty.txt")).status_code == 204
    down = owncloudcmd(live, local, exclude)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert (local / "readme.txt").read_bytes() == b"changed\n"
    assert not (local / "empty.txt").exists()
    state = local_state(local)
    assert not [p for p in state if "conflict" in p.lower()], state
    # the other stack never saw this user's files
    other = env.new if stack == "legacy" else env.legacy
    with httpx.Client(base_url=other, auth=(uid, USERS[uid]), timeout=30) as direct:
        assert direct.get(dav(uid, "big.bin")).status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize(("uid", "stack"), SIDES)
def test_litmus_through_the_proxy(env: Env, tmp_path: Path, uid: str, stack: str) -> None:
    env.flip("bob", "new")
    before = requests_by_stack()
    output = run_litmus(f"{env.proxy}{dav(uid)}", uid, USERS[uid], tmp_path)
    after = requests_by_stack()
    run = parse_litmus(output)
    context = f"{output}\n(traffic in {tmp_path / 'debug.log'})"
    assert sorted(run.summaries) == sorted(SUITES), context
    not_passed = {(suite, name): result for (suite, _, name), result in run.results.items()
                  if not result.startswith("pass")}
    # exactly what ownCloud 10 (and each stack directly, tests/clients/test_litmus.py) fails
    assert not_passed.keys() == EXPECTED_FAILURES.keys(), f"{not_passed}\n{context}"
    # every litmus request went to the user's stack, none to the other
    other = "new" if stack == "legacy" else "legacy"
    assert after.get(stack, 0) - before.get(stack, 0) > 100
    assert after.get(other, 0) == before.get(other, 0)
