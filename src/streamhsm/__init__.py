"""streamhsm: per-stream lifecycle hierarchical state machines compiled to numpy tables.

What a driver author imports::

    from streamhsm import State, Event, StreamLifecycle, StreamTable   # the stream lifecycle
    from streamhsm import Driver, DriverConfig, Role, ResponseCode     # the driver model
    from streamhsm import MachineSpec                                   # machines of your own

The public names are exactly ``__all__``: the engine (``MachineSpec``, ``HandlerDecl``,
``CompiledMachine``, ``MachineTable``, ``MachineInstance``, ``ReferenceMachine``), the stream
lifecycle, every error a public method raises, and the driver's public names
(``streamhsm.driver.__all__``). The shared-memory reader lives in :mod:`streamhsm.shm`; the C API
for ``cimport`` in ``streamhsm/capi.pxd``. Machines are declared as data (:class:`MachineSpec`),
compiled into flat tables (:class:`CompiledMachine`), and run by a Cython core over
struct-of-arrays state.
"""

from __future__ import annotations

from . import driver as _driver
from . import registry as registry  # the submodule, as streamhsm.registry
from ._instance import MachineInstance
from ._table import MachineTable
from ._timer_tables import FIRED_DTYPE, NEVER
from ._trace import TraceRecord
from .codes import CodeEnum
from .compiler import CompiledMachine
from .driver import *  # noqa: F403  (the driver's public names, listed in streamhsm.driver.__all__)
from .errors import DriverClosedError, MachineDefinitionError, StreamHsmError, TableFullError
from .lifecycle import Event, State, StreamLifecycle, StreamTable, stream_machine, stream_spec
from .machine import (
    FREE_SLOT,
    MAX_DELAY_NS,
    MAX_FLAGS,
    MAX_TIMERS,
    ROOT,
    HandlerDecl,
    MachineSpec,
    TimerDecl,
)
from .reference import ReferenceMachine
from .shm import SharedTableError
from .snapshot import SnapshotError

__version__ = "0.2.0"

__all__ = [
    "FIRED_DTYPE",
    "FREE_SLOT",
    "MAX_DELAY_NS",
    "MAX_FLAGS",
    "MAX_TIMERS",
    "NEVER",
    "ROOT",
    "CodeEnum",
    "CompiledMachine",
    "DriverClosedError",
    "Event",
    "HandlerDecl",
    "MachineDefinitionError",
    "MachineInstance",
    "MachineSpec",
    "MachineTable",
    "ReferenceMachine",
    "SharedTableError",
    "SnapshotError",
    "State",
    "StreamHsmError",
    "StreamLifecycle",
    "StreamTable",
    "TableFullError",
    "TimerDecl",
    "TraceRecord",
    "__version__",
    "stream_machine",
    "stream_spec",
    *_driver.__all__,
]
