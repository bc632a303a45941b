"""Benchmarks run once, small, as smoke tests in the normal suite; they are measured at full size
only when asked: ``python -m pytest benchmarks --benchmark-only`` (or ``--benchmark-enable``)."""

from __future__ import annotations

import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Sizes:
    streams: int
    events: int
    leases: int
    seed: int = 20261128


def _measuring(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_only") or config.getoption("benchmark_enable"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _measuring(config):
        config.option.benchmark_disable = True
    # the session fixture ``cython_driver`` (the Cython example, built once for tests and
    # benchmarks)
    example = Path(__file__).resolve().parent.parent / "tests" / "cython_example.py"
    runpy.run_path(str(example))["register"](config)


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    if not _measuring(request.config):
        return Sizes(streams=10_000, events=100_000, leases=10_000)
    return Sizes(streams=1_000_000, events=10_000_000, leases=1_000_000)


# --------------------------------------------------------------------------- targets
# Every measured benchmark records its best time (seconds per round) here under its test name;
# the terminal summary prints each target of docs/performance.md as a ratio with met / missed.
RESULTS: dict[str, float] = {}

# (label, numerator, denominator, comparison, bound): ratio = numerator / denominator.
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("StreamTable.dispatch / no-op call", "test_table_dispatch", "test_call_floor_noop", "<=", 1.5),
    ("StreamLifecycle.dispatch / no-op call", "test_lifecycle_dispatch", "test_call_floor_noop",
     "<=", 1.5),
    ("StreamLifecycle() construction, ns", "construct_ns", "", "<=", 1000.0),
    ("StreamLifecycle bytes per instance (tracemalloc)", "bytes_per_instance", "", "<=", 64.0),
    ("miros / streamhsm, 20-event lifecycle incl. construction", "test_miros_lifecycle_20",
     "test_streamhsm_lifecycle_20", ">=", 300.0),
    ("dispatch_many lease traffic / bare loop", "test_dispatch_many", "test_many_floor", "<=", 1.5),
    ("dispatch_many transition-heavy / bare loop", "test_dispatch_many_transitions",
     "test_many_transitions_floor", "<=", 1.25),
    ("dispatch_many int32 slots / bare loop (int64 slots)", "test_dispatch_many_int32",
     "test_many_floor", "<=", 1.25),
    ("dispatch_many int32 slots / bare loop on int32 slots", "test_dispatch_many_int32",
     "test_many_floor_int32", "<=", 1.5),
    ("broadcast, every slot transitions / bare scalar loop", "test_broadcast",
     "test_broadcast_floor", "<=", 0.5),
    ("broadcast, every slot transitions / memcpy (aim)", "test_broadcast", "test_broadcast_memcpy",
     "<=", 2.0),
    ("dispatch_many with a flag / same machine without flags, lease traffic",
     "test_many_with_flags", "test_many_without_flags", "<=", 1.5),
    ("dispatch_many with a flag / same machine without flags, transition-heavy",
     "test_many_transitions_with_flags", "test_many_transitions_without_flags", "<=", 1.5),
    ("dispatch_many, history machine / same machine without history, history-free traffic",
     "test_free_traffic_with_history", "test_free_traffic_without_history", "<=", 1.05),
    ("dispatch_many, history cells / plain transition cells", "test_history_cells",
     "test_plain_transition_cells", "<=", 2.0),
    ("advance, nothing due, ns", "advance_idle_ns", "", "<=", 1000.0),
    ("advance, 1 % due / bare compiled loop over the deadline column", "test_advance_one_percent",
     "test_advance_floor", "<=", 1.5),
)

# (label, numerator, denominator): ratios printed without a verdict (no target is set).
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("keepalives through dispatch_many, with the timer / without", "test_keepalives_with_timers",
     "test_keepalives_without_timers"),
    ("restart (keepalive), asyncio call_later+cancel / table", "restart_asyncio_ns",
     "restart_table_ns"),
    ("restart (keepalive), heapq push (lazy) / table", "restart_heapq_ns", "restart_table_ns"),
    ("cancel, asyncio handle.cancel / table", "cancel_asyncio_ns", "cancel_table_ns"),
    ("cancel, heapq (lazy) / table", "cancel_heapq_ns", "cancel_table_ns"),
    ("fire, asyncio / table (advance, 1 % due)", "fire_asyncio_ns", "fire_table_ns"),
    ("fire, heapq / table (advance, 1 % due)", "fire_heapq_ns", "fire_table_ns"),
    ("bytes per armed timer, asyncio / table", "bytes_asyncio", "bytes_table"),
    ("bytes per armed timer, heapq / table", "bytes_heapq", "bytes_table"),
)


def _record(name: str, value: object) -> None:
    """Keep the best round time of a measured benchmark (or a number) for the target summary."""
    if isinstance(value, (int, float)):
        RESULTS[name] = float(value)
        return
    stats = getattr(value, "stats", None)
    if stats is not None:
        RESULTS[name] = stats.stats.min


@pytest.fixture
def record() -> Callable[[str, object], None]:
    """``record(name, benchmark_or_number)``: feed the target summary."""
    return _record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS or not _measuring(terminalreporter.config):
        return
    tr = terminalreporter
    tr.section("performance targets (best round of each, same run)")
    for label, num, den, op, bound in TARGETS:
        if num not in RESULTS or (den and den not in RESULTS):
            tr.write_line(f"{label}: not measured")
            continue
        value = RESULTS[num] / RESULTS[den] if den else RESULTS[num]
        ok = value <= bound if op == "<=" else value >= bound
        tr.write_line(f"{label}: {value:.3g} (target {op} {bound:g}) "
                      f"{'met' if ok else 'MISSED'}")
    for label, num, den in COMPARISONS:
        if num in RESULTS and den in RESULTS:
            tr.write_line(f"{label}: {RESULTS[num] / RESULTS[den]:.3g} "
                          f"({RESULTS[num]:.4g} / {RESULTS[den]:.4g}; no target)")
    for name in sorted(k for k in RESULTS if k.endswith("_ns") or k.startswith("bytes_")):
        tr.write_line(f"  {name} = {RESULTS[name]:.4g}")
