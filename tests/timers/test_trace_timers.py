"""The trace ring sees fired timers: a timer whose event causes a transition is recorded like any
dispatched transition (its slot, the timer's event, the leaves before and after, the handling
state), in the order ``advance`` fires them; a fired timer handled without a transition is not a
transition and is not recorded."""

from __future__ import annotations

import numpy as np

from streamhsm import FIRED_DTYPE, MachineSpec, MachineTable


def _machine():
    s = MachineSpec("leased", ["Keep", "Expire", "Beat", "Open"], "Live")
    s.state("Live", initial="Fresh").state("Fresh", "Live").state("Gone")
    s.on("Live", "Keep", restart="lease").on("Live", "Expire", "Gone")
    s.on("Gone", "Open", "Live").on("Root", "Beat")
    s.after("Live", 10, "Expire", name="lease")
    s.after("Gone", 4, "Open")
    s.every("Root", 3, "Beat")
    return s.compile()


def test_fired_transitions_are_in_the_trace_with_the_timers_event() -> None:
    m = _machine()
    t = MachineTable(m, 3)
    for _ in range(3):
        t.open()
    t.enable_trace(16)
    t.advance(5)                 # only Beat (internal) fired: nothing recorded
    assert t.trace_records() == []
    t.dispatch(1, "Keep")        # slot 1's lease now ends at 15, the others' at 10
    out = np.zeros(16, FIRED_DTYPE)
    fired = t.advance(12, out)
    # per slot in order: slot 0 Beat@6 (once per advance: its next phase is 15), lease@10;
    # slot 1 Beat@6; slot 2 as slot 0
    assert fired == 5
    recs = t.trace_records()
    assert [(r.slot, r.event, r.from_state, r.to_state, r.handled_by) for r in recs] == [
        (0, m.Event.EXPIRE, m.State.FRESH, m.State.GONE, m.State.LIVE),
        (2, m.Event.EXPIRE, m.State.FRESH, m.State.GONE, m.State.LIVE),
    ]
    assert [r.seq for r in recs] == [0, 1]
    t.advance(14)                # Gone's Open at 14 for slots 0 and 2: back into Live
    recs = t.trace_records()[2:]
    assert [(r.slot, r.event, r.from_state, r.to_state) for r in recs] == [
        (0, m.Event.OPEN, m.State.GONE, m.State.FRESH),
        (2, m.Event.OPEN, m.State.GONE, m.State.FRESH),
    ]
    # the raw ring agrees with what advance reported in ``out``
    tr = t.trace()
    lease = out[:fired][out[:fired]["timer"] == m.timers.names.index("lease")]
    assert tr["slot"][:2].tolist() == lease["slot"].tolist()
    assert tr["event"][:2].tolist() == lease["event"].tolist()
