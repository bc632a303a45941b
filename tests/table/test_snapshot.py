"""Table snapshots: round trips, identical behaviour after restore, and rejection with a clear
message of snapshots and files of another kind, version or machine, with out-of-range values,
truncated or carrying pickles (the driver's are in driver/test_snapshot.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamhsm import Event, State, StreamTable
from streamhsm.snapshot import SNAPSHOT_VERSION, SnapshotError, load_snapshot, save_snapshot


def busy_table(policy: bool = False) -> StreamTable:
    rng = np.random.default_rng(9)
    t = StreamTable(64, drain_on_producer_loss=policy)
    for _ in range(64):
        t.open()
    t.dispatch_many(rng.integers(0, 64, 3000), rng.integers(0, len(Event), 3000).astype(np.uint8))
    for s in (3, 17, 40):
        t.release(s)
    return t


def same(a: StreamTable, b: StreamTable) -> bool:
    return (np.array_equal(a.states, b.states) and np.array_equal(a.unhandled, b.unhandled)
            and a.unhandled_total == b.unhandled_total and len(a) == len(b)
            and all(a.count(s) == b.count(s) for s in State))


@pytest.mark.smoke
@pytest.mark.parametrize("policy", [False, True])
def test_round_trip_through_a_file(tmp_path: Path, policy: bool) -> None:
    t = busy_table(policy)
    t.save(tmp_path / "t.npz")
    u = StreamTable.load(tmp_path / "t.npz")
    assert u.drain_on_producer_loss is policy and same(t, u)
    # the restored table behaves identically from here on
    rng = np.random.default_rng(3)
    for tb in (t, u):
        tb.open()
    slots = rng.choice(np.flatnonzero(t.states != 255), 500)
    events = rng.integers(0, len(Event), 500).astype(np.uint8)
    assert t.dispatch_many(slots, events) == u.dispatch_many(slots, events)
    assert same(t, u)


def test_snapshot_is_plain_data_and_a_copy() -> None:
    t = busy_table()
    snap = t.snapshot()
    assert snap["kind"] == "MachineTable" and snap["version"] == SNAPSHOT_VERSION
    assert snap["fingerprint"] == t.machine.fingerprint and snap["capacity"] == 64
    snap["states"][:] = 0
    assert t.states[0] != 0 or t.states[1] != 0  # the table did not change


def test_restore_in_place() -> None:
    t = busy_table()
    snap = t.snapshot()
    t.broadcast(Event.DRIVER_SHUTDOWN)
    t.restore(snap)
    assert same(t, busy_table())


def _bad(mutate) -> dict:  # type: ignore[no-untyped-def,type-arg]
    snap = busy_table().snapshot()
    mutate(snap)
    return snap


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.update(kind="Driver"),
     "this is a 'Driver' snapshot; it cannot be restored into a 'MachineTable'"),
    (lambda s: s.update(version=99), "format version 99 is not supported"),
    (lambda s: s.update(fingerprint="0" * 16), "not '"),
    (lambda s: s.update(capacity=32), "snapshot capacity 32 != table capacity 64"),
    (lambda s: s["states"].__setitem__(5, 1), "snapshot state 1 at slot 5 is not a leaf state"),
    (lambda s: s["states"].__setitem__(6, 0), "snapshot state 0 at slot 6 is not a leaf state"),
    (lambda s: s["states"].__setitem__(7, 200), "snapshot state 200 at slot 7"),
    (lambda s: s.update(states=s["states"].astype(np.int64)),
     "'states' must be uint8 of shape \\(64,\\), got int64"),
    (lambda s: s.update(unhandled=s["unhandled"][:10]),
     "'unhandled' must be uint64 of shape \\(64,\\)"),
    (lambda s: s.update(unhandled_total=-1),
     "unhandled_total -1 is not an int between the per-slot sum"),
    # F20: a total near 2**64 would wrap below the per-slot sum at the next unhandled event
    (lambda s: s.update(unhandled_total=2**64 - 1),
     "unhandled_total 18446744073709551615 is not an int between"),
    # per-slot counters above the largest count (their uint64 sum would wrap)
    (lambda s: s.update(unhandled=np.full_like(s["unhandled"], 2**63), unhandled_total=2**63 - 1),
     "unhandled count 9223372036854775808 at slot 0 is above 9223372036854775807"),
    # a total below the exact per-slot sum (the sum above 2**64 in uint64)
    (lambda s: s.update(unhandled=np.full_like(s["unhandled"], 2**62), unhandled_total=2**62),
     "is not an int between the per-slot sum"),
    (lambda s: s.update(unhandled_total=1.5), "unhandled_total 1.5"),
    (lambda s: s.pop("states"), "'states' must be uint8 of shape \\(64,\\), got NoneType"),
    (lambda s: s.update(free=s["free"][::-1].copy() * 0), "free-slot list does not match"),
    (lambda s: s.update(free=s["free"][:1]), "'free' must be int32 of shape \\(3,\\)"),
])
def test_restore_rejects_bad_snapshots(mutate, match) -> None:  # type: ignore[no-untyped-def]
    target = busy_table()
    target.dispatch(0, Event.CLOSE)
    before = target.snapshot()
    with pytest.raises(SnapshotError, match=match):
        target.restore(_bad(mutate))
    after = target.snapshot()
    assert np.array_equal(before["states"], after["states"])
    assert before["unhandled_total"] == after["unhandled_total"]


def test_snapshot_of_another_policy_is_rejected() -> None:
    with pytest.raises(SnapshotError, match="stream\\[drain_on_producer_loss\\]"):
        StreamTable(64).restore(busy_table(policy=True).snapshot())
    with pytest.raises(SnapshotError, match="a snapshot is a dict, got list"):
        StreamTable(4).restore([1, 2])


def test_faulty_files(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    busy_table().save(good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError, match="is not a readable snapshot"):
        StreamTable.load(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(SnapshotError, match="is not a readable snapshot"):
        load_snapshot(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(SnapshotError, match="is not a streamhsm snapshot"):
        StreamTable.load(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, kind=np.array("MachineTable"), version=np.array(1),
             states=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(SnapshotError,
                       match="is not a readable snapshot: member .states.npy. has dtype object"):
        load_snapshot(pickled)
    with pytest.raises(SnapshotError, match="field 'bad' is not plain data"):
        save_snapshot({"kind": "x", "version": 1, "bad": [object()]}, tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        StreamTable.load(tmp_path / "missing.npz")


def test_corrupt_values_in_a_file_are_rejected(tmp_path: Path) -> None:
    snap = busy_table().snapshot()
    snap["states"][0] = 99
    save_snapshot(snap, tmp_path / "bad.npz")
    with pytest.raises(SnapshotError, match="snapshot state 99 at slot 0"):
        StreamTable.load(tmp_path / "bad.npz")
