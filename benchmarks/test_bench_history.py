"""History and completion (issue 20), side by side in one run (groups ``history-free-traffic``
and ``history-cells``).

Two compilations of one machine: ``Live > {Idle, Active > {A1, A2}}`` and ``Maintenance``,
where ``Resume`` goes back into ``Live`` with deep history (the history machine) or through its
initial entry (the plain machine). History-free traffic (``Ping`` handled in place, ``Flip``
between A1 and A2, never leaving ``Live``) costs what it costs without history if only history
cells pay (target: within 5 %). ``Maintain``/``Resume`` rounds make every event a transition that
writes or reads a record on the history machine, a plain transition on the other (target: at
most 2x).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import MachineSpec, MachineTable
from streamhsm.compiler import CompiledMachine

EVENTS = ["Ping", "Flip", "Maintain", "Resume"]


def maintained(history: bool) -> CompiledMachine:
    s = MachineSpec("maintained" + ("_h" if history else ""), EVENTS, "Live")
    s.state("Live", initial="Idle").state("Idle", "Live")
    s.state("Active", "Live", initial="A1").state("A1", "Active").state("A2", "Active")
    s.state("Maintenance")
    s.on("Live", "Ping").on("A1", "Flip", "A2").on("A2", "Flip", "A1").on("Idle", "Flip", "A1")
    s.on("Live", "Maintain", "Maintenance")
    s.on("Maintenance", "Resume", "Live", history="deep" if history else None)
    return s.compile()


def _table(machine: CompiledMachine, n: int) -> MachineTable:
    t = MachineTable(machine, n)
    for _ in range(n):
        t.open()
    return t


@pytest.fixture(scope="module")
def free_traffic(sizes):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sizes.seed + 20)
    return (rng.integers(0, sizes.streams, sizes.events),
            rng.choice(np.array([0, 0, 0, 1], np.uint8), sizes.events))


@pytest.fixture(scope="module")
def rounds(sizes):  # type: ignore[no-untyped-def]
    """Every slot in turn, Maintain on even rounds and Resume on odd ones (an even number of
    rounds: a benchmark round ends where it started)."""
    n = sizes.events // (2 * sizes.streams) * 2 * sizes.streams
    i = np.arange(n)
    return i % sizes.streams, np.where((i // sizes.streams) % 2 == 0, 2, 3).astype(np.uint8)


def _run(benchmark, record, name, sizes, traffic, history):  # type: ignore[no-untyped-def]
    pair = [_table(maintained(True), sizes.streams), _table(maintained(False), sizes.streams)]
    handled = [t.dispatch_many(*traffic) for t in pair]  # the same outcome on both
    assert handled[0] == handled[1]
    np.testing.assert_array_equal(pair[0].states, pair[1].states)
    np.testing.assert_array_equal(pair[0].transition_counts, pair[1].transition_counts)
    t = pair[0] if history else pair[1]
    benchmark(t.dispatch_many, *traffic)
    record(name, benchmark)


@pytest.mark.benchmark(group="history-free-traffic")
def test_free_traffic_without_history(benchmark, record, sizes, free_traffic) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_free_traffic_without_history", sizes, free_traffic, False)


@pytest.mark.benchmark(group="history-free-traffic")
def test_free_traffic_with_history(benchmark, record, sizes, free_traffic) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_free_traffic_with_history", sizes, free_traffic, True)


@pytest.mark.benchmark(group="history-cells")
def test_plain_transition_cells(benchmark, record, sizes, rounds) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_plain_transition_cells", sizes, rounds, False)


@pytest.mark.benchmark(group="history-cells")
def test_history_cells(benchmark, record, sizes, rounds) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_history_cells", sizes, rounds, True)
