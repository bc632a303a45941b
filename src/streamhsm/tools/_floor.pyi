"""Type stubs for ``streamhsm.tools._floor`` (benchmark floors)."""

from typing import final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = ["KeepaliveFloor", "NoopTarget", "broadcast_floor", "copy_floor", "table_floor",
           "table_floor_int32", "timer_floor"]

@final
class NoopTarget:
    """A cdef class whose ``dispatch(slot, event)`` does nothing."""

    def dispatch(self, slot: object, event: object) -> None: ...

def table_floor(
    states: npt.NDArray[np.uint8],
    next_state: npt.NDArray[np.uint8],
    slots: npt.NDArray[np.int64],
    events: npt.NDArray[np.uint8],
) -> int: ...
def broadcast_floor(
    states: npt.NDArray[np.uint8], next_state: npt.NDArray[np.uint8], event: int
) -> int: ...
def table_floor_int32(
    states: npt.NDArray[np.uint8],
    next_state: npt.NDArray[np.uint8],
    slots: npt.NDArray[np.int32],
    events: npt.NDArray[np.uint8],
) -> int: ...
def timer_floor(
    states: npt.NDArray[np.uint8],
    next_state: npt.NDArray[np.uint8],
    deadlines: npt.NDArray[np.int64],
    now: int,
    event: int,
) -> int: ...
def copy_floor(dst: npt.NDArray[np.uint8], src: npt.NDArray[np.uint8]) -> int: ...

@final
class KeepaliveFloor:
    """The floor of ``Driver.keepalive_many``: the bare look-up, owner check, expiry store loop."""

    def __new__(
        cls, lease_ids: npt.NDArray[np.int64], clients: npt.NDArray[np.int64]
    ) -> Self: ...
    def run(
        self, lease_ids: npt.NDArray[np.int64], clients: npt.NDArray[np.int64], expiry: int
    ) -> int: ...
