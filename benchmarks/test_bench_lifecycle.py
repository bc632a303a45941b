"""The single-stream API (issue 11, target 1): StreamLifecycle construction (group
``construct``), bytes per instance (tracemalloc, no timing), and a whole 20-event lifecycle
including construction beside the same machine in miros, a pure-Python statechart library
(group ``lifecycle-20``; skipped if miros is not installed: ``pip install miros``)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from streamhsm import Event, State, StreamLifecycle
from streamhsm.tools._floor import NoopTarget
from streamhsm.tools.bench import lifecycle_bytes

ROUND = 1000  # constructions or lifecycles per round

# StreamProvisioned, 18 lease events, Close: 20 events, every one handled.
LIFE = ([Event.STREAM_PROVISIONED]
        + [Event.PRODUCER_ATTACHED, Event.CONSUMER_ATTACHED, Event.EPOCH_BUMPED,
           Event.CONSUMER_DETACHED, Event.PRODUCER_DETACHED, Event.CONSUMER_ATTACHED] * 3
        + [Event.CLOSE])
LIFE_NAMES = ["StreamProvisioned"] + [
    "ProducerAttached", "ConsumerAttached", "EpochBumped", "ConsumerDetached",
    "ProducerDetached", "ConsumerAttached"] * 3 + ["Close"]
assert len(LIFE) == len(LIFE_NAMES) == 20


@pytest.mark.benchmark(group="construct")
def test_construct_floor(benchmark) -> None:  # type: ignore[no-untyped-def]
    """Constructing a cdef class with no fields and no __init__: the allocation floor."""

    def run() -> None:
        for _ in range(ROUND):
            NoopTarget()

    benchmark(run)


@pytest.mark.benchmark(group="construct")
def test_construct_lifecycle(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    def run() -> None:
        for _ in range(ROUND):
            StreamLifecycle()

    benchmark(run)
    if benchmark.stats is not None:
        record("construct_ns", benchmark.stats.stats.min / ROUND * 1e9)


@pytest.mark.benchmark(group="memory")
def test_bytes_per_instance(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    """Everything an instance allocates (tracemalloc over 20,000 instances; the list holding
    them is made first). The time is that of the measurement; the result is in extra_info."""
    per = benchmark.pedantic(lifecycle_bytes, rounds=1, iterations=1)
    benchmark.extra_info["bytes_per_instance"] = per
    record("bytes_per_instance", per)
    assert per <= 64


def _miros_stream() -> ModuleType:
    pytest.importorskip("miros")
    return importlib.import_module("streamhsm.tools._miros")


def _streamhsm_lives() -> None:
    for _ in range(ROUND):
        m = StreamLifecycle()
        d = m.dispatch
        for ev in LIFE:
            d(ev)


@pytest.mark.benchmark(group="lifecycle-20")
def test_streamhsm_lifecycle_20(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    benchmark(_streamhsm_lives)
    record("test_streamhsm_lifecycle_20", benchmark)
    m = StreamLifecycle()
    for ev in LIFE:
        assert m.dispatch(ev)
    assert m.current is State.CLOSED and m.unhandled == 0


@pytest.mark.benchmark(group="lifecycle-20")
def test_miros_lifecycle_20(benchmark, record) -> None:  # type: ignore[no-untyped-def]
    mod = _miros_stream()
    MirosStream = mod.MirosStream
    events = [mod.EVENTS[n] for n in LIFE_NAMES]

    def run() -> None:
        for _ in range(ROUND // 10):  # 10x fewer: miros is slow; the ratio is per lifecycle
            m = MirosStream()
            for ev in events:
                m.dispatch(ev)

    benchmark(run)
    if benchmark.stats is not None:
        record("test_miros_lifecycle_20", benchmark.stats.stats.min * 10)
    m = MirosStream()
    for ev in events:
        m.dispatch(ev)
    assert m.state_name == "closed" and m.unhandled == 0
