"""The stream lifecycle (default policy) written for miros, a pure-Python statechart library:
the same hierarchy, handlers and unhandled-event count as ``StreamLifecycle``, for the
construction + 20-event comparison of ``python -m streamhsm bench`` and
``benchmarks/test_bench_lifecycle.py``. Private; importing it needs ``pip install miros``."""

from __future__ import annotations

from typing import Any

from miros import Event, return_status, signals  # type: ignore[import-untyped,import-not-found,unused-ignore]
from miros.hsm import HsmEventProcessor  # type: ignore[import-untyped,import-not-found,unused-ignore]

__all__ = ["EVENTS", "MirosStream"]

LEASE = ("ProducerAttached", "ConsumerAttached", "ProducerDetached", "ConsumerDetached",
         "EpochBumped")
DRAIN = ("ProducerDetached", "ConsumerDetached", "EpochBumped", "DriverDraining")
CLOSING = ("DriverShutdown", "StreamIdle", "Close")
EVENTS = {name: Event(signal=getattr(signals, name)) for name in (
    "StreamProvisioned", *LEASE, "DriverDraining", *CLOSING)}


def _sig(*names: str) -> frozenset[int]:
    return frozenset(getattr(signals, n) for n in names)


_LEASE, _DRAIN, _CLOSING = _sig(*LEASE), _sig(*DRAIN), _sig(*CLOSING)
_ENTRY_EXIT = frozenset((signals.ENTRY_SIGNAL, signals.EXIT_SIGNAL))


class MirosStream(HsmEventProcessor):  # type: ignore[misc,unused-ignore]
    """One stream; ``unhandled`` counts events that reached the top state."""

    def __init__(self) -> None:
        super().__init__()
        self.unhandled = 0
        self.start_at(init)


def live(chart: Any, e: Any) -> Any:
    sig = e.signal
    if sig in _ENTRY_EXIT:
        return return_status.HANDLED
    if sig == signals.INIT_SIGNAL:
        return chart.trans(init)
    if sig == signals.DriverDraining:
        return chart.trans(draining)
    if sig in _CLOSING:
        return chart.trans(closed)
    if sig >= signals.StreamProvisioned:  # a user event no state handles
        chart.unhandled += 1
    chart.temp.fun = chart.top
    return return_status.SUPER


def init(chart: Any, e: Any) -> Any:
    sig = e.signal
    if sig in _ENTRY_EXIT:
        return return_status.HANDLED
    if sig == signals.StreamProvisioned:
        return chart.trans(active)
    chart.temp.fun = live
    return return_status.SUPER


def active(chart: Any, e: Any) -> Any:
    sig = e.signal
    if sig in _ENTRY_EXIT or sig in _LEASE:
        return return_status.HANDLED
    chart.temp.fun = live
    return return_status.SUPER


def draining(chart: Any, e: Any) -> Any:
    sig = e.signal
    if sig in _ENTRY_EXIT or sig in _DRAIN:
        return return_status.HANDLED
    chart.temp.fun = live
    return return_status.SUPER


def closed(chart: Any, e: Any) -> Any:
    sig = e.signal
    if sig in _ENTRY_EXIT or sig == signals.Close:
        return return_status.HANDLED
    if sig >= signals.StreamProvisioned:
        chart.unhandled += 1
    chart.temp.fun = chart.top
    return return_status.SUPER
