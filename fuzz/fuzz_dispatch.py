"""Harness 3: ``dispatch_many``, ``broadcast`` and the single-slot entry points on random arrays,
dtypes and values, on a ``StreamTable`` and on a ``MachineTable`` of the lease machine.

The input bytes drive a sequence of operations (``common.Provider``). Arrays get any dtype
(wrong widths, signed/unsigned, big-endian, float, bool, complex, strings, structured, object),
any length (mismatched too), 0-d and 2-d shapes, negative and non-unit strides, read-only
buffers, ``np.ndarray`` subclasses and non-arrays; values are open slots, free slots and extremes.

Oracles, after every operation:
- a raised ``TypeError``/``ValueError``/``IndexError`` (or a project error) left the table
  exactly as it was (states, unhandled counters, transition counts, len, unhandled total);
- a successful ``dispatch_many`` gives the same result as dispatching element by element, in
  order, on a clone of the table (the same for ``broadcast``);
- ``len(table)`` equals the number of open states and every occupancy count equals the state
  histogram;
- the read-only views (``states``, ``unhandled``, ``transition_counts``) cannot be re-flagged
  writeable.
Any other exception, a crash or a hang is a finding.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np

from streamhsm import FREE_SLOT, MachineTable, StreamTable
from streamhsm.driver import lease_machine

from common import PROJECT_ERRORS, byte_mutate, Finding, Provider, table_invariants, table_state

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
    for name in ("states", "unhandled", "transition_counts"):
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
        for s, e in zip(np.asarray(slots).tolist(), np.asarray(events).tolist()):
            handled += bool(clone.dispatch(int(s), int(e)))
    except ACCEPTED as exc:
        raise Finding(f"dispatch_many accepted a batch that dispatch() rejects: {exc!r}") from exc
    return handled

mutate = byte_mutate  # the input is a choice stream: plain byte mutations fit it


def seeds() -> list[bytes]:
    """Deterministic random byte strings (every input decodes to an operation sequence)."""
    return [random.Random(i).randbytes(600) for i in range(24)]


def test_one_input(data: bytes) -> None:
    p = Provider(data)
    cap = p.pick((1, 2, 3, 8, 64))
    if p.boolean():
        table: MachineTable = StreamTable(cap, drain_on_producer_loss=p.boolean())
    else:
        table = MachineTable(lease_machine(), cap)
    for _ in range(p.int_in(0, cap)):
        table.open()
    for _ in range(p.int_in(0, 20)):
        if p.remaining() == 0:
            break
        open_slots = _open_slots(table)
        before = table_state(table)
        op = p.byte() % 11
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
            else:
                s = _slot(p, table, open_slots)
                table.is_open(s)
                state = p.pick([0, 1, 2, 5, 7, 255, -1, 2**63, "Live", "Closed", "nope", None])
                for call in (lambda: table.state(s), lambda: table.is_in(s, state),
                             lambda: table.count(state), lambda: table.slots_in(state)):
                    try:
                        call()
                    except ACCEPTED:
                        pass
        except ACCEPTED:
            if table_state(table) != before:
                raise Finding(f"operation {op} raised but changed the table") from None
        table_invariants(table)
