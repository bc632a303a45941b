"""The command line's rough edges: one ``error:`` line and exit code 2 for every mistake (never a
traceback), ``--version``, the program name in the usage line, and the help text."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import streamhsm
from streamhsm.errors import TableFullError
from streamhsm.tools import cli
from streamhsm.tools.cli import main, prog_name


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len("error: "):-1]


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
    (["diagram", "--machine", "driver", "--policy", "drain_on_producer_loss", "--format", "png",
      "--output", "x.png"], "machine 'driver' has no policy 'drain_on_producer_loss'; its policies: ['default']"),
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


def test_missing_graphviz_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere
    assert main(["diagram", "--format", "png", "--output", str(tmp_path / "x.png")]) == 2
    assert "needs Graphviz's 'dot' command" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "x.png").exists()


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
    assert "seconds between refreshes, finite and >= 0 (default: 1.0)" in stat
    assert "reported stale, finite and >= 0 (default: 3.0)" in stat
    assert "slots to list, >= 0 (default: 20)" in stat
    demo = _help(["demo"], capsys)
    for text in ("(default: 10000)", "(default: 50000)", "(default: 20)", "(default: 1)"):
        assert text in demo
    bench = _help(["bench"], capsys)
    assert "(default: 1000000)" in bench and "(default: 10000000)" in bench
    assert "default: None" not in bench + demo + stat and "default: False" not in demo
