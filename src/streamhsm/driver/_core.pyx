"""The driver's registry, owned in C: every column, every count, and every operation that changes
them.

Private module used by :class:`streamhsm.driver.Driver`. :class:`DriverCore` allocates its columns
from one declaration (:func:`driver_layout`), hands out read-only views of them, and changes them
only through complete operations: provision a stream, attach (open a lease), keep a lease alive,
end a lease, expire leases, bump an epoch, take announces and revoke notices, shut down, restore a
validated snapshot. The core owns the attach rules (one producer per stream, one live lease per
client, ...): :meth:`DriverCore.attach` checks every one before it changes anything and answers
with an :class:`~streamhsm.driver.protocol.AttachRefusal` code. ``Driver`` converts arguments and
turns outcomes into responses; it never writes a column. Expiry and shutdown run without the GIL
under both tables' batch locks.

Limits (docs/design.md, "Counters and limits"): counters saturate at ``2**63 - 1``; an epoch or a
lease id never passes ``2**63 - 1``: the operation that would need one more is refused and changes
nothing.

Codes come from one source each: the counters from :class:`~streamhsm.driver.protocol.Counter`,
roles and lease-end reasons from ``Role`` / ``RevokeReason``, the events from the machines' enums.
Unsafe directives are set in ``setup.py``, never here.
"""
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t
from libc.string cimport memmove

from streamhsm.capi cimport (
    HSM_FREE_SLOT, STREAMHSM_DEBUG_CHECKS, HsmFired, MachineTable, hsm_advance, hsm_deadline,
    hsm_next_due, hsm_now, hsm_open, hsm_open_count, hsm_state, hsm_step,
)
from streamhsm.driver._idmap cimport IdMap

import numpy as np

from .._timer_tables import FIRED_DTYPE
from .._views import readonly_view
from ..lifecycle import Event, State
from .machines import LeaseEvent
from .config import MAX_STREAM_ID, NEVER
from ._layout import driver_layout
from .protocol import AttachRefusal, Counter, RevokeReason, Role

__all__ = ["EPOCH_MAX", "LEASE_ID_MAX", "NEVER", "DriverCore", "ValidatedState", "driver_layout"]

cdef int64_t C_NEVER = NEVER  # "no deadline" (owned by .config)
#: Largest epoch (an epoch bump past it is refused), largest lease id, and where counters stop.
EPOCH_MAX = LEASE_ID_MAX = COUNTER_MAX = NEVER
cdef int64_t C_MAX = 0x7FFFFFFFFFFFFFFF
cdef int64_t C_MAX_STREAM_ID = MAX_STREAM_ID

# Codes read once from their Python source (see the module docstring).
cdef Py_ssize_t C_OK = Counter.ATTACHES_OK
cdef Py_ssize_t C_REJECTED = Counter.ATTACHES_REJECTED
cdef Py_ssize_t C_KEEPALIVES = Counter.KEEPALIVES
cdef Py_ssize_t C_DETACHED = Counter.LEASES_DETACHED
cdef Py_ssize_t C_EXPIRED = Counter.LEASES_EXPIRED
cdef Py_ssize_t C_REVOKED = Counter.LEASES_REVOKED
cdef Py_ssize_t C_BUMPS = Counter.EPOCH_BUMPS
cdef Py_ssize_t C_PROVISIONED = Counter.STREAMS_PROVISIONED
cdef Py_ssize_t C_CLOSED = Counter.STREAMS_CLOSED
cdef Py_ssize_t C_DROPPED = Counter.REVOKE_NOTICES_DROPPED
cdef int R_DETACHED = RevokeReason.DETACHED
cdef int R_EXPIRED = RevokeReason.EXPIRED
cdef int R_SHUTDOWN = RevokeReason.SHUTDOWN
cdef uint8_t PRODUCER = Role.PRODUCER
cdef uint8_t CONSUMER = Role.CONSUMER
cdef uint8_t S_ACTIVE = State.ACTIVE
cdef uint8_t S_DRAINING = State.DRAINING
cdef uint8_t S_CLOSED = State.CLOSED
cdef int X_ROLE = AttachRefusal.ROLE
cdef int X_STREAM_ID = AttachRefusal.STREAM_ID
cdef int X_CLIENT_ID = AttachRefusal.CLIENT_ID
cdef int X_CLIENT_HOLDS = AttachRefusal.CLIENT_HOLDS_LEASE
cdef int X_UNKNOWN = AttachRefusal.UNKNOWN_STREAM
cdef int X_OUTSIDE = AttachRefusal.OUTSIDE_DYNAMIC_RANGE
cdef int X_STREAM_ROOM = AttachRefusal.STREAM_CAPACITY
cdef int X_PRODUCER = AttachRefusal.PRODUCER_ATTACHED
cdef int X_DRAINING = AttachRefusal.STREAM_DRAINING
cdef int X_EPOCH = AttachRefusal.EPOCH_AT_MAXIMUM
cdef int X_LEASE_ROOM = AttachRefusal.LEASE_CAPACITY
cdef int X_LEASE_IDS = AttachRefusal.LEASE_IDS_EXHAUSTED


@cython.final
cdef class ValidatedState:
    """A driver snapshot's columns and scalars after every check (built only by
    ``streamhsm.driver.persistence``); :meth:`DriverCore.restore` accepts nothing else."""
    cdef readonly dict columns
    cdef readonly int64_t last_lease_id
    cdef readonly Py_ssize_t n_revoked, n_due, closed_dynamic

    def __cinit__(self, dict columns, int64_t last_lease_id, Py_ssize_t n_revoked,
                  Py_ssize_t n_due, Py_ssize_t closed_dynamic):
        self.columns = columns
        self.last_lease_id = last_lease_id
        self.n_revoked = n_revoked
        self.n_due = n_due
        self.closed_dynamic = closed_dynamic


cdef class DriverCore:
    """The driver's registry columns and every operation that changes them.

    Args:
        streams, leases: the stream table and the lease table (engine tables the core drives).
        dyn_first, dyn_last: the dynamic stream id range (``dyn_last < dyn_first``: none).
        n_static: how many static (configured) streams there will be.
        outbox: capacity of the lease-revoked outbox.
        allow_dynamic: an attach may create a stream in the dynamic range.
        drain_on_producer_loss: the stream policy (a Draining stream then accepts a producer).

    Every ``def`` method checks the slots it is given (``IndexError``), so no call can reach
    memory out of range, and :meth:`attach` checks the attach rules.
    """

    def __cinit__(self, MachineTable streams not None, MachineTable leases not None,
                  int64_t dyn_first, int64_t dyn_last, Py_ssize_t n_static, Py_ssize_t outbox,
                  bint allow_dynamic=False, bint drain_on_producer_loss=False):
        self.streams, self.leases = streams, leases
        self.allow_dynamic, self.drain_on_loss = allow_dynamic, drain_on_producer_loss
        self.n_streams, self.n_leases = streams.capacity, leases.capacity
        self.dyn_first, self.dyn_last = dyn_first, dyn_last
        self.n_dyn = max(0, dyn_last - dyn_first + 1)
        if outbox <= 0:
            raise ValueError(f"outbox capacity must be positive, got {outbox}")
        self.outbox = outbox
        layout = driver_layout(self.n_streams, self.n_leases, self.n_dyn, outbox)
        self._columns = {name: np.full(n, fill, dtype) for name, (dtype, n, fill) in layout.items()}
        self._bind()
        self.scratch = np.empty(self.n_leases, np.int32)
        self.client_home = np.zeros(self.n_leases, np.intp)
        if leases.machine.timers is None or leases.machine.timers.names != ("expiry",):
            raise ValueError("the lease table's machine must have the one timer 'expiry' "
                             "(streamhsm.driver.machines.lease_machine(expiry_ns))")
        # the expiries (or stream announces) one advance fires: at most one per slot
        self.fired_buf = np.zeros(max(self.n_leases, self.n_streams), FIRED_DTYPE)
        self.fired = <HsmFired*><uintptr_t>self.fired_buf.ctypes.data
        self.by_id = IdMap(self.n_leases)
        self.by_client = IdMap(self.n_leases)
        self.static_slot = IdMap(max(1, n_static))
        self.last_lease_id = 0
        self.n_revoked = self.n_due = self.closed_dynamic = 0
        self.kernel_error = 0
        self.ev_provisioned = Event.STREAM_PROVISIONED
        self.ev_producer_attached = Event.PRODUCER_ATTACHED
        self.ev_consumer_attached = Event.CONSUMER_ATTACHED
        self.ev_producer_detached = Event.PRODUCER_DETACHED
        self.ev_consumer_detached = Event.CONSUMER_DETACHED
        self.ev_epoch_bumped = Event.EPOCH_BUMPED
        self.ev_stream_idle = Event.STREAM_IDLE
        self.ev_attach_ok, self.ev_keepalive = LeaseEvent.ATTACH_OK, LeaseEvent.KEEPALIVE
        self.ev_detach, self.ev_timeout = LeaseEvent.DETACH, LeaseEvent.LEASE_TIMEOUT
        self.ev_revoke, self.ev_close = LeaseEvent.REVOKE, LeaseEvent.CLOSE

    cdef void _bind(self):
        c = self._columns
        self.stream_id, self.producer, self.epoch = c["stream_id"], c["producer"], c["epoch"]
        self.consumers, self.dynamic = c["consumers"], c["dynamic"]
        self.due, self.due_slots = c["due"], c["due_slots"]
        self.dyn_slot, self.dyn_epoch = c["dyn_slot"], c["dyn_epoch"]
        self.lease_id, self.lease_stream, self.lease_role = (
            c["lease_id"], c["lease_stream"], c["lease_role"])
        self.lease_client = c["lease_client"]
        self.rv_lease, self.rv_stream = c["revoked_lease_id"], c["revoked_stream_id"]
        self.rv_client, self.rv_time = c["revoked_client_id"], c["revoked_time_ns"]
        self.rv_role, self.rv_reason = c["revoked_role"], c["revoked_reason"]
        self.ctr = c["counters"]

    # ------------------------------------------------------------------ kernel calls
    cdef void step_stream(self, Py_ssize_t slot, Py_ssize_t event) noexcept nogil:
        if hsm_step(self.streams, slot, event) < 0:
            self.kernel_error = 1

    cdef void step_lease(self, Py_ssize_t ls, Py_ssize_t event) noexcept nogil:
        if hsm_step(self.leases, ls, event) < 0:
            self.kernel_error = 1

    cdef int raise_kernel_error(self) except -1:
        """Raise (after a nogil section) if a debug-build kernel check failed inside it."""
        if self.kernel_error == 2:
            self.kernel_error = 0
            raise OverflowError("internal error: an epoch bump past EPOCH_MAX was not refused")
        if self.kernel_error:
            self.kernel_error = 0
            raise IndexError("internal error: HSM kernel index out of range in the driver core "
                             "(debug build check)")
        return 0

    cdef int wait_idle(self) except -1:
        """Wait (GIL released) while a batch in another thread holds the tables (called first by
        every change made with the GIL; no batch can start before the caller releases it)."""
        if self.streams._busy or self.leases._busy:
            self.streams.lock_batch()
            self.streams.unlock_batch()
            self.leases.lock_batch()
            self.leases.unlock_batch()
        return 0

    cdef int check_stream_slot(self, Py_ssize_t slot) except -1:
        if not 0 <= slot < self.n_streams or hsm_state(self.streams, slot) == HSM_FREE_SLOT:
            raise IndexError(f"stream slot {slot} is not open")
        return 0

    cdef int check_lease_slot(self, Py_ssize_t ls) except -1:
        if not 0 <= ls < self.n_leases or self.lease_stream[ls] < 0:
            raise IndexError(f"lease slot {ls} is not live")
        return 0

    # ------------------------------------------------------------------ C-level paths
    cdef void count(self, Py_ssize_t c, int64_t n) noexcept nogil:
        """Add ``n`` (>= 0) to counter ``c``, stopping at ``2**63 - 1`` (counters saturate)."""
        if self.ctr[c] > C_MAX - n:
            self.ctr[c] = C_MAX
        else:
            self.ctr[c] += n

    cdef void mark_due(self, Py_ssize_t slot) noexcept nogil:
        if not self.due[slot]:
            self.due[slot] = 1
            self.due_slots[self.n_due] = <int32_t>slot
            self.n_due += 1

    cdef int64_t bump(self, Py_ssize_t slot) noexcept nogil:
        """Give stream ``slot`` its next epoch. Every caller has checked that the epoch is below
        ``EPOCH_MAX`` (:meth:`epoch_room`); it never wraps even so."""
        cdef int64_t e = self.epoch[slot]
        if e == C_MAX:
            self.kernel_error = 2
            return e
        e += 1
        self.epoch[slot] = e
        if self.dynamic[slot]:
            self.dyn_epoch[self.stream_id[slot] - self.dyn_first] = e
        self.step_stream(slot, self.ev_epoch_bumped)
        self.count(C_BUMPS, 1)
        self.mark_due(slot)
        return e

    cdef void notice(self, Py_ssize_t ls, int64_t stream, uint8_t reason,
                     int64_t now) noexcept nogil:
        cdef Py_ssize_t i = self.n_revoked
        if i == self.outbox:
            self.count(C_DROPPED, 1)
            return
        self.rv_lease[i] = self.lease_id[ls]
        self.rv_stream[i] = stream
        self.rv_client[i] = self.lease_client[ls]
        self.rv_role[i] = self.lease_role[ls]
        self.rv_reason[i] = reason
        self.rv_time[i] = now
        self.n_revoked = i + 1

    cdef void end_lease(self, Py_ssize_t ls, int reason, int64_t now) noexcept nogil:
        """End live lease slot ``ls`` (see docs/design.md section 5, rule 6)."""
        self.end_lease_from(ls, reason, now, self.by_id.find(self.lease_id[ls]))

    cdef void end_lease_from(self, Py_ssize_t ls, int reason, int64_t now,
                             Py_ssize_t id_at, bint fired=False) noexcept nogil:
        """:meth:`end_lease` with the lease id's index in ``by_id`` found by the caller;
        ``fired``: the lease's expiry timer fired (its machine is in Expired already)."""
        cdef Py_ssize_t slot = self.lease_stream[ls]
        cdef int64_t sid = self.stream_id[slot]
        if reason == R_DETACHED:
            self.step_lease(ls, self.ev_detach)
            self.count(C_DETACHED, 1)
        elif reason == R_EXPIRED:
            if not fired:  # (an expiry timer that fired has dispatched LeaseTimeout itself)
                self.step_lease(ls, self.ev_timeout)
            self.count(C_EXPIRED, 1)
        else:
            self.step_lease(ls, self.ev_revoke)
            self.count(C_REVOKED, 1)
        if self.lease_role[ls] == PRODUCER:
            self.producer[slot] = 0
            self.step_stream(slot, self.ev_producer_detached)
            self.notice(ls, sid, <uint8_t>reason, now)
            self.bump(slot)  # producer loss: new epoch, after the revoke notice
        else:
            self.consumers[slot] -= 1
            self.step_stream(slot, self.ev_consumer_detached)
            self.notice(ls, sid, <uint8_t>reason, now)
        self.step_lease(ls, self.ev_close)
        self.leases.release_unchecked(ls)
        self.by_id.remove_at(id_at)
        self.by_client.remove_from(self.lease_client[ls], self.client_home[ls])
        self.lease_stream[ls] = -1
        if (self.dynamic[slot] and self.producer[slot] == 0 and self.consumers[slot] == 0
                and reason != R_SHUTDOWN):
            self.step_stream(slot, self.ev_stream_idle)
            self.closed_dynamic += 1
            self.count(C_CLOSED, 1)

    cdef bint end_needs_bump_past_max(self, Py_ssize_t ls) noexcept nogil:
        """True if ending live lease ``ls`` would bump an epoch past ``EPOCH_MAX``."""
        return self.lease_role[ls] == PRODUCER and self.epoch[self.lease_stream[ls]] == C_MAX

    cdef int64_t first_blocked_end(self, bint expired_only, int64_t now) noexcept nogil:
        """Stream id of the first lease that ``end_matching`` would end and whose end would bump
        an epoch past ``EPOCH_MAX``, or -1."""
        cdef Py_ssize_t i
        for i in range(self.n_leases):
            if self.lease_stream[i] >= 0 and (not expired_only
                                              or hsm_deadline(self.leases, 0, i) <= now):
                if self.end_needs_bump_past_max(i):
                    return self.stream_id[self.lease_stream[i]]
        return -1

    cdef Py_ssize_t end_matching(self, bint expired_only, int reason, int64_t now) noexcept nogil:
        """End every live lease (``expired_only``: advance the lease table's clock to ``now``,
        whose expiry timers end the leases expired before it); return how many. Slots are
        collected first, so ending one cannot affect the scan."""
        cdef Py_ssize_t i, n = 0
        if expired_only:
            return self.advance_to(now)
        for i in range(self.n_leases):
            if self.lease_stream[i] >= 0:
                self.scratch[n] = <int32_t>i
                n += 1
        for i in range(n):
            self.end_lease(self.scratch[i], reason, now)
        return n

    cdef Py_ssize_t advance_to(self, int64_t now) noexcept nogil:
        """Move the tables' clocks to ``now``: the streams whose announce timer fires are due;
        every lease whose expiry (its timer's deadline - 1) is before ``now`` gets LeaseTimeout
        from its timer and ends here (EXPIRED), in slot order; return how many. The caller
        checked ``now`` and that no such lease is blocked by an epoch at ``EPOCH_MAX``
        (:meth:`first_blocked_end`). With nothing due this is a clock store."""
        cdef Py_ssize_t i, n, ls
        if now > hsm_now(self.streams) >= 0:  # the announce cadence: every fired stream is due
            n = hsm_advance(self.streams, now, self.fired, self.n_streams)
            for i in range(n):
                self.mark_due(self.fired[i].slot)
        if now <= hsm_now(self.leases):  # (a refused batch may have put the driver's clock back)
            return 0
        n = hsm_advance(self.leases, now, self.fired, self.n_leases)
        if n < 0:
            self.kernel_error = 1
            return 0
        for i in range(n):
            ls = self.fired[i].slot
            self.end_lease_from(ls, R_EXPIRED, now, self.by_id.find(self.lease_id[ls]), True)
        return n

    cdef Py_ssize_t _end_locked(self, bint expired_only, int reason, int64_t now) except -1:
        cdef Py_ssize_t n
        cdef int64_t blocked
        self.streams.lock_batch()
        try:
            self.leases.lock_batch()
            try:
                with nogil:
                    blocked = self.first_blocked_end(expired_only, now)
                    if blocked < 0:
                        n = self.end_matching(expired_only, reason, now)
                if blocked >= 0:
                    raise OverflowError(
                        f"the epoch of stream {blocked} is at its maximum ({EPOCH_MAX}): its "
                        f"producer's lease cannot end; nothing was changed")
            finally:
                self.leases.unlock_batch()
        finally:
            self.streams.unlock_batch()
        self.raise_kernel_error()
        return n

    cdef void free_stream_slot(self, Py_ssize_t slot) noexcept nogil:
        """Recycle the slot of a Closed dynamic stream (its epoch stays in ``dyn_epoch``)."""
        self.dyn_slot[self.stream_id[slot] - self.dyn_first] = -1
        self.stream_id[slot] = -1
        self.dynamic[slot] = 0
        # the due flag stays: the slot may still be in the due list (take_announces clears it)
        self.streams.release_unchecked(slot)
        self.closed_dynamic -= 1

    cdef void recycle(self) noexcept nogil:
        """Release the slots of dynamic streams that went Closed (idle cleanup)."""
        cdef Py_ssize_t slot
        if self.closed_dynamic == 0:
            return
        for slot in range(self.n_streams):
            if self.dynamic[slot] and hsm_state(self.streams, slot) == S_CLOSED:
                self.free_stream_slot(slot)

    cdef Py_ssize_t provision(self, int64_t sid, bint dynamic) noexcept nogil:
        """Open a stream slot for ``sid`` (the caller checked there is room: a free slot or a
        Closed dynamic one, recycled here), StreamProvisioned, first epoch bump."""
        cdef Py_ssize_t slot
        if hsm_open_count(self.streams) == self.n_streams:
            self.recycle()
        slot = hsm_open(self.streams)
        if slot < 0:
            self.kernel_error = 1
            return -1
        self.step_stream(slot, self.ev_provisioned)
        self.stream_id[slot] = sid
        self.producer[slot] = 0
        self.consumers[slot] = 0
        self.dynamic[slot] = dynamic
        if dynamic:
            self.epoch[slot] = self.dyn_epoch[sid - self.dyn_first]
            self.dyn_slot[sid - self.dyn_first] = <int32_t>slot
        else:
            self.epoch[slot] = 0
        self.count(C_PROVISIONED, 1)
        self.bump(slot)
        return slot

    # ------------------------------------------------------------------ operations
    cdef Py_ssize_t slot_c(self, int64_t sid, bint run=False) noexcept nogil:
        """Stream slot of ``sid`` or -1 (``run``: an attach's look-up, ``IdMap.home_run``)."""
        if self.dyn_first <= sid <= self.dyn_last:
            return self.dyn_slot[sid - self.dyn_first]
        if sid < 0:
            return -1
        return self.static_slot.lookup_from(sid, self.static_slot.home_run(sid) if run
                                            else self.static_slot.home(sid))

    cpdef Py_ssize_t slot_of(self, int64_t sid):
        """Slot of a stream id (in any state, until its slot is recycled), or -1."""
        return self.slot_c(sid)

    def provision_static(self, int64_t sid):
        """Provision a configured stream (at construction); return its slot."""
        if sid < 0 or self.dyn_first <= sid <= self.dyn_last or self.static_slot.lookup(sid) >= 0:
            raise ValueError(f"stream id {sid} cannot be a new static stream")
        if len(self.streams) == self.n_streams:
            raise IndexError(f"no free stream slot for static stream {sid}")
        self.wait_idle()
        cdef Py_ssize_t slot = self.provision(sid, False)
        self.raise_kernel_error()
        if self.static_slot.insert(sid, slot) < 0:
            raise OverflowError(f"more static streams than declared (stream {sid})")
        return slot

    @property
    def stream_room(self):
        """Stream slots an attach could provision now (free, or Closed dynamic and recyclable)."""
        return self.n_streams - len(self.streams) + self.closed_dynamic

    cdef int attach_refusal(self, int64_t sid, int role, int64_t client, bint create,
                            Py_ssize_t slot, Py_ssize_t client_home) noexcept nogil:
        """The first attach rule the request breaks (an ``AttachRefusal`` code), or 0. The order
        is the one in docs/design.md section 5, rule 2; the driver lifecycle is checked before
        by ``Driver.attach``. ``slot`` is ``slot_c(sid)`` and ``client_home`` is
        ``by_client.home(client)`` (the caller uses both again)."""
        cdef uint8_t st
        if role != PRODUCER and role != CONSUMER:
            return X_ROLE
        if not 0 <= sid <= C_MAX_STREAM_ID:
            return X_STREAM_ID
        if client <= 0:
            return X_CLIENT_ID
        if self.by_client.lookup_from(client, client_home) >= 0:
            return X_CLIENT_HOLDS
        if slot < 0 or hsm_state(self.streams, slot) == S_CLOSED:  # the attach creates it
            if not (self.allow_dynamic and create):
                return X_UNKNOWN
            if not self.dyn_first <= sid <= self.dyn_last:
                return X_OUTSIDE
            if self.n_streams - hsm_open_count(self.streams) + self.closed_dynamic == 0:
                return X_STREAM_ROOM
            if self.dyn_epoch[sid - self.dyn_first] == C_MAX:
                return X_EPOCH
        else:
            st = hsm_state(self.streams, slot)
            if role == PRODUCER and self.producer[slot] != 0:
                return X_PRODUCER
            if st == S_DRAINING and not (role == PRODUCER and self.drain_on_loss):
                return X_DRAINING
            if role == PRODUCER and self.epoch[slot] == C_MAX:
                return X_EPOCH
        if hsm_open_count(self.leases) == self.n_leases:
            return X_LEASE_ROOM
        if self.last_lease_id == C_MAX:
            return X_LEASE_IDS
        return 0

    cdef int64_t attach_one(self, int64_t sid, int role, int64_t client, bint create,
                            Py_ssize_t* stream_slot) noexcept nogil:
        """:meth:`attach` without the GIL (the caller holds the GIL with no batch running, or
        both tables' batch locks). On success ``stream_slot[0]`` is the stream's slot."""
        cdef Py_ssize_t slot = self.slot_c(sid, True)
        cdef Py_ssize_t ls, client_home = self.by_client.home_run(client)
        cdef int why = self.attach_refusal(sid, role, client, create, slot, client_home)
        if why:
            self.count(C_REJECTED, 1)
            return -why
        if slot < 0 or hsm_state(self.streams, slot) == S_CLOSED:
            if slot >= 0:
                self.free_stream_slot(slot)
            slot = self.provision(sid, True)
            if slot < 0:
                return -X_STREAM_ROOM
        elif role == PRODUCER:
            self.bump(slot)
        ls = hsm_open(self.leases)
        if ls < 0:  # the rules checked for room: only a table changed from outside gets here
            self.kernel_error = 1
            return -X_LEASE_ROOM
        self.step_lease(ls, self.ev_attach_ok)
        self.last_lease_id += 1
        self.lease_id[ls] = self.last_lease_id
        self.lease_stream[ls] = <int32_t>slot
        self.lease_role[ls] = <uint8_t>role
        self.lease_client[ls] = client
        self.by_id.insert_from(self.last_lease_id, ls, self.by_id.home_run(self.last_lease_id))
        self.by_client.insert_from(client, ls, client_home)
        self.client_home[ls] = client_home  # for the removal: a lease's end hashes no client id
        if role == PRODUCER:
            self.producer[slot] = self.last_lease_id
            self.step_stream(slot, self.ev_producer_attached)
        else:
            self.consumers[slot] += 1
            self.step_stream(slot, self.ev_consumer_attached)
        self.mark_due(slot)
        self.count(C_OK, 1)
        stream_slot[0] = slot
        return self.last_lease_id

    def attach(self, int64_t sid, int role, int64_t client, bint create):
        """Check every attach rule, then (only if all pass) open a lease for ``client`` on stream
        ``sid``. Returns the new lease id (> 0), or minus the ``AttachRefusal`` code of the first
        rule broken, counted in ``attaches_rejected``; a refused attach changes nothing else.

        With ``create`` a missing stream (absent, or Closed and waiting for recycling) in the
        dynamic range is provisioned as a dynamic stream first, which bumps its epoch once;
        otherwise a producer attaching to the stream bumps it. Then the lease machine gets
        AttachOk, the stream ProducerAttached or ConsumerAttached, and the stream's announce is
        due.
        """
        self.wait_idle()
        cdef Py_ssize_t slot
        cdef int64_t r = self.attach_one(sid, role, client, create, &slot)
        self.raise_kernel_error()
        return r

    cdef Py_ssize_t live_slot(self, int64_t lease, int64_t client, Py_ssize_t* at) noexcept nogil:
        """Slot of live lease ``lease`` held by ``client`` (> 0), or -1; ``at[0]``: the lease's
        index in ``by_id`` or -1 (found from ``home_run``: only for changing operations)."""
        at[0] = self.by_id.find_from(lease, self.by_id.home_run(lease)) if lease > 0 else -1
        cdef Py_ssize_t ls = self.by_id._slots[at[0]].val if at[0] >= 0 and client > 0 else -1
        return -1 if ls < 0 or self.lease_client[ls] != client else ls

    cdef int advance_checked(self, int64_t now) noexcept nogil:
        """:meth:`advance_to` for a call's fast path: 0 once done, or -1 and nothing changed if
        a lease due to expire is a producer's whose stream's epoch is at ``EPOCH_MAX`` (the
        slow path raises for it)."""
        if now >= hsm_next_due(self.leases) and self.first_blocked_end(True, now) >= 0:
            return -1
        self.advance_to(now)
        return 0

    cdef int64_t keepalive_one(self, int64_t lease, int64_t client) noexcept nogil:
        """Keep lease ``lease`` of ``client`` alive (its expiry timer restarts at the lease
        table's clock: the caller moved it to now, :meth:`advance_checked`): the stream's epoch, or
        ``ONE_UNKNOWN`` / ``ONE_ENDED`` (nothing changed). Same locking rule as
        :meth:`attach_one`."""
        cdef Py_ssize_t at, ls = self.live_slot(lease, client, &at)
        if ls < 0:
            return ONE_ENDED if 0 < lease <= self.last_lease_id and at < 0 else ONE_UNKNOWN
        self.step_lease(ls, self.ev_keepalive)  # restarts its expiry timer
        self.count(C_KEEPALIVES, 1)
        return self.epoch[self.lease_stream[ls]]

    cdef int64_t detach_one(self, int64_t lease, int64_t client, int64_t now) noexcept nogil:
        """End lease ``lease`` of ``client`` (reason DETACHED): the stream's epoch afterwards, or
        ``ONE_UNKNOWN`` / ``ONE_ENDED`` / ``ONE_EPOCH_MAX`` (nothing changed). Same locking rule
        as :meth:`attach_one`."""
        cdef Py_ssize_t slot, at, ls = self.live_slot(lease, client, &at)
        if ls < 0:
            return ONE_ENDED if 0 < lease <= self.last_lease_id and at < 0 else ONE_UNKNOWN
        if self.end_needs_bump_past_max(ls):
            return ONE_EPOCH_MAX
        slot = self.lease_stream[ls]
        self.end_lease_from(ls, R_DETACHED, now, at)
        return self.epoch[slot]

    def reject(self):
        """Count an attach rejected before the rules (the driver is not Running)."""
        self.count(C_REJECTED, 1)

    def live_lease(self, int64_t lease, int64_t client):
        """Slot of live lease ``lease`` held by ``client`` (any client if ``client`` is 0), or
        -1 (unknown, ended, or held by another client: indistinguishable on purpose)."""
        cdef Py_ssize_t ls = -1
        if lease > 0:
            ls = self.by_id.lookup(lease)
        if ls >= 0 and client != 0 and self.lease_client[ls] != client:
            return -1
        return ls

    def holds_lease(self, int64_t client):
        """True if ``client`` holds a live lease."""
        return client > 0 and self.by_client.lookup(client) >= 0

    def keepalive(self, Py_ssize_t ls):
        """Keepalive to live lease slot ``ls``'s machine: its expiry timer restarts at the lease
        table's clock (:meth:`expire` moved it to now)."""
        self.wait_idle()
        self.check_lease_slot(ls)
        self.step_lease(ls, self.ev_keepalive)  # restarts its expiry timer
        self.count(C_KEEPALIVES, 1)
        self.raise_kernel_error()

    def end(self, Py_ssize_t ls, int reason, int64_t now):
        """End live lease slot ``ls`` for ``reason`` (a ``RevokeReason`` code). Returns True, or
        False (and changes nothing) if the lease is a producer's whose stream's epoch is at
        ``EPOCH_MAX``, so that its producer-loss bump is impossible."""
        self.wait_idle()
        self.check_lease_slot(ls)
        if not R_DETACHED <= reason <= R_SHUTDOWN:
            raise ValueError(f"reason code {reason} is not a RevokeReason")
        if self.end_needs_bump_past_max(ls):
            return False
        self.end_lease(ls, reason, now)
        self.raise_kernel_error()
        return True

    def expire(self, int64_t now):
        """Move the lease table's clock to ``now``: the expiry timers due fire and their leases
        end (reason EXPIRED), all without the GIL under both tables' batch locks; nothing changes
        (OverflowError) if one of them is a producer's whose stream's epoch is at EPOCH_MAX.
        Returns the number expired."""
        return self._end_locked(True, R_EXPIRED, now)

    def end_blocked_by_epoch(self, bint expired_only, int64_t now):
        """Stream id of the first live lease (only those expired before ``now`` if
        ``expired_only``) whose end would need an epoch bump past ``EPOCH_MAX``, or -1: the
        check :meth:`expire` and :meth:`shutdown` make, for a caller that must check before it
        changes anything else."""
        return self.first_blocked_end(expired_only, now)

    def bump_epoch(self, Py_ssize_t slot):
        """Bump the epoch of an open stream slot (EpochBumped, announce due); return it, or -1
        (nothing changed) if the epoch is at ``EPOCH_MAX``."""
        self.wait_idle()
        self.check_stream_slot(slot)
        if self.epoch[slot] == C_MAX:
            return -1
        cdef int64_t e = self.bump(slot)
        self.raise_kernel_error()
        return e

    def recycle_closed(self):
        """Release the slots of dynamic streams that went Closed (idle cleanup)."""
        self.wait_idle()
        self.recycle()

    def drain(self):
        """The driver starts draining: recycle Closed dynamic streams, broadcast DriverDraining,
        and make every Live stream's final announce due."""
        cdef Py_ssize_t slot
        cdef uint8_t st
        self.wait_idle()
        self.recycle()
        self.streams.broadcast(Event.DRIVER_DRAINING)
        for slot in range(self.n_streams):
            st = hsm_state(self.streams, slot)
            if st == S_ACTIVE or st == S_DRAINING or st == State.INIT:
                self.mark_due(slot)

    def shutdown(self, int64_t now):
        """The shutdown timeout passed: end every lease (reason SHUTDOWN), recycle Closed
        dynamic streams, and broadcast DriverShutdown (every stream -> Closed)."""
        cdef Py_ssize_t slot
        self._end_locked(False, R_SHUTDOWN, now)
        self.recycle()
        self.count(C_CLOSED, self.streams.count(State.LIVE))
        self.streams.broadcast(Event.DRIVER_SHUTDOWN)
        # the dynamic streams the broadcast closed stay observable, counted as Closed dynamic
        # streams (a stopped driver's snapshot must restore: fuzz finding, issue 19 class 10)
        for slot in range(self.n_streams):
            if self.dynamic[slot] and hsm_state(self.streams, slot) == S_CLOSED:
                self.closed_dynamic += 1

    def restart_epochs(self):
        """After a restore: bump the epoch of every Live stream once (a driver restart). The
        snapshot's validation refused a Live stream whose epoch is at ``EPOCH_MAX``."""
        self.wait_idle()
        cdef Py_ssize_t slot
        cdef uint8_t st
        for slot in range(self.n_streams):
            st = hsm_state(self.streams, slot)
            if st != HSM_FREE_SLOT and st != S_CLOSED:
                self.bump(slot)
        self.raise_kernel_error()

    # ------------------------------------------------------------------ outboxes
    @property
    def n_announces_due(self):
        """Stream slots whose announce is due (eligible or not)."""
        return self.n_due

    def take_announces(self, int64_t[::1] out not None):
        """Write the stream ids of the due streams that are Live and provisioned (Active or
        Draining) into ``out``, in the order they became due, clear the due list and return how
        many were written. ``out`` must hold at least :attr:`n_announces_due` entries."""
        self.wait_idle()
        cdef Py_ssize_t i, slot, n = 0
        cdef uint8_t st
        if out.shape[0] < self.n_due:
            raise ValueError(f"out holds {out.shape[0]} entries, {self.n_due} announces are due")
        for i in range(self.n_due):
            slot = self.due_slots[i]
            self.due[slot] = 0
            st = hsm_state(self.streams, slot)
            if st == S_ACTIVE or st == S_DRAINING:
                out[n] = self.stream_id[slot]
                n += 1
        self.n_due = 0
        return n

    def consume_revoked(self, Py_ssize_t n):
        """Drop the ``n`` oldest pending revoke notices (the caller copied them out)."""
        self.wait_idle()
        cdef Py_ssize_t rest
        if not 0 <= n <= self.n_revoked:
            raise ValueError(f"cannot consume {n} of {self.n_revoked} notices")
        rest = self.n_revoked - n
        if n and rest:
            memmove(&self.rv_lease[0], &self.rv_lease[n], rest * sizeof(int64_t))
            memmove(&self.rv_stream[0], &self.rv_stream[n], rest * sizeof(int64_t))
            memmove(&self.rv_client[0], &self.rv_client[n], rest * sizeof(int64_t))
            memmove(&self.rv_time[0], &self.rv_time[n], rest * sizeof(int64_t))
            memmove(&self.rv_role[0], &self.rv_role[n], rest)
            memmove(&self.rv_reason[0], &self.rv_reason[n], rest)
        self.n_revoked = rest

    def _debug_step_stream(self, Py_ssize_t slot, Py_ssize_t event):
        """Test hook, debug builds only: step the stream table through the core's kernel path
        with no check of its own, so that only the kernel's debug index check stands between a
        bad index and memory. Raises RuntimeError in a release build (where nothing would)."""
        if not STREAMHSM_DEBUG_CHECKS:
            raise RuntimeError("_debug_step_stream needs a debug build (STREAMHSM_CYTHON_DEBUG=1)")
        with nogil:
            self.step_stream(slot, event)
        self.raise_kernel_error()

    def _map(self, str which):
        """Test hook: the lease-id (``"lease"``), client-id (``"client"``) or static stream-id
        (``"static"``) :class:`~streamhsm.driver._idmap.IdMap` (its probe counts and key)."""
        return {"lease": self.by_id, "client": self.by_client, "static": self.static_slot}[which]

    @property
    def debug_checks(self):
        """True in a debug build (kernel index checks compiled in)."""
        return bool(STREAMHSM_DEBUG_CHECKS)

    # ------------------------------------------------------------------ views and state
    def column(self, str name):
        """A read-only view of one column (see :func:`driver_layout`)."""
        try:
            arr = self._columns[name]
        except KeyError:
            raise KeyError(f"no driver column {name!r}") from None
        return readonly_view(arr)

    def due_slots_pending(self):
        """A copy of the due list (stream slots, in the order they became due)."""
        return np.array(self._columns["due_slots"][:self.n_due])

    def columns_view(self):
        """Read-only views of every column (for address checks: a batch argument that overlaps
        one is copied first)."""
        return [readonly_view(arr) for arr in self._columns.values()]

    def columns_copy(self):
        """Copies of every column, by name."""
        return {name: arr.copy() for name, arr in self._columns.items()}

    def restore(self, ValidatedState state not None):
        """Replace every column and count with a validated snapshot's (the stream and lease
        tables are restored by the caller first), and rebuild the lease and stream-id maps."""
        self.wait_idle()
        cdef Py_ssize_t ls, slot
        for name, arr in self._columns.items():
            arr[:] = state.columns[name]
        self.last_lease_id = state.last_lease_id
        self.n_revoked = state.n_revoked
        self.n_due = state.n_due
        self.closed_dynamic = state.closed_dynamic
        self.by_id.clear()
        self.by_client.clear()
        self.static_slot.clear()
        for ls in range(self.n_leases):
            if self.lease_stream[ls] >= 0:
                self.by_id.insert(self.lease_id[ls], ls)
                self.client_home[ls] = self.by_client.home(self.lease_client[ls])
                self.by_client.insert_from(self.lease_client[ls], ls, self.client_home[ls])
        for slot in range(self.n_streams):
            if hsm_state(self.streams, slot) != HSM_FREE_SLOT and not self.dynamic[slot]:
                if self.static_slot.insert(self.stream_id[slot], slot) < 0:
                    raise OverflowError("more static streams than declared")
