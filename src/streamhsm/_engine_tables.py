"""The tables the engine runs, built from a compiled machine (part of the compiler layer).

:class:`EngineTables` pads a :class:`~streamhsm.compiler.CompiledMachine`'s tables to one row
per (uint8 state code, flag bitmask) and adds what the kernels read (kinds, the one-load step
table, transition cells, history programs); :func:`table_layout` / :func:`table_arrays` are the
per-table arrays a :class:`~streamhsm.MachineTable` (and its shared-memory segment) holds.
Re-exported by :mod:`streamhsm.compiler`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._views import readonly_view
from .machine import FREE_SLOT

if TYPE_CHECKING:
    from .compiler import CompiledMachine, _PseudoTables

__all__ = [
    "CODE_ROWS",
    "KIND_HISTORY",
    "KIND_INTERNAL",
    "KIND_TRANSITION",
    "KIND_UNHANDLED",
    "STEP_MOVED",
    "STEP_UNHANDLED",
    "TIMER_BLOCK",
    "EngineTables",
    "pack_flags",
    "table_arrays",
    "table_layout",
]

#: Rows of every padded engine table per flag bitmask: one per ``uint8`` code (the free code
#: included). The kernel's ``HSM_CODE_ROWS``.
CODE_ROWS = FREE_SLOT + 1
#: What dispatching an event in a state does (the ``kind`` table; the kernel's ``HSM_KIND_*``).
KIND_INTERNAL = 0      # handled without a transition (or a free slot): nothing to do
KIND_TRANSITION = 1    # a handler with a target: exits and entries, maybe a new leaf
KIND_UNHANDLED = 2     # no state handles it: counted
KIND_HISTORY = 3       # a transition that reads or writes history records (runs a program)
#: Bits of the ``step`` table above the next leaf (the kernel's ``HSM_STEP_UNHANDLED`` and
#: ``HSM_STEP_MOVED``).
STEP_UNHANDLED = CODE_ROWS
STEP_MOVED = STEP_UNHANDLED << 1
#: Where a history cell's fast code (``_pseudo.Chains.fast_code``) starts in the ``step``
#: table (the kernel's ``HSM_STEP_FAST_SHIFT``): the bits above ``STEP_MOVED``.
STEP_FAST_SHIFT = STEP_MOVED.bit_length()


class _Immutable:
    """Attributes are set in ``__init__`` only: afterwards every assignment or deletion raises
    ``AttributeError`` (the engine binds raw pointers and sizes from them once)."""

    __slots__ = ("_sealed",)

    def _seal(self) -> None:
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, key: str, value: Any) -> None:
        if getattr(self, "_sealed", False):
            raise AttributeError(f"{type(self).__name__} is immutable: cannot set {key!r}")
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {key!r}")


class EngineTables(_Immutable):
    """A machine's tables as the engine runs them: one row per (uint8 state code, flag bitmask),
    ``row = code << flag_bits | mask`` (one row per code for a flag-free machine), so
    ``CODE_ROWS << flag_bits`` rows of ``n_events`` columns, the free rows included (mapping to
    themselves and counting nothing), all read-only.

    - ``next_state[row, e]`` (uint8): the leaf after dispatching ``e``.
    - ``handled[row, e]`` / ``unhandled[row, e]`` (uint8): 1 if some state handled / nobody
      handled the event (both 0 on the free rows).
    - ``kind[row, e]`` (uint8): what dispatching does (``KIND_INTERNAL``, ``KIND_TRANSITION``,
      ``KIND_UNHANDLED``).
    - ``handler[row, e]`` (int16): the state whose handler ran, -1 if none.
    - ``step[row, e]`` (uint16): the next leaf, plus ``STEP_UNHANDLED`` (the first value above
      every code) if unhandled, plus ``STEP_MOVED`` if a transition (both bits: a history
      cell, whose next leaf the kernels find by running its program; below the bits, the leaf
      it rests in if it only writes records, ``FREE_SLOT`` if it reads one; above them, from
      ``STEP_FAST_SHIFT``, its fast code, ``_pseudo.Chains.fast_code``: a program the kernels
      need not run).
    - ``tcells`` (int32): the flat indices ``row * n_events + e`` of the transition cells.
    - ``member[s, code]`` (bool, ``n_states`` rows of ``CODE_ROWS``): a slot in state ``code``
      is in state ``s`` (ancestors included).
    - ``flag_bits``: the machine's number of flags; ``n_events``: its number of events.

    A machine with history records (``n_owners > 0``) also has, for its ``KIND_HISTORY`` cells
    (see ``_pseudo.py`` and ``hsm_history_run`` in ``_kernel.pxd``):

    - ``hstart[row, e]`` (int32): where the cell's program starts in ``hprog`` (-1: not a
      history cell); ``harrive[row]`` (int32, ``row = leaf << flag_bits | mask``): the program
      that follows arriving at ``leaf`` after a history read (-1 if none is needed).
    - ``hprog`` (uint32): the programs; ``hlut`` (uint8, ``2 * n_owners`` rows of
      ``CODE_ROWS``): row ``owner * 2 + kind`` (0 shallow, 1 deep) maps a record to the leaf
      the history entry resolves to.
    - ``initial_records`` (uint8, ``n_owners``): the records of a freshly opened slot.
    Without history these are empty and ``n_owners`` is 0.
    """

    __slots__ = ("flag_bits", "handled", "handler", "harrive", "hlut", "hprog", "hstart",
                 "initial_records", "kind", "member", "n_events", "n_owners", "next_state",
                 "step", "tcells", "unhandled")

    next_state: np.ndarray
    handled: np.ndarray
    unhandled: np.ndarray
    kind: np.ndarray
    handler: np.ndarray
    step: np.ndarray
    tcells: np.ndarray
    member: np.ndarray
    flag_bits: int
    n_events: int
    n_owners: int
    hstart: np.ndarray
    harrive: np.ndarray
    hprog: np.ndarray
    hlut: np.ndarray
    initial_records: np.ndarray

    def __init__(self, machine: CompiledMachine, pseudo: _PseudoTables | None = None) -> None:
        n_s, n_e, k = machine.n_states, machine.n_events, machine.n_flags
        masks = 1 << k

        def rows(table: np.ndarray, pad: Any, dtype: Any) -> np.ndarray:
            # (masks, n_s, n_e) compiled -> (CODE_ROWS, masks, n_e) padded -> (rows, n_e)
            out = np.empty((CODE_ROWS, masks, n_e), dtype=dtype)
            out[:] = pad
            out[:n_s] = (table if k else table[None]).transpose(1, 0, 2)
            return out.reshape(CODE_ROWS * masks, n_e)

        codes = np.arange(CODE_ROWS, dtype=np.uint8)[:, None, None]
        nxt = rows(machine.next_state, codes, np.uint8)
        handled = rows(machine.handled, 0, np.uint8)
        handler = rows(machine.handler, -1, np.int16)
        transition = rows(machine.exit_path[..., 0] >= 0, False, bool) & (handled == 1)
        used = rows(np.ones(machine.handled.shape, np.uint8), 0, np.uint8)  # 0 on the free rows
        unhandled = used & (handled ^ 1)
        # the free rows: internal (nothing to do)
        kind = np.where(unhandled == 1, KIND_UNHANDLED,
                        np.where(transition, KIND_TRANSITION, KIND_INTERNAL)).astype(np.uint8)
        hstart = np.full((CODE_ROWS << k, n_e), -1, np.int32)
        harrive = np.full(CODE_ROWS << k, -1, np.int32)
        if pseudo is not None and pseudo.n_owners:
            for (mask, leaf, e), start in pseudo.cells.items():
                hstart[leaf << k | mask, e] = start
                kind[leaf << k | mask, e] = KIND_HISTORY
                transition[leaf << k | mask, e] = False  # not for the chunked batch loops
            for (mask, leaf), start in pseudo.arrive.items():
                harrive[leaf << k | mask] = start
        self.n_owners = 0 if pseudo is None else pseudo.n_owners
        self.hstart = readonly_view(hstart)
        self.harrive = readonly_view(harrive)
        self.hprog = readonly_view(np.zeros(1, np.uint32) if pseudo is None else pseudo.program)
        self.hlut = readonly_view(np.zeros((0, CODE_ROWS), np.uint8) if pseudo is None
                                  else pseudo.lut)
        self.initial_records = readonly_view(np.zeros(0, np.uint8) if pseudo is None
                                             else pseudo.initial_records)
        step = (nxt.astype(np.uint16) | unhandled.astype(np.uint16) * STEP_UNHANDLED
                | transition.astype(np.uint16) * STEP_MOVED)
        # a history cell carries both bits: the chunk kernels run its program where it occurs;
        # below them the leaf it rests in when no record is read (FREE_SLOT when it reads one)
        if pseudo is not None and pseudo.n_owners:
            for (mask, leaf, e), start in pseudo.cells.items():
                fast = pseudo.chains.fast_code(pseudo.program, start, leaf, mask, pseudo.lut,
                                               pseudo.arrive)
                step[leaf << k | mask, e] = (pseudo.static[mask, leaf, e]
                                             | STEP_UNHANDLED | STEP_MOVED
                                             | fast << STEP_FAST_SHIFT)
        # the cells the batch kernels count as transitions (history cells too: see the kernels)
        tcells = np.flatnonzero((transition | (kind == KIND_HISTORY)).ravel()).astype(np.int32)
        member = np.zeros((n_s, CODE_ROWS), dtype=bool)
        for s in range(n_s):
            member[s, list(machine.leaves_under[s])] = True
        self.next_state = readonly_view(nxt)
        self.handled = readonly_view(handled)
        self.unhandled = readonly_view(unhandled)
        self.kind = readonly_view(kind)
        self.handler = readonly_view(handler)
        self.step = readonly_view(step)
        self.tcells = readonly_view(tcells)
        self.member = readonly_view(member)
        self.flag_bits = k
        self.n_events = n_e
        self._seal()

    def sizes(self, machine: Any) -> tuple[int, int, int]:
        """``(n_states, n_events, flag_bits)`` read from the shapes of the arrays themselves (the
        sizes the engine indexes them with), after checking that every array the engine binds
        agrees with them and with ``machine``'s attributes: a ``ValueError`` names a mismatch
        (an attribute rewritten behind the machine's seal, say)."""
        rows, n_e = self.next_state.shape
        n_s = self.member.shape[0]
        k = (rows // CODE_ROWS).bit_length() - 1
        found = {"next_state rows": rows, "member columns": self.member.shape[1]}
        want = {"next_state rows": CODE_ROWS << k, "member columns": CODE_ROWS}
        for name in ("handled", "unhandled", "kind", "step", "hstart"):
            found[f"{name} shape"] = getattr(self, name).shape
            want[f"{name} shape"] = (rows, n_e)
        found["harrive shape"], want["harrive shape"] = self.harrive.shape, (rows,)
        n_o = self.initial_records.shape[0]
        found["hlut shape"], want["hlut shape"] = self.hlut.shape, (2 * n_o, CODE_ROWS)
        attrs = {"n_states": n_s, "n_events": n_e, "n_flags": k}
        for name, value in attrs.items():
            found[f"machine.{name}"], want[f"machine.{name}"] = getattr(machine, name), value
        found["state_members"] = len(machine.state_members)
        want["state_members"] = n_s
        found["tables.n_events"], want["tables.n_events"] = self.n_events, n_e
        found["tables.flag_bits"], want["tables.flag_bits"] = self.flag_bits, k
        found["tables.n_owners"], want["tables.n_owners"] = self.n_owners, n_o
        for name, value in found.items():
            if type(value) is not type(want[name]) or value != want[name]:
                raise ValueError(f"machine tables disagree: {name} is {value!r}, but the engine "
                                 f"tables' shapes give {want[name]!r}")
        if not 0 <= machine.initial_leaf < n_s:
            raise ValueError(f"machine tables disagree: initial leaf {machine.initial_leaf!r} is "
                             f"not a state code below {n_s}")
        if not 0 < n_s <= CODE_ROWS - 1 or self.tcells.size and (
                int(self.tcells.min()) < 0 or int(self.tcells.max()) >= rows * n_e):
            raise ValueError(f"machine tables disagree: {n_s} states or tcells out of range")
        return n_s, n_e, k


#: Slots per block of a table's deadline summary (the kernel's ``1 << HSM_TIMER_BLOCK_SHIFT``).
TIMER_BLOCK = 1 << 10


def table_layout(capacity: int, n_events: int, n_owners: int = 0,
                 n_timers: int = 0) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
    """The per-table arrays of a :class:`~streamhsm.MachineTable` as ``name -> (dtype, shape)``,
    in storage order (the shared-memory layout follows it); a machine with ``n_owners`` history
    owners adds ``history`` (uint8, one column of ``capacity`` records per owner) at the end, a
    machine with ``n_timers`` timers adds ``deadlines`` (int64, one column per timer),
    ``clock`` (int64: the clock, then a lower bound of every armed deadline),
    ``timer_blocks`` (int64: a lower bound per block of :data:`TIMER_BLOCK` slots) and
    ``skipped`` (int64: periods skipped, per timer)."""
    extra: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = (
        {"history": (np.dtype(np.uint8), (n_owners, capacity))} if n_owners else {})
    if n_timers:
        i64 = np.dtype(np.int64)
        extra.update(deadlines=(i64, (n_timers, capacity)), clock=(i64, (2,)),
                     timer_blocks=(i64, (-(-capacity // TIMER_BLOCK),)),
                     skipped=(i64, (n_timers,)))
    return {
        "counts": (np.dtype(np.int64), (CODE_ROWS,)),
        "transitions": (np.dtype(np.int64), (CODE_ROWS, n_events)),
        "unhandled": (np.dtype(np.uint64), (capacity,)),
        "free": (np.dtype(np.int32), (capacity,)),
        "flags": (np.dtype(np.uint8), (capacity,)),
        "states": (np.dtype(np.uint8), (capacity,)),
        **extra,
    }


def table_arrays(capacity: int, n_events: int, arrays: dict[str, np.ndarray] | None = None,
                 n_owners: int = 0, n_timers: int = 0) -> dict[str, np.ndarray]:
    """The per-table arrays of :func:`table_layout`: new ones (``arrays`` None), or the
    caller's storage (shared memory, say) checked to have exactly those dtypes and shapes,
    C-contiguous and writeable (``ValueError`` naming the first that does not). Each is read
    from ``arrays`` once and returned as a plain ``numpy.ndarray`` view of the same memory
    (a subclass's ``shape`` or ``flags``, a mapping's ``__getitem__``, could lie about it)."""
    shapes = table_layout(capacity, n_events, n_owners, n_timers)
    if arrays is None:
        return {name: np.empty(shape, dtype) for name, (dtype, shape) in shapes.items()}
    out = {}
    for name, (dtype, shape) in shapes.items():
        arr = arrays.get(name)
        if isinstance(arr, np.ndarray):
            arr = np.ndarray.view(arr, np.ndarray)  # the base class's view: no subclass code
        if (not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape
                or not arr.flags.c_contiguous or not arr.flags.writeable):
            raise ValueError(f"arrays[{name!r}] must be a writeable C-contiguous {dtype} "
                             f"array of shape {shape}")
        out[name] = arr
    return out


def pack_flags(flags: np.ndarray, shift: int, size: int) -> np.ndarray:
    """The packed copy of per-slot flag bitmasks a table keeps for its batch kernels (see
    ``hsm_packed_flags`` in ``_kernel.pxd``): ``1 << shift`` slots per byte, slot ``i`` in bits
    ``(i % (1 << shift)) * (8 >> shift)`` and up of byte ``i >> shift``; ``size`` bytes."""
    per, width = 1 << shift, 8 >> shift
    padded = np.zeros(size * per, np.uint8)
    padded[:flags.shape[0]] = flags
    lanes = padded.reshape(size, per).astype(np.uint16) << (np.arange(per, dtype=np.uint16) * width)
    return np.bitwise_or.reduce(lanes, axis=1).astype(np.uint8)  # type: ignore[no-any-return]
