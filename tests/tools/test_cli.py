"""The command line (``python -m streamhsm``, the ``streamhsm`` script): each command's output
(demo, diagram, bench), one ``error:`` line and exit code 2 for every mistake (never a
traceback), ``--version``, the program name in the usage line, and the help text."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import streamhsm
from streamhsm import DriverState
from streamhsm.errors import TableFullError
from streamhsm.tools import cli
from streamhsm.tools.cli import main, prog_name

DOCS = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len("error: "):-1]


@pytest.mark.smoke
def test_demo_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "streamhsm", "demo", "--streams", "200",
                           "--clients", "800", "--seconds", "6"],
                          capture_output=True, text=True, timeout=300, check=True)
    assert "shutdown requested: draining" in proc.stdout
    assert f"driver {DriverState.STOPPED.name}" in proc.stdout
    assert "summary:" in proc.stdout and "stream_hsm_unhandled" in proc.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--clients", "0"], "--clients must be positive, got 0"),
    (["demo", "--streams", "-3"], "--streams must be positive, got -3"),
    (["demo", "--streams", "8388608"], "--streams must be at most 8388607, got 8388608"),
    (["demo", "--seconds", "1000001"], "--seconds must be at most 1000000, got 1000001"),
    (["demo", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["bench", "--events", "-1"], "--events must be positive, got -1"),
    (["bench", "--streams", "2147483648"], "--streams must be at most 2147483647, got 2147483648"),
    (["bench", "--leases", "0"], "--leases must be positive, got 0"),
])
def test_bad_numbers_end_in_one_error_line(argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n" and captured.out == ""


def test_unknown_command_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2


@pytest.mark.parametrize("machine", ["stream", "lease", "driver"])
@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_diagram_lists_every_state_and_handler(machine: str, fmt: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from streamhsm import registry

    assert main(["diagram", "--machine", machine, "--format", fmt]) == 0
    text = capsys.readouterr().out
    m = registry.machine(machine)
    for name in m.state_names[1:]:
        assert name in text
    for (_, event), _target in m.spec.handlers.items():
        assert event in text


def test_diagram_policy_only_for_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "--machine", "lease", "--policy", "drain_on_producer_loss"]) == 2
    assert ("machine 'lease' has no policy 'drain_on_producer_loss'; its policies: ['default']"
            in capsys.readouterr().err)
    assert main(["diagram", "--policy", "drain_on_producer_loss"]) == 0
    assert "Active --> Draining : ProducerDetached" in capsys.readouterr().out


def _embedded(marker: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"<!-- diagram:{marker} -->")
    block = text[start:text.index("<!-- /diagram -->", start)]
    return block.split("```mermaid\n", 1)[1].rsplit("```", 1)[0]


@pytest.mark.parametrize(("marker", "argv"), [
    ("stream:default", ["diagram"]),
    ("stream:drain_on_producer_loss", ["diagram", "--policy", "drain_on_producer_loss"]),
    ("lease:default", ["diagram", "--machine", "lease"]),
    ("driver:default", ["diagram", "--machine", "driver"]),
])
def test_design_doc_diagrams_match_the_command(marker: str, argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert _embedded(marker) == capsys.readouterr().out, f"regenerate docs/design.md ({marker})"


def test_bench_command_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "bench.json"
    assert main(["bench", "--streams", "2000", "--events", "20000", "--leases", "2000",
                 "--json", str(out)]) == 0
    text, err = capsys.readouterr()
    for op in ("StreamTable.dispatch", "dispatch_many", "broadcast", "driver poll",
               "per-stream state"):
        assert op in text
    data = json.loads(out.read_text())
    rows = {r["operation"].split(" (")[0]: r for r in data["rows"]}
    # uint8 state + uint8 flags + uint64 counter + int32 free
    assert rows["per-stream state"]["time_ns"] == 14
    assert all(r["time_ns"] > 0 for r in data["rows"])
    assert rows["StreamTable.dispatch"]["ratio"] > 0
    # 2,000 streams fit in the caches: the batch rows keep their ratios but carry no verdict
    batch = [r for r in data["rows"] if r["operation"].startswith(("dispatch_many", "broadcast"))]
    assert batch and all(r["status"] == "" and r["target"] == "n/a below 100,000 streams"
                         for r in batch if r["ratio"] is not None)
    assert "carry no verdict" in err


def test_the_readme_states_the_int32_target_bench_checks() -> None:
    from pathlib import Path

    from streamhsm.tools.bench import INT32_SLOTS_TARGET

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    claim = re.search(r"at most ([\d.]+)x the bare table loop with int64 slots", readme)
    assert claim and float(claim.group(1)) == INT32_SLOTS_TARGET


def test_the_bench_duration_is_stated_alike_everywhere() -> None:
    """README, docs/performance.md and `bench --help` give the same duration for the bench."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    perf = (root / "docs" / "performance.md").read_text(encoding="utf-8")
    help_text = " ".join(cli.build_parser().format_help().split())
    said = {re.search(r"streamhsm bench` times every hot path .*?\(about (\d+) seconds\)",
                      readme).group(1),  # type: ignore[union-attr]
            re.search(r"met / missed \(about (\d+) s\)", perf).group(1),  # type: ignore[union-attr]
            re.search(r"beside its floor \(about (\d+) seconds\)", help_text).group(1)}  # type: ignore[union-attr]
    assert len(said) == 1, said


def test_bench_plot_goes_up_to_streams() -> None:
    from streamhsm.tools.bench import PLOT_SIZES, plot_sizes

    assert plot_sizes(2000) == [1_000, 2000]
    assert plot_sizes(1_000_000) == [1_000, 10_000, 100_000, 1_000_000]
    assert plot_sizes(500) == [500]
    assert plot_sizes(10**8)[:-1] == list(PLOT_SIZES)


def test_argparse_mistakes_end_in_an_error_line_after_the_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    """What the README says: argparse's own refusals print the usage, then one error line."""
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--streams", "abc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage:") and len([ln for ln in err if "error:" in ln]) == 1
    assert err[-1].endswith("error: argument --streams: invalid int value: 'abc'")


def test_image_formats_call_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A stand-in 'dot' records its arguments and its stdin: the DOT text is piped to it."""
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\ncat > \"$3\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # the stand-in shadows a real dot
    out = tmp_path / "lease.png"
    assert main(["diagram", "--machine", "lease", "--format", "png", "--output", str(out)]) == 0
    assert (tmp_path / "args").read_text().split() == ["-Tpng", "-o", str(out)]
    assert out.read_text().startswith('digraph "lease"')
    assert "diagram written to" in capsys.readouterr().out


def test_text_diagram_to_file(tmp_path: Path) -> None:
    out = tmp_path / "stream.dot"
    assert main(["diagram", "--format", "dot", "--output", str(out)]) == 0
    assert out.read_text().startswith('digraph "stream"')


def test_output_in_a_missing_directory_as_a_module() -> None:
    """The issue's example, end to end: no traceback, one line, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "streamhsm", "diagram", "--output",
                           "/nonexistent/dir/x.mmd"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert _one_error_line(proc.stderr) == "/nonexistent/dir/x.mmd: No such file or directory"


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "svg", "png"])
def test_unwritable_outputs(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    # a stand-in dot, so svg/png reach the output path with or without Graphviz installed
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ncat > \"$3\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = {
        str(tmp_path / "missing" / f"x.{fmt}"): "No such file or directory",
        str(a_file / f"x.{fmt}"): "Not a directory",  # the parent is a file (fails even as root)
        str(tmp_path): "Is a directory",
    }
    for path, reason in cases.items():
        assert main(["diagram", "--format", fmt, "--output", path]) == 2
        captured = capsys.readouterr()
        assert _one_error_line(captured.err) == f"{path}: {reason}" and captured.out == ""


@pytest.mark.parametrize(("argv", "message"), [
    (["diagram", "--format", "svg"], "--format svg needs --output PATH"),
    (["diagram", "--format", "png"], "--format png needs --output PATH"),
    (["diagram", "--machine", "driver", "--policy", "drain_on_producer_loss", "--format", "png",
      "--output", "x.png"],
     "machine 'driver' has no policy 'drain_on_producer_loss'; its policies: ['default']"),
])
def test_bad_format_combinations(argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert _one_error_line(capsys.readouterr().err) == message


def test_dot_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: <stdin>: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["diagram", "--format", "svg", "--output", str(tmp_path / "x.svg")]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        "dot failed (1): Error: <stdin>: syntax error in line 1")
    assert not (tmp_path / "x.svg").exists()  # no empty file left behind


def test_missing_graphviz_is_one_line_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere
    for fmt in ("svg", "png"):
        out = tmp_path / f"x.{fmt}"
        assert main(["diagram", "--format", fmt, "--output", str(out)]) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert "needs Graphviz's 'dot' command" in err and "apt-get install graphviz" in err
        assert not out.exists()


def test_stat_of_a_bad_name_is_one_line() -> None:
    """``stat ..`` used to end in an OSError traceback (the wording is the stat command's)."""
    proc = subprocess.run([sys.executable, "-m", "streamhsm", "stat", ".."],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    _one_error_line(proc.stderr)


@pytest.mark.parametrize(("exc", "message"), [
    (PermissionError(13, "Permission denied", "/root/x"), "/root/x: Permission denied"),
    (OSError(19, "No such device"), "No such device"),
    (ValueError("bad value 7"), "bad value 7"),
    (TableFullError("table is full (capacity 4)"), "table is full (capacity 4)"),
    (MemoryError("Unable to allocate 8.00 TiB"),
     "not enough memory (Unable to allocate 8.00 TiB); try smaller numbers"),
])
@pytest.mark.parametrize("command", ["demo", "bench", "stat", "diagram"])
def test_every_command_reports_expected_errors_in_one_line(
        command: str, exc: BaseException, message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setitem(cli.COMMANDS, command, fail)
    argv = [command, "name"] if command == "stat" else [command]
    assert main(argv) == 2
    assert _one_error_line(capsys.readouterr().err) == message


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "demo", interrupted)
    assert main(["demo"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_programming_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(args: argparse.Namespace) -> int:
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "demo", bug)
    with pytest.raises(KeyError):
        main(["demo"])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"streamhsm {streamhsm.__version__}\n"


@pytest.mark.parametrize(("argv0", "prog"), [
    ("/usr/local/bin/streamhsm", "streamhsm"),
    ("streamhsm", "streamhsm"),
    ("streamhsm.exe", "streamhsm"),
    ("/src/streamhsm/__main__.py", "python -m streamhsm"),
    ("-c", "python -m streamhsm"),
    ("", "python -m streamhsm"),
])
def test_prog_name(argv0: str, prog: str) -> None:
    assert prog_name(argv0) == prog


def test_usage_names_the_console_script(tmp_path: Path) -> None:
    """Run as the ``streamhsm`` console script (the wrapper pip writes), the usage line says
    ``streamhsm``; run with ``-m`` it says ``python -m streamhsm``."""
    script = tmp_path / "streamhsm"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom streamhsm.tools.cli import main\n"
                      "sys.exit(main())\n")
    script.chmod(0o755)
    as_script = subprocess.run([str(script), "diagram", "--help"], capture_output=True,
                               text=True, timeout=120, check=True)
    assert as_script.stdout.startswith("usage: streamhsm diagram ")
    as_module = subprocess.run([sys.executable, "-m", "streamhsm", "--help"], capture_output=True,
                               text=True, timeout=120, check=True)
    assert as_module.stdout.startswith("usage: python -m streamhsm ")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser("streamhsm").parse_args([*argv, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped


def test_diagram_help_lists_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help([], capsys)
    assert "state diagram (Mermaid, DOT, SVG or PNG)" in top
    text = _help(["diagram"], capsys)
    for word in ("Mermaid", "DOT", "SVG", "PNG", "{mermaid,dot,svg,png}", "(default: mermaid)",
                 "(default: stream)"):
        assert word in text


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    stat = _help(["stat", "name"], capsys)
    assert "seconds between refreshes, 0 to 86400 (default: 1.0)" in stat
    assert "reported stale, finite and >= 0 (default: 3.0)" in stat
    assert "slots to list, >= 0 (default: 20)" in stat
    demo = _help(["demo"], capsys)
    for text in ("(default: 10000)", "(default: 50000)", "(default: 20)", "(default: 1)"):
        assert text in demo
    bench = _help(["bench"], capsys)
    assert "(default: 1000000)" in bench and "(default: 10000000)" in bench
    assert "default: None" not in bench + demo + stat and "default: False" not in demo
