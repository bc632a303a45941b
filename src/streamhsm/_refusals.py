"""The messages of refused or interrupted batch calls of a table (base layer, no engine).

A batch kernel answers with two positions: ``bad``, the first element that failed validation
(nothing was applied), and ``stop``, the element before which an apply pass stopped because the
caller rewrote its arrays meanwhile (the elements before it were applied). These functions turn
them into the exception the call raises, naming the element and its value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dispatch_batch_refusal", "flag_batch_refusal"]


def flag_batch_refusal(stop: int, bad: int, slots: Any, values: Any, capacity: int) -> None:
    """Raise the error of a ``set_flag_many`` call (``values`` None: one value for all)."""
    if stop >= 0:
        raise IndexError(
            f"slots[{stop}] or values[{stop}] changed while set_flag_many ran (now slot "
            f"{int(slots[stop])}): the caller's arrays were changed during the call; the first "
            f"{stop} flags were set, the rest were not")
    s = int(slots[bad])
    if values is not None and values[bad] > 1:
        raise ValueError(f"values[{bad}]: flag value {int(values[bad])} is not 0 or 1; "
                         f"nothing was changed")
    if not 0 <= s < capacity:
        raise IndexError(f"slots[{bad}]: slot {s} out of range for capacity {capacity}; "
                         f"nothing was changed")
    raise IndexError(f"slots[{bad}]: slot {s} is not open; nothing was changed")


def dispatch_batch_refusal(stop: int, bad: int, slots: Any, events: Any, n_events: int,
                           capacity: int, machine_name: str) -> None:
    """Raise the error of a ``dispatch_many`` call."""
    if stop >= 0:
        raise IndexError(
            f"slots[{stop}] or events[{stop}] left the valid range while dispatch_many ran "
            f"(now slot {int(slots[stop])}, event {int(events[stop])}): the caller's arrays were "
            f"changed during the batch; the first {stop} events were dispatched, the rest were not")
    s, e = int(slots[bad]), int(events[bad])
    if not 0 <= e < n_events:
        raise ValueError(
            f"events[{bad}]: unknown event code {e} for machine {machine_name!r} "
            f"(valid: 0..{n_events - 1}); nothing was dispatched")
    if not 0 <= s < capacity:
        raise IndexError(
            f"slots[{bad}]: slot {s} out of range for capacity {capacity}; nothing was dispatched")
    raise IndexError(f"slots[{bad}]: slot {s} is not open; nothing was dispatched")
