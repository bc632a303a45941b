"""Declare hierarchical state machines as data and compile them into flat numpy tables.

A machine is a tree of states under an implicit ``Root`` (code 0), a list of events, an initial
(default) child for ``Root`` and for every composite state that can be entered, and handlers keyed
by ``(state, event)``: either a transition to a target state or "handled, no transition". A handler
on a composite state applies to every descendant that does not handle the event itself.

:meth:`MachineSpec.compile` validates the declaration and flattens it (UML / Hsm.jl run-to-
completion rules, see ``docs/design.md``) into tables indexed by ``(leaf state, event)``, so that
dispatch is one table lookup whatever the depth of the hierarchy.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ._engine import FREE_SLOT, EngineTables, MachineCodec, engine_tables
from ._views import readonly_view
from .errors import MachineDefinitionError

__all__ = ["MAX_FLAGS", "ROOT", "CompiledMachine", "HandlerDecl", "MachineSpec", "camel_to_upper",
           "upper_to_camel"]

#: Name and code of the implicit root state of every machine.
ROOT = "Root"
#: Largest number of states (Root included) a compiled machine may have: codes are ``uint8`` and
#: the largest code, ``FREE_SLOT``, marks a free slot in a table.
MAX_STATES = FREE_SLOT
#: Largest number of events a compiled machine may have (event codes are ``uint8`` too).
MAX_EVENTS = FREE_SLOT
#: Largest number of flags a machine may declare (a slot's flags are one bitmask in a byte, and
#: the compiled tables grow by a factor 2**k for k flags).
MAX_FLAGS = 4


def camel_to_upper(name: str) -> str:
    """Turn a CamelCase name (``"StreamProvisioned"``) into UPPER_SNAKE (``"STREAM_PROVISIONED"``)."""
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


def upper_to_camel(name: str) -> str:
    """Turn an UPPER_SNAKE enum member name (``"STREAM_PROVISIONED"``) into the CamelCase name it
    was made from (``"StreamProvisioned"``); the inverse of :func:`camel_to_upper`."""
    return "".join(part[:1] + part[1:].lower() for part in name.split("_"))


def _names_of(event_enum: type[enum.IntEnum]) -> tuple[str, ...]:
    """The CamelCase event names of an ``IntEnum`` whose codes are 0..n-1 (in code order)."""
    members = sorted(event_enum, key=int)
    if [int(m) for m in members] != list(range(len(members))):
        raise MachineDefinitionError(
            f"event enum {event_enum.__name__} must have the codes 0..{len(members) - 1}, "
            f"got {[int(m) for m in members]}")
    names = tuple(upper_to_camel(m.name) for m in members)
    for m, n in zip(members, names):
        if camel_to_upper(n) != m.name:
            raise MachineDefinitionError(
                f"event enum member {event_enum.__name__}.{m.name} has no CamelCase name "
                f"(it would become {n!r}, which maps back to {camel_to_upper(n)!r})")
    return names


@dataclass(frozen=True)
class HandlerDecl:
    """One declared handler: ``state`` handles ``event`` with a transition to ``target`` (None:
    handled without a transition) when ``guard`` holds (None: always; ``"name"``: flag ``name``
    is set; ``"!name"``: it is clear)."""

    state: str
    event: str
    target: str | None
    guard: str | None = None

    def label(self) -> str:
        """``"Event"``, or ``"Event [guard]"`` for a guarded handler (for messages, diagrams)."""
        return self.event if self.guard is None else f"{self.event} [{self.guard}]"


class MachineSpec:
    """A hierarchical state machine declared as data (states, parents, initials, handlers).

    Build it with :meth:`state` and :meth:`on`, then call :meth:`compile`. States get codes in
    declaration order starting at 1 (``Root`` is 0); events get codes in declaration order from 0.
    Nothing is validated until :meth:`compile`, so a declaration may be written in any order.

    Args:
        name: the machine's name (used in error messages and diagrams).
        events: the machine's event ``IntEnum`` (codes 0..n-1; the CamelCase event names are
            derived from its UPPER_SNAKE members, and :meth:`compile` uses it as the event enum),
            or a sequence of CamelCase event names (``"StreamProvisioned"``).
        initial: the state ``Root``'s initial transition enters: a top-level state, or any
            deeper state (the states on the way are entered without their own initials).

    Guards: :meth:`flag` declares a per-instance boolean flag (at most :data:`MAX_FLAGS`); a
    handler declared with ``guard="name"`` (or ``"!name"``) runs only while the flag is set (or
    clear). Several handlers may share a ``(state, event)``: the first one, in declaration order,
    whose guard holds runs; if none holds the event goes on to the parent state. Flags are set by
    the caller between events (``set_flag``); dispatching never changes them.
    """

    def __init__(
        self, name: str, events: type[enum.IntEnum] | Sequence[str], initial: str
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"machine name must be a non-empty str, got {name!r}")
        self.name = name
        self.event_enum: type[enum.IntEnum] | None = None
        if isinstance(events, type) and issubclass(events, enum.IntEnum):
            self.event_enum = events
            self.events: tuple[str, ...] = _names_of(events)
        else:
            self.events = tuple(events)
        self._states: list[tuple[str, str]] = []  # (name, parent) in declaration order
        self._initial: dict[str, str] = {ROOT: initial}
        self._handlers: list[HandlerDecl] = []
        self._flags: list[str] = []

    def state(self, name: str, parent: str = ROOT, initial: str | None = None) -> MachineSpec:
        """Declare a state under ``parent`` (default ``Root``); ``initial`` names the state its
        initial transition enters: a child, or any deeper descendant (the states in between are
        entered without following their own initials).

        Returns the spec, so declarations can be chained.
        """
        self._states.append((name, parent))
        if initial is not None:
            self._initial[name] = initial
        return self

    def flag(self, name: str) -> MachineSpec:
        """Declare a per-instance boolean flag that guards can test; bit ``i`` of a slot's flag
        bitmask is the ``i``-th declared flag. Flags start False. Returns the spec.

        Raises:
            TypeError: ``name`` is not a str (a duplicate, a non-identifier or a flag beyond
                :data:`MAX_FLAGS` is refused by :meth:`compile`, naming it).
        """
        if not isinstance(name, str):
            raise TypeError(f"flag name must be a str, got {type(name).__name__} {name!r}")
        self._flags.append(name)
        return self

    def on(
        self,
        state: str,
        events: str | Iterable[str],
        target: str | None = None,
        *,
        guard: str | None = None,
    ) -> MachineSpec:
        """Declare that ``state`` handles ``events``: a transition to ``target``, or, when
        ``target`` is None, handled without a transition. ``state`` may be ``"Root"``.

        ``guard`` is a flag name (the handler runs only while the flag is set) or ``"!name"``
        (only while it is clear); None runs always. Handlers of one ``(state, event)`` are tried
        in declaration order.

        Returns the spec, so declarations can be chained.
        """
        if guard is not None and not isinstance(guard, str):
            raise TypeError(f"guard must be a flag name str or None, got "
                            f"{type(guard).__name__} {guard!r}")
        names = (events,) if isinstance(events, str) else tuple(events)
        for ev in names:
            self._handlers.append(HandlerDecl(state, ev, target, guard))
        return self

    # ------------------------------------------------------------------ declaration queries
    @property
    def states(self) -> tuple[str, ...]:
        """All state names, ``Root`` first, in code order."""
        return (ROOT, *(n for n, _ in self._states))

    @property
    def parents(self) -> dict[str, str]:
        """Parent name of every declared state (``Root`` has none)."""
        return dict(self._states)

    @property
    def initials(self) -> dict[str, str]:
        """The state each composite state's initial transition enters (a child or a deeper
        descendant), for every state that declares one (``Root`` included)."""
        return dict(self._initial)

    @property
    def flags(self) -> tuple[str, ...]:
        """The declared flag names; bit ``i`` of a flag bitmask is ``flags[i]``."""
        return tuple(self._flags)

    @property
    def declared_handlers(self) -> tuple[HandlerDecl, ...]:
        """Every declared handler, in declaration order (guards included)."""
        return tuple(self._handlers)

    @property
    def handlers(self) -> dict[tuple[str, str], str | None]:
        """``(state, event) -> target`` (None: handled without transition) of the unguarded
        handlers; a guarded machine is described by :attr:`declared_handlers`."""
        return {(h.state, h.event): h.target for h in self._handlers if h.guard is None}

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        state_enum: type[enum.IntEnum] | None = None,
        event_enum: type[enum.IntEnum] | None = None,
    ) -> CompiledMachine:
        """Validate the declaration and flatten it into tables indexed by (leaf state, event).

        ``state_enum`` / ``event_enum`` are optional ``IntEnum`` classes whose members (UPPER_SNAKE
        of the CamelCase names) must match the codes; without them, enums are generated (the
        event enum the spec was declared with, if any, is used).

        Raises:
            MachineDefinitionError: unknown parent, cycle, unknown state/event/target in a
                handler, duplicate state or flag, two unguarded handlers on one (state, event),
                a handler that can never run (the handlers declared before it always run
                first), a guard naming an unknown flag, an initial state that is not a
                descendant, a composite target or initial chain with no initial state, an
                unreachable state, or too many states/events/flags. The message names the
                culprit.
        """
        return _compile(self, state_enum, event_enum)


class CompiledMachine:
    """A machine flattened into numpy tables indexed by ``(state code, event code)``.

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
        #: The one state/event conversion of this machine, shared by every engine entry point.
        self.codec = MachineCodec(self.name, self.state_names, self.event_names,
                                  state_enum, event_enum)

    def __repr__(self) -> str:
        flags = f", {self.n_flags} flags" if self.n_flags else ""
        return (f"<CompiledMachine {self.name!r}: {self.n_states} states, "
                f"{self.n_events} events{flags}>")

    @property
    def fingerprint(self) -> str:
        """A short hex digest of the tables and names; equal fingerprints mean equal behaviour
        (a machine with flags also hashes its flag names and guarded handlers)."""
        import hashlib

        h = hashlib.sha256()
        h.update(repr((self.state_names, self.event_names)).encode())
        for arr in (self.parent, self.next_state, self.handled, self.handler):
            h.update(arr.tobytes())
        if self.n_flags:
            guards = [(d.state, d.event, d.target, d.guard) for d in self.spec.declared_handlers]
            h.update(repr((self.flag_names, guards, self.initial_entries)).encode())
        return h.hexdigest()[:16]

    @property
    def engine_tables(self) -> EngineTables:
        """The tables the compiled engine runs (padded to one row per uint8 code, read-only;
        see :class:`~streamhsm._engine.EngineTables`), built once."""
        return engine_tables(self)

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
        for n in names:
            if not isinstance(n, str) or not n.isidentifier():
                raise err(f"machine {name!r}: {what} name {n!r} is not an identifier")
            if n in seen:
                raise err(f"machine {name!r}: duplicate {what} {n!r}")
            seen.add(n)


def _build_tree(spec: MachineSpec) -> _Tree:
    """Parents (known, acyclic), children, and initial states (each a proper descendant)."""
    err, name, states = MachineDefinitionError, spec.name, spec.states
    code = {s: i for i, s in enumerate(states)}
    parent = np.full(len(states), -1, dtype=np.int16)
    for s, p in spec._states:
        if p not in code:
            raise err(f"machine {name!r}: state {s!r} has unknown parent {p!r}")
        parent[code[s]] = code[p]
    for state_name in states[1:]:
        seen_path = [state_name]
        anc = int(parent[code[state_name]])
        while anc != 0:
            if states[anc] in seen_path:
                cycle = " -> ".join([*seen_path, states[anc]])
                raise err(f"machine {name!r}: cycle in state parents: {cycle}")
            seen_path.append(states[anc])
            anc = int(parent[anc])
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


def _compile(
    spec: MachineSpec,
    state_enum: type[enum.IntEnum] | None,
    event_enum: type[enum.IntEnum] | None,
) -> CompiledMachine:
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
