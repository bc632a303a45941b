"""Single-event dispatch from Python beside the call floor (a no-op cdef-class method with the
same two arguments), in one run: group ``call``."""

from __future__ import annotations

import pytest

from streamhsm import Event, StreamLifecycle, StreamTable
from streamhsm.tools._floor import NoopTarget

CALLS = 1000  # calls per round, so the timer resolution does not matter
EVENT = Event.PRODUCER_ATTACHED


def _loop(fn, *args):  # type: ignore[no-untyped-def]
    def run() -> None:
        for _ in range(CALLS):
            fn(*args)
    return run


@pytest.mark.benchmark(group="call")
def test_call_floor_noop(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["calls_per_round"] = CALLS
    benchmark(_loop(NoopTarget().dispatch, 5, EVENT))
    record("test_call_floor_noop", benchmark)


@pytest.mark.benchmark(group="call")
def test_table_dispatch(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    t = StreamTable(1000)
    for _ in range(1000):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    benchmark.extra_info["calls_per_round"] = CALLS
    benchmark(_loop(t.dispatch, 5, EVENT))
    assert t.unhandled_total == 0
    record("test_table_dispatch", benchmark)


@pytest.mark.benchmark(group="call")
def test_lifecycle_dispatch(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    m = StreamLifecycle()
    m.dispatch(Event.STREAM_PROVISIONED)
    benchmark.extra_info["calls_per_round"] = CALLS
    benchmark(_loop(m.dispatch, EVENT))
    assert m.unhandled == 0
    record("test_lifecycle_dispatch", benchmark)


@pytest.mark.benchmark(group="reference")
def test_reference_interpreter(benchmark) -> None:  # type: ignore[no-untyped-def]
    """The pure-Python oracle, for the compiled table's speed-up (compare with lifecycle)."""
    from streamhsm import ReferenceMachine, stream_spec

    m = ReferenceMachine(stream_spec())
    m.dispatch("StreamProvisioned")
    benchmark.extra_info["calls_per_round"] = CALLS
    benchmark(_loop(m.dispatch, "ProducerAttached"))


@pytest.mark.benchmark(group="reference")
def test_compiled_lifecycle_beside_reference(benchmark) -> None:  # type: ignore[no-untyped-def]
    m = StreamLifecycle()
    m.dispatch("StreamProvisioned")
    benchmark.extra_info["calls_per_round"] = CALLS
    benchmark(_loop(m.dispatch, "ProducerAttached"))
