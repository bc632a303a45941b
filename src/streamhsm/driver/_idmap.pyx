"""Allocation-free registry helper for the driver: a keyed hash map from int64 ids to slots.

Private module. Unsafe directives are set in ``setup.py``, never here.

The ids hashed here are chosen by clients (client ids), so the hash is keyed, as Python keys its
``str`` hash: every map draws its own 128-bit key from ``os.urandom`` and hashes an id with
SipHash-1-3 of its 8 bytes under that key. Ids that all collide can then not be computed in
advance, not even by someone who knows another map's key. The key never leaves the map (it is in
no snapshot); a restore inserts every id again under the new map's key.

What is hashed is the id's group, the id without its low three bits: the group's keyed hash
picks an aligned block of eight slots (two cache lines), and the id's low three bits its home in
that block. Ids issued or chosen in sequence (lease ids, dense client or stream ids) thus share
cache lines, so a run of calls on consecutive ids misses the cache once per eight ids instead of
once per id. The flooding protection is unchanged: where a group lands is keyed, so ids from
different groups collide only by chance, and the ids of one group fill at most its own block,
exactly what eight consecutive ordinary ids do (tests/driver/test_idmap_flooding.py).

Each entry keeps its home beside its key and value (16 bytes: the value is a slot number, below
``2**31``), so that a removal's backward shift never hashes: it steps over every entry that sits
at its home (it can never move; with grouped homes these are most of a run) with one compare.
"""
cimport cython
from libc.stdint cimport INT32_MAX, UINT64_MAX, int32_t, int64_t, uint32_t, uint64_t

import os

import numpy as np

__all__ = ["IdMap"]


def _siphash13(k0, k1, m):
    """Test hook: SipHash-1-3 of the 8-byte message ``m`` under ``(k0, k1)`` (unsigned ints)."""
    return siphash13(<uint64_t>k0, <uint64_t>k1, <uint64_t>m)


@cython.final
cdef class IdMap:
    """A fixed-capacity map from non-negative int64 keys to slot numbers (0 .. ``2**31 - 1``),
    keyed-hashed.

    Open addressing with linear probing and backward-shift deletion (no tombstones), so a long
    run of puts and pops never degrades or allocates. Holds at most ``max_entries`` entries; the
    table is at most half full. Only Cython code uses it (the driver core); Python sees test
    hooks only (:meth:`_probe_stats`, :meth:`_seed`, :meth:`_put` ...).
    """

    def __cinit__(self, Py_ssize_t max_entries):
        if not 0 < max_entries <= INT32_MAX:
            raise ValueError(f"max_entries must be between 1 and {INT32_MAX}, got {max_entries}")
        size = 8
        while size < 2 * max_entries:
            size *= 2
        table = np.zeros((size, 2), dtype=np.int64)
        table[:, 0] = IDMAP_EMPTY
        cdef int64_t[:, ::1] t = table
        self._slots = <IdEntry*>&t[0, 0]
        self._owners = table
        self._mask = size - 1
        self._n = 0
        self._max = max_entries
        seed = os.urandom(16)
        self._k0 = int.from_bytes(seed[:8], "little")
        self._k1 = int.from_bytes(seed[8:], "little")
        self._run_group = UINT64_MAX  # (no group: a group is at most 2**61 - 1)
        self._run_block = 0

    cdef Py_ssize_t home(self, int64_t key) noexcept nogil:
        """``key``'s home slot (:func:`idmap_home`)."""
        return idmap_home(self, key)

    cdef Py_ssize_t home_run(self, int64_t key) noexcept nogil:
        """:meth:`home` for the driver core's changing operations (attach, keepalive, detach),
        which never run at the same time (the GIL held with no batch running, or both tables'
        batch locks): it remembers the block of the group it hashed last, so that a run of
        calls on ids of one group (consecutive ids) hashes it once. A look-up that may run
        beside a batch (the core's readers) calls :meth:`home`, which writes nothing."""
        cdef uint64_t group = (<uint64_t>key) >> IDMAP_GROUP_BITS
        if group != self._run_group:
            self._run_block = <Py_ssize_t>(siphash13(self._k0, self._k1, group)
                                           & <uint64_t>self._mask & ~<uint64_t>(IDMAP_GROUP - 1))
            self._run_group = group
        return self._run_block | <Py_ssize_t>(key & (IDMAP_GROUP - 1))

    cdef Py_ssize_t find(self, int64_t key) noexcept nogil:
        """Index of ``key`` in the table, or -1."""
        return self.find_from(key, self.home(key))

    cdef Py_ssize_t find_from(self, int64_t key, Py_ssize_t i) noexcept nogil:
        """:meth:`find` with ``key``'s home ``i = home(key)`` computed by the caller
        (:func:`idmap_find_from`)."""
        return idmap_find_from(self, key, i)

    cdef int64_t lookup(self, int64_t key) noexcept nogil:
        """Value of ``key``, or -1 if absent."""
        cdef Py_ssize_t i = self.find(key)
        return -1 if i < 0 else self._slots[i].val

    cdef int64_t lookup_from(self, int64_t key, Py_ssize_t home) noexcept nogil:
        """:meth:`lookup` with ``home = home(key)`` computed by the caller."""
        return idmap_lookup_from(self, key, home)

    cdef int insert(self, int64_t key, int64_t value) noexcept nogil:
        """Store ``value`` (0 .. ``2**31 - 1``) for ``key`` (>= 0); return 0, or -1 if the map
        is full or the value out of that range (unchanged)."""
        return self.insert_from(key, value, self.home(key))

    cdef int insert_from(self, int64_t key, int64_t value, Py_ssize_t home) noexcept nogil:
        """:meth:`insert` with ``home = home(key)`` computed by the caller (one hash for a
        look-up and the insert after it)."""
        cdef Py_ssize_t i = home
        if not 0 <= value <= INT32_MAX:
            return -1
        while self._slots[i].key != IDMAP_EMPTY and self._slots[i].key != key:
            i = (i + 1) & self._mask
        if self._slots[i].key == IDMAP_EMPTY:
            if self._n >= self._max:
                return -1
            self._slots[i].key = key
            self._slots[i].home = <uint32_t>home
            self._n += 1
        self._slots[i].val = <int32_t>value
        return 0

    cdef void clear(self) noexcept nogil:
        """Remove every entry."""
        cdef Py_ssize_t i
        for i in range(self._mask + 1):
            self._slots[i].key = IDMAP_EMPTY
        self._n = 0

    cdef int64_t remove(self, int64_t key) noexcept nogil:
        """Remove ``key`` and return its value, or -1 if it was absent."""
        return self.remove_from(key, self.home(key))

    cdef int64_t remove_from(self, int64_t key, Py_ssize_t home) noexcept nogil:
        """:meth:`remove` with ``home = home(key)`` computed by the caller."""
        return self.remove_at(self.find_from(key, home))

    cdef int64_t remove_at(self, Py_ssize_t i) noexcept nogil:
        """Remove the entry at index ``i`` (a :meth:`find` result, the map unchanged since) and
        return its value; -1 (nothing changed) if ``i`` is -1, a key :meth:`find` did not find."""
        cdef Py_ssize_t j = i, h, mask = self._mask
        cdef IdEntry* slots = self._slots
        cdef int64_t value
        if i < 0:
            return -1
        value = slots[i].val
        # backward-shift deletion: pull later members of the probe run into the hole i
        while True:
            j = (j + 1) & mask
            if slots[j].key == IDMAP_EMPTY:
                break
            h = slots[j].home
            # an entry at its home stays (most of a run: whole groups sit in their blocks);
            # another moves into the hole unless its home lies cyclically in (i, j]
            if h != j and ((j - h) & mask) >= ((j - i) & mask):
                slots[i] = slots[j]
                i = j
        slots[i].key = IDMAP_EMPTY
        self._n -= 1
        return value

    def _probe_stats(self):
        """Test hook: ``(entries, total probes, longest probe)`` to find every key present (a
        key found at its home slot costs one probe). Measures how well the hash spreads keys,
        without a clock."""
        cdef Py_ssize_t i, d, total = 0, longest = 0
        for i in range(self._mask + 1):
            if self._slots[i].key != IDMAP_EMPTY:
                d = ((i - self.home(self._slots[i].key)) & self._mask) + 1
                total += d
                if d > longest:
                    longest = d
        return self._n, total, longest

    def _put(self, int64_t key, int64_t value):
        """Test hook: :meth:`insert` (0, or -1: full, or the value out of range)."""
        return self.insert(key, value) if key >= 0 else -1

    def _get(self, int64_t key):
        """Test hook: :meth:`lookup` (the value, or -1)."""
        return self.lookup(key)

    def _pop(self, int64_t key):
        """Test hook: :meth:`remove` (the value, or -1)."""
        return self.remove(key)

    def _stale_homes(self):
        """Test hook: how many entries keep a home other than their key's (always 0)."""
        cdef Py_ssize_t i, n = 0
        for i in range(self._mask + 1):
            if (self._slots[i].key != IDMAP_EMPTY
                    and <Py_ssize_t>self._slots[i].home != self.home(self._slots[i].key)):
                n += 1
        return n

    def _home(self, int64_t key):
        """Test hook: ``key``'s home slot."""
        return self.home(key)

    def _seed(self):
        """Test hook: the map's key ``(k0, k1)`` (it is never written anywhere)."""
        return self._k0, self._k1

    def __len__(self):
        return self._n

    @property
    def max_entries(self):
        """Largest number of entries the map holds."""
        return self._max
