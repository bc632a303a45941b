"""Driver snapshots: what a snapshot holds, and the checks a snapshot passes before it is used.

A driver snapshot is plain data (see :mod:`streamhsm.snapshot`). Restoring one never trusts it:
:func:`validate` first copies every field out of the mapping into owned values of exact types
(plain ``int``/``str``/``float``/``bool``, owned C-contiguous numpy arrays), reading the mapping
only through ``dict``'s own storage, so no method of the caller's mapping, keys or values runs
after that point and nothing checked can change afterwards. Then it checks the header, then the
configuration, then that every column has the length the configuration implies (so a small file
cannot make the driver allocate much), then every value range and every cross-reference between
columns, all before a driver is built. Only a
:class:`~streamhsm.driver._core.ValidatedState` reaches the Cython core. Every failure is a
:class:`~streamhsm.errors.SnapshotError`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._owned import own
from ..lifecycle import State, stream_machine
from ..machine import FREE_SLOT
from ..snapshot import (
    SNAPSHOT_VERSION,
    SnapshotError,
    array,
    check_kind,
    check_leaf_codes,
    current_fingerprint,
)
from ._core import EPOCH_MAX, LEASE_ID_MAX, NEVER, ValidatedState
from ._layout import N_CORE_COUNTERS, driver_layout
from .config import MAX_CLIENT_ID, MAX_STREAM_ID, DriverConfig
from .machines import DriverState, LeaseState, driver_machine, lease_machine
from .protocol import MAX_SHUTDOWN_MESSAGE, RevokeReason, Role, ShutdownNotice, ShutdownReason

if TYPE_CHECKING:
    from .control import Driver

__all__ = ["EPOCH_MAX", "DriverSnapshot", "fingerprint", "own", "snapshot", "validate"]

#: Largest configuration text a snapshot may hold.
MAX_CONFIG_CHARS = 65536
#: Scalar fields of a driver snapshot besides the header and the configuration.
SCALARS = ("driver_state", "now_ns", "shutdown_deadline", "last_lease_id", "n_revoked",
           "closed_dynamic")
_TABLES = ("streams", "leases")


def fingerprint(config: DriverConfig) -> str:
    """The fingerprint of a driver's three machines (stream policy, lease with the configured
    expiry timer, driver)."""
    streams = stream_machine(config.drain_on_producer_loss,
                             announce_period_ns=config.announce_period_ns)
    return "/".join(m.fingerprint for m in (streams, lease_machine(config.lease_expiry_ns),
                                             driver_machine(config.shutdown_timeout_ns)))


def _before_timers(config: DriverConfig) -> str:
    """What :func:`fingerprint` was before lease expiry moved onto the lease machine's timer
    (snapshots with it keep their expiries in a ``lease_expiry`` column: see
    :func:`_lease_timers`)."""
    return "/".join(m.fingerprint for m in (stream_machine(config.drain_on_producer_loss),
                                             lease_machine(), driver_machine()))


def snapshot(driver: Driver, columns: dict[str, np.ndarray], due: np.ndarray,
             tables: dict[str, dict[str, object]], scalars: dict[str, int],
             shutdown: dict[str, object]) -> dict[str, object]:
    """Assemble a driver snapshot from its parts (see :meth:`Driver.snapshot`)."""
    cfg = dataclasses.asdict(driver.config)
    cfg["shutdown_token"] = None  # never written to a file
    cfg["shm_name"] = None  # the restorer chooses its own segment
    snap: dict[str, object] = {
        "kind": "Driver", "version": SNAPSHOT_VERSION, "machine": "driver",
        "fingerprint": fingerprint(driver.config),
        "config": json.dumps(cfg, sort_keys=True),
    }
    snap.update(scalars)
    snap.update(shutdown)
    for name, column in columns.items():
        if name != "due_slots":
            snap[name] = column
    snap["due_slots"] = due
    for prefix, table_snap in tables.items():
        for key, value in table_snap.items():
            snap[f"{prefix}.{key}"] = value
    return snap


@dataclass(frozen=True)
class DriverSnapshot:
    """A snapshot that passed :func:`validate`: its configuration, the table snapshots, the
    scalars and the core's validated state."""

    config: DriverConfig
    tables: dict[str, dict[str, Any]]
    scalars: dict[str, int]
    core: ValidatedState
    shutdown: ShutdownNotice | None


# ---------------------------------------------------------------------- the steps
def validate(snap: object, *, shutdown_token: str | None = None) -> DriverSnapshot:
    """Check a driver snapshot completely, allocating nothing proportional to what it claims,
    on an owned copy of it (:func:`own`) so that nothing checked can change afterwards.

    Raises:
        SnapshotError: anything wrong, named with the offending field and value.
    """
    header = check_kind(own(snap), "Driver")
    config = _config(header, shutdown_token)
    expected = fingerprint(config)
    got = header.get("fingerprint")  # 0.2's fingerprints of the three machines map to today's
    now = "/".join(str(current_fingerprint(p)) for p in got.split("/")) if type(got) is str else got
    untimed = now == _before_timers(config)
    if untimed:
        now = expected
    if now != expected:
        raise SnapshotError(
            f"snapshot is of machines with fingerprint {header.get('fingerprint')!r}, not "
            f"{expected!r} (another streamhsm version or stream policy)")
    layout = _layout(config)
    cols = _columns(header, layout)
    tables = _tables(header, config)
    scalars = _scalars(header, layout, config)
    if untimed:
        tables["leases"] = _lease_timers(tables["leases"], header, config, scalars["now_ns"])
    for prefix in _TABLES:  # a table's clock is the driver's, or behind it
        _check_lease_clock(tables[prefix], scalars["now_ns"], prefix)
    streams, leases = tables["streams"]["states"], tables["leases"]["states"]
    check_leaf_codes(streams, stream_machine(config.drain_on_producer_loss), "stream ")
    check_leaf_codes(leases, lease_machine(), "lease ")
    _check_streams(cols, streams, config)
    _check_leases(cols, streams, leases, scalars)
    _check_announces(cols, header)
    _check_outbox_and_counters(cols, scalars)
    shutdown = _shutdown(header, scalars)
    _check_driver_state(streams, leases, scalars, config, shutdown)
    if scalars["closed_dynamic"] != _closed_dynamic(cols, streams):
        raise SnapshotError(f"snapshot closed_dynamic {scalars['closed_dynamic']} does not match "
                            f"the Closed dynamic streams ({_closed_dynamic(cols, streams)})")
    due = array(header, "due_slots", np.int32, len(header["due_slots"]))
    cols["due_slots"] = np.zeros(layout["due_slots"][1], np.int32)
    cols["due_slots"][:len(due)] = due
    core = ValidatedState(cols, scalars["last_lease_id"], scalars["n_revoked"], len(due),
                          scalars["closed_dynamic"])
    return DriverSnapshot(config, tables, scalars, core, shutdown)


def _config(snap: dict[str, Any], shutdown_token: str | None) -> DriverConfig:
    text = snap.get("config")
    if not isinstance(text, str):
        raise SnapshotError(f"snapshot field 'config' must be a str, got {type(text).__name__}")
    if len(text) > MAX_CONFIG_CHARS:
        raise SnapshotError(f"snapshot configuration is {len(text)} characters long, "
                            f"at most {MAX_CONFIG_CHARS} are accepted")
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SnapshotError(f"snapshot configuration is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise SnapshotError(f"snapshot configuration must be a JSON object, got {text[:60]!r}")
    known = {f.name for f in dataclasses.fields(DriverConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise SnapshotError(f"snapshot configuration has unknown fields {unknown[:5]}")
    for key in ("static_stream_ids", "dynamic_stream_id_range"):
        if isinstance(fields.get(key), list):
            fields[key] = tuple(fields[key])
    fields["shutdown_token"] = shutdown_token
    fields["shm_name"] = None
    try:
        return DriverConfig(**fields)
    except (ValueError, TypeError, RecursionError) as exc:
        raise SnapshotError(f"snapshot configuration is not usable: {exc}") from None


def _layout(config: DriverConfig) -> dict[str, tuple[np.dtype[Any], int, int]]:
    rng = config.dynamic_stream_id_range
    n_dyn = 0 if rng is None else rng[1] - rng[0] + 1
    return driver_layout(config.stream_capacity, config.lease_capacity, n_dyn,
                         int(config.outbox_capacity or config.lease_capacity))


def _columns(snap: dict[str, Any], layout: dict[str, tuple[np.dtype[Any], int, int]]
             ) -> dict[str, npt.NDArray[Any]]:
    """Every core column with the dtype and length the configuration implies."""
    return {name: array(snap, name, dtype, n) for name, (dtype, n, _) in layout.items()
            if name != "due_slots"}


def _tables(snap: dict[str, Any], config: DriverConfig) -> dict[str, dict[str, Any]]:
    """The two table snapshots, with their state arrays checked against the capacities."""
    out = {}
    capacities = (config.stream_capacity, config.lease_capacity)
    for prefix, capacity in zip(_TABLES, capacities, strict=True):
        table = {k.split(".", 1)[1]: v for k, v in snap.items() if k.startswith(prefix + ".")}
        if type(table.get("capacity")) is not int or table.get("capacity") != capacity:
            raise SnapshotError(f"snapshot {prefix} table capacity {table.get('capacity')!r} "
                                f"does not match the configuration ({capacity})")
        array(table, "states", np.uint8, capacity)
        out[prefix] = table
    return out


def _scalars(snap: dict[str, Any], layout: dict[str, tuple[np.dtype[Any], int, int]],
             config: DriverConfig) -> dict[str, int]:
    limits = {"driver_state": int(max(DriverState)), "now_ns": config.max_time_ns,
              "shutdown_deadline": NEVER, "last_lease_id": LEASE_ID_MAX,
              "n_revoked": layout["revoked_lease_id"][1], "closed_dynamic": layout["stream_id"][1]}
    out = {}
    for key in SCALARS:
        value = snap.get(key)
        if type(value) is not int or not 0 <= value <= limits[key]:
            raise SnapshotError(
                f"snapshot field {key!r} must be an int between 0 and {limits[key]}, got {value!r}")
        out[key] = value
    if out["driver_state"] not in (DriverState.RUNNING, DriverState.DRAINING, DriverState.STOPPED):
        raise SnapshotError(f"snapshot driver_state {out['driver_state']} is not a driver state")
    return out


def _fail_at(mask: npt.NDArray[np.bool_], message: str) -> None:
    """Raise ``message`` (formatted with ``slot``) for the first True entry of ``mask``."""
    bad = np.flatnonzero(mask)
    if bad.size:
        raise SnapshotError("snapshot " + message.format(slot=int(bad[0])))


def _check_streams(cols: dict[str, npt.NDArray[Any]], states: npt.NDArray[np.uint8],
                   config: DriverConfig) -> None:
    """Stream ids, dynamic flags, the dynamic id map and epochs."""
    open_ = states != FREE_SLOT
    sid, dynamic, epoch = cols["stream_id"], cols["dynamic"], cols["epoch"]
    _fail_at(dynamic > 1, "dynamic flag at stream slot {slot} is not 0 or 1")
    _fail_at(open_ & ((sid < 0) | (sid > MAX_STREAM_ID)),
             "stream slot {slot} has a stream id out of range")
    _fail_at(~open_ & (sid != -1), "free stream slot {slot} has a stream id")
    _fail_at(epoch < 0, "epoch at stream slot {slot} is out of range")
    # a restore bumps every Live epoch once (a restart): one at EPOCH_MAX cannot get a new one
    _fail_at(open_ & (states != State.CLOSED) & (epoch == EPOCH_MAX),
             "epoch at stream slot {slot} is at its maximum: a restart cannot give it a new epoch")
    static = open_ & (dynamic == 0)
    if sorted(sid[static].tolist()) != sorted(config.static_stream_ids):
        raise SnapshotError("snapshot static streams do not match the configured static stream ids")
    dyn_slot, dyn_epoch = cols["dyn_slot"], cols["dyn_epoch"]
    _fail_at(dyn_epoch < 0, "dyn_epoch entry {slot} is out of range")
    first = config.dynamic_stream_id_range[0] if config.dynamic_stream_id_range else 0
    dyn = np.flatnonzero(open_ & (dynamic == 1))
    ids = sid[dyn] - first
    if ((ids < 0) | (ids >= len(dyn_slot))).any():
        raise SnapshotError("snapshot has a dynamic stream whose id is outside the dynamic range")
    if len(np.unique(ids)) != len(ids):
        raise SnapshotError("snapshot has two dynamic streams with one id")
    expected = np.full(len(dyn_slot), -1, np.int32)
    expected[ids] = dyn
    _fail_at(dyn_slot != expected, "dynamic id map entry {slot} does not match the stream slots")
    _fail_at(epoch[dyn] != dyn_epoch[ids], "epoch of dynamic stream {slot} differs from its mark")


def _check_leases(cols: dict[str, npt.NDArray[Any]], streams: npt.NDArray[np.uint8],
                  leases: npt.NDArray[np.uint8], scalars: dict[str, int]) -> None:
    """Lease rows against the lease table, the streams they hold, and producer/consumer counts."""
    live = leases != FREE_SLOT
    stream = cols["lease_stream"]
    _fail_at(live != (stream >= 0), "lease rows do not match the open lease slots (slot {slot})")
    _fail_at(live & (leases != LeaseState.ACTIVE), "live lease at slot {slot} is not Active")
    ls = np.flatnonzero(live)
    held = stream[ls]
    if held.size and (held.max() >= len(streams)):
        raise SnapshotError("a snapshot lease belongs to a stream slot out of range")
    if held.size and not np.isin(streams[held], (State.ACTIVE, State.DRAINING)).all():
        raise SnapshotError(
            "a snapshot lease belongs to a stream slot that is not Active or Draining")
    role, lease_id, client = cols["lease_role"][ls], cols["lease_id"][ls], cols["lease_client"][ls]
    if not np.isin(role, (Role.PRODUCER, Role.CONSUMER)).all():
        raise SnapshotError("a snapshot lease has a role that is not a Role code")
    if ((lease_id <= 0) | (lease_id > scalars["last_lease_id"])).any():
        raise SnapshotError("a snapshot lease id is not between 1 and last_lease_id")
    if len(np.unique(lease_id)) != len(lease_id):
        raise SnapshotError("two snapshot leases have one lease id")
    if ((client <= 0) | (client > MAX_CLIENT_ID)).any():
        raise SnapshotError("a snapshot lease has a client id out of range")
    if len(np.unique(client)) != len(client):
        raise SnapshotError(
            f"a snapshot client holds two leases (clients {sorted(client.tolist())[:5]}...)")
    n = len(streams)
    producers = held[role == Role.PRODUCER]
    if len(np.unique(producers)) != len(producers):
        raise SnapshotError("a snapshot stream has two producer leases")
    expected = np.zeros(n, np.int64)
    expected[producers] = lease_id[role == Role.PRODUCER]
    open_ = streams != FREE_SLOT
    _fail_at(open_ & (cols["producer"] != expected),
             "producer of stream slot {slot} does not match its leases")
    counted = np.bincount(held[role == Role.CONSUMER], minlength=n)
    _fail_at(open_ & (cols["consumers"] != counted),
             "consumer count of stream slot {slot} does not match its leases")


def _lease_timers(table: dict[str, Any], snap: dict[str, Any], config: DriverConfig,
                  now: int) -> dict[str, Any]:
    """A lease table snapshot written before lease expiry was a timer, brought to today's
    format: its expiries (the old ``lease_expiry`` column) become ``expiry`` deadlines one
    nanosecond later, the table's clock the driver's; a lease whose expiry had passed without a
    poll expires at the first call after ``now``."""
    machine = lease_machine(config.lease_expiry_ns)
    cap = config.lease_capacity
    expiry = array(snap, "lease_expiry", np.int64, cap)
    states = array(table, "states", np.uint8, cap)
    live = states != FREE_SLOT
    if (live & (expiry < 0)).any():
        raise SnapshotError("a snapshot lease has a negative expiry")
    deadlines = np.full(cap, NEVER, np.int64)
    deadlines[live] = np.clip(expiry[live], now, now + config.lease_expiry_ns) + 1
    return {**table, "fingerprint": machine.fingerprint, "version": SNAPSHOT_VERSION,
            "now_ns": now, "deadlines": deadlines, "skipped": np.zeros(1, np.int64)}


def _check_lease_clock(table: dict[str, Any], now: int, prefix: str = "leases") -> None:
    """A table's clock is the driver's, or behind it (never ahead); a table snapshot from before
    timers has none (it restores at 0)."""
    clock = table.get("now_ns", 0)
    if isinstance(clock, np.ndarray) and clock.shape == () and clock.dtype.kind in "iu":
        clock = clock.item()  # a 0-d array, as a file may store it
    if type(clock) is not int or not 0 <= clock <= now:
        raise SnapshotError(f"snapshot {prefix}.now_ns {clock!r} must be an int between 0 and the "
                            f"driver's now_ns {now}")


def _check_announces(cols: dict[str, npt.NDArray[Any]], snap: dict[str, Any]) -> None:
    due_flags = cols["due"]
    n = len(due_flags)
    value = snap.get("due_slots")
    if not isinstance(value, np.ndarray) or value.ndim != 1 or len(value) > n:
        raise SnapshotError(
            f"snapshot field 'due_slots' must be an int32 array of at most {n} slots")
    due = array(snap, "due_slots", np.int32, len(value))
    if due.size and (due.min() < 0 or due.max() >= n):
        raise SnapshotError("snapshot due_slots holds a slot out of range")
    flags = np.zeros(n, np.uint8)
    flags[due] = 1
    if len(np.unique(due)) != len(due) or not np.array_equal(flags, due_flags):
        raise SnapshotError("snapshot due_slots does not match the due flags")


def _check_outbox_and_counters(cols: dict[str, npt.NDArray[Any]], scalars: dict[str, int]) -> None:
    n = scalars["n_revoked"]
    if not np.isin(cols["revoked_role"][:n], (Role.PRODUCER, Role.CONSUMER)).all():
        raise SnapshotError("a snapshot revoke notice has a role that is not a Role code")
    if not np.isin(cols["revoked_reason"][:n], list(RevokeReason)).all():
        raise SnapshotError("a snapshot revoke notice has a reason that is not a RevokeReason code")
    if (cols["counters"] < 0).any() or len(cols["counters"]) != N_CORE_COUNTERS:
        raise SnapshotError("snapshot counters must not be negative")


def _check_driver_state(streams: npt.NDArray[np.uint8], leases: npt.NDArray[np.uint8],
                        scalars: dict[str, int], config: DriverConfig,
                        shutdown: ShutdownNotice | None) -> None:
    state = scalars["driver_state"]
    if state == DriverState.RUNNING and scalars["shutdown_deadline"] != NEVER:
        raise SnapshotError("a running driver's snapshot must have no shutdown deadline")
    timeout, deadline = config.shutdown_timeout_ns, scalars["shutdown_deadline"]
    requested = 0 if shutdown is None else shutdown.requested_ns  # 0..now_ns (_shutdown)
    if state == DriverState.DRAINING and deadline != requested + timeout:
        raise SnapshotError(
            f"a draining driver's shutdown deadline {deadline} must be its request's time "
            f"(shutdown_requested_ns {requested}) plus shutdown_timeout_ns {timeout}")
    if state == DriverState.DRAINING and np.isin(streams, (State.INIT, State.ACTIVE)).any():
        raise SnapshotError("a draining driver's snapshot holds streams that are not draining")
    if state == DriverState.STOPPED and (np.isin(streams, (State.INIT, State.ACTIVE,
                                                           State.DRAINING)).any()
                                         or (leases != FREE_SLOT).any()):
        raise SnapshotError("a stopped driver's snapshot holds live streams or leases")


def _shutdown(snap: dict[str, Any], scalars: dict[str, int]) -> ShutdownNotice | None:
    """The accepted shutdown request: None exactly when the driver is Running."""
    reason, message = snap.get("shutdown_reason"), snap.get("shutdown_message")
    times: list[int] = []
    for key in ("shutdown_requested_ns", "shutdown_stopped_ns"):
        t = snap.get(key)
        if type(t) is not int or not 0 <= t <= scalars["now_ns"]:
            raise SnapshotError(f"snapshot field {key!r} must be an int between 0 and now_ns, "
                                f"got {t!r}")
        times.append(t)
    if type(reason) is not int or not isinstance(message, str):
        raise SnapshotError("snapshot fields 'shutdown_reason' and 'shutdown_message' must be an "
                            "int and a str")
    if scalars["driver_state"] == DriverState.RUNNING:
        if reason != -1:
            raise SnapshotError("a running driver's snapshot must have no shutdown request")
        return None
    if reason not in tuple(ShutdownReason) or len(message) > MAX_SHUTDOWN_MESSAGE:
        raise SnapshotError(f"snapshot shutdown reason {reason!r} or message is not valid")
    return ShutdownNotice(ShutdownReason(reason), message, times[0], times[1])


def _closed_dynamic(cols: dict[str, npt.NDArray[Any]], streams: npt.NDArray[np.uint8]) -> int:
    """Dynamic streams Closed and waiting for recycling."""
    return int(((cols["dynamic"] == 1) & (streams == State.CLOSED)).sum())
