"""Test-only hooks into MachineTable's batch lock (not part of the API; the test suite uses them).

:func:`pause_batches` makes every batch (``dispatch_many``, ``broadcast``) that starts from then on
stop after validating its input (a ``dispatch_many`` batch validated as it runs: before it runs),
holding the table lock with the GIL released, until :func:`resume_batches`: tests interleave
threads with it deterministically. It works through the
table's batch hook pointer, which nothing else sets, so a release build's batch path only tests a
NULL pointer.
"""
from cpython.pythread cimport (
    WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_release_lock, PyThread_type_lock,
)

from streamhsm._table cimport MachineTable

__all__ = ["at_gate", "busy", "pause_batches", "resume_batches", "waiters"]


ctypedef struct _GateState:
    PyThread_type_lock lock    # held while batches are paused
    int at_gate                # 1 while a batch waits at the gate


cdef class _Gate:
    """The gate of one table: its state (what the hook sees) and whether it is paused."""
    cdef _GateState state
    cdef int paused

    def __cinit__(self):
        self.state.lock = PyThread_allocate_lock()
        if self.state.lock == NULL:
            raise MemoryError("cannot allocate the test gate")
        self.state.at_gate = 0
        self.paused = 0

    def __dealloc__(self):
        if self.state.lock != NULL:
            if self.paused:
                PyThread_release_lock(self.state.lock)
            PyThread_free_lock(self.state.lock)


cdef void _pass_gate(void* arg) noexcept nogil:
    """The batch hook: wait until the gate is open."""
    cdef _GateState* g = <_GateState*>arg
    g.at_gate = 1
    PyThread_acquire_lock(g.lock, WAIT_LOCK)
    PyThread_release_lock(g.lock)
    g.at_gate = 0


cdef _Gate _gate(MachineTable t):
    cdef _Gate g
    if t._batch_hook_owner is None:
        g = _Gate()
        t._batch_hook_owner = g
        t._batch_hook_arg = <void*>&g.state
        t._batch_hook = _pass_gate
    return <_Gate>t._batch_hook_owner


def pause_batches(MachineTable t not None):
    """Batches of ``t`` that start from now on stop after validating their input (table lock
    held, GIL released) until :func:`resume_batches`."""
    cdef _Gate g = _gate(t)
    if g.paused:
        raise RuntimeError("batches are already paused")
    PyThread_acquire_lock(g.state.lock, WAIT_LOCK)
    g.paused = 1


def resume_batches(MachineTable t not None):
    """Let the paused batches of ``t`` run (see :func:`pause_batches`)."""
    cdef _Gate g = _gate(t)
    if not g.paused:
        raise RuntimeError("batches are not paused")
    g.paused = 0
    PyThread_release_lock(g.state.lock)


def at_gate(MachineTable t not None):
    """True while a paused batch of ``t`` waits (validated, lock held, GIL released)."""
    return t._batch_hook_owner is not None and bool((<_Gate>t._batch_hook_owner).state.at_gate)


def busy(MachineTable t not None):
    """True while a batch (or a mutator that waited for one) holds the lock of ``t``."""
    return bool(t._busy)


def waiters(MachineTable t not None):
    """Number of threads waiting for the lock of ``t``."""
    return t._waiters
