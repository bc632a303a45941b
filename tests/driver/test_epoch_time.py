"""``bump_epoch`` takes the request's time like every other state-changing call (issue 19,
rough edges): ``now_ns`` is an optional keyword, validated like other times; without it the
clock stays (the contract's ``bump_epoch(stream_id)``)."""

from __future__ import annotations

import pytest

from streamhsm import Driver, DriverConfig


def driver() -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1,)), now_ns=10)
    return d


def test_now_moves_the_clock_and_the_old_call_keeps_it() -> None:
    d = driver()
    assert d.bump_epoch(1).epoch == 2 and d.now_ns == 10
    assert d.bump_epoch(1, now_ns=25).epoch == 3 and d.now_ns == 25
    assert not d.bump_epoch(9, now_ns=30) and d.now_ns == 30  # an unknown stream: the time counts


@pytest.mark.parametrize(("now", "error", "match"), [
    (5, ValueError, "now_ns went backwards: 5 < 10"),
    (-1, ValueError, "now_ns must be between 0 and .*, got -1"),
    (2**63, ValueError, "now_ns must be between 0 and"),
    (1.5, TypeError, "now_ns must be an int, got float 1.5"),
    ("20", TypeError, "now_ns must be an int, got str '20'"),
    (True, TypeError, "now_ns must be an int, got bool True"),
])
def test_bad_times_raise_and_change_nothing(now: object, error: type[Exception],
                                            match: str) -> None:
    d = driver()
    with pytest.raises(error, match=match):
        d.bump_epoch(1, now_ns=now)  # type: ignore[arg-type]
    assert d.epoch(1) == 1 and d.now_ns == 10 and d.counters["epoch_bumps"] == 1
