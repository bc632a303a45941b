"""The command line: ``python -m streamhsm demo`` and ``diagram``."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from streamhsm import DriverState
from streamhsm.tools.cli import main
from streamhsm.tools.demo import run_demo

DOCS = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def test_demo_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "streamhsm", "demo", "--streams", "200",
                           "--clients", "800", "--seconds", "6"],
                          capture_output=True, text=True, timeout=300, check=True)
    assert "shutdown requested: draining" in proc.stdout
    assert f"driver {DriverState.STOPPED.name}" in proc.stdout
    assert "summary:" in proc.stdout and "stream_hsm_unhandled" in proc.stdout


@pytest.mark.parametrize("seed", [3, 4])
def test_demo_is_reproducible_and_consistent(seed: int) -> None:
    a = run_demo(streams=300, clients=1500, seconds=8, seed=seed, out=None)
    b = run_demo(streams=300, clients=1500, seconds=8, seed=seed, out=io.StringIO())
    assert a == b
    c = a["counters"]
    assert isinstance(c, dict)
    # after the shutdown every stream is Closed and every lease has ended exactly once
    streams = a["streams"]
    assert isinstance(streams, dict)
    assert streams["init"] == streams["active"] == streams["draining"] == 0
    assert streams["closed"] >= 300 // 4  # configured streams plus on-demand ones still leased
    assert c["attaches_ok"] == c["leases_detached"] + c["leases_expired"] + c["leases_revoked"]
    assert a["revoke_notices"] == c["attaches_ok"]
    assert c["leases_expired"] > 0 and c["leases_revoked"] > 0  # flaky clients, final shutdown
    assert c["streams_provisioned"] == c["streams_closed"]
    assert c["epoch_bumps"] >= c["streams_provisioned"]
    assert c["stream_hsm_unhandled"] == 0 and c["lease_hsm_unhandled"] == 0
    # the listed reasons add up to the counter, the attach made during the drain included
    rejected = a["rejected"]
    assert isinstance(rejected, dict)
    assert c["attaches_rejected"] == sum(rejected.values()) and rejected["driver draining"] == 1
    # every provisioned stream is accounted for: recycled slots plus the slots held at the end
    slots = a["stream_slots"]
    assert isinstance(slots, dict)
    assert slots["configured"] == 300 // 4
    assert slots["configured"] + slots["created_on_demand"] == c["streams_provisioned"]
    assert slots["recycled"] + slots["held_at_end"] == c["streams_provisioned"]
    assert slots["recycled"] > 0 and slots["held_at_end"] == sum(streams.values())


def test_demo_summary_text_adds_up() -> None:
    out = io.StringIO()
    a = run_demo(streams=200, clients=800, seconds=6, seed=2, out=out, verbose=False)
    text = out.getvalue()
    c, slots = a["counters"], a["stream_slots"]
    assert isinstance(c, dict) and isinstance(slots, dict)
    assert f"attach rejections: {c['attaches_rejected']} (= attaches_rejected" in text
    assert (f"streams provisioned: {c['streams_provisioned']} = {slots['configured']} configured "
            f"+ {slots['created_on_demand']} created on demand") in text
    assert f"{slots['recycled']} on-demand streams went idle: closed" in text
    assert f"{slots['held_at_end']} slots still held at the end" in text


def test_demo_with_many_streams_keeps_id_ranges_disjoint() -> None:
    """More than 40000 streams used to make the static ids overlap the dynamic range."""
    a = run_demo(streams=40_004, clients=100, seconds=1, seed=1, out=None)
    slots = a["stream_slots"]
    assert isinstance(slots, dict) and slots["configured"] == 10_001


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"streams": 0}, ValueError, "streams must be >= 1, got 0"),
    ({"seconds": -1}, ValueError, "seconds must be >= 1, got -1"),
    ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ({"clients": 2.5}, TypeError, "clients must be an int, got float 2.5"),
])
def test_run_demo_rejects_bad_numbers(kw: dict[str, object], exc: type[Exception],
                                      match: str) -> None:
    with pytest.raises(exc, match=match):
        run_demo(**{"streams": 10, "clients": 10, "seconds": 1, "out": None, **kw})  # type: ignore[arg-type]


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
    assert "machine 'lease' has no policy 'drain_on_producer_loss'; its policies: ['default']" in capsys.readouterr().err
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
    text = capsys.readouterr().out
    for op in ("StreamTable.dispatch", "dispatch_many", "broadcast", "driver poll",
               "per-stream state"):
        assert op in text
    data = json.loads(out.read_text())
    rows = {r["operation"].split(" (")[0]: r for r in data["rows"]}
    assert rows["per-stream state"]["time_ns"] == 14  # uint8 state + uint8 flags + uint64 counter + int32 free
    assert all(r["time_ns"] > 0 for r in data["rows"])
    assert rows["StreamTable.dispatch"]["ratio"] > 0


def test_image_formats_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere
    assert main(["diagram", "--format", "svg", "--output", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert "needs Graphviz's 'dot' command" in err and "apt-get install graphviz" in err
    assert main(["diagram", "--format", "png"]) == 2
    assert "--format png needs --output PATH" in capsys.readouterr().err


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
