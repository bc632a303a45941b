"""The cimport API beside the Python-level call (group ``cimport``): 1000 dispatches of one event
from a compiled Cython loop vs 1000 ``StreamTable.dispatch`` calls from Python."""

from __future__ import annotations

import pytest

from streamhsm import Event, StreamTable

CALLS = 1000


def _table() -> StreamTable:
    t = StreamTable(16)
    for _ in range(16):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    return t


@pytest.mark.benchmark(group="cimport")
def test_cython_loop_via_pxd(benchmark, cython_driver) -> None:  # type: ignore[no-untyped-def]
    t = _table()
    benchmark.extra_info["calls_per_round"] = CALLS
    assert benchmark(cython_driver.repeat_one, t, 5, int(Event.EPOCH_BUMPED), CALLS) == CALLS


@pytest.mark.benchmark(group="cimport")
def test_python_dispatch_calls(benchmark) -> None:  # type: ignore[no-untyped-def]
    t = _table()
    dispatch = t.dispatch

    def loop() -> None:
        for _ in range(CALLS):
            dispatch(5, Event.EPOCH_BUMPED)

    benchmark.extra_info["calls_per_round"] = CALLS
    benchmark(loop)
    assert t.unhandled_total == 0
