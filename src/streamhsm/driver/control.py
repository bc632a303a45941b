"""An in-process model of a driver's control plane (plan S-2, S-3, S-4), with no transport.

The driver's registry of streams and leases *is* the compiled machines' tables: a
:class:`~streamhsm.StreamTable` (one row per stream slot) and a lease table on the same engine,
plus the registry columns (stream id, producer lease, consumer count, epoch, and per lease its id,
stream, role, client and expiry). Those columns are allocated, owned and changed only by the
Cython :class:`~streamhsm.driver._core.DriverCore`, which also checks the attach rules; this class
converts arguments, checks times and its lifecycle, and turns outcomes into responses. No
per-stream or per-lease Python object exists; control operations on existing streams and leases
allocate nothing that outlives the call.

Times are integer nanoseconds passed in by the caller (``now_ns``); the driver never reads a clock.
Every entry point first converts every argument into a plain value (:mod:`._args`: a caller's
``__index__`` or ``str`` subclass runs then, before the driver looks anything up), then checks
that the driver is open, then validates, then acts: a call that raises changes nothing, not even
the driver's clock. After :meth:`Driver.close` every call raises :class:`DriverClosedError`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._instance import MachineInstance
from .._table import MachineTable
from ..errors import DriverClosedError
from ..lifecycle import State, StreamTable
from ..shm import SharedStreamTable
from ..snapshot import load_snapshot, save_snapshot
from . import persistence
from ._args import plain_bool, plain_int, plain_str, shown
from ._calls import DriverBase
from ._core import EPOCH_MAX, DriverCore
from ._core import NEVER as NEVER_NS
from .config import MAX_CLIENT_ID, MAX_STREAM_ID, DriverConfig
from .machines import DriverEvent, DriverState, LeaseState, driver_machine, lease_machine
from .protocol import (
    COUNTER_NAMES,
    MAX_SHUTDOWN_MESSAGE,
    REFUSALS,
    REVOKED_NOTICE_DTYPE,
    Announce,
    AttachResult,
    Counter,
    Response,
    ResponseCode,
    RevokedNotice,
    RevokeReason,
    Role,
    ShutdownNotice,
    ShutdownReason,
)

__all__ = ["Driver", "StreamInfo"]

_OK, _REJECTED = ResponseCode.OK, ResponseCode.REJECTED
_ROLE_NAMES = {"producer": Role.PRODUCER, "consumer": Role.CONSUMER}
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A snapshot of one stream's registry row."""

    stream_id: int
    state: State
    epoch: int
    producer_lease_id: int  # 0: no producer
    consumers: int
    dynamic: bool
    producer_client_id: int = 0  # 0: no producer


def _role(role: object) -> int:
    """Role code, or -1 for a well-typed but unknown role (a plain int either way)."""
    if issubclass(type(role), str):
        r = _ROLE_NAMES.get(str.lower(plain_str("role", role)))
        return -1 if r is None else int(r)
    code = plain_int("role", role)
    return code if code in (Role.PRODUCER, Role.CONSUMER) else -1


def _optional_int(name: str, value: object) -> int | None:
    return None if value is None else plain_int(name, value)


def _i64(value: int, outside: int) -> int:
    """``value`` if it fits in int64, else ``outside`` (a value the core refuses the same way)."""
    return value if _INT64[0] <= value <= _INT64[1] else outside


class Driver(DriverBase):
    """The driver's control plane: streams, leases, epochs, draining and shutdown.

    Args:
        config: a :class:`DriverConfig` (defaults if omitted).
        now_ns: the time the driver starts (default 0); times passed later must not go back.
        shm_name: put the stream table in this named shared-memory segment (overrides
            ``config.shm_name``), readable by ``python -m streamhsm stat NAME``.

    Configured (static) streams are provisioned at construction: each gets StreamProvisioned and
    its first epoch. The driver lifecycle starts Running.

    Times: ``now_ns`` must be between 0 and :attr:`max_time_ns` (the largest time whose lease
    expiry and shutdown deadline still fit in int64) and must not go back; otherwise the call
    raises ``ValueError`` and changes nothing.

    ``keepalive``, ``detach``, ``attach`` and the batch calls ``keepalive_many``,
    ``detach_many``, ``attach_many`` are implemented in Cython (``DriverBase``); their common
    case makes one call into the core.
    """

    def __init__(self, config: DriverConfig | None = None, *, now_ns: int = 0,
                 shm_name: str | None = None) -> None:
        cfg = DriverConfig() if config is None else config
        if type(cfg) is not DriverConfig:
            raise TypeError(f"config must be a DriverConfig, got {type(cfg).__name__}")
        start = plain_int("now_ns", now_ns)
        name = cfg.shm_name if shm_name is None else plain_str("shm_name", shm_name)
        self._closed = False
        self._running = False
        self.config = cfg
        self._max_time_ns = cfg.max_time_ns
        self._now_ns = 0
        self._expiry_ns = cfg.lease_expiry_ns
        self._now_ns = self._check_now(start)
        n_s, n_l = cfg.stream_capacity, cfg.lease_capacity
        self._shared: SharedStreamTable | None = None
        if name is not None:
            self._shared = SharedStreamTable(name, n_s, cfg.drain_on_producer_loss)
            self._streams: StreamTable = self._shared
        else:
            self._streams = StreamTable(n_s, drain_on_producer_loss=cfg.drain_on_producer_loss,
                                        announce_period_ns=cfg.announce_period_ns, now_ns=start)
        # the lease machine owns lease expiry (its ``expiry`` timer): the table's clock is the
        # driver's, moved by every lease call and poll (DriverCore.expire)
        self._leases = MachineTable(lease_machine(cfg.lease_expiry_ns), n_l, now_ns=start)
        # the driver machine owns the shutdown timeout (its ``shutdown`` timer, armed when
        # Draining is entered); its clock follows the driver's at requests and polls
        self._lifecycle = MachineInstance(driver_machine(cfg.shutdown_timeout_ns), now_ns=start)
        self._lifecycle.dispatch(DriverEvent.START)
        self._shutdown: ShutdownNotice | None = None
        first, last = cfg.dynamic_stream_id_range or (1, 0)
        self._core = DriverCore(self._streams, self._leases, first, last,
                                len(cfg.static_stream_ids), int(cfg.outbox_capacity or n_l),
                                cfg.allow_dynamic_streams, cfg.drain_on_producer_loss)
        self._counters = self._core.column("counters")
        self._epoch = self._core.column("epoch")
        self._stream_id = self._core.column("stream_id")
        self._lease_deadline = self._leases.deadlines("expiry")
        self._lease_stream = self._core.column("lease_stream")
        self._revoked = {name: self._core.column("revoked_" + name)
                         for name in REVOKED_NOTICE_DTYPE.names or ()}
        self._announce_buf = np.empty(n_s, np.int64)
        self._own_arrays([*self._core.columns_view(), self._streams.states, self._leases.states,
                          self._streams.unhandled, self._leases.unhandled])
        for sid in cfg.static_stream_ids:
            self._core.provision_static(sid)
        self._running = True

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        """Raise :class:`DriverClosedError` after :meth:`close` (checked after the arguments are
        converted, since converting one may run a caller's code that closes the driver)."""
        if self._closed:
            raise DriverClosedError("this Driver is closed; every call on it raises (make a new "
                                    "one, or Driver.load a saved snapshot)")

    def _check_now(self, now: int) -> int:
        """Validate a converted time (changes nothing; the caller commits it with
        ``_now_ns = now``)."""
        if not 0 <= now <= self.max_time_ns:
            raise ValueError(f"now_ns must be between 0 and {self.max_time_ns}, got {now}")
        if now < self._now_ns:
            raise ValueError(f"now_ns went backwards: {now} < {self._now_ns}")
        return now

    def _advance(self, now: int, *, commit: bool = True) -> int:
        """Time first: commit ``now`` as the driver's clock (``commit``), then move the lease
        table's to it, which ends the leases that expired before it (``DriverCore.expire``);
        return how many. OverflowError (and the clock put back) if one of them cannot end."""
        before = self._now_ns
        if commit:
            self._now_ns = now
        try:
            n: int = self._core.expire(now)
        except OverflowError:
            if self._now_ns == now:
                self._now_ns = before
            raise
        return n

    @property
    def _shutdown_deadline(self) -> int:
        """When the drain ends (NEVER while the driver runs): the driver machine's shutdown
        timer while it drains, the request's time plus the timeout once stopped."""
        deadline: int = self._lifecycle.deadlines("shutdown")
        if deadline == NEVER_NS and self._shutdown is not None:
            return self._shutdown.requested_ns + self.config.shutdown_timeout_ns
        return deadline

    def _slot_of(self, stream_id: int) -> int:
        """Slot of a stream id (any state), or -1."""
        if not 0 <= stream_id <= MAX_STREAM_ID:
            return -1
        return int(self._core.slot_of(stream_id))

    def _lease_args(self, lease_id: object, now_ns: object, client_id: object,
                    stream_id: object, role: object
                    ) -> tuple[int, int, int, int | None, int | None]:
        """The converted arguments of keepalive and detach (nothing looked up yet), with the
        driver checked open afterwards."""
        lid = plain_int("lease_id", lease_id)
        client = plain_int("client_id", client_id)
        sid = _optional_int("stream_id", stream_id)
        role_code = None if role is None else _role(role)
        now = plain_int("now_ns", now_ns)
        self._check_open()
        return lid, now, client, sid, role_code

    def _lease_slot(self, lid: int, client: int, sid: int | None, role_code: int | None) -> int:
        """Live lease slot of ``lid`` if it is held by ``client`` (and, when given, on ``sid``
        with ``role_code``); -1 otherwise, whatever the reason."""
        if not 0 < lid <= _INT64[1] or not 0 < client <= MAX_CLIENT_ID:
            return -1
        ls = int(self._core.live_lease(lid, client))
        if ls < 0:
            return -1
        slot = int(self._lease_stream[ls])
        if sid is not None and int(self._stream_id[slot]) != sid:
            return -1
        if role_code is not None and int(self._core.column("lease_role")[ls]) != role_code:
            return -1
        return ls

    def _live_slot(self, lease_id: int) -> int:
        """Live lease slot of ``lease_id`` whoever holds it, or -1."""
        return int(self._core.live_lease(lease_id, 0)) if 0 < lease_id <= _INT64[1] else -1

    def _ended(self, lease_id: int) -> bool:
        return 0 < lease_id <= self._core.last_lease_id

    def _ended_not_live(self, lid: int) -> bool:
        """True for an issued lease that is no longer live (not for one another client holds)."""
        return self._ended(lid) and self._live_slot(lid) < 0

    def _epoch_at_max(self, ls: int) -> Response:
        sid = int(self._stream_id[self._lease_stream[ls]])
        return Response(_REJECTED, f"epoch of stream {sid} is at its maximum {EPOCH_MAX}: the "
                                   "lease of its producer cannot end")

    # ------------------------------------------------------------------ control operations
    def _draining(self) -> bool:
        return self._lifecycle.current is DriverState.DRAINING

    def _refused(self, refusal: int, sid: int, role: object, client: int) -> AttachResult:
        """The answer to an attach the core refused (``refusal``: an ``AttachRefusal`` code)."""
        code, reason = REFUSALS[refusal]
        return AttachResult(code, 0, sid, 0, reason.format(
            sid=sid, client=client, role=shown(role), first=self._core.dyn_first,
            last=self._core.dyn_last, max=EPOCH_MAX))

    def _attach_slow(self, stream_id: object, role: object, client_id: object, now_ns: object,
                     create: object = False) -> AttachResult:
        """:meth:`attach` for every call its Cython fast path does not take."""
        sid = plain_int("stream_id", stream_id)
        client = plain_int("client_id", client_id)
        creating = plain_bool("create", create)
        role_code = _role(role)
        now = plain_int("now_ns", now_ns)
        self._check_open()
        now = self._check_now(now)
        self._advance(now)
        lifecycle = self._lifecycle.current
        if lifecycle is not DriverState.RUNNING:
            self._core.reject()
            why = "driver draining" if lifecycle is DriverState.DRAINING else "driver stopped"
            return AttachResult(_REJECTED, 0, sid, 0, why)
        expiry = now + self.config.lease_expiry_ns
        lease_id = int(self._core.attach(_i64(sid, -1), role_code, _i64(client, 0), creating))
        if lease_id < 0:
            return self._refused(-lease_id, sid, role, client)
        slot = int(self._core.slot_of(sid))
        return AttachResult(_OK, lease_id, sid, int(self._epoch[slot]), "", expiry)

    def _keepalive_slow(self, lease_id: object, now_ns: object, client_id: object,
                        stream_id: object, role: object) -> Response:
        """:meth:`keepalive` for every call its Cython fast path does not take."""
        lid, now, client, sid, role_code = self._lease_args(lease_id, now_ns, client_id,
                                                             stream_id, role)
        now = self._check_now(now)
        self._advance(now)
        ls = self._lease_slot(lid, client, sid, role_code)
        if ls < 0:
            ended = self._ended_not_live(lid)
            return Response(_REJECTED, "lease ended" if ended else "unknown lease")
        self._core.keepalive(ls)
        return Response(_OK, "", int(self._epoch[self._lease_stream[ls]]))

    def _detach_slow(self, lease_id: object, now_ns: object, client_id: object,
                     stream_id: object, role: object) -> Response:
        """:meth:`detach` for every call its Cython fast path does not take."""
        lid, now, client, sid, role_code = self._lease_args(lease_id, now_ns, client_id,
                                                             stream_id, role)
        now = self._check_now(now)
        self._advance(now, commit=False)
        ls = self._lease_slot(lid, client, sid, role_code)
        if ls < 0:
            self._now_ns = now
            if self._ended_not_live(lid):
                return Response(_OK, "lease already ended")
            return Response(_REJECTED, "unknown lease")
        return self._end(ls, RevokeReason.DETACHED, now)

    def revoke(self, lease_id: int, now_ns: int, *,
               reason: RevokeReason | int = RevokeReason.REVOKED) -> Response:
        """End a live lease on the operator's initiative, whoever holds it; like :meth:`detach`
        otherwise. ``reason`` (default REVOKED; EXPIRED is also allowed) goes into the notice and
        decides the lease machine's event and counter (Revoke / ``leases_revoked`` or
        LeaseTimeout / ``leases_expired``).

        Raises:
            ValueError: ``reason`` is not REVOKED or EXPIRED.
        """
        lid = plain_int("lease_id", lease_id)
        code = plain_int("reason", reason)
        now = plain_int("now_ns", now_ns)
        self._check_open()
        if code not in (RevokeReason.REVOKED, RevokeReason.EXPIRED):
            raise ValueError(f"revoke reason must be REVOKED or EXPIRED, got {shown(reason)}")
        now = self._check_now(now)
        self._advance(now, commit=False)
        ls = self._live_slot(lid)
        if ls < 0:
            self._now_ns = now
            if self._ended(lid):
                return Response(_OK, "lease already ended")
            return Response(_REJECTED, "unknown lease")
        return self._end(ls, RevokeReason(code), now)

    def _end(self, ls: int, reason: RevokeReason, now: int) -> Response:
        """End live lease slot ``ls`` and commit the clock (or, refused, change nothing)."""
        slot = int(self._lease_stream[ls])
        if not self._core.end(ls, int(reason), now):
            return self._epoch_at_max(ls)
        self._now_ns = now
        return Response(_OK, "", int(self._epoch[slot]))

    def poll(self, now_ns: int) -> int:
        """The driver's duty cycle: recycle the slots of dynamic streams closed since the last
        poll, advance the lease table's clock to ``now_ns`` (the expiry timers of the leases
        whose expiry is before it fire: they end), and advance the driver machine's (its
        shutdown timer, due at the request plus the timeout, revokes the remaining leases,
        broadcasts DriverShutdown and stops the driver).

        A stream closed by idle cleanup is thus observable as Closed until the next poll.
        Returns the number of leases that expired in this poll (a lease call with a later time
        than the last poll expires the leases due before it too).
        """
        now = plain_int("now_ns", now_ns)
        self._check_open()
        now = self._check_now(now)
        # the drain ends in this poll if the driver machine's shutdown timer is due at now
        shutting_down = now >= self._lifecycle.deadlines("shutdown")
        blocked = int(self._core.end_blocked_by_epoch(not shutting_down, now))
        if blocked >= 0:
            raise OverflowError(f"the epoch of stream {blocked} is at its maximum {EPOCH_MAX}: "
                                "the lease of its producer cannot end; nothing was changed")
        self._now_ns = now
        if self._lifecycle.current is not DriverState.STOPPED:
            self._core.recycle_closed()
        n: int = self._core.expire(now)
        if shutting_down:
            self._core.shutdown(now)
        self._lifecycle.advance(now)  # the shutdown timer fires: Draining -> Stopped
        if shutting_down:
            if self._shutdown is not None:
                self._shutdown = dataclasses.replace(self._shutdown, stopped_ns=now)
        if self._shared is not None:
            self._shared.publish()
        return n

    def bump_epoch(self, stream_id: int, *, now_ns: int | None = None) -> Response:
        """Explicit remap: bump a Live stream's epoch (EpochBumped; the state is kept).

        ``now_ns`` (optional, for callers that keep the driver's clock in step; the contract's
        call is ``bump_epoch(stream_id)``) is the time of the request, validated like every
        other time and committed as the driver's clock; without it the clock stays.

        Returns OK with the new epoch, or REJECTED for an unknown or closed stream or an epoch
        at its maximum (``EPOCH_MAX``; nothing changes).
        """
        sid = plain_int("stream_id", stream_id)
        now = _optional_int("now_ns", now_ns)
        self._check_open()
        now = self._now_ns if now is None else self._check_now(now)
        self._now_ns = now
        slot = self._slot_of(sid)
        if slot < 0:
            return Response(_REJECTED, f"unknown stream {sid}")
        if self._streams.states[slot] == State.CLOSED:
            return Response(_REJECTED, f"stream {sid} is closed")
        epoch = int(self._core.bump_epoch(slot))
        if epoch < 0:
            return Response(_REJECTED, f"epoch of stream {sid} is at its maximum {EPOCH_MAX}")
        return Response(_OK, "", epoch)

    def request_shutdown(self, now_ns: int, token: str | None = None, *,
                         reason: ShutdownReason | int = ShutdownReason.NORMAL,
                         message: str = "") -> Response:
        """Start draining: broadcast DriverDraining to every stream and reject attaches from now on;
        after ``shutdown_timeout_ns`` the next :meth:`poll` shuts down. A repeated request is
        harmless (OK, nothing changes; the first request's reason and message are kept).

        ``reason`` (NORMAL or ADMIN) and ``message`` (at most ``MAX_SHUTDOWN_MESSAGE``
        characters) are carried by :attr:`shutdown_notice`, which the transport sends to every
        client.

        Returns REJECTED "invalid shutdown token" if a token is configured and ``token`` differs.

        Raises:
            ValueError: unknown reason, message too long, or a bad ``now_ns``.
            TypeError: ``message`` is not a str.
        """
        now = plain_int("now_ns", now_ns)
        given = None if token is None else plain_str("token", token)
        code = plain_int("reason", reason)
        text = plain_str("message", message)
        self._check_open()
        if code not in tuple(ShutdownReason):
            raise ValueError(f"shutdown reason must be NORMAL or ADMIN, got {shown(reason)}")
        if len(text) > MAX_SHUTDOWN_MESSAGE:
            raise ValueError(f"message has {len(text)} characters, at most "
                             f"{MAX_SHUTDOWN_MESSAGE} are allowed")
        now = self._check_now(now)
        self._now_ns = now
        expected = self.config.shutdown_token
        if expected is not None and given != expected:
            return Response(_REJECTED, "invalid shutdown token")
        current = self._lifecycle.current
        if current is DriverState.RUNNING:  # nothing is armed yet: only the clock moves (poll
            self._lifecycle.advance(now)    # alone advances a draining driver's machine)
        self._lifecycle.dispatch(DriverEvent.SHUTDOWN_REQUESTED)  # arms the shutdown timer
        self._running = False
        if current is not DriverState.RUNNING:
            return Response(_OK, f"already {current.name.lower()}")
        self._shutdown = ShutdownNotice(ShutdownReason(code), text, now)
        self._core.drain()
        return Response(_OK, "draining")

    @property
    def shutdown_notice(self) -> ShutdownNotice | None:
        """The shutdown request the driver accepted (reason, message, time requested, time
        stopped), or None while it runs."""
        self._check_open()
        return self._shutdown

    # ------------------------------------------------------------------ outboxes
    def drain_revoked(self, out: np.ndarray | None = None) -> np.ndarray:
        """Take the pending lease-revoked notices, oldest first, and clear the outbox.

        With ``out`` (a ``REVOKED_NOTICE_DTYPE`` array) the notices are copied into it without
        allocating and a view of the filled part is returned; notices that do not fit stay queued.
        Without ``out`` a new array is returned. ``role`` and ``reason`` are codes:
        ``Role(notice["role"])`` and ``RevokeReason(notice["reason"])`` name them.
        """
        if out is not None and (type(out) is not np.ndarray or out.dtype != REVOKED_NOTICE_DTYPE
                                or out.ndim != 1):
            raise TypeError("out must be a 1-D numpy array (not a subclass) of "
                            "REVOKED_NOTICE_DTYPE")
        self._check_open()
        pending = int(self._core.n_revoked)
        if out is None:
            out = np.empty(pending, REVOKED_NOTICE_DTYPE)
        n = min(pending, len(out))
        for name, column in self._revoked.items():
            out[name][:n] = column[:n]
        self._core.consume_revoked(n)
        return out[:n]

    def drain_announces(self, out: np.ndarray | None = None) -> np.ndarray:
        """Take the stream ids whose announce is due because their epoch or state changed (only
        Live, provisioned streams: Active or Draining), each once, and clear.

        With ``out`` (an int64 array at least ``stream_capacity`` long, or at least as long as
        the due list) nothing is allocated and a view of the filled part is returned.
        """
        if out is not None and (type(out) is not np.ndarray or out.dtype != np.int64
                                or out.ndim != 1):
            raise TypeError("out must be a 1-D int64 numpy array (not a subclass)")
        self._check_open()
        if out is None:
            n = int(self._core.take_announces(self._announce_buf))
            return self._announce_buf[:n].copy()
        due = int(self._core.n_announces_due)
        if len(out) < due:
            raise ValueError(f"out holds {len(out)} entries, {due} announces are due")
        return out[:int(self._core.take_announces(out))]

    def revoked_notices(self) -> list[RevokedNotice]:
        """Take every pending lease-revoked notice as a named :class:`RevokedNotice` (role and
        reason as enums), oldest first, and clear the outbox: the readable form of
        :meth:`drain_revoked`, built when drained (the hot path stores plain columns)."""
        return [RevokedNotice(int(n["lease_id"]), int(n["stream_id"]), int(n["client_id"]),
                              Role(int(n["role"])), RevokeReason(int(n["reason"])),
                              int(n["time_ns"])) for n in self.drain_revoked()]

    def announces(self) -> list[Announce]:
        """Take the due announces as named :class:`Announce` records (stream id, its epoch and
        state now), in the order they became due, and clear: the readable form of
        :meth:`drain_announces`."""
        ids = self.drain_announces()
        out = []
        for sid in ids.tolist():
            slot = self._slot_of(sid)
            out.append(Announce(sid, int(self._epoch[slot]), self._streams.state(slot)))
        return out

    def announce_eligible(self) -> npt.NDArray[np.int64]:
        """Stream ids eligible for the periodic announce (Live and provisioned), one vectorised
        pass over the stream table."""
        self._check_open()
        states = self._streams.states
        eligible: npt.NDArray[np.int64] = self._stream_id[(states == State.ACTIVE)
                                                         | (states == State.DRAINING)]
        return eligible

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> DriverState:
        """The driver lifecycle state (Running, Draining or Stopped)."""
        self._check_open()
        return self._lifecycle.current  # type: ignore[return-value]

    @property
    def now_ns(self) -> int:
        """The latest time the driver has seen."""
        self._check_open()
        return self._now_ns

    @property
    def streams(self) -> StreamTable:
        """The stream table (read it; mutating it directly bypasses the driver's bookkeeping)."""
        self._check_open()
        return self._streams

    @property
    def counters(self) -> Mapping[str, int]:
        """A snapshot of the driver's counters (names in :data:`COUNTER_NAMES`)."""
        self._check_open()
        # the core counts all but the last two (the two tables count their unhandled events)
        out = dict(zip(COUNTER_NAMES, self._counters.tolist(), strict=False))
        out[COUNTER_NAMES[Counter.STREAM_HSM_UNHANDLED]] = self._streams.unhandled_total
        out[COUNTER_NAMES[Counter.LEASE_HSM_UNHANDLED]] = self._leases.unhandled_total
        return out

    def stats(self) -> dict[str, object]:
        """Counters and statistics as plain data: the driver state, its counters, the stream and
        lease tables' :meth:`~streamhsm.MachineTable.stats`, and the pending outboxes."""
        self._check_open()
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
        sid = plain_int("stream_id", stream_id)
        self._check_open()
        slot = self._slot_of(sid)
        return None if slot < 0 else self._streams.state(slot)

    def stream_info(self, stream_id: int) -> StreamInfo | None:
        """The registry row of a stream id, or None if it has no slot."""
        sid = plain_int("stream_id", stream_id)
        self._check_open()
        slot = self._slot_of(sid)
        if slot < 0:
            return None
        producer = int(self._core.column("producer")[slot])
        ls = self._live_slot(producer)
        client = int(self._core.column("lease_client")[ls]) if ls >= 0 else 0
        return StreamInfo(sid, self._streams.state(slot), int(self._epoch[slot]), producer,
                          int(self._core.column("consumers")[slot]),
                          bool(self._core.column("dynamic")[slot]), client)

    def epoch(self, stream_id: int) -> int:
        """Current (or, after recycling, last) epoch of a stream id; 0 if never provisioned."""
        sid = plain_int("stream_id", stream_id)
        self._check_open()
        slot = self._slot_of(sid)
        if slot >= 0:
            return int(self._epoch[slot])
        first, last = self._core.dyn_first, self._core.dyn_last
        if first <= sid <= last:
            return int(self._core.column("dyn_epoch")[sid - first])
        return 0

    def lease_state(self, lease_id: int) -> LeaseState | None:
        """State of a lease: Active while live, Closed once ended (lease ids are never reused),
        None for an id never issued."""
        lid = plain_int("lease_id", lease_id)
        self._check_open()
        ls = self._live_slot(lid)
        if ls >= 0:
            return self._leases.state(ls)  # type: ignore[return-value]
        return LeaseState.CLOSED if self._ended(lid) else None

    def lease_expiry(self, lease_id: int) -> int | None:
        """Expiry time (ns) of a live lease, None otherwise."""
        lid = plain_int("lease_id", lease_id)
        self._check_open()
        ls = self._live_slot(lid)
        return None if ls < 0 else int(self._lease_deadline[ls]) - 1  # the timer fires 1 ns later

    @property
    def live_leases(self) -> int:
        """Number of live leases."""
        self._check_open()
        return len(self._leases)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, object]:
        """The driver's state as plain data (states, counters, epochs and their high-water marks,
        leases, pending outboxes, lifecycle, clock), with its kind, format version, machine
        fingerprints and configuration (neither the shutdown token nor the segment name)."""
        self._check_open()
        scalars = {
            "driver_state": int(self._lifecycle.current), "now_ns": self._now_ns,
            "shutdown_deadline": int(self._shutdown_deadline),
            "last_lease_id": int(self._core.last_lease_id),
            "n_revoked": int(self._core.n_revoked),
            "closed_dynamic": int(self._core.closed_dynamic),
        }
        notice = self._shutdown
        shutdown = {"shutdown_reason": -1 if notice is None else int(notice.reason),
                    "shutdown_message": "" if notice is None else notice.message,
                    "shutdown_requested_ns": 0 if notice is None else notice.requested_ns,
                    "shutdown_stopped_ns": 0 if notice is None else notice.stopped_ns}
        return persistence.snapshot(
            self, self._core.columns_copy(), self._core.due_slots_pending(),
            {"streams": self._streams.snapshot(), "leases": self._leases.snapshot()}, scalars,
            shutdown)

    def close(self) -> None:
        """Release what outlives the driver object (the shared-memory segment, if any) and close
        the driver: from then on every call on it raises :class:`DriverClosedError` and changes
        nothing. Closing again does nothing."""
        self._closed = True
        if self._shared is not None:
            self._shared.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __enter__(self) -> Driver:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def restore(cls, snap: dict[str, object], shutdown_token: str | None = None, *,
                shm_name: str | None = None) -> Driver:
        """A new driver with the state of a :meth:`snapshot`, as after a driver restart: every
        Live stream's epoch is bumped once (EpochBumped, announce due), so epochs never go back.

        The snapshot is validated completely before anything is allocated for it. It never names
        a shared-memory segment: pass ``shm_name`` to put the restored stream table in one.

        Raises:
            SnapshotError: another kind, version or machine; a configuration, column or table
                that does not fit; any value out of range or inconsistent with another.
        """
        token = None if shutdown_token is None else plain_str("shutdown_token", shutdown_token)
        name = None if shm_name is None else plain_str("shm_name", shm_name)
        valid = persistence.validate(snap, shutdown_token=token)
        d = cls(valid.config, now_ns=0, shm_name=name)
        try:
            d._restore(valid)
        except BaseException:
            d.close()
            raise
        return d

    def _restore(self, valid: persistence.DriverSnapshot) -> None:
        self._streams.restore(valid.tables["streams"])
        self._leases.restore(valid.tables["leases"])
        self._core.restore(valid.core)
        scalars = valid.scalars
        self._now_ns = scalars["now_ns"]
        if scalars["driver_state"] == DriverState.DRAINING:  # the request again, at its time
            self._lifecycle.advance(scalars["shutdown_deadline"] - self.config.shutdown_timeout_ns)
        if scalars["driver_state"] != DriverState.RUNNING:
            self._lifecycle.dispatch(DriverEvent.SHUTDOWN_REQUESTED)
            self._running = False
        if scalars["driver_state"] == DriverState.STOPPED:
            self._lifecycle.dispatch(DriverEvent.SHUTDOWN_TIMEOUT)
        self._shutdown = valid.shutdown
        self._core.restart_epochs()  # after a restart, every Live stream gets a new epoch

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`snapshot` to ``path`` (``.npz``, no pickles)."""
        self._check_open()
        save_snapshot(self.snapshot(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], shutdown_token: str | None = None, *,
             shm_name: str | None = None) -> Driver:
        """:meth:`restore` from a file written by :meth:`save`.

        Raises:
            SnapshotError: the file is not a valid driver snapshot (see :meth:`restore`).
            OSError: the file cannot be opened.
        """
        token = None if shutdown_token is None else plain_str("shutdown_token", shutdown_token)
        name = None if shm_name is None else plain_str("shm_name", shm_name)
        return cls.restore(load_snapshot(path), token, shm_name=name)

    def __repr__(self) -> str:
        if self._closed:
            return "<Driver closed>"
        return (f"<Driver {self.state.name} streams={len(self._streams)} "
                f"leases={len(self._leases)}>")

