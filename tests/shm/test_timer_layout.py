"""Issue 21: a shared table of a machine with timers (layout version 4). The writer's clock and
deadlines live in the segment; a reader (also in another process) sees ``now_ns``, fresh
read-only copies of ``deadlines(name)``, the earliest armed deadlines, and ``stat`` prints them.
The machine (``shm-timed``, registered in conftest.py): Idle -Go-> Busy, where ``Busy.Timeout``
(one-shot, 1000 ns) returns to Idle and ``beat`` (every 300 ns) ticks."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from streamhsm import FIRED_DTYPE, NEVER, CompiledMachine, MachineSpec
from streamhsm.shm import (
    HEADER_SIZE,
    LAYOUT_VERSION,
    SharedMachineTable,
    SharedStreamTable,
    TableReader,
    open_readonly,
)
from streamhsm.tools.cli import main

TIMEOUT, BEAT = "Busy.Timeout", "beat"


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    n = f"streamhsm-timers-{os.getpid()}-{zlib.crc32(request.node.nodeid.encode()):08x}"
    yield n
    if os.path.lexists(f"/dev/shm/{n}"):
        os.unlink(f"/dev/shm/{n}")


def _expected_next(t: SharedMachineTable, limit: int) -> list[tuple[int, int, str]]:
    """The earliest armed deadlines by brute force over the writer's own views."""
    names = t.machine.timers.names
    found = [(int(d), slot, n) for i, n in enumerate(names)
             for slot, d in enumerate(t.deadlines(n).tolist()) if d != NEVER]
    return sorted(found, key=lambda x: (x[0], x[1], names.index(x[2])))[:limit]


def test_layout_4_records_the_timer_count(name: str, timed_machine: CompiledMachine) -> None:
    with SharedMachineTable(name, timed_machine, 4) as t:
        with open(t.path, "rb") as fh:
            head = fh.read(HEADER_SIZE)
        assert LAYOUT_VERSION == 4 and struct.unpack_from("<I", head, 8)[0] == 4
        assert struct.unpack_from("<II", head, 120) == (0, 2)  # no history owners, two timers
    with SharedStreamTable(name, 4) as s:
        with open(s.path, "rb") as fh:
            assert struct.unpack_from("<II", fh.read(HEADER_SIZE), 120) == (0, 0)


def test_the_reader_sees_the_clock_and_the_deadlines(name: str,
                                                     timed_machine: CompiledMachine) -> None:
    with SharedMachineTable(name, timed_machine, 8, now_ns=100) as t, open_readonly(name) as r:
        assert r.machine is timed_machine and r.now_ns == t.now_ns == 100
        assert r.deadlines(TIMEOUT).tolist() == [NEVER] * 8
        for _ in range(4):
            t.open()
        t.dispatch(1, "Go")
        t.dispatch(3, "Go")
        seen = r.deadlines(TIMEOUT)
        assert seen.tolist() == t.deadlines(TIMEOUT).tolist() == [NEVER, 1100, NEVER, 1100] + \
            [NEVER] * 4
        assert r.deadlines(BEAT).tolist() == [NEVER, 400, NEVER, 400] + [NEVER] * 4
        assert r.next_deadlines() == [(400, 1, BEAT), (400, 3, BEAT), (1100, 1, TIMEOUT),
                                      (1100, 3, TIMEOUT)]

        out = np.zeros(8, FIRED_DTYPE)
        assert t.advance(1050, out) == 2  # the beat of slots 1 and 3 (at 400), at most once
        assert r.now_ns == 1050
        for n in (TIMEOUT, BEAT):
            assert r.deadlines(n).tolist() == t.deadlines(n).tolist()
        assert r.skipped_periods == t.skipped_periods
        assert r.states.tolist() == t.states.tolist()
        assert seen.tolist()[1] == 1100  # a copy: the earlier read did not follow the writer
        with pytest.raises(ValueError, match="read-only"):
            seen[0] = 0
        assert not seen.flags.writeable
        assert r.next_deadlines() == _expected_next(t, 5)
        st = r.stats()
        assert st["now_ns"] == 1050 and st["next_deadlines"] == _expected_next(t, 5)


def test_advance_fires_into_the_segment(name: str, timed_machine: CompiledMachine) -> None:
    """The reader sees what advance did: a timeout moved slots back to Idle and disarmed."""
    with SharedMachineTable(name, timed_machine, 4) as t, open_readonly(name) as r:
        for _ in range(3):
            t.open()
        t.dispatch(0, "Go")
        t.advance(500)
        t.dispatch(2, "Go")  # armed at the clock: 1500 and 800
        assert r.next_deadlines(2) == [(600, 0, BEAT), (800, 2, BEAT)]
        t.advance(1000)  # slot 0's timeout fires (at 1000): back to Idle, beat cancelled
        assert r.now_ns == 1000
        assert r.count("Busy") == 1 and r.slots_in("Busy").tolist() == [2]
        assert r.deadlines(TIMEOUT).tolist() == [NEVER, NEVER, 1500, NEVER]
        assert r.next_deadlines() == [(1100, 2, BEAT), (1500, 2, TIMEOUT)]
        t.release(2)
        assert r.next_deadlines() == [] and r.stats()["next_deadlines"] == []


def test_next_deadlines_reads_only_the_blocks_it_needs(name: str, timed_machine: CompiledMachine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cap = 5 * 1024 + 17
    with SharedMachineTable(name, timed_machine, cap) as t, open_readonly(name) as r:
        for _ in range(cap):
            t.open()
        rng = np.random.default_rng(3)
        for step, slots in enumerate(np.array_split(rng.permutation(cap)[:600], 6)):
            t.dispatch_many(np.sort(slots), np.zeros(len(slots), np.uint8))  # Go, at this clock
            t.advance(10 * (step + 1))
        t.dispatch(cap - 1, "Go")  # the last, partial block
        t.dispatch(3000, "Go")  # ties: slots 3000 and cap - 1 have the same deadlines
        for limit in (0, 1, 3, 5, 40, 2000):
            assert r.next_deadlines(limit) == _expected_next(t, limit), limit
        calls: list[tuple[int, int, int]] = []
        real = TableReader._deadline_range

        def counting(self: TableReader, timer: int, start: int, stop: int) -> np.ndarray:
            calls.append((timer, start, stop))
            return real(self, timer, start, stop)

        monkeypatch.setattr(TableReader, "_deadline_range", counting)
        first = r.next_deadlines(1)
        assert first == _expected_next(t, 1)
        assert len({start for _, start, _ in calls}) == 1  # one block of six read
        assert all(stop - start <= 1024 for _, start, stop in calls)


def test_next_deadlines_breaks_ties_by_slot_across_blocks(name: str,
                                                          timed_machine: CompiledMachine) -> None:
    """A block whose lower bound equals the deadline found so far may still hold that deadline
    at a lower slot: it is read (block 2's bound is stale after a cancel, so it comes first)."""
    with SharedMachineTable(name, timed_machine, 3 * 1024) as t, open_readonly(name) as r:
        for _ in range(3 * 1024):
            t.open()
        t.dispatch(2100, "Go")  # block 2 bound: 300
        t.dispatch(2100, "Stop")  # cancelled; the bound stays 300
        t.advance(10)
        t.dispatch(2101, "Go")  # beat at 310 (block 2)
        t.dispatch(5, "Go")  # beat at 310 (block 0, bound 310)
        assert r.next_deadlines(1) == [(310, 5, BEAT)] == _expected_next(t, 1)
        assert r.next_deadlines(3) == [(310, 5, BEAT), (310, 2101, BEAT), (1010, 5, TIMEOUT)]


@pytest.mark.parametrize(("limit", "error", "match"), [
    (-1, ValueError, "limit must be >= 0, got -1"), ("3", TypeError, "limit must be an int"),
    (True, TypeError, "limit must be an int, got bool"), (2.0, TypeError, "got float 2.0"),
])
def test_next_deadlines_refuses_a_bad_limit(name: str, timed_machine: CompiledMachine,
                                           limit: object, error: type[Exception],
                                           match: str) -> None:
    with SharedMachineTable(name, timed_machine, 2) as t, open_readonly(name) as r:
        t.open()
        with pytest.raises(error, match=match):
            r.next_deadlines(limit)  # type: ignore[arg-type]


def test_unknown_timer_names_and_machines_without_timers(name: str,
                                                         timed_machine: CompiledMachine) -> None:
    with SharedMachineTable(name, timed_machine, 2), open_readonly(name) as r:
        with pytest.raises(ValueError, match="nope"):
            r.deadlines("nope")
        with pytest.raises(TypeError):
            r.deadlines(3)
    with SharedStreamTable(name, 2), open_readonly(name) as r:
        assert r.now_ns is None and r.next_deadlines() == [] and r.skipped_periods == ()
        assert "now_ns" not in r.stats() and "next_deadlines" not in r.stats()
        with pytest.raises(ValueError, match="machine 'stream' has no timers"):
            r.deadlines("Busy.Timeout")


def test_stat_shows_the_clock_and_the_next_deadlines(name: str, timed_machine: CompiledMachine,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with SharedMachineTable(name, timed_machine, 8, now_ns=2_000_000_000) as t:
        for _ in range(3):
            t.open()
        assert main(["stat", name, "--count", "1"]) == 0
        assert "  clock=2000000000 ns  next deadlines: none armed\n" in capsys.readouterr().out
        t.dispatch(2, "Go")
        t.dispatch(0, "Go")
        t.advance(2_000_000_100)
        assert main(["stat", name, "--count", "1"]) == 0
        out = capsys.readouterr().out
        assert "\n  Idle=1  Busy=2\n" in out  # no "(Live=...)": the machine has no Live state
        assert ("  clock=2000000100 ns  next deadlines: beat slot 0 at 2000000300 (+200 ns), "
                "beat slot 2 at 2000000300 (+200 ns), Busy.Timeout slot 0 at 2000001000 "
                "(+900 ns), Busy.Timeout slot 2 at 2000001000 (+900 ns)\n") in out
    with SharedStreamTable(name, 2):
        assert main(["stat", name, "--count", "1"]) == 0
        assert "clock=" not in capsys.readouterr().out


def test_creation_refuses_bad_arguments_and_leaves_nothing(name: str,
                                                           timed_machine: CompiledMachine) -> None:
    for now, error, match in ((-1, ValueError, "now_ns"), (NEVER, ValueError, "now_ns"),
                              (1.5, TypeError, "now_ns")):
        with pytest.raises(error, match=match):
            SharedMachineTable(name, timed_machine, 4, now_ns=now)
        assert not os.path.lexists(f"/dev/shm/{name}")
    with pytest.raises(TypeError, match="machine must be a CompiledMachine, got str"):
        SharedMachineTable(name, "shm-timed", 4)  # type: ignore[arg-type]
    spec = MachineSpec("shm-unregistered", ["Go"], initial="A").state("A")
    spec.after("A", 5, "Go")
    with pytest.raises(ValueError, match="machine 'shm-unregistered' .* is not registered"):
        SharedMachineTable(name, spec.compile(), 4)
    assert not os.path.lexists(f"/dev/shm/{name}")


_READER = """
import json, sys
from streamhsm.shm import open_readonly
{source}
with open_readonly(sys.argv[1]) as r:
    print(json.dumps({{"now": r.now_ns, "timeout": r.deadlines("Busy.Timeout").tolist(),
                      "beat": r.deadlines("beat").tolist(), "next": r.next_deadlines(3),
                      "states": r.states.tolist(), "skipped": r.skipped_periods}}))
"""


def test_a_reader_in_another_process_sees_advance(name: str, timed_machine: CompiledMachine,
                                                  timed_source: str) -> None:
    script = _READER.format(source=timed_source)

    def child_sees() -> dict[str, object]:
        done = subprocess.run([sys.executable, "-c", script, name], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        result: dict[str, object] = json.loads(done.stdout)
        return result

    def writer_has(t: SharedMachineTable) -> dict[str, object]:
        return {"now": t.now_ns, "timeout": t.deadlines(TIMEOUT).tolist(),
                "beat": t.deadlines(BEAT).tolist(),
                "next": [list(x) for x in _expected_next(t, 3)],
                "states": t.states.tolist(), "skipped": list(t.skipped_periods)}

    with SharedMachineTable(name, timed_machine, 6, now_ns=10) as t:
        for _ in range(5):
            t.open()
        for slot in (0, 2, 4):
            t.dispatch(slot, "Go")
        first = child_sees()
        assert first == writer_has(t) and first["now"] == 10
        assert t.advance(1000) == 3  # each slot's beat once (310), two periods skipped
        t.dispatch(2, "Stop")
        second = child_sees()
        assert second == writer_has(t)
        assert second["now"] == 1000 and second["skipped"] == [0, 6]
        assert second["beat"][:5] == [1210, NEVER, NEVER, NEVER, 1210]
        assert t.advance(1010) == 2  # slots 0 and 4 time out at 1010
        third = child_sees()
        assert third == writer_has(t) and third["next"] == [] and third["now"] == 1010


def test_the_documented_timer_line_is_what_stat_prints(name: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """docs/running-a-driver.md shows the kettle example's ``stat`` line: it is the line printed
    for the same table (the machine registered under another name than the page's)."""
    from pathlib import Path

    from streamhsm import registry

    page = Path(__file__).resolve().parents[2] / "docs" / "running-a-driver.md"
    documented = [line for line in page.read_text(encoding="utf-8").splitlines()
                  if line.startswith("  clock=")]
    assert len(documented) == 1
    if ("shm-kettle", registry.DEFAULT_POLICY) not in registry.known():
        spec = MachineSpec("shm-kettle", ["Switch", "Boiled"], initial="Off")
        spec.state("Off").state("Heating").on("Off", "Switch", "Heating")
        spec.on("Heating", ["Switch", "Boiled"], "Off").after("Heating", 90 * 10**9, "Boiled")
        registry.register("shm-kettle", spec.compile)
    with SharedMachineTable(name, registry.machine("shm-kettle"), 4) as kettles:
        kettles.dispatch(kettles.open(), "Switch")
        kettles.advance(30 * 10**9)
        kettles.dispatch(kettles.open(), "Switch")
        assert main(["stat", name, "--count", "1"]) == 0
    assert documented[0] in capsys.readouterr().out.splitlines()
