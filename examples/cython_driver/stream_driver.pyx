# cython: language_level=3
"""A Cython duty cycle driving a streamhsm table with no Python call per event.

Build it against the installed package (see build.py); ``cimport`` finds ``streamhsm/capi.pxd``,
the public C API, in site-packages.
"""
from libc.stdint cimport int64_t, uint8_t

from streamhsm.capi cimport HSM_FREE_SLOT, HsmCore, MachineTable, hsm_step


def drive(MachineTable table, const int64_t[::1] slots, const uint8_t[::1] events):
    """Validate the batch once, then dispatch it without the GIL; return the number handled."""
    cdef Py_ssize_t i, n = slots.shape[0], handled = 0
    cdef HsmCore* core = &table.core
    if events.shape[0] != n:
        raise ValueError(f"slots and events differ in length: {n} != {events.shape[0]}")
    for i in range(n):
        if not 0 <= slots[i] < core.capacity or core.states[slots[i]] == HSM_FREE_SLOT:
            raise IndexError(f"slots[{i}] = {slots[i]} is not an open slot")
        if events[i] >= core.n_events:
            raise ValueError(f"events[{i}] = {events[i]} is not an event code")
    table.lock_batch()
    try:
        with nogil:
            for i in range(n):
                handled += hsm_step(core, slots[i], events[i])
    finally:
        table.unlock_batch()
    return handled


def repeat_one(MachineTable table, Py_ssize_t slot, Py_ssize_t event, Py_ssize_t times):
    """Dispatch one event ``times`` times to one slot from C (the per-event cost with no Python
    call, for the benchmark beside ``StreamTable.dispatch``); return the number handled."""
    cdef Py_ssize_t _i, handled = 0
    table.is_open(slot) or _bad_slot(slot)
    if not 0 <= event < table.core.n_events:
        raise ValueError(f"event {event} is not an event code")
    table.lock_batch()
    try:
        with nogil:
            for _i in range(times):
                handled += hsm_step(&table.core, slot, event)
    finally:
        table.unlock_batch()
    return handled


def _bad_slot(slot):
    raise IndexError(f"slot {slot} is not open")
