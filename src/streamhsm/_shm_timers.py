"""The timer columns of a shared table segment as a reader sees them (part of
:mod:`streamhsm.shm`).

A segment of a machine with timers (layout 4, ``n_timers > 0`` in its header) holds the table's
timer columns (see ``table_layout``): ``deadlines`` (int64, one row of ``capacity`` per timer,
``NEVER`` where the timer is not armed), ``clock`` (the table's clock, then a lower bound of every
armed deadline), ``timer_blocks`` (a lower bound of the armed deadlines of each block of
``TIMER_BLOCK`` slots) and ``skipped`` (periods skipped, per timer). The writer's table runs on
them directly, so they are always current. :class:`TimerReadout` gives
:class:`~streamhsm.shm.TableReader` its timer accessors; like every other accessor, each reads the
segment afresh with ``pread``, so what it returns is a private read-only copy (the writer may move
between two reads: the clock and the deadlines are not one atomic snapshot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._engine_tables import TIMER_BLOCK
from ._timer_tables import NEVER, timer_index

if TYPE_CHECKING:
    from .compiler import CompiledMachine

__all__ = ["NEXT_DEADLINES", "TimerReadout"]

#: How many armed deadlines ``TableReader.stats()`` (and so ``streamhsm stat``) lists.
NEXT_DEADLINES = 5


class TimerReadout:
    """The timer accessors of a shared-table reader (mixed into
    :class:`~streamhsm.shm.TableReader`); all of them work, and answer "nothing", on a segment
    of a machine without timers except :meth:`deadlines`, which names the missing timer."""

    machine: CompiledMachine
    capacity: int
    _cols: dict[str, tuple[np.dtype[Any], tuple[int, ...], int]]

    if TYPE_CHECKING:
        def _read(self, offset: int, n: int, what: str) -> bytes: ...

        def _column(self, name: str) -> np.ndarray: ...

    def _deadline_range(self, timer: int, start: int, stop: int) -> np.ndarray:
        """Deadlines of timer ``timer`` for slots ``start..stop`` (one ``pread``)."""
        dtype, _, offset = self._cols["deadlines"]
        at = offset + (timer * self.capacity + start) * dtype.itemsize
        data = self._read(at, (stop - start) * dtype.itemsize, "column 'deadlines'")
        return np.frombuffer(data, dtype)  # read-only: its base is bytes

    @property
    def now_ns(self) -> int | None:
        """The writer's table clock (ns; None if the machine has no timers), read afresh."""
        if self.machine.timers is None:
            return None
        return int(self._column("clock")[0])

    def deadlines(self, name: object) -> np.ndarray:
        """A fresh read-only copy of timer ``name``'s deadlines (int64, one per slot, ``NEVER``
        where not armed), like ``MachineTable.deadlines``. ``TypeError``/``ValueError``: not a
        str, no timer of that name, or a machine without timers."""
        return self._deadline_range(timer_index(self.machine, name), 0, self.capacity)

    @property
    def skipped_periods(self) -> tuple[int, ...]:
        """Periods each timer skipped, as the writer's ``skipped_periods`` (``()`` without
        timers)."""
        if self.machine.timers is None:
            return ()
        return tuple(int(x) for x in self._column("skipped"))

    def next_deadlines(self, limit: int = NEXT_DEADLINES) -> list[tuple[int, int, str]]:
        """The earliest ``limit`` armed deadlines as ``(deadline_ns, slot, timer name)``, in the
        order the writer's ``advance`` would fire them (deadline, then slot, then declaration
        order); ``[]`` without timers. Reads only the blocks of slots the writer's per-block
        summary says may hold them, not the whole column.

        Raises:
            TypeError / ValueError: ``limit`` is not an int >= 0.
        """
        if type(limit) is not int:
            raise TypeError(f"limit must be an int, got {type(limit).__name__} {limit!r}")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        timers = self.machine.timers
        if timers is None or limit == 0:
            return []
        blocks = self._column("timer_blocks")
        best: list[tuple[int, int, int]] = []  # (deadline, slot, timer index)
        for b in np.argsort(blocks, kind="stable").tolist():
            low, start = int(blocks[b]), b * TIMER_BLOCK
            if low == NEVER or (len(best) == limit and best[-1][:2] < (low, start)):
                break  # this block and every later one only hold deadlines ranked after best
            stop = min(start + TIMER_BLOCK, self.capacity)
            for t in range(timers.n_timers):
                part = self._deadline_range(t, start, stop)
                armed = np.flatnonzero(part != NEVER)
                if armed.size > limit:
                    armed = armed[np.argsort(part[armed], kind="stable")[:limit]]
                best.extend((int(part[i]), start + int(i), t) for i in armed.tolist())
            best = sorted(best)[:limit]
        return [(d, slot, timers.names[t]) for d, slot, t in best]
