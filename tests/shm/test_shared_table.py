"""Live tables in shared memory: a writer's table read by another process, read-only, with a
versioned header; stale and dead writers reported; faulty segments rejected."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from streamhsm import Event, State
from streamhsm.shm import HEADER_SIZE, SharedStreamTable, SharedTableError, open_readonly
from streamhsm.tools.cli import main


@pytest.fixture
def name() -> str:
    n = f"streamhsm-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield n
    if os.path.exists(f"/dev/shm/{n}"):
        os.unlink(f"/dev/shm/{n}")


@pytest.mark.smoke
def test_reader_sees_the_writer_and_cannot_write(name: str) -> None:
    with SharedStreamTable(name, 100) as t:
        assert oct(os.stat(f"/dev/shm/{name}").st_mode & 0o777) == "0o600"
        for _ in range(80):
            t.open()
        t.broadcast(Event.STREAM_PROVISIONED)
        t.dispatch_many(np.arange(10, dtype=np.int64), np.full(10, Event.DRIVER_DRAINING, np.uint8))
        t.dispatch(50, Event.STREAM_PROVISIONED)  # unhandled
        t.publish()
        with open_readonly(name) as r:
            assert r.capacity == 100 and r.writer_pid == os.getpid() and r.writer_alive()
            assert r.count(State.ACTIVE) == 70 and r.count("Draining") == 10
            assert r.count(State.LIVE) == 80
            assert r.unhandled_total == 1 and r.publish_count == 1 and not r.closed
            assert np.array_equal(r.states, t.states)
            assert r.slots_in(State.DRAINING).tolist() == list(range(10))
            st = r.stats()
            assert st["transitions"] == {"Init/StreamProvisioned": 80, "Active/DriverDraining": 10}
            with pytest.raises(ValueError, match="read-only"):
                r.states[0] = 0
            with pytest.raises(ValueError, match="WRITEABLE"):
                r.states.flags.writeable = True
            t.dispatch(20, Event.CLOSE)  # live: each read copies the writer's current values
            assert r.count(State.CLOSED) == 1 and r.states[20] == State.CLOSED
            assert not r.stale(10**12)
    assert not os.path.exists(f"/dev/shm/{name}")


def test_names_and_duplicates(name: str) -> None:
    with SharedStreamTable(name, 4):
        with pytest.raises(FileExistsError):
            SharedStreamTable(name, 4)
    with pytest.raises(ValueError, match="segment name"):
        SharedStreamTable("a/b", 4)
    with pytest.raises(ValueError, match="capacity must be between"):
        SharedStreamTable(name, 0)
    with pytest.raises(FileNotFoundError):
        open_readonly(name)


WRITER = r"""
import sys, time, numpy as np
from streamhsm import Event
from streamhsm.shm import SharedStreamTable
t = SharedStreamTable(sys.argv[1], 1000)
for _ in range(1000):
    t.open()
t.broadcast(Event.STREAM_PROVISIONED)
t.publish()
print("ready", flush=True)
k = 0
while True:   # keep writing until killed: toggle one slot per round, publish each round
    t.dispatch(k % 1000, Event.EPOCH_BUMPED)
    k += 1
    if k % 1000 == 0:
        t.publish()
        time.sleep(0.001)
"""


def test_two_processes_and_a_dead_writer(name: str) -> None:
    # stderr dropped: its resource tracker reports the kill
    proc = subprocess.Popen([sys.executable, "-c", WRITER, name], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with open_readonly(name) as r:
            assert r.writer_pid == proc.pid and r.writer_alive()
            first = r.publish_count
            deadline = time.monotonic() + 20
            while r.publish_count <= first + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert r.publish_count > first + 2  # the writer is writing while we read
            assert r.count(State.ACTIVE) == 1000
            assert r.stats()["transitions"] == {"Init/StreamProvisioned": 1000}
            assert not r.stale(10 * 10**9)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=20)
            assert not r.writer_alive() and r.stale(10 * 10**9)
            assert r.count(State.ACTIVE) == 1000  # the last state stays readable
            assert main(["stat", name, "--count", "1"]) == 1  # cli.EXIT_WRITER_DEAD
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_stat_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with SharedStreamTable(name, 50) as t:
        for _ in range(30):
            t.open()
        t.dispatch_many(np.arange(5, dtype=np.int64), np.zeros(5, np.uint8))
        t.publish()
        assert main(["stat", name, "--count", "1", "--state", "Active", "--limit", "3"]) == 0
        out = capsys.readouterr().out
        assert f"writer={os.getpid()} [live]" in out
        assert "Init=25  Active=5  Draining=0  Closed=0  (Live=30)" in out
        assert "slots in Active (5): 0 1 2 ... (+2)" in out
        assert "Init/StreamProvisioned=5" in out
        assert main(["stat", name, "--count", "1", "--state", "Nowhere"]) == 2
        assert "unknown state name 'Nowhere'" in capsys.readouterr().err
    assert main(["stat", name, "--count", "1"]) == 2
    assert f"no shared table named '{name}'" in capsys.readouterr().err


def _write_segment(name: str, data: bytes) -> None:
    fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _valid_header(capacity: int = 8) -> bytearray:
    with SharedStreamTable("streamhsm-test-proto-" + uuid.uuid4().hex[:8], capacity) as t:
        with open(t.path, "rb") as fh:
            return bytearray(fh.read())


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda b: b[:40], "is truncated: 40 bytes"),
    (lambda b: b[:HEADER_SIZE + 8], "is truncated"),
    (lambda b: b"NOTSTRM\x00" + b[8:], "is not a streamhsm table"),
    (lambda b: b[:8] + struct.pack("<I", 7) + b[12:], "layout version 7"),
    (lambda b: b[:32] + b"0123456789abcdef" + b[48:], "unknown machine"),
    (lambda b: b[:16] + struct.pack("<Q", 2**40) + b[24:], "capacity 1099511627776 out of range"),
])
def test_faulty_segments_are_rejected(name: str, mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    _write_segment(name, bytes(mutate(_valid_header())))
    with pytest.raises(SharedTableError, match=match):
        open_readonly(name)


def test_garbage_in_a_segment_never_crashes_the_reader(name: str) -> None:
    """A writer that died mid-update can leave anything in the columns."""
    data = _valid_header(64)
    rng = np.random.default_rng(1)
    data[HEADER_SIZE:] = rng.integers(0, 256, len(data) - HEADER_SIZE, dtype=np.uint8).tobytes()
    _write_segment(name, bytes(data))
    with open_readonly(name) as r:
        st = r.stats()
        assert set(st["occupancy"]) == {"Root", "Live", "Init", "Active", "Draining", "Closed"}
        assert len(r.slots_in(State.LIVE)) <= 64
        assert main(["stat", name, "--count", "1", "--state", "Closed"]) == 0


def test_driver_stream_table_in_shared_memory(name: str) -> None:
    from streamhsm import Driver, DriverConfig, Role

    with Driver(DriverConfig(static_stream_ids=(1, 2), stream_capacity=4, lease_capacity=4,
                             shm_name=name)) as d:
        d.attach(1, Role.PRODUCER, 7, 0)
        with open_readonly(name) as r:
            before = r.publish_count
            d.poll(1)
            assert r.publish_count == before + 1
            assert r.count(State.ACTIVE) == 2 and r.slots_in(State.ACTIVE).tolist() == [0, 1]
            d.request_shutdown(2)
            assert r.count(State.DRAINING) == 2
            snap = d.snapshot()
            assert '"shm_name": null' in str(snap["config"])
    assert not os.path.exists(f"/dev/shm/{name}")
    for bad in ("a/b", "a\x00b", "..", "", "x" * 201):
        with pytest.raises(ValueError, match="shm_name: segment name must be a str of 1 to 200"):
            DriverConfig(shm_name=bad)
