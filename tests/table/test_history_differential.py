"""Issue 20: history and completion, compiled vs the reference interpreter on random machines.

Random machines with history owners (shallow and deep transitions, on handlers and completion
transitions), history defaults, final states (nested and top-level), completion transitions
(transient simple states and completing composites), guards and deep initial transitions. The
reference interpreter walks the declaration at run time with its records in a dict; the engine
runs compile-time programs over per-slot record columns. They are compared slot by slot after
every action of random dispatch / dispatch_many / broadcast / set_flag_many / release-open /
snapshot-restore sequences: states, flags, unhandled counters, transition counts and every
owner's record. ``MachineInstance`` and ``CompiledMachine.steps`` (the exact exit/entry order)
are compared with the reference event by event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from _trees import TreeDesc, draw_tree
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamhsm import (
    MachineDefinitionError,
    MachineInstance,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
)
from streamhsm._engine_tables import STEP_FAST_SHIFT
from streamhsm._pseudo import FAST_READ
from streamhsm.compiler import CompiledMachine
from streamhsm.machine import FREE_SLOT, ROOT

NEXT, FIN = "Next", "Fin"
BIG_BATCH = 2048


@dataclass(frozen=True, repr=False)
class Desc(TreeDesc):
    """A declaration as plain data, printable as the code that declares it."""

    handlers: tuple[tuple[str, str, str | None, str | None, str | None], ...]
    completions: tuple[tuple[str, str, str | None, str | None], ...]
    defaults: tuple[tuple[str, str, str], ...]

    def lines(self) -> list[str]:
        out = self.tree_lines()
        out += [f"spec.on({s!r}, {e!r}, {t!r}, guard={g!r}, history={h!r})"
                for s, e, t, g, h in self.handlers]
        out += [f"spec.on_completion({s!r}, {t!r}, guard={g!r}, history={h!r})"
                for s, t, g, h in self.completions]
        out += [f"spec.history_default({o!r}, {t!r}, history={h!r})"
                for o, t, h in self.defaults]
        return out

    def spec(self) -> MachineSpec:
        spec = self.tree_spec()
        for s, e, t, g, h in self.handlers:
            spec.on(s, e, t, guard=g, history=h)
        for s, t, g, h in self.completions:
            spec.on_completion(s, t, guard=g, history=h)
        for o, t, h in self.defaults:
            spec.history_default(o, t, history=h)
        return spec


@st.composite
def machines(draw: st.DrawFn) -> Desc:
    """A random machine with every pseudostate feature. Every non-final leaf handles ``Next``
    (to the next non-final leaf, in a cycle) and ``Root`` handles ``Fin<i>`` with a transition to
the i-th final state,
    so most machines are reachable; the rest (and completion chains that never rest) are
    refused by ``compile()`` and skipped (``assume``)."""
    tree = draw_tree(draw, 2, 9)
    states, parent_of, initials = tree.states, tree.parent_of, tree.initials
    composites, leaves, descendants = tree.composites, tree.leaves, tree.descendants
    finals = tuple(s for s in leaves[1:] if draw(st.integers(0, 3)) == 0)
    plain = [s for s in leaves if s not in finals]
    flags = tuple(f"f{i}" for i in range(draw(st.integers(0, 2))))
    events = tuple(f"E{i}" for i in range(draw(st.integers(1, 3))))
    guards = [None, *flags, *(f"!{f}" for f in flags)]
    targets = [None, ROOT, *(s for s, _ in states)]
    hist = st.sampled_from([None, None, "shallow", "deep"])
    handlers: list[tuple[str, str, str | None, str | None, str | None]] = []
    masks = range(1 << len(flags))

    def runs(g: str | None, taken: set[int]) -> set[int]:
        """The flag bitmasks under which guard ``g`` holds and no earlier one took over."""
        return {m for m in masks if g is None
                or bool(m >> flags.index(g.lstrip("!")) & 1) != g.startswith("!")} - taken

    for s in [ROOT, *(s for s, _ in states if s not in finals)]:
        for e in events:
            taken: set[int] = set()
            for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
                t = draw(st.sampled_from(targets))
                h = draw(hist) if t in composites else None
                g = draw(st.sampled_from(guards))
                if runs(g, taken):  # a handler that can never run is left out
                    handlers.append((s, e, t, g, h))
                    taken |= runs(g, taken)
    for i, leaf in enumerate(plain):
        handlers.append((leaf, NEXT, plain[(i + 1) % len(plain)], None, None))
    fins = tuple(f"{FIN}{i}" for i in range(len(finals)))
    for fin, f in zip(fins, finals, strict=True):
        handlers.append((ROOT, fin, f, None, None))
    completions: list[tuple[str, str, str | None, str | None]] = []
    completing = [*plain, *(c for c in composites if any(parent_of[f] == c for f in finals))]
    for s in completing:
        taken = set()
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            t = draw(st.sampled_from([x for x, _ in states]))
            h = draw(hist) if t in composites else None
            g = draw(st.sampled_from(guards))
            if runs(g, taken):
                completions.append((s, t, g, h))
                taken |= runs(g, taken)
    defaults: list[tuple[str, str, str]] = []
    for c in composites:
        for kind in ("shallow", "deep"):
            if draw(st.integers(0, 3)) == 0:
                defaults.append((c, draw(st.sampled_from(descendants(c))), kind))
    return Desc(tuple(states), finals, initials, flags, (*events, NEXT, *fins), tuple(handlers),
                tuple(completions), tuple(defaults))


def compiled(desc: Desc) -> tuple[MachineSpec, CompiledMachine]:
    """The spec and its machine; machines ``compile()`` refuses for reasons the generator does
    not rule out (unreachable states, chains that never rest) are
    skipped, any other refusal fails the test."""
    spec = desc.spec()
    try:
        return spec, spec.compile()
    except MachineDefinitionError as exc:
        msg = str(exc)
        assume(not any(why in msg for why in ("unreachable", "never rests")))
        raise


def _mask(ref: ReferenceMachine, flags: Sequence[str]) -> int:
    return sum(1 << i for i, f in enumerate(flags) if ref.flag(f))


def _records(m: CompiledMachine, ref: ReferenceMachine) -> list[int]:
    return [FREE_SLOT if ref.records.get(m.state_names[o]) is None
            else m.state_code(ref.records[m.state_names[o]]) for o in m.history_owners]


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SETTINGS
@given(data=st.data())
def test_instance_and_steps_match_the_reference(data: st.DataObject) -> None:
    desc = data.draw(machines(), label="machine")
    spec, m = compiled(desc)
    ref, inst = ReferenceMachine(spec), MachineInstance(m)
    assert m.initial_leaf == m.state_code(ref.current)
    assert m.initial_entries == tuple(m.state_code(s) for s in ref.initial_step.entries)
    assert {m.state_names[o]: m.state_names[r] for o, r in m.initial_records.items()} == ref.records
    action = st.one_of(st.tuples(st.just("event"), st.sampled_from(desc.events)),
                       st.tuples(st.just("flag"), st.sampled_from(desc.flags or ("",)),
                                 st.booleans()))
    for act in data.draw(st.lists(action, max_size=40), label="actions"):
        if act[0] == "flag":
            if desc.flags:
                ref.set_flag(act[1], act[2])
                inst.set_flag(act[1], act[2])
            continue
        before = ref.current
        history = dict(ref.records)
        steps = m.steps(before, act[1], flags=_mask(ref, desc.flags), history=history)
        step = ref.dispatch(act[1])
        assert steps == step.path, (before, act)
        assert inst.dispatch(act[1]) == step.handled
        assert m.state_names[inst.current] == ref.current
        assert inst.unhandled == ref.unhandled
        for o in m.history_owners:
            assert inst.history(o) == ref.records.get(m.state_names[o]), (act, o)


@st.composite
def table_actions(draw: st.DrawFn, desc: Desc, capacity: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    slot = st.integers(0, capacity - 1)
    for _ in range(draw(st.integers(0, 20))):
        kind = draw(st.sampled_from(["one", "many", "many", "broadcast", "flags", "reopen",
                                     "restore"]))
        if kind == "flags" and desc.flags:
            slots = draw(st.lists(slot, max_size=2 * capacity))
            values = draw(st.booleans())
            out.append(("flags", draw(st.sampled_from(desc.flags)), np.array(slots, np.int64),
                        values))
        elif kind == "one":
            out.append(("one", draw(slot), draw(st.sampled_from(desc.events))))
        elif kind == "many":
            sdt = draw(st.sampled_from([np.int32, np.int64]))
            edt = draw(st.sampled_from([np.uint8, np.int32, np.int64]))
            if draw(st.integers(0, 5)) == 0:  # a big batch (chunked loops on other machines)
                rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
                out.append(("many", rng.integers(0, capacity, BIG_BATCH).astype(sdt),
                            rng.integers(0, len(desc.events), BIG_BATCH).astype(edt)))
                continue
            n = draw(st.integers(0, 3 * capacity))
            slots = draw(st.lists(slot, min_size=n, max_size=n))
            events = draw(st.lists(st.integers(0, len(desc.events) - 1), min_size=n, max_size=n))
            out.append(("many", np.array(slots, sdt), np.array(events, edt)))
        elif kind == "broadcast":
            out.append(("broadcast", draw(st.sampled_from(desc.events))))
        elif kind == "reopen":
            out.append(("reopen", draw(slot)))
        elif kind == "restore":
            out.append(("restore",))
    return out


@SETTINGS
@given(data=st.data())
def test_table_slots_match_one_reference_each_records_included(data: st.DataObject) -> None:
    desc = data.draw(machines(), label="machine")
    spec, m = compiled(desc)
    capacity = data.draw(st.integers(1, 12), label="capacity")
    table = MachineTable(m, capacity)
    refs = {table.open(): ReferenceMachine(spec) for _ in range(capacity)}
    counts = np.zeros((m.n_states, m.n_events), np.int64)

    def ref_dispatch(slot: int, event: str) -> bool:
        leaf, e = m.state_code(refs[slot].current), m.event_code(event)
        step = refs[slot].dispatch(event)
        if step.path:
            counts[leaf, e] += 1
        return step.handled

    for action in data.draw(table_actions(desc, capacity), label="actions"):
        if action[0] == "flags":
            _, name, slots, value = action
            table.set_flag_many(slots, name, value)
            for s in slots.tolist():
                refs[s].set_flag(name, value)
        elif action[0] == "one":
            assert table.dispatch(action[1], action[2]) == ref_dispatch(action[1], action[2])
        elif action[0] == "many":
            _, slots, events = action
            expected = sum(ref_dispatch(s, desc.events[e])
                           for s, e in zip(slots.tolist(), events.tolist(), strict=True))
            assert table.dispatch_many(slots, events) == expected
        elif action[0] == "broadcast":
            expected = sum(ref_dispatch(s, action[1]) for s in sorted(refs))
            assert table.broadcast(action[1]) == expected
        elif action[0] == "restore":  # a fresh table restored from a snapshot carries on
            snap = table.snapshot()
            table = MachineTable(m, capacity)
            table.restore(snap)
        else:
            table.release(action[1])
            for o in m.history_owners:  # release clears the slot's records
                assert table.history(o)[action[1]] == FREE_SLOT
            assert table.open() == action[1]
            refs[action[1]] = ReferenceMachine(spec)
        for s, ref in refs.items():
            assert m.state_names[table.states[s]] == ref.current, (action, s)
            assert int(table.flags[s]) == _mask(ref, desc.flags), (action, s)
            assert int(table.unhandled[s]) == ref.unhandled, (action, s)
            got = [int(table.history(o)[s]) for o in m.history_owners]
            assert got == _records(m, ref), (action, s)
        assert np.array_equal(table.transition_counts, counts), action
        leaves = [m.state_code(ref.current) for ref in refs.values()]
        for code, name in enumerate(m.state_names):  # occupancy, composites included
            want = sum(leaf in m.leaves_under[code] for leaf in leaves)
            assert table.count(name) == want, (action, name)


def test_generated_machines_use_every_feature() -> None:
    """The generator reaches every feature (a differential over machines without them would
    prove nothing): history reads of both kinds, defaults, finals, transient states and
    completing composites all appear in compiled machines, and history cells of each kind the
    chunked kernels run (fast write, fast read, program)."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(desc=machines())
    def probe(desc: Desc) -> None:
        _, m = compiled(desc)
        if m.history_owners:
            seen.add("owners")
        seen.update(f"read-{h}" for *_, h in desc.handlers if h)
        if desc.defaults:
            seen.add("defaults")
        if m.final_states:
            seen.add("finals")
        if any(s in dict(desc.states) and s not in dict(desc.states).values()
               and s not in desc.finals for s, *_ in desc.completions):
            seen.add("transient")
        if any(s in dict(desc.states).values() for s, *_ in desc.completions):
            seen.add("composite-completion")
        if (m.engine_tables.kind == 3).any():
            seen.add("history-cells")
        codes = m.engine_tables.step[m.engine_tables.kind == 3] >> STEP_FAST_SHIFT
        seen.update(name for name, hit in (("fast-write", (codes > 0) & (codes < FAST_READ)),
                                           ("fast-read", codes >= FAST_READ),
                                           ("program", codes == 0)) if hit.any())

    probe()
    assert seen >= {"owners", "read-shallow", "read-deep", "defaults", "finals", "transient",
                    "composite-completion", "history-cells", "fast-write", "fast-read",
                    "program"}, seen
