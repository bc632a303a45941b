"""Live stream tables in named shared memory, readable by another process while the driver runs.

Like Aeron's counters file read by AeronStat: the writer's :class:`SharedStreamTable` keeps its
arrays (state codes, unhandled counters, occupancy, transition counts, free list) in a named
POSIX shared-memory segment behind a versioned header; :func:`open_readonly` maps the segment
read-only (``PROT_READ``) in any process and validates the header before exposing read-only
numpy views. ``python -m streamhsm stat NAME`` prints what a reader sees.

Segment layout (little-endian)::

    0    magic            8 bytes  b"STRMHSM\\x00"
    8    layout version   uint32   LAYOUT_VERSION
    12   header size      uint32   HEADER_SIZE
    16   capacity         uint64
    24   n_states         uint32
    28   n_events         uint32
    32   fingerprint      16 bytes machine fingerprint (ASCII hex)
    48   writer pid       uint64
    56   heartbeat        int64    time.time_ns() of the writer's last publish()
    64   unhandled total  uint64   as of the last publish()
    72   publish count    uint64
    80   machine name     32 bytes ASCII, NUL padded
    112  closed           uint64   1 once the writer closed the table
    128  columns          64-byte aligned, in streamhsm._engine.table_layout order
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from ._engine import table_layout
from .errors import StreamHsmError
from .lifecycle import StreamTable, stream_machine
from .machine import CompiledMachine

__all__ = ["HEADER_SIZE", "LAYOUT_VERSION", "SharedStreamTable", "SharedTableError", "TableReader",
           "leaf_names", "open_readonly"]

MAGIC = b"STRMHSM\x00"
#: Version of the segment layout below; a reader rejects a segment of another version.
LAYOUT_VERSION = 1
#: Bytes of the segment header; the first column starts after it.
HEADER_SIZE = 128
_HEADER = struct.Struct("<8sIIQII16sQqQQ32sQ")
# offsets of the fields updated after creation (see the layout above)
_OFF_PID, _OFF_HEARTBEAT, _OFF_UNHANDLED, _OFF_PUBLISHED, _OFF_CLOSED = 48, 56, 64, 72, 112
_ALIGN = 64
_SHM_DIR = "/dev/shm"


class SharedTableError(StreamHsmError, ValueError):
    """A shared-memory table segment is missing, truncated, of another layout version or machine,
    or holds out-of-range values."""


def _columns(capacity: int, n_events: int) -> tuple[dict[str, tuple[np.dtype[Any], tuple[int, ...], int]], int]:
    """Column name -> (dtype, shape, offset), and the total segment size."""
    offset = HEADER_SIZE
    out = {}
    for name, (dtype, shape) in table_layout(capacity, n_events).items():
        out[name] = (dtype, shape, offset)
        size = dtype.itemsize * int(np.prod(shape))
        offset += (size + _ALIGN - 1) // _ALIGN * _ALIGN
    return out, offset


def _views(buf: Any, capacity: int, n_events: int) -> dict[str, np.ndarray]:
    cols, _ = _columns(capacity, n_events)
    return {name: np.frombuffer(buf, dtype, int(np.prod(shape)), offset).reshape(shape)
            for name, (dtype, shape, offset) in cols.items()}


class SharedStreamTable(StreamTable):
    """A :class:`StreamTable` whose arrays live in the named shared-memory segment ``name``.

    The segment is created with owner-only permissions (mode 0600) and removed by :meth:`close`
    (also on ``with``-exit). Call :meth:`publish` from the duty cycle to refresh the heartbeat and
    the unhandled total readers see; dispatching itself needs nothing extra.

    Raises:
        FileExistsError: a segment with this name exists.
    """

    def __init__(self, name: str, capacity: int, drain_on_producer_loss: bool = False) -> None:
        machine = stream_machine(drain_on_producer_loss)
        cap = int(capacity) if isinstance(capacity, int) and not isinstance(capacity, bool) else 0
        if cap <= 0 or cap > 2**31 - 1:
            raise ValueError(f"capacity must be between 1 and {2**31 - 1}, got {capacity!r}")
        if not isinstance(name, str) or not name or "/" in name or len(name) > 200:
            raise ValueError(f"segment name must be a non-empty str without '/', got {name!r}")
        _, size = _columns(cap, machine.n_events)
        old_umask = os.umask(0o077)  # owner-only, whatever the process umask
        try:
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        finally:
            os.umask(old_umask)
        self.name = name
        self._closed = False
        buf = self._shm.buf
        assert buf is not None  # a freshly created segment is mapped
        self._buf: memoryview = buf
        try:
            super().__init__(cap, drain_on_producer_loss,
                             arrays=_views(buf, cap, machine.n_events))
            self._publish_count = 0
            self._write_header(machine, cap)
        except BaseException:
            self._shm.unlink()
            self._detach_mapping()
            raise

    def _write_header(self, machine: CompiledMachine, capacity: int) -> None:
        name = machine.name.encode("ascii")[:32]
        _HEADER.pack_into(self._buf, 0, MAGIC, LAYOUT_VERSION, HEADER_SIZE, capacity,
                          machine.n_states, machine.n_events, machine.fingerprint.encode("ascii"),
                          os.getpid(), time.time_ns(), self.unhandled_total, 0, name, 0)

    def publish(self) -> None:
        """Refresh the header: heartbeat (wall clock, ns), unhandled total, publish count."""
        if self._closed:
            raise SharedTableError(f"shared table {self.name!r} is closed")
        self._publish_count += 1
        struct.pack_into("<qQQ", self._buf, _OFF_HEARTBEAT, time.time_ns(), self.unhandled_total,
                         self._publish_count)

    def close(self) -> None:
        """Mark the segment closed for readers and remove it (idempotent). The table must not be
        used afterwards."""
        if self._closed:
            return
        self._closed = True
        struct.pack_into("<Q", self._buf, _OFF_CLOSED, 1)
        self._shm.unlink()
        self._detach_mapping()

    def _detach_mapping(self) -> None:
        # The engine's arrays are views of the mapping, so it cannot be unmapped while the table
        # lives. Keep it with the table (it is unmapped when both are garbage) and take it away
        # from SharedMemory, whose close()/__del__ would fail on the exported views.
        self._mapping = (self._shm._buf, self._shm._mmap)  # type: ignore[attr-defined]
        self._shm._buf = None  # type: ignore[attr-defined]
        self._shm._mmap = None  # type: ignore[attr-defined]

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()  # an owner that forgot close() still removes its segment

    def __enter__(self) -> SharedStreamTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TableReader:
    """A read-only view of a shared table (from :func:`open_readonly`)."""

    def __init__(self, name: str, path: str, mm: mmap.mmap, header: tuple[Any, ...],
                 machine: CompiledMachine) -> None:
        self.name = name
        self.path = path
        self._mm = mm
        self.machine = machine
        self.capacity = int(header[3])
        views = _views(mm, self.capacity, machine.n_events)
        self.states: np.ndarray = views["states"]
        self.unhandled: np.ndarray = views["unhandled"]
        self._counts = views["counts"]
        self._transitions = views["transitions"]

    def _field(self, fmt: str, offset: int) -> Any:
        return struct.unpack_from(fmt, self._mm, offset)[0]

    @property
    def writer_pid(self) -> int:
        """Process id of the writer."""
        return int(self._field("<Q", _OFF_PID))

    @property
    def heartbeat_ns(self) -> int:
        """Wall-clock time (ns) of the writer's last publish()."""
        return int(self._field("<q", _OFF_HEARTBEAT))

    @property
    def unhandled_total(self) -> int:
        """Unhandled events as of the writer's last publish()."""
        return int(self._field("<Q", _OFF_UNHANDLED))

    @property
    def publish_count(self) -> int:
        """How many times the writer published."""
        return int(self._field("<Q", _OFF_PUBLISHED))

    @property
    def closed(self) -> bool:
        """True once the writer closed the table."""
        return bool(self._field("<Q", _OFF_CLOSED))

    def writer_alive(self) -> bool:
        """True if the writer process still exists."""
        try:
            os.kill(self.writer_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stale(self, max_age_ns: int, now_ns: int | None = None) -> bool:
        """True if the writer closed, died, or has not published for ``max_age_ns``."""
        now = time.time_ns() if now_ns is None else now_ns
        return self.closed or not self.writer_alive() or now - self.heartbeat_ns > max_age_ns

    def count(self, state: object) -> int:
        """Slots in ``state`` (descendants included), from the writer's occupancy counters."""
        code = self.machine.state_code(state)
        return int(sum(int(self._counts[leaf]) for leaf in self.machine.leaves_under[code]))

    def slots_in(self, state: object) -> np.ndarray:
        """Slots whose state is ``state`` or a descendant (from a snapshot of the state array)."""
        code = self.machine.state_code(state)
        states = self.states.copy()
        return np.flatnonzero(np.isin(states, self.machine.leaves_under[code]))

    def stats(self) -> dict[str, Any]:
        """What the reader sees, as plain data (like :meth:`MachineTable.stats`)."""
        m = self.machine
        trans = self._transitions[:m.n_states].copy()
        return {
            "name": self.name, "machine": m.name, "capacity": self.capacity,
            "writer_pid": self.writer_pid, "writer_alive": self.writer_alive(),
            "heartbeat_ns": self.heartbeat_ns, "publish_count": self.publish_count,
            "closed": self.closed,
            "occupancy": {m.state_names[s]: self.count(s) for s in range(m.n_states)},
            "unhandled_total": self.unhandled_total,
            "transitions": {f"{m.state_names[s]}/{m.event_names[e]}": int(trans[s, e])
                            for s, e in zip(*np.nonzero(trans))},
        }

    def close(self) -> None:
        """Unmap the segment (the views become invalid)."""
        self.states = self.unhandled = self._counts = self._transitions = np.zeros(0)
        try:
            self._mm.close()
        except BufferError:
            pass

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_readonly(name: str) -> TableReader:
    """Attach read-only to the shared table ``name`` created by :class:`SharedStreamTable`.

    Raises:
        FileNotFoundError: no such segment.
        SharedTableError: truncated segment, wrong magic or layout version, unknown machine, or
            sizes that do not fit the segment.
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"segment name must be a non-empty str without '/', got {name!r}")
    path = os.path.join(_SHM_DIR, name)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise SharedTableError(f"segment {name!r} is truncated: {size} bytes, header needs {HEADER_SIZE}")
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        header = _HEADER.unpack_from(mm, 0)
        magic, version, header_size, capacity, n_states, n_events, fingerprint = header[:7]
        if magic != MAGIC:
            raise SharedTableError(f"segment {name!r} is not a streamhsm table (magic {magic!r})")
        if version != LAYOUT_VERSION or header_size != HEADER_SIZE:
            raise SharedTableError(
                f"segment {name!r} has layout version {version} (header {header_size} bytes); "
                f"this reader understands version {LAYOUT_VERSION}")
        fp = fingerprint.decode("ascii", "replace")
        machine = next((m for m in (stream_machine(False), stream_machine(True))
                        if m.fingerprint == fp), None)
        if machine is None or machine.n_states != n_states or machine.n_events != n_events:
            raise SharedTableError(f"segment {name!r} is of an unknown machine (fingerprint {fp!r})")
        if not 0 < capacity < 2**31:
            raise SharedTableError(f"segment {name!r} has capacity {capacity} out of range")
        _, need = _columns(int(capacity), int(n_events))
        if size < need:
            raise SharedTableError(f"segment {name!r} is truncated: {size} bytes, needs {need}")
        return TableReader(name, path, mm, header, machine)
    except BaseException:
        mm.close()
        raise


def leaf_names(reader: TableReader) -> list[str]:
    """The leaf state names of the reader's machine."""
    m = reader.machine
    return [m.state_names[s] for s in range(m.n_states) if m.is_leaf[s] and s != 0]

