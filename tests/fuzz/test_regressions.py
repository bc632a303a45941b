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

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "fuzz_regressions"
REPLAY = ROOT / "fuzz" / "replay.py"
TARGETS = ("snapshots", "shm", "dispatch", "driver")

#: case -> the issue item whose fix makes it pass (the integrator removes entries as fixes land)
PENDING: dict[str, str] = {}

CASES = sorted(p.relative_to(CASES_DIR).as_posix() for p in CASES_DIR.glob("*/*") if p.is_file())


#: the smoke suite replays the first input of each target
SMOKE = {min(c for c in CASES if c.startswith(t + "/")) for t in TARGETS
         if any(c.startswith(t + "/") for c in CASES)}


def _param(case: str) -> object:
    if case in PENDING:
        return pytest.param(case, marks=pytest.mark.xfail(
            strict=True, reason=f"fixed by {PENDING[case]}"))
    if case in SMOKE:
        return pytest.param(case, marks=pytest.mark.smoke)
    return case


@pytest.mark.smoke
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
