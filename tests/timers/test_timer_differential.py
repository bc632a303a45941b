"""Issue 21: timers, a MachineTable against one reference interpreter per slot.

Random machines (2-3 levels, flags and guards, final states, transient states and completing
composites) with one-shot and periodic timers owned at every level (Root included), of delays
from a few nanoseconds to 2**62, and handlers that restart them. A table of several slots runs a
random interleaving of dispatch, dispatch_many, broadcast, set_flag_many, advance (steps of a
few nanoseconds, of a million, huge jumps, and up to the clock's limit), release and open, and
snapshot/restore into a fresh table; one ``ReferenceMachine`` per open slot does the same from
the declaration (it never sees the compiled masks). After every action: each slot's state,
flags, unhandled counter and every timer's deadline, the clock, the skipped periods, and what
each advance fired (``out``: slot order ascending, per slot in firing order) must agree.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from _trees import TreeDesc, draw_tree
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamhsm import (
    FIRED_DTYPE,
    NEVER,
    MachineDefinitionError,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
)
from streamhsm.compiler import CompiledMachine
from streamhsm.machine import FREE_SLOT, MAX_DELAY_NS, ROOT

pytestmark = pytest.mark.smoke(False)  # Hypothesis-generated machines

NEXT, FIN = "Next", "Fin"
#: Fires one advance may cause over all slots; a jump that would fire more (a timer re-armed by
#: its own event, a nanosecond apart, over a jump of 2**62) is shortened (see _bounded).
BUDGET = 1500
OUT = 2 * BUDGET


@dataclass(frozen=True, repr=False)
class Desc(TreeDesc):
    """A declaration as plain data, printable as the code that declares it."""

    handlers: tuple[tuple[str, str, str | None, str | None, tuple[str, ...]], ...]
    completions: tuple[tuple[str, str, str | None], ...]
    timers: tuple[tuple[str, str, int, str, bool], ...]  # name, owner, delay, event, periodic

    def lines(self) -> list[str]:
        out = self.tree_lines()
        out += [f"spec.on({s!r}, {e!r}, {t!r}, guard={g!r}, restart={r!r})"
                for s, e, t, g, r in self.handlers]
        out += [f"spec.on_completion({s!r}, {t!r}, guard={g!r})" for s, t, g in self.completions]
        out += [f"spec.{'every' if p else 'after'}({o!r}, {d}, {e!r}, name={n!r})"
                for n, o, d, e, p in self.timers]
        return out

    def spec(self) -> MachineSpec:
        spec = self.tree_spec()
        for s, e, t, g, r in self.handlers:
            spec.on(s, e, t, guard=g, restart=r)
        for s, t, g in self.completions:
            spec.on_completion(s, t, guard=g)
        for n, o, d, e, p in self.timers:
            (spec.every if p else spec.after)(o, d, e, name=n)
        return spec


#: delays of three scales: a few ns (chains inside one small step), about a millisecond, and
#: 2**40..2**62 (huge jumps, the clock's limit)
DELAYS = st.one_of(st.integers(1, 40), st.integers(1, 40), st.integers(500_000, 2_000_000),
                   st.integers(1 << 40, MAX_DELAY_NS))


@st.composite
def machines(draw: st.DrawFn) -> Desc:
    """A random machine with timers. Every non-final leaf handles ``Next`` (to the next one, in
    a cycle) and Root handles ``Fin<i>`` (to the i-th final state), so most machines are
    reachable; the rest (and completion chains that never rest) are refused by ``compile()``
    and skipped (``assume``)."""
    tree = draw_tree(draw, 2, 7)
    states, parent_of, initials = tree.states, tree.parent_of, tree.initials
    composites, leaves = tree.composites, tree.leaves
    finals = tuple(s for s in leaves[1:] if draw(st.integers(0, 4)) == 0)
    plain = [s for s in leaves if s not in finals]
    flags = tuple(f"f{i}" for i in range(draw(st.integers(0, 2))))
    events = tuple(f"E{i}" for i in range(draw(st.integers(1, 3))))
    fins = tuple(f"{FIN}{i}" for i in range(len(finals)))
    all_events = (*events, NEXT, *fins)
    timers = []
    for i in range(draw(st.integers(1, 5))):
        owner = draw(st.sampled_from([ROOT, *(s for s, _ in states)]))
        timers.append((f"T{i}", owner, draw(DELAYS), draw(st.sampled_from(all_events)),
                       draw(st.booleans())))
    names = [t[0] for t in timers]
    guards = [None, *flags, *(f"!{f}" for f in flags)]
    targets = [None, ROOT, *(s for s, _ in states)]
    masks = range(1 << len(flags))
    restarts = st.lists(st.sampled_from(names), max_size=2, unique=True).map(tuple)

    def runs(g: str | None, taken: set[int]) -> set[int]:
        """The flag bitmasks under which guard ``g`` holds and no earlier one took over."""
        return {m for m in masks if g is None
                or bool(m >> flags.index(g.lstrip("!")) & 1) != g.startswith("!")} - taken

    handlers: list[tuple[str, str, str | None, str | None, tuple[str, ...]]] = []
    for s in [ROOT, *(s for s, _ in states if s not in finals)]:
        for e in events:
            taken: set[int] = set()
            for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
                t = draw(st.sampled_from(targets))
                g = draw(st.sampled_from(guards))
                if runs(g, taken):  # a handler that can never run is left out
                    handlers.append((s, e, t, g, draw(restarts)))
                    taken |= runs(g, taken)
    for i, leaf in enumerate(plain):
        handlers.append((leaf, NEXT, plain[(i + 1) % len(plain)], None, draw(restarts)))
    for fin, f in zip(fins, finals, strict=True):
        handlers.append((ROOT, fin, f, None, ()))
    completions: list[tuple[str, str, str | None]] = []
    completing = [*plain, *(c for c in composites if any(parent_of[f] == c for f in finals))]
    for s in completing:
        taken = set()
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            t = draw(st.sampled_from([x for x, _ in states]))
            g = draw(st.sampled_from(guards))
            if runs(g, taken):
                completions.append((s, t, g))
                taken |= runs(g, taken)
    return Desc(tuple(states), finals, initials, flags, all_events, tuple(handlers),
                tuple(completions), tuple(timers))


def compiled(desc: Desc) -> tuple[MachineSpec, CompiledMachine]:
    """The spec and its machine; refusals the generator does not rule out (unreachable states,
    chains that never rest) are skipped, any other refusal fails the test."""
    spec = desc.spec()
    try:
        return spec, spec.compile()
    except MachineDefinitionError as exc:
        assume(not any(why in str(exc) for why in ("unreachable", "never rests")))
        raise


def _mask(ref: ReferenceMachine, flags: Sequence[str]) -> int:
    return sum(1 << i for i, f in enumerate(flags) if ref.flag(f))


class _TooMany(Exception):
    pass


def _fires(refs: dict[int, ReferenceMachine], now: int) -> int | None:
    """How many timers advancing every reference to ``now`` fires (on copies), or None if more
    than BUDGET."""
    count = 0
    for ref in refs.values():
        # the declaration and the (immutable) codec are shared, the run-time state copied
        shared = (ref._spec, ref._codec)  # noqa: SLF001
        probe = copy.deepcopy(ref, {id(x): x for x in shared})
        dispatch = probe.dispatch

        def counted(event: object, dispatch=dispatch) -> object:  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            if count > BUDGET:
                raise _TooMany
            return dispatch(event)

        probe.dispatch = counted  # type: ignore[method-assign]
        try:
            probe.advance(now)
        except _TooMany:
            return None
    return count


def _bounded(refs: dict[int, ReferenceMachine], clock: int, now: int) -> int:
    """``now``, or a smaller time after ``clock`` if advancing to ``now`` fires too many."""
    while _fires(refs, now) is None:
        now = clock + (now - clock) // 1024
    return now


def _advance_target(draw: st.DrawFn, clock: int, limit: int) -> int:
    kind = draw(st.sampled_from(["same", "small", "small", "milli", "huge", "limit"]))
    step = {"same": 0, "small": draw(st.integers(1, 60)),
            "milli": draw(st.integers(1, 3_000_000)),
            "huge": draw(st.integers(1, max(1, (limit - clock) // 3))),
            "limit": limit - clock}[kind]
    return min(clock + step, limit)


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SETTINGS
@given(data=st.data())
def test_table_slots_match_one_reference_each(data: st.DataObject) -> None:
    desc = data.draw(machines(), label="machine")
    spec, m = compiled(desc)
    timers = m.timers
    assert timers is not None
    limit = NEVER - timers.max_delay
    start = data.draw(st.sampled_from([0, 0, 12345, limit // 2]), label="now_ns")
    capacity = data.draw(st.integers(1, 8), label="capacity")
    table = MachineTable(m, capacity, now_ns=start)
    refs = {table.open(): ReferenceMachine(spec, now_ns=start) for _ in range(capacity)}
    retired = [0] * timers.n_timers  # skipped periods of released slots' references
    out = np.zeros(OUT, FIRED_DTYPE)
    events = st.sampled_from(desc.events)

    for _ in range(data.draw(st.integers(0, 25), label="n_actions")):
        kind = data.draw(st.sampled_from(["one", "many", "broadcast", "flags", "advance",
                                          "advance", "advance", "release", "open", "restore"]))
        open_slots = sorted(refs)
        if kind == "one" and open_slots:
            s, e = data.draw(st.sampled_from(open_slots)), data.draw(events)
            assert table.dispatch(s, e) == refs[s].dispatch(e).handled
        elif kind == "many" and open_slots:
            n = data.draw(st.integers(0, 3 * capacity))
            slots = data.draw(st.lists(st.sampled_from(open_slots), min_size=n, max_size=n))
            evs = data.draw(st.lists(events, min_size=n, max_size=n))
            expected = sum(refs[s].dispatch(e).handled for s, e in zip(slots, evs, strict=True))
            codes = np.array([m.event_code(e) for e in evs], np.uint8)
            assert table.dispatch_many(np.array(slots, np.int64), codes) == expected
        elif kind == "broadcast":
            e = data.draw(events)
            assert table.broadcast(e) == sum(refs[s].dispatch(e).handled for s in open_slots)
        elif kind == "flags" and desc.flags and open_slots:
            f, value = data.draw(st.sampled_from(desc.flags)), data.draw(st.booleans())
            slots = data.draw(st.lists(st.sampled_from(open_slots), max_size=capacity))
            table.set_flag_many(np.array(slots, np.int64), f, value)
            for s in slots:
                refs[s].set_flag(f, value)
        elif kind == "advance":
            clock = table.now_ns
            target = _advance_target(data.draw, clock, limit)
            now = _bounded(refs, clock, target)
            want = [(s, m.event_code(f.event), f.time_ns, timers.names.index(f.timer))
                    for s in sorted(refs) for f in refs[s].advance(now)]
            got = table.advance(now, out=out)
            assert got == len(want), (now, want)
            assert [tuple(r) for r in out[:got].tolist()] == want, now
        elif kind == "release" and open_slots:
            s = data.draw(st.sampled_from(open_slots))
            table.release(s)
            retired = [a + b for a, b in zip(retired, refs.pop(s).skipped_periods, strict=True)]
        elif kind == "open" and len(refs) < capacity:
            s = table.open()
            refs[s] = ReferenceMachine(spec, now_ns=table.now_ns)
        elif kind == "restore":  # a fresh table restored from a snapshot carries on
            snap = table.snapshot()
            table = MachineTable(m, capacity)
            table.restore(snap)
        assert table.now_ns == clock_of(refs, table.now_ns), kind
        for s in range(capacity):
            ref = refs.get(s)
            if ref is None:
                assert table.states[s] == FREE_SLOT
                assert all(table.deadlines(n)[s] == NEVER for n in timers.names), (kind, s)
                continue
            assert m.state_names[table.states[s]] == ref.current, (kind, s)
            assert int(table.flags[s]) == _mask(ref, desc.flags), (kind, s)
            assert int(table.unhandled[s]) == ref.unhandled, (kind, s)
            assert {n: int(table.deadlines(n)[s]) for n in timers.names} == ref.deadlines, \
                (kind, s)
        # the table's counters saturate at 2**63 - 1 (the sum over slots may pass it)
        total = [min(sum(c), NEVER) for c in zip(retired, *(r.skipped_periods
                                                            for r in refs.values()), strict=True)]
        assert list(table.skipped_periods) == total, kind


def clock_of(refs: dict[int, ReferenceMachine], default: int) -> int:
    """The references' common clock (``default`` with none open)."""
    clocks = {r.now_ns for r in refs.values()}
    assert len(clocks) <= 1, clocks
    return clocks.pop() if clocks else default
