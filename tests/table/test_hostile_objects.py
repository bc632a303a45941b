"""Caller objects whose methods run code (issue 19, classes 1, 3 and 7): a snapshot mapping, its
strs and arrays, and the arrays and scalars of the batch entry points are copied into owned,
exact-type objects before anything is checked, looked up or locked; snapshots take the table
lock; no caller method runs while the lock is held."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from streamhsm import Event, MachineTable, State, StreamTable, stream_spec
from streamhsm.snapshot import SnapshotError

LIVE = int(State.LIVE)  # a composite state: never the state of a slot


def _table() -> StreamTable:
    t = StreamTable(8)
    for _ in range(6):
        t.open()
    t.dispatch(1, Event.STREAM_PROVISIONED)
    t.release(4)
    return t


class RewritingDict(dict):  # type: ignore[type-arg]
    """A snapshot whose ``get``/``__getitem__`` rewrite the (already checked) states array to
    hold a composite state, and count how often they ran."""

    calls = 0

    def _rewrite(self) -> None:
        RewritingDict.calls += 1
        states = dict.__getitem__(self, "states")
        states[0] = LIVE

    def get(self, key: Any, default: Any = None) -> Any:
        if key == "transitions":
            self._rewrite()
        return dict.get(self, key, default)

    def __getitem__(self, key: Any) -> Any:
        if key == "transitions":
            self._rewrite()
        return dict.__getitem__(self, key)


def test_a_dict_subclass_cannot_rewrite_a_checked_array() -> None:
    src = _table()
    snap = RewritingDict(src.snapshot())
    RewritingDict.calls = 0
    t = StreamTable(8)
    t.restore(snap)
    assert RewritingDict.calls == 0  # read through dict's own storage
    assert LIVE not in t.states.tolist() and t.states.tolist() == src.states.tolist()
    assert t.count(State.LIVE) == src.count(State.LIVE)


class RewritingStr(str):
    """A str whose comparisons rewrite the snapshot's states array after it was checked."""

    target: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if RewritingStr.target is not None:
            RewritingStr.target[0] = LIVE
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


@pytest.mark.parametrize("key", ["kind", "fingerprint", "machine"])
def test_a_str_subclass_cannot_rewrite_a_checked_array(key: str) -> None:
    src = _table()
    snap = src.snapshot()
    RewritingStr.target = snap["states"]
    snap[key] = RewritingStr(snap[key])
    try:
        t = StreamTable(8)
        t.restore(snap)
    finally:
        RewritingStr.target = None
    assert t.states.tolist() == src.states.tolist()


class LyingArray(np.ndarray):
    """An ndarray whose Python-level ``shape``, ``ndim`` and ``reshape`` lie or run code."""

    on_reshape: Any = None

    @property  # type: ignore[misc]
    def shape(self) -> tuple[int, ...]:
        return (4,)

    @property  # type: ignore[misc]
    def ndim(self) -> int:
        return 1

    def reshape(self, *args: Any, **kwargs: Any) -> Any:
        if LyingArray.on_reshape is not None:
            LyingArray.on_reshape()
        return np.ndarray.reshape(self, *args, **kwargs)


def test_set_flag_many_takes_lengths_from_the_buffer() -> None:
    """A values array that claims 4 elements over a 1-element buffer is refused by its real
    length; nothing past its buffer is read, nothing changes."""
    spec = stream_spec()
    spec.flag("hot")
    t = MachineTable(spec.compile(), 8)
    for _ in range(4):
        t.open()
    values = np.ones(1, np.uint8).view(LyingArray)
    with pytest.raises(ValueError, match="same length, got 4 and 1"):
        t.set_flag_many(np.arange(4, dtype=np.int64), "hot", values)
    assert t.flags.tolist() == [0] * 8


def test_dispatch_many_takes_lengths_from_the_buffer() -> None:
    t = _table()
    events = np.full(1, int(Event.CLOSE), np.uint8).view(LyingArray)
    with pytest.raises(ValueError, match="same length, got 4 and 1"):
        t.dispatch_many(np.arange(4, dtype=np.int64), events)
    assert t.count(State.CLOSED) == 0
    slots = np.array([0, 2], np.int64).view(LyingArray)  # lies about its 2 elements: read as 2
    assert t.dispatch_many(slots, np.full(2, int(Event.CLOSE), np.uint8)) == 2
    assert t.count(State.CLOSED) == 2


def test_restore_calls_no_caller_method_under_the_lock() -> None:
    """A transitions array whose ``reshape`` dispatches on the table: restore converts it before
    taking the lock (a reshape under the lock deadlocked)."""
    src = _table()
    snap = src.snapshot()
    t = StreamTable(8)
    t.open()
    ran: list[bool] = []
    LyingArray.on_reshape = lambda: ran.append(t.open())  # waits for the lock if held
    snap["transitions"] = snap["transitions"].view(LyingArray)
    call = threading.Thread(target=t.restore, args=(snap,), daemon=True)
    try:
        call.start()
        call.join(30)
    finally:
        LyingArray.on_reshape = None
    assert not call.is_alive(), "restore deadlocked on a caller's method under the table lock"
    assert ran == [] and t.states.tolist() == src.states.tolist()


def test_snapshot_waits_for_a_running_batch(paused_batch: Any) -> None:
    t = StreamTable(8)
    for _ in range(4):
        t.open()
    slots = np.arange(4, dtype=np.int64)
    batch = paused_batch(t, slots, np.full(4, int(Event.STREAM_PROVISIONED), np.uint8))
    waiting = batch.queue(t.snapshot)
    batch.resume()
    waiting.join()
    assert waiting.error is None
    snap = waiting.result
    assert snap["states"][:4].tolist() == [int(State.ACTIVE)] * 4  # all after, none before
    StreamTable(8).restore(snap)


class Releasing:
    """An ``__index__`` that releases slot 0 of a table before it answers."""

    def __init__(self, t: StreamTable, value: int) -> None:
        self.t, self.value = t, value

    def __index__(self) -> int:
        if self.t.is_open(0):
            self.t.release(0)
        return self.value


@pytest.mark.parametrize("call", ["is_in", "flag"])
def test_arguments_are_converted_before_the_slot_is_looked_up(call: str) -> None:
    """Every argument's own code runs before the slot is checked: a slot released by another
    argument's ``__index__`` is refused, not read."""
    if call == "is_in":
        t = _table()
        with pytest.raises(IndexError, match="slot 0 is not open"):
            t.is_in(0, Releasing(t, int(State.LIVE)))
    else:
        spec = stream_spec()
        spec.flag("hot")
        t = MachineTable(spec.compile(), 4)  # type: ignore[assignment]
        t.open()

        class Name(str):
            def __eq__(self, other: object) -> bool:
                if t.is_open(0):
                    t.release(0)
                return str.__eq__(self, other)

            __hash__ = str.__hash__

        with pytest.raises(IndexError, match="slot 0 is not open"):
            t.flag(0, Name("hot"))


def test_strided_arrays_are_copied_once() -> None:
    spec = stream_spec()
    spec.flag("hot")
    t = MachineTable(spec.compile(), 8)
    for _ in range(6):
        t.open()
    t.set_flag_many(np.arange(6, dtype=np.int64)[::2], "hot", np.ones(6, bool)[::2])
    assert t.flags.tolist() == [1, 0, 1, 0, 1, 0, 0, 0]
    t.set_flag_many(np.arange(6, dtype=np.int32)[::-1], "hot", False)
    assert t.flags.tolist() == [0] * 8
    events = np.full(6, int(Event.STREAM_PROVISIONED), np.uint8)[::2]
    assert t.dispatch_many(np.arange(6, dtype=np.int64)[::2], events) == 3
    assert [t.state(s) for s in range(6)] == [State.ACTIVE, State.INIT] * 3


def test_an_uncompiled_spec_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"got MachineSpec \(call spec.compile\(\) first\)"):
        MachineTable(stream_spec(), 10)
    with pytest.raises(TypeError, match="machine must be a CompiledMachine, got int"):
        MachineTable(42, 10)


def test_snapshot_values_that_are_not_plain_data_are_refused() -> None:
    snap = _table().snapshot()
    snap["states"] = snap["states"].astype(object)
    t = StreamTable(8)
    with pytest.raises(SnapshotError, match="'states' is an array of objects"):
        t.restore(snap)
    assert len(t) == 0


def test_plain_value_subclasses_are_copied_into_their_base_type() -> None:
    """own() copies an int, float, str or bytes subclass into its exact base type without calling
    the subclass's overridable conversions (bytes through its buffer: no bytes.__bytes__ before
    Python 3.11)."""
    from streamhsm._owned import own

    class LyingBytes(bytes):
        def __bytes__(self) -> bytes:
            raise AssertionError("a caller's method ran")

    class LyingInt(int):
        def __index__(self) -> int:
            raise AssertionError("a caller's method ran")

    class LyingStr(str):
        def __str__(self) -> str:
            raise AssertionError("a caller's method ran")

    out = own({"b": LyingBytes(b"ab\x00"), "i": LyingInt(7), "s": LyingStr("x")})
    assert out == {"b": b"ab\x00", "i": 7, "s": "x"}
    assert [type(v) for v in out.values()] == [bytes, int, str]
