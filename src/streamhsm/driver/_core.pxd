# The C-level declaration of DriverCore (private): the driver's hot entry points
# (streamhsm/driver/_calls.pyx) cimport it to reach the core's nogil operations.
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t

from streamhsm.capi cimport HsmFired, MachineTable
from streamhsm.driver._idmap cimport IdMap

# Outcomes of the core's per-request operations below 0 (>= 0 is the stream's epoch).
cdef enum:
    ONE_UNKNOWN = -1       # unknown lease, or held by another client (indistinguishable)
    ONE_ENDED = -2         # an issued lease that is no longer live
    ONE_EPOCH_MAX = -3     # a producer's lease whose end would bump the epoch past EPOCH_MAX


@cython.final
cdef class DriverCore:
    cdef readonly MachineTable streams, leases
    cdef IdMap by_id, by_client, static_slot
    cdef dict _columns
    cdef int64_t[::1] stream_id, producer, epoch, dyn_epoch
    cdef int32_t[::1] consumers, dyn_slot, due_slots
    cdef uint8_t[::1] dynamic, due
    cdef int64_t[::1] lease_id, lease_client
    cdef int32_t[::1] lease_stream
    cdef uint8_t[::1] lease_role
    cdef int64_t[::1] rv_lease, rv_stream, rv_client, rv_time
    cdef uint8_t[::1] rv_role, rv_reason
    cdef int32_t[::1] scratch
    cdef Py_ssize_t[::1] client_home  # by_client.home of each live lease's client (never saved)
    cdef object fired_buf      # FIRED_DTYPE [n_leases]: the expiries one advance fires
    cdef HsmFired* fired
    cdef int64_t[::1] ctr
    cdef readonly int64_t last_lease_id
    cdef readonly Py_ssize_t n_revoked, closed_dynamic
    cdef Py_ssize_t n_due
    cdef readonly int64_t dyn_first, dyn_last
    cdef bint allow_dynamic, drain_on_loss
    cdef Py_ssize_t n_streams, n_leases, n_dyn, outbox
    cdef Py_ssize_t ev_provisioned, ev_producer_attached, ev_consumer_attached
    cdef Py_ssize_t ev_producer_detached, ev_consumer_detached, ev_epoch_bumped, ev_stream_idle
    cdef Py_ssize_t ev_attach_ok, ev_keepalive, ev_detach, ev_timeout, ev_revoke, ev_close
    cdef int kernel_error  # a debug-build kernel index check failed inside a nogil path

    cdef void _bind(self)
    cdef void step_stream(self, Py_ssize_t slot, Py_ssize_t event) noexcept nogil
    cdef void step_lease(self, Py_ssize_t ls, Py_ssize_t event) noexcept nogil
    cdef int raise_kernel_error(self) except -1
    cdef int wait_idle(self) except -1
    cdef int check_stream_slot(self, Py_ssize_t slot) except -1
    cdef int check_lease_slot(self, Py_ssize_t ls) except -1
    cdef void count(self, Py_ssize_t c, int64_t n) noexcept nogil
    cdef void mark_due(self, Py_ssize_t slot) noexcept nogil
    cdef int64_t bump(self, Py_ssize_t slot) noexcept nogil
    cdef void notice(self, Py_ssize_t ls, int64_t stream, uint8_t reason,
                     int64_t now) noexcept nogil
    cdef void end_lease(self, Py_ssize_t ls, int reason, int64_t now) noexcept nogil
    cdef void end_lease_from(self, Py_ssize_t ls, int reason, int64_t now,
                             Py_ssize_t id_at, bint fired=*) noexcept nogil
    cdef bint end_needs_bump_past_max(self, Py_ssize_t ls) noexcept nogil
    cdef int64_t first_blocked_end(self, bint expired_only, int64_t now) noexcept nogil
    cdef Py_ssize_t end_matching(self, bint expired_only, int reason, int64_t now) noexcept nogil
    cdef Py_ssize_t _end_locked(self, bint expired_only, int reason, int64_t now) except -1
    cdef Py_ssize_t advance_to(self, int64_t now) noexcept nogil
    cdef int advance_checked(self, int64_t now) noexcept nogil
    cdef void free_stream_slot(self, Py_ssize_t slot) noexcept nogil
    cdef void recycle(self) noexcept nogil
    cdef Py_ssize_t provision(self, int64_t sid, bint dynamic) noexcept nogil
    cdef Py_ssize_t slot_c(self, int64_t sid, bint run=*) noexcept nogil
    cpdef Py_ssize_t slot_of(self, int64_t sid)
    cdef int attach_refusal(self, int64_t sid, int role, int64_t client, bint create,
                            Py_ssize_t slot, Py_ssize_t client_home) noexcept nogil
    cdef Py_ssize_t live_slot(self, int64_t lease, int64_t client, Py_ssize_t* at) noexcept nogil
    cdef int64_t attach_one(self, int64_t sid, int role, int64_t client, bint create,
                            Py_ssize_t* stream_slot) noexcept nogil
    cdef int64_t keepalive_one(self, int64_t lease, int64_t client) noexcept nogil
    cdef int64_t detach_one(self, int64_t lease, int64_t client, int64_t now) noexcept nogil
