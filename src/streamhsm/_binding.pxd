# Binding a table's HsmCore to its arrays: pointing the core (and its HsmHistory) into the
# machine's read-only engine tables and the table's own columns, and telling whether a caller's
# buffer overlaps the memory so bound; setting a slot's history records. Inline functions over
# the kernel's structs, used by MachineTable (_table.pyx) at construction, at its batch entries
# and when a slot opens or is released.
from libc.stdint cimport uint8_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t

from streamhsm._kernel cimport (
    HSM_CODE_ROWS, HSM_FREE_SLOT, HsmCore, HsmHistory, hsm_history_run,
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
                and overlaps(p, nbytes, c.hist.records, cap * <size_t>c.hist.n_owners)))


cdef inline void set_records(HsmHistory* h, Py_ssize_t slot, const uint8_t* values) noexcept nogil:
    """Set every record of ``slot`` to ``values`` (one per owner), or clear them (NULL)."""
    cdef Py_ssize_t o
    for o in range(h.n_owners):
        h.records[o * h.stride + slot] = HSM_FREE_SLOT if values == NULL else values[o]
