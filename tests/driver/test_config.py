"""DriverConfig validation: every invalid configuration raises at construction, naming the value."""

from __future__ import annotations

import pytest

from streamhsm import Driver, DriverConfig


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"static_stream_ids": (1, 1)}, ValueError, "static stream id 1 is listed twice"),
    ({"static_stream_ids": (-1,)}, ValueError,
     "static stream id must be between 0 and 2147483647, got -1"),
    ({"static_stream_ids": (1.5,)}, TypeError, "static stream id must be an int, got float 1.5"),
    ({"static_stream_ids": "12"}, TypeError, "static_stream_ids must be a sequence of ints"),
    ({"allow_dynamic_streams": True}, ValueError,
     "allow_dynamic_streams needs a dynamic_stream_id_range"),
    ({"allow_dynamic_streams": 1}, TypeError, "allow_dynamic_streams must be a bool"),
    ({"dynamic_stream_id_range": (10, 20)}, ValueError,
     r"dynamic_stream_id_range \(10, 20\) is set but allow_dynamic_streams is False"),
    ({"dynamic_stream_id_range": (10, 20), "allow_dynamic_streams": False}, ValueError,
     "set allow_dynamic_streams=True to create streams on demand, or drop the range"),
    ({"dynamic_stream_id_range": (10, 5)}, ValueError,
     r"dynamic_stream_id_range \(10, 5\) is empty"),
    ({"dynamic_stream_id_range": (0, 2**25)}, ValueError, "at most 16777216 are supported"),
    ({"dynamic_stream_id_range": [1, 2]}, TypeError, "must be a \\(first, last\\) tuple"),
    ({"static_stream_ids": (5, 50), "dynamic_stream_id_range": (10, 60)}, ValueError,
     r"dynamic_stream_id_range \(10, 60\) overlaps static stream ids \[50\]"),
    ({"lease_keepalive_interval_ns": 0}, ValueError,
     "lease_keepalive_interval_ns must be >= 1, got 0"),
    ({"lease_keepalive_interval_ns": -5}, ValueError, "got -5"),
    ({"lease_keepalive_interval_ns": 1.0}, TypeError, "lease_keepalive_interval_ns must be an int"),
    ({"lease_expiry_grace_intervals": 0}, ValueError,
     "lease_expiry_grace_intervals must be >= 1, got 0"),
    ({"shutdown_timeout_ns": -1}, ValueError,
     "shutdown_timeout_ns must be between 0 and 4611686018427387904, got -1"),
    # fuzz finding: a timeout near int64's end left no valid time at all (max_time_ns < 0)
    ({"shutdown_timeout_ns": 2**63 - 1}, ValueError, "shutdown_timeout_ns must be between 0 and"),
    ({"shutdown_token": ""}, ValueError, "shutdown_token must be a non-empty str or None"),
    ({"stream_capacity": 0}, ValueError, "stream_capacity must be between 1 and 2147483647, got 0"),
    ({"lease_capacity": 0}, ValueError, "lease_capacity must be between 1 and 2147483647, got 0"),
    ({"outbox_capacity": 0}, ValueError, "outbox_capacity must be between 1 and 2147483647, got 0"),
    ({"static_stream_ids": (1, 2, 3), "stream_capacity": 2}, ValueError,
     "3 static streams do not fit in stream_capacity 2"),
    ({"lease_keepalive_interval_ns": 2**40, "lease_expiry_grace_intervals": 2**30}, ValueError,
     "too large"),
])
def test_invalid_config(kw, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        DriverConfig(**kw)


def test_defaults() -> None:
    cfg = DriverConfig()
    assert cfg.lease_keepalive_interval_ns == 1_000_000_000
    assert cfg.lease_expiry_grace_intervals == 3 and cfg.lease_expiry_ns == 3_000_000_000
    assert cfg.shutdown_timeout_ns == 2_000_000_000 and not cfg.drain_on_producer_loss
    assert cfg.outbox_capacity == cfg.lease_capacity


def test_driver_rejects_non_config() -> None:
    with pytest.raises(TypeError, match="config must be a DriverConfig, got dict"):
        Driver({"stream_capacity": 4})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now_ns must be between 0 and"):
        Driver(now_ns=-1)


def test_dynamic_range_with_dynamic_streams_allowed() -> None:
    """The accepted pairing: the range is kept, and an attach inside it creates a stream."""
    from streamhsm import Role

    cfg = DriverConfig(allow_dynamic_streams=True, dynamic_stream_id_range=(10, 20))
    assert cfg.dynamic_stream_id_range == (10, 20)
    assert Driver(cfg).attach(15, Role.CONSUMER, 1, 0, create=True)


def test_extreme_timeouts_leave_times_up_to_about_2_pow_62_valid() -> None:
    cfg = DriverConfig(lease_keepalive_interval_ns=2**61 - 1, lease_expiry_grace_intervals=2,
                       shutdown_timeout_ns=2**62)
    d = Driver(cfg)
    assert d.max_time_ns == 2**63 - 2 - 2**62
    d.poll(d.max_time_ns)  # a valid time: its deadlines fit in int64
    with pytest.raises(ValueError, match="now_ns must be between 0 and"):
        d.poll(d.max_time_ns + 1)
