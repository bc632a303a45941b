"""Command-line entry point: ``python -m streamhsm {demo,...}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The ``streamhsm`` argument parser (one sub-command per tool)."""
    parser = argparse.ArgumentParser(
        prog="python -m streamhsm", description="Per-stream lifecycle HSM for transport drivers."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run a seeded stream-lifecycle scenario and print a summary")
    demo.add_argument("--streams", type=int, default=10_000, help="number of streams (default 10000)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--quiet", action="store_true", help="print only the final summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        if args.streams <= 0:
            print(f"error: --streams must be positive, got {args.streams}", file=sys.stderr)
            return 2
        run_demo(streams=args.streams, seed=args.seed, out=sys.stdout, verbose=not args.quiet)
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
