"""Limits and the integer check every layer shares (pure Python, imports nothing of the engine).

``MAX_CAPACITY`` is the one definition of the largest table capacity (slots are int32 indices);
:func:`check_index` is the one validator of integer arguments (capacities, sizes, slots, ids).
"""

from __future__ import annotations

import numpy as np

__all__ = ["INT32_MAX", "MAX_CAPACITY", "check_index"]

#: The largest int32: slot indices, free-list entries and stream ids are int32.
INT32_MAX = 2**31 - 1
#: Largest number of slots of a table.
MAX_CAPACITY = INT32_MAX


def check_index(value: object, what: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``low..high`` (``high`` None: no upper bound).

    Accepts an ``int`` or any ``__index__`` object (``np.int64``), never a bool.

    Raises:
        TypeError: ``value`` is a bool or has no ``__index__``.
        ValueError: out of range; the message names ``what``, the bounds and the value.
    """
    if type(value) is int:
        v = value
    elif isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    else:
        v = int(value.__index__())
    if v < low or (high is not None and v > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{what} must be {bound}, got {value!r}")
    return v
