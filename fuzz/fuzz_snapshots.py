"""Harness 1: ``StreamTable.load``, ``Driver.load`` and ``MachineTable.restore`` of a machine with
flags (issue 13) on mutated snapshot files; each file's snapshot also restored through a hostile
mapping (``common.hostile``: lying ``get``/``__getitem__``, strs and arrays, issue 19), and, now
and then, ``MachineTable.load``/``StreamTable.load`` of paths that are not regular files.

The input is the file itself (an ``.npz``). Seeds are real snapshots of small tables and drivers,
generated at fuzz time. Besides libFuzzer's byte mutations (which hit the zip container and,
since ``np.savez`` does not compress, the array payloads), a structure-aware mutator decodes the
``.npz``, changes one field (values set to their dtype's extremes, another dtype, shape or length,
a dropped or swapped field, a mangled configuration) and re-encodes it.

The flagged-table seeds (1 to 4 flags, capacities across the packed flag bytes' boundaries,
flags set on some slots, a version-2 file without flags) are restored into a populated table of
the same machine: a refused restore must leave it unchanged (flags included); an accepted one
must give a table whose flags are the file's (below ``2**n_flags``, 0 on free slots) and whose
big batches (>= 2048 events, which read the packed copy of the flags) agree with the same events
run in small batches (which read the flag bytes).

Accepted outcomes: the load returns a table/driver that passes the invariant checks and keeps
working (a few operations, a snapshot round trip), or raises ``SnapshotError``. Anything else
(another exception, a crash, a hang, gigabytes allocated) is a finding.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import random
import resource
from collections.abc import Callable
from typing import Any

import numpy as np

from streamhsm import (
    FREE_SLOT,
    Driver,
    DriverConfig,
    DriverState,
    MachineTable,
    StreamHsmError,
    StreamTable,
)
from streamhsm.snapshot import SnapshotError, load_snapshot

from common import (
    Finding,
    LyingArray,
    byte_mutate,
    flagged_machine,
    hostile,
    libfuzzer_bytes,
    scratch_dir,
    table_invariants,
    table_state,
)

NAME = "snapshots"
MAX_LEN = 1 << 16


def _client_kw(method: Any, client: int) -> dict[str, int]:
    """``client_id=`` for keepalive/detach once they take it (issue 9 item 15)."""
    return {"client_id": client} if "client_id" in inspect.signature(method).parameters else {}


def _table_seeds() -> list[dict[str, Any]]:
    out = []
    for cap, policy in ((1, False), (4, True), (8, False)):
        t = StreamTable(cap, drain_on_producer_loss=policy)
        for i in range(cap - cap // 4):
            s = t.open()
            for e in range(i % 5):
                t.dispatch(s, e)
        if cap > 2:
            t.release(1)
        out.append(t.snapshot())
    return out


def _driver_seeds() -> list[dict[str, Any]]:
    out = []
    cfg = DriverConfig(static_stream_ids=(1, 2, 3), allow_dynamic_streams=True,
                       dynamic_stream_id_range=(10, 13), stream_capacity=6, lease_capacity=5,
                       outbox_capacity=3, lease_keepalive_interval_ns=10,
                       lease_expiry_grace_intervals=2, shutdown_timeout_ns=100)
    d = Driver(cfg)
    r1 = d.attach(1, "producer", 7, 1)
    r2 = d.attach(2, "consumer", 8, 2)
    d.attach(11, "producer", 9, 3, create=True)
    d.keepalive(r1.lease_id, 4, **_client_kw(d.keepalive, 7))
    d.detach(r2.lease_id, 5, **_client_kw(d.detach, 8))
    d.bump_epoch(3)
    out.append(d.snapshot())                      # running, leases, a dynamic stream
    d.poll(40)                                    # the rest expire: revoke notices pending
    d.attach(12, "consumer", 10, 41, create=True)
    d.request_shutdown(42)
    out.append(d.snapshot())                      # draining, with a deadline
    d.poll(1000)
    out.append(d.snapshot())                      # stopped
    small = Driver(DriverConfig(stream_capacity=1, lease_capacity=1, drain_on_producer_loss=True,
                                static_stream_ids=(0,)))
    small.attach(0, 1, 2**63 - 1, 0)
    out.append(small.snapshot())                  # drain policy, extreme client id
    return out


def _flagged_seeds() -> list[dict[str, Any]]:
    """Snapshots of tables of the flagged machines (common.flagged_machine): flags set on some
    slots (the last one included), a released slot, transitions and unhandled events counted."""
    out = []
    for k, cap in ((1, 9), (2, 5), (3, 13), (4, 17), (2, 1)):
        t = MachineTable(flagged_machine(k), cap)
        for _ in range(cap):
            t.open()
        for s in range(0, cap, 2):
            t.set_flag(s, f"f{s % k}", True)
        t.set_flag(cap - 1, f"f{k - 1}", True)
        for s in range(cap):
            for e in range(s % 4):
                t.dispatch(s, e)
        if cap > 2:
            t.release(1)
        out.append(t.snapshot())
    old = dict(out[1], version=2)
    del old["flags"]
    old["states"] = old["states"].copy()
    out.append(old)  # written before flags existed: restores with every flag clear
    return out


def _encode(snap: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: (v if isinstance(v, np.ndarray) else np.asarray(v))
                     for k, v in snap.items()})
    return buf.getvalue()


def seeds() -> list[bytes]:
    """Real snapshot files of small tables and drivers."""
    return [_encode(s) for s in _table_seeds() + _driver_seeds() + _flagged_seeds()]


# ---------------------------------------------------------------------- the target
def _check_table(t: StreamTable) -> None:
    table_invariants(t, "loaded table")
    snap = t.snapshot()
    again = StreamTable(t.capacity, drain_on_producer_loss=t.drain_on_producer_loss)
    again.restore(snap)  # a loaded table's own snapshot must restore
    if len(t):
        slot = int(np.flatnonzero(np.asarray(t.states) != 255)[0])
        t.dispatch(slot, 0)
        t.dispatch_many(np.array([slot], np.int64), np.array([9], np.uint8))
    t.broadcast(5)
    if len(t) < t.capacity:
        t.release(t.open())
    table_invariants(t, "loaded table after use")


def _check_driver(d: Driver, file_deadline: Any) -> None:
    table_invariants(d.streams, "loaded driver streams")
    d.stats()
    snap = d.snapshot()
    cfg = d.config
    states, dynamic, sids = snap["streams.states"], snap["dynamic"], snap["stream_id"]
    for slot in np.flatnonzero(states != 255).tolist():
        sid = int(sids[slot])
        rng = cfg.dynamic_stream_id_range
        if dynamic[slot] and (rng is None or not rng[0] <= sid <= rng[1]):
            raise Finding(f"loaded dynamic stream slot {slot} has id {sid} outside the "
                          f"dynamic range {rng}")
        if not dynamic[slot] and sid not in cfg.static_stream_ids:
            raise Finding(f"loaded static stream slot {slot} has id {sid}, not a static id")
    try:
        Driver.restore(snap).close()  # a loaded driver's own snapshot must restore
    except SnapshotError as exc:
        raise Finding(f"a loaded driver's own snapshot does not restore: {exc}") from exc
    now = int(snap["now_ns"])
    d.drain_announces()
    d.drain_revoked()
    _call(d.bump_epoch, 1)
    _call(d.stream_info, 11)
    _call(d.attach, 12, "producer", 2**40, now, create=True)
    _call(d.poll, now)  # the loaded clock's own time is always valid
    if now < _MAX_NS:
        _call(d.poll, now + 1)
    # the deadline the file asked for (the driver may hold its own "never" for 0)
    deadline = file_deadline if type(file_deadline) is int else int(snap["shutdown_deadline"])
    if d.state is DriverState.DRAINING and 0 <= deadline <= _MAX_NS:
        if _call(d.poll, max(now + 1, deadline) if now < _MAX_NS else now) \
                and d.state is not DriverState.STOPPED:
            raise Finding(f"a loaded draining driver (deadline {deadline}, now {now}) does not "
                          f"stop at its deadline")
    table_invariants(d.streams, "loaded driver streams after use")


_MAX_NS = 2**63 - 1


def _flagged_target(snap: Any) -> MachineTable:
    """A populated table of the flagged machine the snapshot names (its capacity if small)."""
    name = snap.get("machine") if isinstance(snap, dict) else None
    k = int(name[-1]) if isinstance(name, str) and name[:-1] == "fuzzflags" and name[-1:] in \
        ("1", "2", "3", "4") else 2
    cap = snap.get("capacity") if isinstance(snap, dict) else None
    t = MachineTable(flagged_machine(k), cap if type(cap) is int and 1 <= cap <= 256 else 8)
    for _ in range((t.capacity + 1) // 2):
        t.open()
    t.set_flag(0, "f0", True)
    t.set_flag(len(t) - 1, f"f{k - 1}", True)
    return t


def _restore_flagged(path: str) -> MachineTable:
    """``MachineTable.restore`` of the file into a populated flagged table; a refused restore
    must change nothing."""
    snap = load_snapshot(path)
    t = _flagged_target(snap)
    before = table_state(t)
    try:
        t.restore(snap)
    except SnapshotError:
        if table_state(t) != before:
            raise Finding("a refused MachineTable.restore changed the table") from None
        raise
    flags = snap.get("flags")
    if isinstance(flags, np.ndarray) and not np.array_equal(np.asarray(t.flags), flags):
        raise Finding("restore accepted the snapshot's flags but the table holds others")
    if not isinstance(flags, np.ndarray) and np.asarray(t.flags).any():
        raise Finding("a snapshot without flags restored flags")
    return t


def _check_flagged(t: MachineTable) -> None:
    table_invariants(t, "restored flagged table")
    snap = t.snapshot()
    again = MachineTable(t.machine, t.capacity)
    again.restore(snap)  # a restored table's own snapshot must restore
    if table_state(again) != table_state(t):
        raise Finding("a restored flagged table's own snapshot restores to another table")
    open_slots = np.flatnonzero(np.asarray(t.states) != FREE_SLOT)
    if open_slots.size:
        rng = np.random.default_rng(len(open_slots))
        slots = rng.choice(open_slots, 2048 + 300).astype(np.int64)
        events = rng.integers(0, t.machine.n_events, slots.size).astype(np.uint8)
        got = t.dispatch_many(slots, events)  # the chunk kernels: the packed flags
        want = sum(again.dispatch_many(slots[i:i + 1000], events[i:i + 1000])
                   for i in range(0, slots.size, 1000))  # the per-event kernel: the flag bytes
        if got != want or table_state(t) != table_state(again):
            raise Finding("after restore, a big batch disagrees with small batches (the packed "
                          "flag copy differs from table.flags)")
        t.set_flag_many(open_slots, "f0", False)
        t.set_flag(int(open_slots[-1]), "f0", True)
        t.broadcast(0)
        t.release(int(open_slots[0]))
        t.open()
    table_invariants(t, "restored flagged table after use")


def _call(fn: Any, *args: Any, **kwargs: Any) -> bool:
    """Call a driver operation on a loaded driver; False if it raised a documented exception
    (``TypeError``/``ValueError``/streamhsm errors: a time the loaded clock cannot reach)."""
    try:
        fn(*args, **kwargs)
    except (TypeError, ValueError, StreamHsmError):
        return False
    return True
_MAX_GROWTH_MB = 256


def _file_shm_name(path: str) -> str | None:
    """The ``shm_name`` the file's driver configuration asks for, if any."""
    try:
        cfg = json.loads(str(load_snapshot(path).get("config")))
        name = cfg.get("shm_name") if isinstance(cfg, dict) else None
    except (SnapshotError, ValueError, RecursionError):
        return None
    return name if isinstance(name, str) and name and "/" not in name and "\x00" not in name \
        else None


def _load(loader: Any, path: str, driver: bool) -> Any:
    """``loader(path)``; a SnapshotError gives None. Checks that a small file did not cost
    hundreds of MB (peak RSS) and (``driver``) did not create the shared-memory segment its
    configuration names (other processes' segments come and go: only that name is checked)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shm = _file_shm_name(path) if driver else None
    existed = shm is not None and os.path.lexists(os.path.join("/dev/shm", shm))
    created: list[str] = []
    try:
        if shm is not None and not existed:
            # a segment created and removed again inside the call still counts
            with _watch_shm(shm, created):
                return loader(path)
        return loader(path)
    except SnapshotError:
        return None
    finally:
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) // 1024
        if grown > _MAX_GROWTH_MB:
            raise Finding(f"{loader.__qualname__} of a {os.path.getsize(path)}-byte file raised "
                          f"the peak RSS by {grown} MB")
        if created:
            raise Finding(f"Driver.load created shared memory {shm!r} because the file said so")


class _watch_shm:
    """Context manager: records in ``created`` whether segment ``name`` exists at exit or was
    created through ``SharedStreamTable`` during the block."""

    def __init__(self, name: str, created: list[str]) -> None:
        self.name, self.created = name, created

    def __enter__(self) -> None:
        from streamhsm import shm

        self._orig = shm.SharedStreamTable.__init__
        orig, name, created = self._orig, self.name, self.created

        def spy(table: Any, seg: str, *args: Any, **kwargs: Any) -> None:
            if seg == name:
                created.append(seg)
            orig(table, seg, *args, **kwargs)

        shm.SharedStreamTable.__init__ = spy  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        from streamhsm import shm

        shm.SharedStreamTable.__init__ = self._orig  # type: ignore[method-assign]
        if os.path.lexists(os.path.join("/dev/shm", self.name)):
            self.created.append(self.name)


def _restored(table: StreamTable, snap: Any) -> bool:
    """``table.restore(snap)``: True if accepted, False if refused with SnapshotError."""
    try:
        table.restore(snap)
    except SnapshotError:
        return False
    return True


def _hostile_restore(path: str) -> None:
    """Issue 19 class 1: the file's snapshot restored through a mapping whose ``get`` and
    ``__getitem__`` rewrite its arrays, strs whose comparisons lie and arrays whose ``shape`` and
    ``reshape`` lie (``reshape`` touching the table: a call under the table lock would deadlock)
    gives exactly what the plain snapshot gives, accepted or refused."""
    try:
        snap = load_snapshot(path)
    except SnapshotError:
        return
    cap = snap.get("capacity")
    cap = cap if type(cap) is int and 0 < cap <= 4096 else 8
    for policy in (False, True):
        honest, lying = StreamTable(cap, policy), StreamTable(cap, policy)
        ok = _restored(honest, snap)
        LyingArray.on_call = lying.open
        try:
            got = _restored(lying, hostile(snap))
        finally:
            LyingArray.on_call = None
        if got != ok or table_state(honest) != table_state(lying):
            raise Finding(f"a hostile mapping restored differently (plain: {ok}, hostile: {got})")


_NOT_REGULAR = ("/dev/zero", "/dev/null", "/", "fifo")


def _load_not_regular(which: int) -> None:
    """``MachineTable.load`` and ``StreamTable.load`` of a path that is not a regular file: a
    device (``/dev/zero`` would read until memory runs out), a directory, a FIFO (a blocking
    open would hang) are refused with SnapshotError, never read."""
    path = _NOT_REGULAR[which % len(_NOT_REGULAR)]
    if path == "fifo":
        path = os.path.join(scratch_dir(), f"fifo-{os.getpid()}")
        if not os.path.exists(path):
            os.mkfifo(path)
    for load in (lambda: MachineTable.load(path, StreamTable(1).machine),
                 lambda: StreamTable.load(path)):
        try:
            load()
        except SnapshotError:
            continue
        raise Finding(f"a load of {path!r} (not a regular file) returned")


def test_one_input(data: bytes) -> None:
    if data and data[-1] % 16 == 0:
        _load_not_regular(data[0])
    path = os.path.join(scratch_dir(), f"in-{os.getpid()}.npz")
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        table = _load(StreamTable.load, path, False)
        if table is not None:
            _check_table(table)
        _hostile_restore(path)
        flagged = _load(_restore_flagged, path, False)
        if flagged is not None:
            _check_flagged(flagged)
        driver = _load(Driver.load, path, True)
        if driver is not None:
            try:
                _check_driver(driver, load_snapshot(path).get("shutdown_deadline"))
            finally:
                driver.close()
    finally:
        os.unlink(path)


# ---------------------------------------------------------------------- structure-aware mutator
_DTYPES = ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", ">i8", ">i4", "f8", "f4", "?", "c16",
           "U4", "S4", "V8", "M8[ns]")


def _extremes(dtype: np.dtype[Any], rng: random.Random, capacity: int) -> Any:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        pool = [info.min, info.max, 0, 1, info.max - 1, capacity, capacity - 1, capacity + 1,
                255, 254, 2**31 - 1, -3, 2**40, -1]
        v = rng.choice(pool)
        return min(max(v, info.min), info.max)
    if dtype.kind == "b":
        return rng.random() < 0.5
    if dtype.kind == "f":
        return rng.choice([np.nan, np.inf, -np.inf, -0.0, 1e300])
    return None


def _mutate_array(arr: np.ndarray, rng: random.Random, capacity: int) -> np.ndarray:
    op = rng.randrange(8)
    if arr.ndim == 0:
        return np.asarray(_mutate_scalar(arr.item(), rng, capacity))
    if op <= 2 and arr.size and arr.dtype.kind in "iubf":
        arr = arr.copy()
        n = rng.choice([1, 1, 1, 2, arr.size])
        for _ in range(n):
            arr.flat[rng.randrange(arr.size)] = _extremes(arr.dtype, rng, capacity)
        return arr
    if op == 3:  # another dtype
        try:
            return arr.astype(rng.choice(_DTYPES))
        except (ValueError, TypeError, OverflowError):
            return arr[:0]
    if op == 4:  # another length, sometimes with extreme values in it
        n = rng.choice([0, 1, max(0, arr.shape[0] - 1), arr.shape[0] + 1, 2 * arr.shape[0] + 3])
        arr = np.resize(arr, (n,) + arr.shape[1:]) if n else arr[:0]
        if arr.size and arr.dtype.kind in "iu" and rng.random() < 0.5:
            arr.flat[rng.randrange(arr.size)] = _extremes(arr.dtype, rng, capacity)
        return arr
    if op == 5:  # another shape
        if arr.size % 2 == 0 and arr.size:
            return arr.reshape(2, -1)
        return arr.reshape((1,) + arr.shape)
    if op == 6:  # a scalar instead of the array
        return np.asarray(_extremes(arr.dtype, rng, capacity) if arr.dtype.kind in "iu" else 0)
    return arr[::-1].copy() if arr.ndim == 1 else arr


def _mutate_config(text: str, rng: random.Random) -> str:
    try:
        cfg = json.loads(text)
    except ValueError:
        return text[::-1]
    op = rng.randrange(6)
    if op == 0:
        return "[" * rng.choice([10, 5000, 100000]) + "]" * 3  # deep nesting
    if op == 1:
        return rng.choice(["null", "[]", "1", '"x"', "{}", "{", "NaN",
                           '{"stream_capacity": 1e400}'])
    if not isinstance(cfg, dict) or not cfg:
        return text
    key = rng.choice(sorted(cfg))
    if op == 2:
        cfg.pop(key)
    elif op == 3:
        cfg[key] = rng.choice([2**31 - 1, 2**31, 2**63, -1, 0, None, "x", [1, 2],
                               [2**40, 2**40 + 3], True, 1.5, {"a": 1}, [[1]], [0, 2**24 - 1]])
    elif op == 4:
        cfg["shm_name"] = rng.choice(["fuzz", "a\x00b", "", "../x"])
    else:
        cfg["unexpected"] = 1
    return json.dumps(cfg)


def _mutate_scalar(value: Any, rng: random.Random, capacity: int) -> Any:
    if isinstance(value, str):
        if value.startswith("{") or value.startswith("["):
            return _mutate_config(value, rng)
        return rng.choice(["", value + "x", "Driver", "MachineTable", value[:-1], "\x00"])
    return rng.choice([0, -1, 1, 2, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, -2**63, 2**64 - 1,
                       2**27, capacity + 1, 255, 1.5, True, "1", b"x"])


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception:  # noqa: BLE001 - anything unreadable gets byte mutations instead
        return None


def structured_mutation(data: bytes, rng: random.Random) -> bytes | None:
    """Decode the .npz, change one to three fields, re-encode; None if ``data`` is not an npz."""
    try:
        return _structured_mutation(data, rng)
    except Exception:  # noqa: BLE001 - a mutator must never fail; fall back to bytes
        return None


def _structured_mutation(data: bytes, rng: random.Random) -> bytes | None:
    snap = _decode(data)
    if not snap:
        return None
    cap_field = snap.get("capacity", snap.get("streams.capacity", np.asarray(4)))
    try:
        capacity = int(cap_field) if np.ndim(cap_field) == 0 else 4
    except (TypeError, ValueError, OverflowError):
        capacity = 4
    if "flags" in snap and rng.random() < 0.3:  # flag-specific: bits above, free slots, v2
        flags = np.array(snap["flags"], copy=True)
        op = rng.randrange(4)
        if op <= 1 and flags.ndim == 1 and flags.size and flags.dtype == np.uint8:
            flags[rng.randrange(flags.size)] = rng.choice([1, 2, 3, 4, 8, 15, 16, 17, 128, 255])
            snap["flags"] = flags
        elif op == 2:
            del snap["flags"]
            snap["version"] = np.asarray(rng.choice([2, 3]))
        else:
            snap["version"] = np.asarray(2)
        if rng.random() < 0.7:
            return _reencode(snap)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        keys = sorted(snap)
        key = rng.choice(keys)
        op = rng.randrange(12)
        if op == 0:
            del snap[key]
        elif op == 1:  # another field's array under this name
            snap[key] = snap[rng.choice(keys)]
        else:
            snap[key] = _mutate_array(np.asarray(snap[key]), rng, capacity)
        if not snap:
            break
    return _reencode(snap)


def _reencode(snap: dict[str, Any]) -> bytes | None:
    try:
        buf = io.BytesIO()
        np.savez(buf, **snap)
        return buf.getvalue()
    except (ValueError, TypeError):
        return None


def mutate(data: bytes, max_size: int, rng: random.Random,
           byte_mutator: Callable[[bytes, int, random.Random], bytes] = byte_mutate) -> bytes:
    """Structure-aware mutation 60% of the time, byte mutation otherwise."""
    if rng.random() < 0.6:
        out = structured_mutation(data, rng)
        if out is not None and len(out) <= max_size:
            return out
    return byte_mutator(data, max_size, rng)


def _variants(value: np.ndarray, capacity: int) -> list[tuple[str, Any]]:
    """Every field's extremes and resizings (the sweep of issue 9's "Done when")."""
    out: list[tuple[str, Any]] = [("dropped", None)]
    if value.ndim == 0:
        for v in (-1, -2**63, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**100, 1.5, "x",
                  True):
            out.append((f"= {v!r}", np.asarray(v) if not isinstance(v, int) or v < 2**64
                        else np.asarray(str(v))))
        out.append(("as a 2-element array", np.asarray([value.item()] * 2)))
        return out
    if value.dtype.kind in "iu" and value.size:
        info = np.iinfo(value.dtype)
        wanted = {int(info.min), int(info.max), -1 if info.min < 0 else 0, capacity, capacity + 1}
        for v in sorted(v for v in wanted if info.min <= v <= info.max):
            for where in (0, value.size - 1):
                arr = value.copy()
                arr[where] = v
                out.append((f"[{where}] = {v}", arr))
    elif value.dtype.kind == "b" and value.size:
        out.append(("all True", np.ones_like(value)))
    for n in (0, 1, value.size + 1, 2 * value.size + 5):
        if n != value.size:
            resized = np.resize(value, n) if value.size else np.zeros(n, value.dtype)
            out.append((f"length {n}", resized))
    for dt in ("i8", "u8", "f8", "u1"):
        if np.dtype(dt) != value.dtype:
            try:
                out.append((f"as {dt}", value.astype(dt)))
            except (TypeError, ValueError):
                pass
    return out


def sweep() -> list[tuple[str, bytes]]:
    """Each seed snapshot with one field set to each of its extremes or resized."""
    out = []
    for i, snap in enumerate(_table_seeds() + _driver_seeds() + _flagged_seeds()):
        cap = int(snap.get("capacity", snap.get("streams.capacity", 4)))
        for key in sorted(snap):
            for label, value in _variants(np.asarray(snap[key]), cap):
                mutated = dict(snap)
                if value is None:
                    del mutated[key]
                else:
                    mutated[key] = value
                out.append((f"seed {i} ({snap['kind']}): {key} {label}", _encode(mutated)))
    return out


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator hook (``fuzz/run.py``)."""
    return mutate(data, max_size, random.Random(seed), libfuzzer_bytes)
