"""Compiled HSM engine: many machine instances in numpy arrays, dispatched without the GIL.

Private module: users import :class:`streamhsm.StreamTable` and :class:`streamhsm.StreamLifecycle`.
Unsafe directives (boundscheck, wraparound) are chosen once in ``setup.py``; never set them here.
"""
cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_release_lock,
)
from libc.stdint cimport uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t
from libc.string cimport memset

cdef extern from "_simd.h":
    const int HSM_SIMD_SCALAR
    const int HSM_SIMD_AVX2
    int hsm_simd_detect() noexcept nogil
    int hsm_simd_level() noexcept nogil
    void hsm_simd_set_cap(int cap) noexcept nogil
    void hsm_map(uint8_t* s, size_t n, const uint8_t* lut) noexcept nogil
    size_t hsm_first_ge_i64(const int64_t* a, size_t n, uint64_t limit) noexcept nogil
    size_t hsm_first_ge_i32(const int32_t* a, size_t n, uint64_t limit) noexcept nogil
    size_t hsm_first_ge_u8(const uint8_t* a, size_t n, uint64_t limit) noexcept nogil

import enum

import numpy as np

from ._observe import TableObserver
from ._views import readonly_view
from .errors import TableFullError
from .snapshot import SNAPSHOT_VERSION, SnapshotError, array as _snap_array, check_header

__all__ = ["FREE_SLOT", "EngineTables", "MachineCodec", "MachineInstance", "MachineTable",
           "engine_tables", "table_layout"]

#: State code stored in ``MachineTable.states`` for a free (released or never opened) slot.
FREE_SLOT = HSM_FREE_SLOT

# Byte-map kernels for broadcast (_simd.h), chosen at run time from the CPU's features.
_SIMD_KERNELS = ("scalar", "ssse3", "avx2")
hsm_simd_detect()


def _simd_kernel():
    """Name of the kernel broadcast uses now: ``"avx2"``, ``"ssse3"`` or ``"scalar"``."""
    return _SIMD_KERNELS[hsm_simd_level()]


def _simd_supported():
    """Names of the kernels this CPU can run, scalar first."""
    return _SIMD_KERNELS[:hsm_simd_detect() + 1]


def _set_simd_kernel(name):
    """Test switch: use no kernel above ``name`` (``"scalar"`` forces the portable loop;
    ``"avx2"`` restores the default). Returns the kernel now in use."""
    if name not in _SIMD_KERNELS:
        raise ValueError(f"unknown kernel {name!r}; expected one of {list(_SIMD_KERNELS)}")
    hsm_simd_set_cap(_SIMD_KERNELS.index(name))
    return _simd_kernel()


def _map_bytes(uint8_t[::1] data, const uint8_t[::1] lut):
    """Test hook: ``data[i] = lut[data[i]]`` in place with the current kernel (``lut``: one byte per code)."""
    if lut.shape[0] != HSM_CODE_ROWS:
        raise ValueError(f"lut must have {HSM_CODE_ROWS} entries, got {lut.shape[0]}")
    if data.shape[0] > 0:
        with nogil:
            hsm_map(&data[0], <size_t>data.shape[0], &lut[0])

ctypedef fused slot_t:
    int32_t
    int64_t

ctypedef fused event_t:
    uint8_t
    int32_t
    int64_t

cdef object _I64 = np.dtype(np.int64)
cdef object _U8 = np.dtype(np.uint8)
_SLOT_DTYPES = (np.dtype(np.int32), _I64)
_EVENT_DTYPES = (_U8, np.dtype(np.int32), _I64)


#: Largest unhandled total a restored snapshot may hold: counters restored from a file keep room
#: to grow, so no later event can wrap them.
_MAX_RESTORED_COUNT = 2**63 - 1


def table_layout(capacity, n_events):
    """The per-table arrays as ``name -> (dtype, shape)``, in storage order."""
    return {
        "counts": (np.dtype(np.int64), (HSM_CODE_ROWS,)),
        "transitions": (np.dtype(np.int64), (HSM_CODE_ROWS, n_events)),
        "unhandled": (np.dtype(np.uint64), (capacity,)),
        "free": (np.dtype(np.int32), (capacity,)),
        "flags": (np.dtype(np.uint8), (capacity,)),
        "states": (np.dtype(np.uint8), (capacity,)),
    }


@cython.final
cdef class EngineTables:
    """A machine's tables as the engine runs them: one row per (uint8 state code, flag bitmask),
    ``row = code << flag_bits | mask`` (one row per code for a flag-free machine), the free rows
    included (mapping to themselves and counting nothing), all read-only.

    - ``next_state[row, e]`` (uint8): the leaf after dispatching ``e``.
    - ``handled[row, e]`` / ``missed[row, e]`` (uint8): 1 if some state handled / nobody
      handled the event (both 0 on the free rows).
    - ``kind[row, e]`` (uint8): what dispatching does (internal, transition, unhandled).
    - ``handler[row, e]`` (int16): the state whose handler ran, -1 if none.
    - ``step[row, e]`` (uint16): the next leaf, plus ``HSM_STEP_MISSED`` (the first value above
      every code) if unhandled, plus ``HSM_STEP_MISSED << 1`` if a transition.
    - ``tcells`` (int32): the flat indices ``row * n_events + e`` of the transition cells.
    - ``member[s, code]`` (bool, ``n_states`` rows): a slot in state ``code`` is in state ``s``
      (ancestors included).
    - ``flag_bits``: the machine's number of flags.
    """
    cdef readonly object next_state, handled, missed, kind, handler, step, tcells, member
    cdef readonly int flag_bits

    def __init__(self, next_state, handled, missed, kind, handler, step, tcells, member,
                 int flag_bits):
        self.next_state = next_state
        self.handled = handled
        self.missed = missed
        self.kind = kind
        self.handler = handler
        self.step = step
        self.tcells = tcells
        self.member = member
        self.flag_bits = flag_bits


def engine_tables(machine):
    """The :class:`EngineTables` of a compiled machine, built once and cached on it (also
    ``CompiledMachine.engine_tables``)."""
    cached = getattr(machine, "_engine_tables", None)
    if cached is not None:
        return cached
    n_s, n_e, k = machine.n_states, machine.n_events, machine.n_flags
    masks = 1 << k

    def rows(table, pad, dtype):
        # (masks, n_s, n_e) compiled -> (HSM_CODE_ROWS, masks, n_e) padded -> (rows, n_e)
        out = np.empty((HSM_CODE_ROWS, masks, n_e), dtype=dtype)
        out[:] = pad
        out[:n_s] = (table if k else table[None]).transpose(1, 0, 2)
        return out.reshape(HSM_CODE_ROWS * masks, n_e)

    codes = np.arange(HSM_CODE_ROWS, dtype=np.uint8)[:, None, None]
    nxt = rows(machine.next_state, codes, np.uint8)
    handled = rows(machine.handled, 0, np.uint8)
    handler = rows(machine.handler, -1, np.int16)
    transition = rows(machine.exit_path[..., 0] >= 0, False, bool) & (handled == 1)
    used = rows(np.ones(machine.handled.shape, np.uint8), 0, np.uint8)  # 0 on the free rows
    missed = used & (handled ^ 1)
    # the free rows: internal (nothing to do)
    kind = np.where(missed == 1, HSM_KIND_UNHANDLED,
                    np.where(transition, HSM_KIND_TRANSITION, HSM_KIND_INTERNAL)).astype(np.uint8)
    step = (nxt.astype(np.uint16) | missed.astype(np.uint16) * HSM_STEP_MISSED
            | transition.astype(np.uint16) * HSM_STEP_MOVED)
    tcells = np.flatnonzero(transition.ravel()).astype(np.int32)
    member = np.zeros((n_s, HSM_CODE_ROWS), dtype=bool)
    for s in range(n_s):
        member[s, list(machine.leaves_under[s])] = True
    cached = EngineTables(*(readonly_view(a) for a in (nxt, handled, missed, kind, handler, step,
                                                       tcells, member)), k)
    machine._engine_tables = cached
    return cached


@cython.final
cdef class MachineCodec:
    """The one conversion of user-supplied states and events to codes for a machine, used by
    every engine entry point (tables, instances, ``CompiledMachine.state_code``/``event_code``,
    the reference interpreter, the shared-memory reader).

    Accepted: an int code (or any ``__index__`` object that is not a bool or an enum, such as
    ``np.int64``), a member of the machine's own enum of that kind, or a declared (CamelCase)
    name. A member of any other enum (another machine's, or the other kind: an ``Event`` where a
    state is expected) is a ``TypeError``; an unknown code or name is a ``ValueError``.

    Args:
        name: the machine's name (for messages).
        state_names, event_names: the declared names, in code order.
        state_enum, event_enum: the machine's ``IntEnum`` classes, or None (then no enum member
            is accepted for that kind).
    """
    cdef readonly str name
    cdef readonly Py_ssize_t n_states, n_events
    cdef readonly object state_enum, event_enum
    cdef dict _state_by_name, _event_by_name

    def __init__(self, str name, state_names, event_names, state_enum=None, event_enum=None):
        self.name = name
        self.n_states = len(state_names)
        self.n_events = len(event_names)
        self.state_enum = state_enum
        self.event_enum = event_enum
        self._state_by_name = {n: i for i, n in enumerate(state_names)}
        self._event_by_name = {n: i for i, n in enumerate(event_names)}

    cpdef Py_ssize_t state(self, object state) except -1:
        """Code of ``state`` (see the class docstring)."""
        return self._code(state, self.state_enum, self._state_by_name, self.n_states, "state")

    cpdef Py_ssize_t event(self, object event) except -1:
        """Code of ``event`` (see the class docstring)."""
        return self._code(event, self.event_enum, self._event_by_name, self.n_events, "event")

    cdef Py_ssize_t _code(self, object value, object own, dict by_name, Py_ssize_t n,
                          str what) except -1:
        cdef int overflow = 0
        cdef long long v
        cdef object t = type(value)
        if t is int or (t is own and own is not None and PyLong_Check(value)):
            v = PyLong_AsLongLongAndOverflow(value, &overflow)
            if overflow == 0 and 0 <= v < n:
                return <Py_ssize_t>v
            raise ValueError(
                f"unknown {what} code {int(value)} for machine {self.name!r} (valid: 0..{n - 1})")
        if isinstance(value, str):
            code = by_name.get(value)
            if code is None:
                raise ValueError(
                    f"unknown {what} name {value!r} for machine {self.name!r}; "
                    f"expected one of {sorted(by_name)}")
            return code
        kinds = f"{own.__name__} member or name" if own is not None else "or name"
        if isinstance(value, enum.Enum):
            raise TypeError(
                f"{what} {value!r} belongs to {t.__name__}, not to the {what}s of machine "
                f"{self.name!r} (an int code, {kinds})")
        if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
            raise TypeError(
                f"{what} must be an int code, {kinds}, got {t.__name__} {value!r}")
        return self._code(int(value.__index__()), own, by_name, n, what)


cdef Py_ssize_t _index_value(object value, str what) except? -2:
    """An int-like value as Py_ssize_t; -1 stands for any out-of-range value."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
            raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
        value = int(value.__index__())
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0 or v < 0:
        return -1
    return <Py_ssize_t>v


cdef void _bind_core(HsmCore* c, EngineTables tables, Py_ssize_t n_events, object transitions,
                     object scratch):
    cdef const uint8_t[:, ::1] nxt = tables.next_state
    cdef const uint8_t[:, ::1] handled = tables.handled
    cdef const uint8_t[:, ::1] missed = tables.missed
    cdef const uint8_t[:, ::1] kind = tables.kind
    cdef const uint16_t[:, ::1] step = tables.step
    cdef const int32_t[::1] tcells = tables.tcells
    cdef int64_t[:, ::1] trans = transitions
    cdef uint32_t[::1] local
    c.next_state = &nxt[0, 0]
    c.handled = &handled[0, 0]
    c.missed = &missed[0, 0]
    c.kind = &kind[0, 0]
    c.step = &step[0, 0]
    c.n_tcells = tcells.shape[0]
    c.tcells = &tcells[0] if c.n_tcells else NULL
    c.transitions = &trans[0, 0]
    c.n_events = n_events
    c.flag_bits = tables.flag_bits
    c.local = NULL
    if scratch is not None:
        local = scratch
        c.local = &local[0]


cdef inline int _raise_if_bad(int rc) except -1:
    if rc < 0:
        raise IndexError("internal error: HSM kernel index out of range (debug build check)")
    return rc


cdef Py_ssize_t _first_invalid(const slot_t[::1] slots, const event_t[::1] events,
                               const HsmCore* c) noexcept nogil:
    """Index of the first (slot, event) pair that is out of range or names a free slot, or -1.

    One unsigned compare per index (a negative index wraps to a huge one); the per-slot
    "is it open" gather runs only when the table has free slots.
    """
    cdef Py_ssize_t i, n = slots.shape[0], bad = slots.shape[0]
    cdef size_t cap = <size_t>c.capacity, n_events = <size_t>c.n_events
    if n == 0:
        return -1
    # two streaming passes (AVX2 where the CPU has it): the first offender is the earlier one
    if slot_t is int64_t:
        bad = <Py_ssize_t>hsm_first_ge_i64(&slots[0], <size_t>n, cap)
    else:
        bad = <Py_ssize_t>hsm_first_ge_i32(&slots[0], <size_t>n, cap)
    if event_t is uint8_t:
        bad = <Py_ssize_t>hsm_first_ge_u8(&events[0], <size_t>bad, n_events)
    elif event_t is int32_t:
        bad = <Py_ssize_t>hsm_first_ge_i32(&events[0], <size_t>bad, n_events)
    else:
        bad = <Py_ssize_t>hsm_first_ge_i64(&events[0], <size_t>bad, n_events)
    cdef Py_ssize_t s
    if c.counts[HSM_FREE_SLOT] != 0:
        for i in range(bad):  # an earlier free slot is the first offender
            s = <Py_ssize_t>slots[i]  # re-checked: the caller may have rewritten it meanwhile
            if <size_t>s >= cap or c.states[s] == HSM_FREE_SLOT:
                return i
    return -1 if bad == n else bad


# Batch-local transition counting (_run_many): one uint32 cell per (row, event), on the stack when
# the machine has at most HSM_STACK_CELLS of them, else in a scratch array the table allocates
# with itself (when it has at most HSM_LOCAL_MAX_CELLS); folded into the table's counters every
# HSM_FOLD_EVENTS events (so no cell can overflow) and at the end of the batch, which leaves every
# cell 0 again.
cdef enum:
    HSM_STACK_CELLS = 8192
    HSM_LOCAL_MAX_CELLS = 65536
    HSM_LOCAL_MIN_EVENTS = 2048    # smaller batches: the per-event kernel (no fold to pay for)
    HSM_CHUNK = 1024               # events between two choices of the chunk kernel
    HSM_FOLD_EVENTS = 1 << 24
    HSM_FLAT_RATE = 16             # branch-free chunks once 1 event in this many transitions


def _local_scratch(machine):
    """The zeroed scratch array of a table's batch-local transition counts, or None if the
    machine's (row, event) cells fit on the stack or are too many (its batches then run event
    by event)."""
    cells = (HSM_CODE_ROWS << machine.n_flags) * machine.n_events
    if cells <= HSM_STACK_CELLS or cells > HSM_LOCAL_MAX_CELLS:
        return None
    return np.zeros(cells, np.uint32)


cdef inline Py_ssize_t _cell(const uint8_t* states, const uint8_t* flags, bint flagged, int fb,
                             int shift, Py_ssize_t s, Py_ssize_t e,
                             Py_ssize_t n_events) noexcept nogil:
    """The (row, event) cell of slot ``s`` and event ``e``; ``flags`` is the packed copy.
    ``flagged`` is a constant at every call site, so a flag-free machine never loads flags."""
    if flagged:
        return (((<Py_ssize_t>states[s] << fb) | hsm_packed_flags(flags, shift, s)) * n_events
                + e)
    return <Py_ssize_t>states[s] * n_events + e


cdef inline Py_ssize_t _chunk_branchy(const slot_t* sl, const event_t* ev, Py_ssize_t lo,
                                      Py_ssize_t hi, uint8_t* states, const uint8_t* flags,
                                      bint flagged, int fb, int shift, uint64_t* unhandled,
                                      uint32_t* local, const uint16_t* step,
                                      Py_ssize_t n_events, size_t cap,
                                      size_t n_ev, bint prefetch, Py_ssize_t* pos,
                                      Py_ssize_t* moved) noexcept nogil:
    """Events [lo, hi) with a branch on the kind: free for handled-in-place events, dear for
    transitions when they are frequent and random. Returns the events that went unhandled,
    ``pos[0]`` = the index it stopped at (hi, or an index that left the valid range), ``moved[0]``
    += transitions taken. Transitions are counted in ``local`` only; the caller folds them into
    the table. ``step[idx]`` (see EngineTables) says all three cases in one load: below
    HSM_STEP_MISSED it is an event handled in place."""
    cdef Py_ssize_t i, s, e, idx
    cdef Py_ssize_t missed = 0, trans = 0
    cdef uint16_t v
    for i in range(lo, hi):
        if prefetch:
            STREAMHSM_PREFETCH(&states[<Py_ssize_t>sl[i + HSM_PREFETCH_DISTANCE]])
            if flagged:
                STREAMHSM_PREFETCH(&flags[<Py_ssize_t>sl[i + HSM_PREFETCH_DISTANCE] >> shift])
        s = <Py_ssize_t>sl[i]
        e = <Py_ssize_t>ev[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            pos[0] = i
            moved[0] += trans
            return missed
        idx = _cell(states, flags, flagged, fb, shift, s, e, n_events)
        v = step[idx]
        if v < HSM_STEP_MISSED:  # handled in place (or a free slot): nothing to do
            continue
        if v & HSM_STEP_MISSED:
            unhandled[s] += 1
            missed += 1
            continue
        trans += 1
        local[idx] += 1
        states[s] = <uint8_t>v
    pos[0] = hi
    moved[0] += trans
    return missed


cdef inline Py_ssize_t _chunk_flat(const slot_t* sl, const event_t* ev, Py_ssize_t lo,
                                   Py_ssize_t hi, uint8_t* states, const uint8_t* flags,
                                   bint flagged, int fb, int shift, uint64_t* unhandled,
                                   uint32_t* local, const uint16_t* step, Py_ssize_t n_events,
                                   size_t cap, size_t n_ev, bint prefetch, Py_ssize_t dist,
                                   Py_ssize_t* pos) noexcept nogil:
    """Like :func:`_chunk_branchy` without a branch on the transition: every event stores its
    next state (unchanged unless it transitions) and counts itself in its cell of ``local`` (the
    fold reads only the transition cells). ``step[idx]`` holds the next state and the unhandled
    bit: one load per event for both."""
    cdef Py_ssize_t i, s, e, idx
    cdef Py_ssize_t missed = 0
    cdef uint16_t v
    for i in range(lo, hi):
        if prefetch:
            STREAMHSM_PREFETCH(&states[<Py_ssize_t>sl[i + dist]])
            if flagged:
                STREAMHSM_PREFETCH(&flags[<Py_ssize_t>sl[i + dist] >> shift])
        s = <Py_ssize_t>sl[i]
        e = <Py_ssize_t>ev[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            pos[0] = i
            return missed
        idx = _cell(states, flags, flagged, fb, shift, s, e, n_events)
        v = step[idx]
        if v & HSM_STEP_MISSED:
            unhandled[s] += 1
            missed += 1
        states[s] = <uint8_t>v
        local[idx] += 1
    pos[0] = hi
    return missed


cdef inline Py_ssize_t _chunk(bint flat, int fb, const slot_t* sl, const event_t* ev,
                              Py_ssize_t lo, Py_ssize_t hi, uint8_t* states,
                              const uint8_t* flags, uint64_t* unhandled, uint32_t* local,
                              const uint16_t* step, Py_ssize_t n_events, size_t cap, size_t n_ev,
                              bint prefetch, Py_ssize_t dist, Py_ssize_t* pos,
                              Py_ssize_t* moved) noexcept nogil:
    """Run one chunk with the kernel chosen (``flat`` or branchy) for a machine with ``fb``
    flags. Every (kernel, number of flags) pair is its own loop, with the flag arithmetic
    (``fb`` and the packing shift, see hsm_packed_flags) as constants: measured, a loop that
    computes them at run time costs up to 1.7x the flag-free one, a constant one 1.1x."""
    if flat:
        if fb == 0:
            return _chunk_flat(sl, ev, lo, hi, states, flags, False, 0, 3, unhandled, local,
                               step, n_events, cap, n_ev, prefetch, dist, pos)
        if fb == 1:
            return _chunk_flat(sl, ev, lo, hi, states, flags, True, 1, 3, unhandled, local,
                               step, n_events, cap, n_ev, prefetch, dist, pos)
        if fb == 2:
            return _chunk_flat(sl, ev, lo, hi, states, flags, True, 2, 2, unhandled, local,
                               step, n_events, cap, n_ev, prefetch, dist, pos)
        if fb == 3:
            return _chunk_flat(sl, ev, lo, hi, states, flags, True, 3, 1, unhandled, local,
                               step, n_events, cap, n_ev, prefetch, dist, pos)
        return _chunk_flat(sl, ev, lo, hi, states, flags, True, 4, 1, unhandled, local,
                           step, n_events, cap, n_ev, prefetch, dist, pos)
    if fb == 0:
        return _chunk_branchy(sl, ev, lo, hi, states, flags, False, 0, 3, unhandled, local,
                              step, n_events, cap, n_ev, prefetch, pos, moved)
    if fb == 1:
        return _chunk_branchy(sl, ev, lo, hi, states, flags, True, 1, 3, unhandled, local,
                              step, n_events, cap, n_ev, prefetch, pos, moved)
    if fb == 2:
        return _chunk_branchy(sl, ev, lo, hi, states, flags, True, 2, 2, unhandled, local,
                              step, n_events, cap, n_ev, prefetch, pos, moved)
    if fb == 3:
        return _chunk_branchy(sl, ev, lo, hi, states, flags, True, 3, 1, unhandled, local,
                              step, n_events, cap, n_ev, prefetch, pos, moved)
    return _chunk_branchy(sl, ev, lo, hi, states, flags, True, 4, 1, unhandled, local,
                          step, n_events, cap, n_ev, prefetch, pos, moved)


cdef void _fold_range(HsmCore* c, uint32_t* local, Py_ssize_t lo,
                      Py_ssize_t hi) noexcept nogil:
    """Fold cells [lo, hi) of ``local`` into the table and clear them: a transition cell
    counted v times moved v slots from its row's state to its next state (the other cells
    counted events handled in place or unhandled, already accounted for)."""
    cdef Py_ssize_t idx, row, state
    cdef int64_t v
    for idx in range(lo, hi):
        v = local[idx]
        if v != 0:
            if c.kind[idx] == HSM_KIND_TRANSITION:
                row = idx // c.n_events
                state = row >> c.flag_bits
                c.transitions[state * c.n_events + idx - row * c.n_events] += v
                c.counts[state] -= v
                c.counts[c.next_state[idx]] += v
            local[idx] = 0


cdef void _fold(HsmCore* c, uint32_t* local, Py_ssize_t used) noexcept nogil:
    """Fold every cell a batch can have touched: the rows of the machine's state codes (the
    first ``used`` cells) and the free rows at the end (a slot the caller rewrote to a free one
    counts there)."""
    cdef Py_ssize_t free_row = <Py_ssize_t>HSM_FREE_SLOT << c.flag_bits
    _fold_range(c, local, 0, used)
    _fold_range(c, local, free_row * c.n_events, (free_row + (1 << c.flag_bits)) * c.n_events)


# Compile-time markers: _run_chunks is specialised (as a fused function) for flag-free machines
# and for machines with flags, so each is its own C function with only its own loops.
ctypedef struct _FlagFree:
    char unused
ctypedef struct _Flagged:
    char unused
ctypedef fused flag_mode_t:
    _FlagFree
    _Flagged


cdef Py_ssize_t _run_many(const slot_t[::1] slots, const event_t[::1] events,
                          HsmCore* c, Py_ssize_t n_states, Py_ssize_t* stop) noexcept nogil:
    """Dispatch a validated batch (:func:`_run_chunks`) with the loops of its kind of machine:
    a flag-free machine runs a function compiled without the flagged kernels (measured: sharing
    one function with them cost flag-free lease traffic 1.1-1.2x)."""
    if c.flag_bits:
        return _run_chunks(slots, events, c, n_states, stop, <_Flagged*>NULL)
    return _run_chunks(slots, events, c, n_states, stop, <_FlagFree*>NULL)


cdef Py_ssize_t _run_chunks(const slot_t[::1] slots, const event_t[::1] events,
                            HsmCore* c, Py_ssize_t n_states, Py_ssize_t* stop,
                            flag_mode_t* mode) noexcept nogil:
    """Dispatch every pair in order (the batch is validated); return the number handled. Every
    open slot handles or counts each event, so the handled count is the number of events run
    minus the unhandled events they added.

    Transitions are counted per (row, event) in a batch-local array and occupancy is derived
    from them when the batch (or every HSM_FOLD_EVENTS events of it) ends: updating the per-state
    counters on every transition chains stores on a few hot addresses. Per-slot unhandled
    counters are exact as the batch goes. Every HSM_CHUNK events the loop picks its kernel from
    the transition rate of the previous chunk: with frequent transitions a branch-free one (no
    mispredicted branch), otherwise one that skips handled-in-place events without a store.
    Each kernel is specialised for each number of flags (see :func:`_chunk`).

    The arrays belong to the caller, who may rewrite them from another thread after validation:
    each index is checked again (one unsigned compare, always on). On an index out of range the
    run stops before it and ``stop[0]`` is set to its position (it stays -1 otherwise). A slot
    rewritten to a free slot is harmless: the free rows of every table map to themselves.
    """
    cdef Py_ssize_t n = slots.shape[0], n_events = c.n_events
    cdef int fb = 0
    if flag_mode_t is _Flagged:
        fb = c.flag_bits
    cdef Py_ssize_t cells = (<Py_ssize_t>HSM_CODE_ROWS << fb) * n_events
    cdef Py_ssize_t used = (n_states << fb) * n_events   # the cells of the machine's states
    cdef uint32_t stack_local[HSM_STACK_CELLS]
    cdef uint32_t* local = c.local
    if (c.trace != NULL or n < HSM_LOCAL_MIN_EVENTS or c.n_tcells > n
            or (cells > HSM_STACK_CELLS and local == NULL)):
        return _run_many_apply(slots, events, c, stop)
    if cells <= HSM_STACK_CELLS:
        local = stack_local
        memset(local, 0, cells * sizeof(uint32_t))
    cdef const slot_t* sl = &slots[0]
    cdef const event_t* ev = &events[0]
    cdef uint8_t* states = c.states
    cdef const uint8_t* flags = c.fpacked
    cdef uint64_t* unhandled = c.unhandled
    cdef const uint16_t* step = c.step
    cdef const int32_t* tcells = c.tcells
    cdef size_t cap = <size_t>c.capacity, n_ev = <size_t>n_events
    cdef bint big = c.capacity >= HSM_PREFETCH_MIN_SLOTS
    cdef bint flat = False, prefetch
    cdef Py_ssize_t lo = 0, hi, pos = 0, moved, missed = 0, since_fold = 0, j
    cdef Py_ssize_t dist = HSM_PREFETCH_DISTANCE
    cdef int64_t tsum, tprev = 0
    while lo < n:
        hi = min(lo + HSM_CHUNK, n)
        moved = 0
        prefetch = big and hi + dist <= n
        missed += _chunk(flat, fb, sl, ev, lo, hi, states, flags, unhandled, local, step,
                         n_events, cap, n_ev, prefetch, dist, &pos, &moved)
        if flat:  # the transition cells' sum gives the transitions the chunk took
            tsum = 0
            for j in range(c.n_tcells):
                tsum += local[tcells[j]]
            moved = tsum - tprev
            tprev = tsum
        else:
            tprev += moved
        flat = moved * HSM_FLAT_RATE >= hi - lo   # transitions frequent enough to mispredict
        if pos < hi:
            stop[0] = pos
            n = pos
            break
        since_fold += hi - lo
        if since_fold >= HSM_FOLD_EVENTS:
            _fold(c, local, used)
            since_fold = 0
            tprev = 0
        lo = hi
    _fold(c, local, used)
    c.unhandled_total += <uint64_t>missed
    return n - missed


cdef Py_ssize_t _run_many_apply(const slot_t[::1] slots, const event_t[::1] events,
                                HsmCore* c, Py_ssize_t* stop) noexcept nogil:
    """:func:`_run_many` one event at a time through ``hsm_apply`` (every counter updated as it
    goes): the path for small batches, wide machines and a table with tracing on.

    The arrays belong to the caller, who may rewrite them from another thread after validation:
    each index is checked again (one unsigned compare, always on). On an index out of range the
    run stops before it and ``stop[0]`` is set to its position (it stays -1 otherwise). A slot
    rewritten to a free slot is harmless: the free rows of every table map to themselves.
    """
    cdef Py_ssize_t i, s, e, n = slots.shape[0]
    cdef uint64_t missed = 0
    cdef uint8_t* states = c.states
    cdef const uint8_t* flags = c.flags
    cdef int fb = c.flag_bits
    cdef int64_t* counts = c.counts
    cdef uint64_t* unhandled = c.unhandled
    cdef int64_t* transitions = c.transitions
    cdef const uint8_t* next_state = c.next_state
    cdef const uint8_t* kind = c.kind
    cdef HsmTrace* trace = c.trace
    cdef Py_ssize_t n_events = c.n_events, capacity = c.capacity
    cdef size_t cap = <size_t>capacity, n_ev = <size_t>n_events
    # On a large table every event misses the cache; prefetching the state byte a few events
    # ahead keeps several misses in flight (the kernel's branches otherwise limit that). On a
    # cache-resident table the prefetch only costs, so it has a loop of its own.
    cdef Py_ssize_t start = 0
    if capacity >= HSM_PREFETCH_MIN_SLOTS and n > HSM_PREFETCH_DISTANCE:
        start = n - HSM_PREFETCH_DISTANCE
        for i in range(start):
            STREAMHSM_PREFETCH(&states[<Py_ssize_t>slots[i + HSM_PREFETCH_DISTANCE]])
            s = <Py_ssize_t>slots[i]
            e = <Py_ssize_t>events[i]
            if <size_t>s >= cap or <size_t>e >= n_ev:
                n = i
                stop[0] = i
                break
            missed += hsm_apply(states, counts, unhandled, transitions, next_state, kind, flags,
                                fb, trace, n_events, s, e)
    if stop[0] < 0:
        for i in range(start, n):
            s = <Py_ssize_t>slots[i]
            e = <Py_ssize_t>events[i]
            if <size_t>s >= cap or <size_t>e >= n_ev:
                n = i
                stop[0] = i
                break
            missed += hsm_apply(states, counts, unhandled, transitions, next_state, kind, flags,
                                fb, trace, n_events, s, e)
    c.unhandled_total += missed
    return n - <Py_ssize_t>missed


cdef void _pass_gate(MachineTable t) noexcept nogil:
    """Test hook (see ``MachineTable._test_pause_batches``): wait until the gate is open."""
    t._at_gate = 1
    PyThread_acquire_lock(t._test_gate, WAIT_LOCK)
    PyThread_release_lock(t._test_gate)
    t._at_gate = 0


cdef Py_ssize_t _run_broadcast(HsmCore* c, Py_ssize_t event) noexcept nogil:
    """Dispatch one event to every slot; return the number handled (-1: debug check failed).

    The event is the same for every slot, so the counters follow from the per-state occupancy
    (O(states)); the per-slot pass only rewrites states, and the per-slot unhandled counters only
    when some occupied state leaves the event unhandled. When every occupied state handles the
    event in place, no slot can change and the per-slot pass is skipped. Free slots map to
    themselves.
    """
    cdef Py_ssize_t s, i, idx, handled = 0, missed = 0
    cdef int64_t moved[HSM_CODE_ROWS]
    cdef uint8_t lut[HSM_CODE_ROWS]
    cdef uint8_t old
    cdef bint changes = False
    if STREAMHSM_DEBUG_CHECKS:
        if event < 0 or event >= c.n_events:
            return -1
    memset(moved, 0, sizeof(moved))
    for s in range(HSM_CODE_ROWS):
        if c.counts[s] != 0:
            idx = s * c.n_events + event
            handled += c.counts[s] * c.handled[idx]
            missed += c.counts[s] * c.missed[idx]
            moved[c.next_state[idx]] += c.counts[s]
            if c.kind[idx] == HSM_KIND_TRANSITION:
                c.transitions[idx] += c.counts[s]
            changes = changes or c.kind[idx] != HSM_KIND_INTERNAL
    # per-slot pass on local pointers: a store through uint8_t* may alias the struct's fields
    cdef uint8_t* states = c.states
    cdef uint64_t* unhandled = c.unhandled
    cdef const uint8_t* next_state = c.next_state
    cdef const uint8_t* miss_table = c.missed
    cdef const uint8_t* kind = c.kind
    cdef Py_ssize_t n_events = c.n_events, capacity = c.capacity
    if c.trace != NULL:  # tracing: record every slot's transition, in slot order
        for i in range(capacity):
            old = states[i]
            idx = <Py_ssize_t>old * n_events + event
            if kind[idx] == HSM_KIND_TRANSITION:
                hsm_trace(c.trace, i, event, old, next_state[idx], idx)
            states[i] = next_state[idx]
            unhandled[i] += miss_table[idx]
    elif not changes:
        pass  # every occupied state handles the event in place: no slot changes
    elif missed == 0:  # no per-slot counter to touch: a byte map, SIMD where the CPU has it
        for s in range(HSM_CODE_ROWS):
            lut[s] = next_state[s * n_events + event]
        hsm_map(states, <size_t>capacity, lut)
    else:
        for i in range(capacity):
            idx = <Py_ssize_t>states[i] * n_events + event
            states[i] = next_state[idx]
            unhandled[i] += miss_table[idx]
    for s in range(HSM_CODE_ROWS):
        c.counts[s] = moved[s]
    c.unhandled_total += missed
    return handled


cdef Py_ssize_t _run_broadcast_flagged(HsmCore* c, Py_ssize_t event) noexcept nogil:
    """:func:`_run_broadcast` for a machine with flags: what a slot does depends on its own flag
    byte, so every slot goes through the kernel (free slots map to themselves and count nothing).
    """
    cdef Py_ssize_t i, open_slots = c.capacity - <Py_ssize_t>c.counts[HSM_FREE_SLOT]
    cdef uint64_t before = c.unhandled_total
    for i in range(c.capacity):
        hsm_step(c, i, event)
    return open_slots - <Py_ssize_t>(c.unhandled_total - before)


cdef inline bint _overlaps(const void* a, size_t a_len, const void* b, size_t b_len) noexcept:
    return <const char*>a < <const char*>b + b_len and <const char*>b < <const char*>a + a_len


cdef bint _shares_table(MachineTable t, const void* p, size_t nbytes) noexcept:
    """True if the ``nbytes`` at ``p`` overlap one of the table's own columns (which a caller
    can pass back through their read-only views)."""
    cdef size_t cap = <size_t>t.core.capacity
    return (_overlaps(p, nbytes, t.core.states, cap)
            or _overlaps(p, nbytes, t.core.flags, cap)
            or _overlaps(p, nbytes, t.core.unhandled, cap * sizeof(uint64_t))
            or _overlaps(p, nbytes, t.core.counts, HSM_CODE_ROWS * sizeof(int64_t))
            or _overlaps(p, nbytes, t.core.transitions,
                         HSM_CODE_ROWS * <size_t>t.core.n_events * sizeof(int64_t))
            or _overlaps(p, nbytes, t._free, cap * sizeof(int32_t)))


cdef object _many(MachineTable self, const slot_t[::1] slots, const event_t[::1] events):
    """Validate the whole batch, then run it; nothing changes if any element is invalid."""
    cdef Py_ssize_t bad = -1, handled = 0, stop = -1, n = slots.shape[0]
    cdef Py_ssize_t n_states = self.machine.n_states
    cdef const slot_t[::1] own_slots
    cdef const event_t[::1] own_events
    if n != events.shape[0]:
        raise ValueError(
            f"slots and events must have the same length, got {n} and {events.shape[0]}")
    if n == 0:
        return 0
    if (_shares_table(self, &slots[0], n * sizeof(slot_t))
            or _shares_table(self, &events[0], n * sizeof(event_t))):
        # views of the table's own arrays (t.states as events, say) would change under the
        # batch: read them as they are now
        own_slots = np.array(slots)
        own_events = np.array(events)
        return _many(self, own_slots, own_events)
    self.lock_batch()
    try:
        with nogil:
            bad = _first_invalid(slots, events, &self.core)
            if bad < 0:
                if self._test_gate != NULL:
                    _pass_gate(self)
                handled = _run_many(slots, events, &self.core, n_states, &stop)
    finally:
        self.unlock_batch()
    if stop >= 0:
        raise IndexError(
            f"slots[{stop}] or events[{stop}] left the valid range while dispatch_many ran "
            f"(now slot {int(slots[stop])}, event {int(events[stop])}): the caller's arrays were "
            f"changed during the batch; the first {stop} events were dispatched, the rest were not")
    if bad >= 0:
        s, e = int(slots[bad]), int(events[bad])
        if not 0 <= e < self.core.n_events:
            raise ValueError(
                f"events[{bad}]: unknown event code {e} for machine {self.machine.name!r} "
                f"(valid: 0..{self.core.n_events - 1}); nothing was dispatched")
        if not 0 <= s < self.core.capacity:
            raise IndexError(
                f"slots[{bad}]: slot {s} out of range for capacity {self.core.capacity}; "
                f"nothing was dispatched")
        raise IndexError(f"slots[{bad}]: slot {s} is not open; nothing was dispatched")
    return handled


_FLAG_DTYPES = (np.dtype(np.bool_), _U8)
cdef object _NO_VALUES = np.zeros(1, np.uint8)


cdef int _flag_value(object value) except -1:
    """A flag value: True/False (``bool`` or ``numpy.bool_``) as 1/0; anything else TypeError."""
    if value is True or value is False or isinstance(value, np.bool_):
        return 1 if value else 0
    raise TypeError(f"flag value must be a bool, got {type(value).__name__} {value!r}")


def _pack_flags(flags, int shift, Py_ssize_t size):
    """The packed copy of per-slot flag bitmasks (see ``hsm_packed_flags``): ``1 << shift``
    slots per byte, slot ``i`` in bits ``(i % (1 << shift)) * (8 >> shift)`` and up of byte
    ``i >> shift``; ``size`` bytes."""
    cdef int per = 1 << shift, width = 8 >> shift
    padded = np.zeros(size * per, np.uint8)
    padded[:flags.shape[0]] = flags
    lanes = padded.reshape(size, per).astype(np.uint16) << (np.arange(per, dtype=np.uint16) * width)
    return np.bitwise_or.reduce(lanes, axis=1).astype(np.uint8)


cdef Py_ssize_t _set_flags(const slot_t[::1] slots, const uint8_t[::1] values, bint single,
                           uint8_t one, int bit, HsmCore* c, Py_ssize_t* stop) noexcept nogil:
    """Validate every (slot, value), then apply them; return the index of the first invalid one
    (nothing applied) or -1. The caller may rewrite its arrays meanwhile: the apply pass checks
    each slot again and stops before one that left the valid range (``stop[0]``)."""
    cdef Py_ssize_t i, s, n = slots.shape[0]
    cdef size_t cap = <size_t>c.capacity
    cdef uint8_t v, keep = <uint8_t>~(1 << bit)
    for i in range(n):
        s = <Py_ssize_t>slots[i]
        if <size_t>s >= cap or c.states[s] == HSM_FREE_SLOT or (not single and values[i] > 1):
            return i
    for i in range(n):
        s = <Py_ssize_t>slots[i]
        v = one if single else values[i]
        if <size_t>s >= cap or c.states[s] == HSM_FREE_SLOT or v > 1:
            stop[0] = i
            return -1
        hsm_set_flags(c, s, (c.flags[s] & keep) | <uint8_t>(v << bit))
    return -1


cdef object _flags_many(MachineTable self, const slot_t[::1] slots, const uint8_t[::1] values,
                        bint single, uint8_t one, int bit):
    """``set_flag_many`` on validated arrays: check the whole call under the table lock, then
    apply it."""
    cdef Py_ssize_t bad = -1, stop = -1, n = slots.shape[0]
    cdef const slot_t[::1] own_slots
    cdef const uint8_t[::1] own_values
    if n == 0:
        return None
    if (_shares_table(self, &slots[0], n * sizeof(slot_t))
            or (not single and _shares_table(self, &values[0], n))):
        # views of the table's own arrays (t.flags as values, say) would change under the
        # call: read them as they are now
        own_slots = np.array(slots)
        own_values = np.array(values)
        return _flags_many(self, own_slots, own_values, single, one, bit)
    self.lock_batch()
    try:
        with nogil:
            bad = _set_flags(slots, values, single, one, bit, &self.core, &stop)
    finally:
        self.unlock_batch()
    if stop >= 0:
        raise IndexError(
            f"slots[{stop}] or values[{stop}] changed while set_flag_many ran (now slot "
            f"{int(slots[stop])}): the caller's arrays were changed during the call; the first "
            f"{stop} flags were set, the rest were not")
    if bad >= 0:
        s = int(slots[bad])
        if not single and values[bad] > 1:
            raise ValueError(f"values[{bad}]: flag value {int(values[bad])} is not 0 or 1; "
                             f"nothing was changed")
        if not 0 <= s < self.core.capacity:
            raise IndexError(f"slots[{bad}]: slot {s} out of range for capacity "
                             f"{self.core.capacity}; nothing was changed")
        raise IndexError(f"slots[{bad}]: slot {s} is not open; nothing was changed")
    return None


def _check_array(object arr, str what, tuple dtypes):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype not in dtypes:
        raise TypeError(
            f"{what} must have dtype {' or '.join(str(d) for d in dtypes)}, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous (got a strided view; use np.ascontiguousarray)")
    return arr


cdef class MachineTable:
    """Many instances of one compiled machine, one row per slot in numpy arrays.

    Args:
        machine: a :class:`~streamhsm.machine.CompiledMachine`.
        capacity: number of slots (1 to 2**31 - 1).

    Every slot starts free; :meth:`open` puts a slot in the machine's initial leaf. Per slot the
    table keeps the state code (uint8) and an unhandled-event counter (uint64); per state it keeps
    the number of open slots in it, so occupancy queries are O(1).
    """

    def __cinit__(self, *args, **kwargs):
        self.core.capacity = 0
        self.core.n_events = 0
        self.core.unhandled_total = 0
        self._n_free = 0
        self._busy = 0
        self._waiters = 0
        self._test_gate = NULL
        self._test_paused = 0
        self._at_gate = 0
        self.core.trace = NULL
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate the table lock")

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)
        if self._test_gate != NULL:
            if self._test_paused:
                PyThread_release_lock(self._test_gate)
            PyThread_free_lock(self._test_gate)

    cdef int lock_batch(self) except -1:
        """Take the table lock (waiting without the GIL if a batch holds it) and mark it busy."""
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            self._waiters += 1
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
            self._waiters -= 1
        self._busy = 1
        return 0

    cdef void unlock_batch(self) noexcept:
        self._busy = 0
        PyThread_release_lock(self._lock)

    def __init__(self, machine, capacity, *, arrays=None):
        if self.machine is not None:
            raise RuntimeError("MachineTable.__init__ called twice")
        cap = _index_value(capacity, "capacity")
        if cap <= 0 or cap > 2**31 - 1:
            raise ValueError(f"capacity must be between 1 and {2**31 - 1}, got {capacity!r}")
        tables = engine_tables(machine)
        shapes = table_layout(cap, machine.n_events)
        if arrays is None:
            arrays = {name: np.empty(shape, dtype) for name, (dtype, shape) in shapes.items()}
        else:  # caller-provided storage (e.g. shared memory): exact dtypes and shapes
            for name, (dtype, shape) in shapes.items():
                arr = arrays.get(name)
                if (not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape
                        or not arr.flags.c_contiguous or not arr.flags.writeable):
                    raise ValueError(f"arrays[{name!r}] must be a writeable C-contiguous {dtype} "
                                     f"array of shape {shape}")
        states, unhandled, counts = arrays["states"], arrays["unhandled"], arrays["counts"]
        free, transitions, flags = arrays["free"], arrays["transitions"], arrays["flags"]
        states[:] = HSM_FREE_SLOT
        flags[:] = 0
        unhandled[:] = 0
        counts[:] = 0
        counts[HSM_FREE_SLOT] = cap
        free[:] = np.arange(cap - 1, -1, -1, dtype=np.int32)
        transitions[:] = 0
        cdef uint8_t[::1] st = states
        cdef uint8_t[::1] fl = flags
        cdef uint64_t[::1] un = unhandled
        cdef int64_t[::1] co = counts
        cdef int32_t[::1] fr = free
        self.core.states = &st[0]
        self.core.flags = &fl[0]
        self.core.fpack_shift = 3 if machine.n_flags <= 1 else 2 if machine.n_flags == 2 else 1
        self._fpacked = np.zeros(((cap >> self.core.fpack_shift) + 1,), np.uint8)
        cdef uint8_t[::1] fp = self._fpacked
        self.core.fpacked = &fp[0]
        self.core.unhandled = &un[0]
        self.core.counts = &co[0]
        self._scratch = _local_scratch(machine)
        _bind_core(&self.core, tables, machine.n_events, transitions, self._scratch)
        self._free = &fr[0]
        self._n_free = cap
        self._states, self._unhandled, self._counts = states, unhandled, counts
        self._free_list, self._transitions, self._tables = free, transitions, tables
        self._flags = flags
        self._states_view = readonly_view(states)
        self._flags_view = readonly_view(flags)
        self._unhandled_view = readonly_view(unhandled)
        self._transitions_view = readonly_view(transitions[:machine.n_states])
        self._observer = TableObserver(machine, self._states_view, readonly_view(counts),
                                       self._transitions_view)
        self._initial = machine.initial_leaf
        self._state_members = tuple(machine.State) + (None,) * (HSM_CODE_ROWS - machine.n_states)
        self._codec = <MachineCodec?>machine.codec
        self.machine = machine
        self.core.capacity = cap

    cdef Py_ssize_t event_index(self, object event) except -1:
        if self._codec is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return (<MachineCodec>self._codec).event(event)

    cdef Py_ssize_t state_index(self, object state) except -1:
        if self._codec is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return (<MachineCodec>self._codec).state(state)

    cdef Py_ssize_t slot_index(self, object slot) except -1:
        return self.check_open(self.slot_value(slot), slot)

    @cython.final
    cdef Py_ssize_t slot_value(self, object slot) except -2:
        """``slot`` converted to an index, or -1 if it is out of range (TypeError if not an
        int). May run Python code (``__index__``), so it comes before any lock-protected check."""
        cdef int overflow = 0
        cdef long long v
        if type(slot) is int:
            v = PyLong_AsLongLongAndOverflow(slot, &overflow)
            if overflow == 0 and 0 <= v < self.core.capacity:
                return <Py_ssize_t>v
            return -1
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        v = _index_value(slot, "slot")
        return v if 0 <= v < self.core.capacity else -1

    @cython.final
    cdef Py_ssize_t check_open(self, Py_ssize_t v, object slot) except -1:
        """``v`` (from :meth:`slot_value`) if it names an open slot, else IndexError. Pure C up to
        the raise: callers run it under the same exclusion as the change it guards."""
        if v < 0:
            raise IndexError(f"slot {slot!r} out of range for capacity {self.core.capacity}")
        if self.core.states[v] == HSM_FREE_SLOT:
            raise IndexError(f"slot {v} is not open")
        return v

    # ------------------------------------------------------------------ slots
    def open(self):
        """Open a free slot in the machine's initial state and return its index.

        Raises:
            TableFullError: every slot is open.
        """
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        cdef bint locked = self._busy  # a batch runs in another thread: wait for it
        if locked:
            self.lock_batch()
        try:  # every check after the wait: another thread may have opened meanwhile
            return self.open_locked()
        finally:
            if locked:
                self.unlock_batch()

    @cython.final
    cdef Py_ssize_t open_locked(self) except -1:
        cdef Py_ssize_t s
        if self._n_free <= 0:
            raise TableFullError(f"table is full: all {self.core.capacity} slots are open")
        s = self._free[self._n_free - 1]
        if <size_t>s >= <size_t>self.core.capacity or self.core.states[s] != HSM_FREE_SLOT:
            raise RuntimeError(
                f"free list entry {s} does not name a free slot: the table's arrays were "
                f"changed from outside; nothing was opened")
        self._n_free -= 1
        self.core.states[s] = self._initial
        hsm_set_flags(&self.core, s, 0)
        self.core.unhandled[s] = 0
        self.core.counts[HSM_FREE_SLOT] -= 1
        self.core.counts[self._initial] += 1
        return s

    def release(self, slot):
        """Free an open slot (in whatever state it is); its unhandled counter is reset.

        Raises:
            IndexError: ``slot`` is out of range or not open.
            TypeError: ``slot`` is not an int.
        """
        cdef Py_ssize_t v = self.slot_value(slot)
        cdef bint locked = self._busy  # a batch runs in another thread: wait for it
        if locked:
            self.lock_batch()
        try:  # the slot is checked after the wait, under the same exclusion as the release
            self.check_open(v, slot)
            if not self.release_unchecked(v):
                raise RuntimeError(
                    f"slot {v} is open but the free list is full: the table's arrays were "
                    f"changed from outside; nothing was released")
        finally:
            if locked:
                self.unlock_batch()

    cdef int release_unchecked(self, Py_ssize_t s) noexcept nogil:
        """Free open slot ``s`` (the caller checked it); C-level form of :meth:`release`.

        Returns 1, or 0 without changing anything if ``s`` is out of range, already free, or the
        free list is full (only possible if the arrays were written from outside the table).
        """
        if (<size_t>s >= <size_t>self.core.capacity or self.core.states[s] == HSM_FREE_SLOT
                or self._n_free >= self.core.capacity):
            return 0
        self.core.counts[self.core.states[s]] -= 1
        self.core.counts[HSM_FREE_SLOT] += 1
        self.core.states[s] = HSM_FREE_SLOT
        hsm_set_flags(&self.core, s, 0)
        self.core.unhandled[s] = 0
        self._free[self._n_free] = <int32_t>s
        self._n_free += 1
        return 1

    def is_open(self, slot):
        """True if ``slot`` is in range and open (never raises for an int out of range)."""
        cdef Py_ssize_t v = _index_value(slot, "slot")
        return 0 <= v < self.core.capacity and self.core.states[v] != HSM_FREE_SLOT

    # ------------------------------------------------------------------ flags
    @cython.final
    cdef int flag_bit(self, object name) except -1:
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return self.machine.flag_bit(name)

    def set_flag(self, slot, name, value):
        """Set (``value`` True) or clear flag ``name`` of an open slot. Flags only change here
        and in :meth:`set_flag_many`: dispatching reads them and never changes them.

        Raises:
            IndexError: ``slot`` is out of range or not open.
            ValueError: the machine has no flag ``name``.
            TypeError: ``value`` is not a bool, or ``slot``/``name`` has the wrong type.
        """
        cdef Py_ssize_t v = self.slot_value(slot)
        cdef int bit = self.flag_bit(name)
        cdef uint8_t on = _flag_value(value)
        cdef bint locked = self._busy  # a batch runs in another thread: wait for it
        if locked:
            self.lock_batch()
        try:  # the slot is checked after the wait, under the same exclusion as the change
            v = self.check_open(v, slot)
            hsm_set_flags(&self.core, v, (self.core.flags[v] & ~(1 << bit)) | (on << bit))
        finally:
            if locked:
                self.unlock_batch()

    def flag(self, slot, name):
        """True if flag ``name`` of the open slot is set (errors as :meth:`set_flag`)."""
        cdef Py_ssize_t v = self.slot_index(slot)
        cdef int bit = self.flag_bit(name)
        return bool(self.core.flags[v] >> bit & 1)

    def set_flag_many(self, slots, name, values):
        """Set or clear flag ``name`` of many open slots, without the GIL.

        Args:
            slots: 1-D C-contiguous int32 or int64 array of open slots (repeats allowed: the
                last value wins).
            name: the flag.
            values: a bool or uint8 (0 or 1) array of the same length, or one bool for all
                (uint8 is read in place; a bool array through a uint8 view made per call).

        Raises:
            TypeError / ValueError / IndexError: wrong type, dtype, shape or contiguity,
            mismatched lengths, a value other than 0 or 1, an unknown flag, or a slot out of
            range or not open. The whole call is validated first: on error, nothing has changed.
        """
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        _check_array(slots, "slots", _SLOT_DTYPES)
        cdef int bit = self.flag_bit(name)
        cdef uint8_t one = 0
        cdef bint single = not isinstance(values, np.ndarray)
        cdef const uint8_t[::1] vals = _NO_VALUES
        if single:
            one = _flag_value(values)
        else:
            _check_array(values, "values", _FLAG_DTYPES)
            if values.shape[0] != slots.shape[0]:
                raise ValueError(f"slots and values must have the same length, got "
                                 f"{slots.shape[0]} and {values.shape[0]}")
            vals = values if values.dtype == _U8 else values.view(np.uint8)
        if slots.dtype == _I64:
            _flags_many[int64_t](self, slots, vals, single, one, bit)
        else:
            _flags_many[int32_t](self, slots, vals, single, one, bit)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, slot, event):
        """Dispatch one event to one open slot; return True if some state handled it.

        ``event`` is an enum member, int code or CamelCase name. An event no state handles is
        counted (per slot and in total) and changes nothing.

        Raises:
            IndexError: ``slot`` is out of range or not open.
            ValueError: unknown event code or name.
            TypeError: ``slot`` or ``event`` has the wrong type.
        """
        cdef Py_ssize_t v = self.slot_value(slot)
        if v < 0:  # out of range whatever the state: no need to wait
            self.check_open(v, slot)
        cdef Py_ssize_t e = self.event_index(event)
        cdef int rc
        if self._busy:  # a batch runs in another thread: wait for it, then check the slot
            self.lock_batch()
            try:
                rc = hsm_step(&self.core, self.check_open(v, slot), e)
            finally:
                self.unlock_batch()
        else:
            rc = hsm_step(&self.core, self.check_open(v, slot), e)
        return _raise_if_bad(rc) == 1

    def dispatch_many(self, slots, events):
        """Dispatch ``events[i]`` to ``slots[i]`` for every i, in order, without the GIL.

        Args:
            slots: 1-D C-contiguous int32 or int64 array of open slots (repeats allowed).
            events: 1-D C-contiguous uint8, int32 or int64 array of event codes, same length.

        Returns:
            The number of events some state handled.

        Raises:
            TypeError / ValueError / IndexError: wrong type, dtype, shape or contiguity,
            mismatched lengths, an unknown event code, or a slot out of range or not open. The
            whole batch is validated first: on error, nothing has changed.
        """
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        _check_array(slots, "slots", _SLOT_DTYPES)
        _check_array(events, "events", _EVENT_DTYPES)
        # explicit specialisation: no fused-def dispatcher (it builds tuples on every call)
        sdt, edt = slots.dtype, events.dtype
        if sdt == _I64:
            if edt == _U8:
                return _many[int64_t, uint8_t](self, slots, events)
            if edt == _I64:
                return _many[int64_t, int64_t](self, slots, events)
            return _many[int64_t, int32_t](self, slots, events)
        if edt == _U8:
            return _many[int32_t, uint8_t](self, slots, events)
        if edt == _I64:
            return _many[int32_t, int64_t](self, slots, events)
        return _many[int32_t, int32_t](self, slots, events)

    def broadcast(self, event):
        """Dispatch one event to every open slot, without the GIL; return the number handled.

        Raises:
            ValueError / TypeError: unknown or mistyped event.
        """
        cdef Py_ssize_t e = self.event_index(event)
        cdef Py_ssize_t handled
        self.lock_batch()
        try:
            with nogil:
                if self._test_gate != NULL:
                    _pass_gate(self)
                if self.core.flag_bits:
                    handled = _run_broadcast_flagged(&self.core, e)
                else:
                    handled = _run_broadcast(&self.core, e)
        finally:
            self.unlock_batch()
        return _raise_if_bad(handled)

    # ------------------------------------------------------------------ test hooks
    def _test_pause_batches(self):
        """Test hook: batches (dispatch_many, broadcast) that start from now on stop after
        validating their input, holding the table lock with the GIL released, until
        :meth:`_test_resume_batches`. Lets tests interleave threads deterministically."""
        if self._test_gate == NULL:
            self._test_gate = PyThread_allocate_lock()
            if self._test_gate == NULL:
                raise MemoryError("cannot allocate the test gate")
        if self._test_paused:
            raise RuntimeError("batches are already paused")
        PyThread_acquire_lock(self._test_gate, WAIT_LOCK)
        self._test_paused = 1

    def _test_resume_batches(self):
        """Test hook: let paused batches run (see :meth:`_test_pause_batches`)."""
        if not self._test_paused:
            raise RuntimeError("batches are not paused")
        self._test_paused = 0
        PyThread_release_lock(self._test_gate)

    @property
    def _test_busy(self):
        """Test hook: True while a batch (or a mutator that waited for one) holds the lock."""
        return bool(self._busy)

    @property
    def _test_at_gate(self):
        """Test hook: True while a paused batch waits (validated, lock held, GIL released)."""
        return bool(self._at_gate)

    @property
    def _test_waiters(self):
        """Test hook: number of threads waiting for the table lock."""
        return self._waiters

    # ------------------------------------------------------------------ trace ring
    def enable_trace(self, size):
        """Record the last ``size`` transitions in a ring preallocated now (the only allocation);
        dispatching is otherwise unchanged. Re-enabling starts a fresh ring."""
        n = _index_value(size, "size")
        if n <= 0 or n > 2**31 - 1:
            raise ValueError(f"trace size must be between 1 and {2**31 - 1}, got {size!r}")
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        cols = {"seq": np.zeros(n, np.uint64), "slot": np.zeros(n, np.int64),
                "event": np.zeros(n, np.uint8), "from_state": np.zeros(n, np.uint8),
                "to_state": np.zeros(n, np.uint8), "handled_by": np.zeros(n, np.int16)}
        handler = (<EngineTables>self._tables).handler  # one row per (state, flag bitmask)
        cdef uint64_t[::1] seq = cols["seq"]
        cdef int64_t[::1] slot = cols["slot"]
        cdef uint8_t[::1] event = cols["event"]
        cdef uint8_t[::1] src = cols["from_state"]
        cdef uint8_t[::1] dst = cols["to_state"]
        cdef int16_t[::1] by = cols["handled_by"]
        cdef const int16_t[:, ::1] table = handler
        self.lock_batch()
        try:
            self._trace.seq, self._trace.slot, self._trace.event = &seq[0], &slot[0], &event[0]
            self._trace.src, self._trace.dst, self._trace.handler = &src[0], &dst[0], &by[0]
            self._trace.handler_table = &table[0, 0]
            self._trace.size = n
            self._trace.recorded = 0
            self._trace_owners = (cols, handler)
            self.core.trace = &self._trace
        finally:
            self.unlock_batch()

    def disable_trace(self):
        """Stop recording and free the ring."""
        self.lock_batch()
        try:
            self.core.trace = NULL
            self._trace_owners = None
        finally:
            self.unlock_batch()

    def trace(self):
        """The recorded transitions, oldest first, as a new structured array with fields
        ``seq, slot, event, from_state, to_state, handled_by`` (empty if tracing is off).

        The fields hold codes; the machine's enums name them: ``table.machine.State(r["to_state"])``
        and ``table.machine.Event(r["event"])`` are members (``State.ACTIVE``), and
        ``table.machine.state_names[code]`` / ``event_names[code]`` the CamelCase names."""
        dtype = [("seq", np.uint64), ("slot", np.int64), ("event", np.uint8),
                 ("from_state", np.uint8), ("to_state", np.uint8), ("handled_by", np.int16)]
        if self._trace_owners is None:
            return np.zeros(0, dtype)
        cols = self._trace_owners[0]
        size, done = self._trace.size, self._trace.recorded
        n = min(size, done)
        order = (np.arange(done - n, done) % size).astype(np.intp)
        out = np.zeros(n, dtype)
        for name in cols:
            out[name] = cols[name][order]
        return out

    @property
    def tracing(self):
        """True while the trace ring is on."""
        return self._trace_owners is not None

    # ------------------------------------------------------------------ snapshots
    def snapshot(self):
        """The table's state as plain data: a dict naming its kind, format version and machine
        fingerprint, with copies of the state, flag and unhandled arrays and the unhandled
        total."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return {
            "kind": "MachineTable", "version": SNAPSHOT_VERSION, "machine": self.machine.name,
            "fingerprint": self.machine.fingerprint, "capacity": self.core.capacity,
            "states": self._states.copy(), "flags": self._flags.copy(),
            "unhandled": self._unhandled.copy(),
            "unhandled_total": int(self.core.unhandled_total),
            "free": self._free_list[:self._n_free].copy(),  # stack order: open() reuses the last
            "transitions": self._transitions[:self.machine.n_states].ravel().copy(),
        }

    def restore(self, snap):
        """Replace the table's state with a :meth:`snapshot` (validated first: on error nothing
        changes). Occupancy is rebuilt from the states; the free-slot order is restored, so the
        table then behaves exactly like the one the snapshot was taken from.

        Raises:
            SnapshotError: another kind, version, machine or capacity; wrong dtypes or shapes; a
                state code that is not a leaf of the machine; a flag bitmask beyond the machine's
                flags or set on a free slot; an unhandled total below the sum.

        A version-2 snapshot (written before flags existed) has no flags: they restore as 0.
        """
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        snap = check_header(snap, "MachineTable", self.machine.fingerprint)
        cap = self.core.capacity
        got = snap.get("capacity")
        if isinstance(got, np.ndarray) and got.shape == () and got.dtype.kind in "iu":
            got = got.item()  # a 0-d array, as a file may store it
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)) or got != cap:
            raise SnapshotError(f"snapshot capacity {got!r} != table capacity {cap} (an int)")
        states = _snap_array(snap, "states", np.uint8, cap)
        unhandled = _snap_array(snap, "unhandled", np.uint64, cap)
        valid = np.zeros(HSM_CODE_ROWS, dtype=bool)
        valid[np.flatnonzero(self.machine.is_leaf)] = True
        valid[0] = False  # Root is never a leaf state of an instance
        valid[HSM_FREE_SLOT] = True
        bad = np.flatnonzero(~valid[states])
        if bad.size:
            raise SnapshotError(
                f"snapshot state {int(states[bad[0]])} at slot {int(bad[0])} is not a leaf state "
                f"of machine {self.machine.name!r}")
        if snap["version"] < 3 and "flags" not in snap:
            flags = np.zeros(cap, np.uint8)
        else:
            flags = _snap_array(snap, "flags", np.uint8, cap)
        bad = np.flatnonzero((flags >> self.machine.n_flags != 0)
                             | ((flags != 0) & (states == HSM_FREE_SLOT)))
        if bad.size:
            raise SnapshotError(
                f"snapshot flags {int(flags[bad[0]])} at slot {int(bad[0])} are not a flag bitmask "
                f"of machine {self.machine.name!r} ({self.machine.n_flags} flags) on an open slot")
        total = snap.get("unhandled_total")
        # the exact per-slot sum (high and low halves summed apart cannot wrap in uint64)
        per_slot = ((int((unhandled >> np.uint64(32)).sum(dtype=np.uint64)) << 32)
                    + int((unhandled & np.uint64(0xFFFFFFFF)).sum(dtype=np.uint64)))
        if type(total) is not int or not per_slot <= total <= _MAX_RESTORED_COUNT:
            raise SnapshotError(
                f"snapshot unhandled_total {total!r} is not an int between the per-slot sum "
                f"({per_slot}) and {_MAX_RESTORED_COUNT} (counters keep room to grow)")
        n_cells = self.machine.n_states * self.machine.n_events
        transitions = _snap_array(snap, "transitions", np.int64, n_cells)
        if transitions.size and transitions.min() < 0:
            raise SnapshotError("snapshot transition counts must not be negative")
        counts = np.bincount(states, minlength=HSM_CODE_ROWS).astype(np.int64)
        n_free = int(counts[HSM_FREE_SLOT])
        free = _snap_array(snap, "free", np.int32, n_free)
        if not np.array_equal(np.sort(free), np.flatnonzero(states == HSM_FREE_SLOT)):
            raise SnapshotError("snapshot free-slot list does not match the free slots of its states")
        self.lock_batch()
        try:
            self._states[:] = states
            self._flags[:] = flags
            self._fpacked[:] = _pack_flags(flags, self.core.fpack_shift, self._fpacked.shape[0])
            self._unhandled[:] = unhandled
            self._counts[:] = counts
            self._free_list[:free.size] = free
            self._n_free = free.size
            self._transitions[:self.machine.n_states] = transitions.reshape(
                self.machine.n_states, self.machine.n_events)
            self.core.unhandled_total = total
        finally:
            self.unlock_batch()

    # ------------------------------------------------------------------ queries
    def state(self, slot):
        """The current (leaf) state of an open slot, as a ``State`` member."""
        return self._state_members[self.core.states[self.slot_index(slot)]]

    def is_in(self, slot, state):
        """True if the open slot's current state is ``state`` or one of its descendants."""
        cdef Py_ssize_t s = self.slot_index(slot)
        member = (<EngineTables>self._tables).member
        return bool(member[self.state_index(state), self.core.states[s]])

    def count(self, state):
        """Number of open slots in ``state`` (composite states count their descendants); O(1)."""
        return self.observer().count(state)

    def slots_in(self, state):
        """Indices of the open slots in ``state`` (descendants included), as an int64 array.

        One vectorised pass over the states array; allocates the result.
        """
        return self.observer().slots_in(state)

    cdef object observer(self):
        """The table's TableObserver (count, slots_in, occupancy and transition statistics over
        its read-only views)."""
        if self._observer is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return self._observer

    @property
    def transition_counts(self):
        """Read-only ``(n_states, n_events)`` int64 view: transitions taken per (leaf state,
        event) since the table was created (external self-transitions included; events handled
        without a transition and unhandled events are not transitions)."""
        return self._transitions_view

    def stats(self):
        """Counters and statistics as plain data: occupancy per state (composites included),
        open and free slots, unhandled events in total and per open slot with any, and the
        non-zero transition counts keyed ``"State/Event"``."""
        obs = self.observer()
        hot = np.flatnonzero(self._unhandled)
        return {
            "machine": self.machine.name,
            "capacity": self.core.capacity,
            "open": len(self),
            "occupancy": obs.occupancy(),
            "unhandled_total": int(self.core.unhandled_total),
            "unhandled_by_slot": {int(s): int(self._unhandled[s]) for s in hot},
            "transitions": obs.transition_counts(),
        }

    @property
    def states(self):
        """Read-only view of the per-slot state codes (uint8; ``FREE_SLOT`` for free slots)."""
        return self._states_view

    @property
    def flags(self):
        """Read-only view of the per-slot flag bitmasks (uint8; bit ``i`` is the machine's
        ``flag_names[i]``; 0 for free slots and on a machine without flags)."""
        return self._flags_view

    @property
    def unhandled(self):
        """Read-only view of the per-slot unhandled-event counters (uint64)."""
        return self._unhandled_view

    @property
    def unhandled_total(self):
        """Unhandled events over the table's lifetime (released slots included)."""
        return self.core.unhandled_total

    @property
    def capacity(self):
        """Number of slots."""
        return self.core.capacity

    @property
    def nbytes_per_slot(self):
        """Bytes of per-slot state (state code, flag bitmask, unhandled counter, free-list
        entry)."""
        if self.machine is None:
            return 0
        return (self._states.itemsize + self._flags.itemsize + self._unhandled.itemsize
                + self._free_list.itemsize)

    def __len__(self):
        """Number of open slots."""
        return self.core.capacity - self._n_free

    def __repr__(self):
        if self.machine is None:
            return f"<{type(self).__name__} (uninitialised)>"
        return (f"<{type(self).__name__} machine={self.machine.name!r} "
                f"open={len(self)}/{self.core.capacity}>")


@cython.final
cdef class _InstanceKind:
    """The machine-level part of :class:`MachineInstance`: borrowed pointers into the machine's
    padded tables, its codec and state members; optionally an instance's own transition counts."""

    def __cinit__(self, machine, bint count_transitions):
        tables = engine_tables(machine)
        cdef const uint8_t[:, ::1] nxt = tables.next_state
        cdef const uint8_t[:, ::1] kind = tables.kind
        cdef int64_t[:, ::1] trans
        self.machine = machine
        self.next_state = &nxt[0, 0]
        self.kind = &kind[0, 0]
        self.n_events = machine.n_events
        self.flag_bits = machine.n_flags
        self.transitions = NULL
        self.transitions_view = None
        owners = [tables]
        if count_transitions:
            transitions = np.zeros((HSM_CODE_ROWS, machine.n_events), dtype=np.int64)
            trans = transitions
            self.transitions = &trans[0, 0]
            self.transitions_view = readonly_view(transitions[:machine.n_states])
            owners.append(transitions)
        self.owners = tuple(owners)
        self.state_members = tuple(machine.State) + (None,) * (HSM_CODE_ROWS - machine.n_states)
        self.member = tables.member
        self.codec = <MachineCodec?>machine.codec


cdef _InstanceKind _shared_kind(object machine):
    """The machine's shared _InstanceKind (no transition counts), built once and cached on it."""
    kind = getattr(machine, "_engine_instance_kind", None)
    if kind is None:
        kind = _InstanceKind(machine, False)
        machine._engine_instance_kind = kind
    return <_InstanceKind>kind


cdef class MachineInstance:
    """One instance of a compiled machine (the single-stream counterpart of MachineTable).

    An instance holds only its state code, its unhandled-event counter and a reference to the
    machine-level tables shared by every instance of the machine (56 bytes in CPython 3.11).

    Args:
        machine: a :class:`~streamhsm.machine.CompiledMachine`.
        count_transitions: also count the transitions this instance takes per (state, event)
            (:attr:`transition_counts`); costs a private int64 array of one row per state code.
    """

    def __init__(self, machine, *, count_transitions=False):
        self._bind(machine, count_transitions)

    def _bind(self, machine, count_transitions):
        """``__init__`` as a plain method: subclasses with their own ``__init__`` call this (a call
        through the ``__init__`` slot wrapper costs several times more)."""
        if self._kind is not None:
            raise RuntimeError("MachineInstance.__init__ called twice")
        cdef _InstanceKind kind
        if count_transitions is False:
            kind = _shared_kind(machine)
        elif count_transitions is True:
            kind = _InstanceKind(machine, True)
        else:
            raise TypeError(f"count_transitions must be a bool, got "
                            f"{type(count_transitions).__name__} {count_transitions!r}")
        self._state = machine.initial_leaf
        self._kind = kind

    @property
    def machine(self):
        """The :class:`~streamhsm.machine.CompiledMachine` (None before ``__init__``)."""
        return None if self._kind is None else self._kind.machine

    def dispatch(self, event):
        """Dispatch one event; return True if some state handled it, False if it went unhandled
        (counted in :attr:`unhandled`, state unchanged).

        Raises:
            ValueError: unknown event code or name.
            TypeError: ``event`` has the wrong type.
        """
        cdef _InstanceKind k = self._kind
        if k is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef Py_ssize_t e = (<MachineCodec>k.codec).event(event)
        cdef Py_ssize_t idx = ((<Py_ssize_t>self._state << k.flag_bits) | self._flags) * k.n_events + e
        cdef uint8_t what = k.kind[idx]
        if what == HSM_KIND_INTERNAL:
            return True
        if what == HSM_KIND_UNHANDLED:
            self._unhandled += 1
            return False
        if k.transitions != NULL:
            k.transitions[<Py_ssize_t>self._state * k.n_events + e] += 1
        self._state = k.next_state[idx]
        return True

    def set_flag(self, name, value):
        """Set (``value`` True) or clear flag ``name``; dispatching never changes flags.

        Raises:
            ValueError: the machine has no flag ``name``.
            TypeError: ``value`` is not a bool or ``name`` not a str.
        """
        if self._kind is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef int bit = self._kind.machine.flag_bit(name)
        cdef uint8_t on = _flag_value(value)
        self._flags = (self._flags & ~(1 << bit)) | (on << bit)

    def flag(self, name):
        """True if flag ``name`` is set (all flags start False)."""
        if self._kind is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        return bool(self._flags >> self._kind.machine.flag_bit(name) & 1)

    @property
    def flags(self):
        """The flag bitmask (bit ``i`` is the machine's ``flag_names[i]``)."""
        return self._flags

    @property
    def current(self):
        """The current leaf state (a ``State`` member)."""
        if self._kind is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        return self._kind.state_members[self._state]

    @property
    def unhandled(self):
        """Number of events this instance left unhandled."""
        return self._unhandled

    @property
    def transition_counts(self):
        """Read-only ``(n_states, n_events)`` int64 view of the transitions this instance took per
        (leaf state, event), or None unless it was created with ``count_transitions=True``."""
        return None if self._kind is None else self._kind.transitions_view

    def is_in(self, state):
        """True if the current state is ``state`` or one of its descendants (``is_in(Root)`` is
        always True)."""
        if self._kind is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef Py_ssize_t code = (<MachineCodec>self._kind.codec).state(state)
        return bool(self._kind.member[code, self._state])

    def __repr__(self):
        if self._kind is None:
            return f"<{type(self).__name__} (uninitialised)>"
        return f"<{type(self).__name__} {self.current!r} unhandled={self._unhandled}>"

