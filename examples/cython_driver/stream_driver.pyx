# cython: language_level=3
"""A Cython duty cycle driving a streamhsm table with no Python call per event.

Build it against the installed package (see build.py); ``cimport`` finds ``streamhsm/capi.pxd``,
the public C API, in site-packages.
"""
from libc.stdint cimport int64_t, uint8_t

from streamhsm.capi cimport (
    HSM_FREE_SLOT, MachineTable, hsm_n_events, hsm_set_flags, hsm_state, hsm_step, hsm_step_each,
)


def drive(MachineTable table, const int64_t[::1] slots, const uint8_t[::1] events):
    """Validate the batch once, then dispatch it without the GIL; return the number handled."""
    cdef Py_ssize_t i, n = slots.shape[0], handled = 0
    if events.shape[0] != n:
        raise ValueError(f"slots and events differ in length: {n} != {events.shape[0]}")
    for i in range(n):
        if hsm_state(table, slots[i]) in (-1, HSM_FREE_SLOT):  # out of range, or free
            raise IndexError(f"slots[{i}] = {slots[i]} is not an open slot")
        if events[i] >= hsm_n_events(table):
            raise ValueError(f"events[{i}] = {events[i]} is not an event code")
    table.lock_batch()
    try:
        with nogil:
            for i in range(n):
                handled += hsm_step(table, slots[i], events[i])
    finally:
        table.unlock_batch()
    return handled


def repeat_one(MachineTable table, Py_ssize_t slot, Py_ssize_t event, Py_ssize_t times):
    """Dispatch one event ``times`` times to one slot from C (the per-event cost with no Python
    call, for the benchmark beside ``StreamTable.dispatch``); return the number handled."""
    cdef Py_ssize_t _i, handled = 0
    table.is_open(slot) or _bad_slot(slot)
    if not 0 <= event < hsm_n_events(table):
        raise ValueError(f"event {event} is not an event code")
    table.lock_batch()
    try:
        with nogil:
            for _i in range(times):
                handled += hsm_step(table, slot, event)
    finally:
        table.unlock_batch()
    return handled


def _bad_slot(slot):
    raise IndexError(f"slot {slot} is not open")


def set_flags(MachineTable table, Py_ssize_t slot, uint8_t mask):
    """Set the whole flag bitmask of an open slot from C (the path that keeps the kernel's
    packed copy in step); ValueError if the slot is not open or the mask is too wide."""
    if hsm_set_flags(table, slot, mask) < 0:
        raise ValueError(f"slot {slot} is not open or mask {mask} has a bit beyond the flags")


def step_each(MachineTable table, const Py_ssize_t[::1] slots, Py_ssize_t event):
    """One event to many open slots, in order (a burst of keepalives), validated once then
    dispatched without the GIL in one call; return the number handled."""
    cdef Py_ssize_t i, n = slots.shape[0], handled = 0
    for i in range(n):
        if hsm_state(table, slots[i]) in (-1, HSM_FREE_SLOT):
            raise IndexError(f"slots[{i}] = {slots[i]} is not an open slot")
    if not 0 <= event < hsm_n_events(table):
        raise ValueError(f"event {event} is not an event code")
    if n == 0:
        return 0
    table.lock_batch()
    try:
        with nogil:
            handled = hsm_step_each(table, &slots[0], n, event)
    finally:
        table.unlock_batch()
    return handled
