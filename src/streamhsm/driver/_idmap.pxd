# Allocation-free registry helpers for the driver (cimport-able).
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cdef uint64_t siphash13(uint64_t k0, uint64_t k1, uint64_t m) noexcept nogil

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
