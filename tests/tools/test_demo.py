"""The demo (``streamhsm.tools.demo.run_demo``): reproducible for a seed, every counter and the
summary text adding up, and its numbers validated."""

from __future__ import annotations

import io

import pytest

from streamhsm.tools.demo import run_demo


@pytest.mark.parametrize("seed", [3, 4])
def test_demo_is_reproducible_and_consistent(seed: int) -> None:
    a = run_demo(streams=300, clients=1500, seconds=8, seed=seed, out=None)
    b = run_demo(streams=300, clients=1500, seconds=8, seed=seed, out=io.StringIO())
    assert a == b
    c = a["counters"]
    assert isinstance(c, dict)
    # after the shutdown every stream is Closed and every lease has ended exactly once
    streams = a["streams"]
    assert isinstance(streams, dict)
    assert streams["init"] == streams["active"] == streams["draining"] == 0
    assert streams["closed"] >= 300 // 4  # configured streams plus on-demand ones still leased
    assert c["attaches_ok"] == c["leases_detached"] + c["leases_expired"] + c["leases_revoked"]
    assert a["revoke_notices"] == c["attaches_ok"]
    assert c["leases_expired"] > 0 and c["leases_revoked"] > 0  # flaky clients, final shutdown
    assert c["streams_provisioned"] == c["streams_closed"]
    assert c["epoch_bumps"] >= c["streams_provisioned"]
    assert c["stream_hsm_unhandled"] == 0 and c["lease_hsm_unhandled"] == 0
    # the listed reasons add up to the counter, the attach made during the drain included
    rejected = a["rejected"]
    assert isinstance(rejected, dict)
    assert c["attaches_rejected"] == sum(rejected.values()) and rejected["driver draining"] == 1
    # every provisioned stream is accounted for: recycled slots plus the slots held at the end
    slots = a["stream_slots"]
    assert isinstance(slots, dict)
    assert slots["configured"] == 300 // 4
    assert slots["configured"] + slots["created_on_demand"] == c["streams_provisioned"]
    assert slots["recycled"] + slots["held_at_end"] == c["streams_provisioned"]
    assert slots["recycled"] > 0 and slots["held_at_end"] == sum(streams.values())


def test_demo_summary_text_adds_up() -> None:
    out = io.StringIO()
    a = run_demo(streams=200, clients=800, seconds=6, seed=2, out=out, verbose=False)
    text = out.getvalue()
    c, slots = a["counters"], a["stream_slots"]
    assert isinstance(c, dict) and isinstance(slots, dict)
    assert f"attach rejections: {c['attaches_rejected']} (= attaches_rejected" in text
    assert (f"streams provisioned: {c['streams_provisioned']} = {slots['configured']} configured "
            f"+ {slots['created_on_demand']} created on demand") in text
    assert f"{slots['recycled']} on-demand streams went idle: closed" in text
    assert f"{slots['held_at_end']} slots still held at the end" in text


def test_demo_with_many_streams_keeps_id_ranges_disjoint() -> None:
    """More than 40000 streams used to make the static ids overlap the dynamic range."""
    a = run_demo(streams=40_004, clients=100, seconds=1, seed=1, out=None)
    slots = a["stream_slots"]
    assert isinstance(slots, dict) and slots["configured"] == 10_001


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"streams": 0}, ValueError, "streams must be >= 1, got 0"),
    ({"seconds": -1}, ValueError, "seconds must be >= 1, got -1"),
    ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ({"clients": 2.5}, TypeError, "clients must be an int, got float 2.5"),
])
def test_run_demo_rejects_bad_numbers(kw: dict[str, object], exc: type[Exception],
                                      match: str) -> None:
    with pytest.raises(exc, match=match):
        run_demo(**{"streams": 10, "clients": 10, "seconds": 1, "out": None, **kw})  # type: ignore[arg-type]
