"""Fingerprints cover everything that changes behaviour (issue 19, class 6), and the built-in
machines' fingerprints of 0.2 (which hashed less) still load: they map to today's in the
registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import streamhsm.driver  # noqa: F401  (registers the driver's machines)
from streamhsm import MachineSpec, MachineTable, StreamTable
from streamhsm.compiler import CompiledMachine
from streamhsm.driver import Driver, DriverConfig
from streamhsm.registry import V02_FINGERPRINTS, by_fingerprint, machine
from streamhsm.snapshot import SnapshotError, current_fingerprint, load_snapshot, save_snapshot


def _door(initial: str = "Idle", self_loop_target: str | None = None) -> CompiledMachine:
    spec = MachineSpec("door", ["Open", "Close", "Knock"], initial=initial)
    spec.state("Idle").state("Ajar")
    spec.on("Idle", "Open", "Ajar").on("Ajar", "Close", "Idle")
    spec.on("Ajar", "Open", "Idle").on("Idle", "Close", "Ajar")  # both reachable either way
    spec.on("Idle", "Knock", self_loop_target)
    return spec.compile()


def test_machines_differing_only_in_their_initial_state_differ() -> None:
    a, b = _door("Idle"), _door("Ajar")
    assert np.array_equal(a.next_state, b.next_state) and a.initial_leaf != b.initial_leaf
    assert a.fingerprint != b.fingerprint
    t = MachineTable(a, 2)
    with pytest.raises(SnapshotError, match="fingerprint"):
        MachineTable(b, 2).restore(t.snapshot())


def test_an_external_self_transition_differs_from_handling_in_place() -> None:
    """Same next states and handlers; only the exit/entry paths (and so the transition counts)
    differ."""
    inside, external = _door(), _door(self_loop_target="Idle")
    assert np.array_equal(inside.next_state, external.next_state)
    assert np.array_equal(inside.handler, external.handler)
    assert inside.fingerprint != external.fingerprint


def _fingerprint_02(m: CompiledMachine) -> str:
    """The fingerprint as streamhsm 0.2 computed it for a machine without flags."""
    h = hashlib.sha256()
    h.update(repr((m.state_names, m.event_names)).encode())
    for arr in (m.parent, m.next_state, m.handled, m.handler):
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("key", sorted(V02_FINGERPRINTS))
def test_the_02_fingerprints_of_the_built_in_machines_map_to_today(key: tuple[str, str]) -> None:
    m = machine(*key)
    old = V02_FINGERPRINTS[key]
    assert _fingerprint_02(m) == old != m.fingerprint
    assert current_fingerprint(old) == m.fingerprint
    assert by_fingerprint(old) == (*key, m)


@pytest.mark.parametrize("policy", [False, True])
def test_a_02_stream_table_file_loads(tmp_path: Path, policy: bool) -> None:
    t = StreamTable(6, drain_on_producer_loss=policy)
    for _ in range(4):
        t.open()
    t.dispatch(1, "StreamProvisioned")
    snap = t.snapshot()
    snap["fingerprint"] = _fingerprint_02(t.machine)  # as 0.2 wrote it
    save_snapshot(snap, tmp_path / "old.npz")
    u = StreamTable.load(tmp_path / "old.npz")
    assert u.drain_on_producer_loss is policy and u.states.tolist() == t.states.tolist()
    v = StreamTable(6, drain_on_producer_loss=policy)
    v.restore(load_snapshot(tmp_path / "old.npz"))
    assert v.states.tolist() == t.states.tolist()


def test_a_02_driver_snapshot_loads() -> None:
    d = Driver(DriverConfig(static_stream_ids=(7,)))
    assert d.attach(7, "producer", 1, 1).lease_id > 0
    snap = d.snapshot()
    olds = [V02_FINGERPRINTS[k] for k in (("stream", "default"), ("lease", "default"),
                                          ("driver", "default"))]
    snap["fingerprint"] = "/".join(olds)
    for prefix, key in (("streams", ("stream", "default")), ("leases", ("lease", "default"))):
        snap[f"{prefix}.fingerprint"] = V02_FINGERPRINTS[key]
    # before lease expiry was a timer: a lease_expiry column, lease tables without timers
    expiry = np.full(d.config.lease_capacity, 2**63 - 1, np.int64)
    expiry[0] = d.lease_expiry(1)
    snap["lease_expiry"] = expiry
    for key in ("leases.now_ns", "leases.deadlines", "leases.skipped"):
        del snap[key]
    snap["leases.version"] = 4
    e = Driver.restore(snap)
    assert e.stream_state(7) == d.stream_state(7)
    assert e.lease_expiry(1) == d.lease_expiry(1) == 1 + d.config.lease_expiry_ns
