"""Issue 20: history and completion scenarios ported from Hsm.jl, and bad input.

Ported (learned from, not copied) from DarrylGamroth/Hsm.jl at commit
5bbfcbe4a4031ff91e9b407568cef8171aa72384, ``test/test_history.jl``, and at commit
5fea3b37b73f40f1193788fba01ab7475bd62444, ``test/test_completion.jl`` (requirements
HSM-HIST-001/002, HSM-FINAL-001/002, HSM-COMP-001/002 of its ``SEMANTICS.md``). Each scenario is
replayed through the reference interpreter, ``MachineInstance``, one ``MachineTable`` slot and
``dispatch_many``; the Julia tests log entry/exit behaviours, which here are the ordered
``CompiledMachine.steps`` (final and transient states appear in them; Hsm.jl's finals have no
behaviours, so its logs omit them).

Left out, and why: transition effects and default-history effects (``:history_action``,
``:deep_default_effect``: effects are user code, streamhsm runs none inside dispatch); the
counters of initial-transition calls (``branch_initials``: no user code either; the steps show
the initial chain instead); the public ``transition_history!`` outside a handler (streamhsm
transitions only through handlers); allocation checks (``@allocated``: ours are in
tests/table/test_allocations.py); the errors for a completed top-level machine
(``HsmEventError``: here an event in a top-level final state is unhandled and counted, as the
contract says); "declared but never targeted" history owners without a transition (a record
nobody reads); a completion handler returning ``EventNotHandled`` (here: a guard that does not
hold, which discards the completion the same way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamhsm import (
    MachineDefinitionError,
    MachineInstance,
    MachineSpec,
    MachineTable,
    ReferenceMachine,
)
from streamhsm.machine import FREE_SLOT


def _replay(spec: MachineSpec, events: list[str]) -> list[dict[str, Any]]:
    """Dispatch ``events`` through every implementation; return per event the reference's
    state, path and records, after checking that the others agree (state, handled, records,
    and steps = the reference's ordered path)."""
    m = spec.compile()
    ref, inst = ReferenceMachine(spec), MachineInstance(m)
    table = MachineTable(m, 3)
    slots = [table.open() for _ in range(3)]
    batch = MachineTable(m, 2)
    b = batch.open()
    out = []
    for ev in events:
        before, history = ref.current, dict(ref.records)
        steps = m.steps(before, ev, history=history)
        step = ref.dispatch(ev)
        assert steps == step.path, ev
        assert inst.dispatch(ev) == step.handled
        assert table.dispatch(slots[1], ev) == step.handled
        assert batch.dispatch_many(np.array([b], np.int64), np.array([m.event_code(ev)],
                                                                     np.int64)) == step.handled
        for state in (m.state_names[inst.current], m.state_names[table.state(slots[1])],
                      m.state_names[batch.state(b)]):
            assert state == ref.current, ev
        for o in m.history_owners:
            name = m.state_names[o]
            want = ref.records.get(name)
            assert inst.history(name) == want
            code = FREE_SLOT if want is None else m.state_code(want)
            assert table.history(name)[slots[1]] == code and batch.history(name)[b] == code
            assert table.history(name)[slots[0]] == table.history(name)[slots[2]]
        out.append({"state": ref.current, "path": step.path, "records": dict(ref.records),
                    "handled": step.handled})
    return out


def _history_sm() -> MachineSpec:
    # test_history.jl "HistoryTestSm": Composite > Branch > {Leaf1, Leaf2}; Outside
    s = MachineSpec("history", ["Next", "Leave", "RecallShallow", "RecallDeep"], "Composite")
    s.state("Composite", initial="Branch").state("Branch", "Composite", initial="Leaf1")
    s.state("Leaf1", "Branch").state("Leaf2", "Branch").state("Outside")
    s.on("Leaf1", "Next", "Leaf2").on("Leaf2", "Leave", "Outside")
    s.on("Outside", "RecallShallow", "Composite", history="shallow")
    s.on("Outside", "RecallDeep", "Composite", history="deep")
    return s


def test_shallow_history_restores_the_child_then_its_initial_entry() -> None:
    got = _replay(_history_sm(), ["Next", "Leave", "RecallShallow"])
    assert got[1]["records"] == {"Composite": "Leaf2"}
    assert got[2]["state"] == "Leaf1"
    assert got[2]["path"] == [("exit", "Outside"), ("enter", "Composite"), ("enter", "Branch"),
                              ("enter", "Leaf1")]


def test_deep_history_restores_the_leaf_path_without_initials() -> None:
    got = _replay(_history_sm(), ["Next", "Leave", "RecallDeep", "Leave", "RecallDeep"])
    assert got[2]["state"] == got[4]["state"] == "Leaf2"
    assert got[2]["path"] == [("exit", "Outside"), ("enter", "Composite"), ("enter", "Branch"),
                              ("enter", "Leaf2")]


def test_no_record_takes_the_normal_initial_entry() -> None:
    # test_history.jl "DefaultHistoryTestSm"
    s = MachineSpec("nohist", ["Recall"], "DefaultOutside")
    s.state("DefaultComposite", initial="DefaultLeaf").state("DefaultLeaf", "DefaultComposite")
    s.state("DefaultOutside").on("DefaultOutside", "Recall", "DefaultComposite", history="deep")
    assert _replay(s, ["Recall"])[0]["state"] == "DefaultLeaf"


def _explicit_default() -> MachineSpec:
    # test_history.jl "ExplicitDefaultHistorySm": a default edge per history kind
    s = MachineSpec("explicit", ["RecallDeepDefault", "RecallShallowDefault"], "ExplicitOutside")
    s.state("ExplicitComposite", initial="InitialLeaf")
    s.state("InitialLeaf", "ExplicitComposite")
    s.state("DefaultBranch", "ExplicitComposite", initial="DefaultBranchLeaf")
    s.state("DefaultBranchLeaf", "DefaultBranch").state("DeepDefault", "DefaultBranch")
    s.state("ExplicitOutside")
    s.history_default("ExplicitComposite", "DeepDefault", history="deep")
    s.history_default("ExplicitComposite", "DefaultBranch", history="shallow")
    s.on("ExplicitOutside", "RecallDeepDefault", "ExplicitComposite", history="deep")
    s.on("ExplicitOutside", "RecallShallowDefault", "ExplicitComposite", history="shallow")
    s.on("ExplicitComposite", "RecallDeepDefault", "ExplicitOutside")  # to reach the InitialLeaf
    s.on("Root", "RecallShallowDefault", "ExplicitComposite")
    return s


def test_explicit_history_defaults_per_kind() -> None:
    got = _replay(_explicit_default(), ["RecallDeepDefault"])
    assert got[0]["state"] == "DeepDefault"
    assert got[0]["path"] == [("exit", "ExplicitOutside"), ("enter", "ExplicitComposite"),
                              ("enter", "DefaultBranch"), ("enter", "DeepDefault")]
    got = _replay(_explicit_default(), ["RecallShallowDefault"])
    assert got[0]["state"] == "DefaultBranchLeaf"
    assert got[0]["path"] == [("exit", "ExplicitOutside"), ("enter", "ExplicitComposite"),
                              ("enter", "DefaultBranch"), ("enter", "DefaultBranchLeaf")]


def test_records_are_independent_per_owner() -> None:
    # test_history.jl "MultipleHistoryOwnersSm"
    s = MachineSpec("owners", ["AdvanceA", "EnterB", "AdvanceB", "LeaveB", "LeaveA", "RecallA",
                               "RecallB"], "HistoryOwnerA")
    s.state("HistoryOwnerA", initial="HistoryA1").state("HistoryA1", "HistoryOwnerA")
    s.state("HistoryA2", "HistoryOwnerA")
    s.state("HistoryOwnerB", initial="HistoryB1").state("HistoryB1", "HistoryOwnerB")
    s.state("HistoryB2", "HistoryOwnerB").state("HistoryOutside")
    s.on("HistoryA1", "AdvanceA", "HistoryA2").on("HistoryOwnerA", "EnterB", "HistoryOwnerB")
    s.on("HistoryB1", "AdvanceB", "HistoryB2").on("HistoryOwnerB", "LeaveB", "HistoryOutside")
    s.on("HistoryOwnerA", "LeaveA", "HistoryOutside")
    s.on("HistoryOutside", "RecallA", "HistoryOwnerA", history="deep")
    s.on("HistoryOutside", "RecallB", "HistoryOwnerB", history="deep")
    got = _replay(s, ["AdvanceA", "EnterB", "AdvanceB", "LeaveB", "RecallA", "LeaveA",
                      "RecallB"])
    assert got[3]["records"] == {"HistoryOwnerA": "HistoryA2", "HistoryOwnerB": "HistoryB2"}
    assert got[4]["state"] == "HistoryA2" and got[6]["state"] == "HistoryB2"


def test_a_top_level_final_state_completes_the_machine() -> None:
    # test_completion.jl "TopFinalSm": events after completion are unhandled (counted)
    s = MachineSpec("top", ["Finish", "Anything"], "TopWorking")
    s.state("TopWorking").final("TopDone").on("TopWorking", "Finish", "TopDone")
    s.on("Root", "Anything")  # Root's handlers do not run in a completed machine
    got = _replay(s, ["Finish", "Anything", "Finish"])
    assert got[0]["path"] == [("exit", "TopWorking"), ("enter", "TopDone")]
    assert [g["handled"] for g in got] == [True, False, False]


def test_a_nested_final_state_completes_its_composite() -> None:
    # test_completion.jl "NestedFinalSm"
    s = MachineSpec("nested", ["CompleteRegion"], "NestedActive")
    s.state("NestedActive", initial="NestedLeaf").state("NestedLeaf", "NestedActive")
    s.final("NestedFinal", "NestedActive").state("NestedOutside")
    s.on("NestedLeaf", "CompleteRegion", "NestedFinal")
    s.on_completion("NestedActive", "NestedOutside")
    got = _replay(s, ["CompleteRegion"])
    assert got[0]["state"] == "NestedOutside"
    assert got[0]["path"] == [("exit", "NestedLeaf"), ("enter", "NestedFinal"),
                              ("exit", "NestedFinal"), ("exit", "NestedActive"),
                              ("enter", "NestedOutside")]


def test_a_transient_simple_state_completes_on_entry_initial_included() -> None:
    # test_completion.jl "SimpleCompletionSm" and "CompletionPerfSm"
    s = MachineSpec("simple", ["PerfStart", "PerfReset"], "Transient")
    s.state("Transient").state("Stable").state("PerfReady").state("PerfTransient")
    s.on_completion("Transient", "Stable").on("Stable", "PerfReset", "PerfReady")
    s.on("PerfReady", "PerfStart", "PerfTransient").on_completion("PerfTransient", "Stable")
    m = s.compile()
    assert m.state_names[m.initial_leaf] == "Stable"
    assert ReferenceMachine(s).initial_step.path == [("enter", "Transient"),
                                                     ("exit", "Transient"), ("enter", "Stable")]
    got = _replay(s, ["PerfReset", "PerfStart"])
    assert got[1]["path"] == [("exit", "PerfReady"), ("enter", "PerfTransient"),
                              ("exit", "PerfTransient"), ("enter", "Stable")]


def test_a_completion_whose_guard_fails_is_discarded() -> None:
    # test_completion.jl "LostCompletionSm" (a handler answering "not handled")
    s = MachineSpec("lost", ["Go"], "LostState")
    s.flag("ready").state("LostState").state("Other")
    s.on_completion("LostState", "Other", guard="ready").on("Other", "Go", "LostState")
    s.on("LostState", "Go", "LostState")  # re-entry: completes again, discarded again
    got = _replay(s, ["Go"])
    assert got[0]["state"] == "LostState"
    assert got[0]["path"] == [("exit", "LostState"), ("enter", "LostState")]


def test_a_final_state_clears_its_regions_history() -> None:
    # test_completion.jl "FinalHistorySm"
    s = MachineSpec("finalhist", ["FinishNested", "LeaveFinal", "RecallFinal", "Leave"],
                    "FinalHistoryOwner")
    s.state("FinalHistoryOwner", initial="FinalHistoryLeaf")
    s.state("FinalHistoryLeaf", "FinalHistoryOwner")
    s.final("FinalHistoryDone", "FinalHistoryOwner").state("FinalHistoryOutside")
    s.on("FinalHistoryLeaf", "FinishNested", "FinalHistoryDone")
    s.on("FinalHistoryOwner", "LeaveFinal", "FinalHistoryOutside")
    s.on("FinalHistoryOutside", "RecallFinal", "FinalHistoryOwner", history="deep")
    got = _replay(s, ["LeaveFinal", "RecallFinal", "FinishNested", "LeaveFinal", "RecallFinal"])
    assert got[0]["records"] == {"FinalHistoryOwner": "FinalHistoryLeaf"}
    assert got[2]["state"] == "FinalHistoryDone" and got[2]["records"] == {}
    assert got[3]["records"] == {}  # leaving from the final state leaves it cleared
    assert got[4]["state"] == "FinalHistoryLeaf"


def test_completion_and_history_run_inside_one_dispatch() -> None:
    """A transition into a final state whose completion re-enters an owner through history:
    the whole chain is one cell; exiting the owner records the leaf it was in."""
    s = MachineSpec("chain", ["Go", "Done", "Next"], "Work")
    s.state("Work", initial="W1").state("W1", "Work").state("W2", "Work")
    s.state("Job", initial="J1").state("J1", "Job").final("JDone", "Job")
    s.on("W1", "Next", "W2").on("Work", "Go", "Job").on("J1", "Done", "JDone")
    s.on_completion("Job", "Work", history="deep")
    got = _replay(s, ["Next", "Go", "Done"])
    assert got[1]["records"] == {"Work": "W2"}
    assert got[2]["state"] == "W2"
    assert got[2]["path"] == [("exit", "J1"), ("enter", "JDone"), ("exit", "JDone"),
                              ("exit", "Job"), ("enter", "Work"), ("enter", "W2")]


# --------------------------------------------------------------------------- bad input
def _base() -> MachineSpec:
    s = MachineSpec("m", ["Go", "Back"], "A")
    s.state("A", initial="A1").state("A1", "A").state("A2", "A").state("B")
    s.on("A1", "Go", "A2").on("A", "Back", "B").on("B", "Back", "A", history="deep")
    return s


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda s: s.on("B", "Go", "A", history="sideways"), ValueError, "history must be 'shallow'"),
    (lambda s: s.on("B", "Go", "A", history=1), ValueError, "got 1"),
    (lambda s: s.on("B", "Go", None, history="deep"), ValueError, "needs a target"),
    (lambda s: s.final(3), TypeError, "final state name must be a str"),
    (lambda s: s.final("F", parent=4), TypeError, "parent must be a str"),
    (lambda s: s.on_completion("A1", 5), TypeError, "completion target must be a str"),
    (lambda s: s.on_completion("A1", "B", guard=2), TypeError, "guard must be a flag name"),
    (lambda s: s.on_completion("A1", "B", history="x"), ValueError, "got 'x'"),
    (lambda s: s.history_default("A", "A1", history=None), ValueError, "got None"),
    (lambda s: s.history_default(None, "A1"), TypeError, "history owner must be a str"),
])
def test_declaration_refuses_and_records_nothing(call: Any, exc: type, match: str) -> None:
    s = _base()
    before = (s.declared_handlers, s.finals, s.completions, s.history_defaults, s.states)
    with pytest.raises(exc, match=match):
        call(s)
    assert (s.declared_handlers, s.finals, s.completions, s.history_defaults, s.states) == before


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.on("A1", "Back", "A2", history="deep"),
     "targets 'A2' with history, but it has no children"),
    (lambda s: s.on("B", "Go", "Root", history="shallow"), "Root keeps no history"),
    (lambda s: s.history_default("A", "B"), "'B' of 'A' is not a proper descendant"),
    (lambda s: s.history_default("A", "A"), "'A' of 'A' is not a proper descendant"),
    (lambda s: s.history_default("A", "Nope"), "unknown target 'Nope'"),
    (lambda s: s.history_default("Nope", "A1"), "names unknown state 'Nope'"),
    (lambda s: s.history_default("A", "A1").history_default("A", "A2"),
     "two shallow history defaults for 'A'"),
    (lambda s: s.final("F", "A1"), "composite state 'A1', which has no initial state"),
    (lambda s: s.final("F", "A").state("X", "F", initial=None), "final state 'F' has children"),
    (lambda s: s.final("F", "A").on("F", "Go", "B"), "final state 'F' has a handler for 'Go'"),
    (lambda s: s.final("F", "A").on_completion("F", "B"), "final state 'F' has a completion"),
    (lambda s: s.on_completion("A", "B"), "composite 'A' can never run: it has no final child"),
    (lambda s: s.on_completion("Root", "B"), "Root has no completion transition"),
    (lambda s: s.on_completion("Nope", "B"), "completion transition on unknown state 'Nope'"),
    (lambda s: s.on_completion("A2", "Nope"), "completion transition of 'A2' has unknown target"),
    (lambda s: s.on_completion("A2", "B", guard="nope"),
     "completion of 'A2' \\[nope\\] -> 'B' names unknown flag 'nope'"),
    (lambda s: s.on_completion("A2", "B").on_completion("A2", "A1"),
     "completion of 'A2' -> 'A1' can never run"),
    (lambda s: s.on_completion("A2", "A1").on_completion("A1", "A2"),
     "completion chain never rests: A1 -> A2 -> A1"),
    (lambda s: s.on_completion("A2", "A2"), "completion chain never rests: A2 -> A2"),
    (lambda s: s.state("C", initial="C1").state("C1", "C").on("B", "Go", "C")
     .on_completion("C1", "B").on_completion("B", "C", history="deep"), "never rests"),
])
def test_compile_refuses_naming_the_culprit(mutate: Any, match: str) -> None:
    s = _base()
    mutate(s)
    with pytest.raises(MachineDefinitionError, match=match):
        s.compile()


def test_history_queries_refuse_bad_owners_and_records() -> None:
    m = _base().compile()
    t = MachineTable(m, 2)
    slot = t.open()
    inst = MachineInstance(m)
    for bad, exc, match in (("B", ValueError, "'B' of machine 'm' keeps no history record"),
                            ("Nope", ValueError, "unknown state name 'Nope'"),
                            (2.5, TypeError, "state must be an int code")):
        with pytest.raises(exc, match=match):
            t.history(bad)
        with pytest.raises(exc, match=match):
            inst.history(bad)
    view = t.history("A")
    with pytest.raises(ValueError, match="read-only"):
        view[slot] = 1
    for history, exc, match in (
            ({"A": "B"}, ValueError, "record 'B' of 'A' is not a non-final leaf below it"),
            ({"A": "A"}, ValueError, "record 'A' of 'A'"),
            ({"B": "A1"}, ValueError, "'B' of machine 'm' keeps no history record"),
            (["A"], TypeError, "history must be a dict")):
        with pytest.raises(exc, match=match):
            m.steps("B", "Back", history=history)
    with pytest.raises(ValueError, match="'A' of machine 'm' is not a leaf"):
        m.steps("A", "Back")
    assert m.steps("B", "Back", history={"A": None}) == [("exit", "B"), ("enter", "A"),
                                                          ("enter", "A1")]


def test_open_and_release_clear_records() -> None:
    m = _base().compile()
    t = MachineTable(m, 1)
    s = t.open()
    t.dispatch(s, "Go")
    t.dispatch(s, "Back")
    assert m.state_names[t.history("A")[s]] == "A2"
    t.release(s)
    assert t.history("A")[s] == FREE_SLOT
    assert t.open() == s and t.history("A")[s] == FREE_SLOT
    t.dispatch(s, "Back")
    t.dispatch(s, "Back")
    assert t.state(s) == m.State.A1  # no record: the initial entry


def test_machines_without_pseudostates_keep_their_tables_and_fingerprints() -> None:
    """Only machines with history, finals or completions change: a plain machine has no
    history programs, no KIND_HISTORY cell, and hashes exactly what it hashed before."""
    s = MachineSpec("plain", ["Go", "Jump"], "A")
    s.state("A").state("B").on("A", "Go", "B").on("B", "Go", "A")
    m = s.compile()
    assert m.engine_tables.n_owners == 0 and (m.engine_tables.kind != 3).all()
    assert m.history_owners == () and m.final_states == ()
    s.state("C", initial="C1").state("C1", "C").on("A", "Jump", "C", history="deep")
    with_history = s.compile()
    s2 = MachineSpec("plain", ["Go", "Jump"], "A")
    s2.state("A").state("B").on("A", "Go", "B").on("B", "Go", "A")
    s2.state("C", initial="C1").state("C1", "C").on("A", "Jump", "C")
    assert with_history.fingerprint != s2.compile().fingerprint  # history is in the hash
