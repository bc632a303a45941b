"""The per-stream lifecycle machine (plan S-1): states, events, policies, and its Python API.

Hierarchy: ``Root > Live > {Init, Active, Draining}``, ``Root > Closed``; initial leaf ``Init``.
``Live`` holds the close/drain handlers shared by Init, Active and Draining. Events no state
handles are counted by the engine (the Root "handler"), never raised.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from typing import TYPE_CHECKING, SupportsIndex

import numpy as np

from ._instance import MachineInstance
from ._limits import MAX_CAPACITY
from ._table import MachineTable
from .codes import CodeEnum
from .compiler import CompiledMachine
from .machine import MachineSpec
from .registry import DEFAULT_POLICY, by_fingerprint, machine, register
from .snapshot import SnapshotError, array, check_kind, load_snapshot, save_snapshot

__all__ = [
    "DRAIN_ON_PRODUCER_LOSS",
    "Event",
    "State",
    "StreamLifecycle",
    "StreamTable",
    "stream_machine",
    "stream_spec",
]


class State(CodeEnum):
    """Stream lifecycle state codes (``Root`` and ``Live`` are composite; a stream is always in a
    leaf: ``INIT``, ``ACTIVE``, ``DRAINING`` or ``CLOSED``)."""

    ROOT = 0
    LIVE = 1
    INIT = 2
    ACTIVE = 3
    DRAINING = 4
    CLOSED = 5


class Event(CodeEnum):
    """Stream lifecycle event codes. APIs also accept the CamelCase names of the plan
    (``"StreamProvisioned"``) and the int codes."""

    STREAM_PROVISIONED = 0
    PRODUCER_ATTACHED = 1
    PRODUCER_DETACHED = 2
    CONSUMER_ATTACHED = 3
    CONSUMER_DETACHED = 4
    EPOCH_BUMPED = 5
    DRIVER_DRAINING = 6
    DRIVER_SHUTDOWN = 7
    STREAM_IDLE = 8
    CLOSE = 9


#: Policy name of the variant in which losing the producer drains the stream (plan S-2).
DRAIN_ON_PRODUCER_LOSS = "drain_on_producer_loss"

def stream_spec(drain_on_producer_loss: bool = False) -> MachineSpec:
    """The declaration of the stream lifecycle (DESIGN section 2), optionally with the
    ``drain_on_producer_loss`` policy (Active + ProducerDetached -> Draining,
    Draining + ProducerAttached -> Active)."""
    name = "stream" if not drain_on_producer_loss else f"stream[{DRAIN_ON_PRODUCER_LOSS}]"
    spec = MachineSpec(name, Event, initial="Live")
    spec.state("Live", initial="Init")
    spec.state("Init", parent="Live").state("Active", parent="Live")
    spec.state("Draining", parent="Live").state("Closed")
    spec.on("Init", "StreamProvisioned", "Active")
    lease_events = ["ProducerAttached", "ConsumerAttached", "ProducerDetached",
                    "ConsumerDetached", "EpochBumped"]  # fmt: skip
    drain_events = ["ProducerDetached", "ConsumerDetached", "EpochBumped", "DriverDraining"]
    if drain_on_producer_loss:
        lease_events.remove("ProducerDetached")
        spec.on("Active", "ProducerDetached", "Draining")
        spec.on("Draining", "ProducerAttached", "Active")
    spec.on("Active", lease_events)
    spec.on("Draining", drain_events)
    spec.on("Live", "DriverDraining", "Draining")
    spec.on("Live", ["DriverShutdown", "StreamIdle", "Close"], "Closed")
    spec.on("Closed", "Close")
    return spec


def _compile_stream(drain_on_producer_loss: bool) -> Callable[[], CompiledMachine]:
    return lambda: stream_spec(drain_on_producer_loss).compile(State, Event)


register("stream", _compile_stream(False))
register("stream", _compile_stream(True), DRAIN_ON_PRODUCER_LOSS)


def stream_machine(drain_on_producer_loss: bool = False) -> CompiledMachine:
    """The compiled stream lifecycle for a policy (compiled once, then shared)."""
    if not isinstance(drain_on_producer_loss, bool):
        raise TypeError(
            f"drain_on_producer_loss must be a bool, got {type(drain_on_producer_loss).__name__}"
        )
    return machine("stream", DRAIN_ON_PRODUCER_LOSS if drain_on_producer_loss else DEFAULT_POLICY)


def _drains(m: object) -> bool:
    return m is machine("stream", DRAIN_ON_PRODUCER_LOSS)


class StreamLifecycle(MachineInstance):
    """One stream's lifecycle machine, starting in ``State.INIT``.

    Args:
        drain_on_producer_loss: select the policy in which ProducerDetached drains an Active stream
            and ProducerAttached reactivates a Draining one.
        count_transitions: also count this stream's transitions per (state, event) in
            ``transition_counts`` (off by default: it costs a private array per instance).

    ``dispatch(event)`` returns True if some state handled the event and False if it went
    unhandled (counted in ``unhandled``); ``current`` is always a leaf; ``is_in(State.LIVE)`` is true
    for Init, Active and Draining. An instance holds only its state, its unhandled counter and a
    reference to the tables every instance of the policy shares (56 bytes).
    """

    __slots__ = ()

    def __init__(self, drain_on_producer_loss: bool = False, *,
                 count_transitions: bool = False) -> None:
        if drain_on_producer_loss is False:
            m = _PLAIN[0] if _PLAIN else _policy_machine(_PLAIN, False)
        elif drain_on_producer_loss is True:
            m = _DRAIN[0] if _DRAIN else _policy_machine(_DRAIN, True)
        else:
            m = stream_machine(drain_on_producer_loss)  # raises the TypeError
        self._bind(m, count_transitions)

    if TYPE_CHECKING:  # the engine returns members of this machine's State enum

        @property
        def current(self) -> State:
            """The current leaf state."""

    @property
    def drain_on_producer_loss(self) -> bool:
        """Whether this instance uses the ``drain_on_producer_loss`` policy."""
        return _drains(self.machine)


# The two policies' machines, resolved on first use (StreamLifecycle() is built per stream, so it
# skips the registry lookup after the first).
_PLAIN: list[CompiledMachine] = []
_DRAIN: list[CompiledMachine] = []


def _policy_machine(cache: list[CompiledMachine], drain: bool) -> CompiledMachine:
    m = stream_machine(drain)
    cache[:] = [m]
    return m


class StreamTable(MachineTable):
    """Many streams' lifecycles in numpy arrays (struct of arrays, one row per slot).

    Args:
        capacity: number of slots.
        drain_on_producer_loss: select the ``drain_on_producer_loss`` policy table.

    ``open()`` returns a slot in ``State.INIT``; ``dispatch``, ``dispatch_many`` and ``broadcast``
    run the compiled table (the latter two without the GIL); ``states`` and ``unhandled`` are
    read-only numpy views; ``count(state)`` is O(1).
    """

    def __init__(self, capacity: int, drain_on_producer_loss: bool = False, *,
                 arrays: dict[str, np.ndarray] | None = None) -> None:
        super().__init__(stream_machine(drain_on_producer_loss), capacity, arrays=arrays)

    if TYPE_CHECKING:  # the engine returns members of this machine's State enum

        def state(self, slot: SupportsIndex) -> State:
            """The current (leaf) state of an open slot."""

    @property
    def drain_on_producer_loss(self) -> bool:
        """Whether this table uses the ``drain_on_producer_loss`` policy."""
        return _drains(self.machine)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`snapshot` to ``path`` (``.npz``, no pickles)."""
        save_snapshot(self.snapshot(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StreamTable:
        """A new table restored from a file written by :meth:`save` (policy and capacity taken
        from the file; the machine fingerprint must match one of the stream policies).

        Raises:
            SnapshotError: unreadable file, or a snapshot of another kind, version or machine.
        """
        snap = check_kind(load_snapshot(path), "MachineTable")
        found = by_fingerprint(snap.get("fingerprint"))
        if found is None or found[0] != "stream":
            raise SnapshotError(f"snapshot is of machine {snap.get('machine')!r} with fingerprint "
                                f"{snap.get('fingerprint')!r}, not a stream lifecycle of this "
                                f"streamhsm version")
        policy = found[1] == DRAIN_ON_PRODUCER_LOSS
        capacity = snap.get("capacity")
        if type(capacity) is not int or not 0 < capacity <= MAX_CAPACITY:
            raise SnapshotError(f"snapshot capacity {capacity!r} is not an int between 1 and "
                                f"{MAX_CAPACITY}")
        array(snap, "states", np.uint8, capacity)  # the file holds that many: allocation is bounded
        table = cls(capacity, drain_on_producer_loss=policy)
        table.restore(snap)
        return table
