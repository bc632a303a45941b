"""Hypothesis: random open/release/dispatch/dispatch_many/broadcast sequences on a StreamTable,
compared after every step with one reference interpreter per slot."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streamhsm import FREE_SLOT, Event, ReferenceMachine, State, StreamTable, stream_spec

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: stateful

CAPACITY = 6
EVENT_NAMES = [name for name in stream_spec().events]


class TableVsReference(RuleBasedStateMachine):
    @initialize(policy=st.booleans())
    def setup(self, policy: bool) -> None:
        self.spec = stream_spec(policy)
        self.table = StreamTable(CAPACITY, drain_on_producer_loss=policy)
        self.ref: dict[int, ReferenceMachine] = {}
        self.total = 0
        self.transitions: dict[tuple[str, str], int] = {}

    def _ref_dispatch(self, slot: int, event: int) -> bool:
        before = self.ref[slot].unhandled
        leaf = self.ref[slot].current
        step = self.ref[slot].dispatch(EVENT_NAMES[event])
        self.total += self.ref[slot].unhandled - before
        if step.exits or step.entries:  # a transition (external self-transitions included)
            key = (leaf, EVENT_NAMES[event])
            self.transitions[key] = self.transitions.get(key, 0) + 1
        return step.handled

    @precondition(lambda self: len(self.ref) < CAPACITY)
    @rule()
    def open(self) -> None:
        slot = self.table.open()
        assert slot not in self.ref
        self.ref[slot] = ReferenceMachine(self.spec)

    @precondition(lambda self: self.ref)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.ref)))
        self.table.release(slot)
        del self.ref[slot]

    @precondition(lambda self: self.ref)
    @rule(data=st.data(), event=st.sampled_from(list(Event)))
    def dispatch(self, data: st.DataObject, event: Event) -> None:
        slot = data.draw(st.sampled_from(sorted(self.ref)))
        form = data.draw(st.sampled_from([event, int(event), EVENT_NAMES[event]]))
        assert self.table.dispatch(slot, form) == self._ref_dispatch(slot, event)

    @precondition(lambda self: self.ref)
    @rule(data=st.data())
    def dispatch_many(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(0, 12))
        slots = data.draw(st.lists(st.sampled_from(sorted(self.ref)), min_size=n, max_size=n))
        events = data.draw(st.lists(st.integers(0, len(Event) - 1), min_size=n, max_size=n))
        dt = data.draw(st.sampled_from([np.uint8, np.int32, np.int64]))
        expected = sum(self._ref_dispatch(s, e) for s, e in zip(slots, events, strict=True))
        assert self.table.dispatch_many(np.array(slots, np.int64), np.array(events, dt)) == expected

    @rule(event=st.sampled_from(list(Event)))
    def broadcast(self, event: Event) -> None:
        expected = sum(self._ref_dispatch(s, event) for s in sorted(self.ref))
        assert self.table.broadcast(event) == expected

    @rule(data=st.data())
    def bad_batch_changes_nothing(self, data: st.DataObject) -> None:
        slots = np.array(data.draw(st.lists(st.integers(-2, CAPACITY + 1), min_size=1, max_size=6)),
                         np.int64)
        events = np.array(data.draw(st.lists(st.integers(0, 12), min_size=len(slots),
                                             max_size=len(slots))), np.int64)
        valid = all(s in self.ref for s in slots) and all(e < len(Event) for e in events)
        if valid:
            return
        before = (self.table.states.copy(), self.table.unhandled.copy(), self.table.unhandled_total)
        try:
            self.table.dispatch_many(slots, events)
        except (IndexError, ValueError):
            pass
        else:
            raise AssertionError("an invalid batch was accepted")
        assert (self.table.states == before[0]).all() and (self.table.unhandled == before[1]).all()
        assert self.table.unhandled_total == before[2]

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "table"):
            return
        t = self.table
        for slot in range(CAPACITY):
            if slot in self.ref:
                assert t.state(slot).name.lower() == self.ref[slot].current.lower()
                assert t.unhandled[slot] == self.ref[slot].unhandled
            else:
                assert t.states[slot] == FREE_SLOT
        assert t.unhandled_total == self.total
        assert len(t) == len(self.ref)
        names = t.machine.state_names
        got = {(names[s], EVENT_NAMES[e]): int(n)
               for s, e in zip(*np.nonzero(t.transition_counts), strict=True)
               for n in [t.transition_counts[s, e]]}
        assert got == self.transitions
        assert t.stats()["transitions"] == {f"{a}/{b}": n for (a, b), n in self.transitions.items()}
        for state in State:
            want = sum(r.in_state(self.spec.states[state]) for r in self.ref.values())
            assert t.count(state) == want
        # occupancy always equals the histogram of the states array
        hist = np.bincount(t.states[t.states != FREE_SLOT], minlength=len(State))
        for leaf in (State.INIT, State.ACTIVE, State.DRAINING, State.CLOSED):
            assert t.count(leaf) == hist[leaf]


TableVsReference.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                              deadline=None)
test_table_vs_reference = TableVsReference.TestCase
