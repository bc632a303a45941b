# The C-level declaration of MachineTable (private; Cython users cimport the stable subset in
# streamhsm/capi.pxd).
cimport cython
from cpython.pythread cimport PyThread_type_lock
from libc.stdint cimport uint8_t, int32_t

from streamhsm._kernel cimport HsmCore, HsmHistory, HsmTimers, HsmTrace

# A hook a batch calls after validating its input (a dispatch_many batch validated as it runs:
# before it runs), holding the table lock with the GIL released (NULL in normal use; only the
# test-only module streamhsm._testing sets it).
ctypedef void (*batch_hook_t)(void* arg) noexcept nogil


cdef class MachineTable:
    cdef HsmCore core
    cdef readonly object machine
    # the numpy arrays the core points into, and the machine's EngineTables
    cdef object _states, _flags, _unhandled, _counts, _free_list, _transitions, _tables
    cdef object _scratch           # the batch-local transition counts (core.local), or None
    cdef object _fpacked           # the packed flag bitmasks (core.fpacked)
    # scratch of batches validated as they run (_batch.pxd run_batch_chunked, undo_scratch_bytes:
    # a snapshot of the state bytes, history records and per-state counts); made by the first
    # such batch and never replaced (a running batch holds the pointer)
    cdef object _undo
    cdef uint8_t* _undo_ptr
    # True once restore() gave some slot an unhandled counter above 2**62: a batch could then
    # saturate it, which the undo of a batch validated as it runs cannot take back exactly, so
    # batches are validated before they run (counting from 0, no counter gets there)
    cdef bint _high_unhandled
    cdef object _states_view, _flags_view, _unhandled_view, _transitions_view  # read-only bases
    cdef object _observer          # TableObserver over the read-only views
    cdef int32_t* _free            # stack of free slots
    cdef Py_ssize_t _n_free
    cdef uint8_t _initial
    cdef object _state_members     # tuple: code -> State member
    cdef object _codec             # the machine's MachineCodec (names, enums, errors)
    cdef object _event_enum, _state_enum   # the machine's enums (codes converted inline)
    cdef dict _event_codes, _state_codes   # name -> code (names converted inline)
    cdef Py_ssize_t _n_states
    cdef HsmTrace _trace
    # history programs and records (core.hist, if the machine has history records)
    cdef HsmHistory _hist
    cdef object _records, _records_view    # uint8 (n_owners, capacity) and its read-only view
    cdef const uint8_t* _init_records      # the records of a freshly opened slot
    cdef object _trace_owners      # the ring's columns, or None when tracing is off
    # timers (core.timers, if the machine has timers): their columns (``table_layout``'s
    # deadlines, clock, timer_blocks, skipped) and the read-only deadline views, or None
    cdef HsmTimers _tm
    cdef object _timer_arrays, _deadline_views
    # Batch paths (dispatch_many, broadcast, set_flag_many) run without the GIL under _lock;
    # while they do, _busy is 1 (set and cleared with the GIL held), and GIL-holding mutators
    # wait for _lock first. A Cython caller that mutates the table without the GIL brackets its
    # loop the same way (see capi.pxd):
    #     table.lock_batch()            # with the GIL; waits (GIL released) for other batches
    #     try:
    #         with nogil: ... hsm_step(&table.core, slot, event) ...
    #     finally:
    #         table.unlock_batch()
    cdef PyThread_type_lock _lock
    cdef int _busy
    cdef int _waiters              # threads waiting in lock_batch
    cdef batch_hook_t _batch_hook  # NULL unless streamhsm._testing paused batches
    cdef void* _batch_hook_arg
    cdef object _batch_hook_owner  # keeps the hook's argument alive

    @cython.final
    cdef Py_ssize_t slot_index(self, object slot) except -1

    @cython.final
    cdef Py_ssize_t slot_value(self, object slot) except -2

    @cython.final
    cdef Py_ssize_t check_open(self, Py_ssize_t v, object slot) except -1

    @cython.final
    cdef Py_ssize_t open_locked(self) except -1

    cdef Py_ssize_t open_unchecked(self) noexcept nogil

    @cython.final
    cdef Py_ssize_t event_index(self, object event) except -1

    @cython.final
    cdef Py_ssize_t state_index(self, object state) except -1

    @cython.final
    cdef object observer(self)

    @cython.final
    cdef int flag_bit(self, object name) except -1

    cdef int lock_batch(self) except -1

    cdef void unlock_batch(self) noexcept

    cdef int release_unchecked(self, Py_ssize_t slot) noexcept nogil
