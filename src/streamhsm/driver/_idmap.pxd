# Allocation-free registry helpers for the driver (cimport-able).
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cdef enum:
    IDMAP_EMPTY = -1          # the key of an empty slot
    # Ids whose values differ only in their low IDMAP_GROUP_BITS bits form a group: one keyed
    # hash places the group on IDMAP_GROUP consecutive slots (two cache lines of entries).
    IDMAP_GROUP_BITS = 3
    IDMAP_GROUP = 8


cdef inline uint64_t _rotl(uint64_t x, int b) noexcept nogil:
    return (x << b) | (x >> (64 - b))


cdef inline void _sipround(uint64_t* v) noexcept nogil:
    """One SipRound on the state ``v[0..4)``."""
    v[0] += v[1]
    v[1] = _rotl(v[1], 13)
    v[1] ^= v[0]
    v[0] = _rotl(v[0], 32)
    v[2] += v[3]
    v[3] = _rotl(v[3], 16)
    v[3] ^= v[2]
    v[0] += v[3]
    v[3] = _rotl(v[3], 21)
    v[3] ^= v[0]
    v[2] += v[1]
    v[1] = _rotl(v[1], 17)
    v[1] ^= v[2]
    v[2] = _rotl(v[2], 32)


cdef inline uint64_t siphash13(uint64_t k0, uint64_t k1, uint64_t m) noexcept nogil:
    """SipHash-1-3 (one compression round, three finalisation rounds) of the 8-byte
    little-endian message ``m`` under the key ``(k0, k1)``."""
    cdef uint64_t v[4]
    cdef uint64_t b = (<uint64_t>8) << 56  # the final block: message length 8, no tail bytes
    v[0] = k0 ^ <uint64_t>0x736f6d6570736575
    v[1] = k1 ^ <uint64_t>0x646f72616e646f6d
    v[2] = k0 ^ <uint64_t>0x6c7967656e657261
    v[3] = k1 ^ <uint64_t>0x7465646279746573
    v[3] ^= m
    _sipround(v)
    v[0] ^= m
    v[3] ^= b
    _sipround(v)
    v[0] ^= b
    v[2] ^= 0xff
    _sipround(v)
    _sipround(v)
    _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


ctypedef struct IdEntry:      # a key, its value and its home share a cache line
    int64_t key               # -1: empty
    int32_t val               # (values are slot numbers: 0 .. 2**31 - 1)
    uint32_t home             # home(key), kept so that a removal never hashes

cdef class IdMap:
    cdef IdEntry* _slots
    cdef object _owners
    cdef Py_ssize_t _mask, _n, _max
    cdef uint64_t _k0, _k1    # the map's hash key (from os.urandom; never saved)
    cdef uint64_t _run_group  # the group home_run hashed last (none at first) and its block
    cdef Py_ssize_t _run_block
    cdef Py_ssize_t home(self, int64_t key) noexcept nogil
    cdef Py_ssize_t home_run(self, int64_t key) noexcept nogil
    cdef Py_ssize_t find(self, int64_t key) noexcept nogil
    cdef Py_ssize_t find_from(self, int64_t key, Py_ssize_t i) noexcept nogil
    cdef int64_t lookup(self, int64_t key) noexcept nogil
    cdef int64_t lookup_from(self, int64_t key, Py_ssize_t home) noexcept nogil
    cdef int64_t remove(self, int64_t key) noexcept nogil
    cdef int64_t remove_from(self, int64_t key, Py_ssize_t home) noexcept nogil
    cdef int64_t remove_at(self, Py_ssize_t i) noexcept nogil
    cdef int insert(self, int64_t key, int64_t value) noexcept nogil
    cdef int insert_from(self, int64_t key, int64_t value, Py_ssize_t i) noexcept nogil
    cdef void clear(self) noexcept nogil


# The look-up path, inline so that a batch (keepalive_many) runs it without calls: the methods
# of the same names call these.
cdef inline Py_ssize_t idmap_home(IdMap m, int64_t key) noexcept nogil:
    """``key``'s home slot: its group's keyed base (a multiple of ``IDMAP_GROUP``) plus its
    place in the group (see the module docstring of ``_idmap.pyx``)."""
    cdef uint64_t u = <uint64_t>key
    return <Py_ssize_t>(((siphash13(m._k0, m._k1, u >> IDMAP_GROUP_BITS)
                          & <uint64_t>m._mask) & ~<uint64_t>(IDMAP_GROUP - 1))
                        | (u & <uint64_t>(IDMAP_GROUP - 1)))


cdef inline Py_ssize_t idmap_find_from(IdMap m, int64_t key, Py_ssize_t i) noexcept nogil:
    """Index of ``key`` in ``m``'s table, or -1, probing from its home ``i``."""
    cdef IdEntry* slots = m._slots
    cdef Py_ssize_t mask = m._mask
    cdef int64_t k
    while True:
        k = slots[i].key
        if k == key:
            return i
        if k == IDMAP_EMPTY:
            return -1
        i = (i + 1) & mask


cdef inline int64_t idmap_lookup_from(IdMap m, int64_t key, Py_ssize_t i) noexcept nogil:
    """Value of ``key`` in ``m``, or -1 if absent, probing from its home ``i``."""
    i = idmap_find_from(m, key, i)
    return -1 if i < 0 else m._slots[i].val
