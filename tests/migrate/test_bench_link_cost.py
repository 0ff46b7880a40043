"""bench/migrate.py's link-cost summary: what linking and copying add to the metadata-only job,
and the targets drawn from it."""

from __future__ import annotations

from typing import Any

from bench.migrate import Results, link_cost, targets_met


def contenders(meta: float, auto: float, copy: float) -> dict[str, Any]:
    return {"ocbridge-meta": {"library_seconds": meta, "read_share": 0.12},
            "ocbridge-auto": {"library_seconds": auto, "read_share": 0.125},
            "ocbridge-copy": {"library_seconds": copy, "read_share": 1.12}}


def test_link_cost_is_measured_against_the_metadata_only_run() -> None:
    cost = link_cost(contenders(0.5, 0.6, 10.5))
    assert cost["link_own_s"] == 0.1 and cost["copy_own_s"] == 10.0
    assert cost["link_own_share_of_copy_own"] == 0.01
    assert cost["link_read_share_beyond_meta"] == 0.005  # start-up reads do not count
    assert link_cost({"ocbridge-auto": {"library_seconds": 1.0}})["link_own_s"] is None


def target(results: Results, name: str) -> dict[str, Any]:
    return next(t for t in targets_met(results) if t["target"].endswith(name))


def test_link_targets_follow_the_measures() -> None:
    results = Results()
    results.cases["big"] = {"contenders": {}, "link_cost": link_cost(contenders(0.5, 0.6, 10.5))}
    assert target(results, "link's own time")["met"] is True
    assert target(results, "bytes read beyond metadata-only")["met"] is True
    results.cases["big"]["link_cost"] = link_cost(contenders(0.5, 3.5, 10.5))
    assert target(results, "link's own time")["met"] is False
    results.cases["big"].pop("link_cost")
    assert target(results, "link's own time")["met"] is None  # not measured: n/a
