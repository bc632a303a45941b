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
from ._views import readonly_view
from .errors import MachineDefinitionError
from .machine import (
    FREE_SLOT, MAX_EVENTS, MAX_FLAGS, MAX_STATES, HandlerDecl, MachineSpec, camel_to_upper,
)

__all__ = ["CODE_ROWS", "CompiledMachine", "EngineTables", "KIND_INTERNAL", "KIND_TRANSITION",
           "KIND_UNHANDLED", "STEP_MOVED", "STEP_UNHANDLED", "compile_spec", "local_scratch",
           "pack_flags",
           "table_arrays", "table_layout"]

#: Rows of every padded engine table per flag bitmask: one per ``uint8`` code (the free code
#: included). The kernel's ``HSM_CODE_ROWS``.
CODE_ROWS = FREE_SLOT + 1
#: What dispatching an event in a state does (the ``kind`` table; the kernel's ``HSM_KIND_*``).
KIND_INTERNAL = 0      # handled without a transition (or a free slot): nothing to do
KIND_TRANSITION = 1    # a handler with a target: exits and entries, maybe a new leaf
KIND_UNHANDLED = 2     # no state handles it: counted
#: Bits of the ``step`` table above the next leaf (the kernel's ``HSM_STEP_UNHANDLED`` and
#: ``HSM_STEP_MOVED``).
STEP_UNHANDLED = CODE_ROWS
STEP_MOVED = STEP_UNHANDLED << 1


class _Immutable:
    """Attributes are set in ``__init__`` only: afterwards every assignment or deletion raises
    ``AttributeError`` (the engine binds raw pointers and sizes from them once)."""

    __slots__ = ("_sealed",)

    def _seal(self) -> None:
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, key: str, value: Any) -> None:
        if getattr(self, "_sealed", False):
            raise AttributeError(f"{type(self).__name__} is immutable: cannot set {key!r}")
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {key!r}")


class EngineTables(_Immutable):
    """A machine's tables as the engine runs them: one row per (uint8 state code, flag bitmask),
    ``row = code << flag_bits | mask`` (one row per code for a flag-free machine), so
    ``CODE_ROWS << flag_bits`` rows of ``n_events`` columns, the free rows included (mapping to
    themselves and counting nothing), all read-only.

    - ``next_state[row, e]`` (uint8): the leaf after dispatching ``e``.
    - ``handled[row, e]`` / ``unhandled[row, e]`` (uint8): 1 if some state handled / nobody
      handled the event (both 0 on the free rows).
    - ``kind[row, e]`` (uint8): what dispatching does (``KIND_INTERNAL``, ``KIND_TRANSITION``,
      ``KIND_UNHANDLED``).
    - ``handler[row, e]`` (int16): the state whose handler ran, -1 if none.
    - ``step[row, e]`` (uint16): the next leaf, plus ``STEP_UNHANDLED`` (the first value above
      every code) if unhandled, plus ``STEP_MOVED`` if a transition.
    - ``tcells`` (int32): the flat indices ``row * n_events + e`` of the transition cells.
    - ``member[s, code]`` (bool, ``n_states`` rows of ``CODE_ROWS``): a slot in state ``code``
      is in state ``s`` (ancestors included).
    - ``flag_bits``: the machine's number of flags; ``n_events``: its number of events.
    """

    __slots__ = ("flag_bits", "handled", "handler", "kind", "member", "n_events", "next_state",
                 "step", "tcells", "unhandled")

    next_state: np.ndarray
    handled: np.ndarray
    unhandled: np.ndarray
    kind: np.ndarray
    handler: np.ndarray
    step: np.ndarray
    tcells: np.ndarray
    member: np.ndarray
    flag_bits: int
    n_events: int

    def __init__(self, machine: CompiledMachine) -> None:
        n_s, n_e, k = machine.n_states, machine.n_events, machine.n_flags
        masks = 1 << k

        def rows(table: np.ndarray, pad: Any, dtype: Any) -> np.ndarray:
            # (masks, n_s, n_e) compiled -> (CODE_ROWS, masks, n_e) padded -> (rows, n_e)
            out = np.empty((CODE_ROWS, masks, n_e), dtype=dtype)
            out[:] = pad
            out[:n_s] = (table if k else table[None]).transpose(1, 0, 2)
            return out.reshape(CODE_ROWS * masks, n_e)

        codes = np.arange(CODE_ROWS, dtype=np.uint8)[:, None, None]
        nxt = rows(machine.next_state, codes, np.uint8)
        handled = rows(machine.handled, 0, np.uint8)
        handler = rows(machine.handler, -1, np.int16)
        transition = rows(machine.exit_path[..., 0] >= 0, False, bool) & (handled == 1)
        used = rows(np.ones(machine.handled.shape, np.uint8), 0, np.uint8)  # 0 on the free rows
        unhandled = used & (handled ^ 1)
        # the free rows: internal (nothing to do)
        kind = np.where(unhandled == 1, KIND_UNHANDLED,
                        np.where(transition, KIND_TRANSITION, KIND_INTERNAL)).astype(np.uint8)
        step = (nxt.astype(np.uint16) | unhandled.astype(np.uint16) * STEP_UNHANDLED
                | transition.astype(np.uint16) * STEP_MOVED)
        tcells = np.flatnonzero(transition.ravel()).astype(np.int32)
        member = np.zeros((n_s, CODE_ROWS), dtype=bool)
        for s in range(n_s):
            member[s, list(machine.leaves_under[s])] = True
        self.next_state = readonly_view(nxt)
        self.handled = readonly_view(handled)
        self.unhandled = readonly_view(unhandled)
        self.kind = readonly_view(kind)
        self.handler = readonly_view(handler)
        self.step = readonly_view(step)
        self.tcells = readonly_view(tcells)
        self.member = readonly_view(member)
        self.flag_bits = k
        self.n_events = n_e
        self._seal()


def table_layout(capacity: int, n_events: int) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
    """The per-table arrays of a :class:`~streamhsm.MachineTable` as ``name -> (dtype, shape)``,
    in storage order (the shared-memory layout follows it)."""
    return {
        "counts": (np.dtype(np.int64), (CODE_ROWS,)),
        "transitions": (np.dtype(np.int64), (CODE_ROWS, n_events)),
        "unhandled": (np.dtype(np.uint64), (capacity,)),
        "free": (np.dtype(np.int32), (capacity,)),
        "flags": (np.dtype(np.uint8), (capacity,)),
        "states": (np.dtype(np.uint8), (capacity,)),
    }


def table_arrays(capacity: int, n_events: int,
                 arrays: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The per-table arrays of :func:`table_layout`: new ones (``arrays`` None), or the
    caller's storage (shared memory, say) checked to have exactly those dtypes and shapes,
    C-contiguous and writeable (``ValueError`` naming the first that does not)."""
    shapes = table_layout(capacity, n_events)
    if arrays is None:
        return {name: np.empty(shape, dtype) for name, (dtype, shape) in shapes.items()}
    for name, (dtype, shape) in shapes.items():
        arr = arrays.get(name)
        if (not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape
                or not arr.flags.c_contiguous or not arr.flags.writeable):
            raise ValueError(f"arrays[{name!r}] must be a writeable C-contiguous {dtype} "
                             f"array of shape {shape}")
    return arrays


def local_scratch(machine: CompiledMachine, stack_cells: int, max_cells: int) -> np.ndarray | None:
    """The zeroed scratch array of a table's batch-local transition counts (uint32, one per
    (row, event) cell), or None if the cells fit in ``stack_cells`` on the stack or exceed
    ``max_cells`` (batches then run event by event): the kernel's ``HSM_STACK_CELLS`` and
    ``HSM_LOCAL_MAX_CELLS``."""
    cells = (CODE_ROWS << machine.n_flags) * machine.n_events
    if cells <= stack_cells or cells > max_cells:
        return None
    return np.zeros(cells, np.uint32)


def pack_flags(flags: np.ndarray, shift: int, size: int) -> np.ndarray:
    """The packed copy of per-slot flag bitmasks a table keeps for its batch kernels (see
    ``hsm_packed_flags`` in ``_kernel.pxd``): ``1 << shift`` slots per byte, slot ``i`` in bits
    ``(i % (1 << shift)) * (8 >> shift)`` and up of byte ``i >> shift``; ``size`` bytes."""
    per, width = 1 << shift, 8 >> shift
    padded = np.zeros(size * per, np.uint8)
    padded[:flags.shape[0]] = flags
    lanes = padded.reshape(size, per).astype(np.uint16) << (np.arange(per, dtype=np.uint16) * width)
    return np.bitwise_or.reduce(lanes, axis=1).astype(np.uint8)  # type: ignore[no-any-return]


class CompiledMachine(_Immutable):
    """A machine flattened into numpy tables indexed by ``(state code, event code)``.

    Immutable: every attribute is set when the machine is compiled (assigning or deleting one
    raises ``AttributeError``) and every array is read-only, so the engine's raw pointers and
    sizes, bound from them once, stay valid.

    Rows exist for every state code but only leaf rows are ever used (the current state is always
    a leaf). Attributes (all read-only numpy arrays):

    - ``next_state[s, e]`` (uint8): the leaf the machine is in after dispatching ``e`` in leaf ``s``.
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
            under.append(tuple(l for l in range(self.n_states) if is_leaf[l] and self.is_ancestor_or_self(s, l)))
        self.leaves_under: tuple[tuple[int, ...], ...] = tuple(under)
        #: ``State`` members by code (looked up by value: an enum may declare its members in
        #: any order).
        self.state_members: tuple[enum.IntEnum, ...] = tuple(
            state_enum(code) for code in range(self.n_states))
        #: The one state/event conversion of this machine, shared by every engine entry point.
        self.codec = MachineCodec(self.name, self.state_names, self.event_names,
                                  state_enum, event_enum)
        #: The tables the compiled engine runs (padded to one row per uint8 code, read-only).
        self.engine_tables = EngineTables(self)
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

    def _path(self, table: np.ndarray, leaf: object, event: object, flags: object) -> tuple[int, ...]:
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


#: (state code, event code) -> [(guard or None, target code or None)] in declaration order
_HandlerTable = dict[tuple[int, int], list[tuple["_Guard | None", "int | None"]]]


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
        raise err(f"machine {name!r} has {len(spec.events)} events; at most {MAX_EVENTS} are supported")
    if len(spec.flags) > MAX_FLAGS:
        raise err(f"machine {name!r}: flag {spec.flags[MAX_FLAGS]!r} is one too many; at most "
                  f"{MAX_FLAGS} flags are supported, declared {list(spec.flags)}")
    for what, names in (("state", states), ("event", spec.events), ("flag", spec.flags)):
        seen: set[str] = set()
        members: dict[str, str] = {}
        for n in names:
            if not isinstance(n, str) or not n.isidentifier():
                raise err(f"machine {name!r}: {what} name {n!r} is not an identifier")
            if n in seen:
                raise err(f"machine {name!r}: duplicate {what} {n!r}")
            seen.add(n)
            if what == "flag":
                continue
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
    for s, target in spec._initial.items():
        if s not in code:
            raise err(f"machine {name!r}: initial state declared for unknown state {s!r}")
        if target not in code:
            raise err(f"machine {name!r}: state {s!r} has unknown initial state {target!r}")
        if target == s or code[s] not in tree.ancestors(code[target]):
            raise err(f"machine {name!r}: initial state {target!r} of {s!r} is not a descendant "
                      f"of {s!r}")
        tree.initial[code[s]] = code[target]
    return tree


def _guard(spec: MachineSpec, h: HandlerDecl) -> _Guard | None:
    if h.guard is None:
        return None
    flag = h.guard[1:] if h.guard.startswith("!") else h.guard
    if flag not in spec.flags:
        raise MachineDefinitionError(
            f"machine {spec.name!r}: handler ({h.state}, {h.label()}) names unknown flag "
            f"{flag!r}; declared flags: {list(spec.flags)}")
    return _Guard(spec.flags.index(flag), not h.guard.startswith("!"))


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
            raise err(f"machine {name!r}: handler for event {h.event!r} on unknown state {h.state!r}")
        if h.event not in ev_code:
            raise err(f"machine {name!r}: handler on state {h.state!r} for unknown event {h.event!r}")
        if h.target is not None and h.target not in code:
            raise err(
                f"machine {name!r}: handler ({h.state}, {h.label()}) has unknown target {h.target!r}"
            )
        guard = _guard(spec, h)
        key = (code[h.state], ev_code[h.event])
        earlier = decls.setdefault(key, [])
        if guard is None and any(d.guard is None for d in earlier):
            raise err(f"machine {name!r}: duplicate handler for ({h.state}, {h.event}): two "
                      f"unguarded handlers")
        rows = table.setdefault(key, [])
        if not any(guard is None or guard.holds(m)
                   for m in masks if not any(g is None or g.holds(m) for g, _ in rows)):
            before = ", ".join(f"({d.state}, {d.label()})" for d in earlier)
            raise err(f"machine {name!r}: handler ({h.state}, {h.label()}) can never run: "
                      f"the handlers declared before it ({before}) always run first")
        rows.append((guard, None if h.target is None else code[h.target]))
        earlier.append(h)
    return table


def _flatten_mask(
    tree: _Tree, events: tuple[str, ...], table: _HandlerTable, mask: int, max_depth: int
) -> _Tables:
    """Resolve every (leaf, event) under flag bitmask ``mask``: the handling state (innermost
    first, its first handler whose guard holds), the exits up to the least common ancestor, the
    entries down to the target and on through initial states."""
    states, parent = tree.states, tree.parent
    n_s, n_e = len(states), len(events)
    out = _Tables(
        next_state=np.zeros((n_s, n_e), dtype=np.uint8),
        handled=np.zeros((n_s, n_e), dtype=np.uint8),
        handler=np.full((n_s, n_e), -1, dtype=np.int16),
        exit_path=np.full((n_s, n_e, max_depth), -1, dtype=np.int16),
        entry_path=np.full((n_s, n_e, max_depth), -1, dtype=np.int16),
    )

    def runs(s: int, e: int) -> tuple[bool, int | None]:
        for guard, target in table.get((s, e), ()):
            if guard is None or guard.holds(mask):
                return True, target
        return False, None

    for leaf in range(n_s):
        up = tree.ancestors(leaf)
        for e in range(n_e):
            out.next_state[leaf, e] = leaf
            found = next(((s, r[1]) for s in up for r in [runs(s, e)] if r[0]), None)
            if found is None:
                continue
            src, target = found
            out.handled[leaf, e] = 1
            out.handler[leaf, e] = src
            if target is None:
                continue
            # LCA: for a self-transition the parent (external); otherwise the first
            # ancestor-or-self of the source that is an ancestor-or-self of the target.
            target_up = tree.ancestors(target)
            if src == target:
                lca = int(parent[src]) if src != 0 else 0
            else:
                lca = next((s for s in tree.ancestors(src) if s in target_up), 0)
            exits = up[: up.index(lca)]
            entries = list(reversed(target_up[: target_up.index(lca)]))
            why = f"handler ({states[src]}, {events[e]}) -> {states[target]}"
            new_leaf, drilled = tree.drill(target, why)
            entries += drilled
            out.next_state[leaf, e] = new_leaf
            out.exit_path[leaf, e, : len(exits)] = exits
            out.entry_path[leaf, e, : len(entries)] = entries
    return out


def _flatten(
    tree: _Tree, events: tuple[str, ...], table: _HandlerTable, n_flags: int
) -> _Tables:
    """The tables of every flag bitmask, stacked on a leading axis of size ``2**n_flags``; a
    flag-free machine has no such axis."""
    # deepest exit or entry path: a leaf's ancestors, or a drill below a deep target
    max_depth = max(len(tree.ancestors(s)) for s in range(len(tree.states)))
    per_mask = [_flatten_mask(tree, events, table, m, max_depth) for m in range(1 << n_flags)]
    if n_flags == 0:
        return per_mask[0]
    return _Tables(*(np.stack([getattr(t, f) for t in per_mask])
                     for f in ("next_state", "handled", "handler", "exit_path", "entry_path")))


def _check_reachable(tree: _Tree, next_state: np.ndarray, initial_leaf: int) -> None:
    """Every state must be active at some point (a leaf reached under some flags, or an
    ancestor of one)."""
    nxt = next_state.reshape(-1, *next_state.shape[-2:])  # (masks, states, events)
    reached = {initial_leaf}
    frontier = [initial_leaf]
    while frontier:
        leaf = frontier.pop()
        for t in np.unique(nxt[:, leaf, :]):
            if int(t) not in reached:
                reached.add(int(t))
                frontier.append(int(t))
    active = {a for leaf in reached for a in tree.ancestors(leaf)}
    for sc in range(1, len(tree.states)):
        if sc not in active:
            raise MachineDefinitionError(
                f"machine {tree.name!r}: state {tree.states[sc]!r} is unreachable from the initial state"
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
    initial_leaf, initial_entries = tree.drill(0, "the initial transition")
    table = _handler_table(spec, tree)
    tables = _flatten(tree, spec.events, table, len(spec.flags))
    _check_reachable(tree, tables.next_state, initial_leaf)
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
    )
