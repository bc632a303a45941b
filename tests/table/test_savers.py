"""Savers (MachineTable.save, StreamTable.save, Driver.save) write regular files only: an existing
FIFO, device, directory or socket, or a symlink to one, is refused with a SnapshotError naming the
path's kind, without blocking and without being opened for writing; regular files and symlinks
to them are written as before."""
import os
import socket
import threading

import pytest

from streamhsm import Driver, DriverConfig, StreamTable
from streamhsm.snapshot import SnapshotError, load_snapshot


def _savers():
    return [("table", StreamTable(4).save),
            ("driver", Driver(DriverConfig(static_stream_ids=(1,))).save)]


def _save_in_thread(save, path):
    """Run ``save(path)`` in a daemon thread; return its exception (or None), or "HANG"."""
    box = []

    def run():
        try:
            save(path)
            box.append(None)
        except Exception as e:  # noqa: BLE001 -- returned to the test
            box.append(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(10)
    return box[0] if box else "HANG"


def _fifo(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def _link_to_fifo(tmp_path):
    p = tmp_path / "link"
    p.symlink_to(_fifo(tmp_path))
    return p


def _socket(tmp_path):
    p = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()
    return p


KINDS = [("fifo", _fifo, "a FIFO"), ("symlink to fifo", _link_to_fifo, "a FIFO"),
         ("directory", lambda tmp: tmp, "a directory"), ("socket", _socket, "a socket"),
         ("/dev/full", lambda tmp: "/dev/full", "a character device")]


@pytest.mark.parametrize(("make", "kind"), [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
@pytest.mark.parametrize("who", ["table", "driver"])
def test_save_refuses_a_non_regular_path_without_blocking(tmp_path, who, make, kind):
    path = make(tmp_path)
    save = dict(_savers())[who]
    err = _save_in_thread(save, os.fspath(path))
    if err == "HANG":  # unblock the writer so the test run does not hang
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    assert isinstance(err, SnapshotError), err
    assert f"is {kind}" in str(err) and os.fspath(path) in str(err)


@pytest.mark.parametrize("who", ["table", "driver"])
def test_save_writes_regular_files_and_links_to_them(tmp_path, who):
    target = tmp_path / "snap.npz"
    target.write_bytes(b"x" * 100000)  # truncated, not appended to
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    save = dict(_savers())[who]
    save(os.fspath(link))
    assert load_snapshot(target)["kind"] in ("MachineTable", "Driver")
    save(os.fspath(tmp_path / "new.npz"))
    assert load_snapshot(tmp_path / "new.npz").keys() == load_snapshot(target).keys()
