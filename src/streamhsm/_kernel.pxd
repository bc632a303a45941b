# The engine's kernels: structs, constants and ``noexcept nogil`` inline code only (no Python
# objects, no classes). Private: Cython users cimport the small, stable subset in
# ``streamhsm/capi.pxd``. The batch loops built on these kernels are in ``_batch.pxd``; the table
# and instance classes that own the memory are in ``_table.pyx`` and ``_instance.pyx``.
from libc.stdint cimport (
    INT64_MAX, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t,
)

cdef extern from *:
    """
    #ifndef STREAMHSM_DEBUG_CHECKS
    #define STREAMHSM_DEBUG_CHECKS 0
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define STREAMHSM_PREFETCH(p) __builtin_prefetch((const void *)(p))
    #else
    #define STREAMHSM_PREFETCH(p) ((void)0)
    #endif
    #define HSM_NEVER INT64_MAX
    #if defined(__GNUC__) || defined(__clang__)
    #define STREAMHSM_CTZ64(x) __builtin_ctzll(x)
    #else
    static int STREAMHSM_CTZ64(unsigned long long x) {
        int n = 0;
        while (!(x & 1)) { x >>= 1; n++; }
        return n;
    }
    #endif
    """
    # 1 in a debug build (STREAMHSM_CYTHON_DEBUG=1): the kernel bounds-checks its indices and
    # returns -1 instead of touching memory out of range.
    const int STREAMHSM_DEBUG_CHECKS
    # A cache hint (no effect on results): fetch the line holding *p ahead of its use.
    void STREAMHSM_PREFETCH(const void* p) noexcept nogil
    # The deadline of a timer that is not armed (streamhsm._timer_tables.NEVER, 2**63 - 1).
    const int64_t HSM_NEVER
    # Index of the lowest set bit of a non-zero mask.
    int STREAMHSM_CTZ64(uint64_t x) noexcept nogil

# State code of a free (released or never opened) slot in a table: the one source of this value
# in compiled code (the pure-Python layers have ``streamhsm.machine.FREE_SLOT``, held equal by a
# test; machine codes, states and events, stay below it).
cdef enum:
    HSM_FREE_SLOT = 255
    # rows per flag bitmask of every padded table: one per uint8 code
    HSM_CODE_ROWS = HSM_FREE_SLOT + 1
    HSM_STEP_UNHANDLED = HSM_CODE_ROWS     # the step table's bits above the next leaf
    HSM_STEP_MOVED = HSM_STEP_UNHANDLED << 1
    # a history cell's fast code (streamhsm._pseudo.Chains.fast_code) in the step table's top bits
    HSM_STEP_FAST_SHIFT = 10
    HSM_STEP_FAST_MIN = 1 << HSM_STEP_FAST_SHIFT  # a step entry at least this: a fast code
    # Batch loops prefetch the state byte this many events ahead on tables at least this large
    # (measured: on smaller tables the state array is cache-resident and prefetching only costs).
    HSM_PREFETCH_DISTANCE = 32
    HSM_PREFETCH_MIN_SLOTS = 262144

# What dispatching an event in a state does (the ``kind`` table; streamhsm.compiler.KIND_*).
cdef enum:
    HSM_KIND_INTERNAL = 0      # handled without a transition (or a free slot): nothing to do
    HSM_KIND_TRANSITION = 1    # a handler with a target: exits and entries, maybe a new leaf
    HSM_KIND_UNHANDLED = 2     # no state handles it: counted
    # a transition that reads or writes history records: runs its program (hsm_history_run);
    # only machines with history have them
    HSM_KIND_HISTORY = 3

# The ops of a history program (streamhsm._pseudo.OP_*): uint32 = op | a << 8 | b << 16.
cdef enum:
    HSM_OP_END = 0             # rest in leaf a
    HSM_OP_SET = 1             # record of owner a := b (HSM_FREE_SLOT: cleared)
    # enter owner a through history: leaf = lut[b][record], then run the arrival program of
    # that leaf
    HSM_OP_READ = 2

# The fast codes of history cells (streamhsm._pseudo.FAST_*, the step table's bits from
# HSM_STEP_FAST_SHIFT up): 0 runs the program; HSM_FAST_WRITE + o: record of owner o := the
# cell's leaf, then rest in the step table's leaf; HSM_FAST_READ + row: rest in lut[row][record]
# of owner row >> 1.
cdef enum:
    HSM_FAST_WRITE = 1
    HSM_FAST_READ = 32
    HSM_FAST_CODES = 64

# Two layouts. The machine's tables (next_state, is_handled, is_unhandled, kind, step, the trace's
# handler table; streamhsm.compiler.EngineTables) have one row per (state code, flag bitmask):
# row = code << flag_bits | mask, (HSM_CODE_ROWS << flag_bits) rows x n_events, indexed
# row * n_events + event; a flag-free machine (flag_bits 0) has one row per code. The free code's
# rows map to themselves and count nothing, so broadcasts need no branch. The table's counters
# (counts, transitions) have one row per state code: transitions is HSM_CODE_ROWS x n_events,
# indexed code * n_events + event, whatever the flags.

# The optional trace ring: the last ``size`` transitions, one column per field.
ctypedef struct HsmTrace:
    uint64_t* seq
    int64_t* slot
    uint8_t* event
    uint8_t* src               # leaf before
    uint8_t* dst               # leaf after
    int16_t* handler           # state whose handler took the transition
    const int16_t* handler_table   # [rows x n_events], rows as the machine's tables
    Py_ssize_t size
    uint64_t recorded          # transitions recorded since the ring was enabled


cdef inline void hsm_trace(HsmTrace* t, Py_ssize_t slot, Py_ssize_t event, uint8_t src,
                           uint8_t dst, Py_ssize_t idx) noexcept nogil:
    cdef Py_ssize_t i = <Py_ssize_t>(t.recorded % <uint64_t>t.size)
    t.seq[i] = t.recorded
    t.slot[i] = slot
    t.event[i] = <uint8_t>event
    t.src[i] = src
    t.dst[i] = dst
    t.handler[i] = t.handler_table[idx]
    t.recorded += 1


# A machine's history programs (streamhsm.compiler.EngineTables h*) and where the records live:
# record of owner o for slot s at records[o * stride + s] (a table: stride = capacity, one
# column per owner; an instance: stride 1).
ctypedef struct HsmHistory:
    const int32_t* start       # [rows x n_events] program of each HSM_KIND_HISTORY cell
    const int32_t* arrive      # [rows] program after arriving at a leaf (row = leaf << k | mask)
    const uint32_t* prog
    const uint8_t* lut         # [2 * n_owners x HSM_CODE_ROWS]: record -> leaf
    uint8_t* records
    Py_ssize_t stride
    Py_ssize_t n_owners
    # hsm_history_run, called through this pointer by the batch kernels (hsm_history_program) so
    # that no compiler inlines the program loop into them (set by bind_history; NULL in a
    # MachineInstance, which calls hsm_history_run itself)
    uint8_t (*run)(const HsmHistory* h, Py_ssize_t slot, Py_ssize_t idx, int flag_bits,
                   uint8_t mask) noexcept nogil


cdef inline uint8_t hsm_history_run(const HsmHistory* h, Py_ssize_t slot, Py_ssize_t idx,
                                    int flag_bits, uint8_t mask) noexcept nogil:
    """Run the program of history cell ``idx`` for ``slot`` (writing its records); return the
    leaf it rests in. The compiler refuses chains that never rest, so this ends."""
    cdef Py_ssize_t pc = h.start[idx]
    cdef uint8_t* rec = h.records + slot
    cdef Py_ssize_t stride = h.stride
    cdef uint32_t op
    cdef uint8_t leaf
    while True:
        op = h.prog[pc]
        pc += 1
        if <uint8_t>op == HSM_OP_END:
            return <uint8_t>(op >> 8)
        if <uint8_t>op == HSM_OP_SET:
            rec[<Py_ssize_t><uint8_t>(op >> 8) * stride] = <uint8_t>(op >> 16)
        else:
            leaf = h.lut[(<Py_ssize_t>(op >> 16) << 8)
                         | rec[<Py_ssize_t><uint8_t>(op >> 8) * stride]]
            pc = h.arrive[(<Py_ssize_t>leaf << flag_bits) | mask]


# How the chunked batch kernels (_batch.pxd) run a history cell ``idx`` (step entry ``v``) for
# ``slot``: they write the records it writes, then store and count the leaf it rests in like a
# plain transition's (in the batch-local array, whose fold counts the transition and takes the
# slot out of the row's state). A cell that reads no record has its leaf in ``v`` (below the step
# bits) and the fold counts the slot into it too; a cell that reads one (HSM_FREE_SLOT there)
# counts it on the spot. A cell with a fast code (above the step bits) runs no program: the
# kernels write its one record store, or its one record and lut load, out in their own loops
# (measured: as a call, which a compiler may make of any function, each costs ~1.5 ns more);
# the others run hsm_history_program.

cdef inline uint8_t hsm_history_program(HsmCore* c, Py_ssize_t slot, Py_ssize_t idx,
                                        uint16_t v) noexcept nogil:
    """The leaf a history cell without a fast code rests in (see above): runs its program
    through ``run`` (so no compiler inlines the program loop into the kernels) and counts the
    leaf on the spot if ``v`` holds none."""
    cdef const HsmHistory* h = c.hist
    cdef uint8_t mask = c.flags[slot] if c.flag_bits else 0
    cdef uint8_t new = h.run(h, slot, idx, c.flag_bits, mask)
    if <uint8_t>v == HSM_FREE_SLOT:
        c.counts[new] += 1
    return new


# A machine's timers (streamhsm._timer_tables.TimerTables) and where their state lives: the
# deadline of timer i for slot s at deadlines[i * stride + s] (HSM_NEVER: not armed); the clock
# words (clock[0] the table's clock, clock[1] a lower bound of every armed deadline, the summary
# that makes an advance with nothing due O(1)); block_min[b]: a lower bound of the deadlines of
# slots b << HSM_TIMER_BLOCK_SHIFT and up (an advance visits only the blocks it must).
ctypedef struct HsmTimers:
    const uint64_t* arm        # [rows x n_events] timers a cell arms (restarts included)
    const uint64_t* cancel     # [rows x n_events] timers a cell cancels
    const int64_t* delay       # [n_timers] delay or period, ns
    const uint8_t* event       # [n_timers] event fired
    const uint8_t* periodic    # [n_timers] 1 if periodic
    int64_t* deadlines
    int64_t* clock
    int64_t* block_min
    int64_t* skipped           # [n_timers] periods skipped by periodic timers (saturating)
    uint64_t open_arm          # timers armed when a slot opens
    int64_t max_clock          # the latest clock reading allowed (NEVER - longest delay)
    Py_ssize_t stride
    Py_ssize_t n_timers
    Py_ssize_t n_blocks

cdef enum:
    HSM_TIMER_BLOCK_SHIFT = 10     # 1024 slots per block of the deadline summary


# Borrowed pointers into the numpy arrays a MachineTable owns (and its machine's tables), plus
# the running total.
ctypedef struct HsmCore:
    uint8_t* states            # [capacity] current leaf code, or HSM_FREE_SLOT
    uint8_t* flags             # [capacity] flag bitmask per slot (0 for free slots)
    # the same bitmasks packed, 1 << fpack_shift slots per byte (hsm_set_flags writes both):
    # what batch kernels read, 1/8 to 1/2 the bytes, so a large table's flags stay in cache
    uint8_t* fpacked
    int fpack_shift            # log2(slots per byte): 3 (1 flag), 2 (2 flags), 1 (3-4 flags)
    uint64_t* unhandled        # [capacity] unhandled events per slot
    int64_t* counts            # [HSM_CODE_ROWS] number of slots per state code
    int64_t* transitions       # [HSM_CODE_ROWS x n_events] transitions taken per (code, event)
    const uint8_t* next_state  # [rows x n_events] next leaf
    const uint8_t* is_handled  # 1 if some state handled the event (0 on the free rows)
    const uint8_t* is_unhandled    # 1 if no state handled it (0 on the free rows)
    const uint8_t* kind        # HSM_KIND_* of each (row, event)
    # next leaf | HSM_STEP_UNHANDLED if unhandled | HSM_STEP_MOVED if a transition (the batch
    # kernel's one load per event)
    const uint16_t* step
    const int32_t* tcells      # the (row, event) cells that are transitions
    # [rows x n_events] batch-local transition counts, all 0 between batches; NULL: batches run
    # event by event (see run_batch)
    uint32_t* local
    HsmTrace* trace            # NULL unless tracing is on
    HsmHistory* hist           # NULL unless the machine has history records
    HsmTimers* timers          # NULL unless the machine has timers
    Py_ssize_t capacity
    Py_ssize_t n_events
    Py_ssize_t n_tcells
    int flag_bits              # k: number of flags of the machine
    uint64_t unhandled_total


cdef inline uint8_t hsm_apply(uint8_t* states, int64_t* counts, uint64_t* unhandled,
                              int64_t* transitions, const uint8_t* next_state,
                              const uint8_t* kind, const uint8_t* flags, int flag_bits,
                              HsmTrace* trace, Py_ssize_t n_events,
                              Py_ssize_t slot, Py_ssize_t event) noexcept nogil:
    """The transition kernel on raw columns; returns 1 if the event went unhandled (counted in
    ``unhandled[slot]``, the caller adds it to its total), 0 if handled.

    The common case, an event handled without a transition, costs one table load and one
    predictable branch (plus the slot's flag byte on a machine with flags). Batch loops pass the
    pointers as local variables: a store through ``uint8_t*`` may alias anything, so reading them
    from a struct would reload every field after each store.
    """
    cdef uint8_t old = states[slot]
    cdef Py_ssize_t row = old
    if flag_bits:
        row = (row << flag_bits) | flags[slot]
    cdef Py_ssize_t idx = row * n_events + event
    cdef uint8_t k = kind[idx]
    cdef uint8_t new
    cdef int64_t* t
    if k == HSM_KIND_INTERNAL:
        return 0
    if k == HSM_KIND_UNHANDLED:
        unhandled[slot] += unhandled[slot] < <uint64_t>INT64_MAX  # saturates at 2**63-1
        return 1
    t = &transitions[<Py_ssize_t>old * n_events + event]
    t[0] += t[0] != INT64_MAX  # the transition counter saturates at 2**63-1
    new = next_state[idx]
    if trace != NULL:
        hsm_trace(trace, slot, event, old, new, idx)
    if new != old:
        states[slot] = new
        counts[old] -= 1
        counts[new] += 1
    return 0


cdef inline int64_t hsm_sat_add(int64_t count, int64_t n) noexcept nogil:
    """``count + n`` for counters in ``0..2**63-1`` and ``n >= 0``, stopping at ``2**63 - 1``:
    the engine's counters saturate (docs/design.md, "Counters and limits"), so a table's own
    snapshot always restores."""
    return INT64_MAX if n > INT64_MAX - count else count + n


cdef inline void hsm_add_unhandled(HsmCore* c, uint64_t n) noexcept nogil:
    """Add ``n`` to the table's unhandled total, saturating at ``2**63 - 1`` (the largest total a
    snapshot restores)."""
    c.unhandled_total = <uint64_t>hsm_sat_add(<int64_t>c.unhandled_total,
                                              <int64_t>n if n <= <uint64_t>INT64_MAX else INT64_MAX)


cdef inline void hsm_take(HsmCore* c, Py_ssize_t slot, Py_ssize_t event, uint8_t old,
                          uint8_t new, Py_ssize_t idx) noexcept nogil:
    """Take the transition of cell ``idx`` (event ``event``) of ``slot`` from leaf ``old`` to
    ``new``: its counter (saturating at ``2**63 - 1``), the trace, the state and the per-state
    counts (:func:`hsm_apply_history` and :func:`hsm_apply_timed`)."""
    cdef int64_t* tc = &c.transitions[<Py_ssize_t>old * c.n_events + event]
    tc[0] += tc[0] != INT64_MAX
    if c.trace != NULL:
        hsm_trace(c.trace, slot, event, old, new, idx)
    if new != old:
        c.states[slot] = new
        c.counts[old] -= 1
        c.counts[new] += 1


cdef inline uint8_t hsm_apply_history(HsmCore* c, Py_ssize_t slot,
                                      Py_ssize_t event) noexcept nogil:
    """:func:`hsm_apply` for a machine with history records: a ``HSM_KIND_HISTORY`` cell runs
    its program (reading and writing the slot's records) to find the next leaf; every other
    kind does what it does in hsm_apply."""
    cdef uint8_t old = c.states[slot]
    cdef uint8_t mask = c.flags[slot] if c.flag_bits else 0
    cdef Py_ssize_t idx = (((<Py_ssize_t>old) << c.flag_bits) | mask) * c.n_events + event
    cdef uint8_t k = c.kind[idx]
    cdef uint8_t new
    if k == HSM_KIND_INTERNAL:
        return 0
    if k == HSM_KIND_UNHANDLED:
        c.unhandled[slot] += c.unhandled[slot] < <uint64_t>INT64_MAX  # saturates at 2**63-1
        return 1
    if k == HSM_KIND_HISTORY:
        new = hsm_history_run(c.hist, slot, idx, c.flag_bits, mask)
    else:
        new = c.next_state[idx]
    hsm_take(c, slot, event, old, new, idx)
    return 0


cdef inline void hsm_timers_set(HsmTimers* t, Py_ssize_t slot, uint64_t cancel,
                                uint64_t arm) noexcept nogil:
    """Cancel the timers of ``cancel`` and arm those of ``arm`` (to the clock plus their delay)
    for ``slot``, keeping the summaries lower bounds of every armed deadline."""
    cdef int64_t* d = t.deadlines + slot
    cdef int64_t at
    cdef int64_t* low = &t.block_min[slot >> HSM_TIMER_BLOCK_SHIFT]
    cdef Py_ssize_t i
    while cancel:
        i = STREAMHSM_CTZ64(cancel)
        cancel &= cancel - 1
        d[i * t.stride] = HSM_NEVER
    while arm:
        i = STREAMHSM_CTZ64(arm)
        arm &= arm - 1
        at = t.clock[0] + t.delay[i]
        d[i * t.stride] = at
        if at < low[0]:
            low[0] = at
        if at < t.clock[1]:
            t.clock[1] = at


cdef inline uint8_t hsm_apply_timed(HsmCore* c, Py_ssize_t slot,
                                    Py_ssize_t event) noexcept nogil:
    """:func:`hsm_apply` for a machine with timers: the cell also cancels and arms the slot's
    timers (its two masks, at the table's clock)."""
    cdef uint8_t old = c.states[slot]
    cdef uint8_t mask = c.flags[slot] if c.flag_bits else 0
    cdef Py_ssize_t idx = (((<Py_ssize_t>old) << c.flag_bits) | mask) * c.n_events + event
    cdef uint8_t k = c.kind[idx]
    if k == HSM_KIND_UNHANDLED:
        c.unhandled[slot] += c.unhandled[slot] < <uint64_t>INT64_MAX  # saturates at 2**63-1
        return 1
    if k != HSM_KIND_INTERNAL:
        hsm_take(c, slot, event, old, c.next_state[idx], idx)
    if c.timers.cancel[idx] | c.timers.arm[idx]:
        hsm_timers_set(c.timers, slot, c.timers.cancel[idx], c.timers.arm[idx])
    return 0


cdef inline uint8_t hsm_packed_flags(const uint8_t* fpacked, int shift,
                                     Py_ssize_t slot) noexcept nogil:
    """The flag bitmask of ``slot`` from the packed copy: ``1 << shift`` slots per byte, each
    ``8 >> shift`` bits wide."""
    cdef int width = 8 >> shift
    return (fpacked[slot >> shift] >> ((slot & ((1 << shift) - 1)) * width)) & ((1 << width) - 1)


# The number of flags as a type: the batch's chunk kernels are fused over it, so that their flag
# arithmetic (hsm_packed_flags) is constant in each loop whether or not gcc inlines them (passed
# as arguments, the constants vanished when it stopped: docs/performance.md, issue 22).
ctypedef struct HsmFlags0:
    char unused
ctypedef struct HsmFlags1:
    char unused
ctypedef struct HsmFlags2:
    char unused
ctypedef struct HsmFlags3:
    char unused
ctypedef struct HsmFlags4:
    char unused
ctypedef fused hsm_nflags_t:
    HsmFlags0
    HsmFlags1
    HsmFlags2
    HsmFlags3
    HsmFlags4


cdef inline int hsm_nflags(hsm_nflags_t* marker) noexcept nogil:
    """The number of flags ``hsm_nflags_t`` stands for (4 at most: MAX_FLAGS)."""
    return (0 if hsm_nflags_t is HsmFlags0 else 1 if hsm_nflags_t is HsmFlags1
            else 2 if hsm_nflags_t is HsmFlags2 else 3 if hsm_nflags_t is HsmFlags3 else 4)


cdef inline void hsm_set_flags(HsmCore* c, Py_ssize_t slot, uint8_t mask) noexcept nogil:
    """Set the flag bitmask of ``slot`` in both copies (the per-slot byte and the packed one)."""
    cdef int shift = c.fpack_shift, width = 8 >> shift
    cdef int at = (slot & ((1 << shift) - 1)) * width
    c.flags[slot] = mask
    if c.flag_bits:
        c.fpacked[slot >> shift] = <uint8_t>(
            (c.fpacked[slot >> shift] & ~(((1 << width) - 1) << at)) | (mask << at))


cdef inline int hsm_step(HsmCore* c, Py_ssize_t slot, Py_ssize_t event) noexcept nogil:
    """Dispatch one event to one open slot; return 1 if handled, 0 if unhandled.

    The caller guarantees 0 <= slot < capacity, 0 <= event < n_events and an open slot; only a
    debug build checks the indices (returning -1 when they are out of range).
    """
    cdef uint8_t unhandled
    if STREAMHSM_DEBUG_CHECKS:
        if slot < 0 or slot >= c.capacity or event < 0 or event >= c.n_events:
            return -1
    if c.hist != NULL:
        unhandled = hsm_apply_history(c, slot, event)
    elif c.timers != NULL:
        unhandled = hsm_apply_timed(c, slot, event)
    else:
        unhandled = hsm_apply(c.states, c.counts, c.unhandled, c.transitions, c.next_state,
                              c.kind, c.flags, c.flag_bits, c.trace, c.n_events, slot, event)
    if c.unhandled_total != <uint64_t>INT64_MAX:  # saturates at 2**63-1
        c.unhandled_total += unhandled
    return 1 - unhandled
