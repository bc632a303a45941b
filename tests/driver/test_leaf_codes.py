"""A driver snapshot's stream and lease states go through the engine's one leaf-code check
(``streamhsm.snapshot.check_leaf_codes``), with the table named in the message."""

from __future__ import annotations

import pytest

from streamhsm import Driver, DriverConfig, LeaseState, Role, State
from streamhsm.snapshot import SnapshotError


def _snapshot() -> dict[str, object]:
    d = Driver(DriverConfig(static_stream_ids=(1, 2)))
    d.attach(1, Role.PRODUCER, 7, 0)
    return d.snapshot()


@pytest.mark.parametrize(("key", "code", "message"), [
    ("streams.states", State.LIVE, "snapshot stream state 1 at slot 0 is not a leaf state of "
                                   "machine 'stream'"),
    ("streams.states", State.ROOT, "snapshot stream state 0 at slot 0 is not a leaf state"),
    ("leases.states", LeaseState.LIVE, "snapshot lease state 1 at slot 0 is not a leaf state of "
                                       "machine 'lease'"),
])
def test_composite_states_in_a_driver_snapshot_are_refused(key: str, code: int,
                                                           message: str) -> None:
    snap = _snapshot()
    states = snap[key].copy()  # type: ignore[attr-defined]
    states[0] = code
    snap[key] = states
    with pytest.raises(SnapshotError, match=message):
        Driver.restore(snap)


def test_the_driver_uses_the_engine_check() -> None:
    """One owner: persistence has no leaf-code check of its own."""
    import inspect

    from streamhsm.driver import persistence

    assert "check_leaf_codes" in inspect.getsource(persistence)
    assert "valid[FREE_SLOT]" not in inspect.getsource(persistence)
