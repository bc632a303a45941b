"""The driver model (plan S-2, S-3, S-4): an in-process control plane over the engine.

:class:`Driver` owns a stream table, a lease table and its own lifecycle machine; the registry
columns live in a Cython core. Layering: ``streamhsm.driver`` uses the engine (``streamhsm``'s
flat modules) and never the tools; the engine never imports this package.
"""

from __future__ import annotations

from . import config, machines, protocol
from .config import *  # noqa: F403
from .control import Driver, StreamInfo
from .machines import *  # noqa: F403
from .protocol import *  # noqa: F403

__all__ = ["Driver", "StreamInfo", *config.__all__, *machines.__all__, *protocol.__all__]
