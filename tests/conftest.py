"""Shared fixtures: machines used across the test modules, and the thread helpers of the lock
tests."""

from __future__ import annotations

import runpy
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import MachineSpec


def pytest_configure(config: pytest.Config) -> None:
    """Register the session fixture ``cython_driver`` (the Cython example, built once)."""
    runpy.run_path(str(Path(__file__).resolve().parent / "cython_example.py"))["register"](config)


def toy_spec() -> MachineSpec:
    """A three-level machine exercising every hierarchy rule.

    Root > A > A1 > {A11, A12};  Root > A > A2;  Root > B > {B1, B2};  initial chain A > A1 > A11.
    """
    spec = MachineSpec("toy", ["Self", "Up", "Down", "Cross", "Reset", "Grand", "Sib", "Local", "Noop"],
                       initial="A")
    spec.state("A", initial="A1").state("A1", "A", initial="A11")
    spec.state("A11", "A1").state("A12", "A1").state("A2", "A")
    spec.state("B", initial="B1").state("B1", "B").state("B2", "B")
    spec.on("A11", "Self", "A11")        # external self-transition on a leaf
    spec.on("A1", "Self", "A1")          # external self-transition on a composite
    spec.on("A11", "Up", "A1")           # target is an ancestor of the source
    spec.on("A", "Down", "A12")          # target is a descendant of the (composite) source
    spec.on("A12", "Down", "A11")        # sibling transition
    spec.on("A1", "Cross", "B")          # composite target with initial child
    spec.on("B", "Cross", "A2")
    spec.on("Root", "Reset", "Root")     # full reset
    spec.on("A", "Grand", "B2")          # handler on a grandparent of the leaf
    spec.on("B1", "Sib", "B2").on("B2", "Sib", "B1")
    spec.on("A", "Local", "A")           # self-transition on a grandparent
    spec.on("A1", "Noop")                # handled without transition
    spec.on("B", "Noop", "A")            # back across, drilling A > A1 > A11
    return spec


@pytest.fixture(name="toy_spec")
def toy_spec_fixture() -> Callable[[], MachineSpec]:
    """The toy machine's declaration factory (a fresh spec per call)."""
    return toy_spec


def _wait_until(cond: Callable[[], bool], what: str) -> None:
    """Poll ``cond`` (a correct build satisfies it almost at once); fail after a generous bound
    instead of hanging when a guarantee is broken."""
    for _ in range(20_000):
        if cond():
            return
        time.sleep(0.0005)
    raise AssertionError(f"timed out waiting until {what}")


class _Call(threading.Thread):
    """Run ``fn`` in a thread, keeping its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            self.error = exc


class PausedBatch:
    """A dispatch_many started in a thread and held after validating its input (table lock
    taken, GIL released) until :meth:`resume` (the table's ``_test_pause_batches`` hook)."""

    def __init__(self, t: Any, slots: np.ndarray, events: np.ndarray) -> None:
        self.t = t
        t._test_pause_batches()
        self.call = _Call(lambda: t.dispatch_many(slots, events))
        self.call.start()
        _wait_until(lambda: t._test_at_gate, "the batch has validated its input")
        assert t._test_busy, "the batch runs without holding the table lock"

    def queue(self, fn: Callable[[], Any]) -> _Call:
        """Start ``fn`` in a thread and wait until it waits for the table lock."""
        before = self.t._test_waiters
        call = _Call(fn)
        call.start()
        _wait_until(lambda: self.t._test_waiters > before or not call.is_alive(),
                    "the call waits for the lock (or returns)")
        assert call.is_alive(), "a mutator ran while a batch held the table lock"
        return call

    def resume(self) -> None:
        self.t._test_resume_batches()
        self.call.join()


@pytest.fixture
def paused_batch() -> type[PausedBatch]:
    """``paused_batch(table, slots, events)``: a batch held after validation (see PausedBatch)."""
    return PausedBatch
