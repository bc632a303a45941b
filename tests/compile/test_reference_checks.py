"""The reference interpreter refuses what compile() refuses about the state tree (duplicate
names, unknown or non-descendant initial states, parent cycles), with the same message: it never
runs a spec it would misinterpret."""
import pytest

from streamhsm import MachineDefinitionError, MachineSpec, ReferenceMachine


def _dup_state():
    return MachineSpec("c", ["Go"], initial="A").state("A").state("A").on("A", "Go")


def _dup_event():
    return MachineSpec("c", ["Go", "Go"], initial="A").state("A").on("A", "Go")


def _unknown_initial():
    return MachineSpec("c", ["Go"], initial="X").state("A").on("A", "Go")


def _unknown_child_initial():
    return MachineSpec("c", ["Go"], initial="A").state("A", initial="Z").state("B", "A")


def _not_below():
    spec = MachineSpec("c", ["Go"], initial="A")
    return spec.state("A", initial="C").state("B", "A").state("C").on("B", "Go")


def _cycle():
    return MachineSpec("c", ["Go"], initial="A").state("A", "B").state("B", "A").on("A", "Go")


CASES = [(_dup_state, "duplicate state 'A'"), (_dup_event, "duplicate event 'Go'"),
         (_unknown_initial, "state 'Root' has unknown initial state 'X'"),
         (_unknown_child_initial, "state 'A' has unknown initial state 'Z'"),
         (_not_below, "initial state 'C' of 'A' is not a descendant of 'A'"),
         (_cycle, "cycle in state parents")]


@pytest.mark.parametrize(("make", "message"), CASES, ids=[c[1] for c in CASES])
def test_reference_refuses_what_compile_refuses(make, message):
    with pytest.raises(MachineDefinitionError) as compiled:
        make().compile()
    assert message in str(compiled.value)
    with pytest.raises(MachineDefinitionError) as reference:
        ReferenceMachine(make())
    assert str(reference.value) == str(compiled.value)
