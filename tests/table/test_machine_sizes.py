"""The engines take every size they index with from the shapes of the tables they bind, and
refuse a machine whose attributes disagree with them (attributes rewritten behind the seal)."""
import numpy as np
import pytest

from streamhsm import MachineInstance, MachineSpec, MachineTable


def _toy():
    spec = MachineSpec("sizes", ["Go", "Back"], initial="A")
    spec.flag("f")
    spec.state("A").state("B").on("A", "Go", "B").on("B", "Back", "A")
    return spec


@pytest.mark.parametrize("attr, value", [("n_states", 100000), ("n_states", 1),
                                         ("n_events", 200), ("n_flags", 4),
                                         ("initial_leaf", 200)])
@pytest.mark.parametrize("engine", [lambda m: MachineTable(m, 8), MachineInstance,
                                    lambda m: MachineInstance(m, count_transitions=True)])
def test_lying_size_attribute_is_refused(attr, value, engine):
    machine = _toy().compile()
    object.__setattr__(machine, attr, value)
    with pytest.raises(ValueError, match=rf"{attr}.*{value}|{value}.*not a state"):
        engine(machine)


def test_lying_engine_tables_size_is_refused():
    machine = _toy().compile()
    object.__setattr__(machine.engine_tables, "n_events", 200)
    with pytest.raises(ValueError, match="tables.n_events is 200"):
        MachineTable(machine, 8)


def test_honest_machine_runs_with_sizes_from_its_arrays():
    machine = _toy().compile()
    table = MachineTable(machine, 64)
    for _ in range(64):
        table.open()
    handled = table.dispatch_many(np.arange(64, dtype=np.int64), np.zeros(64, np.uint8))
    assert handled == 64
    assert table.transition_counts.shape == (machine.n_states, machine.n_events)


@pytest.mark.parametrize("engine", [lambda m: MachineTable(m, 8), MachineInstance])
def test_uncompiled_spec_gets_a_type_error_with_a_hint(engine):
    with pytest.raises(TypeError, match=r"got MachineSpec \(call spec.compile\(\) first\)"):
        engine(_toy())
