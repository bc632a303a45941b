"""A pure-Python reference interpreter for :class:`~streamhsm.machine.MachineSpec`.

It walks the *declared* hierarchy at run time, the way Hsm.jl's ``dispatch!`` / ``transition!``
do (try the current leaf, then each ancestor up to Root; exit up to the least common ancestor,
enter down to the target, then follow initial transitions). It never looks at the compiled tables
and does not share the compiler's flattening, so tests use it as the oracle the compiled tables
are compared against. It is slow on purpose.

Guards are evaluated when an event is dispatched, against the instance's current flags: at each
state on the way up, that state's handlers for the event are tried in declaration order and the
first whose guard holds runs; if none holds, the event goes on to the parent state.

A deep initial transition (``initial=X`` with ``X`` a grandchild or deeper) enters every state on
the way from the composite state down to ``X``, without following those states' own initial
transitions, then follows ``X``'s initial transitions down to a leaf.

History and completion (UML 2.5 / PSSM as Hsm.jl's ``SEMANTICS.md`` reads them) are walked the
same way, with the records in a dict: a transition that exits a history owner records the
active leaf (a final leaf clears the record instead); entering a final state clears its
parent's record and completes the parent; a simple state with completion transitions completes
as soon as it is entered; a completion runs the first completion transition of the completed
state whose guard holds (none: the machine rests), and so on, inside the same dispatch. In a
top-level final state the machine has completed: every event is unhandled.

Timers (``MachineSpec.after`` / ``every``) are kept by ``streamhsm._reference_timers`` from
the same ordered exits and entries (the initial transition's included, and Root's timers armed
at construction): entering a state arms its timers at the instance's clock ``now_ns``, exiting
cancels them, a handler's restarts arm afterwards if the owner is active.
:meth:`ReferenceMachine.advance` fires due timers one by one through
:meth:`ReferenceMachine.dispatch`, the clock at each one's deadline.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from ._codec import MachineCodec
from ._reference_timers import NEVER, Fired, ReferenceTimers
from .machine import ROOT, HandlerDecl, MachineSpec

__all__ = ["NEVER", "Fired", "ReferenceMachine", "Step"]


@dataclass
class Step:
    """What one reference dispatch (or the initial transition) did."""

    handled: bool
    handler: str | None  # the state whose handler ran
    exits: list[str] = field(default_factory=list)  # innermost first
    entries: list[str] = field(default_factory=list)  # outermost first
    #: exits and entries interleaved in the order they happened (completion chains included)
    path: list[tuple[str, str]] = field(default_factory=list, repr=False)

#: A completion chain that passes more states than this never rests (compile() refuses such a
#: machine; the reference stops rather than loop).
_MAX_CHAIN = 10_000


class ReferenceMachine:
    """One machine instance interpreted from its declaration.

    States and events are given as names, int codes, or members of the spec's event enum (and of
    ``state_enum``, if given), converted by the same :class:`~streamhsm._codec.MachineCodec` as
    the compiled engine: a member of another enum is a ``TypeError``.

    Attributes: ``current`` (the name of the current leaf) and ``unhandled`` (how many dispatched
    events no handler took). The flags declared with :meth:`MachineSpec.flag` start False and
    change only through :meth:`set_flag`.

    Timers: the instance's clock ``now_ns`` (``now_ns=`` at construction, 0 by default; None
    for a machine without timers) arms them; :meth:`advance` moves it and fires what is due;
    :meth:`deadline` / :attr:`deadlines` (``NEVER``: not armed) and :attr:`skipped_periods`.
    """

    def __init__(self, spec: MachineSpec, *, state_enum: type[enum.IntEnum] | None = None,
                 now_ns: int = 0) -> None:
        spec.check_structure()  # as compile() does: the tree is ill-defined otherwise
        self._timers = ReferenceTimers(spec, now_ns)
        self._spec = spec
        self._codec = MachineCodec(spec.name, spec.states, spec.events, state_enum,
                                   spec.event_enum)
        self._parent = spec.parents
        self._initial = spec.initials
        self._composites = set(self._parent.values())
        # (state, event) -> that state's handlers for the event, in declaration order
        self._handlers: dict[tuple[str, str], list[HandlerDecl]] = {}
        for h in spec.declared_handlers:
            self._handlers.setdefault((h.state, h.event), []).append(h)
        self._flags: dict[str, bool] = dict.fromkeys(spec.flags, False)
        self._finals = set(spec.finals)
        self._owners = set(spec.history_owners)
        self._defaults = {(d.owner, d.history): d.target for d in spec.history_defaults}
        self._completions: dict[str, list[tuple[str | None, str, str | None]]] = {}
        for c in spec.completions:
            self._completions.setdefault(c.state, []).append((c.guard, c.target, c.history))
        #: owner -> recorded leaf (an owner without a record is absent)
        self.records: dict[str, str] = {}
        self.unhandled = 0
        self.current = ROOT
        step = Step(True, None)
        self._enter_initial(ROOT, step)
        self._complete(step)
        self._initial_step = step
        self._timers.walk([("enter", ROOT), *step.path])  # Root's timers run from the start

    # ------------------------------------------------------------------ flags
    def _flag_name(self, name: object) -> str:
        if not isinstance(name, str):
            raise TypeError(f"flag name must be a str, got {type(name).__name__} {name!r}")
        if name not in self._flags:
            raise ValueError(f"unknown flag {name!r} for machine {self._spec.name!r}; "
                             f"its flags are {list(self._flags)}")
        return name

    def set_flag(self, name: str, value: bool) -> None:
        """Set flag ``name`` to ``value`` (a ``bool``); ``ValueError`` for an unknown flag,
        ``TypeError`` for a value that is not a ``bool``."""
        key = self._flag_name(name)
        if not isinstance(value, bool):
            raise TypeError(f"flag {name!r} value must be a bool, got "
                            f"{type(value).__name__} {value!r}")
        self._flags[key] = value

    def flag(self, name: str) -> bool:
        """The current value of flag ``name``; ``ValueError`` for an unknown flag."""
        return self._flags[self._flag_name(name)]

    def _holds(self, guard: str | None) -> bool:
        """Whether a handler's guard holds now (no guard always holds; ``"!x"`` is not ``x``)."""
        if guard is None:
            return True
        negated = guard.startswith("!")
        name = guard[1:] if negated else guard
        if name not in self._flags:
            raise ValueError(f"guard {guard!r} names unknown flag {name!r}; "
                             f"the flags are {list(self._flags)}")
        return self._flags[name] != negated

    # ------------------------------------------------------------------ hierarchy
    # Hsm.jl: ancestor(), isancestorof(), find_lca()
    def _ancestor(self, s: str) -> str:
        return ROOT if s == ROOT else self._parent[s]

    def _is_ancestor_or_self(self, a: str, s: str) -> bool:
        while True:
            if s == a:
                return True
            if s == ROOT:
                return False
            s = self._parent[s]

    def _lca(self, source: str, target: str) -> str:
        if source == target:
            return self._ancestor(source)
        s = source
        while s != ROOT:
            if self._is_ancestor_or_self(s, target):
                return s
            s = self._parent[s]
        return ROOT

    def _do_exit(self, leaf: str, lca: str, step: Step) -> None:
        s = leaf
        while s != lca and s != ROOT:
            step.exits.append(s)
            step.path.append(("exit", s))
            if s in self._owners:  # the owner records its active leaf (never a final one)
                if leaf in self._finals:
                    self.records.pop(s, None)
                else:
                    self.records[s] = leaf
            s = self._parent[s]

    def _do_entry(self, lca: str, target: str, step: Step) -> None:
        """Enter the states from just below ``lca`` down to ``target``, outermost first."""
        path: list[str] = []
        s = target
        while s != lca and s != ROOT:
            path.append(s)
            s = self._parent[s]
        step.entries.extend(reversed(path))
        step.path.extend(("enter", p) for p in reversed(path))

    def _enter_initial(self, state: str, step: Step) -> None:
        """``state`` has just been entered (or is Root): follow initial transitions to a leaf.

        An initial transition to a deeper descendant ``X`` enters the states between ``state``
        and ``X`` (their own initials are not followed), then ``X``, then goes on from ``X``.
        """
        while True:
            self.current = state
            target = self._initial.get(state)
            if target is None:
                if state in self._composites:
                    raise RuntimeError(f"composite {state!r} entered without an initial state")
                return
            if target == state or not self._is_ancestor_or_self(state, target):
                raise ValueError(f"initial state {target!r} of {state!r} is not a descendant "
                                 f"of {state!r}")
            self._do_entry(state, target, step)
            state = target

    def _transition(self, source: str, target: str, step: Step,
                    history: str | None = None) -> None:
        lca = self._lca(source, target)
        self._do_exit(self.current, lca, step)
        self._do_entry(lca, target, step)
        if history is None:
            self._enter_initial(target, step)
            return
        record = self.records.get(target)
        if record is not None and record != target and self._is_ancestor_or_self(target, record):
            if history == "deep":  # the whole path down to the recorded leaf
                self._do_entry(target, record, step)
                self.current = record
                return
            child = record  # shallow: the recorded leaf's ancestor just below the owner
            while self._parent[child] != target:
                child = self._parent[child]
            self._do_entry(target, child, step)
            self._enter_initial(child, step)
            return
        default = self._defaults.get((target, history))
        if default is None:
            self._enter_initial(target, step)
            return
        self._do_entry(target, default, step)
        self._enter_initial(default, step)

    def _complete(self, step: Step) -> None:
        """Run completion transitions from the leaf just reached until the machine rests."""
        for _ in range(_MAX_CHAIN):
            leaf = self.current
            if leaf in self._finals:
                parent = self._parent[leaf]
                self.records.pop(parent, None)  # entering a final state clears its region
                if parent == ROOT:
                    return  # the machine has completed
                source = parent
            else:
                source = leaf
            chosen = next(((t, h) for g, t, h in self._completions.get(source, ())
                           if self._holds(g)), None)
            if chosen is None:
                return  # no completion transition (or none enabled): discarded
            self._transition(source, chosen[0], step, chosen[1])
        raise RuntimeError(f"completion chain of machine {self._spec.name!r} never rests "
                           f"(now in {self.current!r})")

    def history(self, owner: object) -> str | None:
        """The leaf recorded for history owner ``owner`` (a name, code or member), or None."""
        name = self._spec.states[self._codec.state(owner)]
        if name not in self._owners:
            raise ValueError(f"state {name!r} of machine {self._spec.name!r} keeps no history "
                             f"record; its history owners are {sorted(self._owners)}")
        return self.records.get(name)

    # ------------------------------------------------------------------ queries and dispatch
    @property
    def initial_step(self) -> Step:
        """What the initial transition did: ``entries`` are the states it entered, outermost
        first, Root excluded, ending at the initial leaf (a copy; no exits, no handler)."""
        return dataclasses.replace(self._initial_step, exits=list(self._initial_step.exits),
                                   entries=list(self._initial_step.entries))

    def in_state(self, state: object) -> bool:
        """True if the current leaf is ``state`` or a descendant of it."""
        name = self._spec.states[self._codec.state(state)]
        return self._is_ancestor_or_self(name, self.current)

    def dispatch(self, event: object) -> Step:
        """Dispatch ``event`` under the current flags; return what happened. Unhandled events are
        counted. Flags are never changed."""
        name = self._spec.events[self._codec.event(event)]
        s = self.current
        if s in self._finals and self._parent[s] == ROOT:  # the machine has completed
            self.unhandled += 1
            return Step(False, None)
        while True:
            for h in self._handlers.get((s, name), ()):
                if self._holds(h.guard):
                    step = Step(True, s)
                    if h.target is not None:
                        self._transition(s, h.target, step, h.history)
                        self._complete(step)
                    if self._timers.decls:
                        self._timers.walk(step.path)
                        self._timers.restart(h.restart, lambda o: self._is_ancestor_or_self(
                            o, self.current))
                    return step
            if s == ROOT:
                self.unhandled += 1
                return Step(False, None)
            s = self._parent[s]

    # ------------------------------------------------------------------ timers
    @property
    def now_ns(self) -> int | None:
        """The instance's clock (ns; None for a machine without timers): what entering a state
        or restarting a timer arms from."""
        return self._timers.now_ns if self._timers.decls else None

    @property
    def deadlines(self) -> dict[str, int]:
        """Each timer's deadline by name (``NEVER``: not armed), a copy."""
        return dict(self._timers.deadlines)

    def deadline(self, name: str) -> int:
        """Timer ``name``'s deadline (``NEVER``: not armed); ``TypeError`` / ``ValueError``
        for a name that is not a str or not a declared timer."""
        return self._timers.deadlines[self._timers.name(name)]

    @property
    def skipped_periods(self) -> tuple[int, ...]:
        """Periods each timer skipped (declaration order), as a table's ``skipped_periods``."""
        return tuple(self._timers.skipped.values())

    def advance(self, now_ns: int) -> list[Fired]:
        """Move the clock to ``now_ns`` and fire every due timer: the earliest deadline first
        (ties in declaration order), each dispatched with the clock at its deadline (what it
        arms starts from there), until none is due at ``now_ns``; return them in firing order.
        ``ValueError``: no timers, ``now_ns`` before the clock or beyond ``NEVER`` minus the
        longest delay; ``TypeError``: not an int (nothing changes)."""
        if not self._timers.decls:
            raise ValueError(f"machine {self._spec.name!r} has no timers (declare them with "
                             f"MachineSpec.after / every)")
        now = self._timers.check_clock(now_ns)
        if now < self._timers.now_ns:
            raise ValueError(f"now_ns {now} is before the clock {self._timers.now_ns}: time "
                             f"does not go backwards")
        fired: list[Fired] = []
        while (due := self._timers.next_due(now)) is not None:
            timer, d = due
            self._timers.fire(timer, d, now)
            fired.append(Fired(timer.event, d, timer.name))
            self.dispatch(timer.event)
        self._timers.now_ns = now
        return fired
