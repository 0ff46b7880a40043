"""The routing store, a proxy's view of it and the ack protocol, without HTTP; and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.store import BridgeStore, StoreError
from proxy.route import UserRouting
from proxy.view import ViewKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BridgeStore]:
    opened = BridgeStore.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    yield opened
    opened.close()


def test_states_imply_stacks_and_every_change_bumps_the_epoch(store: BridgeStore) -> None:
    assert store.epoch() == 0 and store.route("alice") is None
    assert store.set_state("alice", "copying").stack == "legacy"
    row = store.set_state("alice", "frozen")
    assert (row.stack, row.frozen, row.epoch) == ("legacy", True, 2)
    assert store.set_state("alice", "new").stack == "new"
    assert store.set_state("alice", "frozen").stack == "new"  # frozen keeps the stack
    assert store.set_state("alice", "cutover", "legacy").stack == "legacy"
    assert store.epoch() == 5
    epoch, rows = store.routes(since_epoch=4)
    assert epoch == 5 and [r.uid for r in rows] == ["alice"]
    for bad in (("alice", "moved"), ("alice", "new", "legacy"), ("", "new"),
                ("alice", "frozen", "elsewhere")):
        with pytest.raises(StoreError):
            store.set_state(*bad)
    assert store.epoch() == 5


def test_store_secret_is_made_once(tmp_path: Path, store: BridgeStore) -> None:
    first = store.secret("proxy_cookie")
    other = BridgeStore.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    assert other.secret("proxy_cookie") == first and len(first) >= 40
    other.close()


def test_acks_count_live_proxies_only(tmp_path: Path) -> None:
    clock = Clock()
    store = BridgeStore.open(f"sqlite:///{tmp_path / 'b.db'}", clock=clock)
    epoch = store.set_state("alice", "frozen").epoch
    assert store.wait_for_acks(epoch, 0).complete  # nobody routes: nothing to wait for
    store.record_ack("p1", epoch=0, seen_epoch=0, draining=0, started_at=0, pid=1)
    store.record_ack("p2", epoch=epoch, seen_epoch=epoch, draining=0, started_at=0, pid=2)
    status = store.wait_for_acks(epoch, 0.1)
    assert not status.complete and [p.proxy_id for p in status.waiting] == ["p1"]
    clock.now += 60  # p1 died; p2 beats on
    store.record_ack("p2", epoch=epoch, seen_epoch=epoch, draining=0, started_at=0, pid=2)
    assert store.wait_for_acks(epoch, 0).complete
    store.remove_proxy("p2")
    assert [p.proxy_id for p in store.proxies()] == ["p1"]
    store.close()


def test_view_applies_epochs_and_acks_after_draining(store: BridgeStore) -> None:
    store.set_state("bob", "new")
    keeper = ViewKeeper(store, refresh_seconds=0.01, proxy_id="p")
    keeper.load()
    assert keeper.view.users == {"bob": UserRouting("new", "new", 1)}

    async def scenario() -> None:
        await keeper.step()
        assert store.ack_status(1).complete
        # a write of alice routed at epoch 1 is in flight when alice is frozen
        keeper.write_started("alice", 1)
        keeper.write_started("bob", 1)
        epoch = store.set_state("alice", "frozen").epoch
        await keeper.step()
        assert keeper.view.users["alice"].state == "frozen"  # routed by at once ...
        status = store.ack_status(epoch)
        assert not status.complete and status.waiting[0].draining == 1  # ... acked later
        keeper.write_started("alice", epoch)  # routed under the new epoch: not waited for
        keeper.write_finished("alice", 1)
        await keeper.step()
        assert store.ack_status(epoch).complete  # bob's write never held it back
        keeper.write_finished("alice", epoch)
        keeper.write_finished("bob", 1)
        assert keeper.draining() == 0

    asyncio.run(scenario())
    keeper.close()
    assert store.proxies() == []


def test_cli_route_set_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"OCBRIDGE_NEWSTACK__DATA_DIR": str(tmp_path)}
    result = runner.invoke(main, ["route", "set", "alice", "new", "--wait", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "alice: new on the new stack (epoch 1)" in result.output
    result = runner.invoke(main, ["route", "set", "alice", "frozen"], env=env)
    assert "alice: frozen on the new stack (epoch 2)" in result.output
    result = runner.invoke(main, ["route", "show", "alice"], env=env)
    assert result.exit_code == 0 and "frozen" in result.output and "epoch 2" in result.output
    result = runner.invoke(main, ["route", "show", "zoe", "--json"], env=env)
    assert '"stack": "legacy"' in result.output
    result = runner.invoke(main, ["route", "set", "alice", "moved"], env=env)
    assert result.exit_code == 2
    # a live proxy that does not acknowledge makes `route set` fail with who is behind
    store = BridgeStore.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    store.record_ack("stuck", epoch=0, seen_epoch=0, draining=3, started_at=0, pid=1)
    result = runner.invoke(main, ["route", "set", "alice", "new", "--wait", "0.2"], env=env)
    assert result.exit_code == 1 and "stuck" in result.output and "3 write(s)" in result.output
    store.close()
