"""Flags and guards (issue 13): ``dispatch_many`` on a machine with a flag beside the same machine
without flags, on the same events (groups ``flags`` and ``flags-transitions``).

The flagged machine (``streamhsm.tools.bench.drain_flag_stream_machine``) is the stream lifecycle
with its ``drain_on_producer_loss`` handlers guarded by a per-stream flag ``drain``: with the flag
set on every stream it behaves exactly like the flag-free ``drain_on_producer_loss`` variant, so
both tables run the same transitions (each benchmark first checks that one batch ends in the same
states and counters on both).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamhsm import Event, MachineTable, stream_machine
from streamhsm.tools.bench import drain_flag_table


def active(n: int) -> MachineTable:
    """A table of ``n`` Active streams of the flag-free drain_on_producer_loss machine."""
    t = MachineTable(stream_machine(True), n)
    for _ in range(n):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    return t


LEASE_EVENTS = np.array([Event.PRODUCER_ATTACHED, Event.CONSUMER_ATTACHED, Event.PRODUCER_DETACHED,
                         Event.CONSUMER_DETACHED, Event.EPOCH_BUMPED], np.uint8)
TOGGLE = np.array([Event.PRODUCER_DETACHED, Event.PRODUCER_ATTACHED], np.uint8)


@pytest.fixture(scope="module")
def lease_traffic(sizes):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sizes.seed + 2)
    return rng.integers(0, sizes.streams, sizes.events), rng.choice(LEASE_EVENTS, sizes.events)


@pytest.fixture(scope="module")
def toggles(sizes):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sizes.seed + 3)
    return rng.integers(0, sizes.streams, sizes.events), rng.choice(TOGGLE, sizes.events)


def _run(benchmark, record, name, sizes, traffic, flagged):  # type: ignore[no-untyped-def]
    # one batch on fresh tables of both machines: the same handled count, states and counters
    # (the flag is set on every stream)
    pair = [drain_flag_table(sizes.streams), active(sizes.streams)]
    handled = [t.dispatch_many(*traffic) for t in pair]
    assert handled[0] == handled[1]
    for column in ("states", "unhandled", "transition_counts"):
        np.testing.assert_array_equal(getattr(pair[0], column), getattr(pair[1], column))
    t = pair[0] if flagged else pair[1]
    benchmark(t.dispatch_many, *traffic)
    record(name, benchmark)


@pytest.mark.benchmark(group="flags")
def test_many_without_flags(benchmark, record, sizes, lease_traffic) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_many_without_flags", sizes, lease_traffic, False)


@pytest.mark.benchmark(group="flags")
def test_many_with_flags(benchmark, record, sizes, lease_traffic) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_many_with_flags", sizes, lease_traffic, True)


@pytest.mark.benchmark(group="flags-transitions")
def test_many_transitions_without_flags(benchmark, record, sizes, toggles) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_many_transitions_without_flags", sizes, toggles, False)


@pytest.mark.benchmark(group="flags-transitions")
def test_many_transitions_with_flags(benchmark, record, sizes, toggles) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, record, "test_many_transitions_with_flags", sizes, toggles, True)
