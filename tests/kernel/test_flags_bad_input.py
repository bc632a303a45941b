"""Hostile input against the per-slot flags of issue 13 (guards), and the flag copies the batch
kernels read.

- Every flag entry point (``MachineTable.set_flag``/``flag``/``set_flag_many``,
  ``MachineInstance.set_flag``/``flag``, ``CompiledMachine.exits``/``entries(flags=)``) with wrong
  types, extreme ints, numpy scalars, bools as ints, wrong dtypes/shapes/strides/lengths,
  read-only and non-contiguous arrays, values other than 0/1, free and out-of-range slots,
  unknown flags and flag-free machines: a clear exception naming the offending value, and the
  table exactly as before (flags included).
- Snapshots of a flagged table with hostile ``flags`` fields (in memory and through a file).
- ``compile()`` with odd guards and flag declarations.
- The packed flag copy the chunk kernels read always equals ``table.flags``: a table driven by
  ``dispatch_many`` (batches >= 2048 events, so the chunk kernels run) and one driven event by
  event agree after random set_flag / set_flag_many / open / release / restore sequences, for
  1 to 4 flags (every packing), capacities that are not multiples of 8, and once on a table of
  at least HSM_PREFETCH_MIN_SLOTS slots (the prefetching loops).
- Threads: set_flag / set_flag_many wait for a running batch, and set_flag_many holds the table
  lock while it runs (a concurrent set_flag waits for it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import FREE_SLOT, MachineInstance, MachineSpec, MachineTable, _testing
from streamhsm.compiler import table_layout
from streamhsm.errors import MachineDefinitionError
from streamhsm.snapshot import SnapshotError, load_snapshot, save_snapshot

# --------------------------------------------------------------------------- the machines


def flagged_spec(k: int) -> MachineSpec:
    """A machine whose every flag changes what most events do in most states.

    Root > Top (initial: the grandchild Deep, a deep initial) > Mid > {Deep, Deep2}; Top > Side;
    Root > Out. Events E0..E{k-1}, Noop (handled in place everywhere), Miss (handled in place
    under Top while f0 is set, else unhandled), Hop.
    """
    events = [f"E{i}" for i in range(k)] + ["Noop", "Miss", "Hop"]
    spec = MachineSpec(f"flags{k}", events, initial="Deep")
    for i in range(k):
        spec.flag(f"f{i}")
    spec.state("Top", initial="Deep").state("Mid", "Top", initial="Deep")
    spec.state("Deep", "Mid").state("Deep2", "Mid").state("Side", "Top").state("Out")
    for i in range(k):
        e, f, g = f"E{i}", f"f{i}", f"f{(i + 1) % k}"
        spec.on("Mid", e, "Side", guard=f)
        spec.on("Side", e, "Deep2", guard=f"!{f}")
        spec.on("Top", e, "Out", guard=f"!{f}")
        spec.on("Out", e, "Top", guard=g)          # Top's deep initial: Deep
        if k > 1:
            spec.on("Out", e, "Deep2", guard=f"!{f}")
    spec.on("Root", "Noop")
    spec.on("Top", "Miss", guard="f0")
    spec.on("Deep", "Hop", "Deep2").on("Deep2", "Hop", "Deep").on("Out", "Hop", "Out")
    return spec


_MACHINES: dict[int, Any] = {}


def flagged(k: int) -> Any:
    if k not in _MACHINES:
        _MACHINES[k] = flagged_spec(k).compile()
    return _MACHINES[k]


def flag_free() -> Any:
    return (MachineSpec("plain", ["Go", "Noop"], initial="A").state("A").state("B")
            .on("A", "Go", "B").on("B", "Go", "A").on("Root", "Noop").compile())


def everything(t: MachineTable) -> tuple[Any, ...]:
    """All observable state of a table, the free-list order included."""
    return (t.states.tobytes(), t.flags.tobytes(), t.unhandled.tobytes(),
            t.transition_counts.tobytes(), len(t), int(t.unhandled_total),
            t.snapshot()["free"].tobytes())


def table_with_flags(k: int = 2, cap: int = 11) -> MachineTable:
    """Slots 0..7 open, slot 3 released again, some flags set."""
    t = MachineTable(flagged(k), cap)
    for _ in range(8):
        t.open()
    t.release(3)
    t.set_flag(1, "f0", True)
    t.set_flag(7, f"f{k - 1}", True)
    return t


def i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


# --------------------------------------------------------------------------- entry points
def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


REJECTED: list[tuple[str, Callable[[MachineTable], Any], type[BaseException], str]] = [
    # set_flag
    ("int value", lambda t: t.set_flag(0, "f0", 1), TypeError, "must be a bool, got int 1"),
    ("np.uint8 value", lambda t: t.set_flag(0, "f0", np.uint8(1)), TypeError,
     r"got uint8 (np\.uint8\(1\)|1)$"),  # the value's repr: numpy 2, numpy 1
    ("None value", lambda t: t.set_flag(0, "f0", None), TypeError, "got NoneType None"),
    ("str value", lambda t: t.set_flag(0, "f0", "True"), TypeError, "got str 'True'"),
    ("free slot", lambda t: t.set_flag(3, "f0", True), IndexError, "slot 3 is not open"),
    ("never opened", lambda t: t.set_flag(10, "f0", True), IndexError, "slot 10 is not open"),
    ("slot = capacity", lambda t: t.set_flag(11, "f0", True), IndexError, "slot 11 out of range"),
    ("slot -1", lambda t: t.set_flag(-1, "f0", True), IndexError, "slot -1 out of range"),
    ("slot 2**63", lambda t: t.set_flag(2**63, "f0", True), IndexError, "slot 9223372036854775808"),
    ("slot 2**100", lambda t: t.set_flag(2**100, "f0", True), IndexError, "out of range"),
    ("slot np.uint64 max", lambda t: t.set_flag(np.uint64(2**64 - 1), "f0", True), IndexError,
     "18446744073709551615"),
    ("bool slot", lambda t: t.set_flag(True, "f0", True), TypeError,
     "slot must be an int, got bool"),
    ("np.bool_ slot", lambda t: t.set_flag(np.True_, "f0", True), TypeError,
     r"got bool_? (np\.True_|True)$"),
    ("float slot", lambda t: t.set_flag(0.0, "f0", True), TypeError, "got float 0.0"),
    ("unknown flag", lambda t: t.set_flag(0, "f9", True), ValueError, "unknown flag 'f9'"),
    ("flag name ''", lambda t: t.set_flag(0, "", True), ValueError, "unknown flag ''"),
    ("guard syntax as name", lambda t: t.set_flag(0, "!f0", True), ValueError,
     "unknown flag '!f0'"),
    ("bytes flag name", lambda t: t.set_flag(0, b"f0", True), TypeError, "got bytes b'f0'"),
    ("int flag name", lambda t: t.set_flag(0, 0, True), TypeError,
     "flag name must be a str, got int 0"),
    # flag
    ("flag of a free slot", lambda t: t.flag(3, "f0"), IndexError, "slot 3 is not open"),
    ("flag of slot -1", lambda t: t.flag(-1, "f0"), IndexError, "slot -1 out of range"),
    ("flag unknown", lambda t: t.flag(0, "nope"), ValueError, "unknown flag 'nope'"),
    ("flag None name", lambda t: t.flag(0, None), TypeError, "got NoneType None"),
    # set_flag_many: slots
    ("list slots", lambda t: t.set_flag_many([0], "f0", True), TypeError, "numpy array, got list"),
    ("int8 slots", lambda t: t.set_flag_many(np.zeros(1, np.int8), "f0", True), TypeError,
     "got int8"),
    ("uint64 slots", lambda t: t.set_flag_many(np.zeros(1, np.uint64), "f0", True), TypeError,
     "got uint64"),
    ("big-endian slots", lambda t: t.set_flag_many(np.zeros(1, ">i8"), "f0", True), TypeError,
     ">i8"),
    ("float slots", lambda t: t.set_flag_many(np.zeros(1), "f0", True), TypeError, "float64"),
    ("2-d slots", lambda t: t.set_flag_many(np.zeros((1, 2), np.int64), "f0", True), ValueError,
     r"1-dimensional, got shape \(1, 2\)"),
    ("0-d slots", lambda t: t.set_flag_many(np.array(0, np.int64), "f0", True), ValueError,
     r"got shape \(\)"),
    # strided and reversed views are copied once, then validated like any array
    ("strided slots", lambda t: t.set_flag_many(i64(0, 9, 99, 9)[::2], "f0", True), IndexError,
     r"slots\[1\]: slot 99 out of range"),
    ("reversed slots", lambda t: t.set_flag_many(i64(3, 1)[::-1], "f0", True), IndexError,
     r"slots\[1\]: slot 3 is not open"),
    ("free slot in slots", lambda t: t.set_flag_many(i64(0, 1, 3), "f0", True), IndexError,
     r"slots\[2\]: slot 3 is not open; nothing was changed"),
    ("slot = capacity in slots", lambda t: t.set_flag_many(i64(0, 11), "f0", True), IndexError,
     r"slots\[1\]: slot 11 out of range for capacity 11"),
    ("slot -1 in slots", lambda t: t.set_flag_many(i64(2, -1), "f0", False), IndexError,
     r"slots\[1\]: slot -1 out of range"),
    ("int32 min in slots", lambda t: t.set_flag_many(np.array([0, -2**31], np.int32), "f0", True),
     IndexError, "slot -2147483648 out of range"),
    ("int64 max in slots", lambda t: t.set_flag_many(i64(2**63 - 1), "f0", True), IndexError,
     "slot 9223372036854775807 out of range"),
    ("first error wins", lambda t: t.set_flag_many(i64(0, 3, 11), "f0", True), IndexError,
     r"slots\[1\]: slot 3 is not open"),
    # set_flag_many: values
    ("value 2", lambda t: t.set_flag_many(i64(0, 1), "f0", np.array([1, 2], np.uint8)),
     ValueError, r"values\[1\]: flag value 2 is not 0 or 1; nothing was changed"),
    ("value 255", lambda t: t.set_flag_many(i64(0, 1), "f1", np.array([255, 0], np.uint8)),
     ValueError, r"values\[0\]: flag value 255"),
    ("bool array holding byte 2",
     lambda t: t.set_flag_many(i64(0, 1), "f0", np.array([1, 2], np.uint8).view(np.bool_)),
     ValueError, r"values\[1\]: flag value 2"),
    ("value 2 after a free slot",
     lambda t: t.set_flag_many(i64(3, 0), "f0", np.array([1, 2], np.uint8)), IndexError,
     r"slots\[0\]: slot 3 is not open"),
    ("int64 values", lambda t: t.set_flag_many(i64(0), "f0", np.ones(1, np.int64)), TypeError,
     "values must have dtype bool or uint8, got int64"),
    ("int8 values", lambda t: t.set_flag_many(i64(0), "f0", np.ones(1, np.int8)), TypeError,
     "got int8"),
    ("2-d values", lambda t: t.set_flag_many(i64(0, 1), "f0", np.ones((1, 2), np.uint8)),
     ValueError, r"got shape \(1, 2\)"),
    ("0-d values", lambda t: t.set_flag_many(i64(0), "f0", np.array(True)), ValueError,
     r"got shape \(\)"),
    ("strided values",
     lambda t: t.set_flag_many(i64(0, 1), "f0", np.array([1, 0, 2, 0], np.uint8)[::2]),
     ValueError, r"values\[1\]: flag value 2"),
    ("short values", lambda t: t.set_flag_many(i64(0, 1), "f0", np.ones(1, np.uint8)), ValueError,
     "same length, got 2 and 1"),
    ("long values", lambda t: t.set_flag_many(i64(0), "f0", np.ones(2, bool)), ValueError,
     "same length, got 1 and 2"),
    ("values for no slots", lambda t: t.set_flag_many(i64(), "f0", np.ones(1, bool)), ValueError,
     "same length, got 0 and 1"),
    ("int scalar value", lambda t: t.set_flag_many(i64(0), "f0", 1), TypeError, "got int 1"),
    ("list of bools", lambda t: t.set_flag_many(i64(0), "f0", [True]), TypeError, "got list"),
    ("None values", lambda t: t.set_flag_many(i64(0), "f0", None), TypeError, "got NoneType"),
    ("bad value, no slots", lambda t: t.set_flag_many(i64(), "f0", 3), TypeError, "got int 3"),
    ("unknown flag, many", lambda t: t.set_flag_many(i64(0), "zz", True), ValueError,
     "unknown flag 'zz'"),
    ("unknown flag, no slots", lambda t: t.set_flag_many(i64(), "zz", True), ValueError,
     "unknown flag 'zz'"),
]


@pytest.mark.parametrize(("what", "call", "exc", "match"), REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected_calls_change_nothing(what: str, call: Callable[[MachineTable], Any],
                                       exc: type[BaseException], match: str) -> None:
    t = table_with_flags()
    before = everything(t)
    with pytest.raises(exc, match=match):
        call(t)
    assert everything(t) == before


ACCEPTED: list[tuple[str, Callable[[MachineTable], Any], dict[int, int]]] = [
    ("np.True_", lambda t: t.set_flag(0, "f1", np.True_), {0: 2}),
    ("np.int64 slot", lambda t: t.set_flag(np.int64(2), "f0", True), {2: 1}),
    ("np.int8 slot", lambda t: t.set_flag(np.int8(2), "f1", True), {2: 2}),
    ("np.str_ name", lambda t: t.set_flag(0, np.str_("f0"), True), {0: 1}),
    ("clear", lambda t: t.set_flag(1, "f0", np.False_), {1: 0}),
    ("many, one bool", lambda t: t.set_flag_many(i64(0, 2, 7), "f0", True), {0: 1, 2: 1, 7: 3}),
    ("many, np.bool_", lambda t: t.set_flag_many(np.array([0], np.int32), "f1", np.True_),
     {0: 2}),
    ("many, read-only arrays",
     lambda t: t.set_flag_many(_readonly(i64(0, 2)), "f1", _readonly(np.array([1, 0], np.uint8))),
     {0: 2}),
    ("many, repeats: last wins",
     lambda t: t.set_flag_many(i64(0, 0, 2, 2), "f0", np.array([1, 0, 0, 1], bool)), {2: 1}),
    ("many, empty", lambda t: t.set_flag_many(i64(), "f0", np.zeros(0, bool)), {}),
    ("many, empty, one bool", lambda t: t.set_flag_many(np.zeros(0, np.int32), "f0", False), {}),
    ("many, masked array (mask ignored)",
     lambda t: t.set_flag_many(i64(0, 2), "f0", np.ma.masked_array(np.ones(2, np.uint8),
                                                                    mask=[0, 1])), {0: 1, 2: 1}),
]


@pytest.mark.parametrize(("what", "call", "changed"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_calls_change_only_their_slots(what: str, call: Callable[[MachineTable], Any],
                                                changed: dict[int, int]) -> None:
    t = table_with_flags()
    t.open()  # slot 3 again: 0..7 open, 8..10 never opened
    want = np.array(t.flags, copy=True)
    for slot, mask in changed.items():
        want[slot] = mask
    rest = (t.states.tobytes(), t.unhandled.tobytes(), t.transition_counts.tobytes(), len(t))
    call(t)
    assert t.flags.tolist() == want.tolist()
    assert (t.states.tobytes(), t.unhandled.tobytes(), t.transition_counts.tobytes(),
            len(t)) == rest


def test_flags_view_is_read_only_and_follows_the_table() -> None:
    t = table_with_flags()
    view = t.flags
    assert view.dtype == np.uint8 and view.shape == (11,) and not view.flags.writeable
    with pytest.raises(ValueError, match="WRITEABLE"):
        view.flags.writeable = True
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1
    t.set_flag(0, "f1", True)
    assert view[0] == 2


def test_flags_start_false_and_release_clears_them() -> None:
    t = MachineTable(flagged(4), 9)
    slots = [t.open() for _ in range(9)]
    assert t.flags.tolist() == [0] * 9
    t.set_flag_many(np.array(slots, np.int64), "f3", True)
    t.set_flag(4, "f0", True)
    t.release(4)
    assert t.flags[4] == 0
    assert t.open() == 4 and t.flags[4] == 0 and not t.flag(4, "f0")
    assert t.flags.tolist() == [8, 8, 8, 8, 0, 8, 8, 8, 8]


@pytest.mark.parametrize("call", [
    lambda t: t.set_flag(0, "f0", True), lambda t: t.flag(0, "f0"),
    lambda t: t.set_flag_many(i64(0), "f0", True), lambda t: t.set_flag_many(i64(), "f0", True),
], ids=["set_flag", "flag", "set_flag_many", "set_flag_many empty"])
def test_a_flag_free_machine_has_no_flags(call: Callable[[MachineTable], Any]) -> None:
    t = MachineTable(flag_free(), 5)
    t.open()
    before = everything(t)
    with pytest.raises(ValueError,
                       match=r"unknown flag 'f0' for machine 'plain'; its flags are \[\]"):
        call(t)
    assert everything(t) == before and t.flags.tolist() == [0] * 5


def test_instance_flags_reject_what_the_table_rejects() -> None:
    inst = MachineInstance(flagged(2))
    assert inst.flags == 0 and not inst.flag("f1")
    for value, match in ((1, "got int 1"), (None, "got NoneType"),
                         (np.uint8(1), r"got uint8 (np\.uint8\(1\)|1)$")):
        with pytest.raises(TypeError, match=match):
            inst.set_flag("f0", value)
    with pytest.raises(ValueError, match="unknown flag 'f2'"):
        inst.set_flag("f2", True)
    with pytest.raises(TypeError, match="flag name must be a str, got bytes"):
        inst.flag(b"f0")
    assert inst.flags == 0
    inst.set_flag("f1", np.True_)
    assert inst.flags == 2 and inst.flag("f1")
    plain = MachineInstance(flag_free())
    with pytest.raises(ValueError, match="its flags are"):
        plain.set_flag("f0", True)


@pytest.mark.parametrize(("flags", "exc", "match"), [
    (4, ValueError, "flags bitmask 4 out of range for machine 'flags2' with 2 flags"),
    (-1, ValueError, "flags bitmask -1 out of range"),
    (2**64 - 1, ValueError, "18446744073709551615"),
    (np.uint64(2**64 - 1), ValueError, "18446744073709551615"),
    (2**100, ValueError, "out of range"),
    (True, TypeError, "flags must be an int bitmask, got bool True"),
    (np.True_, TypeError, "got bool"),
    (1.0, TypeError, "got float 1.0"),
    ("1", TypeError, "got str '1'"),
    (None, TypeError, "got NoneType None"),
])
def test_exits_and_entries_refuse_bad_masks(flags: Any, exc: type[BaseException],
                                            match: str) -> None:
    m = flagged(2)
    for fn in (m.exits, m.entries):
        with pytest.raises(exc, match=match):
            fn("Deep", "E0", flags=flags)


def test_exits_and_entries_masks() -> None:
    m = flagged(2)
    code = m.state_code
    # f0 set: Mid handles E0 -> Side (exits Deep, Mid); f0 clear: Top handles it -> Out
    assert m.exits("Deep", "E0", flags=np.int8(1)) == (code("Deep"), code("Mid"))
    assert m.entries("Deep", "E0", flags=1) == (code("Side"),)
    assert m.exits("Deep", "E0") == (code("Deep"), code("Mid"), code("Top"))
    assert m.entries("Deep", "E0", flags=2) == (code("Out"),)
    plain = flag_free()
    assert plain.exits("A", "Go", flags=0) == plain.exits("A", "Go")
    with pytest.raises(ValueError, match="with 0 flags"):
        plain.exits("A", "Go", flags=1)


# --------------------------------------------------------------------------- snapshots
def _snap_variants(base: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    f = base["flags"]

    def with_(**changes: Any) -> dict[str, Any]:
        snap = dict(base)
        for key, value in changes.items():
            if value is None:
                snap.pop(key)
            else:
                snap[key] = value
        return snap

    def at(slot: int, value: int) -> np.ndarray:
        out = f.copy()
        out[slot] = value
        return out

    shape = "snapshot field 'flags' must be uint8 of shape \\(11,\\)"
    return [
        ("int8", with_(flags=f.astype(np.int8)), shape + ", got int8"),
        ("bool", with_(flags=f.astype(bool)), shape + ", got bool"),
        ("uint64", with_(flags=f.astype(np.uint64)), shape + ", got uint64"),
        ("short", with_(flags=f[:-1]), shape + r", got uint8 \(10,\)"),
        ("long", with_(flags=np.resize(f, 12)), shape),
        ("2-d", with_(flags=f[:10].reshape(2, 5)), shape),
        ("empty", with_(flags=f[:0]), shape),
        ("missing (version 3)", with_(flags=None), shape + ", got NoneType"),
        ("a list", with_(flags=f.tolist()), "field .flags. holds a list, not plain data"),
        ("bit above the flags", with_(flags=at(0, 4)),
         "snapshot flags 4 at slot 0 are not a flag bitmask of machine 'flags2' \\(2 flags\\)"),
        ("255", with_(flags=at(7, 255)), "snapshot flags 255 at slot 7"),
        ("128", with_(flags=at(1, 128)), "snapshot flags 128 at slot 1"),
        ("on a released slot", with_(flags=at(3, 1)),
         "snapshot flags 1 at slot 3 .* on an open slot"),
        ("on a never-opened slot", with_(flags=at(10, 2)), "snapshot flags 2 at slot 10"),
        ("version 2 with bad flags", with_(version=2, flags=at(0, 4)),
         "snapshot flags 4 at slot 0"),
        ("version 1", with_(version=1), "version 1 is not supported"),
        ("version 6", with_(version=6), "version 6 is not supported"),
    ]


def _flag_snapshot_cases() -> list[tuple[str, dict[str, Any], str]]:
    return _snap_variants(table_with_flags().snapshot())


@pytest.mark.parametrize(("what", "snap", "match"), _flag_snapshot_cases(),
                         ids=[c[0] for c in _flag_snapshot_cases()])
def test_hostile_flags_in_a_snapshot_are_refused(what: str, snap: dict[str, Any], match: str,
                                                 tmp_path: Path) -> None:
    target = MachineTable(flagged(2), 11)
    target.open()
    target.set_flag(0, "f1", True)
    before = everything(target)
    with pytest.raises(SnapshotError, match=match):
        target.restore(snap)
    assert everything(target) == before
    try:
        save_snapshot(snap, tmp_path / "s.npz")
    except SnapshotError:
        return  # not plain data: cannot even be written
    with pytest.raises(SnapshotError):
        target.restore(load_snapshot(tmp_path / "s.npz"))
    assert everything(target) == before


def test_version_2_snapshots_restore_with_flags_clear(tmp_path: Path) -> None:
    src = table_with_flags()
    snap = src.snapshot()
    old = dict(snap, version=2)
    del old["flags"]
    target = MachineTable(flagged(2), 11)
    target.open()
    target.set_flag(0, "f1", True)
    target.restore(old)
    assert target.flags.tolist() == [0] * 11
    assert target.states.tobytes() == src.states.tobytes()
    save_snapshot(old, tmp_path / "v2.npz")
    target.set_flag(2, "f0", True)
    target.restore(load_snapshot(tmp_path / "v2.npz"))
    assert target.flags.tolist() == [0] * 11
    target.restore(dict(snap, version=2))  # a version-2 file that does carry flags: checked, used
    assert target.flags.tolist() == src.flags.tolist()


@pytest.mark.parametrize("capacity", [np.array([11, 11]), np.array([11])],
                         ids=["2 elements", "1 element"])
def test_a_capacity_that_is_not_an_int_is_refused(capacity: np.ndarray) -> None:
    target = table_with_flags()
    before = everything(target)
    with pytest.raises(SnapshotError, match="capacity"):
        target.restore(dict(target.snapshot(), capacity=capacity))
    assert everything(target) == before


def test_a_flag_free_table_refuses_any_flag_in_a_snapshot() -> None:
    t = MachineTable(flag_free(), 4)
    t.open()
    snap = t.snapshot()
    flags = snap["flags"].copy()
    flags[0] = 1
    with pytest.raises(SnapshotError, match=r"snapshot flags 1 at slot 0 .* \(0 flags\)"):
        t.restore(dict(snap, flags=flags))


# --------------------------------------------------------------------------- compile
@pytest.mark.parametrize(("guard", "match"), [
    ("", "names unknown flag ''"),
    ("!", "names unknown flag ''"),
    ("!!a", "names unknown flag '!a'"),
    (" a", "names unknown flag ' a'"),
    ("a ", "names unknown flag 'a '"),
    ("A", "names unknown flag 'A'"),
    ("a\x00", "names unknown flag 'a\\\\x00'"),
    ("b", "handler \\(S, E \\[b\\]\\) names unknown flag 'b'; declared flags: \\['a'\\]"),
])
def test_compile_names_an_odd_guard(guard: str, match: str) -> None:
    spec = (MachineSpec("g", ["E", "F"], initial="S").flag("a").state("S").state("T")
            .on("S", "E", "T", guard=guard).on("T", "F", "S"))
    with pytest.raises(MachineDefinitionError, match=match):
        spec.compile()


@pytest.mark.parametrize("guard", [1, b"a", ["a"], True, ("a",)])
def test_on_refuses_a_guard_that_is_not_a_str(guard: Any) -> None:
    spec = MachineSpec("g", ["E"], initial="S").flag("a").state("S")
    with pytest.raises(TypeError, match=f"guard must be a flag name str or None, got "
                                        f"{type(guard).__name__}"):
        spec.on("S", "E", guard=guard)
    assert spec.declared_handlers == ()


def _two_states(*flags: str) -> MachineSpec:
    spec = MachineSpec("g", ["E", "F"], initial="S")
    for f in flags:
        spec.flag(f)
    return spec.state("S").state("T").on("S", "E", "T").on("T", "F", "S")


@pytest.mark.parametrize(("flags", "match"), [
    (("a", "b", "c", "d", "e"), "flag 'e' is one too many; at most 4 flags"),
    (("a", "b", "c", "d", "e", "f"), "flag 'e' is one too many"),
    (("a", "a"), "duplicate flag 'a'"),
    (("", ), "flag name '' is not an identifier"),
    (("1a",), "flag name '1a' is not an identifier"),
    (("a-b",), "flag name 'a-b' is not an identifier"),
    (("!a",), "flag name '!a' is not an identifier"),
    (("a b",), "flag name 'a b' is not an identifier"),
])
def test_compile_refuses_bad_flag_declarations(flags: tuple[str, ...], match: str) -> None:
    with pytest.raises(MachineDefinitionError, match=match):
        _two_states(*flags).compile()


@pytest.mark.parametrize("name", [None, 1, b"a", ["a"]])
def test_flag_refuses_a_name_that_is_not_a_str(name: Any) -> None:
    spec = _two_states()
    with pytest.raises(TypeError, match="flag name must be a str"):
        spec.flag(name)
    assert spec.flags == ()


def test_four_flags_compile() -> None:
    m = _two_states("a", "b", "c", "d").compile()
    assert m.n_flags == 4 and m.next_state.shape[0] == 16


@pytest.mark.parametrize(("decl", "match"), [
    (lambda s: s.on("S", "E", "T").on("S", "E", None), "two unguarded handlers"),
    (lambda s: s.on("S", "E", "T").on("S", "E", None, guard="a"), "can never run"),
    (lambda s: s.on("S", "E", "T", guard="a").on("S", "E", None, guard="a"), "can never run"),
    (lambda s: s.on("S", "E", "T", guard="a").on("S", "E", None, guard="!a")
     .on("S", "E", "S"), r"handler \(S, E\) can never run"),
])
def test_compile_refuses_handlers_that_never_run(decl: Callable[[MachineSpec], Any],
                                                 match: str) -> None:
    spec = MachineSpec("g", ["E", "F"], initial="S").flag("a").state("S").state("T")
    spec.on("T", "F", "S")
    decl(spec)
    with pytest.raises(MachineDefinitionError, match=match):
        spec.compile()


def test_fingerprint_does_not_follow_the_spec_after_compile() -> None:
    spec = (MachineSpec("g", ["E", "F"], initial="S").flag("a").state("S").state("T")
            .on("S", "E", "T", guard="a").on("T", "F", "S"))
    m = spec.compile()
    t = MachineTable(m, 2)
    t.open()
    snap = t.snapshot()
    fp = m.fingerprint
    spec.on("T", "E", None)  # the compiled machine's tables do not change
    assert m.fingerprint == fp
    t.restore(snap)


def test_set_flag_many_with_the_tables_own_flags_as_values() -> None:
    s = MachineSpec("g", ["E"], initial="S").flag("a").flag("b").state("S").on("S", "E")
    t = MachineTable(s.compile(), 4)
    for _ in range(4):
        t.open()
    t.set_flag(0, "a", True)
    t.set_flag(1, "a", True)
    before = everything(t)
    try:
        t.set_flag_many(i64(1, 0, 2, 3), "b", t.flags)  # b := a (flags are 0 or 1 here)
    except IndexError:
        assert everything(t) == before, "the refused call changed the table"
        raise
    assert t.flags.tolist() == [3, 3, 0, 0]


# --------------------------------------------------------------------------- packed copy
def _check_pair(a: MachineTable, b: MachineTable, model: np.ndarray, what: str) -> None:
    assert a.flags.tolist() == model.tolist(), f"{what}: table.flags differs from the model"
    assert b.flags.tolist() == model.tolist(), f"{what}: the per-event table's flags differ"
    assert a.states.tobytes() == b.states.tobytes(), f"{what}: states differ"
    assert a.unhandled.tobytes() == b.unhandled.tobytes(), f"{what}: unhandled differ"
    assert np.array_equal(a.transition_counts, b.transition_counts), f"{what}: counts differ"
    assert a.unhandled_total == b.unhandled_total and len(a) == len(b), what
    m = a.machine
    hist = np.bincount(a.states, minlength=256)
    for code in range(1, m.n_states):
        if m.is_leaf[code]:
            assert a.count(code) == b.count(code) == hist[code], f"{what}: occupancy"
    assert not (model & ~np.uint8((1 << m.n_flags) - 1)).any()
    assert not model[a.states == FREE_SLOT].any(), f"{what}: flags on a free slot"


def _events(rng: np.random.Generator, m: Any, n: int) -> np.ndarray:
    """Runs of handled-in-place events (the branchy kernel) between runs of random events (the
    flat one), so both kernels run with flags."""
    ev = rng.integers(0, m.n_events, n).astype(np.uint8)
    noop = m.event_code("Noop")
    for lo in range(0, n, 1024):
        if rng.random() < 0.4:
            ev[lo:lo + 1024] = np.where(rng.random(min(1024, n - lo)) < 0.97, noop,
                                        ev[lo:lo + 1024])
    return ev


def _drive(k: int, cap: int, rounds: int, batch: int, seed: int, per_event_chunk: int) -> None:
    """Table ``a`` runs every batch through dispatch_many in one call (>= 2048 events: the chunk
    kernels, reading the packed flags); table ``b`` runs it event by event (dispatch, or
    dispatch_many in chunks below 2048: the per-event kernel, reading the flag bytes)."""
    rng = np.random.default_rng(seed)
    m = flagged(k)
    a, b = MachineTable(m, cap), MachineTable(m, cap)
    model = np.zeros(cap, np.uint8)
    for t in (a, b):
        for _ in range(cap * 3 // 4):
            t.open()
    saved: list[tuple[dict[str, Any], dict[str, Any], np.ndarray]] = []
    for r in range(rounds):
        open_slots = np.flatnonzero(a.states != FREE_SLOT)
        # flags: many at once (repeats, all packings' byte boundaries), and one by one
        for _ in range(3):
            name = int(rng.integers(0, k))
            n = int(rng.integers(1, max(2, 2 * len(open_slots))))
            slots = rng.choice(open_slots, n).astype(rng.choice([np.int32, np.int64]))
            if rng.random() < 0.3:
                values: Any = bool(rng.integers(0, 2))
                vals = np.full(n, values, np.uint8)
            else:
                vals = rng.integers(0, 2, n).astype(np.uint8)
                values = vals.astype(bool) if rng.random() < 0.5 else vals
            for t in (a, b):
                t.set_flag_many(slots, f"f{name}", values)
            for s, v in zip(slots.tolist(), vals.tolist(), strict=True):
                model[s] = (int(model[s]) & ~(1 << name)) | (v << name)
        for s in rng.choice(open_slots, 5).tolist() + [int(open_slots[-1])]:
            name, v = int(rng.integers(0, k)), bool(rng.integers(0, 2))
            for t in (a, b):
                t.set_flag(s, f"f{name}", v)
            model[s] = (int(model[s]) & ~(1 << name)) | (int(v) << name)
        # open / release
        for _ in range(int(rng.integers(0, 4))):
            if len(a) > 2 and rng.random() < 0.6:
                s = int(rng.choice(np.flatnonzero(a.states != FREE_SLOT)))
                a.release(s)
                b.release(s)
                model[s] = 0
            elif len(a) < cap:
                s = a.open()
                assert b.open() == s
        # restore (from an earlier point, or the current one into a fresh pair)
        if saved and rng.random() < 0.3:
            sa, sb, sm = saved[int(rng.integers(0, len(saved)))]
            a.restore(sa)
            b.restore(sb)
            model = sm.copy()
        elif rng.random() < 0.2:
            a2, b2 = MachineTable(m, cap), MachineTable(m, cap)
            a2.restore(a.snapshot())
            b2.restore(b.snapshot())
            a, b = a2, b2
        if rng.random() < 0.3:
            saved.append((a.snapshot(), b.snapshot(), model.copy()))
        _check_pair(a, b, model, f"round {r} before the batch")
        # the batch
        open_slots = np.flatnonzero(a.states != FREE_SLOT)
        slots = rng.choice(open_slots, batch)
        slots[-1] = open_slots[-1]
        ev = _events(rng, m, batch)
        sl = slots.astype(np.int64 if r % 2 else np.int32)
        got = a.dispatch_many(sl, ev)
        want = 0
        if per_event_chunk == 1:
            for s, e in zip(slots.tolist(), ev.tolist(), strict=True):
                want += b.dispatch(s, e)
        else:
            for lo in range(0, batch, per_event_chunk):
                want += b.dispatch_many(sl[lo:lo + per_event_chunk], ev[lo:lo + per_event_chunk])
        assert got == want, f"round {r}: handled {got} != {want}"
        _check_pair(a, b, model, f"round {r} after the batch")
        # a broadcast reads the flag bytes, per slot
        e = int(rng.integers(0, m.n_events))
        want = sum(b.dispatch(int(s), e) for s in np.flatnonzero(b.states != FREE_SLOT))
        assert a.broadcast(e) == want
        _check_pair(a, b, model, f"round {r} after broadcast")


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("cap", [13, 101, 250])
def test_batches_read_the_same_flags_as_single_dispatch(k: int, cap: int) -> None:
    _drive(k, cap, rounds=6, batch=2600, seed=k * 1000 + cap, per_event_chunk=1)


def test_batches_on_a_table_large_enough_to_prefetch() -> None:
    # HSM_PREFETCH_MIN_SLOTS = 262144: both kernels' prefetching loops (flags included)
    _drive(3, 262144 + 37, rounds=2, batch=300_000, seed=5, per_event_chunk=2000)


def test_caller_storage_written_from_outside_never_breaks_the_table() -> None:
    """Caller-provided storage stays writeable by its owner: garbage in the flags column (bits
    above the machine's flags) may make slots behave as other states, but every kernel stays in
    bounds and every slot stays in a leaf state."""
    m = flagged(2)
    arrays = {name: np.empty(shape, dtype) for name, (dtype, shape) in
              table_layout(97, m.n_events).items()}
    t = MachineTable(m, 97, arrays=arrays)
    for _ in range(90):
        t.open()
    arrays["flags"][:] = np.arange(97, dtype=np.uint8) * 37
    rng = np.random.default_rng(3)
    slots = rng.integers(0, 90, 5000)
    for i in range(m.n_events):
        t.broadcast(i)
    t.dispatch_many(slots, rng.integers(0, m.n_events, 5000).astype(np.uint8))
    t.dispatch_many(slots[:100], rng.integers(0, m.n_events, 100).astype(np.uint8))
    for s in range(90):
        t.dispatch(s, int(rng.integers(0, m.n_events)))
    states = t.states[:90]
    assert all(m.is_leaf[s] and s != 0 for s in states.tolist())
    assert int((t.states == FREE_SLOT).sum()) == 7 and len(t) == 90


# --------------------------------------------------------------------------- threads
def _noop_batch(t: MachineTable, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n, dtype=np.int64), np.full(n, t.machine.event_code("Noop"), np.uint8)


def test_flag_mutators_wait_for_a_running_batch(paused_batch: Any) -> None:
    t = MachineTable(flagged(2), 8)
    for _ in range(6):
        t.open()
    batch = paused_batch(t, *_noop_batch(t, 6))
    calls = [batch.queue(lambda: t.set_flag(0, "f0", True)),
             batch.queue(lambda: t.set_flag_many(i64(1, 2), "f1", True)),
             batch.queue(lambda: t.set_flag_many(np.array([5], np.int32), "f0",
                                                 np.ones(1, np.uint8)))]
    assert t.flags.tolist() == [0] * 8 and _testing.waiters(t) == 3
    batch.resume()
    for c in calls:
        c.join()
    assert batch.call.error is None and all(c.error is None for c in calls)
    assert t.flags.tolist() == [1, 2, 2, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("many", [False, True])
def test_flag_slot_is_checked_after_the_wait(many: bool, paused_batch: Any) -> None:
    """A slot freed (behind the lock) while set_flag/set_flag_many waited is refused, unchanged."""
    m = flagged(2)
    arrays = {name: np.empty(shape, dtype) for name, (dtype, shape) in
              table_layout(4, m.n_events).items()}
    t = MachineTable(m, 4, arrays=arrays)
    for _ in range(3):
        t.open()
    batch = paused_batch(t, *_noop_batch(t, 2))
    fn = ((lambda: t.set_flag_many(i64(0, 2), "f0", True)) if many
          else (lambda: t.set_flag(2, "f0", True)))
    waiting = batch.queue(fn)
    arrays["states"][2] = FREE_SLOT  # what a batch holding the lock may do (release_unchecked)
    batch.resume()
    waiting.join()
    assert isinstance(waiting.error, IndexError), waiting.error
    assert "slot 2 is not open" in str(waiting.error)
    assert t.flags.tolist() == [0, 0, 0, 0]


N_LOCK = 1 << 21


def test_set_flag_many_holds_the_table_lock() -> None:
    """While set_flag_many runs (GIL released), another thread sees a half-set column and then
    calls set_flag on the last slot: it must wait for set_flag_many, so its value wins. Without
    the lock it would write first and be overwritten (and the packed copy could lose updates)."""
    m = flagged(1)
    t = MachineTable(m, N_LOCK)
    for _ in range(N_LOCK):
        t.open()
    slots = np.arange(N_LOCK, dtype=np.int64)
    seen: list[bool] = []
    stop = threading.Event()
    last = N_LOCK - 1

    def observer() -> None:
        view = memoryview(t.flags)
        while not stop.is_set():
            snap = bytes(view[:: N_LOCK // 64])  # with the GIL held
            on = snap.count(1)
            if 0 < on < len(snap):
                # the batch runs in slot order: slot 0 already holds its value; ask the opposite
                target = snap[0] == 0
                seen.append(target)  # before the call: the main thread stops after this round
                t.set_flag(last, "f0", target)
                return

    th = threading.Thread(target=observer, daemon=True)
    th.start()
    try:
        for r in range(40):  # noqa: B007 (the round is not asserted)
            t.set_flag_many(slots, "f0", r % 2 == 0)
            if seen:
                break
    finally:
        stop.set()
        th.join()
    assert seen, "never saw set_flag_many half done (does it release the GIL?)"
    # (which round the observer saw is not asserted: the main thread may finish one more round
    # before it sees the observer's note, and that round writes the observer's value anyway)
    assert t.flag(last, "f0") is seen[0], "set_flag ran inside set_flag_many, which overwrote it"
    # the packed copy (read by batches >= 2048 events) agrees with the flag byte
    inst = MachineInstance(m)
    inst.set_flag("f0", seen[0])
    e0 = m.event_code("E0")
    want = sum(inst.dispatch(e0) for _ in range(2048 + 7))
    assert t.dispatch_many(np.full(2048 + 7, last, np.int64),
                           np.full(2048 + 7, e0, np.uint8)) == want
    assert t.state(last) is inst.current


def test_dispatch_many_reads_arrays_that_alias_the_table_as_they_were() -> None:
    """The table's own columns passed back through their views (events=t.states) are read as
    they were when the call began, like any array: here the first event changes the state the
    second event code is read from."""
    from streamhsm import Event, StreamTable

    def fresh() -> StreamTable:
        t = StreamTable(3, drain_on_producer_loss=True)
        for _ in range(3):
            t.open()
        t.dispatch_many(np.array([1, 2, 2]), np.array(
            [Event.STREAM_PROVISIONED, Event.STREAM_PROVISIONED, Event.PRODUCER_DETACHED],
            np.uint8))
        return t  # slot 0 Init (code 2), slot 1 Active (3), slot 2 Draining (4)

    aliased, copied = fresh(), fresh()
    slots = np.array([1, 2])
    # event codes = the states of slots 0 and 1 now: 2 (ProducerDetached) drains slot 1, then
    # 3 (ConsumerAttached) goes unhandled on Draining slot 2; read late, the second would be 4
    assert aliased.dispatch_many(slots, aliased.states[:2]) == copied.dispatch_many(
        slots, copied.states[:2].copy()) == 1
    np.testing.assert_array_equal(aliased.states, copied.states)
    np.testing.assert_array_equal(aliased.unhandled, copied.unhandled)
    assert aliased.unhandled[2] == 1
