"""Command-line entry point: ``streamhsm {demo,bench,stat,diagram}`` (also ``python -m streamhsm``).

Every mistake ends in one ``error: ...`` line on stderr and exit code 2, never a traceback.
``stat`` exits 1 when it finds the table's writer dead (see :data:`EXIT_WRITER_DEAD`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__, driver, registry  # noqa: F401  (driver registers its machines)
from .._limits import INT32_MAX, MAX_CAPACITY
from ..errors import StreamHsmError

#: Bounds of the ``demo`` numbers: the dynamic id range holds ``2 * streams + 1`` ids (at most
#: ``MAX_DYNAMIC_RANGE``), client ids and lease slots are int32-sized, and simulated nanoseconds
#: must fit an int64.
DEMO_LIMITS = {"streams": (1, 8_388_607), "clients": (1, INT32_MAX - 1), "seconds": (1, 1_000_000)}
#: Longest ``stat --interval`` accepted (seconds: one day).
MAX_STAT_INTERVAL = 86_400.0
#: Exit code of ``stat`` when the screen it printed shows the writer ``[DEAD]`` (it stops there
#: and says to run ``stat NAME --reclaim``).
EXIT_WRITER_DEAD = 1


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default unless its help already mentions it (or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings):
            return action.help
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose help shows defaults (sub-command parsers included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def prog_name(argv0: str | None = None) -> str:
    """The name the usage line shows: ``streamhsm`` when run as the ``streamhsm`` console script,
    ``python -m streamhsm`` otherwise (``argv0`` defaults to ``sys.argv[0]``)."""
    base = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    stem = base[:-4] if base.lower().endswith(".exe") else base
    return "streamhsm" if stem in ("streamhsm", "streamhsm-script.py") else "python -m streamhsm"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The ``streamhsm`` argument parser (one sub-command per tool); ``prog`` defaults to
    :func:`prog_name`."""
    parser = _Parser(
        prog=prog or prog_name(),
        description="Per-stream lifecycle HSM for transport drivers.")
    parser.add_argument("--version", action="version", version=f"streamhsm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    demo = sub.add_parser("demo", help="run a seeded driver simulation and print a summary")
    demo.add_argument("--streams", type=int, default=10_000, metavar="N",
                      help=f"stream slots, 1 to {DEMO_LIMITS['streams'][1]}")
    demo.add_argument("--clients", type=int, default=50_000, metavar="N",
                      help="simulated clients, at least 1")
    demo.add_argument("--seconds", type=int, default=20, metavar="N",
                      help="simulated seconds of traffic before the drain, "
                           f"1 to {DEMO_LIMITS['seconds'][1]}")
    demo.add_argument("--seed", type=int, default=1, metavar="S", help="random seed, >= 0")
    demo.add_argument("--quiet", action="store_true", help="print only the final summary")
    bench = sub.add_parser("bench", help="time every hot path beside its floor (about 20 seconds)")
    bench.add_argument("--streams", type=int, default=1_000_000, metavar="N",
                       help="streams for dispatch_many/broadcast")
    bench.add_argument("--events", type=int, default=10_000_000, metavar="N",
                       help="events for dispatch_many")
    bench.add_argument("--leases", type=int, default=1_000_000, metavar="N",
                       help="leases for the driver poll")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="PATH",
                       help="also write a PNG of time per event vs streams, from 1,000 up to "
                            "--streams (needs matplotlib)")
    stat = sub.add_parser(
        "stat", help="watch a shared-memory stream table (like AeronStat)",
        description="Print what a reader of a live shared-memory stream table sees: writer "
                    "status, occupancy, unhandled total, top transitions, and for a machine "
                    "with timers its clock and next deadlines. With --reclaim, remove "
                    "instead a segment left behind by a writer that died (never a live one). "
                    f"Exits {EXIT_WRITER_DEAD} as soon as a screen shows the writer [DEAD] "
                    "(run --reclaim before restarting it), 2 on an error.")
    stat.add_argument("name", help="segment name: the driver's DriverConfig.shm_name (the file "
                                   "/dev/shm/NAME)")
    stat.add_argument("--interval", type=float, default=1.0,
                      help=f"seconds between refreshes, 0 to {MAX_STAT_INTERVAL:.0f}")
    stat.add_argument("--state", default=None, help="also list the slots in this state")
    stat.add_argument("--limit", type=int, default=20, help="slots to list, >= 0")
    stat.add_argument("--count", type=int, default=0,
                      help="screens to print, then exit (default 0: until interrupted)")
    stat.add_argument("--stale-after", type=float, default=3.0,
                      help="seconds without a heartbeat before the writer is reported stale, "
                           "finite and >= 0")
    stat.add_argument("--reclaim", action="store_true",
                      help="remove the segment if its writer is dead or it is marked closed "
                           "(refused, exit 2, while the writer lives; exit 0 if there is none), "
                           "then exit; run it before restarting a driver that was killed")
    diagram = sub.add_parser(
        "diagram", help="print or render a machine's state diagram (Mermaid, DOT, SVG or PNG)")
    diagram.add_argument("--machine", choices=sorted({n for n, _ in registry.known()}),
                         default="stream", help="which machine")
    diagram.add_argument("--policy", choices=sorted({p for _, p in registry.known()}),
                         default=registry.DEFAULT_POLICY,
                         help="the machine's policy (drain_on_producer_loss: stream only)")
    diagram.add_argument("--format", choices=["mermaid", "dot", "svg", "png"], default="mermaid",
                         help="Mermaid or Graphviz DOT text, or an SVG or PNG image rendered "
                              "by Graphviz 'dot' (svg and png need Graphviz and --output)")
    diagram.add_argument("--output", metavar="PATH",
                         help="file to write (required for svg/png; text goes to stdout otherwise)")
    return parser


def _stat_args_error(args: argparse.Namespace) -> str | None:
    import math

    for opt, value in (("--interval", args.interval), ("--stale-after", args.stale_after)):
        if not math.isfinite(value) or value < 0:
            return f"{opt} must be a finite number of seconds >= 0, got {value}"
    if args.interval > MAX_STAT_INTERVAL:
        return (f"--interval must be at most {MAX_STAT_INTERVAL:.0f} seconds (one day), "
                f"got {args.interval}")
    for opt, value in (("--count", args.count), ("--limit", args.limit)):
        if value < 0:
            return f"{opt} must be >= 0, got {value}"
    return None


def _stat(args: argparse.Namespace) -> int:
    import time

    from ..shm import SharedTableError, leaf_names, open_readonly, reclaim

    problem = _stat_args_error(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.reclaim:
        try:
            removed = reclaim(args.name)
        except (SharedTableError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"reclaimed segment {args.name!r}" if removed
              else f"nothing to reclaim: no shared table named {args.name!r}")
        return 0
    try:
        reader = open_readonly(args.name)
    except FileNotFoundError:
        print(f"error: no shared table named {args.name!r}", file=sys.stderr)
        return 2
    except (SharedTableError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.state is not None:
            try:
                reader.machine.state_code(args.state)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        shown = 0
        while True:
            try:
                st = reader.stats()
                slots = reader.slots_in(args.state) if args.state is not None else None
                gone = reader.unlinked
            except SharedTableError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            now = time.time_ns()
            age = (now - st["heartbeat_ns"]) / 1e9
            status = ("CLOSED" if st["closed"] else "DEAD" if not st["writer_alive"]
                      else "STALE" if age > args.stale_after else "live")
            if gone:
                status += ", REMOVED"
            print(f"{time.strftime('%H:%M:%S')} {args.name} machine={st['machine']} "
                  f"capacity={st['capacity']} writer={st['writer_pid']} [{status}] "
                  f"heartbeat {age:.1f} s ago, published {st['publish_count']}x")
            occ = st["occupancy"]
            live = f"  (Live={occ['Live']})" if "Live" in occ else ""  # the stream machine's
            print("  " + "  ".join(f"{n}={occ[n]}" for n in leaf_names(reader)) + live)
            print(f"  unhandled total={st['unhandled_total']}")
            if "now_ns" in st:
                print(_timer_line(st["now_ns"], st["next_deadlines"]))
            top = sorted(st["transitions"].items(), key=lambda kv: -kv[1])[:6]
            print("  transitions: " + (", ".join(f"{k}={v}" for k, v in top) or "none"))
            if slots is not None:
                listed = " ".join(str(int(x)) for x in slots[: args.limit])
                more = f" ... (+{len(slots) - args.limit})" if len(slots) > args.limit else ""
                print(f"  slots in {args.state} ({len(slots)}): {listed}{more}")
            sys.stdout.flush()
            if not st["closed"] and not st["writer_alive"]:
                print(f"error: the writer of {args.name!r} (pid {st['writer_pid']}) is dead; "
                      f"remove its segment with `{prog_name()} stat {shlex.quote(args.name)} "
                      "--reclaim` before starting it again", file=sys.stderr)
                return EXIT_WRITER_DEAD
            shown += 1
            if args.count and shown >= args.count:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def _timer_line(now: int, due: list[tuple[int, int, str]]) -> str:
    """The ``stat`` line of a machine with timers: its clock and the next armed deadlines."""
    from ..machine import format_ns

    def rel(d: int) -> str:
        return f"+{format_ns(d - now)}" if d >= now else f"-{format_ns(now - d)}"
    listed = ", ".join(f"{name} slot {slot} at {d} ({rel(d)})" for d, slot, name in due)
    return f"  clock={now} ns  next deadlines: {listed or 'none armed'}"


def _check_counts(args: argparse.Namespace, limits: dict[str, tuple[int, int | None]]) -> None:
    for name, (low, high) in limits.items():
        value = getattr(args, name)
        if value < low:
            raise ValueError(f"--{name} must be positive, got {value}" if low == 1
                             else f"--{name} must be >= {low}, got {value}")
        if high is not None and value > high:
            raise ValueError(f"--{name} must be at most {high}, got {value}")


def _bench(args: argparse.Namespace) -> int:
    from .bench import format_rows, plot_scaling, plot_sizes, run_bench, write_json

    _check_counts(args,
                  {"streams": (1, MAX_CAPACITY), "events": (1, None), "leases": (1, MAX_CAPACITY)})
    points = None
    if args.plot:  # fail early if matplotlib is missing
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError(
                '--plot needs matplotlib: python -m pip install "streamhsm[plot]"') from None
    rows = run_bench(args.streams, args.events, args.leases, out=sys.stderr)
    print(format_rows(rows))
    if args.plot:
        points = plot_scaling(args.plot, plot_sizes(args.streams), out=sys.stderr)
        print(f"plot written to {args.plot}")
    if args.json:
        write_json(args.json, rows, {"scaling": points} if points else None)
        print(f"results written to {args.json}")
    return 0


def _diagram(args: argparse.Namespace) -> int:
    from .diagram import render, render_image

    if args.format in ("svg", "png") and not args.output:
        raise ValueError(f"--format {args.format} needs --output PATH")
    machine = registry.machine(args.machine, args.policy)
    if args.format in ("svg", "png"):
        try:
            warnings = render_image(machine, args.format, args.output)
        except RuntimeError as exc:  # Graphviz missing or failing
            raise ValueError(str(exc)) from None
        for line in warnings.splitlines():
            print(f"dot: {line}", file=sys.stderr)
        print(f"diagram written to {args.output}")
        return 0
    text = render(machine, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"diagram written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _check_counts(args, dict(DEMO_LIMITS))
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    run_demo(streams=args.streams, clients=args.clients, seed=args.seed,
             seconds=args.seconds, out=sys.stdout, verbose=not args.quiet)
    return 0


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    if isinstance(exc, MemoryError):
        return f"not enough memory ({exc or 'allocation failed'}); try smaller numbers"
    return str(exc) or type(exc).__name__


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "bench": _bench, "stat": _stat, "diagram": _diagram, "demo": _demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    0 on success; 1 when ``stat`` finds the writer dead; 2 for a usage mistake or a failure the
    user can fix (bad numbers, unwritable paths, missing Graphviz or shared table), reported as one
    ``error: ...`` line on stderr; 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (OSError, ValueError, MemoryError, StreamHsmError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
