"""Snapshots as plain data: save to and load from ``.npz`` files without pickles.

A snapshot is a ``dict`` of numpy arrays and plain values that names its owner kind
(``"kind"``), its format version (``"version"``) and the machine fingerprint it belongs to, so
``restore`` can reject a snapshot of another kind, version or machine with a clear message.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from .errors import StreamHsmError

__all__ = ["SNAPSHOT_VERSION", "SnapshotError", "check_header", "load_snapshot", "save_snapshot"]

#: Format version written into every snapshot.
SNAPSHOT_VERSION = 1


class SnapshotError(StreamHsmError, ValueError):
    """A snapshot (or snapshot file) is unreadable, of another kind, version or machine, or holds
    values out of range."""


def check_header(snap: object, kind: str, fingerprint: str) -> dict[str, Any]:
    """Validate the header fields of ``snap``; return it as a dict."""
    if not isinstance(snap, dict):
        raise SnapshotError(f"a snapshot is a dict, got {type(snap).__name__}")
    got_kind = snap.get("kind")
    if got_kind != kind:
        raise SnapshotError(f"snapshot of {got_kind!r} cannot be restored into a {kind!r}")
    version = snap.get("version")
    if version != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"snapshot format version {version!r} is not supported (this is {SNAPSHOT_VERSION})")
    if snap.get("fingerprint") != fingerprint:
        raise SnapshotError(
            f"snapshot is of machine {snap.get('machine')!r} with fingerprint "
            f"{snap.get('fingerprint')!r}, not {fingerprint!r}")
    return snap


def array(snap: dict[str, Any], key: str, dtype: Any, length: int) -> np.ndarray:
    """``snap[key]`` as a 1-D array of ``dtype`` and ``length``, or SnapshotError."""
    arr = snap.get(key)
    if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(dtype) or arr.shape != (length,):
        got = (f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__)
        raise SnapshotError(f"snapshot field {key!r} must be {np.dtype(dtype)} of shape "
                            f"({length},), got {got}")
    return arr


def save_snapshot(snap: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a snapshot to ``path`` as an uncompressed ``.npz`` (scalars as 0-d arrays)."""
    arrays = {k: (v if isinstance(v, np.ndarray) else np.asarray(v)) for k, v in snap.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise SnapshotError(f"snapshot field {k!r} is not plain data")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def load_snapshot(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a snapshot written by :func:`save_snapshot` (never unpickling anything).

    Raises:
        SnapshotError: the file is truncated, corrupt or not a snapshot.
        OSError: the file cannot be opened.
    """
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            out: dict[str, Any] = {}
            for key in data.files:
                value = data[key]
                out[key] = value.item() if value.ndim == 0 else value
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise SnapshotError(f"{os.fspath(path)!r} is not a readable snapshot: {exc}") from exc
    if "kind" not in out or "version" not in out:
        raise SnapshotError(f"{os.fspath(path)!r} is not a streamhsm snapshot (no kind/version)")
    return out
