# streamhsm's public C API for Cython code: small and stable (see docs/cimport.md).
#
#     from streamhsm.capi cimport MachineTable, HSM_FREE_SLOT, hsm_state, hsm_step
#
# Only the names defined or cimported here are the contract; everything in streamhsm/_kernel.pxd,
# _batch.pxd and _table.pxd (the engine's fields, tables, scratch and trace pointers) is private
# and may change. Read the table through these functions; never write its memory.
#
# - MachineTable: the table class (StreamTable derives from it). Its methods
#   ``table.lock_batch()`` (with the GIL; waits, GIL released, for another batch) and
#   ``table.unlock_batch()`` bracket a loop that dispatches without the GIL, so no batch or
#   Python-level mutation of the same table runs meanwhile:
#       table.lock_batch()
#       try:
#           with nogil: ... hsm_step(table, slot, event) ...
#       finally:
#           table.unlock_batch()
#   ``table.release_unchecked(slot)`` frees an open slot without the GIL (1; 0 and nothing
#   changed if the slot is out of range or already free).
# - HSM_FREE_SLOT: the state code of a free slot.
# - STREAMHSM_DEBUG_CHECKS: 1 in a debug build (STREAMHSM_CYTHON_DEBUG=1), 0 otherwise.
# - STREAMHSM_PREFETCH(p): a cache hint (fetch the line holding *p ahead of its use).
# - HsmFired: one fired timer as hsm_advance records it (fields slot, time_ns, timer, event;
#   the layout of streamhsm.FIRED_DTYPE).
# The functions below take the table and run without the GIL; call them between lock_batch()
# and unlock_batch() when other threads may use the table.
from libc.stdint cimport uint8_t, int64_t, uint64_t

from streamhsm._kernel cimport HSM_FREE_SLOT, STREAMHSM_DEBUG_CHECKS, STREAMHSM_PREFETCH
from streamhsm._kernel cimport hsm_add_unhandled as _add_unhandled
from streamhsm._kernel cimport hsm_apply_timed as _apply_timed
from streamhsm._kernel cimport hsm_set_flags as _set_flags_core, hsm_step as _step_core
from streamhsm._table cimport MachineTable
from streamhsm._timer_kernel cimport HsmFired, hsm_advance as _advance_core


cdef inline Py_ssize_t hsm_capacity(MachineTable table) noexcept nogil:
    """Number of slots of the table."""
    return table.core.capacity


cdef inline Py_ssize_t hsm_n_events(MachineTable table) noexcept nogil:
    """Number of events of the table's machine (valid event codes: 0 .. n - 1)."""
    return table.core.n_events


cdef inline int hsm_state(MachineTable table, Py_ssize_t slot) noexcept nogil:
    """State code of ``slot`` (HSM_FREE_SLOT if it is free), or -1 if it is out of range."""
    if <size_t>slot >= <size_t>table.core.capacity:
        return -1
    return table.core.states[slot]


cdef inline int hsm_step(MachineTable table, Py_ssize_t slot, Py_ssize_t event) noexcept nogil:
    """Dispatch one event to one open slot: 1 if some state handled it, 0 if unhandled (counted).

    No checks in a release build: the caller guarantees 0 <= slot < hsm_capacity(table), an open
    slot (hsm_state(table, slot) != HSM_FREE_SLOT) and 0 <= event < hsm_n_events(table);
    validate once, before the loop. A debug build returns -1 for an index out of range.
    """
    return _step_core(&table.core, slot, event)


cdef inline Py_ssize_t hsm_step_each(MachineTable table, const Py_ssize_t* slots, Py_ssize_t n,
                                     Py_ssize_t event) noexcept nogil:
    """``hsm_step(table, slots[i], event)`` for each ``i`` in order (one event to many slots, a
    driver's burst of keepalives): the number handled. Whether the machine has timers is
    looked at once, not per slot. The same guarantees as :func:`hsm_step` for every slot; a
    debug build returns -1 at the first index out of range (the slots before it stepped)."""
    cdef Py_ssize_t i, unhandled = 0
    cdef int r
    if STREAMHSM_DEBUG_CHECKS or table.core.hist != NULL or table.core.timers == NULL:
        for i in range(n):
            r = _step_core(&table.core, slots[i], event)
            if r < 0:
                return -1
            unhandled += 1 - r
        return n - unhandled
    for i in range(n):  # a machine with timers (a lease machine): its kernel, inlined
        unhandled += _apply_timed(&table.core, slots[i], event)
    _add_unhandled(&table.core, <uint64_t>unhandled)
    return n - unhandled


cdef inline int hsm_set_flags(MachineTable table, Py_ssize_t slot, uint8_t mask) noexcept nogil:
    """Set the whole flag bitmask of an open slot (bit i: the machine's flag_names[i]) through
    the path that keeps the kernel's packed copy in step; 0, or -1 and nothing changed if the
    slot is out of range or free or the mask has a bit beyond the machine's flags."""
    if (<size_t>slot >= <size_t>table.core.capacity
            or table.core.states[slot] == HSM_FREE_SLOT or mask >> table.core.flag_bits):
        return -1
    _set_flags_core(&table.core, slot, mask)
    return 0


cdef inline Py_ssize_t hsm_open(MachineTable table) noexcept nogil:
    """Open a free slot in the machine's initial state (``table.open()`` without the GIL) and
    return it; -1 and nothing changed if no slot is free (or the free list was written from
    outside the table)."""
    return table.open_unchecked()


cdef inline Py_ssize_t hsm_open_count(MachineTable table) noexcept nogil:
    """Number of open slots (``len(table)`` without the GIL)."""
    return table.core.capacity - table.core.counts[HSM_FREE_SLOT]


cdef inline void hsm_prefetch_state(MachineTable table, Py_ssize_t slot) noexcept nogil:
    """Cache hint: fetch the lines a step of ``slot`` reads and writes ahead of it, its state
    and, on a machine with timers, its deadlines (a transition that arms or restarts a timer
    stores there); no effect on results; ``slot`` must be in range."""
    cdef Py_ssize_t i
    STREAMHSM_PREFETCH(&table.core.states[slot])
    if table.core.timers != NULL:
        for i in range(table.core.timers.n_timers):
            STREAMHSM_PREFETCH(&table.core.timers.deadlines[i * table.core.timers.stride + slot])


cdef inline int64_t hsm_now(MachineTable table) noexcept nogil:
    """The table's clock (``table.now_ns``), or -1 if its machine has no timers."""
    if table.core.timers == NULL:
        return -1
    return table.core.timers.clock[0]


cdef inline Py_ssize_t hsm_advance(MachineTable table, int64_t now, HsmFired* out,
                                   Py_ssize_t out_len) noexcept nogil:
    """``table.advance(now)`` without the GIL: move the clock to ``now`` and fire every due
    timer, the first ``out_len`` recorded in ``out`` (may be NULL with 0); return the number
    fired, or -1 and nothing changed if the machine has no timers or ``now`` is before the clock
    or beyond the latest reading its delays allow."""
    if (table.core.timers == NULL or now < table.core.timers.clock[0]
            or now > table.core.timers.max_clock):
        return -1
    return _advance_core(&table.core, now, out, out_len)


cdef inline int64_t hsm_next_due(MachineTable table) noexcept nogil:
    """A lower bound of every armed deadline of the table (NEVER if none is armed; an advance to
    a time before it fires nothing), or -1 if its machine has no timers."""
    if table.core.timers == NULL:
        return -1
    return table.core.timers.clock[1]


cdef inline int64_t hsm_deadline(MachineTable table, Py_ssize_t timer,
                                 Py_ssize_t slot) noexcept nogil:
    """Deadline of timer ``timer`` (its index in ``machine.timers.names``) of ``slot``: NEVER if
    not armed, -1 if there is no such timer or slot."""
    if (table.core.timers == NULL or <size_t>timer >= <size_t>table.core.timers.n_timers
            or <size_t>slot >= <size_t>table.core.capacity):
        return -1
    return table.core.timers.deadlines[timer * table.core.timers.stride + slot]
