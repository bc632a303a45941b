"""Hostile input to the timers (issue 21): every refusal names the value, nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

import streamhsm as s


class _LyingInt(int):
    """An int whose ``int()`` is another number (and whose comparisons may lie too)."""

    lie = 0

    def __int__(self) -> int:
        return self.lie


class _Zero(_LyingInt):
    lie = 0


class _Negative(_LyingInt):
    lie = -7


class _Huge(_LyingInt):
    lie = 2**70

    def __ge__(self, other: object) -> bool:
        return True

    def __le__(self, other: object) -> bool:
        return True


def _spec() -> s.MachineSpec:
    sp = s.MachineSpec("hostile", ["Tick"], initial="A")
    sp.state("A")
    return sp


@pytest.mark.parametrize(("value", "periodic", "match"), [
    (_Negative(-5), False, r"delay_ns must be 0\.\.\d+ ns \(2\*\*62\), got -5"),
    (_Huge(2**70), False, r"delay_ns must be 0\.\.\d+ ns \(2\*\*62\), got 1180591620717411303424"),
    (_Huge(-3), True, r"period_ns must be 1\.\.\d+ ns \(2\*\*62\), got -3"),
])
def test_delay_int_subclass_checked_by_its_value(value: int, periodic: bool, match: str) -> None:
    sp = _spec()
    with pytest.raises(ValueError, match=match):
        (sp.every if periodic else sp.after)("A", value, "Tick")
    assert sp.timers == ()


def test_delay_int_subclass_stored_as_its_value() -> None:
    # a zero period that int() reported used to reach the kernel: (now - d) // 0, SIGFPE
    sp = _spec()
    sp.every("A", _Zero(5), "Tick")
    (timer,) = sp.timers
    assert type(timer.delay_ns) is int
    assert timer.delay_ns == 5
    table = s.MachineTable(sp.compile(), 2)
    table.open()
    assert table.advance(12) == 1
    assert table.skipped_periods == (1,)


@pytest.mark.parametrize(("requested", "deadline"), [(20, 90), (0, 70), (40, 60)])
def test_a_draining_snapshot_deadline_must_be_its_request_plus_the_timeout(
        requested: int, deadline: int) -> None:
    # each pair passed the old range check (timeout <= deadline <= now + timeout); restored,
    # the driver stopped at the crafted deadline while its notice and snapshot said another
    from streamhsm.driver import Driver, DriverConfig

    d = Driver(DriverConfig(static_stream_ids=(1, 2), shutdown_timeout_ns=50))
    d.request_shutdown(20)
    d.poll(40)
    snap = d.snapshot()
    assert (snap["shutdown_requested_ns"], snap["shutdown_deadline"]) == (20, 70)
    assert Driver.restore(snap)._lifecycle.deadlines("shutdown") == 70
    snap["shutdown_requested_ns"], snap["shutdown_deadline"] = requested, deadline
    with pytest.raises(s.SnapshotError, match=(
            rf"shutdown deadline {deadline} must be its request's time "
            rf"\(shutdown_requested_ns {requested}\) plus shutdown_timeout_ns 50")):
        Driver.restore(snap)


class _LongShape(np.ndarray):
    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (1 << 40,)


class _Elsewhere(np.ndarray):
    @property
    def ctypes(self) -> object:  # type: ignore[override]
        return type("C", (), {"data": 16})()


def _ticking() -> s.CompiledMachine:
    sp = _spec()
    sp.every("A", 10, "Tick")
    return sp.compile()


@pytest.mark.parametrize("cls", [_LongShape, _Elsewhere])
@pytest.mark.parametrize("kind", ["table", "instance"])
def test_advance_out_must_be_an_exact_ndarray(cls: type, kind: str) -> None:
    # a subclass's lying shape made the kernel write 512 records into a 1-record buffer
    machine = _ticking()
    if kind == "table":
        target: s.MachineTable | s.MachineInstance = s.MachineTable(machine, 512)
        for _ in range(512):
            target.open()
    else:
        target = s.MachineInstance(machine)
    out = np.zeros(1, s.FIRED_DTYPE).view(cls)
    with pytest.raises(TypeError, match=rf"out must be a numpy.ndarray \(not a subclass\) of "
                                        rf"FIRED_DTYPE or None, got {cls.__name__}"):
        target.advance(100, out=out)
    assert target.now_ns == 0
    assert target.advance(100, out=np.zeros(1, s.FIRED_DTYPE)) == (512 if kind == "table" else 1)


def _layout_arrays(machine: s.CompiledMachine, capacity: int) -> dict[str, np.ndarray]:
    from streamhsm._engine_tables import table_layout

    return {name: np.zeros(shape, dtype) for name, (dtype, shape) in table_layout(
        capacity, machine.n_events, 0, machine.timers.n_timers).items()}


@pytest.mark.parametrize("column", ["clock", "timer_blocks", "skipped"])
def test_table_arrays_judged_by_their_real_shape_not_a_subclass_property(column: str) -> None:
    # a 1-element buffer whose subclass claimed the full shape was bound: the kernels wrote
    # clock[1], the block summaries and skipped counts past its end
    sp = _spec()
    for i in range(3):
        sp.every("A", 10 + i, "Tick", name=f"t{i}")
    machine = sp.compile()
    arrays = _layout_arrays(machine, 4096)
    claimed = arrays[column].shape

    class Liar(np.ndarray):
        @property
        def shape(self) -> tuple[int, ...]:  # type: ignore[override]
            return claimed

    arrays[column] = np.zeros(1, np.int64).view(Liar)
    with pytest.raises(ValueError, match=rf"arrays\['{column}'\] must be a writeable "
                                         rf"C-contiguous int64 array of shape \({claimed[0]},\)"):
        s.MachineTable(machine, 4096, arrays=arrays)


def test_table_arrays_read_once_from_a_mapping() -> None:
    # a dict whose __getitem__ answered another (smaller) array than .get had shown
    machine = _ticking()
    arrays = _layout_arrays(machine, 64)

    class Shifty(dict):  # type: ignore[type-arg]
        def __getitem__(self, key: str) -> np.ndarray:
            return np.zeros(1, dict.__getitem__(self, key).dtype)

    table = s.MachineTable(machine, 64, arrays=Shifty(arrays))
    for _ in range(64):
        table.open()
    assert (arrays["states"] != 255).all()  # the table runs on the memory it was checked on
    assert table.advance(10) == 64 and (arrays["deadlines"] == 20).all()


def test_table_arrays_subclass_memory_is_shared() -> None:
    machine = _ticking()
    arrays = {k: v.view(type("Sub", (np.ndarray,), {}))
              for k, v in _layout_arrays(machine, 8).items()}
    table = s.MachineTable(machine, 8, arrays=arrays)
    table.open()
    assert arrays["states"][0] == machine.initial_leaf and arrays["deadlines"][0, 0] == 10


class _Liar(str):
    """A str equal to every other str, hashing as ``"a_go"``."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash("a_go")

    __ne__ = None  # type: ignore[assignment]


def test_restart_names_are_exact_strs() -> None:
    # a str subclass equal to everything restarted timer "a_go" while the spec said "nope"
    sp = _spec()
    sp.after("A", 100, "Tick", name="a_go")
    sp.on("A", "Tick", restart=_Liar("nope"))
    assert [type(r) for h in sp.declared_handlers for r in h.restart] == [str]
    with pytest.raises(s.MachineDefinitionError,
                       match=r"handler \(A, Tick\) restarts unknown timer 'nope'"):
        sp.compile()


def test_timer_names_are_exact_strs() -> None:
    sp = _spec()
    sp.after(_Liar("A"), 100, _Liar("Tick"), name=_Liar("x"))
    (timer,) = sp.timers
    assert [type(v) for v in (timer.name, timer.state, timer.event)] == [str, str, str]
    assert (timer.name, timer.state, timer.event) == ("x", "A", "Tick")
