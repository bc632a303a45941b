"""Timers at compile time: what every table cell arms and cancels (part of the compiler).

A timer is owned by a state (``MachineSpec.after`` / ``every``): entering the owner arms it,
exiting it cancels it, and a handler may restart it (``on(..., restart=name)``). Dispatching an
event in a (leaf, flag bitmask) cell always exits and enters the same states in the same order,
so what the cell does to the slot's timers is fixed at compile time: two ``uint64`` bitmasks
per cell, the timers it cancels and the timers it arms (the *net* effect: a state entered and
left again by a completion chain cancels its timers, a state left and entered again, as by a
self-transition, arms them afresh). The kernels apply the two masks; they never search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._engine_tables import CODE_ROWS, TIMER_BLOCK, _Immutable
from ._views import readonly_view
from .errors import MachineDefinitionError
from .machine import MAX_TIMERS, MachineSpec

if TYPE_CHECKING:
    from .compiler import CompiledMachine

__all__ = ["FIRED_DTYPE", "NEVER", "TimerTables", "check_advance", "check_fired_len",
           "check_fired_out",
           "check_timers", "compile_timers", "timer_index", "timer_restore"]

#: The deadline of a timer that is not armed (the largest int64).
NEVER = (1 << 63) - 1
#: One fired timer, as ``advance(now_ns, out=...)`` records it: the slot, the event dispatched,
#: the time it fired at (its deadline), and the timer's index in ``machine.timers.names`` (the
#: layout of the kernel's ``HsmFired``).
FIRED_DTYPE = np.dtype({"names": ["slot", "event", "time_ns", "timer"],
                        "formats": [np.int64, np.uint8, np.int64, np.uint8],
                        "offsets": [0, 17, 8, 16], "itemsize": 24})
#: A table's timer columns (``table_layout``), as ``restore`` writes them.
_COLUMNS = ("deadlines", "clock", "timer_blocks", "skipped")


def _timers_of(machine: Any) -> TimerTables:
    if machine.timers is None:
        raise ValueError(f"machine {machine.name!r} has no timers (declare them with "
                         f"MachineSpec.after / every)")
    timers: TimerTables = machine.timers
    return timers


def check_advance(machine: Any, now_ns: object) -> int:
    """``now_ns`` checked as a new clock reading of a table of ``machine``
    (:meth:`TimerTables.check_clock`); ``ValueError`` if the machine has no timers."""
    return _timers_of(machine).check_clock(now_ns)


def timer_index(machine: Any, name: object) -> int:
    """The index of timer ``name`` of ``machine`` (errors as :meth:`TimerTables.index`)."""
    return _timers_of(machine).index(name, machine.name)


def check_fired_len(out: object) -> int:
    """The length of an ``advance`` record buffer, checked: a writeable, C-contiguous 1-D
    numpy array (not a subclass, whose ``shape`` could lie about the buffer the kernel writes)
    of exactly :data:`FIRED_DTYPE` (``TypeError`` / ``ValueError`` otherwise). Nothing is
    allocated that outlives the call (the caller takes the address through the buffer
    protocol, which also keeps the array from being resized while the records are written)."""
    if type(out) is not np.ndarray:
        raise TypeError(f"out must be a numpy.ndarray (not a subclass) of FIRED_DTYPE or None, "
                        f"got {type(out).__name__}")
    if out.dtype != FIRED_DTYPE or out.ndim != 1:
        raise ValueError(f"out must be a 1-D array of streamhsm.FIRED_DTYPE, got a "
                         f"{out.ndim}-D array of {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous, got an array of strides {out.strides}")
    if not out.flags.writeable:
        raise ValueError(f"out must be writeable, got a read-only array of {out.shape[0]} "
                         f"records")
    return int(out.shape[0])


def check_fired_out(out: object) -> tuple[int, int]:
    """The address and length of an ``advance`` record buffer checked by
    :func:`check_fired_len`."""
    n = check_fired_len(out)
    assert isinstance(out, np.ndarray)
    return int(out.__array_interface__["data"][0]), n


def timer_restore(v: dict[str, Any] | None) -> dict[str, Any]:
    """The values ``restore`` writes into a table's timer columns from a validated snapshot
    (``check_table_snapshot``): the deadlines, the clock and its summaries rebuilt exactly, the
    skipped periods. With ``v`` None: the column names, for binding."""
    if v is None:
        return dict.fromkeys(_COLUMNS)
    deadlines = v["deadlines"]
    n, cap = deadlines.shape
    block = TIMER_BLOCK
    padded = np.full((n, -(-cap // block) * block), NEVER, np.int64)
    padded[:, :cap] = deadlines
    blocks = padded.reshape(n, -1, block).min(axis=(0, 2)) if n else np.zeros(0, np.int64)
    low = int(blocks.min()) if blocks.size else NEVER
    return {"deadlines": deadlines, "clock": np.array([v["now_ns"], low], np.int64),
            "timer_blocks": blocks, "skipped": v["skipped"]}


def check_timers(spec: MachineSpec) -> None:
    """The declaration rules of timers (the culprit named): known owner states and events,
    unique timer names, at most :data:`~streamhsm.machine.MAX_TIMERS`, restarts naming declared
    timers, and no timers on a machine with history records (their transitions enter states
    chosen at run time, which the per-cell masks cannot describe)."""
    err, name = MachineDefinitionError, spec.name
    timers = spec.timers
    if len(timers) > MAX_TIMERS:
        raise err(f"machine {name!r} declares {len(timers)} timers; at most {MAX_TIMERS}")
    states, events = set(spec.states), set(spec.events)
    seen: set[str] = set()
    for t in timers:
        what = f"timer {t.name!r} ({t.label()} in {t.state!r})"
        if t.state not in states:
            raise err(f"machine {name!r}: {what} is owned by unknown state {t.state!r}")
        if t.event not in events:
            raise err(f"machine {name!r}: {what} fires unknown event {t.event!r}")
        if t.name in seen:
            raise err(f"machine {name!r}: timer name {t.name!r} is declared twice (pass name= "
                      f"to tell the timers apart)")
        seen.add(t.name)
    for h in spec.declared_handlers:
        for r in h.restart:
            if r not in seen:
                raise err(f"machine {name!r}: handler ({h.state}, {h.label()}) restarts unknown "
                          f"timer {r!r} (declared: {sorted(seen)})")
    if timers and spec.history_owners:
        raise err(f"machine {name!r} has timers and history records "
                  f"({list(spec.history_owners)}); a machine may have one or the other")


class TimerTables(_Immutable):
    """A machine's timers as the engine runs them (all arrays read-only).

    - ``names`` (tuple of str): timer ``i`` is ``names[i]``, in declaration order (which breaks
      ties); ``owners`` (int16), ``delays`` (int64, ns), ``events`` (uint8), ``periodic``
      (uint8) per timer.
    - ``arm[row, e]`` / ``cancel[row, e]`` (uint64, rows as the engine tables,
      ``row = leaf << flag_bits | mask``): bit ``i`` set if dispatching ``e`` arms (restarts
      included) / cancels timer ``i``; 0 on the free rows.
    - ``open_arm`` (int): the timers armed when a slot opens (owned by the initial leaf or one
      of its ancestors, Root included).
    - ``max_delay`` (int): the longest delay or period; a table's clock stays at most
      ``NEVER - max_delay`` so that ``clock + delay`` never overflows.
    - ``owned[s]`` (int, per state code): the timers owned by ``s`` or its ancestors (the ones
      running while ``s`` is active).
    """

    __slots__ = ("arm", "cancel", "delays", "events", "max_delay", "n_timers", "names",
                 "open_arm", "owned", "owners", "periodic")

    names: tuple[str, ...]
    owners: np.ndarray
    delays: np.ndarray
    events: np.ndarray
    periodic: np.ndarray
    arm: np.ndarray
    cancel: np.ndarray
    open_arm: int
    max_delay: int
    n_timers: int
    owned: tuple[int, ...]

    def __init__(self, names: tuple[str, ...], owners: np.ndarray, delays: np.ndarray,
                 events: np.ndarray, periodic: np.ndarray, arm: np.ndarray, cancel: np.ndarray,
                 open_arm: int, owned: tuple[int, ...]) -> None:
        self.names = names
        self.n_timers = len(names)
        self.owners = readonly_view(owners)
        self.delays = readonly_view(delays)
        self.events = readonly_view(events)
        self.periodic = readonly_view(periodic)
        self.arm = readonly_view(arm)
        self.cancel = readonly_view(cancel)
        self.open_arm = int(open_arm)
        self.max_delay = int(delays.max()) if len(names) else 0
        self.owned = owned
        self._seal()

    def index(self, name: object, machine_name: str) -> int:
        """The index of timer ``name`` (``TypeError`` if not a str, ``ValueError`` naming the
        declared timers if unknown)."""
        if not isinstance(name, str):
            raise TypeError(f"timer name must be a str, got {type(name).__name__} {name!r}")
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"machine {machine_name!r} has no timer {name!r} (timers: "
                             f"{list(self.names)})") from None

    def check_clock(self, now_ns: object, what: str = "now_ns") -> int:
        """``now_ns`` as an int if it is a valid clock reading for these timers: an int (not a
        bool) in ``0..NEVER - max_delay`` (so that arming never overflows int64)."""
        if type(now_ns) is bool or not isinstance(now_ns, (int, np.integer)):
            raise TypeError(f"{what} must be an int number of nanoseconds, got "
                            f"{type(now_ns).__name__} {now_ns!r}")
        value = int(now_ns)
        limit = NEVER - self.max_delay
        if not 0 <= value <= limit:
            raise ValueError(f"{what} must be 0..{limit} (2**63 - 1 minus the machine's longest "
                             f"timer delay, {self.max_delay} ns), got {value}")
        return value


def _guard_holds(guard: str | None, flags: tuple[str, ...], mask: int) -> bool:
    if guard is None:
        return True
    want = not guard.startswith("!")
    return bool(mask >> flags.index(guard.lstrip("!")) & 1) == want


def _check_zero_delays(machine: CompiledMachine, arm: np.ndarray, owned: tuple[int, ...]) -> None:
    """Refuse zero-delay timers that could fire each other forever: zero-delay timer ``t``
    leads to zero-delay timer ``u`` if dispatching ``t``'s event in a leaf under ``t``'s owner
    (any flags) arms ``u``, which is then due at the same time; a cycle of such edges would
    keep one ``advance`` firing at one instant."""
    spec, k = machine.spec, machine.n_flags
    zero = [i for i, t in enumerate(spec.timers) if t.delay_ns == 0]
    if not zero:
        return
    zmask = sum(1 << i for i in zero)
    edges: dict[int, set[int]] = {}
    for i in zero:
        e = spec.events.index(spec.timers[i].event)
        bits = 0
        for leaf in range(1, machine.n_states):
            if machine.is_leaf[leaf] and owned[leaf] >> i & 1:
                for mask in range(1 << k):
                    bits |= int(arm[leaf << k | mask, e])
        edges[i] = {j for j in zero if (bits & zmask) >> j & 1}
    state = dict.fromkeys(zero, 0)  # 0 new, 1 on the path, 2 done

    def visit(i: int, path: list[int]) -> None:
        state[i] = 1
        for j in sorted(edges[i]):
            if state[j] == 1:
                cycle = [spec.timers[x].name for x in path[path.index(j):] + [j]]
                raise MachineDefinitionError(
                    f"machine {spec.name!r}: zero-delay timers re-arm each other in a cycle "
                    f"({' -> '.join(cycle)}): one advance would never end")
            if state[j] == 0:
                visit(j, [*path, j])
        state[i] = 2

    for i in zero:
        if state[i] == 0:
            visit(i, [i])


def compile_timers(machine: CompiledMachine) -> TimerTables | None:
    """The timer tables of a compiled machine, or None if it declares no timers (it keeps the
    engine's timer-free kernels)."""
    spec = machine.spec
    if not spec.timers:
        return None
    code = machine.codec.state_codes
    n_s, n_e, k = machine.n_states, machine.n_events, machine.n_flags
    timers = spec.timers
    index = {t.name: i for i, t in enumerate(timers)}
    owners = np.array([code[t.state] for t in timers], np.int16)
    by_state: dict[int, int] = {}
    for i, o in enumerate(owners):
        by_state[int(o)] = by_state.get(int(o), 0) | 1 << i

    def ancestors(s: int) -> list[int]:
        out = [s]
        while s != 0:
            s = int(machine.parent[s])
            out.append(s)
        return out

    owned = tuple(sum(by_state.get(a, 0) for a in ancestors(s)) for s in range(n_s))
    restarts: dict[tuple[int, int], list[tuple[str | None, int]]] = {}
    for h in spec.declared_handlers:
        bits = sum(1 << index[r] for r in h.restart)
        restarts.setdefault((code[h.state], spec.events.index(h.event)), []).append(
            (h.guard, bits))
    arm = np.zeros((CODE_ROWS << k, n_e), np.uint64)
    cancel = np.zeros((CODE_ROWS << k, n_e), np.uint64)
    for mask in range(1 << k):
        for leaf in range(1, n_s):
            if not machine.is_leaf[leaf]:
                continue
            row = leaf << k | mask
            for e in range(n_e):
                key: Any = (mask, leaf, e) if k else (leaf, e)
                src = int(machine.handler[key])
                if src < 0:
                    continue
                a = c = 0
                if machine.exit_path[key][0] >= 0:  # a transition: its ordered path
                    last: dict[str, str] = {}
                    for what, st in machine.steps(leaf, e, mask):
                        last[st] = what
                    for st, what in last.items():
                        bits = by_state.get(code[st], 0)
                        if what == "enter":
                            a, c = a | bits, c & ~bits
                        else:
                            a, c = a & ~bits, c | bits
                new = int(machine.next_state[key])
                bits = next(b for g, b in restarts[(src, e)] if _guard_holds(g, spec.flags, mask))
                a |= bits & owned[new]  # restarted if the owner is active after
                arm[row, e], cancel[row, e] = a, c & ~a
    _check_zero_delays(machine, arm, owned)
    return TimerTables(
        tuple(t.name for t in timers), owners,
        np.array([t.delay_ns for t in timers], np.int64),
        np.array([spec.events.index(t.event) for t in timers], np.uint8),
        np.array([t.periodic for t in timers], np.uint8), arm, cancel,
        owned[machine.initial_leaf], owned)

