"""Read-only views that cannot be made writeable again."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["readonly_view"]


def readonly_view(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A zero-copy view of ``arr`` on a read-only buffer: ``flags.writeable = True`` raises."""
    base = arr.data.toreadonly()
    view: np.ndarray[Any, Any] = np.frombuffer(base, dtype=arr.dtype).reshape(arr.shape)
    return view
