"""Driver snapshots: a round trip bumps every live epoch once and keeps the driver working (a
draining driver still shuts down), a snapshot holds neither the token nor the outboxes, and bad
snapshots are refused with a clear message (the crafted hostile ones are in
test_snapshot_validation.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from streamhsm import Driver, DriverConfig, DriverState, Role, State
from streamhsm.snapshot import SnapshotError

SEC = 1_000_000_000


def busy_driver(policy: bool = False) -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1, 2, 3), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 120), stream_capacity=12,
                            lease_capacity=16, drain_on_producer_loss=policy, shutdown_token="t"))
    rng = np.random.default_rng(4)
    now = 0
    for k in range(60):
        now += int(rng.integers(0, SEC // 2))
        sid = int(rng.choice([1, 2, 3, 100, 101, 102]))
        r = d.attach(sid, Role.PRODUCER if k % 4 == 0 else Role.CONSUMER, 1 + k % 9, now,
                     create=True)
        if k % 3 == 0 and r:
            d.detach(r.lease_id, now, client_id=1 + k % 9)
        d.poll(now)
    return d


def observe(d: Driver) -> dict:  # type: ignore[type-arg]
    ids = (1, 2, 3, *range(100, 121))
    return {"state": d.state, "streams": [d.stream_info(s) for s in ids],
            "leases": [(d.lease_state(x), d.lease_expiry(x)) for x in range(0, 70)],
            "live": d.live_leases, "occupancy": [d.streams.count(s) for s in State]}


@pytest.mark.parametrize("policy", [False, True])
def test_driver_round_trip_bumps_every_live_epoch_once(tmp_path: Path, policy: bool) -> None:
    d = busy_driver(policy)
    before = observe(d)
    counters = dict(d.counters)
    d.save(tmp_path / "d.npz")
    e = Driver.load(tmp_path / "d.npz", shutdown_token="t")
    after = observe(e)
    live = [info for info in before["streams"]
            if info and info.state in (State.ACTIVE, State.DRAINING)]
    assert live
    for b, a in zip(before["streams"], after["streams"], strict=True):
        if b is None:
            assert a is None
            continue
        bumped = b.state in (State.ACTIVE, State.DRAINING)
        assert a == dataclasses.replace(b, epoch=b.epoch + bumped)
    assert after["leases"] == before["leases"] and after["live"] == before["live"]
    assert after["occupancy"] == before["occupancy"] and after["state"] is before["state"]
    got = dict(e.counters)
    assert got.pop("epoch_bumps") == counters.pop("epoch_bumps") + len(live)
    assert got == counters
    # both drivers continue identically (apart from the epochs)
    for drv in (d, e):
        drv.poll(d._now_ns + 10 * SEC)
    assert ([i and i.state for i in observe(d)["streams"]]
            == [i and i.state for i in observe(e)["streams"]])


def test_restored_draining_driver_still_shuts_down() -> None:
    d = busy_driver()
    assert d.request_shutdown(d._now_ns, token="t")
    e = Driver.restore(d.snapshot(), shutdown_token="t")
    assert e.state is DriverState.DRAINING
    assert e.attach(1, Role.CONSUMER, 99, e._now_ns).reason == "driver draining"
    e.poll(e._now_ns + 3 * SEC)
    assert e.state is DriverState.STOPPED and e.streams.count(State.LIVE) == 0


def test_snapshot_does_not_hold_the_token_or_consume_outboxes() -> None:
    d = busy_driver()
    snap = d.snapshot()
    assert '"shutdown_token": null' in str(snap["config"])
    due = snap["due_slots"]
    assert due.size > 0  # type: ignore[union-attr]
    again = d.snapshot()
    assert np.array_equal(again["due_slots"], due)  # type: ignore[arg-type]
    expected = sorted(int(d._stream_id[s]) for s in due.tolist()  # type: ignore[union-attr]
                      if d.streams.states[s] in (State.ACTIVE, State.DRAINING))
    assert sorted(d.drain_announces().tolist()) == expected


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.update(kind="MachineTable"),
     "this is a 'MachineTable' snapshot; it cannot be restored into a 'Driver'"),
    (lambda s: s.update(version=99), "format version 99"),
    (lambda s: s.update(fingerprint="x"), "fingerprint"),
    (lambda s: s.update(config="{not json"), "snapshot configuration is not valid JSON"),
    (lambda s: s.update(config='{"stream_capacity": 0}'), "stream_capacity must be between 1"),
    (lambda s: s.update(lease_role=s["lease_role"][:3]), "'lease_role' must be uint8"),
    (lambda s: s.update(driver_state=9), "'driver_state' must be an int between 0 and 4, got 9"),
    (lambda s: s.update(now_ns=-1), "'now_ns' must be an int between 0 and"),
    (lambda s: s["lease_stream"].__setitem__(int(np.flatnonzero(s["lease_stream"] < 0)[0]), 0),
     "lease rows do not match the open lease slots"),
    (lambda s: s.update({"leases.states": np.full_like(s["leases.states"], 3)}),
     "lease rows do not match the open lease slots"),
])
def test_driver_restore_rejects_bad_snapshots(mutate, match) -> None:  # type: ignore[no-untyped-def]
    snap = busy_driver().snapshot()
    mutate(snap)
    with pytest.raises(SnapshotError, match=match):
        Driver.restore(snap)


def test_driver_restore_rejects_duplicate_clients() -> None:
    d = busy_driver()
    snap = d.snapshot()
    live = np.flatnonzero(snap["lease_stream"] >= 0)  # type: ignore[operator]
    assert live.size >= 2
    snap["lease_client"][live[1]] = snap["lease_client"][live[0]]  # type: ignore[index]
    with pytest.raises(SnapshotError, match="holds two leases"):
        Driver.restore(snap)
