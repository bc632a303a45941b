"""Type stubs for the compiled instance class ``streamhsm._instance``."""

from enum import IntEnum
from typing import Any, SupportsIndex, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from .compiler import CompiledMachine

_Code: TypeAlias = SupportsIndex | str

__all__ = ["MachineInstance"]

@disjoint_base
class MachineInstance:
    """One instance of a compiled machine."""

    @property
    def machine(self) -> CompiledMachine: ...
    def __init__(
        self,
        machine: CompiledMachine,
        *,
        count_transitions: bool = False,
        now_ns: int | np.integer[Any] = 0,
    ) -> None: ...
    def _bind(
        self,
        machine: CompiledMachine,
        count_transitions: bool,
        now_ns: int | np.integer[Any] = 0,
    ) -> None: ...
    def dispatch(self, event: _Code) -> bool: ...
    def advance(
        self, now_ns: int | np.integer[Any], out: npt.NDArray[np.void] | None = None
    ) -> int: ...
    @property
    def now_ns(self) -> int | None: ...
    def deadlines(self, name: str) -> int: ...
    @property
    def skipped_periods(self) -> tuple[int, ...]: ...
    def set_flag(self, name: str, value: bool | np.bool_) -> None: ...
    def flag(self, name: str) -> bool: ...
    @property
    def flags(self) -> int: ...
    @property
    def current(self) -> IntEnum: ...
    @property
    def unhandled(self) -> int: ...
    @property
    def transition_counts(self) -> npt.NDArray[np.int64] | None: ...
    def is_in(self, state: _Code) -> bool: ...
    def history(self, owner: _Code) -> str | None: ...
