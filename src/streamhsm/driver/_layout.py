"""The columns of the driver's core, declared once (:func:`driver_layout`): what
:class:`~streamhsm.driver._core.DriverCore` allocates and a driver snapshot holds."""

from __future__ import annotations

from typing import Any

import numpy as np

from .protocol import REVOKED_NOTICE_DTYPE, Counter

__all__ = ["N_CORE_COUNTERS", "driver_layout"]

#: Counters kept in the core's column (the last ones are read from the tables).
N_CORE_COUNTERS = Counter.STREAM_HSM_UNHANDLED


def driver_layout(n_streams: int, n_leases: int, n_dynamic: int,
                  outbox: int) -> dict[str, tuple[np.dtype[Any], int, int]]:
    """Every column :class:`DriverCore` owns, as ``name -> (dtype, length, fill value)``.

    Per stream slot: stream id (-1 free), producer lease id (0 none), consumer count, dynamic
    flag, epoch, announce-due flag and the due list. Per dynamic stream id: its slot (-1 none) and
    epoch high-water mark. Per lease slot: lease id, stream slot (-1 free), role, client id (the
    expiry is the lease table's ``expiry`` timer: time has one owner). The lease-revoked outbox
    has one column per ``REVOKED_NOTICE_DTYPE`` field. Then the counters.
    """
    i8, i4, u1 = np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.uint8)
    layout: dict[str, tuple[np.dtype[Any], int, int]] = {
        "stream_id": (i8, n_streams, -1),
        "producer": (i8, n_streams, 0),
        "consumers": (i4, n_streams, 0),
        "dynamic": (u1, n_streams, 0),
        "epoch": (i8, n_streams, 0),
        "due": (u1, n_streams, 0),
        "due_slots": (i4, n_streams, 0),
        "dyn_slot": (i4, n_dynamic, -1),
        "dyn_epoch": (i8, n_dynamic, 0),
        "lease_id": (i8, n_leases, 0),
        "lease_stream": (i4, n_leases, -1),
        "lease_role": (u1, n_leases, 0),
        "lease_client": (i8, n_leases, 0),
    }
    for name in REVOKED_NOTICE_DTYPE.names or ():
        layout["revoked_" + name] = (REVOKED_NOTICE_DTYPE[name], outbox, 0)
    layout["counters"] = (i8, N_CORE_COUNTERS, 0)
    return layout
