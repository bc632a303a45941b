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
# The functions below take the table and run without the GIL; call them between lock_batch()
# and unlock_batch() when other threads may use the table.
from libc.stdint cimport uint8_t

from streamhsm._kernel cimport HSM_FREE_SLOT, STREAMHSM_DEBUG_CHECKS
from streamhsm._kernel cimport hsm_set_flags as _set_flags_core, hsm_step as _step_core
from streamhsm._table cimport MachineTable


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


cdef inline int hsm_set_flags(MachineTable table, Py_ssize_t slot, uint8_t mask) noexcept nogil:
    """Set the whole flag bitmask of an open slot (bit i: the machine's flag_names[i]) through
    the path that keeps the kernel's packed copy in step; 0, or -1 and nothing changed if the
    slot is out of range or free or the mask has a bit beyond the machine's flags."""
    if (<size_t>slot >= <size_t>table.core.capacity
            or table.core.states[slot] == HSM_FREE_SLOT or mask >> table.core.flag_bits):
        return -1
    _set_flags_core(&table.core, slot, mask)
    return 0
