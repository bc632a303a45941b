"""Hostile segments and names (issue 9, items 6, 7, 9): a reader survives any change to a
segment's size or content, opens only regular files without blocking, rejects bad names, and a
hostile writer pid in the header never breaks liveness. Every case is a clean SharedTableError,
ValueError or False: never a crash (SIGBUS), a hang or an OverflowError.

The cases that crashed or hung before the fix run in a forked child, so a regression fails the
test instead of killing or hanging the whole run."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from streamhsm import Event, State, _pids, shm
from streamhsm.shm import (
    HEADER_SIZE,
    SharedStreamTable,
    SharedTableError,
    TableReader,
    check_segment_name,
    open_readonly,
    reclaim,
)
from streamhsm.tools.cli import main

_OFF_PID = 48


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    n = f"streamhsm-test-{os.getpid()}-{zlib.crc32(request.node.nodeid.encode()):08x}"
    _remove(n)
    yield n
    _remove(n)


def _remove(n: str) -> None:
    path = f"/dev/shm/{n}"
    if os.path.islink(path) or os.path.isfile(path) or os.path.exists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)


def in_child(fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Run ``fn`` in a forked child and return its JSON result; fail (not crash or hang) if the
    child dies of a signal or does not finish."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(rfd)
            data = json.dumps(fn()).encode()
            os.write(wfd, data)
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(wfd, json.dumps({"child raised": repr(exc)}).encode())
            code = 3
        finally:
            os._exit(code)
    os.close(wfd)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            pytest.fail(f"the child hung for {timeout} s")
        time.sleep(0.005)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    if os.WIFSIGNALED(status):
        pytest.fail(f"the child died of {signal.Signals(os.WTERMSIG(status)).name}")
    result = json.loads(b"".join(chunks))
    assert os.WEXITSTATUS(status) == 0, result
    return result


def _accessors(r: TableReader) -> dict[str, Callable[[], Any]]:
    """Every public accessor of a reader, touching the data it returns."""
    return {
        "states": lambda: int(np.asarray(r.states, np.int64).sum()),
        "flags": lambda: int(np.asarray(r.flags, np.int64).sum()),
        "unhandled": lambda: int(np.asarray(r.unhandled).sum()),
        "writer_pid": lambda: r.writer_pid,
        "heartbeat_ns": lambda: r.heartbeat_ns,
        "unhandled_total": lambda: r.unhandled_total,
        "publish_count": lambda: r.publish_count,
        "closed": lambda: r.closed,
        "writer_alive": lambda: r.writer_alive(),
        "stale": lambda: r.stale(10**9),
        "count": lambda: r.count(State.ACTIVE),
        "slots_in": lambda: r.slots_in(State.LIVE).tolist(),
        "stats": lambda: r.stats()["occupancy"],
    }


def _sweep(r: TableReader) -> dict[str, list[str]]:
    """accessor -> ["ok", value] or [exception class, message]."""
    out: dict[str, list[Any]] = {}
    for key, call in _accessors(r).items():
        try:
            out[key] = ["ok", call()]
        except Exception as exc:  # noqa: BLE001 - the test asserts the class
            out[key] = [type(exc).__name__, str(exc)]
    return out


def _table(name: str, capacity: int = 64) -> SharedStreamTable:
    t = SharedStreamTable(name, capacity)
    for _ in range(capacity // 2):
        t.open()
    t.broadcast(Event.STREAM_PROVISIONED)
    t.publish()
    return t


HEADER_ONLY = {"writer_pid", "heartbeat_ns", "unhandled_total", "publish_count", "closed",
               "writer_alive", "stale"}


ALL = {"states", "flags", "unhandled", "writer_pid", "heartbeat_ns", "unhandled_total",
       "publish_count", "closed", "writer_alive", "stale", "count", "slots_in", "stats"}
HEADER_ONLY = {"writer_pid", "heartbeat_ns", "unhandled_total", "publish_count", "closed",
               "writer_alive", "stale"}


@pytest.mark.parametrize(("new_size", "failing"), [
    (0, ALL), (64, ALL), (HEADER_SIZE, ALL - HEADER_ONLY), (HEADER_SIZE + 8, ALL - HEADER_ONLY),
    (-64, {"states", "slots_in"}),  # the last column (states) cut off
])
def test_a_segment_truncated_under_a_reader_raises_instead_of_sigbus(name: str, new_size: int,
                                                                     failing: set[str]) -> None:
    with _table(name) as t:
        size = os.stat(t.path).st_size
        to = size + new_size if new_size < 0 else new_size

        def run() -> dict[str, dict[str, list[Any]]]:
            with open_readonly(name) as r:
                before = _sweep(r)
                os.truncate(f"/dev/shm/{name}", to)
                return {"before": before, "after": _sweep(r)}

        result = in_child(run)
        assert all(v[0] == "ok" for v in result["before"].values()), result["before"]
        after = result["after"]
        assert {key for key, (kind, _) in after.items() if kind != "ok"} == failing
        for key in failing:
            kind, msg = after[key]
            assert kind == "SharedTableError", (key, kind, msg)
            assert f"segment {name!r} shrank" in msg and f"now has {to} bytes" in msg
            assert f"{size} when opened" in msg
        for key in ALL - failing:
            assert after[key] == result["before"][key]


def test_every_accessor_after_truncation_in_process(name: str) -> None:
    """The same, in this process (the reader never maps the segment, so this cannot SIGBUS)."""
    with _table(name) as t, open_readonly(name) as r:
        os.truncate(t.path, 0)
        for call in _accessors(r).values():
            with pytest.raises(SharedTableError,
                               match=rf"segment '{name}' shrank.*now has 0 bytes"):
                call()
        assert r.capacity == 64 and r.name == name  # plain attributes stay


def test_an_enlarged_segment_reads_as_before(name: str) -> None:
    with _table(name) as t, open_readonly(name) as r:
        before = _sweep(r)
        os.truncate(t.path, os.stat(t.path).st_size * 3 + 5)
        assert _sweep(r) == before
        assert main(["stat", name, "--count", "1"]) == 0


def test_a_replaced_segment_keeps_reading_the_old_one(name: str) -> None:
    with _table(name) as t, open_readonly(name) as r:
        before = _sweep(r)
        os.unlink(t.path)  # someone removes the name and puts another table there
        with SharedStreamTable(name, 8) as other:
            other.open()
            assert r.unlinked
            assert _sweep(r) == before  # still the table that was opened
            with open_readonly(name) as r2:
                assert r2.capacity == 8 and not r2.unlinked
        t.dispatch(0, Event.CLOSE)
        assert r.count(State.CLOSED) == 1  # and it still follows its writer


def test_a_header_rewritten_in_place_is_detected(name: str) -> None:
    with _table(name) as t, open_readonly(name) as r:
        fd = os.open(t.path, os.O_WRONLY)
        try:
            os.pwrite(fd, struct.pack("<Q", 2**40), 16)  # another capacity
        finally:
            os.close(fd)
        for key in ("writer_pid", "closed", "stale", "stats"):
            with pytest.raises(SharedTableError,
                               match=rf"segment '{name}' changed under the reader"):
                _accessors(r)[key]()
        assert len(r.states) == 64  # columns are read as opened: consistent shape
        with pytest.raises(SharedTableError, match="capacity 1099511627776 out of range"):
            open_readonly(name)


def test_random_rewrites_and_truncations_never_crash(name: str) -> None:
    """A seeded sweep: random bytes over the header or columns, random sizes; the reader opens
    or refuses with SharedTableError, and every accessor answers or raises SharedTableError."""
    with _table(name, 16) as t:
        with open(t.path, "rb") as fh:
            good = fh.read()

    def run() -> dict[str, int]:
        rng = np.random.default_rng(9)
        tally = {"refused": 0, "opened": 0, "accessor errors": 0}
        path = f"/dev/shm/{name}"
        for _ in range(300):
            data = bytearray(good)
            for _ in range(int(rng.integers(1, 6))):
                at = int(rng.integers(0, len(data)))
                n = int(rng.integers(1, 16))
                data[at:at + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()[:len(data) - at]
            if rng.random() < 0.3:
                data = data[:int(rng.integers(0, len(data)))]
            with open(path, "wb") as fh:
                fh.write(data)
            try:
                r = open_readonly(name)
            except SharedTableError:
                tally["refused"] += 1
                continue
            tally["opened"] += 1
            with r:
                if rng.random() < 0.5:
                    os.truncate(path, int(rng.integers(0, len(data) + 1)))
                for call in _accessors(r).values():
                    try:
                        call()
                    except SharedTableError:
                        tally["accessor errors"] += 1
            try:
                reclaim(name)  # never an exception other than SharedTableError
            except SharedTableError:
                pass
            if os.path.exists(path):
                os.unlink(path)
        return tally

    tally = in_child(run)
    assert tally["refused"] > 0 and tally["opened"] > 0 and tally["accessor errors"] > 0, tally


# -- not regular files -------------------------------------------------------------------------

def _make_fifo(path: str) -> None:
    os.mkfifo(path, 0o600)


def _make_dir(path: str) -> None:
    os.mkdir(path, 0o700)


def _make_socket(path: str) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the socket file stays


@pytest.mark.parametrize(("make", "kind"), [(_make_fifo, "a FIFO"), (_make_dir, "a directory"),
                                            (_make_socket, "a socket")])
def test_non_regular_files_are_refused_without_blocking(name: str, make: Callable[[str], None],
                                                        kind: str) -> None:
    path = f"/dev/shm/{name}"
    make(path)

    def run() -> list[str]:
        out = []
        for call in (lambda: open_readonly(name), lambda: reclaim(name)):
            try:
                call()
                out.append("no error")
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}")
        return out

    opened, reclaimed = in_child(run, timeout=10)
    assert opened == (f"SharedTableError: segment {name!r} is not a regular file ({path} is "
                      f"{kind}); refusing to open it")
    assert reclaimed.startswith("SharedTableError: ") and "not a regular file" in reclaimed
    assert os.path.lexists(path)  # reclaim removed nothing


def test_non_regular_files_in_the_stat_command(name: str) -> None:
    os.mkfifo(f"/dev/shm/{name}", 0o600)

    def run(extra: list[str]) -> list[Any]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(["stat", name, "--count", "1", *extra])
        return [rc, err.getvalue()]

    for extra in ([], ["--reclaim"]):
        rc, err = in_child(functools.partial(run, extra), timeout=10)
        assert rc == 2 and err.count("\n") == 1
        assert err.startswith(f"error: segment {name!r} is not a regular file") and "a FIFO" in err


def test_a_symlink_is_refused_even_to_a_valid_segment(name: str) -> None:
    with _table(name) as t:
        link = f"/dev/shm/{name}-link"
        os.symlink(t.path, link)
        try:
            with pytest.raises(SharedTableError,
                               match=r"is not a regular file \(.* is a symlink\)"):
                open_readonly(f"{name}-link")
            with pytest.raises(SharedTableError, match="is a symlink"):
                reclaim(f"{name}-link")
            with pytest.raises(FileExistsError):
                SharedStreamTable(f"{name}-link", 4)  # O_EXCL|O_NOFOLLOW: never through it
        finally:
            os.unlink(link)
        assert os.path.isfile(t.path)


def test_a_device_is_refused_before_it_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, *args: Any, **kwargs: Any) -> int:
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(shm, "_SHM_DIR", "/dev")
    with pytest.raises(SharedTableError, match=r"'null' is not a regular file \(/dev/null is a "
                                               r"character device\)"):
        open_readonly("null")
    with pytest.raises(SharedTableError, match="character device"):
        reclaim("null")
    assert opened == []  # not even opened (opening some devices has side effects)


def test_absent_segments(name: str) -> None:
    with pytest.raises(FileNotFoundError):
        open_readonly(name)
    assert reclaim(name) is False


# -- names -------------------------------------------------------------------------------------

BAD_NAMES = ["", ".", "..", "a/b", "/abs", "../up", "a\x00b", "\x00", "x" * 201, "é" * 130,
             "\ud800", 7, None, b"bytes"]


def _could_be_ours(entry: str, bad: Any) -> bool:
    """A /dev/shm entry this process could have made from ``bad`` (other processes' are not):
    a part of the name (NUL or '/' truncating it) or a name carrying this process's pid."""
    return (isinstance(bad, str) and entry in bad) or str(os.getpid()) in entry.split("-")


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_names_are_rejected_everywhere(bad: Any, capsys: pytest.CaptureFixture[str]) -> None:
    msg = "segment name must be a str of 1 to 200 characters"
    before = set(os.listdir("/dev/shm"))
    for call in (lambda: check_segment_name(bad), lambda: SharedStreamTable(bad, 4),
                 lambda: open_readonly(bad), lambda: reclaim(bad)):
        with pytest.raises(ValueError, match=msg) as info:
            call()
        assert repr(bad) in str(info.value)
    changed = set(os.listdir("/dev/shm")) ^ before  # other processes may create segments meanwhile
    assert not {e for e in changed if _could_be_ours(e, bad)}  # nothing (NUL never truncates)
    if isinstance(bad, str):
        for extra in ([], ["--reclaim"]):
            assert main(["stat", bad, "--count", "1", *extra]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith(f"error: {msg}") and repr(bad) in err


def test_a_nul_name_never_creates_its_prefix() -> None:
    prefix = f"streamhsm-test-nul-{os.getpid()}"
    with pytest.raises(ValueError, match="without '/' or NUL"):
        SharedStreamTable(prefix + "\x00tail", 4)
    assert not os.path.exists(f"/dev/shm/{prefix}")


def test_longest_names_are_accepted() -> None:
    n = f"{os.getpid()}-" + "n" * 200
    n = n[:200]
    with SharedStreamTable(n, 2) as t, open_readonly(n) as r:
        assert r.capacity == 2 and t.name == n
    assert check_segment_name("...") == "..."  # only '.' and '..' are special


# -- hostile writer pids -----------------------------------------------------------------------

@pytest.mark.parametrize("pid", [0, 2**64 - 1, 2**63, 2**40, 2**32, 2**22 + 1, -1])
def test_hostile_writer_pids_mean_a_dead_writer(name: str, pid: int,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    signalled: list[int] = []
    real_kill = os.kill

    def recording_kill(pid: int, sig: int) -> None:
        signalled.append(pid)
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", recording_kill)
    with _table(name) as t:
        fd = os.open(t.path, os.O_WRONLY)
        try:
            # -1 as the writer would store it
            os.pwrite(fd, struct.pack("<Q", pid % 2**64), _OFF_PID)
        finally:
            os.close(fd)
        with open_readonly(name) as r:
            assert r.writer_pid == pid % 2**64
            assert r.writer_alive() is False
            assert r.stale(10**15) is True
            assert r.stats()["writer_alive"] is False
        assert main(["stat", name, "--count", "1"]) == 1  # cli.EXIT_WRITER_DEAD
        assert f"writer={pid % 2**64} [DEAD]" in capsys.readouterr().out
        assert signalled == []  # never os.kill(0, ...) or a pid the kernel cannot have
        with pytest.raises(SharedTableError, match="has the writer lock"):
            reclaim(name)  # the writer (this process) still holds the segment's lock
        with open(t.path, "rb") as fh:
            data = fh.read()
    with open(t.path, "wb") as fh:  # the same header, left by a writer that is gone
        fh.write(data)
    assert reclaim(name) is True  # a pid no process can have is not a live writer
    assert not os.path.exists(t.path)


def test_pid_max_bounds_liveness(name: str) -> None:
    with open("/proc/sys/kernel/pid_max") as fh:
        pid_max = int(fh.read())
    assert _pids.pid_max() == pid_max
    assert shm._pid_alive(os.getpid()) and not shm._pid_alive(pid_max + 1)
    assert not shm._pid_alive(0) and not shm._pid_alive(-1)


def test_pid_max_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_open = builtins.open

    def fake_open(path: Any, *a: Any, **k: Any) -> Any:
        if path == "/proc/sys/kernel/pid_max":
            raise PermissionError(path)
        return real_open(path, *a, **k)

    _pids.pid_max.cache_clear()
    monkeypatch.setattr(builtins, "open", fake_open)
    try:
        assert _pids.pid_max() == 2**22
    finally:
        monkeypatch.undo()
        _pids.pid_max.cache_clear()


# -- the stat command's arguments -------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--interval", "-1"], ["--interval", "nan"], ["--interval", "inf"], ["--interval", "-0.5"],
    ["--stale-after", "nan"], ["--stale-after", "-3"], ["--count", "-1"], ["--limit", "-2"],
])
def test_stat_rejects_bad_numbers_with_one_line(name: str, argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    count = [] if argv[0] == "--count" else ["--count", "1"]  # a regression ends, not loops
    with _table(name, 4):
        assert main(["stat", name, *count, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {argv[0]} must be") and argv[1] in err


def test_stat_reports_a_segment_that_shrinks_while_watched(
        name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with _table(name) as t:
        def shrink(_: float) -> None:  # between two screens
            os.truncate(t.path, 100)

        monkeypatch.setattr(time, "sleep", shrink)
        rc = main(["stat", name, "--count", "3", "--interval", "0"])
        monkeypatch.undo()
    assert rc == 2
    out, err = capsys.readouterr()
    assert out.count("machine=stream") == 1
    assert err.count("\n") == 1 and err.startswith(f"error: segment {name!r} shrank")


def test_stat_help_names_only_exported_names(capsys: pytest.CaptureFixture[str]) -> None:
    import streamhsm

    with pytest.raises(SystemExit):
        main(["stat", "--help"])
    out = capsys.readouterr().out
    assert "DriverConfig.shm_name" in out and "--reclaim" in out
    assert "SharedStreamTable" not in out and "TableReader" not in out
    assert "DriverConfig" in streamhsm.__all__


def test_a_closed_reader_raises(name: str) -> None:
    with _table(name, 4):
        r = open_readonly(name)
        r.close()
        r.close()
        for call in _accessors(r).values():
            with pytest.raises(SharedTableError, match=f"reader of segment '{name}' is closed"):
                call()


def test_close_during_a_read_never_reads_another_file(name: str, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Any) -> None:
    """close() from another thread while a read is in flight: the read finishes on the segment,
    never on a file that reused the descriptor number."""
    import threading

    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"\x77" * 4096)
    real_pread = shm._pread
    decoys: list[int] = []
    closers: list[threading.Thread] = []

    def racing_pread(fd: int, n: int, offset: int) -> bytes:
        closer = threading.Thread(target=r.close)
        closers.append(closer)
        closer.start()
        closer.join(0.3)  # with the lock it waits for this read; without, the fd is gone now
        decoys.append(os.open(decoy, os.O_RDONLY))  # takes the lowest free number
        return real_pread(fd, n, offset)

    with _table(name, 4) as t:
        r = open_readonly(name)
        monkeypatch.setattr(shm, "_pread", racing_pread)
        states = r.states
        monkeypatch.undo()
        closers[0].join()
        for fd in decoys:
            os.close(fd)
        assert states.tolist() == t.states.tolist() != [0x77] * 4  # the segment, not the decoy
        with pytest.raises(SharedTableError, match="is closed"):
            _ = r.states


# -- timer columns (issue 21, layout 4) --------------------------------------------------------

def _timed_table(name: str, machine: Any, capacity: int = 40) -> Any:
    t = shm.SharedMachineTable(name, machine, capacity, now_ns=7)
    for _ in range(capacity):
        t.open()
    t.dispatch_many(np.arange(0, capacity, 3, dtype=np.int64),
                    np.zeros(len(range(0, capacity, 3)), np.uint8))  # Go: arms both timers
    t.advance(400)
    return t


def _pwrite(path: str, data: bytes, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


@pytest.mark.parametrize("count", [0, 1, 3, 2**32 - 1])
def test_a_header_whose_timer_count_disagrees_is_refused(name: str, timed_machine: Any,
                                                         count: int) -> None:
    with _timed_table(name, timed_machine) as t:
        _pwrite(t.path, struct.pack("<I", count), 124)
        with pytest.raises(SharedTableError, match=rf"segment '{name}' has {count} timer columns, "
                                                   r"its machine 'shm-timed' 2"):
            open_readonly(name)
    with SharedStreamTable(name, 4) as s:
        _pwrite(s.path, struct.pack("<I", 1), 124)
        with pytest.raises(SharedTableError, match="has 1 timer columns, its machine 'stream' 0"):
            open_readonly(name)


@pytest.mark.parametrize("column", ["deadlines", "clock", "timer_blocks", "skipped"])
def test_truncated_timer_columns_are_refused(name: str, timed_machine: Any, column: str) -> None:
    with _timed_table(name, timed_machine) as t:
        cols, need = shm._columns(40, timed_machine.n_events, 0, 2)
        _, _, offset = cols[column]
        os.truncate(t.path, offset + 4)  # the column starts, but does not fit
        with pytest.raises(SharedTableError, match=rf"segment '{name}' is truncated: {offset + 4} "
                                                   rf"bytes, needs {need} \(column '{column}' "
                                                   r"does not fit\)"):
            open_readonly(name)


def test_timer_columns_truncated_under_a_reader_raise(name: str, timed_machine: Any) -> None:
    with _timed_table(name, timed_machine) as t, open_readonly(name) as r:
        assert r.now_ns == 400 and len(r.next_deadlines()) == 5
        cols, _ = shm._columns(40, timed_machine.n_events, 0, 2)
        os.truncate(t.path, cols["deadlines"][2] + 8)
        for call in (lambda: r.now_ns, lambda: r.deadlines("beat"), lambda: r.next_deadlines(),
                     lambda: r.skipped_periods, lambda: r.stats()):
            with pytest.raises(SharedTableError, match=rf"segment '{name}' shrank"):
                call()
        assert r.count("Busy") == 14  # the columns before the cut still read


def test_garbage_in_timer_columns_never_crashes_the_reader(name: str, timed_machine: Any,
                                                           capsys: Any) -> None:
    with _timed_table(name, timed_machine, 3000) as t:
        cols, size = shm._columns(3000, timed_machine.n_events, 0, 2)
        start = cols["deadlines"][2]
        rng = np.random.default_rng(5)
        for trial in range(20):
            data = rng.integers(0, 256, size - start, dtype=np.uint8)
            if trial % 2:  # mostly NEVER, some values: lower bounds that lie
                data = np.full((size - start) // 8, 2**63 - 1, np.int64)
                data[rng.integers(0, data.size, 50)] = rng.integers(-2**63, 2**63 - 1, 50)
                data = data.view(np.uint8)
            _pwrite(t.path, data.tobytes(), start)
            with open_readonly(name) as r:
                got = r.next_deadlines(7)
                assert len(got) <= 7 and all(n in ("Busy.Timeout", "beat") for _, _, n in got)
                assert all(0 <= slot < 3000 for _, slot, _ in got)
                assert isinstance(r.now_ns, int) and len(r.skipped_periods) == 2
            assert main(["stat", name, "--count", "1"]) == 0
        assert "next deadlines:" in capsys.readouterr().out


def test_layout_3_is_read_as_a_table_without_timers(name: str, timed_machine: Any) -> None:
    with _table(name, 8) as t:
        before = _sweep(open_readonly(name))
        _pwrite(t.path, struct.pack("<I", 3), 8)
        _pwrite(t.path, struct.pack("<I", 0xDEAD), 124)  # unused in layout 3
        with open_readonly(name) as r:
            assert _sweep(r) == before and r.now_ns is None and r.next_deadlines() == []
        _pwrite(t.path, struct.pack("<I", 5), 8)
        with pytest.raises(SharedTableError, match=r"layout version 5 .* understands versions "
                                                   r"\(3, 4\)"):
            open_readonly(name)
        with pytest.raises(SharedTableError, match="layout version 5; this version"):
            reclaim(name)
        _pwrite(t.path, struct.pack("<I", 3), 8)
        with open(t.path, "rb") as fh:
            data = fh.read()
    with open(t.path, "wb") as fh:  # the same layout 3 table, left by a writer that closed it
        fh.write(data[:112] + struct.pack("<Q", 1) + data[120:])
    assert reclaim(name) is True  # a layout 3 leftover is removed
    with _timed_table(name, timed_machine) as t:
        _pwrite(t.path, struct.pack("<I", 3), 8)
        with pytest.raises(SharedTableError,
                           match="has 0 timer columns, its machine 'shm-timed' 2"):
            open_readonly(name)


def test_a_timer_count_rewritten_under_a_reader_is_detected(name: str, timed_machine: Any) -> None:
    with _timed_table(name, timed_machine) as t, open_readonly(name) as r:
        assert r.stats()["now_ns"] == 400
        _pwrite(t.path, struct.pack("<I", 3), 124)
        for call in (r.stats, lambda: r.writer_pid, lambda: r.closed):
            with pytest.raises(SharedTableError, match=rf"segment '{name}' changed under the "
                                                       "reader"):
                call()
