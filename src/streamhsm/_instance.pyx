"""MachineInstance: one instance of a compiled machine (the single-stream counterpart of
MachineTable).

Private module: users import :class:`streamhsm.MachineInstance` (or
:class:`streamhsm.StreamLifecycle`). An instance reads the machine's tables (built and read-only in
``machine.engine_tables``) through pointers held by a machine-level object shared by every
instance of the machine. An instance of a machine with timers is a table of one slot in spirit:
its own object holds a one-slot ``HsmCore`` (stride 1) over the instance's fields, its clock and
deadlines, and runs the table's timer kernels (``hsm_apply_timed``, ``hsm_advance``) on it.
"""
cimport cython
from libc.stdint cimport INT64_MAX, uint8_t, int32_t, int64_t, uint32_t, uint64_t, uintptr_t

from streamhsm._binding cimport bind_core, bind_timers
from streamhsm._checks cimport fast_code, flag_value
from streamhsm._kernel cimport (
    HSM_CODE_ROWS, HSM_FREE_SLOT, HSM_KIND_HISTORY, HSM_KIND_INTERNAL, HSM_KIND_UNHANDLED,
    HsmCore, HsmHistory, HsmTimers, hsm_apply_timed, hsm_history_run,
)
from streamhsm._timer_kernel cimport HsmFired, hsm_advance, hsm_timers_open

import weakref

import numpy as np

from ._timer_tables import check_advance, check_fired_out, timer_index
from ._views import readonly_view
from .compiler import check_machine

__all__ = ["MachineInstance"]


cdef inline uintptr_t _address(object arr):
    """Address of the first element of a C-contiguous numpy array (kept alive by the caller)."""
    return <uintptr_t>arr.__array_interface__["data"][0]


# The counters a one-slot core writes that an instance does not keep: the kernels count slots per
# state (``counts``) and, unless the instance counts its own, transitions per (state, event).
# Shared by every instance of every machine with timers, written with the GIL held, never read.
cdef object _sink = None


cdef object _sink_array():
    global _sink
    if _sink is None:
        _sink = np.zeros(HSM_CODE_ROWS * (HSM_CODE_ROWS + 1), dtype=np.int64)
    return _sink


cdef class MachineInstance


@cython.final
cdef class _InstanceTables:
    """The machine-level part of :class:`MachineInstance`: borrowed pointers into the machine's
    padded tables, its codec and state members; optionally an instance's own transition counts.
    A machine with history records gives every instance tables of its own, holding the
    instance's records (``hist``); a machine with timers gives every instance tables of its own,
    holding a one-slot table core (``core``, ``tm``) over the instance's clock and deadlines."""
    cdef readonly object machine
    cdef const uint8_t* next_state     # the machine's tables (rows as in _kernel.pxd)
    cdef const uint8_t* kind
    cdef int64_t* transitions          # NULL unless per-instance transition counts were asked for
    cdef Py_ssize_t n_events, n_states
    cdef int flag_bits                 # number of flags of the machine
    cdef uint8_t initial_leaf          # the machine's initial leaf (every instance starts there)
    cdef object owners                 # the arrays the pointers point into
    cdef object state_members          # tuple: code -> State member
    cdef object member                 # bool [n_states, HSM_CODE_ROWS]: is code under state
    cdef object codec                  # the machine's MachineCodec (names, enums, errors)
    cdef object event_enum, state_enum
    cdef dict event_codes, state_codes    # name -> code
    cdef object transitions_view       # read-only (n_states, n_events) view, or None
    cdef HsmHistory hist               # history programs and this instance's records (stride 1)
    cdef object records                # uint8 (n_owners,) or None without history
    # a machine with timers: a one-slot table (stride 1) whose states, flags and unhandled point
    # at the instance's fields (set before each kernel call), its timers at ``clock``; without
    # timers core.timers is NULL (and nothing else of core is set)
    cdef HsmCore core
    cdef HsmTimers tm
    cdef object timer_buf              # int64: deadlines, clock (2), block summary (1), skipped
    cdef object __weakref__

    def __cinit__(self, machine, bint count_transitions):
        tables = machine.engine_tables
        n_s, n_e, k = tables.sizes(machine)  # sizes from the arrays bound below, checked
        n_owners = tables.initial_records.shape[0]
        self.machine = machine
        self.next_state = <const uint8_t*>_address(tables.next_state)
        self.kind = <const uint8_t*>_address(tables.kind)
        self.n_events = n_e
        self.n_states = n_s
        self.flag_bits = k
        self.initial_leaf = machine.initial_leaf
        self.transitions = NULL
        self.transitions_view = None
        owners = [tables]
        if count_transitions:
            transitions = np.zeros((HSM_CODE_ROWS, self.n_events), dtype=np.int64)
            self.transitions = <int64_t*>_address(transitions)
            self.transitions_view = readonly_view(transitions[:n_s])
            owners.append(transitions)
        self.records = None
        self.hist.n_owners = n_owners
        if n_owners:
            self.records = np.array(tables.initial_records, dtype=np.uint8)
            self.hist.start = <const int32_t*>_address(tables.hstart)
            self.hist.arrive = <const int32_t*>_address(tables.harrive)
            self.hist.prog = <const uint32_t*>_address(tables.hprog)
            self.hist.lut = <const uint8_t*>_address(tables.hlut)
            self.hist.records = <uint8_t*>_address(self.records)
            self.hist.stride = 1
            owners.append(self.records)
        self.owners = tuple(owners)
        self.state_members = machine.state_members + (None,) * (HSM_CODE_ROWS - n_s)
        self.member = tables.member
        self.codec = machine.codec
        self.event_enum, self.state_enum = machine.Event, machine.State
        self.event_codes = dict(machine.codec.event_codes)
        self.state_codes = dict(machine.codec.state_codes)
        self.core.timers = NULL
        self.timer_buf = None

    cdef start_timers(self, int64_t now):
        """Give the tables a clock at ``now`` and the instance's timer columns, with the timers
        of the initial states armed (the instance's ``open``). Called once, by the instance
        whose tables these are."""
        timers, tables = self.machine.timers, self.machine.engine_tables
        cdef Py_ssize_t n = timers.n_timers
        sink = _sink_array()
        transitions = sink[HSM_CODE_ROWS:HSM_CODE_ROWS * (1 + self.n_events)]
        if self.transitions != NULL:  # the instance's own counts (owners[1]: no history here)
            transitions = self.owners[1]
        bind_core(&self.core, tables, transitions.reshape(HSM_CODE_ROWS, self.n_events), None,
                  self.flag_bits)
        self.core.counts = <int64_t*>_address(sink)
        self.core.trace = NULL
        self.core.hist = NULL
        self.core.capacity = 1
        self.timer_buf = buf = np.empty(2 * n + 3, dtype=np.int64)
        bind_timers(&self.core, &self.tm, timers,
                    {"deadlines": buf[:n].reshape(n, 1), "clock": buf[n:n + 2],
                     "timer_blocks": buf[n + 2:n + 3], "skipped": buf[n + 3:]}, now)
        hsm_timers_open(&self.tm, 0)

    cdef inline HsmCore* one_slot(self, MachineInstance inst):
        """The one-slot core over ``inst``'s state, flags and unhandled counter."""
        self.core.states = &inst._state
        self.core.flags = &inst._flags
        self.core.unhandled = &inst._unhandled
        return &self.core


# The shared _InstanceTables of each machine, by id(machine): an entry lives as long as some
# instance uses it (its machine cannot die before it, so the id is not reused meanwhile). Nothing
# is written onto the (immutable) machine. The last one looked up is kept for the next call.
cdef object _shared = weakref.WeakValueDictionary()
cdef _InstanceTables _last_shared = None


cdef _InstanceTables _shared_tables(object machine):
    """The machine's shared _InstanceTables (no transition counts)."""
    global _last_shared
    if _last_shared is not None and _last_shared.machine is machine:
        return _last_shared
    tables = _shared.get(id(machine))
    if tables is None or (<_InstanceTables>tables).machine is not machine:
        tables = _InstanceTables(machine, False)
        _shared[id(machine)] = tables
    _last_shared = <_InstanceTables>tables
    return _last_shared


cdef class MachineInstance:
    """One instance of a compiled machine (the single-stream counterpart of MachineTable).

    An instance holds only its state code, its unhandled-event counter and a reference to the
    machine-level tables shared by every instance of the machine (56 bytes in CPython 3.11).
    An instance of a machine with timers (or history records) keeps the same 56 bytes and gets
    a small object of its own beside them: its clock (:attr:`now_ns`) and its deadlines; the
    timers of the initial states are armed at construction, :meth:`dispatch` arms and cancels
    at the clock, :meth:`advance` moves it and fires what is due.

    Args:
        machine: a :class:`~streamhsm.compiler.CompiledMachine`.
        count_transitions: also count the transitions this instance takes per (state, event)
            (:attr:`transition_counts`); costs a private int64 array of one row per state code.
        now_ns: the clock's start (machines with timers; any other value than 0 for a machine
            without timers is a ``ValueError``).
    """

    # 8 + 8 + 2 bytes after the object header: the machine-level object, the unhandled counter,
    # the state code and the flag bitmask (no per-instance tables: occupancy of a single instance
    # is its state).
    cdef _InstanceTables _tables
    cdef uint64_t _unhandled
    cdef uint8_t _state
    cdef uint8_t _flags

    def __init__(self, machine, *, count_transitions=False, now_ns=0):
        self._bind(machine, count_transitions, now_ns)

    def _bind(self, machine, count_transitions, now_ns=0):
        """``__init__`` as a plain method: subclasses with their own ``__init__`` call this (a call
        through the ``__init__`` slot wrapper costs several times more)."""
        if self._tables is not None:
            raise RuntimeError("MachineInstance.__init__ called twice")
        cdef _InstanceTables tables = _last_shared
        cdef int64_t now = 0
        # The common case first (StreamLifecycle() per stream): the machine of the last shared
        # tables, no counts, the clock at 0. Those tables exist only for a machine that passed
        # every check below (a CompiledMachine without timers or history records), so none is
        # repeated: checking again cost construction 125 -> 200 ns (docs/performance.md).
        if (tables is not None and tables.machine is machine and count_transitions is False
                and type(now_ns) is int and now_ns == 0):
            self._state = tables.initial_leaf
            self._tables = tables
            return
        check_machine(machine)
        timed = machine.timers is not None
        if timed or not (isinstance(now_ns, (int, np.integer)) and now_ns == 0):
            now = check_advance(machine, now_ns)  # ValueError for a machine without timers
        if count_transitions is False and not machine.engine_tables.n_owners and not timed:
            tables = _shared_tables(machine)
        elif count_transitions is False:
            tables = _InstanceTables(machine, False)  # its own records
        elif count_transitions is True:
            tables = _InstanceTables(machine, True)
        else:
            raise TypeError(f"count_transitions must be a bool, got "
                            f"{type(count_transitions).__name__} {count_transitions!r}")
        self._state = tables.initial_leaf
        if timed:
            tables.start_timers(now)
        self._tables = tables

    @property
    def machine(self):
        """The :class:`~streamhsm.compiler.CompiledMachine` (None before ``__init__``)."""
        return None if self._tables is None else self._tables.machine

    def dispatch(self, event):
        """Dispatch one event; return True if some state handled it, False if it went unhandled
        (counted in :attr:`unhandled`, state unchanged).

        Raises:
            ValueError: unknown event code or name.
            TypeError: ``event`` has the wrong type.
        """
        cdef _InstanceTables k = self._tables
        if k is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef Py_ssize_t e = fast_code(event, k.event_enum, k.n_events, k.event_codes, k.codec, True)
        if k.core.timers != NULL:  # the table kernel: the cell also arms and cancels timers
            return hsm_apply_timed(k.one_slot(self), 0, e) == 0
        cdef Py_ssize_t idx = (((<Py_ssize_t>self._state << k.flag_bits) | self._flags)
                               * k.n_events + e)
        cdef uint8_t what = k.kind[idx]
        cdef int64_t* t
        if what == HSM_KIND_INTERNAL:
            return True
        if what == HSM_KIND_UNHANDLED:
            self._unhandled += self._unhandled < <uint64_t>INT64_MAX  # saturates at 2**63-1
            return False
        if k.transitions != NULL:
            t = &k.transitions[<Py_ssize_t>self._state * k.n_events + e]
            t[0] += t[0] != INT64_MAX  # saturates at 2**63-1
        if what == HSM_KIND_HISTORY:
            self._state = hsm_history_run(&k.hist, 0, idx, k.flag_bits, self._flags)
        else:
            self._state = k.next_state[idx]
        return True

    def advance(self, now_ns, out=None):
        """Move the clock to ``now_ns`` and fire every due timer in deadline order (ties in
        declaration order), each dispatched with the clock at its deadline, until none is due;
        return the number fired (handled or not). ``out``: a preallocated 1-D
        ``FIRED_DTYPE`` array receiving the first ``len(out)`` (slot 0; nothing is allocated).
        As :meth:`MachineTable.advance <streamhsm.MachineTable.advance>`, for one slot.

        Raises:
            ValueError: the machine has no timers, ``now_ns`` is before the clock or too large,
                a bad ``out`` (nothing changes).
            TypeError: ``now_ns`` is not an int, ``out`` not an array.
        """
        cdef _InstanceTables k = self._tables
        if k is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef int64_t now = check_advance(k.machine, now_ns)
        cdef Py_ssize_t addr = 0, n_out = 0
        if out is not None:
            addr, n_out = check_fired_out(out)
        if now < k.tm.clock[0]:
            raise ValueError(f"now_ns {now} is before the instance's clock {k.tm.clock[0]}: "
                             f"time does not go backwards")
        return hsm_advance(k.one_slot(self), now, <HsmFired*>addr, n_out)

    @property
    def now_ns(self):
        """The instance's clock (ns; None without timers): what dispatching arms timers from."""
        cdef _InstanceTables k = self._tables
        return None if k is None or k.core.timers == NULL else k.tm.clock[0]

    def deadlines(self, name):
        """The deadline of timer ``name`` (ns; ``NEVER``: not armed).

        Raises:
            TypeError / ValueError: not a str, or no timer of the machine.
        """
        cdef _InstanceTables k = self._tables
        if k is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        return k.tm.deadlines[<Py_ssize_t>timer_index(k.machine, name)]

    @property
    def skipped_periods(self):
        """Periods each timer skipped (an advance fires a periodic timer at most once); ``()``
        without timers."""
        cdef _InstanceTables k = self._tables
        if k is None or k.core.timers == NULL:
            return ()
        return tuple(k.tm.skipped[i] for i in range(k.tm.n_timers))

    def history(self, owner):
        """The name of the leaf recorded for history owner ``owner`` (a state that keeps a
        record: see ``machine.history_owners``), or None if it has none (never exited, or
        cleared by a final state).

        Raises:
            TypeError / ValueError: not a state of the machine, or one that keeps no record.
        """
        cdef _InstanceTables k = self._tables
        if k is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef Py_ssize_t i = k.machine.history_owner(owner)
        cdef uint8_t leaf = k.hist.records[i]
        return None if leaf == HSM_FREE_SLOT else k.machine.state_names[leaf]

    def set_flag(self, name, value):
        """Set (``value`` True) or clear flag ``name``; dispatching never changes flags.

        Raises:
            ValueError: the machine has no flag ``name``.
            TypeError: ``value`` is not a bool or ``name`` not a str.
        """
        if self._tables is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef int bit = self._tables.machine.flag_bit(name)
        cdef uint8_t on = flag_value(value)
        self._flags = (self._flags & ~(1 << bit)) | (on << bit)

    def flag(self, name):
        """True if flag ``name`` is set (all flags start False)."""
        if self._tables is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        return bool(self._flags >> self._tables.machine.flag_bit(name) & 1)

    @property
    def flags(self):
        """The flag bitmask (bit ``i`` is the machine's ``flag_names[i]``)."""
        return self._flags

    @property
    def current(self):
        """The current leaf state (a ``State`` member)."""
        if self._tables is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        return self._tables.state_members[self._state]

    @property
    def unhandled(self):
        """Number of events this instance left unhandled."""
        return self._unhandled

    @property
    def transition_counts(self):
        """Read-only ``(n_states, n_events)`` int64 view of the transitions this instance took per
        (leaf state, event), or None unless it was created with ``count_transitions=True``."""
        return None if self._tables is None else self._tables.transitions_view

    def is_in(self, state):
        """True if the current state is ``state`` or one of its descendants (``is_in(Root)`` is
        always True)."""
        if self._tables is None:
            raise RuntimeError("MachineInstance is not initialised (call __init__)")
        cdef Py_ssize_t code = fast_code(state, self._tables.state_enum, self._tables.n_states,
                                         self._tables.state_codes, self._tables.codec, False)
        return bool(self._tables.member[code, self._state])

    def __repr__(self):
        if self._tables is None:
            return f"<{type(self).__name__} (uninitialised)>"
        return f"<{type(self).__name__} {self.current!r} unhandled={self._unhandled}>"
