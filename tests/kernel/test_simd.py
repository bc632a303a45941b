"""The SIMD broadcast kernels (issue 11, target 3): every kernel the CPU supports gives exactly
the scalar result, on random byte maps and on tables; the scalar switch forces the fallback."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from streamhsm import FREE_SLOT, Event, State, StreamTable
from streamhsm import _table as _engine

KERNELS = _engine._simd_supported()


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    assert _engine._set_simd_kernel(request.param) == request.param
    try:
        yield request.param
    finally:
        _engine._set_simd_kernel("avx2")


def _random_lut(rng: np.random.Generator, blocks: int) -> np.ndarray:
    """A 256-byte map that is the identity except on ``blocks`` random 16-code blocks."""
    lut = np.arange(256, dtype=np.uint8)
    for h in rng.choice(16, blocks, replace=False):
        lut[16 * h:16 * h + 16] = rng.integers(0, 256, 16, dtype=np.uint8)
    return lut


@pytest.mark.parametrize("blocks", [0, 1, 2, 5, 16])
def test_every_kernel_maps_every_byte_like_the_table(kernel: str, blocks: int) -> None:
    rng = np.random.default_rng(blocks)
    for n in (0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099):
        lut = _random_lut(rng, blocks)
        data = rng.integers(0, 256, n, dtype=np.uint8)
        expected = lut[data]
        _engine._map_bytes(data, lut)
        assert np.array_equal(data, expected), (kernel, blocks, n)


def test_small_machine_map_keeps_the_free_code(kernel: str) -> None:
    rng = np.random.default_rng(7)
    lut = np.arange(256, dtype=np.uint8)
    lut[:6] = rng.integers(0, 6, 6, dtype=np.uint8)
    data = rng.choice(np.array([0, 1, 2, 3, 4, 5, FREE_SLOT], np.uint8), 10_000)
    expected = lut[data]
    _engine._map_bytes(data, lut)
    assert np.array_equal(data, expected)
    assert (data == FREE_SLOT).sum() == (expected == FREE_SLOT).sum()


def test_map_rejects_a_short_lut() -> None:
    with pytest.raises(ValueError, match="lut must have 256 entries, got 16"):
        _engine._map_bytes(np.zeros(8, np.uint8), np.zeros(16, np.uint8))


def test_unknown_kernel_name() -> None:
    with pytest.raises(ValueError, match="unknown kernel 'avx9'"):
        _engine._set_simd_kernel("avx9")


def test_scalar_switch_forces_the_fallback() -> None:
    try:
        assert _engine._set_simd_kernel("scalar") == "scalar"
        assert _engine._simd_kernel() == "scalar"
    finally:
        _engine._set_simd_kernel("avx2")
    assert _engine._simd_kernel() == KERNELS[-1]


def _table_run(kernel: str, seed: int, capacity: int) -> dict[str, object]:
    """A random mix of open/release and broadcasts on a drain-policy table under ``kernel``."""
    _engine._set_simd_kernel(kernel)
    try:
        rng = np.random.default_rng(seed)
        t = StreamTable(capacity, drain_on_producer_loss=True)
        for _ in range(capacity * 3 // 4):
            t.open()
        handled = []
        for step in range(60):
            if step % 7 == 3:
                for s in rng.choice(capacity, capacity // 10, replace=False):
                    if t.is_open(int(s)):
                        t.release(int(s))
                    else:
                        t.open()
            handled.append(t.broadcast(int(rng.integers(0, len(Event)))))
        return {"states": t.states.copy(), "unhandled": t.unhandled.copy(),
                "transitions": t.transition_counts.copy(), "handled": handled,
                "total": t.unhandled_total,
                "occupancy": [t.count(s) for s in State]}
    finally:
        _engine._set_simd_kernel("avx2")


@pytest.mark.parametrize("capacity", [1, 63, 64, 1000, 4097])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_broadcast_gives_the_same_table_with_every_kernel(capacity: int, seed: int) -> None:
    runs = {k: _table_run(k, seed, capacity) for k in KERNELS}
    ref = runs["scalar"]
    for k, run in runs.items():
        for key, value in ref.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(run[key], value), (k, key)  # type: ignore[arg-type]
            else:
                assert run[key] == value, (k, key)
    states = ref["states"]
    assert isinstance(states, np.ndarray)
    assert np.bincount(states, minlength=256)[FREE_SLOT] == capacity - sum(
        ref["occupancy"][s] for s in (State.INIT, State.ACTIVE, State.DRAINING,  # type: ignore[index]
                                      State.CLOSED))


def test_transitioning_broadcast_matches_the_table_column(kernel: str) -> None:
    t = StreamTable(10_000, drain_on_producer_loss=True)
    for _ in range(9_000):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    assert t.broadcast(Event.PRODUCER_DETACHED) == 9_000
    assert t.count(State.DRAINING) == 9_000
    assert np.array_equal(np.unique(t.states), [State.DRAINING, FREE_SLOT])
    assert t.broadcast(Event.PRODUCER_ATTACHED) == 9_000 and t.count(State.ACTIVE) == 9_000
    assert t.transition_counts[State.ACTIVE, Event.PRODUCER_DETACHED] == 9_000
