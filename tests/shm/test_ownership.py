"""Who creates and who removes a segment (issue 9, items 8, 10, 14): only the creating process
removes it (a forked child never does), close() is exception-safe, a segment left by a writer
that died is reclaimed explicitly and never over a live writer, and the owner-only mode is set
without touching the process umask."""

from __future__ import annotations

import gc
import os
import signal
import struct
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from streamhsm import Event, State, shm
from streamhsm.shm import SharedStreamTable, SharedTableError, open_readonly, reclaim
from streamhsm.tools.cli import main

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: process lifetimes (seconds each)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    n = f"streamhsm-test-{os.getpid()}-{zlib.crc32(request.node.nodeid.encode()):08x}"
    yield n
    if os.path.lexists(f"/dev/shm/{n}"):
        os.unlink(f"/dev/shm/{n}")


def _wait_exit(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died of signal {os.WTERMSIG(status)}"
    return os.WEXITSTATUS(status)


# -- item 8: only the creator removes its segment ----------------------------------------------

@pytest.mark.parametrize("how", ["close", "drop", "with"])
def test_a_forked_child_never_removes_the_parents_segment(name: str, how: str) -> None:
    t = SharedStreamTable(name, 16)
    t.open()
    t.publish()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            if how == "close":
                t.close()
                t.close()
            elif how == "drop":
                del t  # the finaliser runs here, in the child
                gc.collect()
            else:
                with t:
                    pass
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    assert _wait_exit(pid) == 0
    assert os.path.exists(t.path)  # the parent's live segment is still there
    with open_readonly(name) as r:
        assert not r.closed  # and not marked closed by the child either
        assert r.writer_pid == os.getpid() and r.writer_alive()
        t.dispatch(0, Event.STREAM_PROVISIONED)  # the parent keeps working
        assert r.count(State.ACTIVE) == 1
        t.close()
        assert r.closed
    assert not os.path.exists(t.path)  # the creator removes it


def test_the_creator_removes_a_forgotten_table(name: str) -> None:
    t = SharedStreamTable(name, 4)
    assert t.owner_pid == os.getpid()
    del t
    gc.collect()
    assert not os.path.exists(f"/dev/shm/{name}")


def test_close_is_exception_safe_when_marking_fails(name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    t = SharedStreamTable(name, 4)

    def boom(mm: object) -> None:
        raise RuntimeError("mark failed")

    monkeypatch.setattr(shm, "_mark_closed", boom)
    with pytest.raises(RuntimeError, match="mark failed"):
        t.close()
    assert not os.path.exists(t.path)  # removed all the same
    t.close()  # a second close is a no-op
    with pytest.raises(SharedTableError, match="is closed"):
        t.publish()


def test_close_is_exception_safe_when_unlink_fails(name: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    t = SharedStreamTable(name, 4)
    r = open_readonly(name)
    closed_fds: list[int] = []
    real_close = os.close

    def recording_close(fd: int) -> None:
        closed_fds.append(fd)
        real_close(fd)

    monkeypatch.setattr(os, "close", recording_close)

    def refuse(path: str) -> None:
        raise PermissionError(13, "refused", path)

    monkeypatch.setattr(os, "unlink", refuse)
    with pytest.raises(PermissionError, match="refused"):
        t.close()
    monkeypatch.undo()
    assert r.closed  # marked before the failing unlink
    assert t._fd in closed_fds  # and its descriptor released after it
    t.close()  # no-op, does not retry
    assert os.path.exists(t.path)
    r.close()


def test_a_table_whose_segment_was_replaced_does_not_remove_the_new_one(name: str) -> None:
    t = SharedStreamTable(name, 4)
    os.unlink(t.path)
    with SharedStreamTable(name, 4) as other:
        t.close()
        assert os.path.exists(other.path)  # not ours: left alone
        with open_readonly(name) as r:
            assert not r.closed


# -- item 10: reclaim a segment left by a dead writer ------------------------------------------

def _child_writer(name: str) -> tuple[int, int]:
    """Fork a child that creates the table, reports, and waits to be killed. Returns (pid, fd
    to write to in order to let it go)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(ready_r)
            os.close(go_w)  # so that the parent closing its end lets this child go
            t = SharedStreamTable(name, 32)
            for _ in range(10):
                t.open()
            t.publish()
            os.write(ready_w, b"r")
            os.read(go_r, 1)
            t.close()
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    assert os.read(ready_r, 1) == b"r"
    os.close(ready_r)
    return pid, go_w


def test_reclaim_a_segment_left_by_a_killed_writer(name: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pid, go = _child_writer(name)
    try:
        with pytest.raises(SharedTableError, match=rf"'{name}' belongs to live writer pid {pid}"):
            reclaim(name)
        with pytest.raises(SharedTableError, match="belongs to live writer"):
            SharedStreamTable(name, 4, reclaim_stale=True)
        assert main(["stat", name, "--reclaim"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"live writer pid {pid}" in err
        with open_readonly(name) as r:
            assert r.count(State.INIT) == 10  # the live writer's segment is intact
        os.kill(pid, signal.SIGKILL)
        # a killed writer not yet reaped is a zombie: dead for liveness
        deadline = time.monotonic() + 20
        while shm._pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.002)
        assert not shm._pid_alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)  # (already dead unless an assertion above failed)
        os.close(go)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert os.path.exists(f"/dev/shm/{name}")  # nobody cleaned up after the killed writer
    with pytest.raises(FileExistsError, match="streamhsm.shm.reclaim"):
        SharedStreamTable(name, 4)
    assert main(["stat", name, "--count", "1"]) == 1  # cli.EXIT_WRITER_DEAD
    assert f"writer={pid} [DEAD]" in capsys.readouterr().out
    assert reclaim(name) is True
    assert not os.path.exists(f"/dev/shm/{name}")
    assert reclaim(name) is False  # nothing left
    with SharedStreamTable(name, 4) as t:  # the name is usable again
        assert t.owner_pid == os.getpid()


def test_reclaim_stale_option_and_cli(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    for use_cli in (False, True):
        pid, go = _child_writer(name)
        os.kill(pid, signal.SIGKILL)
        os.close(go)
        os.waitpid(pid, 0)
        if use_cli:
            assert main(["stat", name, "--reclaim"]) == 0
            assert capsys.readouterr().out == f"reclaimed segment {name!r}\n"
            t = SharedStreamTable(name, 4)
        else:
            t = SharedStreamTable(name, 4, reclaim_stale=True)
        with t, open_readonly(name) as r:
            assert r.writer_pid == os.getpid() and r.capacity == 4 and r.count(State.LIVE) == 0
    assert main(["stat", name, "--reclaim"]) == 0
    assert capsys.readouterr().out == f"nothing to reclaim: no shared table named {name!r}\n"


def test_reclaim_a_closed_segment_and_refuse_other_files(name: str) -> None:
    path = f"/dev/shm/{name}"
    with SharedStreamTable(name, 4) as t:
        with open(t.path, "rb") as fh:
            data = fh.read()
    closed = bytearray(data)  # the writer (us) is alive, but the table is marked closed
    struct.pack_into("<Q", closed, 112, 1)
    cases: list[tuple[bytes, str | None]] = [(bytes(closed), None),
                                             (b"not a table" * 20, "not a streamhsm table"),
                                             (data[:100], "not a streamhsm table"),
                                             (data[:8] + struct.pack("<I", 9) + data[12:],
                                              "layout version 9")]
    for content, expect in cases:
        with open(path, "wb") as fh:
            fh.write(content)
        if expect is None:
            assert reclaim(name) is True and not os.path.exists(path)
        else:
            with pytest.raises(SharedTableError, match=expect):
                reclaim(name)
            assert os.path.exists(path)  # never removes what it does not understand
            os.unlink(path)


def test_reclaim_refuses_our_own_live_table(name: str) -> None:
    with SharedStreamTable(name, 4):
        with pytest.raises(SharedTableError, match=f"live writer pid {os.getpid()}"):
            reclaim(name)
        with pytest.raises(FileExistsError):
            SharedStreamTable(name, 4)
        with pytest.raises(SharedTableError, match="live writer"):
            SharedStreamTable(name, 4, reclaim_stale=True)
        assert os.path.exists(f"/dev/shm/{name}")


# -- item 14: owner-only mode without os.umask ---------------------------------------------------

@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277, 0o777])
def test_mode_0600_without_touching_the_umask(name: str, umask: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    old = os.umask(umask)  # the test sets the process umask; the package must not
    try:
        def forbidden(mask: int) -> int:
            raise AssertionError(f"os.umask({mask:o}) called")

        monkeypatch.setattr(os, "umask", forbidden)
        with SharedStreamTable(name, 8) as t:
            assert os.stat(t.path).st_mode & 0o7777 == 0o600
            t.open()
            with open_readonly(name) as r:
                assert r.count(State.INIT) == 1
        assert not os.path.exists(f"/dev/shm/{name}")
        monkeypatch.undo()
        assert os.umask(umask) == umask  # unchanged by the package
    finally:
        os.umask(old)


def test_creation_failure_leaves_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmap

    def fail(*a: object, **k: object) -> None:
        raise OSError(12, "cannot map")

    monkeypatch.setattr(mmap, "mmap", fail)
    with pytest.raises(OSError, match="cannot map"):
        SharedStreamTable(name, 8)
    assert not os.path.exists(f"/dev/shm/{name}")
    monkeypatch.undo()
    with SharedStreamTable(name, 8) as t:
        t.dispatch_many(np.array([], np.int64), np.array([], np.uint8))


def test_a_writer_whose_segment_was_truncated_still_closes(name: str) -> None:
    """Someone with the owner's rights truncates the segment: close() does not write past the
    end (which would SIGBUS the writer) and still removes the name."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            t = SharedStreamTable(name, 8)
            os.truncate(t.path, 0)  # writing the closed flag now would fault
            t.close()
            code = 0 if not os.path.exists(t.path) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), f"the writer died of signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0
