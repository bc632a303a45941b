# streamhsm's public C API for Cython code (documented in docs/performance.md, "The cimport API").
#
#     from streamhsm.capi cimport HSM_FREE_SLOT, HsmCore, MachineTable, hsm_step
#
# - MachineTable: the engine's table class (StreamTable derives from it); ``table.core`` is its
#   HsmCore. Bracket a loop that mutates the table without the GIL with ``table.lock_batch()``
#   (with the GIL) and ``table.unlock_batch()``, as examples/cython_driver/stream_driver.pyx does.
# - hsm_step(&table.core, slot, event) -> 1 handled, 0 unhandled (counted), -1 only in a debug
#   build when an index is out of range. The caller guarantees 0 <= slot < core.capacity, an open
#   slot (core.states[slot] != HSM_FREE_SLOT) and 0 <= event < core.n_events: validate once,
#   before the loop.
# - HsmCore fields a caller may read: states, flags (per-slot flag bitmasks; flag_bits is the
#   machine's number of flags, 0 for a flag-free machine), counts, unhandled, capacity,
#   n_events, unhandled_total. Never write them directly (flags change through
#   MachineTable.set_flag / set_flag_many, which keep the kernel's packed copy in step).
# - HSM_FREE_SLOT: the state code of a free slot.
#
# Only the names listed here are the contract; everything else in streamhsm/_kernel.pxd and
# streamhsm/_table.pxd is private
# and may change.
from streamhsm._kernel cimport HSM_FREE_SLOT, HsmCore, hsm_step
from streamhsm._table cimport MachineTable
