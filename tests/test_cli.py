"""The command line: ``python -m streamhsm demo``."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from streamhsm.__main__ import main
from streamhsm.demo import run_demo


def test_demo_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "streamhsm", "demo", "--streams", "500"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert "DriverShutdown broadcast" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("summary: streams=500")


def test_demo_is_reproducible_and_consistent() -> None:
    a, b = io.StringIO(), io.StringIO()
    ra = run_demo(streams=2000, seed=5, out=a)
    rb = run_demo(streams=2000, seed=5, out=b)
    strip = lambda s: s.rsplit("(", 1)[0]  # noqa: E731 - drop the elapsed time
    assert ra == rb and strip(a.getvalue()) == strip(b.getvalue())
    # after shutdown every open stream is Closed; 5% of the idle-closed slots were released
    assert ra["init"] == ra["active"] == ra["draining"] == 0
    assert ra["closed"] == 2000 - (2000 // 10) // 2


def test_demo_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--streams", "0"]) == 2
    assert "--streams must be positive, got 0" in capsys.readouterr().err


def test_unknown_command_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2
