"""Live tables in named shared memory, readable by another process while the driver runs.

Like Aeron's counters file read by AeronStat: the writer's :class:`SharedStreamTable` (or
:class:`SharedMachineTable`, of any registered machine) keeps its arrays (state codes, flag
bitmasks, unhandled counters, occupancy, transition counts, free list; history records; for a
machine with timers, its clock and deadline columns, see ``streamhsm._shm_timers``) in a
named POSIX shared-memory segment (the file ``/dev/shm/NAME``) behind a versioned header;
:func:`open_readonly` validates the header and returns a :class:`TableReader`, which copies what it
reads with ``pread`` (the segment is never mapped in the reader, so a writer or anyone else
truncating, growing or rewriting the segment cannot crash it: a read that no longer fits raises
:class:`SharedTableError`). ``python -m streamhsm stat NAME`` prints what a reader sees.

Segment names (:func:`check_segment_name`): 1 to 200 characters, not ``.`` or ``..``, no ``/``
and no NUL. Only the process that created a segment removes it (:meth:`SharedStreamTable.close`,
or the finaliser); a forked child never does. A writer killed with SIGKILL leaves its segment
behind: :func:`~streamhsm.shm.reclaim` (or ``SharedStreamTable(..., reclaim_stale=True)``, or
``python -m streamhsm stat NAME --reclaim``) removes it once its writer is dead, never over a
live writer.

Creation never exposes a half-built segment and never crashes on a full /dev/shm: the file is
created without a name (``O_TMPFILE``; a hidden temporary name where that is unavailable), every
page is reserved with ``posix_fallocate`` (a /dev/shm without room is an ``OSError`` ENOSPC
naming the size and the free space), the header and columns are written, and only then is it
linked to ``NAME`` (a link fails if the name exists). The writer holds a shared ``flock`` on the
segment from creation to close; :func:`reclaim` takes it exclusively (without waiting) before it
checks the header and unlinks, so it can never remove a segment whose writer is running.

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
    120  history owners   uint32   columns of history records (0 without history)
    124  timers           uint32   timer columns (0 without timers; layout 4)
    128  columns          64-byte aligned, in streamhsm.compiler.table_layout order: counts,
                          transitions, unhandled, free, flags, states, then history (one row
                          per owner) or, with timers, deadlines (int64, one row per timer,
                          NEVER where not armed), clock (int64: the table's clock, a lower
                          bound of the armed deadlines), timer_blocks, skipped

A reader also reads layout 3 (streamhsm before timers; bytes 124..128 unused), as a table
without timers; every other version is refused (by :func:`open_readonly` and :func:`reclaim`).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import secrets
import shlex
import struct
import threading
import time
from typing import Any

import numpy as np

from ._files import open_regular
from ._files import pread_exact as _pread
from ._limits import MAX_CAPACITY
from ._observe import TableObserver
from ._pids import pid_alive as _pid_alive
from ._shm_timers import TimerReadout
from ._table import MachineTable
from .compiler import CompiledMachine, table_layout
from .errors import StreamHsmError
from .lifecycle import StreamTable, stream_machine
from .registry import by_fingerprint

__all__ = ["HEADER_SIZE", "LAYOUT_VERSION", "MAX_NAME_LENGTH", "READABLE_VERSIONS",
           "SharedMachineTable", "SharedStreamTable", "SharedTableError", "TableReader",
           "check_segment_name", "leaf_names", "open_readonly", "reclaim"]

MAGIC = b"STRMHSM\x00"
#: Version of the segment layout below; a reader rejects a segment of another version.
LAYOUT_VERSION = 4  # 2: a per-slot flag column; 3: history owners in the header and one
#                     record column per owner (``history``, at the end); 4: the number of timers
#                     in the header and the timer columns (``deadlines``, ``clock``, ...) at the end
#: Layout versions a reader opens (3: as a table without timers) and :func:`reclaim` removes.
READABLE_VERSIONS = (3, LAYOUT_VERSION)
#: Bytes of the segment header; the first column starts after it.
HEADER_SIZE = 128
#: Longest segment name accepted (characters; also at most 255 bytes encoded).
MAX_NAME_LENGTH = 200
_HEADER = struct.Struct("<8sIIQII16sQqQQ32sQII")
# offsets of the fields updated after creation (see the layout above)
_OFF_PID, _OFF_HEARTBEAT, _OFF_UNHANDLED, _OFF_PUBLISHED, _OFF_CLOSED = 48, 56, 64, 72, 112
_OFF_NAME = 80
_OFF_OWNERS = 120  # then the number of timers (uint32) up to HEADER_SIZE
_ALIGN = 64
_SHM_DIR = "/dev/shm"
#: Create segments unnamed (O_TMPFILE) and link them into place; else under a hidden temporary
#: name (a test switches this off to exercise that path).
_USE_TMPFILE = True


class SharedTableError(StreamHsmError, ValueError):
    """A shared-memory table segment is missing, truncated, of another layout version or machine,
    not a regular file, changed under a reader, holds out-of-range values, or may not be removed
    (:func:`~streamhsm.shm.reclaim` over a live writer)."""


def check_segment_name(name: object) -> str:
    """Return ``name`` if it is a valid segment name, else raise ``ValueError`` naming it.

    Valid: a str of 1 to :data:`MAX_NAME_LENGTH` characters (at most 255 bytes encoded), not
    ``.`` or ``..``, without ``/`` or NUL. The segment is the file ``/dev/shm/NAME``.
    """
    ok = (isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and name not in (".", "..")
          and "/" not in name and "\x00" not in name)
    if ok:
        assert isinstance(name, str)
        try:
            ok = len(os.fsencode(name)) <= 255
        except UnicodeError:
            ok = False
    if not ok:
        raise ValueError(f"segment name must be a str of 1 to {MAX_NAME_LENGTH} characters, not "
                         f"'.' or '..', without '/' or NUL, got {name!r}")
    assert isinstance(name, str)
    return name


def _segment_path(name: object) -> str:
    return os.path.join(_SHM_DIR, check_segment_name(name))


def _columns(capacity: int, n_events: int, n_owners: int = 0, n_timers: int = 0,
             ) -> tuple[dict[str, tuple[np.dtype[Any], tuple[int, ...], int]], int]:
    """Column name -> (dtype, shape, offset), and the total segment size."""
    offset = HEADER_SIZE
    out = {}
    for name, (dtype, shape) in table_layout(capacity, n_events, n_owners, n_timers).items():
        out[name] = (dtype, shape, offset)
        size = dtype.itemsize * int(np.prod(shape))
        offset += (size + _ALIGN - 1) // _ALIGN * _ALIGN
    return out, offset


def _views(buf: Any, capacity: int, n_events: int, n_owners: int = 0,
           n_timers: int = 0) -> dict[str, np.ndarray]:
    cols, _ = _columns(capacity, n_events, n_owners, n_timers)
    return {name: np.frombuffer(buf, dtype, int(np.prod(shape)), offset).reshape(shape)
            for name, (dtype, shape, offset) in cols.items()}


def _open_segment(path: str, name: str) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only without blocking, only if it is a regular file (never follows a
    symlink, never opens a FIFO or device). FileNotFoundError if absent, else SharedTableError."""
    try:
        return open_regular(path, f"segment {name!r}", SharedTableError, follow_symlinks=False)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SharedTableError(f"segment {name!r} cannot be opened: {exc}") from exc


def _free_bytes() -> int:
    """Bytes that can still be allocated in the segment directory (``os.statvfs``)."""
    st = os.statvfs(_SHM_DIR)
    return st.f_bavail * st.f_frsize


def _no_space(name: str, size: int, free: int) -> OSError:
    return OSError(errno.ENOSPC, f"shared segment {name!r} needs {size} bytes ({size / 2**20:.1f} "
                   f"MiB) but {_SHM_DIR} has {free} bytes ({free / 2**20:.1f} MiB) free; give "
                   f"{_SHM_DIR} more room (Docker: --shm-size) or make the table smaller",
                   os.path.join(_SHM_DIR, name))


def _reserve(fd: int, size: int, name: str) -> None:
    """Allocate every page of the segment now (``posix_fallocate``), so that a full /dev/shm is an
    ``OSError`` (ENOSPC) here instead of a SIGBUS at the first write to a page that has none."""
    free = _free_bytes()
    if size > free:
        raise _no_space(name, size, free)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG):
            raise _no_space(name, size, _free_bytes()) from None
        raise


def _new_file() -> tuple[int, str | None]:
    """A new empty file in the segment directory that has no segment's name: unnamed
    (``O_TMPFILE``: it vanishes if the process dies before linking it) where the system allows,
    else a hidden temporary name. Returns the descriptor and the temporary path (None if
    unnamed)."""
    flags = os.O_RDWR | os.O_CLOEXEC
    if _USE_TMPFILE and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):
        try:
            return os.open(_SHM_DIR, flags | os.O_TMPFILE, 0o600), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    while True:
        tmp = os.path.join(_SHM_DIR, f".streamhsm-new-{os.getpid()}-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), tmp
        except FileExistsError:
            continue


def _create_segment(name: str, size: int) -> tuple[int, mmap.mmap, str | None]:
    """A new segment of ``size`` bytes, not yet visible under any segment name: created with mode
    0600 (never touching the process umask), locked (``flock`` LOCK_SH, held by the writer for its
    lifetime: :func:`reclaim` needs LOCK_EX), every page reserved, mapped read-write. Returns
    the descriptor, the mapping and its temporary path (None if unnamed); :func:`_link` then
    gives it its name."""
    fd, tmp = _new_file()
    try:
        os.fchmod(fd, 0o600)  # exactly owner-only, whatever the umask removed
        fcntl.flock(fd, fcntl.LOCK_SH)
        _reserve(fd, size, name)
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        try:
            _discard(tmp)
        finally:
            os.close(fd)
        raise
    return fd, mm, tmp


def _discard(tmp: str | None) -> None:
    """Remove the temporary name of a segment being created, if it has one (and it is left)."""
    if tmp is not None:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _exists_error(name: str, path: str) -> FileExistsError:
    return FileExistsError(
        errno.EEXIST, f"shared segment {name!r} exists: a live writer uses it, or one died "
        f"without closing it; once its writer is dead, remove it with `streamhsm stat "
        f"{shlex.quote(name)} --reclaim` (in Python: streamhsm.shm.reclaim(name), or "
        "reclaim_stale=True)", path)


def _link(fd: int, tmp: str | None, name: str, reclaim_stale: bool) -> None:
    """Give the complete segment (header written) its name, failing if the name exists (a link
    never replaces a file); with ``reclaim_stale`` a leftover is reclaimed first. The temporary
    name, if any, is removed in every case."""
    src = f"/proc/self/fd/{fd}" if tmp is None else tmp
    try:
        dir_fd = os.open(_SHM_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for attempt in (1, 2):
                try:  # with dst_dir_fd, os.link is linkat(AT_SYMLINK_FOLLOW): /proc/self/fd/N works
                    os.link(src, name, dst_dir_fd=dir_fd, follow_symlinks=True)
                    return
                except FileExistsError:
                    if not reclaim_stale or attempt == 2:
                        raise _exists_error(name, os.path.join(_SHM_DIR, name)) from None
                    reclaim(name)  # SharedTableError over a live writer
        finally:
            os.close(dir_fd)
    finally:
        _discard(tmp)


def _unlink_if(path: str, ident: tuple[int, int]) -> None:
    """Remove ``path`` if it is still the file ``ident`` (not one that replaced it)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) == ident:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _mark_closed(mm: mmap.mmap) -> None:
    struct.pack_into("<Q", mm, _OFF_CLOSED, 1)


class SharedMachineTable(MachineTable):
    """A :class:`~streamhsm.MachineTable` of ``machine`` whose arrays live in the named
    shared-memory segment ``name`` (``capacity`` slots; ``now_ns``: the clock of a machine with
    timers, as for ``MachineTable``). The machine must be registered
    (``streamhsm.registry.register``): a reader finds it by the fingerprint in the header.
    A machine with timers keeps its clock and deadlines in the segment too, so a reader sees
    what ``advance`` and dispatching do to them (:attr:`TableReader.now_ns`,
    :meth:`TableReader.deadlines`, :meth:`TableReader.next_deadlines`).

    The segment ``/dev/shm/NAME`` is created with mode 0600 (set with ``fchmod``; the process
    umask is never changed) and every page reserved (``posix_fallocate``: a /dev/shm too small
    for it is an ``OSError`` here, never a SIGBUS later), without a name (``O_TMPFILE``, or a
    hidden temporary name); once its header and columns are written it is linked to ``NAME``,
    which fails if that name exists. The writer holds a shared ``flock`` on it for its lifetime,
    which :func:`~streamhsm.shm.reclaim` respects. It is removed by :meth:`close` (also on
    ``with``-exit, and by the finaliser if the owner forgets). Only the creating process removes
    it: a forked child that closes or drops the table leaves the parent's segment alone. Call
    :meth:`publish` from the duty cycle to refresh the heartbeat and the unhandled total readers
    see; dispatching itself needs nothing extra.

    A writer killed without closing (SIGKILL) leaves its segment behind, and creating it again
    raises ``FileExistsError`` saying to run ``streamhsm stat NAME --reclaim``. Pass
    ``reclaim_stale=True`` to remove such a leftover first (see :func:`~streamhsm.shm.reclaim`:
    only when its writer is dead or it is marked closed).

    Raises:
        TypeError: ``machine`` is not a ``CompiledMachine``.
        ValueError: an invalid name (see :func:`check_segment_name`) or capacity, a machine
            that is not registered, or a bad ``now_ns`` (as for ``MachineTable``; nothing is
            left behind).
        FileExistsError: a segment with this name exists (and was not reclaimed).
        OSError: ``errno.ENOSPC`` when the segment does not fit in /dev/shm (the message names
            its size and the free space; nothing is left behind), or another creation failure.
        SharedTableError: ``reclaim_stale=True`` but the existing segment has a live writer or
            is not a streamhsm table.
    """

    def __init__(self, name: str, machine: CompiledMachine, capacity: int, *, now_ns: int = 0,
                 reclaim_stale: bool = False) -> None:
        self._closed = True  # until the segment exists (the finaliser then does nothing)
        if not isinstance(machine, CompiledMachine):
            raise TypeError(f"machine must be a CompiledMachine, got {type(machine).__name__}")
        found = by_fingerprint(machine.fingerprint)
        if found is None:
            raise ValueError(f"machine {machine.name!r} (fingerprint {machine.fingerprint}) is "
                             "not registered: register it (streamhsm.registry.register) so that "
                             "readers of the segment can find it")
        cap = int(capacity) if isinstance(capacity, int) and not isinstance(capacity, bool) else 0
        if cap <= 0 or cap > MAX_CAPACITY:
            raise ValueError(f"capacity must be between 1 and {MAX_CAPACITY}, got {capacity!r}")
        path = _segment_path(name)
        n_owners, n_timers = machine.engine_tables.n_owners, _n_timers(machine)
        _, size = _columns(cap, machine.n_events, n_owners, n_timers)
        if os.path.lexists(path):  # fail fast (the link below is what decides)
            if not reclaim_stale:
                raise _exists_error(name, path)
            reclaim(name)  # SharedTableError over a live writer
        fd, mm, tmp = _create_segment(name, size)
        self.name = name
        self.path = path
        self._fd = fd
        self._mm = mm
        self._owner_pid = os.getpid()
        try:
            # the header and the columns first, then the name: a reader or reclaim never sees a
            # segment whose header is incomplete, and a failure leaves nothing behind
            self._publish_count = 0
            self._write_header(machine, cap)
            MachineTable.__init__(self, machine, cap, now_ns=now_ns, arrays=_views(
                mm, cap, machine.n_events, n_owners, n_timers))
            _link(fd, tmp, name, reclaim_stale)
        except BaseException:
            try:
                _discard(tmp)
            finally:
                self._release_mapping()
            raise
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino)
        self._closed = False

    @property
    def owner_pid(self) -> int:
        """Process id of the creator, the only process that removes the segment."""
        return self._owner_pid

    def _write_header(self, machine: CompiledMachine, capacity: int) -> None:
        name = machine.name.encode("ascii")[:32]
        _HEADER.pack_into(self._mm, 0, MAGIC, LAYOUT_VERSION, HEADER_SIZE, capacity,
                          machine.n_states, machine.n_events, machine.fingerprint.encode("ascii"),
                          os.getpid(), time.time_ns(), 0, 0, name, 0,
                          machine.engine_tables.n_owners, _n_timers(machine))

    def publish(self) -> None:
        """Refresh the header: heartbeat (wall clock, ns), unhandled total, publish count."""
        if self._closed:
            raise SharedTableError(f"shared table {self.name!r} is closed")
        self._publish_count += 1
        struct.pack_into("<qQQ", self._mm, _OFF_HEARTBEAT, time.time_ns(), self.unhandled_total,
                         self._publish_count)

    def close(self) -> None:
        """Mark the segment closed for readers and remove it; idempotent, and a second call is a
        no-op. In a process other than the creator (a forked child) only this process's mapping
        is dropped: the segment, and its closed flag, are left to the creator. Each step runs
        even if an earlier one raised. The table must not be used afterwards."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            if os.getpid() == self._owner_pid:
                try:
                    if os.fstat(self._fd).st_size >= HEADER_SIZE:  # else writing would fault
                        _mark_closed(self._mm)
                finally:
                    _unlink_if(self.path, self._ident)
        finally:
            self._release_mapping()

    def _release_mapping(self) -> None:
        # The engine's arrays are views of the mapping, so it cannot be unmapped while the table
        # lives; it is unmapped when both are garbage. Unmap now if nothing exports it.
        try:
            os.close(self._fd)
        finally:
            try:
                self._mm.close()
            except BufferError:
                pass

    def __del__(self) -> None:
        self.close()  # an owner that forgot close() still removes its segment; a child never

    def __enter__(self) -> SharedMachineTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SharedStreamTable(SharedMachineTable, StreamTable):
    """A :class:`StreamTable` (``capacity`` slots, the ``drain_on_producer_loss`` policy or
    not) whose arrays live in the named shared-memory segment ``name``: a
    :class:`SharedMachineTable` of the stream lifecycle (same segment, creation, closing and
    errors; ``TypeError`` for a ``drain_on_producer_loss`` that is not a bool)."""

    def __init__(self, name: str, capacity: int, drain_on_producer_loss: bool = False, *,
                 reclaim_stale: bool = False) -> None:
        self._closed = True  # the finaliser does nothing if the policy is refused
        super().__init__(name, stream_machine(drain_on_producer_loss), capacity,
                         reclaim_stale=reclaim_stale)

    def __enter__(self) -> SharedStreamTable:
        return self


def _n_timers(machine: CompiledMachine) -> int:
    return 0 if machine.timers is None else int(machine.timers.n_timers)


def _fixed_part(head: bytes) -> bytes:
    """The header fields a writer never changes after creation (all but pid, heartbeat, totals
    and the closed flag)."""
    return head[:_OFF_PID] + head[_OFF_NAME:_OFF_CLOSED] + head[_OFF_OWNERS:HEADER_SIZE]


class TableReader(TimerReadout):
    """A read-only view of a shared table (from :func:`open_readonly`).

    Every accessor reads the segment afresh with ``pread`` into private memory: ``states`` and
    ``unhandled`` are new read-only copies on each access (their flags cannot be set writeable),
    not views of the segment; so are a machine with timers' clock (:attr:`now_ns`) and
    deadlines (:meth:`deadlines`, :meth:`next_deadlines`). A segment that shrank, or whose
    header no longer describes the table that was opened, raises :class:`SharedTableError`
    (naming the segment and sizes); it never crashes the reader. The reader keeps the file it
    opened: if the name is removed or replaced, it goes on reading the old segment (see
    :attr:`unlinked`).
    """

    def __init__(self, name: str, path: str, fd: int, st: os.stat_result, header: bytes,
                 machine: CompiledMachine) -> None:
        self.name = name
        self.path = path
        self._fd_lock = threading.Lock()  # close() never races a read onto a reused descriptor
        self._fd = fd
        self._ident = (st.st_dev, st.st_ino)
        self._opened_size = st.st_size
        self.machine = machine
        fields = _HEADER.unpack_from(header)
        self.capacity = int(fields[3])
        self._fixed = _fixed_part(header)
        self._cols, self._size = _columns(self.capacity, machine.n_events, int(fields[13]),
                                          _n_timers(machine))

    def _read(self, offset: int, n: int, what: str) -> bytes:
        with self._fd_lock:
            fd = self._fd
            if fd < 0:
                raise SharedTableError(f"reader of segment {self.name!r} is closed")
            try:
                data = _pread(fd, n, offset)
                now = f"{os.fstat(fd).st_size} bytes" if len(data) != n else ""
            except OSError as exc:
                raise SharedTableError(
                    f"segment {self.name!r}: reading {what} failed: {exc}") from exc
        if len(data) != n:
            raise SharedTableError(
                f"segment {self.name!r} shrank: {what} needs bytes {offset}..{offset + n}, the "
                f"segment now has {now} ({self._opened_size} when opened, table needs "
                f"{self._size})")
        return data

    def _header(self) -> tuple[Any, ...]:
        head = self._read(0, HEADER_SIZE, "the header")
        if _fixed_part(head) != self._fixed:
            raise SharedTableError(
                f"segment {self.name!r} changed under the reader: its header no longer describes "
                f"the table opened (capacity {self.capacity}, machine {self.machine.name!r})")
        return _HEADER.unpack_from(head)

    def _column(self, name: str) -> np.ndarray:
        dtype, shape, offset = self._cols[name]
        data = self._read(offset, dtype.itemsize * int(np.prod(shape)), f"column {name!r}")
        return np.frombuffer(data, dtype).reshape(shape)  # read-only: its base is bytes

    @property
    def states(self) -> np.ndarray:
        """A fresh read-only copy of the state codes (uint8, one per slot)."""
        return self._column("states")

    @property
    def flags(self) -> np.ndarray:
        """A fresh read-only copy of the per-slot flag bitmasks (uint8, one per slot)."""
        return self._column("flags")

    @property
    def unhandled(self) -> np.ndarray:
        """A fresh read-only copy of the per-slot unhandled counters (uint64)."""
        return self._column("unhandled")

    def history(self, owner: object) -> np.ndarray:
        """A fresh read-only copy of the history records of ``owner`` (uint8 leaf codes, one
        per slot, ``FREE_SLOT`` where there is none); ``ValueError`` if ``owner`` keeps no
        record (see ``machine.history_owners``)."""
        i = self.machine.history_owner(owner)
        records: np.ndarray = self._column("history")[i]
        return records

    @property
    def writer_pid(self) -> int:
        """Process id of the writer, as its header says (any uint64)."""
        return int(self._header()[7])

    @property
    def heartbeat_ns(self) -> int:
        """Wall-clock time (ns) of the writer's last publish()."""
        return int(self._header()[8])

    @property
    def unhandled_total(self) -> int:
        """Unhandled events as of the writer's last publish()."""
        return int(self._header()[9])

    @property
    def publish_count(self) -> int:
        """How many times the writer published."""
        return int(self._header()[10])

    @property
    def closed(self) -> bool:
        """True once the writer closed the table."""
        return bool(self._header()[12])

    @property
    def unlinked(self) -> bool:
        """True once the segment name no longer refers to the segment this reader holds (it was
        removed, or replaced by another file)."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def writer_alive(self) -> bool:
        """True if the writer process still exists. A pid of 0, or above the kernel's pid_max,
        is never a live writer."""
        return _pid_alive(self.writer_pid)

    def stale(self, max_age_ns: int, now_ns: int | None = None) -> bool:
        """True if the writer closed, died, or has not published for ``max_age_ns``."""
        h = self._header()
        now = time.time_ns() if now_ns is None else now_ns
        return bool(h[12]) or not _pid_alive(int(h[7])) or now - int(h[8]) > max_age_ns

    def _observer(self, with_states: bool = False) -> TableObserver:
        """The engine's one implementation of the table queries, on fresh copies of the columns
        (the state array only when a query reads it: it is the large one)."""
        states = self.states if with_states else np.zeros(0, np.uint8)
        return TableObserver(self.machine, states, self._column("counts"),
                             self._column("transitions"))

    def count(self, state: object) -> int:
        """Slots in ``state`` (descendants included), from the writer's occupancy counters."""
        return self._observer().count(state)

    def slots_in(self, state: object) -> np.ndarray:
        """Slots whose state is ``state`` or a descendant (from a snapshot of the state array)."""
        return self._observer(with_states=True).slots_in(state)

    def stats(self) -> dict[str, Any]:
        """What the reader sees, as plain data (like :meth:`MachineTable.stats`); for a machine
        with timers also ``now_ns`` (the writer's clock) and ``next_deadlines`` (the earliest
        five, see :meth:`next_deadlines`)."""
        m = self.machine
        h = self._header()
        pid = int(h[7])
        return {
            "name": self.name, "machine": m.name, "capacity": self.capacity,
            "writer_pid": pid, "writer_alive": _pid_alive(pid),
            "heartbeat_ns": int(h[8]), "publish_count": int(h[10]),
            "closed": bool(h[12]), "unhandled_total": int(h[9]),
            **self._observer().summary(),
            **({} if m.timers is None else {"now_ns": self.now_ns,
                                             "next_deadlines": self.next_deadlines()}),
        }

    def close(self) -> None:
        """Release the segment (idempotent); accessors then raise :class:`SharedTableError`."""
        with self._fd_lock:
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_readonly(name: str) -> TableReader:
    """Attach read-only to the shared table ``name`` created by :class:`SharedStreamTable`.

    Opens only a regular file, never blocking and never following a symlink.

    Raises:
        ValueError: an invalid name (see :func:`check_segment_name`).
        FileNotFoundError: no such segment.
        SharedTableError: not a regular file (FIFO, directory, device, symlink), truncated
            segment, wrong magic or layout version, unknown machine, or sizes that do not fit.
    """
    path = _segment_path(name)
    fd, st = _open_segment(path, name)
    try:
        head = _pread(fd, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            raise SharedTableError(
                f"segment {name!r} is truncated: {len(head)} bytes, header needs {HEADER_SIZE}")
        header = _HEADER.unpack_from(head)
        magic, version, header_size, capacity, n_states, n_events, fingerprint = header[:7]
        if magic != MAGIC:
            raise SharedTableError(f"segment {name!r} is not a streamhsm table (magic {magic!r})")
        if version not in READABLE_VERSIONS or header_size != HEADER_SIZE:
            raise SharedTableError(
                f"segment {name!r} has layout version {version} (header {header_size} bytes); "
                f"this reader understands versions {READABLE_VERSIONS}")
        fp = fingerprint.decode("ascii", "replace")
        found = by_fingerprint(fp)
        machine = None if found is None else found[2]
        if machine is None or machine.n_states != n_states or machine.n_events != n_events:
            raise SharedTableError(
                f"segment {name!r} is of an unknown machine (fingerprint {fp!r})")
        if not 0 < capacity <= MAX_CAPACITY:
            raise SharedTableError(f"segment {name!r} has capacity {capacity} out of range")
        n_owners = int(header[13])
        if n_owners != machine.engine_tables.n_owners:
            raise SharedTableError(f"segment {name!r} has {n_owners} history columns, its machine "
                                   f"{machine.name!r} {machine.engine_tables.n_owners}")
        n_timers = int(header[14]) if version > 3 else 0  # layout 3: no timers
        if n_timers != _n_timers(machine):
            raise SharedTableError(f"segment {name!r} has {n_timers} timer columns, its machine "
                                   f"{machine.name!r} {_n_timers(machine)}")
        cols, need = _columns(int(capacity), int(n_events), n_owners, n_timers)
        size = os.fstat(fd).st_size
        if size < need:
            cut = next((f"column {c!r}" for c, (dt, shape, at) in cols.items()
                        if at + dt.itemsize * int(np.prod(shape)) > size), "its padding")
            raise SharedTableError(f"segment {name!r} is truncated: {size} bytes, needs {need} "
                                   f"({cut} does not fit)")
        return TableReader(name, path, fd, st, head, machine)
    except BaseException:
        os.close(fd)
        raise


def reclaim(name: str) -> bool:
    """Remove the segment ``name`` left by a writer that is gone; True if removed, False if there
    was no such segment.

    Removes it only if it is a streamhsm table of this layout that no process holds (its
    writer's ``flock``, taken with LOCK_EX|LOCK_NB here and held until the unlink, so a writer
    can never start or be checked halfway) and whose header says it was closed or whose writer
    process is dead (a pid of 0 or above pid_max counts as dead). Never removes a live writer's
    segment, nor a file that is not a streamhsm table. Call it before creating the table again
    (or pass ``reclaim_stale=True`` to :class:`SharedStreamTable`). A forked child that still
    holds an inherited table keeps the segment in use. If the writer's pid was reused by an
    unrelated process, it is reported alive: remove ``/dev/shm/NAME`` by hand once you know the
    writer is gone.

    Raises:
        ValueError: an invalid name.
        SharedTableError: the writer is alive (or a process still holds the segment), or the
            segment is not a regular file or not a streamhsm table of this layout version
            (nothing is removed).
    """
    path = _segment_path(name)
    try:
        fd, st = _open_segment(path, name)
    except FileNotFoundError:
        return False
    try:
        _reclaimable_header(fd, name)  # before the lock: never lock a file that is not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _reclaimable_header(fd, name)[0]
            who = (f"belongs to live writer pid {pid}" if _pid_alive(pid) else
                   f"is held by a live process (it has the writer lock), although its header's "
                   f"writer pid {pid} is not alive")
            raise SharedTableError(f"segment {name!r} {who}; not removing it") from None
        pid, closed = _reclaimable_header(fd, name)  # read again under the lock
        if not closed and _pid_alive(pid):
            raise SharedTableError(f"segment {name!r} belongs to live writer pid {pid}; not "
                                   "removing it")
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise SharedTableError(f"segment {name!r} was replaced while being reclaimed; not "
                                   "removing the new one")
        try:
            os.unlink(path)  # still under the lock: no writer of this file can be running
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)  # releases the lock


def _reclaimable_header(fd: int, name: str) -> tuple[int, bool]:
    """The writer pid and closed flag of a segment of this layout, else SharedTableError."""
    head = _pread(fd, HEADER_SIZE, 0)
    if len(head) < HEADER_SIZE or head[:8] != MAGIC:
        raise SharedTableError(f"segment {name!r} is not a streamhsm table ({len(head)} header "
                               f"bytes, magic {head[:8]!r}); not removing it")
    header = _HEADER.unpack_from(head)
    if header[1] not in READABLE_VERSIONS or header[2] != HEADER_SIZE:
        raise SharedTableError(f"segment {name!r} has layout version {header[1]}; this "
                               f"version (reading {READABLE_VERSIONS}) does not remove it")
    return int(header[7]), bool(header[12])


def leaf_names(reader: TableReader) -> list[str]:
    """The leaf state names of the reader's machine."""
    m = reader.machine
    return [m.state_names[s] for s in range(m.n_states) if m.is_leaf[s] and s != 0]
