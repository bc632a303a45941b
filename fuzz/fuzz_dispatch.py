"""Harness 3: ``dispatch_many``, ``broadcast`` and the single-slot entry points on random arrays,
dtypes and values, on a ``StreamTable``, on a ``MachineTable`` of the lease machine, and on a
``MachineTable`` of a machine with 1 to 4 flags (guards, a deep initial transition), where
``set_flag``, ``set_flag_many`` and ``flag`` get the same hostile arguments and big batches
(>= 2048 events: the chunk kernels, which read the packed copy of the flags) run too.

The input bytes drive a sequence of operations (``common.Provider``). Arrays get any dtype
(wrong widths, signed/unsigned, big-endian, float, bool, complex, strings, structured, object),
any length (mismatched too), 0-d and 2-d shapes, negative and non-unit strides, read-only
buffers, ``np.ndarray`` subclasses (``common.LyingArray`` lies about its shape: the engine must
read the buffer), and non-arrays; values are open slots, free slots and extremes.

Oracles, after every operation:
- a raised ``TypeError``/``ValueError``/``IndexError`` (or a project error) left the table
  exactly as it was (states, unhandled counters, transition counts, len, unhandled total);
- a successful ``dispatch_many`` gives the same result as dispatching element by element, in
  order, on a clone of the table (the same for ``broadcast``);
- a big batch (>= 2048 events) gives the same result as the same events run in batches below
  2048 (the per-event kernel, which reads the flag bytes) on a clone;
- an accepted ``set_flag``/``set_flag_many`` sets exactly the flags asked for (repeats: the last
  value wins) and nothing else; on a flag-free table every flag call raises;
- ``len(table)`` equals the number of open states, every occupancy count equals the state
  histogram, flags are below ``2**n_flags`` and 0 on free slots;
- the read-only views (``states``, ``flags``, ``unhandled``, ``transition_counts``) cannot be
  re-flagged writeable.
Any other exception, a crash or a hang is a finding.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np

from streamhsm import FREE_SLOT, MachineTable, StreamTable
from streamhsm.driver import lease_machine

from common import (
    PROJECT_ERRORS,
    Finding,
    LyingArray,
    Provider,
    byte_mutate,
    flagged_machine,
    table_invariants,
    table_state,
)

NAME = "dispatch"
MAX_LEN = 4096
ACCEPTED = (TypeError, ValueError, IndexError) + PROJECT_ERRORS

_DTYPES: tuple[Any, ...] = (
    np.int32, np.int64, np.uint8, np.int32, np.int64, np.uint8,  # the accepted ones, more often
    np.int8, np.int16, np.uint16, np.uint32, np.uint64, np.float32, np.float64, np.bool_,
    np.complex128, ">i4", ">i8", "<i4", "U3", "S4", [("a", "<i4")], object, np.intp, np.longlong,
    np.intc, "M8[ns]", "m8[ns]", np.float16,
)


def _clone(table: MachineTable) -> MachineTable:
    other = (StreamTable(table.capacity, drain_on_producer_loss=table.drain_on_producer_loss)
             if isinstance(table, StreamTable) else MachineTable(table.machine, table.capacity))
    other.restore(table.snapshot())
    return other


def _value(p: Provider, table: MachineTable, open_slots: list[int]) -> int:
    kind = p.byte() % 6
    if kind <= 2 and open_slots:
        return int(p.pick(open_slots))
    if kind == 3:
        return p.int_in(0, table.capacity)  # free, open, or one past the end
    if kind == 4:
        return p.int_in(0, max(1, table.machine.n_events))
    return p.extreme_int()


def _array(p: Provider, table: MachineTable, open_slots: list[int], events: bool) -> Any:
    n = p.pick((0, 1, 2, 3, 5, 8, 16, 33, 200))
    if p.byte() % 16 == 0:
        n += p.int_in(-1, 1)
        n = max(n, 0)
    values = []
    for _ in range(n):
        if events:
            values.append(p.int_in(0, table.machine.n_events - 1) if p.byte() % 5 else
                          p.extreme_int())
        else:
            values.append(_value(p, table, open_slots))
    form = p.byte() % 24
    if form == 0:
        return values                                   # a list, not an array
    if form == 1:
        return None
    dtype = np.dtype(p.pick(_DTYPES))
    try:
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            arr = np.array([min(max(v, info.min), info.max) for v in values], dtype)
        elif dtype.kind == "V":
            arr = np.zeros(n, dtype)
        elif dtype.kind == "O":
            arr = np.array(values, dtype=object)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # overflow in the cast: that is the point
                arr = np.array(values, dtype=object).astype(dtype)
    except (OverflowError, ValueError, TypeError):
        arr = np.zeros(n, dtype)
    if form == 2 and arr.size:
        arr = np.repeat(arr, 2)[::2]                    # strided view
    elif form == 3 and arr.size:
        arr = arr[::-1]                                 # negative stride
    elif form == 4:
        arr = arr.reshape(1, -1)                        # 2-d
    elif form == 5 and arr.size:
        arr = np.asarray(arr[0])                        # 0-d
    elif form == 6:
        arr.flags.writeable = False                     # read-only buffer
    elif form == 7:
        arr = np.ma.masked_array(arr)                   # an ndarray subclass
    elif form == 8 and arr.size:
        arr = np.frombuffer(arr.tobytes() + b"\x00", arr.dtype, arr.size, 1) \
            if arr.dtype.kind in "iub" else arr       # unaligned
    elif form == 9:
        arr = memoryview(np.ascontiguousarray(arr)) if arr.dtype.kind in "iu" else arr
    elif form in (10, 11):
        arr = arr.view(LyingArray)                      # lies about shape, ndim, size (issue 19)
    return arr


def _event(p: Provider, table: MachineTable) -> Any:
    kind = p.byte() % 8
    if kind <= 3:
        return p.int_in(0, table.machine.n_events - 1)
    if kind == 4:
        return p.pick(list(table.machine.event_names) + ["", "nope", "close", "Close\x00"])
    if kind == 5:
        return p.pick([None, 1.0, float("nan"), True, np.int64(2), np.uint64(2**64 - 1), b"Close",
                       np.uint8(3), [1]])
    return p.extreme_int()


def _slot(p: Provider, table: MachineTable, open_slots: list[int]) -> Any:
    if p.byte() % 8 == 0:
        return p.pick([None, 1.5, "0", True, np.int32(0), np.int64(-1), np.uint64(2**63), [0]])
    return _value(p, table, open_slots)


def _try_to_write_through_views(table: MachineTable) -> None:
    """The read-only views handed out must stay read-only (issue 9 item 3)."""
    for name in ("states", "flags", "unhandled", "transition_counts"):
        view = getattr(table, name)
        try:
            view.flags.writeable = True
        except ValueError:
            continue
        raise Finding(f"table.{name} can be made writeable (flags.writeable = True succeeded)")


def _open_slots(table: MachineTable) -> list[int]:
    return [int(s) for s in np.flatnonzero(np.asarray(table.states) != FREE_SLOT)]


def _compare(table: MachineTable, clone: MachineTable, got: Any, want: int, what: str) -> None:
    if got != want or table_state(table) != table_state(clone):
        raise Finding(f"{what}: result {got!r} or table state differs from dispatching one by one "
                      f"(expected {want})")


def _sequential(clone: MachineTable, slots: Any, events: Any) -> int:
    handled = 0
    try:
        for s, e in zip(np.asarray(slots).tolist(), np.asarray(events).tolist(), strict=False):
            handled += bool(clone.dispatch(int(s), int(e)))
    except ACCEPTED as exc:
        raise Finding(f"dispatch_many accepted a batch that dispatch() rejects: {exc!r}") from exc
    return handled

_FLAG_VALUES: tuple[Any, ...] = (True, False, np.True_, np.False_, 0, 1, 2, None, "True",
                                 np.uint8(1), 1.0, [True])


def _flag_name(p: Provider, table: MachineTable) -> Any:
    names = list(table.machine.flag_names)
    if names and p.byte() % 4:
        return p.pick(names)
    return p.pick(["f0", "f4", "", "!f0", "F0", "f0 ", b"f0", 0, None, np.str_("f0"), "f1"])


def _flag_values(p: Provider, table: MachineTable, n: int) -> Any:
    """One bool (or something else) for all, or an array of any dtype, length and layout whose
    entries are mostly 0/1 (sometimes 2, 255 or a bool array holding other bytes)."""
    form = p.byte() % 20
    if form < 4:
        return p.pick(_FLAG_VALUES) if form == 0 else p.boolean()
    m = n if p.byte() % 8 else p.int_in(0, n + 1)
    raw = [p.byte() & 1 if p.byte() % 32 else p.pick((2, 3, 128, 255)) for _ in range(m)]
    arr = np.array(raw, np.uint8)
    if form < 8:
        arr = arr.view(np.bool_)                       # bool array (bytes other than 0/1 too)
    elif form == 8:
        arr = arr.astype(p.pick((np.int8, np.int64, np.uint16, np.float32, ">u2")))
    elif form == 9 and arr.size:
        arr = np.repeat(arr, 2)[::2]                    # strided
    elif form == 10:
        arr.flags.writeable = False
    elif form == 11:
        arr = arr.reshape(1, -1)
    elif form == 12:
        arr = np.ma.masked_array(arr)
    elif form == 13 and arr.size:
        arr = np.asarray(arr[0])
    elif form == 14:
        arr = arr.view(LyingArray)                      # lies about its length (issue 19)
    elif form == 15 and arr.size:
        arr = np.repeat(arr, 3)[::3].view(np.bool_)     # a strided bool view
    return arr                                          # 16..19: a uint8 array


def _flag_op(p: Provider, table: MachineTable, open_slots: list[int], op: int) -> None:
    """One flag operation; raises an accepted exception for bad input (the caller checks that
    nothing changed), raises Finding if an accepted one did something else than asked."""
    flagged = table.machine.n_flags > 0
    before = np.array(table.flags, copy=True)
    if op == 11:
        slot, name = _slot(p, table, open_slots), _flag_name(p, table)
        value = p.pick(_FLAG_VALUES) if p.byte() % 4 == 0 else p.boolean()
        table.set_flag(slot, name, value)
        if not flagged:
            raise Finding(
                f"set_flag({slot!r}, {name!r}, {value!r}) on a flag-free machine returned")
        got = table.flag(slot, name)
        if got is not bool(value):
            raise Finding(f"set_flag({slot!r}, {name!r}, {value!r}) then flag() gives {got!r}")
        want = before.copy()
        bit = table.machine.flag_names.index(str(name))
        s = int(slot)
        want[s] = (int(want[s]) & ~(1 << bit)) | (int(bool(value)) << bit)
        if not np.array_equal(np.asarray(table.flags), want):
            raise Finding(f"set_flag({slot!r}, {name!r}, {value!r}) changed other flags")
    elif op in (12, 14):
        if op == 12:  # any array at all
            slots = _array(p, table, open_slots, events=False)
        else:  # int32/int64 slots, mostly open ones (repeats, and now and then a bad one)
            n = p.pick((1, 2, 3, 7, 8, 9, 16, 33, 64, 100))
            slots = np.array([min(max(_value(p, table, open_slots), -2**63), 2**63 - 1)
                              if p.byte() % 16 == 0 or not open_slots else p.pick(open_slots)
                              for _ in range(n)], np.int64)
            slots = slots.astype(np.int32) if p.boolean() and (
                np.abs(slots) < 2**31).all() else slots
        name = _flag_name(p, table)
        n = slots.shape[0] if isinstance(slots, np.ndarray) and slots.ndim == 1 else 1
        values = _flag_values(p, table, n)
        table.set_flag_many(slots, name, values)
        if not flagged:
            raise Finding(f"set_flag_many(..., {name!r}, ...) on a flag-free machine returned")
        got = np.array(table.flags, copy=True)
        bit = table.machine.flag_names.index(str(name))
        exp = before.astype(np.int64)
        sl = np.asarray(slots).tolist()
        vals = ([bool(values)] * len(sl) if not isinstance(values, np.ndarray)
                else np.asarray(values).view(np.uint8).tolist())
        for s, v in zip(sl, vals, strict=False):
            if v not in (0, 1):
                raise Finding(f"set_flag_many accepted value {v!r}")
            exp[s] = (exp[s] & ~(1 << bit)) | (int(v) << bit)
        if not np.array_equal(got, exp.astype(np.uint8)):
            raise Finding(f"set_flag_many set {got.tolist()}, expected {exp.tolist()}")
    else:  # 13: queries
        slot, name = _slot(p, table, open_slots), _flag_name(p, table)
        got = table.flag(slot, name)
        if not flagged:
            raise Finding(f"flag({slot!r}, {name!r}) on a flag-free machine returned")
        bit = table.machine.flag_names.index(str(name))
        if got is not bool(int(table.flags[int(slot)]) >> bit & 1):
            raise Finding(f"flag({slot!r}, {name!r}) is {got!r}, flags says otherwise")


def _big_batch(p: Provider, table: MachineTable, open_slots: list[int]) -> None:
    """A batch of 2048+ events (the chunk kernels: branch-free runs and branchy runs of
    handled-in-place events) against the same events in batches below 2048 on a clone."""
    if not open_slots:
        return
    rng = np.random.default_rng(p.u32())
    n = 2048 + p.int_in(0, 3000)
    m = table.machine
    slots = rng.choice(np.array(open_slots, np.int64), n)
    events = rng.integers(0, m.n_events, n).astype(np.uint8)
    if "Noop" in m.event_names:
        noop = m.event_names.index("Noop")
        for lo in range(0, n, 1024):
            if rng.random() < 0.4:
                events[lo:lo + 1024] = noop
    if p.boolean():
        slots = slots.astype(np.int32)
    if p.boolean():
        events = events.astype(np.int64)
    clone = _clone(table)
    got = table.dispatch_many(slots, events)
    want = sum(clone.dispatch_many(slots[lo:lo + 2000], events[lo:lo + 2000])
               for lo in range(0, n, 2000))
    _compare(table, clone, got, want, f"dispatch_many of {n} events")


mutate = byte_mutate  # the input is a choice stream: plain byte mutations fit it


def seeds() -> list[bytes]:
    """Deterministic random byte strings (every input decodes to an operation sequence)."""
    return [random.Random(i).randbytes(600) for i in range(24)]


def test_one_input(data: bytes) -> None:
    p = Provider(data)
    cap = p.pick((1, 2, 3, 8, 64))
    kind = p.byte()
    if kind & 1:
        table: MachineTable = StreamTable(cap, drain_on_producer_loss=p.boolean())
    elif kind & 2:  # 1..4 flags; capacities across the packed bytes' boundaries
        cap = p.pick((1, 2, 3, 5, 9, 13, 17, 64, 65))
        table = MachineTable(flagged_machine(1 + (kind >> 2) % 4), cap)
    else:
        table = MachineTable(lease_machine(), cap)
    flagged = table.machine.n_flags > 0
    for _ in range(p.int_in(0, cap)):
        table.open()
    for _ in range(p.int_in(0, 20)):
        if p.remaining() == 0:
            break
        open_slots = _open_slots(table)
        before = table_state(table)
        # flag-free tables: the original 11 operations (kept inputs decode as they did)
        op = p.byte() % (17 if flagged else 11)
        if not flagged and op == 9 and p.byte() % 2:
            op = 11 + p.byte() % 4                      # flag calls on a flag-free machine
        clone = _clone(table) if op <= 5 else None
        try:
            if op <= 4:
                slots = _array(p, table, open_slots, events=False)
                events = _array(p, table, open_slots, events=True)
                got = table.dispatch_many(slots, events)
                assert clone is not None
                _compare(table, clone, got, _sequential(clone, slots, events), "dispatch_many")
            elif op == 5:
                event = _event(p, table)
                got = table.broadcast(event)
                assert clone is not None
                try:
                    want = sum(bool(clone.dispatch(s, event)) for s in _open_slots(clone))
                except ACCEPTED as exc:
                    raise Finding(f"broadcast({event!r}) accepted an event dispatch() rejects: "
                                  f"{exc!r}") from exc
                _compare(table, clone, got, want, "broadcast")
            elif op == 6:
                table.dispatch(_slot(p, table, open_slots), _event(p, table))
            elif op == 7:
                table.release(_slot(p, table, open_slots))
            elif op == 8:
                table.open()
            elif op == 10:
                _try_to_write_through_views(table)
            elif op in (11, 12, 13, 14):
                _flag_op(p, table, open_slots, op)
            elif op == 15:
                _flag_op(p, table, open_slots, 14)
            elif op == 16:
                _big_batch(p, table, open_slots)
            else:
                s = _slot(p, table, open_slots)
                table.is_open(s)
                state = p.pick([0, 1, 2, 5, 7, 255, -1, 2**63, "Live", "Closed", "nope", None])
                for call, args in ((table.state, (s,)), (table.is_in, (s, state)),
                                   (table.count, (state,)), (table.slots_in, (state,))):
                    try:
                        call(*args)
                    except ACCEPTED:
                        pass
        except ACCEPTED:
            if table_state(table) != before:
                raise Finding(f"operation {op} raised but changed the table") from None
        table_invariants(table)
