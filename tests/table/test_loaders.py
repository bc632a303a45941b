"""Loading from paths that are not regular files (issue 19, defect 4), and strings that end in NUL
through save and load.

Every loader (``StreamTable.load``, ``Driver.load``, ``load_snapshot``; segments in
``tests/test_shm_hostile.py``) goes through ``streamhsm._files.open_regular``: a FIFO, a device,
a directory or a socket is refused with a ``SnapshotError`` naming the path and its kind, without
blocking and without reading from it; what is read is bounded by the file's size.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import Driver, DriverConfig, StreamTable, _files
from streamhsm.driver.protocol import ShutdownReason
from streamhsm.snapshot import STR_DTYPE, SnapshotError, load_snapshot, save_snapshot

LOADERS: dict[str, Callable[[str], object]] = {
    "StreamTable.load": StreamTable.load,
    "Driver.load": Driver.load,
    "load_snapshot": load_snapshot,
}


@contextlib.contextmanager
def _hang_guard(seconds: int = 10) -> Iterator[None]:
    """Turn a blocked call into a test failure instead of a hung suite."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _special(kind: str, tmp_path: Path) -> tuple[str, str, list[Any]]:
    """A path of ``kind``, the kind the message must name, and what to keep open meanwhile."""
    keep: list[Any] = []
    if kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
        return path, "a FIFO", keep
    if kind == "symlink-to-fifo":
        os.mkfifo(tmp_path / "target")
        os.symlink(tmp_path / "target", tmp_path / "link")
        return str(tmp_path / "link"), "a FIFO", keep
    if kind == "directory":
        return str(tmp_path), "a directory", keep
    if kind == "socket":
        path = str(tmp_path / "sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        keep.append(s)
        return path, "a socket", keep
    return {"zero": "/dev/zero", "null": "/dev/null", "urandom": "/dev/urandom"}[kind], \
        "a character device", keep


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("kind", ["fifo", "symlink-to-fifo", "directory", "socket", "zero", "null",
                                  "urandom"])
def test_non_regular_paths_are_refused_without_blocking_or_reading(
        loader: str, kind: str, tmp_path: Path) -> None:
    path, what, keep = _special(kind, tmp_path)
    try:
        with _hang_guard(), pytest.raises(SnapshotError) as info:
            LOADERS[loader](path)
    finally:
        for k in keep:
            k.close()
    message = str(info.value)
    assert f"snapshot file {path!r} is not a regular file" in message and what in message


def test_a_fifo_swapped_in_after_the_check_cannot_block_the_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path looks regular when inspected and is a FIFO when opened (a swap in between): the
    open does not block (O_NONBLOCK) and fstat refuses it."""
    regular = tmp_path / "regular"
    regular.write_bytes(b"x")
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    real_stat = os.stat
    looks_regular = real_stat(regular)

    def stat(path: Any, *a: Any, **k: Any) -> os.stat_result:
        if os.fspath(path) == fifo:
            fifo_st = real_stat(path, *a, **k)
            fields = list(looks_regular)
            fields[1], fields[2] = fifo_st.st_ino, fifo_st.st_dev  # same identity as the FIFO
            return os.stat_result(fields)
        return real_stat(path, *a, **k)

    monkeypatch.setattr(os, "stat", stat)
    with _hang_guard(), pytest.raises(SnapshotError, match="replaced while being opened .*a FIFO"):
        load_snapshot(fifo)


def test_the_descriptor_is_blocking_again_and_reads_stop_at_the_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    fd, st = _files.open_regular(str(path), "data", ValueError)
    try:
        assert st.st_size == 10 and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
    finally:
        os.close(fd)
    # a file that grows after it was opened is read up to the size it had then
    real_open = _files.open_regular

    def open_then_grow(*args: Any, **kwargs: Any) -> tuple[int, os.stat_result]:
        opened = real_open(*args, **kwargs)
        with open(path, "ab") as fh:
            fh.write(b"more" * 1000)
        return opened

    monkeypatch.setattr(_files, "open_regular", open_then_grow)
    assert _files.read_regular(str(path), "data", ValueError) == b"0123456789"


def test_a_file_that_shrinks_while_read_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    table = StreamTable(4)
    table.save(tmp_path / "t.npz")
    real_open = _files.open_regular

    def open_then_shrink(*args: Any, **kwargs: Any) -> tuple[int, os.stat_result]:
        opened = real_open(*args, **kwargs)
        os.truncate(tmp_path / "t.npz", 10)
        return opened

    monkeypatch.setattr(_files, "open_regular", open_then_shrink)
    with pytest.raises(SnapshotError, match="shrank while being read"):
        StreamTable.load(tmp_path / "t.npz")


def test_missing_and_unreadable_paths_stay_oserrors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Driver.load(tmp_path / "absent.npz")
    with pytest.raises(SnapshotError, match="embedded null byte"):
        load_snapshot("bad\x00path")


# -- strings that end in NUL ---------------------------------------------------------------------

MESSAGES = ["bye\x00", "bye\x00\x00", "\x00", "a\x00b\x00", "\x00\x00\x00", "snow \u2603\x00",
            "\ud800\x00", "\U0010ffff\x00", "plain", "", "in\x00side"]


@pytest.mark.parametrize("message", MESSAGES)
def test_a_shutdown_message_round_trips_exactly(message: str, tmp_path: Path) -> None:
    d = Driver(DriverConfig(static_stream_ids=(1,)))
    d.request_shutdown(now_ns=5, reason=ShutdownReason.ADMIN, message=message)
    d.save(tmp_path / "d.npz")
    restored = Driver.load(tmp_path / "d.npz")
    assert restored.shutdown_notice is not None and restored.shutdown_notice.message == message
    assert restored.shutdown_notice == d.shutdown_notice


def test_every_str_field_round_trips_and_plain_strings_keep_their_format(tmp_path: Path) -> None:
    snap = {"kind": "X", "version": 3, **{f"s{i}": m for i, m in enumerate(MESSAGES)},
            "arr": np.arange(3, dtype=np.int32)}
    save_snapshot(snap, tmp_path / "s.npz")
    loaded = load_snapshot(tmp_path / "s.npz")
    assert {k: v for k, v in loaded.items() if k != "arr"} == \
        {k: v for k, v in snap.items() if k != "arr"}
    assert all(type(loaded[f"s{i}"]) is str for i in range(len(MESSAGES)))
    with np.load(tmp_path / "s.npz") as raw:  # what an older reader sees
        for i, m in enumerate(MESSAGES):
            stored = raw[f"s{i}"]
            if m.endswith("\x00"):
                assert stored.dtype == STR_DTYPE and stored.ndim == 1
            else:
                assert stored.dtype.kind == "U" and stored.ndim == 0 and stored.item() == m


def test_an_invalid_string_member_is_a_snapshot_error(tmp_path: Path) -> None:
    bad = np.array([(0x110000,)], dtype=STR_DTYPE)  # not a code point
    np.savez(tmp_path / "bad.npz", kind=np.asarray("X"), version=np.asarray(3), s=bad)
    with pytest.raises(SnapshotError, match="member 's.npy' is not a valid string"):
        load_snapshot(tmp_path / "bad.npz")
