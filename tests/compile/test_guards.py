"""Issue 13: flags, guarded handlers and deep initial transitions.

The compiled engine (``MachineInstance``, ``MachineTable``, the compiled tables and
``exits``/``entries``) is compared step by step with the reference interpreter, which evaluates
guards and deep initials at run time from the declaration, on random machines. Then the
refusals of ``compile()`` and the flag API of every entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from _trees import draw_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhsm import (
    MachineDefinitionError,
    MachineInstance,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
)
from streamhsm.compiler import CompiledMachine
from streamhsm.machine import ROOT, HandlerDecl

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: Hypothesis-generated machines

MAX_DEPTH = 4
NEXT = "Next"  # the event that walks the leaves in a cycle, so that every state is reachable
#: A batch this long runs through the engine's chunked batch kernels (with batch-local transition
#: counts) when tracing is off; shorter ones, or any with tracing on, go event by event.
BIG_BATCH = 2048
TRACE_SIZE = 512


# ---------------------------------------------------------------------------------------------
# random machines
@dataclass(frozen=True, repr=False)
class Desc:
    """A machine declaration as plain data, printable as the code that declares it."""

    states: tuple[tuple[str, str], ...]  # (state, parent), declaration order
    initials: tuple[tuple[str, str], ...]  # (composite or Root, proper descendant)
    flags: tuple[str, ...]
    events: tuple[str, ...]
    handlers: tuple[tuple[str, str, str | None, str | None], ...]  # (state, event, target, guard)

    def spec(self) -> MachineSpec:
        init = dict(self.initials)
        spec = MachineSpec("rnd", self.events, initial=init[ROOT])
        for s, p in self.states:
            spec.state(s, p, initial=init.get(s))
        for f in self.flags:
            spec.flag(f)
        for s, e, t, g in self.handlers:
            spec.on(s, e, t, guard=g)
        return spec

    def __repr__(self) -> str:  # what a failing example prints: the declaration, runnable
        init = dict(self.initials)
        lines = [f"spec = MachineSpec('rnd', {list(self.events)!r}, initial={init[ROOT]!r})"]
        lines += [f"spec.state({s!r}, {p!r}, initial={init.get(s)!r})" for s, p in self.states]
        lines += [f"spec.flag({f!r})" for f in self.flags]
        lines += [f"spec.on({s!r}, {e!r}, {t!r}, guard={g!r})" for s, e, t, g in self.handlers]
        return "\n" + "\n".join(lines) + "\n"


def _holds(guard: str | None, flags: Sequence[str], mask: int) -> bool:
    if guard is None:
        return True
    name = guard.lstrip("!")
    return bool(mask >> flags.index(name) & 1) != guard.startswith("!")


@st.composite
def machines(draw: st.DrawFn) -> Desc:
    """A random machine that ``compile()`` accepts (every generated one does, see below).

    A tree of 1-9 states at most 4 levels deep; a random initial state (any proper descendant,
    so often a deep one) for Root and every composite; 0-4 flags; 1-3 events with 0-3 handlers
    per (state, event), Root included, each with a random guard (none, ``f`` or ``!f``) and a
    random target (none, Root or any state). A handler that could never run (every flag
    bitmask under which its guard holds is taken by an earlier handler of its (state, event):
    a second unguarded one included) is left out. Every leaf handles ``Next`` with an unguarded
    transition to the next leaf (in a cycle): every state is then reachable, so every generated
    machine compiles (asserted by the tests: no example is skipped).
    """
    tree = draw_tree(draw, 1, 9, MAX_DEPTH)
    states, parent_of, initials = tree.states, tree.parent_of, tree.initials
    flags = tuple(f"f{i}" for i in range(draw(st.integers(0, 4))))
    events = tuple(f"E{i}" for i in range(draw(st.integers(1, 3))))
    guards = [None, *flags, *(f"!{f}" for f in flags)]
    targets = [None, ROOT, *(s for s, _ in states)]
    masks = range(1 << len(flags))
    handlers: list[tuple[str, str, str | None, str | None]] = []
    for s in [ROOT, *(s for s, _ in states)]:
        for e in events:
            taken: set[int] = set()
            for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
                g = draw(st.sampled_from(guards))
                t = draw(st.sampled_from(targets))
                runs = {m for m in masks if _holds(g, flags, m)} - taken
                if runs:
                    handlers.append((s, e, t, g))
                    taken |= runs
    leaves = [s for s, _ in states if s not in parent_of.values()]
    for i, leaf in enumerate(leaves):
        handlers.append((leaf, NEXT, leaves[(i + 1) % len(leaves)], None))
    return Desc(tuple(states), initials, flags, (*events, NEXT), tuple(handlers))


def _actions(desc: Desc, max_size: int = 40) -> st.SearchStrategy[list[tuple[object, ...]]]:
    event = st.tuples(st.just("event"), st.sampled_from(desc.events))
    if not desc.flags:
        return st.lists(event, max_size=max_size)
    flag = st.tuples(st.just("flag"), st.sampled_from(desc.flags), st.booleans())
    return st.lists(st.one_of(event, flag), max_size=max_size)


def _mask(ref: ReferenceMachine, flags: Sequence[str]) -> int:
    return sum(1 << i for i, f in enumerate(flags) if ref.flag(f))


def _names(m: CompiledMachine, codes: Sequence[int]) -> list[str]:
    return [m.state_names[c] for c in codes]


def _table_at(m: CompiledMachine, table: np.ndarray, mask: int, leaf: int, e: int) -> int:
    return int(table[mask, leaf, e] if m.n_flags else table[leaf, e])


# ---------------------------------------------------------------------------------------------
# reference vs compiled tables, every (flags, leaf, event)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desc=machines())
def test_random_machines_tables_match_the_reference(desc: Desc) -> None:
    spec = desc.spec()
    m = spec.compile()
    assert _names(m, m.initial_entries) == ReferenceMachine(spec).initial_step.entries
    leaves = [s for s in range(m.n_states) if m.is_leaf[s]]
    for mask in range(1 << len(desc.flags)):
        for leaf in leaves:
            for e, ev in enumerate(desc.events):
                ref = ReferenceMachine(spec)
                ref.current = m.state_names[leaf]
                for i, f in enumerate(desc.flags):
                    ref.set_flag(f, bool(mask >> i & 1))
                step = ref.dispatch(ev)
                where = (mask, m.state_names[leaf], ev)
                code = -1 if step.handler is None else m.state_code(step.handler)
                assert _table_at(m, m.handler, mask, leaf, e) == code, where
                assert _table_at(m, m.handled, mask, leaf, e) == step.handled, where
                assert m.state_names[_table_at(m, m.next_state, mask, leaf, e)] == ref.current
                assert _names(m, m.exits(leaf, ev, flags=mask)) == step.exits, where
                assert _names(m, m.entries(leaf, ev, flags=mask)) == step.entries, where


# ---------------------------------------------------------------------------------------------
# reference vs compiled, one instance
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_machines_match_the_reference(data: st.DataObject) -> None:
    desc = data.draw(machines(), label="machine")
    spec = desc.spec()
    m = spec.compile()  # never refused: see machines()
    ref = ReferenceMachine(spec)
    inst = MachineInstance(m, count_transitions=True)
    table = MachineTable(m, 3)
    table.open()
    slot = table.open()
    counts = np.zeros((m.n_states, m.n_events), np.int64)

    assert _names(m, m.initial_entries) == ref.initial_step.entries
    assert ref.initial_step.exits == [] and ref.initial_step.handled
    assert m.state_names[m.initial_leaf] == ref.current
    assert m.state_names[inst.current] == ref.current == m.state_names[table.state(slot)]

    for action in data.draw(_actions(desc), label="actions"):
        if action[0] == "flag":
            _, name, value = action
            ref.set_flag(name, value)
            inst.set_flag(name, value)
            table.set_flag(slot, name, value)
        else:
            ev = action[1]
            mask = _mask(ref, desc.flags)
            leaf, e = m.state_code(ref.current), m.event_code(ev)
            step = ref.dispatch(ev)
            assert inst.dispatch(ev) == step.handled == table.dispatch(slot, ev), action
            assert _names(m, m.exits(leaf, ev, flags=mask)) == step.exits, action
            assert _names(m, m.entries(leaf, ev, flags=mask)) == step.entries, action
            code = -1 if step.handler is None else m.state_code(step.handler)
            assert _table_at(m, m.handler, mask, leaf, e) == code, action
            assert _table_at(m, m.handled, mask, leaf, e) == step.handled, action
            assert m.state_names[_table_at(m, m.next_state, mask, leaf, e)] == ref.current
            if step.exits or step.entries:
                counts[leaf, e] += 1
            assert _mask(ref, desc.flags) == mask  # dispatch never changes flags
        assert m.state_names[inst.current] == ref.current == m.state_names[table.state(slot)]
        assert inst.unhandled == ref.unhandled == int(table.unhandled[slot])
        for f in desc.flags:
            assert inst.flag(f) == ref.flag(f) == table.flag(slot, f)
        assert int(table.flags[slot]) == _mask(ref, desc.flags)
        assert int(table.flags[0]) == 0  # the other open slot is untouched
    assert inst.transition_counts is not None
    assert np.array_equal(inst.transition_counts, counts)


@st.composite
def _table_actions(draw: st.DrawFn, desc: Desc, capacity: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    slot = st.integers(0, capacity - 1)
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["many", "many", "broadcast", "flags", "flags", "reopen",
                                     "restore"]))
        if kind == "flags" and desc.flags:
            slots = draw(st.lists(slot, max_size=2 * capacity))  # repeats: the last one wins
            sdt = draw(st.sampled_from([np.int32, np.int64]))
            one = draw(st.booleans())
            values: object
            if one:
                values = draw(st.booleans())
            else:
                vdt = draw(st.sampled_from([np.bool_, np.uint8]))
                values = np.array(draw(st.lists(st.booleans(), min_size=len(slots),
                                                max_size=len(slots))), vdt)
            out.append(("flags", draw(st.sampled_from(desc.flags)), np.array(slots, sdt), values))
        elif kind == "many":
            sdt = draw(st.sampled_from([np.int32, np.int64]))
            edt = draw(st.sampled_from([np.uint8, np.int32, np.int64]))
            if draw(st.integers(0, 4)) == 0:  # a big batch: the chunked batch kernels
                rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
                n = draw(st.sampled_from([BIG_BATCH, 2 * BIG_BATCH + 77]))
                out.append(("many", rng.integers(0, capacity, n).astype(sdt),
                            rng.integers(0, len(desc.events), n).astype(edt)))
                continue
            n = draw(st.integers(0, 3 * capacity))
            slots = draw(st.lists(slot, min_size=n, max_size=n))  # repeats allowed
            events = draw(st.lists(st.integers(0, len(desc.events) - 1), min_size=n, max_size=n))
            out.append(("many", np.array(slots, sdt), np.array(events, edt)))
        elif kind == "broadcast":
            out.append(("broadcast", draw(st.sampled_from(desc.events))))
        elif kind == "reopen":
            out.append(("reopen", draw(slot)))
        elif kind == "restore":
            out.append(("restore",))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_machines_many_slots_match_one_reference_per_slot(data: st.DataObject) -> None:
    desc = data.draw(machines(), label="machine")
    spec = desc.spec()
    m = spec.compile()
    # up to 20 slots: the engine packs 2, 4 or 8 slots' flags per byte for its batch kernels
    capacity = data.draw(st.integers(1, 20), label="capacity")
    table = MachineTable(m, capacity)
    refs = {table.open(): ReferenceMachine(spec) for _ in range(capacity)}
    assert sorted(refs) == list(range(capacity))
    counts = np.zeros((m.n_states, m.n_events), np.int64)
    tracing = data.draw(st.booleans(), label="tracing")
    if tracing:
        table.enable_trace(TRACE_SIZE)
    trace: list[tuple[int, int, int, int, int]] = []

    def ref_dispatch(slot: int, event: str) -> bool:
        leaf, e = m.state_code(refs[slot].current), m.event_code(event)
        step = refs[slot].dispatch(event)
        if step.exits or step.entries:
            counts[leaf, e] += 1
            assert step.handler is not None
            trace.append((slot, e, leaf, m.state_code(refs[slot].current),
                          m.state_code(step.handler)))
        return step.handled

    for action in data.draw(_table_actions(desc, capacity), label="actions"):
        if action[0] == "flags":
            _, name, slots, values = action
            table.set_flag_many(slots, name, values)
            for i, s in enumerate(slots.tolist()):
                v = values if isinstance(values, bool) else bool(values[i])
                refs[s].set_flag(name, v)
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
            if tracing:
                table.enable_trace(TRACE_SIZE)
                trace.clear()
        else:
            table.release(action[1])
            slot = table.open()
            assert slot == action[1]  # the only free slot
            refs[slot] = ReferenceMachine(spec)
            assert int(table.flags[slot]) == 0
        for s, ref in refs.items():
            assert m.state_names[table.states[s]] == ref.current, (action, s)
            assert int(table.flags[s]) == _mask(ref, desc.flags), (action, s)
            assert int(table.unhandled[s]) == ref.unhandled, (action, s)
        assert np.array_equal(table.transition_counts, counts), action
    if tracing:  # the ring holds the last TRACE_SIZE transitions
        got = table.trace()
        assert len(got) == min(len(trace), TRACE_SIZE)
        fields = ("slot", "event", "from_state", "to_state", "handled_by")
        assert list(zip(*(got[f].tolist() for f in fields), strict=True)) == trace[-TRACE_SIZE:]


def test_generated_machines_use_every_feature() -> None:
    """The generator reaches deep initials, 4 levels, 4 flags, negated guards and several
    handlers on one (state, event); and every machine it makes compiles."""
    seen = {"deep initial": False, "depth 4": False, "4 flags": False, "negated": False,
            "shared (state, event)": False}

    @settings(max_examples=300, deadline=None, database=None)
    @given(machines())
    def probe(desc: Desc) -> None:
        desc.spec().compile()
        parents = dict(desc.states)
        depth = {}
        for s in parents:
            depth[s], p = 1, parents[s]
            while p != ROOT:
                depth[s], p = depth[s] + 1, parents[p]
        seen["deep initial"] |= any(parents.get(x, ROOT) != c for c, x in desc.initials)
        seen["depth 4"] |= any(d >= MAX_DEPTH for d in depth.values())
        seen["4 flags"] |= len(desc.flags) == 4
        seen["negated"] |= any(g is not None and g.startswith("!") for *_, g in desc.handlers)
        keys = [(s, e) for s, e, _, _ in desc.handlers]
        seen["shared (state, event)"] |= len(keys) != len(set(keys))

    probe()
    assert all(seen.values()), seen


# ---------------------------------------------------------------------------------------------
# hand-written machines: a deep initial, guards falling through to the parent
def _deep() -> MachineSpec:
    """Root > A > A1 > A11 > A111; Root > B. Root's initial is A11 (deep), A11's is A111; A's
    initial is A11 too."""
    spec = MachineSpec("deep", ["Go", "Back", "Poke"], initial="A11")
    spec.state("A", initial="A11").state("A1", "A", initial="A12")
    spec.state("A11", "A1", initial="A111").state("A111", "A11").state("A12", "A1").state("B")
    spec.flag("hot").flag("cold")
    spec.on("A111", "Go", "B", guard="hot").on("A111", "Go", "A12", guard="!cold")
    spec.on("A", "Go", "Root")
    spec.on("B", "Back", "A").on("A12", "Back", "A1")
    spec.on("A111", "Poke", guard="cold").on("A1", "Poke", "A12", guard="cold")
    return spec


def test_deep_initial_and_guard_fallthrough_by_hand() -> None:
    spec = _deep()
    m = spec.compile()
    ref = ReferenceMachine(spec)
    # the initial transition enters A and A1 without their own initials (A1's would be A12)
    assert ref.initial_step.entries == ["A", "A1", "A11", "A111"]
    assert _names(m, m.initial_entries) == ["A", "A1", "A11", "A111"]
    a111 = m.state_code("A111")
    go = m.event_code("Go")
    # flags (hot, cold) as bitmask: bit 0 hot, bit 1 cold
    assert m.handler.shape[0] == 4
    assert m.state_names[m.next_state[0b01, a111, go]] == "B"  # hot
    assert m.state_names[m.next_state[0b00, a111, go]] == "A12"  # !cold
    assert m.state_names[m.handler[0b10, a111, go]] == "A"  # cold, not hot: on to A
    assert _names(m, m.exits(a111, "Go", flags=0b10)) == ["A111", "A11", "A1", "A"]
    assert _names(m, m.entries(a111, "Go", flags=0b10)) == ["A", "A1", "A11", "A111"]
    assert ref.dispatch("Back") == ref.dispatch("Back")  # unhandled, twice
    ref.set_flag("cold", True)
    step = ref.dispatch("Go")
    assert (step.handler, step.exits, step.entries) == ("A", ["A111", "A11", "A1", "A"],
                                                        ["A", "A1", "A11", "A111"])
    assert ref.dispatch("Poke").handler == "A111" and ref.current == "A111"
    ref.set_flag("cold", False)
    ref.set_flag("hot", True)
    assert ref.dispatch("Go").entries == ["B"]
    step = ref.dispatch("Back")  # B -> A: A's deep initial A11, then A111
    assert step.entries == ["A", "A1", "A11", "A111"] and ref.unhandled == 2
    assert ref.flag("hot") and not ref.flag("cold")


def test_deep_initial_and_guard_fallthrough_on_every_implementation(any_machine) -> None:  # type: ignore[no-untyped-def]
    """The by-hand sequence above, on the reference, a MachineInstance and a table slot."""
    m = any_machine(_deep())
    assert m.state == "A111" and m.is_in("A11") and m.is_in("A1")  # Root's deep initial
    assert not m.dispatch("Back") and not m.dispatch("Back")  # unhandled, twice
    assert m.unhandled == 2 and m.state == "A111"
    m.set_flag("cold", True)
    assert m.dispatch("Go") and m.state == "A111"  # cold, not hot: A's Go to Root, deep initial
    assert m.dispatch("Poke") and m.state == "A111"  # A111's guarded handler, no transition
    m.set_flag("cold", False)
    m.set_flag("hot", True)
    assert m.dispatch("Go") and m.state == "B" and not m.is_in("A")
    assert m.dispatch("Back") and m.state == "A111"  # B -> A: A's deep initial A11, then A111
    assert m.unhandled == 2
    assert m.flag("hot") and not m.flag("cold")


# ---------------------------------------------------------------------------------------------
# compile() refusals
def _base() -> MachineSpec:
    spec = MachineSpec("m", ["Go", "Stop"], initial="A")
    spec.state("A", initial="A1").state("A1", "A").state("A2", "A").state("B")
    spec.on("A1", "Go", "A2").on("A", "Go", "B").on("B", "Stop", "A")
    return spec.flag("f")


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.on("B", "Go", "A", guard="nope"),
     r"handler \(B, Go \[nope\]\) names unknown flag 'nope'"),
    (lambda s: s.on("B", "Go", "A", guard="!nope"), r"names unknown flag 'nope'"),
    (lambda s: s.flag("g").flag("h").flag("i").flag("j"), r"flag 'j' is one too many"),
    (lambda s: s.on("B", "Go", "A").on("B", "Go"),
     r"duplicate handler for \(B, Go\): two unguarded handlers"),
    (lambda s: s.on("B", "Go", "A").on("B", "Go", "A", guard="f"),
     r"handler \(B, Go \[f\]\) can never run: the handlers declared before it \(\(B, Go\)\)"),
    (lambda s: s.on("B", "Go", "A", guard="f").on("B", "Go", "A", guard="!f").on("B", "Go"),
     r"handler \(B, Go\) can never run"),
    (lambda s: s.on("B", "Go", "A", guard="f").on("B", "Go", guard="f"),
     r"handler \(B, Go \[f\]\) can never run"),
    (lambda s: s.state("C", initial="A1"), r"initial state 'A1' of 'C' is not a descendant of 'C'"),
    (lambda s: s.state("C", "A2", initial="A1").on("A2", "Go", "C"),
     r"initial state 'A1' of 'C' is not a descendant of 'C'"),
    (lambda s: s.state("C", initial="C"), r"initial state 'C' of 'C' is not a descendant of 'C'"),
])
def test_compile_refuses_naming_the_culprit(mutate, match) -> None:  # type: ignore[no-untyped-def]
    spec = _base()
    spec.compile()
    mutate(spec)
    with pytest.raises(MachineDefinitionError, match=match):
        spec.compile()


def test_compile_accepts_the_edge_cases() -> None:
    spec = _base().flag("g").flag("h").flag("i")  # 4 flags
    spec.on("B", "Go", "A", guard="f").on("B", "Go", "A", guard="!g").on("B", "Go")
    spec.state("C", initial="D2").state("D", "C").state("D2", "D").on("A1", "Stop", "C")
    m = spec.compile()
    assert m.n_flags == 4 and m.flag_names == ("f", "g", "h", "i")
    assert m.next_state.shape == (16, m.n_states, m.n_events)
    for table in (m.handled, m.handler):
        assert table.shape == (16, m.n_states, m.n_events)
    assert m.exit_path.shape[:3] == m.entry_path.shape[:3] == (16, m.n_states, m.n_events)
    assert _names(m, m.exits("A1", "Stop")) == ["A1", "A"]
    assert _names(m, m.entries("A1", "Stop")) == ["C", "D", "D2"]


def test_declared_handlers_keep_declaration_order() -> None:
    spec = _base().on("B", "Go", "A", guard="!f").on("B", ["Go", "Stop"], guard="f")
    assert spec.declared_handlers[-3:] == (HandlerDecl("B", "Go", "A", "!f"),
                                           HandlerDecl("B", "Go", None, "f"),
                                           HandlerDecl("B", "Stop", None, "f"))
    assert spec.flags == ("f",)


# ---------------------------------------------------------------------------------------------
# the flag API of every entry point
def _machine() -> CompiledMachine:
    return _deep().compile()


def test_flags_start_false_everywhere(any_machine) -> None:  # type: ignore[no-untyped-def]
    m = any_machine(_deep())
    for f in ("hot", "cold"):
        assert m.flag(f) is False


def test_table_flags_follow_open_set_and_release() -> None:
    table = MachineTable(_machine(), 4)
    slot = table.open()
    assert table.flag(slot, "hot") is False and table.flag(slot, "cold") is False
    assert table.flags.tolist() == [0, 0, 0, 0]
    table.set_flag(slot, "cold", True)
    table.set_flag(table.open(), "hot", True)
    assert table.flags.tolist() == [2, 1, 0, 0]
    table.release(slot)
    assert table.flags.tolist() == [0, 1, 0, 0]  # free slots read 0
    assert table.open() == slot and table.flag(slot, "cold") is False
    assert table.flags.tolist() == [0, 1, 0, 0]


def test_set_flag_and_flag_validate(any_machine) -> None:  # type: ignore[no-untyped-def]
    m = any_machine(_deep())
    with pytest.raises(ValueError, match=r"unknown flag 'warm'.*\['hot', 'cold'\]"):
        m.set_flag("warm", True)
    with pytest.raises(ValueError, match=r"unknown flag 'warm'.*\['hot', 'cold'\]"):
        m.flag("warm")
    with pytest.raises(TypeError, match=r"'yes'"):
        m.set_flag("hot", "yes")
    with pytest.raises(TypeError, match=r"\b1\b"):
        m.set_flag("hot", 1)
    with pytest.raises(TypeError, match=r"\b3\b"):
        m.flag(3)
    assert m.flag("hot") is False
    m.set_flag("hot", True)
    assert m.flag("hot") is True and m.flag("cold") is False


def test_table_flag_slots_are_validated() -> None:
    table = MachineTable(_machine(), 3)
    slot = table.open()
    table.set_flag(slot, "hot", True)
    with pytest.raises(IndexError, match=r"\b1\b"):
        table.set_flag(1, "hot", True)
    with pytest.raises(IndexError, match=r"\b1\b"):
        table.flag(1, "hot")
    with pytest.raises(IndexError, match=r"\b7\b"):
        table.set_flag(7, "hot", True)
    with pytest.raises(IndexError, match=r"-1\b"):
        table.flag(-1, "hot")
    assert table.flags.tolist() == [1, 0, 0]


def test_table_flags_is_a_read_only_view() -> None:
    table = MachineTable(_machine(), 2)
    slot = table.open()
    view = table.flags
    assert view.dtype == np.uint8 and view.shape == (2,)
    with pytest.raises(ValueError, match="read-only"):
        view[slot] = 3
    table.set_flag(slot, "cold", True)
    assert table.flags[slot] == 2 and table.flag(slot, "cold")


@pytest.mark.parametrize("sdt", [np.int32, np.int64])
@pytest.mark.parametrize("vdt", [np.bool_, np.uint8])
def test_set_flag_many(sdt: type, vdt: type) -> None:
    table = MachineTable(_machine(), 5)
    for _ in range(4):
        table.open()
    table.set_flag_many(np.array([0, 2, 3], sdt), "cold", np.array([1, 0, 1], vdt))
    assert table.flags.tolist() == [2, 0, 0, 2, 0]
    table.set_flag_many(np.array([3, 1], sdt), "hot", True)
    assert table.flags.tolist() == [2, 1, 0, 3, 0]
    table.set_flag_many(np.array([3], sdt), "cold", False)
    assert table.flags.tolist() == [2, 1, 0, 1, 0]
    table.set_flag_many(np.array([], sdt), "cold", np.array([], vdt))
    assert table.flags.tolist() == [2, 1, 0, 1, 0]


@pytest.mark.parametrize(("slots", "name", "values", "exc", "match"), [
    (np.array([0, 1], np.int64), "cold", np.array([1], np.uint8), ValueError, r"\b2\b.*\b1\b"),
    (np.array([0, 1], np.int64), "cold", np.array([1.0, 0.0]), TypeError, "float64"),
    (np.array([0, 1], np.int16), "cold", True, TypeError, "int16"),
    (np.array([0, 4], np.int64), "cold", True, IndexError, r"\b4\b"),  # released slot
    (np.array([0, 9], np.int32), "cold", np.array([1, 1], np.bool_), IndexError, r"\b9\b"),
    (np.array([-1], np.int64), "cold", True, IndexError, r"-1\b"),
    (np.array([0, 1], np.int64), "warm", True, ValueError, r"unknown flag 'warm'"),
    (np.array([0, 1], np.int64), "cold", 1, TypeError, r"\b1\b"),
    (np.array([0, 1, 2], np.int64), "cold", np.array([1, 1, 2], np.uint8), ValueError,
     r"values\[2\]: flag value 2 is not 0 or 1"),
    (np.array([0, 1, -1, 3], np.int64)[::2], "cold", True, IndexError, r"-1\b"),
    ([0, 1], "cold", True, TypeError, "numpy array"),
    (np.array([[0, 1]], np.int64), "cold", True, ValueError, r"1-D|dimension|ndim"),
    (np.array([0, 1], np.int64), "cold", np.array([[1, 1]], np.uint8), ValueError,
     r"1-D|dimension|ndim|length|shape"),
])
def test_set_flag_many_refuses_and_changes_nothing(slots, name, values, exc, match) -> None:  # type: ignore[no-untyped-def]
    table = MachineTable(_machine(), 6)
    for _ in range(5):
        table.open()
    table.release(4)
    table.set_flag(1, "hot", True)
    table.set_flag(2, "cold", True)
    before = table.flags.copy()
    with pytest.raises(exc, match=match):
        table.set_flag_many(slots, name, values)
    assert np.array_equal(table.flags, before)


def test_dispatch_never_changes_flags(any_machine) -> None:  # type: ignore[no-untyped-def]
    m = any_machine(_deep())
    m.set_flag("cold", True)
    for e in ("Go", "Back", "Poke") * 2:
        m.dispatch(e)
    assert m.flag("cold") and not m.flag("hot")


def test_batches_never_change_flags() -> None:
    m = _machine()
    table = MachineTable(m, 4)
    for _ in range(4):
        table.open()
    table.set_flag_many(np.array([0, 1, 2, 3], np.int64), "hot", np.array([0, 1, 0, 1], np.uint8))
    table.set_flag_many(np.array([0, 1, 2, 3], np.int64), "cold", np.array([0, 0, 1, 1], np.uint8))
    before = table.flags.copy()
    events = np.array([m.event_code(e) for e in ["Go", "Back", "Poke"] * 4], np.int64)
    table.dispatch_many(np.array([0, 1, 2, 3] * 3, np.int64), events)
    for e in ("Go", "Back", "Poke"):
        table.broadcast(e)
        table.dispatch(2, e)
    assert np.array_equal(table.flags, before)


def test_table_uses_each_slots_flags() -> None:
    m = _machine()
    table = MachineTable(m, 3)
    for _ in range(3):
        table.open()
    table.set_flag(0, "hot", True)
    table.set_flag(2, "cold", True)
    assert table.broadcast("Go") == 3
    assert [m.state_names[s] for s in table.states] == ["B", "A12", "A111"]


def test_exits_and_entries_flags_keyword() -> None:
    m = _machine()
    a111 = m.state_code("A111")
    assert m.exits(a111, "Go") == m.exits(a111, "Go", flags=0)
    assert m.entries(a111, "Go") == m.entries(a111, "Go", flags=0)
    assert _names(m, m.entries(a111, "Go", flags=1)) == ["B"]
    with pytest.raises(ValueError, match=r"\b4\b"):
        m.exits(a111, "Go", flags=4)
    with pytest.raises(TypeError):
        m.exits(a111, "Go", 1)  # type: ignore[misc]
    flat = _flag_free()
    assert _names(flat, flat.exits("A1", "Go")) == ["A1"]
    assert _names(flat, flat.entries("A1", "Go")) == ["A2"]
    assert flat.exits("A1", "Go", flags=0) == flat.exits("A1", "Go")
    with pytest.raises(ValueError, match=r"\b1\b"):
        flat.entries("A1", "Go", flags=1)


# ---------------------------------------------------------------------------------------------
# fingerprints
def _flag_free() -> CompiledMachine:
    """A hard-coded flag-free declaration (its fingerprint was taken before issue 13)."""
    spec = MachineSpec("fp", ["Go", "Back", "Reset", "Poke"], initial="A")
    spec.state("A", initial="A1").state("A1", "A").state("A2", "A").state("B")
    spec.on("A1", "Go", "A2").on("A", "Go", "B").on("B", "Back", "A")
    spec.on("Root", "Reset", "Root").on("A2", "Poke").on("B", "Poke", "B")
    return spec.compile()


def test_flag_free_machine_keeps_its_shapes_and_fingerprint() -> None:
    a, b = _flag_free(), _flag_free()
    # stable across compiles; "7d2efdc720e5b78c" until issue 19, when fingerprints began to
    # cover the initial state and the exit/entry paths (tests/compile/test_fingerprints.py)
    assert a.fingerprint == b.fingerprint == "b42122ef60d23538"
    assert a.n_flags == 0 and a.flag_names == ()
    assert a.next_state.shape == a.handled.shape == a.handler.shape == (5, 4)
    assert a.exit_path.shape == a.entry_path.shape == (5, 4, 3)


def test_fingerprint_covers_flags_and_guards() -> None:
    def build(guard: str | None, flags: Sequence[str] = ("f", "g")) -> CompiledMachine:
        spec = MachineSpec("fp", ["Go", "Back"], initial="A").state("A").state("B")
        for f in flags:
            spec.flag(f)
        if guard is not None:  # the same target as the unguarded handler: equal tables
            spec.on("A", "Go", "B", guard=guard)
        spec.on("A", "Go", "B").on("B", "Back", "A")
        return spec.compile()

    prints = {build(g).fingerprint for g in (None, "f", "!f", "g")}
    prints.add(build(None, ("f",)).fingerprint)
    prints.add(build(None, ("g", "f")).fingerprint)
    assert len(prints) == 6
    assert build("f").fingerprint == build("f").fingerprint


def test_reference_refuses_what_compile_refuses_when_it_meets_it() -> None:
    """The reference does not validate a declaration up front, but never runs a bad one."""
    spec = MachineSpec("m", ["Go"], initial="A").state("A").state("B").flag("f")
    spec.on("A", "Go", "B", guard="!nope")
    ref = ReferenceMachine(spec)
    with pytest.raises(ValueError, match=r"guard '!nope' names unknown flag 'nope'"):
        ref.dispatch("Go")
    spec = MachineSpec("m", ["Go"], initial="A").state("A", initial="B").state("B")
    with pytest.raises(ValueError, match=r"initial state 'B' of 'A' is not a descendant of 'A'"):
        ReferenceMachine(spec)
