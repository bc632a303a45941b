"""The trace ring's columns and their decoding (pure Python; the kernel writes the columns).

:meth:`~streamhsm.MachineTable.enable_trace` allocates :func:`ring_columns` once; the kernel
(``hsm_trace`` in ``_kernel.pxd``) writes transition ``k`` at row ``k % size``;
:func:`decode_ring` returns them oldest first.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["TRACE_DTYPE", "TraceRecord", "decode_ring", "named_records", "ring_columns"]

#: The fields of a decoded trace, in order (codes; the machine's enums name them).
TRACE_DTYPE = np.dtype([("seq", np.uint64), ("slot", np.int64), ("event", np.uint8),
                        ("from_state", np.uint8), ("to_state", np.uint8), ("handled_by", np.int16)])


def ring_columns(size: int) -> dict[str, npt.NDArray[Any]]:
    """The ring's zeroed columns, one array of ``size`` rows per field of :data:`TRACE_DTYPE`."""
    return {name: np.zeros(size, TRACE_DTYPE[name]) for name in TRACE_DTYPE.names or ()}


def decode_ring(columns: dict[str, npt.NDArray[Any]] | None, size: int,
                recorded: int) -> npt.NDArray[np.void]:
    """The last ``min(size, recorded)`` transitions of a ring that has recorded ``recorded``,
    oldest first, as a new structured array of :data:`TRACE_DTYPE` (empty without a ring)."""
    if columns is None:
        return np.zeros(0, TRACE_DTYPE)
    n = min(size, recorded)
    order = (np.arange(recorded - n, recorded) % size).astype(np.intp)
    out = np.zeros(n, TRACE_DTYPE)
    for name, col in columns.items():
        out[name] = col[order]
    return out


class TraceRecord(NamedTuple):
    """One recorded transition, named for a person to read (see ``MachineTable.trace_records``):
    the machine's ``State``/``Event`` members, ``handled_by`` None if no handler ran."""

    seq: int
    slot: int
    event: Any
    from_state: Any
    to_state: Any
    handled_by: Any


def named_records(trace: npt.NDArray[np.void], machine: Any) -> list[TraceRecord]:
    """The rows of a decoded trace (:func:`decode_ring`) as :class:`TraceRecord` named tuples of
    ``machine``'s enum members."""
    state, event = machine.State, machine.Event
    return [TraceRecord(int(r["seq"]), int(r["slot"]), event(int(r["event"])),
                        state(int(r["from_state"])), state(int(r["to_state"])),
                        None if r["handled_by"] < 0 else state(int(r["handled_by"])))
            for r in trace]
