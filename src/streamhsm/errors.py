"""Exception classes of streamhsm."""

from __future__ import annotations

__all__ = ["DriverClosedError", "MachineDefinitionError", "SnapshotError", "StreamHsmError",
           "TableFullError"]


class StreamHsmError(Exception):
    """Base class of every streamhsm-specific error."""


class MachineDefinitionError(StreamHsmError, ValueError):
    """A machine declaration is invalid (raised by ``MachineSpec.compile``)."""


class SnapshotError(StreamHsmError, ValueError):
    """A snapshot (or snapshot file) is unreadable, of another kind, version or machine, or holds
    values out of range."""


class TableFullError(StreamHsmError, RuntimeError):
    """``open()`` was called on a table whose every slot is in use."""


class DriverClosedError(StreamHsmError, RuntimeError):
    """A :class:`~streamhsm.driver.Driver` was used after :meth:`~streamhsm.driver.Driver.close`
    (every call on a closed driver raises it and changes nothing)."""
