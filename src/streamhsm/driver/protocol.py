"""Protocol types of the driver: roles, response codes, lease-end reasons and results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..codes import CodeEnum
from ..lifecycle import State
from .config import MAX_CLIENT_ID, MAX_STREAM_ID

__all__ = ["ATTACH_REQUEST_DTYPE", "ATTACH_RESULT_DTYPE", "COUNTER_NAMES", "LEASE_RESULT_DTYPE",
           "MAX_SHUTDOWN_MESSAGE", "REVOKED_NOTICE_DTYPE", "Announce", "AttachResult",
           "BatchReason", "Counter", "Response", "ResponseCode", "RevokeReason", "RevokedNotice",
           "Role", "ShutdownNotice", "ShutdownReason", "attach_requests", "attach_results",
           "lease_results"]


class Role(CodeEnum):
    """Role of a lease on a stream."""

    PRODUCER = 1
    CONSUMER = 2


class ResponseCode(CodeEnum):
    """Outcome of a control operation (driver spec section 4.6).

    The five names are the contract's. This in-process model answers OK, INVALID_PARAMS and
    REJECTED; UNSUPPORTED and INTERNAL_ERROR are for a transport (an operation it does not carry,
    a failure outside the model), which is why they stay although the model never returns them.
    """

    OK = 0
    UNSUPPORTED = 1
    INVALID_PARAMS = 2
    REJECTED = 3
    INTERNAL_ERROR = 4


class RevokeReason(CodeEnum):
    """Why a lease ended (the ``reason`` field of a lease-revoked notice)."""

    DETACHED = 1
    EXPIRED = 2
    REVOKED = 3
    SHUTDOWN = 4


class ShutdownReason(CodeEnum):
    """Why the driver shuts down (given to ``request_shutdown``, carried by the shutdown notice)."""

    NORMAL = 0
    ADMIN = 1


class AttachRefusal(CodeEnum):
    """Why the driver core refused an attach, in the order the rules are checked (internal:
    ``Driver.attach`` turns a refusal into its response code and reason; the rules themselves
    are checked only by the core, see docs/design.md)."""

    ROLE = 1
    STREAM_ID = 2
    CLIENT_ID = 3
    CLIENT_HOLDS_LEASE = 4
    UNKNOWN_STREAM = 5
    OUTSIDE_DYNAMIC_RANGE = 6
    STREAM_CAPACITY = 7
    PRODUCER_ATTACHED = 8
    STREAM_DRAINING = 9
    EPOCH_AT_MAXIMUM = 10
    LEASE_CAPACITY = 11
    LEASE_IDS_EXHAUSTED = 12


class BatchReason(CodeEnum):
    """Why a row of a batch call (``attach_many``, ``keepalive_many``, ``detach_many``) got its
    answer: the ``reason`` column of ``ATTACH_RESULT_DTYPE`` and ``LEASE_RESULT_DTYPE`` rows.

    ``NONE`` on an OK row. Codes 1 to 12 are the ``AttachRefusal`` codes (the attach rule
    refused; ``EPOCH_AT_MAXIMUM`` also answers a detach whose producer-loss bump is impossible).
    The single calls' reason strings for the others: ``DRIVER_DRAINING`` "driver draining",
    ``DRIVER_STOPPED`` "driver stopped", ``UNKNOWN_LEASE`` "unknown lease" (also a lease held by
    another client), ``LEASE_ENDED`` "lease ended" (keepalive, REJECTED) or "lease already ended"
    (detach, OK).
    """

    NONE = 0
    ROLE = 1
    STREAM_ID = 2
    CLIENT_ID = 3
    CLIENT_HOLDS_LEASE = 4
    UNKNOWN_STREAM = 5
    OUTSIDE_DYNAMIC_RANGE = 6
    STREAM_CAPACITY = 7
    PRODUCER_ATTACHED = 8
    STREAM_DRAINING = 9
    EPOCH_AT_MAXIMUM = 10
    LEASE_CAPACITY = 11
    LEASE_IDS_EXHAUSTED = 12
    DRIVER_DRAINING = 13
    DRIVER_STOPPED = 14
    UNKNOWN_LEASE = 15
    LEASE_ENDED = 16


#: One request of :meth:`Driver.attach_many`: ``role`` a :class:`Role` code, ``create`` 0 or 1.
ATTACH_REQUEST_DTYPE = np.dtype([("stream_id", np.int64), ("role", np.uint8),
                                 ("client_id", np.int64), ("create", np.uint8)], align=True)
#: One answer of :meth:`Driver.attach_many`: ``code`` a :class:`ResponseCode`, ``reason`` a
#: :class:`BatchReason`; ``lease_id``, ``epoch`` and ``expiry_ns`` are 0 unless OK.
ATTACH_RESULT_DTYPE = np.dtype([("code", np.uint8), ("reason", np.uint8), ("lease_id", np.int64),
                                ("epoch", np.int64), ("expiry_ns", np.int64)], align=True)
#: One answer of :meth:`Driver.keepalive_many` / :meth:`Driver.detach_many`: ``code``,
#: ``reason`` (a :class:`BatchReason`), the stream's ``epoch`` (0 unless OK) and the new
#: ``expiry_ns`` (keepalive OK rows only, else 0).
LEASE_RESULT_DTYPE = np.dtype([("code", np.uint8), ("reason", np.uint8), ("epoch", np.int64),
                               ("expiry_ns", np.int64)], align=True)


def attach_requests(n: int) -> np.ndarray:
    """``n`` zeroed ``ATTACH_REQUEST_DTYPE`` rows to fill in."""
    return np.zeros(n, ATTACH_REQUEST_DTYPE)


def attach_results(n: int) -> np.ndarray:
    """An ``out`` array for :meth:`Driver.attach_many` with ``n`` rows."""
    return np.zeros(n, ATTACH_RESULT_DTYPE)


def lease_results(n: int) -> np.ndarray:
    """An ``out`` array for :meth:`Driver.keepalive_many` / :meth:`Driver.detach_many`."""
    return np.zeros(n, LEASE_RESULT_DTYPE)


#: Response code and reason text of each :class:`AttachRefusal` (internal: ``{sid}``,
#: ``{client}``, ``{role}``, ``{first}``, ``{last}`` and ``{max}`` are filled in; a reason with no
#: field is answered as it stands).
REFUSALS: dict[int, tuple[ResponseCode, str]] = {
    AttachRefusal.ROLE: (ResponseCode.INVALID_PARAMS, "unknown role {role}"),
    AttachRefusal.STREAM_ID: (ResponseCode.INVALID_PARAMS,
                              f"stream id {{sid}} out of range 0..{MAX_STREAM_ID}"),
    AttachRefusal.CLIENT_ID: (ResponseCode.INVALID_PARAMS,
                              f"client id {{client}} out of range 1..{MAX_CLIENT_ID}"),
    AttachRefusal.CLIENT_HOLDS_LEASE: (ResponseCode.REJECTED, "client_id already attached"),
    AttachRefusal.UNKNOWN_STREAM: (ResponseCode.REJECTED, "unknown stream {sid}"),
    AttachRefusal.OUTSIDE_DYNAMIC_RANGE: (
        ResponseCode.INVALID_PARAMS, "stream id {sid} outside the dynamic range [{first}, {last}]"),
    AttachRefusal.STREAM_CAPACITY: (ResponseCode.REJECTED, "stream capacity exhausted"),
    AttachRefusal.PRODUCER_ATTACHED: (ResponseCode.REJECTED, "producer already attached"),
    AttachRefusal.STREAM_DRAINING: (ResponseCode.REJECTED, "stream draining"),
    AttachRefusal.EPOCH_AT_MAXIMUM: (ResponseCode.REJECTED,
                                     "epoch of stream {sid} is at its maximum {max}"),
    AttachRefusal.LEASE_CAPACITY: (ResponseCode.REJECTED, "lease capacity exhausted"),
    AttachRefusal.LEASE_IDS_EXHAUSTED: (ResponseCode.REJECTED,
                                        "lease ids exhausted (last lease id {max})"),
}


#: Longest message ``request_shutdown`` accepts (characters).
MAX_SHUTDOWN_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class ShutdownNotice:
    """What the transport tells every client when the driver shuts down (the upstream
    ``DriverShutdown`` message): the reason and message of the accepted shutdown request, the time
    it was requested, and the time the driver stopped (0 while it is still draining)."""

    reason: ShutdownReason
    message: str
    requested_ns: int
    stopped_ns: int = 0


class Counter(CodeEnum):
    """The driver's counters, in the order :attr:`Driver.counters` lists them (like Aeron's
    counters). This enum is the only list of them: the Cython core indexes its counter column
    with these codes, and :data:`COUNTER_NAMES` is derived from it."""

    ATTACHES_OK = 0
    ATTACHES_REJECTED = 1
    KEEPALIVES = 2
    LEASES_DETACHED = 3
    LEASES_EXPIRED = 4
    LEASES_REVOKED = 5
    EPOCH_BUMPS = 6
    STREAMS_PROVISIONED = 7
    STREAMS_CLOSED = 8
    REVOKE_NOTICES_DROPPED = 9
    STREAM_HSM_UNHANDLED = 10  # read from the stream table
    LEASE_HSM_UNHANDLED = 11  # read from the lease table


#: Names of the driver's counters (lower-case :class:`Counter` names), in order.
COUNTER_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in Counter)


#: Record layout of a lease-revoked notice (:meth:`Driver.drain_revoked`); ``role`` holds a
#: :class:`Role` code and ``reason`` a :class:`RevokeReason` code.
REVOKED_NOTICE_DTYPE = np.dtype([
    ("lease_id", np.int64),
    ("stream_id", np.int64),
    ("client_id", np.int64),
    ("role", np.uint8),
    ("reason", np.uint8),
    ("time_ns", np.int64),
])


class RevokedNotice(NamedTuple):
    """One lease-revoked notice, named for people (:meth:`Driver.revoked_notices`); the
    allocation-free path is :meth:`Driver.drain_revoked` with its ``REVOKED_NOTICE_DTYPE``
    records."""

    lease_id: int
    stream_id: int
    client_id: int
    role: Role
    reason: RevokeReason
    time_ns: int


class Announce(NamedTuple):
    """One due announce, named for people (:meth:`Driver.announces`): the stream, its epoch and
    its state when drained. The allocation-free path is :meth:`Driver.drain_announces`."""

    stream_id: int
    epoch: int
    state: State


@dataclass(frozen=True, slots=True)
class Response:
    """Outcome of ``keepalive``, ``detach``, ``revoke``, ``bump_epoch`` and ``request_shutdown``.

    ``epoch`` is the stream's epoch after the operation for ``keepalive``, ``detach``, ``revoke``
    and ``bump_epoch`` on a live lease or stream (a producer detach bumps it); 0 when the lease or
    stream is unknown, and for ``request_shutdown``. ``bool(response)`` is True when the code is
    OK.
    """

    code: ResponseCode
    reason: str = ""
    epoch: int = 0

    def __bool__(self) -> bool:
        return self.code is ResponseCode.OK


@dataclass(frozen=True, slots=True)
class AttachResult:
    """Outcome of ``attach``: on OK, the new lease id and the stream's epoch; otherwise
    ``lease_id == 0``, ``epoch == 0`` and a reason. ``expiry_ns`` is the new lease's expiry time
    (``now + interval * grace``; 0 when rejected)."""

    code: ResponseCode
    lease_id: int = 0
    stream_id: int = -1
    epoch: int = 0
    reason: str = ""
    expiry_ns: int = 0

    def __bool__(self) -> bool:
        return self.code is ResponseCode.OK
