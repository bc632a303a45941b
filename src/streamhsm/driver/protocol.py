"""Protocol types of the driver: roles, response codes, lease-end reasons and results."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["AttachResult", "Response", "ResponseCode", "RevokeReason", "Role"]


class Role(enum.IntEnum):
    """Role of a lease on a stream."""

    PRODUCER = 1
    CONSUMER = 2


class ResponseCode(enum.IntEnum):
    """Outcome of a control operation (driver spec section 4.6)."""

    OK = 0
    UNSUPPORTED = 1
    INVALID_PARAMS = 2
    REJECTED = 3
    INTERNAL_ERROR = 4


class RevokeReason(enum.IntEnum):
    """Why a lease ended (the ``reason`` field of a lease-revoked notice)."""

    DETACHED = 1
    EXPIRED = 2
    REVOKED = 3
    SHUTDOWN = 4


@dataclass(frozen=True, slots=True)
class Response:
    """Outcome of ``keepalive``, ``detach``, ``revoke``, ``bump_epoch`` and ``request_shutdown``.

    ``epoch`` is set by ``bump_epoch`` (the new epoch); 0 otherwise. ``bool(response)`` is True
    when the code is OK.
    """

    code: ResponseCode
    reason: str = ""
    epoch: int = 0

    def __bool__(self) -> bool:
        return self.code is ResponseCode.OK


@dataclass(frozen=True, slots=True)
class AttachResult:
    """Outcome of ``attach``: on OK, the new lease id and the stream's epoch; otherwise
    ``lease_id == 0``, ``epoch == 0`` and a reason."""

    code: ResponseCode
    lease_id: int = 0
    stream_id: int = -1
    epoch: int = 0
    reason: str = ""

    def __bool__(self) -> bool:
        return self.code is ResponseCode.OK
