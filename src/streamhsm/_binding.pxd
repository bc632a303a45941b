# Binding a table's HsmCore to its arrays: pointing the core (and its HsmHistory) into the
# machine's read-only engine tables and the table's own columns, and telling whether a caller's
# buffer overlaps the memory so bound; setting a slot's history records. Inline functions over
# the kernel's structs, used by MachineTable (_table.pyx) at construction, at its batch entries
# and when a slot opens or is released.
from libc.stdint cimport uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t

from streamhsm._kernel cimport (
    HSM_CODE_ROWS, HSM_FREE_SLOT, HSM_NEVER, HsmCore, HsmHistory, HsmTimers, HsmTrace,
    hsm_history_run,
)


cdef inline void bind_core(HsmCore* c, object tables, object transitions, object scratch,
                           int flag_bits):
    """Point the core at the machine's tables (``machine.engine_tables``, read-only, kept alive
    by the table) and the table's transition counters and batch scratch."""
    cdef const uint8_t[:, ::1] nxt = tables.next_state
    cdef const uint8_t[:, ::1] handled = tables.handled
    cdef const uint8_t[:, ::1] unhandled = tables.unhandled
    cdef const uint8_t[:, ::1] kind = tables.kind
    cdef const uint16_t[:, ::1] step = tables.step
    cdef const int32_t[::1] tcells = tables.tcells
    cdef int64_t[:, ::1] trans = transitions
    cdef uint32_t[::1] local
    c.next_state = &nxt[0, 0]
    c.is_handled = &handled[0, 0]
    c.is_unhandled = &unhandled[0, 0]
    c.kind = &kind[0, 0]
    c.step = &step[0, 0]
    c.n_tcells = tcells.shape[0]
    c.tcells = &tcells[0] if c.n_tcells else NULL
    c.transitions = &trans[0, 0]
    c.n_events = nxt.shape[1]
    c.flag_bits = flag_bits
    c.local = NULL
    if scratch is not None:
        local = scratch
        c.local = &local[0]


cdef inline const uint8_t* bind_history(HsmCore* c, HsmHistory* h, object tables,
                                        object records):
    """Point ``h`` at the machine's history programs and the table's record columns, and the
    core at ``h``; return the records of a freshly opened slot. A machine without history
    records (``records`` None) keeps ``core.hist`` NULL and gets NULL."""
    c.hist = NULL
    if records is None:
        return NULL
    cdef const int32_t[:, ::1] start = tables.hstart
    cdef const int32_t[::1] arrive = tables.harrive
    cdef const uint32_t[::1] prog = tables.hprog
    cdef const uint8_t[:, ::1] lut = tables.hlut
    cdef const uint8_t[::1] init = tables.initial_records
    cdef uint8_t[:, ::1] rec = records
    h.start = &start[0, 0]
    h.arrive = &arrive[0]
    h.prog = &prog[0]
    h.lut = &lut[0, 0]
    h.records = &rec[0, 0]
    h.stride = rec.shape[1]
    h.n_owners = rec.shape[0]
    h.run = hsm_history_run
    c.hist = h
    return &init[0]


cdef inline void bind_timers(HsmCore* c, HsmTimers* t, object timers, dict arrays,
                             int64_t now_ns):
    """Point ``t`` at the machine's timer tables (``machine.timers``) and the table's timer
    columns (``arrays``: ``deadlines``, ``clock``, ``timer_blocks``, ``skipped``, see
    ``table_layout``), disarm every timer and set the clock to ``now_ns``; the core points at
    ``t``. A machine without timers (``timers`` None) keeps ``core.timers`` NULL."""
    c.timers = NULL
    if timers is None:
        return
    cdef const uint64_t[:, ::1] arm = timers.arm
    cdef const uint64_t[:, ::1] cancel = timers.cancel
    cdef const int64_t[::1] delay = timers.delays
    cdef const uint8_t[::1] event = timers.events
    cdef const uint8_t[::1] periodic = timers.periodic
    cdef int64_t[:, ::1] deadlines = arrays["deadlines"]
    cdef int64_t[::1] clock = arrays["clock"]
    cdef int64_t[::1] blocks = arrays["timer_blocks"]
    cdef int64_t[::1] skipped = arrays["skipped"]
    deadlines[:, :] = HSM_NEVER
    blocks[:] = HSM_NEVER
    skipped[:] = 0
    clock[0] = now_ns
    clock[1] = HSM_NEVER
    t.arm, t.cancel, t.delay = &arm[0, 0], &cancel[0, 0], &delay[0]
    t.event, t.periodic = &event[0], &periodic[0]
    t.deadlines, t.clock, t.block_min = &deadlines[0, 0], &clock[0], &blocks[0]
    t.skipped = &skipped[0]
    t.open_arm = <uint64_t>timers.open_arm
    t.max_clock = HSM_NEVER - <int64_t>timers.max_delay
    t.stride = deadlines.shape[1]
    t.n_timers = deadlines.shape[0]
    t.n_blocks = blocks.shape[0]
    c.timers = t


cdef inline void bind_trace(HsmTrace* t, dict cols, object handler):
    """Point the trace ring ``t`` at its fresh columns (``streamhsm._trace.ring_columns``) and
    the machine's handler table (one row per (state, flag bitmask)), empty."""
    cdef uint64_t[::1] seq = cols["seq"]
    cdef int64_t[::1] slot = cols["slot"]
    cdef uint8_t[::1] event = cols["event"]
    cdef uint8_t[::1] src = cols["from_state"]
    cdef uint8_t[::1] dst = cols["to_state"]
    cdef int16_t[::1] by = cols["handled_by"]
    cdef const int16_t[:, ::1] table = handler
    t.seq, t.slot, t.event = &seq[0], &slot[0], &event[0]
    t.src, t.dst, t.handler = &src[0], &dst[0], &by[0]
    t.handler_table = &table[0, 0]
    t.size = seq.shape[0]
    t.recorded = 0


cdef inline bint overlaps(const void* a, size_t a_len, const void* b, size_t b_len) noexcept:
    return <const char*>a < <const char*>b + b_len and <const char*>b < <const char*>a + a_len


cdef inline bint shares_core(const HsmCore* c, const int32_t* free, const void* p,
                             size_t nbytes) noexcept:
    """True if the ``nbytes`` at ``p`` overlap one of the columns the core is bound to, or the
    table's free-slot stack ``free`` (a caller can pass them back through their read-only
    views)."""
    cdef size_t cap = <size_t>c.capacity
    return (overlaps(p, nbytes, c.states, cap)
            or overlaps(p, nbytes, c.flags, cap)
            or overlaps(p, nbytes, c.unhandled, cap * sizeof(uint64_t))
            or overlaps(p, nbytes, c.counts, HSM_CODE_ROWS * sizeof(int64_t))
            or overlaps(p, nbytes, c.transitions,
                        HSM_CODE_ROWS * <size_t>c.n_events * sizeof(int64_t))
            or overlaps(p, nbytes, free, cap * sizeof(int32_t))
            or (c.hist != NULL
                and overlaps(p, nbytes, c.hist.records, cap * <size_t>c.hist.n_owners))
            or (c.timers != NULL
                and (overlaps(p, nbytes, c.timers.deadlines,
                              cap * <size_t>c.timers.n_timers * sizeof(int64_t))
                     or overlaps(p, nbytes, c.timers.clock, 2 * sizeof(int64_t)))))


cdef inline void set_records(HsmHistory* h, Py_ssize_t slot, const uint8_t* values) noexcept nogil:
    """Set every record of ``slot`` to ``values`` (one per owner), or clear them (NULL)."""
    cdef Py_ssize_t o
    for o in range(h.n_owners):
        h.records[o * h.stride + slot] = HSM_FREE_SLOT if values == NULL else values[o]
