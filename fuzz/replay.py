"""Replay fuzz inputs through a harness, without atheris.

    python fuzz/replay.py TARGET [--seeds] [PATH ...]

Each PATH is an input file or a directory of them; ``--seeds`` adds the harness's generated
seed inputs. Runs every input through the same checks as
the fuzzer; the first finding propagates (non-zero exit, traceback), a crash kills the process,
and an input that runs longer than ``STREAMHSM_FUZZ_TIMEOUT`` seconds (default 30) is a hang
(faulthandler prints every thread's traceback and exits with status 1). Prints ``ok N`` when every
input passed.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def inputs(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            out += sorted(os.path.join(path, f) for f in os.listdir(path)
                          if os.path.isfile(os.path.join(path, f)))
        else:
            out.append(path)
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, HERE)
    import common

    common.limit_memory()
    harness = importlib.import_module(f"fuzz_{argv[0]}")
    cases: list[tuple[str, bytes]] = []
    if "--seeds" in argv[1:]:
        cases += [(f"seed {i}", data) for i, data in enumerate(harness.seeds())]
    for path in inputs([a for a in argv[1:] if a != "--seeds"]):
        with open(path, "rb") as fh:
            cases.append((path, fh.read()))
    timeout = float(os.environ.get("STREAMHSM_FUZZ_TIMEOUT", "30"))
    target = common.guarded(harness.test_one_input)
    faulthandler.enable()
    for what, data in cases:
        print(f"replay {argv[0]} {what}", flush=True)
        faulthandler.dump_traceback_later(timeout, exit=True)  # a hang: traceback, exit 1
        target(data)
        faulthandler.cancel_dump_traceback_later()
    print(f"ok {len(cases)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
