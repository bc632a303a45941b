"""The driver model (plan S-2, S-3, S-4): an in-process control plane over the engine.

:class:`Driver` owns a stream table, a lease table and its own lifecycle machine; the registry
columns live in a Cython core. Layering: ``streamhsm.driver`` uses the engine (``streamhsm``'s
flat modules) and never the tools; the engine never imports this package.
"""

from __future__ import annotations

from .config import MAX_CLIENT_ID, MAX_DYNAMIC_RANGE, MAX_STREAM_ID, DriverConfig
from .control import Driver, StreamInfo
from .machines import DriverEvent, DriverState, LeaseEvent, LeaseState, driver_machine, lease_machine
from .protocol import (
    COUNTER_NAMES,
    REVOKED_NOTICE_DTYPE,
    AttachResult,
    Counter,
    Response,
    ResponseCode,
    RevokeReason,
    Role,
    ShutdownNotice,
    ShutdownReason,
)

__all__ = [
    "COUNTER_NAMES",
    "MAX_CLIENT_ID",
    "MAX_DYNAMIC_RANGE",
    "MAX_STREAM_ID",
    "REVOKED_NOTICE_DTYPE",
    "AttachResult",
    "Counter",
    "Driver",
    "DriverConfig",
    "DriverEvent",
    "DriverState",
    "LeaseEvent",
    "LeaseState",
    "Response",
    "ResponseCode",
    "RevokeReason",
    "Role",
    "ShutdownNotice",
    "ShutdownReason",
    "StreamInfo",
    "driver_machine",
    "lease_machine",
]
