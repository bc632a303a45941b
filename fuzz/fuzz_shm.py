"""Harness 2: ``open_readonly``, ``reclaim`` and the ``TableReader`` on mutated and resized
segments and on paths that are not regular files; creating segments in a small /dev/shm.

Input layout: ``[op: 1 byte][size: 4 bytes][segment bytes ...]``. The segment bytes are written
to a fresh file in ``/dev/shm`` with a unique name (or, for some ops, the path is made a FIFO, a
directory, a socket or a symlink to a valid segment instead), the segment is opened read-only,
then ``op`` changes it under the reader (truncate to ``size``, grow to ``size``, rewrite the
header), every accessor is called, and ``reclaim`` is tried on it. ``OP_CREATE`` instead creates a
``SharedStreamTable`` whose capacity comes from ``size``: where this process may mount (root), the
harness first moves itself into a private mount namespace whose /dev/shm is a 4 MiB tmpfs, so
most such tables do not fit. Seeds are real segments of small ``SharedStreamTable`` objects.

Accepted outcomes: ``SharedTableError``, ``OSError`` for file operations, a reader whose values
are consistent (``writer_alive()`` is False for pid 0, ``stale()`` never raises); ``reclaim``
never removes a path that is not a regular file; a table that does not fit is an ``OSError``
ENOSPC that leaves nothing in /dev/shm. A crash (SIGBUS), a hang (FIFO) or any other exception is
a finding.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import random
import socket
import stat
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from streamhsm.shm import (
    HEADER_SIZE,
    SharedStreamTable,
    SharedTableError,
    leaf_names,
    open_readonly,
    reclaim,
)

from common import EXTREME_INTS, Finding, byte_mutate, libfuzzer_bytes

NAME = "shm"
MAX_LEN = 1 << 15
_PREFIX = 5  # op + size

# ops applied after open_readonly (0: none); 6 to 9 replace the file before the open; 10 creates
OP_NONE, OP_TRUNCATE, OP_GROW, OP_REWRITE, OP_TRUNCATE_ZERO, OP_UNLINK, OP_FIFO, OP_DIR, \
    OP_SOCKET, OP_SYMLINK, OP_CREATE = range(11)
_N_OPS = 11
#: size of the private /dev/shm the harness mounts for OP_CREATE where it can
SMALL_SHM = 4 << 20
_small_shm: list[bool] = []  # [True] once mounted, [False] if impossible

_counter = itertools.count()
#: segment names start with this (ci/fuzz.sh sets a per-run prefix and removes what a crash left)
_NAME = os.environ.get("STREAMHSM_FUZZ_SHM_PREFIX", "streamhsm-fuzz")
#: header fields (offset, struct format) the structure-aware mutator targets
_FIELDS = ((8, "<I"), (12, "<I"), (16, "<Q"), (24, "<I"), (28, "<I"), (48, "<Q"), (56, "<q"),
           (64, "<Q"), (72, "<Q"), (112, "<Q"))


def _segment_bytes(cap: int, policy: bool, ops: int) -> bytes:
    name = f"{_NAME}-seed-{os.getpid()}-{next(_counter)}"
    with SharedStreamTable(name, cap, policy) as t:
        for i in range(ops):
            if len(t) < t.capacity:
                s = t.open()
                t.dispatch(s, i % 10)
        t.publish()
        with open(os.path.join("/dev/shm", name), "rb") as fh:
            return fh.read()


def seeds() -> list[bytes]:
    """Real segments (capacity 1, 5 and 40, both policies) under each op."""
    out = []
    for (cap, policy, ops), op in itertools.product(((1, False, 1), (5, True, 4), (40, False, 30)),
                                                   range(_N_OPS)):
        seg = _segment_bytes(cap, policy, ops)
        size = {OP_TRUNCATE: HEADER_SIZE + 8, OP_GROW: len(seg) + 4096,
                OP_CREATE: cap * 50_000}.get(op, len(seg) // 2)
        out.append(bytes([op]) + struct.pack("<I", size) + seg)
    return out


def _exercise(reader: Any) -> None:
    """Call every accessor; check what can be checked."""
    for attr in ("writer_pid", "heartbeat_ns", "unhandled_total", "publish_count", "closed",
                 "capacity", "name", "path", "machine"):
        getattr(reader, attr)
    np.asarray(reader.states).sum()
    np.asarray(reader.unhandled).sum()
    alive = reader.writer_alive()
    if reader.writer_pid == 0 and alive:
        raise Finding("writer pid 0 reported alive (os.kill(0, 0) signals our own group)")
    reader.stale(10**9)
    reader.stale(0, now_ns=2**63 - 1)
    machine = reader.machine
    for code in range(machine.n_states):
        reader.count(code)
        reader.slots_in(code)
    reader.stats()
    leaf_names(reader)


def _mount_small_shm() -> bool:
    """Move this process into a private mount namespace with a SMALL_SHM tmpfs on /dev/shm (Linux,
    root); False if that is impossible. Done once, before the first OP_CREATE."""
    if not _small_shm:
        ok = False
        if os.environ.get("STREAMHSM_FUZZ_SMALL_SHM", "1") != "0" and os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            ms_rec, ms_private = 1 << 14, 1 << 18
            ok = (libc.unshare(0x00020000) == 0  # CLONE_NEWNS
                  and libc.mount(None, b"/", None, ms_rec | ms_private, None) == 0
                  and libc.mount(b"streamhsm-fuzz", b"/dev/shm", b"tmpfs", 0,
                                 f"size={SMALL_SHM},mode=1777".encode()) == 0)
        _small_shm.append(ok)
    return _small_shm[0]


def _create(name: str, size: int) -> None:
    """A table of a capacity taken from ``size``: created and readable, or ENOSPC leaving
    nothing behind."""
    _mount_small_shm()
    capacity = size % (1 << 20) + 1
    before = set(os.listdir("/dev/shm"))
    try:
        table = SharedStreamTable(name, capacity)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        if "needs" not in str(exc) or " free" not in str(exc):
            raise Finding(f"ENOSPC without the size and the free space: {exc}") from None
        left = set(os.listdir("/dev/shm")) - before
        if left:
            raise Finding(f"a table that did not fit left {sorted(left)} behind") from None
        return
    with table, open_readonly(name) as reader:
        if reader.capacity != capacity:
            raise Finding(f"created capacity {capacity}, the reader sees {reader.capacity}")
        table.open()
        table.publish()
        _exercise(reader)
    if os.path.lexists(table.path):
        raise Finding("close() left the segment behind")


def _kind(path: str) -> int | None:
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def test_one_input(data: bytes) -> None:
    op = data[0] % _N_OPS if data else 0
    size = struct.unpack("<I", (data[1:_PREFIX] + b"\x00" * 4)[:4])[0] % (1 << 20)
    body = data[_PREFIX:]
    name = f"{_NAME}-{os.getpid()}-{next(_counter)}"
    path = os.path.join("/dev/shm", name)
    if op == OP_CREATE:
        try:
            _create(name, size)
        finally:
            if os.path.lexists(path):
                os.unlink(path)
        return
    keep: list[socket.socket] = []
    target = path + "-target"
    try:
        if op == OP_FIFO:
            os.mkfifo(path, 0o600)
        elif op == OP_DIR:
            os.mkdir(path, 0o700)
        elif op == OP_SOCKET:
            keep.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            keep[0].bind(path)
        else:
            fd = os.open(target if op == OP_SYMLINK else path,
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, body)
            finally:
                os.close(fd)
            if op == OP_SYMLINK:
                os.symlink(target, path)
        kind = _kind(path)
        try:
            reader = open_readonly(name)
        except (SharedTableError, OSError):
            reader = None
        if reader is not None:
            try:
                if op == OP_TRUNCATE:
                    os.truncate(path, size % (len(body) + 1))
                elif op == OP_TRUNCATE_ZERO:
                    os.truncate(path, 0)
                elif op == OP_GROW:
                    os.truncate(path, len(body) + size % 65536)
                elif op == OP_REWRITE:
                    with open(path, "r+b") as fh:
                        fh.write(body[::-1][:HEADER_SIZE])
                elif op == OP_UNLINK:
                    os.unlink(path)
                try:
                    _exercise(reader)
                except (SharedTableError, OSError):
                    pass  # a reader may report a segment that changed under it
            finally:
                reader.close()
        kind = _kind(path) if reader is not None else kind
        try:
            reclaim(name)
        except SharedTableError:
            pass
        if kind is not None and kind != stat.S_IFREG and _kind(path) != kind:
            raise Finding(f"reclaim removed a path that is not a regular file ({kind:o})")
    finally:
        for k in keep:
            k.close()
        for p in (path, target):
            if os.path.isdir(p) and not os.path.islink(p):
                os.rmdir(p)
            elif os.path.lexists(p):
                os.unlink(p)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator hook (``fuzz/run.py``)."""
    return mutate(data, max_size, random.Random(seed), libfuzzer_bytes)


def mutate(data: bytes, max_size: int, rng: random.Random,
           byte_mutator: Callable[[bytes, int, random.Random], bytes] = byte_mutate) -> bytes:
    """Header fields to extremes, another op or size, truncation, column fills; or bytes."""
    if len(data) < _PREFIX + HEADER_SIZE or rng.random() < 0.3:
        return byte_mutator(data, max_size, rng)
    out = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0:  # another op / size
        out[0] = rng.randrange(_N_OPS)
        out[1:_PREFIX] = struct.pack("<I", rng.choice([0, 1, HEADER_SIZE, HEADER_SIZE + 1,
                                                       len(data) // 2, 2**20 - 1]))
    elif choice <= 2:  # a header field to an extreme
        off, fmt = rng.choice(_FIELDS)
        bits = struct.calcsize(fmt) * 8
        value = rng.choice(EXTREME_INTS)
        value %= 1 << bits
        if fmt.endswith("q") and value >= 1 << 63:
            value -= 1 << 64
        struct.pack_into(fmt, out, _PREFIX + off, value)
    elif choice == 3:  # truncated or extended file
        n = rng.choice([HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 64, len(data) - 1,
                        len(data) + 64])
        out = out[:_PREFIX + n] if _PREFIX + n <= len(out) else out + bytes(_PREFIX + n - len(out))
    else:  # the column area to random bytes or 0xff
        start = _PREFIX + HEADER_SIZE
        if len(out) > start:
            fill = rng.choice([b"\xff", b"\x00", bytes([rng.randrange(256)])])
            a = rng.randrange(start, len(out))
            b = min(len(out), a + rng.randrange(1, 256))
            out[a:b] = fill * (b - a)
    return bytes(out[:max_size])

