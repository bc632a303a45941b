"""Benchmarks run once, small, as smoke tests in the normal suite; they are measured at full size
only when asked: ``python -m pytest benchmarks --benchmark-only`` (or ``--benchmark-enable``)."""

from __future__ import annotations

from dataclasses import dataclass

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


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    if not _measuring(request.config):
        return Sizes(streams=10_000, events=100_000, leases=10_000)
    return Sizes(streams=1_000_000, events=10_000_000, leases=1_000_000)
