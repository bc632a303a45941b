"""Snapshots as plain data: save to and load from ``.npz`` files without pickles.

A snapshot is a ``dict`` of numpy arrays and plain values that names its owner kind
(``"kind"``), its format version (``"version"``) and the machine fingerprint it belongs to, so
``restore`` can reject a snapshot of another kind, version or machine with a clear message.

Strings round-trip exactly. A str is stored as a 0-d numpy ``<U`` array, which every version
reads; numpy drops trailing NUL characters from such an array, so a str that ends in NUL (a
shutdown message ``"bye\\x00"``, say) is stored instead as a 1-D array of dtype
:data:`STR_DTYPE` (its UTF-32 code units, lone surrogates included) and read back as that str. An
older streamhsm reading such a file sees an array where a str belongs and refuses the snapshot
rather than losing the NULs.

Loading opens regular files only, never blocking, and reads no more than the file's size (see
:func:`load_snapshot`).
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import numpy as np

from ._files import create_regular, read_regular
from ._limits import MAX_CAPACITY
from ._owned import own
from .errors import SnapshotError
from .machine import FREE_SLOT

__all__ = ["SNAPSHOT_VERSION", "STR_DTYPE", "SUPPORTED_VERSIONS", "SnapshotError", "check_header",
           "check_kind", "check_leaf_codes", "check_table_snapshot", "current_fingerprint",
           "load_snapshot", "read_table_file", "rename_fingerprint", "save_snapshot",
           "table_snapshot"]

#: Format version written into every snapshot (3: tables carry their per-slot flags; 4: and
#: their history records; 5: and their clock and timer deadlines).
SNAPSHOT_VERSION = 5
#: Format versions ``restore`` accepts: version 2 is version 3 without flags (they restore as 0),
#: version 3 is version 4 without history records (they restore as none), version 4 is version
#: 5 without timers (they restore with no timer armed and the clock at 0).
SUPPORTED_VERSIONS = (2, 3, 4, 5)
#: How a str that ends in NUL is stored: a 1-D array of its UTF-32 code units (numpy's ``<U``
#: strings drop trailing NULs). Any other str is a 0-d ``<U`` array.
STR_DTYPE = np.dtype([("str", "<u4")])


def check_kind(snap: object, kind: str) -> dict[str, Any]:
    """Check that ``snap`` is a snapshot dict of ``kind`` in this format version; return it.

    The kind is checked first, so a snapshot of another kind gets a message naming both kinds.
    """
    if not isinstance(snap, dict):
        raise SnapshotError(f"a snapshot is a dict, got {type(snap).__name__}")
    got_kind = snap.get("kind")
    if not isinstance(got_kind, str) or got_kind != kind:
        what = (f"a {got_kind!r} snapshot" if isinstance(got_kind, str)
                else "not a streamhsm snapshot")
        raise SnapshotError(f"this is {what}; it cannot be restored into a {kind!r}")
    version = snap.get("version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise SnapshotError(
            f"snapshot format version {version!r} is not supported (this is {SNAPSHOT_VERSION}; "
            f"supported: {', '.join(map(str, SUPPORTED_VERSIONS))})")
    for key in ("fingerprint", "machine"):
        if not isinstance(snap.get(key), str):
            raise SnapshotError(f"snapshot field {key!r} must be a str, got "
                                f"{type(snap.get(key)).__name__}")
    return snap


_RENAMED: dict[str, str] = {}


def rename_fingerprint(old: str, new: str) -> None:
    """Accept snapshots that carry ``old``, the fingerprint an earlier streamhsm computed for the
    machine whose fingerprint is now ``new`` (the registry does this for its built-in machines)."""
    _RENAMED[old] = new


def current_fingerprint(fingerprint: object) -> object:
    """``fingerprint`` as this version computes it: an earlier version's fingerprint of a
    built-in machine (see :func:`rename_fingerprint`) is mapped; anything else is unchanged."""
    return _RENAMED.get(fingerprint, fingerprint) if type(fingerprint) is str else fingerprint


def check_header(snap: object, kind: str, fingerprint: str) -> dict[str, Any]:
    """Validate the header fields of ``snap`` (kind, version, machine fingerprint, an earlier
    version's fingerprint of a built-in machine mapped); return it."""
    snap = check_kind(snap, kind)
    if current_fingerprint(snap.get("fingerprint")) != fingerprint:
        raise SnapshotError(
            f"snapshot is of machine {snap.get('machine')!r} with fingerprint "
            f"{snap.get('fingerprint')!r}, not {fingerprint!r}")
    return snap


def array(snap: dict[str, Any], key: str, dtype: Any, length: int) -> np.ndarray:
    """``snap[key]`` as a 1-D array of ``dtype`` and ``length``, or SnapshotError."""
    arr = snap.get(key)
    if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(dtype) or arr.shape != (length,):
        got = (f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__)
        raise SnapshotError(f"snapshot field {key!r} must be {np.dtype(dtype)} of shape "
                            f"({length},), got {got}")
    return arr


#: Largest count a snapshot may hold (unhandled total, per-slot unhandled counts, transition
#: counts): the table's counters saturate there (docs/design.md, "Counters and limits"), so every
#: snapshot a table takes restores.
MAX_RESTORED_COUNT = 2**63 - 1


def table_snapshot(machine: Any, states: np.ndarray, flags: np.ndarray, unhandled: np.ndarray,
                   unhandled_total: int, free: np.ndarray, transitions: np.ndarray,
                   history: np.ndarray | None = None,
                   timers: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """A :class:`~streamhsm.MachineTable` snapshot (what its ``snapshot()`` returns): the kind,
    format version and machine fingerprint, with copies of the per-slot arrays, the free-slot
    stack (in stack order: ``open()`` reuses the last), the transition counts (flat), the
    unhandled total, the history records (flat, owner by owner; empty without history) and,
    from the table's timer columns (``timers``, see ``table_layout``), the clock ``now_ns``,
    the ``deadlines`` (flat, timer by timer) and the ``skipped`` periods per timer (0 and empty
    without timers)."""
    records = np.zeros(0, np.uint8) if history is None else history.ravel().copy()
    clock = {"now_ns": 0, "deadlines": np.zeros(0, np.int64), "skipped": np.zeros(0, np.int64)}
    if timers is not None:
        clock = {"now_ns": int(timers["clock"][0]), "deadlines": timers["deadlines"].ravel().copy(),
                 "skipped": timers["skipped"].copy()}
    return {
        "history": records, **clock,
        "kind": "MachineTable", "version": SNAPSHOT_VERSION, "machine": machine.name,
        "fingerprint": machine.fingerprint, "capacity": int(states.shape[0]),
        "states": states.copy(), "flags": flags.copy(), "unhandled": unhandled.copy(),
        "unhandled_total": int(unhandled_total), "free": free.copy(),
        "transitions": transitions.ravel().copy(),
    }


def check_leaf_codes(states: np.ndarray, machine: Any, what: str = "") -> None:
    """The one check that every code in ``states`` (a uint8 array of a snapshot) is a leaf state
    of ``machine`` (a :class:`~streamhsm.CompiledMachine`) or the free code; ``what`` names the
    table in the message (``"lease "``: "snapshot lease state ...").

    Raises:
        SnapshotError: naming the first bad code and its slot.
    """
    valid = np.zeros(FREE_SLOT + 1, dtype=bool)
    valid[np.flatnonzero(machine.is_leaf)] = True
    valid[0] = False  # Root is never a leaf state of an instance
    valid[FREE_SLOT] = True
    bad = np.flatnonzero(~valid[states])
    if bad.size:
        raise SnapshotError(
            f"snapshot {what}state {int(states[bad[0]])} at slot {int(bad[0])} is not a leaf "
            f"state of machine {machine.name!r}")


def check_table_snapshot(snap: object, machine: Any, capacity: int) -> dict[str, Any]:
    """Validate a :meth:`~streamhsm.MachineTable.snapshot` for a table of ``machine`` (a
    :class:`~streamhsm.CompiledMachine`) and ``capacity`` slots; return what ``restore``
    writes: ``states``, ``flags``, ``unhandled``, ``unhandled_total``, ``transitions``
    (``(n_states, n_events)``), ``counts`` (occupancy per state code, rebuilt from the states)
    and ``free`` (the free-slot stack).

    A version-2 snapshot (written before flags existed) has no flags: they come back as 0.
    Every field is copied out of ``snap`` first (``streamhsm._owned.own``): what is
    returned is owned, exact-type data that no method of the caller's objects can change.

    Raises:
        SnapshotError: another kind, version, machine or capacity; wrong dtypes or shapes; a
            state code that is not a leaf of the machine; a flag bitmask beyond the machine's
            flags or set on a free slot; an unhandled total below the sum; a negative transition
            count; a free list that does not match the free slots.
    """
    snap = check_header(own(snap), "MachineTable", machine.fingerprint)
    cap = capacity
    got = snap.get("capacity")
    if isinstance(got, np.ndarray) and got.shape == () and got.dtype.kind in "iu":
        got = got.item()  # a 0-d array, as a file may store it
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)) or got != cap:
        raise SnapshotError(f"snapshot capacity {got!r} != table capacity {cap} (an int)")
    states = array(snap, "states", np.uint8, cap)
    unhandled = array(snap, "unhandled", np.uint64, cap)
    check_leaf_codes(states, machine)
    if snap["version"] < 3 and "flags" not in snap:
        flags = np.zeros(cap, np.uint8)
    else:
        flags = array(snap, "flags", np.uint8, cap)
    bad = np.flatnonzero((flags >> machine.n_flags != 0)
                         | ((flags != 0) & (states == FREE_SLOT)))
    if bad.size:
        raise SnapshotError(
            f"snapshot flags {int(flags[bad[0]])} at slot {int(bad[0])} are not a flag bitmask "
            f"of machine {machine.name!r} ({machine.n_flags} flags) on an open slot")
    total = snap.get("unhandled_total")
    # the exact per-slot sum (high and low halves summed apart cannot wrap in uint64)
    per_slot = ((int((unhandled >> np.uint64(32)).sum(dtype=np.uint64)) << 32)
                + int((unhandled & np.uint64(0xFFFFFFFF)).sum(dtype=np.uint64)))
    if unhandled.size and int(unhandled.max()) > MAX_RESTORED_COUNT:
        raise SnapshotError(f"snapshot unhandled count {int(unhandled.max())} at slot "
                            f"{int(unhandled.argmax())} is above {MAX_RESTORED_COUNT}")
    # the total saturates at the maximum, while the per-slot counters may go on past its sum
    low = min(per_slot, MAX_RESTORED_COUNT)
    if type(total) is not int or not low <= total <= MAX_RESTORED_COUNT:
        raise SnapshotError(
            f"snapshot unhandled_total {total!r} is not an int between the per-slot sum "
            f"({per_slot}) and {MAX_RESTORED_COUNT} (the total saturates there)")
    n_cells = machine.n_states * machine.n_events
    transitions = array(snap, "transitions", np.int64, n_cells)
    if transitions.size and transitions.min() < 0:
        raise SnapshotError("snapshot transition counts must not be negative")
    transitions = transitions.reshape(machine.n_states, machine.n_events)
    counts = np.bincount(states, minlength=FREE_SLOT + 1).astype(np.int64)
    n_free = int(counts[FREE_SLOT])
    free = array(snap, "free", np.int32, n_free)
    if not np.array_equal(np.sort(free), np.flatnonzero(states == FREE_SLOT)):
        raise SnapshotError("snapshot free-slot list does not match the free slots of its states")
    history = _check_history(snap, machine, states)
    return {"states": states, "flags": flags, "unhandled": unhandled, "unhandled_total": total,
            "transitions": transitions, "counts": counts, "free": free, "history": history,
            **_check_timers(snap, machine, states)}


def _check_timers(snap: dict[str, Any], machine: Any, states: np.ndarray) -> dict[str, Any]:
    """The clock and timers of a snapshot: ``now_ns`` (an int the machine's timers accept),
    ``deadlines`` as ``(n_timers, capacity)`` int64 (each ``NEVER``, or armed on an open slot
    whose state is under the timer's owner, due after the clock and at most one delay later)
    and ``skipped`` (non-negative, per timer). Before version 5 there are none: no timer armed,
    the clock at 0."""
    timers, cap = machine.timers, states.shape[0]
    n = 0 if timers is None else timers.n_timers
    never = np.iinfo(np.int64).max
    if snap["version"] < 5 and "deadlines" not in snap:
        return {"now_ns": 0, "deadlines": np.full((n, cap), never, np.int64),
                "skipped": np.zeros(n, np.int64)}
    now = snap.get("now_ns")
    if isinstance(now, np.ndarray) and now.shape == () and now.dtype.kind in "iu":
        now = now.item()  # a 0-d array, as a file may store it
    if timers is None:
        if type(now) is not int or now != 0:
            raise SnapshotError(f"snapshot now_ns {now!r} must be 0: machine {machine.name!r} "
                                f"has no timers")
    else:
        try:
            now = timers.check_clock(now, "snapshot now_ns")
        except (TypeError, ValueError) as exc:
            raise SnapshotError(str(exc)) from None
    deadlines = array(snap, "deadlines", np.int64, n * cap).reshape(n, cap)
    skipped = array(snap, "skipped", np.int64, n)
    if skipped.size and skipped.min() < 0:
        raise SnapshotError("snapshot skipped periods must not be negative")
    for i in range(n):
        armed = deadlines[i] != never
        owned = np.array([bool(timers.owned[s] >> i & 1) if s < machine.n_states else False
                          for s in range(FREE_SLOT + 1)])
        delay = int(timers.delays[i])  # a zero-delay timer may be armed at the clock itself
        bad = np.flatnonzero(armed & (~owned[states] | (deadlines[i] < now + (delay > 0))
                                      | (deadlines[i] > now + delay)))
        if bad.size:
            raise SnapshotError(
                f"snapshot deadline {int(deadlines[i, bad[0]])} of timer {timers.names[i]!r} at "
                f"slot {int(bad[0])} is not NEVER nor an armed deadline: the slot's state does "
                f"not run the timer, or it is not in ({now}, {now + int(timers.delays[i])}] "
                f"(after the clock, at most one delay later)")
    return {"now_ns": now, "deadlines": deadlines, "skipped": skipped}


def _check_history(snap: dict[str, Any], machine: Any, states: np.ndarray) -> np.ndarray:
    """The history records of a snapshot as ``(n_owners, capacity)`` uint8: each ``FREE_SLOT``
    or a non-final leaf below its owner, ``FREE_SLOT`` on every free slot. A snapshot of
    version 2 or 3 has none (they restore as no record)."""
    owners = machine.history_owners
    cap = states.shape[0]
    if snap["version"] < 4 and "history" not in snap:
        return np.full((len(owners), cap), FREE_SLOT, np.uint8)
    records = array(snap, "history", np.uint8, len(owners) * cap).reshape(len(owners), cap)
    for i, owner in enumerate(owners):
        valid = np.zeros(FREE_SLOT + 1, dtype=bool)
        valid[FREE_SLOT] = True
        for leaf in machine.leaves_under[owner]:
            if leaf != owner and leaf not in machine.final_states:
                valid[leaf] = True
        bad = np.flatnonzero(~valid[records[i]] | ((records[i] != FREE_SLOT)
                                                   & (states == FREE_SLOT)))
        if bad.size:
            raise SnapshotError(
                f"snapshot history record {int(records[i, bad[0]])} of "
                f"{machine.state_names[owner]!r} at slot {int(bad[0])} is not a non-final leaf "
                f"below it on an open slot of machine {machine.name!r}")
    return records


def read_table_file(path: str | os.PathLike[str], fingerprint: str | None = None
                    ) -> tuple[dict[str, Any], int]:
    """A table snapshot read from a file written by ``save`` (:func:`load_snapshot`), as owned
    data, and its capacity: what every table kind's ``load`` builds its table from. With
    ``fingerprint`` the machine is checked too. The capacity is checked against the states the
    file holds, so the table allocated for it is bounded by the file's size.

    Raises:
        SnapshotError: unreadable file, another kind, version or machine, a bad capacity.
    """
    snap = check_kind(own(load_snapshot(path)), "MachineTable")
    if fingerprint is not None:
        check_header(snap, "MachineTable", fingerprint)
    capacity = snap.get("capacity")
    if type(capacity) is not int or not 0 < capacity <= MAX_CAPACITY:
        raise SnapshotError(f"snapshot capacity {capacity!r} is not an int between 1 and "
                            f"{MAX_CAPACITY}")
    array(snap, "states", np.uint8, capacity)
    return snap, capacity


def _stored(value: Any) -> np.ndarray:
    """``value`` as the array that stores it (a str ending in NUL as :data:`STR_DTYPE`)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, str) and value.endswith("\x00"):
        return np.frombuffer(value.encode("utf-32-le", "surrogatepass"), STR_DTYPE)
    return np.asarray(value)


def save_snapshot(snap: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a snapshot to ``path`` as an uncompressed ``.npz`` (scalars as 0-d arrays; every
    str, trailing NULs included, reads back equal).

    Only a regular file is written (created or truncated): an existing FIFO, device, directory or
    socket, or a symlink to one, is refused without blocking and without being opened for
    writing.

    Raises:
        SnapshotError: a field is not plain data, or ``path`` is not a regular file (the message
            names its kind).
        OSError: the file cannot be created or written (``PermissionError``, ``ENOSPC``, ...).
    """
    arrays = {k: _stored(v) for k, v in snap.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise SnapshotError(f"snapshot field {k!r} is not plain data")
    name = os.fspath(path)
    fd = create_regular(name, f"snapshot file {name!r}", SnapshotError)
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def load_snapshot(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a snapshot written by :func:`save_snapshot` (never unpickling anything).

    Only a regular file is read (a FIFO, device, directory or socket is refused without blocking
    and without reading from it), and no more than its size when it was opened. The file is
    checked before anything is allocated for its arrays: every member must be a stored
    (uncompressed) ``.npy`` whose header declares a plain dtype and exactly as many bytes as the
    member holds, so reading allocates no more than twice the file's own size.

    Raises:
        SnapshotError: not a regular file (the message names its kind), or the file is truncated,
            corrupt, compressed, or not a snapshot.
        OSError: the file cannot be opened (``FileNotFoundError``, ``PermissionError``).
    """
    name = os.fspath(path)
    try:
        data = read_regular(name, f"snapshot file {name!r}", SnapshotError)
    except (FileNotFoundError, PermissionError, SnapshotError):
        raise
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise SnapshotError(f"{name!r} is not a readable snapshot file ({type(exc).__name__}: "
                            f"{exc})") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out = {_member_key(info): _read_member(zf, info, len(data))
                   for info in zf.infolist()}
    except SnapshotError as exc:
        raise SnapshotError(f"{name!r} is not a readable snapshot: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, KeyError,
            NotImplementedError, RuntimeError, OSError, OverflowError, MemoryError) as exc:
        raise SnapshotError(f"{name!r} is not a readable snapshot file ({type(exc).__name__}: "
                            f"{exc})") from None
    if "kind" not in out or "version" not in out:
        raise SnapshotError(f"{name!r} is not a streamhsm snapshot (it has no kind and version)")
    return out


def _member_key(info: zipfile.ZipInfo) -> str:
    if not info.filename.endswith(".npy"):
        raise SnapshotError(f"member {info.filename!r} is not a .npy array")
    return info.filename[:-4]


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> Any:
    """One member as an array (or its plain value for a 0-d array), header checked first."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise SnapshotError(f"member {info.filename!r} is compressed; snapshots are stored")
    if info.file_size > file_size:
        raise SnapshotError(f"member {info.filename!r} claims {info.file_size} bytes, more than "
                            f"the file's {file_size}")
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise SnapshotError(f"member {info.filename!r} has npy format version {version}")
        if dtype.hasobject or dtype.itemsize == 0 or fortran:
            raise SnapshotError(f"member {info.filename!r} has dtype {dtype} (not plain data)")
        count = 1
        for n in shape:
            count *= int(n)
        if count * dtype.itemsize != info.file_size - fp.tell():
            raise SnapshotError(f"member {info.filename!r} declares shape {shape} of {dtype}, "
                                f"which does not match its {info.file_size} bytes")
        data = fp.read(count * dtype.itemsize)
    if dtype == STR_DTYPE and len(shape) == 1:
        try:
            return data.decode("utf-32-le", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise SnapshotError(f"member {info.filename!r} is not a valid string ({exc})") from None
    value = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    return value.item() if value.ndim == 0 else value
