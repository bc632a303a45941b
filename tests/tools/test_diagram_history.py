"""Issue 20: diagrams of history pseudostates, final states and completion transitions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamhsm import MachineSpec
from streamhsm.compiler import CompiledMachine
from streamhsm.tools.diagram import render, render_image


def _machine() -> CompiledMachine:
    s = MachineSpec("maintained", ["Start", "Maintain", "Resume", "Back", "Finish"], "Serving")
    s.flag("ok")
    s.state("Serving", initial="Idle").state("Idle", "Serving")
    s.state("Streaming", "Serving", initial="Playing").state("Playing", "Streaming")
    s.final("Finished", "Serving").state("Maintenance").state("Archive").state("Check")
    s.on("Idle", "Start", "Streaming").on("Serving", "Maintain", "Maintenance")
    s.on("Maintenance", "Resume", "Serving", history="deep")
    s.on("Maintenance", "Back", "Serving", history="shallow")
    s.on("Streaming", "Finish", "Finished")
    s.history_default("Serving", "Streaming", history="deep")
    s.on_completion("Serving", "Archive", guard="ok").on_completion("Serving", "Check")
    s.on_completion("Check", "Serving", history="shallow")
    return s.compile()


def test_mermaid_draws_history_finals_and_completions() -> None:
    text = render(_machine(), "mermaid")
    lines = [line.strip() for line in text.splitlines()]
    assert 'state "H*" as Serving__Hdeep' in lines and 'state "H" as Serving__H' in lines
    assert "Serving__Hdeep --> Streaming" in lines          # the deep default, unlabelled
    assert not any(line.startswith("Serving__H -->") for line in lines)  # no shallow default
    assert 'state "◉ Finished" as Finished' in lines       # the bull's-eye
    assert "Maintenance --> Serving__Hdeep : Resume" in lines
    assert "Maintenance --> Serving__H : Back" in lines
    assert "Serving --> Archive : [ok]" in lines and "Serving --> Check" in lines
    assert "Check --> Serving__H" in lines                  # a completion with history


def test_dot_draws_history_finals_and_completions(tmp_path: Path) -> None:
    m = _machine()
    text = render(m, "dot")
    assert 'Serving__Hdeep [shape=circle, label="H*"' in text
    assert "Serving__Hdeep -> Streaming__start [lhead=cluster_Streaming];" in text
    assert 'Finished [shape=point, width=0.15, peripheries=2, xlabel="Finished"];' in text
    assert 'Maintenance -> Serving__Hdeep [label="Resume"];' in text
    assert 'label="[ok]"' in text and 'Check -> Serving__H [label=""];' in text
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    assert render_image(m, "svg", str(tmp_path / "m.svg")) == ""  # no warnings
