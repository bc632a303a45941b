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

from streamhsm import registry
from streamhsm.compiler import CompiledMachine
from streamhsm.machine import MachineSpec
from streamhsm.tools.cli import main
from streamhsm.tools.diagram import render_image, to_dot, to_mermaid

EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$")
CLUSTER = re.compile(r"^\s*subgraph cluster_(\w+) \{$")

BUILT_IN = [("stream", "default"), ("stream", "drain_on_producer_loss"),
            ("lease", "default"), ("driver", "default")]


NAMES = [f"{m}:{p}" for m, p in BUILT_IN] + ["toy", "qhsmtst"]


def qhsmtst_spec() -> MachineSpec:
    """Samek's QHsmTst (events A..I) with its flag ``foo`` as a guard: the top-level initial
    transition goes to the grandchild ``s2``, ``s``'s to the grandchild ``s11``, ``s2``'s to the
    grandchild ``s211``. QHsmTst's actions set and clear ``foo``; here the caller would."""
    spec = MachineSpec("qhsmtst", list("ABCDEFGHI"), initial="s2").flag("foo")
    spec.state("s", initial="s11").state("s1", "s", initial="s11").state("s11", "s1")
    spec.state("s2", "s", initial="s211").state("s21", "s2", initial="s211")
    spec.state("s211", "s21")
    spec.on("s", "E", "s11").on("s", "I", guard="foo")
    spec.on("s1", "A", "s1").on("s1", "B", "s11").on("s1", "C", "s2")
    spec.on("s1", "D", "s", guard="!foo").on("s1", "F", "s211").on("s1", "I")
    spec.on("s11", "D", "s1", guard="foo").on("s11", "G", "s211").on("s11", "H", "s")
    spec.on("s2", "C", "s1").on("s2", "F", "s11").on("s2", "I", guard="!foo")
    spec.on("s21", "A", "s21").on("s21", "B", "s211").on("s21", "G", "s1")
    spec.on("s211", "D", "s21").on("s211", "H", "s")
    return spec


@pytest.fixture(name="machine", params=NAMES)
def machine_fixture(request: pytest.FixtureRequest,
                    toy_spec: Callable[[], MachineSpec]) -> CompiledMachine:
    """Every built-in machine, the three-level toy machine of conftest (every kind of edge a
    composite state can have) and QHsmTst (guards, deep initial transitions)."""
    if request.param == "toy":
        return toy_spec().compile()
    if request.param == "qhsmtst":
        return qhsmtst_spec().compile()
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


@pytest.mark.smoke
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


def _mermaid_lines(machine: CompiledMachine) -> list[str]:
    return [line.strip() for line in to_mermaid(machine).splitlines()]


def test_guards_are_shown_on_their_edges() -> None:
    """QHsmTst's guarded handlers: ``D [!foo]`` from s1 to s, ``D [foo]`` from s11 to s1, ``I``
    handled in place in s while foo is set and in s2 while it is clear (s1's ``I`` unguarded)."""
    machine = qhsmtst_spec().compile()
    lines = _mermaid_lines(machine)
    for line in ("s1 --> s : D [!foo]", "s11 --> s1 : D [foo]", "s : handles I [foo]",
                 "s2 : handles I [!foo]", "s1 : handles I", "s211 --> s21 : D"):
        assert line in lines, line
    labelled = [line for line in lines if "foo" in line]
    assert len(labelled) == 4, labelled  # nothing else is guarded
    where, edges = _parse(to_dot(machine))
    by_label = {a["label"]: (t, h, a) for t, h, a in edges if "label" in a}
    tail, turn, attrs = by_label['"D [!foo]"']  # s1 (a cluster) to its ancestor s: out and back
    assert (tail, attrs.get("ltail")) == ("s1__anchor", "cluster_s1")
    assert [(h, a.get("lhead")) for t, h, a in edges if t == turn] == [("s__start", "cluster_s")]
    tail, turn, _ = by_label['"D [foo]"']
    assert tail == "s11"
    assert [(h, a.get("lhead")) for t, h, a in edges if t == turn] == [("s1__start", "cluster_s1")]
    dot = to_dot(machine)
    assert 'label=<s<BR/><FONT POINT-SIZE="10">handles I [foo]</FONT>>' in dot
    assert 'label=<s2<BR/><FONT POINT-SIZE="10">handles I [!foo]</FONT>>' in dot
    assert 'label=<s1<BR/><FONT POINT-SIZE="10">handles I</FONT>>' in dot


def test_every_guarded_handler_is_an_edge_of_its_own() -> None:
    """Several handlers of one (state, event) are several edges, also when they share a target;
    unguarded handlers between two states still share one edge; a guarded Root handler is in the
    note."""
    spec = MachineSpec("door", ["Push", "Kick", "Slam"], initial="Closed")
    spec.flag("locked").flag("jammed")
    spec.state("Closed").state("Open").state("Broken")
    spec.on("Closed", "Push", "Open", guard="!locked").on("Closed", "Push", guard="locked")
    spec.on("Closed", "Kick", "Broken", guard="jammed").on("Closed", "Kick", "Open")
    spec.on("Open", "Kick", "Closed", guard="jammed").on("Open", "Push", "Closed")
    spec.on("Open", "Kick", "Closed").on("Open", "Slam", "Closed", guard="!jammed")
    spec.on("Root", "Push", guard="jammed")
    machine = spec.compile()
    lines = _mermaid_lines(machine)
    edges = [line for line in lines if "-->" in line and not line.startswith("[*]")]
    assert edges == ["Closed --> Open : Push [!locked]", "Closed --> Broken : Kick [jammed]",
                     "Closed --> Open : Kick", "Open --> Closed : Kick [jammed]",
                     "Open --> Closed : Push / Kick", "Open --> Closed : Slam [!jammed]"]
    assert "Closed : handles Push [locked]" in lines
    assert "note right of Closed : Root (any state) handles Push [jammed]" in lines
    _, dot_edges = _parse(to_dot(machine))
    assert [(t, h, a["label"]) for t, h, a in dot_edges if "label" in a] == [
        ("Closed", "Open", '"Push [!locked]"'), ("Closed", "Broken", '"Kick [jammed]"'),
        ("Closed", "Open", '"Kick"'), ("Open", "Closed", '"Kick [jammed]"'),
        ("Open", "Closed", '"Push / Kick"'), ("Open", "Closed", '"Slam [!jammed]"')]


def test_deep_initial_arrows_point_at_the_declared_state() -> None:
    """QHsmTst's top-level start points at the grandchild s2 (a composite: at its border), s's
    initial arrow at its grandchild s11 inside s1, s2's at its grandchild s211 inside s21."""
    machine = qhsmtst_spec().compile()
    assert machine.initial_entries == tuple(machine.state_code(s) for s in ("s", "s2", "s21",
                                                                            "s211"))
    lines = to_mermaid(machine).splitlines()
    assert lines[1] == "    [*] --> s2"
    block_of_s = lines[lines.index("    state s {") + 1]
    assert block_of_s == "        [*] --> s11"
    assert lines[lines.index("        state s2 {") + 1] == "            [*] --> s211"
    where, edges = _parse(to_dot(machine))
    starts = {t: (h, a) for t, h, a in edges if t.endswith("__start")}
    assert starts["Root__start"] == ("s2__start", {"lhead": "cluster_s2"})
    assert starts["s__start"] == ("s11", {}) and where["s11"] == "s1"
    assert starts["s2__start"] == ("s211", {}) and where["s211"] == "s21"
    assert where["s__start"] == "s" and where["s2__start"] == "s2"
    # a note about Root's handlers goes beside the top-level state that holds the initial one
    with_root = qhsmtst_spec().on("Root", "I", "Root").compile()
    assert "    note right of s : Root (any state) handles I -> Root" in to_mermaid(with_root)


def test_the_diagram_command_still_draws_the_built_in_machines(
        capsys: pytest.CaptureFixture[str]) -> None:
    for m, p in BUILT_IN:
        assert main(["diagram", "--machine", m, "--policy", p, "--format", "dot"]) == 0
        assert capsys.readouterr().out == to_dot(registry.machine(m, p))
