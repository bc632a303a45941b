"""History and completion at compile time: the UML pseudostates, resolved into programs.

Part of the compiler (pure Python, no engine). A transition is run here as a list of *ops*:

- ``("exit", s)`` / ``("enter", s)``: a state exited or entered, in order;
- ``("set", owner, leaf)``: the owner's history record becomes ``leaf`` (None: cleared);
- ``("read", owner, kind)``: enter ``owner`` through its ``kind`` history pseudostate, whose
  result depends on the record at run time (the ops end there; what follows is the arrival
  program of the leaf it resolves to);
- ``("end", leaf)``: the machine rests in ``leaf``.

A transition's ops are its own exits and entries, then the *arrival* at the leaf it reaches:
a final state clears its parent's record and completes the parent, a simple state with
completion transitions completes at once; the first completion transition whose guard holds
runs as a new segment, and so on until the chain rests. Guards read the slot's flags, which do
not change during a dispatch, so every (leaf, event, flag bitmask) cell has one list of ops.
:meth:`Chains.run` interprets ops against a dict of records (``CompiledMachine.steps`` and the
compile-time initial transition); :func:`encode` packs them for the kernels
(``HSM_KIND_HISTORY`` cells, see ``_kernel.pxd``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import MachineDefinitionError
from .machine import FREE_SLOT, HISTORY_KINDS, ROOT, MachineSpec

__all__ = ["Chains", "Transit", "check_pseudostates", "encode"]

#: Op codes of the packed programs (``uint32``: code | a << 8 | b << 16; the kernel's HSM_OP_*).
OP_END, OP_SET, OP_READ = 0, 1, 2
#: The fast codes of history cells (``Chains.fast_code``; the kernel's ``HSM_FAST_*``), kept
#: in the bits of ``EngineTables.step`` from ``STEP_FAST_SHIFT`` up (6 bits): 0, none (the
#: kernels run the program); ``FAST_WRITE + o`` (o < 31), the program is ``SET o leaf, END``
#: where ``leaf`` is the cell's own leaf (exiting owner ``o``: the commonest history cell; the
#: leaf it rests in is the static leaf below the step bits); ``FAST_READ + row`` (row < 32), the
#: program is one ``READ`` through lut ``row`` and every leaf that row can resolve to rests
#: there (its arrival program under the cell's flag bitmask is just ``END``): the next leaf is
#: ``lut[row][record]``.
FAST_WRITE, FAST_READ, FAST_CODES = 1, 32, 64

Op = tuple[Any, ...]


@dataclass(frozen=True)
class Transit:
    """One transition segment: from ``src`` (the handling or completing state) to ``target``,
    through its ``history`` pseudostate if set."""

    src: int
    target: int
    history: str | None
    #: what the transition is, for messages (``"handler (A, Go) -> B"``); None: derived
    why: str | None = None


class Chains:
    """The pseudostate rules of one validated declaration, over its state tree.

    Args:
        tree: the compiler's ``_Tree`` (codes, parents, children, initial states, ``drill``).
        finals: codes of the final states.
        owners: codes of the history owners, in code order (index = record column).
        defaults: ``(owner, kind) -> target`` of the declared history defaults.
        completions: ``state -> [(guard, target, history)]`` in declaration order; a guard is
            None or has ``holds(mask)``.
    """

    def __init__(self, tree: Any, finals: set[int], owners: Sequence[int],
                 defaults: dict[tuple[int, str], int],
                 completions: dict[int, list[tuple[Any, int, str | None]]]) -> None:
        self.tree = tree
        self.finals = finals
        self.owners = tuple(owners)
        self.owner_index = {o: i for i, o in enumerate(self.owners)}
        self.defaults = defaults
        self.completions = completions
        self._luts: dict[tuple[int, str], np.ndarray] = {}

    # ------------------------------------------------------------------ one segment
    def lca(self, src: int, target: int) -> int:
        """Least common ancestor of a transition (a self-transition is external)."""
        tree = self.tree
        if src == target:
            return int(tree.parent[src]) if src != 0 else 0
        target_up = tree.ancestors(target)
        return next((s for s in tree.ancestors(src) if s in target_up), 0)

    def completion(self, leaf: int, mask: int) -> Transit | None:
        """The completion transition taken on arriving at ``leaf`` under ``mask``, or None."""
        final = leaf in self.finals
        src = int(self.tree.parent[leaf]) if final else leaf
        if final and src == 0:
            return None  # a top-level final state completes the machine
        for guard, target, history in self.completions.get(src, ()):
            if guard is None or guard.holds(mask):
                return Transit(src, target, history)
        return None

    def segment(self, leaf: int, t: Transit, mask: int, stack: tuple[int, ...] = ()) -> list[Op]:
        """The ops of transition ``t`` taken while the active leaf is ``leaf``, through to where
        the chain rests (or to the first history read)."""
        tree = self.tree
        lca = self.lca(t.src, t.target)
        up = tree.ancestors(leaf)
        ops: list[Op] = []
        record = None if leaf in self.finals else leaf
        for x in up[: up.index(lca)]:
            ops.append(("exit", x))
            if x in self.owner_index:
                ops.append(("set", x, record))
        target_up = tree.ancestors(t.target)
        ops += [("enter", s) for s in reversed(target_up[: target_up.index(lca)])]
        if t.history is not None:
            ops.append(("read", t.target, t.history))
            return ops
        why = t.why or (f"completion of {tree.states[t.src]} -> {tree.states[t.target]}")
        new_leaf, drilled = tree.drill(t.target, why)
        ops += [("enter", s) for s in drilled]
        return ops + self.arrive(new_leaf, mask, stack)

    def arrive(self, leaf: int, mask: int, stack: tuple[int, ...] = ()) -> list[Op]:
        """The ops that follow arriving at ``leaf`` (completion chains), ending in ``end`` or
        ``read``. ``stack``: the leaves this chain arrived at before (a repeat never rests)."""
        if leaf in stack:
            names = [self.tree.states[s] for s in (*stack[stack.index(leaf):], leaf)]
            raise MachineDefinitionError(
                f"machine {self.tree.name!r}: completion chain never rests: "
                f"{' -> '.join(names)}{_flags_note(mask)}")
        ops: list[Op] = []
        parent = int(self.tree.parent[leaf])
        if leaf in self.finals and parent in self.owner_index:
            ops.append(("set", parent, None))
        t = self.completion(leaf, mask)
        if t is None:
            ops.append(("end", leaf))
            return ops
        return ops + self.segment(leaf, t, mask, (*stack, leaf))

    # ------------------------------------------------------------------ history entry
    def recordable(self, owner: int, record: int | None) -> bool:
        """True if ``record`` is a leaf a record of ``owner`` can hold (a non-final leaf below
        it)."""
        tree = self.tree
        return (record is not None and 0 < record < len(tree.states) and record != owner
                and not tree.children[record] and record not in self.finals
                and owner in tree.ancestors(record))

    def resolve(self, owner: int, kind: str, record: int | None) -> tuple[list[int], int]:
        """Entering ``owner`` (already entered) through its ``kind`` history with ``record``:
        the states entered below it, outermost first, and the leaf reached."""
        tree = self.tree
        if self.recordable(owner, record):
            assert record is not None
            up = tree.ancestors(record)
            below = list(reversed(up[: up.index(owner)]))
            if kind == "deep":
                return below, record
            child = below[0]
            leaf, drilled = tree.drill(child, f"shallow history of {tree.states[owner]}")
            return [child, *drilled], leaf
        default = self.defaults.get((owner, kind))
        why = f"{kind} history of {tree.states[owner]}"
        if default is None:
            leaf, drilled = tree.drill(owner, why)
            return drilled, leaf
        up = tree.ancestors(default)
        below = list(reversed(up[: up.index(owner)]))
        leaf, drilled = tree.drill(default, why)
        return below + drilled, leaf

    def lut(self, owner: int, kind: str) -> np.ndarray:
        """``lut[record]``: the leaf ``kind`` history of ``owner`` resolves to, for every uint8
        record value (a value no record can hold resolves like no record)."""
        key = (owner, kind)
        if key not in self._luts:
            self._luts[key] = np.array([self.resolve(owner, kind, r)[1]
                                        for r in range(FREE_SLOT + 1)], dtype=np.uint8)
        return self._luts[key]

    @staticmethod
    def fast_code(program: list[int] | np.ndarray, pc: int, leaf: int, mask: int,
                  lut: np.ndarray, arrive: dict[tuple[int, int], int]) -> int:
        """The fast code (see ``FAST_WRITE``) of the history cell of ``leaf`` under flag bitmask
        ``mask`` whose program starts at ``pc``; ``arrive[mask, leaf]`` is where the arrival
        program of a leaf starts. 0 when neither fast form fits (more than one op, a cleared
        record, an owner or lut row beyond the codes, an arrival that completes or reads
        again)."""
        op = int(program[pc])
        code, a, b = op & 0xFF, (op >> 8) & 0xFF, op >> 16
        if code == OP_SET and b == leaf and a < FAST_READ - FAST_WRITE:
            return FAST_WRITE + a if int(program[pc + 1]) & 0xFF == OP_END else 0
        if code == OP_READ and b < FAST_CODES - FAST_READ:
            resting = all(int(program[arrive[mask, int(x)]]) == OP_END | int(x) << 8
                          for x in np.unique(lut[b]))
            return FAST_READ + b if resting else 0
        return 0

    # ------------------------------------------------------------------ interpretation
    def run(self, ops: list[Op], mask: int, records: dict[int, int | None],
            ) -> tuple[list[tuple[str, int]], int]:
        """Run ``ops`` (resolving history reads against ``records``, which the ops update in
        place): the ordered ``("exit" | "enter", state)`` steps and the leaf the chain rests in.
        """
        steps: list[tuple[str, int]] = []
        seen: list[int] = []
        while True:
            for op in ops:
                what = op[0]
                if what in ("exit", "enter"):
                    steps.append((what, op[1]))
                elif what == "set":
                    records[op[1]] = op[2]
                elif what == "end":
                    return steps, op[1]
                else:  # read: the rest depends on the record
                    below, leaf = self.resolve(op[1], op[2], records.get(op[1]))
                    steps += [("enter", s) for s in below]
                    self._no_loop(seen, leaf, mask)
                    ops = self.arrive(leaf, mask)
                    break

    def _no_loop(self, seen: list[int], leaf: int, mask: int) -> None:
        """Refuse a chain that came back, through a history read, to a leaf it reached through
        an earlier one (it would repeat forever)."""
        if leaf in seen:
            names = [self.tree.states[s] for s in (*seen[seen.index(leaf):], leaf)]
            raise MachineDefinitionError(
                f"machine {self.tree.name!r}: completion chain never rests (through history): "
                f"{' -> '.join(names)}{_flags_note(mask)}")
        seen.append(leaf)

    def explore(self, ops: list[Op], mask: int, reached: set[int],
                records: dict[int, int | None] | None = None, seen: tuple[int, ...] = (),
                ) -> tuple[set[int], set[int]]:
        """Every state ``ops`` can enter and every leaf they can rest in, when each history
        read finds no record or a recordable leaf of ``reached`` (unless the ops wrote that
        record themselves, which is then known)."""
        records = {} if records is None else records
        states: set[int] = set()
        for op in ops:
            if op[0] == "enter":
                states.add(op[1])
            elif op[0] == "set":
                records[op[1]] = op[2]
            elif op[0] == "end":
                return states, {op[1]}
            elif op[0] == "read":
                owner, kind = op[1], op[2]
                options: set[int | None] = ({records[owner]} if owner in records else
                                            {None, *(r for r in reached
                                                     if self.recordable(owner, r))})
                leaves: set[int] = set()
                for rec in options:
                    below, leaf = self.resolve(owner, kind, rec)
                    self._no_loop(list(seen), leaf, mask)
                    more_states, more_leaves = self.explore(self.arrive(leaf, mask), mask,
                                                            reached, dict(records),
                                                            (*seen, leaf))
                    states |= set(below) | more_states
                    leaves |= more_leaves
                return states, leaves
        return states, set()

    def check_reads(self, reads: set[tuple[int, str]], masks: int) -> None:
        """Refuse a chain that never rests through history reads: from every leaf a read of
        ``reads`` can resolve to, the arrival chains (each read counting every leaf it can
        resolve to) must not come back to a leaf they passed."""
        edges: dict[tuple[int, int], list[tuple[int, int]]] = {}

        def nexts(node: tuple[int, int]) -> list[tuple[int, int]]:
            if node not in edges:
                leaf, mask = node
                last = self.arrive(leaf, mask)[-1]
                edges[node] = ([(int(x), mask) for x in np.unique(self.lut(last[1], last[2]))]
                               if last[0] == "read" else [])
            return edges[node]

        done: set[tuple[int, int]] = set()
        for owner, kind in sorted(reads):
            for mask in range(masks):
                for start in np.unique(self.lut(owner, kind)):
                    self._dfs((int(start), mask), nexts, done, [])

    def _dfs(self, node: tuple[int, int], nexts: Callable[[tuple[int, int]], list[Any]],
             done: set[tuple[int, int]], path: list[tuple[int, int]]) -> None:
        if node in done:
            return
        if node in path:
            names = [self.tree.states[n[0]] for n in (*path[path.index(node):], node)]
            raise MachineDefinitionError(
                f"machine {self.tree.name!r}: completion chain never rests (through history): "
                f"{' -> '.join(names)}{_flags_note(node[1])}")
        path.append(node)
        for nxt in nexts(node):
            self._dfs(nxt, nexts, done, path)
        path.pop()
        done.add(node)


def _flags_note(mask: int) -> str:
    return f" (flag bitmask {mask})" if mask else ""


def needs_records(ops: list[Op]) -> bool:
    """True if the ops read or write a history record (an ``HSM_KIND_HISTORY`` cell)."""
    return any(op[0] in ("set", "read") for op in ops)


def encode(chains: Chains, ops: list[Op], program: list[int]) -> int:
    """Append the packed form of ``ops`` (records and the end only) to ``program``; return its
    start. ``set``: ``OP_SET | owner index << 8 | leaf << 16`` (``FREE_SLOT``: cleared);
    ``read``: ``OP_READ | owner index << 8 | lut row << 16`` (lut row = owner index * 2 +
    kind); ``end``: ``OP_END | leaf << 8``."""
    start = len(program)
    for op in ops:
        if op[0] == "set":
            leaf = FREE_SLOT if op[2] is None else op[2]
            program.append(OP_SET | chains.owner_index[op[1]] << 8 | leaf << 16)
        elif op[0] == "read":
            idx = chains.owner_index[op[1]]
            program.append(OP_READ | idx << 8 | (idx * 2 + HISTORY_KINDS.index(op[2])) << 16)
        elif op[0] == "end":
            program.append(OP_END | op[1] << 8)
    return start


def check_pseudostates(spec: MachineSpec, tree: Any) -> None:
    """The declaration rules of final states, completions and history (the culprit named):
    a final state has no children, handlers, initial or completion of its own; a history target
    or owner is a composite other than Root; a default is a proper descendant of its owner, one
    per (owner, kind); a composite's completion needs a final child; Root completes nothing."""
    err, name, code = MachineDefinitionError, spec.name, tree.code
    finals = set(spec.finals)
    for f in spec.finals:
        if tree.children[code[f]]:
            kids = [tree.states[c] for c in tree.children[code[f]]]
            raise err(f"machine {name!r}: final state {f!r} has children {kids}")
        if f in spec.initials:
            raise err(f"machine {name!r}: final state {f!r} declares an initial state")
    for h in spec.declared_handlers:
        if h.state in finals:
            raise err(f"machine {name!r}: final state {h.state!r} has a handler for "
                      f"{h.event!r} (a final state handles nothing itself)")

    def composite(state: str, why: str) -> None:
        if state not in code:
            raise err(f"machine {name!r}: {why} names unknown state {state!r}")
        if state == ROOT or not tree.children[code[state]]:
            what = "Root keeps no history" if state == ROOT else "it has no children"
            raise err(f"machine {name!r}: {why} targets {state!r} with history, but {what}")

    for h in spec.declared_handlers:
        if h.history is not None and h.target is not None:
            composite(h.target, f"handler ({h.state}, {h.label()}) history={h.history!r}")
    seen: set[tuple[str, str]] = set()
    for d in spec.history_defaults:
        composite(d.owner, f"history_default({d.owner!r}, {d.target!r})")
        if d.target not in code:
            raise err(f"machine {name!r}: history default of {d.owner!r} has unknown target "
                      f"{d.target!r}")
        if d.target == d.owner or code[d.owner] not in tree.ancestors(code[d.target]):
            raise err(f"machine {name!r}: history default {d.target!r} of {d.owner!r} is not a "
                      f"proper descendant of {d.owner!r}")
        if (d.owner, d.history) in seen:
            raise err(f"machine {name!r}: two {d.history} history defaults for {d.owner!r}")
        seen.add((d.owner, d.history))
    for c in spec.completions:
        if c.state not in code:
            raise err(f"machine {name!r}: completion transition on unknown state {c.state!r}")
        if c.target not in code:
            raise err(f"machine {name!r}: completion transition of {c.state!r} has unknown "
                      f"target {c.target!r}")
        if c.state == ROOT:
            raise err(f"machine {name!r}: Root has no completion transition")
        if c.state in finals:
            raise err(f"machine {name!r}: final state {c.state!r} has a completion transition "
                      f"(it completes its parent instead)")
        kids = tree.children[code[c.state]]
        if kids and not any(tree.states[k] in finals for k in kids):
            raise err(f"machine {name!r}: completion transition of composite {c.state!r} can "
                      f"never run: it has no final child")
        if c.history is not None:
            composite(c.target, f"completion of {c.state!r} history={c.history!r}")


def static_leaf(program: list[int], pc: int) -> int:
    """The leaf the history program starting at ``pc`` rests in if it reads no record (only
    ``OP_SET`` ops before its ``OP_END``), else ``FREE_SLOT``: the batch kernels count a
    write-only cell's arrival in the fold, a reading cell's on the spot (``EngineTables.step``)."""
    while program[pc] & 0xFF == OP_SET:
        pc += 1
    return (program[pc] >> 8) & 0xFF if program[pc] & 0xFF == OP_END else FREE_SLOT

