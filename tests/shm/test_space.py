"""A /dev/shm without room for a segment (issue 19, defect 2): creation raises ``OSError``
(ENOSPC) naming the size and the free space, leaves nothing behind and never dies of SIGBUS, for
``SharedStreamTable``, ``Driver(..., shm_name=...)`` and ``Driver.load(..., shm_name=...)``.

Each case runs in a child process with a private mount namespace (``unshare -m``) in which a
1 MiB tmpfs is mounted over /dev/shm, so the package's segment directory stays the production
one. The tests are skipped only where such a mount is impossible (not root, no ``unshare``, no
mount rights), with the reason.
"""

from __future__ import annotations

import functools
import json
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

SHM_SIZE = 1 << 20  # the private tmpfs
_MOUNT = "mount -t tmpfs -o size=1m,mode=1777 streamhsm-small /dev/shm"


@functools.lru_cache(maxsize=1)
def _cannot_mount() -> str | None:
    """Why a small private /dev/shm cannot be mounted here, or None if it can."""
    if shutil.which("unshare") is None:
        return "no unshare(1) on this machine"
    try:
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", _MOUNT],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -m failed: {exc}"
    if probe.returncode != 0:
        return f"cannot mount a private tmpfs on /dev/shm: {probe.stderr.strip()}"
    return None


_PRELUDE = """
import errno, json, os, sys
from streamhsm import Driver, DriverConfig
from streamhsm import shm
from streamhsm.shm import SharedStreamTable

vfs = os.statvfs("/dev/shm")
assert vfs.f_blocks * vfs.f_frsize == SHM_SIZE, "not the small tmpfs"
out = {}

def attempt(key, make):
    try:
        obj = make()
    except OSError as exc:
        out[key] = {"errno": exc.errno, "message": str(exc), "left": sorted(os.listdir("/dev/shm"))}
    else:
        out[key] = {"created": True}
        obj.close()
"""


def _in_small_shm(body: str) -> dict[str, dict[str, object]]:
    """Run ``body`` (after the prelude) in a child whose /dev/shm is a private 1 MiB tmpfs; return
    the ``out`` dict it prints. A child killed by a signal (SIGBUS) fails the test."""
    reason = _cannot_mount()
    if reason is not None:
        pytest.skip(reason)
    code = (f"SHM_SIZE = {SHM_SIZE}\n" + textwrap.dedent(_PRELUDE) + textwrap.dedent(body)
            + "\nprint(json.dumps(out))\n")
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", f'{_MOUNT} && exec "$0" -c "$1"',
         sys.executable, code], capture_output=True, text=True, timeout=120)
    if proc.returncode < 0 or proc.returncode > 128:
        sig = -proc.returncode if proc.returncode < 0 else proc.returncode - 128
        pytest.fail(f"the child died of {signal.Signals(sig).name}: {proc.stderr[-2000:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _assert_no_space(result: dict[str, object], size_at_least: int) -> None:
    assert result.get("errno") == 28, result  # ENOSPC, not created, not a crash
    message = str(result["message"])
    assert " MiB) free" in message and "/dev/shm" in message, message
    needed = int(message.split("needs ")[1].split(" bytes")[0])
    free = int(message.split("/dev/shm has ")[1].split(" bytes")[0])
    assert needed >= size_at_least and free <= SHM_SIZE < needed  # the real free space
    assert "--shm-size" in message
    assert result["left"] == []  # the partial segment is gone, no temporary file either


CAPACITY = 200_000  # about 2.9 MB of columns: does not fit in 1 MiB


def test_a_table_larger_than_dev_shm_raises_enospc_and_leaves_nothing() -> None:
    out = _in_small_shm(f"""
        attempt("big", lambda: SharedStreamTable("big", {CAPACITY}))
        attempt("small", lambda: SharedStreamTable("small", 1000))  # still room for this
        out["after"] = {{"left": sorted(os.listdir("/dev/shm"))}}
    """)
    _assert_no_space(out["big"], CAPACITY * 2)
    assert out["small"] == {"created": True}
    assert out["after"]["left"] == []


@pytest.mark.parametrize("tmpfile", [True, False], ids=["unnamed", "temporary-name"])
def test_page_reservation_fails_cleanly_when_free_space_was_misjudged(tmpfile: bool) -> None:
    """statvfs reports room (another process may take it first): the reservation itself fails
    with ENOSPC. Without posix_fallocate the child dies of SIGBUS at the first write."""
    out = _in_small_shm(f"""
        shm._USE_TMPFILE = {tmpfile}
        real_free, calls = shm._free_bytes, []
        def lying_free():  # the check before the reservation sees room; the message, the truth
            calls.append(1)
            return 1 << 40 if len(calls) % 2 else real_free()
        shm._free_bytes = lying_free
        attempt("big", lambda: SharedStreamTable("big", {CAPACITY}))
        attempt("driver", lambda: Driver(DriverConfig(stream_capacity={CAPACITY}), shm_name="drv"))
    """)
    _assert_no_space(out["big"], CAPACITY * 2)
    _assert_no_space(out["driver"], CAPACITY * 2)


def test_driver_and_driver_load_with_a_segment_too_large(tmp_path: object) -> None:
    out = _in_small_shm(f"""
        cfg = DriverConfig(static_stream_ids=(1, 2), stream_capacity={CAPACITY})
        attempt("driver", lambda: Driver(cfg, shm_name="drv"))
        d = Driver(cfg)
        d.attach(1, 1, client_id=7, now_ns=0)
        d.save({str(tmp_path)!r} + "/d.npz")
        attempt("load", lambda: Driver.load({str(tmp_path)!r} + "/d.npz", shm_name="drv"))
        restored = Driver.load({str(tmp_path)!r} + "/d.npz")  # without a segment: fine
        out["restored"] = {{"epoch": restored.epoch(1)}}
    """)
    _assert_no_space(out["driver"], CAPACITY * 2)
    _assert_no_space(out["load"], CAPACITY * 2)
    assert out["restored"] == {"epoch": 3}
