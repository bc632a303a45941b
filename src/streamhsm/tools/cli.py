"""Command-line entry point: ``python -m streamhsm {demo,...}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..machine import CompiledMachine


def build_parser() -> argparse.ArgumentParser:
    """The ``streamhsm`` argument parser (one sub-command per tool)."""
    parser = argparse.ArgumentParser(
        prog="python -m streamhsm", description="Per-stream lifecycle HSM for transport drivers."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run a seeded driver simulation and print a summary")
    demo.add_argument("--streams", type=int, default=10_000, help="stream slots (default 10000)")
    demo.add_argument("--clients", type=int, default=50_000, help="clients (default 50000)")
    demo.add_argument("--seconds", type=int, default=20,
                      help="simulated seconds of traffic before the drain (default 20)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--quiet", action="store_true", help="print only the final summary")
    bench = sub.add_parser("bench", help="time every hot path beside its floor (under a minute)")
    bench.add_argument("--streams", type=int, default=1_000_000,
                       help="streams for dispatch_many/broadcast (default 1000000)")
    bench.add_argument("--events", type=int, default=10_000_000,
                       help="events for dispatch_many (default 10000000)")
    bench.add_argument("--leases", type=int, default=1_000_000,
                       help="leases for the driver poll (default 1000000)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="PATH",
                       help="also write a PNG of time per event vs streams (needs matplotlib)")
    stat = sub.add_parser(
        "stat", help="watch a shared-memory stream table (like AeronStat)",
        description="Print what a reader of a live shared-memory stream table sees: writer "
                    "status, occupancy, unhandled total, top transitions. With --reclaim, remove "
                    "instead a segment left behind by a writer that died (never a live one).")
    stat.add_argument("name", help="segment name: the driver's DriverConfig.shm_name (the file "
                                   "/dev/shm/NAME)")
    stat.add_argument("--interval", type=float, default=1.0,
                      help="seconds between refreshes (default 1.0; finite, >= 0)")
    stat.add_argument("--state", default=None, help="also list the slots in this state")
    stat.add_argument("--limit", type=int, default=20, help="slots to list (default 20; >= 0)")
    stat.add_argument("--count", type=int, default=0,
                      help="screens to print, then exit (default 0: until interrupted)")
    stat.add_argument("--stale-after", type=float, default=3.0,
                      help="seconds without a heartbeat before the writer is reported stale "
                           "(default 3.0; finite, >= 0)")
    stat.add_argument("--reclaim", action="store_true",
                      help="remove the segment if its writer is dead or it is marked closed "
                           "(refused, exit 2, while the writer lives; exit 0 if there is none), "
                           "then exit; run it before restarting a driver that was killed")
    diagram = sub.add_parser("diagram", help="print a machine's state diagram (Mermaid or DOT)")
    diagram.add_argument("--machine", choices=sorted(MACHINES), default="stream",
                         help="which machine (default stream)")
    diagram.add_argument("--policy", choices=["default", "drain_on_producer_loss"],
                         default="default", help="stream machine policy (default: default)")
    diagram.add_argument("--format", choices=["mermaid", "dot", "svg", "png"], default="mermaid",
                         help="output format (default mermaid; svg/png need Graphviz and --output)")
    diagram.add_argument("--output", metavar="PATH", help="file to write (required for svg/png)")
    return parser


def _stream(policy: str) -> CompiledMachine:
    from ..lifecycle import stream_machine

    return stream_machine(policy == "drain_on_producer_loss")


def _lease(policy: str) -> CompiledMachine:
    from ..driver.machines import lease_machine

    return lease_machine()


def _driver(policy: str) -> CompiledMachine:
    from ..driver.machines import driver_machine

    return driver_machine()


#: Machines the ``diagram`` command can draw: name -> factory(policy).
MACHINES: dict[str, Callable[[str], CompiledMachine]] = {
    "stream": _stream, "lease": _lease, "driver": _driver}


def _stat_args_error(args: argparse.Namespace) -> str | None:
    import math

    for opt, value in (("--interval", args.interval), ("--stale-after", args.stale_after)):
        if not math.isfinite(value) or value < 0:
            return f"{opt} must be a finite number of seconds >= 0, got {value}"
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
            print("  " + "  ".join(f"{n}={occ[n]}" for n in leaf_names(reader))
                  + f"  (Live={occ.get('Live', 0)})")
            print(f"  unhandled total={st['unhandled_total']}")
            top = sorted(st["transitions"].items(), key=lambda kv: -kv[1])[:6]
            print("  transitions: " + (", ".join(f"{k}={v}" for k, v in top) or "none"))
            if slots is not None:
                listed = " ".join(str(int(x)) for x in slots[: args.limit])
                more = f" ... (+{len(slots) - args.limit})" if len(slots) > args.limit else ""
                print(f"  slots in {args.state} ({len(slots)}): {listed}{more}")
            sys.stdout.flush()
            shown += 1
            if args.count and shown >= args.count:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def _bench(args: argparse.Namespace) -> int:
    from .bench import format_rows, plot_scaling, run_bench, write_json

    for name in ("streams", "events", "leases"):
        if getattr(args, name) <= 0:
            print(f"error: --{name} must be positive, got {getattr(args, name)}", file=sys.stderr)
            return 2
    points = None
    if args.plot:  # fail early if matplotlib is missing
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print('error: --plot needs matplotlib: python -m pip install "streamhsm[plot]"',
                  file=sys.stderr)
            return 2
    rows = run_bench(args.streams, args.events, args.leases, out=sys.stderr)
    print(format_rows(rows))
    if args.plot:
        points = plot_scaling(args.plot, out=sys.stderr)
        print(f"plot written to {args.plot}")
    if args.json:
        write_json(args.json, rows, {"scaling": points} if points else None)
        print(f"results written to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "stat":
        return _stat(args)
    if args.command == "diagram":
        from .diagram import render

        if args.machine != "stream" and args.policy != "default":
            print(f"error: --policy applies to the stream machine only, not {args.machine!r}",
                  file=sys.stderr)
            return 2
        machine = MACHINES[args.machine](args.policy)
        if args.format in ("svg", "png"):
            from .diagram import render_image

            if not args.output:
                print(f"error: --format {args.format} needs --output PATH", file=sys.stderr)
                return 2
            try:
                render_image(machine, args.format, args.output)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
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
    if args.command == "demo":
        from .demo import run_demo

        for name in ("streams", "clients", "seconds"):
            if getattr(args, name) <= 0:
                print(f"error: --{name} must be positive, got {getattr(args, name)}",
                      file=sys.stderr)
                return 2
        run_demo(streams=args.streams, clients=args.clients, seed=args.seed,
                 seconds=args.seconds, out=sys.stdout, verbose=not args.quiet)
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
