"""The compiler: validate a :class:`~streamhsm.machine.MachineSpec` and build every table the
engine runs, inside an immutable :class:`CompiledMachine`.

Layers point down: declaration (:mod:`streamhsm.machine`) <- compiler (this module) <- kernels
(``_kernel.pxd``, ``_batch.pxd``) <- table and instance classes (``_table.pyx``,
``_instance.pyx``) <- the Python API. The compiler imports no compiled module: the engine takes
its tables (:class:`EngineTables`) and its codec from the machine, as built here, and never
writes anything onto it.
"""

from __future__ import annotations

import copy
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._codec import MachineCodec
from ._engine_tables import (
    CODE_ROWS,
    KIND_HISTORY,
    KIND_INTERNAL,
    KIND_TRANSITION,
    KIND_UNHANDLED,
    STEP_MOVED,
    STEP_UNHANDLED,
    EngineTables,
    _Immutable,
    pack_flags,
    table_arrays,
    table_layout,
)
from ._pseudo import Chains, Transit, check_pseudostates, encode, needs_records, static_leaf
from ._timer_tables import check_timers, compile_timers
from ._views import readonly_view
from .errors import MachineDefinitionError
from .machine import (
    FREE_SLOT,
    MAX_EVENTS,
    MAX_FLAGS,
    MAX_STATES,
    HandlerDecl,
    MachineSpec,
    camel_to_upper,
)

__all__ = [
    "CODE_ROWS",
    "KIND_HISTORY",
    "KIND_INTERNAL",
    "KIND_TRANSITION",
    "KIND_UNHANDLED",
    "STEP_MOVED",
    "STEP_UNHANDLED",
    "CompiledMachine",
    "EngineTables",
    "check_machine",
    "compile_spec",
    "local_scratch",
    "pack_flags",
    "table_arrays",
    "table_layout",
]


def local_scratch(machine: CompiledMachine, stack_cells: int, max_cells: int) -> np.ndarray | None:
    """The zeroed scratch array of a table's batch-local transition counts (uint32, one per
    (row, event) cell), or None if the cells fit in ``stack_cells`` on the stack or exceed
    ``max_cells`` (batches then run event by event): the kernel's ``HSM_STACK_CELLS`` and
    ``HSM_LOCAL_MAX_CELLS``."""
    cells = (CODE_ROWS << machine.n_flags) * machine.n_events
    if cells <= stack_cells or cells > max_cells:
        return None
    return np.zeros(cells, np.uint32)


def check_machine(machine: object) -> None:
    """Raise ``TypeError`` unless ``machine`` is a :class:`CompiledMachine` (the engines' entry
    check; an uncompiled :class:`~streamhsm.machine.MachineSpec` gets a hint to compile it)."""
    if not isinstance(machine, CompiledMachine):
        hint = " (call spec.compile() first)" if isinstance(machine, MachineSpec) else ""
        raise TypeError(f"machine must be a CompiledMachine, got {type(machine).__name__}{hint}")


class CompiledMachine(_Immutable):
    """A machine flattened into numpy tables indexed by ``(state code, event code)``.

    Immutable: every attribute is set when the machine is compiled (assigning or deleting one
    raises ``AttributeError``) and every array is read-only, so the engine's raw pointers and
    sizes, bound from them once, stay valid.

    Rows exist for every state code but only leaf rows are ever used (the current state is always
    a leaf). Attributes (all read-only numpy arrays):

    - ``next_state[s, e]`` (uint8): the leaf the machine is in after dispatching ``e`` in leaf
      ``s``.
    - ``handled[s, e]`` (uint8): 1 if some state handled the event, 0 if it went unhandled.
    - ``handler[s, e]`` (int16): code of the state whose handler ran, -1 if unhandled.
    - ``exit_path[s, e, :]`` / ``entry_path[s, e, :]`` (int16): states exited (innermost first)
      and entered (outermost first), padded with -1.
    - ``parent`` (int16, -1 for Root), ``depth`` (uint8), ``is_leaf`` (bool).

    A machine with ``k >= 1`` flags has a leading flags axis of size ``2**k`` on ``next_state``,
    ``handled``, ``handler``, ``exit_path`` and ``entry_path``: ``next_state[mask, s, e]`` is
    the leaf after ``e`` in ``s`` while the flags are ``mask`` (bit ``i`` = ``flag_names[i]``).
    """

    def __init__(
        self,
        spec: MachineSpec,
        state_enum: type[enum.IntEnum],
        event_enum: type[enum.IntEnum],
        *,
        parent: np.ndarray,
        initial_entries: Sequence[int],
        next_state: np.ndarray,
        handled: np.ndarray,
        handler: np.ndarray,
        exit_path: np.ndarray,
        entry_path: np.ndarray,
        pseudo: _PseudoTables | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.State = state_enum
        self.Event = event_enum
        self.state_names: tuple[str, ...] = spec.states
        self.event_names: tuple[str, ...] = spec.events
        #: The declared flag names (bit ``i`` of a flag bitmask is ``flag_names[i]``).
        self.flag_names: tuple[str, ...] = spec.flags
        self.n_flags = len(self.flag_names)
        self.n_states = len(self.state_names)
        self.n_events = len(self.event_names)
        #: States entered by the machine's initial transition, as codes, outermost first, Root
        #: excluded, ending at the initial leaf (the form of :meth:`entries`).
        self.initial_entries: tuple[int, ...] = tuple(int(s) for s in initial_entries)
        self.initial_leaf = self.initial_entries[-1]
        self.parent = _frozen(parent)
        depth = np.zeros(self.n_states, dtype=np.uint8)
        for s in range(1, self.n_states):
            depth[s] = depth[parent[s]] + 1 if parent[s] > 0 else 1
        self.depth = _frozen(depth)
        is_leaf = np.ones(self.n_states, dtype=bool)
        is_leaf[parent[parent >= 0]] = False
        self.is_leaf = _frozen(is_leaf)
        self.next_state = _frozen(next_state)
        self.handled = _frozen(handled)
        self.handler = _frozen(handler)
        self.exit_path = _frozen(exit_path)
        self.entry_path = _frozen(entry_path)
        # leaves under each state (itself if a leaf): count(composite) = sum over these
        under: list[tuple[int, ...]] = []
        for s in range(self.n_states):
            under.append(tuple(leaf for leaf in range(self.n_states)
                               if is_leaf[leaf] and self.is_ancestor_or_self(s, leaf)))
        self.leaves_under: tuple[tuple[int, ...], ...] = tuple(under)
        #: ``State`` members by code (looked up by value: an enum may declare its members in
        #: any order).
        self.state_members: tuple[enum.IntEnum, ...] = tuple(
            state_enum(code) for code in range(self.n_states))
        #: The one state/event conversion of this machine, shared by every engine entry point.
        self.codec = MachineCodec(self.name, self.state_names, self.event_names,
                                  state_enum, event_enum)
        #: Codes of the final states, in code order.
        self.final_states: tuple[int, ...] = tuple(
            sorted(self.codec.state(f) for f in spec.finals))
        #: Codes of the states that keep a history record (column ``i`` of the records is
        #: ``history_owners[i]``), in code order; empty for a machine without history.
        self.history_owners: tuple[int, ...] = () if pseudo is None else pseudo.chains.owners
        #: The records of a freshly opened slot: ``owner code -> leaf code`` (only owners a
        #: completion chain of the initial transition exits; usually empty).
        self.initial_records: dict[int, int] = ({} if pseudo is None else {
            o: int(r) for o, r in zip(self.history_owners, pseudo.initial_records, strict=True)
            if r != FREE_SLOT})
        self._pseudo = pseudo
        #: The tables the compiled engine runs (padded to one row per uint8 code, read-only).
        self.engine_tables = EngineTables(self, pseudo)
        #: The machine's timers (:class:`~streamhsm._timer_tables.TimerTables`), or None.
        self.timers = compile_timers(self)
        self._seal()

    def __repr__(self) -> str:
        flags = f", {self.n_flags} flags" if self.n_flags else ""
        return (f"<CompiledMachine {self.name!r}: {self.n_states} states, "
                f"{self.n_events} events{flags}>")

    @property
    def fingerprint(self) -> str:
        """A short hex digest of everything that changes behaviour: the names, the tree, the
        initial transition, and every table dispatching reads or reports (next leaf, handled,
        handler, exit and entry paths, which also tell a transition from an event handled in
        place); a machine with flags also hashes its flag names and guarded handlers. Equal
        fingerprints mean equal behaviour. (streamhsm 0.2 hashed less: the registry maps the
        built-in machines' 0.2 fingerprints to these, so their snapshots still load.)"""
        h = hashlib.sha256()
        h.update(repr((self.state_names, self.event_names, self.initial_entries)).encode())
        for arr in (self.parent, self.next_state, self.handled, self.handler, self.exit_path,
                    self.entry_path):
            h.update(repr((arr.dtype.str, arr.shape)).encode())
            h.update(arr.tobytes())
        if self.n_flags:
            guards = [(d.state, d.event, d.target, d.guard) for d in self.spec.declared_handlers]
            h.update(repr((self.flag_names, guards)).encode())
        spec = self.spec
        if spec.finals or spec.completions or spec.history_owners:
            pseudo = (spec.finals, spec.completions, spec.history_defaults,
                      [(d.state, d.event, d.target, d.guard, d.history)
                       for d in spec.declared_handlers])
            h.update(repr(pseudo).encode())
        if spec.timers:  # a machine without timers keeps its fingerprint
            h.update(repr((spec.timers, [d.restart for d in spec.declared_handlers])).encode())
        return h.hexdigest()[:16]

    def is_ancestor_or_self(self, ancestor: int, state: int) -> bool:
        """True if state code ``ancestor`` is ``state`` or one of its ancestors (Root is every
        state's ancestor)."""
        s = state
        while s >= 0:
            if s == ancestor:
                return True
            s = int(self.parent[s])
        return False

    def state_code(self, state: object) -> int:
        """Code of a state given as this machine's ``State`` member, int code or name;
        ``ValueError`` if unknown, ``TypeError`` if of the wrong type (another enum included)."""
        return self.codec.state(state)

    def event_code(self, event: object) -> int:
        """Code of an event given as this machine's ``Event`` member, int code or CamelCase
        name; ``ValueError`` if unknown, ``TypeError`` if of the wrong type (another enum
        included)."""
        return self.codec.event(event)

    def flag_bit(self, name: object) -> int:
        """Bit number of flag ``name`` (its index in :attr:`flag_names`).

        Raises:
            TypeError: ``name`` is not a str.
            ValueError: the machine declares no such flag.
        """
        if not isinstance(name, str):
            raise TypeError(f"flag name must be a str, got {type(name).__name__} {name!r}")
        try:
            return self.flag_names.index(name)
        except ValueError:
            raise ValueError(f"unknown flag {name!r} for machine {self.name!r}; "
                             f"its flags are {list(self.flag_names)}") from None

    def flag_mask(self, flags: object) -> int:
        """``flags`` checked as a flag bitmask of this machine (an int in ``0..2**n_flags - 1``)."""
        if isinstance(flags, bool) or not isinstance(flags, (int, np.integer)):
            raise TypeError(f"flags must be an int bitmask, got {type(flags).__name__} {flags!r}")
        if not 0 <= int(flags) < (1 << self.n_flags):
            raise ValueError(f"flags bitmask {int(flags)} out of range for machine {self.name!r} "
                             f"with {self.n_flags} flags (valid: 0..{(1 << self.n_flags) - 1})")
        return int(flags)

    def _path(self, table: np.ndarray, leaf: object, event: object,
              flags: object) -> tuple[int, ...]:
        key = (self.state_code(leaf), self.event_code(event))
        mask = self.flag_mask(flags)
        row = table[(mask, *key)] if self.n_flags else table[key]
        return tuple(int(x) for x in row if x >= 0)

    def exits(self, leaf: object, event: object, *, flags: object = 0) -> tuple[int, ...]:
        """States exited (innermost first) when ``event`` is dispatched in ``leaf`` while the
        flag bitmask is ``flags``."""
        return self._path(self.exit_path, leaf, event, flags)

    def entries(self, leaf: object, event: object, *, flags: object = 0) -> tuple[int, ...]:
        """States entered (outermost first) when ``event`` is dispatched in ``leaf`` while the
        flag bitmask is ``flags``."""
        return self._path(self.entry_path, leaf, event, flags)

    def history_owner(self, owner: object) -> int:
        """Column of the history records of ``owner`` (a state given as a member, code or
        name): its index in :attr:`history_owners`.

        Raises:
            TypeError / ValueError: not a state of this machine (see :meth:`state_code`).
            ValueError: the state keeps no history record.
        """
        code = self.state_code(owner)
        try:
            return self.history_owners.index(code)
        except ValueError:
            owners = [self.state_names[o] for o in self.history_owners]
            raise ValueError(f"state {self.state_names[code]!r} of machine {self.name!r} keeps "
                             f"no history record; its history owners are {owners}") from None

    def steps(self, state: object, event: object, flags: object = 0,
              history: object = None) -> list[tuple[str, str]]:
        """The ordered ``[("exit" | "enter", state_name), ...]`` of dispatching ``event`` in
        leaf ``state`` under the flag bitmask ``flags``, completion chains included (final and
        transient states appear like any other state); empty for an event handled without a
        transition or unhandled.

        ``history`` maps an owner (name, code or member) to its recorded leaf (None: no
        record), for transitions that enter an owner through its history; owners not in it have
        no record. Records the transition itself writes on the way are used by later reads.

        Raises:
            TypeError / ValueError: an unknown or mistyped state, event, flag bitmask or history
                entry; ``state`` not a leaf; a history key that keeps no record, or a value that
                is not a non-final leaf below its owner.
        """
        leaf, e = self.state_code(state), self.event_code(event)
        mask = self.flag_mask(flags)
        if leaf == 0 or not self.is_leaf[leaf]:
            raise ValueError(f"state {self.state_names[leaf]!r} of machine {self.name!r} is not "
                             f"a leaf state")
        records = self._history_records(history)
        key = (mask, leaf, e) if self.n_flags else (leaf, e)
        src = int(self.handler[key])
        if src < 0 or self._pseudo is None and self.exit_path[key][0] < 0:
            return []
        if self._pseudo is None:
            path = [("exit", s) for s in self.exits(leaf, e, flags=mask)]
            path += [("enter", s) for s in self.entries(leaf, e, flags=mask)]
            return [(w, self.state_names[s]) for w, s in path]
        chains, table = self._pseudo.chains, self._pseudo.handlers
        target, hist = next((t, h) for g, t, h in table[(src, e)]
                            if g is None or g.holds(mask))
        if target is None:
            return []
        ops = chains.segment(leaf, Transit(src, target, hist), mask)
        path, _ = chains.run(ops, mask, records)
        return [(w, self.state_names[s]) for w, s in path]

    def _history_records(self, history: object) -> dict[int, int | None]:
        if history is None:
            return {}
        if not isinstance(history, dict):
            raise TypeError(f"history must be a dict mapping an owner to its recorded leaf, got "
                            f"{type(history).__name__} {history!r}")
        records: dict[int, int | None] = {}
        for owner, leaf in history.items():
            code = self.history_owners[self.history_owner(owner)]
            if leaf is None:
                records[code] = None
                continue
            rec = self.state_code(leaf)
            assert self._pseudo is not None
            if not self._pseudo.chains.recordable(code, rec):
                raise ValueError(f"history record {self.state_names[rec]!r} of "
                                 f"{self.state_names[code]!r} is not a non-final leaf below it")
            records[code] = rec
        return records


def _frozen(arr: np.ndarray) -> np.ndarray:
    return readonly_view(arr)


def _make_enum(name: str, names: Sequence[str], start: int) -> type[enum.IntEnum]:
    return enum.IntEnum(name, [(camel_to_upper(n), start + i) for i, n in enumerate(names)])  # type: ignore[return-value]


def _check_enum(enum_cls: type[enum.IntEnum], names: Sequence[str], what: str) -> None:
    for code, n in enumerate(names):
        member = camel_to_upper(n)
        got = getattr(enum_cls, member, None)
        if got is None or int(got) != code:
            raise MachineDefinitionError(
                f"{what} enum {enum_cls.__name__} does not match the declaration: "
                f"{member} should have code {code}, got {got!r}"
            )
    if len(enum_cls) != len(names):
        raise MachineDefinitionError(
            f"{what} enum {enum_cls.__name__} has {len(enum_cls)} members, "
            f"the declaration has {len(names)}"
        )


@dataclass
class _Tree:
    """The validated state tree of a declaration: codes, parents, children, initial states."""

    name: str
    states: tuple[str, ...]
    code: dict[str, int]
    parent: np.ndarray
    children: dict[int, list[int]]
    initial: dict[int, int]  # state -> the descendant its initial transition enters

    def ancestors(self, s: int) -> list[int]:
        """``s``, its parent, ..., Root."""
        out = [s]
        while s != 0:
            s = int(self.parent[s])
            out.append(s)
        return out

    def drill(self, s: int, why: str) -> tuple[int, list[int]]:
        """Follow initial transitions from ``s`` down to a leaf; return (leaf, states entered).

        An initial transition to a deeper descendant enters every state on the way down to it
        (without following their own initials), then goes on from it."""
        entered: list[int] = []
        while self.children[s]:
            if s not in self.initial:
                raise MachineDefinitionError(
                    f"machine {self.name!r}: {why} enters composite state {self.states[s]!r}, "
                    f"which has no initial state"
                )
            target = self.initial[s]
            up = self.ancestors(target)
            entered += reversed(up[: up.index(s)])
            s = target
        return s, entered


@dataclass(frozen=True)
class _Guard:
    """A compiled guard: flag bit ``bit`` must be ``value``; holds(mask) for a flag bitmask."""

    bit: int
    value: bool

    def holds(self, mask: int) -> bool:
        return bool(mask >> self.bit & 1) == self.value


#: (state code, event code) -> [(guard or None, target code or None, history kind or None)]
#: in declaration order
_HandlerTable = dict[tuple[int, int], list[tuple["_Guard | None", "int | None", "str | None"]]]


@dataclass
class _PseudoTables:
    """History and completion of a compiled machine: the rules (``chains``), the handler table,
    and the packed programs of the ``KIND_HISTORY`` cells (see :class:`EngineTables`)."""

    chains: Chains
    handlers: _HandlerTable
    n_owners: int
    cells: dict[tuple[int, int, int], int]       # (mask, leaf, event) -> program start
    arrive: dict[tuple[int, int], int]           # (mask, leaf) -> program start
    program: np.ndarray                          # uint32
    lut: np.ndarray                              # uint8 (2 * n_owners, CODE_ROWS)
    initial_records: np.ndarray                  # uint8 (n_owners,)
    static: dict[tuple[int, int, int], int]      # cells' leaf if they read no record, or FREE_SLOT


@dataclass
class _Tables:
    """The flat tables indexed by ([flag mask,] leaf state, event)."""

    next_state: np.ndarray
    handled: np.ndarray
    handler: np.ndarray
    exit_path: np.ndarray
    entry_path: np.ndarray


def _check_names(spec: MachineSpec) -> None:
    """Sizes within the uint8 codes and the flag limit, at least one event, names that are
    unique identifiers."""
    err, name, states = MachineDefinitionError, spec.name, spec.states
    if len(states) > MAX_STATES:
        raise err(f"machine {name!r} has {len(states)} states; at most {MAX_STATES} are supported")
    if not spec.events:
        raise err(f"machine {name!r} declares no events")
    if len(spec.events) > MAX_EVENTS:
        raise err(f"machine {name!r} has {len(spec.events)} events; at most {MAX_EVENTS} are "
                  "supported")
    if len(spec.flags) > MAX_FLAGS:
        raise err(f"machine {name!r}: flag {spec.flags[MAX_FLAGS]!r} is one too many; at most "
                  f"{MAX_FLAGS} flags are supported, declared {list(spec.flags)}")
    for what, names in (("state", states), ("event", spec.events), ("flag", spec.flags)):
        for n in names:
            if not isinstance(n, str) or not n.isidentifier():
                raise err(f"machine {name!r}: {what} name {n!r} is not an identifier")
    spec.check_unique()  # shared with the reference interpreter
    for what, names in (("state", states), ("event", spec.events)):
        members: dict[str, str] = {}
        for n in names:
            # states and events become enum members: names the enum reserves (``_x``,
            # ``__init__``) would not be members, and two names of one member would be one
            member = camel_to_upper(n)
            if member.startswith("_"):
                raise err(f"machine {name!r}: {what} name {n!r} starts with an underscore, which "
                          f"an enum reserves (its member {member!r} would not be a member)")
            if member in members:
                raise err(f"machine {name!r}: {what} names {members[member]!r} and {n!r} both "
                          f"become the enum member {member!r}")
            members[member] = n


def _build_tree(spec: MachineSpec) -> _Tree:
    """Parents (known, acyclic), children, and initial states (each a proper descendant)."""
    err, name, states = MachineDefinitionError, spec.name, spec.states
    spec.check_parents()  # known parents, no cycle (shared with the reference interpreter)
    code = {s: i for i, s in enumerate(states)}
    parent = np.full(len(states), -1, dtype=np.int16)
    for s, p in spec._states:
        parent[code[s]] = code[p]
    children: dict[int, list[int]] = {i: [] for i in range(len(states))}
    for i in range(1, len(states)):
        children[int(parent[i])].append(i)
    if not children[0]:
        raise err(f"machine {name!r} declares no states")
    tree = _Tree(name, states, code, parent, children, {})
    spec.check_initials()  # known, proper descendants (shared likewise)
    for s, target in spec._initial.items():
        tree.initial[code[s]] = code[target]
    return tree


def _guard(spec: MachineSpec, h: Any, what: str = "") -> _Guard | None:
    if h.guard is None:
        return None
    flag = h.guard.removeprefix("!")
    if flag not in spec.flags:
        what = what or f"handler ({h.state}, {h.label()})"
        raise MachineDefinitionError(
            f"machine {spec.name!r}: {what} names unknown flag "
            f"{flag!r}; declared flags: {list(spec.flags)}")
    return _Guard(spec.flags.index(flag), not h.guard.startswith("!"))


def _completion_table(spec: MachineSpec, tree: _Tree,
                      ) -> dict[int, list[tuple[_Guard | None, int, str | None]]]:
    """``state -> [(guard, target, history)]`` of the completion transitions, in declaration
    order, refusing one that can never run (an earlier one always runs first)."""
    masks = range(1 << len(spec.flags))
    out: dict[int, list[tuple[_Guard | None, int, str | None]]] = {}
    for c in spec.completions:
        what = f"completion of {c.state!r}{' ' + c.label() if c.guard else ''} -> {c.target!r}"
        guard = _guard(spec, c, what)
        rows = out.setdefault(tree.code[c.state], [])
        if not any(guard is None or guard.holds(m)
                   for m in masks if not any(g is None or g.holds(m) for g, _, _ in rows)):
            raise MachineDefinitionError(
                f"machine {spec.name!r}: {what} can never run: the completion transitions of "
                f"{c.state!r} declared before it always run first")
        rows.append((guard, tree.code[c.target], c.history))
    return out


def _handler_table(spec: MachineSpec, tree: _Tree) -> _HandlerTable:
    """``(state, event) -> [(guard, target)]`` in declaration order (target None: handled
    without a transition), refusing handlers that could never run."""
    err, name, code = MachineDefinitionError, spec.name, tree.code
    ev_code = {e: i for i, e in enumerate(spec.events)}
    masks = range(1 << len(spec.flags))
    table: _HandlerTable = {}
    decls: dict[tuple[int, int], list[HandlerDecl]] = {}
    for h in spec._handlers:
        if h.state not in code:
            raise err(f"machine {name!r}: handler for event {h.event!r} on unknown state "
                      f"{h.state!r}")
        if h.event not in ev_code:
            raise err(f"machine {name!r}: handler on state {h.state!r} for unknown event "
                      f"{h.event!r}")
        if h.target is not None and h.target not in code:
            raise err(
                f"machine {name!r}: handler ({h.state}, {h.label()}) has unknown target "
                f"{h.target!r}"
            )
        guard = _guard(spec, h)
        key = (code[h.state], ev_code[h.event])
        earlier = decls.setdefault(key, [])
        if guard is None and any(d.guard is None for d in earlier):
            raise err(f"machine {name!r}: duplicate handler for ({h.state}, {h.event}): two "
                      f"unguarded handlers")
        rows = table.setdefault(key, [])
        if not any(guard is None or guard.holds(m)
                   for m in masks if not any(g is None or g.holds(m) for g, _, _ in rows)):
            before = ", ".join(f"({d.state}, {d.label()})" for d in earlier)
            raise err(f"machine {name!r}: handler ({h.state}, {h.label()}) can never run: "
                      f"the handlers declared before it ({before}) always run first")
        rows.append((guard, None if h.target is None else code[h.target], h.history))
        earlier.append(h)
    return table


def _flatten_mask(
    tree: _Tree, events: tuple[str, ...], table: _HandlerTable, mask: int, chains: Chains,
    programs: dict[tuple[int, int, int], list[Any]],
) -> tuple[list[list[Any]], ...]:
    """Resolve every (leaf, event) under flag bitmask ``mask``: the handling state (innermost
    first, its first handler whose guard holds), the exits up to the least common ancestor, the
    entries down to the target and on through initial states and completion chains. A cell that
    reads or writes history records goes into ``programs`` (its tables hold the outcome with no
    record). Returns (next_state, handled, handler, exits, entries) as nested lists."""
    states = tree.states
    n_s, n_e = len(states), len(events)
    nxt = [[leaf] * n_e for leaf in range(n_s)]
    handled = [[0] * n_e for _ in range(n_s)]
    handler = [[-1] * n_e for _ in range(n_s)]
    exits: list[list[list[int]]] = [[[] for _ in range(n_e)] for _ in range(n_s)]
    entries: list[list[list[int]]] = [[[] for _ in range(n_e)] for _ in range(n_s)]

    def runs(s: int, e: int) -> tuple[bool, int | None, str | None]:
        for guard, target, history in table.get((s, e), ()):
            if guard is None or guard.holds(mask):
                return True, target, history
        return False, None, None

    for leaf in range(n_s):
        if leaf in chains.finals and tree.parent[leaf] == 0:
            continue  # a top-level final state: the machine has completed, nothing is handled
        up = tree.ancestors(leaf)
        for e in range(n_e):
            found = next(((s, r) for s in up for r in [runs(s, e)] if r[0]), None)
            if found is None:
                continue
            src, (_, target, history) = found
            handled[leaf][e] = 1
            handler[leaf][e] = src
            if target is None:
                continue
            why = f"handler ({states[src]}, {events[e]}) -> {states[target]}"
            ops = chains.segment(leaf, Transit(src, target, history, why), mask)
            if needs_records(ops):
                programs[(mask, leaf, e)] = ops
            path, new_leaf = chains.run(ops, mask, {})
            nxt[leaf][e] = new_leaf
            exits[leaf][e] = [st for w, st in path if w == "exit"]
            entries[leaf][e] = [st for w, st in path if w == "enter"]
    return nxt, handled, handler, exits, entries


def _flatten(
    tree: _Tree, events: tuple[str, ...], table: _HandlerTable, n_flags: int, chains: Chains,
    programs: dict[tuple[int, int, int], list[Any]],
) -> _Tables:
    """The tables of every flag bitmask, stacked on a leading axis of size ``2**n_flags``; a
    flag-free machine has no such axis."""
    per_mask = [_flatten_mask(tree, events, table, m, chains, programs)
                for m in range(1 << n_flags)]
    # deepest exit or entry path: a leaf's ancestors, or longer through completion chains
    max_depth = max(len(tree.ancestors(s)) for s in range(len(tree.states)))
    for t in per_mask:
        for paths in (t[3], t[4]):
            max_depth = max([max_depth, *(len(p) for row in paths for p in row)])

    def padded(paths: list[list[list[int]]]) -> np.ndarray:
        out = np.full((len(paths), len(events), max_depth), -1, dtype=np.int16)
        for s, row in enumerate(paths):
            for e, p in enumerate(row):
                out[s, e, : len(p)] = p
        return out

    tabs = [_Tables(np.array(t[0], np.uint8).reshape(len(tree.states), len(events)),
                    np.array(t[1], np.uint8).reshape(len(tree.states), len(events)),
                    np.array(t[2], np.int16).reshape(len(tree.states), len(events)),
                    padded(t[3]), padded(t[4])) for t in per_mask]
    if n_flags == 0:
        return tabs[0]
    return _Tables(*(np.stack([getattr(t, f) for t in tabs])
                     for f in ("next_state", "handled", "handler", "exit_path", "entry_path")))


def _check_reachable(tree: _Tree, tables: _Tables, initial: tuple[int, ...],
                     chains: Chains, programs: dict[tuple[int, int, int], list[Any]]) -> None:
    """Every state must be active at some point (a leaf reached under some flags, an ancestor
    of one, or a state a completion chain passes through). A history entry can resolve to any
    leaf recorded earlier, and a shallow one to a sibling's initial chain: each read counts
    every record it could find (no record, or a leaf already reached)."""
    nxt = tables.next_state.reshape(-1, *tables.next_state.shape[-2:])  # (masks, states, events)
    entered = tables.entry_path.reshape(-1, *tables.entry_path.shape[-3:])
    by_leaf: dict[int, list[tuple[int, list[Any]]]] = {}
    for (mask, s, _), ops in programs.items():
        by_leaf.setdefault(s, []).append((mask, ops))
    reached = {initial[-1]}
    active = set(initial)
    frontier = [initial[-1]]
    while frontier:
        while frontier:
            leaf = frontier.pop()
            new = {int(t) for t in np.unique(nxt[:, leaf, :])}
            active.update(int(x) for x in np.unique(entered[:, leaf, :, :]) if x >= 0)
            for mask, ops in by_leaf.get(leaf, ()):
                states, leaves = chains.explore(ops, mask, reached)
                active |= states
                new |= leaves
            for t in new - reached:
                reached.add(t)
                frontier.append(t)
        for leaf in sorted(reached & by_leaf.keys()):  # later records open new outcomes
            for mask, ops in by_leaf[leaf]:
                states, leaves = chains.explore(ops, mask, reached)
                active |= states
                for t in leaves - reached:
                    reached.add(t)
                    frontier.append(t)
    active = {a for leaf in reached | active for a in tree.ancestors(leaf)}
    for sc in range(1, len(tree.states)):
        if sc not in active:
            raise MachineDefinitionError(
                f"machine {tree.name!r}: state {tree.states[sc]!r} is unreachable from the "
                "initial state"
            )


def _enums(
    spec: MachineSpec,
    state_enum: type[enum.IntEnum] | None,
    event_enum: type[enum.IntEnum] | None,
) -> tuple[type[enum.IntEnum], type[enum.IntEnum]]:
    """The given enums checked against the declaration, or generated ones (the spec's own
    event enum, if it was declared with one)."""
    prefix = spec.name.title().replace("_", "")
    if state_enum is None:
        state_enum = _make_enum(f"{prefix}State", spec.states, 0)
    else:
        _check_enum(state_enum, spec.states, "state")
    if event_enum is None:
        event_enum = spec.event_enum
    if event_enum is None:
        event_enum = _make_enum(f"{prefix}Event", spec.events, 0)
    else:
        _check_enum(event_enum, spec.events, "event")
    return state_enum, event_enum


def compile_spec(
    spec: MachineSpec,
    state_enum: type[enum.IntEnum] | None,
    event_enum: type[enum.IntEnum] | None,
) -> CompiledMachine:
    """What :meth:`MachineSpec.compile` does (see there)."""
    # the machine keeps its own copy: editing the spec after compile() changes neither the
    # machine's declaration (diagrams, fingerprint) nor its tables
    spec = copy.deepcopy(spec)
    _check_names(spec)
    tree = _build_tree(spec)
    check_pseudostates(spec, tree)
    check_timers(spec)
    table = _handler_table(spec, tree)
    owners = [tree.code[o] for o in spec.history_owners]
    defaults = {(tree.code[d.owner], d.history): tree.code[d.target]
                for d in spec.history_defaults}
    chains = Chains(tree, {tree.code[f] for f in spec.finals}, owners, defaults,
                    _completion_table(spec, tree))
    first_leaf, drilled = tree.drill(0, "the initial transition")
    init_records: dict[int, int | None] = {}
    path, _ = chains.run(chains.arrive(first_leaf, 0), 0, init_records)
    initial_entries = drilled + [s for w, s in path if w == "enter"]
    programs: dict[tuple[int, int, int], list[Any]] = {}
    tables = _flatten(tree, spec.events, table, len(spec.flags), chains, programs)
    pseudo = _pseudo_tables(spec, chains, table, programs, init_records)
    _check_reachable(tree, tables, tuple(initial_entries), chains, programs)
    state_enum, event_enum = _enums(spec, state_enum, event_enum)
    return CompiledMachine(
        spec,
        state_enum,
        event_enum,
        parent=tree.parent,
        initial_entries=initial_entries,
        next_state=tables.next_state,
        handled=tables.handled,
        handler=tables.handler,
        exit_path=tables.exit_path,
        entry_path=tables.entry_path,
        pseudo=pseudo,
    )


def _pseudo_tables(spec: MachineSpec, chains: Chains, table: _HandlerTable,
                   programs: dict[tuple[int, int, int], list[Any]],
                   init_records: dict[int, int | None]) -> _PseudoTables | None:
    """The packed history programs (None for a machine without finals, completions or
    history: it keeps exactly the tables it had before these existed)."""
    if not (spec.finals or spec.completions or chains.owners):
        return None
    reads = {(op[1], op[2]) for ops in programs.values() for op in ops if op[0] == "read"}
    masks = 1 << len(spec.flags)
    leaves = [s for s in range(len(chains.tree.states))
              if not chains.tree.children[s] and s != 0]
    chains.check_reads(reads, masks)
    arrive_ops = {(m, leaf): chains.arrive(leaf, m) for m in range(masks) for leaf in leaves}
    reads |= {(ops[-1][1], ops[-1][2]) for ops in arrive_ops.values() if ops[-1][0] == "read"}
    chains.check_reads(reads, masks)
    program: list[int] = []
    cells = {key: encode(chains, ops, program) for key, ops in programs.items()}
    arrive = ({key: encode(chains, ops, program) for key, ops in arrive_ops.items()}
              if reads else {})
    n = len(chains.owners)
    lut = np.zeros((2 * n, CODE_ROWS), np.uint8)
    for owner, kind in reads:  # the kinds no transition reads stay 0 (never looked up)
        lut[2 * chains.owner_index[owner] + (kind == "deep")] = chains.lut(owner, kind)
    records = np.full(n, FREE_SLOT, np.uint8)
    for owner, leaf in init_records.items():
        records[chains.owner_index[owner]] = FREE_SLOT if leaf is None else leaf
    static = {key: static_leaf(program, start) for key, start in cells.items()}
    return _PseudoTables(chains, table, n, cells, arrive,
                         np.array(program or [0], np.uint32), lut, records, static)
