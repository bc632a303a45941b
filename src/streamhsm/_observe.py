"""Observability of a table, implemented once: occupancy, slots in a state, transition counts.

:class:`TableObserver` works on a machine and three arrays (per-slot state codes, per-code
occupancy counters, per-(state, event) transition counts), so the in-process
:class:`~streamhsm.MachineTable` and the shared-memory reader answer from the same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .compiler import CompiledMachine

__all__ = ["TableObserver", "TableStats"]


class TableStats(TypedDict):
    """What :meth:`MachineTable.stats` returns."""

    machine: str
    capacity: int
    open: int
    occupancy: dict[str, int]
    unhandled_total: int
    unhandled_by_slot: dict[int, int]
    transitions: dict[str, int]


class TableObserver:
    """Read-only queries over one table's arrays (never writes them).

    Args:
        machine: the table's compiled machine (its codec converts every ``state`` argument, so
            a member of another enum is a ``TypeError``, an unknown code or name a ``ValueError``).
        states: per-slot state codes (uint8, ``FREE_SLOT`` for a free slot).
        counts: number of slots per state code (at least ``machine.n_states`` entries).
        transitions: transitions taken per (state code, event), at least ``machine.n_states``
            rows of ``machine.n_events``.
    """

    __slots__ = ("_leaves", "_member", "counts", "machine", "states", "transitions")

    def __init__(
        self,
        machine: CompiledMachine,
        states: npt.NDArray[np.uint8],
        counts: npt.NDArray[np.int64],
        transitions: npt.NDArray[np.int64],
    ) -> None:
        self.machine = machine
        self.states = states
        self.counts = counts
        self.transitions = transitions
        self._leaves = machine.leaves_under
        self._member = machine.engine_tables.member

    def count(self, state: object) -> int:
        """Slots in ``state``, descendants included; O(leaves), from the occupancy counters."""
        item = self.counts.item  # a few scalar reads beat a fancy-index allocation
        total = 0
        for leaf in self._leaves[self.machine.codec.state(state)]:
            total += item(leaf)
        return int(total)

    def slots_in(self, state: object) -> npt.NDArray[np.intp]:
        """Indices of the slots in ``state`` (descendants included): one vectorised pass over
        the states (each byte read once), allocating the result."""
        code = self.machine.codec.state(state)
        return np.flatnonzero(self._member[code][self.states])

    def occupancy(self) -> dict[str, int]:
        """Slots per state name, composite states included (``Root``: every open slot)."""
        m = self.machine
        counts = self.counts.tolist()  # one copy: every state is counted from the same moment
        return {m.state_names[s]: sum(counts[leaf] for leaf in self._leaves[s])
                for s in range(m.n_states)}

    def transition_counts(self) -> dict[str, int]:
        """The non-zero transition counts keyed ``"State/Event"`` (from one copy of the array)."""
        m = self.machine
        trans = np.array(self.transitions[: m.n_states], dtype=np.int64)
        return {f"{m.state_names[s]}/{m.event_names[e]}": int(trans[s, e])
                for s, e in zip(*np.nonzero(trans), strict=True)}

    def stats(self, capacity: int, n_open: int, unhandled: npt.NDArray[np.uint64],
              unhandled_total: int) -> TableStats:
        """What :meth:`MachineTable.stats` returns, given the table's capacity, open slots,
        per-slot unhandled counters and unhandled total."""
        hot = np.flatnonzero(unhandled)
        return {
            "machine": self.machine.name,
            "capacity": int(capacity),
            "open": int(n_open),
            "occupancy": self.occupancy(),
            "unhandled_total": int(unhandled_total),
            "unhandled_by_slot": {int(s): int(unhandled[s]) for s in hot},
            "transitions": self.transition_counts(),
        }

    def summary(self) -> dict[str, Any]:
        """``{"occupancy": ..., "transitions": ...}``: the part of ``stats()`` every table
        shares."""
        return {"occupancy": self.occupancy(), "transitions": self.transition_counts()}
