"""An in-process model of a driver's control plane (plan S-2, S-3, S-4), with no transport.

The driver's registry of streams and leases *is* the compiled machines' tables: a
:class:`~streamhsm.StreamTable` (one row per stream slot) and a lease table on the same engine,
plus plain numpy columns for the stream id, producer lease, consumer count, epoch, and per lease
its id, stream, role, client and expiry. No per-stream or per-lease Python object exists; control
operations on existing streams and leases allocate nothing that outlives the call.

Times are integer nanoseconds passed in by the caller (``now_ns``); the driver never reads a clock.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._core import DriverCore
from .._engine import MachineInstance, MachineTable
from ._idmap import IdMap
from .config import MAX_CLIENT_ID, MAX_STREAM_ID, DriverConfig
from .protocol import AttachResult, Response, ResponseCode, RevokeReason, Role
from .machines import DriverEvent, DriverState, LeaseEvent, LeaseState, driver_machine, lease_machine
from ..lifecycle import Event, State, StreamTable
from ..shm import SharedStreamTable
from ..snapshot import SNAPSHOT_VERSION, SnapshotError, check_header, load_snapshot, save_snapshot
from ..snapshot import array as snap_array

__all__ = ["COUNTER_NAMES", "REVOKED_NOTICE_DTYPE", "Driver", "StreamInfo"]

#: Names of the driver's counters, in the order :attr:`Driver.counters` lists them.
COUNTER_NAMES = (
    "attaches_ok",
    "attaches_rejected",
    "keepalives",
    "leases_detached",
    "leases_expired",
    "leases_revoked",
    "epoch_bumps",
    "streams_provisioned",
    "streams_closed",
    "revoke_notices_dropped",
    "stream_hsm_unhandled",
    "lease_hsm_unhandled",
)

#: Record layout of a lease-revoked notice in the outbox.
REVOKED_NOTICE_DTYPE = np.dtype([
    ("lease_id", np.int64),
    ("stream_id", np.int64),
    ("role", np.uint8),
    ("reason", np.uint8),
    ("time_ns", np.int64),
])

_NEVER = np.iinfo(np.int64).max
_OK, _REJECTED, _INVALID = ResponseCode.OK, ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS
_PRODUCER, _CONSUMER = int(Role.PRODUCER), int(Role.CONSUMER)
_ACTIVE, _DRAINING, _CLOSED = int(State.ACTIVE), int(State.DRAINING), int(State.CLOSED)
_C = {name: i for i, name in enumerate(COUNTER_NAMES[:-2])}  # slots of DriverCore.counters
_C_OK, _C_REJECTED, _C_KEEPALIVES = _C["attaches_ok"], _C["attaches_rejected"], _C["keepalives"]
_C_PROVISIONED, _C_CLOSED = _C["streams_provisioned"], _C["streams_closed"]
_ROLE_NAMES = {"producer": Role.PRODUCER, "consumer": Role.CONSUMER}


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A snapshot of one stream's registry row."""

    stream_id: int
    state: State
    epoch: int
    producer_lease_id: int  # 0: no producer
    consumers: int
    dynamic: bool


def _check_int(name: str, value: object) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value.__index__())


def _role(role: object) -> int:
    """Role code, or -1 for a well-typed but unknown role."""
    if isinstance(role, str):
        r = _ROLE_NAMES.get(role.lower())
        return -1 if r is None else int(r)
    code = _check_int("role", role)
    return code if code in (_PRODUCER, _CONSUMER) else -1


class Driver:
    """The driver's control plane: streams, leases, epochs, draining and shutdown.

    Args:
        config: a :class:`DriverConfig` (defaults if omitted).
        now_ns: the time the driver starts (default 0); times passed later must not go back.

    Configured (static) streams are provisioned at construction: each gets StreamProvisioned and
    its first epoch. The driver lifecycle starts Running.
    """

    def __init__(self, config: DriverConfig | None = None, *, now_ns: int = 0) -> None:
        cfg = DriverConfig() if config is None else config
        if not isinstance(cfg, DriverConfig):
            raise TypeError(f"config must be a DriverConfig, got {type(cfg).__name__}")
        self.config = cfg
        self._now_ns = 0
        self._now_ns = self._now(now_ns)
        n_s, n_l = cfg.stream_capacity, cfg.lease_capacity
        self._shared: SharedStreamTable | None = None
        if cfg.shm_name is not None:
            self._shared = SharedStreamTable(cfg.shm_name, n_s, cfg.drain_on_producer_loss)
            self._streams: StreamTable = self._shared
        else:
            self._streams = StreamTable(n_s, drain_on_producer_loss=cfg.drain_on_producer_loss)
        self._leases = MachineTable(lease_machine(), n_l)
        self._lifecycle = MachineInstance(driver_machine())
        self._lifecycle.dispatch(DriverEvent.START)
        self._shutdown_deadline = _NEVER
        # per stream slot
        self._stream_id = np.full(n_s, -1, np.int64)
        self._producer = np.zeros(n_s, np.int64)
        self._consumers = np.zeros(n_s, np.int32)
        self._dynamic = np.zeros(n_s, np.bool_)
        self._epoch = np.zeros(n_s, np.int64)
        # stream id -> slot: static ids in a dict built once, dynamic ids in a dense array
        self._static_slot: dict[int, int] = {}
        rng = cfg.dynamic_stream_id_range
        self._dyn_first, self._dyn_last = rng if rng is not None else (1, 0)
        n_dyn = max(0, self._dyn_last - self._dyn_first + 1)
        self._dyn_slot = np.full(n_dyn, -1, np.int32)
        self._dyn_epoch = np.zeros(n_dyn, np.int64)  # epoch high-water mark per dynamic id
        # per lease slot
        self._lease_id = np.zeros(n_l, np.int64)
        self._lease_stream = np.full(n_l, -1, np.int32)
        self._lease_role = np.zeros(n_l, np.uint8)
        self._lease_client = np.zeros(n_l, np.int64)
        self._lease_expiry = np.full(n_l, _NEVER, np.int64)
        self._lease_by_id = IdMap(n_l)
        self._lease_by_client = IdMap(n_l)
        self._last_lease_id = 0
        # outboxes: lease-revoked notices as columns, announce-due flags and list
        outbox = int(cfg.outbox_capacity or cfg.lease_capacity)
        self._rv = {name: np.zeros(outbox, REVOKED_NOTICE_DTYPE[name])
                    for name in REVOKED_NOTICE_DTYPE.names or ()}
        self._due = np.zeros(n_s, np.bool_)
        columns = {
            "stream_id": self._stream_id, "producer": self._producer, "epoch": self._epoch,
            "consumers": self._consumers, "dynamic": self._dynamic, "dyn_epoch": self._dyn_epoch,
            "dyn_slot": self._dyn_slot, "due": self._due, "due_slots": np.empty(n_s, np.int32),
            "lease_id": self._lease_id, "lease_stream": self._lease_stream,
            "lease_role": self._lease_role, "lease_client": self._lease_client,
            "lease_expiry": self._lease_expiry, "rv_lease": self._rv["lease_id"],
            "rv_stream": self._rv["stream_id"], "rv_role": self._rv["role"],
            "rv_reason": self._rv["reason"], "rv_time": self._rv["time_ns"],
        }
        self._core = DriverCore(
            self._streams, self._leases, self._lease_by_id, self._lease_by_client, columns,
            {n: i for i, n in enumerate(self._streams.machine.event_names)},
            {n: i for i, n in enumerate(self._leases.machine.event_names)}, self._dyn_first)
        self._ctr = self._core.counters
        for sid in cfg.static_stream_ids:
            self._static_slot[sid] = self._provision(sid, dynamic=False)

    # ------------------------------------------------------------------ helpers
    def _now(self, now_ns: object) -> int:
        now = _check_int("now_ns", now_ns)
        if now < 0:
            raise ValueError(f"now_ns must be >= 0, got {now}")
        if now < self._now_ns:
            raise ValueError(f"now_ns went backwards: {now} < {self._now_ns}")
        self._now_ns = now
        return now

    def _slot_of(self, stream_id: int) -> int:
        """Slot of a stream id (any state), or -1."""
        if self._dyn_first <= stream_id <= self._dyn_last:
            return int(self._dyn_slot[stream_id - self._dyn_first])
        return self._static_slot.get(stream_id, -1)

    def _bump(self, slot: int) -> int:
        return int(self._core.bump_epoch(slot))

    def _provision(self, stream_id: int, dynamic: bool) -> int:
        if len(self._streams) == self._streams.capacity:
            self._recycle_closed()
        slot = self._streams.open()
        self._streams.dispatch(slot, Event.STREAM_PROVISIONED)
        self._stream_id[slot] = stream_id
        self._producer[slot] = 0
        self._consumers[slot] = 0
        self._dynamic[slot] = dynamic
        if dynamic:
            self._epoch[slot] = self._dyn_epoch[stream_id - self._dyn_first]
            self._dyn_slot[stream_id - self._dyn_first] = slot
        else:
            self._epoch[slot] = 0
        self._ctr[_C_PROVISIONED] += 1
        self._bump(slot)
        return slot

    def _free_stream_slot(self, slot: int) -> None:
        sid = int(self._stream_id[slot])
        self._dyn_slot[sid - self._dyn_first] = -1
        self._stream_id[slot] = -1
        # the due flag stays: the slot may still be in the due list (drain_announces clears it)
        self._streams.release(slot)
        self._core.closed_dynamic -= 1

    def _recycle_closed(self) -> None:
        """Release the slots of dynamic streams that went Closed (idle cleanup)."""
        if self._core.closed_dynamic == 0:
            return
        closed = np.flatnonzero((self._streams.states == _CLOSED) & self._dynamic)
        for slot in closed.tolist():
            self._free_stream_slot(slot)

    def _live_lease(self, lease_id: object) -> int:
        lid = _check_int("lease_id", lease_id)
        return self._lease_by_id.get(lid) if 0 < lid <= self._last_lease_id else -1

    def _ended(self, lease_id: object) -> bool:
        return 0 < _check_int("lease_id", lease_id) <= self._last_lease_id

    def _reject(self, code: ResponseCode, reason: str, stream_id: int) -> AttachResult:
        self._ctr[_C_REJECTED] += 1
        return AttachResult(code, 0, stream_id, 0, reason)

    # ------------------------------------------------------------------ control operations
    def attach(self, stream_id: int, role: Role | int | str, client_id: int, now_ns: int,
               create: bool = False) -> AttachResult:
        """Grant a lease on a stream to a client.

        Rules: at most one producer per stream; a client id holds at most one live lease; a missing
        stream is created only if dynamic streams are allowed, the id is in the dynamic range and
        ``create`` is True; while the driver drains or after it stopped every attach is REJECTED.
        Everything is validated before anything is created, so a rejected attach changes nothing
        but the ``attaches_rejected`` counter.

        Returns:
            An :class:`AttachResult`; on OK it carries the new lease id and the stream's epoch.

        Raises:
            TypeError: an argument has the wrong Python type.
            ValueError: ``now_ns`` is negative or earlier than a time already seen.
        """
        sid = _check_int("stream_id", stream_id)
        client = _check_int("client_id", client_id)
        if not isinstance(create, bool):
            raise TypeError(f"create must be a bool, got {type(create).__name__} {create!r}")
        role_code = _role(role)
        now = self._now(now_ns)
        lifecycle = self._lifecycle.current
        if lifecycle is not DriverState.RUNNING:
            why = "driver draining" if lifecycle is DriverState.DRAINING else "driver stopped"
            return self._reject(_REJECTED, why, sid)
        if role_code < 0:
            return self._reject(_INVALID, f"unknown role {role!r}", sid)
        if not 0 <= sid <= MAX_STREAM_ID:
            return self._reject(_INVALID, f"stream id {sid} out of range 0..{MAX_STREAM_ID}", sid)
        if not 0 < client <= MAX_CLIENT_ID:
            return self._reject(_INVALID, f"client id {client} out of range 1..{MAX_CLIENT_ID}", sid)
        if client in self._lease_by_client:
            return self._reject(_REJECTED, "client_id already attached", sid)
        slot = self._slot_of(sid)
        state = -1 if slot < 0 else int(self._streams.states[slot])
        creating = state < 0 or state == _CLOSED
        if creating:
            if not (self.config.allow_dynamic_streams and create):
                return self._reject(_REJECTED, f"unknown stream {sid}", sid)
            if not self._dyn_first <= sid <= self._dyn_last:
                return self._reject(
                    _INVALID, f"stream id {sid} outside the dynamic range "
                    f"[{self._dyn_first}, {self._dyn_last}]", sid)
            free = self._streams.capacity - len(self._streams) + self._core.closed_dynamic
            if free == 0:
                return self._reject(_REJECTED, "stream capacity exhausted", sid)
        else:
            if role_code == _PRODUCER and self._producer[slot] != 0:
                return self._reject(_REJECTED, "producer already attached", sid)
            if state == _DRAINING and not (role_code == _PRODUCER
                                           and self._streams.drain_on_producer_loss):
                return self._reject(_REJECTED, "stream draining", sid)
        if len(self._leases) == self._leases.capacity:
            return self._reject(_REJECTED, "lease capacity exhausted", sid)
        # ---- every check passed: commit
        if creating:
            if slot >= 0:  # the id's previous stream is Closed: recycle its slot now
                self._free_stream_slot(slot)
            slot = self._provision(sid, dynamic=True)
        elif role_code == _PRODUCER:
            self._bump(slot)  # a producer attaches to a stream without one
        ls = self._leases.open()
        self._leases.dispatch(ls, LeaseEvent.ATTACH_OK)
        self._last_lease_id += 1
        lease_id = self._last_lease_id
        self._lease_id[ls] = lease_id
        self._lease_stream[ls] = slot
        self._lease_role[ls] = role_code
        self._lease_client[ls] = client
        self._lease_expiry[ls] = now + self.config.lease_expiry_ns
        self._lease_by_id.put(lease_id, ls)
        self._lease_by_client.put(client, ls)
        if role_code == _PRODUCER:
            self._producer[slot] = lease_id
            self._streams.dispatch(slot, Event.PRODUCER_ATTACHED)
        else:
            self._consumers[slot] += 1
            self._streams.dispatch(slot, Event.CONSUMER_ATTACHED)
        self._core.mark_announce(slot)
        self._ctr[_C_OK] += 1
        return AttachResult(_OK, lease_id, sid, int(self._epoch[slot]), "")

    def keepalive(self, lease_id: int, now_ns: int) -> Response:
        """Extend a live lease's expiry to ``now + interval * grace``.

        Returns OK, or REJECTED ("lease ended" / "unknown lease"). Works while draining.
        """
        now = self._now(now_ns)
        ls = self._live_lease(lease_id)
        if ls < 0:
            return Response(_REJECTED, "lease ended" if self._ended(lease_id) else "unknown lease")
        self._lease_expiry[ls] = now + self.config.lease_expiry_ns
        self._leases.dispatch(ls, LeaseEvent.KEEPALIVE)
        self._ctr[_C_KEEPALIVES] += 1
        return Response(_OK)

    def detach(self, lease_id: int, now_ns: int) -> Response:
        """End a lease at the client's request; idempotent.

        Returns OK (also for a lease that already ended, with reason "lease already ended"), or
        REJECTED "unknown lease" for an id never issued.
        """
        return self._end(lease_id, now_ns, RevokeReason.DETACHED)

    def revoke(self, lease_id: int, now_ns: int) -> Response:
        """End a live lease on the driver's initiative (reason REVOKED); like :meth:`detach`."""
        return self._end(lease_id, now_ns, RevokeReason.REVOKED)

    def _end(self, lease_id: int, now_ns: int, reason: RevokeReason) -> Response:
        now = self._now(now_ns)
        ls = self._live_lease(lease_id)
        if ls < 0:
            if self._ended(lease_id):
                return Response(_OK, "lease already ended")
            return Response(_REJECTED, "unknown lease")
        self._core.end(ls, int(reason), now)
        return Response(_OK)

    def poll(self, now_ns: int) -> int:
        """The driver's duty cycle: recycle the slots of dynamic streams closed since the last
        poll, expire every lease whose expiry is before ``now_ns`` (one vectorised scan), and after
        the shutdown timeout revoke the remaining leases, broadcast DriverShutdown and stop.

        A stream closed by idle cleanup is thus observable as Closed until the next poll.
        Returns the number of leases that expired.
        """
        now = self._now(now_ns)
        if self._lifecycle.current is not DriverState.STOPPED:
            self._recycle_closed()
        n: int = self._core.expire(now)
        if self._lifecycle.current is DriverState.DRAINING and now >= self._shutdown_deadline:
            self._shutdown(now)
        if self._shared is not None:
            self._shared.publish()
        return n

    def _shutdown(self, now: int) -> None:
        self._core.end_all(int(RevokeReason.SHUTDOWN), now)
        self._recycle_closed()
        self._ctr[_C_CLOSED] += self._streams.count(State.LIVE)
        self._streams.broadcast(Event.DRIVER_SHUTDOWN)
        self._lifecycle.dispatch(DriverEvent.SHUTDOWN_TIMEOUT)

    def bump_epoch(self, stream_id: int) -> Response:
        """Explicit remap: bump a Live stream's epoch (EpochBumped; the state is kept).

        Returns OK with the new epoch, or REJECTED for an unknown or closed stream.
        """
        sid = _check_int("stream_id", stream_id)
        slot = self._slot_of(sid)
        if slot < 0:
            return Response(_REJECTED, f"unknown stream {sid}")
        if self._streams.states[slot] == _CLOSED:
            return Response(_REJECTED, f"stream {sid} is closed")
        return Response(_OK, "", self._bump(slot))

    def request_shutdown(self, now_ns: int, token: str | None = None) -> Response:
        """Start draining: broadcast DriverDraining to every stream and reject attaches from now on;
        after ``shutdown_timeout_ns`` the next :meth:`poll` shuts down. A repeated request is
        harmless (OK, nothing changes).

        Returns REJECTED "invalid shutdown token" if a token is configured and ``token`` differs.
        """
        now = self._now(now_ns)
        expected = self.config.shutdown_token
        if expected is not None and token != expected:
            return Response(_REJECTED, "invalid shutdown token")
        current = self._lifecycle.current
        self._lifecycle.dispatch(DriverEvent.SHUTDOWN_REQUESTED)
        if current is not DriverState.RUNNING:
            return Response(_OK, f"already {current.name.lower()}")
        self._shutdown_deadline = now + self.config.shutdown_timeout_ns
        self._recycle_closed()
        self._streams.broadcast(Event.DRIVER_DRAINING)
        for slot in self._streams.slots_in(State.LIVE).tolist():
            self._core.mark_announce(slot)  # final announce of every stream
        return Response(_OK, "draining")

    # ------------------------------------------------------------------ outboxes
    def drain_revoked(self, out: np.ndarray | None = None) -> np.ndarray:
        """Take the pending lease-revoked notices, oldest first, and clear the outbox.

        With ``out`` (a ``REVOKED_NOTICE_DTYPE`` array) the notices are copied into it without
        allocating and a view of the filled part is returned; notices that do not fit stay queued.
        Without ``out`` a new array is returned.
        """
        pending = self._core.n_revoked
        if out is None:
            out = np.empty(pending, REVOKED_NOTICE_DTYPE)
        elif not isinstance(out, np.ndarray) or out.dtype != REVOKED_NOTICE_DTYPE or out.ndim != 1:
            raise TypeError("out must be a 1-D array of REVOKED_NOTICE_DTYPE")
        n = min(pending, len(out))
        rest = pending - n
        for name, column in self._rv.items():
            out[name][:n] = column[:n]
            if rest:
                column[:rest] = column[n:pending]
        self._core.n_revoked = rest
        return out[:n]

    def drain_announces(self, out: np.ndarray | None = None) -> np.ndarray:
        """Take the stream ids whose announce is due because their epoch or state changed (only
        Live, provisioned streams: Active or Draining), each once, and clear.

        With ``out`` (an int64 array at least ``stream_capacity`` long) no result array is
        allocated (only short-lived index temporaries).
        """
        due = self._core.take_due()
        if out is None:
            out = np.empty(len(due), np.int64)
        elif not isinstance(out, np.ndarray) or out.dtype != np.int64 or len(out) < len(due):
            raise TypeError(f"out must be an int64 array of at least {len(due)} entries")
        self._due[due] = False
        states = self._streams.states[due]
        eligible = due[(states == _ACTIVE) | (states == _DRAINING)]
        n = len(eligible)
        out[:n] = self._stream_id[eligible]
        return out[:n]

    def announce_eligible(self) -> npt.NDArray[np.int64]:
        """Stream ids eligible for the periodic announce (Live and provisioned), one vectorised
        pass over the stream table."""
        states = self._streams.states
        eligible: npt.NDArray[np.int64] = self._stream_id[(states == _ACTIVE) | (states == _DRAINING)]
        return eligible

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> DriverState:
        """The driver lifecycle state (Running, Draining or Stopped)."""
        return self._lifecycle.current  # type: ignore[return-value]

    @property
    def streams(self) -> StreamTable:
        """The stream table (read it; mutating it directly bypasses the driver's bookkeeping)."""
        return self._streams

    @property
    def counters(self) -> Mapping[str, int]:
        """A snapshot of the driver's counters (names in :data:`COUNTER_NAMES`)."""
        out = dict(zip(COUNTER_NAMES, self._ctr.tolist()))
        out["stream_hsm_unhandled"] = self._streams.unhandled_total
        out["lease_hsm_unhandled"] = self._leases.unhandled_total
        return out

    def stats(self) -> dict[str, object]:
        """Counters and statistics as plain data: the driver state, its counters, the stream and
        lease tables' :meth:`~streamhsm.MachineTable.stats`, and the pending outboxes."""
        return {
            "state": self.state.name,
            "counters": dict(self.counters),
            "live_leases": self.live_leases,
            "pending_revoke_notices": int(self._core.n_revoked),
            "streams": self._streams.stats(),
            "leases": self._leases.stats(),
        }

    def stream_state(self, stream_id: int) -> State | None:
        """State of the stream with this id, or None if it has no slot (never provisioned, or its
        slot was recycled after idle cleanup). A Closed stream stays observable until recycled."""
        slot = self._slot_of(_check_int("stream_id", stream_id))
        return None if slot < 0 else self._streams.state(slot)

    def stream_info(self, stream_id: int) -> StreamInfo | None:
        """The registry row of a stream id, or None if it has no slot."""
        sid = _check_int("stream_id", stream_id)
        slot = self._slot_of(sid)
        if slot < 0:
            return None
        return StreamInfo(sid, self._streams.state(slot), int(self._epoch[slot]),
                          int(self._producer[slot]), int(self._consumers[slot]),
                          bool(self._dynamic[slot]))

    def epoch(self, stream_id: int) -> int:
        """Current (or, after recycling, last) epoch of a stream id; 0 if never provisioned."""
        sid = _check_int("stream_id", stream_id)
        slot = self._slot_of(sid)
        if slot >= 0:
            return int(self._epoch[slot])
        if self._dyn_first <= sid <= self._dyn_last:
            return int(self._dyn_epoch[sid - self._dyn_first])
        return 0

    def lease_state(self, lease_id: int) -> LeaseState | None:
        """State of a lease: Active while live, Closed once ended (lease ids are never reused),
        None for an id never issued."""
        ls = self._live_lease(lease_id)
        if ls >= 0:
            return self._leases.state(ls)  # type: ignore[return-value]
        return LeaseState.CLOSED if self._ended(lease_id) else None

    def lease_expiry(self, lease_id: int) -> int | None:
        """Expiry time (ns) of a live lease, None otherwise."""
        ls = self._live_lease(lease_id)
        return None if ls < 0 else int(self._lease_expiry[ls])

    @property
    def live_leases(self) -> int:
        """Number of live leases."""
        return len(self._leases)

    # ------------------------------------------------------------------ snapshots
    _COLUMNS = ("_stream_id", "_producer", "_consumers", "_dynamic", "_epoch", "_dyn_slot",
                "_dyn_epoch", "_lease_id", "_lease_stream", "_lease_role", "_lease_client",
                "_lease_expiry", "_due")

    def snapshot(self) -> dict[str, object]:
        """The driver's state as plain data (states, counters, epochs and their high-water marks,
        leases, pending outboxes, lifecycle, clock), with its kind, format version, machine
        fingerprints and configuration (the shutdown token is not included)."""
        cfg = dataclasses.asdict(self.config)
        cfg["shutdown_token"] = None
        cfg["shm_name"] = None  # a restored driver chooses its own segment
        snap: dict[str, object] = {
            "kind": "Driver", "version": SNAPSHOT_VERSION, "machine": "driver",
            "fingerprint": self._fingerprint(), "config": json.dumps(cfg, sort_keys=True),
            "driver_state": int(self._lifecycle.current), "now_ns": self._now_ns,
            "shutdown_deadline": int(self._shutdown_deadline),
            "last_lease_id": self._last_lease_id, "counters": np.array(self._ctr),
            "n_revoked": int(self._core.n_revoked),
            "closed_dynamic": int(self._core.closed_dynamic),
            "due_slots": self._core.pending_due().copy(),
        }
        for name in self._COLUMNS:
            snap[name.lstrip("_")] = getattr(self, name).copy()
        for key, column in self._rv.items():
            snap[f"revoked_{key}"] = column.copy()
        for prefix, table in (("streams", self._streams), ("leases", self._leases)):
            for key, value in table.snapshot().items():
                snap[f"{prefix}.{key}"] = value
        return snap

    def _fingerprint(self) -> str:
        return "/".join(m.fingerprint for m in (self._streams.machine, self._leases.machine,
                                                 self._lifecycle.machine))

    def close(self) -> None:
        """Release what outlives the driver object: the shared-memory segment, if any."""
        if self._shared is not None:
            self._shared.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def restore(cls, snap: dict[str, object], shutdown_token: str | None = None) -> Driver:
        """A new driver with the state of a :meth:`snapshot`, as after a driver restart: every
        Live stream's epoch is bumped once (EpochBumped, announce due), so epochs never go back.

        Raises:
            SnapshotError: another kind, version or machine; a configuration, column or table
                that does not fit; inconsistent leases.
        """
        if not isinstance(snap, dict):
            raise SnapshotError(f"a snapshot is a dict, got {type(snap).__name__}")
        try:
            cfg_fields = json.loads(str(snap.get("config")))
            for key in ("static_stream_ids", "dynamic_stream_id_range"):
                if cfg_fields.get(key) is not None:
                    cfg_fields[key] = tuple(cfg_fields[key])
            cfg_fields["shutdown_token"] = shutdown_token
            config = DriverConfig(**cfg_fields)
        except (ValueError, TypeError) as exc:
            raise SnapshotError(f"snapshot configuration is not usable: {exc}") from exc
        d = cls(config, now_ns=0)
        check_header(snap, "Driver", d._fingerprint())
        for prefix, table in (("streams", d._streams), ("leases", d._leases)):
            table.restore({k.split(".", 1)[1]: v for k, v in snap.items()
                           if k.startswith(prefix + ".")})
        for name in cls._COLUMNS:
            column = getattr(d, name)
            column[:] = snap_array(snap, name.lstrip("_"), column.dtype, len(column))
        for key, column in d._rv.items():
            column[:] = snap_array(snap, f"revoked_{key}", column.dtype, len(column))
        counters = snap_array(snap, "counters", np.int64, len(d._ctr))
        d._ctr[:] = counters
        ints = {}
        for key in ("driver_state", "now_ns", "shutdown_deadline", "last_lease_id", "n_revoked",
                    "closed_dynamic"):
            value = snap.get(key)
            if type(value) is not int or value < 0:
                raise SnapshotError(f"snapshot field {key!r} must be an int >= 0, got {value!r}")
            ints[key] = value
        if ints["n_revoked"] > len(d._rv["lease_id"]):
            raise SnapshotError(f"snapshot n_revoked {ints['n_revoked']} exceeds the outbox")
        if ints["driver_state"] not in (DriverState.RUNNING, DriverState.DRAINING,
                                        DriverState.STOPPED):
            raise SnapshotError(f"snapshot driver_state {ints['driver_state']} is not a driver state")
        live = np.flatnonzero(d._leases.states != 255)
        if not np.array_equal(live, np.flatnonzero(d._lease_stream >= 0)):
            raise SnapshotError("snapshot lease rows do not match the open lease slots")
        streams_of_live = d._lease_stream[live]
        if streams_of_live.size and (streams_of_live.max() >= d._streams.capacity
                                     or np.any(d._streams.states[streams_of_live] == 255)):
            raise SnapshotError("a snapshot lease belongs to a stream slot that is not open")
        try:
            for ls in live.tolist():
                d._lease_by_id.put(int(d._lease_id[ls]), ls)
                if int(d._lease_client[ls]) in d._lease_by_client:
                    raise SnapshotError(f"client {int(d._lease_client[ls])} holds two leases")
                d._lease_by_client.put(int(d._lease_client[ls]), ls)
        except (ValueError, OverflowError) as exc:
            raise SnapshotError(f"snapshot leases are inconsistent: {exc}") from exc
        d._static_slot = {int(d._stream_id[s]): s for s in
                          np.flatnonzero((d._streams.states != 255) & ~d._dynamic).tolist()}
        d._now_ns = ints["now_ns"]
        d._shutdown_deadline = ints["shutdown_deadline"] or _NEVER
        d._last_lease_id = ints["last_lease_id"]
        d._core.n_revoked = ints["n_revoked"]
        d._core.closed_dynamic = ints["closed_dynamic"]
        d._core.take_due()  # construction queued the static streams; the snapshot's list replaces it
        d._due[:] = False
        for slot in snap_array(snap, "due_slots", np.int32, len(snap.get("due_slots", ()))).tolist():  # type: ignore[arg-type]
            d._core.mark_announce(slot)
        if ints["driver_state"] != DriverState.RUNNING:
            d._lifecycle.dispatch(DriverEvent.SHUTDOWN_REQUESTED)
        if ints["driver_state"] == DriverState.STOPPED:
            d._lifecycle.dispatch(DriverEvent.SHUTDOWN_TIMEOUT)
        for slot in d._streams.slots_in(State.LIVE).tolist():
            d._bump(slot)  # after a restart, every stream gets a new epoch
        return d

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`snapshot` to ``path`` (``.npz``, no pickles)."""
        save_snapshot(self.snapshot(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], shutdown_token: str | None = None) -> Driver:
        """:meth:`restore` from a file written by :meth:`save`."""
        return cls.restore(load_snapshot(path), shutdown_token)

    def __repr__(self) -> str:
        return (f"<Driver {self.state.name} streams={len(self._streams)} "
                f"leases={len(self._leases)}>")
