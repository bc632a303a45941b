"""Type stubs for ``streamhsm.driver._calls`` (private: the driver's hot entry points)."""

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from ._core import DriverCore
from .protocol import AttachResult, Response, Role

__all__ = ["DriverBase"]

@disjoint_base
class DriverBase:
    """Base class of ``Driver``: its hot entry points."""

    _core: DriverCore
    _closed: bool
    _now_ns: int
    _max_time_ns: int
    @property
    def max_time_ns(self) -> int: ...
    _expiry_ns: int
    _running: bool
    def _own_arrays(self, arrays: Iterable[npt.NDArray[Any]]) -> None: ...
    def keepalive(
        self,
        lease_id: int,
        now_ns: int,
        *,
        client_id: int,
        stream_id: int | None = None,
        role: Role | int | str | None = None,
    ) -> Response: ...
    def detach(
        self,
        lease_id: int,
        now_ns: int,
        *,
        client_id: int,
        stream_id: int | None = None,
        role: Role | int | str | None = None,
    ) -> Response: ...
    def attach(
        self,
        stream_id: int,
        role: Role | int | str,
        client_id: int,
        now_ns: int,
        create: bool = False,
    ) -> AttachResult: ...
    def keepalive_many(
        self,
        lease_ids: npt.NDArray[np.int64],
        now_ns: int,
        *,
        client_ids: npt.NDArray[np.int64],
        out: npt.NDArray[np.void] | None = None,
    ) -> npt.NDArray[np.void]: ...
    def detach_many(
        self,
        lease_ids: npt.NDArray[np.int64],
        now_ns: int,
        *,
        client_ids: npt.NDArray[np.int64],
        out: npt.NDArray[np.void] | None = None,
    ) -> npt.NDArray[np.void]: ...
    def attach_many(
        self,
        requests: npt.NDArray[np.void],
        now_ns: int,
        *,
        out: npt.NDArray[np.void] | None = None,
    ) -> npt.NDArray[np.void]: ...
    # overridden by Driver (the slow paths and their helpers)
    def _keepalive_slow(
        self, lease_id: object, now_ns: object, client_id: object, stream_id: object, role: object
    ) -> Response: ...
    def _detach_slow(
        self, lease_id: object, now_ns: object, client_id: object, stream_id: object, role: object
    ) -> Response: ...
    def _attach_slow(
        self, stream_id: object, role: object, client_id: object, now_ns: object,
        create: object = False,
    ) -> AttachResult: ...
    def _refused(self, refusal: int, sid: int, role: object, client: int) -> AttachResult: ...
    def _draining(self) -> bool: ...
