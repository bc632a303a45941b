"""Driver configuration and the id limits it validates against."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .._limits import INT32_MAX, MAX_CAPACITY
from .._timer_tables import NEVER as _NEVER
from ..shm import check_segment_name
from ._args import plain_int, shown

__all__ = [
    "MAX_CLIENT_ID",
    "MAX_DYNAMIC_RANGE",
    "MAX_STREAM_ID",
    "DriverConfig",
]

#: "No deadline": the largest int64 time (the engine's timer ``NEVER``). Lease expiries and the
#: shutdown deadline use it.
NEVER = _NEVER

#: Largest stream id (stream ids are non-negative int32, as in Aeron).
MAX_STREAM_ID = INT32_MAX
#: Largest client id (client ids are positive int64; 0 means "no client").
MAX_CLIENT_ID = 2**63 - 1
#: Largest number of ids in the dynamic stream range (epochs are kept per id for the driver's
#: lifetime in a dense array of this many int64 entries).
MAX_DYNAMIC_RANGE = 1 << 24


def _int(name: str, value: object, low: int, high: int | None = None) -> int:
    if not isinstance(value, int):  # ints only: a configuration never converts an __index__
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {shown(value)}")
    return plain_int(name, value, low, high)


@dataclass(frozen=True)
class DriverConfig:
    """Configuration of a :class:`~streamhsm.driver.Driver`; validated at construction.

    Attributes:
        static_stream_ids: configured streams, provisioned when the driver starts and never
            cleaned up when idle.
        allow_dynamic_streams: allow ``attach(..., create=True)`` to create streams on demand.
        dynamic_stream_id_range: inclusive ``(first, last)`` ids dynamic streams may use; required
            when dynamic streams are allowed and refused when they are not, at most
            ``MAX_DYNAMIC_RANGE`` ids, and disjoint from the static ids.
        lease_keepalive_interval_ns: expected keepalive interval (default 1 s).
        lease_expiry_grace_intervals: a lease expires ``interval * grace`` after its last
            keepalive (default 3).
        shutdown_timeout_ns: time from a shutdown request to the final shutdown (default 2 s; at
            most 2**62).
        shutdown_token: if set, ``request_shutdown`` must present it.
        drain_on_producer_loss: streams that lose their producer go to Draining.
        stream_capacity / lease_capacity: slots preallocated for streams and live leases.
        outbox_capacity: lease-revoked notices held until the caller drains them (default: the
            lease capacity); notices past it are dropped and counted.
        shm_name: if set, the stream table lives in the named shared-memory segment (see
            ``streamhsm.shm``), readable by ``python -m streamhsm stat NAME`` while the driver runs;
            ``poll`` publishes its heartbeat and ``Driver.close`` removes it.
        announce_period_ns: if set (1 to 2**62), every Live stream's announce is due again each
            period, on its own phase (from when it was provisioned): a periodic timer of the
            stream machine that the driver's clock (every lease call and poll) fires into the
            announce outbox. None (default): announces are due only when a stream's epoch or
            state changes, and the transport keeps its own cadence (``announce_eligible``). Not
            with ``shm_name`` (a shared segment holds the registered stream machines only).
    """

    static_stream_ids: tuple[int, ...] = ()
    allow_dynamic_streams: bool = False
    dynamic_stream_id_range: tuple[int, int] | None = None
    lease_keepalive_interval_ns: int = 1_000_000_000
    lease_expiry_grace_intervals: int = 3
    shutdown_timeout_ns: int = 2_000_000_000
    shutdown_token: str | None = None
    drain_on_producer_loss: bool = False
    stream_capacity: int = 1024
    lease_capacity: int = 4096
    outbox_capacity: int | None = field(default=None)
    shm_name: str | None = None
    announce_period_ns: int | None = None

    def __post_init__(self) -> None:
        ids = self.static_stream_ids
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"static_stream_ids must be a sequence of ints, got {ids!r}")
        ids = tuple(_int("static stream id", sid, 0, MAX_STREAM_ID) for sid in tuple(ids))
        object.__setattr__(self, "static_stream_ids", ids)
        seen: set[int] = set()
        for sid in ids:
            if sid in seen:
                raise ValueError(f"static stream id {sid} is listed twice")
            seen.add(sid)
        for name in ("allow_dynamic_streams", "drain_on_producer_loss"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        rng = self.dynamic_stream_id_range
        if rng is not None:
            if not isinstance(rng, tuple) or len(rng) != 2:
                raise TypeError(
                    f"dynamic_stream_id_range must be a (first, last) tuple, got {rng!r}")
            first = _int("dynamic_stream_id_range first", rng[0], 0, MAX_STREAM_ID)
            last = _int("dynamic_stream_id_range last", rng[1], 0, MAX_STREAM_ID)
            if last < first:
                raise ValueError(f"dynamic_stream_id_range {rng} is empty (last < first)")
            object.__setattr__(self, "dynamic_stream_id_range", (first, last))
            if last - first + 1 > MAX_DYNAMIC_RANGE:
                raise ValueError(
                    f"dynamic_stream_id_range {rng} has {last - first + 1} ids; "
                    f"at most {MAX_DYNAMIC_RANGE} are supported")
            overlap = sorted(s for s in ids if first <= s <= last)
            if overlap:
                raise ValueError(
                    f"dynamic_stream_id_range {rng} overlaps static stream ids {overlap[:5]}")
        if self.allow_dynamic_streams and rng is None:
            raise ValueError("allow_dynamic_streams needs a dynamic_stream_id_range")
        if rng is not None and not self.allow_dynamic_streams:
            # without this every attach to the range would be refused as "unknown stream N"
            raise ValueError(
                f"dynamic_stream_id_range {rng} is set but allow_dynamic_streams is False: "
                "set allow_dynamic_streams=True to create streams on demand, or drop the range")
        for name, low, high in (("lease_keepalive_interval_ns", 1, None),
                                ("lease_expiry_grace_intervals", 1, None),
                                # at most 2**62: with the lease expiry below it, every time up to
                                # max_time_ns (about 2**62) keeps its deadlines inside int64
                                ("shutdown_timeout_ns", 0, 2**62),
                                ("stream_capacity", 1, MAX_CAPACITY),
                                ("lease_capacity", 1, MAX_CAPACITY)):
            # stored as plain ints: an int subclass's arithmetic never runs in the driver
            object.__setattr__(self, name, _int(name, getattr(self, name), low, high))
        if self.lease_keepalive_interval_ns * self.lease_expiry_grace_intervals >= 2**62:
            raise ValueError(
                "lease_keepalive_interval_ns * lease_expiry_grace_intervals is too large")
        if self.shutdown_token is not None and (
                not isinstance(self.shutdown_token, str) or not self.shutdown_token):
            raise ValueError(f"shutdown_token must be a non-empty str or None, got "
                             f"{shown(self.shutdown_token)}")
        if self.shutdown_token is not None:
            object.__setattr__(self, "shutdown_token", str.__str__(self.shutdown_token))
        if len(ids) > self.stream_capacity:
            raise ValueError(
                f"{len(ids)} static streams do not fit in stream_capacity {self.stream_capacity}")
        if self.shm_name is not None:
            try:
                check_segment_name(self.shm_name)
            except ValueError as exc:
                raise ValueError(f"shm_name: {exc}") from None
        if self.announce_period_ns is not None:
            object.__setattr__(self, "announce_period_ns",
                               _int("announce_period_ns", self.announce_period_ns, 1, 2**62))
            if self.shm_name is not None:
                raise ValueError("announce_period_ns cannot be used with shm_name: a shared "
                                 "segment holds the registered stream machines only")
        if self.outbox_capacity is None:
            object.__setattr__(self, "outbox_capacity", self.lease_capacity)
        object.__setattr__(self, "outbox_capacity",
                           _int("outbox_capacity", self.outbox_capacity, 1, MAX_CAPACITY))

    @property
    def lease_expiry_ns(self) -> int:
        """Lifetime of a lease after its last keepalive: interval * grace intervals."""
        return self.lease_keepalive_interval_ns * self.lease_expiry_grace_intervals

    @property
    def max_time_ns(self) -> int:
        """The largest time a driver with this configuration accepts: its lease expiries and
        shutdown deadline still fit in int64 (the one place this limit is computed)."""
        return NEVER - 1 - max(self.lease_expiry_ns, self.shutdown_timeout_ns,
                               self.announce_period_ns or 0)
