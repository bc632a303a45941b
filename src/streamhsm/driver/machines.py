"""The two other machines of the driver: the per-lease lifecycle and the driver lifecycle.

Both are declared with :class:`~streamhsm.machine.MachineSpec` and compiled to tables like the
stream lifecycle, and run on the same engine.
"""

from __future__ import annotations

import functools

from ..codes import CodeEnum
from ..compiler import CompiledMachine
from ..machine import MachineSpec
from ..registry import machine, register

__all__ = [
    "DriverEvent",
    "DriverState",
    "LeaseEvent",
    "LeaseState",
    "driver_machine",
    "driver_spec",
    "lease_machine",
    "lease_spec",
]


class LeaseState(CodeEnum):
    """Lease lifecycle states: ``Root > Live > {Init, Active, Detached, Expired, Revoked}``,
    ``Root > Closed``."""

    ROOT = 0
    LIVE = 1
    INIT = 2
    ACTIVE = 3
    DETACHED = 4
    EXPIRED = 5
    REVOKED = 6
    CLOSED = 7


class LeaseEvent(CodeEnum):
    """Lease lifecycle events."""

    ATTACH_OK = 0
    KEEPALIVE = 1
    DETACH = 2
    LEASE_TIMEOUT = 3
    REVOKE = 4
    CLOSE = 5


class DriverState(CodeEnum):
    """Driver lifecycle states (all children of Root); a constructed driver is Running."""

    ROOT = 0
    INIT = 1
    RUNNING = 2
    DRAINING = 3
    STOPPED = 4


class DriverEvent(CodeEnum):
    """Driver lifecycle events."""

    START = 0
    SHUTDOWN_REQUESTED = 1
    SHUTDOWN_TIMEOUT = 2


def lease_spec(expiry_ns: int | None = None) -> MachineSpec:
    """The lease lifecycle declaration (DESIGN section 3). With ``expiry_ns`` (the
    configuration's ``interval * grace``), Active owns the timer ``expiry``: LeaseTimeout
    ``expiry_ns + 1`` ns after Active is entered or Keepalive restarts it, so a lease is live
    through its last keepalive plus ``expiry_ns`` and expired one nanosecond later."""
    spec = MachineSpec("lease",
                       ["AttachOk", "Keepalive", "Detach", "LeaseTimeout", "Revoke", "Close"],
                       initial="Live")
    spec.state("Live", initial="Init")
    for leaf in ("Init", "Active", "Detached", "Expired", "Revoked"):
        spec.state(leaf, parent="Live")
    spec.state("Closed")
    spec.on("Init", "AttachOk", "Active")
    if expiry_ns is None:
        spec.on("Active", "Keepalive")
    else:
        spec.after("Active", expiry_ns + 1, "LeaseTimeout", name="expiry")
        spec.on("Active", "Keepalive", restart="expiry")
    spec.on("Active", "Detach", "Detached")
    spec.on("Active", "LeaseTimeout", "Expired")
    spec.on("Active", "Revoke", "Revoked")
    spec.on("Live", "Close", "Closed")
    spec.on("Closed", "Close")
    return spec


def driver_spec(shutdown_timeout_ns: int | None = None) -> MachineSpec:
    """The driver lifecycle declaration: Init -> Running at start; Running + ShutdownRequested ->
    Draining; Draining + ShutdownTimeout -> Stopped; repeated requests are handled no-ops. With
    ``shutdown_timeout_ns``, Draining owns the timer ``shutdown``: ShutdownTimeout that long
    after the request (0: at the next poll)."""
    spec = MachineSpec("driver", ["Start", "ShutdownRequested", "ShutdownTimeout"], initial="Init")
    for s in ("Init", "Running", "Draining", "Stopped"):
        spec.state(s)
    spec.on("Init", "Start", "Running")
    spec.on("Running", "ShutdownRequested", "Draining")
    spec.on("Running", "ShutdownTimeout")
    spec.on("Draining", "ShutdownRequested")
    spec.on("Draining", "ShutdownTimeout", "Stopped")
    spec.on("Stopped", ["ShutdownRequested", "ShutdownTimeout"])
    if shutdown_timeout_ns is not None:
        spec.after("Draining", shutdown_timeout_ns, "ShutdownTimeout", name="shutdown")
    return spec


register("lease", lambda: lease_spec().compile(LeaseState, LeaseEvent))
register("driver", lambda: driver_spec().compile(DriverState, DriverEvent))


def lease_machine(expiry_ns: int | None = None) -> CompiledMachine:
    """The compiled lease lifecycle (compiled once, then shared): without ``expiry_ns`` the
    registered machine (no timers); with it, the driver's, whose ``expiry`` timer ends a lease
    ``expiry_ns`` after its last keepalive (one compiled machine per expiry, kept)."""
    if expiry_ns is None:
        return machine("lease")
    return _timed_lease(expiry_ns)


@functools.lru_cache(maxsize=64)
def _timed_lease(expiry_ns: int) -> CompiledMachine:
    return lease_spec(expiry_ns).compile(LeaseState, LeaseEvent)


def driver_machine(shutdown_timeout_ns: int | None = None) -> CompiledMachine:
    """The compiled driver lifecycle (compiled once, then shared): without
    ``shutdown_timeout_ns`` the registered machine (no timers); with it, the driver's, whose
    ``shutdown`` timer ends the drain (one compiled machine per timeout, kept)."""
    if shutdown_timeout_ns is None:
        return machine("driver")
    return _timed_driver(shutdown_timeout_ns)


@functools.lru_cache(maxsize=64)
def _timed_driver(shutdown_timeout_ns: int) -> CompiledMachine:
    return driver_spec(shutdown_timeout_ns).compile(DriverState, DriverEvent)
