"""Machine declaration, compile-time validation, and hierarchy semantics on a deeper toy machine."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from streamhsm import MachineDefinitionError, MachineSpec, ReferenceMachine
from streamhsm.machine import camel_to_upper


def _names(machine, codes):  # type: ignore[no-untyped-def]
    return [machine.state_names[c] for c in codes]


@pytest.mark.smoke
def test_toy_matches_reference_for_every_leaf_and_event(toy_spec) -> None:  # type: ignore[no-untyped-def]
    spec = toy_spec()
    m = spec.compile()
    leaves = [n for i, n in enumerate(m.state_names) if m.is_leaf[i]]
    assert leaves == ["A11", "A12", "A2", "B1", "B2"]
    for leaf in leaves:
        for ev in m.event_names:
            ref = ReferenceMachine(spec)
            ref.current = leaf
            step = ref.dispatch(ev)
            code = m.state_names.index(leaf)
            e = m.event_code(ev)
            assert m.state_names[m.next_state[code, e]] == ref.current, (leaf, ev)
            assert bool(m.handled[code, e]) == step.handled
            assert (m.state_names[m.handler[code, e]] if step.handled else None) == step.handler
            assert _names(m, m.exits(code, ev)) == step.exits, (leaf, ev)
            assert _names(m, m.entries(code, ev)) == step.entries, (leaf, ev)


# Expected paths written from the UML / Hsm.jl rules (reference notes 1.3), not from a run.
TOY_PATHS = [
    ("A11", "Self", "A11", ["A11"], ["A11"]),                    # external self-transition
    ("A12", "Self", "A11", ["A12", "A1"], ["A1", "A11"]),        # self on composite, re-drilled
    ("A11", "Up", "A11", ["A11"], ["A11"]),                      # ancestor target: not exited
    ("A11", "Down", "A12", ["A11", "A1"], ["A1", "A12"]),          # A handles: LCA is A, A1 left
    ("A12", "Down", "A11", ["A12"], ["A11"]),                    # own handler beats ancestor's
    ("A2", "Down", "A12", ["A2"], ["A1", "A12"]),                # descendant of handler, deeper
    ("A11", "Cross", "B1", ["A11", "A1", "A"], ["B", "B1"]),      # composite target -> initial
    ("B2", "Cross", "A2", ["B2", "B"], ["A", "A2"]),
    ("B2", "Reset", "A11", ["B2", "B"], ["A", "A1", "A11"]),     # Root -> Root resets
    ("A11", "Grand", "B2", ["A11", "A1", "A"], ["B", "B2"]),     # grandparent handler
    ("A12", "Local", "A11", ["A12", "A1", "A"], ["A", "A1", "A11"]),
    ("A11", "Noop", "A11", [], []),                              # handled, no transition
    ("B1", "Noop", "A11", ["B1", "B"], ["A", "A1", "A11"]),
]


@pytest.mark.parametrize(("leaf", "event", "nxt", "exits", "entries"), TOY_PATHS)
def test_toy_paths(toy_spec, leaf: str, event: str, nxt: str, exits: list[str],  # type: ignore[no-untyped-def]
                   entries: list[str]) -> None:
    m = toy_spec().compile()
    code = m.state_names.index(leaf)
    assert m.state_names[m.next_state[code, m.event_code(event)]] == nxt
    assert _names(m, m.exits(code, event)) == exits
    assert _names(m, m.entries(code, event)) == entries


#: events leading from the toy's initial leaf A11 to each leaf
TOY_LEAF_PATHS = {"A11": [], "A12": ["Down"], "A2": ["Cross", "Cross"], "B1": ["Cross"],
                  "B2": ["Grand"]}


@pytest.mark.parametrize(("leaf", "event", "nxt"), [(row[0], row[1], row[2]) for row in TOY_PATHS])
def test_toy_steps_on_every_implementation(any_machine, toy_spec, leaf: str, event: str,  # type: ignore[no-untyped-def]
                                           nxt: str) -> None:
    m = any_machine(toy_spec())
    for ev in TOY_LEAF_PATHS[leaf]:
        assert m.dispatch(ev)
    assert m.state == leaf
    assert m.dispatch(event)
    assert m.state == nxt and m.unhandled == 0


@pytest.mark.smoke
def test_toy_unhandled_is_counted(any_machine, toy_spec) -> None:  # type: ignore[no-untyped-def]
    m = any_machine(toy_spec())
    assert m.state == "A11"
    assert not m.dispatch("Sib")  # only B1/B2 handle it
    assert m.unhandled == 1 and m.state == "A11"
    assert m.dispatch("Cross") and m.state == "B1"
    assert m.is_in("B") and not m.is_in("A")
    assert m.dispatch("Sib") and m.state == "B2"
    assert m.unhandled == 1


def test_generated_enums(toy_spec) -> None:  # type: ignore[no-untyped-def]
    m = toy_spec().compile()
    assert m.State.A11 == m.state_names.index("A11") and m.State.ROOT == 0
    assert m.Event.RESET == m.event_names.index("Reset")
    assert camel_to_upper("StreamProvisioned") == "STREAM_PROVISIONED"
    assert camel_to_upper("A11") == "A11"


def test_tables_are_read_only(toy_spec) -> None:  # type: ignore[no-untyped-def]
    m = toy_spec().compile()
    for arr in (m.next_state, m.handled, m.handler, m.exit_path, m.entry_path, m.parent):
        assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        m.next_state[0, 0] = 1


def test_fingerprint_tracks_behaviour(toy_spec) -> None:  # type: ignore[no-untyped-def]
    a, b = toy_spec().compile(), toy_spec().compile()
    assert a.fingerprint == b.fingerprint
    c = toy_spec().on("A2", "Sib", "B1").compile()
    assert c.fingerprint != a.fingerprint


def _base() -> MachineSpec:
    spec = MachineSpec("m", ["Go", "Stop"], initial="A")
    spec.state("A").state("B")
    spec.on("A", "Go", "B").on("B", "Stop", "A")
    return spec


def test_minimal_machine_compiles() -> None:
    m = _base().compile()
    assert m.initial_leaf == 1 and m.next_state[1, 0] == 2


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.state("C", parent="Nowhere"), "state 'C' has unknown parent 'Nowhere'"),
    (lambda s: s.state("X", parent="Y").state("Y", parent="X"),
     "cycle in state parents: X -> Y -> X"),
    (lambda s: s.on("A", "Stop", "Nowhere"), r"handler \(A, Stop\) has unknown target 'Nowhere'"),
    (lambda s: s.on("Ghost", "Go", "A"), "handler for event 'Go' on unknown state 'Ghost'"),
    (lambda s: s.on("A", "Jump", "B"), "handler on state 'A' for unknown event 'Jump'"),
    (lambda s: s.on("A", "Go", "A"), r"duplicate handler for \(A, Go\)"),
    (lambda s: s.state("A"), "duplicate state 'A'"),
    (lambda s: s.state("C").state("C1", "C").on("B", "Go", "C"),
     r"handler \(B, Go\) -> C enters composite state 'C', which has no initial state"),
    (lambda s: s.state("Lonely"), "state 'Lonely' is unreachable from the initial state"),
    (lambda s: s.state("C", initial="A"), "initial state 'A' of 'C' is not a descendant of 'C'"),
    (lambda s: s.state("C", initial="Nope"), "state 'C' has unknown initial state 'Nope'"),
    (lambda s: s.state("bad name"), "state name 'bad name' is not an identifier"),
])
def test_validation_errors_name_the_culprit(mutate, match) -> None:  # type: ignore[no-untyped-def]
    spec = _base()
    mutate(spec)
    with pytest.raises(MachineDefinitionError, match=match):
        spec.compile()


def test_validation_of_root_and_sizes() -> None:
    with pytest.raises(MachineDefinitionError, match="declares no events"):
        MachineSpec("m", [], initial="A").state("A").compile()
    with pytest.raises(MachineDefinitionError,
                       match="the initial transition enters composite state 'P'"):
        MachineSpec("m", ["E"], initial="P").state("P").state("Q", "P").compile()
    with pytest.raises(MachineDefinitionError, match="has unknown initial state 'Z'"):
        MachineSpec("m", ["E"], initial="Z").state("A").compile()
    many = MachineSpec("m", ["E"], initial="S0")
    for i in range(255):
        many.state(f"S{i}")
    with pytest.raises(MachineDefinitionError, match="256 states; at most 255"):
        many.compile()
    with pytest.raises(MachineDefinitionError, match="duplicate event 'E'"):
        MachineSpec("m", ["E", "E"], initial="A").state("A").compile()
    with pytest.raises(TypeError, match="machine name must be a non-empty str"):
        MachineSpec("", ["E"], initial="A")


def test_enum_mismatch_is_rejected() -> None:
    class WrongState(enum.IntEnum):
        ROOT = 0
        B = 1
        A = 2

    with pytest.raises(MachineDefinitionError, match="A should have code 1"):
        _base().compile(state_enum=WrongState)


def test_state_and_event_code_lookup_errors() -> None:
    m = _base().compile()
    with pytest.raises(ValueError, match="unknown state name 'Z'"):
        m.state_code("Z")
    with pytest.raises(ValueError, match="unknown state code 9"):
        m.state_code(9)
    with pytest.raises(TypeError, match="got float 1.5"):
        m.event_code(1.5)
    assert m.event_code(np.int64(1)) == 1
