"""Graphviz diagrams: composite states drawn so the picture reads like the Mermaid one.

The structural tests read the DOT text; the rendering test runs Graphviz ``dot`` when it is
installed (CI installs it: ``apt-get install -y graphviz``) and requires it to print no warning.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from streamhsm.machine import CompiledMachine, MachineSpec
from streamhsm import registry
from streamhsm.tools.cli import main
from streamhsm.tools.diagram import render_image, to_dot, to_mermaid

EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$")
CLUSTER = re.compile(r"^\s*subgraph cluster_(\w+) \{$")

BUILT_IN = [("stream", "default"), ("stream", "drain_on_producer_loss"),
            ("lease", "default"), ("driver", "default")]


NAMES = [f"{m}:{p}" for m, p in BUILT_IN] + ["toy"]


@pytest.fixture(name="machine", params=NAMES)
def machine_fixture(request: pytest.FixtureRequest,
                    toy_spec: Callable[[], MachineSpec]) -> CompiledMachine:
    """Every built-in machine, and the three-level toy machine of conftest (every kind of edge a
    composite state can have)."""
    if request.param == "toy":
        return toy_spec().compile()
    m, p = request.param.split(":")
    return registry.machine(m, p)


def _parse(dot: str) -> tuple[dict[str, str | None], list[tuple[str, str, dict[str, str]]]]:
    """(node -> enclosing cluster or None, edges as (tail, head, attrs))."""
    where: dict[str, str | None] = {}
    stack: list[str] = []
    edges = []
    for line in dot.splitlines():
        if m := CLUSTER.match(line):
            stack.append(m.group(1))
        elif line.strip() == "}" and stack:
            stack.pop()
        elif m := EDGE.match(line):
            attrs = dict(re.findall(r'(\w+)=("[^"]*"|[^,\]]+)', m.group(3) or ""))
            edges.append((m.group(1), m.group(2), attrs))
        elif m := re.match(r"^\s*(\w+) \[", line):
            where.setdefault(m.group(1), stack[-1] if stack else None)
    return where, edges


def _clusters_of(node: str, where: dict[str, str | None], machine: CompiledMachine) -> set[str]:
    parents = machine.spec.parents
    inner = where.get(node)
    out = set()
    while inner is not None and inner != "Root":
        out.add(inner)
        inner = parents.get(inner)
    return out


def test_cluster_clipping_is_valid(machine: CompiledMachine) -> None:
    """ltail/lhead name an existing cluster that does not hold the edge's other end (the cause of
    dot's "head is inside tail cluster" warning), and every node an edge names is declared."""
    dot = to_dot(machine)
    where, edges = _parse(dot)
    clusters = {m.group(1) for line in dot.splitlines() if (m := CLUSTER.match(line))}
    assert edges
    for tail, head, attrs in edges:
        assert tail in where and head in where, (tail, head)
        if "ltail" in attrs:
            c = attrs["ltail"].removeprefix("cluster_")
            assert c in clusters and c in _clusters_of(tail, where, machine)
            assert c not in _clusters_of(head, where, machine), f"{tail} -> {head}: head inside"
        if "lhead" in attrs:
            c = attrs["lhead"].removeprefix("cluster_")
            assert c in clusters and c in _clusters_of(head, where, machine)
            assert c not in _clusters_of(tail, where, machine), f"{tail} -> {head}: tail inside"


def test_initial_pseudo_states(machine: CompiledMachine) -> None:
    """The machine's start is a filled circle outside every cluster whose one arrow points at the
    initial state (the border of a composite one), never at an invisible anchor; each composite
    has its own filled circle inside pointing at its initial child."""
    dot = to_dot(machine)
    where, edges = _parse(dot)
    initials = machine.spec.initials
    for state, target in initials.items():
        start = f"{state}__start"
        assert re.search(rf"{start} \[shape=circle, style=filled, fillcolor=black", dot)
        assert where[start] == (None if state == "Root" else state)
        out = [(h, a) for t, h, a in edges if t == start]
        assert len(out) == 1
        head, attrs = out[0]
        assert "style" not in attrs  # visible
        if target in machine.spec.parents.values():  # composite: ends on its border
            assert attrs.get("lhead") == f"cluster_{target}" and head == f"{target}__start"
        else:
            assert head == target and "lhead" not in attrs
    anchors = {n for n in where if n.endswith("__anchor")}
    for tail, head, attrs in edges:
        if head in anchors:
            assert tail not in {f"{s}__start" for s in initials}
            assert attrs.get("style") == "invis"  # only the layout edges that sink the anchor


def test_stream_machine_edges_read_like_mermaid() -> None:
    """Live --> Closed leaves Live's border; Live --> Draining leaves the border and comes back in
    to Draining; nothing visible leads from the start into Draining."""
    dot = to_dot(registry.machine("stream"))
    _, edges = _parse(dot)
    to_closed = [(t, a) for t, h, a in edges if h == "Closed"]
    assert to_closed == [("Live__anchor", {
        "ltail": "cluster_Live", "label": '"DriverShutdown / StreamIdle / Close"'})]
    out = [(h, a) for t, h, a in edges if t == "Live__anchor" and a.get("style") != "invis"]
    turn = next(h for h, a in out if a.get("label") == '"DriverDraining"')
    assert turn.startswith("turn__")
    assert [(h, a.get("constraint")) for t, h, a in edges if t == turn] == [("Draining", "false")]
    into_draining = [t for t, h, a in edges if h == "Draining"]
    assert sorted(into_draining) == [turn]  # only the Live --> Draining transition


def test_dot_renders_without_warnings(machine: CompiledMachine, tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed (CI: apt-get install -y graphviz)")
    proc = subprocess.run(["dot", "-Tsvg"], input=to_dot(machine), text=True,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stderr == ""
    assert render_image(machine, "png", str(tmp_path / "x.png")) == ""
    assert (tmp_path / "x.png").read_bytes().startswith(b"\x89PNG")


def test_cli_passes_dot_warnings_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\ncat > \"$3\"\necho 'Warning: something odd' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert main(["diagram", "--format", "svg", "--output", str(tmp_path / "x.svg")]) == 0
    assert "dot: Warning: something odd" in capsys.readouterr().err


def test_root_handlers_are_drawn_as_a_note(toy_spec: Callable[[], MachineSpec]) -> None:
    """A machine with handlers on Root itself draws (it used to raise IndexError)."""
    toy = toy_spec().compile()
    assert "note right of A : Root (any state) handles Reset -> Root" in to_mermaid(toy)
    assert 'Root__note [shape=note, label="Root (any state) handles Reset -> Root"]' in to_dot(toy)
