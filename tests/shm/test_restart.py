"""Restarting a driver that was killed (issue 19, rough edges): the ``FileExistsError`` says to run
``streamhsm stat NAME --reclaim``; ``stat`` exits 1 (``EXIT_WRITER_DEAD``) as soon as it shows the
writer ``[DEAD]`` and says the same on stderr; ``--interval`` is refused above one day instead of
ending in an ``OverflowError`` traceback. A writer of a machine with timers restarts with them
(issue 21)."""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamhsm import NEVER, Driver, DriverConfig
from streamhsm.tools import cli
from streamhsm.tools.cli import EXIT_WRITER_DEAD, MAX_STAT_INTERVAL, main


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    n = f"streamhsm-restart-{os.getpid()}-{zlib.crc32(request.node.nodeid.encode()):08x}"
    yield n
    if os.path.lexists(f"/dev/shm/{n}"):
        os.unlink(f"/dev/shm/{n}")


def _killed_driver(name: str) -> int:
    """A driver in a child that dies without closing (its segment stays); returns its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            d = Driver(DriverConfig(static_stream_ids=(1, 2), stream_capacity=8), shm_name=name)
            d.poll(now_ns=1)
        finally:
            os._exit(0)  # no close(): as if killed
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert os.path.exists(f"/dev/shm/{name}")
    return pid


def test_restarting_a_killed_driver_points_at_stat_reclaim(
        name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pid = _killed_driver(name)

    def no_second_screen(seconds: float) -> None:
        raise AssertionError("stat kept watching a dead writer")
    cfg = DriverConfig(static_stream_ids=(1, 2), stream_capacity=8)
    with pytest.raises(FileExistsError, match=f"`streamhsm stat {name} --reclaim`") as info:
        Driver(cfg, shm_name=name)
    assert info.value.filename == f"/dev/shm/{name}" and "died without closing" in str(info.value)

    monkeypatch.setattr(time, "sleep", no_second_screen)
    assert main(["stat", name]) == EXIT_WRITER_DEAD == 1  # no --count: stops at the dead writer
    monkeypatch.undo()
    out, err = capsys.readouterr()
    assert out.count(f"writer={pid} [DEAD]") == 1
    assert err.count("\n") == 1 and f"stat {name} --reclaim" in err and f"pid {pid}" in err

    assert main(["stat", name, "--reclaim"]) == 0
    capsys.readouterr()
    with Driver(cfg, shm_name=name) as d:  # the restart now works
        assert main(["stat", name, "--count", "1"]) == 0
        assert "[live]" in capsys.readouterr().out
        assert d.state.name == "RUNNING"


def test_a_name_that_needs_quoting_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamhsm import shm

    error = shm._exists_error("a b;c", "/dev/shm/a b;c")
    assert "`streamhsm stat 'a b;c' --reclaim`" in str(error)


def test_a_closed_writer_is_not_reported_dead(name: str, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from streamhsm.shm import SharedStreamTable, _mark_closed

    with SharedStreamTable(name, 4) as t:
        _mark_closed(t._mm)
        assert main(["stat", name, "--count", "1"]) == 0
        assert "[CLOSED]" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["1e308", "86400.5", "1e10", str(2**63)])
def test_stat_refuses_an_interval_above_one_day(name: str, value: str,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streamhsm.shm import SharedStreamTable

    monkeypatch.setattr(time, "sleep", lambda s: None)  # never sleep a day if accepted
    with SharedStreamTable(name, 4):
        assert main(["stat", name, "--count", "2", "--interval", value]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("error: --interval must be at most 86400 seconds (one day), got ")


def test_stat_accepts_an_interval_of_one_day(name: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from streamhsm.shm import SharedStreamTable

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with SharedStreamTable(name, 4):
        assert main(["stat", name, "--count", "2", "--interval", str(MAX_STAT_INTERVAL)]) == 0
    assert slept == [86400.0] and capsys.readouterr().out.count("machine=stream") == 2
    assert cli.MAX_STAT_INTERVAL == 86400.0


def test_a_restarted_writer_of_a_machine_with_timers_keeps_them(
        name: str, timed_machine: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21: a killed writer's segment still shows its clock and deadlines; ``stat`` shows
    them beside [DEAD]; after ``--reclaim`` a new writer restored from the killed one's last
    snapshot puts the same clock and deadlines back in a new segment, and its timers fire on."""
    from streamhsm import MachineTable
    from streamhsm.shm import SharedMachineTable, open_readonly

    saved = tmp_path / "table.snap"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, killed (no close) after saving
        try:
            t = SharedMachineTable(name, timed_machine, 8, now_ns=1_000)
            for _ in range(6):
                t.open()
            t.dispatch(1, "Go")
            t.advance(1_500)
            t.dispatch(4, "Go")
            t.save(saved)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    with open_readonly(name) as r:
        left = {"now": r.now_ns, "timeout": r.deadlines("Busy.Timeout").tolist(),
                "beat": r.deadlines("beat").tolist(), "next": r.next_deadlines()}
    assert left["now"] == 1_500 and left["timeout"][1] == 2_000 and left["timeout"][4] == 2_500
    assert main(["stat", name, "--count", "1"]) == EXIT_WRITER_DEAD
    out = capsys.readouterr().out
    assert f"writer={pid} [DEAD]" in out
    assert ("clock=1500 ns  next deadlines: beat slot 1 at 1600 (+100 ns), beat slot 4 at 1800"
            in out)

    assert main(["stat", name, "--reclaim"]) == 0
    with SharedMachineTable(name, timed_machine, 8) as t, open_readonly(name) as r:
        assert r.now_ns == 0 and r.next_deadlines() == []
        t.restore(MachineTable.load(saved, timed_machine).snapshot())
        assert {"now": r.now_ns, "timeout": r.deadlines("Busy.Timeout").tolist(),
                "beat": r.deadlines("beat").tolist(), "next": r.next_deadlines()} == left
        assert t.advance(2_000) == 3  # slot 1's beat (1600) and timeout, slot 4's beat (1800)
        assert r.now_ns == 2_000 and r.states.tolist()[1] == t.states[1]
        assert r.deadlines("Busy.Timeout").tolist()[1] == NEVER
