"""Hostile driver and table snapshots (issue 9 items 1, 2, 12, 13): every crafted snapshot is a
SnapshotError or a consistent driver, never a crash, never an allocation the file does not pay
for, never a shared-memory segment the caller did not ask for."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import FREE_SLOT, Driver, DriverConfig, DriverState, Role, State, StreamTable
from streamhsm.snapshot import SnapshotError, load_snapshot, save_snapshot

SEC = 1_000_000_000


def busy() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), allow_dynamic_streams=True,
                            dynamic_stream_id_range=(100, 103), stream_capacity=6,
                            lease_capacity=6, outbox_capacity=4))
    d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(1, Role.CONSUMER, 11, 0)
    d.attach(100, Role.PRODUCER, 12, 0, create=True)
    d.attach(101, Role.CONSUMER, 13, 0, create=True)
    d.detach(4, 1, client_id=13)  # stream 101 idle -> Closed, waiting for recycling
    return d


BASE = busy().snapshot()


def fresh() -> dict[str, Any]:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in BASE.items()}


def exercise(d: Driver) -> None:
    """A restored driver must keep working and stay consistent."""
    now = d.now_ns
    d.attach(2, Role.CONSUMER, 99, now)
    d.attach(102, Role.PRODUCER, 98, now, create=True)
    d.bump_epoch(1)
    d.poll(now + 1)
    d.drain_announces()
    d.drain_revoked()
    d.request_shutdown(now + 2)
    d.poll(now + 10 * SEC)
    assert d.state is DriverState.STOPPED and d.streams.count(State.LIVE) == 0
    assert len(d.streams) == int((d.streams.states != FREE_SLOT).sum())


def test_round_trip_baseline() -> None:
    exercise(Driver.restore(fresh()))


# ---------------------------------------------------------------------- item 1: crafted columns
def _extremes(arr: np.ndarray) -> list[tuple[str, np.ndarray]]:
    info = np.iinfo(arr.dtype) if arr.dtype.kind in "iu" else None
    out = []
    if info is not None and arr.size:
        for name, value in (("min", info.min), ("max", info.max),
                            ("minus1", -1 if info.min < 0 else 0)):
            a = arr.copy()
            a[:] = value
            out.append((name, a))
            b = arr.copy()
            b[-1] = value
            out.append((name + "-last", b))
    out.append(("longer", np.concatenate([arr, arr[:1]])))
    out.append(("shorter", arr[:-1].copy()))
    out.append(("empty", arr[:0].copy()))
    out.append(("float", arr.astype(np.float64)))
    return out


ARRAY_CASES = [(key, name, value) for key, arr in BASE.items() if isinstance(arr, np.ndarray)
               for name, value in _extremes(arr)]


@pytest.mark.parametrize(("key", "name", "value"), ARRAY_CASES,
                         ids=[f"{k}:{n}" for k, n, _ in ARRAY_CASES])
def test_every_array_field_at_its_extremes(key: str, name: str, value: np.ndarray) -> None:
    restore_or_refuse(key, value)


def restore_or_refuse(key: str, value: object) -> None:
    """A snapshot with ``key`` replaced is refused with SnapshotError or restores a driver that
    keeps working."""
    snap = fresh()
    snap[key] = value
    try:
        d = Driver.restore(snap)
    except SnapshotError:
        return
    exercise(d)


SCALAR_VALUES: list[object] = [-1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63), "x", None, 1.5]
SCALAR_CASES = [(key, v) for key, value in BASE.items() if not isinstance(value, np.ndarray)
                for v in SCALAR_VALUES]


@pytest.mark.parametrize(("key", "value"), SCALAR_CASES,
                         ids=[f"{k}={v!r}" for k, v in SCALAR_CASES])
def test_every_scalar_field_at_its_extremes(key: str, value: object) -> None:
    restore_or_refuse(key, value)


@pytest.mark.parametrize(("mutate", "match"), [
    # the reproductions from the review: these wrote out of bounds in C
    (lambda s: s.update(due_slots=np.array([6], np.int32)), "due_slots holds a slot out of range"),
    (lambda s: s.update(due_slots=np.arange(7, dtype=np.int32) % 6),
     "'due_slots' must be an int32 array of at most 6 slots"),
    (lambda s: s["stream_id"].__setitem__(2, 2**40), "stream slot 2 has a stream id out of range"),
    (lambda s: s["stream_id"].__setitem__(2, -3), "stream slot 2 has a stream id out of range"),
    (lambda s: s["stream_id"].__setitem__(2, 50), "dynamic range"),
    (lambda s: s["dyn_slot"].__setitem__(3, 0), "dynamic id map entry 3"),
    (lambda s: s["lease_stream"].__setitem__(0, 5), "lease belongs to a stream slot"),
    (lambda s: s["producer"].__setitem__(0, 0), "producer of stream slot 0"),
    (lambda s: s["consumers"].__setitem__(0, 7), "consumer count of stream slot 0"),
    (lambda s: s["lease_id"].__setitem__(0, 2**62), "lease id is not between 1 and last_lease_id"),
    (lambda s: s.update(closed_dynamic=0), "closed_dynamic 0 does not match"),
    (lambda s: s["epoch"].__setitem__(0, 2**63 - 1), "epoch at stream slot 0 is at its maximum"),
    (lambda s: s.update(shutdown_deadline=5),
     "running driver's snapshot must have no shutdown deadline"),
])
def test_crafted_cross_references_are_refused(mutate: Any, match: str) -> None:
    snap = fresh()
    mutate(snap)
    with pytest.raises(SnapshotError, match=match):
        Driver.restore(snap)


def test_crafted_file_from_the_review_is_refused(tmp_path: Path) -> None:
    snap = fresh()
    snap["due_slots"] = np.array([1 << 20], np.int32)
    save_snapshot(snap, tmp_path / "evil.npz")
    assert (tmp_path / "evil.npz").stat().st_size < 64 * 1024
    with pytest.raises(SnapshotError, match="due_slots holds a slot out of range"):
        Driver.load(tmp_path / "evil.npz")


# ---------------------------------------------------------------------- item 2: allocate later
def _peak(fn: Any) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(SnapshotError):
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_table_snapshot_claiming_a_huge_capacity_allocates_nothing(tmp_path: Path) -> None:
    snap = StreamTable(8).snapshot()
    snap["capacity"] = 2**27
    save_snapshot(snap, tmp_path / "big.npz")
    assert _peak(lambda: StreamTable.load(tmp_path / "big.npz")) < 4 * 2**20
    snap["capacity"] = 2**31 - 1
    save_snapshot(snap, tmp_path / "huge.npz")
    assert _peak(lambda: StreamTable.load(tmp_path / "huge.npz")) < 4 * 2**20


def test_driver_snapshot_claiming_huge_capacities_allocates_nothing() -> None:
    snap = fresh()
    cfg = json.loads(snap["config"])
    cfg.update(stream_capacity=2**31 - 1, lease_capacity=2**31 - 1, outbox_capacity=2**31 - 1)
    snap["config"] = json.dumps(cfg)
    assert _peak(lambda: Driver.restore(snap)) < 4 * 2**20


def _npy(arr: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """``arr`` as .npy bytes, optionally with a header that lies about its shape."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False,
              "shape": arr.shape if shape is None else shape}
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(arr.tobytes())
    return buf.getvalue()


def test_npy_header_claiming_a_huge_array_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("kind.npy", _npy(np.array("MachineTable")))
        zf.writestr("version.npy", _npy(np.array(2)))
        zf.writestr("states.npy", _npy(np.zeros(4, np.uint8), shape=(2**40,)))
    assert path.stat().st_size < 1024
    assert _peak(lambda: load_snapshot(path)) < 2**20
    with pytest.raises(SnapshotError, match="declares shape \\(1099511627776,\\)"):
        load_snapshot(path)


def test_compressed_members_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "zipped.npz"
    np.savez_compressed(path, kind=np.array("MachineTable"), version=np.array(2),
                        states=np.zeros(10**6, np.uint8))
    with pytest.raises(SnapshotError, match="is compressed"):
        load_snapshot(path)


def test_kind_is_checked_before_the_configuration() -> None:
    with pytest.raises(SnapshotError,
                       match="this is a 'MachineTable' snapshot; it cannot be restored "
                                            "into a 'Driver'"):
        Driver.restore(StreamTable(4).snapshot())
    with pytest.raises(SnapshotError,
                       match="this is a 'Driver' snapshot; it cannot be restored into "
                                            "a 'MachineTable'"):
        StreamTable(4).restore(fresh())


def test_deeply_nested_configuration_is_a_snapshot_error() -> None:
    snap = fresh()
    snap["config"] = "[" * 60000 + "]" * 60000
    with pytest.raises(SnapshotError, match="configuration is"):
        Driver.restore(snap)
    snap["config"] = "[" * 5000 + "]" * 5000
    with pytest.raises(SnapshotError, match="configuration"):
        Driver.restore(snap)


def test_a_snapshot_never_creates_a_shared_segment(tmp_path: Path) -> None:
    name = f"streamhsm-test-{os.getpid()}-restore"
    snap = fresh()
    cfg = json.loads(snap["config"])
    cfg["shm_name"] = name
    snap["config"] = json.dumps(cfg)
    d = Driver.restore(snap)
    assert not os.path.exists(f"/dev/shm/{name}")
    d.close()
    # the caller chooses: the restored table goes into shared memory
    save_snapshot(fresh(), tmp_path / "d.npz")
    with Driver.load(tmp_path / "d.npz", shm_name=name) as e:
        assert os.path.exists(f"/dev/shm/{name}")
        assert e.stream_state(100) is State.ACTIVE
    assert not os.path.exists(f"/dev/shm/{name}")


# ---------------------------------------------------------------------- item 12
def test_restored_draining_driver_with_deadline_zero_stops() -> None:
    d = Driver(DriverConfig(static_stream_ids=(1,), shutdown_timeout_ns=0))
    d.attach(1, Role.CONSUMER, 5, 0)
    assert d.request_shutdown(0)
    snap = d.snapshot()
    assert snap["shutdown_deadline"] == 0
    e = Driver.restore(snap)
    assert e.state is DriverState.DRAINING
    e.poll(0)
    assert e.state is DriverState.STOPPED


# ---------------------------------------------------------------------- item 13
def test_driver_core_raises_kernel_errors_in_a_debug_build() -> None:
    core = busy()._core
    if core.debug_checks:  # the debug CI job (STREAMHSM_CYTHON_DEBUG=1) runs this branch
        with pytest.raises(IndexError, match="kernel index out of range in the driver core"):
            core._debug_step_stream(10**9, 0)
        with pytest.raises(IndexError, match="kernel index out of range in the driver core"):
            core._debug_step_stream(0, 10**6)
        core._debug_step_stream(0, 5)  # a good step still works (EpochBumped: handled)
    else:  # a release build refuses to run the unchecked hook at all
        with pytest.raises(RuntimeError, match="needs a debug build"):
            core._debug_step_stream(0, 5)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("kind.txt", "hi")
    with pytest.raises(SnapshotError, match="x.npz.*is not a readable snapshot.*not a .npy array"):
        Driver.load(path)


@pytest.mark.parametrize("key", ["fingerprint", "machine", "kind", "version", "streams.capacity",
                                 "streams.fingerprint", "leases.unhandled_total"])
def test_scalar_header_fields_stored_as_arrays_are_refused(tmp_path: Path, key: str) -> None:
    snap = fresh()
    snap[key] = np.array([snap[key]] * 2)
    with pytest.raises(SnapshotError):
        Driver.restore(snap)
    table = StreamTable(4).snapshot()
    if key in table:
        table[key] = np.array([table[key]] * 2)
        save_snapshot(table, tmp_path / "t.npz")
        with pytest.raises(SnapshotError):
            StreamTable.load(tmp_path / "t.npz")
