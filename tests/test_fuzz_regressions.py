"""Replay every kept fuzz input (tests/fuzz_regressions/TARGET/*.bin) through its harness.

The harnesses live in fuzz/ (``fuzz/fuzz_TARGET.py``); each input runs in its own process
(``fuzz/replay.py``), because a regression may crash the interpreter (SIGSEGV, SIGBUS), hang, or
allocate gigabytes (the replay caps the address space). The test asserts that the replay exits
normally: the input was rejected with a documented exception or handled, and every invariant the
harness checks held. See fuzz/README.md and fuzz/FINDINGS.md.

Inputs whose fix has not landed yet are marked ``xfail(strict=True)`` in ``PENDING`` below with
the issue item that fixes them; remove the mark when the fix is merged (strict: a fixed input
that is still marked fails the suite).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path(__file__).resolve().parent / "fuzz_regressions"
REPLAY = ROOT / "fuzz" / "replay.py"
TARGETS = ("snapshots", "shm", "dispatch", "driver")

#: case -> the issue item whose fix makes it pass (the integrator removes entries as fixes land)
PENDING = {
    "dispatch/states-view-made-writeable.bin": "issue 9 item 3",
    "driver/attach-expiry-past-int64-overflows.bin": "issue 9 item 11",
    "driver/detach-time-past-int64-overflows.bin": "issue 9 item 11",
    "driver/drain-announces-short-out-loses-due-list.bin": "a new defect (fuzz/FINDINGS.md F13)",
    "driver/keepalive-expiry-past-int64-overflows.bin": "issue 9 item 11",
    "driver/poll-past-int64-overflows.bin": "issue 9 item 11",
    "driver/rejected-detach-moves-clock.bin": "issue 9 item 11",
    "driver/rejected-keepalive-moves-clock.bin": "issue 9 item 11",
    "driver/rejected-revoke-moves-clock.bin": "issue 9 item 11",
    "shm/fifo-at-segment-path.bin": "issue 9 item 6",
    "shm/truncate-after-open.bin": "issue 9 item 6",
    "shm/truncate-to-zero-after-open.bin": "issue 9 item 6",
    "shm/writer-pid-0.bin": "issue 9 item 9",
    "shm/writer-pid-2pow63.bin": "issue 9 item 9",
    "snapshots/driver-config-deeply-nested.bin": "issue 9 item 2",
    "snapshots/driver-config-not-an-object.bin": "issue 9 item 2",
    "snapshots/driver-config-shm-name.bin": "issue 9 item 2",
    "snapshots/driver-closed-dynamic-2pow63.bin": "issue 9 item 1",
    "snapshots/driver-draining-deadline-0.bin": "issue 9 item 12",
    "snapshots/driver-due-slot-at-capacity.bin": "issue 9 item 1",
    "snapshots/driver-dynamic-flag-on-static-streams.bin": "issue 9 item 1",
    "snapshots/driver-due-slot-2pow31m1.bin": "issue 9 item 1",
    "snapshots/driver-due-slot-negative.bin": "issue 9 item 1",
    "snapshots/driver-due-slots-longer-than-capacity.bin": "issue 9 item 1",
    "snapshots/driver-dynamic-stream-id-2pow40.bin": "issue 9 item 1",
    "snapshots/driver-dynamic-stream-id-minus3.bin": "issue 9 item 1",
    "snapshots/driver-last-lease-id-int64-max.bin": "issue 9 item 1",
    "snapshots/driver-now-2pow64m1.bin": "issue 9 items 1 and 11",
    "snapshots/driver-static-stream-id-not-configured.bin": "issue 9 item 1",
    "snapshots/driver-streams-capacity-array.bin": "issue 9 items 1 and 2",
    "snapshots/table-capacity-2pow27.bin": "issue 9 item 2",
    "snapshots/table-capacity-2pow31m1.bin": "issue 9 item 2",
    "snapshots/table-capacity-2pow62.bin": "issue 9 item 2",
    "snapshots/table-fingerprint-array.bin": "issue 9 items 1 and 2",
    "snapshots/table-unhandled-total-2pow64m1.bin": "issue 9 item 1",
    "snapshots/zip-encryption-flag.bin": "issue 9 item 2",
    "snapshots/zip-unsupported-compression.bin": "issue 9 item 2",
    "snapshots/zip-unsupported-version.bin": "issue 9 item 2",
}

CASES = sorted(p.relative_to(CASES_DIR).as_posix() for p in CASES_DIR.glob("*/*") if p.is_file())


def _param(case: str) -> object:
    if case in PENDING:
        return pytest.param(case, marks=pytest.mark.xfail(
            strict=True, reason=f"fixed by {PENDING[case]}"))
    return case


def test_the_corpus_is_well_formed() -> None:
    assert CASES, f"no regression inputs under {CASES_DIR}"
    assert {c.split("/")[0] for c in CASES} <= set(TARGETS), CASES
    stale = sorted(set(PENDING) - set(CASES))
    assert not stale, f"PENDING names inputs that do not exist: {stale}"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_replay(case: str, tmp_path: Path) -> None:
    target = case.split("/")[0]
    prefix = f"streamhsm-fuzzreg-{os.getpid()}-{abs(hash(case)) % 10**8}"
    env = dict(os.environ, STREAMHSM_FUZZ_SHM_PREFIX=prefix, STREAMHSM_FUZZ_TIMEOUT="15",
               TMPDIR=str(tmp_path))
    try:
        proc = subprocess.run([sys.executable, str(REPLAY), target, str(CASES_DIR / case)],
                              capture_output=True, text=True, timeout=120, env=env,
                              cwd=tmp_path)
    finally:
        for leftover in Path("/dev/shm").glob(prefix + "-*"):
            if leftover.is_dir() and not leftover.is_symlink():
                leftover.rmdir()
            else:
                leftover.unlink()
    assert proc.returncode == 0, (
        f"replay of {case} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}"
        f"\n--- stderr\n{proc.stderr[-6000:]}")
    assert proc.stdout.rstrip().endswith("ok 1")
