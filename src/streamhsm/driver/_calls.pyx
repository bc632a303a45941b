"""The driver's hot entry points: single calls with one call into the core, and batches.

Private module: :class:`DriverBase` is the base class of :class:`streamhsm.driver.Driver`. It
holds what every hot call reads (the core, the clock, the closed and running flags) as C fields,
and implements

- ``keepalive``, ``detach`` and ``attach`` for the common call: exact ``int`` arguments (a
  ``Role`` member for the role, a ``bool`` for ``create``), an open and running driver, a valid
  time. Such a call converts its arguments in C, makes one call into the core and answers with a
  cached or cheaply built result. Every other call (other argument types, optional filters, a bad
  time, a closed or draining driver, a rare answer that needs a message) goes to the Python
  implementation in ``control.py`` (``_keepalive_slow`` ...), which converts every argument before
  it looks anything up, so both paths answer alike;
- the vectorised control plane ``keepalive_many``, ``detach_many`` and ``attach_many``: arguments
  validated once at the boundary, then one loop without the GIL under both tables' batch locks,
  applying the single calls' rules row by row in array order.

Unsafe directives are set in ``setup.py``, never here.
"""
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject_GenericSetAttr

cdef extern from "Python.h":
    ctypedef struct PyObject
    ctypedef struct PyTypeObject:
        PyObject* (*tp_alloc)(PyTypeObject*, Py_ssize_t) except NULL
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    void PyObject_GC_UnTrack(object) noexcept
    void Py_INCREF(object) noexcept
    void Py_DECREF_raw "Py_DECREF"(PyObject*) noexcept

cdef extern from "structmember.h":
    int T_OBJECT_EX
from libc.stdint cimport int64_t, uint8_t, uintptr_t

from streamhsm.capi cimport (
    STREAMHSM_PREFETCH, hsm_next_due, hsm_now, hsm_prefetch_state, hsm_step_each,
)
from streamhsm.driver._core cimport DriverCore, ONE_ENDED, ONE_EPOCH_MAX, ONE_UNKNOWN
from streamhsm.driver._idmap cimport IdMap, idmap_home, idmap_lookup_from

from types import MemberDescriptorType

import numpy as np

from ..errors import DriverClosedError
from ._args import plain_int
from ._core import EPOCH_MAX
from .protocol import (
    ATTACH_RESULT_DTYPE,
    LEASE_RESULT_DTYPE,
    REFUSALS,
    AttachResult,
    BatchReason,
    Counter,
    Response,
    ResponseCode,
    Role,
)

__all__ = ["DriverBase"]

ctypedef struct LeaseRow:      # LEASE_RESULT_DTYPE
    uint8_t code
    uint8_t reason
    int64_t epoch
    int64_t expiry_ns

ctypedef struct AttachRow:     # ATTACH_RESULT_DTYPE
    uint8_t code
    uint8_t reason
    int64_t lease_id
    int64_t epoch
    int64_t expiry_ns

ctypedef struct AttachRequest:  # ATTACH_REQUEST_DTYPE
    int64_t stream_id
    uint8_t role
    int64_t client_id
    uint8_t create

cdef uint8_t OK = ResponseCode.OK
cdef uint8_t REJECTED = ResponseCode.REJECTED
cdef uint8_t INVALID = ResponseCode.INVALID_PARAMS
cdef uint8_t B_UNKNOWN = BatchReason.UNKNOWN_LEASE
cdef uint8_t B_ENDED = BatchReason.LEASE_ENDED
cdef uint8_t B_EPOCH = BatchReason.EPOCH_AT_MAXIMUM
cdef uint8_t B_DRAINING = BatchReason.DRIVER_DRAINING
cdef uint8_t B_STOPPED = BatchReason.DRIVER_STOPPED
cdef int P_ROLE = BatchReason.ROLE
cdef int P_STREAM_ID = BatchReason.STREAM_ID
cdef int P_CLIENT_ID = BatchReason.CLIENT_ID
cdef int P_OUTSIDE = BatchReason.OUTSIDE_DYNAMIC_RANGE
cdef int PRODUCER = Role.PRODUCER
cdef Py_ssize_t C_REJECTED = Counter.ATTACHES_REJECTED
cdef Py_ssize_t C_KEEPALIVES = Counter.KEEPALIVES
cdef int CONSUMER = Role.CONSUMER
cdef object R_OK = ResponseCode.OK
cdef object R_REJECTED = ResponseCode.REJECTED
cdef object RoleType = Role
cdef object new_object = object.__new__
# Responses every caller may share (they are frozen).
cdef object UNKNOWN_LEASE = Response(ResponseCode.REJECTED, "unknown lease")
cdef object LEASE_ENDED = Response(ResponseCode.REJECTED, "lease ended")
cdef object ALREADY_ENDED = Response(ResponseCode.OK, "lease already ended")
cdef str CLOSED = ("this Driver is closed; every call on it raises (make a new one, or "
                   "Driver.load a saved snapshot)")
DEF OK_CACHE = 1024
# Rows a batch looks up together: their hash slots are prefetched, then their lease rows, so
# that the cache misses of a chunk overlap instead of following each other.
DEF CHUNK = 32


cdef inline int64_t exact_i64(object value, int64_t outside) noexcept:
    """An exact ``int`` as int64, or ``outside`` if it does not fit (no code of the caller's
    runs: the type is ``int`` itself)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    return outside if overflow else v


cdef void keepalive_rows(DriverCore core, IdMap ids, const int64_t* lids,
                         const int64_t* clients, Py_ssize_t n, int64_t expiry,
                         LeaseRow* o) noexcept nogil:
    """``o[i] = keepalive_one(lids[i], clients[i])`` (answered with ``expiry``) for every row,
    in order, a chunk at a time: first the chunk's hash homes (prefetched), then its lease slots
    (prefetched), then the keepalives. Exact: a keepalive changes no map, so a chunk's look-ups
    may run before its keepalives."""
    cdef Py_ssize_t home[CHUNK]
    cdef Py_ssize_t kept[CHUNK]
    cdef Py_ssize_t base, i, m, ls, k
    cdef int64_t lid
    for base in range(0, n, CHUNK):
        m = CHUNK if n - base > CHUNK else n - base
        for i in range(m):
            lid = lids[base + i]
            if lid > 0:
                home[i] = idmap_home(ids, lid)
                STREAMHSM_PREFETCH(&ids._slots[home[i]])
        for i in range(m):
            lid = lids[base + i]
            ls = -1
            if lid > 0 and clients[base + i] > 0:
                ls = idmap_lookup_from(ids, lid, home[i])
                if ls >= 0:
                    STREAMHSM_PREFETCH(&core.lease_client[ls])
                    STREAMHSM_PREFETCH(&core.lease_stream[ls])
                    hsm_prefetch_state(core.leases, ls)
            home[i] = ls
        k = 0
        for i in range(m):
            ls = home[i]
            if ls >= 0 and core.lease_client[ls] == clients[base + i]:
                kept[k] = ls
                k += 1
                o[base + i].code, o[base + i].reason = OK, 0
                o[base + i].epoch = core.epoch[core.lease_stream[ls]]
                o[base + i].expiry_ns = expiry
                continue
            lid = lids[base + i]
            o[base + i].code, o[base + i].epoch, o[base + i].expiry_ns = REJECTED, 0, 0
            if 0 < lid <= core.last_lease_id and ids.lookup(lid) < 0:
                o[base + i].reason = B_ENDED
            else:
                o[base + i].reason = B_UNKNOWN
        # the chunk's keepalives, in order: each restarts its lease's expiry timer
        if hsm_step_each(core.leases, kept, k, core.ev_keepalive) < 0:
            core.kernel_error = 1
        core.count(C_KEEPALIVES, k)


cdef inline int advance(DriverCore core, int64_t now) noexcept nogil:
    """``core.advance_checked(now)``, its commonest case first: ``now`` is past neither table's
    clock and before every lease deadline, so there is nothing to do (no call into the core)."""
    if (now <= hsm_now(core.leases) and now < hsm_next_due(core.leases)
            and not now > hsm_now(core.streams) >= 0):
        return 0
    return core.advance_checked(now)


# Byte offsets of AttachResult's slots, in field order (``slot_offsets``); empty if its fields
# are not plain object slots (another Python implementation): attach_result then sets them by name.
cdef Py_ssize_t RESULT_SLOTS[6]
cdef bint RESULT_DIRECT = False
RESULT_FIELDS = ("code", "lease_id", "stream_id", "epoch", "reason", "expiry_ns")


cdef bint slot_offsets(type cls, tuple names, Py_ssize_t* offsets):
    """Fill ``offsets`` with the byte offsets of ``cls``'s slots ``names``; False (offsets
    unused) unless each is a writable object slot that ``cls`` itself defines (no ``__dict__``,
    no ``__setattr__`` of its own beyond the frozen dataclass's, which this bypasses as
    ``object.__setattr__`` would)."""
    cdef PyMemberDef* m
    cdef Py_ssize_t i
    for i, name in enumerate(names):
        d = cls.__dict__.get(name)
        if type(d) is not MemberDescriptorType:
            return False
        m = (<PyMemberDescrObject*><void*>d).d_member
        if m.type != T_OBJECT_EX or m.flags != 0 or m.offset <= 0:
            return False
        offsets[i] = m.offset
    return True


RESULT_DIRECT = slot_offsets(AttachResult, RESULT_FIELDS, RESULT_SLOTS)


cdef inline void put_slot(object r, Py_ssize_t offset, object value) noexcept:
    """Store a new reference to ``value`` in the (empty) object slot at ``offset`` of ``r``."""
    Py_INCREF(value)
    (<PyObject**>(<char*><void*>r + offset))[0] = <PyObject*>value


cdef object attach_result(object code, int64_t lease_id, object stream_id, int64_t epoch,
                          str reason, object expiry):
    """``AttachResult(code, lease_id, stream_id, epoch, reason, expiry)`` without the frozen
    dataclass's ``__init__``: the instance is allocated by its type and its six slots are filled
    directly (the same object ``__init__`` builds; a quarter of the instructions of setting
    them by name, the fallback)."""
    cdef PyObject* p
    if not RESULT_DIRECT:
        r = new_object(AttachResult)
        PyObject_GenericSetAttr(r, "code", code)
        PyObject_GenericSetAttr(r, "lease_id", lease_id)
        PyObject_GenericSetAttr(r, "stream_id", stream_id)
        PyObject_GenericSetAttr(r, "epoch", epoch)
        PyObject_GenericSetAttr(r, "reason", reason)
        PyObject_GenericSetAttr(r, "expiry_ns", expiry)
    else:
        p = (<PyTypeObject*><void*>AttachResult).tp_alloc(<PyTypeObject*><void*>AttachResult, 0)
        r = <object>p          # (a second reference, given back just below)
        Py_DECREF_raw(p)
        put_slot(r, RESULT_SLOTS[0], code)
        put_slot(r, RESULT_SLOTS[1], lease_id)
        put_slot(r, RESULT_SLOTS[2], stream_id)
        put_slot(r, RESULT_SLOTS[3], epoch)
        put_slot(r, RESULT_SLOTS[4], reason)
        put_slot(r, RESULT_SLOTS[5], expiry)
    PyObject_GC_UnTrack(r)  # it holds ints, a str and an enum member: it cannot be in a cycle
    return r


cdef class DriverBase:
    """Base class of :class:`~streamhsm.driver.Driver`: its hot entry points (see the module
    docstring). Not for direct use."""
    cdef public DriverCore _core
    cdef public bint _closed
    cdef public int64_t _now_ns
    cdef public int64_t _max_time_ns
    cdef public int64_t _expiry_ns
    cdef public bint _running
    cdef list _ok_cache
    cdef int64_t _ok_epoch[OK_CACHE]
    cdef list _aliases  # (start, end) addresses of the arrays the driver owns
    cdef object _expiry_int  # the int of the last expiry answered, and its value
    cdef int64_t _expiry_at

    def __cinit__(self, *args, **kwargs):
        cdef Py_ssize_t i
        self._ok_cache = [None] * OK_CACHE
        for i in range(OK_CACHE):
            self._ok_epoch[i] = -1
        self._aliases = []

    def _own_arrays(self, arrays):
        """Record the arrays the driver owns (the core's columns, the tables' arrays): a batch
        argument that overlaps one is copied before the batch runs."""
        self._aliases = [(<uintptr_t>a.__array_interface__["data"][0],
                          <uintptr_t>a.__array_interface__["data"][0] + a.nbytes)
                         for a in arrays if a.nbytes]

    cdef inline object ok(self, int64_t epoch):
        """``Response(OK, "", epoch)``, cached per epoch (a direct-mapped cache: one load and
        one compare when the epoch was seen before)."""
        cdef Py_ssize_t i = epoch & (OK_CACHE - 1)
        if self._ok_epoch[i] != epoch:
            return self.ok_new(epoch, i)
        return self._ok_cache[i]

    cdef object ok_new(self, int64_t epoch, Py_ssize_t i):
        """:meth:`ok` for an epoch not in the cache: build its answer into entry ``i``."""
        self._ok_cache[i] = Response(R_OK, "", epoch)
        self._ok_epoch[i] = epoch
        return self._ok_cache[i]

    cdef inline object expiry_int(self, int64_t expiry):
        """``expiry`` as an int, the last one reused: the attaches of a burst at one time share
        it (one allocation fewer per attach)."""
        if expiry != self._expiry_at or self._expiry_int is None:
            self._expiry_int = expiry
            self._expiry_at = expiry
        return self._expiry_int

    cdef inline bint fast_now(self, object now_ns, int64_t* now) noexcept:
        """True (and the time in ``now``) if ``now_ns`` is an exact int the driver accepts now
        and the driver is open (the slow path raises the right error otherwise)."""
        if type(now_ns) is not int or self._closed or self._core is None:
            return False
        now[0] = exact_i64(now_ns, -1)
        return self._now_ns <= now[0] <= self._max_time_ns

    cdef inline bint still_now(self, int64_t now) noexcept:
        """After a wait for a batch (``wait_idle``): True if the driver is still open and ``now``
        still not earlier than its clock (another thread may have closed it or moved the clock
        meanwhile; the slow path then raises the right error). The GIL is held from here to the
        commit, so the check and the commit see the same clock."""
        return not self._closed and self._now_ns <= now

    @property
    def max_time_ns(self):
        """The largest ``now_ns`` any call accepts (:attr:`DriverConfig.max_time_ns`: the
        largest time whose lease expiry and shutdown deadline still fit in int64)."""
        return self._max_time_ns

    # ------------------------------------------------------------------ overridden by Driver
    def _keepalive_slow(self, lease_id, now_ns, client_id, stream_id, role):
        """:meth:`keepalive` for every call its fast path does not take (``Driver``'s)."""
        raise NotImplementedError

    def _detach_slow(self, lease_id, now_ns, client_id, stream_id, role):
        """:meth:`detach` for every call its fast path does not take (``Driver``'s)."""
        raise NotImplementedError

    def _attach_slow(self, stream_id, role, client_id, now_ns, create=False):
        """:meth:`attach` for every call its fast path does not take (``Driver``'s)."""
        raise NotImplementedError

    def _refused(self, refusal, sid, role, client):
        """The answer to an attach the core refused (``Driver``'s)."""
        raise NotImplementedError

    def _draining(self):
        """True while the driver drains (``Driver``'s)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ single calls
    def keepalive(self, lease_id, now_ns, *, client_id, stream_id=None, role=None):
        """Extend a live lease's expiry to ``now + interval * grace``.

        Only the lease's own client may keep it alive (``client_id``; with ``stream_id`` and
        ``role`` given, they must match too). A lease held by another client answers exactly like
        an unknown lease. Works while draining.

        Returns OK with the stream's epoch, REJECTED "lease ended" for a lease that ended, or
        REJECTED "unknown lease".

        Raises:
            TypeError: an argument has the wrong Python type.
            ValueError: ``now_ns`` is out of range or earlier than a time already seen.
            DriverClosedError: the driver is closed.
        """
        cdef int64_t now, r
        cdef DriverCore core
        if (type(lease_id) is int and type(client_id) is int and stream_id is None
                and role is None and self.fast_now(now_ns, &now)):
            core = self._core
            core.wait_idle()
            if not self.still_now(now) or advance(core, now) < 0:
                return self._keepalive_slow(lease_id, now_ns, client_id, stream_id, role)
            r = core.keepalive_one(exact_i64(lease_id, -1), exact_i64(client_id, 0))
            self._now_ns = now
            if core.kernel_error:
                core.raise_kernel_error()
            if r >= 0:
                return self.ok(r)
            return LEASE_ENDED if r == ONE_ENDED else UNKNOWN_LEASE
        return self._keepalive_slow(lease_id, now_ns, client_id, stream_id, role)

    def detach(self, lease_id, now_ns, *, client_id, stream_id=None, role=None):
        """End a lease at its client's request; idempotent.

        Only the lease's own client may detach it (``client_id``; with ``stream_id`` and ``role``
        given, they must match too); a live lease held by another client answers exactly like an
        unknown lease. Returns OK with the stream's epoch afterwards, OK "lease already ended" for
        a lease that already ended, REJECTED "unknown lease", or REJECTED (nothing changed, not
        even the clock) for a producer's lease whose stream's epoch is at ``EPOCH_MAX``.

        Raises:
            TypeError: an argument has the wrong Python type.
            ValueError: ``now_ns`` is out of range or earlier than a time already seen.
            DriverClosedError: the driver is closed.
        """
        cdef int64_t now, r
        cdef DriverCore core
        if (type(lease_id) is int and type(client_id) is int and stream_id is None
                and role is None and self.fast_now(now_ns, &now)):
            core = self._core
            core.wait_idle()
            if not self.still_now(now) or advance(core, now) < 0:
                return self._detach_slow(lease_id, now_ns, client_id, stream_id, role)
            r = core.detach_one(exact_i64(lease_id, -1), exact_i64(client_id, 0), now)
            if core.kernel_error:
                core.raise_kernel_error()
            if r != ONE_EPOCH_MAX:  # (that answer needs a message: the slow path builds it)
                self._now_ns = now
                if r >= 0:
                    return self.ok(r)
                return ALREADY_ENDED if r == ONE_ENDED else UNKNOWN_LEASE
        return self._detach_slow(lease_id, now_ns, client_id, stream_id, role)

    def attach(self, stream_id, role, client_id, now_ns, create=False):
        """Grant a lease on a stream to a client.

        Rules: at most one producer per stream; a client id holds at most one live lease; a missing
        stream is created only if dynamic streams are allowed, the id is in the dynamic range and
        ``create`` is True; while the driver drains or after it stopped every attach is REJECTED.
        Everything is validated before anything is created, so a rejected attach changes nothing
        but the ``attaches_rejected`` counter (and the driver's clock).

        Returns:
            An :class:`AttachResult`; on OK it carries the new lease id, the stream's epoch and
            the lease's expiry time.

        Raises:
            TypeError: an argument has the wrong Python type.
            ValueError: ``now_ns`` is out of range or earlier than a time already seen.
            DriverClosedError: the driver is closed.
        """
        cdef int64_t now, sid, lid, expiry
        cdef Py_ssize_t slot
        cdef int code
        cdef DriverCore core
        cdef type kind = type(role)
        if (type(stream_id) is int and type(client_id) is int and (kind is int or kind is RoleType)
                and (create is True or create is False) and self._running
                and self.fast_now(now_ns, &now)):
            code = <int>exact_i64(role, -1)
            if code != PRODUCER and code != CONSUMER:
                code = -1
            core = self._core
            sid = exact_i64(stream_id, -1)
            expiry = now + self._expiry_ns
            core.wait_idle()
            if not (self._running and self.still_now(now)) or advance(core, now) < 0:
                return self._attach_slow(stream_id, role, client_id, now_ns, create)
            lid = core.attach_one(sid, code, exact_i64(client_id, 0), create is True, &slot)
            self._now_ns = now
            if core.kernel_error:
                core.raise_kernel_error()
            if lid > 0:
                return attach_result(R_OK, lid, stream_id, core.epoch[slot], "",
                                     self.expiry_int(expiry))
            refusal = REFUSALS[-lid]
            if "{" not in refusal[1]:  # a constant reason: no formatting
                return attach_result(refusal[0], 0, stream_id, 0, refusal[1], 0)
            return self._refused(-lid, stream_id, role, client_id)
        return self._attach_slow(stream_id, role, client_id, now_ns, create)

    # ------------------------------------------------------------------ batches
    cdef int64_t batch_now(self, object now_ns) except -1:
        """Convert and check a batch's time (the driver checked open afterwards)."""
        cdef object now = plain_int("now_ns", now_ns)
        if self._closed:
            raise DriverClosedError(CLOSED)
        if not 0 <= now <= self._max_time_ns:
            raise ValueError(f"now_ns must be between 0 and {self._max_time_ns}, got {now}")
        if now < self._now_ns:
            raise ValueError(f"now_ns went backwards: {now} < {self._now_ns}")
        return now

    cdef int batch_locked(self, int64_t now) except -1:
        """``batch_now``'s checks again, once the batch holds both tables' batch locks (GIL held):
        while it waited for them another thread may have closed the driver or accepted a later
        time. Then commit the batch's time, before its rows run, so that the clock never goes
        backwards and a later call's rows never run before an earlier time's."""
        if self._closed:
            raise DriverClosedError(CLOSED)
        if now < self._now_ns:
            raise ValueError(f"now_ns went backwards: {now} < {self._now_ns}")
        self._now_ns = now
        return 0

    cdef int batch_advance(self, int64_t now, int64_t before) except -1:
        """After ``batch_locked``: move the lease table's clock to the batch's time (ending the
        leases expired before it), or, if one of them cannot end (a producer's whose stream's
        epoch is at ``EPOCH_MAX``), put the driver's clock back to ``before`` and raise
        OverflowError with nothing changed."""
        cdef DriverCore core = self._core
        if core.advance_checked(now) < 0:
            self._now_ns = before
            raise OverflowError(
                f"the epoch of stream {core.first_blocked_end(True, now)} is at its maximum "
                f"{EPOCH_MAX}: the lease of its producer cannot end; nothing was changed")
        return 0

    cdef bint overlaps(self, const void* p, Py_ssize_t nbytes, tuple out_span):
        """True if ``nbytes`` at ``p`` overlap ``out_span`` or an array the driver owns."""
        cdef uintptr_t start = <uintptr_t>p, end = start + <uintptr_t>nbytes
        if nbytes == 0:
            return False
        if out_span is not None and start < <uintptr_t>out_span[1] and <uintptr_t>out_span[0] < end:
            return True
        for lo, hi in self._aliases:
            if start < <uintptr_t>hi and <uintptr_t>lo < end:
                return True
        return False

    cdef object i64_column(self, str name, object arr, tuple out_span):
        """``arr`` as a 1-D C-contiguous int64 buffer (its buffer decides, not its attributes),
        copied if it overlaps ``out`` or an array the driver owns."""
        cdef const int64_t[::1] v
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a 1-D numpy array of int64, got {type(arr).__name__}")
        try:
            v = arr
        except ValueError as e:
            raise (TypeError if "dtype" in str(e) else ValueError)(
                f"{name} must be a 1-D C-contiguous int64 array: {e}") from None
        if v.shape[0] and self.overlaps(&v[0], v.shape[0] * 8, out_span):
            return np.array(arr, dtype=np.int64, copy=True)
        return arr

    cdef object requests_column(self, object arr, tuple out_span):
        cdef const AttachRequest[::1] v
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"requests must be a 1-D numpy array of ATTACH_REQUEST_DTYPE, got "
                            f"{type(arr).__name__}")
        try:
            v = arr
        except ValueError as e:
            raise (TypeError if "dtype" in str(e) else ValueError)(
                f"requests must be a 1-D C-contiguous ATTACH_REQUEST_DTYPE array: {e}") from None
        if v.shape[0] and self.overlaps(&v[0], v.shape[0] * sizeof(AttachRequest), out_span):
            return np.array(arr, copy=True)
        return arr

    cdef object out_rows(self, object out, object dtype, str name, Py_ssize_t n):
        """A new ``dtype`` array of ``n`` rows, or ``out`` checked (exact numpy array, writeable,
        1-D, C-contiguous, that dtype, at least ``n`` rows)."""
        if out is None:
            return np.zeros(n, dtype)
        if type(out) is not np.ndarray:
            raise TypeError(f"out must be a numpy array of {name} (not a subclass), got "
                            f"{type(out).__name__}")
        if out.dtype != dtype or out.ndim != 1 or not out.flags.c_contiguous:
            raise TypeError(f"out must be a 1-D C-contiguous array of {name}, got {out.dtype} "
                            f"with shape {out.shape}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        if out.shape[0] < n:
            raise ValueError(f"out holds {out.shape[0]} rows, the batch has {n}")
        return out

    cdef tuple out_span(self, const uint8_t* start, Py_ssize_t nbytes):
        if nbytes == 0:
            return None
        return (<uintptr_t>start, <uintptr_t>start + <uintptr_t>nbytes)

    def keepalive_many(self, lease_ids, now_ns, *, client_ids, out=None):
        """:meth:`keepalive` for many leases at once: row ``i`` keeps lease ``lease_ids[i]`` of
        client ``client_ids[i]`` alive, in array order, with the single call's rules, answers
        and counters (an unknown lease, or one held by another client, answers REJECTED
        ``UNKNOWN_LEASE``; an ended one REJECTED ``LEASE_ENDED``).

        Args:
            lease_ids: a 1-D C-contiguous int64 array (copied first if it overlaps ``out`` or
                the driver's own arrays).
            client_ids: the same, one client id per lease id.
            now_ns: the time of every request (checked once, like the single call's).
            out: optional ``LEASE_RESULT_DTYPE`` array with at least as many rows; with it
                nothing is allocated.

        Returns:
            ``LEASE_RESULT_DTYPE`` rows (``code``, ``reason`` a :class:`BatchReason`, ``epoch``,
            ``expiry_ns``): ``out`` itself if its length matches, else a view of its first rows.

        Raises:
            TypeError / ValueError: a bad array, length, ``out`` or time (nothing changed).
            DriverClosedError: the driver is closed.
        """
        return self._lease_batch(lease_ids, now_ns, client_ids, out, False)

    def detach_many(self, lease_ids, now_ns, *, client_ids, out=None):
        """:meth:`detach` for many leases at once, in array order, with the single call's
        rules, answers, counters, epoch bumps, notices and idle cleanup: OK with the epoch
        afterwards, OK ``LEASE_ENDED`` (already ended), REJECTED ``UNKNOWN_LEASE``, or REJECTED
        ``EPOCH_AT_MAXIMUM`` (that row changes nothing). Arguments and result as
        :meth:`keepalive_many` (``expiry_ns`` is 0)."""
        return self._lease_batch(lease_ids, now_ns, client_ids, out, True)

    cdef object _lease_batch(self, object lease_ids, object now_ns, object client_ids,
                             object out, bint detach):
        cdef int64_t now = self.batch_now(now_ns)
        rows = self.out_rows(out, LEASE_RESULT_DTYPE, "LEASE_RESULT_DTYPE", 0)
        cdef LeaseRow[::1] o = rows
        span = None if o.shape[0] == 0 else self.out_span(<uint8_t*>&o[0],
                                                          o.shape[0] * sizeof(LeaseRow))
        cdef const int64_t[::1] lids = self.i64_column("lease_ids", lease_ids, span)
        cdef const int64_t[::1] clients = self.i64_column("client_ids", client_ids, span)
        cdef Py_ssize_t i, n = lids.shape[0]
        if clients.shape[0] != n:
            raise ValueError(f"client_ids has {clients.shape[0]} entries, lease_ids {n}")
        rows = self.out_rows(out, LEASE_RESULT_DTYPE, "LEASE_RESULT_DTYPE", n)
        if n == 0:
            return rows[:0]
        if out is None:
            o = rows
        cdef DriverCore core = self._core
        cdef int64_t r, expiry = now + self._expiry_ns
        cdef bint commit = not detach
        cdef IdMap ids = core.by_id
        cdef int64_t before
        core.streams.lock_batch()
        try:
            core.leases.lock_batch()
            try:
                before = self._now_ns
                self.batch_locked(now)
                self.batch_advance(now, before)
                with nogil:
                    if not detach:
                        keepalive_rows(core, ids, &lids[0], &clients[0], n, expiry, &o[0])
                    for i in range(n if detach else 0):
                        if detach:
                            r = core.detach_one(lids[i], clients[i], now)
                            o[i].expiry_ns = 0
                        else:
                            r = core.keepalive_one(lids[i], clients[i])
                            o[i].expiry_ns = expiry if r >= 0 else 0
                        if r >= 0:
                            o[i].code, o[i].reason, o[i].epoch = OK, 0, r
                            commit = True
                        elif r == ONE_ENDED:
                            o[i].code = OK if detach else REJECTED
                            o[i].reason, o[i].epoch = B_ENDED, 0
                            commit = True
                        elif r == ONE_UNKNOWN:
                            o[i].code, o[i].reason, o[i].epoch = REJECTED, B_UNKNOWN, 0
                            commit = True
                        else:  # ONE_EPOCH_MAX: the row changes nothing, not even the clock
                            o[i].code, o[i].reason, o[i].epoch = REJECTED, B_EPOCH, 0
            finally:
                core.leases.unlock_batch()
        finally:
            core.streams.unlock_batch()
        if not commit and self._now_ns == now:  # every row EPOCH_MAX: not even the clock moved
            self._now_ns = before
        core.raise_kernel_error()
        return rows if rows.shape[0] == n else rows[:n]

    def attach_many(self, requests, now_ns, *, out=None):
        """:meth:`attach` for many requests at once, in array order, with the single call's
        rules, answers and counters; a refused row changes nothing but ``attaches_rejected``
        and never another row.

        Args:
            requests: a 1-D C-contiguous ``ATTACH_REQUEST_DTYPE`` array (``stream_id``,
                ``role`` a :class:`Role` code, ``client_id``, ``create`` 0 or 1), copied first if
                it overlaps ``out`` or the driver's own arrays.
            now_ns: the time of every request.
            out: optional ``ATTACH_RESULT_DTYPE`` array with at least as many rows.

        Returns:
            ``ATTACH_RESULT_DTYPE`` rows: ``code``, ``reason`` (a :class:`BatchReason`: the
            attach rule refused, or ``DRIVER_DRAINING`` / ``DRIVER_STOPPED``), ``lease_id``,
            ``epoch``, ``expiry_ns`` (0 when refused).
        """
        cdef int64_t now = self.batch_now(now_ns)
        rows = self.out_rows(out, ATTACH_RESULT_DTYPE, "ATTACH_RESULT_DTYPE", 0)
        cdef AttachRow[::1] o = rows
        span = None if o.shape[0] == 0 else self.out_span(<uint8_t*>&o[0],
                                                          o.shape[0] * sizeof(AttachRow))
        cdef const AttachRequest[::1] req = self.requests_column(requests, span)
        cdef Py_ssize_t i, n = req.shape[0]
        rows = self.out_rows(out, ATTACH_RESULT_DTYPE, "ATTACH_RESULT_DTYPE", n)
        if n == 0:
            return rows[:0]
        if out is None:
            o = rows
        cdef DriverCore core = self._core
        cdef int64_t lid, before, expiry = now + self._expiry_ns
        cdef int role, why
        cdef Py_ssize_t slot
        cdef uint8_t stopped
        core.streams.lock_batch()
        try:
            core.leases.lock_batch()
            try:
                before = self._now_ns
                self.batch_locked(now)
                self.batch_advance(now, before)
                stopped = 0 if self._running else (B_DRAINING if self._draining() else B_STOPPED)
                with nogil:
                    for i in range(n):
                        o[i].lease_id, o[i].epoch, o[i].expiry_ns = 0, 0, 0
                        if stopped:
                            core.count(C_REJECTED, 1)
                            o[i].code, o[i].reason = REJECTED, stopped
                            continue
                        role = req[i].role
                        lid = core.attach_one(req[i].stream_id, role, req[i].client_id,
                                              req[i].create != 0, &slot)
                        if lid > 0:
                            o[i].code, o[i].reason, o[i].lease_id = OK, 0, lid
                            o[i].epoch = core.epoch[slot]
                            o[i].expiry_ns = expiry
                        else:
                            why = <int>-lid
                            o[i].reason = <uint8_t>why
                            o[i].code = INVALID if (why == P_ROLE or why == P_STREAM_ID
                                                    or why == P_CLIENT_ID
                                                    or why == P_OUTSIDE) else REJECTED
            finally:
                core.leases.unlock_batch()
        finally:
            core.streams.unlock_batch()
        core.raise_kernel_error()
        return rows if rows.shape[0] == n else rows[:n]
