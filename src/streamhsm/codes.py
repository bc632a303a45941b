"""The base class of every code enum of streamhsm: ``IntEnum`` members that read as names.

On Python 3.11 and later an ``IntEnum`` prints as its bare number (``str(State.ACTIVE)`` is
``"3"``); a person reading a log, a trace or a notice wants the name. :class:`CodeEnum` keeps
every ``int`` behaviour (comparison, arithmetic, ``%d``, JSON) and prints ``State.ACTIVE`` on
every supported Python. Machines of your own may derive their state and event enums from it.
"""

from __future__ import annotations

import enum

__all__ = ["CodeEnum"]


class CodeEnum(enum.IntEnum):
    """An ``IntEnum`` whose ``str()`` and ``format()`` give ``Class.MEMBER`` (not the number)."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, format_spec: str) -> str:
        return format(str(self), format_spec)
