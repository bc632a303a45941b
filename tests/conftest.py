"""Shared fixtures: machines used across the test modules, every implementation of a machine
behind one API (``any_machine``, ``any_stream_machine``), the thread helpers of the lock tests,
and the Cython example built once per session (``cython_driver``, tests/cython_example.py)."""

from __future__ import annotations

import enum
import functools
import gc
import runpy
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import (
    CompiledMachine,
    MachineInstance,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
    State,
    StreamLifecycle,
    _testing,
    stream_machine,
    stream_spec,
)
from streamhsm.machine import FREE_SLOT


def pytest_configure(config: pytest.Config) -> None:
    """Register the session fixture ``cython_driver`` (the Cython example, built once)."""
    runpy.run_path(str(Path(__file__).resolve().parent / "cython_example.py"))["register"](config)


def toy_spec() -> MachineSpec:
    """A three-level machine exercising every hierarchy rule.

    Root > A > A1 > {A11, A12};  Root > A > A2;  Root > B > {B1, B2};  initial chain A > A1 > A11.
    """
    spec = MachineSpec("toy",
                       ["Self", "Up", "Down", "Cross", "Reset", "Grand", "Sib", "Local", "Noop"],
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
    taken, GIL released) until :meth:`resume` (``streamhsm._testing.pause_batches``)."""

    def __init__(self, t: Any, slots: np.ndarray, events: np.ndarray) -> None:
        self.t = t
        _testing.pause_batches(t)
        self.call = _Call(lambda: t.dispatch_many(slots, events))
        self.call.start()
        _wait_until(lambda: _testing.at_gate(t), "the batch has validated its input")
        assert _testing.busy(t), "the batch runs without holding the table lock"

    def queue(self, fn: Callable[[], Any]) -> _Call:
        """Start ``fn`` in a thread and wait until it waits for the table lock."""
        before = _testing.waiters(self.t)
        call = _Call(fn)
        call.start()
        _wait_until(lambda: _testing.waiters(self.t) > before or not call.is_alive(),
                    "the call waits for the lock (or returns)")
        assert call.is_alive(), "a mutator ran while a batch held the table lock"
        return call

    def resume(self) -> None:
        _testing.resume_batches(self.t)
        self.call.join()


@pytest.fixture
def paused_batch() -> type[PausedBatch]:
    """``paused_batch(table, slots, events)``: a batch held after validation (see PausedBatch)."""
    return PausedBatch


# --------------------------------------------------------------------------- every implementation
# The behaviour tests run over every way of running one machine, as propcache runs each test over
# its C and Python twins: the reference interpreter (plain Python, read from the declaration), a
# MachineInstance, and one slot of a MachineTable (with open neighbours that must never change);
# for the stream machine also StreamLifecycle. Each is seen through the same small API, with
# states by name:
#   dispatch(event) -> handled? | state (leaf name) | is_in(state) | unhandled | set_flag | flag
class _Reference:
    """The reference interpreter (:class:`ReferenceMachine`)."""

    def __init__(self, spec: MachineSpec, state_enum: type[enum.IntEnum] | None = None) -> None:
        self.m = ReferenceMachine(spec, state_enum=state_enum)

    def dispatch(self, event: object) -> bool:
        return self.m.dispatch(event).handled

    @property
    def state(self) -> str:
        return self.m.current

    def is_in(self, state: object) -> bool:
        return self.m.in_state(state)

    @property
    def unhandled(self) -> int:
        return self.m.unhandled

    def set_flag(self, name: Any, value: Any) -> None:
        self.m.set_flag(name, value)

    def flag(self, name: Any) -> bool:
        return self.m.flag(name)

    def history(self, owner: Any) -> str | None:
        return self.m.history(owner)


class _Instance:
    """A :class:`MachineInstance` (or a StreamLifecycle, its light twin for the stream machine)."""

    def __init__(self, machine: CompiledMachine, instance: Any = None) -> None:
        self.machine = machine
        self.m = MachineInstance(machine) if instance is None else instance

    def dispatch(self, event: object) -> bool:
        handled = self.m.dispatch(event)
        assert type(handled) is bool, handled
        return handled

    @property
    def state(self) -> str:
        return self.machine.state_names[self.m.current]

    def is_in(self, state: object) -> bool:
        return self.m.is_in(state)

    @property
    def unhandled(self) -> int:
        return self.m.unhandled

    def set_flag(self, name: Any, value: Any) -> None:
        self.m.set_flag(name, value)

    def flag(self, name: Any) -> bool:
        return self.m.flag(name)

    def history(self, owner: Any) -> str | None:
        return self.m.history(owner)


class _TableSlot:
    """Slot 1 of a three-slot :class:`MachineTable`; slots 0 and 2 stay open and untouched, and
    every call checks that they kept their state, flags and counters."""

    SLOT = 1

    def __init__(self, machine: CompiledMachine) -> None:
        self.machine = machine
        self.t = MachineTable(machine, 3)
        for _ in range(3):
            self.t.open()
        self._neighbours = self._others()

    def _others(self) -> list[tuple[int, int, int]]:
        return [(int(self.t.states[s]), int(self.t.flags[s]), int(self.t.unhandled[s]))
                for s in (0, 2)]

    def _check(self) -> None:
        assert self._others() == self._neighbours, "a call on one slot changed another slot"

    def dispatch(self, event: object) -> bool:
        try:
            handled = self.t.dispatch(self.SLOT, event)
        finally:
            self._check()
        assert type(handled) is bool, handled
        return handled

    @property
    def state(self) -> str:
        return self.machine.state_names[self.t.state(self.SLOT)]

    def is_in(self, state: object) -> bool:
        return self.t.is_in(self.SLOT, state)

    @property
    def unhandled(self) -> int:
        return int(self.t.unhandled[self.SLOT])

    def set_flag(self, name: Any, value: Any) -> None:
        try:
            self.t.set_flag(self.SLOT, name, value)
        finally:
            self._check()

    def flag(self, name: Any) -> bool:
        return self.t.flag(self.SLOT, name)

    def history(self, owner: Any) -> str | None:
        leaf = int(self.t.history(owner)[self.SLOT])
        return None if leaf == FREE_SLOT else self.machine.state_names[leaf]


IMPLEMENTATIONS = ("reference", "instance", "table")


def make_machine(impl: str, spec: MachineSpec) -> Any:
    """``spec`` run by ``impl`` (one of IMPLEMENTATIONS), through the adapters above."""
    if impl == "reference":
        return _Reference(spec)
    return _Instance(spec.compile()) if impl == "instance" else _TableSlot(spec.compile())


def make_stream_machine(impl: str, drain_on_producer_loss: bool = False) -> Any:
    """The stream machine of a policy run by ``impl`` (IMPLEMENTATIONS or ``"lifecycle"``), the
    compiled ones on the shipped ``stream_machine(policy)``; states also as ``State`` members."""
    machine = stream_machine(drain_on_producer_loss)
    if impl == "reference":
        return _Reference(stream_spec(drain_on_producer_loss), state_enum=State)
    if impl == "lifecycle":
        return _Instance(machine, StreamLifecycle(drain_on_producer_loss))
    return _Instance(machine) if impl == "instance" else _TableSlot(machine)


@pytest.fixture(params=IMPLEMENTATIONS)
def any_machine(request: pytest.FixtureRequest) -> Callable[[MachineSpec], Any]:
    """``any_machine(spec)``: a fresh machine of ``spec`` run by each implementation in turn
    (reference interpreter, MachineInstance, a MachineTable slot), behind one small API."""
    return functools.partial(make_machine, request.param)


@pytest.fixture(params=(*IMPLEMENTATIONS, "lifecycle"))
def any_stream_machine(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``any_stream_machine(drain_on_producer_loss=False)``: a fresh stream machine run by each
    implementation in turn, StreamLifecycle included."""
    return functools.partial(make_stream_machine, request.param)


@pytest.fixture
def frozen_heap() -> Any:
    """Move every object alive before the test into the collector's permanent generation, so the
    ``gc.collect()`` calls of an allocation test traverse only what the test made (the earlier
    tests' heap otherwise makes each call slow). Objects the test makes, cycles included, are
    still collected; blocks are counted all the same. The earlier tests' garbage is frozen with
    the rest (not collected first, which would cost what freezing saves) and freed after."""
    gc.freeze()
    yield
    gc.unfreeze()
