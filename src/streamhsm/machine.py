"""Declare hierarchical state machines as data: the declaration layer (no tables, no engine).

A machine is a tree of states under an implicit ``Root`` (code 0), a list of events, an initial
(default) child for ``Root`` and for every composite state that can be entered, and handlers keyed
by ``(state, event)``: either a transition to a target state or "handled, no transition". A handler
on a composite state applies to every descendant that does not handle the event itself.

:meth:`MachineSpec.compile` hands the declaration to the compiler (``streamhsm.compiler``),
which validates it and flattens it (UML / Hsm.jl run-to-completion rules, see
``docs/design.md``) into tables indexed by ``(leaf state, event)``, so that dispatch is one table
lookup whatever the depth of the hierarchy. This module imports nothing of the engine: the
reference interpreter reads declarations from here alone.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import MachineDefinitionError

if TYPE_CHECKING:
    from .compiler import CompiledMachine

__all__ = ["FREE_SLOT", "HISTORY_KINDS", "MAX_DELAY_NS", "MAX_FLAGS", "MAX_TIMERS", "ROOT",
           "CompletionDecl", "HandlerDecl", "HistoryDefault", "MachineSpec", "TimerDecl",
           "camel_to_upper", "format_ns", "upper_to_camel"]

#: Name and code of the implicit root state of every machine.
ROOT = "Root"
#: State code of a free (released or never opened) slot in a table: the largest ``uint8`` code.
#: The kernel declares the same value (``HSM_FREE_SLOT`` in ``_kernel.pxd``); a test holds the
#: two equal, so the pure-Python layers need no compiled module to know it.
FREE_SLOT = (1 << 8) - 1
#: Largest number of states (Root included) a compiled machine may have: codes are ``uint8`` and
#: the largest code, ``FREE_SLOT``, marks a free slot in a table.
MAX_STATES = FREE_SLOT
#: Largest number of events a compiled machine may have (event codes are ``uint8`` too).
MAX_EVENTS = FREE_SLOT
#: Largest number of flags a machine may declare (a slot's flags are one bitmask in a byte, and
#: the compiled tables grow by a factor 2**k for k flags).
MAX_FLAGS = 4
#: The two kinds of history pseudostate: ``"shallow"`` (the last active direct child, then its
#: initial chain) and ``"deep"`` (the last active leaf).
HISTORY_KINDS = ("shallow", "deep")
#: Largest number of timers a machine may declare: what a transition arms and cancels is a
#: ``uint64`` bitmask per table cell.
MAX_TIMERS = 64
#: Longest delay or period of a timer, in nanoseconds (2**62, about 146 years): a table's clock
#: can then run to ``2**63 - 1 - MAX_DELAY_NS`` before ``clock + delay`` could overflow int64.
MAX_DELAY_NS = 1 << 62


def camel_to_upper(name: str) -> str:
    """Turn a CamelCase name (``"StreamProvisioned"``) into UPPER_SNAKE
    (``"STREAM_PROVISIONED"``)."""
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
    for m, n in zip(members, names, strict=True):
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
    #: ``"shallow"`` or ``"deep"``: the transition enters ``target`` through its history
    #: pseudostate; None: a normal entry.
    history: str | None = None
    #: names of the timers the handler restarts (armed afresh from the clock if their owner is
    #: active after the transition)
    restart: tuple[str, ...] = ()

    def label(self) -> str:
        """``"Event"``, or ``"Event [guard]"`` for a guarded handler (for messages, diagrams)."""
        return self.event if self.guard is None else f"{self.event} [{self.guard}]"


@dataclass(frozen=True)
class CompletionDecl:
    """One declared completion transition: when ``state`` completes (a simple state as soon as
    it is entered, a composite as soon as one of its final children is entered), go to
    ``target`` if ``guard`` holds (through its history pseudostate if ``history`` is set)."""

    state: str
    target: str
    guard: str | None = None
    history: str | None = None

    def label(self) -> str:
        """``""``, or ``"[guard]"`` for a guarded completion (for messages, diagrams)."""
        return "" if self.guard is None else f"[{self.guard}]"


@dataclass(frozen=True)
class HistoryDefault:
    """The default edge of ``owner``'s ``history`` pseudostate: taken when the owner has no
    record; ``target`` is a proper descendant of ``owner``."""

    owner: str
    target: str
    history: str


@dataclass(frozen=True)
class TimerDecl:
    """One declared timer: owned by ``state``, armed to ``clock + delay_ns`` whenever ``state``
    is entered (and when a slot opens in it), cancelled whenever it is exited; when due,
    ``event`` is dispatched to the slot. A ``periodic`` timer is re-armed on its phase after
    firing (:meth:`MachineSpec.every`), a one-shot one is not (:meth:`MachineSpec.after`)."""

    name: str
    state: str
    delay_ns: int
    event: str
    periodic: bool = False

    def label(self) -> str:
        """``"after 2 s"`` or ``"every 500 ms"`` (for diagrams and messages)."""
        return f"{'every' if self.periodic else 'after'} {format_ns(self.delay_ns)}"


def format_ns(ns: int) -> str:
    """A duration in nanoseconds for people: ``"2 s"``, ``"1.5 ms"``, ``"250 us"``, ``"7 ns"``
    (the largest unit that keeps at least 1, at most three decimals)."""
    for unit, size in (("h", 3_600_000_000_000), ("min", 60_000_000_000), ("s", 1_000_000_000),
                       ("ms", 1_000_000), ("us", 1_000)):
        if ns >= size:
            return f"{round(ns / size, 3):g} {unit}"
    return f"{ns} ns"


def _check_delay(delay_ns: object, what: str, low: int) -> int:
    if type(delay_ns) is bool or not isinstance(delay_ns, int):
        raise TypeError(f"{what} must be an int number of nanoseconds, got "
                        f"{type(delay_ns).__name__} {delay_ns!r}")
    value = operator.index(delay_ns)  # the exact int: an int subclass's methods cannot lie
    if not low <= value <= MAX_DELAY_NS:
        raise ValueError(f"{what} must be {low}..{MAX_DELAY_NS} ns (2**62), got {value!r}")
    return value


def _check_restart(restart: object) -> tuple[str, ...]:
    if restart is None:
        return ()
    names = (restart,) if isinstance(restart, str) else restart
    if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"restart must be a timer name str, a sequence of them or None, got "
                        f"{type(restart).__name__} {restart!r}")
    return tuple(str.__str__(n) for n in names)  # exact strs: a subclass's __eq__ cannot lie


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    return value


def _check_guard(guard: object) -> str | None:
    if guard is not None and not isinstance(guard, str):
        raise TypeError(f"guard must be a flag name str or None, got "
                        f"{type(guard).__name__} {guard!r}")
    return guard


def _check_history(history: object, optional: bool) -> str | None:
    if history is None and optional:
        return None
    if not isinstance(history, str) or history not in HISTORY_KINDS:
        allowed = " or ".join(repr(k) for k in HISTORY_KINDS) + (" or None" if optional else "")
        raise ValueError(f"history must be {allowed}, got {history!r}")
    return history


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
        self._finals: list[str] = []
        self._completions: list[CompletionDecl] = []
        self._history_defaults: list[HistoryDefault] = []
        self._timers: list[TimerDecl] = []

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
        history: str | None = None,
        restart: str | Sequence[str] | None = None,
    ) -> MachineSpec:
        """Declare that ``state`` handles ``events``: a transition to ``target``, or, when
        ``target`` is None, handled without a transition. ``state`` may be ``"Root"``.

        ``guard`` is a flag name (the handler runs only while the flag is set) or ``"!name"``
        (only while it is clear); None runs always. Handlers of one ``(state, event)`` are tried
        in declaration order.

        ``history`` (``"shallow"`` or ``"deep"``) enters the composite ``target`` through its
        history pseudostate: deep re-enters the last active leaf under ``target`` (the path down
        to it, no initial transitions), shallow the last active direct child of ``target``, then
        that child's initial chain. Without a record, the :meth:`history_default` of ``target``
        is taken, else its normal initial entry.

        ``restart`` names a timer (or several) the handler also restarts: armed again to
        ``clock + delay`` after the transition, if the timer's owner is active then (a
        keepalive that pushes an expiry back, say).

        Returns the spec, so declarations can be chained.

        Raises:
            TypeError: ``guard`` is not a str or None, ``restart`` not a name or names.
            ValueError: ``history`` is not ``"shallow"``, ``"deep"`` or None, or is given
                without a target. (Unknown names are refused by :meth:`compile`.)
        """
        _check_guard(guard)
        _check_history(history, optional=True)
        restarts = _check_restart(restart)
        if history is not None and target is None:
            raise ValueError(f"handler on {state!r} with history={history!r} needs a target "
                             f"(the composite state whose history it enters)")
        names = (events,) if isinstance(events, str) else tuple(events)
        for ev in names:
            self._handlers.append(HandlerDecl(state, ev, target, guard, history, restarts))
        return self

    def final(self, name: str, parent: str = ROOT) -> MachineSpec:
        """Declare a final state ``name`` under ``parent`` (default ``Root``; None means
        ``Root`` too): a leaf with no handlers and no children of its own.

        Entering a final state completes its parent (its :meth:`on_completion` transitions are
        tried) and clears the parent's history record; events in a final state go to its
        ancestors as usual. A top-level final state completes the machine: it handles nothing
        (every event in it is unhandled, ``Root``'s handlers included).

        Returns the spec.

        Raises:
            TypeError: ``name`` or ``parent`` is not a str.
        """
        _check_str(name, "final state name")
        parent = ROOT if parent is None else _check_str(parent, "parent")
        self._states.append((name, parent))
        self._finals.append(name)
        return self

    def on_completion(
        self,
        state: str,
        target: str,
        *,
        guard: str | None = None,
        history: str | None = None,
    ) -> MachineSpec:
        """Declare a completion transition of ``state`` to ``target``: for a composite, taken as
        soon as one of its final children is entered; for a simple state, as soon as it is
        entered (a transient state). A state's completion transitions are tried in declaration
        order, the first whose ``guard`` holds runs; if none holds the completion is discarded
        (the machine rests where it is). ``history`` as in :meth:`on`.

        Completions run inside the dispatch (or the initial transition) that caused them;
        :meth:`compile` resolves every chain into the tables and refuses one that never rests.

        Returns the spec.

        Raises:
            TypeError: ``state``, ``target`` or ``guard`` has the wrong type.
            ValueError: ``history`` is not ``"shallow"``, ``"deep"`` or None.
        """
        _check_str(state, "completion state")
        _check_str(target, "completion target")
        _check_guard(guard)
        _check_history(history, optional=True)
        self._completions.append(CompletionDecl(state, target, guard, history))
        return self

    def history_default(self, owner: str, target: str, history: str = "shallow") -> MachineSpec:
        """Declare the default edge of ``owner``'s ``history`` pseudostate (``"shallow"`` or
        ``"deep"``): a transition that enters ``owner`` through it while ``owner`` has no record
        enters ``target`` (a proper descendant of ``owner``), then follows its initial chain.
        Declaring a default also makes ``owner`` keep a history record.

        Returns the spec.

        Raises:
            TypeError: ``owner`` or ``target`` is not a str.
            ValueError: ``history`` is not ``"shallow"`` or ``"deep"``.
        """
        _check_str(owner, "history owner")
        _check_str(target, "history default target")
        _check_history(history, optional=False)
        self._history_defaults.append(HistoryDefault(owner, target, history))
        return self

    def after(self, state: str, delay_ns: int, event: str, name: str | None = None) -> MachineSpec:
        """Declare a one-shot timer owned by ``state``: armed to ``clock + delay_ns`` whenever
        ``state`` is entered (directly or through a substate, and when a slot opens in it),
        cancelled whenever ``state`` is exited; when it is due, ``event`` is dispatched to the
        slot by the normal rules (the leaf's handlers first, then its ancestors'; unhandled is
        counted). ``name`` (default ``"State.Event"``) is what ``restart=`` and ``deadlines()``
        take. A zero delay is due at once: the next ``advance``, even to the same time, fires
        it (:meth:`compile` refuses zero-delay timers that could re-arm each other forever).
        Returns the spec.

        Raises:
            TypeError: a name is not a str, or ``delay_ns`` not an int.
            ValueError: ``delay_ns`` outside ``0..MAX_DELAY_NS``. (Unknown names, duplicate
                timer names, more than :data:`MAX_TIMERS` timers and cycles of zero-delay
                timers are refused by :meth:`compile`.)
        """
        return self._timer(state, delay_ns, event, name, False)

    def every(self, state: str, period_ns: int, event: str, name: str | None = None) -> MachineSpec:
        """Declare a periodic timer owned by ``state``: armed to ``clock + period_ns`` on entry
        like :meth:`after`; after firing at deadline ``d`` its next deadline is the first
        ``d + k * period_ns`` later than the ``advance``'s time (it fires at most once per
        advance; the periods skipped are counted, not replayed). Returns the spec.

        Raises:
            TypeError / ValueError: as :meth:`after`; a period of at least 1 ns.
        """
        return self._timer(state, period_ns, event, name, True)

    def _timer(self, state: str, delay_ns: int, event: str, name: str | None,
               periodic: bool) -> MachineSpec:
        state = str.__str__(_check_str(state, "timer state"))  # exact strs, as restart's
        event = str.__str__(_check_str(event, "timer event"))
        delay = _check_delay(delay_ns, "period_ns" if periodic else "delay_ns", int(periodic))
        name = f"{state}.{event}" if name is None else str.__str__(_check_str(name, "timer name"))
        self._timers.append(TimerDecl(name, state, delay, event, periodic))
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

    def check_parents(self) -> None:
        """Every parent known and no cycle among them: the check ``compile()`` and the reference
        interpreter share (a cycle would make walking up to Root loop forever).

        Raises:
            MachineDefinitionError: an unknown parent, or a cycle (the message shows it).
        """
        names, parent = set(self.states), dict(self._states)
        for s, p in self._states:
            if p not in names:
                raise MachineDefinitionError(
                    f"machine {self.name!r}: state {s!r} has unknown parent {p!r}")
        for s, _ in self._states:
            path, anc = [s], parent[s]
            while anc != ROOT:
                if anc in path:
                    cycle = " -> ".join([*path, anc])
                    raise MachineDefinitionError(
                        f"machine {self.name!r}: cycle in state parents: {cycle}")
                path.append(anc)
                anc = parent[anc]

    def check_unique(self) -> None:
        """No state, event or flag name declared twice (a check ``compile()`` and the reference
        interpreter share: a second declaration would silently replace the first).

        Raises:
            MachineDefinitionError: the first duplicate.
        """
        for what, names in (("state", self.states), ("event", self.events),
                            ("flag", self.flags)):
            seen: set[object] = set()
            for n in names:
                if n in seen:
                    raise MachineDefinitionError(f"machine {self.name!r}: duplicate {what} {n!r}")
                seen.add(n)

    def check_initials(self) -> None:
        """Every initial transition declared for a known state enters a known proper descendant
        of it (shared by ``compile()`` and the reference interpreter; call after
        :meth:`check_parents`).

        Raises:
            MachineDefinitionError: an unknown state or target, or a target not below its state.
        """
        parent, name = dict(self._states), self.name
        for s, target in self._initial.items():
            if s != ROOT and s not in parent:
                raise MachineDefinitionError(
                    f"machine {name!r}: initial state declared for unknown state {s!r}")
            if target not in parent:
                raise MachineDefinitionError(
                    f"machine {name!r}: state {s!r} has unknown initial state {target!r}")
            anc = parent[target]
            while anc != s and anc != ROOT:
                anc = parent[anc]
            if anc != s:
                raise MachineDefinitionError(f"machine {name!r}: initial state {target!r} of "
                                             f"{s!r} is not a descendant of {s!r}")

    def check_structure(self) -> None:
        """:meth:`check_unique`, :meth:`check_parents` and :meth:`check_initials`: the
        declaration checks without which the state tree is ill-defined (what the reference
        interpreter runs; ``compile()`` runs them among its own)."""
        self.check_unique()
        self.check_parents()
        self.check_initials()

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
    def finals(self) -> tuple[str, ...]:
        """The final states, in declaration order."""
        return tuple(self._finals)

    @property
    def completions(self) -> tuple[CompletionDecl, ...]:
        """Every declared completion transition, in declaration order."""
        return tuple(self._completions)

    @property
    def history_defaults(self) -> tuple[HistoryDefault, ...]:
        """Every declared history default edge, in declaration order."""
        return tuple(self._history_defaults)

    @property
    def timers(self) -> tuple[TimerDecl, ...]:
        """Every declared timer, in declaration order (which breaks ties between timers of one
        slot due at the same time)."""
        return tuple(self._timers)

    @property
    def history_owners(self) -> tuple[str, ...]:
        """States that keep a history record, in declaration (code) order: every target of a
        handler or completion with ``history``, and every owner of a history default. Names not
        declared as states are left out (:meth:`compile` refuses them)."""
        named = ({h.target for h in self._handlers if h.history is not None}
                 | {c.target for c in self._completions if c.history is not None}
                 | {d.owner for d in self._history_defaults})
        return tuple(s for s in self.states if s in named)

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
                unreachable state, or too many states/events/flags; for history and
                completion (see :meth:`final`, :meth:`on_completion`, :meth:`history_default`):
                history on a state without children or on Root, a default that is not a proper
                descendant of its owner or a second one of a kind, a final state with children,
                an initial, handlers or completions, a completion of a composite without a final
                child or of Root, a completion that can never run, a completion chain that
                never rests; for timers (see :meth:`after`, :meth:`every`): an unknown owner
                state or event, a duplicate timer name, more than :data:`MAX_TIMERS` timers, a
                restart naming no declared timer, timers on a machine with history records,
                zero-delay timers whose events re-arm each other in a cycle (one ``advance``
                would never end). The message names the culprit.
        """
        from .compiler import compile_spec  # the one call up: a convenience, at call time

        return compile_spec(self, state_enum, event_enum)

