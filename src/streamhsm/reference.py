"""A pure-Python reference interpreter for :class:`~streamhsm.machine.MachineSpec`.

It walks the *declared* hierarchy at run time, the way Hsm.jl's ``dispatch!`` / ``transition!``
do (try the current leaf, then each ancestor up to Root; exit up to the least common ancestor,
enter down to the target, then follow initial children). It never looks at the compiled tables,
so tests use it as the oracle the compiled tables are compared against. It is slow on purpose.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._engine import MachineCodec
from .machine import ROOT, MachineSpec

__all__ = ["ReferenceMachine", "Step"]


@dataclass
class Step:
    """What one reference dispatch did."""

    handled: bool
    handler: str | None  # the state whose handler ran
    exits: list[str] = field(default_factory=list)  # innermost first
    entries: list[str] = field(default_factory=list)  # outermost first


class ReferenceMachine:
    """One machine instance interpreted from its declaration.

    States and events are given as names, int codes, or members of the spec's event enum (and of
    ``state_enum``, if given), converted by the same :class:`~streamhsm._engine.MachineCodec` as
    the compiled engine: a member of another enum is a ``TypeError``.
    """

    def __init__(self, spec: MachineSpec, *, state_enum: type[enum.IntEnum] | None = None) -> None:
        self._spec = spec
        self._codec = MachineCodec(spec.name, spec.states, spec.events, state_enum,
                                   spec.event_enum)
        self._parent = spec.parents
        self._initial = spec.initials
        self._handlers = spec.handlers
        self._children = {s for s in self._parent.values()}
        self.unhandled = 0
        self.current = ROOT
        self._on_initial(ROOT, Step(True, None))

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
            s = self._parent[s]

    def _do_entry(self, lca: str, target: str, step: Step) -> None:
        if target == lca or target == ROOT:
            return
        self._do_entry(lca, self._parent[target], step)
        step.entries.append(target)

    def _on_initial(self, state: str, step: Step) -> None:
        child = self._initial.get(state)
        if child is not None:
            self._transition(state, child, step)
        elif state in self._children:
            raise RuntimeError(f"composite {state!r} entered without an initial child")

    def _transition(self, source: str, target: str, step: Step) -> None:
        lca = self._lca(source, target)
        self._do_exit(self.current, lca, step)
        self._do_entry(lca, target, step)
        self.current = target
        self._on_initial(target, step)

    def in_state(self, state: object) -> bool:
        """True if the current leaf is ``state`` or a descendant of it."""
        name = self._spec.states[self._codec.state(state)]
        return self._is_ancestor_or_self(name, self.current)

    def dispatch(self, event: object) -> Step:
        """Dispatch ``event``; return what happened. Unhandled events are counted."""
        name = self._spec.events[self._codec.event(event)]
        s = self.current
        while True:
            if (s, name) in self._handlers:
                target = self._handlers[(s, name)]
                step = Step(True, s)
                if target is not None:
                    self._transition(s, target, step)
                return step
            if s == ROOT:
                self.unhandled += 1
                return Step(False, None)
            s = self._parent[s]
