"""The per-stream lifecycle machine (plan S-1): states, events, policies, and its Python API.

Hierarchy: ``Root > Live > {Init, Active, Draining}``, ``Root > Closed``; initial leaf ``Init``.
``Live`` holds the close/drain handlers shared by Init, Active and Draining. Events no state
handles are counted by the engine (the Root "handler"), never raised.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, SupportsIndex

import numpy as np

from ._instance import MachineInstance
from ._table import MachineTable
from .codes import CodeEnum
from .compiler import CompiledMachine
from .machine import MachineSpec
from .registry import DEFAULT_POLICY, by_fingerprint, machine, register
from .snapshot import SnapshotError, read_table_file

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

def stream_spec(drain_on_producer_loss: bool = False, *, drain_flag: str | None = None,
                announce_period_ns: int | None = None) -> MachineSpec:
    """The declaration of the stream lifecycle (DESIGN section 2), optionally with the
    ``drain_on_producer_loss`` policy (Active + ProducerDetached -> Draining,
    Draining + ProducerAttached -> Active).

    With ``drain_flag`` (a flag name) the policy's two handlers are declared instead behind a
    guard on that per-stream flag (machine ``stream[<flag> flag]``): a stream with the flag set
    behaves like ``drain_on_producer_loss``, one with it clear like the default, so one table can
    mix both policies.

    With ``announce_period_ns`` the machine has one more event, ``AnnounceDue`` (code 10, after
    the contract's :class:`Event` codes), and Live owns the periodic timer ``announce`` that
    fires it every period, handled in place: the driver's announce cadence (machine
    ``stream[... announce every N ns]``).

    Raises:
        ValueError: both ``drain_on_producer_loss`` and ``drain_flag`` are given.
    """
    if drain_on_producer_loss and drain_flag is not None:
        raise ValueError("drain_on_producer_loss and drain_flag are two ways to ask for the same "
                         "handlers: give one")
    if drain_flag is not None:
        name = f"stream[{drain_flag} flag]"
    else:
        name = "stream" if not drain_on_producer_loss else f"stream[{DRAIN_ON_PRODUCER_LOSS}]"
    spec = MachineSpec(name, Event, initial="Live")
    if announce_period_ns is not None:
        name = f"{name}[announce every {announce_period_ns} ns]"
        spec = MachineSpec(name, [*spec.events, "AnnounceDue"], initial="Live")
        spec.every("Live", announce_period_ns, "AnnounceDue", name="announce")
        spec.on("Live", "AnnounceDue")
    if drain_flag is not None:
        spec.flag(drain_flag)
    spec.state("Live", initial="Init")
    spec.state("Init", parent="Live").state("Active", parent="Live")
    spec.state("Draining", parent="Live").state("Closed")
    spec.on("Init", "StreamProvisioned", "Active")
    lease_events = ["ProducerAttached", "ConsumerAttached", "ProducerDetached",
                    "ConsumerDetached", "EpochBumped"]  # fmt: skip
    drain_events = ["ProducerDetached", "ConsumerDetached", "EpochBumped", "DriverDraining"]
    if drain_on_producer_loss or drain_flag is not None:
        if drain_flag is None:
            lease_events.remove("ProducerDetached")  # a guarded handler falls back to this one
        spec.on("Active", "ProducerDetached", "Draining", guard=drain_flag)
        spec.on("Draining", "ProducerAttached", "Active", guard=drain_flag)
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


def stream_machine(drain_on_producer_loss: bool = False, *,
                   announce_period_ns: int | None = None) -> CompiledMachine:
    """The compiled stream lifecycle for a policy (compiled once, then shared); with
    ``announce_period_ns``, the variant whose Live state announces periodically (see
    :func:`stream_spec`; one compiled machine per policy and period, kept)."""
    if not isinstance(drain_on_producer_loss, bool):
        raise TypeError(
            f"drain_on_producer_loss must be a bool, got {type(drain_on_producer_loss).__name__}"
        )
    if announce_period_ns is not None:
        return _announcing(drain_on_producer_loss, announce_period_ns)
    return machine("stream", DRAIN_ON_PRODUCER_LOSS if drain_on_producer_loss else DEFAULT_POLICY)


@functools.lru_cache(maxsize=64)
def _announcing(drain_on_producer_loss: bool, period: int) -> CompiledMachine:
    return stream_spec(drain_on_producer_loss, announce_period_ns=period).compile(State)


def _drains(m: object) -> bool:
    return m is machine("stream", DRAIN_ON_PRODUCER_LOSS) or (
        isinstance(m, CompiledMachine) and m.name.startswith(f"stream[{DRAIN_ON_PRODUCER_LOSS}]"))


class StreamLifecycle(MachineInstance):
    """One stream's lifecycle machine, starting in ``State.INIT``.

    Args:
        drain_on_producer_loss: select the policy in which ProducerDetached drains an Active stream
            and ProducerAttached reactivates a Draining one.
        count_transitions: also count this stream's transitions per (state, event) in
            ``transition_counts`` (off by default: it costs a private array per instance).

    ``dispatch(event)`` returns True if some state handled the event and False if it went
    unhandled (counted in ``unhandled``); ``current`` is always a leaf; ``is_in(State.LIVE)`` is
    true for Init, Active and Draining. An instance holds only its state, its unhandled counter and
    a reference to the tables every instance of the policy shares (56 bytes).
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
        announce_period_ns: the announcing variant of the machine (:func:`stream_spec`), whose
            clock starts at ``now_ns`` (a table without it has no clock: ``now_ns`` is unused).

    ``open()`` returns a slot in ``State.INIT``; ``dispatch``, ``dispatch_many`` and ``broadcast``
    run the compiled table (the latter two without the GIL); ``states`` and ``unhandled`` are
    read-only numpy views; ``count(state)`` is O(1).
    """

    def __init__(self, capacity: int, drain_on_producer_loss: bool = False, *,
                 arrays: dict[str, np.ndarray] | None = None,
                 announce_period_ns: int | None = None, now_ns: int = 0) -> None:
        super().__init__(stream_machine(drain_on_producer_loss,
                                        announce_period_ns=announce_period_ns),
                         capacity, arrays=arrays,
                         now_ns=0 if announce_period_ns is None else now_ns)

    if TYPE_CHECKING:  # the engine returns members of this machine's State enum

        def state(self, slot: SupportsIndex) -> State:
            """The current (leaf) state of an open slot."""

    @property
    def drain_on_producer_loss(self) -> bool:
        """Whether this table uses the ``drain_on_producer_loss`` policy."""
        return _drains(self.machine)

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             machine: CompiledMachine | None = None) -> StreamTable:
        """A new table restored from a file written by :meth:`save` (policy and capacity taken
        from the file; the machine fingerprint must match one of the stream policies, or
        ``machine`` if given).

        Raises:
            SnapshotError: unreadable file, or a snapshot of another kind, version or machine.
        """
        snap, capacity = read_table_file(path, None if machine is None else machine.fingerprint)
        found = by_fingerprint(snap.get("fingerprint"))
        if found is None or found[0] != "stream":
            raise SnapshotError(f"snapshot is of machine {snap.get('machine')!r} with fingerprint "
                                f"{snap.get('fingerprint')!r}, not a stream lifecycle of this "
                                f"streamhsm version")
        table = cls(capacity, drain_on_producer_loss=found[1] == DRAIN_ON_PRODUCER_LOSS)
        table.restore(snap)
        return table
