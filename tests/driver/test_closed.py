"""A closed Driver (issue 19, rough edges): every call raises DriverClosedError and changes
nothing, with or without shared memory; close() stays idempotent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streamhsm
from streamhsm import (
    REVOKED_NOTICE_DTYPE,
    Driver,
    DriverClosedError,
    DriverConfig,
    Role,
    StreamHsmError,
)

SEC = 1_000_000_000

CALLS: list[tuple[str, Callable[[Driver, Path], object]]] = [
    ("attach", lambda d, p: d.attach(1, Role.CONSUMER, 30, 5 * SEC)),
    ("keepalive", lambda d, p: d.keepalive(1, 5 * SEC, client_id=10)),
    ("detach", lambda d, p: d.detach(1, 5 * SEC, client_id=10)),
    ("revoke", lambda d, p: d.revoke(1, 5 * SEC)),
    ("poll", lambda d, p: d.poll(50 * SEC)),  # would expire both leases and move the clock
    ("bump_epoch", lambda d, p: d.bump_epoch(1)),
    ("bump_epoch now", lambda d, p: d.bump_epoch(1, now_ns=5 * SEC)),
    ("request_shutdown", lambda d, p: d.request_shutdown(5 * SEC)),
    ("drain_revoked", lambda d, p: d.drain_revoked()),
    ("drain_revoked out", lambda d, p: d.drain_revoked(np.empty(4, REVOKED_NOTICE_DTYPE))),
    ("drain_announces", lambda d, p: d.drain_announces()),
    ("revoked_notices", lambda d, p: d.revoked_notices()),
    ("announces", lambda d, p: d.announces()),
    ("announce_eligible", lambda d, p: d.announce_eligible()),
    ("state", lambda d, p: d.state),
    ("now_ns", lambda d, p: d.now_ns),
    ("streams", lambda d, p: d.streams),
    ("counters", lambda d, p: d.counters),
    ("stats", lambda d, p: d.stats()),
    ("stream_state", lambda d, p: d.stream_state(1)),
    ("stream_info", lambda d, p: d.stream_info(1)),
    ("epoch", lambda d, p: d.epoch(1)),
    ("lease_state", lambda d, p: d.lease_state(1)),
    ("lease_expiry", lambda d, p: d.lease_expiry(1)),
    ("live_leases", lambda d, p: d.live_leases),
    ("shutdown_notice", lambda d, p: d.shutdown_notice),
    ("snapshot", lambda d, p: d.snapshot()),
    ("save", lambda d, p: d.save(p)),
    ("with", lambda d, p: d.__enter__()),
]


def busy(shm: bool) -> Driver:
    name = f"shsm-closed-{uuid.uuid4().hex[:10]}" if shm else None
    d = Driver(DriverConfig(static_stream_ids=(1,)), shm_name=name)
    d.attach(1, Role.PRODUCER, 10, 0)
    d.attach(1, Role.CONSUMER, 11, 0)
    return d


def inside(d: Driver) -> tuple[Any, ...]:
    """Everything a call could change, read without the public API (which raises now)."""
    cols = d._core.columns_copy()
    return (tuple(a.tobytes() for a in cols.values()), d._leases.states.tobytes(), d._now_ns,
            d._core.last_lease_id, d._core.n_revoked, d._lifecycle.current, d._shutdown)


@pytest.mark.parametrize("shm", [False, True])
@pytest.mark.parametrize(("name", "call"), CALLS, ids=[n for n, _ in CALLS])
def test_every_call_on_a_closed_driver_raises_and_changes_nothing(
        shm: bool, name: str, call: Callable[[Driver, Path], object], tmp_path: Path) -> None:
    d = busy(shm)
    d.close()
    before = inside(d)
    with pytest.raises(DriverClosedError, match="this Driver is closed"):
        call(d, tmp_path / "snap.npz")
    assert inside(d) == before
    assert not (tmp_path / "snap.npz").exists()


def test_close_is_idempotent_and_the_error_is_public() -> None:
    d = busy(True)
    d.close()
    d.close()
    assert d.closed and repr(d) == "<Driver closed>"
    assert issubclass(DriverClosedError, StreamHsmError)
    assert "DriverClosedError" in streamhsm.__all__
    with Driver() as fresh:
        assert not fresh.closed
    assert fresh.closed


def test_a_driver_restored_from_a_closed_ones_save_keeps_working(tmp_path: Path) -> None:
    d = busy(False)
    d.save(tmp_path / "s.npz")
    d.close()
    again = Driver.load(tmp_path / "s.npz")
    assert again.live_leases == 2 and again.attach(1, Role.CONSUMER, 30, 1)
