# Boundary checks shared by the table and instance classes: inline code that holds the GIL and
# may raise (unlike the kernels). Private.
from cpython.long cimport PyLong_AsLongLongAndOverflow


cdef inline Py_ssize_t index_value(object value, str what) except? -2:
    """An int-like value as Py_ssize_t; -1 stands for any out-of-range value (negative or too
    large). TypeError for a bool or a value without ``__index__``."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        from numpy import bool_  # the slow path only (cached in sys.modules)
        if isinstance(value, (bool, bool_)) or not hasattr(value, "__index__"):
            raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
        value = int(value.__index__())
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0 or v < 0:
        return -1
    return <Py_ssize_t>v


cdef inline Py_ssize_t fast_code(object value, object own_enum, Py_ssize_t n, dict names,
                                 object codec, bint event) except -1:
    """The code of a state or event (``event`` False: a state): a plain int or a member of the
    machine's own enum in range, or a declared name (``names``: name -> code) converts here;
    anything else (other types, errors) goes to the machine's codec
    (streamhsm._codec.MachineCodec), which gives the same code for these."""
    cdef int overflow = 0
    cdef long long v
    cdef object t = type(value)
    if t is int or t is own_enum:
        v = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0 and 0 <= v < n:
            return <Py_ssize_t>v
    elif t is str:
        code = names.get(value)
        if code is not None:
            return <Py_ssize_t>code
    return codec.event(value) if event else codec.state(value)


cdef inline int flag_value(object value) except -1:
    """A flag value: True/False (``bool`` or ``numpy.bool_``) as 1/0; anything else TypeError."""
    if value is True or value is False:
        return 1 if value else 0
    from numpy import bool_  # the slow path only (cached in sys.modules)
    if isinstance(value, bool_):
        return 1 if value else 0
    raise TypeError(f"flag value must be a bool, got {type(value).__name__} {value!r}")
