"""Read-only numpy views that cannot be made writeable again.

``arr.flags.writeable = False`` on a view is only advice: anyone holding the view can set the flag
back to True as long as the memory's owner is writeable. A view built on a read-only buffer (a
``memoryview(...).toreadonly()``) refuses that with ``ValueError``, so the arrays an engine object
writes from C can be handed out without letting callers write into them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["readonly_view"]


def readonly_view(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A zero-copy view of ``arr`` (same dtype and shape) whose ``flags.writeable`` stays False:
    setting it to True raises ``ValueError``. Writes through ``arr`` itself stay visible.

    Raises:
        TypeError: ``arr`` is not a numpy array.
        ValueError: ``arr`` is not C-contiguous.
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"readonly_view needs a numpy array, got {type(arr).__name__}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"readonly_view needs a C-contiguous array, got strides {arr.strides}")
    base = np.frombuffer(memoryview(arr).toreadonly(), dtype=arr.dtype)  # type: ignore[arg-type]
    return base.reshape(arr.shape)
