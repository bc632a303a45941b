"""Type stubs for ``streamhsm.driver._core`` (private: the driver's registry columns in C)."""

from typing import Any, final

from typing_extensions import Self

import numpy as np
import numpy.typing as npt

from .._engine import MachineTable
from ._idmap import IdMap

__all__ = ["COUNTERS", "DriverCore", "REASON_DETACHED", "REASON_EXPIRED", "REASON_REVOKED",
           "REASON_SHUTDOWN"]

COUNTERS: int
REASON_DETACHED: int
REASON_EXPIRED: int
REASON_REVOKED: int
REASON_SHUTDOWN: int

@final
class DriverCore:
    """Typed views of the driver's columns plus the C-level lease-end and epoch paths."""

    counters: npt.NDArray[np.int64]
    n_revoked: int
    closed_dynamic: int
    def __new__(
        cls,
        streams: MachineTable,
        leases: MachineTable,
        lease_by_id: IdMap,
        lease_by_client: IdMap,
        columns: dict[str, Any],
        stream_events: dict[str, int],
        lease_events: dict[str, int],
        dyn_first: int,
    ) -> Self: ...
    def bump_epoch(self, slot: int) -> int: ...
    def mark_announce(self, slot: int) -> None: ...
    def end(self, ls: int, reason: int, now: int) -> None: ...
    def expire(self, now: int) -> int: ...
    def end_all(self, reason: int, now: int) -> int: ...
    def pending_due(self) -> npt.NDArray[np.int32]: ...
    def take_due(self) -> npt.NDArray[np.int32]: ...
