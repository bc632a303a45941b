"""Owned copies of caller objects: what crosses the boundary before anything is checked.

A caller's object may run code whenever it is read (a ``dict`` subclass's ``get`` or
``__getitem__``, a ``str`` subclass's ``__eq__``, an ndarray subclass's ``shape`` or ``reshape``).
Every snapshot restore (tables, the driver) first copies the whole mapping with :func:`own` into
values of exact types whose methods are Python's and numpy's own, then validates the copies, then
builds from them: nothing checked can change afterwards, and no caller code runs while a lock is
held. :func:`as_array` does the same for the arrays of a batch call. :func:`shown` formats a
caller's object for an error message without running its code.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from .errors import SnapshotError

__all__ = ["as_array", "own", "owned_value", "shown"]


def shown(value: object) -> str:
    """``repr`` of a value for an error message, running none of the value's own code."""
    kind = type(value)
    if issubclass(kind, bool):
        return bool.__repr__(value)
    if issubclass(kind, int):
        return int.__repr__(value)
    if issubclass(kind, str):
        return str.__repr__(value)
    if issubclass(kind, float):
        return float.__repr__(value)
    if value is None:
        return "None"
    return object.__repr__(value)


_PLAIN = (int, float, str, bool, bytes, type(None))
_BASE_COPIES: tuple[tuple[type, Any], ...] = (
    (int, int.__index__), (float, float.__float__), (str, str.__str__),
    # a bytes subclass's buffer is the base type's (Python code cannot override it); no
    # bytes.__bytes__ before Python 3.11
    (bytes, lambda value: bytes(memoryview(value))))
#: Numpy scalar types taken as plain values (exact types only, converted with ``.item()``).
_NUMPY_SCALARS = frozenset(t for t in np.sctypeDict.values() if t is not np.object_)


def own(snap: object) -> dict[str, Any]:
    """Every field of a snapshot mapping copied into a new dict of owned, exact-type values.

    The mapping is read through ``dict``'s own storage (a ``dict`` subclass's ``get``,
    ``__getitem__`` or ``items`` never run); keys must be exact ``str``; a value must be a plain
    ``int``, ``float``, ``str``, ``bool``, ``bytes`` or None (a subclass is copied into its base
    type), a numpy scalar of an exact numpy type, or a numpy array without objects, which is
    copied into a new C-contiguous base-class array.

    Raises:
        SnapshotError: not a dict, a key that is not a str, or a value that is not plain data.
    """
    if not issubclass(type(snap), dict):
        raise SnapshotError(f"a snapshot is a dict, got {type(snap).__name__}")
    out: dict[str, Any] = {}
    for key, value in dict.items(cast("dict[object, object]", snap)):
        if type(key) is not str:
            raise SnapshotError(f"snapshot key {shown(key)} is not a str")
        out[key] = owned_value(key, value)
    return out


def owned_value(key: str, value: object) -> object:
    """One snapshot field as an owned, exact-type value (see :func:`own`).

    Raises:
        SnapshotError: the value is not plain data (the message names ``key``).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    for base, copy_of in _BASE_COPIES:
        if issubclass(kind, base):
            return copy_of(value)  # the base type's own copy: no method of the subclass runs
    if kind in _NUMPY_SCALARS:
        return value.item()  # type: ignore[attr-defined]
    if issubclass(kind, np.ndarray):
        # read through the array struct (numpy's C API), never the subclass's attributes
        copy = np.array(value, copy=True, order="C", subok=False)
        if type(copy) is not np.ndarray or copy.dtype.hasobject:
            raise SnapshotError(f"snapshot field {key!r} is an array of objects, not plain data")
        return copy
    raise SnapshotError(f"snapshot field {key!r} holds a {kind.__name__}, not plain data")


def as_array(arr: object, what: str, dtypes: tuple[np.dtype[Any], ...]) -> np.ndarray:
    """``arr`` as an exact 1-D C-contiguous ndarray of one of ``dtypes``, for a batch entry point.

    An ndarray subclass is read as a base-class view of its buffer (through numpy's C struct:
    its own ``shape``, ``dtype``, ``flags`` or ``reshape`` never run); a strided view is copied
    once, here. The kernels then take every length from the buffer itself.

    Raises:
        TypeError: not a numpy array, or another dtype.
        ValueError: not 1-dimensional.
    """
    if type(arr) is not np.ndarray:
        if not issubclass(type(arr), np.ndarray):
            raise TypeError(f"{what} must be a numpy array, got {type(arr).__name__}")
        arr = np.asarray(arr)
    assert isinstance(arr, np.ndarray)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype not in dtypes:
        raise TypeError(
            f"{what} must have dtype {' or '.join(str(d) for d in dtypes)}, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr
