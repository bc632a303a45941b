"""Graphviz: a transition from a composite to itself or to one of its own descendants leaves
the cluster's border and comes back in as one bent line, with no visible point or loose end."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streamhsm.machine import MachineSpec
from streamhsm.tools.diagram import to_dot


def composite_loops() -> MachineSpec:
    spec = MachineSpec("loops", ["Reset", "Go", "Tick"], initial="A")
    spec.state("A", initial="A1").state("A1", parent="A").state("A2", parent="A").state("B")
    spec.on("A", "Reset", "A")  # a composite to itself
    spec.on("A", "Go", "A2")  # a composite to its own child
    spec.on("A1", "Tick", "B").on("B", "Tick", "A")
    return spec


def _plain(dot: str) -> tuple[dict[str, list[str]], list[tuple[str, str, list[float], str]]]:
    """Nodes (name -> fields) and edges (tail, head, points, style) of ``dot -Tplain``."""
    out = subprocess.run(["dot", "-Tplain"], input=dot, text=True, capture_output=True,
                         timeout=60, check=True).stdout
    nodes, edges = {}, []
    for line in out.splitlines():
        f = line.split()
        if f[0] == "node":
            nodes[f[1]] = f
        elif f[0] == "edge":
            n = int(f[3])
            points = [float(x) for x in f[4:4 + 2 * n]]
            edges.append((f[1], f[2], points, f[-2]))
    return nodes, edges


def test_turns_are_invisible_and_unclipped() -> None:
    dot = to_dot(composite_loops().compile())
    turns = [ln for ln in dot.splitlines() if ln.strip().startswith("turn__") and "->" not in ln]
    assert len(turns) == 2
    for ln in turns:
        assert "style=invis" in ln and "width=0" in ln and "height=0" in ln
    halves = [ln for ln in dot.splitlines() if "turn__" in ln and "->" in ln]
    assert all("headclip=false" in ln for ln in halves if "-> turn__" in ln)
    assert all("tailclip=false" in ln for ln in halves if ln.strip().startswith("turn__"))


def test_the_two_halves_of_a_turn_meet() -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed (CI: apt-get install -y graphviz)")
    nodes, edges = _plain(to_dot(composite_loops().compile()))
    turns = [n for n in nodes if n.startswith("turn__")]
    assert len(turns) == 2
    for turn in turns:
        assert nodes[turn][-4] == "invis"  # node ... style shape color fillcolor
        (out_points,) = [p for t, h, p, _ in edges if h == turn]
        (in_points,) = [p for t, h, p, _ in edges if t == turn]
        # where the first half ends, the second begins: one line through an unseen bend
        assert out_points[-2:] == pytest.approx(in_points[:2], abs=1e-3)
