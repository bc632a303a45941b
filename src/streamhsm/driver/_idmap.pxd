# Allocation-free registry helpers for the driver (cimport-able).
from libc.stdint cimport int64_t, uint64_t

cdef class IdMap:
    cdef int64_t* _keys       # -1: empty
    cdef int64_t* _vals
    cdef object _owners
    cdef Py_ssize_t _mask, _n, _max
    cdef Py_ssize_t find(self, int64_t key) noexcept nogil
    cdef int64_t lookup(self, int64_t key) noexcept nogil
    cdef int64_t remove(self, int64_t key) noexcept nogil
    cdef int insert(self, int64_t key, int64_t value) noexcept nogil
    cdef void clear(self) noexcept nogil
