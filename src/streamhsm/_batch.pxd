# The engine's batch loops: ``noexcept nogil`` inline code over an HsmCore (see _kernel.pxd),
# cimported by _table.pyx only. The table validates its input at the boundary (types, dtypes,
# lengths, the lock), then runs these; none of them touches a Python object.
#
# A batch of (slot, event) pairs goes:
#   validate_batch       every index in range, every slot open (nothing runs otherwise)
#   run_batch            picks the loops of the machine's kind (flag-free or flagged)
#   run_batch_chunked    runs chunks of HSM_CHUNK events with batch-local transition counts,
#                        folded into the table's counters at the end (fold_counts)
#   run_chunk            picks the chunk loop: run_chunk_counted (a branch per transition,
#                        counts them) or run_chunk_flat (branch-free), each specialised per
#                        number of flags
#   run_batch_per_event  the alternative for small batches, wide machines and tracing: one
#                        hsm_apply per event
# broadcast (one event to every slot) and set_flag_many have their own loops below.
from libc.stdint cimport (
    INT64_MAX, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t,
)
from libc.string cimport memcpy, memset

from streamhsm._kernel cimport (
    HSM_CODE_ROWS, HSM_FAST_CODES, HSM_FAST_READ, HSM_FAST_WRITE, HSM_FREE_SLOT, HSM_KIND_HISTORY,
    HSM_KIND_INTERNAL, HSM_KIND_TRANSITION, HSM_PREFETCH_DISTANCE, HSM_PREFETCH_MIN_SLOTS,
    HSM_STEP_FAST_MIN, HSM_STEP_FAST_SHIFT, HSM_STEP_MOVED, HSM_STEP_UNHANDLED,
    STREAMHSM_DEBUG_CHECKS, STREAMHSM_PREFETCH, HsmCore, HsmFlags0, HsmFlags1, HsmFlags2,
    HsmFlags3, HsmFlags4, HsmHistory, HsmTrace, hsm_add_unhandled, hsm_apply, hsm_apply_history,
    hsm_apply_timed, hsm_history_program, hsm_history_run, hsm_nflags, hsm_nflags_t,
    hsm_packed_flags, hsm_sat_add, hsm_set_flags, hsm_step, hsm_trace,
)

cdef extern from "_simd.h":
    int hsm_simd_detect() noexcept nogil
    int hsm_simd_level() noexcept nogil
    void hsm_simd_set_cap(int cap) noexcept nogil
    void hsm_map(uint8_t* s, size_t n, const uint8_t* lut) noexcept nogil
    size_t hsm_first_ge_i64(const int64_t* a, size_t n, uint64_t limit) noexcept nogil
    size_t hsm_first_ge_i32(const int32_t* a, size_t n, uint64_t limit) noexcept nogil
    size_t hsm_first_ge_u8(const uint8_t* a, size_t n, uint64_t limit) noexcept nogil

ctypedef fused slot_t:
    int32_t
    int64_t

ctypedef fused event_t:
    uint8_t
    int32_t
    int64_t

# Batch-local transition counting (run_batch_chunked): one uint32 cell per (row, event), on the
# stack when the machine has at most HSM_STACK_CELLS of them, else in a scratch array the table
# allocates with itself (when it has at most HSM_LOCAL_MAX_CELLS); folded into the table's
# counters every HSM_FOLD_EVENTS events (so no cell can overflow) and at the end of the batch,
# which leaves every cell 0 again.
cdef enum:
    HSM_STACK_CELLS = 8192
    HSM_LOCAL_MAX_CELLS = 65536
    HSM_LOCAL_MIN_EVENTS = 2048    # smaller batches: the per-event kernel (no fold to pay for)
    HSM_CHUNK = 1024               # events between two choices of the chunk kernel
    HSM_FOLD_EVENTS = 1 << 24
    HSM_ARRIVE_WAYS = 4            # counters per leaf for history reads (see fold_arrivals)
    HSM_FLAT_RATE = 16             # branch-free chunks once 1 event in this many transitions
    # a batch is validated as it runs (run_batch_chunked, ``snap``) when its table's snapshot is
    # at most this many bytes per event
    HSM_SNAPSHOT_RATIO = 4


cdef inline Py_ssize_t validate_batch(const slot_t* slots, const event_t* events, Py_ssize_t n,
                                      const HsmCore* c) noexcept nogil:
    """Index of the first (slot, event) pair that is out of range or names a free slot, or -1.

    One unsigned compare per index (a negative index wraps to a huge one); the per-slot
    "is it open" gather runs only when the table has free slots.
    """
    cdef Py_ssize_t i, bad = n
    cdef size_t cap = <size_t>c.capacity, n_events = <size_t>c.n_events
    if n == 0:
        return -1
    # two streaming passes (AVX2 where the CPU has it): the first offender is the earlier one
    if slot_t is int64_t:
        bad = <Py_ssize_t>hsm_first_ge_i64(&slots[0], <size_t>n, cap)
    else:
        bad = <Py_ssize_t>hsm_first_ge_i32(&slots[0], <size_t>n, cap)
    if event_t is uint8_t:
        bad = <Py_ssize_t>hsm_first_ge_u8(&events[0], <size_t>bad, n_events)
    elif event_t is int32_t:
        bad = <Py_ssize_t>hsm_first_ge_i32(&events[0], <size_t>bad, n_events)
    else:
        bad = <Py_ssize_t>hsm_first_ge_i64(&events[0], <size_t>bad, n_events)
    cdef Py_ssize_t s
    if c.counts[HSM_FREE_SLOT] != 0:
        for i in range(bad):  # an earlier free slot is the first offender
            s = <Py_ssize_t>slots[i]  # re-checked: the caller may have rewritten it meanwhile
            if <size_t>s >= cap or c.states[s] == HSM_FREE_SLOT:
                return i
    return -1 if bad == n else bad


cdef inline Py_ssize_t row_cell(const uint8_t* states, const uint8_t* flags, bint flagged, int fb,
                                int shift, Py_ssize_t s, Py_ssize_t e,
                                Py_ssize_t n_events) noexcept nogil:
    """The (row, event) cell of slot ``s`` and event ``e``; ``flags`` is the packed copy.
    ``flagged`` is a constant at every call site, so a flag-free machine never loads flags."""
    if flagged:
        return (((<Py_ssize_t>states[s] << fb) | hsm_packed_flags(flags, shift, s)) * n_events
                + e)
    return <Py_ssize_t>states[s] * n_events + e


cdef inline void fast_rows(const HsmHistory* h, uint8_t** rec_of,
                           const uint8_t** lut_of) noexcept nogil:
    """Where the fast codes of history cells point (see HSM_FAST_WRITE), so the chunk kernels
    index two local arrays by the code instead of computing the row of a record and of the lut
    (and reloading the HsmHistory fields, which a byte store may alias): ``rec_of[code]`` is the
    record row of the code's owner (a write's owner ``code - HSM_FAST_WRITE``, a read's
    ``row >> 1``), ``lut_of[code]`` a read's lut row. Codes the compiler cannot give are not
    set."""
    cdef Py_ssize_t o, row
    for o in range(min(h.n_owners, HSM_FAST_READ - HSM_FAST_WRITE)):
        rec_of[HSM_FAST_WRITE + o] = &h.records[o * h.stride]
    for row in range(min(2 * h.n_owners, HSM_FAST_CODES - HSM_FAST_READ)):
        rec_of[HSM_FAST_READ + row] = &h.records[(row >> 1) * h.stride]
        lut_of[HSM_FAST_READ + row] = &h.lut[row << 8]


cdef inline Py_ssize_t run_chunk_counted(const slot_t* sl, const event_t* ev, Py_ssize_t lo,
                                         Py_ssize_t hi, uint8_t* states, const uint8_t* flags,
                                         uint64_t* unhandled, uint32_t* local,
                                         const uint16_t* step, Py_ssize_t n_events, size_t cap,
                                         size_t n_ev, bint prefetch, Py_ssize_t* pos,
                                         Py_ssize_t* moved, uint64_t* arrive, HsmCore* c,
                                         hsm_nflags_t* nflags) noexcept nogil:
    """Events [lo, hi) with a branch on the kind: free for handled-in-place events, dear for
    transitions when they are frequent and random. Returns the events that went unhandled,
    ``pos[0]`` = the index it stopped at (hi, or an index that left the valid range), ``moved[0]``
    += transitions taken. Transitions are counted in ``local`` only; the caller folds them into
    the table. ``step[idx]`` (see EngineTables) says all three cases in one load: below
    HSM_STEP_UNHANDLED it is an event handled in place."""
    cdef Py_ssize_t i, s, e, idx
    cdef Py_ssize_t n_unhandled = 0, trans = 0, f
    cdef uint16_t v
    cdef uint8_t new
    cdef uint8_t* rec_of[HSM_FAST_CODES]  # see fast_rows
    cdef const uint8_t* lut_of[HSM_FAST_CODES]
    cdef int fb = hsm_nflags(nflags)
    cdef bint flagged = fb != 0
    cdef int shift = 3 if fb <= 1 else 2 if fb == 2 else 1  # as HsmCore.fpack_shift
    if c.hist != NULL:
        fast_rows(c.hist, rec_of, lut_of)
    for i in range(lo, hi):
        if prefetch:
            STREAMHSM_PREFETCH(&states[<Py_ssize_t>sl[i + HSM_PREFETCH_DISTANCE]])
            if flagged:
                STREAMHSM_PREFETCH(&flags[<Py_ssize_t>sl[i + HSM_PREFETCH_DISTANCE] >> shift])
        s = <Py_ssize_t>sl[i]
        e = <Py_ssize_t>ev[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            pos[0] = i
            moved[0] += trans
            return n_unhandled
        idx = row_cell(states, flags, flagged, fb, shift, s, e, n_events)
        v = step[idx]
        if v < HSM_STEP_UNHANDLED:  # handled in place (or a free slot): nothing to do
            continue
        if v & HSM_STEP_UNHANDLED:
            if v >= HSM_STEP_FAST_MIN:  # a history cell with a fast code (history only)
                local[idx] += 1
                trans += 1
                f = v >> HSM_STEP_FAST_SHIFT
                if f >= HSM_FAST_READ:
                    new = lut_of[f][rec_of[f][s]]
                    arrive[((i & (HSM_ARRIVE_WAYS - 1)) << 8) | new] += 1  # see fold_arrivals
                else:
                    rec_of[f][s] = states[s]
                    new = <uint8_t>v
                states[s] = new
                continue
            if v & HSM_STEP_MOVED:  # another history cell: a transition, its program
                local[idx] += 1  # (see hsm_history_program)
                trans += 1
                states[s] = hsm_history_program(c, s, idx, v)
                continue
            unhandled[s] += unhandled[s] < <uint64_t>INT64_MAX  # saturates at 2**63-1
            n_unhandled += 1
            continue
        trans += 1
        local[idx] += 1
        states[s] = <uint8_t>v
    pos[0] = hi
    moved[0] += trans
    return n_unhandled


cdef inline Py_ssize_t run_chunk_flat(const slot_t* sl, const event_t* ev, Py_ssize_t lo,
                                      Py_ssize_t hi, uint8_t* states, const uint8_t* flags,
                                      uint64_t* unhandled, uint32_t* local, const uint16_t* step,
                                      Py_ssize_t n_events, size_t cap, size_t n_ev, bint prefetch,
                                      Py_ssize_t dist, Py_ssize_t* pos, uint64_t* arrive,
                                      HsmCore* c, hsm_nflags_t* nflags) noexcept nogil:
    """Like :func:`run_chunk_counted` without a branch on the transition: every event stores its
    next state (unchanged unless it transitions) and counts itself in its cell of ``local`` (the
    fold reads only the transition cells). ``step[idx]`` holds the next state and the unhandled
    bit: one load per event for both."""
    cdef Py_ssize_t i, s, e, idx
    cdef Py_ssize_t n_unhandled = 0, f
    cdef uint16_t v
    cdef uint8_t new
    cdef uint8_t* rec_of[HSM_FAST_CODES]  # see fast_rows
    cdef const uint8_t* lut_of[HSM_FAST_CODES]
    cdef int fb = hsm_nflags(nflags)
    cdef bint flagged = fb != 0
    cdef int shift = 3 if fb <= 1 else 2 if fb == 2 else 1  # as HsmCore.fpack_shift
    if c.hist != NULL:
        fast_rows(c.hist, rec_of, lut_of)
    for i in range(lo, hi):
        if prefetch:
            STREAMHSM_PREFETCH(&states[<Py_ssize_t>sl[i + dist]])
            if flagged:
                STREAMHSM_PREFETCH(&flags[<Py_ssize_t>sl[i + dist] >> shift])
        s = <Py_ssize_t>sl[i]
        e = <Py_ssize_t>ev[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            pos[0] = i
            return n_unhandled
        idx = row_cell(states, flags, flagged, fb, shift, s, e, n_events)
        v = step[idx]
        if v & HSM_STEP_UNHANDLED:
            if v >= HSM_STEP_FAST_MIN:  # history cells: as in run_chunk_counted
                local[idx] += 1
                f = v >> HSM_STEP_FAST_SHIFT
                if f >= HSM_FAST_READ:
                    new = lut_of[f][rec_of[f][s]]
                    arrive[((i & (HSM_ARRIVE_WAYS - 1)) << 8) | new] += 1  # see fold_arrivals
                else:
                    rec_of[f][s] = states[s]
                    new = <uint8_t>v
                states[s] = new
                continue
            if v & HSM_STEP_MOVED:
                local[idx] += 1
                states[s] = hsm_history_program(c, s, idx, v)
                continue
            unhandled[s] += unhandled[s] < <uint64_t>INT64_MAX  # saturates at 2**63-1
            n_unhandled += 1
        states[s] = <uint8_t>v
        local[idx] += 1
    pos[0] = hi
    return n_unhandled


cdef inline Py_ssize_t run_chunk(bint flat, int fb, const slot_t* sl, const event_t* ev,
                                 Py_ssize_t lo, Py_ssize_t hi, uint8_t* states,
                                 const uint8_t* flags, uint64_t* unhandled, uint32_t* local,
                                 const uint16_t* step, Py_ssize_t n_events, size_t cap, size_t n_ev,
                                 bint prefetch, Py_ssize_t dist, Py_ssize_t* pos,
                                 Py_ssize_t* moved, uint64_t* arrive,
                                 HsmCore* c) noexcept nogil:
    """Run one chunk with the kernel chosen (``flat`` or branchy) for a machine with ``fb``
    flags. Every (kernel, number of flags) pair is its own loop (the kernel's specialisation for
    an hsm_nflags_t marker), with the flag arithmetic (``fb`` and the packing shift, see
    hsm_packed_flags) as constants: measured, a loop that computes them at run time costs up to
    1.7x the flag-free one, a constant one 1.1x."""
    if flat:
        if fb == 0:
            return run_chunk_flat(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                  cap, n_ev, prefetch, dist, pos, arrive, c, <HsmFlags0*>NULL)
        if fb == 1:
            return run_chunk_flat(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                  cap, n_ev, prefetch, dist, pos, arrive, c, <HsmFlags1*>NULL)
        if fb == 2:
            return run_chunk_flat(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                  cap, n_ev, prefetch, dist, pos, arrive, c, <HsmFlags2*>NULL)
        if fb == 3:
            return run_chunk_flat(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                  cap, n_ev, prefetch, dist, pos, arrive, c, <HsmFlags3*>NULL)
        return run_chunk_flat(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                              cap, n_ev, prefetch, dist, pos, arrive, c, <HsmFlags4*>NULL)
    if fb == 0:
        return run_chunk_counted(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                 cap, n_ev, prefetch, pos, moved, arrive, c, <HsmFlags0*>NULL)
    if fb == 1:
        return run_chunk_counted(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                 cap, n_ev, prefetch, pos, moved, arrive, c, <HsmFlags1*>NULL)
    if fb == 2:
        return run_chunk_counted(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                 cap, n_ev, prefetch, pos, moved, arrive, c, <HsmFlags2*>NULL)
    if fb == 3:
        return run_chunk_counted(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                                 cap, n_ev, prefetch, pos, moved, arrive, c, <HsmFlags3*>NULL)
    return run_chunk_counted(sl, ev, lo, hi, states, flags, unhandled, local, step, n_events,
                             cap, n_ev, prefetch, pos, moved, arrive, c, <HsmFlags4*>NULL)


cdef inline void fold_counts_range(HsmCore* c, uint32_t* local, Py_ssize_t lo,
                                   Py_ssize_t hi) noexcept nogil:
    """Fold cells [lo, hi) of ``local`` into the table and clear them: a transition cell
    counted v times moved v slots from its row's state to its next state (the other cells
    counted events handled in place or unhandled, already accounted for)."""
    cdef Py_ssize_t idx, row, state
    cdef int64_t v
    for idx in range(lo, hi):
        v = local[idx]
        if v != 0:
            if c.kind[idx] == HSM_KIND_TRANSITION:
                row = idx // c.n_events
                state = row >> c.flag_bits
                c.transitions[state * c.n_events + idx - row * c.n_events] = hsm_sat_add(
                    c.transitions[state * c.n_events + idx - row * c.n_events], v)
                c.counts[state] -= v
                c.counts[c.next_state[idx]] += v
            elif c.kind[idx] == HSM_KIND_HISTORY:  # see hsm_history_program
                row = idx // c.n_events
                state = row >> c.flag_bits
                c.transitions[state * c.n_events + idx - row * c.n_events] = hsm_sat_add(
                    c.transitions[state * c.n_events + idx - row * c.n_events], v)
                c.counts[state] -= v
                if <uint8_t>c.step[idx] != HSM_FREE_SLOT:  # reads no record: a static leaf
                    c.counts[<uint8_t>c.step[idx]] += v
            local[idx] = 0


cdef inline void fold_arrivals(HsmCore* c, uint64_t* arrive,
                               Py_ssize_t n_states) noexcept nogil:
    """Fold the arrivals of a batch's fast history reads into the per-state counts (once, at
    the end of the batch; an undone batch drops them). The chunk kernels count a read's arrival
    in ``arrive[way][leaf]``, ``way`` the event's index modulo HSM_ARRIVE_WAYS: a read's leaf is
    known only after its record and lut loads, and consecutive reads mostly arrive in one leaf,
    so a single counter would chain every read on one store and load; spread over the ways, the
    chain is HSM_ARRIVE_WAYS events long (measured: one counter cost history reads 2.2x a plain
    transition; a count per run of one leaf, 1.4x, but 10x on mixed leaves, a mispredicted
    branch per read). 64-bit counters: no batch overflows them. Only machines with history have
    such reads; their leaves are codes below ``n_states``."""
    cdef Py_ssize_t w, st
    if c.hist == NULL:
        return
    for w in range(HSM_ARRIVE_WAYS):
        for st in range(n_states):
            c.counts[st] += <int64_t>arrive[(w << 8) | st]


cdef inline void fold_counts(HsmCore* c, uint32_t* local, Py_ssize_t used) noexcept nogil:
    """Fold every cell a batch can have touched: the rows of the machine's state codes (the
    first ``used`` cells) and the free rows at the end (a slot the caller rewrote to a free one
    counts there)."""
    cdef Py_ssize_t free_row = <Py_ssize_t>HSM_FREE_SLOT << c.flag_bits
    fold_counts_range(c, local, 0, used)
    fold_counts_range(c, local, free_row * c.n_events, (free_row + (1 << c.flag_bits)) * c.n_events)


# Compile-time markers: run_batch_chunked is specialised (as a fused function) for flag-free
# machines and for machines with flags, so each is its own C function with only its own loops.
ctypedef struct _FlagFree:
    char unused
ctypedef struct _Flagged:
    char unused
ctypedef fused flag_mode_t:
    _FlagFree
    _Flagged


cdef inline bint runs_chunked(const HsmCore* c, Py_ssize_t n) noexcept nogil:
    """True if a batch of ``n`` events runs the chunk kernels (:func:`run_batch_chunked`), False
    if it runs event by event: tracing on, a machine with timers, a small batch (no fold to pay
    for), more transition cells than events, or a machine too wide for the stack cells without a
    scratch array."""
    cdef Py_ssize_t cells = (<Py_ssize_t>HSM_CODE_ROWS << c.flag_bits) * c.n_events
    return not (c.trace != NULL or c.timers != NULL or n < HSM_LOCAL_MIN_EVENTS
                or c.n_tcells > n or (cells > HSM_STACK_CELLS and c.local == NULL))


cdef inline Py_ssize_t snapshot_bytes(const HsmCore* c) noexcept nogil:
    """Bytes of what an undo restores per slot (the state byte and every history record), for
    every slot, rounded up to 8 (the per-state counts follow them in the scratch)."""
    cdef Py_ssize_t n_owners = c.hist.n_owners if c.hist != NULL else 0
    return (c.capacity * (1 + n_owners) + 7) & ~(<Py_ssize_t>7)


cdef inline Py_ssize_t undo_scratch_bytes(const HsmCore* c) noexcept nogil:
    """Bytes of the scratch of a batch validated as it runs (:func:`run_batch_chunked`,
    ``snap``; 8-byte aligned): the snapshot, then the per-state counts."""
    return snapshot_bytes(c) + HSM_CODE_ROWS * <Py_ssize_t>sizeof(int64_t)


cdef inline bint validates_as_it_runs(const HsmCore* c, Py_ssize_t n) noexcept nogil:
    """True if a batch of ``n`` events is validated chunk by chunk as it runs (see
    :func:`run_batch_chunked`, ``snap``) instead of all at once before it runs: it runs the chunk
    kernels and its snapshot (the state bytes and history records) is at most
    HSM_SNAPSHOT_RATIO bytes per event."""
    return snapshot_bytes(c) <= HSM_SNAPSHOT_RATIO * n and runs_chunked(c, n)


cdef inline Py_ssize_t run_batch(const slot_t* slots, const event_t* events, Py_ssize_t n,
                                 HsmCore* c, Py_ssize_t n_states, Py_ssize_t* stop,
                                 uint8_t* snap, Py_ssize_t* bad) noexcept nogil:
    """Dispatch a batch (:func:`run_batch_chunked`) with the loops of its kind of machine:
    a flag-free machine runs a function compiled without the flagged kernels (measured: sharing
    one function with them cost flag-free lease traffic 1.1-1.2x). A machine with history
    records runs the same loops: its history cells carry both step bits (see the chunk kernels)
    and run their program where they occur. ``snap`` NULL: the batch was validated before; else
    it is validated as it runs (see :func:`run_batch_chunked`). A machine with timers goes one
    event at a time (:func:`run_batch_timed`; its batches are validated before they run)."""
    if c.timers != NULL:
        return run_batch_timed(slots, events, n, c, stop)
    if c.flag_bits:
        return run_batch_chunked(slots, events, n, c, n_states, stop, snap, bad, <_Flagged*>NULL)
    return run_batch_chunked(slots, events, n, c, n_states, stop, snap, bad, <_FlagFree*>NULL)


cdef inline void clear_counts(HsmCore* c, uint32_t* local, Py_ssize_t used) noexcept nogil:
    """Zero the cells :func:`fold_counts` would fold, without folding them (an undone batch)."""
    cdef Py_ssize_t free_row = <Py_ssize_t>HSM_FREE_SLOT << c.flag_bits
    memset(local, 0, used * sizeof(uint32_t))
    memset(&local[free_row * c.n_events], 0, (c.n_events << c.flag_bits) * sizeof(uint32_t))


cdef inline void save_batch(HsmCore* c, uint8_t* snap) noexcept nogil:
    """Copy what an undo restores to ``snap`` (see :func:`undo_scratch_bytes`): the state bytes,
    the history records (history cells write them, and count record-reading arrivals in
    ``counts`` on the spot), the per-state counts."""
    cdef size_t cap = <size_t>c.capacity
    memcpy(snap, c.states, cap)
    if c.hist != NULL:
        memcpy(&snap[cap], c.hist.records, cap * <size_t>c.hist.n_owners)
    memcpy(&snap[snapshot_bytes(c)], c.counts, HSM_CODE_ROWS * sizeof(int64_t))


cdef inline void take_back_unhandled(const slot_t* sl, const event_t* ev, Py_ssize_t at,
                                     HsmCore* c) noexcept nogil:
    """Replay events [0, at) of an undone batch from the restored state bytes (and records),
    counting nothing, and take one off a slot's unhandled counter for each event it left
    unhandled. Exact when no counter saturated during the batch: the table refuses to validate
    a batch as it runs when one may (see MachineTable._high_unhandled). The kernels check an
    index the caller rewrote meanwhile, and so does this replay (it skips it; a counter is never
    taken below 0)."""
    cdef Py_ssize_t i, s, e, idx
    cdef size_t cap = <size_t>c.capacity, n_ev = <size_t>c.n_events
    cdef int fb = c.flag_bits
    cdef uint8_t mask = 0
    cdef uint16_t v
    for i in range(at):
        s = <Py_ssize_t>sl[i]
        e = <Py_ssize_t>ev[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            continue
        if fb:
            mask = c.flags[s]
        idx = (((<Py_ssize_t>c.states[s]) << fb) | mask) * c.n_events + e
        v = c.step[idx]
        if not v & HSM_STEP_UNHANDLED:
            c.states[s] = <uint8_t>v
        elif v & HSM_STEP_MOVED:  # a history cell: its program gives the leaf
            c.states[s] = hsm_history_run(c.hist, s, idx, fb, mask)
        elif c.unhandled[s] != 0:
            c.unhandled[s] -= 1


cdef inline void restore_batch(HsmCore* c, const uint8_t* snap) noexcept nogil:
    """Put back what :func:`save_batch` copied."""
    cdef size_t cap = <size_t>c.capacity
    memcpy(c.states, snap, cap)
    if c.hist != NULL:
        memcpy(c.hist.records, &snap[cap], cap * <size_t>c.hist.n_owners)
    memcpy(c.counts, &snap[snapshot_bytes(c)], HSM_CODE_ROWS * sizeof(int64_t))


cdef inline Py_ssize_t undo_batch(const slot_t* sl, const event_t* ev, Py_ssize_t at,
                                  Py_ssize_t ran, HsmCore* c, const uint8_t* snap,
                                  uint32_t* local, Py_ssize_t used,
                                  Py_ssize_t* bad) noexcept nogil:
    """Undo a batch that met an invalid element at index ``at`` before its commit point, after
    running its events [0, ran): the unhandled counts they took given back
    (:func:`take_back_unhandled`, from the state bytes and records as they were), what
    :func:`save_batch` copied put back, the batch-local counts dropped (nothing was folded into
    the table yet). Returns 0."""
    restore_batch(c, snap)
    take_back_unhandled(sl, ev, ran, c)
    restore_batch(c, snap)
    clear_counts(c, local, used)
    bad[0] = at
    return 0


cdef inline Py_ssize_t run_batch_chunked(const slot_t* slots, const event_t* events,
                                         Py_ssize_t n, HsmCore* c, Py_ssize_t n_states,
                                         Py_ssize_t* stop, uint8_t* snap, Py_ssize_t* bad,
                                         flag_mode_t* mode) noexcept nogil:
    """Dispatch every pair in order; return the number handled. Every open slot handles or
    counts each event, so the handled count is the number of events run minus the unhandled
    events they added.

    Transitions are counted per (row, event) in a batch-local array and occupancy is derived
    from them when the batch (or every HSM_FOLD_EVENTS events of it) ends: updating the per-state
    counters on every transition chains stores on a few hot addresses. Per-slot unhandled
    counters are exact as the batch goes. Every HSM_CHUNK events the loop picks its kernel from
    the transition rate of the previous chunk: with frequent transitions a branch-free one (no
    mispredicted branch), otherwise one that skips handled-in-place events without a store.
    Each kernel is specialised for each number of flags (see :func:`run_chunk`).

    Validation. With ``snap`` NULL the caller validated the whole batch before (validate_batch).
    Otherwise ``snap`` is scratch space (:func:`undo_scratch_bytes`, 8-byte aligned) and the
    batch is validated as it runs, so it is read from memory once: the kernels' own index
    checks catch an index out of range, and on a table with free slots each chunk is checked
    (validate_batch, which brings it into the cache for the kernel) just before it runs. What
    the batch can change is copied to ``snap`` first (:func:`save_batch`); on an invalid
    element everything is undone (:func:`undo_batch`, which replays the batch up to the element
    to give back the per-slot unhandled counts),
    ``bad[0]`` is set to its index and 0 is returned. Before the first fold into the table's
    counters the rest of the batch is validated at once (the commit point); from there on the
    batch runs as a validated one.

    The arrays belong to the caller, who may rewrite them from another thread: each index is
    checked again (one unsigned compare, always on). After the commit point (or with ``snap``
    NULL), on an index out of range the run stops before it and ``stop[0]`` is set to its
    position (it stays -1 otherwise); before it, the batch is undone as for an invalid element.
    A slot rewritten to a free slot is harmless: the free rows of every table map to themselves.
    """
    cdef Py_ssize_t n_events = c.n_events
    cdef int fb = 0
    if flag_mode_t is _Flagged:
        fb = c.flag_bits
    cdef Py_ssize_t cells = (<Py_ssize_t>HSM_CODE_ROWS << fb) * n_events
    cdef Py_ssize_t used = (n_states << fb) * n_events   # the cells of the machine's states
    cdef uint32_t stack_local[HSM_STACK_CELLS]
    cdef uint32_t* local = c.local
    cdef uint64_t arrive[HSM_ARRIVE_WAYS * HSM_CODE_ROWS]  # see fold_arrivals
    if not runs_chunked(c, n):
        if c.hist != NULL:
            return run_batch_history(slots, events, n, c, stop)
        return run_batch_per_event(slots, events, n, c, stop)
    if cells <= HSM_STACK_CELLS:
        local = stack_local
        memset(local, 0, cells * sizeof(uint32_t))
    if c.hist != NULL:
        memset(arrive, 0, sizeof(arrive))
    cdef const slot_t* sl = &slots[0]
    cdef const event_t* ev = &events[0]
    cdef uint8_t* states = c.states
    cdef const uint8_t* flags = c.fpacked
    cdef uint64_t* unhandled = c.unhandled
    cdef const uint16_t* step = c.step
    cdef const int32_t* tcells = c.tcells
    cdef size_t cap = <size_t>c.capacity, n_ev = <size_t>n_events
    cdef bint big = c.capacity >= HSM_PREFETCH_MIN_SLOTS
    cdef bint flat = False, prefetch
    cdef bint checked = snap == NULL   # the batch is validated up to its end
    cdef bint free_slots = c.counts[HSM_FREE_SLOT] != 0
    cdef Py_ssize_t lo = 0, hi, pos = 0, moved, n_unhandled = 0, since_fold = 0, j
    cdef Py_ssize_t dist = HSM_PREFETCH_DISTANCE
    cdef int64_t tsum, tprev = 0
    if not checked:
        save_batch(c, snap)
    while lo < n:
        hi = min(lo + HSM_CHUNK, n)
        if not checked and free_slots:
            j = validate_batch(&sl[lo], &ev[lo], hi - lo, c)
            if j >= 0:
                return undo_batch(sl, ev, lo + j, lo, c, snap, local, used, bad)
        moved = 0
        prefetch = big and hi + dist <= n
        n_unhandled += run_chunk(flat, fb, sl, ev, lo, hi, states, flags, unhandled, local, step,
                                 n_events, cap, n_ev, prefetch, dist, &pos, &moved, arrive, c)
        if flat:  # the transition cells' sum gives the transitions the chunk took
            tsum = 0
            for j in range(c.n_tcells):
                tsum += local[tcells[j]]
            moved = tsum - tprev
            tprev = tsum
        else:
            tprev += moved
        flat = moved * HSM_FLAT_RATE >= hi - lo   # transitions frequent enough to mispredict
        if pos < hi:
            if not checked:
                return undo_batch(sl, ev, pos, pos, c, snap, local, used, bad)
            stop[0] = pos
            n = pos
            break
        since_fold += hi - lo
        if not checked and since_fold >= HSM_FOLD_EVENTS:
            j = validate_batch(&sl[hi], &ev[hi], n - hi, c)  # the commit point
            if j >= 0:
                return undo_batch(sl, ev, hi + j, hi, c, snap, local, used, bad)
            checked = True
        if since_fold >= HSM_FOLD_EVENTS:
            fold_counts(c, local, used)
            since_fold = 0
            tprev = 0
        lo = hi
    fold_counts(c, local, used)
    fold_arrivals(c, arrive, n_states)
    hsm_add_unhandled(c, <uint64_t>n_unhandled)
    return n - n_unhandled


cdef inline Py_ssize_t run_batch_per_event(const slot_t* slots, const event_t* events,
                                           Py_ssize_t n, HsmCore* c,
                                           Py_ssize_t* stop) noexcept nogil:
    """:func:`run_batch` one event at a time through ``hsm_apply`` (every counter updated as it
    goes): the path for small batches, wide machines and a table with tracing on.

    The arrays belong to the caller, who may rewrite them from another thread after validation:
    each index is checked again (one unsigned compare, always on). On an index out of range the
    run stops before it and ``stop[0]`` is set to its position (it stays -1 otherwise). A slot
    rewritten to a free slot is harmless: the free rows of every table map to themselves.
    """
    cdef Py_ssize_t i, s, e
    cdef uint64_t n_unhandled = 0
    cdef uint8_t* states = c.states
    cdef const uint8_t* flags = c.flags
    cdef int fb = c.flag_bits
    cdef int64_t* counts = c.counts
    cdef uint64_t* unhandled = c.unhandled
    cdef int64_t* transitions = c.transitions
    cdef const uint8_t* next_state = c.next_state
    cdef const uint8_t* kind = c.kind
    cdef HsmTrace* trace = c.trace
    cdef Py_ssize_t n_events = c.n_events, capacity = c.capacity
    cdef size_t cap = <size_t>capacity, n_ev = <size_t>n_events
    # On a large table every event misses the cache; prefetching the state byte a few events
    # ahead keeps several misses in flight (the kernel's branches otherwise limit that). On a
    # cache-resident table the prefetch only costs, so it has a loop of its own.
    cdef Py_ssize_t start = 0
    if capacity >= HSM_PREFETCH_MIN_SLOTS and n > HSM_PREFETCH_DISTANCE:
        start = n - HSM_PREFETCH_DISTANCE
        for i in range(start):
            STREAMHSM_PREFETCH(&states[<Py_ssize_t>slots[i + HSM_PREFETCH_DISTANCE]])
            s = <Py_ssize_t>slots[i]
            e = <Py_ssize_t>events[i]
            if <size_t>s >= cap or <size_t>e >= n_ev:
                n = i
                stop[0] = i
                break
            n_unhandled += hsm_apply(states, counts, unhandled, transitions, next_state, kind,
                                     flags, fb, trace, n_events, s, e)
    if stop[0] < 0:
        for i in range(start, n):
            s = <Py_ssize_t>slots[i]
            e = <Py_ssize_t>events[i]
            if <size_t>s >= cap or <size_t>e >= n_ev:
                n = i
                stop[0] = i
                break
            n_unhandled += hsm_apply(states, counts, unhandled, transitions, next_state, kind,
                                     flags, fb, trace, n_events, s, e)
    hsm_add_unhandled(c, <uint64_t>n_unhandled)
    return n - <Py_ssize_t>n_unhandled


cdef inline Py_ssize_t run_batch_history(const slot_t* slots, const event_t* events,
                                         Py_ssize_t n, HsmCore* c,
                                         Py_ssize_t* stop) noexcept nogil:
    """:func:`run_batch_per_event` for a machine with history records (hsm_apply_history per
    event; the same re-check of every index, see there)."""
    cdef Py_ssize_t i, s, e
    cdef uint64_t n_unhandled = 0
    cdef size_t cap = <size_t>c.capacity, n_ev = <size_t>c.n_events
    for i in range(n):
        s = <Py_ssize_t>slots[i]
        e = <Py_ssize_t>events[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            n = i
            stop[0] = i
            break
        n_unhandled += hsm_apply_history(c, s, e)
    hsm_add_unhandled(c, n_unhandled)
    return n - <Py_ssize_t>n_unhandled


cdef inline Py_ssize_t run_batch_timed(const slot_t* slots, const event_t* events,
                                       Py_ssize_t n, HsmCore* c,
                                       Py_ssize_t* stop) noexcept nogil:
    """:func:`run_batch_per_event` for a machine with timers (hsm_apply_timed per event, which
    arms and cancels the slot's timers at the table's clock; the same re-check of every index,
    see there). On a large table it fetches the state byte and first deadline of the slot
    HSM_PREFETCH_DISTANCE events ahead: a keepalive's restart is one store into a deadline column
    too large for the caches, in random slot order (measured: 1.9x faster on 1,000,000 slots)."""
    cdef Py_ssize_t i, s, e, ahead
    cdef uint64_t n_unhandled = 0
    cdef size_t cap = <size_t>c.capacity, n_ev = <size_t>c.n_events
    cdef Py_ssize_t fetch = n - HSM_PREFETCH_DISTANCE if c.capacity >= HSM_PREFETCH_MIN_SLOTS else 0
    cdef int64_t* col = c.timers.deadlines
    for i in range(n):
        if i < fetch:
            ahead = <Py_ssize_t>slots[i + HSM_PREFETCH_DISTANCE]
            if <size_t>ahead < cap:
                STREAMHSM_PREFETCH(&c.states[ahead])
                STREAMHSM_PREFETCH(&col[ahead])
        s = <Py_ssize_t>slots[i]
        e = <Py_ssize_t>events[i]
        if <size_t>s >= cap or <size_t>e >= n_ev:
            n = i
            stop[0] = i
            break
        n_unhandled += hsm_apply_timed(c, s, e)
    hsm_add_unhandled(c, n_unhandled)
    return n - <Py_ssize_t>n_unhandled


cdef inline Py_ssize_t run_broadcast(HsmCore* c, Py_ssize_t event) noexcept nogil:
    """Dispatch one event to every slot; return the number handled (-1: debug check failed).

    The event is the same for every slot, so the counters follow from the per-state occupancy
    (O(states)); the per-slot pass only rewrites states, and the per-slot unhandled counters only
    when some occupied state leaves the event unhandled. When every occupied state handles the
    event in place, no slot can change and the per-slot pass is skipped. Free slots map to
    themselves.
    """
    cdef Py_ssize_t s, i, idx, handled = 0, n_unhandled = 0
    cdef int64_t moved[HSM_CODE_ROWS]
    cdef uint8_t lut[HSM_CODE_ROWS]
    cdef uint8_t old
    cdef bint changes = False
    if STREAMHSM_DEBUG_CHECKS:
        if event < 0 or event >= c.n_events:
            return -1
    memset(moved, 0, sizeof(moved))
    for s in range(HSM_CODE_ROWS):
        if c.counts[s] != 0:
            idx = s * c.n_events + event
            handled += c.counts[s] * c.is_handled[idx]
            n_unhandled += c.counts[s] * c.is_unhandled[idx]
            moved[c.next_state[idx]] += c.counts[s]
            if c.kind[idx] == HSM_KIND_TRANSITION:
                c.transitions[idx] = hsm_sat_add(c.transitions[idx], c.counts[s])
            changes = changes or c.kind[idx] != HSM_KIND_INTERNAL
    # per-slot pass on local pointers: a store through uint8_t* may alias the struct's fields
    cdef uint8_t* states = c.states
    cdef uint64_t* unhandled = c.unhandled
    cdef const uint8_t* next_state = c.next_state
    cdef const uint8_t* unhandled_table = c.is_unhandled
    cdef const uint8_t* kind = c.kind
    cdef Py_ssize_t n_events = c.n_events, capacity = c.capacity
    if c.trace != NULL:  # tracing: record every slot's transition, in slot order
        for i in range(capacity):
            old = states[i]
            idx = <Py_ssize_t>old * n_events + event
            if kind[idx] == HSM_KIND_TRANSITION:
                hsm_trace(c.trace, i, event, old, next_state[idx], idx)
            states[i] = next_state[idx]
            unhandled[i] += unhandled_table[idx] & (unhandled[i] < <uint64_t>INT64_MAX)
    elif not changes:
        pass  # every occupied state handles the event in place: no slot changes
    elif n_unhandled == 0:  # no per-slot counter to touch: a byte map, SIMD where the CPU has it
        for s in range(HSM_CODE_ROWS):
            lut[s] = next_state[s * n_events + event]
        hsm_map(states, <size_t>capacity, lut)
    else:
        for i in range(capacity):
            idx = <Py_ssize_t>states[i] * n_events + event
            states[i] = next_state[idx]
            unhandled[i] += unhandled_table[idx] & (unhandled[i] < <uint64_t>INT64_MAX)
    for s in range(HSM_CODE_ROWS):
        c.counts[s] = moved[s]
    hsm_add_unhandled(c, <uint64_t>n_unhandled)
    return handled


cdef inline Py_ssize_t run_broadcast_flagged(HsmCore* c, Py_ssize_t event) noexcept nogil:
    """:func:`run_broadcast` for a machine with flags: what a slot does depends on its own flag
    byte, so every slot goes through the kernel (free slots map to themselves and count nothing).
    """
    cdef Py_ssize_t i, n_unhandled = 0
    cdef Py_ssize_t open_slots = c.capacity - <Py_ssize_t>c.counts[HSM_FREE_SLOT]
    for i in range(c.capacity):
        n_unhandled += 1 - hsm_step(c, i, event)  # a free slot counts as handled
    return open_slots - n_unhandled


cdef inline Py_ssize_t set_flags_batch(const slot_t* slots, const uint8_t* values, Py_ssize_t n,
                                       bint single, uint8_t one, int bit, HsmCore* c,
                                       Py_ssize_t* stop) noexcept nogil:
    """Validate every (slot, value), then apply them; return the index of the first invalid one
    (nothing applied) or -1. The caller may rewrite its arrays meanwhile: the apply pass checks
    each slot again and stops before one that left the valid range (``stop[0]``)."""
    cdef Py_ssize_t i, s
    cdef size_t cap = <size_t>c.capacity
    cdef uint8_t v, keep = <uint8_t>~(1 << bit)
    for i in range(n):
        s = <Py_ssize_t>slots[i]
        if <size_t>s >= cap or c.states[s] == HSM_FREE_SLOT or (not single and values[i] > 1):
            return i
    for i in range(n):
        s = <Py_ssize_t>slots[i]
        v = one if single else values[i]
        if <size_t>s >= cap or c.states[s] == HSM_FREE_SLOT or v > 1:
            stop[0] = i
            return -1
        hsm_set_flags(c, s, (c.flags[s] & keep) | <uint8_t>(v << bit))
    return -1
