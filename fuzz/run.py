"""Run one fuzz harness under atheris (libFuzzer) against the installed streamhsm.

    python fuzz/run.py TARGET [--seconds N] [--seed S] [--corpus DIR] [--artifacts DIR]
                              [-- LIBFUZZER_FLAGS...]

TARGET is one of: snapshots, shm, dispatch, driver. The seed corpus is generated from real
tables, drivers and segments into a fresh directory (or into --corpus, which then keeps what
the run found). A finding (a crash, an unexpected exception, a hang past --timeout seconds, more
than --rss-limit-mb of memory) stops the run with a non-zero status and writes the input to
``ARTIFACTS/crash-*``, ``timeout-*`` or ``oom-*``; replay it with ``python fuzz/replay.py TARGET
FILE``. Extra libFuzzer flags go after ``--`` (``-fork=2 -ignore_crashes=1`` keeps going after
findings, which is how FINDINGS.md was collected).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ("snapshots", "shm", "dispatch", "driver")


def main(argv: list[str]) -> None:
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--seconds", type=int, default=25, help="total fuzzing time")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    parser.add_argument("--corpus", default=None, help="corpus directory (default: a temp dir)")
    parser.add_argument("--artifacts", default=".", help="where findings are written")
    parser.add_argument("--timeout", type=int, default=20, help="seconds per input before a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    args = parser.parse_args(argv)

    import atheris

    sys.path.insert(0, HERE)
    # Coverage feedback from the package's Python code (the compiled modules are not
    # instrumented: their coverage is not visible to the fuzzer, their crashes are).
    with atheris.instrument_imports(include=["streamhsm"]):
        import streamhsm  # noqa: F401
        import streamhsm.driver.control  # noqa: F401
        import streamhsm.shm  # noqa: F401
        import streamhsm.snapshot  # noqa: F401
    import common

    common.limit_memory(args.rss_limit_mb)
    harness = importlib.import_module(f"fuzz_{args.target}")

    corpus = args.corpus or tempfile.mkdtemp(prefix=f"streamhsm-corpus-{args.target}-")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(args.artifacts, exist_ok=True)
    for i, seed in enumerate(harness.seeds()):
        with open(os.path.join(corpus, f"seed-{i:03d}"), "wb") as fh:
            fh.write(seed)
    flags = [
        sys.argv[0], corpus,
        f"-max_total_time={args.seconds}", f"-seed={args.seed}", f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}", f"-max_len={harness.MAX_LEN}",
        f"-artifact_prefix={os.path.join(args.artifacts, args.target)}-",
        "-print_final_stats=1",
    ] + extra
    target = common.guarded(harness.test_one_input)
    mutator = getattr(harness, "custom_mutator", None)
    if mutator is not None:
        atheris.Setup(flags, target, custom_mutator=mutator)
    else:
        atheris.Setup(flags, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
