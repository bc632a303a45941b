"""``reclaim`` racing live writers (issue 19, defect 3): a segment is never visible under its name
before its header is complete (it is created unnamed and linked into place), and ``reclaim``
holds the writer lock (``flock`` LOCK_EX, which a writer's LOCK_SH blocks) from its check to its
unlink, so it never removes a live writer's segment.

The two-process test runs ``reclaim`` and ``open_readonly`` in a loop in a child while this
process creates and closes ``SharedStreamTable(name, 64)`` 2,000 times. Both sides widen the
windows a race needs (a short sleep after reserving the pages and after marking a table closed;
a short sleep before each unlink in the reclaimer), so that removing the lock or the
link-into-place fails the test every run instead of once in thousands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator

import pytest

from streamhsm import shm
from streamhsm.shm import SharedStreamTable, SharedTableError, open_readonly, reclaim

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: race loops

CYCLES = 2_000
PAUSE_S = 0.0002  # the widened windows

_RECLAIMER = """
import os, select, sys, time
from streamhsm import shm
from streamhsm.shm import SharedTableError, open_readonly, reclaim

name, pause = sys.argv[1], float(sys.argv[2])
real_unlink = os.unlink
def slow_unlink(path, *a, **k):  # widen reclaim's check-to-unlink window
    time.sleep(pause)
    return real_unlink(path, *a, **k)
shm.os.unlink = slow_unlink

removed = refused = incomplete = opened = 0
print("ready", flush=True)
i = 0
while True:
    i += 1
    if i % 16 == 0 and select.select([sys.stdin], [], [], 0)[0]:
        break
    try:
        removed += reclaim(name)
    except SharedTableError:
        refused += 1
    try:
        with open_readonly(name):
            opened += 1
    except FileNotFoundError:
        pass
    except SharedTableError as exc:
        if "was replaced while being opened" not in str(exc):  # the writer's next table: fine
            incomplete += 1  # a visible segment whose header is not complete
            print("incomplete:", exc, file=sys.stderr)
print(removed, refused, incomplete, opened, flush=True)
"""


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    n = f"streamhsm-race-{os.getpid()}-{zlib.crc32(request.node.nodeid.encode()):08x}"
    yield n
    if os.path.lexists(f"/dev/shm/{n}"):
        os.unlink(f"/dev/shm/{n}")


def _widen_writer_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    real_reserve, real_mark = shm._reserve, shm._mark_closed

    def slow_reserve(fd: int, size: int, name: str) -> None:
        real_reserve(fd, size, name)
        time.sleep(PAUSE_S)  # before the header is written

    def slow_mark(mm: object) -> None:
        real_mark(mm)  # type: ignore[arg-type]
        time.sleep(PAUSE_S)  # marked closed, not yet unlinked

    monkeypatch.setattr(shm, "_reserve", slow_reserve)
    monkeypatch.setattr(shm, "_mark_closed", slow_mark)


def test_reclaim_in_a_loop_never_removes_a_live_writers_segment(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reclaimer = subprocess.Popen([sys.executable, "-c", _RECLAIMER, name, str(PAUSE_S)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    assert reclaimer.stdin is not None and reclaimer.stdout is not None
    try:
        assert reclaimer.stdout.readline().strip() == "ready"
        _widen_writer_windows(monkeypatch)
        lost = exists = 0
        for _ in range(CYCLES):
            try:
                t = SharedStreamTable(name, 64)
            except FileExistsError:  # a segment nobody should have left
                exists += 1
                continue
            slot = t.open()
            t.dispatch(slot, 0)
            try:
                st = os.stat(t.path, follow_symlinks=False)
                mine = (st.st_dev, st.st_ino) == t._ident
            except FileNotFoundError:
                mine = False
            lost += not mine
            t.close()
        monkeypatch.undo()
        out, err = reclaimer.communicate("stop\n", timeout=60)
    finally:
        if reclaimer.poll() is None:
            reclaimer.kill()
            reclaimer.wait()
    assert reclaimer.returncode == 0, err[-2000:]
    removed, refused, incomplete, opened = map(int, out.split())
    assert refused > 0 and opened > 0  # the reclaimer really ran against live writers
    assert (lost, exists, removed, incomplete) == (0, 0, 0, 0), err[-2000:]


def test_the_name_appears_only_once_the_table_is_complete(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic: at every step of creation before the link, the name does not exist."""
    seen: list[tuple[str, bool]] = []
    real_reserve, real_views = shm._reserve, shm._views
    path = f"/dev/shm/{name}"

    def reserve(fd: int, size: int, n: str) -> None:
        seen.append(("reserve", os.path.lexists(path)))
        real_reserve(fd, size, n)

    def views(*args: object) -> object:
        seen.append(("header written", os.path.lexists(path)))
        return real_views(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(shm, "_reserve", reserve)
    monkeypatch.setattr(shm, "_views", views)
    for tmpfile in (True, False):
        monkeypatch.setattr(shm, "_USE_TMPFILE", tmpfile)
        before = set(os.listdir("/dev/shm"))
        with SharedStreamTable(name, 8) as t:
            assert seen == [("reserve", False), ("header written", False)]
            with open_readonly(name) as r:
                assert r.writer_pid == os.getpid() and r.capacity == 8
            assert set(os.listdir("/dev/shm")) - before == {name}  # no temporary name left
            assert os.stat(t.path).st_nlink == 1
        seen.clear()


def test_a_failure_before_the_link_leaves_nothing(name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_views(*args: object) -> object:
        raise MemoryError("injected")

    monkeypatch.setattr(shm, "_views", broken_views)
    for tmpfile in (True, False):
        monkeypatch.setattr(shm, "_USE_TMPFILE", tmpfile)
        before = set(os.listdir("/dev/shm"))
        with pytest.raises(MemoryError, match="injected"):
            SharedStreamTable(name, 8)
        assert set(os.listdir("/dev/shm")) == before


def test_reclaim_respects_the_writer_lock_whatever_the_header_says(name: str) -> None:
    """Deterministic: a live table whose header says closed (or names a dead pid) is still held
    by its writer's lock, so reclaim refuses. Without the lock it would remove it."""
    with SharedStreamTable(name, 4) as t:
        shm._mark_closed(t._mm)
        with pytest.raises(SharedTableError, match=f"segment '{name}' belongs to live writer"):
            reclaim(name)
        with pytest.raises(SharedTableError, match="belongs to live writer"):
            SharedStreamTable(name, 4, reclaim_stale=True)
        assert os.path.exists(t.path)
    assert not os.path.exists(t.path)


def test_a_forked_child_holding_the_table_keeps_the_segment(name: str) -> None:
    """The lock follows the open file: a writer that died while its forked child still holds the
    table cannot be reclaimed under the child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the writer, which forks a child and dies
        try:
            os.close(r)
            _table = SharedStreamTable(name, 4)  # held open until this process dies
            grandchild = os.fork()
            if grandchild == 0:
                os.close(w)
                time.sleep(30)  # holds the inherited table until killed
                os._exit(0)
            os.write(w, str(grandchild).encode())
        finally:
            os._exit(0)  # the writer dies without closing
    os.close(w)
    grandchild = int(os.read(r, 32))
    os.close(r)
    os.waitpid(pid, 0)
    try:
        with pytest.raises(SharedTableError, match="has the writer lock"):
            reclaim(name)
    finally:
        os.kill(grandchild, 9)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the grandchild is not ours to reap: wait until it is gone
        try:
            assert reclaim(name) is True
            break
        except SharedTableError:
            time.sleep(0.01)
    assert not os.path.exists(f"/dev/shm/{name}")


def test_a_timer_table_is_complete_before_its_name_appears(
        name: str, timed_machine: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: when the segment gets its name, its header counts the timers and its clock and
    deadlines are already set (a reader or reclaim never sees a clock that is not the writer's),
    and reclaim removes a dead writer's timer segment like any other."""
    import struct

    import numpy as np

    from streamhsm import NEVER
    from streamhsm.shm import SharedMachineTable

    cols, _ = shm._columns(8, 4, 0, 2)
    seen: list[tuple[bool, int, list[int], int]] = []
    real_link = shm._link

    def link(fd: int, tmp: str | None, n: str, stale: bool) -> None:
        clock = np.frombuffer(os.pread(fd, 16, cols["clock"][2]), np.int64).tolist()
        deadlines = np.frombuffer(os.pread(fd, 2 * 8 * 8, cols["deadlines"][2]), np.int64)
        timers = struct.unpack("<I", os.pread(fd, 4, 124))[0]
        seen.append((os.path.lexists(f"/dev/shm/{n}"), timers, clock,
                     int((deadlines == NEVER).sum())))
        real_link(fd, tmp, n, stale)

    monkeypatch.setattr(shm, "_link", link)
    with SharedMachineTable(name, timed_machine, 8, now_ns=123):  # type: ignore[arg-type]
        assert seen == [(False, 2, [123, NEVER], 16)]
        with open_readonly(name) as r:
            assert r.now_ns == 123
    monkeypatch.undo()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - a writer that dies without closing
        try:
            kept = SharedMachineTable(name, timed_machine, 8)  # type: ignore[arg-type]
            kept.dispatch(kept.open(), "Go")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    with open_readonly(name) as r:
        assert r.now_ns == 0 and r.deadlines("beat")[0] == 300
    assert reclaim(name) is True and not os.path.exists(f"/dev/shm/{name}")
