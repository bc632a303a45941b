"""Opening a user-named path: regular files only, never blocking, reads bounded.

The one place that opens a path a caller names (snapshot files, shared-memory segments): every
loader goes through :func:`open_regular` (or :func:`read_regular`), so a FIFO, a device, a
directory or a socket is refused with an error naming the path and what it is, before anything is
read; opening never blocks (``O_NONBLOCK``, cleared once the file is known to be regular), and
what is read is bounded by the file's size as ``fstat`` reported it when it was opened. Savers
open through :func:`create_regular`: an existing FIFO, device, directory or socket (or a symlink to
one) is refused the same way, never opened for writing, never truncated.
"""

from __future__ import annotations

import fcntl
import os
import stat as _stat

__all__ = ["create_regular", "file_kind", "open_regular", "pread_exact", "read_regular"]

_READ_CHUNK = 1 << 30  # Linux returns at most ~2 GiB per read


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, for a message: ``"a FIFO"``, ``"a directory"``, ..."""
    for test, kind in ((_stat.S_ISREG, "a regular file"), (_stat.S_ISDIR, "a directory"),
                       (_stat.S_ISFIFO, "a FIFO"), (_stat.S_ISLNK, "a symlink"),
                       (_stat.S_ISSOCK, "a socket"), (_stat.S_ISCHR, "a character device"),
                       (_stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return f"a file of mode {mode:o}"


def open_regular(path: str, what: str, error: type[Exception], *,
                 follow_symlinks: bool = True) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only if it is a regular file; return the descriptor and its ``fstat``.

    The path is inspected first (a device or FIFO is never even opened), then opened with
    ``O_NONBLOCK`` (a FIFO swapped in meanwhile cannot block the open) and checked again with
    ``fstat`` (regular, and the same file that was inspected); ``O_NONBLOCK`` is then cleared.
    With ``follow_symlinks=False`` a symlink is refused too (``O_NOFOLLOW``).

    Raises:
        OSError: the path cannot be inspected or opened (``FileNotFoundError``,
            ``PermissionError``, ... as :func:`os.stat` and :func:`os.open` raise them).
        error: ``what`` (e.g. ``"snapshot file '/x'"``) is not a regular file (the message names
            its kind) or was replaced while being opened.
    """
    before = os.stat(path, follow_symlinks=follow_symlinks)
    if not _stat.S_ISREG(before.st_mode):
        raise error(f"{what} is not a regular file ({path} is {file_kind(before.st_mode)}); "
                    "refusing to open it")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino) == (before.st_dev, before.st_ino)
        if not _stat.S_ISREG(st.st_mode) or not same:
            raise error(f"{what} was replaced while being opened (it is now "
                        f"{file_kind(st.st_mode)}); refusing it")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (fewer only at end of file), as one immutable bytes."""
    data = os.pread(fd, min(n, _READ_CHUNK), offset)
    if len(data) == n or len(data) == 0:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        part = os.pread(fd, min(n - got, _READ_CHUNK), offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_regular(path: str, what: str, error: type[Exception]) -> bytes:
    """The whole content of the regular file ``path`` (see :func:`open_regular`), read up to the
    size it had when opened: a file that grows meanwhile is read no further, one that shrank
    raises ``error``. Never allocates more than that size."""
    fd, st = open_regular(path, what, error)
    try:
        data = pread_exact(fd, st.st_size, 0)
    finally:
        os.close(fd)
    if len(data) != st.st_size:
        raise error(f"{what} shrank while being read ({len(data)} of {st.st_size} bytes)")
    return data


def create_regular(path: str, what: str, error: type[Exception]) -> int:
    """Open ``path`` for writing, creating it (mode 0o666 less the umask) or truncating it, if it
    is (or becomes) a regular file; return the descriptor (blocking, close-on-exec).

    An existing path is inspected first (following symlinks, as the loaders do): anything but a
    regular file is refused before it is opened. The open itself is ``O_NONBLOCK`` (a FIFO
    swapped in meanwhile cannot block it; with no reader it fails with ``ENXIO``) and its
    ``fstat`` is checked again before the file is truncated.

    Raises:
        OSError: the path cannot be inspected, created or opened (``PermissionError``,
            ``FileNotFoundError`` for a missing directory, ...).
        error: ``what`` exists and is not a regular file (the message names its kind), or was
            replaced by one that is not while being opened.
    """
    try:
        before = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not _stat.S_ISREG(before.st_mode):
            raise error(f"{what} is not a regular file ({path} is {file_kind(before.st_mode)}); "
                        "refusing to write to it")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise error(f"{what} was replaced while being opened (it is now "
                        f"{file_kind(st.st_mode)}); refusing to write to it")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd
