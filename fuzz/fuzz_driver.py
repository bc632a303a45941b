"""Harness 4: random driver operation sequences with extreme ints.

The input bytes choose a small configuration and then a sequence of attach / keepalive / detach /
revoke / poll / bump_epoch / request_shutdown / snapshot+restore / save+load / outbox and query
calls whose arguments are recent ids, current times, or extremes (0, -1, 2**31-1, 2**63-1, 2**63,
-2**63, 2**64, ...), sometimes of the wrong type. ``keepalive`` and ``detach`` get ``client_id=``
when their signature has it (issue 9 item 15), so the harness works before and after that change.

Oracles, after every operation:
- a raised ``TypeError``/``ValueError`` (or a project error) changed nothing: the driver's
  snapshot is identical before and after (a rejected call changes nothing, clock included);
- the driver's own snapshot restores (``Driver.restore``);
- the stream and lease tables are consistent (len equals the open states, counts equal the
  histogram), ``live_leases`` equals the open lease slots, every live lease's stream slot is open,
  counters are never negative, the clock never goes back.
Any other exception (``OverflowError``, ``IndexError``, ...), a crash or a hang is a finding.

Arguments whose methods run code (issue 19 class 1): a time or id is sometimes an int-like whose
``__index__`` first calls the driver (detach, attach, poll, or close it), and a role, token or
message a ``str`` subclass whose comparisons lie. Such a call may legitimately change the driver
(the re-entrant call did), so the "raised, changed nothing" oracle is skipped for it; the others
hold, and nothing may crash. A snapshot is sometimes restored through a ``dict`` subclass whose
``get``/``__getitem__`` lie and with ``str``-subclass values: the result must equal the plain
restore's.
"""

from __future__ import annotations

import inspect
import os
import random
from typing import Any

import numpy as np

import streamhsm
from streamhsm import Driver, DriverConfig
from streamhsm.driver import REVOKED_NOTICE_DTYPE

from common import (
    PROJECT_ERRORS,
    Finding,
    Provider,
    byte_mutate,
    scratch_dir,
    snapshots_equal,
    table_invariants,
)

NAME = "driver"
MAX_LEN = 4096
ACCEPTED = (TypeError, ValueError) + PROJECT_ERRORS
_WRONG_TYPES = (None, 1.5, "7", True, np.int64(3), np.uint64(2**64 - 1), float("nan"), b"1")


class _Reenter:
    """An int-like whose ``__index__`` runs one driver call first (then answers ``value``)."""

    def __init__(self, value: int, action: Any) -> None:
        self.value, self.action = value, action

    def __index__(self) -> int:
        action, self.action = self.action, None
        if action is not None:
            try:
                action()
            except ACCEPTED:
                pass
        return self.value


class _LyingStr(str):
    """A str that claims to equal everything and to be empty."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__

    def __len__(self) -> int:
        return 0

    def lower(self) -> str:  # type: ignore[override]
        return "producer"


class _LyingDict(dict):  # type: ignore[type-arg]
    """A snapshot mapping whose own methods answer with crafted values."""

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        value = dict.get(self, key, default)
        return np.full_like(value, 2**40) if isinstance(value, np.ndarray) else value

    __getitem__ = get  # type: ignore[assignment]


def _lying(snap: dict[str, Any]) -> dict[str, Any]:
    return _LyingDict({k: (_LyingStr(v) if type(v) is str else v) for k, v in snap.items()})


def _config(p: Provider) -> DriverConfig | None:
    static = tuple(sid for sid in (0, 1, 2, 2**31 - 1) if p.boolean())
    rng = p.pick(((10, 13), (3, 6), (2**31 - 4, 2**31 - 1), (100, 100)))
    try:
        return DriverConfig(
            static_stream_ids=static,
            allow_dynamic_streams=p.byte() % 4 != 0,
            dynamic_stream_id_range=rng,
            stream_capacity=p.int_in(1, 6),
            lease_capacity=p.int_in(1, 6),
            outbox_capacity=p.pick((None, 1, 2, 5)),
            lease_keepalive_interval_ns=p.pick((1, 10, 10**9, 2**40, 2**61)),
            lease_expiry_grace_intervals=p.pick((1, 2, 3)),
            shutdown_timeout_ns=p.pick((0, 1, 100, 2**62, 2**63 - 1)),
            shutdown_token=p.pick((None, "t")),
            drain_on_producer_loss=p.boolean(),
        )
    except ValueError:
        return None  # an invalid combination (documented): not what this harness explores


class _Ctx:
    def __init__(self, p: Provider, d: Driver) -> None:
        self.p = p
        self.d = d
        self.now = 0
        self.reentered = False
        self.leases: list[tuple[int, int]] = []   # (lease id, client id)
        self.sids = list(d.config.static_stream_ids)
        rng = d.config.dynamic_stream_id_range
        if rng is not None:
            self.sids += [rng[0], rng[1], rng[1] + 1]

    def time(self) -> Any:
        kind = self.p.byte() % 11
        if kind <= 5:
            return self.now + self.p.pick((0, 0, 1, 5, 31, 100, 10**9, 3 * 10**9))
        if kind <= 8:
            return self.p.extreme_int()
        if kind == 9:
            return self.reenter(self.now + self.p.pick((0, 1, 10**9)))
        return self.p.pick(_WRONG_TYPES)

    def reenter(self, value: int) -> _Reenter:
        """An argument whose conversion calls the driver first (issue 19 class 1)."""
        d, now, which = self.d, self.now, self.p.byte() % 4
        lid, client = self.leases[-1] if self.leases else (1, 1)
        self.reentered = True
        action = (lambda: d.detach(lid, now, client_id=client),
                  lambda: d.attach(self.sids[0] if self.sids else 1, "consumer", 77, now),
                  lambda: d.poll(now), d.close)[which]
        return _Reenter(value, action)

    def int_or(self, pool: list[int]) -> Any:
        kind = self.p.byte() % 10
        if kind <= 5 and pool:
            return self.p.pick(pool)
        if kind <= 8:
            return self.p.extreme_int()
        return self.p.pick(_WRONG_TYPES)

    def lease(self) -> tuple[Any, Any]:
        if self.leases and self.p.byte() % 4:
            lid, client = self.p.pick(self.leases)
            if self.p.byte() % 4 == 0:
                client = self.int_or([c for _, c in self.leases])  # someone else's client id
            return lid, client
        return self.int_or([]), self.int_or([1, 2])


def _client_kw(method: Any, client: Any) -> dict[str, Any]:
    return {"client_id": client} if "client_id" in inspect.signature(method).parameters else {}


def _invariants(d: Driver, snap: dict[str, Any], last_now: int) -> None:
    table_invariants(d.streams, "driver streams")
    leases_states = snap["leases.states"]
    n_leases = int(np.count_nonzero(leases_states != 255))
    if d.live_leases != n_leases:
        raise Finding(f"live_leases {d.live_leases} != {n_leases} open lease slots")
    stream_states = snap["streams.states"]
    for ls in np.flatnonzero(leases_states != 255).tolist():
        slot = int(snap["lease_stream"][ls])
        if not 0 <= slot < len(stream_states) or stream_states[slot] == 255:
            raise Finding(f"live lease in slot {ls} points at stream slot {slot}, not open")
    if any(v < 0 for v in d.counters.values()):
        raise Finding(f"negative counter: {dict(d.counters)}")
    if int(snap["now_ns"]) < last_now:
        raise Finding(f"the clock went back from {last_now} to {snap['now_ns']}")


def _step(c: _Ctx, op: int) -> Driver:
    d, p = c.d, c.p
    if op <= 2:
        client = c.int_or([1, 2, 3, 2**63 - 1])
        r = d.attach(c.int_or(c.sids), p.pick(("producer", "consumer", 1, 2, 0, 3, "x", 2**64,
                                               None, _LyingStr("consumer"))),
                     client, c.time(), create=p.pick((True, False, 1)))
        if r.lease_id:
            c.leases.append((r.lease_id, client))
    elif op == 3:
        lid, client = c.lease()
        d.keepalive(lid, c.time(), **_client_kw(d.keepalive, client))
    elif op == 4:
        lid, client = c.lease()
        d.detach(lid, c.time(), **_client_kw(d.detach, client))
    elif op == 5:  # the operator-side revoke: with or without a time, whichever it takes
        has_now = "now_ns" in inspect.signature(d.revoke).parameters
        d.revoke(c.lease()[0], *((c.time(),) if has_now else ()))
    elif op == 6:
        d.poll(c.time())
    elif op == 7:
        d.bump_epoch(c.int_or(c.sids))
    elif op == 8:
        d.request_shutdown(c.time(), p.pick((None, "t", "u", "", _LyingStr("u"))),
                           message=p.pick(("", "bye", _LyingStr("x" * 2000))))
    elif op == 9:
        snap = d.snapshot()
        try:
            restored = Driver.restore(snap)
        except PROJECT_ERRORS as exc:
            raise Finding(f"a driver's own snapshot does not restore: {exc!r}") from exc
        if p.boolean():  # the same snapshot through lying mapping methods and str values
            hostile = Driver.restore(_lying(snap))
            if not snapshots_equal(hostile.snapshot(), restored.snapshot()):
                raise Finding("a snapshot restored through a lying dict differs")
            hostile.close()
        d.close()
        return restored
    elif op == 10:
        path = os.path.join(scratch_dir(), f"d-{os.getpid()}.npz")
        d.save(path)
        try:
            restored = Driver.load(path)
        except PROJECT_ERRORS as exc:
            raise Finding(f"a driver's own saved file does not load: {exc!r}") from exc
        finally:
            os.unlink(path)
        d.close()
        return restored
    elif op == 11:
        out = np.zeros(p.int_in(0, 3), REVOKED_NOTICE_DTYPE) if p.boolean() else None
        d.drain_revoked(out)
    elif op == 12:
        out = np.zeros(p.int_in(0, 8), np.int64) if p.boolean() else None
        d.drain_announces(out)
    else:
        sid, (lid, _) = c.int_or(c.sids), c.lease()
        for call in (lambda: d.stream_state(sid), lambda: d.stream_info(sid),
                     lambda: d.epoch(sid), lambda: d.lease_state(lid),
                     lambda: d.lease_expiry(lid), d.announce_eligible, d.stats, lambda: repr(d)):
            try:
                call()
            except ACCEPTED:
                pass
    return d

mutate = byte_mutate  # the input is a choice stream: plain byte mutations fit it


def seeds() -> list[bytes]:
    """Deterministic random byte strings (every input decodes to an operation sequence)."""
    return [random.Random(i).randbytes(900) for i in range(24)]


def test_one_input(data: bytes) -> None:
    p = Provider(data)
    cfg = _config(p)
    if cfg is None:
        return
    c = _Ctx(p, Driver(cfg))
    try:
        last_now = 0
        for _ in range(p.int_in(1, 40)):
            if p.remaining() == 0:
                break
            op = p.byte() % 14
            before = c.d.snapshot()
            c.reentered = False
            try:
                c.d = _step(c, op)
            except ACCEPTED as exc:
                if c.d.closed:  # a re-entrant argument closed it: every call raises now
                    if not isinstance(exc, streamhsm.DriverClosedError):
                        raise Finding(f"operation {op} on a driver closed mid-call raised "
                                      f"{exc!r}") from exc
                    c.d = Driver.restore(before)
                    continue
                if c.reentered:
                    continue  # the re-entrant call may have changed the driver, legitimately
                after = c.d.snapshot()
                if not snapshots_equal(before, after):
                    changed = sorted(k for k in before
                                     if not snapshots_equal({k: before[k]}, {k: after.get(k)}))
                    raise Finding(f"operation {op} raised {exc!r} but changed {changed}") from exc
            if c.d.closed:
                c.d = Driver.restore(before)
                continue
            snap = c.d.snapshot()
            _invariants(c.d, snap, last_now)
            last_now = int(snap["now_ns"])
            c.now = last_now
    finally:
        c.d.close()
