"""MachineTable: many instances of one compiled machine in numpy arrays, dispatched without the
GIL.

Private module: users import :class:`streamhsm.MachineTable` (or :class:`streamhsm.StreamTable`).
This is the boundary: it checks every argument (types, dtypes, ranges, open slots, the table
lock), then runs the kernels of ``_kernel.pxd`` (one event) and ``_batch.pxd`` (batches). The
tables it runs come built and read-only from the compiler (``machine.engine_tables``).
Unsafe directives (boundscheck, wraparound) are chosen once in ``setup.py``; never set them here.
"""
cimport cython
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_release_lock,
)
from libc.stdint cimport uint8_t, int32_t, int64_t, uint64_t

from streamhsm._batch cimport (
    HSM_LOCAL_MAX_CELLS, HSM_SNAPSHOT_RATIO, HSM_STACK_CELLS, event_t, hsm_map, hsm_simd_detect,
    hsm_simd_level, hsm_simd_set_cap, run_batch, run_broadcast, run_broadcast_flagged,
    set_flags_batch, slot_t, snapshot_bytes, undo_scratch_bytes, validate_batch,
    validates_as_it_runs,
)
from streamhsm._binding cimport (
    bind_core, bind_history, bind_timers, bind_trace, set_records, shares_core,
)
from streamhsm._checks cimport fast_code, flag_value, index_value
from streamhsm._kernel cimport HSM_CODE_ROWS, HSM_FREE_SLOT, hsm_set_flags, hsm_step
from streamhsm._timer_kernel cimport HsmFired, hsm_advance, hsm_timers_clear, hsm_timers_open

import numpy as np

from ._observe import TableObserver
from ._owned import as_array
from ._views import readonly_view
from .errors import TableFullError
from ._limits import MAX_CAPACITY, check_index
from ._refusals import dispatch_batch_refusal, flag_batch_refusal
from ._trace import decode_ring, named_records, ring_columns
from ._timer_tables import check_advance, check_fired_len, timer_index, timer_restore
from .compiler import check_machine, local_scratch, pack_flags, table_arrays
from .snapshot import check_table_snapshot, read_table_file, save_snapshot, table_snapshot

__all__ = ["FREE_SLOT", "MachineTable"]

#: State code stored in ``MachineTable.states`` for a free (released or never opened) slot, as
#: the kernel defines it (``streamhsm.FREE_SLOT`` is the pure-Python layer's copy; a test holds
#: them equal).
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
    """Test hook: ``data[i] = lut[data[i]]`` in place with the current kernel (``lut``: one
    byte per code)."""
    if lut.shape[0] != HSM_CODE_ROWS:
        raise ValueError(f"lut must have {HSM_CODE_ROWS} entries, got {lut.shape[0]}")
    if data.shape[0] > 0:
        with nogil:
            hsm_map(&data[0], <size_t>data.shape[0], &lut[0])


cdef object _I64 = np.dtype(np.int64)
cdef object _U8 = np.dtype(np.uint8)
_SLOT_DTYPES = (np.dtype(np.int32), _I64)
_EVENT_DTYPES = (_U8, np.dtype(np.int32), _I64)


cdef inline int _raise_if_bad(int rc) except -1:
    if rc < 0:
        raise IndexError("internal error: HSM kernel index out of range (debug build check)")
    return rc


cdef object _dispatch_batch(MachineTable self, const slot_t[::1] slots,
                            const event_t[::1] events):
    """``dispatch_many`` on arrays of checked dtypes, under the table lock: validated, then run
    (run_batch), or validated as it runs with an undo (run_batch_chunked); atomic either way."""
    cdef Py_ssize_t bad = -1, handled = 0, stop = -1, n = slots.shape[0]
    cdef const slot_t[::1] own_slots
    cdef const event_t[::1] own_events
    cdef uint8_t* snap = NULL
    cdef uint8_t[::1] scratch
    if n != events.shape[0]:
        raise ValueError(
            f"slots and events must have the same length, got {n} and {events.shape[0]}")
    if n == 0:
        return 0
    if (shares_core(&self.core, self._free, &slots[0], n * sizeof(slot_t))
            or shares_core(&self.core, self._free, &events[0], n * sizeof(event_t))):
        # views of the table's own arrays would change under the batch: read them as they are
        own_slots = np.array(slots)
        own_events = np.array(events)
        return _dispatch_batch(self, own_slots, own_events)
    if self._undo is None and snapshot_bytes(&self.core) <= HSM_SNAPSHOT_RATIO * n:
        scratch = np.empty(undo_scratch_bytes(&self.core) + 8, np.uint8)
        if self._undo is None:  # np.empty may have let another thread make it meanwhile
            self._undo = scratch.base  # made once, never replaced: a batch holds the pointer
            self._undo_ptr = &scratch[(-<size_t>&scratch[0]) & 7]  # 8-byte aligned
    self.lock_batch()
    try:
        with nogil:
            if not self._high_unhandled and validates_as_it_runs(&self.core, n):
                snap = self._undo_ptr  # NULL until made: then validated before it runs
            if snap == NULL:
                bad = validate_batch(&slots[0], &events[0], n, &self.core)
            if bad < 0:
                if self._batch_hook != NULL:
                    self._batch_hook(self._batch_hook_arg)
                handled = run_batch(&slots[0], &events[0], n, &self.core, self._n_states, &stop,
                                    snap, &bad)
    finally:
        self.unlock_batch()
    if stop >= 0 or bad >= 0:
        dispatch_batch_refusal(stop, bad, slots, events, self.core.n_events,
                               self.core.capacity, self.machine.name)
    return handled


_FLAG_DTYPES = (np.dtype(np.bool_), _U8)
cdef object _NO_VALUES = np.zeros(1, np.uint8)


cdef object _set_flag_batch(MachineTable self, const slot_t[::1] slots, const uint8_t[::1] values,
                            bint single, uint8_t one, int bit):
    """``set_flag_many`` on validated arrays: check the whole call under the table lock, then
    apply it."""
    cdef Py_ssize_t bad = -1, stop = -1, n = slots.shape[0]
    cdef const slot_t[::1] own_slots
    cdef const uint8_t[::1] own_values
    if not single and values.shape[0] != n:  # lengths of the buffers themselves
        raise ValueError(f"slots and values must have the same length, got {n} and "
                         f"{values.shape[0]}")
    if n == 0:
        return None
    if (shares_core(&self.core, self._free, &slots[0], n * sizeof(slot_t))
            or (not single and shares_core(&self.core, self._free, &values[0], n))):
        # views of the table's own arrays (t.flags as values, say) would change under the
        # call: read them as they are now
        own_slots = np.array(slots)
        own_values = np.array(values)
        return _set_flag_batch(self, own_slots, own_values, single, one, bit)
    self.lock_batch()
    try:
        with nogil:
            bad = set_flags_batch(&slots[0], &values[0], n, single, one, bit, &self.core, &stop)
    finally:
        self.unlock_batch()
    if stop >= 0 or bad >= 0:
        flag_batch_refusal(stop, bad, slots, None if single else values, self.core.capacity)
    return None


cdef class MachineTable:
    """Many instances of one compiled machine, one row per slot in numpy arrays.

    Args:
        machine: a :class:`~streamhsm.compiler.CompiledMachine`.
        capacity: number of slots (1 to ``MAX_CAPACITY``, 2**31 - 1).

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
        self._batch_hook = NULL
        self._batch_hook_arg = NULL
        self.core.trace = NULL
        self.core.hist = NULL
        self.core.timers = NULL
        self._init_records = NULL
        self._undo_ptr = NULL
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate the table lock")

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

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

    def __init__(self, machine, capacity, *, arrays=None, now_ns=0):
        if self.machine is not None:
            raise RuntimeError("MachineTable.__init__ called twice")
        check_machine(machine)
        cap = check_index(capacity, "capacity", 1, MAX_CAPACITY)
        tables, timers = machine.engine_tables, machine.timers
        n_s, n_e, k = tables.sizes(machine)  # sizes from the arrays bound below, checked
        now = 0 if timers is None and now_ns == 0 else check_advance(machine, now_ns)
        arrays = table_arrays(cap, n_e, arrays, tables.initial_records.shape[0],
                              0 if timers is None else timers.n_timers)
        states, unhandled, counts = arrays["states"], arrays["unhandled"], arrays["counts"]
        free, transitions, flags = arrays["free"], arrays["transitions"], arrays["flags"]
        states[:] = HSM_FREE_SLOT
        flags[:] = 0
        unhandled[:] = 0
        counts[:] = 0
        counts[HSM_FREE_SLOT] = cap
        free[:] = np.arange(cap - 1, -1, -1, dtype=np.int32)
        transitions[:] = 0
        records = arrays.get("history")
        if records is not None:
            records[:] = HSM_FREE_SLOT
        cdef uint8_t[::1] st = states
        cdef uint8_t[::1] fl = flags
        cdef uint64_t[::1] un = unhandled
        cdef int64_t[::1] co = counts
        cdef int32_t[::1] fr = free
        self.core.states = &st[0]
        self.core.flags = &fl[0]
        self.core.fpack_shift = 3 if k <= 1 else 2 if k == 2 else 1
        self._fpacked = np.zeros(((cap >> self.core.fpack_shift) + 1,), np.uint8)
        cdef uint8_t[::1] fp = self._fpacked
        self.core.fpacked = &fp[0]
        self.core.unhandled = &un[0]
        self.core.counts = &co[0]
        self._scratch = local_scratch(machine, HSM_STACK_CELLS, HSM_LOCAL_MAX_CELLS)
        bind_core(&self.core, tables, transitions, self._scratch, k)
        self._init_records = bind_history(&self.core, &self._hist, tables, records)
        self._records = records
        self._records_view = None if records is None else readonly_view(records)
        bind_timers(&self.core, &self._tm, timers, arrays, now)
        if timers is not None:
            self._timer_arrays = {name: arrays[name] for name in timer_restore(None)}
            self._deadline_views = readonly_view(arrays["deadlines"])
        self._free = &fr[0]
        self._n_free = cap
        self._states, self._unhandled, self._counts = states, unhandled, counts
        self._free_list, self._transitions, self._tables = free, transitions, tables
        self._flags = flags
        self._states_view = readonly_view(states)
        self._flags_view = readonly_view(flags)
        self._unhandled_view = readonly_view(unhandled)
        self._transitions_view = readonly_view(transitions[:n_s])
        self._observer = TableObserver(machine, self._states_view, readonly_view(counts),
                                       self._transitions_view)
        self._initial = machine.initial_leaf
        self._state_members = machine.state_members + (None,) * (HSM_CODE_ROWS - n_s)
        self._codec = machine.codec
        self._event_enum, self._state_enum = machine.Event, machine.State
        self._event_codes = dict(machine.codec.event_codes)
        self._state_codes = dict(machine.codec.state_codes)
        self._n_states = n_s
        self.machine = machine
        self.core.capacity = cap

    cdef Py_ssize_t event_index(self, object event) except -1:
        if self._codec is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return fast_code(event, self._event_enum, self.core.n_events, self._event_codes,
                         self._codec, True)

    cdef Py_ssize_t state_index(self, object state) except -1:
        if self._codec is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return fast_code(state, self._state_enum, self._n_states, self._state_codes, self._codec,
                         False)

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
        v = index_value(slot, "slot")
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
        """Open a free slot in the machine's initial state (arming its timers at the clock) and
        return its index. ``TableFullError``: every slot is open."""
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
        cdef Py_ssize_t s = self.open_unchecked()
        if s >= 0:
            return s
        if self._n_free <= 0:
            raise TableFullError(f"table is full: all {self.core.capacity} slots are open")
        raise RuntimeError(
            f"free list entry {self._free[self._n_free - 1]} does not name a free slot: the "
            f"table's arrays were changed from outside; nothing was opened")

    cdef Py_ssize_t open_unchecked(self) noexcept nogil:
        """Open a free slot (C-level form of :meth:`open`); -1 and nothing changed if none is
        free or the free list names a slot that is not free."""
        cdef Py_ssize_t s
        if self._n_free <= 0:
            return -1
        s = self._free[self._n_free - 1]
        if <size_t>s >= <size_t>self.core.capacity or self.core.states[s] != HSM_FREE_SLOT:
            return -1
        self._n_free -= 1
        self.core.states[s] = self._initial
        hsm_set_flags(&self.core, s, 0)
        self.core.unhandled[s] = 0
        if self.core.hist != NULL:
            set_records(&self._hist, s, self._init_records)
        if self.core.timers != NULL:
            hsm_timers_open(self.core.timers, s)
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
        """Free open slot ``s`` (C-level :meth:`release`): 1, or 0 and nothing changed if ``s``
        is out of range or free, or the free list is full (arrays written from outside)."""
        if (<size_t>s >= <size_t>self.core.capacity or self.core.states[s] == HSM_FREE_SLOT
                or self._n_free >= self.core.capacity):
            return 0
        self.core.counts[self.core.states[s]] -= 1
        self.core.counts[HSM_FREE_SLOT] += 1
        self.core.states[s] = HSM_FREE_SLOT
        hsm_set_flags(&self.core, s, 0)
        self.core.unhandled[s] = 0
        if self.core.hist != NULL:
            set_records(&self._hist, s, NULL)
        if self.core.timers != NULL:
            hsm_timers_clear(self.core.timers, s)
        self._free[self._n_free] = <int32_t>s
        self._n_free += 1
        return 1

    def is_open(self, slot):
        """True if ``slot`` is in range and open (never raises for an int out of range)."""
        cdef Py_ssize_t v = index_value(slot, "slot")
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
        cdef uint8_t on = flag_value(value)
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
        cdef Py_ssize_t v = self.slot_value(slot)  # every argument converted before the look-up
        cdef int bit = self.flag_bit(name)
        return bool(self.core.flags[self.check_open(v, slot)] >> bit & 1)

    def set_flag_many(self, slots, name, values):
        """Set or clear flag ``name`` of many open slots, without the GIL. ``slots``: a 1-D
        int32 or int64 array (repeats allowed: the last value wins); ``values``: a bool or uint8
        (0 or 1) array of the same length, or one bool for all. The whole call is validated
        first (``TypeError`` / ``ValueError`` / ``IndexError``): on error nothing changes."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        slots = as_array(slots, "slots", _SLOT_DTYPES)
        cdef int bit = self.flag_bit(name)
        cdef uint8_t one = 0
        cdef bint single = not issubclass(type(values), np.ndarray)
        cdef const uint8_t[::1] vals = _NO_VALUES
        if single:
            one = flag_value(values)
        else:
            values = as_array(values, "values", _FLAG_DTYPES)
            vals = values if values.dtype == _U8 else values.view(np.uint8)
        if slots.dtype == _I64:
            _set_flag_batch[int64_t](self, slots, vals, single, one, bit)
        else:
            _set_flag_batch[int32_t](self, slots, vals, single, one, bit)

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
        """Dispatch ``events[i]`` to ``slots[i]`` for every i, in order, without the GIL; return
        the number of events some state handled. ``slots``: a 1-D int32 or int64 array of open
        slots (repeats allowed); ``events``: a 1-D uint8, int32 or int64 array of event codes of
        the same length (C-contiguous arrays are read in place, a strided view copied once).
        ``TypeError`` / ``ValueError`` / ``IndexError``: a wrong type, dtype or shape, lengths
        that differ, an unknown event code, a slot out of range or not open. A batch is atomic:
        on error, nothing has changed."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        slots = as_array(slots, "slots", _SLOT_DTYPES)
        events = as_array(events, "events", _EVENT_DTYPES)
        # explicit specialisation: no fused-def dispatcher (it builds tuples on every call)
        sdt, edt = slots.dtype, events.dtype
        if sdt == _I64:
            if edt == _U8:
                return _dispatch_batch[int64_t, uint8_t](self, slots, events)
            if edt == _I64:
                return _dispatch_batch[int64_t, int64_t](self, slots, events)
            return _dispatch_batch[int64_t, int32_t](self, slots, events)
        if edt == _U8:
            return _dispatch_batch[int32_t, uint8_t](self, slots, events)
        if edt == _I64:
            return _dispatch_batch[int32_t, int64_t](self, slots, events)
        return _dispatch_batch[int32_t, int32_t](self, slots, events)

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
                if self._batch_hook != NULL:
                    self._batch_hook(self._batch_hook_arg)
                if self.core.flag_bits or self.core.hist != NULL or self.core.timers != NULL:
                    handled = run_broadcast_flagged(&self.core, e)
                else:
                    handled = run_broadcast(&self.core, e)
        finally:
            self.unlock_batch()
        return _raise_if_bad(handled)

    # ------------------------------------------------------------------ trace ring
    def enable_trace(self, size):
        """Record the last ``size`` transitions in a ring preallocated now (the only allocation);
        dispatching is otherwise unchanged. Re-enabling starts a fresh ring."""
        n = check_index(size, "trace size", 1, MAX_CAPACITY)
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        cols = ring_columns(n)
        self.lock_batch()
        try:
            bind_trace(&self._trace, cols, self._tables.handler)
            self._trace_owners = (cols, self._tables.handler)
            self.core.trace = &self._trace
        finally:
            self.unlock_batch()

    def disable_trace(self):
        """Stop recording and free the ring."""
        self.lock_batch()
        try:
            self.core.trace, self._trace_owners = NULL, None
        finally:
            self.unlock_batch()

    def trace(self):
        """The recorded transitions, oldest first: a new structured array of codes (``seq,
        slot, event, from_state, to_state, handled_by``; empty if off); see trace_records."""
        cols = None if self._trace_owners is None else self._trace_owners[0]
        return decode_ring(cols, self._trace.size, self._trace.recorded)

    def trace_records(self):
        """:meth:`trace` as :class:`~streamhsm.TraceRecord` tuples of enum members (to read)."""
        return named_records(self.trace(), self.machine)

    @property
    def tracing(self):
        """True while the trace ring is on."""
        return self._trace_owners is not None

    # ------------------------------------------------------------------ snapshots
    def snapshot(self):
        """The table's state as plain data: a dict of its kind, format version, machine
        fingerprint and copies of every column (``streamhsm.snapshot.table_snapshot``)."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        self.lock_batch()  # a batch running in another thread finishes first: no torn copy
        try:
            return table_snapshot(self.machine, self._states, self._flags, self._unhandled,
                                  self.core.unhandled_total, self._free_list[:self._n_free],
                                  self._transitions[:self._n_states], self._records,
                                  self._timer_arrays)
        finally:
            self.unlock_batch()

    def save(self, path):
        """Write :meth:`snapshot` to ``path`` (``.npz``, no pickles; :meth:`load` reads it)."""
        save_snapshot(self.snapshot(), path)

    @classmethod
    def load(cls, path, machine):
        """A new table of ``machine`` restored from a file written by :meth:`save` (capacity
        from the file; only a regular file, no more than its size). ``SnapshotError``: not
        readable, or another kind, version or machine (checked before allocating)."""
        check_machine(machine)
        snap, capacity = read_table_file(path, machine.fingerprint)
        table = cls(machine, capacity)
        table.restore(snap)
        return table

    def restore(self, snap):
        """Replace the table's state with a :meth:`snapshot`: copied out of ``snap``, then
        validated (``SnapshotError`` as ``streamhsm.snapshot.check_table_snapshot``: on error
        nothing changes), then written under the lock. Occupancy is rebuilt from the states and
        the free-slot order restored: the table behaves exactly like the one snapshotted."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        # owned copies, validated and converted before the lock: no caller code runs after
        # the check, nor while the lock is held
        v = check_table_snapshot(snap, self.machine, self.core.capacity)
        states, flags, free = v["states"], v["flags"], v["free"]
        packed = pack_flags(flags, self.core.fpack_shift, self._fpacked.shape[0])
        self.lock_batch()
        try:
            self._states[:] = states
            self._flags[:] = flags
            self._fpacked[:] = packed
            self._unhandled[:] = v["unhandled"]
            self._counts[:] = v["counts"]
            self._free_list[:free.size] = free
            self._n_free = free.size
            self._transitions[:self._n_states] = v["transitions"]
            self.core.unhandled_total = v["unhandled_total"]
            self._high_unhandled = int(v["unhandled"].max(initial=0)) >> 62 != 0  # see _table.pxd
            if self._records is not None:
                self._records[:] = v["history"]
            if self._timer_arrays is not None:
                for name, value in timer_restore(v).items():
                    self._timer_arrays[name][...] = value
        finally:
            self.unlock_batch()

    # ------------------------------------------------------------------ timers
    def advance(self, now_ns, out=None):
        """Move the clock to ``now_ns``, firing every due timer without the GIL (per slot in
        deadline order, ties in declaration order, the clock at each deadline); return how many
        fired, the first ``len(out)`` recorded in ``out`` (a 1-D ``FIRED_DTYPE`` array). Errors
        (nothing changes): no timers, a bad ``out``, a time backwards, too large or not an int."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        cdef int64_t now = check_advance(self.machine, now_ns)
        cdef Py_ssize_t n_out = -1, fired  # -1: no out (no buffer held)
        cdef Py_buffer buf
        buf.buf = NULL
        if out is not None:  # the buffer protocol: nothing allocated, the data cannot move
            n_out = check_fired_len(out)
            PyObject_GetBuffer(out, &buf, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
        try:
            self.lock_batch()
            try:  # the clock is read under the lock: a concurrent advance cannot slip between
                if now < self.core.timers.clock[0]:
                    raise ValueError(f"now_ns {now} is before the table's clock "
                                     f"{self.core.timers.clock[0]}: time does not go backwards")
                with nogil:
                    if self._batch_hook != NULL:
                        self._batch_hook(self._batch_hook_arg)
                    fired = hsm_advance(&self.core, now, <HsmFired*>buf.buf, max(n_out, 0))
            finally:
                self.unlock_batch()
        finally:
            if n_out >= 0:
                PyBuffer_Release(&buf)
        return fired

    @property
    def now_ns(self):
        """The table's clock (ns; None without timers): what dispatching arms timers from."""
        return None if self.core.timers == NULL else self.core.timers.clock[0]

    def deadlines(self, name):
        """Read-only int64 view of timer ``name``'s deadlines, one per slot (``NEVER``: not
        armed). ``TypeError``/``ValueError``: not a str, or no timer of the machine."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return self._deadline_views[timer_index(self.machine, name)]

    @property
    def skipped_periods(self):
        """Periods each timer skipped (an advance fires a periodic timer at most once)."""
        arrays = self._timer_arrays
        return () if arrays is None else tuple(int(x) for x in arrays["skipped"])

    # ------------------------------------------------------------------ queries
    def state(self, slot):
        """The current (leaf) state of an open slot, as a ``State`` member."""
        return self._state_members[self.core.states[self.slot_index(slot)]]

    def is_in(self, slot, state):
        """True if the open slot's current state is ``state`` or one of its descendants."""
        cdef Py_ssize_t v = self.slot_value(slot)  # every argument converted before the look-up
        cdef Py_ssize_t st = self.state_index(state)
        return bool(self._tables.member[st, self.core.states[self.check_open(v, slot)]])

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
        return self.observer().stats(self.core.capacity, len(self), self._unhandled_view,
                                     self.core.unhandled_total)

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

    def history(self, owner):
        """Read-only uint8 view of ``owner``'s history records (``machine.history_owners``),
        one per slot: the leaf the slot was in when it last exited ``owner``, ``FREE_SLOT`` if
        none. ``TypeError``/``ValueError``: not a state of the machine, or keeps no record."""
        if self.machine is None:
            raise RuntimeError("MachineTable is not initialised (call __init__)")
        return self._records_view[self.machine.history_owner(owner)]

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
        entry, history records, timer deadlines)."""
        if self.machine is None:
            return 0
        return (self._states.itemsize + self._flags.itemsize + self._unhandled.itemsize
                + self._free_list.itemsize + self._hist.n_owners * (self.core.hist != NULL)
                + 8 * (0 if self.core.timers == NULL else self.core.timers.n_timers))

    def __len__(self):
        """Number of open slots."""
        return self.core.capacity - self._n_free

    def __repr__(self):
        if self.machine is None:
            return f"<{type(self).__name__} (uninitialised)>"
        return (f"<{type(self).__name__} machine={self.machine.name!r} "
                f"open={len(self)}/{self.core.capacity}>")
