"""The driver's one argument converter: caller objects in, plain Python values out.

Every driver entry point converts every argument with these functions *before* it reads or
changes any driver state. A caller's object may run code while it is converted (``__index__``,
a ``str`` subclass); that code runs first, while the driver has looked nothing up yet, so it can
neither see a half-done operation nor make the driver act on a stale look-up. What comes out is
an exact ``int``, ``str`` or ``bool``, whose methods are Python's own. Error messages show a
caller's object without calling any of its methods (:func:`shown`).
"""

from __future__ import annotations

import operator

from .._owned import shown

__all__ = ["plain_bool", "plain_int", "plain_str", "shown"]


def plain_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an exact ``int``: an int (not a bool) or an object with ``__index__``, which
    is called once. With ``low``/``high`` the value must lie in ``low..high`` (``ValueError``).

    Raises:
        TypeError: ``value`` is a bool or has no ``__index__``.
        ValueError: the value is out of range.
    """
    kind = type(value)
    if kind is int:
        out: int = value  # type: ignore[assignment]
    else:
        if kind is bool:
            raise TypeError(f"{name} must be an int, got bool {value!r}")
        try:
            index = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int, got {kind.__name__} {shown(value)}") from None
        out = int.__index__(index)  # an exact int even if __index__ returned an int subclass
    if (low is not None and out < low) or (high is not None and out > high):
        if high is None:
            raise ValueError(f"{name} must be >= {low}, got {out}")
        raise ValueError(f"{name} must be between {low} and {high}, got {out}")
    return out


def plain_str(name: str, value: object) -> str:
    """``value`` as an exact ``str`` (a copy for a ``str`` subclass, whose methods never run).

    Raises:
        TypeError: ``value`` is not a str.
    """
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if issubclass(kind, str):
        return str.__str__(value)
    raise TypeError(f"{name} must be a str, got {kind.__name__} {shown(value)}")


def plain_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool.

    Raises:
        TypeError: ``value`` is not a bool.
    """
    if type(value) is not bool:
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {shown(value)}")
    return value
