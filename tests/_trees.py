"""A random state tree for the differential tests (guards, history, timers), drawn in one
place: states ``S1..Sn`` under ``Root`` (at most :data:`MAX_DEPTH` deep by default), and an
initial transition for Root and every composite (to any descendant, deep initials included)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from streamhsm import MachineSpec
from streamhsm.machine import ROOT

MAX_DEPTH = 3


@dataclass(frozen=True)
class Tree:
    """``states``: ``(name, parent)`` in declaration order; ``initials``: ``(Root or composite,
    the descendant its initial transition enters)``."""

    states: tuple[tuple[str, str], ...]
    initials: tuple[tuple[str, str], ...]

    @property
    def parent_of(self) -> dict[str, str]:
        return dict(self.states)

    @property
    def composites(self) -> list[str]:
        """The composite states, Root excluded, in declaration order."""
        parents = set(self.parent_of.values())
        return [s for s, _ in self.states if s in parents]

    @property
    def leaves(self) -> list[str]:
        parents = set(self.parent_of.values())
        return [s for s, _ in self.states if s not in parents]

    def descendants(self, a: str) -> list[str]:
        """The proper descendants of ``a`` (Root or a state), in declaration order."""
        parent_of, out = self.parent_of, []
        for s, _ in self.states:
            p = s
            while p != ROOT:
                p = parent_of[p]
                if p == a:
                    out.append(s)
                    break
        return out


def draw_tree(draw: st.DrawFn, low: int, high: int, max_depth: int = MAX_DEPTH) -> Tree:
    """A tree of ``low..high`` states at most ``max_depth`` deep with its initial transitions
    (inside an ``@st.composite`` strategy: ``draw`` is its draw function)."""
    n = draw(st.integers(low, high))
    depth = {ROOT: 0}
    states: list[tuple[str, str]] = []
    for i in range(1, n + 1):
        parent = draw(st.sampled_from([ROOT, *(s for s, _ in states if depth[s] < max_depth)]))
        states.append((f"S{i}", parent))
        depth[f"S{i}"] = depth[parent] + 1
    tree = Tree(tuple(states), ())
    initials = tuple((c, draw(st.sampled_from(tree.descendants(c))))
                     for c in [ROOT, *tree.composites])
    return Tree(tree.states, initials)


@dataclass(frozen=True, repr=False)
class TreeDesc:
    """The declared tree of a random machine as plain data (the differentials' ``Desc`` add
    their handlers and the rest): its states and final states, initials, flags and events,
    printable as the code that declares them (:meth:`tree_lines`) or declared
    (:meth:`tree_spec`)."""

    states: tuple[tuple[str, str], ...]
    finals: tuple[str, ...]
    initials: tuple[tuple[str, str], ...]
    flags: tuple[str, ...]
    events: tuple[str, ...]

    def tree_lines(self) -> list[str]:
        init = dict(self.initials)
        out = [f"spec = MachineSpec('rnd', {list(self.events)!r}, initial={init[ROOT]!r})"]
        for s, p in self.states:
            if s in self.finals:
                out.append(f"spec.final({s!r}, {p!r})")
            else:
                out.append(f"spec.state({s!r}, {p!r}, initial={init.get(s)!r})")
        return out + [f"spec.flag({f!r})" for f in self.flags]

    def tree_spec(self) -> MachineSpec:
        init = dict(self.initials)
        spec = MachineSpec("rnd", self.events, initial=init[ROOT])
        for s, p in self.states:
            if s in self.finals:
                spec.final(s, p)
            else:
                spec.state(s, p, initial=init.get(s))
        for f in self.flags:
            spec.flag(f)
        return spec

    def lines(self) -> list[str]:
        return self.tree_lines()

    def __repr__(self) -> str:
        return "\n" + "\n".join(self.lines()) + "\n"
