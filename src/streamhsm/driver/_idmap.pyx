"""Allocation-free registry helper for the driver: an int64 -> int64 hash map.

Private module. Unsafe directives are set in ``setup.py``, never here.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, int32_t, uint8_t

import numpy as np

__all__ = ["IdMap"]

cdef int64_t _EMPTY = -1


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    # splitmix64 finaliser: spreads sequential ids over the table
    x ^= x >> 30
    x *= <uint64_t>0xbf58476d1ce4e5b9
    x ^= x >> 27
    x *= <uint64_t>0x94d049bb133111eb
    x ^= x >> 31
    return x


cdef int64_t _key(object key) except? -2:
    if type(key) is not int and (isinstance(key, bool) or not hasattr(key, "__index__")):
        raise TypeError(f"key must be an int, got {type(key).__name__} {key!r}")
    k = key.__index__()
    if not 0 <= k < 2**63:
        raise ValueError(f"key must be between 0 and 2**63 - 1, got {k}")
    return <int64_t>k


@cython.final
cdef class IdMap:
    """A fixed-capacity map from non-negative int64 keys to int64 values.

    Open addressing with linear probing and backward-shift deletion (no tombstones), so a long
    run of puts and pops never degrades or allocates. Holds at most ``max_entries`` entries.
    """

    def __cinit__(self, max_entries):
        if type(max_entries) is not int or max_entries <= 0:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        size = 8
        while size < 2 * max_entries:
            size *= 2
        keys = np.full(size, _EMPTY, dtype=np.int64)
        vals = np.zeros(size, dtype=np.int64)
        cdef int64_t[::1] k = keys
        cdef int64_t[::1] v = vals
        self._keys = &k[0]
        self._vals = &v[0]
        self._owners = (keys, vals)
        self._mask = size - 1
        self._n = 0
        self._max = max_entries

    cdef Py_ssize_t find(self, int64_t key) noexcept nogil:
        """Index of ``key`` in the table, or -1."""
        cdef Py_ssize_t i = <Py_ssize_t>(_mix(<uint64_t>key) & <uint64_t>self._mask)
        while True:
            if self._keys[i] == key:
                return i
            if self._keys[i] == _EMPTY:
                return -1
            i = (i + 1) & self._mask

    cdef int64_t lookup(self, int64_t key) noexcept nogil:
        """Value of ``key``, or -1 if absent."""
        cdef Py_ssize_t i = self.find(key)
        return -1 if i < 0 else self._vals[i]

    def get(self, key, default=-1):
        """The value stored for ``key``, or ``default``."""
        cdef Py_ssize_t i = self.find(_key(key))
        return default if i < 0 else self._vals[i]

    def __contains__(self, key):
        return self.find(_key(key)) >= 0

    def put(self, key, value):
        """Store ``value`` for ``key`` (replacing any previous value).

        Raises:
            OverflowError: the map already holds ``max_entries`` other keys.
        """
        cdef int64_t k = _key(key)
        cdef int64_t v = value
        if self.insert(k, v) < 0:
            raise OverflowError(f"IdMap is full ({self._max} entries)")

    cdef int insert(self, int64_t key, int64_t value) noexcept nogil:
        """Store ``value`` for ``key`` (>= 0); return 0, or -1 if the map is full (unchanged)."""
        cdef Py_ssize_t i = <Py_ssize_t>(_mix(<uint64_t>key) & <uint64_t>self._mask)
        while self._keys[i] != _EMPTY and self._keys[i] != key:
            i = (i + 1) & self._mask
        if self._keys[i] == _EMPTY:
            if self._n >= self._max:
                return -1
            self._keys[i] = key
            self._n += 1
        self._vals[i] = value
        return 0

    cdef void clear(self) noexcept nogil:
        """Remove every entry."""
        cdef Py_ssize_t i
        for i in range(self._mask + 1):
            self._keys[i] = _EMPTY
        self._n = 0

    def pop(self, key, default=-1):
        """Remove ``key``; return its value, or ``default`` if it was absent."""
        cdef int64_t k = _key(key)
        if self.find(k) < 0:
            return default
        return self.remove(k)

    cdef int64_t remove(self, int64_t key) noexcept nogil:
        """Remove ``key`` and return its value, or -1 if it was absent."""
        cdef Py_ssize_t i = self.find(key)
        cdef Py_ssize_t j, home
        cdef int64_t value
        if i < 0:
            return -1
        value = self._vals[i]
        # backward-shift deletion: pull later members of the probe run into the hole
        j = i
        while True:
            j = (j + 1) & self._mask
            if self._keys[j] == _EMPTY:
                break
            home = <Py_ssize_t>(_mix(<uint64_t>self._keys[j]) & <uint64_t>self._mask)
            # move j into the hole i unless its home lies cyclically in (i, j]
            if (i <= j and (home <= i or home > j)) or (i > j and (home <= i and home > j)):
                self._keys[i] = self._keys[j]
                self._vals[i] = self._vals[j]
                i = j
        self._keys[i] = _EMPTY
        self._n -= 1
        return value

    def __len__(self):
        return self._n

    @property
    def max_entries(self):
        """Largest number of entries the map holds."""
        return self._max

