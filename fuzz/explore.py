"""Keep-going exploration: mutate inputs and run each in a forked child, so one crash does not end
the run, and group what breaks by signature (exception type and message shape, or the signal).

    python fuzz/explore.py TARGET [--seconds N] [--seed S] [--out DIR]
    python fuzz/explore.py TARGET --minimize FILE     # shrink FILE, keeping its signature
    python fuzz/explore.py snapshots --sweep          # every field to its extremes, resized

libFuzzer (``fuzz/run.py``) stops at the first finding and atheris does not support ``-fork``;
this runner is how the list in FINDINGS.md was collected on code that still crashes. It has no
coverage feedback (the same structure-aware and byte mutators, random choice of parent), needs no
atheris, and writes the first input of each signature to ``OUT/TARGET-<hash>.bin`` with a
``summary.txt``. Exit status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import re
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def signature(exc: BaseException) -> str:
    """Exception type, message with numbers and quoted values blanked, innermost package frame."""
    msg = str(exc).split("\n")[0]
    if type(exc).__name__ == "Finding":  # our own oracle messages: keep names, blank big numbers
        msg = re.sub(r"-?\d{3,}", "N", msg)[:160]
    else:
        msg = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", msg)
        msg = re.sub(r"-?\d+", "N", msg)[:90]
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "streamhsm" in f.filename or "numpy" in f.filename]
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].name}" if frames else "?"
    return f"{type(exc).__name__}: {msg} @ {where}"


def run_child(harness: object, data: bytes, timeout: float) -> str | None:
    """Run one input in a forked child; None if it passed, else its signature."""
    import common  # on the path: main() put fuzz/ there

    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rd)
        code = 0
        try:
            common.guarded(harness.test_one_input)(data)  # type: ignore[attr-defined]
        except BaseException as exc:  # noqa: BLE001 - every escape is a finding
            os.write(wr, signature(exc).encode("utf-8", "replace"))
            code = 1
        os._exit(code)
    os.close(wr)
    deadline = time.monotonic() + timeout
    status = None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rd)
            return f"HANG: more than {timeout:.0f} s"
        else:
            time.sleep(0.001)
    with os.fdopen(rd, "rb") as fh:
        text = fh.read().decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        return f"CRASH: {sig}" + (" (killed: memory limit?)" if sig == "SIGKILL" else "")
    if os.WEXITSTATUS(status) != 0:
        return text or f"EXIT {os.WEXITSTATUS(status)}"
    return None


def minimize(harness: object, data: bytes, timeout: float) -> bytes:
    """Greedy chunk removal (then byte zeroing) while the input keeps the same signature."""
    want = run_child(harness, data, timeout)
    if want is None:
        raise SystemExit("the input does not fail")
    chunk = max(1, len(data) // 2)
    while chunk >= 1:
        i = 0
        while i < len(data):
            cand = data[:i] + data[i + chunk:]
            if run_child(harness, cand, timeout) == want:
                data = cand
            else:
                i += chunk
        chunk //= 2
    for i in range(len(data)):
        if data[i]:
            cand = data[:i] + b"\x00" + data[i + 1:]
            if run_child(harness, cand, timeout) == want:
                data = cand
    print(f"{len(data)} bytes: {want}")
    return data


def run_sweep(harness: object, args: argparse.Namespace) -> int:
    """Every input of ``harness.sweep()``; signature -> the labels that produced it."""
    os.makedirs(args.out, exist_ok=True)
    found: dict[str, list[str]] = {}
    cases = harness.sweep()  # type: ignore[attr-defined]
    for label, data in cases:
        sig = run_child(harness, data, args.timeout)
        if sig is None:
            continue
        if sig not in found:
            name = f"{args.target}-sweep-{hashlib.sha1(sig.encode()).hexdigest()[:10]}.bin"
            with open(os.path.join(args.out, name), "wb") as fh:
                fh.write(data)
            print(f"NEW {name}: {sig}\n    first: {label}", flush=True)
        found.setdefault(sig, []).append(label)
    with open(os.path.join(args.out, f"sweep-{args.target}.txt"), "w") as fh:
        for sig, labels in sorted(found.items()):
            fh.write(f"{sig}\n" + "".join(f"    {label}\n" for label in labels))
    print(f"{len(cases)} sweep inputs, {sum(map(len, found.values()))} failed, "
          f"{len(found)} distinct findings")
    return 1 if found else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("snapshots", "shm", "dispatch", "driver"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="fuzz-findings")
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--minimize", default=None, help="shrink this input in place")
    parser.add_argument("--sweep", action="store_true",
                        help="run the harness's systematic sweep instead of random mutations")
    args = parser.parse_args(argv)
    sys.path.insert(0, HERE)
    import common

    common.limit_memory()
    harness = importlib.import_module(f"fuzz_{args.target}")
    if args.minimize:
        with open(args.minimize, "rb") as fh:
            small = minimize(harness, fh.read(), args.timeout)
        with open(args.minimize, "wb") as fh:
            fh.write(small)
        return 0
    if args.sweep:
        return run_sweep(harness, args)
    rng = random.Random(args.seed)
    corpus = list(harness.seeds())
    os.makedirs(args.out, exist_ok=True)
    found: dict[str, tuple[str, int]] = {}
    runs = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        data = rng.choice(corpus)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data = harness.mutate(data, harness.MAX_LEN, rng)
        runs += 1
        sig = run_child(harness, data, args.timeout)
        if sig is None:
            if len(corpus) < 500 and rng.random() < 0.05:
                corpus.append(data)
            continue
        if sig in found:
            name, n = found[sig]
            found[sig] = (name, n + 1)
            continue
        name = f"{args.target}-{hashlib.sha1(sig.encode()).hexdigest()[:10]}.bin"
        with open(os.path.join(args.out, name), "wb") as fh:
            fh.write(data)
        found[sig] = (name, 1)
        print(f"[{runs}] NEW {name}: {sig}", flush=True)
    with open(os.path.join(args.out, f"summary-{args.target}.txt"), "w") as fh:
        for sig, (name, n) in sorted(found.items()):
            fh.write(f"{n:6d}  {name}  {sig}\n")
    print(f"{runs} runs, {len(found)} distinct findings")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
