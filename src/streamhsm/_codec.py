"""The one conversion of user-supplied states and events to codes (pure Python, no engine).

A codec is a function of a declaration's names and enums only, so the compiler, the reference
interpreter and the shared-memory reader share it without importing anything compiled; the
compiled tables and instances convert plain int codes inline and hand everything else here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["MachineCodec"]


class MachineCodec:
    """The one conversion of user-supplied states and events to codes for a machine, used by
    every engine entry point (tables, instances, ``CompiledMachine.state_code``/``event_code``,
    the reference interpreter, the shared-memory reader).

    Accepted: an int code (or any ``__index__`` object that is not a bool or an enum, such as
    ``np.int64``), a member of the machine's own enum of that kind, or a declared (CamelCase)
    name. A member of any other enum (another machine's, or the other kind: an ``Event`` where a
    state is expected) is a ``TypeError``; an unknown code or name is a ``ValueError``.

    Immutable: every attribute is fixed when the codec is made.

    Args:
        name: the machine's name (for messages).
        state_names, event_names: the declared names, in code order.
        state_enum, event_enum: the machine's ``IntEnum`` classes, or None (then no enum member
            is accepted for that kind).
    """

    __slots__ = ("_event_by_name", "_state_by_name", "event_enum", "n_events", "n_states",
                 "name", "state_enum")

    name: str
    n_states: int
    n_events: int
    state_enum: type[enum.IntEnum] | None
    event_enum: type[enum.IntEnum] | None
    _state_by_name: dict[str, int]
    _event_by_name: dict[str, int]

    def __init__(
        self,
        name: str,
        state_names: Sequence[str],
        event_names: Sequence[str],
        state_enum: type[enum.IntEnum] | None = None,
        event_enum: type[enum.IntEnum] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"codec name must be a str, got {type(name).__name__} {name!r}")
        fields = {
            "name": name, "n_states": len(state_names), "n_events": len(event_names),
            "state_enum": state_enum, "event_enum": event_enum,
            "_state_by_name": {n: i for i, n in enumerate(state_names)},
            "_event_by_name": {n: i for i, n in enumerate(event_names)},
        }
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"MachineCodec is immutable: cannot set {key!r}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"MachineCodec is immutable: cannot delete {key!r}")

    @property
    def state_codes(self) -> Mapping[str, int]:
        """Read-only ``name -> code`` of the declared states."""
        return MappingProxyType(self._state_by_name)

    @property
    def event_codes(self) -> Mapping[str, int]:
        """Read-only ``name -> code`` of the declared events."""
        return MappingProxyType(self._event_by_name)

    def state(self, state: object) -> int:
        """Code of ``state`` (see the class docstring)."""
        return self._code(state, self.state_enum, self._state_by_name, self.n_states, "state")

    def event(self, event: object) -> int:
        """Code of ``event`` (see the class docstring)."""
        return self._code(event, self.event_enum, self._event_by_name, self.n_events, "event")

    def _code(self, value: object, own: type[enum.IntEnum] | None, by_name: dict[str, int],
              n: int, what: str) -> int:
        t = type(value)
        if t is int or (own is not None and t is own):
            v: int = int(value)  # type: ignore[call-overload]
            if 0 <= v < n:
                return v
            raise ValueError(
                f"unknown {what} code {v} for machine {self.name!r} (valid: 0..{n - 1})")
        if isinstance(value, str):
            code = by_name.get(value)
            if code is None:
                raise ValueError(
                    f"unknown {what} name {value!r} for machine {self.name!r}; "
                    f"expected one of {sorted(by_name)}")
            return code
        kinds = f"{own.__name__} member or name" if own is not None else "or name"
        if isinstance(value, enum.Enum):
            raise TypeError(
                f"{what} {value!r} belongs to {t.__name__}, not to the {what}s of machine "
                f"{self.name!r} (an int code, {kinds})")
        if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
            raise TypeError(
                f"{what} must be an int code, {kinds}, got {t.__name__} {value!r}")
        return self._code(int(value.__index__()), own, by_name, n, what)
