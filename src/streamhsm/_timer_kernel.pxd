# The timer kernels: moving a table's clock and firing what is due (``advance``), and the batch
# loop of a machine with timers. ``noexcept nogil`` inline code over the structs of
# ``_kernel.pxd`` (HsmCore, HsmTimers); cimported by the table and instance classes. What a
# dispatch arms and cancels is in ``_kernel.pxd`` (hsm_timers_set, hsm_apply_timed).
from libc.stdint cimport uint8_t, int64_t, uint64_t

from streamhsm._kernel cimport (
    HSM_NEVER, HSM_TIMER_BLOCK_SHIFT, HsmCore, HsmTimers, hsm_add_unhandled, hsm_apply_timed,
    hsm_sat_add, hsm_timers_set,
)


# One fired timer, as ``advance`` records it (streamhsm._timer_tables.FIRED_DTYPE, aligned).
ctypedef struct HsmFired:
    int64_t slot
    int64_t time_ns            # its deadline: the clock during its dispatch
    uint8_t timer              # index in machine.timers.names
    uint8_t event


cdef inline int64_t hsm_slot_next(const HsmTimers* t, Py_ssize_t slot,
                                  Py_ssize_t* which) noexcept nogil:
    """The earliest deadline of ``slot``'s timers (HSM_NEVER if none is armed) and, in
    ``which``, the timer that has it (the first declared on a tie)."""
    cdef int64_t best = HSM_NEVER, d
    cdef Py_ssize_t i
    which[0] = -1
    for i in range(t.n_timers):
        d = t.deadlines[i * t.stride + slot]
        if d < best:
            best = d
            which[0] = i
    return best


cdef inline int64_t hsm_fire_slot(HsmCore* c, Py_ssize_t slot, int64_t now, HsmFired* out,
                                  Py_ssize_t out_len, Py_ssize_t* fired,
                                  uint64_t* n_unhandled) noexcept nogil:
    """Fire ``slot``'s due timers in deadline order (ties in declaration order), each dispatched
    with the clock at its deadline, until none is due at ``now``; return the slot's earliest
    deadline after that. A periodic timer is first moved to its next phase after ``now`` (the
    periods it skipped counted), a one-shot one disarmed; then its event is dispatched, whose
    cell may cancel or re-arm it."""
    cdef HsmTimers* t = c.timers
    cdef Py_ssize_t i, k
    cdef int64_t d, p
    cdef int64_t* cell
    while True:
        d = hsm_slot_next(t, slot, &i)
        if d > now:
            return d
        t.clock[0] = d
        cell = &t.deadlines[i * t.stride + slot]
        if t.periodic[i]:
            p = t.delay[i]
            k = (now - d) // p  # whole periods skipped: the next phase is d + (k + 1) * p > now
            cell[0] = d + (k + 1) * p
            t.skipped[i] = hsm_sat_add(t.skipped[i], k)
        else:
            cell[0] = HSM_NEVER
        if fired[0] < out_len:
            out[fired[0]].slot = slot
            out[fired[0]].time_ns = d
            out[fired[0]].timer = <uint8_t>i
            out[fired[0]].event = t.event[i]
        fired[0] += 1
        n_unhandled[0] += hsm_apply_timed(c, slot, t.event[i])


cdef inline Py_ssize_t hsm_advance(HsmCore* c, int64_t now, HsmFired* out,
                                   Py_ssize_t out_len) noexcept nogil:
    """Move the table's clock to ``now`` (the caller checked ``clock <= now <= NEVER - longest
    delay``) and fire every due timer of every slot (see hsm_fire_slot), the first ``out_len``
    recorded in ``out``; return the number fired. With nothing due (``now`` below the summary)
    it costs O(1); otherwise it visits the blocks whose lower bound is due and rebuilds the
    summaries exactly."""
    cdef HsmTimers* t = c.timers
    cdef Py_ssize_t b, s, hi, fired = 0
    cdef uint64_t n_unhandled = 0
    cdef int64_t low = HSM_NEVER, block, d
    if now < t.clock[1]:
        t.clock[0] = now
        return 0
    for b in range(t.n_blocks):
        block = t.block_min[b]
        if block <= now:
            block = HSM_NEVER
            hi = min((b + 1) << HSM_TIMER_BLOCK_SHIFT, c.capacity)
            for s in range(b << HSM_TIMER_BLOCK_SHIFT, hi):
                d = hsm_fire_slot(c, s, now, out, out_len, &fired, &n_unhandled)
                if d < block:
                    block = d
            t.block_min[b] = block
        if block < low:
            low = block
    t.clock[0] = now
    t.clock[1] = low
    hsm_add_unhandled(c, n_unhandled)
    return fired


cdef inline void hsm_timers_clear(HsmTimers* t, Py_ssize_t slot) noexcept nogil:
    """Disarm every timer of ``slot`` (a released slot has none armed)."""
    cdef Py_ssize_t i
    for i in range(t.n_timers):
        t.deadlines[i * t.stride + slot] = HSM_NEVER


cdef inline void hsm_timers_open(HsmTimers* t, Py_ssize_t slot) noexcept nogil:
    """Arm the timers of a slot that has just opened (those of its initial states) at the
    clock; every other timer of the slot is disarmed."""
    hsm_timers_clear(t, slot)
    hsm_timers_set(t, slot, 0, t.open_arm)
