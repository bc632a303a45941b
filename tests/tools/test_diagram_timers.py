"""Issue 21: diagrams of timers (on their owning state, Root's in the note) and of handlers that
restart them (``Event / restart name``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamhsm import MachineSpec
from streamhsm.compiler import CompiledMachine
from streamhsm.tools.diagram import render, render_image

S = 1_000_000_000


def _machine() -> CompiledMachine:
    s = MachineSpec("leased", ["Keep", "Expire", "Beat", "Poll", "Done", "Open", "Nudge"], "Live")
    s.flag("sticky")
    s.state("Live", initial="Fresh").state("Fresh", "Live").state("Stale", "Live")
    s.state("Gone")
    s.on("Live", "Keep", restart="lease")                       # internal, restarts
    s.on("Fresh", "Poll", "Stale", restart=["lease", "poll"])    # a transition that restarts
    s.on("Fresh", "Nudge", "Stale")      # same ends as the restart edge: drawn apart from it
    s.on("Stale", "Poll", "Fresh")
    s.on("Live", "Expire", "Gone", guard="!sticky").on("Live", "Expire", guard="sticky")
    s.on("Gone", "Open", "Live").on("Root", "Beat").on("Live", "Done", "Gone")
    s.after("Live", 2 * S, "Expire", name="lease")
    s.every("Fresh", 500_000_000, "Poll", name="poll")
    s.after("Gone", 90_000_000_000, "Open")
    s.every("Root", S, "Beat")
    return s.compile()


def test_mermaid_lists_timers_on_their_states_and_restarts_on_handlers() -> None:
    lines = [line.strip() for line in render(_machine(), "mermaid").splitlines()]
    assert "Live : after 2 s -> Expire" in lines                 # a composite owner
    assert "Fresh : every 500 ms -> Poll" in lines               # a leaf inside it
    assert "Gone : after 1.5 min -> Open" in lines
    assert "Live : handles Keep / restart lease, Expire [sticky]" in lines
    assert "Fresh --> Stale : Poll / restart lease, poll" in lines
    assert "Fresh --> Stale : Nudge" in lines
    assert "Stale --> Fresh : Poll" in lines
    note = next(line for line in lines if line.startswith("note right of Live"))
    assert note == "note right of Live : Root (any state) handles Beat; every 1 s -> Beat"
    # a state without timers gets no timer line
    assert not any(line.startswith("Stale :") for line in lines)


def test_dot_lists_timers_in_the_state_box_and_restarts_on_edges(tmp_path: Path) -> None:
    m = _machine()
    text = render(m, "dot")
    assert ('label=<Live<BR/><FONT POINT-SIZE="10">handles Keep / restart lease, Expire<BR/>'
            '[sticky]<BR/>after 2 s -&gt; Expire</FONT>>; style=rounded;') in text
    assert ('Fresh [label=<Fresh<BR/><FONT POINT-SIZE="10">every 500 ms -&gt; Poll</FONT>>];'
            in text)
    assert 'Gone [label=<Gone<BR/><FONT POINT-SIZE="10">after 1.5 min -&gt; Open</FONT>>];' in text
    assert 'Fresh -> Stale [label="Poll / restart lease, poll"];' in text
    assert 'Fresh -> Stale [label="Nudge"];' in text
    assert 'Stale [label="Stale"];' in text
    assert ('Root__note [shape=note, label="Root (any state) handles Beat; every 1 s -> Beat"];'
            in text)
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    assert render_image(m, "svg", str(tmp_path / "m.svg")) == ""  # no warnings


def test_a_machine_with_only_root_timers_gets_a_note() -> None:
    s = MachineSpec("ticker", ["Tick"], "On")
    s.state("On").every("Root", 7, "Tick")
    m = s.compile()
    assert "note right of On : Root (any state) every 7 ns -> Tick" in render(m, "mermaid")
    assert 'label="Root (any state) every 7 ns -> Tick"' in render(m, "dot")
