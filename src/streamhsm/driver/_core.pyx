"""The driver's registry columns and its lease-end path, in C.

Private module used by :class:`streamhsm.driver.Driver`. Every column is a numpy array the
driver owns; this class holds typed views of them, so ending a lease (the lease machine's end
event, the stream's detach event, the lease-revoked notice, the producer-loss epoch bump, the
lease's Close and release, idle cleanup) runs without Python objects, and expiry runs without the
GIL. Unsafe directives are set in ``setup.py``, never here.
"""
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t

from streamhsm._engine cimport MachineTable, hsm_step
from streamhsm.driver._idmap cimport IdMap

import numpy as np

__all__ = ["COUNTERS", "DriverCore", "REASON_DETACHED", "REASON_EXPIRED", "REASON_REVOKED",
           "REASON_SHUTDOWN"]

# Counter slots; the public names are in streamhsm.driver.COUNTER_NAMES (same order).
cdef enum:
    C_ATTACHES_OK = 0
    C_ATTACHES_REJECTED = 1
    C_KEEPALIVES = 2
    C_LEASES_DETACHED = 3
    C_LEASES_EXPIRED = 4
    C_LEASES_REVOKED = 5
    C_EPOCH_BUMPS = 6
    C_STREAMS_PROVISIONED = 7
    C_STREAMS_CLOSED = 8
    C_NOTICES_DROPPED = 9
    N_COUNTERS = 10

# Lease end reasons (values of streamhsm.RevokeReason).
cdef enum:
    R_DETACHED = 1
    R_EXPIRED = 2
    R_REVOKED = 3
    R_SHUTDOWN = 4

COUNTERS = N_COUNTERS
REASON_DETACHED, REASON_EXPIRED, REASON_REVOKED, REASON_SHUTDOWN = (
    R_DETACHED, R_EXPIRED, R_REVOKED, R_SHUTDOWN)

cdef int64_t _NEVER = 0x7FFFFFFFFFFFFFFF
cdef uint8_t _PRODUCER = 1


@cython.final
cdef class DriverCore:
    """Typed views of the driver's columns plus the C-level lease-end and epoch paths.

    Args:
        streams, leases: the stream and lease tables.
        lease_by_id, lease_by_client: the live-lease maps.
        columns: dict of the numpy columns (see ``Driver.__init__`` for the names).
        stream_events, lease_events: dicts of the event codes the core dispatches.
        dyn_first: first id of the dynamic stream range.
    """
    cdef MachineTable streams, leases
    cdef IdMap by_id, by_client
    cdef int64_t[::1] stream_id, producer, epoch, dyn_epoch
    cdef int32_t[::1] consumers, dyn_slot
    cdef uint8_t[::1] dynamic, due
    cdef int32_t[::1] due_slots
    cdef int64_t[::1] lease_id, lease_client, lease_expiry
    cdef int32_t[::1] lease_stream
    cdef uint8_t[::1] lease_role
    cdef int64_t[::1] rv_lease, rv_stream, rv_time
    cdef uint8_t[::1] rv_role, rv_reason
    cdef int32_t[::1] scratch
    cdef readonly object counters
    cdef int64_t[::1] ctr
    cdef Py_ssize_t n_revoked_, n_due_, closed_dynamic_, dyn_first, outbox
    cdef Py_ssize_t ev_producer_detached, ev_consumer_detached, ev_epoch_bumped, ev_stream_idle
    cdef Py_ssize_t ev_detach, ev_timeout, ev_revoke, ev_close

    def __cinit__(self, MachineTable streams, MachineTable leases, IdMap lease_by_id,
                  IdMap lease_by_client, dict columns, dict stream_events, dict lease_events,
                  Py_ssize_t dyn_first):
        self.streams, self.leases = streams, leases
        self.by_id, self.by_client = lease_by_id, lease_by_client
        c = columns
        self.stream_id, self.producer, self.epoch = c["stream_id"], c["producer"], c["epoch"]
        self.dyn_epoch, self.consumers, self.dyn_slot = c["dyn_epoch"], c["consumers"], c["dyn_slot"]
        self.dynamic, self.due, self.due_slots = c["dynamic"].view(np.uint8), c["due"].view(np.uint8), c["due_slots"]
        self.lease_id, self.lease_client = c["lease_id"], c["lease_client"]
        self.lease_expiry, self.lease_stream, self.lease_role = (
            c["lease_expiry"], c["lease_stream"], c["lease_role"])
        self.rv_lease, self.rv_stream, self.rv_time = c["rv_lease"], c["rv_stream"], c["rv_time"]
        self.rv_role, self.rv_reason = c["rv_role"], c["rv_reason"]
        self.scratch = np.empty(len(c["lease_id"]), np.int32)
        self.counters = np.zeros(N_COUNTERS, np.int64)
        self.ctr = self.counters
        self.outbox = len(c["rv_lease"])
        self.dyn_first = dyn_first
        self.n_revoked_ = self.n_due_ = self.closed_dynamic_ = 0
        self.ev_producer_detached = stream_events["ProducerDetached"]
        self.ev_consumer_detached = stream_events["ConsumerDetached"]
        self.ev_epoch_bumped = stream_events["EpochBumped"]
        self.ev_stream_idle = stream_events["StreamIdle"]
        self.ev_detach, self.ev_timeout = lease_events["Detach"], lease_events["LeaseTimeout"]
        self.ev_revoke, self.ev_close = lease_events["Revoke"], lease_events["Close"]

    # ------------------------------------------------------------------ C-level paths
    cdef void mark_due(self, Py_ssize_t slot) noexcept nogil:
        if not self.due[slot]:
            self.due[slot] = 1
            self.due_slots[self.n_due_] = <int32_t>slot
            self.n_due_ += 1

    cdef int64_t bump(self, Py_ssize_t slot) noexcept nogil:
        cdef int64_t e = self.epoch[slot] + 1
        self.epoch[slot] = e
        if self.dynamic[slot]:
            self.dyn_epoch[self.stream_id[slot] - self.dyn_first] = e
        hsm_step(&self.streams.core, slot, self.ev_epoch_bumped)
        self.ctr[C_EPOCH_BUMPS] += 1
        self.mark_due(slot)
        return e

    cdef void notice(self, int64_t lease, int64_t stream, uint8_t role, uint8_t reason,
                     int64_t now) noexcept nogil:
        cdef Py_ssize_t i = self.n_revoked_
        if i == self.outbox:
            self.ctr[C_NOTICES_DROPPED] += 1
            return
        self.rv_lease[i] = lease
        self.rv_stream[i] = stream
        self.rv_role[i] = role
        self.rv_reason[i] = reason
        self.rv_time[i] = now
        self.n_revoked_ = i + 1

    cdef void end_lease(self, Py_ssize_t ls, int reason, int64_t now) noexcept nogil:
        """End live lease slot ``ls`` (see docs/design.md section 5, rule 6)."""
        cdef int64_t lease = self.lease_id[ls]
        cdef Py_ssize_t slot = self.lease_stream[ls]
        cdef uint8_t role = self.lease_role[ls]
        cdef int64_t sid = self.stream_id[slot]
        if reason == R_DETACHED:
            hsm_step(&self.leases.core, ls, self.ev_detach)
            self.ctr[C_LEASES_DETACHED] += 1
        elif reason == R_EXPIRED:
            hsm_step(&self.leases.core, ls, self.ev_timeout)
            self.ctr[C_LEASES_EXPIRED] += 1
        else:
            hsm_step(&self.leases.core, ls, self.ev_revoke)
            self.ctr[C_LEASES_REVOKED] += 1
        if role == _PRODUCER:
            self.producer[slot] = 0
            hsm_step(&self.streams.core, slot, self.ev_producer_detached)
            self.notice(lease, sid, role, <uint8_t>reason, now)
            self.bump(slot)  # producer loss: new epoch, after the revoke notice
        else:
            self.consumers[slot] -= 1
            hsm_step(&self.streams.core, slot, self.ev_consumer_detached)
            self.notice(lease, sid, role, <uint8_t>reason, now)
        hsm_step(&self.leases.core, ls, self.ev_close)
        self.leases.release_unchecked(ls)
        self.by_id.remove(lease)
        self.by_client.remove(self.lease_client[ls])
        self.lease_expiry[ls] = _NEVER
        self.lease_stream[ls] = -1
        if (self.dynamic[slot] and self.producer[slot] == 0 and self.consumers[slot] == 0
                and reason != R_SHUTDOWN):
            hsm_step(&self.streams.core, slot, self.ev_stream_idle)
            self.closed_dynamic_ += 1
            self.ctr[C_STREAMS_CLOSED] += 1

    # ------------------------------------------------------------------ Python entry points
    def bump_epoch(self, Py_ssize_t slot):
        """Bump the epoch of an open, Live stream slot (checked by the caller); return it."""
        return self.bump(slot)

    def mark_announce(self, Py_ssize_t slot):
        """Mark a stream slot's announce due (once until drained)."""
        self.mark_due(slot)

    def end(self, Py_ssize_t ls, int reason, int64_t now):
        """End live lease slot ``ls`` (checked by the caller) for ``reason``."""
        self.end_lease(ls, reason, now)

    cdef Py_ssize_t end_matching(self, bint expired_only, int reason, int64_t now) noexcept nogil:
        """End every live lease (or only those whose expiry is before ``now``); return how many.
        Expired slots are collected first, so ending one cannot affect the scan."""
        cdef Py_ssize_t i, n = 0, size = self.lease_stream.shape[0]
        for i in range(size):
            if self.lease_stream[i] >= 0 and (not expired_only or self.lease_expiry[i] < now):
                self.scratch[n] = <int32_t>i
                n += 1
        for i in range(n):
            self.end_lease(self.scratch[i], reason, now)
        return n

    cdef Py_ssize_t _end_locked(self, bint expired_only, int reason, int64_t now) except -1:
        cdef Py_ssize_t n
        self.streams.lock_batch()
        try:
            self.leases.lock_batch()
            try:
                with nogil:
                    n = self.end_matching(expired_only, reason, now)
            finally:
                self.leases.unlock_batch()
        finally:
            self.streams.unlock_batch()
        return n

    def expire(self, int64_t now):
        """End every live lease whose expiry is before ``now``: one scan and the lease ends, all
        without the GIL under both tables' batch locks. Returns the number expired."""
        return self._end_locked(True, R_EXPIRED, now)

    def end_all(self, int reason, int64_t now):
        """End every live lease for ``reason`` (shutdown), without the GIL; return how many."""
        return self._end_locked(False, reason, now)

    def pending_due(self):
        """The due stream slots, in the order they became due (a view; nothing is cleared)."""
        return np.asarray(self.due_slots)[:self.n_due_]

    def take_due(self):
        """The due stream slots (a view, valid until the next mark) and clear the list; the
        caller clears the per-slot flags."""
        due = self.pending_due()
        self.n_due_ = 0
        return due

    @property
    def n_revoked(self):
        """Pending lease-revoked notices."""
        return self.n_revoked_

    @n_revoked.setter
    def n_revoked(self, Py_ssize_t value):
        self.n_revoked_ = value

    @property
    def closed_dynamic(self):
        """Dynamic streams Closed and waiting for their slot to be recycled."""
        return self.closed_dynamic_

    @closed_dynamic.setter
    def closed_dynamic(self, Py_ssize_t value):
        self.closed_dynamic_ = value
