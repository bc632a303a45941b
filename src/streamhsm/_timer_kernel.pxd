# The timer kernels: moving a table's clock and firing what is due (``advance``), and the batch
# loop of a machine with timers. ``noexcept nogil`` inline code over the structs of
# ``_kernel.pxd`` (HsmCore, HsmTimers); cimported by the table and instance classes. What a
# dispatch arms and cancels is in ``_kernel.pxd`` (hsm_timers_set, hsm_apply_timed).
from libc.stdint cimport uint8_t, int64_t, uint64_t

from streamhsm._kernel cimport (
    HSM_NEVER, HSM_TIMER_BLOCK_SHIFT, STREAMHSM_PREFETCH, HsmCore, HsmTimers, hsm_add_unhandled,
    hsm_apply_timed, hsm_sat_add, hsm_timers_set,
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


cdef enum:
    HSM_TIMER_GROUP = 8            # slots whose deadlines the advance scan tests at once
    # the scan fetches the state bytes of the slots this far ahead (a due slot's state is
    # read at once, the scan is far from the fire path's cache misses otherwise)
    HSM_TIMER_STATE_AHEAD = 256


cdef inline int64_t hsm_min8(const int64_t* p) noexcept nogil:
    """The least of ``p[0..7]`` (a tree of independent compares, no branch)."""
    cdef int64_t a = p[0] if p[0] < p[1] else p[1]
    cdef int64_t b = p[2] if p[2] < p[3] else p[3]
    cdef int64_t c = p[4] if p[4] < p[5] else p[5]
    cdef int64_t d = p[6] if p[6] < p[7] else p[7]
    a = a if a < b else b
    c = c if c < d else d
    return a if a < c else c


cdef inline int64_t hsm_fire_range(HsmCore* c, Py_ssize_t lo, Py_ssize_t hi, int64_t now,
                                   HsmFired* out, Py_ssize_t out_len, Py_ssize_t* fired,
                                   uint64_t* n_unhandled) noexcept nogil:
    """Fire the due timers of slots ``lo..hi-1`` one slot after the other (hsm_fire_slot for
    each slot with a due timer); return their earliest deadline after that."""
    cdef const int64_t* col = c.timers.deadlines
    cdef Py_ssize_t stride = c.timers.stride, n_timers = c.timers.n_timers, s, i
    cdef int64_t low = HSM_NEVER, d, e
    for s in range(lo, hi):
        d = col[s]
        for i in range(1, n_timers):
            e = col[i * stride + s]
            if e < d:
                d = e
        if d <= now:
            d = hsm_fire_slot(c, s, now, out, out_len, fired, n_unhandled)
        if d < low:
            low = d
    return low


cdef inline int64_t hsm_advance_block(HsmCore* c, Py_ssize_t lo, Py_ssize_t hi, int64_t now,
                                      HsmFired* out, Py_ssize_t out_len, Py_ssize_t* fired,
                                      uint64_t* n_unhandled) noexcept nogil:
    """Fire the due timers of slots ``lo..hi-1`` in ascending slot order; return the block's
    earliest deadline after that. The scan takes HSM_TIMER_GROUP slots at a time: the least of
    their deadlines (every timer's column) in a branch-free tree, one test against ``now``, and
    only a group with a due timer is fired slot by slot (hsm_fire_range). With a few due timers
    per block this costs a little over one load per deadline."""
    cdef const int64_t* col = c.timers.deadlines
    cdef Py_ssize_t stride = c.timers.stride, n_timers = c.timers.n_timers, s = lo, i
    cdef int64_t block = HSM_NEVER, m, e
    while s + HSM_TIMER_GROUP <= hi:
        if (s & 63) == 0:
            STREAMHSM_PREFETCH(c.states + s + HSM_TIMER_STATE_AHEAD)
        m = hsm_min8(col + s)
        for i in range(1, n_timers):
            e = hsm_min8(col + i * stride + s)
            if e < m:
                m = e
        if m <= now:
            m = hsm_fire_range(c, s, s + HSM_TIMER_GROUP, now, out, out_len, fired, n_unhandled)
        if m < block:
            block = m
        s += HSM_TIMER_GROUP
    if s < hi:
        m = hsm_fire_range(c, s, hi, now, out, out_len, fired, n_unhandled)
        if m < block:
            block = m
    return block


cdef inline Py_ssize_t hsm_advance(HsmCore* c, int64_t now, HsmFired* out,
                                   Py_ssize_t out_len) noexcept nogil:
    """Move the table's clock to ``now`` (the caller checked ``clock <= now <= NEVER - longest
    delay``) and fire every due timer of every slot (see hsm_fire_slot), the first ``out_len``
    recorded in ``out``; return the number fired. With nothing due (``now`` below the summary)
    it costs O(1); otherwise it visits the blocks whose lower bound is due
    (hsm_advance_block) and rebuilds their summaries exactly."""
    cdef HsmTimers* t = c.timers
    cdef Py_ssize_t b, fired = 0
    cdef uint64_t n_unhandled = 0
    cdef int64_t low = HSM_NEVER, block
    if now < t.clock[1]:
        t.clock[0] = now
        return 0
    for b in range(t.n_blocks):
        block = t.block_min[b]
        if block <= now:
            block = hsm_advance_block(c, b << HSM_TIMER_BLOCK_SHIFT,
                                      min((b + 1) << HSM_TIMER_BLOCK_SHIFT, c.capacity), now,
                                      out, out_len, &fired, &n_unhandled)
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
