"""MachineInstance: one instance of a compiled machine (the single-stream counterpart of
MachineTable).

Private module: users import :class:`streamhsm.MachineInstance` (or
:class:`streamhsm.StreamLifecycle`). An instance reads the machine's tables (built and read-only in
``machine.engine_tables``) through pointers held by a machine-level object shared by every
instance of the machine.
"""
cimport cython
from libc.stdint cimport INT64_MAX, uint8_t, int32_t, int64_t, uint32_t, uint64_t, uintptr_t

from streamhsm._checks cimport fast_code, flag_value
from streamhsm._kernel cimport (
    HSM_CODE_ROWS, HSM_FREE_SLOT, HSM_KIND_HISTORY, HSM_KIND_INTERNAL, HSM_KIND_UNHANDLED,
    HsmHistory, hsm_history_run,
)

import weakref

import numpy as np

from ._views import readonly_view
from .compiler import check_machine

__all__ = ["MachineInstance"]


cdef inline uintptr_t _address(object arr):
    """Address of the first element of a C-contiguous numpy array (kept alive by the caller)."""
    return <uintptr_t>arr.__array_interface__["data"][0]


@cython.final
cdef class _InstanceTables:
    """The machine-level part of :class:`MachineInstance`: borrowed pointers into the machine's
    padded tables, its codec and state members; optionally an instance's own transition counts.
    A machine with history records gives every instance tables of its own, holding the
    instance's records (``hist``)."""
    cdef readonly object machine
    cdef const uint8_t* next_state     # the machine's tables (rows as in _kernel.pxd)
    cdef const uint8_t* kind
    cdef int64_t* transitions          # NULL unless per-instance transition counts were asked for
    cdef Py_ssize_t n_events, n_states
    cdef int flag_bits                 # number of flags of the machine
    cdef object owners                 # the arrays the pointers point into
    cdef object state_members          # tuple: code -> State member
    cdef object member                 # bool [n_states, HSM_CODE_ROWS]: is code under state
    cdef object codec                  # the machine's MachineCodec (names, enums, errors)
    cdef object event_enum, state_enum
    cdef dict event_codes, state_codes    # name -> code
    cdef object transitions_view       # read-only (n_states, n_events) view, or None
    cdef HsmHistory hist               # history programs and this instance's records (stride 1)
    cdef object records                # uint8 (n_owners,) or None without history
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

    Args:
        machine: a :class:`~streamhsm.compiler.CompiledMachine`.
        count_transitions: also count the transitions this instance takes per (state, event)
            (:attr:`transition_counts`); costs a private int64 array of one row per state code.
    """

    # 8 + 8 + 2 bytes after the object header: the machine-level object, the unhandled counter,
    # the state code and the flag bitmask (no per-instance tables: occupancy of a single instance
    # is its state).
    cdef _InstanceTables _tables
    cdef uint64_t _unhandled
    cdef uint8_t _state
    cdef uint8_t _flags

    def __init__(self, machine, *, count_transitions=False):
        self._bind(machine, count_transitions)

    def _bind(self, machine, count_transitions):
        """``__init__`` as a plain method: subclasses with their own ``__init__`` call this (a call
        through the ``__init__`` slot wrapper costs several times more)."""
        if self._tables is not None:
            raise RuntimeError("MachineInstance.__init__ called twice")
        cdef _InstanceTables tables
        check_machine(machine)
        if count_transitions is False and not machine.engine_tables.n_owners:
            tables = _shared_tables(machine)
        elif count_transitions is False:
            tables = _InstanceTables(machine, False)  # its own records
        elif count_transitions is True:
            tables = _InstanceTables(machine, True)
        else:
            raise TypeError(f"count_transitions must be a bool, got "
                            f"{type(count_transitions).__name__} {count_transitions!r}")
        self._state = machine.initial_leaf
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
