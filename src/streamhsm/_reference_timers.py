"""The timers of the reference interpreter (part of :mod:`streamhsm.reference`, the oracle).

Written from the contract (DESIGN.md section 5), not from the compiled tables: no arm/cancel
masks, no summaries. The interpreter hands over the ordered exits and entries it walked
(completion chains included) and this module applies them one by one: entering a state arms
its timers to ``clock + delay``, exiting it cancels them, so a state entered and left again
ends cancelled and one left and entered again ends armed afresh. A handler's restarts arm
afterwards if the owner is active then. :meth:`ReferenceTimers.next_due` and :meth:`fire`
give ``advance`` its order: the earliest deadline first, ties in declaration order; a
periodic timer moves to the first ``d + k * period`` after the advance's ``now``, the periods
between counted as skipped; a one-shot one is disarmed.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .machine import ROOT, MachineSpec, TimerDecl

__all__ = ["NEVER", "Fired", "ReferenceTimers"]

#: The deadline of a timer that is not armed (the largest int64, as the engine's).
NEVER = (1 << 63) - 1


class Fired(NamedTuple):
    """One timer fired by :meth:`ReferenceMachine.advance`: the event dispatched, the time it
    fired at (its deadline, the clock during its dispatch) and the timer's name."""

    event: str
    time_ns: int
    timer: str


class ReferenceTimers:
    """One instance's clock and timer deadlines (by timer name, ``NEVER``: not armed)."""

    def __init__(self, spec: MachineSpec, now_ns: object) -> None:
        self.decls: tuple[TimerDecl, ...] = spec.timers
        self.machine = spec.name
        states, events = {ROOT, *spec.states}, set(spec.events)
        self.owned: dict[str, list[TimerDecl]] = {}
        for t in self.decls:
            if t.state not in states or t.event not in events:
                raise ValueError(f"machine {spec.name!r}: timer {t.name!r} names unknown state "
                                 f"{t.state!r} or event {t.event!r}")
            self.owned.setdefault(t.state, []).append(t)
        names = [t.name for t in self.decls]
        for n in names:
            if names.count(n) > 1:
                raise ValueError(f"machine {spec.name!r}: timer name {n!r} is declared twice")
        for h in spec.declared_handlers:
            for r in h.restart:
                if r not in names:
                    raise ValueError(f"machine {spec.name!r}: handler ({h.state}, {h.event}) "
                                     f"restarts unknown timer {r!r}")
        self.by_name = {t.name: t for t in self.decls}
        self.longest = max((t.delay_ns for t in self.decls), default=0)
        self.deadlines: dict[str, int] = dict.fromkeys(names, NEVER)
        self.skipped: dict[str, int] = dict.fromkeys(names, 0)
        self.now_ns = 0
        if self.decls:
            self.now_ns = self.check_clock(now_ns)
        elif not (isinstance(now_ns, int) and now_ns == 0):
            raise ValueError(f"machine {spec.name!r} has no timers: now_ns must be 0, got "
                             f"{now_ns!r}")

    def check_clock(self, now_ns: object) -> int:
        """``now_ns`` as an int clock reading: an integer (a numpy one too, not a bool) in
        ``0..NEVER - longest``."""
        if isinstance(now_ns, bool) or not isinstance(now_ns, numbers.Integral):
            raise TypeError(f"now_ns must be an int number of nanoseconds, got "
                            f"{type(now_ns).__name__} {now_ns!r}")
        limit = NEVER - self.longest
        value = int(now_ns)
        if not 0 <= value <= limit:
            raise ValueError(f"now_ns must be 0..{limit}, got {value}")
        return value

    def name(self, name: object) -> str:
        """``name`` checked as one of the declared timers' names."""
        if not isinstance(name, str):
            raise TypeError(f"timer name must be a str, got {type(name).__name__} {name!r}")
        if name not in self.by_name:
            raise ValueError(f"machine {self.machine!r} has no timer {name!r} (timers: "
                             f"{list(self.by_name)})")
        return name

    def walk(self, path: Iterable[tuple[str, str]]) -> None:
        """Apply exits and entries in the order they happened: entering arms the state's
        timers to the clock plus their delay, exiting cancels them."""
        for what, state in path:
            for t in self.owned.get(state, ()):
                self.deadlines[t.name] = (self.now_ns + t.delay_ns if what == "enter"
                                          else NEVER)

    def restart(self, names: Iterable[str], active: Callable[[str], bool]) -> None:
        """Arm the named timers afresh from the clock, those whose owner is active."""
        for n in names:
            t = self.by_name[n]
            if active(t.state):
                self.deadlines[n] = self.now_ns + t.delay_ns

    def next_due(self, now: int) -> tuple[TimerDecl, int] | None:
        """The timer to fire next at ``now`` and its deadline: the earliest deadline due at
        ``now``, the first declared on a tie; None if none is due."""
        best: tuple[TimerDecl, int] | None = None
        for t in self.decls:
            d = self.deadlines[t.name]
            if d <= now and (best is None or d < best[1]):
                best = (t, d)
        return best

    def fire(self, t: TimerDecl, d: int, now: int) -> None:
        """Timer ``t`` fires at its deadline ``d`` in an advance to ``now``: the clock reads
        ``d``; a periodic timer moves to its first phase after ``now`` (periods in between
        counted as skipped), a one-shot one is disarmed."""
        self.now_ns = d
        if not t.periodic:
            self.deadlines[t.name] = NEVER
            return
        nxt, skipped = d + t.delay_ns, 0
        while nxt <= now:  # walked, not divided: the oracle spells the rule out
            if now - nxt > 64 * t.delay_ns:  # a long catch-up: jump most of the way at once
                jump = (now - nxt) // t.delay_ns
                nxt, skipped = nxt + jump * t.delay_ns, skipped + jump
                continue
            nxt, skipped = nxt + t.delay_ns, skipped + 1
        self.deadlines[t.name] = nxt
        self.skipped[t.name] += skipped
