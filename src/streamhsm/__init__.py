"""streamhsm: per-stream lifecycle hierarchical state machines compiled to numpy tables.

Public API::

    from streamhsm import State, Event, StreamLifecycle, StreamTable

Machines are declared as data (:class:`MachineSpec`), compiled into flat tables
(:class:`CompiledMachine`), and run by a Cython core over struct-of-arrays state.
"""

from __future__ import annotations

from ._engine import FREE_SLOT, MachineInstance, MachineTable
from .driver import (
    COUNTER_NAMES,
    REVOKED_NOTICE_DTYPE,
    AttachResult,
    Counter,
    Driver,
    DriverConfig,
    DriverEvent,
    DriverState,
    LeaseEvent,
    LeaseState,
    Response,
    ResponseCode,
    RevokeReason,
    Role,
    ShutdownNotice,
    ShutdownReason,
    StreamInfo,
)
from .errors import MachineDefinitionError, StreamHsmError, TableFullError
from .shm import SharedTableError
from .snapshot import SnapshotError
from .lifecycle import Event, State, StreamLifecycle, StreamTable, stream_machine, stream_spec
from .machine import ROOT, CompiledMachine, MachineSpec
from .reference import ReferenceMachine

__version__ = "0.1.0"

__all__ = [
    "COUNTER_NAMES",
    "FREE_SLOT",
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
    "StreamInfo",
    "ROOT",
    "CompiledMachine",
    "Event",
    "MachineDefinitionError",
    "MachineInstance",
    "MachineSpec",
    "MachineTable",
    "ReferenceMachine",
    "SharedTableError",
    "ShutdownNotice",
    "ShutdownReason",
    "SnapshotError",
    "State",
    "StreamHsmError",
    "StreamLifecycle",
    "StreamTable",
    "TableFullError",
    "__version__",
    "stream_machine",
    "stream_spec",
]
