"""Physical floors for the benchmarks: what the same call or loop costs with no HSM work at all.

Private module, shipped so ``python -m streamhsm bench`` and ``benchmarks/`` can measure the
product beside its floor in one run.
"""
cimport cython
from libc.stdint cimport INT64_MAX, uint8_t, int32_t, int64_t
from libc.string cimport memcpy

from streamhsm.driver._idmap cimport IdMap

import numpy as np

__all__ = ["KeepaliveFloor", "NoopTarget", "broadcast_floor", "copy_floor", "table_floor",
           "table_floor_int32", "timer_floor"]


@cython.final
cdef class NoopTarget:
    """A cdef class whose ``dispatch(slot, event)`` does nothing: the Python call floor."""

    def dispatch(self, slot, event):
        """Do nothing (same two arguments as ``StreamTable.dispatch``)."""
        pass


ctypedef fused floor_slot_t:
    int32_t
    int64_t


cdef Py_ssize_t _table_loop(uint8_t[::1] states, const uint8_t[:, ::1] next_state,
                            const floor_slot_t[::1] slots,
                            const uint8_t[::1] events) noexcept nogil:
    cdef Py_ssize_t i, s, n = slots.shape[0]
    for i in range(n):
        s = slots[i]
        states[s] = next_state[states[s], events[i]]
    return n


def table_floor(uint8_t[::1] states, const uint8_t[:, ::1] next_state,
                const int64_t[::1] slots, const uint8_t[::1] events):
    """The bare table loop ``states[slot] = next[states[slot], event]`` without the GIL: no
    validation, no counters, no occupancy. Returns the number of events."""
    cdef Py_ssize_t n
    with nogil:
        n = _table_loop(states, next_state, slots, events)
    return n


def broadcast_floor(uint8_t[::1] states, const uint8_t[:, ::1] next_state, Py_ssize_t event):
    """The bare broadcast loop over every slot without the GIL. Returns the number of slots."""
    cdef Py_ssize_t i, n = states.shape[0]
    with nogil:
        for i in range(n):
            states[i] = next_state[states[i], event]
    return n


def table_floor_int32(uint8_t[::1] states, const uint8_t[:, ::1] next_state,
                      const int32_t[::1] slots, const uint8_t[::1] events):
    """:func:`table_floor` with int32 slots (the floor for ``dispatch_many`` on int32 slots)."""
    cdef Py_ssize_t n
    with nogil:
        n = _table_loop(states, next_state, slots, events)
    return n


def copy_floor(uint8_t[::1] dst, const uint8_t[::1] src):
    """``memcpy`` of ``src`` into ``dst`` (same length) without the GIL: reading and writing one
    byte per stream, the physical limit of a broadcast. Returns the number of bytes."""
    cdef Py_ssize_t n = src.shape[0]
    if dst.shape[0] != n:
        raise ValueError(f"dst has {dst.shape[0]} bytes, src has {n}")
    if n:
        with nogil:
            memcpy(&dst[0], &src[0], n)
    return n


def timer_floor(uint8_t[::1] states, const uint8_t[:, ::1] next_state, int64_t[::1] deadlines,
                int64_t now, Py_ssize_t event):
    """The floor of ``MachineTable.advance`` on a one-timer machine: the bare loop over the
    deadline column without the GIL that finds the due slots (``deadline <= now``), disarms
    them and applies ``states[slot] = next[states[slot], event]``: no summary, no clock, no
    counters, no record. Returns the number fired."""
    cdef Py_ssize_t s, fired = 0, n = deadlines.shape[0]
    if states.shape[0] != n:
        raise ValueError(f"states has {states.shape[0]} slots, deadlines {n}")
    if not 0 <= event < next_state.shape[1]:
        raise ValueError(f"event {event} is not a column of next_state")
    with nogil:
        for s in range(n):
            if deadlines[s] <= now:
                deadlines[s] = INT64_MAX
                states[s] = next_state[states[s], event]
                fired += 1
    return fired


@cython.final
cdef class KeepaliveFloor:
    """The floor of ``Driver.keepalive_many``: a lease-id map (the driver's keyed
    :class:`~streamhsm.driver._idmap.IdMap`), a client column and an expiry column, and
    :meth:`run`, the bare loop over a batch that does the same hash look-ups, owner checks and
    expiry stores without the GIL, and nothing else (no machine step, no counter, no answers).

    Args:
        lease_ids, clients: the live leases (lease ``lease_ids[i]`` held by ``clients[i]`` at
            slot ``i``).
    """
    cdef IdMap ids
    cdef object _client, _expiry
    cdef const int64_t[::1] client
    cdef int64_t[::1] expiry

    def __cinit__(self, const int64_t[::1] lease_ids not None, const int64_t[::1] clients not None):
        cdef Py_ssize_t i, n = lease_ids.shape[0]
        if clients.shape[0] != n:
            raise ValueError(f"clients has {clients.shape[0]} entries, lease_ids {n}")
        self.ids = IdMap(max(1, n))
        for i in range(n):
            if lease_ids[i] < 0 or self.ids.insert(lease_ids[i], i) < 0:
                raise ValueError(f"lease id {lease_ids[i]} cannot be stored")
        self._client = np.array(clients, dtype=np.int64)
        self._expiry = np.zeros(n, dtype=np.int64)
        self.client = self._client
        self.expiry = self._expiry

    def run(self, const int64_t[::1] lease_ids not None, const int64_t[::1] clients not None,
            int64_t expiry):
        """Keep the leases of a batch alive until ``expiry``; return how many were found."""
        cdef Py_ssize_t i, ls, found = 0, n = lease_ids.shape[0]
        if clients.shape[0] != n:
            raise ValueError(f"clients has {clients.shape[0]} entries, lease_ids {n}")
        with nogil:
            for i in range(n):
                ls = self.ids.lookup(lease_ids[i])
                if ls >= 0 and self.client[ls] == clients[i]:
                    self.expiry[ls] = expiry
                    found += 1
        return found
